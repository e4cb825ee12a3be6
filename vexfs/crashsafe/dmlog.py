"""Guest side of dm-log-writes: a log-writes device over a data device.

    dmsetup create <name> --table "0 <sectors> log-writes <dev> <logdev>"
    dmsetup message <name> 0 mark <label>

No udev runs in the guest, so dmsetup is told not to wait for it and makes
the /dev/mapper node itself.
"""

from __future__ import annotations

import logging
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
    for mod in (["loop", "max_loop=16"], ["dm-mod"], ["dm-log-writes"], ["dm-snapshot"], ["jbd2"], ["ext4"]):
        subprocess.run(["modprobe", *mod], check=False, capture_output=True)


def sectors(dev: str | Path) -> int:
    return int(_run("blockdev", "--getsz", str(dev)).strip())


def losetup(image: Path) -> str:
    return _run("losetup", "-f", "--show", str(image)).strip()


def lodetach(dev: str) -> None:
    _run("losetup", "-d", dev)


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
        _run("dmsetup", "message", self.name, "0", "mark", label)
        self.marks += 1

    def status(self) -> str:
        return _run("dmsetup", "status", self.name).strip()

    def remove(self) -> None:
        """Tear down; the target writes its final super (entry count) here."""
        _run("dmsetup", "remove", "--noudevsync", self.name)

