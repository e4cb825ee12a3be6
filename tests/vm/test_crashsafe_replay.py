"""Crash-point replay (vexfs.crashsafe) in a VM.

ext4 is the tool's self-test: it journals already, so every FLUSH/FUA point
and mark of a seeded workload recorded with dm-log-writes must mount, pass
`e2fsck -n -f` and hold every fsynced file (0 violations). The same
workload recorded on ext4 mounted `nobarrier` (no flushes: nothing the
workload fsynced is promised to be on the disk) is the negative control:
the checker must report violations there, or it is checking nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PY = REPO / ".venv/bin/python"

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1200)]

# A violation that names a collection (the workload's collections are coll0,
# coll1, ...; fsck and the kernel say "collection") rather than a file.
COLLECTION_PROBLEM = re.compile(r"\bcoll\d+\b|collection")


def _run(name: str, args: str) -> str:
    return (f"{PY} -m vexfs.crashsafe.run {args} --work /tmp/cs-{name} --out /tmp/{name}.json "
            f"> /tmp/{name}.log 2>&1; echo \"RC-{name}=$?\"; tail -3 /tmp/{name}.log; "
            f"echo \"JSON-{name}=$(tr -d '\\n' < /tmp/{name}.json)\"\n")


def _json(output: str, name: str) -> dict:
    m = re.search(rf"^JSON-{name}=(.*)$", output, re.M)
    assert m and m.group(1), output[-3000:]
    return json.loads(m.group(1))


def test_ext4_every_crash_point_consistent_and_nobarrier_caught() -> None:
    from vexfs.vm.quick import run_script

    script = (f"cd {REPO}\n"
              + _run("ok", "--fs ext4 --episodes 12 --seed 1 --size-mb 16 --log-mb 256 "
                     "--torn-every 5")
              + _run("nobarrier", "--fs ext4 --episodes 4 --seed 2 --size-mb 16 --log-mb 256 "
                     "--torn-every 0 --mount-options nobarrier"))
    res = run_script(script, timeout=1100)
    assert not res.crashes, [c.title for c in res.crashes]
    ok = _json(res.output, "ok")
    assert ok["violations"] == 0, ok["violation_list"][:5]
    assert ok["points"] >= 40 and ok["marks"] >= 13, ok
    assert ok["by_kind"].get("mark", 0) >= 13 and ok["torn_points"] >= 1, ok
    assert ok["log_entries"] > ok["points"]
    bad = _json(res.output, "nobarrier")
    assert bad["violations"] > 0, bad
    assert any("missing" in v["problem"] or "differs" in v["problem"]
               for v in bad["violation_list"]), bad["violation_list"][:5]


def test_vexfs_every_crash_point_consistent() -> None:
    """VexFS with its jbd2 journal: files, renames over fsynced files and
    collection batches, every point (and every 5th torn) must mount, hold the
    model and pass fsck.vexfs -n -f. Runs once vexfs.ko uses jbd2."""
    from test_crashsafe_powercut import vexfs_has_journal

    from vexfs.vm.quick import run_script

    if not vexfs_has_journal():
        pytest.skip("vexfs.ko does not use jbd2 yet (issue 10, kernel side): before the "
                    "journal every point fails fsck (counters), see docs/robustness.md")
    module = REPO / "kernel/build/vexfs.ko"
    script = (f"cd {REPO}\nmodprobe jbd2\ninsmod /tmp/vexfs.ko\n"
              + _run("vx", "--fs vexfs --vectors --episodes 15 --seed 3 --size-mb 32 "
                     "--log-mb 512 --torn-every 5"))
    res = run_script(script, modules=[module], timeout=1100)
    assert not res.crashes, [c.title for c in res.crashes]
    vx = _json(res.output, "vx")
    assert vx["points"] >= 25 and vx["torn_points"] >= 1, vx
    listed = vx["violation_list"]
    assert len(listed) == vx["violations"], "the driver listed every violation"
    # Files, fsync, links, directories, nodes, setattr, fallocate and every
    # rename kind must hold at every point, now.
    others = [v for v in listed if not COLLECTION_PROBLEM.search(v["problem"])]
    assert not others, others[:5]
    if listed:
        # Known open defect (issue 10, README "Known limits"): the collection
        # header is file data, not in the batch's jbd2 transaction, so a crash
        # can leave a header whose count disagrees with i_size. Reported as
        # xfailed, never as passed, until collection pages are journaled.
        pytest.xfail(f"issue 10 open: {len(listed)} collection-batch violations, e.g. "
                     f"{listed[0]['problem']}")
