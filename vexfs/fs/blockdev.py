"""Block I/O on a regular file or a block device, and "is it in use?".

``Device`` reads and writes 4 KiB blocks with pread/pwrite. Opened with
``exclusive=True`` a block device gets O_EXCL, which the kernel refuses with
EBUSY while the device is mounted or claimed by device-mapper/md.

``in_use_by`` answers whether a device (or a regular file behind a loop
device) is mounted in *any* mount namespace (every /proc/PID/mountinfo, one
per namespace) or held by another block device (sysfs ``holders/``), as
e2fsprogs' ``ext2fs_check_mount_point`` and ``check_plausibility`` do.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import re
import stat
import struct
from types import TracebackType

from vexfs import layout as L
from vexfs.fs.errors import ImageError

log = logging.getLogger(__name__)

BS = L.VEXFS_BLOCK_SIZE
BLKGETSIZE64 = 0x80081272
BLKZEROOUT = 0x127F
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
#: below this a block device is zeroed with plain writes (BLKZEROOUT on a loop
#: device over tmpfs logs an I/O error for each call before it falls back)
DIRECT_ZERO_LIMIT = 64 << 20


class Device:
    """A regular file or block device accessed in 4 KiB blocks with pread/pwrite."""

    def __init__(self, path: str | os.PathLike[str], writable: bool = False,
                 exclusive: bool = False) -> None:
        self.path = str(path)
        self.writable = writable
        flags = os.O_RDWR if writable else os.O_RDONLY
        st = os.stat(self.path)
        self.is_block = stat.S_ISBLK(st.st_mode)
        if exclusive and self.is_block:
            # O_EXCL on a block device fails with EBUSY while it is mounted.
            flags |= os.O_EXCL
        self.fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0))
        try:
            self.size = device_size(self.fd, self.is_block)
        except OSError:
            os.close(self.fd)
            raise

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise ImageError(f"{self.path}: short read at byte {offset} "
                             f"({len(data)} of {length} bytes): device too small")
        return data

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if not self.writable:
            raise PermissionError(f"{self.path} is open read-only")
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view = view[n:]
            offset += n

    def read_block(self, blkno: int, count: int = 1) -> bytes:
        return self.read(blkno * BS, count * BS)

    def write_block(self, blkno: int, data: bytes | bytearray) -> None:
        if len(data) % BS:
            raise ValueError("block writes must be whole blocks")
        self.write(blkno * BS, data)

    def flush(self) -> None:
        if self.writable:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Device:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def device_size(fd: int, is_block: bool) -> int:
    """Size in bytes: BLKGETSIZE64 for block devices, else the file size."""
    if is_block:
        try:
            return int(struct.unpack("Q", fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8))[0])
        except OSError:
            pass
    return os.lseek(fd, 0, os.SEEK_END)


# --------------------------------------------------------------------------
# Zeroing ranges fast
# --------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def zero_range(dev: Device, offset: int, length: int) -> None:
    """Make [offset, offset+length) read as zero: BLKZEROOUT for large ranges
    of block devices, a punched hole in files, plain zero writes otherwise."""
    if length <= 0:
        return
    try:
        if dev.is_block and length > DIRECT_ZERO_LIMIT:
            fcntl.ioctl(dev.fd, BLKZEROOUT, struct.pack("QQ", offset, length))
            return
        if not dev.is_block and _libc.fallocate(
                dev.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) == 0:
            return
        log.debug("punch hole failed: %s", os.strerror(ctypes.get_errno()))
    except OSError as e:
        log.debug("fast zeroing failed (%s), writing zeroes", e)
    chunk = b"\0" * (1 << 20)
    end = offset + length
    while offset < end:
        n = min(len(chunk), end - offset)
        dev.write(offset, chunk[:n])
        offset += n


# --------------------------------------------------------------------------
# Mounted / in use
# --------------------------------------------------------------------------


def _decode_mount_path(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def device_numbers(path: str) -> set[tuple[int, int]]:
    """(major, minor) of a block device, or of every loop device backed by a file."""
    real = os.path.realpath(path)
    st = os.stat(real)
    if stat.S_ISBLK(st.st_mode):
        return {(os.major(st.st_rdev), os.minor(st.st_rdev))}
    out: set[tuple[int, int]] = set()
    try:
        names = os.listdir("/sys/block")
    except OSError:
        names = []
    for name in names:
        if not name.startswith("loop"):
            continue
        backing = _read(f"/sys/block/{name}/loop/backing_file")
        dev = _read(f"/sys/block/{name}/dev")
        if backing == real and dev:
            maj, mnr = dev.split(":")
            out.add((int(maj), int(mnr)))
    return out


def _mountinfo_files() -> list[str]:
    """One mountinfo per mount namespace: ours first, then every process's
    whose namespace differs (containers, unshare -m, systemd PrivateMounts)."""
    files = ["/proc/self/mountinfo"]
    seen = set()
    try:
        seen.add(os.readlink("/proc/self/ns/mnt"))
    except OSError:
        pass
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        try:
            ns = os.readlink(f"/proc/{pid}/ns/mnt")
        except OSError:
            continue
        if ns not in seen:
            seen.add(ns)
            files.append(f"/proc/{pid}/mountinfo")
    return files


def mounted_at(path: str) -> str | None:
    """Mount point if ``path`` (a block device, or a file backing a loop device)
    is mounted in any mount namespace, else None. Raises OSError if ``path``
    cannot be stat'ed."""
    real = os.path.realpath(path)
    devnums = device_numbers(path)
    for mi in _mountinfo_files():
        try:
            with open(mi) as f:
                lines = f.readlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            try:
                maj, mnr = fields[2].split(":")
                sep = fields.index("-")
                source = _decode_mount_path(fields[sep + 2])
            except (IndexError, ValueError):
                continue
            if (int(maj), int(mnr)) in devnums or source == real:
                where = _decode_mount_path(fields[4])
                return where if mi == "/proc/self/mountinfo" else \
                    f"{where} (in the mount namespace of {mi.split('/')[2]})"
    return None


def holders(path: str) -> list[str]:
    """Block devices stacked on this one (dm, md, ...) per sysfs ``holders/``."""
    out: list[str] = []
    for maj, mnr in device_numbers(path):
        try:
            out += os.listdir(f"/sys/dev/block/{maj}:{mnr}/holders")
        except OSError:
            continue
    return sorted(out)


def in_use_by(path: str) -> str | None:
    """Why ``path`` must not be written by a tool (mounted / held), or None."""
    mnt = mounted_at(path)
    if mnt is not None:
        return f"mounted on {mnt}"
    held = holders(path)
    if held:
        return f"in use by {', '.join(held)}"
    return None
