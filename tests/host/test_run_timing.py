"""The run's time goal and phases (issue 17): C1 starts only after the
others and is timed apart; the goal is a run-level criterion the verdict
includes, so a run slower than the goal never says PASSED; show and
compare print the times."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from vexfs.harness.cli import TIME_GOAL_IDS, default_time_goal
from vexfs.harness.framework import RunOptions, Scenario
from vexfs.harness.runner import RunnerConfig, TimeGoal, _id_range, run_all
from vexfs.report.events import PlainObserver
from vexfs.report.model import Run
from vexfs.report.timing import time_lines
from vexfs.vm import kernel as k


def _scenario(sid: str, seconds: float, log: list[tuple[str, str, float]],
              lock: threading.Lock) -> Scenario:
    def fn(ctx) -> None:
        with lock:
            log.append(("start", sid, time.monotonic()))
        time.sleep(seconds)
        with lock:
            log.append(("end", sid, time.monotonic()))
        ctx.check(f"{sid} ran", True, "slept")

    return Scenario(id=sid, name=f"sleep {sid}", fn=fn, needs_module=False, own_vms=True)


def _cfg(tmp_path: Path, **kw) -> RunnerConfig:
    return RunnerConfig(kernel=k.GuestKernel(version="6.1.0-57-amd64", root=tmp_path),
                        out_dir=tmp_path / "run", options=RunOptions(), observer=PlainObserver(),
                        jobs=2, write_report=False, **kw)


def test_run_last_starts_after_all_others_and_is_timed_apart(tmp_path: Path) -> None:
    log: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    scenarios = [_scenario("S1", 0.3, log, lock), _scenario("C1", 0.2, log, lock),
                 _scenario("S2", 0.1, log, lock), _scenario("R1", 0.1, log, lock)]
    run = run_all(scenarios, _cfg(tmp_path, run_last=("C1",),
                                  time_goal=TimeGoal(("S1", "S2", "R1"), 30.0)))
    ends = {sid: t for what, sid, t in log if what == "end"}
    c1_start = next(t for what, sid, t in log if what == "start" and sid == "C1")
    assert all(c1_start >= ends[sid] for sid in ("S1", "S2", "R1"))
    assert [s.id for s in run.scenarios] == ["S1", "C1", "S2", "R1"]  # report order kept
    timing = run.environment.extra["timing"]
    assert [p["scenarios"] for p in timing] == [["S1", "S2", "R1"], ["C1"]]
    assert timing[0]["wall_s"] >= 0.3 and timing[1]["wall_s"] >= 0.2
    assert timing[1]["started_s"] >= timing[0]["done_s"]
    assert len(run.goals) == 1 and run.goals[0].passed and run.passed
    assert run.goals[0].name == "S1-S2+R1 wall time <= 30 s"
    text = "\n".join(time_lines(run))
    assert "C1: " in text and "S1-S2+R1: " in text and "time goal S1-S2+R1 wall time" in text
    assert "met" in text


def test_a_missed_time_goal_fails_the_run(tmp_path: Path) -> None:
    log: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    scenarios = [_scenario("S1", 0.3, log, lock), _scenario("S2", 0.05, log, lock)]
    run = run_all(scenarios, _cfg(tmp_path, time_goal=TimeGoal(("S1", "S2"), 0.1)))
    assert all(s.passed for s in run.scenarios)
    assert not run.goals[0].passed and run.verdict == "FAILED" and not run.passed
    assert run.goals[0].detail.startswith("MISSED: S1-S2 done ")
    # the verdict survives the JSON round trip
    again = Run.from_dict(json.loads(json.dumps(run.to_dict(), default=str)))
    assert again.verdict == "FAILED" and not again.goals[0].passed
    assert any("MISSED" in line for line in time_lines(again))


def test_goal_not_measurable_when_a_scenario_is_missing(tmp_path: Path) -> None:
    log: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    run = run_all([_scenario("S1", 0.01, log, lock)],
                  _cfg(tmp_path, time_goal=TimeGoal(("S1", "S2"), 100.0)))
    assert not run.goals[0].passed and "not measurable" in run.goals[0].detail


def test_default_goal_only_for_the_full_run_at_default_counts() -> None:
    from vexfs.harness import scenarios as registry

    full = registry.select(list(TIME_GOAL_IDS))
    goal = default_time_goal(full, 1000, 100_000, 20, "10000,100000", False)
    assert goal is not None and goal.limit_s == 360 and goal.label == "S1-S6+R1"
    assert default_time_goal(full, 10, 100_000, 20, "10000,100000", False) is None
    assert default_time_goal(full, 1000, 100_000, 20, "10000", False) is None
    assert default_time_goal(registry.select(["S1", "S2"]), 1000, 100_000, 20,
                             "10000,100000", False) is None


@pytest.mark.parametrize("ids,label", [(("S1", "S2", "S3"), "S1-S3"), (("S1", "S3"), "S1+S3"),
                                       (("S1", "S2", "R1"), "S1-S2+R1"), (("X",), "X")])
def test_id_range(ids: tuple[str, ...], label: str) -> None:
    assert _id_range(ids) == label


def test_show_and_compare_print_the_times(tmp_path: Path) -> None:
    from vexfs.report.cli import report
    from vexfs.report.writers import write_run

    log: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    runs = []
    for name, limit in (("old", 100.0), ("new", 0.01)):
        cfg = _cfg(tmp_path / name, run_last=("C1",), time_goal=TimeGoal(("S1",), limit))
        run = run_all([_scenario("S1", 0.05, log, lock), _scenario("C1", 0.05, log, lock)], cfg)
        run.run_id = name
        write_run(run, cfg.out_dir, html=False)
        runs.append(cfg.out_dir)
    shown = CliRunner().invoke(report, ["show", str(runs[1])])
    assert shown.exit_code == 1, shown.output  # the missed goal fails the run
    assert "time goal S1 wall time <= 0 s: MISSED" in shown.output
    assert "C1: " in shown.output
    compared = CliRunner().invoke(report, ["compare", str(runs[0]), str(runs[1])])
    assert "goal S1 wall time" in compared.output and "C1 wall" in compared.output


def test_matrix_shows_the_longest_fpu_section_per_kernel(tmp_path: Path) -> None:
    """Issue 17: under PREEMPT_RT the kernel_fpu_begin() sections must stay
    short; S5's fpu_max_ns reaches the matrix row (JSON, HTML, CLI text)."""
    from vexfs.harness import matrix as mx
    from vexfs.report.sample import sample_run

    run = sample_run("rt", seed=3)
    run.environment.kernel_version = "6.12.57+deb13-rt-amd64"
    s5 = next(s for s in run.scenarios if s.id == "S5")
    s5.metrics["fpu_max_ns"] = 412_345
    s5.metrics["fpu_sections"] = 1204
    plain = sample_run("plain", seed=4)
    for s in plain.scenarios:
        s.metrics.pop("fpu_max_ns", None)
    m = mx.Matrix(matrix_id="m", started_at="2026-12-02T00:00:00+00:00",
                  scenarios=[s.id for s in run.scenarios])
    m.rows.append(mx.row_from_run("6.12-rt", run, run.environment.kernel_version))
    m.rows.append(mx.row_from_run("6.1", plain, plain.environment.kernel_version))
    mx.write_matrix(m, tmp_path)
    data = json.loads((tmp_path / "matrix.json").read_text())
    assert data["rows"][0]["fpu_max_ns"] == 412_345 and data["rows"][0]["fpu_sections"] == 1204
    assert data["rows"][1]["fpu_max_ns"] is None
    assert mx.fpu_text(m.rows[0]) == "longest FPU section 412.3 us (1,204 sections)"
    page = (tmp_path / "matrix.html").read_text()
    assert "longest FPU section 412.3 us (1,204 sections)" in page


def test_junit_has_the_goal_as_a_test_case(tmp_path: Path) -> None:
    from vexfs.report.writers import run_to_junit

    log: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    run = run_all([_scenario("S1", 0.05, log, lock)],
                  _cfg(tmp_path, time_goal=TimeGoal(("S1",), 0.001)))
    xml = run_to_junit(run)
    assert 'classname="vexfs.goals"' in xml and 'name="S1 wall time &lt;= 0 s"' in xml
    assert 'type="goal"' in xml
