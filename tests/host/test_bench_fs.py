"""Host side of `vexfs bench fs`: the tree generator, the JSON parsing of the
VM's output, and the workloads themselves on a host directory."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from vexfs.bench import fs as fb
from vexfs.bench import fsvm


def test_tree_shape_is_deterministic_and_source_like() -> None:
    t = fb.make_tree(20_000, seed=1)
    assert t == fb.make_tree(20_000, seed=1)
    assert t != fb.make_tree(20_000, seed=2)
    assert len(t) == 20_000
    dirs = {e.path for e in t if e.is_dir}
    files = [e for e in t if not e.is_dir]
    assert 0.03 < len(dirs) / len(t) < 0.15
    # tar order: every entry's parent directory comes before it
    seen: set[str] = set()
    for e in t:
        parent = e.path.rpartition("/")[0]
        assert not parent or parent in seen, e.path
        if e.is_dir:
            seen.add(e.path)
    sizes = sorted(e.size for e in files)
    median = sizes[len(sizes) // 2]
    assert 1024 < median < 16 * 1024
    assert max(sizes) <= 512 * 1024
    depth = max(e.path.count("/") for e in t)
    assert 3 <= depth <= 8


def test_workloads_on_a_host_directory(tmp_path: Path) -> None:
    p = fb.wl_fsync(tmp_path, 20)
    assert set(p) == {"create_write_fsync", "unlink_sync"}
    assert not any((tmp_path / "fsync").iterdir())
    p = fb.wl_seqwrite(tmp_path, 2)
    assert (tmp_path / "seq.bin").stat().st_size == 2_000_000
    tree = fb.make_tree(300, seed=3)
    fb.wl_untar(tmp_path, tree)
    for e in tree:
        q = tmp_path / "tree" / e.path
        assert q.is_dir() if e.is_dir else q.stat().st_size == e.size


def test_parse_and_summary() -> None:
    r = {"goal": 1.0, "workloads": [
        {"name": "fsync", "ext4_s": 2.0, "vexfs_s": 1.0, "ratio": 2.0, "goal_met": True,
         "description": "d"},
        {"name": "untar", "ext4_s": 1.0, "vexfs_s": 2.0, "ratio": 0.5, "goal_met": False,
         "description": "e"}]}
    out = f"noise\n{fsvm.BEGIN}\n{json.dumps(r)}\n{fsvm.END}\n"
    assert fsvm.parse(out) == r
    assert fsvm.parse("nothing") is None
    assert fsvm.parse(f"{fsvm.BEGIN}\n{{broken\n{fsvm.END}") is None
    s = fsvm.summary(r)
    assert "ratio 2.00x (goal met)" in s and "ratio 0.50x (BELOW the 1x goal)" in s


def test_cli_needs_a_device() -> None:
    from vexfs.bench.cli import bench

    res = CliRunner().invoke(bench, ["fs", "--dev", "/nonexistent", "--yes"])
    assert res.exit_code == 2
