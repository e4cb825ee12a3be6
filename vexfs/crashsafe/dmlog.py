"""Guest side of dm-log-writes: a log-writes device over a data device.

    dmsetup create <name> --table "0 <sectors> log-writes <dev> <logdev>"
    dmsetup message <name> 0 mark <label>

No udev runs in the guest, so dmsetup is told not to wait for it and makes
the /dev/mapper node itself.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import struct
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)


class DmError(RuntimeError):
    pass


def _run(*args: str) -> str:
    res = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise DmError(f"{' '.join(args)}: exit {res.returncode}: {res.stderr.strip()}")
    return res.stdout


def load_modules() -> None:
    """loop and device-mapper are modules in the Debian kernel; a minimal
    guest loads nothing on demand."""
    for mod in (["loop", "max_loop=16"], ["dm-mod"], ["dm-log-writes"], ["dm-snapshot"],
                ["jbd2"], ["ext4"]):
        subprocess.run(["modprobe", *mod], check=False, capture_output=True)


def sectors(dev: str | Path) -> int:
    return int(_run("blockdev", "--getsz", str(dev)).strip())


def losetup(image: Path) -> str:
    return _run("losetup", "-f", "--show", str(image)).strip()


def lodetach(dev: str) -> None:
    _run("losetup", "-d", dev)


# linux/dm-ioctl.h: struct dm_ioctl (312 bytes) and its commands, so a mark
# or a throw-away snapshot costs ioctls instead of execs of dmsetup (about a
# second each under TCG, where they dominated recording and replay).
DM_IOCTL = struct.Struct("<3IIIIiIIIQ128s129s7s")
DM_TARGET_SPEC = struct.Struct("<QQiI16s")  # sector_start, length, status, next, type
DM_VERSION = (4, 0, 0)
DM_DEV_CREATE, DM_DEV_REMOVE, DM_DEV_SUSPEND, DM_TABLE_LOAD, DM_TARGET_MSG = 3, 4, 6, 9, 14
DM_BUFFER = 16384


def _dm_cmd(nr: int) -> int:
    return (3 << 30) | (DM_IOCTL.size << 16) | (0xFD << 8) | nr


def dm_ioctl(nr: int, name: str, payload: bytes = b"", target_count: int = 0) -> tuple[int, int]:
    """One device-mapper ioctl on `name` with `payload` after the header;
    returns (flags, dev) of the reply."""
    size = max(DM_BUFFER, DM_IOCTL.size + len(payload))
    buf = bytearray(size)
    DM_IOCTL.pack_into(buf, 0, *DM_VERSION, size, DM_IOCTL.size, target_count, 0, 0, 0, 0, 0,
                       name.encode(), b"", b"")
    buf[DM_IOCTL.size:DM_IOCTL.size + len(payload)] = payload
    fd = os.open("/dev/mapper/control", os.O_RDWR)
    try:
        fcntl.ioctl(fd, _dm_cmd(nr), buf)
    except OSError as e:
        raise DmError(f"dm ioctl {nr} on {name}: {e.strerror}") from e
    finally:
        os.close(fd)
    fields = DM_IOCTL.unpack_from(buf)
    return fields[7], fields[10]


def target_message(name: str, message: str, sector: int = 0) -> None:
    """`dmsetup message <name> <sector> <message>` as one ioctl."""
    dm_ioctl(DM_TARGET_MSG, name, struct.pack("<Q", sector) + message.encode() + b"\0")


def dm_create(name: str, sectors_: int, target: str, params: str) -> str:
    """`dmsetup create <name> --table "0 <sectors> <target> <params>"` as
    ioctls (create, load, resume); makes /dev/mapper/<name> itself (no
    udev in the guest). Returns the node's path."""
    _, dev = dm_ioctl(DM_DEV_CREATE, name)
    try:
        text = params.encode() + b"\0"
        text += bytes(-(DM_TARGET_SPEC.size + len(text)) % 8)
        spec = DM_TARGET_SPEC.pack(0, sectors_, 0, DM_TARGET_SPEC.size + len(text),
                                   target.encode())
        dm_ioctl(DM_TABLE_LOAD, name, spec + text, target_count=1)
        dm_ioctl(DM_DEV_SUSPEND, name)  # no DM_SUSPEND_FLAG: resume, the new table goes live
    except DmError:
        dm_ioctl(DM_DEV_REMOVE, name)
        raise
    path = f"/dev/mapper/{name}"
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.mknod(path, 0o600 | stat.S_IFBLK, dev)
    return path


def dm_remove(name: str) -> None:
    dm_ioctl(DM_DEV_REMOVE, name)
    try:
        os.unlink(f"/dev/mapper/{name}")
    except FileNotFoundError:
        pass


class Snapshot:
    """Throw-away writable views of `origin` (a block device that nothing
    writes while a view exists): each `open()` is a fresh dm-snapshot with a
    transient (in-memory) exception store on `cow`, so mounting it (journal
    replay) or tearing a block in it never touches the origin, and dropping
    it costs no copy."""

    def __init__(self, name: str, origin: str, cow: str) -> None:
        self.name, self.origin, self.cow = name, origin, cow
        self.sectors = sectors(origin)
        self.path: str | None = None

    def open(self) -> str:
        self.close()
        self.path = dm_create(self.name, self.sectors, "snapshot",
                              f"{self.origin} {self.cow} N 8")
        return self.path

    def close(self) -> None:
        if self.path is not None:
            dm_remove(self.name)
            self.path = None


class LogWrites:
    """The log-writes target `name` over `dev`, logging to `logdev`."""

    def __init__(self, name: str, dev: str, logdev: str) -> None:
        self.name, self.dev, self.logdev = name, dev, logdev
        self.path = f"/dev/mapper/{name}"
        self.marks = 0

    def create(self) -> "LogWrites":
        # the module is not loaded on demand by dmsetup in a minimal guest
        subprocess.run(["modprobe", "dm-log-writes"], check=False, capture_output=True)
        table = f"0 {sectors(self.dev)} log-writes {self.dev} {self.logdev}"
        _run("dmsetup", "create", "--noudevsync", self.name, "--table", table)
        _run("dmsetup", "mknodes", self.name)
        return self

    def mark(self, label: str) -> None:
        if not label or " " in label or len(label) > 400:
            raise ValueError(f"bad mark label {label!r}")
        target_message(self.name, f"mark {label}")
        self.marks += 1

    def status(self) -> str:
        return _run("dmsetup", "status", self.name).strip()

    def remove(self) -> None:
        """Tear down; the target writes its final super (entry count) here."""
        _run("dmsetup", "remove", "--noudevsync", self.name)

