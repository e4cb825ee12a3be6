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
