"""The run's times as text: wall time, each phase (C1 runs after the
others and is timed apart), every scenario's time, and the time goal's
verdict (a run-level criterion, `Run.goals`)."""

from __future__ import annotations

from vexfs.report.model import Run


def phases(run: Run) -> list[dict]:
    """env.extra["timing"], or one phase of every scenario for older reports."""
    found = run.environment.extra.get("timing")
    if isinstance(found, list) and found:
        return found
    return [{"scenarios": [s.id for s in run.scenarios], "label": "all",
             "wall_s": run.duration_s}]


def time_lines(run: Run) -> list[str]:
    total = sum(s.duration_s for s in run.scenarios)
    jobs = run.environment.extra.get("jobs", 1)
    by_id = {s.id: s for s in run.scenarios}
    lines = [f"wall time {run.duration_s:.1f} s for {len(run.scenarios)} scenarios "
             f"({total:.1f} s of scenario time, -j {jobs})"]
    for phase in phases(run):
        times = ", ".join(f"{sid} {by_id[sid].duration_s:.1f} s"
                          for sid in phase.get("scenarios", []) if sid in by_id)
        lines.append(f"  {phase.get('label', '?')}: {float(phase.get('wall_s', 0)):.1f} s wall"
                     f" ({times})")
    for goal in run.goals:
        lines.append(f"time goal {goal.name}: {'met' if goal.passed else 'MISSED'} "
                     f"({goal.detail})")
    return lines
