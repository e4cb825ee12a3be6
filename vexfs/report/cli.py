"""`vexfs report`: show, re-render and compare run reports.

A RUN argument is a run directory (holding report.json) or the report.json
path itself. Runs live under `results/` by default; `results/latest` points at
the newest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vexfs.report.compare import ReportCorrupt, RunNotFound, compare_runs, find_runs, load_run
from vexfs.report.model import Run, Status

STATUS_STYLE = {Status.PASSED: "bold green", Status.FAILED: "bold red", Status.ERROR: "bold white on red",
                Status.SKIPPED: "dim"}

results_option = click.option(
    "--results", "results_root", type=click.Path(path_type=Path), default=Path("results"),
    show_default=True, help="Where runs are stored.")


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _load(path: Path) -> tuple[Run, Path]:
    try:
        return load_run(path)
    except ReportCorrupt as exc:        # an error, not a usage mistake: exit 1
        raise click.ClickException(str(exc)) from exc
    except RunNotFound as exc:
        raise click.UsageError(str(exc)) from exc


def _default_run(run: Path | None, results_root: Path) -> Path:
    if run is not None:
        return run
    latest = results_root / "latest"
    if latest.exists():
        return latest
    runs = find_runs(results_root)
    if not runs:
        raise click.UsageError(f"no runs under {results_root}/; give a RUN")
    return runs[-1]


def summary_table(run: Run) -> Table:
    env = run.environment
    table = Table(title=f"VexFS run {run.run_id}", title_justify="left",
                  caption=f"kernel {env.kernel_version or '?'} · {env.accelerator or '?'} · "
                          f"{env.host or '?'} · {run.duration_s:.1f} s",
                  caption_justify="left")
    table.add_column("Scenario", no_wrap=True)
    table.add_column("Name")
    table.add_column("Status", no_wrap=True)
    table.add_column("Time", justify="right", no_wrap=True)
    table.add_column("Criteria", justify="right", no_wrap=True)
    table.add_column("Note", overflow="fold")
    for s in run.scenarios:
        status = Status(s.status)
        note = s.message
        failed = [c.name for c in s.criteria if not c.passed]
        if failed:
            note = (note + "; " if note else "") + "failed: " + ", ".join(failed)
        if s.crashes:
            note = (note + "; " if note else "") + "; ".join(f"{c.kind}: {c.title}" for c in s.crashes)
        crit = f"{sum(c.passed for c in s.criteria)}/{len(s.criteria)}" if s.criteria else "—"
        table.add_row(s.id, s.name, Text(status.value.upper(), style=STATUS_STYLE[status]),
                      f"{s.duration_s:.1f} s", crit, Text(note))
    return table


def times_table(old: Run, new: Run) -> Table:
    """Wall time (with the -j each run used) and every scenario's time, old
    -> new: shown, never judged (they follow the host's load and -j)."""
    table = Table(title="Times", title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column(old.run_id, justify="right", no_wrap=True)
    table.add_column(new.run_id, justify="right", no_wrap=True)

    def jobs(run: Run) -> str:
        return f" (-j {run.environment.extra.get('jobs', 1)})"

    table.add_row("wall", f"{old.duration_s:.1f} s{jobs(old)}", f"{new.duration_s:.1f} s{jobs(new)}")
    from vexfs.report.timing import phases

    old_ph = {p.get("label"): p for p in phases(old)}
    new_ph = {p.get("label"): p for p in phases(new)}
    for label in [lb for lb in {**old_ph, **new_ph} if lb != "all"]:
        table.add_row(f"{label} wall",
                      f"{float(old_ph[label]['wall_s']):.1f} s" if label in old_ph else "—",
                      f"{float(new_ph[label]['wall_s']):.1f} s" if label in new_ph else "—")
    old_goals = {g.name: g for g in old.goals}
    new_goals = {g.name: g for g in new.goals}
    for name in {**old_goals, **new_goals}:
        table.add_row(f"goal {name}",
                      ("met" if old_goals[name].passed else "MISSED") if name in old_goals else "—",
                      ("met" if new_goals[name].passed else "MISSED") if name in new_goals else "—")
    olds = {s.id: s for s in old.scenarios}
    news = {s.id: s for s in new.scenarios}
    for sid in sorted(set(olds) | set(news)):
        table.add_row(sid, f"{olds[sid].duration_s:.1f} s" if sid in olds else "—",
                      f"{news[sid].duration_s:.1f} s" if sid in news else "—")
    return table


@click.group()
def report() -> None:
    """Render and compare run reports (results/<run-id>/report.json)."""


@report.command()
@click.argument("run", required=False, type=click.Path(path_type=Path))
@results_option
def show(run: Path | None, results_root: Path) -> None:
    """Print a run's summary table (default: results/latest).

    The verdict is PASSED only for a finished run in which every scenario
    passed (or was skipped) and at least one ran; otherwise FAILED, EMPTY,
    RUNNING (the harness is still writing it) or INCOMPLETE (it stopped before
    the end). Exit 0 only for PASSED."""
    loaded, run_dir = _load(_default_run(run, results_root))
    console = _console()
    console.print(summary_table(loaded))
    from vexfs.report.robustness import summary_lines

    for line in summary_lines(loaded):  # R1: cases tried, failures found
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    from vexfs.report.timing import time_lines

    for line in time_lines(loaded):  # wall, phases, per scenario, the time goal
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    style = {"PASSED": "bold green", "RUNNING": "bold yellow"}.get(loaded.verdict, "bold red")
    extra = ""
    if loaded.missing:
        extra = f" (no result yet for {', '.join(loaded.missing)})"
    elif loaded.verdict == "EMPTY":
        extra = " (no scenario ran)"
    console.print(f"[{style}]{loaded.verdict}[/]{extra} · report: {run_dir / 'report.html'}")
    sys.exit(0 if loaded.passed else 1)


@report.command("html")
@click.argument("run", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Output file (default: report.html in the run dir).")
@results_option
def html_cmd(run: Path | None, out: Path | None, results_root: Path) -> None:
    """(Re)render a run's report.html from its report.json."""
    from vexfs.report.html import render_html

    loaded, run_dir = _load(_default_run(run, results_root))
    target = out or run_dir / "report.html"
    target.write_text(render_html(loaded, run_dir), encoding="utf-8")
    click.echo(str(target))


@report.command()
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path))
@results_option
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(runs: tuple[Path, ...], results_root: Path, as_json: bool) -> None:
    """Compare RUN_A (old) with RUN_B (new); default: the two newest runs.

    Exit status: 0 no regression, 1 regression (newly failing or vanished
    scenario or criterion, a new run that is unfinished or empty, new crash or
    kernel warning, metric worse beyond noise or over a spec limit) or an
    unreadable report, 2 usage error.
    """
    if len(runs) == 0:
        found = find_runs(results_root)
        if len(found) < 2:
            raise click.UsageError(f"need two runs under {results_root}/ (found {len(found)}); give RUN_A RUN_B")
        paths = found[-2:]
    elif len(runs) == 2:
        paths = list(runs)
    else:
        raise click.UsageError("give no runs (the two newest) or exactly two: RUN_A RUN_B")
    (old, _), (new, _) = _load(paths[0]), _load(paths[1])
    cmp = compare_runs(old, new)
    if as_json:
        click.echo(json.dumps(cmp.to_dict(), indent=2))
        sys.exit(1 if cmp.regressed else 0)

    console = _console()
    console.print(f"Comparing [bold]{old.run_id}[/] ({old.started_at or '?'}) → "
                  f"[bold]{new.run_id}[/] ({new.started_at or '?'})")
    if old.environment.kernel_version != new.environment.kernel_version or \
            old.environment.accelerator != new.environment.accelerator:
        console.print(f"[yellow]note: environment differs: {old.environment.kernel_version}/"
                      f"{old.environment.accelerator} → {new.environment.kernel_version}/"
                      f"{new.environment.accelerator}[/]")
    console.print(times_table(old, new))
    sections = [("Regressions", [c for c in cmp.changes if c.regression], "red", "✘"),
                ("Improvements", [c for c in cmp.changes if c.improvement], "green", "✔"),
                ("Other changes", [c for c in cmp.changes if not c.regression and not c.improvement],
                 "yellow", "•")]
    for title, items, color, mark in sections:
        if not items:
            continue
        console.print(f"\n[bold {color}]{title} ({len(items)})[/]")
        for c in items:
            line = Text(f"  {mark} ", style=color)
            line.append(c.what)
            console.print(line)
    console.print(f"\n{cmp.unchanged_metrics} metric(s) within noise.")
    if cmp.regressed:
        console.print(f"[bold red]REGRESSION: {len(cmp.regressions)} change(s) for the worse[/]")
    else:
        console.print("[bold green]no regression[/]")
    sys.exit(1 if cmp.regressed else 0)


@report.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
def demo(out_dir: Path) -> None:
    """Write a sample run (six scenarios, one failure, one crash) to OUT_DIR, to preview the report."""
    from vexfs.report.sample import sample_run
    from vexfs.report.writers import write_run

    for kind, path in write_run(sample_run(), out_dir).items():
        click.echo(f"{kind}: {path}")
