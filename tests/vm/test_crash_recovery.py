"""Real kernel crashes through the real runner: each is detected, classified,
its trace saved, and the next scenario passes on a clean VM.

Uses the TEST-ONLY module kernel/test/crashtest/ (never part of `vexfs run`):
test-only scenarios X1..X5 load it and fire one trigger each; S1 runs last
against the real vexfs.ko and must pass on the fresh VM that follows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vexfs.harness.framework import RunOptions, Scenario, ScenarioContext

pytestmark = pytest.mark.vm

# id -> (trigger, expected Crash.kind)
CASES = {
    "X1": ("panic", "panic"),
    "X2": ("bug", "bug"),
    "X3": ("warn", "warning"),
    "X4": ("hang", "hang"),  # D state: the kernel's hung-task report (timeout 10 s in the guest)
    "X5": ("freeze", "hang"),  # CPUs spin with irqs off: silence; the harness's 30 s detector
}


def _fire(trigger: str, ko: Path):
    from vexfs.crash.crashtest import trigger_script

    def fn(ctx: ScenarioContext) -> None:
        ctx.vm.put_file(ko, "/tmp/vexfs_crashtest.ko")
        r = ctx.run(trigger_script(trigger))
        # Not reached for any trigger here: the session raises as soon as the
        # detector has a complete report (a WARN too, while the command runs).
        ctx.check(f"trigger {trigger} returned", r.rc == 0, f"rc {r.rc}")

    return fn


@pytest.fixture(scope="module")
def built():
    from vexfs.vm.build import build_crashtest, build_vexfs
    from vexfs.vm.kernel import ensure_kernel

    kernel = ensure_kernel()
    return kernel, build_crashtest(kernel).path, build_vexfs(kernel)


@pytest.mark.timeout(1800)
def test_crashes_are_detected_classified_saved_and_followed_by_a_clean_vm(tmp_path: Path,
                                                                          built) -> None:
    from vexfs.crash.crashtest import TRIGGERS
    from vexfs.harness import scenarios as registry
    from vexfs.harness.runner import RunnerConfig, run_all
    from vexfs.report.events import PlainObserver

    kernel, crash_ko, vexfs_info = built
    test_scenarios = [Scenario(sid, f"crashtest {trigger}", _fire(trigger, crash_ko),
                               needs_module=False)
                      for sid, (trigger, _) in CASES.items()]
    for s in test_scenarios:
        registry.register(s)
    try:
        found = registry.discover()
        assert all(found[sid] is s for sid, s in zip(CASES, test_scenarios))
        chosen = test_scenarios + [found["S1"]]  # the crashes first, then S1
        out = tmp_path / "run"
        cfg = RunnerConfig(kernel=kernel, out_dir=out, observer=PlainObserver(),
                           options=RunOptions(module_path=vexfs_info.path), module=vexfs_info)
        run = run_all(chosen, cfg)
    finally:
        for s in test_scenarios:
            registry.unregister(s.id)

    by_id = {s.id: s for s in run.scenarios}
    assert [s.id for s in run.scenarios] == list(CASES) + ["S1"]
    report = json.loads((out / "report.json").read_text())
    saved = {s["id"]: s for s in report["scenarios"]}
    for sid, (trigger, kind) in CASES.items():
        result = by_id[sid]
        assert result.status.value == "error", (sid, result.status, result.message)
        assert result.crashes, f"{sid}: no crash recorded ({result.message})"
        crash = result.crashes[0]
        assert crash.kind == kind, (sid, crash.kind, crash.title)
        expected = TRIGGERS[trigger].title
        if expected and kind != "hang":
            pattern = re.escape(expected).replace("LINE", r"\d+")
            assert re.fullmatch(pattern, crash.title), (sid, crash.title, expected)
        if trigger == "hang":
            assert "crashtest_hang" in crash.title, crash.title
        if trigger == "freeze":
            assert crash.title.startswith("hang: no progress for 30 s"), crash.title
        # the trace is in the report, and the full console log of that boot is saved
        assert crash.trace.strip()
        assert saved[sid]["crashes"][0]["trace"] == crash.trace
        log = out / crash.log_path
        assert log.is_file() and log.stat().st_size > 0, crash.log_path
        if kind != "hang" or trigger == "hang":
            first_line = next(l for l in crash.trace.splitlines() if l.strip())
            assert first_line.strip() in log.read_text()
    # A WARN leaves the kernel running, but the scenario still ends as an error.
    assert "WARNING" in by_id["X3"].message
    assert "freeze" in by_id["X5"].crashes[0].title and "\n" not in by_id["X5"].crashes[0].title
    # the next scenario after all of that passes on a fresh VM
    s1 = by_id["S1"]
    assert s1.status.value == "passed", [(c.name, c.passed, c.detail) for c in s1.criteria]
    assert not s1.crashes
    junit = (out / "junit.xml").read_text()
    assert junit.count("<error") >= len(CASES)
