"""Filesystem benchmark: VexFS against ext4 on the same block device.

Runs as root in the VM (`vexfs bench fs --dev /dev/vda`). Every workload
starts from a fresh mkfs of the device (ext4 with its defaults: a journal,
data=ordered; its inode tables and journal initialised at mkfs time, so no
background ext4lazyinit thread writes while it is timed) and a freshly
mounted, cache-dropped filesystem. Only the workload itself is timed:

  (a) ``fsync``: create + write 4 KiB + fsync of N files (default 10,000) in
      one directory, then unlink them all and syncfs;
  (b) ``seqwrite``: one file written sequentially in 1 MiB writes (default
      100 MB), then fsync;
  (c) ``untar``: a tree of N files and directories (default 20,000) with the
      fan-out and file sizes of a source tree (seeded generator, see
      `make_tree`), created depth first as tar extracts it, then sync.

Each workload's ratio is ext4_time / vexfs_time: >= 1.0 means VexFS is at
least as fast. With ``--rounds`` > 1 the two filesystems alternate and each
keeps its best time (the host running the VM is shared). Alongside each time
the result records the jbd2 commits the workload caused (from
/proc/fs/jbd2/<dev>-8/info) and the device's write requests, sectors and
flushes (/sys/block/<dev>/stat), which is what explains a difference.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

GOAL = 1.0
FILE_4K = 4096
SEQ_CHUNK = 1 << 20
FILESYSTEMS = ("ext4", "vexfs")
WORKLOADS = ("fsync", "seqwrite", "untar")


@dataclass
class DevCounters:
    """What the device saw: /sys/block/<dev>/stat fields, jbd2 commits."""

    writes: int = 0          # write requests completed
    write_sectors: int = 0
    flushes: int = 0         # flush requests (kernel >= 5.5 has the field)
    commits: int = 0         # jbd2 transactions committed

    def __sub__(self, other: DevCounters) -> DevCounters:
        return DevCounters(self.writes - other.writes,
                           self.write_sectors - other.write_sectors,
                           self.flushes - other.flushes, self.commits - other.commits)


@dataclass
class Timing:
    fs: str
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    counters: DevCounters = field(default_factory=DevCounters)


@dataclass
class WorkloadResult:
    name: str
    description: str
    ext4_s: float
    vexfs_s: float
    ratio: float                       # ext4_s / vexfs_s
    goal_met: bool
    ext4: list[dict] = field(default_factory=list)    # every round's timing
    vexfs: list[dict] = field(default_factory=list)


@dataclass
class FsBenchResult:
    device: str
    device_bytes: int
    kernel: str
    rounds: int
    files: int
    seq_mb: int
    tree: int
    tree_files: int
    tree_dirs: int
    tree_bytes: int
    goal: float = GOAL
    workloads: list[WorkloadResult] = field(default_factory=list)

    @property
    def all_goals_met(self) -> bool:
        return bool(self.workloads) and all(w.goal_met for w in self.workloads)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["all_goals_met"] = self.all_goals_met
        return d


# ------------------------------------------------------------ the tree


@dataclass(frozen=True)
class TreeEntry:
    path: str        # relative, '/'-separated
    is_dir: bool
    size: int = 0


def make_tree(n: int, seed: int = 1) -> list[TreeEntry]:
    """A source-tree-shaped list of `n` entries in tar (depth-first) order.

    The shape follows linux-6.1's source tree (about 78,000 files in 5,000
    directories: ~6% directories, a median of ~11 entries per directory,
    a long tail of big directories; files with a median of ~4 KiB, a
    log-normal spread and a tail up to a few hundred KiB). Each directory
    gets a log-normal number of children, ~6% of them subdirectories, down
    to a depth of 8. Deterministic for a given (n, seed)."""
    rng = random.Random(seed)
    out: list[TreeEntry] = []

    def file_size() -> int:
        return min(int(rng.lognormvariate(8.3, 1.3)), 512 * 1024)

    def fill(prefix: str, depth: int) -> None:
        children = max(2, int(rng.lognormvariate(2.4, 0.9)))
        names = 0
        for _ in range(children):
            if len(out) >= n:
                return
            names += 1
            is_dir = depth < 8 and rng.random() < 0.12
            name = f"{prefix}{'d' if is_dir else 'f'}{names:03d}" + ("" if is_dir else ".c")
            if is_dir:
                out.append(TreeEntry(name, True))
                fill(name + "/", depth + 1)
            else:
                out.append(TreeEntry(name, False, file_size()))

    top = 0
    while len(out) < n:
        top += 1
        name = f"top{top:02d}"
        out.append(TreeEntry(name, True))
        fill(name + "/", 1)
    return out[:n]


# ------------------------------------------------------------ the device


def _sh(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {res.returncode}: "
                           f"{(res.stderr or res.stdout).strip()[-500:]}")
    return res


def _counters(dev: str) -> DevCounters:
    name = os.path.basename(os.path.realpath(dev))
    c = DevCounters()
    try:
        f = Path(f"/sys/block/{name}/stat").read_text().split()
        c.writes, c.write_sectors = int(f[4]), int(f[6])
        if len(f) >= 17:
            c.flushes = int(f[15])
    except (OSError, IndexError, ValueError):
        pass
    jbd = Path("/proc/fs/jbd2")
    if jbd.is_dir():
        for d in jbd.iterdir():
            if d.name.startswith(name + "-") or d.name == name:
                try:
                    first = (d / "info").read_text().split("\n", 1)[0]
                    # "123 transactions (120 requested), each up to 8192 blocks"
                    c.commits += int(first.split()[0])
                except (OSError, ValueError, IndexError):
                    pass
    return c


def mkfs(fs: str, dev: str) -> None:
    if fs == "ext4":
        _sh(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev])
    elif fs == "vexfs":
        exe = Path(sys.executable).with_name("mkfs.vexfs")
        _sh([str(exe) if exe.exists() else "mkfs.vexfs", "-q", "-f", dev])
    else:
        raise ValueError(f"unknown filesystem {fs!r}")


def mount(fs: str, dev: str, mnt: Path) -> None:
    mnt.mkdir(parents=True, exist_ok=True)
    _sh(["mount", "-t", fs, dev, str(mnt)])


def umount(mnt: Path) -> None:
    _sh(["umount", str(mnt)])


def drop_caches() -> None:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        log.debug("drop_caches: %s", exc)


# ------------------------------------------------------------ the workloads


def wl_fsync(root: Path, files: int, buf: bytes = b"\xa5" * FILE_4K) -> dict[str, float]:
    d = root / "fsync"
    d.mkdir()
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    t0 = time.perf_counter()
    for i in range(files):
        fd = os.open(d / f"f{i:06d}", flags, 0o644)
        try:
            os.write(fd, buf)
            os.fsync(fd)
        finally:
            os.close(fd)
    t1 = time.perf_counter()
    for i in range(files):
        os.unlink(d / f"f{i:06d}")
    fd = os.open(d, os.O_RDONLY)
    try:
        os.syncfs(fd) if hasattr(os, "syncfs") else os.sync()
    finally:
        os.close(fd)
    t2 = time.perf_counter()
    return {"create_write_fsync": t1 - t0, "unlink_sync": t2 - t1}


def wl_seqwrite(root: Path, mb: int, buf: bytes = b"\x5a" * SEQ_CHUNK) -> dict[str, float]:
    total = mb * 1000 * 1000
    t0 = time.perf_counter()
    fd = os.open(root / "seq.bin", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
    try:
        left = total
        while left > 0:
            left -= os.write(fd, buf[:min(left, SEQ_CHUNK)])
        t1 = time.perf_counter()
        os.fsync(fd)
        t2 = time.perf_counter()
    finally:
        os.close(fd)
    t3 = time.perf_counter()
    return {"write": t1 - t0, "fsync": t2 - t1, "close": t3 - t2}


def wl_untar(root: Path, tree: list[TreeEntry], data: bytes | None = None) -> dict[str, float]:
    if data is None:
        data = b"\x3c" * max((e.size for e in tree), default=0)
    base = root / "tree"
    base.mkdir()
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    t0 = time.perf_counter()
    for e in tree:
        p = os.path.join(base, e.path)
        if e.is_dir:
            os.mkdir(p, 0o755)
            continue
        fd = os.open(p, flags, 0o644)
        try:
            if e.size:
                os.write(fd, data[:e.size])
        finally:
            os.close(fd)
    t1 = time.perf_counter()
    os.sync()
    t2 = time.perf_counter()
    return {"create": t1 - t0, "sync": t2 - t1}


# ------------------------------------------------------------ the driver


def time_workload(fs: str, dev: str, mnt: Path, fn: Callable[[Path], dict[str, float]]) -> Timing:
    mkfs(fs, dev)
    mount(fs, dev, mnt)
    try:
        drop_caches()
        before = _counters(dev)
        t0 = time.perf_counter()
        phases = fn(mnt)
        seconds = time.perf_counter() - t0
        after = _counters(dev)
    finally:
        umount(mnt)
    return Timing(fs=fs, seconds=seconds, phases=phases, counters=after - before)


def run(dev: str, mnt: Path, files: int = 10_000, seq_mb: int = 100, tree_n: int = 20_000,
        rounds: int = 1, seed: int = 1, workloads: tuple[str, ...] = WORKLOADS,
        progress: Callable[[str], None] | None = None) -> FsBenchResult:
    tree = make_tree(tree_n, seed)
    with open(dev, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
    out = FsBenchResult(device=dev, device_bytes=size, kernel=os.uname().release,
                        rounds=rounds, files=files, seq_mb=seq_mb, tree=tree_n,
                        tree_files=sum(not e.is_dir for e in tree),
                        tree_dirs=sum(e.is_dir for e in tree),
                        tree_bytes=sum(e.size for e in tree))
    # the data, made before any timing (getrandom of a MiB takes seconds under TCG)
    buf4k, buf1m = os.urandom(FILE_4K), os.urandom(SEQ_CHUNK)
    tree_data = os.urandom(max((e.size for e in tree), default=0))
    specs: dict[str, tuple[str, Callable[[Path], dict[str, float]]]] = {
        "fsync": (f"create + write 4 KiB + fsync of {files} files, unlink all, syncfs",
                  lambda m: wl_fsync(m, files, buf4k)),
        "seqwrite": (f"{seq_mb} MB sequential write (1 MiB writes) + fsync",
                     lambda m: wl_seqwrite(m, seq_mb, buf1m)),
        "untar": (f"untar-like tree of {tree_n} entries ({out.tree_dirs} directories, "
                  f"{out.tree_bytes / 1e6:.0f} MB) + sync", lambda m: wl_untar(m, tree, tree_data)),
    }
    for name in workloads:
        desc, fn = specs[name]
        timings: dict[str, list[Timing]] = {fs: [] for fs in FILESYSTEMS}
        for r in range(rounds):
            order = FILESYSTEMS if r % 2 == 0 else FILESYSTEMS[::-1]
            for fs in order:
                t = time_workload(fs, dev, mnt, fn)
                timings[fs].append(t)
                msg = (f"{name} round {r + 1}/{rounds} {fs}: {t.seconds:.2f} s "
                       f"({', '.join(f'{k} {v:.2f}' for k, v in t.phases.items())}; "
                       f"{t.counters.commits} commits, {t.counters.writes} writes, "
                       f"{t.counters.flushes} flushes)")
                log.info("%s", msg)
                if progress:
                    progress(msg)
        e = min(t.seconds for t in timings["ext4"])
        v = min(t.seconds for t in timings["vexfs"])
        ratio = e / v if v > 0 else 0.0
        out.workloads.append(WorkloadResult(
            name=name, description=desc, ext4_s=e, vexfs_s=v, ratio=ratio,
            goal_met=ratio >= GOAL,
            ext4=[asdict(t) for t in timings["ext4"]],
            vexfs=[asdict(t) for t in timings["vexfs"]]))
    return out
