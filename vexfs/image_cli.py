"""`vexfs image`: read a VexFS image or device offline (no kernel, no mount).

    vexfs image info IMAGE               superblock dump
    vexfs image ls [-l] [-R] IMAGE [PATH]
    vexfs image cat IMAGE PATH           file bytes to stdout
    vexfs image stat IMAGE PATH          inode, extents, collection header
    vexfs image getfattr [-d] IMAGE PATH extended attributes (as getfattr -m -)

Errors (missing path, corrupt structure) print one line and exit 1. `ls`
lists past an entry whose inode is damaged (it is shown marked `?` with the
reason, as debugfs does) and exits 1 at the end. `cat` streams the file in
1 MiB pieces (an 8 GiB sparse file needs no more memory than a small one).
A reader that closes the pipe early (`| head`) ends the command quietly
(exit 141, as a tool killed by SIGPIPE).
"""

from __future__ import annotations

import os
import stat as statmod
import sys
import time
import uuid as uuidlib
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from vexfs import layout as L
from vexfs.fs.errors import ImageError
from vexfs.fs.filesystem import Image
from vexfs.fs.xattr import xattr_block_of

F = TypeVar("F", bound=Callable[..., Any])
#: exit status after the reader closed our stdout (128 + SIGPIPE)
EXIT_PIPE = 141


def _quiet_broken_pipe() -> None:
    """stdout's reader went away: point fd 1 at /dev/null so the interpreter's
    final flush does not complain, and leave quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    sys.exit(EXIT_PIPE)


def _handle_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
            sys.stdout.flush()          # a closed pipe shows up here for short output
            return result
        except BrokenPipeError:
            _quiet_broken_pipe()
        except (ImageError, OSError) as e:
            msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            if isinstance(e, OSError) and e.filename:
                msg = f"{e.filename}: {msg}"
            raise click.ClickException(msg) from None
    return wrapper  # type: ignore[return-value]


def _fmt_time(sec: int, nsec: int = 0) -> str:
    try:
        base = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec))
    except (OverflowError, OSError, ValueError):
        base = str(sec)
    return f"{base}.{nsec:09d} UTC"


def _long_line(im: Image, name: str, ino: int, inode: L.Inode) -> str:
    mode = statmod.filemode(inode.i_mode)
    if inode.i_flags & L.VEXFS_INODE_FL_COLLECTION:
        mode = "V" + mode[1:]        # V marks a vector collection
    size = str(inode.i_size)
    if statmod.S_ISCHR(inode.i_mode) or statmod.S_ISBLK(inode.i_mode):
        rdev = inode.i_rdev
        major, minor = (rdev & 0xFFF00) >> 8, (rdev & 0xFF) | ((rdev >> 12) & 0xFFF00)
        size = f"{major}, {minor}"
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(inode.i_mtime))
    tail = ""
    if statmod.S_ISLNK(inode.i_mode):
        tail = f" -> {im.readlink(ino)}"
    return (f"{ino:>7} {mode} {inode.i_links_count:>3} {inode.i_uid:>5} {inode.i_gid:>5} "
            f"{size:>10} {when} {name}{tail}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def image() -> None:
    """Read a VexFS image offline (ls, cat, stat, info)."""


@image.command()
@click.argument("image_path", metavar="IMAGE", type=click.Path(exists=True, dir_okay=False))
@_handle_errors
def info(image_path: str) -> None:
    """Dump the superblock of IMAGE."""
    with Image(image_path, require_checksum=False) as im:
        sb = im.sb
        ok = L.struct_checksum_ok(sb)
        state = []
        if sb.s_state & L.VEXFS_STATE_CLEAN:
            state.append("clean")
        else:
            state.append("not clean (mounted or not cleanly unmounted)")
        if sb.s_state & L.VEXFS_STATE_ERROR:
            state.append("errors")
        feats = []
        if sb.s_feature_incompat & L.VEXFS_FEATURE_INCOMPAT_EXTENTS:
            feats.append("extents")
        if sb.s_feature_ro_compat & L.VEXFS_FEATURE_RO_COMPAT_COLLECTIONS:
            feats.append("collections")
        rows = [
            ("Filesystem magic", f"0x{sb.s_magic:08x} (VexFS)"),
            ("Format version", sb.s_version),
            ("Filesystem UUID", str(uuidlib.UUID(bytes=bytes(sb.s_uuid)))),
            ("Filesystem label", sb.label or "<none>"),
            ("Features", " ".join(feats) or "<none>"),
            ("Feature flags", f"compat 0x{sb.s_feature_compat:x} incompat "
                              f"0x{sb.s_feature_incompat:x} "
                              f"ro_compat 0x{sb.s_feature_ro_compat:x}"),
            ("State", ", ".join(state)),
            ("Block size", sb.s_block_size),
            ("Block count", sb.s_blocks_count),
            ("Free blocks", sb.s_free_blocks),
            ("Inode count", sb.s_inodes_count),
            ("Free inodes", sb.s_free_inodes),
            ("Inode size", sb.s_inode_size),
            ("Root inode", sb.s_root_ino),
            ("Inode bitmap", f"blocks {sb.s_ibitmap_start}+{sb.s_ibitmap_blocks}"),
            ("Block bitmap", f"blocks {sb.s_bbitmap_start}+{sb.s_bbitmap_blocks}"),
            ("Inode table", f"blocks {sb.s_itable_start}+{sb.s_itable_blocks}"),
            ("First data block", sb.s_data_start),
            ("Mount count", sb.s_mount_count),
            ("Created", _fmt_time(sb.s_mkfs_time)),
            ("Last mount", _fmt_time(sb.s_mount_time) if sb.s_mount_time else "never"),
            ("Last write", _fmt_time(sb.s_write_time)),
            ("Checksum", f"0x{sb.s_checksum:08x} ({'ok' if ok else 'MISMATCH'})"),
        ]
        for k, v in rows:
            click.echo(f"{k + ':':<22}{v}")


def _damaged_line(name: str, ino: int, why: str, long: bool) -> str:
    if not long:
        return f"{name}  [damaged inode {ino}: {why}]"
    return (f"{ino:>7} ?????????? {'?':>3} {'?':>5} {'?':>5} {'?':>10} {'?':<16} {name}"
            f"  [damaged: {why}]")


@image.command()
@click.option("-l", "long", is_flag=True, help="long listing: inode, mode, links, owner, size")
@click.option("-R", "recursive", is_flag=True, help="list subdirectories recursively")
@click.option("-a", "all_", is_flag=True, help="include . and ..")
@click.argument("image_path", metavar="IMAGE", type=click.Path(exists=True, dir_okay=False))
@click.argument("path", default="/")
@_handle_errors
def ls(image_path: str, path: str, long: bool, recursive: bool, all_: bool) -> None:
    """List PATH (default /) inside IMAGE. Entries whose inode is damaged are
    listed, marked, and the listing goes on (exit 1 at the end)."""
    damaged = 0
    with Image(image_path) as im:
        ino = im.lookup(path)
        inode = im.iget(ino)
        if not statmod.S_ISDIR(inode.i_mode):
            click.echo(_long_line(im, path, ino, inode) if long else path)
            return
        todo = [(path, ino)]
        seen: set[int] = set()
        first = True
        while todo:
            dpath, dino = todo.pop(0)
            if dino in seen:
                continue
            seen.add(dino)
            if recursive:
                if not first:
                    click.echo("")
                click.echo(f"{dpath}:")
            first = False
            try:
                entries = im.list_dir(dino)
            except ImageError as err:
                damaged += 1
                click.echo(f"[damaged directory {dpath}: {err}]")
                continue
            for e in sorted(entries, key=lambda e: e.name):
                if e.name in (".", "..") and not all_:
                    continue
                try:
                    child = im.iget(e.ino)
                    line = _long_line(im, e.name, e.ino, child) if long else e.name
                except ImageError as err:
                    damaged += 1
                    click.echo(_damaged_line(e.name, e.ino, str(err).removeprefix(
                        f"inode {e.ino}: "), long))
                    continue
                click.echo(line)
                if recursive and e.name not in (".", "..") and statmod.S_ISDIR(child.i_mode):
                    todo.append((dpath.rstrip("/") + "/" + e.name, e.ino))
    if damaged:
        click.echo(f"vexfs image ls: {damaged} damaged entries (run fsck.vexfs -n {image_path})",
                   err=True)
        sys.exit(1)


@image.command()
@click.argument("image_path", metavar="IMAGE", type=click.Path(exists=True, dir_okay=False))
@click.argument("path")
@_handle_errors
def cat(image_path: str, path: str) -> None:
    """Write the contents of file PATH inside IMAGE to stdout."""
    with Image(image_path) as im:
        ino = im.lookup(path)
        inode = im.iget(ino)
        if statmod.S_ISDIR(inode.i_mode):
            raise IsADirectoryError(21, f"{path} is a directory")
        out = sys.stdout.buffer
        for piece in im.iter_data(ino, inode=inode):
            out.write(piece)
        out.flush()


@image.command("stat")
@click.argument("image_path", metavar="IMAGE", type=click.Path(exists=True, dir_okay=False))
@click.argument("path")
@_handle_errors
def stat_cmd(image_path: str, path: str) -> None:
    """Show the inode of PATH inside IMAGE: mode, times, extents, collection."""
    with Image(image_path) as im:
        ino = im.lookup(path, follow=False)
        inode = im.iget(ino)
        em = im.extents(ino, inode)
        kind = L.FT_NAMES.get(L.file_type_of_mode(inode.i_mode) or 0, "inode")
        if inode.i_flags & L.VEXFS_INODE_FL_COLLECTION:
            kind = "vector collection"
        click.echo(f"  File: {path}" + (f" -> {im.readlink(ino)}"
                                        if statmod.S_ISLNK(inode.i_mode) else ""))
        click.echo(f"  Size: {inode.i_size:<12} Blocks: {inode.i_blocks:<8} (4 KiB)  {kind}")
        click.echo(f" Inode: {ino:<12} Links: {inode.i_links_count:<8} "
                   f"Generation: {inode.i_generation}")
        click.echo(f"Access: ({inode.i_mode & 0o7777:04o}/{statmod.filemode(inode.i_mode)})  "
                   f"Uid: {inode.i_uid}  Gid: {inode.i_gid}  Flags: 0x{inode.i_flags:x}")
        if statmod.S_ISCHR(inode.i_mode) or statmod.S_ISBLK(inode.i_mode):
            click.echo(f"  Rdev: 0x{inode.i_rdev:x}")
        for label, s, ns in (("Access", inode.i_atime, inode.i_atime_nsec),
                             ("Modify", inode.i_mtime, inode.i_mtime_nsec),
                             ("Change", inode.i_ctime, inode.i_ctime_nsec),
                             (" Birth", inode.i_crtime, inode.i_crtime_nsec)):
            click.echo(f"{label}: {_fmt_time(s, ns)}")
        click.echo(f"Extents: {len(em.extents)} ({inode.i_nr_extents} inline"
                   + (f", chain blocks {em.chain}" if em.chain else "") + ")")
        for k, e in enumerate(em.extents):
            click.echo(f"  [{k}] file blocks {e.logical}-{e.logical + e.length - 1} -> "
                       f"disk blocks {e.start}-{e.end - 1} ({e.length})")
        xblk = xattr_block_of(inode)
        if xblk:
            names = ", ".join(x.full_name for x in im.xattrs(ino, inode))
            click.echo(f"Xattrs: block {xblk}: {names}")
        if inode.i_flags & L.VEXFS_INODE_FL_COLLECTION:
            c = im.collection(ino)
            click.echo(f"Collection: dim {c.dim}, metric {c.metric_name}, {c.count} records "
                       f"of {c.record_size} bytes")
            if c.index:
                click.echo(f"  ANN index: IVF, {c.index['nlist']} lists, default nprobe "
                           f"{c.index['nprobe']}, {c.index['indexed']} records indexed, "
                           f"{c.index['pending']} pending")
            if c.count:
                ids = ", ".join(str(int(x)) for x in c.ids[:10])
                click.echo(f"  ids: {ids}{', ...' if c.count > 10 else ''}")


def _xattr_value(value: bytes) -> str:
    """A value as getfattr -d shows it: quoted text, or 0x hex."""
    text = value.rstrip(b"\0")
    if text and all(32 <= c < 127 for c in text) and b"\0" not in text:
        return '"' + text.decode().replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "0x" + value.hex()


@image.command("getfattr")
@click.option("-d", "dump", is_flag=True, help="show the values too")
@click.argument("image_path", metavar="IMAGE", type=click.Path(exists=True, dir_okay=False))
@click.argument("path")
@_handle_errors
def getfattr_cmd(image_path: str, path: str, dump: bool) -> None:
    """List the extended attributes of PATH (all namespaces, ACLs included)."""
    with Image(image_path) as im:
        ino = im.lookup(path, follow=False)
        entries = sorted(im.xattrs(ino), key=lambda x: x.full_name)
        click.echo(f"# file: {path.lstrip('/') or '/'}")
        for x in entries:
            click.echo(f"{x.full_name}={_xattr_value(x.value)}" if dump else x.full_name)
        click.echo("")
