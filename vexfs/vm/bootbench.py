"""Measure what docs/harness.md quotes: boot times and the snapshot option.

    python -m vexfs.vm.bootbench [--runs N]

1. QEMU start -> "root ready" (init done, host root mounted), booting the
   compressed vmlinuz (xz, decompressed by emulated code) vs the extracted
   ELF vmlinux (PVH entry).
2. QEMU start -> guest agent hello (what each scenario pays).
3. Whether QEMU can snapshot the harness's guest (savevm), and how long
   savevm/loadvm take on a guest without 9p shares, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from vexfs.vm import initramfs
from vexfs.vm.kernel import ensure_kernel
from vexfs.vm.qemu import QemuProcess, VMConfig, probe_accel
from vexfs.vm.session import GuestVM


def boot_to_ready(config: VMConfig) -> float:
    ready = threading.Event()
    start = time.monotonic()
    stamp: list[float] = []

    def watch(line: str) -> None:
        if "vexfs-init: root ready" in line and not stamp:
            stamp.append(time.monotonic() - start)
            ready.set()

    with tempfile.TemporaryDirectory() as tmp:
        proc = QemuProcess(config.argv(), [Path(tmp) / "console.log"], [watch])
        ready.wait(300)
        proc.close()
    return stamp[0] if stamp else float("nan")


def snapshot_numbers(kernel, initrd) -> dict[str, str]:
    out: dict[str, str] = {}
    with GuestVM(name="bench-snap", spec_log=False) as vm:
        reply = vm.qmp("human-monitor-command", **{"command-line": "savevm s1"})
        out["savevm with 9p"] = reply.strip() or "ok"
    from qemu.qmp.legacy import QEMUMonitorProtocol

    with tempfile.TemporaryDirectory() as tmp:
        disk, sock = Path(tmp) / "snap.qcow2", Path(tmp) / "qmp.sock"
        subprocess.run(["qemu-img", "create", "-f", "qcow2", str(disk), "64M"], check=True,
                       capture_output=True)
        argv = ["qemu-system-x86_64", "-nodefaults", "-no-reboot", "-machine", "q35", "-accel",
                "tcg", "-cpu", "max", "-m", "2G", "-smp", "2", "-display", "none",
                "-serial", f"file:{tmp}/con.log", "-kernel", str(kernel.boot_image),
                "-initrd", str(initrd), "-append",
                "console=ttyS0 panic=-1 quiet rdinit=/bin/busybox -- sleep 1000",
                "-drive", f"file={disk},if=none,id=snapdisk,format=qcow2",
                "-qmp", f"unix:{sock},server=on,wait=off"]
        proc = subprocess.Popen(argv)
        try:
            while not sock.exists():
                time.sleep(0.05)
            mon = QEMUMonitorProtocol(str(sock))
            mon.connect()
            time.sleep(5)  # let it boot to the idle busybox
            hm = lambda c: mon.cmd("human-monitor-command", **{"command-line": c})  # noqa: E731
            t = time.monotonic(); hm("savevm s1"); out["savevm (no 9p)"] = f"{time.monotonic() - t:.2f} s"
            loads = []
            for _ in range(3):
                t = time.monotonic(); hm("loadvm s1"); loads.append(time.monotonic() - t)
            out["loadvm (no 9p)"] = ", ".join(f"{x:.2f}" for x in loads) + " s"
            mon.close()
        finally:
            proc.kill()
            proc.wait()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    kernel = ensure_kernel(headers=False)
    initrd = initramfs.build(kernel)
    accel = probe_accel(kernel, initrd)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "job.sh").write_text("exit 0\n")
        base = VMConfig(kernel=kernel, initramfs=initrd, job_dir=Path(tmp), accel=accel)
        pvh = [boot_to_ready(base) for _ in range(args.runs)]
        bz = []
        for _ in range(args.runs):
            cfg = replace(base)
            argv = cfg.argv()
            argv[argv.index("-kernel") + 1] = str(kernel.vmlinuz)
            ready = threading.Event()
            start = time.monotonic()
            stamp: list[float] = []

            def watch(line: str) -> None:
                if "vexfs-init: root ready" in line and not stamp:
                    stamp.append(time.monotonic() - start)
                    ready.set()

            proc = QemuProcess(argv, [Path(tmp) / "bz.log"], [watch])
            ready.wait(300)
            proc.close()
            bz.append(stamp[0] if stamp else float("nan"))
    agent = []
    for _ in range(args.runs):
        with GuestVM(name="bench", spec_log=False) as vm:
            agent.append(vm.boot.boot_s)
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    print(f"accelerator {accel}; host load average {load}")
    print(f"QEMU start -> root ready, vmlinuz (xz):   {', '.join(f'{x:.2f}' for x in bz)} s "
          f"(median {statistics.median(bz):.2f})")
    print(f"QEMU start -> root ready, vmlinux (PVH):  {', '.join(f'{x:.2f}' for x in pvh)} s "
          f"(median {statistics.median(pvh):.2f})")
    print(f"QEMU start -> agent hello (fresh VM):     {', '.join(f'{x:.2f}' for x in agent)} s "
          f"(median {statistics.median(agent):.2f})")
    for key, value in snapshot_numbers(kernel, initrd).items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
