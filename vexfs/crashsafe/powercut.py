"""Power cuts in a real VM: a seeded workload on a virtio disk,
`echo b > /proc/sysrq-trigger` at a random moment, and the check on the
next boot.

Guest side, one command per boot:

    python -m vexfs.crashsafe.powercut step --fs vexfs --dev /dev/vda --marks /dev/vdb \\
        --rounds N --seed S [--vectors]

The marks disk (/dev/vdb, written O_DIRECT|O_SYNC, so durable at once) holds
the round to run next and, during a round, the number of episodes whose
mark is durable. `step` reads round k: if k > 0 it verifies round k-1; if
k < N it records k+1, formats the disk, mounts it and runs the workload of
seed S+k (vexfs.crashsafe.workload) until a timer thread cuts the power
after a seeded random delay. The reboot (sysrq-b) restarts the machine in
the same QEMU process (`run_rounds`, the host side), and the next boot runs
`step` again. After round N-1's check it prints PCDONE and the VM powers off.

Verify (the fsck steps in every `--fsck-every`th round: they cost more than
the rest of a check under TCG): before anything mounts the disk,
`fsck.vexfs -n -f` (in process)
must say whether the journal needs recovery, exit 0 and write nothing (the
disk's hash is unchanged); `fsck.vexfs -y -f` on a copy must replay it and
exit 1 (e2fsck's "modified") when it needed recovery, then `-n` on the
copy exits 0. Then the kernel mounts the disk (the journal replays: dmesg's
"recovered N transactions in X ms" is kept), the tree is checked against
the seeded model rebuilt without a filesystem (`Workload(dry=True)`):
everything of the durable episodes, the next one in one of its allowed
states (its mark may be lost with the cut); unmount, and fsck -n -f must
exit 0. One JSON line `PCRESULT {...}` per round.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import mmap
import os
import random
import re
import shutil
import struct
import threading
import time
from pathlib import Path

import click

from vexfs.crashsafe import dmlog, oracle, sysmount
from vexfs.crashsafe.run import fs_kind, run_fsck
from vexfs.crashsafe.workload import Workload

log = logging.getLogger(__name__)

MARK = struct.Struct("<QQ")  # magic, value
MARK_MAGIC = 0x4B52414D53434358
EPISODE_SLOT, ROUND_SLOT = 0, 1  # 4 KiB slots of the marks disk
RECOVERED = re.compile(r"vexfs \(([^)]*)\): recovered (\d+) transactions in (\d+) ms")
MNT = "/mnt/pc"


class MarkDisk:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_DIRECT | os.O_SYNC)
        self.buf = mmap.mmap(-1, 4096)  # page aligned, as O_DIRECT needs

    def write(self, value: int, slot: int = EPISODE_SLOT) -> None:
        self.buf.seek(0)
        self.buf.write(MARK.pack(MARK_MAGIC, value).ljust(4096, b"\0"))
        os.pwritev(self.fd, [self.buf], slot * 4096)

    def read(self, slot: int = EPISODE_SLOT) -> int:
        os.preadv(self.fd, [self.buf], slot * 4096)
        magic, value = MARK.unpack_from(self.buf)
        return value if magic == MARK_MAGIC else 0


def kmsg_recovered() -> list[tuple[int, int]]:
    """(transactions, ms) of every "recovered" line in the kernel log."""
    out: list[tuple[int, int]] = []
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                rec = os.read(fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError:  # EPIPE: a record was overwritten; go on
                continue
            m = RECOVERED.search(rec)
            if m:
                out.append((int(m.group(2)), int(m.group(3))))
    finally:
        os.close(fd)
    return out


def _sha(dev: str) -> str:
    h = hashlib.sha256()
    with open(dev, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fsck(kind_name: str, args: list[str]) -> tuple[int, str]:
    from vexfs import fsck

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = fsck.main(args)
    return rc, buf.getvalue()


def work(fs_name: str, dev: str, md: MarkDisk, seed: int, max_delay: float,
         vectors: bool) -> None:
    """Format, mount, run the workload; the power is cut after a seeded delay."""
    import subprocess

    kind = fs_kind(fs_name)
    subprocess.run(kind.mkfs + [dev], check=True, capture_output=True)
    md.write(0)
    os.makedirs(MNT, exist_ok=True)
    sysmount.mount(dev, MNT, kind.mount_type)
    delay = random.Random(seed).uniform(1.0, max_delay)
    print(f"PC round seed {seed}: cut in {delay:.1f} s", flush=True)

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

    Workload(Path(MNT), seed, mark, vectors=vectors).run(100000)


def verify(fs_name: str, dev: str, md: MarkDisk, seed: int, vectors: bool,
           fsck_first: bool = True) -> dict:
    kind = fs_kind(fs_name)
    done = md.read()  # episodes 0..done-1 are durable
    out: dict = {"seed": seed, "episodes_durable": done, "violations": []}
    wl = Workload(Path("/nonexistent"), seed, lambda _label: None, vectors=vectors, dry=True)
    wl.run(done + 1)  # the same seeded model, one episode further
    last = f"ep-{done - 1}" if done else "ep-start"
    exp = oracle.expectation(wl.episodes, last, at_mark=False)
    viol = out["violations"]
    if fs_name == "vexfs" and fsck_first:
        # fsck before the kernel touches the disk: -n reports, writes nothing
        t0 = time.monotonic()
        before = _sha(dev)
        rc, text = _fsck(fs_name, ["-n", "-f", dev])
        out["fsck_n_rc"] = rc
        out["needs_recovery"] = "journal needs recovery" in text
        if rc != 0:
            viol.append(f"fsck -n -f before mount exit {rc}: {text.strip().splitlines()[-3:]}")
        if _sha(dev) != before:
            viol.append("fsck -n wrote to the device")
        copy = "/tmp/pc-copy.img"
        shutil.copyfile(dev, copy)
        rc_y, text_y = _fsck(fs_name, ["-y", "-f", copy])
        out["fsck_y_rc"] = rc_y
        want = 1 if out["needs_recovery"] else 0
        if rc_y != want:
            viol.append(f"fsck -y -f on a copy exit {rc_y}, want {want} "
                        f"(e2fsck's convention): {text_y.strip().splitlines()[-3:]}")
        rc_n2, text_n2 = _fsck(fs_name, ["-n", "-f", copy])
        if rc_n2 != 0:
            viol.append(f"fsck -n -f after fsck -y exit {rc_n2}: "
                        f"{text_n2.strip().splitlines()[-3:]}")
        os.unlink(copy)
        out["fsck_pre_s"] = round(time.monotonic() - t0, 2)
    os.makedirs(MNT, exist_ok=True)
    seen = len(kmsg_recovered())
    t0 = time.monotonic()
    try:
        sysmount.mount(dev, MNT, kind.mount_type)
    except OSError as e:
        viol.append(f"mount failed: {e}")
    else:
        out["mount_s"] = round(time.monotonic() - t0, 3)
        rec = kmsg_recovered()[seen:]
        if rec:
            out["recovered_transactions"], out["recovery_ms"] = rec[-1]
        try:
            viol += oracle.check_tree(Path(MNT), exp)
        except Exception as e:  # a tree the oracle cannot walk is a violation
            viol.append(f"check raised {type(e).__name__}: {e}")
        sysmount.umount(MNT)
    rc, text = run_fsck(kind, dev)
    out["fsck_rc"] = rc
    if rc != 0:
        viol.append(f"fsck -n -f exit {rc}: {text.strip().splitlines()[-3:]}")
    return out


@click.group()
def main() -> None:
    """Power-cut rounds (guest side)."""


@main.command()
@click.option("--fs", "fs_name", type=click.Choice(["ext4", "vexfs"]), required=True)
@click.option("--dev", required=True)
@click.option("--marks", required=True)
@click.option("--rounds", type=int, required=True)
@click.option("--seed", type=int, required=True, help="round k uses seed + k")
@click.option("--max-delay", type=float, default=10.0, show_default=True)
@click.option("--vectors/--no-vectors", default=False)
@click.option("--fsck-every", type=int, default=1, show_default=True,
              help="fsck -n / fsck -y on a copy before the mount in every Nth round's check")
def step(fs_name: str, dev: str, marks: str, rounds: int, seed: int, max_delay: float,
         vectors: bool, fsck_every: int) -> None:
    """One boot: check the previous round, start the next one (or finish)."""
    dmlog.load_modules()
    md = MarkDisk(marks)
    k = md.read(ROUND_SLOT)
    if k > 0:
        try:
            res = verify(fs_name, dev, md, seed + k - 1, vectors,
                         fsck_first=(k - 1) % max(1, fsck_every) == 0)
        except Exception as e:  # noqa: BLE001 - reported as the round's violation
            res = {"seed": seed + k - 1, "violations": [f"verify raised {type(e).__name__}: {e}"]}
        res["round"] = k - 1
        print("PCRESULT " + json.dumps(res), flush=True)
    if k >= rounds:
        print("PCDONE", flush=True)
        return
    md.write(k + 1, ROUND_SLOT)
    work(fs_name, dev, md, seed + k, max_delay, vectors)


def run_rounds(fs: str, rounds: int, seed: int, module: Path | None, work_dir: Path,
               vectors: bool = False, max_delay: float = 10.0, disk_mb: int = 16,
               timeout: float = 3600, fsck_every: int = 1) -> dict:
    """Host side: `rounds` power cuts in one QEMU process (a sysrq-b reset
    per round, the machine restarting in place), then the check of the
    last. Returns {rounds: [PCRESULT...], cuts, boots, total_s, crashes, ...}."""
    from vexfs.vm.paths import REPO_ROOT
    from vexfs.vm.quick import run_script

    work_dir.mkdir(parents=True, exist_ok=True)
    disks = [work_dir / "pc-fs.img", work_dir / "pc-marks.img"]
    for d, mb in zip(disks, (disk_mb, 1), strict=True):
        with open(d, "wb") as fh:
            fh.truncate(0)
            fh.truncate(mb << 20)
    py = REPO_ROOT / ".venv" / "bin" / "python"
    script = (f"cd {REPO_ROOT}\nmodprobe virtio_blk\n"
              "for i in $(seq 50); do [ -b /dev/vdb ] && break; sleep 0.1; done\n"
              "modprobe jbd2; [ -e /tmp/vexfs.ko ] && insmod /tmp/vexfs.ko 2>/dev/null\n"
              f"{py} -m vexfs.crashsafe.powercut step --fs {fs} --dev /dev/vda --marks /dev/vdb "
              f"--rounds {rounds} --seed {seed} --max-delay {max_delay} "
              f"--fsck-every {fsck_every}"
              f"{' --vectors' if vectors else ''}\n"
              # reached only after PCDONE, or when a round failed before its cut
              "rc=$?; echo \"PCSTEP rc=$rc\"; exit $rc\n")
    t0 = time.monotonic()
    res = run_script(script, modules=[module] if module else [], disks=disks, timeout=timeout,
                     allow_reboot=True)
    results = [json.loads(m.group(1)) for m in re.finditer(r"^PCRESULT (.*)$", res.console,
                                                           re.M)]
    return {"rounds": results, "requested": rounds,
            "cuts": res.console.count("sysrq: Resetting"),
            "boots": res.console.count("vexfs-init: root ready"),
            "done": "PCDONE" in res.console, "total_s": time.monotonic() - t0,
            "step_failures": re.findall(r"^PCSTEP rc=([1-9]\d*)", res.console, re.M),
            "crashes": [f"{c.kind}: {c.title}" for c in res.crashes],
            "timed_out": res.timed_out, "log": str(res.log_path)}


def summarize(r: dict) -> dict:
    """Figures of run_rounds' result, for the report and the tests."""
    rounds = r["rounds"]
    clean = [x for x in rounds if not x["violations"]]
    rec = [x for x in rounds if "recovery_ms" in x]
    return {"rounds": len(rounds), "clean": len(clean), "cuts": r["cuts"], "boots": r["boots"],
            "violations": sum(len(x["violations"]) for x in rounds),
            "episodes_durable": sum(x.get("episodes_durable", 0) for x in rounds),
            "needed_recovery": sum(bool(x.get("needs_recovery")) for x in rounds),
            "fsck_before_mount": sum("fsck_n_rc" in x for x in rounds),
            "replays": len(rec),
            "replay_ms_max": max((x["recovery_ms"] for x in rec), default=0),
            "replay_ms_mean": round(sum(x["recovery_ms"] for x in rec) / len(rec), 1)
            if rec else 0.0,
            "replayed_transactions": sum(x.get("recovered_transactions", 0) for x in rec),
            "s_per_round": round(r["total_s"] / max(1, len(rounds)), 1)}


if __name__ == "__main__":
    main()
