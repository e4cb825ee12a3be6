"""The run report: what a scenario run produced, as plain data.

This is the contract between the harness (which fills it in) and the report
writers (JSON, JUnit, HTML, compare). `report.json` is `Run.to_dict()`
serialised; `Run.from_dict()` reads it back. The schema is documented in
docs/report.md.
"""

from __future__ import annotations

import enum
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1


class Status(str, enum.Enum):
    """A scenario's outcome. `error` means the scenario could not finish:
    the kernel crashed, the VM hung, or the harness itself failed."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of `data` that `cls` has: a report written by a newer version
    (with fields added, schema_version unchanged) still reads."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Criterion:
    """One success criterion of a scenario, checked by code."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class Crash:
    """A kernel crash or hang seen on the console during a scenario."""

    kind: str  # "panic", "oops", "bug", "warning", "hang", ... (see vexfs.crash)
    title: str  # one line, like syzkaller's report titles
    trace: str  # the captured console excerpt
    log_path: str = ""  # the full console log of that boot, relative to the run dir
    corrupted: bool = False  # a title matched but the report is truncated / incomplete


@dataclass
class ScenarioResult:
    id: str  # "S1".."S6", or "X..." for extra scenarios
    name: str
    status: Status
    duration_s: float
    criteria: list[Criterion] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    crashes: list[Crash] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)  # paths relative to the run dir
    message: str = ""  # why it failed / errored, in one sentence

    @property
    def passed(self) -> bool:
        return self.status == Status.PASSED


@dataclass
class Environment:
    kernel_version: str  # uname -r of the guest kernel
    accelerator: str  # "kvm" or "tcg"
    host: str  # host name and OS
    qemu_version: str = ""
    module_path: str = ""
    module_srcversion: str = ""
    cpu_model: str = ""  # the -cpu given to QEMU
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    run_id: str
    started_at: str  # ISO 8601, UTC
    duration_s: float
    environment: Environment
    scenarios: list[ScenarioResult] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    #: the run wrote its final report (False while scenarios are still running,
    #: and forever if the harness died or was interrupted)
    finished: bool = True
    #: the scenario ids the run set out to run, in order
    planned: list[str] = field(default_factory=list)
    #: "host:pid" of the harness writing the report (tells RUNNING from INCOMPLETE)
    writer: str = ""
    #: run-level criteria, judged like a scenario's: the time goal of the
    #: default run ("S1-S6+R1 wall time <= 360 s"); a failed one fails the run
    goals: list[Criterion] = field(default_factory=list)

    def writer_alive(self) -> bool:
        """The process that writes this report still runs (on this host)."""
        node, _, pid = self.writer.rpartition(":")
        if not pid.isdigit() or node != platform.node():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    @property
    def missing(self) -> list[str]:
        """Planned scenarios with no result."""
        ran = {s.id for s in self.scenarios}
        return [sid for sid in self.planned if sid not in ran]

    @property
    def verdict(self) -> str:
        """RUNNING / INCOMPLETE (not finished, writer alive / gone, or planned
        scenarios missing), EMPTY (nothing passed or failed: no scenario, or all
        skipped), PASSED or FAILED. Only a finished run that ran something and
        where every scenario passed or was skipped, and every run-level goal
        (the time goal) was met, is PASSED."""
        if not self.finished:
            return "RUNNING" if self.writer_alive() else "INCOMPLETE"
        if self.missing:
            return "INCOMPLETE"
        if not any(s.status != Status.SKIPPED for s in self.scenarios):
            return "EMPTY"
        if (all(s.status in (Status.PASSED, Status.SKIPPED) for s in self.scenarios)
                and all(g.passed for g in self.goals)):
            return "PASSED"
        return "FAILED"

    @property
    def passed(self) -> bool:
        return self.verdict == "PASSED"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for scenario in data["scenarios"]:
            scenario["status"] = Status(scenario["status"]).value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Run":
        scenarios = [
            ScenarioResult(
                id=s["id"],
                name=s["name"],
                status=Status(s["status"]),
                duration_s=float(s["duration_s"]),
                criteria=[Criterion(**_known(Criterion, c)) for c in s.get("criteria", [])],
                metrics=dict(s.get("metrics", {})),
                crashes=[Crash(**_known(Crash, c)) for c in s.get("crashes", [])],
                logs=list(s.get("logs", [])),
                message=s.get("message", ""),
            )
            for s in data.get("scenarios", [])
        ]
        return cls(
            run_id=data["run_id"],
            started_at=data["started_at"],
            duration_s=float(data["duration_s"]),
            environment=Environment(**_known(Environment, data["environment"])),
            scenarios=scenarios,
            schema_version=int(data.get("schema_version", SCHEMA_VERSION)),
            # reports from before this field were only complete when final:
            # they cannot tell, so they read as finished
            finished=bool(data.get("finished", True)),
            planned=[str(x) for x in data.get("planned", [])],
            writer=str(data.get("writer", "")),
            goals=[Criterion(**_known(Criterion, g)) for g in data.get("goals", [])],
        )
