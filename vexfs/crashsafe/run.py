"""Guest driver: record a workload through dm-log-writes, then replay every
crash point and check it.

    python -m vexfs.crashsafe.run --fs ext4 --episodes 200 --seed 1 --out /tmp/cs.json

Record: mkfs on a loop image, keep a copy as the replay base, put
log-writes over the image, mount, run the seeded workload (a mark after
every episode), unmount, remove the target. Replay: apply the log to the
base one entry at a time; at every FLUSH, FUA and MARK entry copy the image,
mount the copy (its journal replays), check the tree against the model,
unmount, and run fsck -n -f, which must exit 0. With --torn-every N, every
Nth point is also checked with the last block written before it half
written (a torn write): mount, fsck and the durable paths must still hold.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

from vexfs.crashsafe import dmlog, oracle, sysmount
from vexfs.crashsafe.replay import Replayer
from vexfs.crashsafe.workload import Workload

log = logging.getLogger(__name__)

VENV_BIN = Path(sys.executable).parent
RECOVERED = re.compile(r"recovered (\d+) transactions in (\d+) ms")
_kmsg: sysmount.Kmsg | None = None


@dataclass
class FsKind:
    name: str
    mkfs: list[str]
    fsck: list[str]
    mount_type: str


def fs_kind(name: str) -> FsKind:
    if name == "ext4":
        return FsKind("ext4", ["mkfs.ext4", "-q", "-F", "-b", "4096"], ["e2fsck", "-n", "-f"],
                      "ext4")
    if name == "vexfs":
        return FsKind("vexfs", [str(VENV_BIN / "mkfs.vexfs"), "-q", "-f"],
                      [str(VENV_BIN / "fsck.vexfs"), "-n", "-f"], "vexfs")
    raise click.BadParameter(f"unknown filesystem {name}")


@dataclass
class RunResult:
    fs: str
    seed: int
    episodes: int
    mount_options: str = ""
    ops: int = 0
    log_entries: int = 0
    marks: int = 0
    points: int = 0
    torn_points: int = 0
    violations: int = 0
    violation_list: list[dict] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)
    record_s: float = 0.0
    replay_s: float = 0.0
    apply_s: float = 0.0
    snapshot_s: float = 0.0
    mount_s: float = 0.0
    fsck_s: float = 0.0
    check_s: float = 0.0
    episode_kinds: dict[str, int] = field(default_factory=dict)
    # the kernel's "recovered N transactions in X ms" at the points' mounts
    recoveries: int = 0
    recovery_ms_max: int = 0
    recovery_ms_total: int = 0
    recovered_transactions_max: int = 0


def _sh(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def record(kind: FsKind, work: Path, size_mb: int, log_mb: int, episodes: int, seed: int,
           vectors: bool, mnt: Path, options: str = "") -> tuple[Workload, Path, Path, float]:
    data, base, logimg = work / "data.img", work / "base.img", work / "log.img"
    for f, mb in ((data, size_mb), (logimg, log_mb)):
        with open(f, "wb") as fh:
            fh.truncate(mb << 20)
    res = _sh(kind.mkfs + [str(data)])
    if res.returncode:
        raise click.ClickException(f"mkfs failed: {res.stderr}")
    subprocess.run(["cp", "--sparse=always", str(data), str(base)], check=True)
    ddev, ldev = dmlog.losetup(data), dmlog.losetup(logimg)
    lw = dmlog.LogWrites("cslog", ddev, ldev).create()
    t0 = time.monotonic()
    try:
        mnt.mkdir(parents=True, exist_ok=True)
        sysmount.mount(lw.path, str(mnt), kind.mount_type, options)
        wl = Workload(mnt, seed, lw.mark, vectors=vectors)
        try:
            wl.run(episodes)
        finally:
            sysmount.umount(str(mnt))
        lw.mark("umounted")
        log.info("recorded %d episodes, %d ops; %s", len(wl.episodes), wl.ops, lw.status())
    finally:
        lw.remove()
        dmlog.lodetach(ddev)
        dmlog.lodetach(ldev)
    return wl, base, logimg, time.monotonic() - t0


def check_device(kind: FsKind, dev: str, mnt: Path, exp: oracle.Expectation, loose: bool,
                 result: RunResult) -> list[str]:
    """Mount dev (its journal replays), check the tree, unmount, fsck -n -f."""
    t0 = time.monotonic()
    try:
        sysmount.mount(dev, str(mnt), kind.mount_type)
    except OSError as e:
        return [f"mount failed: {e}"]
    finally:
        result.mount_s += time.monotonic() - t0
        for line in _kmsg.new() if _kmsg is not None else []:
            m = RECOVERED.search(line)
            if m:
                n, ms = int(m.group(1)), int(m.group(2))
                result.recoveries += 1
                result.recovery_ms_total += ms
                result.recovery_ms_max = max(result.recovery_ms_max, ms)
                result.recovered_transactions_max = max(result.recovered_transactions_max, n)
    problems: list[str] = []
    t0 = time.monotonic()
    try:
        problems += oracle.check_tree(mnt, exp, loose=loose)
    except Exception as e:  # a tree the oracle cannot even walk is a violation
        problems.append(f"check raised {type(e).__name__}: {e}")
    finally:
        result.check_s += time.monotonic() - t0
        t1 = time.monotonic()
        try:
            sysmount.umount(str(mnt))
        except OSError as e:
            problems.append(f"umount failed: {e}")
        result.mount_s += time.monotonic() - t1
    t0 = time.monotonic()
    rc, text = run_fsck(kind, dev)
    result.fsck_s += time.monotonic() - t0
    if rc != 0:
        tail = text.strip().splitlines()[-6:]
        problems.append(f"fsck -n -f exit {rc}: {' | '.join(tail)}")
    return problems


def run_fsck(kind: FsKind, dev: str) -> tuple[int, str]:
    """fsck -n -f; fsck.vexfs runs in this process (a Python start per
    point would cost more than the check under TCG)."""
    if kind.name == "vexfs":
        import contextlib
        import io

        from vexfs import fsck

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            rc = fsck.main(["-n", "-f", dev])
        return rc, buf.getvalue()
    res = _sh(kind.fsck + [dev])
    return res.returncode, res.stdout + res.stderr


def replay_all(kind: FsKind, wl: Workload, base: Path, logimg: Path, work: Path, mnt: Path,
               torn_every: int, max_violations: int, result: RunResult,
               progress_every: int = 10) -> None:
    target = work / "replay.img"
    subprocess.run(["cp", "--sparse=always", str(base), str(target)], check=True)
    size = os.path.getsize(base)
    rp = Replayer(logimg, target, size)
    cow = work / "cow.img"
    with open(cow, "wb") as fh:
        fh.truncate(size)
    origin, cow_loop = sysmount.Loop(str(target)), sysmount.Loop(str(cow))
    snap = dmlog.Snapshot("cschk", origin.path, cow_loop.path)
    mnt.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    try:
        _replay_points(kind, wl, rp, snap, mnt, torn_every, max_violations,
                       result, progress_every, t_start)
    finally:
        snap.close()
        cow_loop.close()
        origin.close()
    result.log_entries = rp.stats.entries
    result.marks = len(rp.stats.marks)
    result.apply_s = rp.stats.apply_s
    result.snapshot_s = rp.stats.snapshot_s
    result.replay_s = time.monotonic() - t_start


def _check_snapshot(kind: FsKind, rp: Replayer, snap: dmlog.Snapshot, mnt: Path,
                    exp: oracle.Expectation, torn: tuple[int, bytes] | None,
                    result: RunResult) -> list[str]:
    """Check the replayed image through a fresh throw-away snapshot of it
    (mount and fsck may write; the replay target stays as the log made
    it), with its last write torn first if asked."""
    t0 = time.monotonic()
    dev = snap.open()
    try:
        if torn is not None:
            off, old = torn
            fd = os.open(dev, os.O_RDWR)
            try:
                os.pwrite(fd, old, off)
                os.fsync(fd)
            finally:
                os.close(fd)
        rp.stats.snapshot_s += time.monotonic() - t0
        return check_device(kind, dev, mnt, exp, torn is not None, result)
    finally:
        t0 = time.monotonic()
        snap.close()
        rp.stats.snapshot_s += time.monotonic() - t0


def _replay_points(kind: FsKind, wl: Workload, rp: Replayer, snap: dmlog.Snapshot, mnt: Path,
                   torn_every: int, max_violations: int, result: RunResult,
                   progress_every: int, t_start: float) -> None:
    for pt in rp.points(start_mark="ep-start"):
        at_mark = pt.entry.mark is not None
        exp = oracle.expectation(wl.episodes, pt.last_mark, at_mark)
        problems = _check_snapshot(kind, rp, snap, mnt, exp, None, result)
        result.points += 1
        k = pt.entry.kind()
        result.by_kind[k] = result.by_kind.get(k, 0) + 1
        for p in problems:
            result.violations += 1
            if len(result.violation_list) < max_violations:
                result.violation_list.append({"point": pt.number, "entry": pt.entry.index,
                                              "kind": k, "problem": p})
        if torn_every and pt.number % torn_every == 0 and not at_mark:
            torn = rp.torn_undo()
            if torn is not None:
                texp = oracle.expectation(wl.episodes, rp.torn_mark, False)
                for p in _check_snapshot(kind, rp, snap, mnt, texp, torn, result):
                    result.violations += 1
                    if len(result.violation_list) < max_violations:
                        result.violation_list.append({"point": pt.number, "entry": pt.entry.index,
                                                      "kind": "torn", "problem": p})
                result.torn_points += 1
        if progress_every and result.points % progress_every == 0:
            # the host follows this line on the console
            print(f"CS P {result.points} V {result.violations} "
                  f"{time.monotonic() - t_start:.0f}s (snapshot {rp.stats.snapshot_s:.0f} "
                  f"mount {result.mount_s:.0f} check {result.check_s:.0f} "
                  f"fsck {result.fsck_s:.0f})", flush=True)


@click.command()
@click.option("--fs", "fs_name", type=click.Choice(["ext4", "vexfs"]), required=True)
@click.option("--episodes", type=int, default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--vectors/--no-vectors", default=False, help="add collection batches (vexfs)")
@click.option("--size-mb", type=int, default=64, show_default=True)
@click.option("--log-mb", type=int, default=1024, show_default=True, help="sparse log image")
@click.option("--torn-every", type=int, default=10, show_default=True,
              help="also check a torn last write at every Nth point (0: never)")
@click.option("--mount-options", default="", help="for the recorded mount only "
              "(e.g. ext4 nobarrier: a negative control that must show violations)")
@click.option("--work", type=click.Path(path_type=Path), default=Path("/tmp/crashsafe"))
@click.option("--out", type=click.Path(path_type=Path), required=True)
def main(fs_name: str, episodes: int, seed: int, vectors: bool, size_mb: int, log_mb: int,
         torn_every: int, mount_options: str, work: Path, out: Path) -> None:
    """Record a seeded workload under dm-log-writes and check every crash point."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    kind = fs_kind(fs_name)
    dmlog.load_modules()
    work.mkdir(parents=True, exist_ok=True)
    result = RunResult(fs=fs_name, seed=seed, episodes=episodes, mount_options=mount_options)
    wl, base, logimg, rec_s = record(kind, work, size_mb, log_mb, episodes, seed, vectors,
                                     work / "mnt", mount_options)
    result.ops, result.record_s = wl.ops, rec_s
    for ep in wl.episodes:
        result.episode_kinds[ep.kind] = result.episode_kinds.get(ep.kind, 0) + 1
    global _kmsg
    _kmsg = sysmount.Kmsg()
    print(f"CS R {len(wl.episodes)} episodes {wl.ops} ops {rec_s:.1f}s", flush=True)
    replay_all(kind, wl, base, logimg, work, work / "chk", torn_every, 200, result)
    out.write_text(json.dumps(asdict(result), indent=1))
    for v in result.violation_list[:10]:
        print(f"CS X point {v['point']} entry {v['entry']} ({v['kind']}): {v['problem']}",
              flush=True)
    print(f"CS D points {result.points} torn {result.torn_points} violations "
          f"{result.violations} replay {result.replay_s:.1f}s; journal replays at mount: "
          f"{result.recoveries}, max {result.recovery_ms_max} ms", flush=True)


if __name__ == "__main__":
    main()
