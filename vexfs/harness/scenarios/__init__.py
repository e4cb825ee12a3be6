"""The scenario registry.

Adding a scenario is a one-file job: create `vexfs/harness/scenarios/<x>.py`
that defines `SCENARIO = Scenario(id="S3", name="...", fn=run)` (or a list
`SCENARIOS = [...]`). Every module of this package is imported and its
scenarios are registered; they run in id order (S1, S2, ..., then X...).
Tests can add throwaway scenarios with `register()`.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re

from vexfs.harness.framework import Scenario

log = logging.getLogger(__name__)

_extra: dict[str, Scenario] = {}


def _sort_key(scenario_id: str) -> tuple:
    match = re.fullmatch(r"([A-Za-z]+)(\d+)(.*)", scenario_id)
    if not match:
        return (2, scenario_id, 0, "")
    prefix, num, rest = match.groups()
    return (0 if prefix.upper() == "S" else 1, prefix.upper(), int(num), rest)


def discover() -> dict[str, Scenario]:
    """All scenarios: this package's modules plus register()ed ones."""
    found: dict[str, Scenario] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        items = list(getattr(module, "SCENARIOS", []))
        if hasattr(module, "SCENARIO"):
            items.append(module.SCENARIO)
        for scenario in items:
            if scenario.id in found:
                raise ValueError(f"scenario id {scenario.id} defined twice "
                                 f"({info.name} and another module)")
            found[scenario.id] = scenario
    found.update(_extra)
    return dict(sorted(found.items(), key=lambda kv: _sort_key(kv[0])))


def register(scenario: Scenario) -> None:
    """Add a scenario at run time (tests use this for crash scenarios)."""
    _extra[scenario.id] = scenario


def unregister(scenario_id: str) -> None:
    _extra.pop(scenario_id, None)


def select(ids: list[str] | None) -> list[Scenario]:
    """The scenarios named (case-insensitive), or all of them, in id order."""
    available = discover()
    if not ids:
        return [s for s in available.values() if s.id.upper().startswith("S")]
    by_upper = {k.upper(): v for k, v in available.items()}
    missing = [i for i in ids if i.upper() not in by_upper]
    if missing:
        raise KeyError(f"unknown scenario(s) {', '.join(missing)}; "
                       f"known: {', '.join(available)}")
    chosen = {by_upper[i.upper()].id: by_upper[i.upper()] for i in ids}
    return [chosen[k] for k in sorted(chosen, key=_sort_key)]
