"""Python mirror of the VexFS on-disk format in ``kernel/uapi/vexfs_fs.h``.

The C header is the single source of truth. Everything here repeats it with
ctypes so that ``sizeof``/``offsetof`` come for free, and
``tests/host/test_layout.py`` compiles a C program against the header and
compares every struct, field and constant with the definitions below: any drift
between the two fails the test.

All on-disk integers are little endian; the structs are
``LittleEndianStructure`` with ``_pack_ = 1`` (the header pads explicitly, so
packing changes nothing, it only guarantees ctypes adds no padding of its own).

Checksums are standard CRC-32C over the struct/block with its own checksum
field zeroed; the helpers here compute, set and verify them.
"""

from __future__ import annotations

import ctypes
import stat
from typing import Callable, TypeVar


def _load_crc32c() -> Callable[[bytes], int]:
    """The crc32c package's C function, loaded without running the package's
    __init__ (which imports importlib.metadata and argparse: seconds of start-up
    under TCG, where mkfs.vexfs and fsck.vexfs run in the test VM)."""
    import importlib.machinery
    import importlib.util
    import os
    try:
        spec = importlib.util.find_spec("crc32c")
        for d in (spec.submodule_search_locations or []) if spec else []:
            for name in os.listdir(d):
                if name.startswith("_crc32c.") and name.endswith(".so"):
                    loader = importlib.machinery.ExtensionFileLoader(
                        "crc32c._crc32c", os.path.join(d, name))
                    ext_spec = importlib.util.spec_from_loader("crc32c._crc32c", loader)
                    mod = importlib.util.module_from_spec(ext_spec)
                    loader.exec_module(mod)
                    return mod.crc32c
    except (ImportError, OSError):
        pass
    import crc32c
    return crc32c.crc32c


_crc32c_fn = _load_crc32c()

# --------------------------------------------------------------------------
# Constants (same names as the C macros / enumerators)
# --------------------------------------------------------------------------

VEXFS_MAGIC = 0x58455656
VEXFS_FORMAT_VERSION = 1
VEXFS_BLOCK_SIZE = 4096
VEXFS_BLOCK_BITS = 12
VEXFS_INODE_SIZE = 256
VEXFS_INODES_PER_BLOCK = VEXFS_BLOCK_SIZE // VEXFS_INODE_SIZE
VEXFS_ROOT_INO = 1
VEXFS_NAME_LEN = 255
VEXFS_LABEL_LEN = 64
VEXFS_MIN_BLOCKS = 64
VEXFS_MIN_JOURNAL_BLOCKS = 1024

VEXFS_FEATURE_COMPAT_HAS_JOURNAL = 0x1
VEXFS_FEATURE_COMPAT_SUPP = VEXFS_FEATURE_COMPAT_HAS_JOURNAL
VEXFS_FEATURE_INCOMPAT_EXTENTS = 0x1
VEXFS_FEATURE_INCOMPAT_RECOVER = 0x2
VEXFS_FEATURE_INCOMPAT_XATTR = 0x4
VEXFS_FEATURE_INCOMPAT_SUPP = (VEXFS_FEATURE_INCOMPAT_EXTENTS | VEXFS_FEATURE_INCOMPAT_RECOVER
                               | VEXFS_FEATURE_INCOMPAT_XATTR)
VEXFS_FEATURE_RO_COMPAT_COLLECTIONS = 0x1
VEXFS_FEATURE_RO_COMPAT_ANN_INDEX = 0x4
VEXFS_FEATURE_RO_COMPAT_SUPP = (VEXFS_FEATURE_RO_COMPAT_COLLECTIONS
                                | VEXFS_FEATURE_RO_COMPAT_ANN_INDEX)

VEXFS_STATE_CLEAN = 0x0001
VEXFS_STATE_ERROR = 0x0002

VEXFS_BITMAP_MAGIC = 0x504D4256
VEXFS_BITMAP_BYTES = VEXFS_BLOCK_SIZE - 16
VEXFS_BITS_PER_BITMAP = VEXFS_BITMAP_BYTES * 8

VEXFS_INLINE_EXTENTS = 6
VEXFS_EXTENT_BLOCK_MAGIC = 0x54584556
VEXFS_EXTENTS_PER_BLOCK = (VEXFS_BLOCK_SIZE - 32) // 24

VEXFS_INODE_FL_COLLECTION = 0x00000001
VEXFS_INODE_FL_SYNC = 0x00000008
VEXFS_INODE_FL_IMMUTABLE = 0x00000010
VEXFS_INODE_FL_APPEND = 0x00000020
VEXFS_INODE_FL_NODUMP = 0x00000040
VEXFS_INODE_FL_NOATIME = 0x00000080
VEXFS_INODE_FL_USER = (VEXFS_INODE_FL_SYNC | VEXFS_INODE_FL_IMMUTABLE | VEXFS_INODE_FL_APPEND
                       | VEXFS_INODE_FL_NODUMP | VEXFS_INODE_FL_NOATIME)
VEXFS_INODE_FL_ALL = VEXFS_INODE_FL_COLLECTION | VEXFS_INODE_FL_USER

VEXFS_XATTR_MAGIC = 0x54415856
VEXFS_XATTR_INDEX_USER = 1
VEXFS_XATTR_INDEX_ACL_ACCESS = 2
VEXFS_XATTR_INDEX_ACL_DEFAULT = 3
VEXFS_XATTR_INDEX_TRUSTED = 4
VEXFS_XATTR_INDEX_SECURITY = 6
VEXFS_XATTR_HEADER = 32
VEXFS_XATTR_ENTRY_HEADER = 4
VEXFS_XATTR_SPACE = VEXFS_BLOCK_SIZE - VEXFS_XATTR_HEADER

VEXFS_DIR_ENTRY_HEADER = 8
VEXFS_DIR_TAIL_MAGIC = 0x52494456
VEXFS_DIR_DATA_BYTES = VEXFS_BLOCK_SIZE - 8

VEXFS_FT_UNKNOWN = 0
VEXFS_FT_REG_FILE = 1
VEXFS_FT_DIR = 2
VEXFS_FT_CHRDEV = 3
VEXFS_FT_BLKDEV = 4
VEXFS_FT_FIFO = 5
VEXFS_FT_SOCK = 6
VEXFS_FT_SYMLINK = 7

VEXFS_COLLECTION_MAGIC = 0x4C434556
VEXFS_COLLECTION_VERSION = 1
VEXFS_DATA_OFFSET = 4096
VEXFS_MAX_DIM = 4096

# ANN index of a collection (kernel/uapi/vexfs_fs.h, "ANN index")
VEXFS_COLL_FL_INDEX = 0x1
VEXFS_COLL_FLAGS = VEXFS_COLL_FL_INDEX
VEXFS_INDEX_BASE = 1 << 40
VEXFS_INDEX_ASSIGN_OFF = 4096
VEXFS_INDEX_CENT_OFF = 1 << 35
VEXFS_INDEX_MAGIC = 0x46564956
VEXFS_INDEX_VERSION = 1
VEXFS_INDEX_MAX_NLIST = 16384
VEXFS_INDEX_KIND_IVF = 1

VEXFS_METRIC_L2 = 0
VEXFS_METRIC_COSINE = 1
VEXFS_METRIC_IP = 2

VEXFS_IOC_MAGIC = ord("V")

METRIC_NAMES = {VEXFS_METRIC_L2: "l2", VEXFS_METRIC_COSINE: "cosine", VEXFS_METRIC_IP: "ip"}

#: Every constant the header defines, by its C name (the layout test walks this).
CONSTANTS: dict[str, int] = {
    name: value
    for name, value in dict(globals()).items()
    if name.startswith("VEXFS_") and isinstance(value, int)
}


def dir_rec_len(name_len: int) -> int:
    """VEXFS_DIR_REC_LEN(): bytes a directory entry with this name needs."""
    return (VEXFS_DIR_ENTRY_HEADER + name_len + 3) & ~3


def xattr_rec_len(name_len: int, value_size: int) -> int:
    """VEXFS_XATTR_REC_LEN(): bytes an xattr entry takes in its block."""
    return (VEXFS_XATTR_ENTRY_HEADER + name_len + value_size + 3) & ~3


#: xattr name index -> the prefix of the full name (the ACL ones are whole names)
XATTR_PREFIXES = {
    VEXFS_XATTR_INDEX_USER: "user.",
    VEXFS_XATTR_INDEX_ACL_ACCESS: "system.posix_acl_access",
    VEXFS_XATTR_INDEX_ACL_DEFAULT: "system.posix_acl_default",
    VEXFS_XATTR_INDEX_TRUSTED: "trusted.",
    VEXFS_XATTR_INDEX_SECURITY: "security.",
}


def collection_record_size(dim: int) -> int:
    """c_record_size for a dimension: 16-byte record header + dim rounded to 4 floats."""
    return 16 + 4 * ((dim + 3) // 4 * 4)


# --------------------------------------------------------------------------
# Structs
# --------------------------------------------------------------------------

u8 = ctypes.c_uint8
le16 = ctypes.c_uint16
le32 = ctypes.c_uint32
le64 = ctypes.c_uint64


_S = TypeVar("_S", bound="_Struct")


class _Struct(ctypes.LittleEndianStructure):
    _pack_ = 1

    #: name of the C struct this mirrors
    C_NAME = ""

    @classmethod
    def unpack(cls: type[_S], data: bytes | bytearray | memoryview, offset: int = 0) -> _S:
        """A copy of the struct read from ``data`` at ``offset``."""
        size = ctypes.sizeof(cls)
        if len(data) - offset < size:
            raise ValueError(f"{cls.C_NAME}: need {size} bytes at offset {offset}, "
                             f"have {len(data) - offset}")
        return cls.from_buffer_copy(bytes(data[offset:offset + size]))

    def pack(self) -> bytes:
        return bytes(self)

    def to_dict(self) -> dict:
        out: dict = {}
        for name, _ in self._fields_:
            value = getattr(self, name)
            if isinstance(value, ctypes.Array):
                value = [v.to_dict() if isinstance(v, _Struct) else v for v in value]
            out[name] = value
        return out


class SuperBlock(_Struct):
    C_NAME = "vexfs_super_block"
    _fields_ = [
        ("s_magic", le32),
        ("s_version", le32),
        ("s_feature_compat", le32),
        ("s_feature_incompat", le32),
        ("s_feature_ro_compat", le32),
        ("s_block_size", le32),
        ("s_blocks_count", le64),
        ("s_free_blocks", le64),
        ("s_inodes_count", le32),
        ("s_free_inodes", le32),
        ("s_ibitmap_start", le64),
        ("s_bbitmap_start", le64),
        ("s_itable_start", le64),
        ("s_data_start", le64),
        ("s_ibitmap_blocks", le32),
        ("s_bbitmap_blocks", le32),
        ("s_itable_blocks", le32),
        ("s_root_ino", le32),
        ("s_state", le16),
        ("s_inode_size", le16),
        ("s_mount_count", le32),
        ("s_mkfs_time", le64),
        ("s_mount_time", le64),
        ("s_write_time", le64),
        ("s_uuid", u8 * 16),
        ("s_label", u8 * VEXFS_LABEL_LEN),
        ("s_journal_start", le64),
        ("s_journal_blocks", le32),
        ("s_reserved", le32 * 8),
        ("s_checksum", le32),
    ]

    @property
    def label(self) -> str:
        return bytes(self.s_label).rstrip(b"\0").decode("utf-8", "replace")

    @property
    def uuid_bytes(self) -> bytes:
        return bytes(self.s_uuid)


class BitmapHeader(_Struct):
    C_NAME = "vexfs_bitmap_header"
    _fields_ = [
        ("bh_magic", le32),
        ("bh_checksum", le32),
        ("bh_index", le64),
    ]


class Extent(_Struct):
    C_NAME = "vexfs_extent"
    _fields_ = [
        ("ee_logical", le64),
        ("ee_start", le64),
        ("ee_len", le32),
        ("ee_reserved", le32),
    ]


class ExtentBlockHeader(_Struct):
    C_NAME = "vexfs_extent_block_header"
    _fields_ = [
        ("eb_magic", le32),
        ("eb_checksum", le32),
        ("eb_next", le64),
        ("eb_count", le32),
        ("eb_ino", le32),
        ("eb_reserved", le64),
    ]


class Inode(_Struct):
    C_NAME = "vexfs_inode"
    _fields_ = [
        ("i_mode", le16),
        ("i_links_count", le16),
        ("i_uid", le32),
        ("i_gid", le32),
        ("i_flags", le32),
        ("i_size", le64),
        ("i_blocks", le64),
        ("i_atime", ctypes.c_int64),
        ("i_mtime", ctypes.c_int64),
        ("i_ctime", ctypes.c_int64),
        ("i_crtime", ctypes.c_int64),
        ("i_atime_nsec", le32),
        ("i_mtime_nsec", le32),
        ("i_ctime_nsec", le32),
        ("i_crtime_nsec", le32),
        ("i_generation", le32),
        ("i_nr_extents", le32),
        ("i_extent_block", le64),
        ("i_rdev", le32),
        ("i_xattr_lo", le32),
        ("i_extents", Extent * VEXFS_INLINE_EXTENTS),
        ("i_xattr_hi", le32),
        ("i_checksum", le32),
    ]


class DirEntry(_Struct):
    """The fixed 8-byte head of a directory entry; the name follows it."""

    C_NAME = "vexfs_dir_entry"
    _fields_ = [
        ("d_inode", le32),
        ("d_rec_len", le16),
        ("d_name_len", u8),
        ("d_file_type", u8),
    ]
    #: the flexible array member (d_name[]) at the end of the C struct
    FLEX_MEMBER = "d_name"


class DirTail(_Struct):
    C_NAME = "vexfs_dir_tail"
    _fields_ = [
        ("dt_magic", le32),
        ("dt_checksum", le32),
    ]


class CollectionHeader(_Struct):
    C_NAME = "vexfs_collection_header"
    _fields_ = [
        ("c_magic", le32),
        ("c_version", le32),
        ("c_dim", le32),
        ("c_metric", le32),
        ("c_count", le64),
        ("c_record_size", le32),
        ("c_flags", le32),
        ("c_reserved", le64 * 4),
        ("c_reserved2", le32),
        ("c_checksum", le32),
    ]


class XattrHeader(_Struct):
    C_NAME = "vexfs_xattr_header"
    _fields_ = [
        ("xh_magic", le32),
        ("xh_checksum", le32),
        ("xh_ino", le32),
        ("xh_count", le16),
        ("xh_used", le16),
        ("xh_reserved", le64 * 2),
    ]


class XattrEntry(_Struct):
    """The fixed 4-byte head of an xattr entry; name and value follow it."""

    C_NAME = "vexfs_xattr_entry"
    _fields_ = [
        ("e_name_index", u8),
        ("e_name_len", u8),
        ("e_value_size", le16),
    ]
    FLEX_MEMBER = "e_name"


class IndexHeader(_Struct):
    C_NAME = "vexfs_index_header"
    _fields_ = [
        ("x_magic", le32),
        ("x_version", le32),
        ("x_kind", le32),
        ("x_nlist", le32),
        ("x_dim", le32),
        ("x_metric", le32),
        ("x_nprobe", le32),
        ("x_flags", le32),
        ("x_alloc", le64),
        ("x_reserved", le64 * 2),
        ("x_reserved2", le32),
        ("x_checksum", le32),
    ]


class VectorRecord(_Struct):
    C_NAME = "vexfs_vector_record"
    _fields_ = [
        ("r_id", le64),
        ("r_flags", le32),
        ("r_reserved", le32),
    ]


#: Every on-disk struct, by C name. The layout test checks each against the header.
STRUCTS: dict[str, type[_Struct]] = {
    cls.C_NAME: cls
    for cls in (SuperBlock, BitmapHeader, Extent, ExtentBlockHeader, Inode, DirEntry,
                DirTail, CollectionHeader, IndexHeader, VectorRecord, XattrHeader,
                XattrEntry)
}

# Byte offsets used all over the tools.
SB_CHECKSUM_OFF = SuperBlock.s_checksum.offset
INODE_CHECKSUM_OFF = Inode.i_checksum.offset
BITMAP_CHECKSUM_OFF = BitmapHeader.bh_checksum.offset
EXTENT_BLOCK_CHECKSUM_OFF = ExtentBlockHeader.eb_checksum.offset
DIR_TAIL_OFF = VEXFS_DIR_DATA_BYTES
DIR_TAIL_CHECKSUM_OFF = DIR_TAIL_OFF + DirTail.dt_checksum.offset
COLLECTION_HEADER_SIZE = ctypes.sizeof(CollectionHeader)
COLLECTION_CHECKSUM_OFF = CollectionHeader.c_checksum.offset
INDEX_HEADER_SIZE = ctypes.sizeof(IndexHeader)
EXTENT_BLOCK_HEADER_SIZE = ctypes.sizeof(ExtentBlockHeader)
EXTENT_SIZE = ctypes.sizeof(Extent)
XATTR_CHECKSUM_OFF = XattrHeader.xh_checksum.offset

# --------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """Standard CRC-32C (what the kernel computes as ~__crc32c_le(~0, ...))."""
    return _crc32c_fn(bytes(data)) & 0xFFFFFFFF


def crc32c_continue(data: bytes | bytearray | memoryview, value: int) -> int:
    """Standard CRC-32C of a stream whose earlier part had CRC ``value``."""
    return _crc32c_fn(bytes(data), value) & 0xFFFFFFFF


def checksum_with_zeroed(data: bytes | bytearray | memoryview, csum_off: int,
                         length: int | None = None) -> int:
    """CRC-32C of ``data[:length]`` with the 4 bytes at ``csum_off`` read as zero."""
    buf = bytearray(data[:length] if length is not None else data)
    buf[csum_off:csum_off + 4] = b"\0\0\0\0"
    return crc32c(buf)


def stored_checksum(data: bytes | bytearray | memoryview, csum_off: int) -> int:
    return int.from_bytes(bytes(data[csum_off:csum_off + 4]), "little")


def set_checksum(buf: bytearray, csum_off: int, length: int | None = None) -> int:
    """Compute and store the checksum in place; returns it."""
    value = checksum_with_zeroed(buf, csum_off, length)
    buf[csum_off:csum_off + 4] = value.to_bytes(4, "little")
    return value


def checksum_ok(data: bytes | bytearray | memoryview, csum_off: int,
                length: int | None = None) -> bool:
    return stored_checksum(data, csum_off) == checksum_with_zeroed(data, csum_off, length)


T = TypeVar("T", bound=_Struct)

_CSUM_FIELD = {
    SuperBlock: "s_checksum",
    Inode: "i_checksum",
    CollectionHeader: "c_checksum",
    IndexHeader: "x_checksum",
}


def struct_checksum(obj: _Struct) -> int:
    """The checksum a struct with its own checksum field (sb, inode, collection) should have."""
    field = getattr(type(obj), _CSUM_FIELD[type(obj)])
    return checksum_with_zeroed(bytes(obj), field.offset)


def seal(obj: T) -> T:
    """Set the struct's checksum field from its content and return it."""
    setattr(obj, _CSUM_FIELD[type(obj)], struct_checksum(obj))
    return obj


def struct_checksum_ok(obj: _Struct) -> bool:
    return getattr(obj, _CSUM_FIELD[type(obj)]) == struct_checksum(obj)


def seal_block(block: bytearray, kind: str) -> None:
    """Set the whole-block checksum of a bitmap, extent or directory block."""
    off = {"bitmap": BITMAP_CHECKSUM_OFF, "extent": EXTENT_BLOCK_CHECKSUM_OFF,
           "dir": DIR_TAIL_CHECKSUM_OFF}[kind]
    set_checksum(block, off)


# --------------------------------------------------------------------------
# Mode / file type helpers
# --------------------------------------------------------------------------

_FT_BY_IFMT = {
    stat.S_IFREG: VEXFS_FT_REG_FILE,
    stat.S_IFDIR: VEXFS_FT_DIR,
    stat.S_IFCHR: VEXFS_FT_CHRDEV,
    stat.S_IFBLK: VEXFS_FT_BLKDEV,
    stat.S_IFIFO: VEXFS_FT_FIFO,
    stat.S_IFSOCK: VEXFS_FT_SOCK,
    stat.S_IFLNK: VEXFS_FT_SYMLINK,
}
FT_NAMES = {
    VEXFS_FT_UNKNOWN: "unknown", VEXFS_FT_REG_FILE: "regular file",
    VEXFS_FT_DIR: "directory", VEXFS_FT_CHRDEV: "character device",
    VEXFS_FT_BLKDEV: "block device", VEXFS_FT_FIFO: "fifo",
    VEXFS_FT_SOCK: "socket", VEXFS_FT_SYMLINK: "symlink",
}


def file_type_of_mode(mode: int) -> int | None:
    """VEXFS_FT_* for an i_mode, or None if the S_IFMT bits name no file type."""
    return _FT_BY_IFMT.get(stat.S_IFMT(mode))


def mode_valid(mode: int) -> bool:
    return file_type_of_mode(mode) is not None


# --------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------


def div_round_up(a: int, b: int) -> int:
    return (a + b - 1) // b


def ibitmap_blocks_for(inodes: int) -> int:
    return div_round_up(inodes, VEXFS_BITS_PER_BITMAP)


def bbitmap_blocks_for(blocks: int) -> int:
    return div_round_up(blocks, VEXFS_BITS_PER_BITMAP)


def itable_blocks_for(inodes: int) -> int:
    return div_round_up(inodes, VEXFS_INODES_PER_BLOCK)
