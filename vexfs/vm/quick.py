"""Run one shell script in a fresh VM and return its exit code.

    python -m vexfs.vm.quick [--module PATH]... [--disk FILE]... [--timeout S] -- 'script'

The VM boots the Debian guest kernel with the host root shared read-only
(writable tmpfs on /run, tmpfs-backed overlays on /tmp, /mnt, /root, /etc, /var...), so
everything installed on the host, including this checkout and its .venv, is
at the same path. Each --module file is copied to /tmp in the guest. The
script runs as root under /bin/sh; its output is streamed with the console
to stdout and saved under logs/. Exit code: the script's; 124 on timeout;
125 if the kernel crashed (panic, oops, BUG, WARNING...; see vexfs.crash).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from vexfs.report.model import Crash
from vexfs.vm import initramfs
from vexfs.vm.crashwatch import CrashWatch
from vexfs.vm.kernel import ensure_kernel
from vexfs.vm.paths import cache_dir, logs_dir
from vexfs.vm.qemu import QemuProcess, VMConfig, probe_accel

log = logging.getLogger(__name__)

RC_TIMEOUT = 124
RC_CRASH = 125

JOB_SH = """\
# Written by vexfs.vm.quick; runs chrooted in the guest's shared host root.
cd /root
for f in /run/vexfs/modules/*; do
	[ -e "$f" ] && cp "$f" /tmp/
done
{{ /bin/sh /run/vexfs/script.sh; echo $? > /run/vexfs/rc; }} 2>&1 | tee /run/vexfs/output
echo "VEXFS-QUICK-RC=$(cat /run/vexfs/rc 2>/dev/null)"
"""


@dataclass
class QuickResult:
    returncode: int
    output: str  # the script's stdout + stderr
    console: str  # the whole serial console of the boot
    crashed: bool
    crashes: list[Crash] = field(default_factory=list)
    timed_out: bool = False
    log_path: Path | None = None
    boot_s: float = 0.0  # QEMU start to "root ready"
    total_s: float = 0.0


def run_script(script: str, modules: list[Path] | None = None, timeout: float = 300,
               echo: bool = False, memory: str = "2G", cpus: int = 2,
               disks: list[Path] | None = None, allow_reboot: bool = False) -> QuickResult:
    """Boot a fresh VM, run `script` as root under /bin/sh, power off.

    Each of `disks` (raw files on the host) is a virtio-blk disk in the guest,
    /dev/vda first (after `modprobe virtio_blk`); what the guest writes
    stays in the file for the next boot. With `allow_reboot` a guest reboot
    (sysrq-b) restarts the machine in the same QEMU process and the script
    runs again on the new boot (its state must live on a disk); the
    console then holds every boot."""
    modules = [Path(m) for m in (modules or [])]
    disks = [Path(d) for d in (disks or [])]
    for disk in disks:
        if not disk.is_file():
            raise FileNotFoundError(f"disk image {disk} does not exist")
    for module in modules:
        if not module.is_file():
            raise FileNotFoundError(f"module {module} does not exist")
    kernel = ensure_kernel(headers=False)
    initrd = initramfs.build(kernel)
    accel = probe_accel(kernel, initrd)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = logs_dir() / f"quick_{stamp}_{id(script) & 0xffff:04x}.log"
    jobs = cache_dir() / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quick-", dir=jobs) as tmp:
        job = Path(tmp)
        (job / "modules").mkdir()
        for module in modules:
            shutil.copy2(module, job / "modules" / module.name)
        (job / "script.sh").write_text(script if script.endswith("\n") else script + "\n")
        (job / "job.sh").write_text(JOB_SH.format())
        config = VMConfig(kernel=kernel, initramfs=initrd, job_dir=job, accel=accel,
                          memory=memory, cpus=cpus, disks=disks, allow_reboot=allow_reboot)
        watch = CrashWatch()
        ready: list[float] = []

        def on_line(line: str) -> None:
            if not ready and "vexfs-init: root ready" in line:
                ready.append(time.monotonic())
            watch.feed(line)

        start = time.monotonic()
        proc = QemuProcess(config.argv(), [log_path], [on_line], echo=echo)
        rc_qemu = proc.wait(timeout)
        timed_out = rc_qemu is None
        proc.close()
        watch.flush()
        total = time.monotonic() - start
        output = (job / "output").read_text(errors="backslashreplace") if (job / "output").exists() else ""
        rc_text = (job / "rc").read_text().strip() if (job / "rc").exists() else ""
    if watch.crashed:
        rc = RC_CRASH
    elif timed_out:
        rc = RC_TIMEOUT
    elif rc_text.isdigit():
        rc = int(rc_text)
    else:
        rc = RC_CRASH  # QEMU ended without the script finishing: the kernel died
    return QuickResult(returncode=rc, output=output, console=proc.console, crashed=watch.crashed
                       or (not timed_out and not rc_text), crashes=list(watch.crashes),
                       timed_out=timed_out, log_path=log_path,
                       boot_s=(ready[0] - start) if ready else 0.0, total_s=total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vexfs.vm.quick",
        description="Boot a fresh VexFS test VM, run a shell script in it as root, power off.")
    parser.add_argument("--module", action="append", default=[], type=Path, metavar="PATH",
                        help="copy this file to /tmp/ in the guest (repeatable)")
    parser.add_argument("--timeout", type=float, default=300, metavar="SECONDS",
                        help="kill the VM after this long (exit code 124); default 300")
    parser.add_argument("--disk", action="append", default=[], type=Path, metavar="FILE",
                        help="attach this raw file as a virtio-blk disk (/dev/vda, /dev/vdb... "
                             "after `modprobe virtio_blk`); repeatable")
    parser.add_argument("--quiet", action="store_true", help="do not stream the console")
    parser.add_argument("script", nargs="+", help="the shell script (after --)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    script = " ".join(args.script) if len(args.script) > 1 else args.script[0]
    result = run_script(script, args.module, args.timeout, echo=not args.quiet, disks=args.disk)
    if args.quiet:
        sys.stdout.write(result.output)
    for crash in result.crashes:
        print(f"quick: KERNEL CRASH ({crash.kind}): {crash.title}", file=sys.stderr)
    print(f"quick: exit {result.returncode}; boot {result.boot_s:.1f} s, total "
          f"{result.total_s:.1f} s; console log {result.log_path}", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
