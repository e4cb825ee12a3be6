"""I/O errors (dm-flakey, dm-error) under a mounted VexFS, and full disks.

Contract (docs/kernel.md, errors=ro by default): an I/O error reaches
userspace as EIO (or the mount goes read-only, then EROFS), nothing
crashes, and once the fault is removed fsck.vexfs -n exits 0 (consistent)
or 4 (problems listed) -- never 8 or a traceback. ENOSPC for data, inodes
and vectors; fsck clean when full; the space is reusable after deletes.
"""

from __future__ import annotations

import json
import re

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


JOURNAL_CHANGED_WRITE_ERRORS = pytest.mark.xfail(strict=False, reason=(
    "issue 10 open: these expectations predate the jbd2 journal. With it, syncfs "
    "commits to the journal and the failed in-place metadata writes happen at "
    "checkpoint, so the first-error lines, the remount point and fsck's findings differ; "
    "the tests must be rewritten for journaled semantics (fresh-clone CI, 2026-12-02)"))


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


@pytest.mark.vm
@pytest.mark.timeout(1500)
@JOURNAL_CHANGED_WRITE_ERRORS
def test_first_metadata_write_error_remounts_ro(faults: dict) -> None:
    """errors=remount-ro: the first failed metadata write (bitmaps, inode,
    directory block of a new file, written by syncfs) makes the mount
    read-only right there, names the blocks, and nothing is allocated from a
    stale on-disk bitmap afterwards."""
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
    # one "lost write of metadata block N (...)" line per block, the bitmaps
    # among them, then the vexfs_error() report and the remount
    assert int(r["mw_lost_lines"]) >= 3 and int(r["mw_bitmap_named"]) >= 1, r
    assert r["mw_first_vexfs_error"].startswith("lost write of metadata block"), r
    assert r["mw_error_line"].startswith("vexfs_sync_fs: I/O error writing metadata block"), r
    assert r["mw_ro_line"] == "1", r
    assert r["mw_twice"] == "0", r  # no double allocation from stale bitmaps
    # Fault removed: the unmount's final flush writes the in-memory copies,
    # so the only problem fsck finds is the error state the kernel recorded.
    assert r["mw_umount"] == "OK", r
    assert r["mw_fsck"] == "4", faults["transcript"]["flakey_meta_write"]
    problems = [p for p in r["mw_fsck_problems"].split("|") if p]
    assert problems == ["the kernel recorded errors on this filesystem (state ERROR)"], problems


@pytest.mark.vm
@pytest.mark.timeout(1500)
@JOURNAL_CHANGED_WRITE_ERRORS
def test_metadata_write_error_continue_never_reads_stale_bitmap(faults: dict) -> None:
    """errors=continue: the error is reported and the mount stays
    read-write; allocation goes on from the in-memory bitmaps; a bitmap that
    changed and was lost from memory after failing to write is refused
    (EIO), not read back stale from the disk."""
    r = faults["results"]
    print(json.dumps({k: v for k, v in r.items() if k.startswith("mc_")}, indent=1))
    _no_crash_or_warning(faults, "flakey_meta_continue")
    assert r.get("fmc_mounted") == "yes", faults["transcript"].get("flakey_meta_continue")
    assert r["mc_create"] == "OK" and r["mc_sync"] == "EIO", r
    assert r["mc_rw"] == "yes" and r["mc_ro_line"] == "0", r
    assert r["mc_create_after"] == "OK", r  # from the bitmap kept in memory
    assert r["mc_ls_after"].split() == ["c1", "c2", "old"], r
    assert int(r["mc_lost_lines"]) >= 3, r
    # The flusher rewrote the failed buffers (they failed again and were
    # left clean), the cache drop took them out of memory: allocating now
    # must be refused (EIO, "not using its on-disk copy"), not done from
    # the stale bitmap on disk.
    assert r["mc_dirty_before_drop"] == "0", r
    assert r["mc_mkdir_dropped"] == "EIO", r
    assert int(r["mc_refused"]) >= 1, r
    assert r["mc_twice"] == "0", r
    # d's inode was in the dropped inode table block: not read back stale
    assert r["mc_ls_dropped"] == "EIO", r
    # What was lost with the dropped buffers is for fsck to name: the error
    # state, and counts or bitmap bits that no longer match -- nothing else.
    assert r["mc_umount"] == "OK", r
    assert r["mc_fsck"] == "4", faults["transcript"]["flakey_meta_continue"]
    problems = [p for p in r["mc_fsck_problems"].split("|") if p]
    assert "the kernel recorded errors on this filesystem (state ERROR)" in problems, problems
    lost = re.compile(r"superblock free (blocks|inodes) count is \d+, counted \d+$|"
                      r"(inode|block) bitmap: \d+ (inodes|blocks) in use are marked free")
    assert all(p.startswith("the kernel recorded errors") or lost.match(p) for p in problems), problems


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
