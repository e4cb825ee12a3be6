"""Host tests for the harness's pure logic: S2 parsing and leak maths,
the scenario registry, dmesg filtering, the runner's status mapping (with
a fake VM), and the ~/.ssh/config block."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from vexfs.harness import runner as runner_mod
from vexfs.harness import scenarios as registry
from vexfs.harness.framework import RunOptions, Scenario, ScenarioContext
from vexfs.harness.scenarios.s2_stress import growth_over_run, parse_cycle
from vexfs.report.events import PlainObserver
from vexfs.report.model import Crash, Status
from vexfs.vm import ssh
from vexfs.vm.kernel import GuestKernel
from vexfs.vm.session import CommandResult, GuestCrashed


def test_parse_cycle_line() -> None:
    line = ("CYCLE 7 load=1795604475.077750,1795604475.393839 "
            "unload=1795604476.302709,1795604476.553593 MemAvailable=1887808 Slab=18152 "
            "SUnreclaim=8764 VmallocUsed=6612 Percpu=520  counters=inodes=0;mounts=2;"
            "sb0/state=clean;")
    c = parse_cycle(line)
    assert c["cycle"] == 7
    assert c["load_s"] == pytest.approx(0.316089)
    assert c["unload_s"] == pytest.approx(0.250884)
    assert c["mem"] == {"MemAvailable": 1887808, "Slab": 18152, "SUnreclaim": 8764,
                        "VmallocUsed": 6612, "Percpu": 520}
    assert c["counters"] == {"inodes": 0, "mounts": 2, "sb0/state": "clean"}


def test_parse_cycle_comma_decimal_locale() -> None:
    c = parse_cycle("CYCLE 1 load=10,5,11,0 unload=12,25,12,75 Slab=1 counters=")
    assert c["load_s"] == pytest.approx(0.5) and c["unload_s"] == pytest.approx(0.5)


# MemAvailable + per-CPU free (kB) after each of 20 cycles of a real S2 run
# with a leak-free module (CI, 2026-11-25): a one-off 2 MB drop at cycle 12,
# then flat. The old Theil-Sen estimate called this a -2445 kB trend.
REAL_STEP_RUN = [0, -28, -64, -112, -152, -164, -180, -164, -192, -192, -176, -2232, -2212,
                 -2216, -2228, -2220, -2196, -2204, -2236, -2236]


def test_growth_allows_one_off_step_anywhere() -> None:
    loss = growth_over_run([-v for v in REAL_STEP_RUN])
    assert loss.value < 300 and loss.largest_step == 2056 and loss.largest_step_cycle == 12
    for at in (1, 5, 10, 19):  # one 2 MB step, wherever it falls
        series = [0.0] * at + [2048.0] * (20 - at)
        g = growth_over_run(series)
        assert g.value == 0 and g.largest_step == 2048 and g.largest_step_cycle == at + 1


def test_growth_sees_steady_and_stepwise_leaks() -> None:
    steady = [3.0 * i for i in range(20)]  # 3 kB per cycle
    assert growth_over_run(steady).value == pytest.approx(57)
    # 2 MB every 5 cycles: median change 0, but more than one step
    stepwise = [2048.0 * (i // 5) for i in range(20)]
    g = growth_over_run(stepwise)
    assert g.trend == 0 and g.value == pytest.approx(3 * 2048 - 2048)
    shrinking = [100.0 - i for i in range(20)]
    assert growth_over_run(shrinking).value < 0 and growth_over_run(shrinking).largest_step == 0
    assert growth_over_run([5.0]).value == 0.0


def test_registry_discovers_builtin_scenarios_in_order() -> None:
    found = registry.discover()
    assert list(found)[:2] == ["S1", "S2"]
    ids = [s.id for s in registry.select([])]
    assert ids[:2] == ["S1", "S2"] and all(i.startswith("S") for i in ids)
    assert [s.id for s in registry.select(["s2", "S1"])] == ["S1", "S2"]
    with pytest.raises(KeyError, match="unknown scenario"):
        registry.select(["S99"])


def test_registry_register_extra() -> None:
    extra = Scenario(id="X7", name="extra", fn=lambda ctx: None)
    registry.register(extra)
    try:
        assert registry.discover()["X7"] is extra
        assert "X7" not in [s.id for s in registry.select([])]  # X.. only when named
        assert registry.select(["x7"]) == [extra]
    finally:
        registry.unregister("X7")
    assert "X7" not in registry.discover()


class FakeWatch:
    def __init__(self) -> None:
        self.crashes: list[Crash] = []

    @property
    def crashed(self) -> bool:
        return bool(self.crashes)

    def flush(self) -> None:
        pass


class FakeBoot:
    boot_s = 1.0
    accel = "tcg"
    guest_uptime_s = 0.5


class FakeVM:
    """Answers commands from a table; enough for the framework and runner."""

    answers: dict[str, CommandResult] = {}
    crash_on: str | None = None
    fail_boots = 0  # how many of the next boots crash before the agent starts

    def __init__(self, *, name: str, log_dir: Path, **kwargs) -> None:
        self.name = name
        self.watch = FakeWatch()
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_paths = [log_dir / f"{name}.log"]
        self.log_paths[0].write_text("console\n")
        self.files: dict[str, bytes] = {}
        self.killed = False

    def start(self):
        if FakeVM.fail_boots > 0:
            FakeVM.fail_boots -= 1
            raise GuestCrashed(Crash(kind="stall", title="INFO: rcu detected stall", trace="t"),
                               "kernel crashed during boot")
        return FakeBoot()

    def put_file(self, src, dest, mode=0o644):
        self.files[dest] = Path(src).read_bytes() if not isinstance(src, bytes) else src

    def run(self, cmd, **kwargs):
        text = cmd if isinstance(cmd, str) else " ".join(cmd)
        if self.crash_on and self.crash_on in text:
            crash = Crash(kind="oops", title="BUG: kernel NULL pointer dereference in vexfs_x",
                          trace="trace")
            self.watch.crashes.append(crash)
            raise GuestCrashed(crash)
        return self.answers.get(text, CommandResult(text, 0, "", "", 0.01))

    def kill(self):
        self.killed = True


def _cfg(tmp_path: Path, module: Path) -> runner_mod.RunnerConfig:
    return runner_mod.RunnerConfig(kernel=GuestKernel("6.1.0-56-amd64", tmp_path / "k"),
                                   out_dir=tmp_path / "out",
                                   options=RunOptions(module_path=module),
                                   observer=PlainObserver(), write_report=False)


@pytest.fixture
def fake_vm(monkeypatch: pytest.MonkeyPatch):
    FakeVM.answers = {}
    FakeVM.crash_on = None
    FakeVM.fail_boots = 0
    monkeypatch.setattr(runner_mod, "GuestVM", FakeVM)
    monkeypatch.setattr(runner_mod, "qemu_version", lambda: "7.2.0")
    return FakeVM


def test_runner_status_mapping(tmp_path: Path, fake_vm) -> None:
    module = tmp_path / "vexfs.ko"
    module.write_bytes(b"ko")

    def passing(ctx: ScenarioContext) -> None:
        ctx.check("a", True, "ok")

    def failing(ctx: ScenarioContext) -> None:
        ctx.check("a", True)
        ctx.check("b", False, "bad")

    def crashing(ctx: ScenarioContext) -> None:
        ctx.run("insmod /tmp/vexfs.ko")

    def empty(ctx: ScenarioContext) -> None:
        pass

    def buggy(ctx: ScenarioContext) -> None:
        raise ZeroDivisionError("oops in the scenario")

    fake_vm.crash_on = "insmod"
    (tmp_path / "out" / "console").mkdir(parents=True)
    scenarios = [Scenario("X1", "pass", passing), Scenario("X2", "fail", failing),
                 Scenario("X3", "crash", crashing), Scenario("X4", "empty", empty),
                 Scenario("X5", "bug", buggy)]
    run = runner_mod.run_all(scenarios, _cfg(tmp_path, module))
    status = {s.id: s.status for s in run.scenarios}
    assert status == {"X1": Status.PASSED, "X2": Status.FAILED, "X3": Status.ERROR,
                      "X4": Status.ERROR, "X5": Status.ERROR}
    by_id = {s.id: s for s in run.scenarios}
    assert "b" in by_id["X2"].message
    assert by_id["X3"].crashes[0].kind == "oops"
    assert by_id["X3"].crashes[0].log_path == "console/X3-boot3.log"
    assert "NULL pointer" in by_id["X3"].message
    assert "no criteria" in by_id["X4"].message
    assert "ZeroDivisionError" in by_id["X5"].message
    assert by_id["X1"].logs[0] == "X1.log"
    assert run.environment.accelerator == "tcg"
    assert not run.passed


def test_dmesg_problems_filter(tmp_path: Path, fake_vm) -> None:
    vm = FakeVM(name="t", log_dir=tmp_path)
    vm.answers["dmesg --level=emerg,alert,crit,err,warn"] = CommandResult(
        "dmesg", 0,
        "[    5.1] vexfs: loading out-of-tree module taints kernel.\n"
        "[    5.2] vexfs: module verification failed: signature and/or required key missing"
        " - tainting kernel\n"
        "[    5.3] hrtimer: interrupt took 23592586 ns\n"
        "[    6.0] vexfs: bad superblock magic on loop0\n", "", 0.01)
    ctx = ScenarioContext(Scenario("X", "x", lambda c: None), vm, RunOptions(), PlainObserver(),
                          io.StringIO())
    problems, ignored = ctx.dmesg_problems()
    assert problems == ["[    6.0] vexfs: bad superblock magic on loop0"]
    assert ignored == ["[    5.3] hrtimer: interrupt took 23592586 ns"]
    assert not ctx.check_dmesg_clean("No error messages in dmesg")
    assert "bad superblock magic" in ctx.criteria[-1].detail


def test_module_counters_and_loaded_parsing(tmp_path: Path, fake_vm) -> None:
    vm = FakeVM(name="t", log_dir=tmp_path)
    vm.answers["lsmod"] = CommandResult("lsmod", 0, "Module Size Used by\nvexfs 16384 0\n", "", 0)
    vm.answers["cat /proc/modules"] = CommandResult("", 0, "vexfsx 1 0 - Live 0x0\n", "", 0)
    ctx = ScenarioContext(Scenario("X", "x", lambda c: None), vm, RunOptions(), PlainObserver(),
                          io.StringIO())
    assert ctx.module_loaded() == (True, False)  # vexfsx is another module


def test_ssh_config_block_install_and_replace(tmp_path: Path) -> None:
    keys = {"client": tmp_path / "id", "known_hosts": tmp_path / "kh"}
    config = tmp_path / ".ssh" / "config"
    config.parent.mkdir()
    config.write_text("Host example\n    User bob\n")
    ssh.install_config(2222, keys, config)
    ssh.install_config(2223, keys, config)  # replaces, never duplicates
    text = config.read_text()
    assert text.count(ssh.BEGIN) == 1 and text.count(ssh.END) == 1
    assert text.startswith(ssh.BEGIN)
    assert 'exec "test %p = 2223"' in text and "2222" not in text
    assert text.endswith("Host example\n    User bob\n")
    assert ssh.remove_block(text) == "Host example\n    User bob\n"
    assert config.stat().st_mode & 0o777 == 0o600


def test_runner_retries_a_failed_boot_once(tmp_path: Path, fake_vm) -> None:
    module = tmp_path / "vexfs.ko"
    module.write_bytes(b"ko")
    (tmp_path / "out" / "console").mkdir(parents=True)

    def passing(ctx: ScenarioContext) -> None:
        ctx.check("a", True)

    fake_vm.fail_boots = 1
    run = runner_mod.run_all([Scenario("X1", "pass", passing)], _cfg(tmp_path, module))
    result = run.scenarios[0]
    assert result.status == Status.PASSED
    assert "console/X1-boot1.log" in result.logs  # the failed boot's console is kept
    assert "console/X1-boot1-retry1.log" in result.logs
    assert "retrying" in (tmp_path / "out" / "X1.log").read_text()

    fake_vm.fail_boots = 2
    run = runner_mod.run_all([Scenario("X2", "pass", passing)], _cfg(tmp_path, module))
    assert run.scenarios[0].status == Status.ERROR
    assert "during boot" in run.scenarios[0].message
