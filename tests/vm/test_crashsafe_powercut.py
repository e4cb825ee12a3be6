"""Power cuts in real VMs (vexfs.crashsafe.powercut).

One QEMU process, a sysrq-b reset per round (`run_rounds`): boot k verifies
round k-1 and starts round k (mkfs, seeded workload on /dev/vda, the
episode marks durable on /dev/vdb, `echo b > /proc/sysrq-trigger` after a
seeded random delay). On VexFS the check of a round is: fsck.vexfs -n -f
before the kernel touches the disk (reports whether the journal needs
recovery, exits 0, writes nothing: the disk's hash is unchanged), fsck -y -f
on a copy (exit 1, e2fsck's "modified", when it replayed the journal; then
-n exits 0), the kernel's mount (the journal replays; its "recovered N
transactions in X ms" is kept), every episode whose mark is durable there,
the next in an allowed state, and fsck -n -f clean after the unmount. ext4
is the self-test. `make run`'s C1 runs 20 rounds; this runs a few.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "kernel/build/vexfs.ko"

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1500)]


def vexfs_has_journal() -> bool:
    res = subprocess.run(["modinfo", "-F", "depends", str(MODULE)], capture_output=True,
                         text=True, check=False)
    return "jbd2" in res.stdout


# a violation that names a collection (coll0, ...; fsck says "collection")
COLLECTION_PROBLEM = re.compile(r"\bcoll\d+\b|collection")


@pytest.mark.parametrize("fs,rounds", [("ext4", 2), ("vexfs", 3)])
def test_power_cut_rounds(fs: str, rounds: int, tmp_path: Path) -> None:
    from vexfs.crashsafe.powercut import run_rounds, summarize

    assert vexfs_has_journal(), "vexfs.ko does not depend on jbd2"
    r = run_rounds(fs, rounds, seed=77, module=MODULE, work_dir=tmp_path,
                   vectors=fs == "vexfs", max_delay=8.0, timeout=1400)
    s = summarize(r)
    print(s)
    assert not r["crashes"] and not r["step_failures"] and not r["timed_out"], r
    assert r["done"] and s["rounds"] == rounds and s["cuts"] == rounds, r
    assert s["boots"] == rounds + 1, r  # all in one QEMU process
    bad = [v for x in r["rounds"] for v in x["violations"]]
    if fs == "vexfs" and bad and all(COLLECTION_PROBLEM.search(v) for v in bad):
        # Known open defect (issue 10, README "Known limits"): collection
        # batches are not in one jbd2 transaction. Reported xfailed, not passed;
        # any other violation still fails below.
        pytest.xfail(f"issue 10 open: collection-batch violations after a power cut: {bad[:2]}")
    for x in r["rounds"]:
        assert x["violations"] == [] and x["fsck_rc"] == 0, x
    # the cuts landed inside the workloads, not before the first episode
    assert sum(x["episodes_durable"] > 0 for x in r["rounds"]) >= rounds - 1, r["rounds"]
    if fs == "vexfs":
        for x in r["rounds"]:
            assert x["fsck_n_rc"] == 0 and x["fsck_y_rc"] == (1 if x["needs_recovery"] else 0), x
        # a cut with committed transactions in the log: the next mount replayed them
        # and said how long it took
        assert s["needed_recovery"] >= 1 and s["replays"] >= 1, r["rounds"]
