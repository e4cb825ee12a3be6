"""The robustness figures of a run (R1's metrics), for the page and the terminal.

R1 (vexfs/harness/scenarios/r1_robustness.py) records three metric dicts:
`image_fuzz`, `ioctl_fuzz` and `leaks` (docs/report.md lists their fields).
This module turns them into one row per stage -- what was tried, how many
failures were found, the figures that say what happened -- so report.html,
`vexfs run`'s summary and `vexfs report show` say the same thing. A stage
that was skipped (count 0) or never reached (the scenario broke before it)
says so; nothing here invents a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vexfs.report.model import Run, ScenarioResult, Status

# (metric name, label, criterion prefix): R1 names every criterion of a
# stage "<prefix>: ...", so a criterion's stage is known without guessing
STAGES = (("image_fuzz", "Corrupt-image fuzz", "Corrupt images"),
          ("ioctl_fuzz", "ioctl fuzz", "ioctl fuzz"),
          ("leaks", "Leaks and lifetime", "Leaks"))
PREFIX = {key: prefix for key, _, prefix in STAGES}


@dataclass
class StageRow:
    key: str  # the metric name: image_fuzz, ioctl_fuzz, leaks
    label: str
    state: str  # "ran", "skipped", "not run"
    tried: str = ""  # "1000 of 1000 cases", "100000 calls", "20 cycles"
    failures: int | None = None  # findings/crashes/failed checks; None when not run
    figures: list[str] = field(default_factory=list)  # short human lines
    findings: list[str] = field(default_factory=list)  # one line per failure found
    passed: bool | None = None  # every criterion of this stage met (None: not run)


def robustness_scenario(run: Run) -> ScenarioResult | None:
    """The scenario carrying the fuzz figures: R1, or any with those metrics."""
    for s in sorted(run.scenarios, key=lambda s: s.id != "R1"):
        if any(k in s.metrics for k, _, _ in STAGES):
            return s
    return None


def _hist(d: Any) -> str:
    if not isinstance(d, dict) or not d:
        return "none"
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items(), key=lambda kv: (-_num(kv[1]), kv[0])))


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def stage_criteria(s: ScenarioResult, key: str) -> list:
    """The criteria of one stage: those named "<its prefix>: ..."."""
    return [c for c in s.criteria if c.name.startswith(PREFIX[key] + ": ")]


def _image(m: dict) -> tuple[str, int, list[str], list[str]]:
    tried = f"{m.get('cases_run')} of {m.get('cases_requested')} cases (seed {m.get('seed')})"
    figs = [f"mounted {m.get('mounted')}, refused {m.get('refused_total')} "
            f"({_hist(m.get('refused'))}), went read-only {m.get('went_read_only')}",
            f"{m.get('crashes')} kernel crashes, {m.get('hangs')} hangs; "
            f"findings by kind: {_hist(m.get('findings_by_kind'))}",
            f"{m.get('objects_walked')} objects walked, {m.get('boots')} boots, "
            f"{m.get('cases_per_s_vm')} cases/s of VM time"]
    structs = m.get("structures")
    if isinstance(structs, dict) and structs:
        figs.append("cases per structure (mounted): " + ", ".join(
            f"{k} {v.get('cases')} ({v.get('mounted')})" for k, v in sorted(
                structs.items(), key=lambda kv: (-_num(kv[1].get("cases")), kv[0]))
            if isinstance(v, dict)))
    finds = [f"case {f.get('case')}: {f.get('kind')}: {f.get('title')} -> {f.get('reproducer')}"
             for f in m.get("findings", []) if isinstance(f, dict)]
    return tried, int(_num(m.get("failures"))), figs, finds


def _ioctl(m: dict) -> tuple[str, int, list[str], list[str]]:
    tried = f"{m.get('calls')} of {m.get('calls_requested')} calls ({m.get('threads')} threads " \
            f"+ a forked child, seed {m.get('seed')})"
    figs = [f"succeeded {m.get('succeeded')}; errnos (parent's calls): {_hist(m.get('errno'))}",
            f"{m.get('errno_violations')} errno violations, {m.get('crashes')} crashes",
            f"counters after umount {m.get('counters_after_umount')}, fsck exit "
            f"{m.get('fsck_exit')}, rmmod exit {m.get('rmmod_rc')}; {m.get('calls_per_s')} calls/s"]
    per = m.get("per_ioctl")
    if isinstance(per, dict) and per:
        figs.append("per ioctl: " + "; ".join(
            f"{k} {v.get('calls')} calls, {v.get('ok')} ok, {_hist(v.get('errno'))}"
            for k, v in per.items() if isinstance(v, dict)))
    ctx = m.get("contexts")
    if isinstance(ctx, dict) and ctx:
        figs.append("calls per hostile context: " + ", ".join(
            f"{k} {'not supported' if v == -1 else v}" for k, v in ctx.items()))
    kw = m.get("killwatch")
    if isinstance(kw, dict):
        figs.append(f"SIGKILL watchdog: {kw.get('rounds')} rounds, {kw.get('slow')} not reaped "
                    f"within {kw.get('limit_ms', 1000)} ms (1 s x slowdown "
                    f"{kw.get('slowdown', 1)} + baseline {kw.get('baseline_max_reap_ms')} ms), "
                    f"slowest {kw.get('max_reap_ms')} ms")
    finds = [str(x) for x in m.get("bad_errno_lines", [])]
    crash = m.get("crash")
    if isinstance(crash, dict):
        finds.insert(0, f"{crash.get('kind')}: {crash.get('title')}")
    failures = int(_num(m.get("errno_violations"))) + int(_num(m.get("crashes")))
    return tried, failures, figs, finds


def _leaks(m: dict) -> tuple[str, int, list[str], list[str]]:
    tried = f"{m.get('cycles_completed')} of {m.get('cycles')} mount cycles ({m.get('slub_debug')})"
    slabs = m.get("slab_objects_after_umount") or []
    mem = (f"memory lost over the steady half {m.get('mem_growth_kb')} kB "
           f"(tolerance {m.get('mem_tolerance_kb')})" if m.get("mem_judged")
           else "memory trend not judged (fewer than 10 cycles)")
    figs = [f"counters 0 after every umount: {m.get('counters_zero_every_cycle')}; vexfs slab "
            f"objects after umount: max {max(slabs) if slabs else '?'}", mem,
            f"{m.get('crashes')} crashes"]
    return tried, int(_num(m.get("crashes"))), figs, []


def stage_rows(run: Run) -> list[StageRow]:
    """One row per robustness stage; empty when no scenario recorded any."""
    s = robustness_scenario(run)
    if s is None:
        return []
    rows = []
    for key, label, _ in STAGES:
        m = s.metrics.get(key)
        if not isinstance(m, dict):
            rows.append(StageRow(key, label, "not run",
                                 findings=[s.message] if s.status == Status.ERROR and s.message
                                 else []))
            continue
        if "skipped" in m:
            rows.append(StageRow(key, label, "skipped", tried=f"skipped ({m['skipped']})"))
            continue
        tried, failures, figs, finds = {"image_fuzz": _image, "ioctl_fuzz": _ioctl,
                                        "leaks": _leaks}[key](m)
        crits = stage_criteria(s, key)
        failed = [c for c in crits if not c.passed]
        # a failed check without a counted finding (e.g. counters not back
        # to zero) is a failure too
        failures = max(failures, len(failed))
        finds = finds + [f"{c.name}: {c.detail}" for c in failed]
        rows.append(StageRow(key, label, "ran", tried, failures, figs, finds,
                             passed=bool(crits) and not failed))
    # a stage that broke before recording its figures fails its own
    # "<prefix>: stage ran to completion" criterion
    for row in rows:
        failed = [c for c in stage_criteria(s, row.key) if not c.passed]
        if row.state == "not run" and failed:
            row.failures, row.passed = len(failed), False
            row.findings += [f"{c.name}: {c.detail}" for c in failed]
    return rows


def summary_lines(run: Run) -> list[str]:
    """The robustness figures as plain text lines (terminal summary)."""
    lines = []
    for r in stage_rows(run):
        if r.state != "ran":
            lines.append(f"{r.label}: {r.tried or r.state}"
                         + (f" ({'; '.join(r.findings[:2])})" if r.findings else ""))
            continue
        lines.append(f"{r.label}: {r.tried}; failures found: {r.failures}")
        lines += [f"    {f}" for f in r.figures]
        lines += [f"    FAILURE {f}" for f in r.findings[:10]]
    return lines
