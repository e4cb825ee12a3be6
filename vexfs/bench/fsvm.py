"""Run `vexfs bench fs` in a fresh VM with a scratch virtio disk (host side).

Used by C1 in `make run`'s report and by tests/vm/test_bench_fs.py. The VM
gets one sparse raw file as /dev/vda (virtio-blk, cache=writeback: the
guest's flushes become fdatasync of the file on the host, for both
filesystems alike); the bench mkfs's it afresh for every workload and
filesystem, so ext4 and VexFS run on the same disk.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vexfs.vm.paths import REPO_ROOT, cache_dir

log = logging.getLogger(__name__)

BEGIN, END = "FSBENCH-JSON-BEGIN", "FSBENCH-JSON-END"


@dataclass
class FsVmRun:
    result: dict | None      # FsBenchResult.to_dict(), None if the bench failed
    returncode: int
    output: str              # the guest script's output
    crashed: bool
    log_path: Path | None
    total_s: float


def guest_script(files: int, seq_mb: int, tree: int, rounds: int,
                 module: str = "/tmp/vexfs.ko") -> str:
    py = REPO_ROOT / ".venv" / "bin" / "vexfs"
    return f"""
cd {REPO_ROOT}
modprobe virtio_blk; modprobe jbd2; modprobe ext4
for i in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.1; done
lsmod | grep -q '^vexfs ' || insmod {module} || exit 3
{py} bench fs --dev /dev/vda --yes --files {files} --seq-mb {seq_mb} --tree {tree} \\
    --rounds {rounds} --json /tmp/fsbench.json || exit 4
echo {BEGIN}; cat /tmp/fsbench.json; echo {END}
"""


def parse(output: str) -> dict | None:
    start, end = output.rfind(BEGIN), output.rfind(END)
    if start < 0 or end < start:
        return None
    try:
        return json.loads(output[start + len(BEGIN):end])
    except json.JSONDecodeError:
        return None


def disk_mb_for(seq_mb: int, tree: int) -> int:
    """A disk that holds the biggest workload with room to spare."""
    return max(512, 2 * seq_mb + tree // 20 + 256)


def run_in_vm(module: Path, files: int = 10_000, seq_mb: int = 100, tree: int = 20_000,
              rounds: int = 1, timeout: float = 7200, echo: bool = False) -> FsVmRun:
    from vexfs.vm.quick import run_script

    jobs = cache_dir() / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fsbench-", dir=jobs) as tmp:
        disk = Path(tmp) / "disk.img"
        with open(disk, "wb") as fh:
            fh.truncate(disk_mb_for(seq_mb, tree) << 20)
        mod = Path(tmp) / "vexfs.ko"
        mod.write_bytes(Path(module).read_bytes())
        res = run_script(guest_script(files, seq_mb, tree, rounds), modules=[mod],
                         disks=[disk], timeout=timeout, echo=echo)
    return FsVmRun(result=parse(res.output), returncode=res.returncode, output=res.output,
                   crashed=res.crashed, log_path=res.log_path, total_s=res.total_s)


def summary(result: dict) -> str:
    """One line per workload: seconds and ratio, goal verdict."""
    lines = []
    for w in result["workloads"]:
        verdict = "goal met" if w["goal_met"] else f"BELOW the {result['goal']:g}x goal"
        lines.append(f"{w['name']}: ext4 {w['ext4_s']:.2f} s, VexFS {w['vexfs_s']:.2f} s, "
                     f"ratio {w['ratio']:.2f}x ({verdict}) - {w['description']}")
    return "\n".join(lines)
