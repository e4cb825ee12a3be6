"""R1's report logic without a VM: the fuzzers' real outputs (recorded in
tests/host/data/robust/ from the VM tests' runs) turned into figures and
criteria, failures detected, and the figures in report.json, report.html,
junit.xml and the terminal summary; the runner's own_vms path (a crash
recorded as a failure, a broken stage not ending the run)."""

from __future__ import annotations

import copy
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vexfs.fuzz.leaks import verdicts
from vexfs.harness import runner
from vexfs.harness.framework import RunOptions, Scenario
from vexfs.harness.scenarios import r1_robustness as r1
from vexfs.report.events import PlainObserver
from vexfs.report.html import render_html
from vexfs.report.model import Crash, Criterion, Environment, Run, ScenarioResult, Status
from vexfs.report.robustness import stage_rows, summary_lines
from vexfs.report.writers import run_to_json, run_to_junit, write_run

DATA = Path(__file__).parent / "data" / "robust"


def _load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


# -- figures and criteria from the fuzzers' real outputs ------------------------

def test_image_figures_and_criteria_from_a_real_1000_case_summary() -> None:
    fig = r1.image_figures(_load("image_summary.json"), 1000)
    assert fig["cases_run"] == 1000 and fig["mounted"] == 968
    assert fig["refused"] == {"EINVAL": 2, "EUCLEAN": 10, "EBADMSG": 20}
    assert fig["refused_total"] == 32 and fig["went_read_only"] == 544
    assert fig["crashes"] == fig["hangs"] == fig["failures"] == 0
    checks = r1.image_criteria(fig)
    assert all(ok for _, ok, _ in checks), checks
    names = [n for n, _, _ in checks]
    assert "1000 corrupt-image cases ran" in names
    assert "0 kernel crashes or hangs in 1000 corrupt-image cases" in names
    assert any("refused at mount" in n for n in names)  # judged at >= 200 cases


def test_image_crash_finding_fails_the_crash_criterion_with_its_reproducer() -> None:
    summary = _load("image_summary.json")
    summary["stats"]["cases_run"] = 999  # the crashing case is counted by run(), not here
    summary["findings"] = [{"kind": "crash", "case": 412, "title": "WARNING in vexfs_iget",
                            "detail": "WARNING: CPU: 0 PID: 1 at fs/vexfs/inode.c:88",
                            "reproducer": "/r/R1/image/findings/case_000412_crash",
                            "shrunk_bytes": 1, "mutated_bytes": 7}]
    fig = r1.image_figures(summary, 1000)
    assert fig["crashes"] == 1 and fig["failures"] == 1
    checks = {n: (ok, d) for n, ok, d in r1.image_criteria(fig)}
    ok, detail = checks["0 kernel crashes or hangs in 999 corrupt-image cases"]
    assert not ok and "case 412" in detail and "case_000412_crash" in detail
    assert not checks["1000 corrupt-image cases ran"][0]  # 999 < 1000


def test_image_undocumented_mount_errno_and_integrity_findings_fail() -> None:
    summary = _load("image_summary.json")
    summary["stats"]["mount_errnos"]["ENOENT"] = 1
    summary["findings"] = [{"kind": "umount-failed", "case": 3, "title": "umount failed: EBUSY",
                            "reproducer": "x"}]
    checks = {n.split(" (")[0]: ok for n, ok, _ in r1.image_criteria(r1.image_figures(summary, 1000))}
    assert not checks["Every refused mount returned a documented errno"]
    assert not checks["No integrity finding: bad-checksum superblock mounted, umount failed, "
                      "fsck raised, or a consistent image left inconsistent"]


def test_small_image_runs_do_not_demand_a_refusal() -> None:
    summary = _load("image_summary.json")
    summary["stats"].update(cases_run=30, mounted=30, mount_errnos={"mounted": 30})
    checks = r1.image_criteria(r1.image_figures(summary, 30))
    assert all(ok for _, ok, _ in checks)
    assert not any("refused at mount" in n for n, _, _ in checks)


def test_ioctl_figures_and_criteria_from_a_real_100k_result() -> None:
    fig = r1.ioctl_figures(_load("ioctl_result.json"))
    assert fig["calls"] == 100000 and fig["errno_violations"] == 0 and fig["crashes"] == 0
    assert fig["errno"]["EINVAL"] == 23134 and fig["errno"]["EFAULT"] == 11175
    assert list(fig["errno"])[0] == "EINVAL"  # most frequent first
    checks = r1.ioctl_criteria(fig)
    assert len(checks) == 5 and all(ok for _, ok, _ in checks), checks


def test_ioctl_violation_crash_and_leak_fail() -> None:
    res = _load("ioctl_result.json")
    bad = copy.deepcopy(res)
    bad["summary"]["bad"] = 2
    bad["driver_rc"] = 1
    bad["bad_errno"] = ["BADERRNO errno not documented fd=0 cmd=0xc0185601 e=95"]
    checks = {n: (ok, d) for n, ok, d in r1.ioctl_criteria(r1.ioctl_figures(bad))}
    ok, detail = checks["Every failing call's errno documented and as the oracle expects "
                        "(0 violations)"]
    assert not ok and "2 violations" in detail and "e=95" in detail
    crashed = copy.deepcopy(res)
    crashed["crash"] = {"kind": "oops", "title": "BUG: unable to handle page fault in vexfs_ioctl",
                        "trace": "...", "console": "/x.log"}
    checks = {n: (ok, d) for n, ok, d in r1.ioctl_criteria(r1.ioctl_figures(crashed))}
    assert checks["0 kernel crashes or hangs in 100000 ioctl calls"] == (
        False, "oops: BUG: unable to handle page fault in vexfs_ioctl")
    leaky = copy.deepcopy(res)
    leaky["counters_after_umount"]["inodes"] = 3
    assert not [ok for n, ok, _ in r1.ioctl_criteria(r1.ioctl_figures(leaky))
                if n.startswith("After the fuzz")][0]


def test_leak_verdicts_on_a_real_run_and_a_leaking_one() -> None:
    res = _load("leaks.json")
    checks = verdicts(res, 20)
    assert len(checks) == 10 and all(ok for _, ok, _ in checks), checks
    leaking = copy.deepcopy(res)
    leaking["results"]["cnt_7"] = "1,0,2,0"
    leaking["results"]["slab_caches_left"] = "1"
    failed = [n for n, ok, _ in verdicts(leaking, 20) if not ok]
    assert failed == ["Module counters (inodes,mounts,buffers,extent_maps) 0 after every umount",
                      "rmmod at the end: no vexfs slab cache left, no slub_debug report"]
    # fewer than 10 cycles: the memory trend is not judged, the rest is
    assert not any(n.startswith("Memory") for n, _, _ in verdicts(res, 5))


# -- the report files ---------------------------------------------------------

def _r1_result(crash: bool = False) -> ScenarioResult:
    img = r1.image_figures(_load("image_summary.json"), 1000)
    ioc = r1.ioctl_figures(_load("ioctl_result.json"))
    criteria = [Criterion(f"Corrupt images: {n}", ok, d) for n, ok, d in r1.image_criteria(img)]
    criteria += [Criterion(f"ioctl fuzz: {n}", ok, d) for n, ok, d in r1.ioctl_criteria(ioc)]
    crashes = []
    if crash:
        img["crashes"], img["failures"] = 1, 1
        img["findings"] = [{"case": 77, "kind": "crash", "title": "WARNING in vexfs_readdir",
                            "reproducer": "R1/image/findings/case_000077_crash"}]
        img["findings_by_kind"] = {"crash": 1}
        criteria = [Criterion(c.name, False if "0 kernel crashes" in c.name and "Corrupt" in c.name
                              else c.passed, c.detail) for c in criteria]
        crashes = [Crash("warning", "corrupt image case 77: WARNING in vexfs_readdir",
                         "WARNING: CPU: 1 PID: 9 at fs/vexfs/dir.c:40", "R1/image/console/a.log")]
    metrics = {"plan": {"fuzz_cases": 1000, "ioctl_calls": 100000, "leak_cycles": 0},
               "image_fuzz": img, "ioctl_fuzz": ioc, "leaks": {"skipped": "--leak-cycles 0"}}
    return ScenarioResult("R1", "Robustness fuzzing",
                          Status.FAILED if crash else Status.PASSED, 123.4, criteria, metrics,
                          crashes, ["R1.log"], "")


def _run(scenario: ScenarioResult) -> Run:
    return Run("20261125-140000", "2026-11-25T14:00:00+00:00", 130.0,
               Environment("6.1.0-56-amd64", "tcg", "host"), [scenario])


def test_stage_rows_and_terminal_lines_say_cases_tried_and_failures_found() -> None:
    rows = stage_rows(_run(_r1_result()))
    assert [(r.key, r.state, r.failures, r.passed) for r in rows] == [
        ("image_fuzz", "ran", 0, True), ("ioctl_fuzz", "ran", 0, True),
        ("leaks", "skipped", None, None)]
    assert rows[0].tried == "1000 of 1000 cases (seed 20261125)"
    assert rows[1].tried.startswith("100000 of 100000 calls")
    lines = summary_lines(_run(_r1_result()))
    assert "Corrupt-image fuzz: 1000 of 1000 cases (seed 20261125); failures found: 0" in lines
    assert any(ln.startswith("ioctl fuzz: 100000 of 100000 calls") and ln.endswith(
        "failures found: 0") for ln in lines)
    assert "Leaks and lifetime: skipped (--leak-cycles 0)" in lines
    crashed = stage_rows(_run(_r1_result(crash=True)))[0]
    assert crashed.failures == 1 and crashed.passed is False
    assert any("case 77" in f and "case_000077_crash" in f for f in crashed.findings)


def test_no_robustness_section_without_r1() -> None:
    s1 = ScenarioResult("S1", "Basic", Status.PASSED, 9.0, [Criterion("x", True)], {"load_s": 0.1})
    assert stage_rows(_run(s1)) == [] and summary_lines(_run(s1)) == []
    assert "<h2>Robustness</h2>" not in render_html(_run(s1))


def test_html_shows_the_robustness_table_and_the_crash(tmp_path: Path) -> None:
    page = render_html(_run(_r1_result(crash=True)), tmp_path)
    section = page[page.index("<h2>Robustness</h2>"):page.index("<h2>Plots</h2>")]
    assert "1000 of 1000 cases (seed 20261125)" in section
    assert "Failures found" in section and '<span class="bad">1</span>' in section
    assert "case 77: crash: WARNING in vexfs_readdir -&gt; R1/image/findings/case_000077_crash" \
        in section
    assert "EBADMSG 20" in section and "went read-only 544" in section
    assert "skipped (--leak-cycles 0)" in section
    assert "✘ failed" in section and "✔ passed" in section  # images failed, ioctl passed
    assert "1 kernel crash/hang report" in page  # the run banner counts R1's crash


def test_json_and_junit_carry_the_figures_and_criteria(tmp_path: Path) -> None:
    run = _run(_r1_result(crash=True))
    data = json.loads(run_to_json(run))
    m = data["scenarios"][0]["metrics"]
    assert m["image_fuzz"]["cases_run"] == 1000 and m["image_fuzz"]["crashes"] == 1
    assert m["ioctl_fuzz"]["calls"] == 100000 and m["ioctl_fuzz"]["errno_violations"] == 0
    assert Run.from_dict(data).scenarios[0].metrics["image_fuzz"]["refused"]["EBADMSG"] == 20
    root = ET.fromstring(run_to_junit(run))
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["robustness.image_fuzz.tried"] == "1000 of 1000 cases (seed 20261125)"
    assert props["robustness.image_fuzz.failures"] == "1"
    assert props["robustness.ioctl_fuzz.failures"] == "0"
    assert props["robustness.leaks.tried"] == "skipped (--leak-cycles 0)"
    case = root.find(".//testcase")
    failure = case.find("failure")
    assert failure is not None and "0 kernel crashes or hangs in 1000 corrupt-image cases" in \
        failure.get("message")
    assert "[PASS] ioctl fuzz: 100000 hostile ioctl calls ran" in case.find("system-out").text
    written = write_run(run, tmp_path)
    assert set(written) == {"json", "junit", "html"}


# -- the runner's own_vms path and R1's stage isolation ----------------------------

class _Cfg:
    """The RunnerConfig fields the own_vms path uses (no kernel, no VM)."""

    def __init__(self, out: Path, **opts) -> None:
        self.out_dir = out
        self.options = RunOptions(module_path=Path("/nonexistent/vexfs.ko"), **opts)
        self.observer = PlainObserver()


def test_own_vms_scenario_crash_is_a_failure_with_its_trace(tmp_path: Path) -> None:
    def fn(ctx) -> None:
        assert ctx.vm is None and ctx.work_dir == tmp_path / "X9"
        ctx.crash(Crash("oops", "BUG: kernel NULL pointer dereference", "RIP: vexfs_x+0x1",
                        "X9/console/a.log"))
        ctx.check("0 kernel crashes", False, "1 crash")
        ctx.logs.append("X9/summary.json")

    result = runner.run_scenario(Scenario("X9", "own", fn, own_vms=True), _Cfg(tmp_path), 1)
    assert result.status == Status.FAILED and "0 kernel crashes" in result.message
    assert [c.title for c in result.crashes] == ["BUG: kernel NULL pointer dereference"]
    assert result.crashes[0].trace == "RIP: vexfs_x+0x1"
    assert result.logs == ["X9.log", "X9/summary.json"]
    assert "[CRASH] oops: BUG: kernel NULL pointer dereference" in (tmp_path / "X9.log").read_text()


def test_own_vms_harness_exception_is_an_error_not_a_crash_of_the_run(tmp_path: Path) -> None:
    def fn(ctx) -> None:
        raise RuntimeError("fuzzer exploded")

    result = runner.run_scenario(Scenario("X8", "own", fn, own_vms=True), _Cfg(tmp_path), 1)
    assert result.status == Status.ERROR and "fuzzer exploded" in result.message
    assert "HARNESS ERROR" in (tmp_path / "X8.log").read_text()


def test_r1_broken_stage_fails_its_criterion_and_the_next_stage_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vexfs.fuzz.imagefuzz as imagefuzz
    import vexfs.fuzz.ioctlfuzz as ioctlfuzz

    class BrokenFuzzer:
        def __init__(self, cfg, echo=None, console=None) -> None:
            assert cfg.cases == 40 and cfg.seed == 5 and cfg.out == tmp_path / "R1" / "image"

        def run(self) -> dict:
            raise RuntimeError("fz_image stopped after case 12 of 0..39 without a crash")

    calls = {}

    def fake_ioctl(calls_n, seed, threads, module, out, echo=None):
        calls.update(n=calls_n, seed=seed, out=out)
        res = _load("ioctl_result.json")
        res.update(calls_requested=calls_n, seed=seed)
        res["summary"]["calls"] = calls_n
        return res

    monkeypatch.setattr(imagefuzz, "ImageFuzzer", BrokenFuzzer)
    monkeypatch.setattr(ioctlfuzz, "run_ioctl_fuzz", fake_ioctl)
    cfg = _Cfg(tmp_path, fuzz_cases=40, ioctl_calls=3000, leak_cycles=0, fuzz_seed=5)
    result = runner.run_scenario(r1.SCENARIO, cfg, 1)
    assert calls == {"n": 3000, "seed": 5, "out": tmp_path / "R1" / "ioctl"}
    assert result.status == Status.FAILED
    by_name = {c.name: c for c in result.criteria}
    broken = by_name["Corrupt images: stage ran to completion"]
    assert not broken.passed and "without a crash" in broken.detail
    ioctl = [c for c in result.criteria if c.name.startswith("ioctl fuzz: ")]
    assert len(ioctl) == 5 and all(c.passed for c in ioctl)
    assert result.metrics["leaks"] == {"skipped": "--leak-cycles 0"}
    assert "image_fuzz" not in result.metrics and result.metrics["ioctl_fuzz"]["calls"] == 3000
    rows = stage_rows(_run(result))
    assert (rows[0].state, rows[0].failures, rows[0].passed) == ("not run", 1, False)
    page = render_html(_run(result), tmp_path)
    assert "✘ did not run" in page and "without a crash" in page


def test_r1_leak_stage_on_a_recorded_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The leak stage's glue (figures, criteria, crash records) on a real
    20-cycle run_leaks() result, with one crash added to see it recorded."""
    import vexfs.fuzz.leaks as leaks

    seen = {}

    def fake_run_leaks(out, module, cycles):
        seen.update(out=out, cycles=cycles)
        (out / "console").mkdir(parents=True)
        (out / "console" / "leaks-1.log").write_text("console\n")
        res = _load("leaks.json")
        res["crashes"] = [{"kind": "warning", "title": "WARNING in vexfs_evict_inode",
                           "trace": "WARNING: CPU: 0 PID: 5 at fs/vexfs/inode.c:300"}]
        return res

    monkeypatch.setattr(leaks, "run_leaks", fake_run_leaks)
    cfg = _Cfg(tmp_path, fuzz_cases=0, ioctl_calls=0, leak_cycles=20)
    result = runner.run_scenario(r1.SCENARIO, cfg, 1)
    assert seen == {"out": tmp_path / "R1" / "leaks", "cycles": 20}
    lk = result.metrics["leaks"]
    assert lk["cycles_completed"] == 20 and lk["counters_zero_every_cycle"] is True
    assert lk["mem_judged"] is True and lk["mem_growth_kb"] == 56 and lk["crashes"] == 1
    assert result.metrics["image_fuzz"] == {"skipped": "--fuzz-cases 0"}
    leak_criteria = [c for c in result.criteria if c.name.startswith("Leaks: ")]
    assert len(leak_criteria) == 10 == len(result.criteria)
    assert [c.name for c in leak_criteria if not c.passed] == [
        "Leaks: No kernel crash or hang in the leak/lifetime run"]
    assert result.status == Status.FAILED
    (crash,) = result.crashes
    assert crash.title == "leak run: WARNING in vexfs_evict_inode"
    assert crash.log_path == "R1/leaks/console/leaks-1.log" and "inode.c:300" in crash.trace
    row = stage_rows(_run(result))[2]
    assert (row.tried, row.failures, row.passed) == (
        "20 of 20 mount cycles (slub_debug=FZPU)", 1, False)


def test_compare_calls_a_new_fuzz_crash_a_regression() -> None:
    from vexfs.report.compare import compare_runs

    old, new = _run(_r1_result()), _run(_r1_result(crash=True))
    new.run_id = "later"
    regressions = {c.what.split(":")[0] for c in compare_runs(old, new).regressions}
    assert "R1 image_fuzz.crashes" in regressions and "R1 image_fuzz.failures" in regressions
    same = compare_runs(old, _run(_r1_result()))
    assert not [c for c in same.regressions if "fuzz" in c.what]


def test_ioctl_coverage_and_kill_watchdog_criteria() -> None:
    """Issue 14 fields: per-ioctl/per-context coverage and the SIGKILL
    watchdog become criteria when the driver reports them; a slow reap, or a
    hostile context never exercised, fails."""
    res = copy.deepcopy(_load("ioctl_result.json"))
    res["summary"].update(
        per_ioctl={"CREATE": {"calls": 10, "ok": 1, "errno": {"1": 3, "30": 2}},
                   "other": {"calls": 5, "ok": 0, "errno": {"25": 5}}},
        contexts={"read_only_mount": 30, "immutable": -1, "append_only": -1,
                  "forged_header": 40, "unprivileged_child": 25000},
        killwatch={"rounds": 20, "slow": 0, "max_reap_ms": 640.0,
                   "baseline_max_reap_ms": 310.0, "limit_ms": 1310.0})
    fig = r1.ioctl_figures(res)
    assert fig["per_ioctl"]["CREATE"]["errno"] == {"EPERM": 3, "EROFS": 2}
    checks = {n: (ok, d) for n, ok, d in r1.ioctl_criteria(fig)}
    kill = [k for k in checks if k.startswith("Every SIGKILLed call")]
    ctxs = [k for k in checks if k.startswith("The hostile contexts")]
    assert len(kill) == 1 and checks[kill[0]][0], checks[kill[0]]
    assert len(ctxs) == 1 and checks[ctxs[0]][0], checks[ctxs[0]]
    assert "immutable not supported" in checks[ctxs[0]][1]
    slow = copy.deepcopy(res)
    slow["summary"]["killwatch"].update(slow=1, max_reap_ms=1400.0)
    slow["summary"]["contexts"]["read_only_mount"] = 0
    checks = {n: (ok, d) for n, ok, d in r1.ioctl_criteria(r1.ioctl_figures(slow))}
    assert not checks[kill[0]][0] and "1 slow of 20" in checks[kill[0]][1]
    assert not checks[ctxs[0]][0] and "missing: ['read_only_mount']" in checks[ctxs[0]][1]
    # an old result without the fields keeps the old criteria only
    assert len(r1.ioctl_criteria(r1.ioctl_figures(_load("ioctl_result.json")))) == 5


def test_image_structure_coverage_criterion() -> None:
    from vexfs.fuzz.mutate import Mutator

    summary = copy.deepcopy(_load("image_summary.json"))
    summary["stats"]["structures"] = {f"struct:{k}": {"cases": 30, "mounted": 20}
                                      for k in Mutator.STRUCT_KINDS}
    summary["stats"]["structures"]["inode"] = {"cases": 300, "mounted": 250}
    fig = r1.image_figures(summary, 1000)
    checks = {n: (ok, d) for n, ok, d in r1.image_criteria(fig)}
    name = [k for k in checks if k.startswith("Every structure-aware case")]
    assert len(name) == 1 and checks[name[0]][0], checks
    summary["stats"]["structures"]["struct:links_low"]["mounted"] = 0
    checks = {n: (ok, d) for n, ok, d in r1.image_criteria(r1.image_figures(summary, 1000))}
    assert not checks[name[0]][0] and "struct:links_low" in checks[name[0]][1]
