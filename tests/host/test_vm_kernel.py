"""Host tests for kernel discovery, modinfo parsing and vmlinux extraction."""

from __future__ import annotations

import lzma
import struct
from pathlib import Path

import pytest

from vexfs.vm import kernel as k
from vexfs.vm.build import BuildError, check_module, parse_modinfo

APT_DEPENDS = """\
linux-headers-amd64
  Depends: linux-headers-6.1.0-56-amd64
"""

APT_DEPENDS_TWO = """\
linux-headers-amd64
  Depends: linux-headers-6.1.0-9-amd64
  Depends: linux-headers-6.1.0-56-amd64
  |Depends: <linux-headers-virtual>
"""

POLICY = """\
linux-image-6.1.0-56-amd64:
  Installed: (none)
  Candidate: 6.1.192-2
  Version table:
     6.1.192-2 500
"""


def test_parse_headers_depends_single() -> None:
    assert k.parse_headers_depends(APT_DEPENDS) == "6.1.0-56-amd64"


def test_parse_headers_depends_picks_newest_numerically() -> None:
    # 56 > 9 numerically, though "9" > "5" as text.
    assert k.parse_headers_depends(APT_DEPENDS_TWO) == "6.1.0-56-amd64"


def test_parse_headers_depends_rejects_garbage() -> None:
    with pytest.raises(k.KernelError):
        k.parse_headers_depends("linux-headers-amd64\n  Depends: linux-kbuild-6.1\n")
    with pytest.raises(k.KernelError):
        k.parse_headers_depends("")


def test_parse_policy_candidate() -> None:
    assert k.parse_policy_candidate(POLICY) == "6.1.192-2"
    with pytest.raises(k.KernelError):
        k.parse_policy_candidate(POLICY.replace("6.1.192-2", "(none)", 1).replace(
            "Candidate: 6.1.192-2", "Candidate: (none)"))


def test_discover_uses_apt_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_run(cmd, cwd=None):
        calls.append(cmd)
        return APT_DEPENDS

    monkeypatch.setattr(k, "_run", fake_run)
    assert k.discover_version() == "6.1.0-56-amd64"
    assert calls == [["apt-cache", "depends", "linux-headers-amd64"]]


def test_ensure_kernel_falls_back_to_cache_when_apt_fails(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEXFS_CACHE", str(tmp_path))
    (tmp_path / "kernel" / "6.1.0-9-amd64").mkdir(parents=True)
    (tmp_path / "kernel" / "6.1.0-9-amd64" / "unpacked.ok").write_text("x")
    (tmp_path / "kernel" / "6.1.0-56-amd64").mkdir(parents=True)
    (tmp_path / "kernel" / "6.1.0-56-amd64" / "unpacked.ok").write_text("x")
    (tmp_path / "kernel" / "6.2.0-1-amd64").mkdir(parents=True)  # not unpacked: ignored

    def offline(cmd, cwd=None):
        raise k.KernelError("apt-cache: network down")

    fetched = []
    monkeypatch.setattr(k, "_run", offline)
    monkeypatch.setattr(k, "fetch", lambda v: fetched.append(v) or v)
    assert k.cached_versions() == ["6.1.0-9-amd64", "6.1.0-56-amd64"]
    assert k.ensure_kernel(headers=False) == "6.1.0-56-amd64"
    assert fetched == ["6.1.0-56-amd64"]


def test_ensure_kernel_offline_without_cache_raises(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEXFS_CACHE", str(tmp_path))

    def offline(cmd, cwd=None):
        raise k.KernelError("apt-cache: network down")

    monkeypatch.setattr(k, "_run", offline)
    with pytest.raises(k.KernelError, match="network down"):
        k.ensure_kernel(headers=False)


def _elf_with_note(name: bytes, ntype: int) -> bytes:
    """A minimal ELF64 with one PT_NOTE program header holding one note."""
    desc = b"\0" * 8
    note = struct.pack("<III", len(name) + 1, len(desc), ntype) + name + b"\0"
    note += b"\0" * (-len(note) % 4) + desc
    phoff = 64
    note_off = phoff + 56
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4] = 2  # ELFCLASS64
    struct.pack_into("<Q", header, 0x20, phoff)
    struct.pack_into("<HH", header, 0x36, 56, 1)
    phdr = struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(note), len(note), 4)
    return bytes(header) + phdr + note


def test_pvh_note_detection() -> None:
    assert k._has_pvh_note(_elf_with_note(b"Xen", 18))
    assert not k._has_pvh_note(_elf_with_note(b"Xen", 17))
    assert not k._has_pvh_note(_elf_with_note(b"GNU", 18))


def test_extract_vmlinux_from_xz_payload(tmp_path: Path) -> None:
    elf = _elf_with_note(b"Xen", 18) + b"kernel text" * 100
    # A fake bzImage: setup code, then the xz stream, then trailing bytes.
    bz = tmp_path / "vmlinuz"
    bz.write_bytes(b"\x00MZ setup code" * 50 + lzma.compress(elf, format=lzma.FORMAT_XZ) + b"tail")
    out = tmp_path / "vmlinux"
    k.extract_vmlinux(bz, out)
    assert out.read_bytes() == elf


def test_extract_vmlinux_without_pvh_fails(tmp_path: Path) -> None:
    bz = tmp_path / "vmlinuz"
    bz.write_bytes(b"setup" + lzma.compress(_elf_with_note(b"Xen", 5), format=lzma.FORMAT_XZ))
    with pytest.raises(k.KernelError, match="PVH"):
        k.extract_vmlinux(bz, tmp_path / "vmlinux")
    assert not (tmp_path / "vmlinux").exists()


MODINFO = """\
filename:       /work/main/kernel/build/vexfs.ko
version:        0.2.0
description:    VexFS: a vector-native extent filesystem
license:        GPL
srcversion:     981F87CEFC674700E1137B3
depends:        
retpoline:      Y
name:           vexfs
vermagic:       6.1.0-56-amd64 SMP preempt mod_unload modversions 
"""


def test_parse_modinfo() -> None:
    info = parse_modinfo(MODINFO, Path("vexfs.ko"))
    assert info.name == "vexfs"
    assert info.version == "0.2.0"
    assert info.srcversion == "981F87CEFC674700E1137B3"
    assert info.license == "GPL"
    assert info.kernel_release == "6.1.0-56-amd64"


def test_check_module_rejects_other_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ko = tmp_path / "vexfs.ko"
    ko.write_bytes(b"\x7fELF")
    import vexfs.vm.build as build

    monkeypatch.setattr(build, "modinfo", lambda p: parse_modinfo(
        MODINFO.replace("6.1.0-56-amd64 SMP", "6.18.44-custom SMP"), p))
    guest = k.GuestKernel(version="6.1.0-56-amd64", root=tmp_path)
    with pytest.raises(BuildError, match="built for kernel 6.18.44-custom"):
        check_module(ko, guest)
    monkeypatch.setattr(build, "modinfo", lambda p: parse_modinfo(MODINFO, p))
    assert check_module(ko, guest).version == "0.2.0"


def test_check_module_missing_file(tmp_path: Path) -> None:
    guest = k.GuestKernel(version="6.1.0-56-amd64", root=tmp_path)
    with pytest.raises(BuildError, match="does not exist"):
        check_module(tmp_path / "nope.ko", guest)
