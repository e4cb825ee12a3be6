"""Power cuts in a real VM (guest side): a seeded workload on a virtio disk,
`echo b > /proc/sysrq-trigger` at a random moment, and the check on the
next boot.

    python -m vexfs.crashsafe.powercut work   --fs vexfs --dev /dev/vda --marks /dev/vdb --seed S
    python -m vexfs.crashsafe.powercut verify --fs vexfs --dev /dev/vda --marks /dev/vdb --seed S

`work` formats the disk, mounts it and runs episodes (vexfs.crashsafe.workload);
after each one it writes the episode number to the marks disk with O_DIRECT
and O_SYNC (durable before the next episode starts). A timer thread cuts the
power after a seeded random delay. `verify` mounts the disk (the journal
replays), rebuilds the same seeded model in a scratch directory, reads the
last durable mark n and checks the tree: everything of episode n, episode
n+1 in one of its allowed states (its mark may be lost with the cut); then
unmounts and runs fsck -n -f, which must exit 0. It prints one JSON line.
"""

from __future__ import annotations

import json
import mmap
import os
import random
import struct
import tempfile
import threading
import time
from pathlib import Path

import click

from vexfs.crashsafe import dmlog, oracle, sysmount
from vexfs.crashsafe.run import fs_kind, run_fsck
from vexfs.crashsafe.workload import Workload

MARK = struct.Struct("<QQ")  # magic, episode + 1 (0: none yet)
MARK_MAGIC = 0x4B52414D53434358


class MarkDisk:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_DIRECT | os.O_SYNC)
        self.buf = mmap.mmap(-1, 4096)  # page aligned, as O_DIRECT needs

    def write(self, value: int) -> None:
        self.buf.seek(0)
        self.buf.write(MARK.pack(MARK_MAGIC, value).ljust(4096, b"\0"))
        os.pwritev(self.fd, [self.buf], 0)

    def read(self) -> int:
        os.preadv(self.fd, [self.buf], 0)
        magic, value = MARK.unpack_from(self.buf)
        return value if magic == MARK_MAGIC else 0


@click.group()
def main() -> None:
    """Power-cut rounds (guest side)."""


@main.command()
@click.option("--fs", "fs_name", type=click.Choice(["ext4", "vexfs"]), required=True)
@click.option("--dev", required=True)
@click.option("--marks", required=True)
@click.option("--seed", type=int, required=True)
@click.option("--max-delay", type=float, default=20.0, show_default=True)
def work(fs_name: str, dev: str, marks: str, seed: int, max_delay: float) -> None:
    """Format, run the workload, cut the power at a random moment."""
    import subprocess

    kind = fs_kind(fs_name)
    dmlog.load_modules()
    subprocess.run(kind.mkfs + [dev], check=True, capture_output=True)
    md = MarkDisk(marks)
    md.write(0)
    mnt = "/mnt/pc"
    os.makedirs(mnt, exist_ok=True)
    sysmount.mount(dev, mnt, kind.mount_type)
    delay = random.Random(seed).uniform(1.0, max_delay)
    print(f"PC cut in {delay:.1f} s", flush=True)

    def cut() -> None:
        time.sleep(delay)
        with open("/dev/kmsg", "w") as k:
            k.write("POWER-CUT\n")
        with open("/proc/sysrq-trigger", "w") as t:
            t.write("b")

    threading.Thread(target=cut, daemon=True).start()
    n = [0]

    def mark(label: str) -> None:
        if label.startswith("ep-") and label != "ep-start":
            n[0] = int(label[3:]) + 1
            md.write(n[0])

    Workload(Path(mnt), seed, mark).run(100000)


@main.command()
@click.option("--fs", "fs_name", type=click.Choice(["ext4", "vexfs"]), required=True)
@click.option("--dev", required=True)
@click.option("--marks", required=True)
@click.option("--seed", type=int, required=True)
def verify(fs_name: str, dev: str, marks: str, seed: int) -> None:
    """Mount after the cut, check the model and fsck; print a JSON line."""
    kind = fs_kind(fs_name)
    dmlog.load_modules()
    done = MarkDisk(marks).read()  # episodes 0..done-1 are durable
    out: dict = {"episodes_durable": done, "violations": []}
    with tempfile.TemporaryDirectory() as scratch:
        wl = Workload(Path(scratch), seed, lambda _label: None)
        wl.run(done + 1)  # the same seeded model, one episode further
    last = f"ep-{done - 1}" if done else "ep-start"
    exp = oracle.expectation(wl.episodes, last, at_mark=False)
    mnt = "/mnt/pc"
    os.makedirs(mnt, exist_ok=True)
    t0 = time.monotonic()
    try:
        sysmount.mount(dev, mnt, kind.mount_type)
    except OSError as e:
        out["violations"].append(f"mount failed: {e}")
    else:
        out["mount_s"] = round(time.monotonic() - t0, 3)
        out["violations"] += oracle.check_tree(Path(mnt), exp)
        sysmount.umount(mnt)
    rc, text = run_fsck(kind, dev)
    out["fsck_rc"] = rc
    if rc != 0:
        out["violations"].append(f"fsck -n -f exit {rc}: {text.strip().splitlines()[-3:]}")
    print("PCRESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
