"""Module load-failure diagnosis on crafted cases (vexfs.vm.loadcheck).

The .ko is the real test module built against the installed guest headers;
the failures are made from it (truncated, vermagic patched) and the dmesg
lines are the Debian 6.1 kernel's own wording (kernel/module/main.c,
version.c), as the VM test (tests/vm/test_loadcheck_vm.py) records them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vexfs.crash.crashtest import build_crashtest
from vexfs.vm import loadcheck

RELEASE = "6.1.0-57-amd64"


@pytest.fixture(scope="module")
def ko() -> Path:
    return build_crashtest()


def magic(data: bytes) -> str:
    return loadcheck.modinfo_fields(data)["vermagic"]


def test_whole_module_is_fine(ko: Path) -> None:
    data = ko.read_bytes()
    assert loadcheck.check_elf(data).ok
    assert magic(data).startswith("6.1.0-")
    d = loadcheck.diagnose(module=ko, rc=0, stderr="", dmesg=[],
                           guest_release=magic(data).split()[0],
                           guest_sha256=hashlib.sha256(data).hexdigest())
    assert d.causes == []


def test_truncated_module(ko: Path, tmp_path: Path) -> None:
    data = ko.read_bytes()
    cut = tmp_path / "vexfs_crashtest.ko"
    cut.write_bytes(data[: len(data) // 2])
    check = loadcheck.check_elf(cut.read_bytes())
    assert not check.ok and "truncated" in check.problem
    # the guest got the truncated copy of a good build: checksum mismatch
    d = loadcheck.diagnose(module=ko, rc=1, stderr="insmod: ERROR: could not insert module "
                           "/tmp/vexfs_crashtest.ko: Invalid module format", dmesg=[],
                           guest_release=RELEASE,
                           guest_sha256=hashlib.sha256(cut.read_bytes()).hexdigest(),
                           guest_size=len(data) // 2)
    kinds = [c.kind for c in d.fatal]
    assert kinds[0] == "integrity" and "differs from the build" in d.fatal[0].message
    assert f"{len(data) // 2} bytes in the guest, {len(data)} built" in d.fatal[0].message
    # the build itself truncated: the ELF check names it
    d = loadcheck.diagnose(module=cut, rc=1, stderr="Invalid module format", dmesg=[],
                           guest_release=RELEASE,
                           guest_sha256=hashlib.sha256(cut.read_bytes()).hexdigest())
    assert d.fatal[0].kind == "integrity" and "truncated" in d.fatal[0].message


def test_garbage_is_not_elf(tmp_path: Path) -> None:
    bad = tmp_path / "vexfs.ko"
    bad.write_bytes(b"not a module at all" * 10)
    d = loadcheck.diagnose(module=bad, rc=1, stderr="", dmesg=[], guest_release=RELEASE)
    assert d.fatal[0].kind == "integrity" and "not an ELF file" in d.fatal[0].message


def test_patched_vermagic(ko: Path, tmp_path: Path) -> None:
    data = ko.read_bytes()
    good = magic(data)
    assert " preempt " in good
    bad = good.replace(" preempt ", " PREEMPT ")
    patched = tmp_path / "vexfs_crashtest.ko"
    patched.write_bytes(data.replace(good.encode(), bad.encode()))
    assert magic(patched.read_bytes()) == bad
    line = f"[   12.3] vexfs_crashtest: version magic '{bad}' should be '{good}'"
    d = loadcheck.diagnose(module=patched, rc=1, stderr="Invalid module format", dmesg=[line],
                           guest_release=good.split()[0])
    assert [c.kind for c in d.fatal] == ["vermagic"], d.text()
    assert f"'{bad.strip()}' does not match the kernel's '{good.strip()}'" in d.fatal[0].message


def test_other_release(ko: Path, tmp_path: Path) -> None:
    """Built for another kernel release (same length, so patchable in place):
    the release is checked against `uname -r` even where modversions would
    let the kernel skip it, and CRC mismatches are named."""
    data = ko.read_bytes()
    good = magic(data)
    other = good.replace(good.split()[0], "6.1.0-99-amd64")
    patched = tmp_path / "vexfs_crashtest.ko"
    patched.write_bytes(data.replace(good.encode(), other.encode()))
    dmesg = ["vexfs_crashtest: disagrees about version of symbol module_layout"]
    d = loadcheck.diagnose(module=patched, rc=1, stderr="Invalid module format", dmesg=dmesg,
                           guest_release=RELEASE)
    kinds = [c.kind for c in d.fatal]
    assert kinds == ["vermagic", "modversions"], d.text()
    assert f"built for kernel 6.1.0-99-amd64, the guest runs {RELEASE}" in d.fatal[0].message
    assert "module_layout" in d.fatal[1].message


SYMBOLS = """\
# Aliases for symbols, used by symbol_request().
alias symbol:jbd2_journal_start jbd2
alias symbol:jbd2_journal_stop jbd2
alias symbol:mb_cache_create mbcache
"""


def test_unknown_symbols_name_their_module(ko: Path) -> None:
    table = loadcheck.parse_modules_symbols(SYMBOLS)
    assert table["jbd2_journal_start"] == "jbd2"
    dmesg = ["[    3.1] vexfs_crashtest: Unknown symbol jbd2_journal_start (err -2)",
             "[    3.1] vexfs_crashtest: Unknown symbol jbd2_journal_stop (err -2)",
             "[    3.1] vexfs_crashtest: Unknown symbol mb_cache_create (err -2)",
             "[    3.1] vexfs_crashtest: Unknown symbol no_such_export (err -2)"]
    d = loadcheck.diagnose(module=ko, rc=1, stderr="Unknown symbol in module", dmesg=dmesg,
                           guest_release=RELEASE, guest_symbols=table, loaded_modules={"loop"})
    msgs = {c.message.split(",")[0]: c.message for c in d.fatal if c.kind == "symbols"}
    jbd2 = next(m for m in msgs.values() if "jbd2_journal_start" in m)
    assert "jbd2_journal_stop" in jbd2 and "module jbd2" in jbd2 and "modprobe jbd2" in jbd2
    assert any("mb_cache_create" in m and "modprobe mbcache" in m for m in msgs.values())
    assert any("no_such_export" in m and "no module of" in m for m in msgs.values())


def test_module_symvers_table() -> None:
    text = "0xb4080944\tjbd2_journal_start\tfs/jbd2/jbd2\tEXPORT_SYMBOL\t\n" \
           "0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n"
    assert loadcheck.parse_module_symvers(text) == {"jbd2_journal_start": "jbd2",
                                                   "printk": "vmlinux"}


def test_signature_notices_are_not_failures(ko: Path) -> None:
    dmesg = ["vexfs: loading out-of-tree module taints kernel.",
             "vexfs: module verification failed: signature and/or required key missing - "
             "tainting kernel"]
    d = loadcheck.diagnose(module=ko, rc=0, stderr="", dmesg=dmesg, guest_release=RELEASE)
    assert d.causes and not d.fatal and d.causes[0].kind == "signature"
    d = loadcheck.diagnose(module=ko, rc=1, stderr="insmod: ERROR: could not insert module "
                           "x.ko: Key was rejected by service",
                           dmesg=["Lockdown: insmod: unsigned module loading is restricted"],
                           guest_release=RELEASE)
    assert d.fatal[0].kind == "signature" and "refused" in d.fatal[0].message


def test_already_loaded(ko: Path) -> None:
    d = loadcheck.diagnose(module=ko, rc=1, stderr="insmod: ERROR: could not insert module "
                           "/tmp/vexfs_crashtest.ko: File exists", dmesg=[],
                           guest_release=RELEASE, loaded_modules={"vexfs_crashtest"})
    assert d.fatal[0].kind == "exists"


def test_only_this_modules_lines_count(ko: Path) -> None:
    """Another module's complaint earlier in dmesg is not this load's cause."""
    dmesg = ["vexfs: version magic 'x' should be 'y'", "other: Unknown symbol foo (err -2)",
             "vexfs-loadcheck-0123 marker"]
    d = loadcheck.diagnose(module=ko, rc=1, stderr="Invalid module format", dmesg=dmesg,
                           guest_release=RELEASE)
    assert [c.kind for c in d.fatal] == ["insmod"], d.text()  # only insmod's own message
    assert all("loadcheck" not in e for c in d.causes for e in c.evidence)


def test_long_symbol_lists_are_cut(ko: Path) -> None:
    dmesg = [f"vexfs_crashtest: Unknown symbol jbd2_f{i} (err -2)" for i in range(20)]
    table = {f"jbd2_f{i}": "jbd2" for i in range(20)}
    d = loadcheck.diagnose(module=ko, rc=1, stderr="", dmesg=dmesg, guest_release=RELEASE,
                           guest_symbols=table)
    assert "and 14 more, exported by module jbd2" in d.fatal[0].message
