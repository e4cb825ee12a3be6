"""Events a run emits while it goes, for live views and logs.

The harness calls these methods on an observer; `PlainObserver` logs them
line by line (CI, pipes). A richer terminal view implements the same
protocol. Observers must be cheap and must never raise into the harness.
"""

from __future__ import annotations

import logging
from typing import Protocol

from vexfs.report.model import Crash, ScenarioResult

log = logging.getLogger("vexfs.run")


class RunObserver(Protocol):
    def run_started(self, run_id: str, scenario_ids: list[str]) -> None: ...
    def scenario_started(self, scenario_id: str, name: str) -> None: ...
    def step(self, scenario_id: str, description: str) -> None: ...
    def console_line(self, line: str) -> None: ...  # every guest console/dmesg line
    def guest_stats(self, stats: dict[str, float | str]) -> None: ...  # MemAvailable, Slab, module state...
    def crash_detected(self, crash: Crash, restoring: bool,
                       scenario_id: str | None = None) -> None: ...
    def scenario_finished(self, result: ScenarioResult) -> None: ...
    def run_finished(self, passed: bool, report_dir: str) -> None: ...


class PlainObserver:
    """Line-by-line logging, for CI and any output that is not a terminal."""

    def run_started(self, run_id: str, scenario_ids: list[str]) -> None:
        log.info("run %s: scenarios %s", run_id, " ".join(scenario_ids))

    def scenario_started(self, scenario_id: str, name: str) -> None:
        log.info("%s %s: started", scenario_id, name)

    def step(self, scenario_id: str, description: str) -> None:
        log.info("%s: %s", scenario_id, description)

    def console_line(self, line: str) -> None:
        log.debug("console: %s", line)

    def guest_stats(self, stats: dict[str, float | str]) -> None:
        log.debug("guest: %s", stats)

    def crash_detected(self, crash: Crash, restoring: bool, scenario_id: str | None = None) -> None:
        log.error("%sCRASH %s: %s%s", f"{scenario_id}: " if scenario_id else "", crash.kind,
                  crash.title, " (restoring a clean VM)" if restoring else "")

    def scenario_finished(self, result: ScenarioResult) -> None:
        log.info("%s %s: %s in %.1f s %s", result.id, result.name, result.status.value,
                 result.duration_s, result.message)

    def run_finished(self, passed: bool, report_dir: str) -> None:
        log.info("run %s; report in %s", "PASSED" if passed else "FAILED", report_dir)
