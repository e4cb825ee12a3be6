"""`vexfs fuzz ioctl`: hostile vector ioctls in the VM, then leak checks.

One VM boot: insmod, record the module counters (/sys/fs/vexfs) and the
vexfs slab caches as the baseline, mkfs + mount a 64 MiB image and a
read-only bind mount of it, run the C driver fz_ioctl (threads + a forked
child, unprivileged, sharing the files; read-only-mount, immutable,
append-only and forged-header contexts; a SIGKILL watchdog; its own errno
oracle, see vexfs/fuzz/guest/fz_ioctl.c), close everything, unmount, and
require: no crash (console through the crash detector), no BADERRNO line,
the driver's call count reached, the counters back to the baseline, the
image consistent per fsck.vexfs -n (the host checks the image the guest
leaves in the shared job dir), and `rmmod` succeeding.
"""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import time
from pathlib import Path
from typing import Callable

from vexfs.fuzz import cbuild
from vexfs.fuzz.vmutil import Progress, Watchdog, boot, default_module
from vexfs.vm.session import GuestCrashed, VMError

log = logging.getLogger(__name__)

COUNTERS = "for f in inodes mounts buffers extent_maps; do printf '%s=%s\\n' $f \"$(cat /sys/fs/vexfs/$f)\"; done"
SLAB = "grep -i vexfs /proc/slabinfo | awk '{print $1\"=\"$2}'"


def parse_kv(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        k, _, v = line.partition("=")
        if v.strip().lstrip("-").isdigit():
            out[k.strip()] = int(v)
    return out


def _console(vm) -> str:
    return str(vm.log_paths[0]) if vm.log_paths else ""


def host_calibration(driver: Path) -> float:
    """CPU ms the kill watchdog's calibration workload takes on this host
    (best of 6): the guest's time for the same work, divided by this, is
    the slowdown that turns "1 s on real hardware" into the guest's bound."""
    res = subprocess.run([str(driver), "calibrate", "6"], capture_output=True, text=True,
                         check=True)
    m = re.search(r"cpu_ms=([0-9.]+)", res.stdout)
    if not m:
        raise RuntimeError(f"calibration printed nothing: {res.stdout!r} {res.stderr!r}")
    return float(m.group(1))


def run_ioctl_fuzz(calls: int, seed: int, threads: int, module: Path | None, out: Path,
                   echo: Callable[[str], None] = lambda s: None,
                   timeout_per_10k: float = 60.0, kill_rounds: int = 20) -> dict:
    module = Path(module) if module else default_module()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    driver = cbuild.build("fz_ioctl")
    host_cal_ms = host_calibration(driver)
    progress = Progress("IO")
    result: dict = {"calls_requested": calls, "seed": seed, "threads": threads, "ok": False,
                    "problems": []}
    t0 = time.monotonic()
    vm = boot(f"fuzz-ioctl-{seed}", out / "console", module, [progress.feed],
              hang_timeout=60, memory="1G")
    problems: list[str] = result["problems"]
    try:
        base_counters = parse_kv(vm.run(COUNTERS).stdout)
        base_slab = parse_kv(vm.run(SLAB).stdout)
        result["baseline_counters"] = base_counters
        setup = vm.run("set -e; truncate -s 64M /tmp/io.img; "
                       "/work/main/.venv/bin/mkfs.vexfs -q /tmp/io.img; mkdir -p /tmp/io; "
                       "mount -t vexfs -o loop /tmp/io.img /tmp/io; chmod 777 /tmp/io; "
                       "mkdir -p /tmp/io_ro; mount --bind /tmp/io /tmp/io_ro; "
                       "mount -o remount,bind,ro /tmp/io_ro", timeout=120)
        if setup.rc != 0:
            raise RuntimeError(f"setup failed: {setup.stdout}{setup.stderr}")
        t_fuzz = time.monotonic()
        limit = max(120.0, timeout_per_10k * calls / 10000)
        try:
            with Watchdog(vm, progress, limit) as dog:
                res = vm.run([str(driver), "fuzz", "/tmp/io", str(calls), str(seed),
                              str(threads), "/tmp/io_ro", str(kill_rounds),
                              f"{host_cal_ms:.3f}"],
                             timeout=limit, hang_timeout=60)
        except GuestCrashed as e:
            result["crash"] = {"kind": e.crash.kind, "title": e.crash.title,
                               "trace": e.crash.trace[-6000:], "console": _console(vm)}
            problems.append(f"kernel crash: {e.crash.title}")
            return result
        except VMError as e:
            problems.append(f"VM failure during the fuzz: {str(e).splitlines()[0]}")
            # a hang (the watchdog killed the VM) or a dead VM is a finding
            # too: keep what the console showed
            hung = dog.fired is not None
            result["crash"] = {"kind": "hang" if hung else "died",
                               "title": (f"hang: the fuzz ran longer than {limit:.0f} s" if hung
                                         else f"VM died: {str(e).splitlines()[0]}"),
                               "trace": "\n".join(vm.console_lines[-60:]),
                               "console": _console(vm)}
            return result
        fuzz_s = time.monotonic() - t_fuzz
        (out / "driver.out").write_text(res.stdout + res.stderr)
        bad = [ln for ln in res.stdout.splitlines() if ln.startswith("BADERRNO")]
        result["slow_kill"] = [ln for ln in res.stdout.splitlines()
                               if ln.startswith("SLOWKILL")][:20]
        m = re.search(r"IOCTL-SUMMARY (\{.*\})", res.stdout)
        summary = json.loads(m.group(1)) if m else {}
        result.update(driver_rc=res.rc, summary=summary, fuzz_s=round(fuzz_s, 1),
                      calls_per_s=round(summary.get("calls", 0) / fuzz_s, 1) if fuzz_s else 0,
                      bad_errno=bad[:50])
        if not m:
            problems.append(f"driver printed no summary (rc {res.rc}): {res.stderr[-500:]}")
        if bad or res.rc != 0:
            problems.append(f"{summary.get('bad', len(bad))} calls broke the errno contract "
                            f"(driver rc {res.rc}); first: {bad[:3]}")
        kw = summary.get("killwatch") or {}
        if kw.get("slow"):
            problems.append(f"{kw['slow']} of {kw.get('rounds')} SIGKILLed victims were not "
                            f"reaped within 1 s x slowdown {kw.get('slowdown')} + baseline "
                            f"{kw.get('baseline_max_reap_ms')} ms = {kw.get('limit_ms')} ms "
                            f"(slowest {kw.get('max_reap_ms')} ms, in "
                            f"{kw.get('slowest_call')})")
        if summary.get("calls", 0) < calls * 0.95:
            problems.append(f"only {summary.get('calls')} of {calls} calls ran")
        # leaks: everything closed by the driver's exit; unmount, compare
        um = vm.run("umount /tmp/io_ro; umount /tmp/io", timeout=60)
        if um.rc != 0:
            problems.append(f"umount after the fuzz failed: {um.stderr.strip()}")
        after = parse_kv(vm.run(COUNTERS).stdout)
        result["counters_after_umount"] = after
        if after != base_counters:
            problems.append(f"module counters not back to baseline after umount: "
                            f"{base_counters} -> {after}")
        # fsck on the host of the image the kernel left
        vm.run("cp /tmp/io.img /run/vexfs/io.img", timeout=120, check=True)
        from vexfs.fsck import run_fsck
        text = io.StringIO()
        rc = run_fsck(str(vm.config.job_dir / "io.img"), "n", out=text)
        result["fsck_exit"] = rc
        result["fsck_output"] = text.getvalue()[-3000:]
        if rc != 0:
            problems.append(f"fsck.vexfs -n after the ioctl fuzz: exit {rc}: "
                            f"{text.getvalue()[-600:]}")
        vm.run("sync; echo 3 > /proc/sys/vm/drop_caches")
        rm = vm.run("rmmod vexfs")
        result["rmmod_rc"] = rm.rc
        if rm.rc != 0:
            problems.append(f"rmmod after the fuzz failed: {rm.stderr.strip()}")
        slab_after = parse_kv(vm.run(SLAB).stdout)
        result["slab_baseline"], result["slab_after_rmmod"] = base_slab, slab_after
        leftover = {k: v for k, v in slab_after.items() if v}
        if leftover:
            problems.append(f"vexfs slab objects left after rmmod: {leftover}")
        time.sleep(0.3)
        vm.watch.flush()
        if vm.watch.crashed:
            c = vm.watch.crashes[0]
            result["crash"] = {"kind": c.kind, "title": c.title, "trace": c.trace[-6000:],
                               "console": _console(vm)}
            problems.append(f"kernel crash: {c.title}")
    finally:
        vm.kill()
        result["wall_s"] = round(time.monotonic() - t0, 1)
        result["ok"] = not problems
        (out / "result.json").write_text(json.dumps(result, indent=2))
        echo(f"ioctl fuzz: {'OK' if result['ok'] else 'PROBLEMS'}; {result.get('summary')}")
    return result
