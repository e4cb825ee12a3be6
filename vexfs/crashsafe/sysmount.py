"""mount(2), umount2(2), loop devices and BLKFLSBUF from Python.

A crash-point run mounts and unmounts thousands of times; under TCG each
fork+exec of mount/umount/losetup costs a large part of a point, so these
calls are made directly.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os

LOOP_SET_FD = 0x4C00
LOOP_CLR_FD = 0x4C01
LOOP_CTL_GET_FREE = 0x4C82
BLKFLSBUF = 0x1261

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def mount(dev: str, target: str, fstype: str, options: str = "") -> None:
    if _libc.mount(dev.encode(), target.encode(), fstype.encode(), 0,
                   options.encode() if options else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {dev} on {target} ({fstype}): {os.strerror(err)}")


def umount(target: str) -> None:
    if _libc.umount2(target.encode(), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def flushbufs(dev: str) -> None:
    """Write back and drop the block device's page cache, so the next
    reader sees the backing file as it is now."""
    fd = os.open(dev, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, BLKFLSBUF, 0)
    finally:
        os.close(fd)


class Loop:
    """A loop device bound to `image` until close()."""

    def __init__(self, image: str) -> None:
        ctl = os.open("/dev/loop-control", os.O_RDWR)
        try:
            n = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
        finally:
            os.close(ctl)
        self.path = f"/dev/loop{n}"
        self._fd = os.open(self.path, os.O_RDWR)
        img = os.open(image, os.O_RDWR)
        try:
            fcntl.ioctl(self._fd, LOOP_SET_FD, img)
        finally:
            os.close(img)

    def close(self) -> None:
        if self._fd >= 0:
            fcntl.ioctl(self._fd, LOOP_CLR_FD, 0)
            os.close(self._fd)
            self._fd = -1


class Kmsg:
    """New kernel log records since the last call (/dev/kmsg, no exec of dmesg)."""

    def __init__(self) -> None:
        self._fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self._fd, 0, os.SEEK_END)

    def new(self) -> list[str]:
        out: list[str] = []
        while True:
            try:
                rec = os.read(self._fd, 8192)
            except BlockingIOError:
                return out
            except BrokenPipeError:  # records were overwritten before we read them
                continue
            out.append(rec.decode(errors="replace").split(";", 1)[-1].rstrip("\n"))

    def close(self) -> None:
        os.close(self._fd)
