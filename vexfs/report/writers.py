"""Write a run's report files: report.json, junit.xml and report.html.

`write_run()` is what the harness calls at the end of a run (and after each
scenario, so a run killed half-way still leaves a readable report). Every file
is written to a temporary name and renamed into place, so a reader never sees
half a file. `update_latest_link()` points `results/latest` at a run.

The JSON schema and the JUnit mapping are documented in docs/report.md.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from junit_xml import TestCase, TestSuite, to_xml_report_string

from vexfs.report.model import Run, ScenarioResult, Status

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
JUNIT_XML = "junit.xml"
REPORT_HTML = "report.html"
LATEST = "latest"


def jsonable(value: Any) -> Any:
    """Convert metric values to what JSON can hold, losslessly where possible.

    Scenarios record whatever they measured; numpy scalars and arrays, paths,
    tuples and enums are common. NaN and infinities are not valid JSON, so they
    become null rather than producing a file other tools refuse to parse.
    """
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    # numpy scalars and arrays, without importing numpy here.
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if hasattr(value, "item"):
        return jsonable(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


def run_to_json(run: Run) -> str:
    """report.json's text: indented, keys sorted so diffs between runs are stable."""
    return json.dumps(jsonable(run.to_dict()), indent=2, sort_keys=True, ensure_ascii=False,
                      allow_nan=False) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- JUnit -------------------------------------------------------------------

def _criteria_lines(scenario: ScenarioResult, only_failed: bool = False) -> list[str]:
    lines = []
    for c in scenario.criteria:
        if only_failed and c.passed:
            continue
        mark = "PASS" if c.passed else "FAIL"
        lines.append(f"[{mark}] {c.name}" + (f": {c.detail}" if c.detail else ""))
    return lines


def _crash_block(scenario: ScenarioResult) -> str:
    parts = []
    for crash in scenario.crashes:
        head = f"--- {crash.kind}: {crash.title}"
        if getattr(crash, "corrupted", False):
            head += " [report truncated]"
        if crash.log_path:
            head += f" (full console: {crash.log_path})"
        parts.append(head + "\n" + crash.trace.rstrip())
    return "\n\n".join(parts)


def _system_out(scenario: ScenarioResult) -> str:
    """Everything a CI viewer should show for a scenario, pass or fail."""
    out = []
    if scenario.message:
        out.append(f"message: {scenario.message}")
    if scenario.criteria:
        out.append("criteria:")
        out.extend("  " + line for line in _criteria_lines(scenario))
    if scenario.metrics:
        out.append("metrics:")
        out.append(json.dumps(jsonable(scenario.metrics), indent=2, sort_keys=True,
                              ensure_ascii=False))
    if scenario.crashes:
        out.append("crashes:")
        out.extend(f"  {c.kind}: {c.title}" for c in scenario.crashes)
    if scenario.logs:
        out.append("logs: " + " ".join(scenario.logs))
    return "\n".join(out)


def scenario_testcase(scenario: ScenarioResult) -> TestCase:
    """One scenario as a JUnit test case (mapping documented in docs/report.md)."""
    case = TestCase(
        name=f"{scenario.id} {scenario.name}",
        classname=f"vexfs.scenarios.{scenario.id}",
        elapsed_sec=max(float(scenario.duration_s), 0.0),
        status=Status(scenario.status).value,
        stdout=_system_out(scenario) or None,
    )
    status = Status(scenario.status)
    if status == Status.FAILED:
        failed = [c for c in scenario.criteria if not c.passed]
        if failed:
            message = f"{len(failed)} of {len(scenario.criteria)} criteria failed: " + \
                ", ".join(c.name for c in failed)
        else:
            message = scenario.message or "scenario failed"
        if scenario.message and failed:
            message = f"{scenario.message} ({message})"
        output = "\n".join(_criteria_lines(scenario, only_failed=True))
        crashes = _crash_block(scenario)
        if crashes:
            output = (output + "\n\n" + crashes).strip()
        case.add_failure_info(message=message, output=output or None, failure_type="criteria")
    elif status == Status.ERROR:
        if scenario.crashes:
            first = scenario.crashes[0]
            message = f"{first.kind}: {first.title}"
            error_type = first.kind
        else:
            message = scenario.message or "scenario could not finish"
            error_type = "error"
        if scenario.message and scenario.crashes:
            message = f"{message} ({scenario.message})"
        case.add_error_info(message=message, output=_crash_block(scenario) or None,
                            error_type=error_type)
    elif status == Status.SKIPPED:
        case.add_skipped_info(message=scenario.message or "skipped")
    return case


def _goal_testcase(goal) -> TestCase:
    """A run-level goal (the time goal) as its own test case: a missed goal
    is a failure CI dashboards see."""
    case = TestCase(name=goal.name, classname="vexfs.goals", stdout=goal.detail or None)
    if not goal.passed:
        case.add_failure_info(message=goal.detail or "goal missed", failure_type="goal")
    return case


def run_to_junit(run: Run) -> str:
    env = run.environment
    properties = {
        "run_id": run.run_id,
        "schema_version": str(run.schema_version),
        "kernel_version": env.kernel_version,
        "accelerator": env.accelerator,
        "host": env.host,
        "qemu_version": env.qemu_version,
        "module_path": env.module_path,
        "module_srcversion": env.module_srcversion,
        "cpu_model": env.cpu_model,
        "duration_s": f"{run.duration_s:.3f}",
    }
    from vexfs.report.robustness import stage_rows

    for row in stage_rows(run):  # R1's figures, for CI dashboards that read properties
        properties[f"robustness.{row.key}.tried"] = row.tried or row.state
        if row.failures is not None:
            properties[f"robustness.{row.key}.failures"] = str(row.failures)
    for key, value in env.extra.items():
        properties[f"extra.{key}"] = json.dumps(jsonable(value)) if not isinstance(value, str) else value
    suite = TestSuite(
        name="vexfs.scenarios",
        test_cases=[scenario_testcase(s) for s in run.scenarios] + [_goal_testcase(g)
                                                                  for g in run.goals],
        hostname=env.host or None,
        id=run.run_id,
        timestamp=run.started_at or None,
        properties={k: v for k, v in properties.items() if v},
    )
    return to_xml_report_string([suite], prettyprint=True, encoding="utf-8")


# --- entry points ------------------------------------------------------------

def write_run(run: Run, out_dir: Path, html: bool = True) -> dict[str, Path]:
    """Write report.json, junit.xml and report.html into `out_dir`.

    Returns {"json": path, "junit": path, "html": path}. The HTML is rendered
    last and a failure to render it (e.g. a plotting bug on odd metrics) is
    logged, not raised: the JSON and JUnit files are what CI depends on.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    json_path = out_dir / REPORT_JSON
    _atomic_write(json_path, run_to_json(run))
    written["json"] = json_path

    junit_path = out_dir / JUNIT_XML
    _atomic_write(junit_path, run_to_junit(run))
    written["junit"] = junit_path

    if html:
        html_path = out_dir / REPORT_HTML
        try:
            from vexfs.report.html import render_html

            _atomic_write(html_path, render_html(run, out_dir))
            written["html"] = html_path
        except Exception:  # noqa: BLE001 - the HTML must never cost us the other files
            log.exception("could not render %s", html_path)
    log.debug("report written: %s", {k: str(v) for k, v in written.items()})
    return written


def update_latest_link(results_root: Path, run_dir: Path) -> Path:
    """Point `results_root/latest` at `run_dir` (a relative symlink, replaced atomically)."""
    results_root = Path(results_root)
    run_dir = Path(run_dir)
    results_root.mkdir(parents=True, exist_ok=True)
    link = results_root / LATEST
    if link.exists() and not link.is_symlink():
        raise FileExistsError(f"{link} exists and is not a symlink; not replacing it")
    target = os.path.relpath(run_dir.resolve(), results_root.resolve())
    tmp = results_root / f".{LATEST}.tmp{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)
    return link
