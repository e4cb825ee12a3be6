"""report.html: one self-contained page for a run.

No network is needed to view it: the CSS is inline and the plots are SVG
embedded as data URIs (each plot stays an isolated document, so the ids
matplotlib generates cannot collide). Everything that came from the guest —
criteria details, crash titles and traces, messages, metric names — is
escaped. A partial run (missing scenarios, missing metrics) renders what
exists; a plot that fails to draw is replaced by a note, never an exception.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path
from typing import Any, Callable

from vexfs.report import plots
from vexfs.report.metrics import (
    as_floats,
    bench_figures,
    DEFAULT_MEM_TOLERANCE_KB,
    GROWTH_SERIES,
    fmt_value,
    is_number,
    memory_scenario,
    memory_verdicts,
    spec_for,
    spec_limit_checks,
    tolerance,
)
from vexfs.report.model import Run, ScenarioResult, Status
from vexfs.report.robustness import robustness_scenario, stage_rows
from vexfs.report.writers import jsonable

log = logging.getLogger(__name__)

STATUS_ICON = {Status.PASSED: "✔", Status.FAILED: "✘", Status.ERROR: "⚠", Status.SKIPPED: "–"}

CSS = """
:root { --pass:#1a7f37; --fail:#cf222e; --err:#9a2a00; --skip:#6e7781; --bg:#f6f8fa; --line:#d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       margin: 0; color: #1f2328; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 24px; margin: 0 0 4px; display: flex; align-items: center; gap: 14px; }
h2 { font-size: 18px; margin: 34px 0 10px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 0; display: flex; gap: 10px; align-items: center; }
.sub { color: #59636e; margin-bottom: 18px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; color: #fff; font-size: 12px;
         font-weight: 600; letter-spacing: .02em; text-transform: uppercase; white-space: nowrap; }
.big { font-size: 15px; padding: 4px 14px; }
.passed { background: var(--pass); } .failed { background: var(--fail); }
.error { background: var(--err); } .skipped { background: var(--skip); } .na { background: #8c959f; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 8px 18px;
        background: var(--bg); border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px; }
.grid div { min-width: 0; overflow-wrap: anywhere; }
.grid b { display: block; font-size: 11px; color: #59636e; text-transform: uppercase; letter-spacing: .04em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-size: 12px; color: #59636e; text-transform: uppercase; letter-spacing: .03em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
.ok { color: var(--pass); font-weight: 700; } .bad { color: var(--fail); font-weight: 700; }
.muted { color: #6e7781; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 12px; color: #59636e; margin-top: 6px; }
.scenario { border: 1px solid var(--line); border-left: 6px solid var(--skip); border-radius: 8px;
            padding: 14px 18px; margin: 14px 0; }
.scenario.s-passed { border-left-color: var(--pass); } .scenario.s-failed { border-left-color: var(--fail); }
.scenario.s-error { border-left-color: var(--err); }
.scenario .meta { color: #59636e; margin: 4px 0 10px; }
.message { background: #fff8c5; border: 1px solid #d4a72c66; border-radius: 6px; padding: 6px 10px; margin: 8px 0; }
ul.criteria { list-style: none; padding: 0; margin: 6px 0 10px; }
ul.criteria li { padding: 3px 0; display: flex; gap: 8px; }
ul.criteria .mark { width: 1.2em; flex: none; text-align: center; font-weight: 700; }
ul.criteria .detail { color: #59636e; }
.crash { border: 1px solid #ff818266; background: #ffebe9; border-radius: 8px; padding: 10px 14px; margin: 10px 0; }
.crash h4 { margin: 0 0 6px; font-size: 14px; color: var(--fail); }
pre { background: #0d1117; color: #e6edf3; padding: 10px 12px; border-radius: 6px; overflow-x: auto;
      font: 12px/1.4 "DejaVu Sans Mono", Menlo, Consolas, monospace; margin: 6px 0; white-space: pre; }
details summary { cursor: pointer; color: #0969da; margin: 4px 0; }
.metrics td:first-child { width: 230px; font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 12px; }
.banner { border-radius: 8px; padding: 10px 16px; margin: 14px 0; color: #fff; font-weight: 600; }
footer { margin-top: 40px; color: #8c959f; font-size: 12px; }
"""


def e(value: Any) -> str:
    """Escape anything for HTML text and attributes."""
    return html.escape(str(value), quote=True)


def _badge(status: Status | str, big: bool = False) -> str:
    value = Status(status)
    return (f'<span class="badge {value.value}{" big" if big else ""}">'
            f"{STATUS_ICON[value]} {value.value}</span>")


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return '<span class="badge na">not measured</span>'
    return '<span class="badge passed">✔ within</span>' if passed else '<span class="badge failed">✘ over</span>'


def _figure(title: str, draw: Callable[[], str | None], caption: str = "") -> str:
    """One plot as an <img> holding an SVG data URI; a drawing failure becomes a note."""
    try:
        svg = draw()
    except Exception as exc:  # noqa: BLE001 - odd metrics must not kill the whole report
        log.exception("plot %r failed", title)
        return f'<figure><figcaption>{e(title)}: could not draw ({e(exc)})</figcaption></figure>'
    if svg is None:
        return ""
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    cap = f"<figcaption>{e(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{e(title)}" src="data:image/svg+xml;base64,{data}">{cap}</figure>'


MAX_TRACE_LINES = 400  # a trace longer than this is cut on the page; the full log is linked


def _cap_lines(text: str, limit: int) -> str:
    lines = text.splitlines()
    if len(lines) <= limit:
        return text
    return "\n".join(lines[:limit]) + f"\n… {len(lines) - limit} more lines in the console log"


def _log_link(path: str, run_dir: Path | None) -> str:
    """A relative link to a log in the run dir; marked when the file is missing."""
    if not path:
        return ""
    missing = ""
    if run_dir is not None and not (run_dir / path).exists():
        missing = ' <span class="muted">(file not found)</span>'
    return f'<a href="{e(path)}">{e(path)}</a>{missing}'


# --- sections ----------------------------------------------------------------

def _summary(run: Run) -> str:
    env = run.environment
    counts: dict[str, int] = {}
    for s in run.scenarios:
        counts[Status(s.status).value] = counts.get(Status(s.status).value, 0) + 1
    count_text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no scenarios"
    fields = [
        ("Run id", run.run_id),
        ("Started (UTC)", run.started_at),
        ("Total time", f"{run.duration_s:.1f} s"),
        *[(f"Time goal {g.name}", f"{'met' if g.passed else 'MISSED'}: {g.detail}")
          for g in run.goals],
        ("Scenarios", count_text),
        ("Guest kernel", env.kernel_version),
        ("Accelerator", env.accelerator),
        ("Host", env.host),
        ("QEMU", env.qemu_version),
        ("CPU model", env.cpu_model),
        ("Module", env.module_path),
        ("Module srcversion", env.module_srcversion),
    ]
    for key, value in env.extra.items():
        fields.append((key.replace("_", " "), value if isinstance(value, str) else json.dumps(jsonable(value))))
    cells = "".join(f"<div><b>{e(k)}</b>{e(v) if v not in ('', None) else '<span class=muted>—</span>'}</div>"
                    for k, v in fields)
    return f'<div class="grid">{cells}</div>'


def _scenario_table(run: Run) -> str:
    if not run.scenarios:
        return '<p class="muted">No scenario ran.</p>'
    rows = []
    for s in run.scenarios:
        n_ok = sum(1 for c in s.criteria if c.passed)
        crit = f"{n_ok}/{len(s.criteria)}" if s.criteria else "—"
        note = s.message or (s.crashes[0].title if s.crashes else "")
        rows.append(
            f'<tr><td><a href="#{e(s.id)}">{e(s.id)}</a></td><td>{e(s.name)}</td>'
            f"<td>{_badge(s.status)}</td><td class=num>{s.duration_s:.1f} s</td>"
            f"<td class=num>{crit}</td><td class=num>{len(s.crashes) or ''}</td><td>{e(note)}</td></tr>")
    return ("<table><tr><th>Scenario</th><th>Name</th><th>Status</th><th>Time</th>"
            "<th>Criteria</th><th>Crashes</th><th>Note</th></tr>" + "".join(rows) + "</table>")


def _spec_metrics(run: Run) -> str:
    rows = []
    for check in spec_limit_checks(run):
        where = f'<a href="#{e(check.scenario_id)}">{e(check.scenario_id)}</a>' if check.scenario_id else ""
        measured = (f"max {fmt_value(check.worst, 's')} over {check.count} measurement"
                    f"{'s' if check.count != 1 else ''}") if check.worst is not None else "—"
        rows.append(f"<tr><td>{e(check.label)}</td><td>{where}</td><td>&lt; {check.limit:g} s</td>"
                    f"<td>{measured}</td><td>{_verdict(check.passed)}</td></tr>")
    scenario = memory_scenario(run)
    verdicts = memory_verdicts(scenario.metrics) if scenario is not None else []
    if not verdicts:
        rows.append("<tr><td>No memory growth over 20 load/unload cycles</td><td></td>"
                    f"<td>≤ {DEFAULT_MEM_TOLERANCE_KB:,} kB</td><td>—</td><td>{_verdict(None)}</td></tr>")
    else:
        m = scenario.metrics
        cycles = m.get("cycles") if is_number(m.get("cycles")) else len(as_floats(m.get("mem_available_kb")))
        for v in verdicts:
            rows.append(f"<tr><td>No memory growth over {e(cycles)} cycle{'s' if cycles != 1 else ''}: "
                        f"{e(v.label)}</td>"
                        f'<td><a href="#{e(scenario.id)}">{e(scenario.id)}</a></td><td>{e(v.tolerance)}</td>'
                        f"<td>{e(v.measured)}</td><td>{_verdict(v.passed)}</td></tr>")
    return ("<table><tr><th>Spec metric</th><th>From</th><th>Threshold</th><th>Measured</th>"
            "<th>Verdict</th></tr>" + "".join(rows) + "</table>")


def _robustness(run: Run) -> str:
    """Cases tried and failures found per fuzz stage (R1); empty without R1."""
    rows = stage_rows(run)
    if not rows:
        return ""
    scenario = robustness_scenario(run)
    out = []
    for r in rows:
        if r.state != "ran":
            verdict = ('<span class="badge na">skipped</span>' if r.state == "skipped"
                       else '<span class="badge failed">✘ did not run</span>' if r.failures
                       else '<span class="badge na">not run</span>')
        else:
            verdict = ('<span class="badge passed">✔ passed</span>' if r.passed
                       else '<span class="badge failed">✘ failed</span>')
        failures = "—" if r.failures is None else f'<span class="{"bad" if r.failures else "ok"}">{r.failures}</span>'
        figs = "<br>".join(e(f) for f in r.figures)
        finds = ""
        if r.findings:
            items = "".join(f"<li><code>{e(f)}</code></li>" for f in r.findings[:50])
            more = f"<li>… {len(r.findings) - 50} more</li>" if len(r.findings) > 50 else ""
            finds = f"<details open><summary>failures</summary><ul>{items}{more}</ul></details>"
        out.append(f'<tr><td><a href="#{e(scenario.id)}">{e(r.label)}</a></td>'
                   f"<td>{e(r.tried or r.state)}</td><td class=num>{failures}</td>"
                   f"<td>{figs}{finds}</td><td>{verdict}</td></tr>")
    return ("<h2>Robustness</h2><table class=robustness><tr><th>Stage</th><th>Tried</th>"
            "<th>Failures found</th><th>Figures</th><th>Verdict</th></tr>" + "".join(out)
            + "</table>")


def _plots(run: Run) -> str:
    by_id = {s.id: s for s in run.scenarios}
    figs = []
    cyc = by_id.get("S2") or next((s for s in run.scenarios if isinstance(s.metrics.get("load_s"), list)), None)
    if cyc is not None:
        m = cyc.metrics
        figs.append(_figure("S2 load/unload time per cycle",
                            lambda: plots.cycle_times(m.get("load_s"), m.get("unload_s"), 5.0, 2.0),
                            f"{cyc.id}: insmod / rmmod wall time measured in the guest, per cycle."))
        tol = tolerance(m, GROWTH_SERIES[1][4])
        avail_tol = tolerance(m, GROWTH_SERIES[0][4])
        figs.append(_figure("S2 memory per cycle",
                            lambda: plots.memory_per_cycle(m.get("mem_available_kb"), m.get("slab_kb"), tol,
                                                           m.get("vmalloc_used_kb"), avail_tol),
                            f"{cyc.id}: /proc/meminfo after each cycle's unload, as the change from cycle 1. "
                            "Green band: Slab/Vmalloc growth tolerance; blue dashed: MemAvailable loss limit."))
    mounts: dict[str, tuple[Any, Any]] = {}
    for s in run.scenarios:
        m = s.metrics
        mount = m.get("mount_s", [v / 1000 for v in as_floats(m.get("mount_ms"))] or None)
        umount = m.get("umount_s", [v / 1000 for v in as_floats(m.get("umount_ms"))] or None)
        if mount is not None or umount is not None:
            mounts[s.id] = (mount, umount)
        if "ext4_mount_s" in m or "ext4_umount_s" in m:  # S4's reference: ext4 on the same device
            mounts[f"{s.id} ext4"] = (m.get("ext4_mount_s"), m.get("ext4_umount_s"))
    if mounts:
        figs.append(_figure("Mount and umount times", lambda: plots.mount_times(mounts, 10.0),
                            "mount(2) / umount(2) wall time measured in the guest; grey: ext4 on the "
                            "same device, for reference."))
    for s in run.scenarios:
        if bench_figures(s.metrics.get("bench")):
            bench = s.metrics["bench"]
            figs.append(_figure(f"{s.id} vector benchmark", lambda b=bench: plots.bench_bars(b),
                                f"{s.id}: figures recorded in metrics.bench."))
    for s in run.scenarios:
        ann = s.metrics.get("ann")
        if isinstance(ann, dict) and ann.get("points"):
            figs.append(_figure(f"{s.id} ANN: recall@10 vs QPS", lambda a=ann: plots.ann_curve(a),
                                f"{s.id}: metrics.ann (vexfs bench ann in the VM); dotted: "
                                "recall 0.95, the goal's threshold."))
    figs = [f for f in figs if f]
    if not figs:
        return '<p class="muted">No plottable metrics in this run.</p>'
    return f'<div class="plots">{"".join(figs)}</div>'


def _bench_table(bench: dict) -> str:
    """Benchmark figures as a table: one row per figure, one column per implementation."""
    impls: list[str] = []
    for fig in bench.values():
        if isinstance(fig, dict):
            impls += [k for k, v in fig.items() if k != "unit" and is_number(v) and k not in impls]
    if not impls:
        impls = ["value"]
    head = "".join(f"<th>{e(i)}</th>" for i in impls)
    ratio_col = "vexfs" in impls and len(impls) > 1
    rows = []
    for figure, fig in bench.items():
        values = fig if isinstance(fig, dict) else {"value": fig}
        unit = str(values.get("unit", "")) if isinstance(fig, dict) else ""
        cells = "".join(f"<td class=num>{e(fmt_value(float(values[i])) if is_number(values.get(i)) else '—')}</td>"
                        for i in impls)
        ratio = ""
        if ratio_col:
            others = [float(values[i]) for i in impls if i != "vexfs" and is_number(values.get(i))]
            if is_number(values.get("vexfs")) and others and others[0]:
                ratio = f"×{float(values['vexfs']) / others[0]:.2f}"
            ratio = f"<td class=num>{e(ratio)}</td>"
        rows.append(f"<tr><td>{e(figure)}</td>{cells}<td>{e(unit)}</td>{ratio}</tr>")
    extra = "<th>vexfs / " + e([i for i in impls if i != "vexfs"][0]) + "</th>" if ratio_col else ""
    return f"<table><tr><th>figure</th>{head}<th>unit</th>{extra}</tr>{''.join(rows)}</table>"


def _metric_row(name: str, value: Any) -> str:
    spec = spec_for(name)
    if name == "bench" and bench_figures(value):
        return f"<tr><td>{e(name)}</td><td>{_bench_table(bench_figures(value))}</td></tr>"
    if isinstance(value, list) and len(value) == 1 and is_number(value[0]):
        return f"<tr><td>{e(name)}</td><td>{e(fmt_value(float(value[0]), spec.unit))}</td></tr>"
    if isinstance(value, list) and value and all(is_number(v) for v in value):
        nums = as_floats(value)
        srt = sorted(nums)
        med = srt[len(srt) // 2] if len(srt) % 2 else (srt[len(srt) // 2 - 1] + srt[len(srt) // 2]) / 2
        shown = (f"n={len(nums)} · min {fmt_value(min(nums), spec.unit)} · median {fmt_value(med, spec.unit)}"
                 f" · max {fmt_value(max(nums), spec.unit)}")
        raw = ", ".join(f"{v:g}" for v in nums)
        return (f"<tr><td>{e(name)}</td><td>{e(shown)}<details><summary>all values</summary>"
                f"<code>{e(raw)}</code></details></td></tr>")
    if is_number(value):
        return f"<tr><td>{e(name)}</td><td>{e(fmt_value(float(value), spec.unit))}</td></tr>"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        # Per-cycle samples (module_counters): say whether they ever changed.
        keys = sorted({k for d in value for k in d})
        varying = [k for k in keys if any(d.get(k) != value[0].get(k) for d in value)]
        if not keys:
            head = f"n={len(value)} · all empty"
        elif varying:
            head = f"n={len(value)} · changing: " + ", ".join(
                f"{k} {value[0].get(k)} → {value[-1].get(k)}" for k in varying)
        else:
            head = f"n={len(value)} · the same in every sample: " + ", ".join(
                f"{k}={value[0].get(k)}" for k in keys)
        text = json.dumps(jsonable(value), indent=1, sort_keys=True, ensure_ascii=False)
        return (f"<tr><td>{e(name)}</td><td>{e(head)}<details><summary>all values</summary>"
                f"<pre>{e(text)}</pre></details></td></tr>")
    if isinstance(value, list) and not value:
        return f'<tr><td>{e(name)}</td><td><span class="muted">none</span></td></tr>'
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = "".join(f"<li><code>{e(v)}</code></li>" for v in value[:200])
        more = f"<li>… {len(value) - 200} more</li>" if len(value) > 200 else ""
        return f"<tr><td>{e(name)}</td><td>{len(value)}:<ul>{items}{more}</ul></td></tr>"
    if isinstance(value, (dict, list)):
        text = json.dumps(jsonable(value), indent=2, sort_keys=True, ensure_ascii=False)
        first = text.splitlines()[0] + (" …" if "\n" in text else "")
        return (f"<tr><td>{e(name)}</td><td><details><summary>{e(first)}</summary>"
                f"<pre>{e(text)}</pre></details></td></tr>")
    return f"<tr><td>{e(name)}</td><td>{e(value)}</td></tr>"


def _scenario_section(s: ScenarioResult, run_dir: Path | None) -> str:
    status = Status(s.status).value
    out = [f'<section class="scenario s-{e(status)}" id="{e(s.id)}">',
           f"<h3>{e(s.id)} · {e(s.name)} {_badge(s.status)}</h3>",
           f'<div class="meta">{s.duration_s:.1f} s'
           + (f" · {sum(c.passed for c in s.criteria)}/{len(s.criteria)} criteria met" if s.criteria else "")
           + "</div>"]
    if s.message:
        out.append(f'<div class="message">{e(s.message)}</div>')
    if s.criteria:
        items = []
        for c in s.criteria:
            mark = '<span class="mark ok">✔</span>' if c.passed else '<span class="mark bad">✘</span>'
            detail = f' <span class="detail">— {e(c.detail)}</span>' if c.detail else ""
            items.append(f"<li>{mark}<span>{e(c.name)}{detail}</span></li>")
        out.append(f'<ul class="criteria">{"".join(items)}</ul>')
    elif s.status != Status.SKIPPED:
        out.append('<p class="muted">No criteria recorded.</p>')
    for crash in s.crashes:
        link = _log_link(crash.log_path, run_dir)
        truncated = ' <span class="badge na">report truncated</span>' if getattr(crash, "corrupted", False) else ""
        out.append(f'<div class="crash"><h4><span class="badge error">{e(crash.kind)}</span> {e(crash.title)}'
                   f"{truncated}</h4>"
                   f"<pre>{e(_cap_lines(crash.trace, MAX_TRACE_LINES))}</pre>"
                   + (f"<div>Full console log: {link}</div>" if link else "") + "</div>")
    if s.metrics:
        rows = "".join(_metric_row(k, v) for k, v in s.metrics.items())
        out.append(f'<details open><summary>Metrics</summary><table class="metrics">{rows}</table></details>')
    if s.logs:
        out.append("<div>Logs: " + " · ".join(_log_link(p, run_dir) for p in s.logs) + "</div>")
    out.append("</section>")
    return "\n".join(out)


def render_html(run: Run, run_dir: Path | None = None) -> str:
    """The whole report page. `run_dir` (where report.html will live) is used
    only to mark log links whose file is missing."""
    run_dir = Path(run_dir) if run_dir is not None else None
    overall = "passed" if run.passed and run.scenarios else ("failed" if run.scenarios else "skipped")
    crashes = [(s, c) for s in run.scenarios for c in s.crashes]
    banner = ""
    if crashes:
        kinds = ", ".join(sorted({c.kind for _, c in crashes}))
        banner = (f'<div class="banner error">{len(crashes)} kernel crash/hang report'
                  f'{"s" if len(crashes) != 1 else ""} ({e(kinds)}) in '
                  + ", ".join(f'<a style="color:#fff;text-decoration:underline" href="#{e(sid)}">{e(sid)}</a>'
                              for sid in dict.fromkeys(s.id for s, _ in crashes)) + "</div>")
    sections = "\n".join(_scenario_section(s, run_dir) for s in run.scenarios)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>VexFS run {e(run.run_id)} — {overall.upper()}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>VexFS VM test run <span class="badge big {overall}">{STATUS_ICON[Status(overall)]} {overall}</span></h1>
<div class="sub">{e(run.run_id)} · kernel {e(run.environment.kernel_version or '?')} ·
{e(run.environment.accelerator or '?')} · {run.duration_s:.1f} s</div>
{_summary(run)}
{banner}
<h2>Scenarios</h2>
{_scenario_table(run)}
<h2>Spec performance metrics</h2>
{_spec_metrics(run)}
{_robustness(run)}
<h2>Plots</h2>
{_plots(run)}
<h2>Details</h2>
{sections or '<p class="muted">No scenario ran.</p>'}
<footer>Machine-readable: <a href="report.json">report.json</a> (schema v{run.schema_version}) ·
<a href="junit.xml">junit.xml</a> · generated by vexfs.report · this page needs no network</footer>
</main>
</body>
</html>
"""


def write_html(run: Run, out_dir: Path) -> Path:
    path = Path(out_dir) / "report.html"
    path.write_text(render_html(run, Path(out_dir)), encoding="utf-8")
    return path
