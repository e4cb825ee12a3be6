"""The Python mirror (vexfs/layout.py) agrees with kernel/uapi/vexfs_fs.h.

A C program is generated from the Python field lists, compiled against the
header with the system gcc, and run: it prints sizeof/offsetof of every struct
and field and the value of every constant, which are compared with ctypes.
The other direction is checked too: every struct, field, macro and enumerator
that the header defines must be mirrored in Python (layout.py, or
vexfs/vector/abi.py for the ioctl ABI).
"""

from __future__ import annotations

import ctypes
import importlib
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from vexfs import layout

REPO = Path(__file__).resolve().parents[2]
HEADER = REPO / "kernel" / "uapi" / "vexfs_fs.h"


def _mirror_modules() -> list[ModuleType]:
    mods: list[ModuleType] = [layout]
    try:
        mods.append(importlib.import_module("vexfs.vector.abi"))
    except ImportError:
        pass
    return mods


def _mirrored_structs() -> dict[str, type]:
    out: dict[str, type] = {}
    for mod in _mirror_modules():
        out.update(getattr(mod, "STRUCTS", {}))
    return out


def _mirrored_constant(name: str):
    for mod in _mirror_modules():
        if hasattr(mod, name):
            return getattr(mod, name)
        consts = getattr(mod, "CONSTANTS", {})
        if name in consts:
            return consts[name]
    return None


def _header_text(header: Path = HEADER) -> str:
    # Strip comments so commented-out text cannot look like a definition.
    text = header.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def header_structs(header: Path = HEADER) -> dict[str, list[str]]:
    """struct name -> field names, parsed from the header."""
    text = _header_text(header)
    out: dict[str, list[str]] = {}
    for m in re.finditer(r"^struct\s+(\w+)\s*\{(.*?)^\}", text, flags=re.S | re.M):
        fields = []
        for decl in m.group(2).split(";"):
            decl = decl.strip()
            if not decl:
                continue
            fm = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", decl)
            assert fm, f"cannot parse field {decl!r} of struct {m.group(1)}"
            fields.append(fm.group(1))
        out[m.group(1)] = fields
    return out


def header_constants(header: Path = HEADER) -> list[str]:
    """Object-like VEXFS_* macros and VEXFS_* enumerators of the header."""
    text = _header_text(header)
    names = re.findall(r"^#define\s+(VEXFS_\w+)(?!\()\s+\S", text, flags=re.M)
    for body in re.findall(r"\benum\b[^{;]*\{(.*?)\}", text, flags=re.S):
        names += re.findall(r"\b(VEXFS_\w+)\b\s*(?:=|,|$)", body)
    return sorted(set(names))


def _c_field_names(cls: type) -> list[str]:
    names = [f[0] for f in cls._fields_]
    flex = getattr(cls, "FLEX_MEMBER", None)
    if flex:
        names.append(flex)
    return names


def _generate_c(structs: dict[str, type], constants: list[str]) -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        '#include "vexfs_fs.h"',
        "#define M(s, f) sizeof(((struct s *)0)->f)",
        "int main(void)",
        "{",
    ]
    for cname, cls in structs.items():
        lines.append(f'\tprintf("S {cname} %zu\\n", sizeof(struct {cname}));')
        for fname, _ in cls._fields_:
            lines.append(f'\tprintf("F {cname} {fname} %zu %zu\\n", '
                         f"offsetof(struct {cname}, {fname}), M({cname}, {fname}));")
        flex = getattr(cls, "FLEX_MEMBER", None)
        if flex:
            lines.append(f'\tprintf("F {cname} {flex} %zu 0\\n", '
                         f"offsetof(struct {cname}, {flex}));")
    for name in constants:
        lines.append(f'\tprintf("C {name} %llu\\n", (unsigned long long)({name}));')
    for n in (0, 1, 2, 3, 4, 5, 255):
        lines.append(f'\tprintf("R {n} %llu\\n", (unsigned long long)VEXFS_DIR_REC_LEN({n}));')
    lines += ["\treturn 0;", "}"]
    return "\n".join(lines) + "\n"


def compile_and_run(tmp: Path, header: Path = HEADER) -> dict:
    """Compile the generated program against ``header`` and parse its output."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is required for the layout test")
    src = tmp / "layout.c"
    exe = tmp / "layout"
    src.write_text(_generate_c(_mirrored_structs(), header_constants(header)))
    subprocess.run(["gcc", "-Wall", "-Werror", "-std=gnu11", f"-I{header.parent}",
                    "-o", str(exe), str(src)], check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    parsed: dict = {"S": {}, "F": {}, "C": {}, "R": {}}
    for line in out.splitlines():
        kind, *rest = line.split()
        if kind == "S":
            parsed["S"][rest[0]] = int(rest[1])
        elif kind == "F":
            parsed["F"][(rest[0], rest[1])] = (int(rest[2]), int(rest[3]))
        elif kind == "C":
            parsed["C"][rest[0]] = int(rest[1])
        elif kind == "R":
            parsed["R"][int(rest[0])] = int(rest[1])
    return parsed


def mismatches(c_output: dict) -> list[str]:
    """Every disagreement between the compiled header and the Python mirror."""
    bad = []
    for cname, cls in _mirrored_structs().items():
        if ctypes.sizeof(cls) != c_output["S"][cname]:
            bad.append(f"sizeof(struct {cname})")
        for fname, _ in cls._fields_:
            field = getattr(cls, fname)
            if (field.offset, field.size) != c_output["F"][(cname, fname)]:
                bad.append(f"{cname}.{fname}")
    for name, value in c_output["C"].items():
        if _mirrored_constant(name) != value:
            bad.append(name)
    return bad


@pytest.fixture(scope="module")
def c_output(tmp_path_factory) -> dict:
    return compile_and_run(tmp_path_factory.mktemp("layout"))


def test_every_header_struct_is_mirrored():
    header = header_structs()
    assert "vexfs_super_block" in header and "vexfs_inode" in header  # parser sanity
    mirrored = _mirrored_structs()
    missing = sorted(set(header) - set(mirrored))
    assert not missing, f"structs in vexfs_fs.h without a Python mirror: {missing}"
    extra = sorted(set(mirrored) - set(header))
    assert not extra, f"Python mirrors structs the header does not define: {extra}"


def test_field_names_and_order_match_header():
    header = header_structs()
    for cname, cls in _mirrored_structs().items():
        assert _c_field_names(cls) == header[cname], cname


def test_struct_sizes(c_output):
    for cname, cls in _mirrored_structs().items():
        assert ctypes.sizeof(cls) == c_output["S"][cname], f"sizeof(struct {cname})"


def test_field_offsets_and_sizes(c_output):
    for cname, cls in _mirrored_structs().items():
        covered = 0
        for fname, _ in cls._fields_:
            field = getattr(cls, fname)
            c_off, c_size = c_output["F"][(cname, fname)]
            assert (field.offset, field.size) == (c_off, c_size), f"{cname}.{fname}"
            # Fields are contiguous: no hole ctypes or C could hide a member in.
            assert field.offset == covered, f"{cname}.{fname} leaves a gap"
            covered += field.size
        assert covered == c_output["S"][cname], f"{cname}: fields do not fill the struct"
        flex = getattr(cls, "FLEX_MEMBER", None)
        if flex:
            assert c_output["F"][(cname, flex)][0] == ctypes.sizeof(cls)


def test_every_constant_matches(c_output):
    names = header_constants()
    assert "VEXFS_MAGIC" in names and "VEXFS_METRIC_IP" in names  # parser sanity
    missing = [n for n in names if _mirrored_constant(n) is None]
    assert not missing, f"constants in vexfs_fs.h without a Python mirror: {missing}"
    for name in names:
        assert _mirrored_constant(name) == c_output["C"][name], name


def test_dir_rec_len_macro(c_output):
    for n, value in c_output["R"].items():
        assert layout.dir_rec_len(n) == value


def test_fixed_sizes_from_header_comments():
    # The header states these sizes in comments; keep the comments honest too.
    assert ctypes.sizeof(layout.SuperBlock) == 256
    assert ctypes.sizeof(layout.Inode) == layout.VEXFS_INODE_SIZE
    assert ctypes.sizeof(layout.Extent) == 24
    assert ctypes.sizeof(layout.ExtentBlockHeader) == 32
    assert ctypes.sizeof(layout.CollectionHeader) == 72
    assert ctypes.sizeof(layout.VectorRecord) == 16
    assert layout.VEXFS_EXTENTS_PER_BLOCK == 169
    assert layout.VEXFS_BITS_PER_BITMAP == 32640


def test_checksum_helpers():
    # CRC-32C check value
    assert layout.crc32c(b"123456789") == 0xE3069283
    sb = layout.SuperBlock(s_magic=layout.VEXFS_MAGIC, s_version=1)
    layout.seal(sb)
    assert layout.struct_checksum_ok(sb)
    raw = bytearray(bytes(sb))
    assert layout.checksum_ok(raw, layout.SB_CHECKSUM_OFF)
    raw[0] ^= 1
    assert not layout.checksum_ok(raw, layout.SB_CHECKSUM_OFF)
    block = bytearray(4096)
    layout.seal_block(block, "dir")
    assert layout.checksum_ok(block, layout.DIR_TAIL_CHECKSUM_OFF)


def test_pack_unpack_roundtrip():
    ino = layout.Inode(i_mode=0o100644, i_size=12345, i_nr_extents=1)
    ino.i_extents[0].ee_start = 99
    ino.i_extents[0].ee_len = 4
    raw = ino.pack()
    assert len(raw) == 256
    back = layout.Inode.unpack(b"\0" * 7 + raw, 7)
    assert back.i_size == 12345 and back.i_extents[0].ee_start == 99
    assert raw[layout.Inode.i_size.offset:][:8] == (12345).to_bytes(8, "little")
    with pytest.raises(ValueError):
        layout.Inode.unpack(raw[:100])


def test_collection_record_size_formula():
    assert layout.collection_record_size(1) == 32
    assert layout.collection_record_size(4) == 32
    assert layout.collection_record_size(5) == 48
    assert layout.collection_record_size(128) == 16 + 512


def test_drift_is_detected(tmp_path):
    """The comparison is not vacuous: a changed field size, a changed
    constant and a new struct in a copy of the header are all caught."""
    text = HEADER.read_text()
    assert "\t__le32\ts_mount_count;" in text
    text = text.replace("\t__le32\ts_mount_count;", "\t__le64\ts_mount_count;")
    text = text.replace("#define VEXFS_INLINE_EXTENTS\t6U", "#define VEXFS_INLINE_EXTENTS\t7U")
    text = text.replace("#endif /* _UAPI_LINUX_VEXFS_FS_H */",
                        "struct vexfs_new_thing {\n\t__le32\tx;\n};\n"
                        "#endif /* _UAPI_LINUX_VEXFS_FS_H */")
    (tmp_path / "inc").mkdir()
    drifted = tmp_path / "inc" / "vexfs_fs.h"
    drifted.write_text(text)
    bad = mismatches(compile_and_run(tmp_path, drifted))
    assert "vexfs_super_block.s_mount_count" in bad
    assert "sizeof(struct vexfs_super_block)" in bad
    assert "VEXFS_INLINE_EXTENTS" in bad
    assert "vexfs_new_thing" in set(header_structs(drifted)) - set(_mirrored_structs())


def test_real_header_has_no_mismatch(c_output):
    assert mismatches(c_output) == []
