"""Compare two runs: what got worse, what got better, what merely moved.

The rules (docs/report.md, "Comparing runs"):
- a scenario that passed (or did not exist, or was skipped) and now fails or
  errors is a regression; failed -> error is a regression too (it now crashes);
- a criterion that passed and now fails is a regression;
- a crash or kernel warning title not seen in the old run is a regression;
- a metric is compared by one number (lists by their median); a change is
  noise unless it exceeds BOTH the metric's relative threshold (20% by
  default) and its absolute floor (25 ms for timings, 1 MiB for memory...);
  beyond noise in the bad direction it is a regression; crossing one of the
  spec's limits (load < 5 s, unload < 2 s, mount < 10 s) always is.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vexfs.report.metrics import (
    as_floats,
    comparable_metrics,
    fmt_value,
    is_regression,
    ratio,
    spec_for,
)
from vexfs.report.model import Run, ScenarioResult, Status

log = logging.getLogger(__name__)

BAD = (Status.FAILED, Status.ERROR)


class RunNotFound(Exception):
    """No report at that path (a usage error)."""


class ReportCorrupt(RunNotFound):
    """A report.json is there but cannot be read as a run report."""


def load_run(path: Path) -> tuple[Run, Path]:
    """A run from its directory (holding report.json) or the JSON file itself.

    Returns the run and its directory."""
    path = Path(path)
    json_path = path / "report.json" if path.is_dir() else path
    if not json_path.is_file():
        raise RunNotFound(f"{path}: no report.json there")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
        return Run.from_dict(data), json_path.parent
    except (ValueError, KeyError, TypeError) as exc:
        raise ReportCorrupt(f"{json_path}: not a readable run report ({exc})") from exc


def find_runs(results_root: Path) -> list[Path]:
    """Run directories under `results_root`, oldest first (by started_at, then name).

    `latest` is a link to one of them and is skipped."""
    root = Path(results_root)
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        if d.name == "latest" or d.is_symlink() or not (d / "report.json").is_file():
            continue
        try:
            started = json.loads((d / "report.json").read_text(encoding="utf-8")).get("started_at", "")
        except ValueError:
            log.warning("%s: unreadable report.json, ignored", d)
            continue
        found.append((str(started), d.name, d))
    return [d for _, _, d in sorted(found)]


@dataclass
class Change:
    kind: str  # "scenario", "criterion", "metric", "crash"
    scenario_id: str
    what: str  # one line for humans
    regression: bool = False
    improvement: bool = False
    old: float | str | None = None
    new: float | str | None = None
    ratio: float | None = None


@dataclass
class Comparison:
    old_id: str
    new_id: str
    changes: list[Change] = field(default_factory=list)
    unchanged_metrics: int = 0

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regression]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    def to_dict(self) -> dict:
        return {"old": self.old_id, "new": self.new_id, "regressed": self.regressed,
                "unchanged_metrics": self.unchanged_metrics,
                "changes": [asdict(c) for c in self.changes]}


def _status_rank(status: Status | None) -> int:
    # Worse is higher. A scenario that did not run counts as neutral (like skipped).
    return {None: 0, Status.SKIPPED: 0, Status.PASSED: 0, Status.FAILED: 1, Status.ERROR: 2}[status]


def _compare_status(sid: str, old: ScenarioResult | None, new: ScenarioResult | None) -> list[Change]:
    o = Status(old.status) if old else None
    n = Status(new.status) if new else None
    if o == n:
        return []
    name = (new or old).name
    before = o.value if o else "absent"
    after = n.value if n else "absent"
    text = f"{sid} {name}: {before} → {after}"
    if n is not None and _status_rank(n) > _status_rank(o):
        reason = f" ({new.message})" if new.message else ""
        return [Change("scenario", sid, text + reason, regression=True, old=before, new=after)]
    if n is None:  # vanished: whatever it proved is no longer proved
        return [Change("scenario", sid, text + " (vanished: not in the new run)",
                       regression=True, old=before, new=after)]
    improvement = _status_rank(n) < _status_rank(o) or (o == Status.SKIPPED and n == Status.PASSED)
    return [Change("scenario", sid, text, improvement=improvement, old=before, new=after)]


def _compare_criteria(sid: str, old: ScenarioResult, new: ScenarioResult) -> list[Change]:
    changes = []
    before = {c.name: c for c in old.criteria}
    # A criterion absent from an old run that did not finish (error, skipped)
    # was never evaluated: failing it now is not news of a regression.
    old_finished = Status(old.status) in (Status.PASSED, Status.FAILED)
    for c in new.criteria:
        prev = before.get(c.name)
        if prev is None:
            if not c.passed:
                if old_finished:
                    changes.append(Change("criterion", sid, f"{sid} new criterion fails: {c.name}: {c.detail}",
                                          regression=True, new="fail"))
                else:
                    changes.append(Change("criterion", sid, f"{sid} fails (not evaluated in the old run, "
                                          f"which did not finish): {c.name}: {c.detail}", new="fail"))
            continue
        if prev.passed and not c.passed:
            changes.append(Change("criterion", sid, f"{sid} ✔→✘ {c.name}: {c.detail}", regression=True,
                                  old="pass", new="fail"))
        elif not prev.passed and c.passed:
            changes.append(Change("criterion", sid, f"{sid} ✘→✔ {c.name}", improvement=True,
                                  old="fail", new="pass"))
    # a criterion the old run checked and the new one (which finished) no
    # longer checks is a regression: nothing proves it any more
    new_finished = Status(new.status) in (Status.PASSED, Status.FAILED)
    now = {c.name for c in new.criteria}
    for c in old.criteria:
        if c.name not in now and new_finished:
            changes.append(Change("criterion", sid, f"{sid} criterion vanished: {c.name}",
                                  regression=True, old="pass" if c.passed else "fail",
                                  new="absent"))
    return changes


def _compare_metrics(sid: str, old: ScenarioResult, new: ScenarioResult) -> tuple[list[Change], int]:
    changes, unchanged = [], 0
    a, b = comparable_metrics(old), comparable_metrics(new)
    for name in sorted(set(a) & set(b)):
        spec = spec_for(name)
        ov, nv = a[name], b[name]
        r = ratio(ov, nv)
        ratio_text = f"×{r:.2f}" if r is not None else "new from 0"
        # Crossing a spec limit is a regression whatever the noise rules say.
        if spec.limit is not None:
            worst_old = max(as_floats(old.metrics.get(name)) or [ov])
            worst_new = max(as_floats(new.metrics.get(name)) or [nv])
            if worst_new >= spec.limit > worst_old:
                changes.append(Change(
                    "metric", sid, f"{sid} {name}: max {fmt_value(worst_new, spec.unit)} now over the "
                    f"spec limit {spec.limit:g} {spec.unit} (was {fmt_value(worst_old, spec.unit)})",
                    regression=True, old=worst_old, new=worst_new, ratio=ratio(worst_old, worst_new)))
                continue
        beyond, regressed = is_regression(spec, ov, nv)
        if not beyond:
            unchanged += 1
            continue
        direction = "worse" if regressed else ("better" if spec.better else "changed")
        changes.append(Change(
            "metric", sid, f"{sid} {name}: {fmt_value(ov, spec.unit)} → {fmt_value(nv, spec.unit)} "
            f"({ratio_text}, {direction})",
            regression=regressed, improvement=bool(spec.better) and not regressed,
            old=ov, new=nv, ratio=r))
    return changes, unchanged


_TIMESTAMP_RE = re.compile(r"^\s*\[\s*\d+\.\d+\]\s*(\[\s*[TC]\d+\]\s*)?")
_HEX_RE = re.compile(r"\b(0x)?[0-9a-f]{6,}\b", re.IGNORECASE)
_NUM_RE = re.compile(r"\d+")


def normalize_title(text: str) -> str:
    """A crash title or dmesg line with what differs between runs of the same
    problem removed: printk timestamp, addresses, PIDs and other numbers."""
    text = _TIMESTAMP_RE.sub("", text.strip())
    text = _HEX_RE.sub("X", text)
    return _NUM_RE.sub("N", text)


def _crash_titles(run: Run) -> dict[str, tuple[str, str]]:
    """Every crash title and kernel warning line of a run, normalised ->
    (the scenario it was first seen in, the text as printed)."""
    titles: dict[str, tuple[str, str]] = {}
    for s in run.scenarios:
        for c in s.crashes:
            text = c.title if c.title.lower().startswith(f"{c.kind.lower()}:") else f"{c.kind}: {c.title}"
            titles.setdefault(normalize_title(text), (s.id, text))
        warnings = s.metrics.get("kernel_warnings")
        if isinstance(warnings, list):
            for w in warnings:
                if isinstance(w, str) and w.strip():
                    titles.setdefault(normalize_title(w), (s.id, _TIMESTAMP_RE.sub("", w.strip())))
    return titles


def compare_runs(old: Run, new: Run) -> Comparison:
    cmp = Comparison(old_id=old.run_id, new_id=new.run_id)
    if new.verdict in ("RUNNING", "INCOMPLETE", "EMPTY"):
        cmp.changes.append(Change("run", "", f"the new run is {new.verdict}"
                                  + (f" (missing: {', '.join(new.missing)})" if new.missing
                                     else ""), regression=True, new=new.verdict))
    before = {s.id: s for s in old.scenarios}
    after = {s.id: s for s in new.scenarios}
    for sid in sorted(set(before) | set(after)):
        o, n = before.get(sid), after.get(sid)
        cmp.changes += _compare_status(sid, o, n)
        if o and n:
            cmp.changes += _compare_criteria(sid, o, n)
            metric_changes, unchanged = _compare_metrics(sid, o, n)
            cmp.changes += metric_changes
            cmp.unchanged_metrics += unchanged
    old_titles, new_titles = _crash_titles(old), _crash_titles(new)
    for key, (sid, text) in new_titles.items():
        if key not in old_titles:
            cmp.changes.append(Change("crash", sid, f"{sid} new {text}", regression=True, new=text))
    for key, (sid, text) in old_titles.items():
        # Gone only means fixed if the scenario that showed it ran again.
        if key not in new_titles and sid in after:
            cmp.changes.append(Change("crash", sid, f"{sid} gone: {text}", improvement=True, old=text))
    return cmp
