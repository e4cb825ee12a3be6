"""Fill a filesystem from a host directory tree (``mkfs.vexfs -d DIR``, as
``mke2fs -d``): files (holes kept), directories, symlinks, hard links,
device nodes, fifos and sockets, with their permission bits, owners and
times; ``.npy`` files become vector collections when asked. Extended
attributes (user.*, trusted.*, security.*, POSIX ACLs) are copied too, one
xattr block per inode that has any; attributes of other namespaces are
skipped with a warning.

``plan_tree`` walks the tree first, read-only, so mkfs can refuse a tree
that does not fit (or cannot be read) before it touches the target.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field

from vexfs import layout as L
from vexfs.fs.errors import FormatError
from vexfs.fs.writer import FsWriter
from vexfs.fs.xattr import Xattr, xattr_space

log = logging.getLogger(__name__)

BS = L.VEXFS_BLOCK_SIZE


@dataclass
class TreePlan:
    root: str
    #: (relative path, lstat) in the order they are created (parents first)
    entries: list[tuple[str, os.stat_result]] = field(default_factory=list)
    inodes: int = 0
    blocks: int = 0
    npy_collections: bool = False
    #: relative path ("" = the root) -> its extended attributes
    xattrs: dict[str, list[Xattr]] = field(default_factory=dict)
    #: names skipped (namespaces VexFS does not store)
    skipped_xattrs: list[str] = field(default_factory=list)


_XATTR_NAMESPACES = [(prefix, index) for index, prefix in L.XATTR_PREFIXES.items()]


def read_xattrs(path: str, plan: TreePlan | None = None) -> list[Xattr]:
    """The extended attributes of ``path`` (not following a symlink) that
    VexFS can store; FormatError if they do not fit in one xattr block."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []                       # no xattr support on the source
    out: list[Xattr] = []
    for full in sorted(names):
        for prefix, index in _XATTR_NAMESPACES:
            whole = index in (L.VEXFS_XATTR_INDEX_ACL_ACCESS, L.VEXFS_XATTR_INDEX_ACL_DEFAULT)
            if (whole and full == prefix) or (not whole and full.startswith(prefix)
                                                and len(full) > len(prefix)):
                break
        else:
            if plan is not None:
                plan.skipped_xattrs.append(f"{path}: {full}")
            continue
        try:
            value = os.getxattr(path, full, follow_symlinks=False)
        except OSError as e:
            raise FormatError(f"{path}: cannot read xattr {full}: {e.strerror}") from None
        name = b"" if whole else os.fsencode(full[len(prefix):])
        out.append(Xattr(index, name, value))
    if xattr_space(out) > L.VEXFS_XATTR_SPACE:
        raise FormatError(f"{path}: its extended attributes need {xattr_space(out)} bytes; "
                          f"VexFS holds {L.VEXFS_XATTR_SPACE} per inode")
    return out


def _npy_shape(path: str) -> tuple[int, int]:
    """(rows, dim) of a 2-D numeric .npy file, read from its header only."""
    import numpy as np
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except (ValueError, OSError) as e:
        raise FormatError(f"{path}: not a readable .npy file: {e}") from None
    if len(shape) != 2 or dtype.kind not in "fiu":
        raise FormatError(f"{path}: a collection needs a 2-D numeric array, this one is "
                          f"{dtype} with shape {shape}")
    if not 1 <= shape[1] <= L.VEXFS_MAX_DIM:
        raise FormatError(f"{path}: dimension {shape[1]} is outside 1..{L.VEXFS_MAX_DIM}")
    return int(shape[0]), int(shape[1])


def plan_tree(root: str, npy_collections: bool = False) -> TreePlan:
    """Walk ``root`` (without following symlinks) and count what it needs."""
    if not os.path.isdir(root):
        raise FormatError(f"{root}: not a directory (for -d)")
    plan = TreePlan(root, npy_collections=npy_collections)
    root_x = read_xattrs(root, plan)
    if root_x:
        plan.xattrs[""] = root_x
        plan.blocks += 1
    seen_links: set[tuple[int, int]] = set()
    dir_bytes: dict[str, int] = {}
    todo = [""]
    while todo:
        rel = todo.pop(0)
        full = os.path.join(root, rel) if rel else root
        try:
            names = sorted(os.listdir(full))
        except OSError as e:
            raise FormatError(f"{full}: cannot read the directory: {e.strerror}") from None
        used = 2 * L.dir_rec_len(2)
        for name in names:
            if len(name.encode("utf-8", "surrogateescape")) > L.VEXFS_NAME_LEN:
                raise FormatError(f"{os.path.join(full, name)}: name longer than "
                                  f"{L.VEXFS_NAME_LEN} bytes")
            crel = os.path.join(rel, name) if rel else name
            cfull = os.path.join(root, crel)
            st = os.lstat(cfull)
            plan.entries.append((crel, st))
            used += L.dir_rec_len(len(name.encode("utf-8", "surrogateescape")))
            key = (st.st_dev, st.st_ino)
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1 and key in seen_links:
                continue                      # a hard link: no new inode or data
            seen_links.add(key)
            plan.inodes += 1
            xs = read_xattrs(cfull, plan)
            if xs:
                plan.xattrs[crel] = xs
                plan.blocks += 1
            if stat.S_ISDIR(st.st_mode):
                todo.append(crel)
            elif stat.S_ISREG(st.st_mode):
                if not os.access(cfull, os.R_OK):
                    raise FormatError(f"{cfull}: cannot read the file")
                size = st.st_size
                if npy_collections and name.endswith(".npy"):
                    rows, dim = _npy_shape(cfull)
                    size = L.VEXFS_DATA_OFFSET + rows * L.collection_record_size(dim)
                plan.blocks += (size + BS - 1) // BS
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(cfull)
                if not 1 <= len(os.fsencode(target)) <= 4095:
                    raise FormatError(f"{cfull}: symlink target of {len(target)} bytes")
                plan.blocks += 1
        dir_bytes[rel] = used
    # directory blocks (entries packed, a block each 4088 bytes) and extent
    # blocks for files with more than 6 extents: one in 169 data blocks at worst
    plan.blocks += sum((b + L.VEXFS_DIR_DATA_BYTES - 1) // L.VEXFS_DIR_DATA_BYTES
                       for b in dir_bytes.values())
    plan.blocks += plan.blocks // L.VEXFS_EXTENTS_PER_BLOCK + 1
    for what in plan.skipped_xattrs:
        log.warning("not copied (namespace VexFS does not store): %s", what)
    return plan


def populate(w: FsWriter, plan: TreePlan) -> int:
    """Create everything ``plan`` lists; returns the number of objects made."""
    made: dict[tuple[int, int], str] = {}
    dirs: list[tuple[int, os.stat_result]] = []
    count = 0
    for rel, st in plan.entries:
        full = os.path.join(plan.root, rel)
        path = "/" + rel
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(st.st_mode) and key in made:
            w.link(made[key], path)
            continue
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            ino = w.mkdir(path, mode, st.st_uid, st.st_gid)
            w.set_xattrs(ino, plan.xattrs.get(rel, []))
            dirs.append((ino, st))
            count += 1
            continue
        if stat.S_ISREG(st.st_mode):
            if plan.npy_collections and rel.endswith(".npy"):
                import numpy as np
                vecs = np.load(full, allow_pickle=False)
                ino = w.create_collection(path, np.arange(len(vecs), dtype=np.uint64),
                                          np.asarray(vecs, dtype=np.float32), mode=mode)
            else:
                with open(full, "rb") as f:
                    data = f.read()
                ino = w.write_file(path, data, mode=mode, uid=st.st_uid, gid=st.st_gid,
                                   sparse=True)
        elif stat.S_ISLNK(st.st_mode):
            ino = w.symlink(path, os.readlink(full), st.st_uid, st.st_gid)
        else:
            ino = w.mknod(path, st.st_mode, encode_dev(st.st_rdev))
        w.set_xattrs(ino, plan.xattrs.get(rel, []))
        w.set_attrs(ino, mode=None if stat.S_ISLNK(st.st_mode) else mode,
                    uid=st.st_uid, gid=st.st_gid, atime_ns=st.st_atime_ns,
                    mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns)
        if st.st_nlink > 1:
            made[key] = path
        count += 1
    # directory attributes last: creating their children would not change them
    # here, but keep the order mke2fs -d uses
    rst = os.stat(plan.root)
    w.set_xattrs(L.VEXFS_ROOT_INO, plan.xattrs.get("", []))
    w.set_attrs(L.VEXFS_ROOT_INO, mode=stat.S_IMODE(rst.st_mode), uid=rst.st_uid,
                gid=rst.st_gid, atime_ns=rst.st_atime_ns, mtime_ns=rst.st_mtime_ns,
                ctime_ns=rst.st_ctime_ns)
    for ino, st in dirs:
        w.set_attrs(ino, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                    atime_ns=st.st_atime_ns, mtime_ns=st.st_mtime_ns,
                    ctime_ns=st.st_ctime_ns)
    return count


def encode_dev(rdev: int) -> int:
    """The kernel's new_encode_dev() of a host st_rdev."""
    major, minor = os.major(rdev), os.minor(rdev)
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)
