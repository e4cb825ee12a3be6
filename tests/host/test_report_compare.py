"""`vexfs report compare|show|html` on saved runs (tests/host/data/runs/)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from vexfs.report.cli import report
from vexfs.report.compare import compare_runs, find_runs, load_run, normalize_title
from vexfs.report.metrics import spec_for
from vexfs.report.model import Criterion, Environment, Run, ScenarioResult, Status

RUNS = Path(__file__).parent / "data" / "runs"


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(report, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _run(metrics: dict, status: Status = Status.PASSED, run_id: str = "r", crit_ok: bool = True) -> Run:
    return Run(run_id=run_id, started_at="", duration_s=1.0, environment=Environment("6.1", "tcg", "h"),
               scenarios=[ScenarioResult("S2", "stress", status, 1.0, metrics=metrics,
                                         criteria=[Criterion("cycles", crit_ok)])])


def test_regression_exits_1() -> None:
    code, out = _cli("compare", str(RUNS / "base"), str(RUNS / "regressed"))
    assert code == 1, out
    assert "S1 Basic kernel module lifecycle: passed → failed" in out
    assert "✔→✘ module unloads cleanly" in out
    assert "S2 load_s:" in out and "worse" in out and "×3." in out
    assert "new bug: kernel BUG at fs/vexfs/alloc.c:97!" in out
    assert "REGRESSION" in out


def test_improvement_exits_0() -> None:
    code, out = _cli("compare", str(RUNS / "base"), str(RUNS / "improved"))
    assert code == 0, out
    assert "S4 Filesystem registration and mount: failed → passed" in out
    assert "S6 Error handling and recovery: error → passed" in out
    assert "bench.search_l2_ms.vexfs: 4.1 ms → 2 ms (×0.49, better)" in out
    assert "gone: oops: BUG: kernel NULL pointer dereference" in out
    assert "no regression" in out


def test_noise_exits_0_and_reports_nothing() -> None:
    code, out = _cli("compare", str(RUNS / "base"), str(RUNS / "noise"))
    assert code == 0, out
    assert "Regressions" not in out and "Improvements" not in out
    assert "within noise" in out


def test_compare_json_and_report_json_path() -> None:
    code, out = _cli("compare", "--json", str(RUNS / "base" / "report.json"), str(RUNS / "regressed"))
    assert code == 1
    data = json.loads(out)
    assert data["regressed"] is True
    kinds = {c["kind"] for c in data["changes"] if c["regression"]}
    assert kinds == {"scenario", "criterion", "metric", "crash"}
    load = next(c for c in data["changes"] if "load_s" in c["what"])
    assert load["ratio"] == pytest.approx(3.5, rel=0.1)


def test_default_is_two_newest(tmp_path: Path) -> None:
    for name in ("improved", "base", "regressed", "noise"):
        shutil.copytree(RUNS / name, tmp_path / name)
    (tmp_path / "latest").symlink_to("regressed")
    (tmp_path / "junk").mkdir()  # not a run: ignored
    assert [p.name for p in find_runs(tmp_path)] == ["base", "noise", "regressed", "improved"]
    # regressed (Nov 22) -> improved (Nov 23): S1/S3 recover, S2 load times fall.
    code, out = _cli("compare", "--results", str(tmp_path))
    assert code == 0, out
    assert "20261122-090000-regressed" in out and "20261123-090000-improved" in out


def test_compare_usage_errors(tmp_path: Path) -> None:
    code, out = _cli("compare", "--results", str(tmp_path))
    assert code == 2 and "need two runs" in out
    code, out = _cli("compare", str(RUNS / "base"))
    assert code == 2
    code, out = _cli("compare", str(RUNS / "base"), str(tmp_path))
    assert code == 2 and "no report.json" in out


def test_spec_limit_crossing_is_a_regression_even_if_small() -> None:
    # 1.99 s -> 2.01 s is 1% (noise), but it crosses the spec's unload < 2 s.
    cmp = compare_runs(_run({"unload_s": [1.99]}), _run({"unload_s": [0.1, 2.01, 0.1]}))
    assert cmp.regressed
    assert "over the spec limit 2 s" in cmp.regressions[0].what


def test_metric_rules() -> None:
    # 20 ms -> 40 ms: +100% but only 20 ms: under the 25 ms timing floor -> noise.
    assert not compare_runs(_run({"load_s": 0.020}), _run({"load_s": 0.040})).changes
    # 100 ms -> 150 ms: +50% and 50 ms: a regression.
    assert compare_runs(_run({"load_s": 0.100}), _run({"load_s": 0.150})).regressed
    # Lists are compared by median: one outlier does not move it.
    assert not compare_runs(_run({"load_s": [0.1] * 19 + [0.1]}),
                            _run({"load_s": [0.1] * 19 + [0.9]})).changes
    # Higher is better for rates; numpy reference figures never regress VexFS.
    assert compare_runs(_run({"bench": {"q_per_s": {"vexfs": 1000}}}),
                        _run({"bench": {"q_per_s": {"vexfs": 500}}})).regressed
    assert not compare_runs(_run({"bench": {"q_ms": {"numpy": 1.0}}}),
                            _run({"bench": {"q_ms": {"numpy": 9.0}}})).regressed
    # Memory growth derived from per-cycle MemAvailable: 4 MiB lost is a regression.
    assert compare_runs(_run({"mem_available_kb": [1000000, 999900]}),
                        _run({"mem_available_kb": [1000000, 995900]})).regressed
    assert spec_for("bench.search_l2_ms.vexfs").unit == "ms"
    assert spec_for("bench.search_batch_qps_10k.vexfs").better == "higher"
    assert spec_for("bench.search_batch_qps_10k.numpy").better == ""
    # Only the innermost name decides: an error inside "vector_accuracy" is not an accuracy.
    assert spec_for("vector_accuracy.random_l2.max_rel_err").better == ""
    assert spec_for("vector_accuracy.recall").better == "higher"


def test_fuzzer_throughput_and_stage_times_never_regress() -> None:
    # How fast the fuzzers got through their cases depends on the host's
    # load and the counts asked for; what they found is what may regress.
    fast = {"image_fuzz": {"cases_per_s_vm": 9.3, "wall_s": 120.0, "crashes": 0},
            "ioctl_fuzz": {"calls_per_s": 7300.0, "fuzz_s": 14.0}, "leaks_s": 190.0}
    slow = {"image_fuzz": {"cases_per_s_vm": 3.1, "wall_s": 400.0, "crashes": 0},
            "ioctl_fuzz": {"calls_per_s": 1400.0, "fuzz_s": 70.0}, "leaks_s": 600.0}
    assert not compare_runs(_run(fast), _run(slow)).regressed
    crashed = {"image_fuzz": {"cases_per_s_vm": 9.3, "wall_s": 120.0, "crashes": 1}}
    assert compare_runs(_run(fast), _run(crashed)).regressed


def test_status_and_criteria_rules() -> None:
    assert compare_runs(_run({}, Status.FAILED), _run({}, Status.ERROR)).regressed
    assert not compare_runs(_run({}, Status.ERROR), _run({}, Status.FAILED)).regressed
    # skipping one scenario while another still runs is not a regression...
    two_old, two_new = _run({}), _run({}, Status.SKIPPED)
    two_old.scenarios.append(ScenarioResult("S3", "blk", Status.PASSED, 1.0))
    two_new.scenarios.append(ScenarioResult("S3", "blk", Status.PASSED, 1.0))
    assert not compare_runs(two_old, two_new).regressed
    # ...but a run where everything was skipped proved nothing (EMPTY)
    assert compare_runs(_run({}, Status.PASSED), _run({}, Status.SKIPPED)).regressed
    # Still failing, but a criterion that passed now fails: that is new breakage.
    assert compare_runs(_run({}, Status.FAILED, crit_ok=True), _run({}, Status.FAILED, crit_ok=False)).regressed
    # Recovering from an error to a failure is not a regression, even though the
    # failing criterion was never evaluated before (the old run hung first).
    errored = _run({}, Status.ERROR)
    errored.scenarios[0].criteria = []
    cmp = compare_runs(errored, _run({}, Status.FAILED, crit_ok=False))
    assert not cmp.regressed
    assert any("not evaluated in the old run" in c.what for c in cmp.changes)
    # A new scenario that fails is a regression; so is one that vanishes
    # (issue 13: whatever it proved is no longer proved).
    old = _run({})
    new = _run({})
    new.scenarios.append(ScenarioResult("S3", "blk", Status.FAILED, 1.0))
    assert compare_runs(old, new).regressed
    gone = compare_runs(new, old)
    assert gone.regressed
    assert [c.what for c in gone.changes] == ["S3 blk: failed → absent (vanished: not in the "
                                              "new run)"]
    assert not gone.changes[0].improvement  # disappearing is not getting better


def test_crash_gone_with_its_scenario_is_not_a_fix() -> None:
    base, _ = load_run(RUNS / "base")
    only_s1_s2 = Run(run_id="x", started_at="", duration_s=1.0, environment=base.environment,
                     scenarios=base.scenarios[:2])
    cmp = compare_runs(base, only_s1_s2)
    assert not [c for c in cmp.changes if c.kind == "crash"]
    assert not [c for c in cmp.changes if c.improvement]
    # the vanished scenarios are the only regressions
    assert {c.scenario_id for c in cmp.regressions} == {"S3", "S4", "S5", "S6"}
    assert all(c.kind == "scenario" and "vanished" in c.what for c in cmp.regressions)
    # New kernel warnings recorded as a metric list are regressions too.
    assert compare_runs(_run({"kernel_warnings": []}),
                        _run({"kernel_warnings": ["WARNING in vexfs_evict_inode"]})).regressed
    # ...but the same warning with another timestamp, PID or address is not new.
    old = _run({"kernel_warnings": ["[   12.345678] vexfs: bad inode 17 at 0xffff8881023a4000 (pid 212)"]})
    new = _run({"kernel_warnings": ["[  913.000001] vexfs: bad inode 18 at 0xffff8881023b9000 (pid 390)"]})
    assert not compare_runs(old, new).changes
    # The same problem as a crash title and as S2's "kind: title" warning entry is one problem.
    assert normalize_title("[ 1.0] warning: WARNING in vexfs_x") == normalize_title("warning: WARNING in vexfs_x")


def test_show_and_html(tmp_path: Path) -> None:
    shutil.copytree(RUNS / "base", tmp_path / "base")
    code, out = _cli("show", str(tmp_path / "base"))
    assert code == 1  # the base run has a failure and an error
    for sid in ("S1", "S2", "S3", "S4", "S5", "S6"):
        assert sid in out
    assert "FAILED" in out and "ERROR" in out
    code, out = _cli("html", str(tmp_path / "base"))
    assert code == 0
    html = (tmp_path / "base" / "report.html").read_text()
    assert 'id="S6"' in html and "data:image/svg+xml;base64," in html
    code, out = _cli("show", "--results", str(tmp_path / "nothing"))
    assert code == 2


def test_load_run_round_trip() -> None:
    run, run_dir = load_run(RUNS / "regressed")
    assert run_dir == RUNS / "regressed"
    assert run.scenarios[2].crashes[0].kind == "bug"


def test_bench_tool_shape_is_compared() -> None:
    def bench(qps: float) -> dict:
        return {"bench": {"results": [{"n": 1000, "dim": 64, "kernel_batch_qps": qps, "numpy_batch_qps": 500.0,
                                       "insert_vps": 1e5}]}}
    cmp = compare_runs(_run(bench(400.0)), _run(bench(200.0)))
    assert cmp.regressed
    assert "bench.batch_qps_n1000_d64.vexfs" in cmp.regressions[0].what
    assert not compare_runs(_run(bench(400.0)), _run(bench(390.0))).changes



# -- issue 13 defect 5: verdicts that mean what they say ------------------------------------


def _write_report(path: Path, run: Run) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "report.json").write_text(json.dumps(run.to_dict()))
    return path


def _verdict_line(out: str) -> str:
    return next(ln for ln in out.splitlines() if " · report: " in ln or ln.endswith("report:"))


def test_unfinished_run_is_running_or_incomplete_never_passed(tmp_path: Path) -> None:
    import os
    import platform
    run = _run({})
    run.finished, run.planned = False, ["S2", "S3"]
    run.writer = f"{platform.node()}:{os.getpid()}"          # this process: alive
    code, out = _cli("show", str(_write_report(tmp_path / "live", run)))
    assert code == 1 and _verdict_line(out).startswith("RUNNING")
    run.writer = f"{platform.node()}:{2**22 + 12345}"        # no such process
    code, out = _cli("show", str(_write_report(tmp_path / "dead", run)))
    assert code == 1 and _verdict_line(out).startswith("INCOMPLETE")
    # finished, but a planned scenario has no result
    run.finished = True
    code, out = _cli("show", str(_write_report(tmp_path / "short", run)))
    assert code == 1 and _verdict_line(out).startswith("INCOMPLETE (no result yet for S3")


def test_empty_run_is_not_passed(tmp_path: Path) -> None:
    empty = Run(run_id="e", started_at="", duration_s=0.0,
                environment=Environment("6.1", "tcg", "h"))
    assert not empty.passed and empty.verdict == "EMPTY"
    code, out = _cli("show", str(_write_report(tmp_path / "e", empty)))
    assert code == 1 and _verdict_line(out).startswith("EMPTY")
    # compare: a full run against an empty one is a regression
    base, _ = load_run(RUNS / "base")
    cmp = compare_runs(base, empty)
    assert cmp.regressed
    assert any("EMPTY" in c.what for c in cmp.regressions)
    code, out = _cli("compare", str(RUNS / "base"), str(tmp_path / "e"))
    assert code == 1 and "no regression" not in out


def test_vanished_criterion_is_a_regression() -> None:
    old = _run({})
    old.scenarios[0].criteria.append(Criterion("latency", True))
    cmp = compare_runs(old, _run({}))
    assert cmp.regressed
    assert [c.what for c in cmp.regressions] == ["S2 criterion vanished: latency"]


def test_corrupt_report_is_an_error_not_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "report.json").write_text("{not json")
    for args in (["show", str(bad)], ["compare", str(RUNS / "base"), str(bad)],
                 ["html", str(bad)]):
        result = CliRunner().invoke(report, args)
        assert result.exit_code == 1, result.output
        assert "not a readable run report" in result.output
        assert "Usage:" not in result.output


def test_runner_marks_the_report_finished_only_at_the_end() -> None:
    import inspect
    from vexfs.harness import runner
    src = inspect.getsource(runner.run_all)
    # the first write says finished=False; finished=True is set right before the last
    assert src.index("finished=False") < src.index("run.finished = True") < \
        src.rindex("_write(run, out)")
