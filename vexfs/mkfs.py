"""mkfs.vexfs: create a VexFS filesystem on a block device or an image file.

    mkfs.vexfs [-L label] [-U uuid|random|time|clear] [-N inodes] [-J size=MiB]
               [-O ^has_journal] [-f] [-q] [-n] [-d DIR [--npy-collections]] [-V]
               DEVICE|FILE [SIZE]

e2fsprogs conventions: refuses to overwrite an existing filesystem signature
or partition table unless -f, refuses a mounted (in any mount namespace) or
otherwise held device, prints the geometry, exit 0 on success and 1 on any
error. With SIZE (e.g. 100M, 2G) FILE is created, extended or shrunk to
exactly that size (a sparse file), as mke2fs does; on a block device SIZE
may only be at most the device's size.

Everything is validated first (``plan``: arguments, the target, signatures,
geometry, the -d tree fitting): a refused run changes nothing, not even the
size of the file, and -n runs the very same checks and prints the same
geometry. Only then does ``execute`` create or resize the file and format
it through the core library (``vexfs.fs.format``, ``vexfs.fs.populate``).

The layout (``vexfs.fs.geometry``): block 0 superblock, the inode bitmap, the
block bitmap, the inode table, the jbd2 journal and the data region. The
journal's default size follows mke2fs (ext2fs_default_journal_size): none
below 8 MiB, 4 MiB below 128 MiB, 16 MiB below 1 GiB, 32 MiB below 2 GiB,
64 MiB below 16 GiB, up to 1 GiB; ``-J size=`` sets it, ``-O ^has_journal``
leaves it out. The default inode count is one inode per 16 KiB of device.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import stat
import sys
import uuid as uuidlib
from dataclasses import dataclass, field

from vexfs import __version__
from vexfs import layout as L
from vexfs.fs.blockdev import Device, in_use_by, mounted_at
from vexfs.fs.errors import FormatError, ImageError
from vexfs.fs.format import FormatOptions, FormatResult, format_device, journal_blocks_for
from vexfs.fs.geometry import BYTES_PER_INODE, MAX_INODES, MIN_INODES, Geometry
from vexfs.fs.signatures import probe_signatures

log = logging.getLogger(__name__)

VERSION = __version__  # kernel/VERSION, the one version number of VexFS
BS = L.VEXFS_BLOCK_SIZE
#: mkfs's error type (the library's): a reason not to format
MkfsError = FormatError

__all__ = ["BYTES_PER_INODE", "MAX_INODES", "MIN_INODES", "Geometry", "MkfsError",
           "MkfsResult", "describe", "format_device", "main", "mkfs", "mounted_at",
           "parse_journal_options", "parse_size", "parse_uuid", "plan", "journal_blocks_for"]


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*", text)
    if not m:
        raise MkfsError(f"bad size {text!r} (use e.g. 100M, 2G, 65536K)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    return int(m.group(1)) * mult[m.group(2).lower()]


def parse_uuid(text: str | None) -> bytes:
    if text is None or text == "random":
        return uuidlib.uuid4().bytes
    if text == "time":
        return uuidlib.uuid1().bytes
    if text == "clear":
        return bytes(16)
    try:
        return uuidlib.UUID(text).bytes
    except ValueError:
        raise MkfsError(f"invalid UUID {text!r}") from None


@dataclass
class MkfsResult:
    geometry: Geometry
    uuid: bytes
    label: str
    seconds: float
    warnings: list[str] = field(default_factory=list)
    populated: int = 0


@dataclass
class Plan:
    """A validated format: what will be written where. Building it reads the
    target but never writes it."""

    path: str
    exists: bool
    is_block: bool
    old_size: int
    size: int
    geometry: Geometry
    uuid: bytes
    label: str
    inodes: int | None
    journal_mib: int | None = None
    journal: bool = True
    warnings: list[str] = field(default_factory=list)
    tree: object | None = None       # populate.TreePlan


def plan(path: str, label: str = "", uuid: str | None = None, inodes: int | None = None,
         force: bool = False, size: int | None = None, source_dir: str | None = None,
         npy_collections: bool = False, journal_mib: int | None = None,
         journal: bool = True) -> Plan:
    """Every check mkfs makes, without writing anything (-n stops here)."""
    if len(label.encode()) > L.VEXFS_LABEL_LEN:
        raise MkfsError(f"label is {len(label.encode())} bytes; at most {L.VEXFS_LABEL_LEN}")
    uuid_bytes = parse_uuid(uuid)
    if inodes is not None and inodes < 1:
        raise MkfsError(f"inode count {inodes} must be at least 1")
    if size is not None and size < L.VEXFS_MIN_BLOCKS * BS:
        raise MkfsError(f"size {size} is below the minimum {L.VEXFS_MIN_BLOCKS * BS}")
    warnings: list[str] = []
    exists = os.path.lexists(path)
    is_block = False
    old_size = 0
    if not exists:
        if size is None:
            raise MkfsError(f"{path}: no such file or device (give a SIZE to create a file)")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise MkfsError(f"{path}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise MkfsError(f"{path}: cannot create a file in {parent}: permission denied")
    else:
        try:
            st = os.stat(path)
        except OSError as e:
            raise MkfsError(f"{path}: {e.strerror}") from None
        is_block = stat.S_ISBLK(st.st_mode)
        if not (stat.S_ISREG(st.st_mode) or is_block):
            raise MkfsError(f"{path}: not a block device or regular file")
        why = in_use_by(path)          # mounted in any namespace, or held by dm/md
        if why is not None:
            raise MkfsError(f"{path} is {why}; will not make a filesystem here!")
        try:
            dev = Device(path, writable=False, exclusive=True)
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise MkfsError(f"{path} is apparently in use by the system (mounted, or "
                                "held by device-mapper/md); will not make a filesystem "
                                "here!") from None
            raise MkfsError(f"cannot open {path}: {e.strerror}") from None
        with dev:
            old_size = dev.size
            found = probe_signatures(dev)
        if not os.access(path, os.W_OK):
            raise MkfsError(f"cannot open {path} for writing: permission denied")
        if found and not force:
            raise MkfsError(f"{path} contains a {found[0]} signature"
                            + (f" (also: {', '.join(found[1:])})" if found[1:] else "")
                            + "; use -f to overwrite it")
        if found:
            warnings.append(f"overwriting existing signatures: {', '.join(found)}")
        if is_block and size is not None and size > old_size:
            raise MkfsError(f"{path}: SIZE {size} is larger than the device ({old_size} "
                            "bytes)")
    target = size if size is not None else old_size
    if target % BS:
        warnings.append(f"ignoring the last {target % BS} bytes (not a whole 4 KiB block)")
    geo = FormatOptions(label, uuid_bytes, inodes, journal_mib=journal_mib,
                        journal=journal).validate(target)
    tree = None
    if source_dir is not None:
        from vexfs.fs.populate import plan_tree
        tree = plan_tree(source_dir, npy_collections)
        free_inodes = geo.inodes - 1
        free_blocks = geo.blocks - geo.data_start - 1
        if tree.inodes > free_inodes:
            raise MkfsError(f"{source_dir} holds {tree.inodes} files and directories; the "
                            f"filesystem has {free_inodes} free inodes (use -N)")
        if tree.blocks > free_blocks:
            raise MkfsError(f"{source_dir} needs about {tree.blocks} blocks; the "
                            f"filesystem has {free_blocks} free (give a larger SIZE)")
    return Plan(path, exists, is_block, old_size, target, geo, uuid_bytes, label, inodes,
                journal_mib, journal, warnings, tree)


def execute(p: Plan) -> MkfsResult:
    """Create/resize the file and format it; a failure removes a file it created."""
    created = not p.exists
    resized = False
    try:
        if not p.is_block:
            if created:
                os.close(os.open(p.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            if os.stat(p.path).st_size != p.size:
                os.truncate(p.path, p.size)
                resized = True
        try:
            dev = Device(p.path, writable=True, exclusive=True)
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise MkfsError(f"{p.path} is apparently in use by the system; will not "
                                "make a filesystem here!") from None
            raise MkfsError(f"cannot open {p.path}: {e.strerror}") from None
        with dev:
            dev.size = p.size
            res: FormatResult = format_device(dev, p.uuid, p.label, p.inodes,
                                              journal_mib=p.journal_mib, journal=p.journal)
        populated = 0
        if p.tree is not None:
            from vexfs.fs.filesystem import Image
            from vexfs.fs.populate import TreePlan, populate
            from vexfs.fs.writer import FsWriter
            assert isinstance(p.tree, TreePlan)
            with FsWriter(Image(p.path, writable=True)) as w:
                populated = populate(w, p.tree)
    except BaseException:
        if created:
            try:
                os.unlink(p.path)
            except OSError:
                pass
        elif resized and p.old_size < p.size:
            try:
                os.truncate(p.path, p.old_size)
            except OSError:
                pass
        raise
    return MkfsResult(res.geometry, res.uuid, res.label, res.seconds, p.warnings, populated)


def mkfs(path: str, label: str = "", uuid: str | None = None, inodes: int | None = None,
         force: bool = False, size: int | None = None, source_dir: str | None = None,
         npy_collections: bool = False, journal_mib: int | None = None,
         journal: bool = True) -> MkfsResult:
    """Format ``path`` with all of mkfs.vexfs's safety checks."""
    return execute(plan(path, label, uuid, inodes, force, size, source_dir, npy_collections,
                        journal_mib, journal))


def parse_journal_options(j_opts: str | None, features: str | None
                          ) -> tuple[int | None, bool]:
    """(journal size in MiB or None for the default, whether to make one)
    from mke2fs-style ``-J size=N`` and ``-O [^]has_journal``."""
    journal = True
    for feat in (features or "").split(","):
        feat = feat.strip()
        if not feat:
            continue
        if feat in ("^has_journal", "-has_journal"):
            journal = False
        elif feat not in ("has_journal", "+has_journal"):
            raise MkfsError(f"unknown feature {feat!r} (known: has_journal, ^has_journal)")
    mib = None
    for opt in (j_opts or "").split(","):
        opt = opt.strip()
        if not opt:
            continue
        key, _, value = opt.partition("=")
        if key != "size" or not value.isdigit():
            raise MkfsError(f"bad journal option {opt!r} (use -J size=MiB)")
        mib = int(value)
    if mib is not None and not journal:
        raise MkfsError("-J size= and -O ^has_journal contradict each other")
    return mib, journal


def describe(res: MkfsResult, dry_run: bool = False) -> str:
    g = res.geometry
    mib = g.blocks * BS / (1 << 20)
    lines = [
        f"Creating filesystem with {g.blocks} 4k blocks ({mib:.1f} MiB) and {g.inodes} inodes",
        f"Filesystem UUID: {uuidlib.UUID(bytes=res.uuid)}",
    ]
    if res.label:
        lines.append(f"Filesystem label: {res.label}")
    lines += [
        "Superblock:    block 0",
        f"Inode bitmap:  blocks {g.ibitmap_start}-{g.ibitmap_start + g.ibitmap_blocks - 1}",
        f"Block bitmap:  blocks {g.bbitmap_start}-{g.bbitmap_start + g.bbitmap_blocks - 1}",
        f"Inode table:   blocks {g.itable_start}-{g.itable_start + g.itable_blocks - 1} "
        f"({L.VEXFS_INODES_PER_BLOCK} inodes per block)",
        (f"Journal:       blocks {g.journal_start}-{g.journal_start + g.journal_blocks - 1} "
         f"({g.journal_blocks * BS >> 20} MiB, jbd2)" if g.journal_blocks
         else "Journal:       none"),
        f"Data blocks:   {g.data_start}-{g.blocks - 1} ({g.blocks - g.data_start} blocks, "
        f"{g.blocks - g.data_start - 1} free)",
    ]
    if dry_run:
        lines.append("-n given: nothing was written")
    else:
        if res.populated:
            lines.append(f"Copied {res.populated} files, directories and links from -d")
        lines.append(f"Writing superblock and filesystem metadata: done "
                     f"({res.seconds * 1000:.1f} ms)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mkfs.vexfs", description="Create a VexFS filesystem.",
        epilog="Exit status: 0 success, 1 error.")
    p.add_argument("-L", dest="label", default="", help="volume label (up to 64 bytes)")
    p.add_argument("-U", dest="uuid", default=None,
                   help="filesystem UUID: a UUID, 'random' (default), 'time' or 'clear'")
    p.add_argument("-N", dest="inodes", type=int, default=None,
                   help=f"number of inodes (default: one per {BYTES_PER_INODE // 1024} KiB)")
    p.add_argument("-J", dest="journal_opts", default=None, metavar="size=MiB",
                   help="journal options: size=N (MiB; default scaled with the device "
                        "as mke2fs: none below 8 MiB, 4 MiB up to 128 MiB, ..., 1 GiB)")
    p.add_argument("-O", dest="features", default=None, metavar="^has_journal",
                   help="features: '^has_journal' makes a filesystem without a journal "
                        "(the format of mkfs.vexfs before journaling)")
    p.add_argument("-f", dest="force", action="store_true",
                   help="overwrite an existing filesystem or partition table signature")
    p.add_argument("-q", dest="quiet", action="store_true",
                   help="quiet: print nothing but warnings and errors")
    p.add_argument("-n", dest="dry_run", action="store_true",
                   help="make every check and print the geometry, write nothing")
    p.add_argument("-d", dest="source_dir", default=None, metavar="DIR",
                   help="copy the files, directories, symlinks, modes and times of DIR "
                        "into the new filesystem")
    p.add_argument("--npy-collections", action="store_true",
                   help="with -d: store 2-D .npy arrays as vector collections (ids 0..n-1)")
    p.add_argument("-V", dest="version", action="store_true", help="print the version")
    p.add_argument("device", nargs="?", help="block device or image file")
    p.add_argument("size", nargs="?",
                   help="size to give the image file (created, extended or shrunk), "
                        "e.g. 100M")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="mkfs.vexfs: %(message)s")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 1
    if args.version:
        print(f"mkfs.vexfs (vexfs) {VERSION}, on-disk format version {L.VEXFS_FORMAT_VERSION}")
        return 0
    if not args.device:
        parser.print_usage(sys.stderr)
        return 1
    if args.npy_collections and not args.source_dir:
        print("mkfs.vexfs: --npy-collections needs -d DIR", file=sys.stderr)
        return 1
    try:
        size = parse_size(args.size) if args.size else None
        journal_mib, journal = parse_journal_options(args.journal_opts, args.features)
        p = plan(args.device, label=args.label, uuid=args.uuid, inodes=args.inodes,
                 force=args.force, size=size, source_dir=args.source_dir,
                 npy_collections=args.npy_collections, journal_mib=journal_mib,
                 journal=journal)
        for w in p.warnings:
            print(f"mkfs.vexfs: warning: {w}", file=sys.stderr)
        if args.dry_run:
            print(describe(MkfsResult(p.geometry, p.uuid, p.label, 0.0), dry_run=True))
            return 0
        res = execute(p)
    except MkfsError as e:
        print(f"mkfs.vexfs: {e}", file=sys.stderr)
        return 1
    except ImageError as e:
        print(f"mkfs.vexfs: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"mkfs.vexfs: {args.device}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mkfs.vexfs: interrupted", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"mkfs.vexfs {VERSION} (format version {L.VEXFS_FORMAT_VERSION})")
        print(describe(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
