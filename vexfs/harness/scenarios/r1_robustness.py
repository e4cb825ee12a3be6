"""R1: robustness fuzzing, in the run report.

The spec's "never a panic, hang or lost data on bad input", measured by the
fuzzers of vexfs/fuzz (docs/robustness.md) and judged by code:

 1. corrupt-image fuzz (`--fuzz-cases`, default 1,000): mutated images
    mounted, walked, written, unmounted and checked with fsck.vexfs -n;
 2. ioctl fuzz (`--ioctl-calls`, default 100,000): hostile vector ioctls from
    three threads and a forked child, an errno oracle per call, then the
    module's counters, fsck, rmmod and slab checked;
 3. leaks and lifetime (`--leak-cycles`, default 20): mount/workload/umount
    cycles under slub_debug, EBUSY/rmmod-while-mounted, a mount race.

Each stage boots its own VMs (the image fuzzer a fresh one after every
crash, the leak run with slub_debug on the command line), so this scenario
is `own_vms`: the runner boots nothing for it. A kernel crash or hang in any
stage is a finding: it fails a criterion, is recorded in the scenario's
`crashes` with its trace (and, for images, a reproducer directory), and the
fuzzing goes on in a fresh VM. A stage that breaks for a harness reason
fails its own "ran to completion" criterion and the next stage still runs.
A count of 0 skips the stage; the metrics say so.

Everything the stages write goes under results/<run>/R1/ (image/, ioctl/,
leaks/: consoles, summary.json, findings/, result.json, leaks.json).
"""

from __future__ import annotations

import errno
import logging
import re
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from vexfs.harness.framework import Scenario, ScenarioContext
from vexfs.report.model import Crash
from vexfs.report.robustness import PREFIX

log = logging.getLogger(__name__)

CRASH_KINDS = ("crash", "hang", "died")  # image-fuzz finding kinds that are kernel/VM failures
SHRINK_PROBES = 20  # ddmin budget per crash (each crashing probe is a reboot)
PROGRESS_EVERY = 100  # cases between live-view step updates
# the ioctl hostile-argument classes that must be hit for the run to mean
# anything (EFAULT: bad pointers, EINVAL: bad fields, ENOTTY: foreign
# commands/directories, EBADF: closed and O_PATH fds); needs enough calls
MUST_SEE_ERRNOS = ("EFAULT", "EINVAL", "ENOTTY", "EBADF")
MIN_CALLS_FOR_ERRNO_COVERAGE = 2000
# a run this small may draw no refused mount at all (about 3 % are refused)
MIN_CASES_FOR_REFUSAL = 200
# about 1 case in 8 gets a structure-aware mutation, of five kinds
MIN_CASES_FOR_STRUCTURES = 200
# every SIGKILLed call must be reaped within this, on top of the baseline
# (a victim making no VexFS call) the driver measures in the same run
KILL_REAP_LIMIT_MS = 1000


def _rel(path: str | Path, ctx: ScenarioContext) -> str:
    """A path inside the run dir as it is relative to the run dir (report links)."""
    if not path:
        return ""
    run_dir = ctx.work_dir.parent if ctx.work_dir else None
    p = Path(path)
    if run_dir is not None and p.is_absolute() and p.is_relative_to(run_dir):
        return str(p.relative_to(run_dir))
    return str(p)


def _stage(ctx: ScenarioContext, key: str, fn: Callable[[], list[tuple[str, bool, str]]]
           ) -> None:
    """Run one stage and record its criteria as "<prefix>: <name>"; a harness
    failure inside it fails a criterion of its own (with the traceback in
    the transcript) instead of ending the run."""
    prefix = PREFIX[key]
    t0 = time.monotonic()
    try:
        for name, ok, detail in fn():
            ctx.check(f"{prefix}: {name}", ok, detail)
    except Exception as exc:
        ctx.note(f"# {prefix}: HARNESS ERROR\n{traceback.format_exc()}")
        log.exception("R1 %s failed", key)
        ctx.check(f"{prefix}: stage ran to completion", False, f"{type(exc).__name__}: {exc}"[:500])
    ctx.metric(f"{key}_s", round(time.monotonic() - t0, 1))


# -- 1. corrupt images ---------------------------------------------------------

def image_figures(summary: dict, requested: int, ctx: ScenarioContext | None = None
                  ) -> dict[str, Any]:
    """The report's figures from ImageFuzzer.run()'s summary."""
    st = summary["stats"]
    findings = summary.get("findings", [])
    refused = {k: v for k, v in st.get("mount_errnos", {}).items() if k != "mounted"}
    by_kind: dict[str, int] = {}
    for f in findings:
        by_kind[f["kind"]] = by_kind.get(f["kind"], 0) + 1
    rel = (lambda p: _rel(p, ctx)) if ctx is not None else str
    return {
        "cases_requested": requested,
        "cases_run": st["cases_run"],
        "seed": summary["seed"],
        "bases": summary["bases"],
        "boots": st["boots"],
        "mounted": st["mounted"],
        "refused": refused,
        "refused_total": sum(refused.values()),
        "went_read_only": st["went_ro"],
        "objects_walked": st["walk_entries"],
        "eio_seen": st["eio_seen"],
        "writes_ok": st["writes_ok"],
        "fsck_exit_after": st.get("fsck_exit", {}),
        "crashes": sum(1 for f in findings if f["kind"] == "crash"),
        "hangs": sum(1 for f in findings if f["kind"] in ("hang", "died")),
        "failures": len(findings),
        "findings_by_kind": by_kind,
        "findings": [{"case": f["case"], "kind": f["kind"], "title": f["title"],
                      "reproducer": rel(f["reproducer"]), "mutated_bytes": f.get("mutated_bytes"),
                      "shrunk_bytes": f.get("shrunk_bytes")} for f in findings],
        "wall_s": summary.get("wall_s"),
        "cases_per_s_vm": summary.get("cases_per_s_vm"),
        # coverage per structure: {label: {"cases": n, "mounted": m}}
        "structures": st.get("structures", {}),
    }


def image_criteria(fig: dict) -> list[tuple[str, bool, str]]:
    """(criterion, passed, detail) for the corrupt-image figures."""
    n, ran = fig["cases_requested"], fig["cases_run"]
    kinds = fig["findings_by_kind"]

    def listed(pred: Callable[[str], bool]) -> str:
        hits = [f for f in fig["findings"] if pred(f["kind"])]
        return "; ".join(f"case {f['case']}: {f['kind']}: {f['title']} -> {f['reproducer']}"
                         for f in hits[:10]) or "none"

    documented = {errno.errorcode[e] for e in _mount_errnos()}
    odd = sorted(set(fig["refused"]) - documented)
    integrity = ("mount-accepted-bad-sb", "umount-failed", "fsck-exception",
                 "corrupted-clean-image", "fsck-kernel-disagree")
    refused_txt = ", ".join(f"{k} {v}" for k, v in sorted(fig["refused"].items())) or "none"
    out = [
        (f"{n} corrupt-image cases ran", ran >= n,
         f"{ran} of {n} cases (seed {fig['seed']}, {len(fig['bases'])} seed images, "
         f"{fig['boots']} boots)"),
        (f"0 kernel crashes or hangs in {ran} corrupt-image cases",
         fig["crashes"] == 0 and fig["hangs"] == 0,
         f"{fig['crashes']} crashes, {fig['hangs']} hangs/VM deaths: "
         + listed(lambda k: k in CRASH_KINDS)),
        ("Every refused mount returned a documented errno (EINVAL, EUCLEAN, EBADMSG, EIO, ENOMEM)",
         not odd and not kinds.get("mount-bad-errno"),
         f"refused: {refused_txt}" + (f"; undocumented: {odd}" if odd else "")),
        ("No integrity finding: bad-checksum superblock mounted, umount failed, fsck raised, "
         "or a consistent image left inconsistent",
         not any(kinds.get(k) for k in integrity),
         listed(lambda k: k in integrity)),
        ("The mutations reach past the superblock check (>= 1/4 of the cases mount)",
         fig["mounted"] * 4 >= n, f"{fig['mounted']} of {ran} mounted, "
         f"{fig['went_read_only']} went read-only on a detected error, "
         f"{fig['objects_walked']} objects walked"),
        ("The kernel-written seed image is among the bases", "kernel_0.img" in fig["bases"],
         ", ".join(fig["bases"])),
    ]
    if n >= MIN_CASES_FOR_REFUSAL:
        out.append(("Some mutations are refused at mount (>= 1 refusal)",
                    fig["refused_total"] >= 1, f"refused: {refused_txt}"))
    structs = fig.get("structures") or {}
    if n >= MIN_CASES_FOR_STRUCTURES and structs:
        from vexfs.fuzz.mutate import Mutator
        want = [f"struct:{k}" for k in Mutator.STRUCT_KINDS]
        missing = [k for k in want if not (structs.get(k) or {}).get("mounted")]
        out.append(("Every structure-aware case (cross-link, empty extent block, chain cycle, "
                    "forged collection, links < names) ran on a mounted image",
                    not missing, ", ".join(f"{k[7:]} {structs.get(k, {}).get('cases', 0)} "
                                           f"({structs.get(k, {}).get('mounted', 0)} mounted)"
                                           for k in want)
                    + (f"; missing: {missing}" if missing else "")))
    return out


def _mount_errnos() -> set[int]:
    from vexfs.fuzz.imagefuzz import MOUNT_ERRNOS
    return set(MOUNT_ERRNOS)


def _image_stage(ctx: ScenarioContext, cases: int) -> list[tuple[str, bool, str]]:
    from vexfs.fuzz.imagefuzz import FuzzConfig, ImageFuzzer

    out = ctx.work_dir / "image"
    marker = re.compile(r"\bFZ S (\d+)")
    last = [-PROGRESS_EVERY]

    def progress(line: str) -> None:
        m = marker.search(line)
        if m and int(m.group(1)) - last[0] >= PROGRESS_EVERY:
            last[0] = int(m.group(1))
            ctx.observer.step(ctx.scenario.id, f"corrupt-image fuzz: case {last[0]}/{cases}")

    cfg = FuzzConfig(cases=cases, seed=ctx.options.fuzz_seed, out=out,
                     module=ctx.options.module_path, shrink_probes=SHRINK_PROBES)
    summary = ImageFuzzer(cfg, echo=ctx.note, console=[progress]).run()
    fig = image_figures(summary, cases, ctx)
    ctx.metric("image_fuzz", fig)
    ctx.logs.append(_rel(out / "summary.json", ctx))
    ctx.logs += [_rel(c, ctx) for c in sorted((out / "console").glob("*.log"))]
    for f in summary["findings"]:
        if f["kind"] not in CRASH_KINDS:
            continue
        ctx.crash(Crash(kind=f.get("crash_kind") or f["kind"],
                        title=f"corrupt image case {f['case']}: {f['title']}",
                        trace=(f.get("trace") or f.get("detail", ""))
                        + f"\n(reproducer: {_rel(f['reproducer'], ctx)})",
                        log_path=_rel(f.get("console", ""), ctx)))
    return image_criteria(fig)


# -- 2. ioctls ---------------------------------------------------------------

def ioctl_figures(res: dict) -> dict[str, Any]:
    """The report's figures from run_ioctl_fuzz()'s result."""
    s = res.get("summary") or {}
    hist = {errno.errorcode.get(int(k), k): v for k, v in s.get("errno", {}).items()}
    return {
        "calls_requested": res["calls_requested"],
        "calls": s.get("calls", 0),
        "succeeded": s.get("ok", 0),
        "errno_violations": s.get("bad", len(res.get("bad_errno", []))),
        "bad_errno_lines": res.get("bad_errno", [])[:20],
        "driver_rc": res.get("driver_rc"),
        # the parent's threads' calls; the forked child checks its own
        "errno": dict(sorted(hist.items(), key=lambda kv: -kv[1])),
        "crashes": 1 if res.get("crash") else 0,
        "crash": ({k: v for k, v in res["crash"].items() if k != "trace"}
                  if res.get("crash") else None),
        "threads": res["threads"],
        "seed": res["seed"],
        "counters_baseline": res.get("baseline_counters"),
        "counters_after_umount": res.get("counters_after_umount"),
        "fsck_exit": res.get("fsck_exit"),
        "rmmod_rc": res.get("rmmod_rc"),
        "slab_after_rmmod": res.get("slab_after_rmmod"),
        "problems": res.get("problems", []),
        "fuzz_s": res.get("fuzz_s"),
        "calls_per_s": res.get("calls_per_s"),
        "wall_s": res.get("wall_s"),
        # coverage: per ioctl {name: {calls, ok, errno: {NAME: n}}}, per
        # hostile context (calls; -1: the filesystem cannot set it up), and
        # the SIGKILL watchdog's rounds
        "per_ioctl": {name: {"calls": v.get("calls", 0), "ok": v.get("ok", 0),
                             "errno": {errno.errorcode.get(int(k), k): n
                                       for k, n in v.get("errno", {}).items()}}
                      for name, v in (s.get("per_ioctl") or {}).items()},
        "contexts": s.get("contexts") or {},
        "killwatch": s.get("killwatch"),
    }


def ioctl_criteria(fig: dict) -> list[tuple[str, bool, str]]:
    n, ran = fig["calls_requested"], fig["calls"]
    crash = fig.get("crash") or {}
    out = [
        (f"{n} hostile ioctl calls ran", ran >= n * 0.95 and fig["driver_rc"] is not None,
         f"{ran} of {n} calls ({fig['threads']} threads + a forked child, seed {fig['seed']}), "
         f"{fig['succeeded']} succeeded"),
        (f"0 kernel crashes or hangs in {ran} ioctl calls", not fig["crashes"],
         f"{crash.get('kind')}: {crash.get('title')}" if crash else "none"),
        ("Every failing call's errno documented and as the oracle expects (0 violations)",
         fig["errno_violations"] == 0 and fig["driver_rc"] == 0,
         f"{fig['errno_violations']} violations (driver exit {fig['driver_rc']}); errnos: "
         + ", ".join(f"{k} {v}" for k, v in fig["errno"].items())
         + (f"; first: {fig['bad_errno_lines'][:3]}" if fig["bad_errno_lines"] else "")),
        ("After the fuzz: umount works, counters back to baseline, fsck clean, rmmod works, "
         "no vexfs slab objects left",
         fig["counters_after_umount"] is not None
         and fig["counters_after_umount"] == fig["counters_baseline"]
         and fig["fsck_exit"] == 0 and fig["rmmod_rc"] == 0
         and not any((fig["slab_after_rmmod"] or {}).values())
         and not [p for p in fig["problems"] if "umount" in p],
         f"counters {fig['counters_baseline']} -> {fig['counters_after_umount']}, "
         f"fsck exit {fig['fsck_exit']}, rmmod exit {fig['rmmod_rc']}, "
         f"slab after rmmod {fig['slab_after_rmmod']}"),
    ]
    kw = fig.get("killwatch")
    if kw is not None:
        limit = kw.get("limit_ms", KILL_REAP_LIMIT_MS)
        out.append((f"Every SIGKILLed call returned within 1 s ({kw.get('rounds')} rounds; "
                    "1 s times the guest's CPU slowdown against the host, plus the reap "
                    "time of a victim making no VexFS call, both measured in the same run)",
                    kw.get("rounds", 0) > 0 and not kw.get("slow")
                    and (kw.get("max_reap_ms") or 0) <= limit,
                    f"{kw.get('slow')} slow of {kw.get('rounds')}, slowest reap "
                    f"{kw.get('max_reap_ms')} ms (in {kw.get('slowest_call')}), limit {limit} ms "
                    f"(1000 x slowdown {kw.get('slowdown')} + baseline slowest "
                    f"{kw.get('baseline_max_reap_ms')} ms)"))
        ctx = fig.get("contexts") or {}
        needed = ("read_only_mount", "forged_header", "unprivileged_child")
        missing_ctx = [k for k in needed if not (ctx.get(k) or 0) > 0]
        out.append(("The hostile contexts were exercised: an unprivileged user on root's "
                    "files, a read-only mount, a forged collection header",
                    not missing_ctx,
                    ", ".join(f"{k} {v if v != -1 else 'not supported'}"
                              for k, v in ctx.items())
                    + (f"; missing: {missing_ctx}" if missing_ctx else "")))
    if n >= MIN_CALLS_FOR_ERRNO_COVERAGE:
        missing = [e for e in MUST_SEE_ERRNOS if not fig["errno"].get(e)]
        out.append(("The hostile arguments reach the checks: EFAULT, EINVAL, ENOTTY and EBADF "
                    "all seen", not missing, f"missing: {missing}" if missing
                    else ", ".join(f"{e} {fig['errno'][e]}" for e in MUST_SEE_ERRNOS)))
    return out


def _ioctl_stage(ctx: ScenarioContext, calls: int) -> list[tuple[str, bool, str]]:
    from vexfs.fuzz.ioctlfuzz import run_ioctl_fuzz

    out = ctx.work_dir / "ioctl"
    ctx.observer.step(ctx.scenario.id, f"ioctl fuzz: {calls} calls")
    res = run_ioctl_fuzz(calls, seed=ctx.options.fuzz_seed, threads=3,
                         module=ctx.options.module_path, out=out, echo=ctx.note)
    fig = ioctl_figures(res)
    ctx.metric("ioctl_fuzz", fig)
    ctx.logs.append(_rel(out / "result.json", ctx))
    ctx.logs += [_rel(c, ctx) for c in sorted((out / "console").glob("*.log"))]
    if res.get("crash"):
        c = res["crash"]
        ctx.crash(Crash(kind=c["kind"], title=f"ioctl fuzz: {c['title']}", trace=c["trace"],
                        log_path=_rel(c.get("console", ""), ctx)))
    return ioctl_criteria(fig)


# -- 3. leaks and lifetime ------------------------------------------------------

def leak_figures(res: dict, cycles: int) -> dict[str, Any]:
    from vexfs.fuzz.leaks import MIN_CYCLES_FOR_MEMORY, analyse

    a = analyse(res, cycles)
    r = res.get("results", {})
    return {
        "cycles": cycles,
        "cycles_completed": sum(1 for i in range(1, cycles + 1) if r.get(f"cnt_{i}")),
        "counters_zero_every_cycle": a["counters_zero_every_cycle"],
        "slab_objects_after_umount": a["slab_objects_after_umount"],
        "mem_judged": cycles >= MIN_CYCLES_FOR_MEMORY,
        "mem_growth_kb": a["mem_growth_kb"] if cycles >= MIN_CYCLES_FOR_MEMORY else None,
        "mem_warmup_drop_kb": a["mem_warmup_drop_kb"],
        "mem_tolerance_kb": a["mem_tolerance_kb"],
        "crashes": len(res.get("crashes", [])),
        "slub_debug": res.get("cmdline"),
        "script_s": res.get("script_s"),
    }


def _leak_stage(ctx: ScenarioContext, cycles: int) -> list[tuple[str, bool, str]]:
    from vexfs.fuzz.leaks import MIN_CYCLES_FOR_MEMORY, run_leaks, verdicts

    out = ctx.work_dir / "leaks"
    ctx.observer.step(ctx.scenario.id, f"leaks: {cycles} mount cycles under slub_debug")
    res = run_leaks(out, ctx.options.module_path, cycles)
    ctx.metric("leaks", leak_figures(res, cycles))
    ctx.logs.append(_rel(out / "leaks.json", ctx))
    consoles = sorted((out / "console").glob("*.log"))
    ctx.logs += [_rel(c, ctx) for c in consoles]
    for c in res.get("crashes", []):
        ctx.crash(Crash(kind=c["kind"], title=f"leak run: {c['title']}", trace=c["trace"],
                        log_path=_rel(consoles[-1], ctx) if consoles else ""))
    if cycles < MIN_CYCLES_FOR_MEMORY:
        ctx.note(f"# memory trend not judged: {cycles} cycles < {MIN_CYCLES_FOR_MEMORY}")
    return verdicts(res, cycles)


def run(ctx: ScenarioContext) -> None:
    opts = ctx.options
    plan = {"fuzz_cases": opts.fuzz_cases, "ioctl_calls": opts.ioctl_calls,
            "leak_cycles": opts.leak_cycles, "seed": opts.fuzz_seed}
    ctx.metric("plan", plan)
    ctx.note(f"# plan: {plan} (vexfs run --fuzz-cases/--ioctl-calls/--leak-cycles/--fuzz-seed)")
    if opts.fuzz_cases > 0:
        ctx.step(f"1. corrupt-image fuzz: {opts.fuzz_cases} cases")
        _stage(ctx, "image_fuzz", lambda: _image_stage(ctx, opts.fuzz_cases))
    else:
        ctx.metric("image_fuzz", {"skipped": "--fuzz-cases 0"})
    if opts.ioctl_calls > 0:
        ctx.step(f"2. ioctl fuzz: {opts.ioctl_calls} calls")
        _stage(ctx, "ioctl_fuzz", lambda: _ioctl_stage(ctx, opts.ioctl_calls))
    else:
        ctx.metric("ioctl_fuzz", {"skipped": "--ioctl-calls 0"})
    if opts.leak_cycles > 0:
        ctx.step(f"3. leaks and lifetime: {opts.leak_cycles} cycles under slub_debug")
        _stage(ctx, "leaks", lambda: _leak_stage(ctx, opts.leak_cycles))
    else:
        ctx.metric("leaks", {"skipped": "--leak-cycles 0"})


SCENARIO = Scenario(id="R1", name="Robustness fuzzing", fn=run, own_vms=True,
                    description="corrupt-image fuzz, hostile ioctl fuzz, leak/lifetime cycles "
                                "under slub_debug (counts: --fuzz-cases, --ioctl-calls, "
                                "--leak-cycles)")
