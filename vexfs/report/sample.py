"""A realistic sample run, for tests and for previewing the report layout.

`vexfs report demo OUT_DIR` renders it, so a change to the HTML can be looked
at without booting a VM. The numbers are in the range measured on a 2-core
TCG guest; the crash trace is the shape the Debian 6.1 kernel prints.
"""

from __future__ import annotations

import random

from vexfs.report.model import Crash, Criterion, Environment, Run, ScenarioResult, Status

SAMPLE_WARNING_TRACE = """\
[   41.220931] ------------[ cut here ]------------
[   41.221403] WARNING: CPU: 1 PID: 212 at fs/vexfs/super.c:318 vexfs_fill_super+0x2a1/0x4c0 [vexfs]
[   41.222650] Modules linked in: vexfs(OE) loop
[   41.223118] CPU: 1 PID: 212 Comm: mount Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   41.224020] RIP: 0010:vexfs_fill_super+0x2a1/0x4c0 [vexfs]
[   41.224799] Call Trace:
[   41.225040]  <TASK>
[   41.225231]  mount_bdev+0x1a3/0x1d0
[   41.225580]  legacy_get_tree+0x27/0x50
[   41.225907]  vfs_get_tree+0x22/0xc0
[   41.226250]  path_mount+0x4b5/0xb10
[   41.226602]  __x64_sys_mount+0x108/0x140
[   41.226970]  do_syscall_64+0x58/0xc0
[   41.227310]  entry_SYSCALL_64_after_hwframe+0x64/0xce
[   41.227702]  </TASK>
[   41.227901] ---[ end trace 0000000000000000 ]---"""

SAMPLE_OOPS_TRACE = """\
[   73.514220] BUG: kernel NULL pointer dereference, address: 0000000000000018
[   73.514901] #PF: supervisor read access in kernel mode
[   73.515388] #PF: error_code(0x0000) - not-present page
[   73.516020] Oops: 0000 [#1] PREEMPT SMP NOPTI
[   73.516480] CPU: 0 PID: 388 Comm: mount Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   73.517320] RIP: 0010:vexfs_read_super_block+0x5e/0x1d0 [vexfs]
[   73.518011] Call Trace:
[   73.518220]  <TASK>
[   73.518410]  vexfs_fill_super+0x91/0x4c0 [vexfs]
[   73.518900]  mount_bdev+0x1a3/0x1d0
[   73.519240]  legacy_get_tree+0x27/0x50
[   73.519588]  vfs_get_tree+0x22/0xc0
[   73.519931]  </TASK>
[   73.520130] ---[ end trace 0000000000000000 ]---"""


def _s2_metrics(rng: random.Random, cycles: int = 20) -> dict:
    load = [round(rng.uniform(0.020, 0.045), 4) for _ in range(cycles)]
    unload = [round(rng.uniform(0.010, 0.022), 4) for _ in range(cycles)]
    mem = []
    slab = []
    base_mem, base_slab = 1_842_000, 41_200
    for _ in range(cycles):
        mem.append(base_mem + rng.randint(-300, 300))
        slab.append(base_slab + rng.randint(-40, 40))
    vmalloc = [12_288 + rng.choice((0, 0, 0, 4)) for _ in range(cycles)]
    counters = [{"inodes": 0, "vectors": 0, "collections": 0} for _ in range(cycles)]
    # The names and shapes vexfs/harness/scenarios/s2_stress.py records.
    return {
        "cycles": cycles,
        "load_s": load,
        "unload_s": unload,
        "mem_available_kb": mem,
        "slab_kb": slab,
        "vmalloc_used_kb": vmalloc,
        "module_counters": counters,
        "mem_tolerance_kb": 1024,
        "mem_available_tolerance_kb": 8192,
        "mem_growth_kb": mem[0] - mem[-1],
        "slab_growth_kb": slab[-1] - slab[0],
        "vmalloc_growth_kb": vmalloc[-1] - vmalloc[0],
        "kernel_warnings": [],
    }


def sample_run(run_id: str = "20261125-104500-sample", seed: int = 1) -> Run:
    """Six scenarios: S1-S3 pass, S4 fails a criterion (a WARNING), S5 passes
    with benchmark figures, S6 errors on an oops."""
    rng = random.Random(seed)
    env = Environment(
        kernel_version="6.1.0-56-amd64",
        accelerator="tcg",
        host="builder (Debian GNU/Linux 12)",
        qemu_version="7.2.11",
        module_path="kernel/build/vexfs.ko",
        module_srcversion="4C1F0E2D7B9A8C6E5D4F3A2",
        cpu_model="max",
        extra={"boot_s": 3.8, "guest_root": "virtme-ng style 9p host root"},
    )
    s1 = ScenarioResult(
        id="S1", name="Basic kernel module lifecycle", status=Status.PASSED, duration_s=4.2,
        criteria=[
            Criterion("module loads (insmod exit 0)", True, "exit 0 in 0.031 s"),
            Criterion("module in lsmod and /proc/modules", True, "vexfs 45056 0 - Live"),
            Criterion("init message in dmesg", True, "vexfs: VexFS 0.1.0 loaded"),
            Criterion("module unloads cleanly", True, "rmmod exit 0 in 0.014 s"),
            Criterion("no error or warning lines in dmesg", True, "0 lines"),
        ],
        metrics={"load_s": 0.031, "unload_s": 0.014},
        logs=["console/S1.log"],
    )
    s2 = ScenarioResult(
        id="S2", name="Module load/unload stress (20 cycles)", status=Status.PASSED, duration_s=11.7,
        criteria=[
            Criterion("all 20 cycles complete", True, "20/20"),
            Criterion("load < 5 s every cycle", True, "max 0.045 s"),
            Criterion("unload < 2 s every cycle", True, "max 0.022 s"),
            Criterion("no memory growth", True, "MemAvailable -212 kB, Slab +12 kB (tolerance 1024 kB)"),
            Criterion("no kernel warnings or errors", True, "0 lines"),
        ],
        metrics=_s2_metrics(rng),
        logs=["console/S2.log"],
    )
    s3 = ScenarioResult(
        id="S3", name="Block device registration", status=Status.PASSED, duration_s=3.1,
        criteria=[
            Criterion("loop device set up", True, "/dev/loop0"),
            Criterion("no kernel errors during block operations", True),
            Criterion("clean cleanup", True),
        ],
        metrics={"loop_setup_s": 0.012},
        logs=["console/S3.log"],
    )
    s4 = ScenarioResult(
        id="S4", name="Filesystem registration and mount", status=Status.FAILED, duration_s=6.4,
        criteria=[
            Criterion("vexfs in /proc/filesystems", True),
            Criterion("mount succeeds", True, "0.021 s"),
            Criterion("basic file operations", True, "create, write, read back, mkdir"),
            Criterion("unmount succeeds", True, "0.009 s"),
            Criterion("no kernel warnings", False, "WARNING at fs/vexfs/super.c:318 <vexfs_fill_super>"),
        ],
        metrics={"mount_s": [0.021, 0.019, 0.024], "umount_s": [0.009, 0.011, 0.010],
                 "ext4_mount_s": 0.058, "ext4_umount_s": 0.021, "kernel_warnings": [
                     "[   41.221403] WARNING: CPU: 1 PID: 212 at fs/vexfs/super.c:318 vexfs_fill_super+0x2a1/0x4c0 [vexfs]"]},
        crashes=[Crash(kind="warning", title="WARNING in vexfs_fill_super",
                       trace=SAMPLE_WARNING_TRACE, log_path="console/S4.log")],
        logs=["console/S4.log"],
        message="a kernel WARNING was printed during mount",
    )
    s5 = ScenarioResult(
        id="S5", name="Vector operations", status=Status.PASSED, duration_s=21.9,
        criteria=[
            Criterion("vector files created", True, "10 files"),
            Criterion("vectors stored and read back bit-exact", True, "10000 x 128 float32"),
            Criterion("k-NN search matches numpy", True, "recall@10 = 1.000"),
            Criterion("no data corruption (fsck clean)", True),
        ],
        metrics={
            "bench": {
                "insert_vectors_per_s": {"vexfs": 182_000.0, "numpy": 950_000.0, "unit": "vectors/s"},
                "search_l2_ms": {"vexfs": 4.1, "numpy": 6.3, "unit": "ms"},
                "search_cosine_ms": {"vexfs": 4.6, "numpy": 7.0, "unit": "ms"},
            },
            "dim": 128,
            "count": 10000,
        },
        logs=["console/S5.log"],
    )
    s6 = ScenarioResult(
        id="S6", name="Error handling and recovery", status=Status.ERROR, duration_s=33.0,
        criteria=[
            Criterion("mount of a missing device fails with an errno", True, "ENOENT"),
            Criterion("mount of random data fails with an errno", False, "kernel oopsed"),
        ],
        metrics={"mount_s": [0.018]},
        crashes=[Crash(kind="oops", title="BUG: kernel NULL pointer dereference in vexfs_read_super_block",
                       trace=SAMPLE_OOPS_TRACE, log_path="console/S6.log")],
        logs=["console/S6.log"],
        message="the kernel oopsed; the VM was restored",
    )
    scenarios = [s1, s2, s3, s4, s5, s6]
    return Run(run_id=run_id, started_at="2026-11-25T10:45:00Z",
               duration_s=round(sum(s.duration_s for s in scenarios) + 9.5, 1),
               environment=env, scenarios=scenarios)
