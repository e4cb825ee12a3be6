"""Scenario 2: module load/unload stress, 20 cycles (the spec's loop, checked).

The spec's loop runs as one guest script (bash, so `$EPOCHREALTIME` times
insmod/rmmod without extra processes), exactly its steps: insmod, verify in
lsmod, [sleep 1], rmmod, verify gone, [sleep 1]; a failing step prints
`dmesg | tail -10` and ends the loop. Added measurements per cycle: the
module's own live-object counters (/sys/fs/vexfs, read while loaded) and,
after each unload, MemAvailable, Slab, SUnreclaim, VmallocUsed and Percpu
from /proc/meminfo (caches are dropped once before the loop, not per cycle:
dropping them every cycle makes each cycle re-read its tools over 9p and
cost ~0.7 MB of MemAvailable, which hides a real leak in noise). Running the loop as
one script keeps the harness's own guest activity (agent, extra processes)
out of the memory numbers. Progress lines also go to /dev/console, so the
live log shows the cycles and the hang detector sees progress.

"No memory leaks" is judged on numbers, with `growth_over_run` (below):
growth = the larger of (a) the median per-cycle change times 19, which a
steady per-cycle loss moves and a one-off step does not, and (b) first->last
with the single largest one-cycle step left out, which catches a loss that
comes in repeated steps (a leak every few cycles). One one-off step is
allowed because the kernel makes them with a leak-free module: a 2 MB
(one pageblock) drop of MemAvailable at a random cycle, then flat, was seen
in 2 of 3 idle runs of this scenario; the largest step is shown in the
detail. The limits:
 - Slab growth <= MEM_TOLERANCE_KB and VmallocUsed growth <= MEM_TOLERANCE_KB
   (where a module's kmalloc/kmem_cache/vmalloc leak shows),
 - loss of MemAvailable + the free pages parked on per-CPU lists (from
   /proc/zoneinfo; raw MemAvailable moves in 252 kB batch steps and
   MB-sized refills of those lists, 2-6 MB over 20 cycles with a leak-free
   module) <= MEM_AVAILABLE_TOLERANCE_KB; see docs/harness.md,
 - every module counter equal in every cycle (and present).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

from vexfs.harness.framework import Scenario, ScenarioContext
from vexfs.harness.scenarios.s1_lifecycle import LOAD_LIMIT_S, UNLOAD_LIMIT_S, vexfs_lines

CYCLES = 20
MEM_TOLERANCE_KB = 1024
MEM_AVAILABLE_TOLERANCE_KB = 2048
# A small in-tree filesystem module with no dependencies, loaded the same way
# as the baseline of the memory figures (see run_baseline).
BASELINE_MODULE = "minix"
# /sys/fs/vexfs files that are not live-object counters: the SIMD path, the
# float16 conversion and
# its speeds are measured anew at every load (vec_select.c), so they may
# differ between cycles without anything leaking.
NOT_COUNTERS = frozenset({"simd", "simd_speed", "f16cvt", "f16cvt_speed", "version"})

STRESS_SCRIPT = r"""
MOD=$1; N=$2; PAUSE=$3; NAME=${4:-vexfs}
say() { echo "$*"; echo "$*" > /dev/console; }
settle() { sync; echo 3 > /proc/sys/vm/drop_caches; }
mem() {
	awk '/^(MemAvailable|Slab|SUnreclaim|VmallocUsed|Percpu):/ {sub(":", "", $1); printf "%s=%s ", $1, $2}' /proc/meminfo
	# free pages parked on per-CPU lists (not counted in MemFree/MemAvailable)
	awk '$1 == "count:" {n += $2} END {printf "PcpFree=%d ", n * 4}' /proc/zoneinfo
}
# bash builtins only: a fork+exec costs ~0.1 s under TCG, and forking
# head and tr for each of the ~15 files made this 2-3 s of every cycle.
counters() {
	local f v
	[ -d /sys/fs/vexfs ] || return 0
	for f in /sys/fs/vexfs/* /sys/fs/vexfs/*/*; do
		[ -f "$f" ] && [ -r "$f" ] || continue
		v=
		IFS= read -r -d '' -n 100 v < "$f"
		v=${v//$'\n'/}; v=${v// /_}; v=${v//;/,}
		printf '%s=%s;' "${f#/sys/fs/vexfs/}" "$v"
	done
}
loaded() { lsmod | grep -q "^$NAME "; }
settle
echo "BASE $(mem)"
for i in $(seq 1 "$N"); do
	say "=== Cycle $i ==="
	t0=$EPOCHREALTIME; insmod "$MOD"; rc=$?; t1=$EPOCHREALTIME
	if [ $rc -ne 0 ]; then say "FAILED: Load cycle $i (insmod exit $rc)"; dmesg | tail -10; break; fi
	if ! loaded; then say "FAILED: Module not found after load cycle $i"; break; fi
	c=$(counters)
	[ "$PAUSE" = 1 ] && sleep 1
	t2=$EPOCHREALTIME; rmmod "$NAME"; rc=$?; t3=$EPOCHREALTIME
	if [ $rc -ne 0 ]; then say "FAILED: Unload cycle $i (rmmod exit $rc)"; dmesg | tail -10; break; fi
	if loaded; then say "FAILED: Module still loaded after unload cycle $i"; break; fi
	echo "CYCLE $i load=$t0,$t1 unload=$t2,$t3 $(mem) counters=$c"
	say "SUCCESS: Cycle $i completed"
	[ "$PAUSE" = 1 ] && sleep 1
done
say "Stress test completed"
"""


def parse_cycle(line: str) -> dict:
    """One `CYCLE i load=a,b unload=c,d Key=kB ... counters=k=v;...` line."""
    fields = line.split()
    cycle: dict = {"cycle": int(fields[1]), "mem": {}, "counters": {}}
    for field_ in fields[2:]:
        key, _, value = field_.partition("=")
        if key in ("load", "unload"):
            start, end = (float(x.replace(",", ".")) if "." in x or "," in x else float(x)
                          for x in _split_times(value))
            cycle[key + "_s"] = end - start
        elif key == "counters":
            for item in value.split(";"):
                name, sep, val = item.partition("=")
                if sep:
                    cycle["counters"][name] = int(val) if re.fullmatch(r"-?\d+", val) else val
        elif value.isdigit():
            cycle["mem"][key] = int(value)
    return cycle


def _split_times(value: str) -> list[str]:
    # $EPOCHREALTIME is "sec.usec" (a "," decimal mark in some locales,
    # so the pair separator is the comma that follows the first number).
    match = re.fullmatch(r"(\d+[.,]\d+),(\d+[.,]\d+)", value)
    if not match:
        raise ValueError(f"bad time pair {value!r}")
    return [match.group(1), match.group(2)]


@dataclass(frozen=True)
class Growth:
    """How much a per-cycle series grew over a run (kB for memory)."""

    value: float  # the judged growth: max(trend, stepwise)
    trend: float  # median one-cycle change x (cycles - 1)
    stepwise: float  # last - first, the largest one-cycle step left out
    largest_step: float  # that step (0.0 if the series never grew)
    largest_step_cycle: int  # 1-based cycle at which it ended (0: none)


def growth_over_run(values: list[float]) -> Growth:
    """Growth of `values` over the run, robust to ONE one-off step.

    A steady leak moves the median change; a leak in repeated steps leaves
    the median at zero but keeps last - first large after the single
    largest step is removed. Either one is the growth. A series of fewer
    than two values has not grown.
    """
    if len(values) < 2:
        return Growth(0.0, 0.0, 0.0, 0.0, 0)
    deltas = [b - a for a, b in zip(values, values[1:])]
    trend = statistics.median(deltas) * len(deltas)
    biggest = max(range(len(deltas)), key=lambda i: deltas[i])
    step = max(deltas[biggest], 0.0)
    stepwise = (values[-1] - values[0]) - step
    return Growth(value=max(trend, stepwise), trend=trend, stepwise=stepwise,
                  largest_step=step, largest_step_cycle=biggest + 2 if step else 0)


def avail_with_pcp(cycles: list[dict]) -> list[int]:
    """MemAvailable + the free pages parked on per-CPU lists, per cycle (kB).

    MemAvailable moves in steps of a per-CPU page-list batch (63 pages =
    252 kB here) as pages park on and leave those lists; adding them back
    leaves what a leak would take."""
    return [c["mem"].get("MemAvailable", 0) + c["mem"].get("PcpFree", 0) for c in cycles]


def run_baseline(ctx: ScenarioContext) -> list[dict]:
    """The same loop with an in-tree filesystem module of the guest kernel,
    in the same VM after the vexfs loop: what the kernel itself gains from
    20 insmod/rmmod cycles, shown beside vexfs's figures so a reader can
    tell module-loader and sysfs churn from a vexfs leak. [] if the module
    is not there (then the detail says nothing about a baseline)."""
    ctx.step(f"baseline: {CYCLES} load/unload cycles of {BASELINE_MODULE}.ko")
    res = ctx.run(f"m=$(modinfo -n {BASELINE_MODULE} 2>/dev/null) && [ -f \"$m\" ] && "
                  f"LC_ALL=C /bin/bash /tmp/vexfs_stress.sh \"$m\" {CYCLES} 0 {BASELINE_MODULE}")
    if res.rc != 0:
        return []
    return [parse_cycle(line) for line in res.stdout.splitlines() if line.startswith("CYCLE ")]


def run(ctx: ScenarioContext) -> None:
    ctx.clear_dmesg()
    ctx.vm.put_file(STRESS_SCRIPT.encode(), "/tmp/vexfs_stress.sh", 0o755)
    ctx.step(f"{CYCLES} load/unload cycles" + (" (spec timing)" if ctx.options.seed_timing else ""))
    result = ctx.run(["env", "LC_ALL=C", "/bin/bash", "/tmp/vexfs_stress.sh", ctx.module,
                      str(CYCLES), "1" if ctx.options.seed_timing else "0"])
    cycles = [parse_cycle(line) for line in result.stdout.splitlines()
              if line.startswith("CYCLE ")]
    failure = next((line for line in result.stdout.splitlines()
                    if line.startswith("FAILED:")), "")
    for c in cycles:
        ctx.stats({"cycle": c["cycle"], "MemAvailable_kB": c["mem"].get("MemAvailable", 0),
                   "Slab_kB": c["mem"].get("Slab", 0),
                   "load_ms": round(c["load_s"] * 1000, 1),
                   "unload_ms": round(c["unload_s"] * 1000, 1)})
    log_lines = ctx.run("dmesg | tail -30").stdout.splitlines()
    all_lines = ctx.dmesg()
    baseline = run_baseline(ctx)

    done = len(cycles)
    load_s = [c["load_s"] for c in cycles]
    unload_s = [c["unload_s"] for c in cycles]
    mem_avail = [c["mem"].get("MemAvailable", 0) for c in cycles]
    pcp_free = [c["mem"].get("PcpFree", 0) for c in cycles]
    avail_adj = avail_with_pcp(cycles)
    slab = [c["mem"].get("Slab", 0) for c in cycles]
    vmalloc = [c["mem"].get("VmallocUsed", 0) for c in cycles]
    counters = [c["counters"] for c in cycles]
    ctx.metric("cycles", done)
    ctx.metric("load_s", load_s)
    ctx.metric("unload_s", unload_s)
    ctx.metric("mem_available_kb", mem_avail)
    ctx.metric("slab_kb", slab)
    ctx.metric("sunreclaim_kb", [c["mem"].get("SUnreclaim", 0) for c in cycles])
    ctx.metric("vmalloc_used_kb", vmalloc)
    ctx.metric("percpu_kb", [c["mem"].get("Percpu", 0) for c in cycles])
    ctx.metric("pcp_free_kb", pcp_free)
    ctx.metric("mem_available_with_pcp_kb", avail_adj)
    ctx.metric("module_counters", counters)
    ctx.metric("mem_tolerance_kb", MEM_AVAILABLE_TOLERANCE_KB)
    ctx.metric("slab_tolerance_kb", MEM_TOLERANCE_KB)

    ctx.check(f"All {CYCLES} cycles complete successfully",
              done == CYCLES and result.rc == 0 and not failure,
              f"{done}/{CYCLES} cycles" + (f"; {failure}" if failure else "")
              + (f"; script exit {result.rc}: {result.stderr.strip()[-300:]}" if result.rc else ""))

    if done >= 2:
        # MemAvailable is judged as "loss", i.e. growth of its negation.
        mem = growth_over_run([-a for a in avail_adj])
        slab_g = growth_over_run(slab)
        vmalloc_g = growth_over_run(vmalloc)
        ctx.metric("mem_growth_kb", round(mem.value, 1))
        ctx.metric("slab_growth_kb", round(slab_g.value, 1))
        ctx.metric("vmalloc_growth_kb", round(vmalloc_g.value, 1))
        ctx.metric("mem_largest_step_kb", round(mem.largest_step, 1))
        ctx.metric("mem_largest_step_cycle", mem.largest_step_cycle)
        ctx.metric("mem_first_last_kb", avail_adj[-1] - avail_adj[0])
        ctx.metric("mem_available_trend_raw_kb",
                   round(-growth_over_run([-a for a in mem_avail]).value, 1))
        ctx.metric("slab_first_last_kb", slab[-1] - slab[0])
        varying = sorted({k for c in counters for k in c if k not in NOT_COUNTERS
                          and any(c2.get(k) != counters[0].get(k) for c2 in counters)})
        leak_ok = (slab_g.value <= MEM_TOLERANCE_KB and vmalloc_g.value <= MEM_TOLERANCE_KB
                   and mem.value <= MEM_AVAILABLE_TOLERANCE_KB and bool(counters[0])
                   and not varying)
        step_note = (f"; one-off step {mem.largest_step:.0f} kB at cycle "
                     f"{mem.largest_step_cycle} not counted" if mem.largest_step else "")
        base_note = ""
        if baseline:
            b_mem = growth_over_run([-a for a in avail_with_pcp(baseline)])
            b_slab = growth_over_run([c["mem"].get("Slab", 0) for c in baseline])
            ctx.metric("baseline_module", BASELINE_MODULE)
            ctx.metric("baseline_mem_growth_kb", round(b_mem.value, 1))
            ctx.metric("baseline_slab_growth_kb", round(b_slab.value, 1))
            base_note = (f"; baseline {BASELINE_MODULE}.ko, same VM, {len(baseline)} cycles: Slab "
                         f"{b_slab.value:+.0f} kB, MemAvailable + per-CPU free {-b_mem.value:+.0f} kB")
        detail = (f"growth over cycles 1->{done}: Slab {slab_g.value:+.0f} kB (limit "
                  f"+{MEM_TOLERANCE_KB}; {slab[0]} -> {slab[-1]}), VmallocUsed "
                  f"{vmalloc_g.value:+.0f} kB (limit +{MEM_TOLERANCE_KB}), MemAvailable + per-CPU "
                  f"free {-mem.value:+.0f} kB (limit -{MEM_AVAILABLE_TOLERANCE_KB}; "
                  f"{avail_adj[0]} -> {avail_adj[-1]}{step_note}; raw MemAvailable "
                  f"{mem_avail[0]} -> {mem_avail[-1]}); module counters "
                  + ("missing: /sys/fs/vexfs not readable while loaded" if not counters[0] else
                     f"changing: {', '.join(varying)}" if varying else
                     f"constant {counters[0]}") + base_note)
    else:
        leak_ok, detail = False, f"only {done} cycle(s) completed; cannot judge growth"
    ctx.check("No memory leaks detected", leak_ok, detail)

    ctx.check_dmesg_clean("No kernel warnings or errors")

    # Consistency: all cycles identical in outcome (guaranteed per cycle by
    # the script), every cycle logged the same number of vexfs messages, and
    # counters identical (already part of the leak check, repeated here
    # as behaviour).
    mine = vexfs_lines(all_lines)
    per_cycle = len(mine) / done if done else 0.0
    consistent = done == CYCLES and len(mine) % done == 0 and per_cycle >= 1
    spread = (f"load {min(load_s) * 1000:.1f}-{max(load_s) * 1000:.1f} ms "
              f"(median {statistics.median(load_s) * 1000:.1f}), unload "
              f"{min(unload_s) * 1000:.1f}-{max(unload_s) * 1000:.1f} ms "
              f"(median {statistics.median(unload_s) * 1000:.1f})") if done else "no timings"
    ctx.check("Consistent behavior across cycles", consistent,
              f"{done} cycles with the same outcome; {len(mine)} vexfs kernel messages "
              f"({per_cycle:g} per cycle); {spread}")
    if done:
        # Judged on the median cycle, the max shown: under TCG the guest
        # clock keeps running while the host deschedules the vCPU, so on a
        # loaded host single cycles can exceed the limit with no change in
        # the module (seen at load average 15: rmmod 2.12 and 2.44 s in 20
        # cycles, median 0.94 s; 0.12-1.4 s at load 10). S1 still checks
        # its one load/unload strictly.
        for what, values, limit in (("load", load_s, LOAD_LIMIT_S),
                                    ("unload", unload_s, UNLOAD_LIMIT_S)):
            median = statistics.median(values)
            over = sum(1 for v in values if v >= limit)
            ctx.check(f"Module {what} time < {limit:g} s (median of {done} cycles)", median < limit,
                      f"median {median:.3f} s, max {max(values):.3f} s, "
                      f"{over} of {done} cycles at or over {limit:g} s")
    ctx.note("\n".join(log_lines))


SCENARIO = Scenario(id="S2", name="Module load/unload stress", fn=run,
                    description=f"{CYCLES} insmod/rmmod cycles with timing and memory checks")
