"""The jbd2 journal: replay after a power cut, atomic rename over an fsynced
file, sync empties the journal, a corrupt journal refuses the mount.

Two boots of fresh VMs share one virtio disk:

1. mkfs.vexfs /dev/vda (64 MiB: a 4 MiB journal), mount, write and fsync
   ``f`` ("old"); ``sync`` must leave the journal empty (jbd2 s_start 0,
   read from the disk while mounted). Then the editor pattern: write
   ``f.tmp`` ("new"), fsync it, rename it over ``f``, fsync ``f`` (commits
   the rename's transaction) and cut the power at once (sysrq-b: nothing is
   written in place, the committed metadata is only in the journal).
2. Before mounting, the superblock says RECOVER and the journal holds
   transactions; the mount replays them ("recovered N transactions in X
   ms"); ``f`` reads "new", ``f.tmp`` is gone; after umount fsck.vexfs -n -f
   is clean. Then the journal superblock is damaged: the mount must fail
   with EUCLEAN ("Structure needs cleaning") and a "corrupt journal" line,
   and the kernel must not oops.

Without the journal (before it) the rename was three unordered block
writes and the crash could leave the target entry pointing at a freed inode.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY = REPO / ".venv/bin/python"
THIS = Path(__file__).resolve()
MODULE = REPO / "kernel/build/vexfs.ko"


# ---------------------------------------------------------------- guest side


def _journal_state(dev: str) -> str:
    """'recover=<0|1> s_start=<n> s_sequence=<n>' from the raw device."""
    from vexfs import layout as L
    from vexfs.fs import journal as J

    with open(dev, "rb") as fh:
        sb = L.SuperBlock.unpack(fh.read(L.VEXFS_BLOCK_SIZE))
        geom = J.JournalGeometry.from_superblock(sb)
        assert geom is not None, "no journal"
        fh.seek(geom.start_block * geom.block_size)
        jsb = J.read_journal_superblock(fh.read(geom.block_size))
    recover = int(bool(sb.s_feature_incompat & L.VEXFS_FEATURE_INCOMPAT_RECOVER))
    return f"recover={recover} s_start={jsb.s_start} s_sequence={jsb.s_sequence}"


def _editor_rename(m: str) -> None:
    import os

    d = Path(m)
    fd = os.open(d / "f.tmp", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    os.write(fd, b"new\n" * 1000)
    os.fsync(fd)
    os.close(fd)
    os.rename(d / "f.tmp", d / "f")
    fd = os.open(d / "f", os.O_RDONLY)
    os.fsync(fd)          # commits the transaction holding the rename
    os.close(fd)
    print("RENAMED")


if __name__ == "__main__" and len(sys.argv) == 3:
    if sys.argv[1] == "state":
        print(_journal_state(sys.argv[2]))
    elif sys.argv[1] == "rename":
        _editor_rename(sys.argv[2])
    sys.exit(0)

# ----------------------------------------------------------------- host side

PREAMBLE = f"""
cd {REPO}
modprobe virtio_blk
for i in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.1; done
insmod /tmp/vexfs.ko
mkdir -p /mnt/v
"""


def _state(tag: str) -> str:
    return f'echo "STATE-{tag}: $({PY} {THIS} state /dev/vda)"\n'


def test_replay_after_power_cut_rename_atomic_and_corrupt_journal(tmp_path: Path) -> None:
    import re

    from vexfs.vm.quick import run_script

    disk = tmp_path / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(64 << 20)

    boot1 = run_script(
        PREAMBLE + ".venv/bin/mkfs.vexfs -q /dev/vda\nmount -t vexfs /dev/vda /mnt/v\n"
        + "python3 -c \"import os; fd=os.open('/mnt/v/f', os.O_CREAT|os.O_WRONLY, 0o644); "
        "os.write(fd, b'old\\n' * 1000); os.fsync(fd)\"\n"
        + "mkdir /mnt/v/d && for i in $(seq 20); do echo $i > /mnt/v/d/$i; done\n"
        + "sync\n" + _state("synced")
        + f"{PY} {THIS} rename /mnt/v\n"
        + "for i in $(seq 300); do grep -q '^RENAMED' /run/vexfs/output && break; sleep 0.1; done\n"
        + "echo POWER-CUT > /dev/kmsg\necho b > /proc/sysrq-trigger\nsleep 30\n",
        modules=[MODULE], disks=[disk], timeout=600)
    assert not boot1.crashes, [c.title for c in boot1.crashes]
    assert "RENAMED" in boot1.output, boot1.output[-3000:]
    assert "sysrq: Resetting" in boot1.console, boot1.console[-2000:]
    # sync(2) leaves the journal empty while mounted
    m = re.search(r"STATE-synced: recover=1 s_start=(\d+)", boot1.output)
    assert m and m.group(1) == "0", boot1.output[-2000:]

    boot2 = run_script(
        PREAMBLE + _state("crashed")
        + "mount -t vexfs /dev/vda /mnt/v && echo MOUNTED\n"
        + "dmesg | grep 'vexfs (vda): recovered' || true\n"
        + "head -c 4 /mnt/v/f | od -c | head -1; wc -c < /mnt/v/f\n"
        + "ls /mnt/v; ls /mnt/v/d | wc -l\n"
        + "umount /mnt/v\n" + _state("umounted")
        + "if .venv/bin/fsck.vexfs -n -f /dev/vda; then echo FSCK=0; else echo FSCK=$?; fi\n"
        # damage the journal superblock (its magic, block 1)
        + "printf '\\000\\000\\000\\000' | dd of=/dev/vda bs=1 seek=4096 conv=notrunc 2>/dev/null\n"
        + "sync; echo 3 > /proc/sys/vm/drop_caches\n"
        + "if mount -t vexfs /dev/vda /mnt/v 2> /tmp/err; then echo BADMOUNT=ok; umount /mnt/v; "
        "else echo BADMOUNT=failed; cat /tmp/err; fi\n"
        + "dmesg | grep 'corrupt journal' || true\n",
        modules=[MODULE], disks=[disk], timeout=600)
    out = boot2.output
    assert not boot2.crashed and boot2.returncode == 0, out[-3000:]
    # before the mount: the journal holds the committed transactions
    m = re.search(r"STATE-crashed: recover=1 s_start=(\d+)", out)
    assert m and m.group(1) != "0", out[-3000:]
    assert "MOUNTED" in out, out[-3000:]
    m = re.search(r"vexfs \(vda\): recovered (\d+) transactions in (\d+) ms", out)
    assert m and int(m.group(1)) >= 1, out[-3000:]
    # the rename is atomic: f has the new content, f.tmp is gone
    assert "n   e   w  \\n" in out and "4000" in out, out[-3000:]
    assert "f.tmp" not in out, out[-3000:]
    assert re.search(r"^20$", out, re.M), out[-3000:]
    m = re.search(r"STATE-umounted: recover=(\d) s_start=(\d+)", out)
    assert m and m.groups() == ("0", "0"), out[-3000:]
    assert "FSCK=0" in out, out[-3000:]
    # a corrupt journal is refused with an errno, not an oops
    assert "BADMOUNT=failed" in out and "Structure needs cleaning" in out, out[-3000:]
    assert "corrupt journal" in out, out[-3000:]


try:
    import pytest

    test_replay_after_power_cut_rename_atomic_and_corrupt_journal = pytest.mark.vm(
        pytest.mark.timeout(1200)(test_replay_after_power_cut_rename_atomic_and_corrupt_journal))
except ImportError:  # run as the guest-side helper
    pass
