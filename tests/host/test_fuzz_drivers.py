"""The guest C drivers build warning-free against the uapi header, and
behave on a non-VexFS file the way the ioctl contract says (ENOTTY);
result parsing of the fault/leak scripts (no VM)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vexfs.fuzz import cbuild
from vexfs.fuzz.faults import SECTIONS, parse
from vexfs.fuzz.leaks import analyse


@pytest.mark.parametrize("name", ["fz_image", "fz_ioctl"])
def test_driver_builds_without_warnings(name: str, tmp_path: Path) -> None:
    src = cbuild.GUEST_SRC / f"{name}.c"
    res = subprocess.run(["gcc", *cbuild.CFLAGS, "-o", str(tmp_path / name), str(src)],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
    assert cbuild.build(name).exists()


def test_mkcoll_on_a_non_vexfs_file_gives_enotty(tmp_path: Path) -> None:
    fz = cbuild.build("fz_ioctl")
    res = subprocess.run([str(fz), "mkcoll", str(tmp_path / "c"), "4", "3"],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "VEXFS_IOC_CREATE" in res.stderr and "Inappropriate ioctl" in res.stderr


def test_usage_errors() -> None:
    fz = cbuild.build("fz_ioctl")
    assert subprocess.run([str(fz)], capture_output=True).returncode == 2
    fi = cbuild.build("fz_image")
    assert subprocess.run([str(fi)], capture_output=True).returncode == 2


def test_fault_result_parsing() -> None:
    text = "noise\nR ew_write EIO\nR ew_ro yes\nR empty \nR sp_df_full 0\n"
    assert parse(text) == {"ew_write": "EIO", "ew_ro": "yes", "empty": "", "sp_df_full": "0"}
    assert set(SECTIONS) == {"flakey_error_writes", "flakey_meta_write", "flakey_meta_continue",
                             "flakey_drop_writes", "flakey_all_io", "error_target", "enospc"}


def test_leak_analysis() -> None:
    r = {f"cnt_{i}": "0,0,0,0" for i in range(1, 21)}
    r |= {f"slab_{i}": "0" for i in range(1, 21)}
    r |= {f"avail_{i}": str(900000 - (5000 if i == 1 else 0) - i) for i in range(1, 21)}
    a = analyse({"results": r})
    assert a["counters_zero_every_cycle"] and a["mem_growth_kb"] == 7 and not a["failures"]
    r["cnt_7"] = "3,0,1,0"
    r["umount_fail_7"] = "1"
    a = analyse({"results": r})
    assert not a["counters_zero_every_cycle"] and a["failures"] == ["umount_fail_7"]


def test_faults_cli_help_names_every_section() -> None:
    from click.testing import CliRunner

    from vexfs.fuzz.cli import faults

    text = " ".join(CliRunner().invoke(faults, ["--help"]).output.split())
    for name in SECTIONS:
        assert name in text, name
