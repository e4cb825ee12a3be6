"""Scenarios S3-S5 through the real runner, in real VMs (one fresh boot each).

The module-scoped fixture runs S3, S4 and S5 once with
vexfs.harness.runner.run_all (exactly what `vexfs run S3 S4 S5` does) and
the tests assert each scenario passed, that its criteria are the spec's,
and that it reported the metrics docs/report.md names. A failure message
lists every failed criterion with its detail, so the report of a broken
dependency is in the pytest output.

A few pure checks of S5's ground-truth comparison (no VM) sit at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vexfs.harness.scenarios import _s5_guest as G
from vexfs.harness.scenarios.s5_vectors import ANN_BUILD_CHECK, ANN_VERIFY_CHECK, SPEED_MIN

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3_s5_run(tmp_path_factory: pytest.TempPathFactory):
    from vexfs.harness import scenarios as registry
    from vexfs.harness.framework import RunOptions
    from vexfs.harness.runner import RunnerConfig, run_all
    from vexfs.report.events import PlainObserver
    from vexfs.vm.build import VEXFS_KO, check_module
    from vexfs.vm.kernel import ensure_kernel

    kernel = ensure_kernel(headers=False)
    info = check_module(VEXFS_KO, kernel)
    out = tmp_path_factory.mktemp("s3_s5") / "run"
    # The benchmark at 10k only: `make run` measures 100k (the README's
    # figures); here it is enough that the benchmark runs and agrees with
    # numpy, and 100k costs ~2 minutes of TCG time.
    cfg = RunnerConfig(kernel=kernel, out_dir=out,
                       options=RunOptions(module_path=VEXFS_KO, bench_sizes="10000",
                                          ann_n=3000, ann_queries=100, ann_others=False),
                       observer=PlainObserver(), module=info, write_report=True)
    run = run_all(registry.select(["S3", "S4", "S5"]), cfg)
    return run, out


def _result(run, sid: str):
    by_id = {s.id: s for s in run.scenarios}
    assert sid in by_id, f"{sid} did not run: {list(by_id)}"
    return by_id[sid]


def _explain(result) -> str:
    failed = [f"{c.name}: {c.detail}" for c in result.criteria if not c.passed]
    crashes = [f"{c.kind}: {c.title}" for c in result.crashes]
    return (f"{result.id} {result.status.value}: {result.message}\n  "
            + "\n  ".join(failed + crashes) + f"\n  logs: {result.logs}")


def _criteria(result) -> set[str]:
    return {c.name for c in result.criteria}


@pytest.mark.timeout(3600)
def test_report_written(s3_s5_run) -> None:
    run, out = s3_s5_run
    data = json.loads((out / "report.json").read_text())
    assert [s["id"] for s in data["scenarios"]] == ["S3", "S4", "S5"]
    for s in data["scenarios"]:
        assert s["criteria"], f"{s['id']} recorded no criteria"
        assert (out / f"{s['id']}.log").is_file()


@pytest.mark.timeout(3600)
def test_s3_block_device(s3_s5_run) -> None:
    run, _ = s3_s5_run
    s3 = _result(run, "S3")
    assert {"Loop device creates successfully", "No kernel errors during block operations",
            "mkfs.vexfs writes the VexFS signature to the block device",
            "Cleanup: module counters back to zero before rmmod",
            "Cleanup: loop device detached", "Cleanup: module unloaded"} <= _criteria(s3)
    assert s3.status.value == "passed", _explain(s3)
    assert len(s3.metrics["mount_s"]) == 2 and len(s3.metrics["umount_s"]) == 2
    assert all(0 < t < 10 for t in s3.metrics["mount_s"])
    assert s3.metrics["kernel_warnings"] == []


@pytest.mark.timeout(3600)
def test_s4_filesystem(s3_s5_run) -> None:
    run, _ = s3_s5_run
    s4 = _result(run, "S4")
    assert {"VexFS appears in /proc/filesystems", "Mount operation succeeds",
            "Basic file operations work", "Unmount succeeds cleanly",
            "No kernel panics or warnings during filesystem operations",
            "Filesystem mount time < 10 s", "fsck.vexfs -n clean after umount",
            "Data persists across umount/mount and module reload"} <= _criteria(s4)
    assert s4.status.value == "passed", _explain(s4)
    m = s4.metrics
    assert len(m["mount_s"]) == 3 and len(m["umount_s"]) == 3
    assert max(m["mount_s"]) < 10
    # the ext4 baseline ran as often, in the same VM
    assert len(m["ext4_mount_s"]) == 3 and len(m["ext4_umount_s"]) == 3
    assert all(t > 0 for t in m["ext4_mount_s"] + m["ext4_umount_s"])


@pytest.mark.timeout(3600)
def test_s5_vectors(s3_s5_run) -> None:
    run, _ = s3_s5_run
    s5 = _result(run, "S5")
    names = _criteria(s5)
    assert {"Vector files can be created", "Vector data can be stored and retrieved",
            "After umount/mount: the same searches return the same answers",
            "fsck.vexfs -n clean after the vector workload (no data corruption)",
            ANN_BUILD_CHECK, ANN_VERIFY_CHECK} <= names
    for metric in G.METRICS:
        assert f"{G.N} x {G.DIM} random vectors ({metric}): k-NN matches numpy ground truth" in names
    # Every criterion but the speed one must pass here; the speed criterion
    # is judged on its own in test_s5_speed_criterion below.
    failed = [c for c in s5.criteria if not c.passed and c.name != SPEED_CRITERION]
    assert not failed, _explain(s5)
    assert s5.status.value in ("passed", "failed"), _explain(s5)
    bench = s5.metrics["bench"]
    for tag in ("10k",):
        fig = bench[f"search_batch_qps_{tag}"]
        assert fig["vexfs"] > 0 and fig["numpy"] > 0, fig
        assert bench[f"insert_vectors_per_s_{tag}"]["vexfs"] > 0
    for metric in G.METRICS:
        assert s5.metrics["vector_accuracy"][f"random_{metric}"]["max_err_ratio"] <= 1.0


SPEED_CRITERION = f"Kernel exact search >= {SPEED_MIN:g}x numpy in this VM (batch and single)"


@pytest.mark.xfail(strict=False, reason=(
    "issue 11 open: the margin over numpy is small under TCG (1.02-1.82x at 10k on an "
    "idle machine, below 1x when the host is loaded); `make run`'s S5 still fails on it"))
def test_s5_speed_criterion(s3_s5_run) -> None:
    run, _ = s3_s5_run
    s5 = _result(run, "S5")
    speed = [c for c in s5.criteria if c.name == SPEED_CRITERION]
    assert speed, "S5 has no speed criterion"
    assert speed[0].passed, speed[0].detail


# ---------------------------------------------------------------- no VM needed

def _numpy_answers(x, ids, q, metric, k):
    d, _ = G.exact_distances(x, q, metric)
    d = d.T
    order = np.array([np.lexsort((ids, row)) for row in d])[:, :k]
    return (np.take_along_axis(d, order, 1).astype(np.float32), ids[order].astype(np.int64))


@pytest.mark.parametrize("metric", G.METRICS)
def test_compare_accepts_exact_answers_and_catches_wrong_ones(metric: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 16), dtype=np.float32)
    ids = np.arange(10, 510, dtype=np.uint64)
    q = rng.standard_normal((7, 16), dtype=np.float32)
    kd, ki = _numpy_answers(x, ids, q, metric, 5)
    good = G.compare(x, ids, q, metric, kd, ki, 5)
    assert good["bad"] == [] and good["mismatched"] == 0
    # a swapped pair of well-separated neighbours is a mismatch, not a tie
    swapped = ki.copy()
    swapped[2, [0, 4]] = swapped[2, [4, 0]]
    assert G.compare(x, ids, q, metric, kd, swapped, 5)["mismatched"] >= 1
    # a distance off by 1e-3 relative is caught
    off = kd.copy()
    off[3, 1] *= np.float32(1.001)
    assert any("allowed" in b for b in G.compare(x, ids, q, metric, off, ki, 5)["bad"])
    # an id that was never inserted is caught
    alien = ki.copy()
    alien[0, 0] = 9
    assert any("never inserted" in b for b in G.compare(x, ids, q, metric, kd, alien, 5)["bad"])


def test_compare_allows_swapped_exact_ties() -> None:
    x = np.array([[1, 0], [0, 1], [3, 3]], dtype=np.float32)  # ids 5 and 6 tie for q=(0,0)
    ids = np.array([5, 6, 7], dtype=np.uint64)
    q = np.zeros((1, 2), dtype=np.float32)
    kd = np.array([[1.0, 1.0]], dtype=np.float32)
    res = G.compare(x, ids, q, "l2", kd, np.array([[6, 5]]), 2)
    assert res["mismatched"] == 0 and res["ties"] == 2
    # but equal distances must still come in id order
    assert any("not sorted" in b for b in res["bad"])


def test_spec_line_format_matches_the_spec_loop() -> None:
    from vexfs.harness.scenarios.s5_vectors import spec_file

    for i in (1, 10):
        m = G.SPEC_LINE.fullmatch(spec_file(i).decode())
        assert m and int(m.group(1)) == i
        assert [float(v) for v in m.group(2).split(",")] == G.SPEC_VECTOR
