"""Extended attribute blocks (``kernel/uapi/vexfs_fs.h``, "Extended attributes").

One block per inode: a 32-byte ``XattrHeader``, then ``xh_count`` packed
entries (4-byte head, name without its prefix, value, zero padding to 4
bytes). ``parse_xattr_block`` checks a block as the kernel does
(``kernel/xattr.c`` ``vexfs_xattr_check``) and returns its entries;
``build_xattr_block`` makes one (mkfs.vexfs -d, fsck repairs). POSIX ACL
values are in the Linux xattr form; ``acl_problem`` checks one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from vexfs import layout as L

BS = L.VEXFS_BLOCK_SIZE
ACL_XATTR_VERSION = 2
#: POSIX ACL entry tags (linux/posix_acl.h)
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 1, 2, 4, 8, 16, 32
ACL_TAGS = {ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER}
ACL_INDEXES = (L.VEXFS_XATTR_INDEX_ACL_ACCESS, L.VEXFS_XATTR_INDEX_ACL_DEFAULT)


@dataclass(frozen=True)
class Xattr:
    index: int
    name: bytes
    value: bytes

    @property
    def full_name(self) -> str:
        """The name getfattr shows (prefix + name)."""
        return L.XATTR_PREFIXES[self.index] + self.name.decode("utf-8", "surrogateescape")


@dataclass
class XattrBlock:
    entries: list[Xattr] = field(default_factory=list)
    #: structural problems (the block cannot be used as it is)
    problems: list[str] = field(default_factory=list)
    #: the structure is fine but the checksum is not
    bad_checksum: bool = False


def index_ok(index: int, name_len: int) -> bool:
    if index in (L.VEXFS_XATTR_INDEX_USER, L.VEXFS_XATTR_INDEX_TRUSTED,
                 L.VEXFS_XATTR_INDEX_SECURITY):
        return name_len > 0
    return index in ACL_INDEXES and name_len == 0


def parse_xattr_block(data: bytes, ino: int) -> XattrBlock:
    """The entries of xattr block ``data`` owned by inode ``ino``."""
    out = XattrBlock()
    if len(data) != BS:
        out.problems.append(f"block is {len(data)} bytes")
        return out
    h = L.XattrHeader.unpack(data)
    if h.xh_magic != L.VEXFS_XATTR_MAGIC:
        out.problems.append(f"bad magic 0x{h.xh_magic:08x}")
        return out
    if h.xh_ino != ino:
        out.problems.append(f"owned by inode {h.xh_ino}")
        return out
    used, count = h.xh_used, h.xh_count
    if not L.VEXFS_XATTR_HEADER <= used <= BS or count > L.VEXFS_XATTR_SPACE // 4:
        out.problems.append(f"bad header (xh_used {used}, xh_count {count})")
        return out
    off = L.VEXFS_XATTR_HEADER
    seen: set[tuple[int, bytes]] = set()
    for i in range(count):
        if used - off < L.VEXFS_XATTR_ENTRY_HEADER:
            out.problems.append(f"entry {i} past the end")
            return out
        e = L.XattrEntry.unpack(data, off)
        rec = L.xattr_rec_len(e.e_name_len, e.e_value_size)
        if rec > used - off:
            out.problems.append(f"entry {i} past the end")
            return out
        if not index_ok(e.e_name_index, e.e_name_len):
            out.problems.append(f"entry {i}: bad name index {e.e_name_index}")
            return out
        name_at = off + L.VEXFS_XATTR_ENTRY_HEADER
        name = bytes(data[name_at:name_at + e.e_name_len])
        value = bytes(data[name_at + e.e_name_len:name_at + e.e_name_len + e.e_value_size])
        key = (e.e_name_index, name)
        if key in seen:
            out.problems.append(f"entry {i}: duplicate name {L.XATTR_PREFIXES[key[0]]}"
                                f"{name.decode('utf-8', 'replace')}")
            return out
        seen.add(key)
        out.entries.append(Xattr(e.e_name_index, name, value))
        off += rec
    if off != used:
        out.problems.append(f"entries end at {off}, xh_used is {used}")
        return out
    if any(data[used:]):
        out.problems.append("bytes past xh_used are not zero")
        return out
    if L.checksum_with_zeroed(data, L.XATTR_CHECKSUM_OFF) != h.xh_checksum:
        out.bad_checksum = True
    return out


def xattr_space(entries: list[Xattr]) -> int:
    """Bytes the entries need after the header."""
    return sum(L.xattr_rec_len(len(x.name), len(x.value)) for x in entries)


def build_xattr_block(entries: list[Xattr], ino: int) -> bytes:
    """A sealed xattr block holding ``entries``; ValueError if they do not fit."""
    need = xattr_space(entries)
    if need > L.VEXFS_XATTR_SPACE:
        raise ValueError(f"xattrs need {need} bytes, one block holds "
                         f"{L.VEXFS_XATTR_SPACE}")
    block = bytearray(BS)
    off = L.VEXFS_XATTR_HEADER
    for x in entries:
        if not index_ok(x.index, len(x.name)) or len(x.name) > 255:
            raise ValueError(f"bad xattr name {x.index}:{x.name!r}")
        head = L.XattrEntry(e_name_index=x.index, e_name_len=len(x.name),
                            e_value_size=len(x.value))
        block[off:off + 4] = bytes(head)
        block[off + 4:off + 4 + len(x.name) + len(x.value)] = x.name + x.value
        off += L.xattr_rec_len(len(x.name), len(x.value))
    h = L.XattrHeader(xh_magic=L.VEXFS_XATTR_MAGIC, xh_ino=ino, xh_count=len(entries),
                      xh_used=off)
    block[:L.VEXFS_XATTR_HEADER] = bytes(h)
    csum = L.checksum_with_zeroed(block, L.XATTR_CHECKSUM_OFF)
    struct.pack_into("<I", block, L.XATTR_CHECKSUM_OFF, csum)
    return bytes(block)


def acl_problem(value: bytes) -> str | None:
    """Why ``value`` is not a valid POSIX ACL xattr (as posix_acl_from_xattr
    and posix_acl_valid would refuse it), or None."""
    if len(value) < 4 or (len(value) - 4) % 8:
        return f"ACL of {len(value)} bytes is not a 4-byte header + 8-byte entries"
    (version,) = struct.unpack_from("<I", value)
    if version != ACL_XATTR_VERSION:
        return f"ACL version {version} (expected {ACL_XATTR_VERSION})"
    tags = [struct.unpack_from("<HHI", value, 4 + 8 * i) for i in range((len(value) - 4) // 8)]
    kinds = [t for t, _, _ in tags]
    if any(t not in ACL_TAGS for t in kinds):
        return f"unknown ACL tag in {kinds}"
    if any(perm & ~7 for _, perm, _ in tags):
        return "ACL permission bits beyond rwx"
    for one in (ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER):
        if kinds.count(one) != 1:
            return f"ACL has {kinds.count(one)} entries of tag {one} (needs exactly 1)"
    if kinds != sorted(kinds):
        return "ACL entries are not sorted by tag"
    named = ACL_USER in kinds or ACL_GROUP in kinds
    if named and kinds.count(ACL_MASK) != 1:
        return "ACL with named entries has no mask entry"
    return None


def entry_problem(x: Xattr) -> str | None:
    """Why a well-formed entry's value is invalid (only ACLs are checked)."""
    if x.index in ACL_INDEXES:
        return acl_problem(x.value)
    return None


def xattr_block_of(inode: L.Inode) -> int:
    """The inode's xattr block number (0 = none)."""
    return int(inode.i_xattr_hi) << 32 | int(inode.i_xattr_lo)


def set_xattr_block(inode: L.Inode, blk: int) -> None:
    inode.i_xattr_lo = blk & 0xFFFFFFFF
    inode.i_xattr_hi = blk >> 32
