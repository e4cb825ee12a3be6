"""Scenario 1: basic kernel module lifecycle (the spec's steps, checked).

Spec steps: transfer the module, insmod (report $?), lsmod and /proc/modules,
`dmesg | tail -20 | grep -i vexfs`, rmmod (report $?), verify it is gone.
Criteria: loads without panic; in lsmod and /proc/modules; init message in
dmesg; unloads cleanly; no error messages in dmesg. The spec's performance
metrics (load < 5 s, unload < 2 s) are criteria too.
"""

from __future__ import annotations

import hashlib

from vexfs.harness.framework import KNOWN_BENIGN_KERNEL_LINES, Scenario, ScenarioContext

LOAD_LIMIT_S = 5.0
UNLOAD_LIMIT_S = 2.0


def vexfs_lines(lines: list[str]) -> list[str]:
    """The module's own messages: lines mentioning vexfs, minus the two
    taint notices the kernel prefixes with the module name."""
    return [line for line in lines if "vexfs" in line.lower()
            and not any(p.search(line) for p in KNOWN_BENIGN_KERNEL_LINES)]


def run(ctx: ScenarioContext) -> None:
    ctx.step("1. transfer module")
    digest = ctx.run(["sha256sum", ctx.module]).stdout.split()[:1]
    expected = hashlib.sha256(ctx.options.module_path.read_bytes()).hexdigest()
    ctx.check("Module transferred intact", digest == [expected],
              f"sha256 in guest {digest[0] if digest else '?'}; host {expected}")
    ctx.clear_dmesg()

    ctx.step("2. load module")
    load = ctx.run(["insmod", ctx.module])
    ctx.metric("load_s", load.duration_s)
    ctx.check("Module loads without kernel panic", load.rc == 0,
              f"insmod exit {load.rc} in {load.duration_s:.3f} s"
              + (f": {load.stderr.strip()}" if load.stderr.strip() else ""))
    if load.rc != 0:  # the spec's "Load failure -> check dmesg for specific error"
        ctx.diagnose_load_failure(load)
    ctx.check(f"Module load time < {LOAD_LIMIT_S:g} s", load.duration_s < LOAD_LIMIT_S,
              f"{load.duration_s:.3f} s")

    ctx.step("3. verify module is loaded")
    in_lsmod, in_proc = ctx.module_loaded()
    ctx.check("Module appears in lsmod and /proc/modules", in_lsmod and in_proc,
              f"lsmod: {'yes' if in_lsmod else 'no'}, /proc/modules: {'yes' if in_proc else 'no'}")

    ctx.step("4. check kernel messages")
    tail = ctx.run("dmesg | tail -20").stdout.splitlines()
    mine = vexfs_lines(tail)
    ctx.check("VexFS initialization messages appear in dmesg", bool(mine),
              "; ".join(mine) if mine else "no vexfs line (other than taint notices) "
              "in the last 20 dmesg lines")

    ctx.step("5. unload module")
    unload = ctx.run(["rmmod", "vexfs"])
    ctx.metric("unload_s", unload.duration_s)
    exit_lines = vexfs_lines(ctx.dmesg())[len(mine):] if unload.rc == 0 else []
    ctx.check("Module unloads cleanly", unload.rc == 0,
              f"rmmod exit {unload.rc} in {unload.duration_s:.3f} s"
              + (f": {unload.stderr.strip()}" if unload.stderr.strip() else "")
              + (f"; {'; '.join(exit_lines)}" if exit_lines else ""))
    ctx.check(f"Module unload time < {UNLOAD_LIMIT_S:g} s", unload.duration_s < UNLOAD_LIMIT_S,
              f"{unload.duration_s:.3f} s")

    ctx.step("6. verify module is unloaded")
    in_lsmod, in_proc = ctx.module_loaded()
    gone = ctx.run("test -e /sys/module/vexfs").rc != 0
    ctx.check("Module is gone after unload", not in_lsmod and not in_proc and gone,
              f"lsmod: {'present' if in_lsmod else 'absent'}, /proc/modules: "
              f"{'present' if in_proc else 'absent'}, /sys/module/vexfs: "
              f"{'absent' if gone else 'present'}")

    ctx.check_dmesg_clean("No error messages in dmesg")


SCENARIO = Scenario(id="S1", name="Basic kernel module lifecycle", fn=run,
                    description="insmod, lsmod, dmesg, rmmod, verify unloaded")
