"""What the report knows about scenario metrics: names, units, thresholds, noise.

Scenarios record metrics as plain JSON values (docs/report.md lists the names).
This module turns them into numbers the HTML report and `vexfs report compare`
can judge: the spec's performance limits, which direction is better, and how
big a change must be before it is more than TCG timing noise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from vexfs.report.model import Run, ScenarioResult

# No memory growth over 20 cycles: MemAvailable may drift by page-cache and
# per-cpu noise, so "growth" is judged against this tolerance unless the
# scenario records its own `mem_tolerance_kb`.
DEFAULT_MEM_TOLERANCE_KB = 1024


@dataclass(frozen=True)
class MetricSpec:
    unit: str
    better: str  # "lower", "higher" or "" (no direction: report, never a regression)
    limit: float | None = None  # the spec's limit (value must stay below it)
    rel_noise: float = 0.20  # a change within this ratio is noise...
    abs_floor: float = 0.0  # ...and so is any change smaller than this, in `unit`
    label: str = ""


# Known metrics, by name (the last component for nested ones). Timings come
# from a TCG guest on a shared 2-core host: tens of milliseconds of jitter are
# normal, hence the absolute floors.
KNOWN: dict[str, MetricSpec] = {
    "load_s": MetricSpec("s", "lower", 5.0, 0.20, 0.025, "module load time"),
    "unload_s": MetricSpec("s", "lower", 2.0, 0.20, 0.025, "module unload time"),
    "mount_s": MetricSpec("s", "lower", 10.0, 0.20, 0.025, "filesystem mount time"),
    "umount_s": MetricSpec("s", "lower", None, 0.20, 0.025, "filesystem unmount time"),
    "mem_growth_kb": MetricSpec("kB", "lower", None, 0.50, 1024, "MemAvailable lost over the cycles"),
    "slab_growth_kb": MetricSpec("kB", "lower", None, 0.50, 512, "Slab growth over the cycles"),
    "vmalloc_growth_kb": MetricSpec("kB", "lower", None, 0.50, 512, "VmallocUsed growth over the cycles"),
    "mem_available_kb": MetricSpec("kB", "", None, 0.20, 16384, "MemAvailable"),
    "slab_kb": MetricSpec("kB", "", None, 0.20, 4096, "Slab"),
    "recall": MetricSpec("", "higher", None, 0.01, 0.005, "search recall"),
    # R1's failure counts (image_fuzz.crashes, ioctl_fuzz.errno_violations...):
    # any increase is a regression, 0 -> 1 included
    "crashes": MetricSpec("", "lower", None, 0.0, 0.0, "kernel crashes found by fuzzing"),
    "hangs": MetricSpec("", "lower", None, 0.0, 0.0, "hangs found by fuzzing"),
    "failures": MetricSpec("", "lower", None, 0.0, 0.0, "fuzzing findings"),
    "errno_violations": MetricSpec("", "lower", None, 0.0, 0.0, "ioctl errno violations"),
    # The fuzzers' own throughput: how fast the harness got through its
    # cases on a shared TCG host, not a property of VexFS. Shown, never a
    # regression (a busy host halves them).
    "cases_per_s_vm": MetricSpec("/s", "", None, 0.20, 0.0, "fuzz cases per second of VM time"),
    "cases_per_s_wall": MetricSpec("/s", "", None, 0.20, 0.0, "fuzz cases per second"),
    "calls_per_s": MetricSpec("/s", "", None, 0.20, 0.0, "fuzz ioctl calls per second"),
    # R1's stage durations scale with the counts asked for and the host's
    # load: shown, never a regression.
    "wall_s": MetricSpec("s", "", None, 0.20, 0.0, "fuzz stage wall time"),
    "fuzz_s": MetricSpec("s", "", None, 0.20, 0.0, "ioctl fuzz time in the guest"),
    "script_s": MetricSpec("s", "", None, 0.20, 0.0, "leak cycles script time"),
    "image_fuzz_s": MetricSpec("s", "", None, 0.20, 0.0, "R1 image fuzz stage"),
    "ioctl_fuzz_s": MetricSpec("s", "", None, 0.20, 0.0, "R1 ioctl fuzz stage"),
    "leaks_s": MetricSpec("s", "", None, 0.20, 0.0, "R1 leak stage"),
}

# The spec's "Performance Metrics" section, as (label, metric name, limit).
SPEC_LIMITS = [
    ("Module load time", "load_s", 5.0),
    ("Module unload time", "unload_s", 2.0),
    ("Filesystem mount time", "mount_s", 10.0),
]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def as_floats(value: Any) -> list[float]:
    """A metric as a list of numbers: a number, or the numbers in a list (others dropped)."""
    if is_number(value):
        return [float(value)]
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value if is_number(v)]
    return []


def summary_value(value: Any) -> float | None:
    """One number standing for a metric: itself, or the median of a list."""
    nums = as_floats(value)
    if not nums:
        return None
    return nums[0] if is_number(value) else statistics.median(nums)


# Reference implementations a benchmark compares against: their figures are
# shown, but they getting slower or faster is not a VexFS regression.
REFERENCE_LABELS = ("numpy", "reference", "baseline", "ext4", "host")
IMPLEMENTATION_LABELS = REFERENCE_LABELS + ("vexfs", "kernel")


def _guess_spec(part: str) -> MetricSpec | None:
    lowered = part.lower()
    if lowered in KNOWN:
        return KNOWN[lowered]
    if any(tag in lowered for tag in ("per_s", "per_sec", "ops", "qps", "vps", "throughput", "mb_s", "gbps")):
        return MetricSpec("/s", "higher", None, 0.20, 0.0)
    if "recall" in lowered or "accuracy" in lowered or "agreement" in lowered:
        return MetricSpec("", "higher", None, 0.01, 0.005)
    for suffix, unit, floor in (("_ns", "ns", 20_000.0), ("_us", "us", 20.0), ("_ms", "ms", 0.5),
                                ("_s", "s", 0.025), ("seconds", "s", 0.025)):
        if lowered.endswith(suffix):
            return MetricSpec(unit, "lower", None, 0.20, floor)
    if lowered.endswith("_kb"):
        return MetricSpec("kB", "", None, 0.20, 1024)
    return None


def spec_for(name: str) -> MetricSpec:
    """The spec of a metric by dotted name. Unknown names get a direction
    guessed from the innermost component that says something (times: lower is
    better; rates: higher), so `bench.search_l2_ms.vexfs` is a time in ms."""
    parts = name.split(".")
    # The innermost component that is not an implementation label decides:
    # `bench.search_l2_ms.vexfs` is a time, but `vector_accuracy.l2.max_rel_err`
    # is not an accuracy.
    figure = next((p for p in reversed(parts) if p.lower() not in IMPLEMENTATION_LABELS), parts[-1])
    spec = _guess_spec(figure)
    if spec is None:
        spec = MetricSpec("", "", None, 0.20, 0.0)
    if parts[-1].lower() in REFERENCE_LABELS:
        spec = MetricSpec(spec.unit, "", spec.limit, spec.rel_noise, spec.abs_floor, spec.label)
    return spec


# (derived metric, per-cycle series, sign, label, tolerance metric). Growth is
# last cycle minus first; MemAvailable *lost* is growth, hence the sign.
# The tolerance metrics are tried in order (S2 records `mem_tolerance_kb` for
# MemAvailable and `slab_tolerance_kb` for Slab/Vmalloc; older runs had one
# `mem_tolerance_kb` for everything).
GROWTH_SERIES = (
    ("mem_growth_kb", "mem_available_kb", -1, "MemAvailable lost",
     ("mem_available_tolerance_kb", "mem_tolerance_kb")),
    ("slab_growth_kb", "slab_kb", 1, "Slab grew", ("slab_tolerance_kb", "mem_tolerance_kb")),
    ("vmalloc_growth_kb", "vmalloc_used_kb", 1, "VmallocUsed grew",
     ("vmalloc_tolerance_kb", "slab_tolerance_kb", "mem_tolerance_kb")),
)


def tolerance(metrics: dict[str, Any], keys: tuple[str, ...]) -> float:
    """The first tolerance the scenario recorded among `keys`, else the default."""
    for key in keys:
        if is_number(metrics.get(key)):
            return float(metrics[key])
    return float(DEFAULT_MEM_TOLERANCE_KB)


def memory_growth(metrics: dict[str, Any]) -> dict[str, float]:
    """S2's memory growth from the first to the last cycle: MemAvailable lost,
    Slab and VmallocUsed gained. Prefers the values the scenario computed."""
    out: dict[str, float] = {}
    for key, series, sign, _, _ in GROWTH_SERIES:
        if is_number(metrics.get(key)):
            out[key] = float(metrics[key])
            continue
        nums = as_floats(metrics.get(series))
        if len(nums) >= 2:
            out[key] = sign * (nums[-1] - nums[0])
    return out


def counters_leak(metrics: dict[str, Any]) -> dict[str, tuple[Any, Any]] | None:
    """Module counters whose value is not the same in every cycle: {name: (first, last)}.

    None when the scenario recorded counters but the first cycle has none (the
    module's counters could not be read: no leak check possible); {} when
    there is nothing to check or nothing changed."""
    counters = metrics.get("module_counters")
    if not isinstance(counters, list) or not counters:
        return {}
    dicts = [c if isinstance(c, dict) else {} for c in counters]
    if not dicts[0]:
        return None
    varying = sorted({k for c in dicts for k in c if any(d.get(k) != dicts[0].get(k) for d in dicts)})
    return {k: (dicts[0].get(k), dicts[-1].get(k)) for k in varying}


@dataclass
class MemoryVerdict:
    label: str
    measured: str
    tolerance: str
    passed: bool


def memory_verdicts(metrics: dict[str, Any]) -> list[MemoryVerdict]:
    """The "no memory growth" judgement, one line per thing judged, using the
    tolerances the scenario recorded (see GROWTH_SERIES), else the default."""
    out = []
    growth = memory_growth(metrics)
    for key, _, _, label, tol_keys in GROWTH_SERIES:
        if key not in growth:
            continue
        tol = tolerance(metrics, tol_keys)
        out.append(MemoryVerdict(label, f"{growth[key]:+,.0f} kB", f"≤ {tol:,.0f} kB", growth[key] <= tol))
    leaks = counters_leak(metrics)
    if leaks is None:
        out.append(MemoryVerdict("module counters", "not readable while loaded", "unchanged", False))
    elif "module_counters" in metrics:
        changed = "; ".join(f"{k}: {a} → {b}" for k, (a, b) in leaks.items())
        out.append(MemoryVerdict("module counters", changed or "the same in every cycle", "unchanged",
                                 not leaks))
    return out


def bench_figures(bench: Any) -> dict[str, dict[str, Any]]:
    """Benchmark figures as {figure: {"vexfs": n, "numpy": n, "unit": str}}.

    Accepts that documented shape (a figure may also be a bare number) and the
    output of `vexfs bench vectors --json` ({"results": [one dict per size]}),
    which becomes insert rate, batch and single-query QPS per size."""
    if not isinstance(bench, dict):
        return {}
    figures: dict[str, dict[str, Any]] = {}
    results = bench.get("results")
    if isinstance(results, list):
        for r in results:
            if not isinstance(r, dict):
                continue
            size = f"n{r.get('n', '?')}_d{r.get('dim', '?')}"
            if is_number(r.get("insert_vps")):
                figures[f"insert_vps_{size}"] = {"vexfs": r["insert_vps"], "unit": "vectors/s"}
            for mode in ("batch", "single"):
                kern, ref = r.get(f"kernel_{mode}_qps"), r.get(f"numpy_{mode}_qps")
                if is_number(kern) or is_number(ref):
                    fig = {"unit": "queries/s"}
                    if is_number(kern):
                        fig["vexfs"] = kern
                    if is_number(ref):
                        fig["numpy"] = ref
                    figures[f"{mode}_qps_{size}"] = fig
    for name, value in bench.items():
        if name == "results":
            continue
        if isinstance(value, dict) and any(is_number(v) for v in value.values()):
            figures[str(name)] = value
        elif is_number(value):
            figures[str(name)] = {"vexfs": value}
    return figures


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts (like `bench`) become dotted names; leaves stay as they are."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def comparable_metrics(scenario: ScenarioResult) -> dict[str, float]:
    """Every metric of a scenario reduced to one number (lists by median), plus
    the derived memory growth, keyed by dotted name."""
    out: dict[str, float] = {}
    metrics = dict(scenario.metrics)
    if "bench" in metrics:
        metrics["bench"] = bench_figures(metrics["bench"])
    for name, value in flatten(metrics).items():
        if name == "module_counters" or name.endswith(".unit"):
            continue
        v = summary_value(value)
        if v is not None:
            out[name] = v
    out.update(memory_growth(scenario.metrics))
    return out


@dataclass
class LimitCheck:
    label: str
    scenario_id: str
    metric: str
    limit: float
    worst: float | None  # the largest measured value, None when not measured
    count: int

    @property
    def passed(self) -> bool | None:
        return None if self.worst is None else self.worst < self.limit


def spec_limit_checks(run: Run) -> list[LimitCheck]:
    """The spec's time limits checked against every scenario that measured them."""
    checks = []
    for label, metric, limit in SPEC_LIMITS:
        found = False
        for s in run.scenarios:
            nums = as_floats(s.metrics.get(metric))
            ms_name = metric[:-2] + "_ms"  # e.g. S6 records mount_ms
            if not nums and ms_name in s.metrics:
                nums = [v / 1000 for v in as_floats(s.metrics.get(ms_name))]
            if nums:
                found = True
                checks.append(LimitCheck(label, s.id, metric, limit, max(nums), len(nums)))
        if not found:
            checks.append(LimitCheck(label, "", metric, limit, None, 0))
    return checks


def memory_scenario(run: Run) -> ScenarioResult | None:
    """The scenario with per-cycle memory figures: S2, normally."""
    for s in sorted(run.scenarios, key=lambda s: s.id != "S2"):
        if any(k in s.metrics for k in ("mem_available_kb", "mem_growth_kb", "slab_kb", "module_counters")):
            return s
    return None


def fmt_value(value: float | None, unit: str = "") -> str:
    """Numbers for humans: seconds below 1 s in ms, big numbers grouped."""
    if value is None:
        return "—"
    if unit == "s" and abs(value) < 1:
        return f"{value * 1000:.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if abs(value) >= 10000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100 or float(value).is_integer():
        text = f"{value:.0f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def is_regression(spec: MetricSpec, old: float, new: float) -> tuple[bool, bool]:
    """(beyond_noise, regressed) for a change from `old` to `new`."""
    delta = new - old
    if abs(delta) <= spec.abs_floor:
        return False, False
    base = abs(old) if old else abs(new)
    rel = abs(delta) / base if base else math.inf
    if rel <= spec.rel_noise:
        return False, False
    if spec.better == "lower":
        return True, delta > 0
    if spec.better == "higher":
        return True, delta < 0
    return True, False


def ratio(old: float, new: float) -> float | None:
    if old == 0:
        return None
    return new / old
