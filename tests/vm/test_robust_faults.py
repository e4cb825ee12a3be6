"""I/O errors (dm-flakey, dm-error) under a mounted VexFS, and full disks.

Contract (docs/kernel.md, errors=ro by default): an I/O error reaches
userspace as EIO (or the mount goes read-only, then EROFS), nothing
crashes, and once the fault is removed fsck.vexfs -n exits 0 (consistent)
or 4 (problems listed) -- never 8 or a traceback. ENOSPC for data, inodes
and vectors; fsck clean when full; the space is reusable after deletes.
"""

from __future__ import annotations

import json

import pytest

from vexfs.fuzz.faults import run_faults
from vexfs.vm.build import VEXFS_KO
from vexfs.vm.paths import cache_dir

FAIL_ERRNOS = {"EIO", "EROFS"}


@pytest.fixture(scope="module")
def faults() -> dict:
    return run_faults(cache_dir() / "fuzz" / "faults-test", VEXFS_KO)


def _crashes(faults: dict, section: str) -> list[str]:
    return [f"{c['kind']}: {c['title']}\n{c['trace'][-2500:]}" for c in faults["crashes"]
            if c["section"] in (section, "end")]


@pytest.mark.vm
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("section,prefix", [("flakey_error_writes", "ew"),
                                            ("flakey_drop_writes", "dw"),
                                            ("flakey_all_io", "io"),
                                            ("error_target", "et")])
def test_io_errors(faults: dict, section: str, prefix: str) -> None:
    r = faults["results"]
    print(json.dumps({k: v for k, v in r.items() if k.startswith(prefix)}, indent=1))
    assert not _crashes(faults, section), _crashes(faults, section)
    name = {"ew": "few", "dw": "fdw", "io": "fall", "et": "ferr"}[prefix]
    assert r.get(f"{name}_mounted") == "yes", faults["transcript"].get(section)
    if prefix == "ew":
        # writes fail: the failure must reach userspace (write/fsync/sync or a later op)
        seen = {r["ew_write"], r["ew_sync"], r["ew_after_error"]}
        assert seen & FAIL_ERRNOS, r
        assert r["ew_read_old"] == "OK", r  # reads still work
    if prefix == "io":
        assert r["io_read"] in FAIL_ERRNOS and r["io_ls"] in FAIL_ERRNOS, r
    if prefix == "et":
        assert r["et_read"] in FAIL_ERRNOS, r
    assert r[f"{prefix}_fsck"] in ("0", "4"), faults["transcript"].get(section)


def _no_crash_or_warning(faults: dict, section: str) -> None:
    assert not _crashes(faults, section), _crashes(faults, section)
    text = faults["transcript"].get(section, "")
    for bad in ("WARNING:", "BUG:", "Call Trace"):
        assert bad not in text, text


JOURNAL_ABORTED = "the journal was aborted (errno -5) on an earlier mount: a journal or " \
    "metadata write failed"
ERROR_STATE = "the kernel recorded errors on this filesystem (state ERROR)"


def _after_abort(r: dict, p: str, transcript: str) -> None:
    """What a journal aborted by a failed write leaves, once the fault is
    removed: the unmount works; fsck -n finds the ERROR state (and the
    aborted journal's errno if it reached the disk) and nothing else
    (nothing allocated twice, no bitmap or count lost: what
    the journal committed is all there is); fsck -y clears both (exit 1), -n
    is clean after it, and the filesystem mounts with the file synced before
    the fault intact."""
    assert r[f"{p}_umount"] == "OK", r
    assert r[f"{p}_fsck"] == "4", transcript
    problems = [x for x in r[f"{p}_fsck_problems"].split("|") if x]
    # jbd2 writes its errno into the journal superblock at the abort: on the
    # failing device that write may be lost too
    assert ERROR_STATE in problems and set(problems) <= {ERROR_STATE, JOURNAL_ABORTED}, problems
    assert r[f"{p}_fsck_y"] == "1", transcript
    assert r[f"{p}_fsck_after"] == "0", transcript
    assert r[f"{p}_remount"] == "OK" and r[f"{p}_old_after"] == "before", r


@pytest.mark.vm
@pytest.mark.timeout(1500)
def test_first_metadata_write_error_remounts_ro(faults: dict) -> None:
    """errors=remount-ro, journaled: the syncfs whose commit hits the failing
    device gets EIO, the journal aborts and the mount is read-only right
    there (one remount line, the abort named); nothing more is written,
    reads go on; afterwards see _after_abort."""
    r = faults["results"]
    print(json.dumps({k: v for k, v in r.items() if k.startswith("mw_")}, indent=1))
    _no_crash_or_warning(faults, "flakey_meta_write")
    assert r.get("fmw_mounted") == "yes", faults["transcript"].get("flakey_meta_write")
    assert r["mw_create"] == "OK", r  # only in memory so far
    assert r["mw_sync"] == "EIO", r  # the syncfs that hit the failed writes
    assert r["mw_ro"] == "yes", r  # read-only at that first error, not later
    assert r["mw_touch"] == "EROFS" and r["mw_mkdir"] == "EROFS", r
    assert r["mw_read_old"] == "OK", r
    assert int(r["mw_sysfs_errors"]) >= 1, r
    assert r["mw_abort_line"] == "1", r  # the abort reported once
    assert r["mw_ro_line"] == "1", r
    assert r["mw_twice"] == "0", r  # no double allocation
    _after_abort(r, "mw", faults["transcript"]["flakey_meta_write"])


@pytest.mark.vm
@pytest.mark.timeout(1500)
def test_metadata_write_error_continue_aborted_journal_goes_ro(faults: dict) -> None:
    """errors=continue, journaled: a failed journal write aborts the journal,
    which takes no transaction any more, so the mount goes read-only anyway
    (said once: "an aborted journal takes no transactions, whatever errors=
    says", as ext4's __ext4_abort), creates get EROFS rather than a
    read-write mount that refuses every write; reads go on; nothing is
    allocated from a stale bitmap; afterwards see _after_abort."""
    r = faults["results"]
    print(json.dumps({k: v for k, v in r.items() if k.startswith("mc_")}, indent=1))
    _no_crash_or_warning(faults, "flakey_meta_continue")
    assert r.get("fmc_mounted") == "yes", faults["transcript"].get("flakey_meta_continue")
    assert r["mc_create"] == "OK" and r["mc_sync"] == "EIO", r
    assert r["mc_rw"] == "no" and r["mc_ro"] == "yes", r
    assert r["mc_abort_line"] == "1" and r["mc_abort_ro_line"] == "1", r
    assert r["mc_ro_line"] == "1", r
    assert r["mc_create_after"] == "EROFS", r
    assert "old" in r["mc_ls_after"].split(), r
    assert r["mc_mkdir_dropped"] == "EROFS", r
    assert r["mc_twice"] == "0", r
    _after_abort(r, "mc", faults["transcript"]["flakey_meta_continue"])


@pytest.mark.vm
@pytest.mark.timeout(1500)
def test_enospc_files_inodes_vectors(faults: dict) -> None:
    r = faults["results"]
    print(json.dumps({k: v for k, v in r.items() if k.startswith("sp_")}, indent=1))
    assert not _crashes(faults, "enospc"), _crashes(faults, "enospc")
    assert r.get("full_mounted") == "yes"
    assert r["sp_data"] == "ENOSPC" and r["sp_df_full"] == "0"
    assert r["sp_inodes"] == "ENOSPC", r
    assert r["sp_vec"] == "ENOSPC", r
    assert r["sp_fsck_full"] == "0", faults["transcript"]["enospc"]
    assert int(r["sp_df_after_delete"]) >= int(r["sp_df_initial"]) * 0.9, r
    assert r["sp_reuse"] == "OK" and r["sp_reuse_intact"] == "yes", r
    assert r["sp_fsck_after"] == "0", faults["transcript"]["enospc"]
    assert faults.get("rmmod_rc") == 0
