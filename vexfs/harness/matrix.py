"""`vexfs matrix`: the same scenarios on several guest kernels, one report.

Each kernel gets an ordinary run (`vexfs run --kernel K` semantics: the
module is built against that kernel's headers, every scenario boots a fresh
VM of it) in <out>/<release>/ with its own report.json, report.html,
transcripts and console logs. The matrix report (<out>/matrix.json and
<out>/matrix.html) is a kernel x scenario table: each cell holds the
scenario's verdict, time, criteria and a few of its figures, and links to
the scenario's section in that kernel's report.html and to its transcript.
"""

from __future__ import annotations

import html
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vexfs.report.metrics import KNOWN, comparable_metrics, fmt_value, spec_for
from vexfs.report.model import Run, ScenarioResult

# a child of "vexfs.run": its progress lines show at the default verbosity
log = logging.getLogger("vexfs.run.matrix")

DEFAULT_KERNELS = ("6.1", "6.12", "6.12-rt")
MATRIX_SCHEMA = 1
FIGURES_PER_CELL = 3


@dataclass
class Cell:
    status: str
    duration_s: float
    criteria_passed: int
    criteria_total: int
    figures: dict[str, str] = field(default_factory=dict)  # label -> formatted value
    report_link: str = ""  # relative to the matrix directory
    transcript_link: str = ""
    message: str = ""


@dataclass
class KernelRow:
    spec: str
    release: str = ""
    package_version: str = ""
    module_srcversion: str = ""
    run_dir: str = ""  # relative to the matrix directory
    passed: bool = False
    duration_s: float = 0.0
    error: str = ""  # the kernel could not be fetched or the module not built
    cells: dict[str, Cell] = field(default_factory=dict)
    # The longest kernel_fpu_begin()..end() section the module measured
    # (S5's fpu_max_ns, from /sys/module/vexfs/parameters): what PREEMPT_RT
    # cares about, since preemption is off inside it. None: S5 did not run.
    fpu_max_ns: int | None = None
    fpu_sections: int | None = None


@dataclass
class Matrix:
    matrix_id: str
    started_at: str
    scenarios: list[str]
    rows: list[KernelRow] = field(default_factory=list)
    duration_s: float = 0.0
    schema_version: int = MATRIX_SCHEMA

    @property
    def passed(self) -> bool:
        """Every kernel ran every scenario and every cell passed."""
        return bool(self.rows) and all(
            not r.error and r.passed and len(r.cells) == len(self.scenarios)
            and all(c.status == "passed" for c in r.cells.values()) for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data


def figures(scenario: ScenarioResult, limit: int = FIGURES_PER_CELL) -> dict[str, str]:
    """A few of the scenario's numbers: the spec's named metrics first
    (load/unload/mount times...), then the first other numeric ones."""
    values = comparable_metrics(scenario)
    known = [k for k in values if k.split(".")[-1] in KNOWN]
    rest = [k for k in values if k not in known]
    out: dict[str, str] = {}
    for name in (known + rest)[:limit]:
        out[name] = fmt_value(values[name], spec_for(name).unit)
    return out


def cell_for(scenario: ScenarioResult, run_dir: str) -> Cell:
    # The runner writes every scenario's transcript as <run>/<id>.log.
    transcript = next((p for p in scenario.logs if p == f"{scenario.id}.log"), f"{scenario.id}.log")
    return Cell(status=scenario.status.value, duration_s=round(scenario.duration_s, 1),
                criteria_passed=sum(1 for c in scenario.criteria if c.passed),
                criteria_total=len(scenario.criteria), figures=figures(scenario),
                report_link=f"{run_dir}/report.html#{scenario.id}",
                transcript_link=f"{run_dir}/{transcript}" if transcript else "",
                message=scenario.message[:200])


def row_from_run(spec: str, run: Run, run_dir: str, package_version: str = "") -> KernelRow:
    row = KernelRow(spec=spec, release=run.environment.kernel_version,
                    package_version=package_version,
                    module_srcversion=run.environment.module_srcversion, run_dir=run_dir,
                    passed=run.passed, duration_s=round(run.duration_s, 1))
    for scenario in run.scenarios:
        row.cells[scenario.id] = cell_for(scenario, run_dir)
        fpu = scenario.metrics.get("fpu_max_ns")
        if isinstance(fpu, int) and (row.fpu_max_ns is None or fpu > row.fpu_max_ns):
            row.fpu_max_ns = fpu
            sections = scenario.metrics.get("fpu_sections")
            row.fpu_sections = sections if isinstance(sections, int) else None
    return row


def fpu_text(row: KernelRow) -> str:
    """"longest FPU section 412.3 us (1,204 sections)", or "" without S5."""
    if row.fpu_max_ns is None:
        return ""
    sections = f" ({row.fpu_sections:,} sections)" if row.fpu_sections is not None else ""
    return f"longest FPU section {row.fpu_max_ns / 1000:.1f} us{sections}"


_STATUS_COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#8b0000", "skipped": "#888"}


def render_html(matrix: Matrix) -> str:
    e = html.escape
    head = "".join(f"<th>{e(s)}</th>" for s in matrix.scenarios)
    rows = []
    for row in matrix.rows:
        label = (f'<a href="{e(row.run_dir)}/report.html">{e(row.release or row.spec)}</a>'
                 if row.run_dir else e(row.release or row.spec))
        sub = f"<div class=sub>--kernel {e(row.spec)}"
        sub += f" · {e(row.package_version)}" if row.package_version else ""
        sub += f" · {row.duration_s:.0f} s"
        sub += f"<br>{e(fpu_text(row))}" if row.fpu_max_ns is not None else ""
        sub += "</div>"
        cells = []
        for sid in matrix.scenarios:
            cell = row.cells.get(sid)
            if cell is None:
                why = row.error or "not run"
                cells.append(f'<td class=missing title="{e(why)}">—<div class=sub>{e(why[:80])}</div></td>')
                continue
            colour = _STATUS_COLOURS.get(cell.status, "#444")
            figs = "".join(f"<div class=fig>{e(k.split('.')[-1])} {e(v)}</div>"
                           for k, v in cell.figures.items())
            log_link = (f' · <a href="{e(cell.transcript_link)}">log</a>'
                        if cell.transcript_link else "")
            cells.append(
                f'<td><a class=st style="background:{colour}" href="{e(cell.report_link)}" '
                f'title="{e(cell.message)}">{e(cell.status)}</a>'
                f"<div class=sub>{cell.duration_s:.1f} s · {cell.criteria_passed}/"
                f"{cell.criteria_total}{log_link}</div>{figs}</td>")
        rows.append(f"<tr><th class=k>{label}{sub}</th>{''.join(cells)}</tr>")
    verdict = "PASSED" if matrix.passed else "FAILED"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>VexFS kernel matrix {e(matrix.matrix_id)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 6px 8px; vertical-align: top; text-align: left; }}
th.k {{ white-space: nowrap; }}
a.st {{ color: #fff; padding: 1px 6px; border-radius: 3px; text-decoration: none; }}
.sub {{ color: #666; font-size: 12px; font-weight: normal; }}
.fig {{ font-size: 12px; font-family: monospace; }}
td.missing {{ color: #999; }}
</style></head><body>
<h1>VexFS kernel matrix {e(matrix.matrix_id)}: {verdict}</h1>
<p>Started {e(matrix.started_at)}, {matrix.duration_s:.0f} s wall. Rows: guest kernels
(with the longest kernel_fpu_begin()..end() section the module measured during S5, which
PREEMPT_RT kernels must keep short); columns: scenarios. A cell links to the scenario in that kernel's report; "log" is its
transcript. Machine-readable: <a href="matrix.json">matrix.json</a>.</p>
<table><tr><th>kernel</th>{head}</tr>
{''.join(rows)}
</table></body></html>
"""


def write_matrix(matrix: Matrix, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "matrix.json.tmp"
    tmp.write_text(json.dumps(matrix.to_dict(), indent=2))
    tmp.rename(out / "matrix.json")
    (out / "matrix.html").write_text(render_html(matrix))


def run_matrix(kernel_specs: list[str], scenario_ids: list[str], out: Path, *,
               options_factory, observer_factory, jobs: int = 0) -> Matrix:
    """Run `scenario_ids` on each kernel in turn (scenarios of one kernel in
    parallel VMs, `jobs` at once) and write the matrix report after each."""
    from vexfs.harness import scenarios as registry
    from vexfs.harness.runner import RunnerConfig, run_all
    from vexfs.vm.build import BuildError, build_vexfs
    from vexfs.vm.kernel import KERNEL_ENV, KernelError, ensure_kernel

    chosen = registry.select(scenario_ids)
    matrix = Matrix(matrix_id=out.name,
                    started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    scenarios=[s.id for s in chosen])
    started = time.monotonic()
    saved_env = os.environ.get(KERNEL_ENV)
    try:
        for spec in kernel_specs:
            row = KernelRow(spec=spec)
            matrix.rows.append(row)
            try:
                log.info("matrix: preparing kernel %s", spec)
                kernel = ensure_kernel(spec)
                row.release, row.package_version = kernel.version, kernel.package_version
                os.environ[KERNEL_ENV] = kernel.version
                info = build_vexfs(kernel)
            except (KernelError, BuildError) as exc:
                row.error = str(exc).splitlines()[0][:300]
                log.error("matrix: kernel %s: %s", spec, exc)
                write_matrix(matrix, out)
                continue
            run_dir = kernel.version
            cfg = RunnerConfig(kernel=kernel, out_dir=out / run_dir, run_id=f"{out.name}-{run_dir}",
                               options=options_factory(info.path.resolve()),
                               observer=observer_factory(), module=info, jobs=jobs)
            run = run_all(chosen, cfg)
            matrix.rows[-1] = row_from_run(spec, run, run_dir, kernel.package_version)
            matrix.duration_s = time.monotonic() - started
            write_matrix(matrix, out)
    finally:
        if saved_env is None:
            os.environ.pop(KERNEL_ENV, None)
        else:
            os.environ[KERNEL_ENV] = saved_env
    matrix.duration_s = time.monotonic() - started
    write_matrix(matrix, out)
    return matrix
