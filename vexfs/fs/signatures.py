"""Existing filesystem / partition-table signatures on a device (so mkfs
does not destroy data by accident): a built-in probe plus ``blkid -p``."""

from __future__ import annotations

import logging
import os
import shutil

from vexfs import layout as L
from vexfs.fs.blockdev import Device

log = logging.getLogger(__name__)

# (name, byte offset, magic bytes) of signatures probed without libblkid.
SIGNATURES: list[tuple[str, int, bytes]] = [
    ("vexfs", 0, L.VEXFS_MAGIC.to_bytes(4, "little")),
    ("ext2/ext3/ext4", 1080, b"\x53\xef"),
    ("xfs", 0, b"XFSB"),
    ("btrfs", 65536 + 64, b"_BHRfS_M"),
    ("swap", 4086, b"SWAPSPACE2"),
    ("swap (v0)", 4086, b"SWAP-SPACE"),
    ("crypto_LUKS", 0, b"LUKS\xba\xbe"),
    ("squashfs", 0, b"hsqs"),
    ("iso9660", 32769, b"CD001"),
    ("gpt partition table", 512, b"EFI PART"),
    ("f2fs", 1024, b"\x10\x20\xf5\xf2"),
    ("LVM2 member", 536, b"LVM2 001"),
    ("linux_raid_member", 4096, b"\xfc\x4e\x2b\xa9"),
]


def probe_signatures(dev: Device) -> list[str]:
    """Names of filesystem/partition-table signatures found on the device."""
    found: list[str] = []
    for name, off, magic in SIGNATURES:
        if off + len(magic) <= dev.size:
            if os.pread(dev.fd, len(magic), off) == magic:
                found.append(name)
    if dev.size >= 512:
        sector = os.pread(dev.fd, 512, 0)
        if sector[510:512] == b"\x55\xaa" and any(
                sector[446 + 16 * i + 4] for i in range(4)):
            found.append("dos partition table")
        elif sector[510:512] == b"\x55\xaa" and sector[3:11].strip():
            found.append("boot sector (FAT?)")
    found += blkid_probe(dev.path)
    # keep the order, drop duplicates
    return list(dict.fromkeys(found))


def blkid_probe(path: str) -> list[str]:
    """Signatures libblkid's low-level probe (blkid -p) recognises, if installed."""
    blkid = shutil.which("blkid") or ("/usr/sbin/blkid" if os.path.exists("/usr/sbin/blkid")
                                      else None)
    if not blkid:
        return []
    import subprocess      # lazily: costly to import under TCG, only needed here
    try:
        res = subprocess.run([blkid, "-p", "-o", "export", path], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.debug("blkid failed: %s", e)
        return []
    if res.returncode != 0:   # 2: nothing found; anything else: cannot tell
        return []
    out = []
    for line in res.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "TYPE":
            out.append(value)
        elif key == "PTTYPE":
            out.append(f"{value} partition table")
    return out


