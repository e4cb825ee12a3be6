"""Plots for the HTML report, drawn with matplotlib (Agg) into SVG strings.

Each function takes what it plots and returns SVG text, or None when there is
nothing to draw, so the report shows what exists and skips the rest.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display, ever

import matplotlib.ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vexfs.report.metrics import as_floats, bench_figures, is_number  # noqa: E402

log = logging.getLogger(__name__)

PASS = "#1a7f37"
FAIL = "#cf222e"
BLUE = "#0969da"
ORANGE = "#bc4c00"
GREY = "#6e7781"
PURPLE = "#8250df"

_STYLE = {
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titleweight": "bold",
    "axes.titlesize": 10,
    "svg.fonttype": "none",  # text stays text: smaller files, crisp at any zoom
    "svg.hashsalt": "vexfs-report",  # deterministic ids, so identical runs render identically
}


def short(value: float) -> str:
    """950000 -> 950k, 1820000 -> 1.82M, 4.1 -> 4.1: bar labels that fit."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def label(text: Any, limit: int = 40) -> str:
    """Text from a report for a plot: no control characters (the SVG is XML,
    where most are illegal), bounded length."""
    text = _CONTROL_RE.sub("", str(text))
    return text if len(text) <= limit else text[:limit - 1] + "…"


PLOT_MAX = 1e12  # beyond this a value is garbage for any metric we plot, and breaks axis maths


def values(metric: Any, scale: float = 1.0) -> list[float]:
    """A metric's numbers, scaled, without those no plot can show (they stay in the tables)."""
    out = []
    for v in as_floats(metric):
        v *= scale
        if abs(v) < PLOT_MAX:
            out.append(v)
    return out


def _to_svg(fig: Any) -> str:
    buf = io.StringIO()
    with warnings.catch_warnings():
        # Odd names may use glyphs DejaVu lacks; the box drawn instead is fine.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        fig.savefig(buf, format="svg", bbox_inches="tight")
    return buf.getvalue()


def cycle_times(load_s: Any, unload_s: Any, load_limit: float, unload_limit: float) -> str | None:
    """Per-cycle module load and unload time, in ms."""
    load, unload = values(load_s, 1000), values(unload_s, 1000)
    if not load and not unload:
        return None
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(6.4, 3.0))
        ax = fig.subplots()
        if load:
            ax.plot(range(1, len(load) + 1), load, "o-", color=BLUE, ms=3.5,
                    label="load (insmod)")
        if unload:
            ax.plot(range(1, len(unload) + 1), unload, "s-", color=ORANGE, ms=3.5,
                    label="unload (rmmod)")
        top = max(load + unload)
        ax.set_ylim(min(0.0, *load, *unload) * 1.25, top * 1.25 if top > 0 else 1)
        ax.set_xlabel("cycle")
        ax.set_ylabel("ms")
        ax.set_title("Module load/unload time per cycle")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8, frameon=False)
        ax.text(0.01, 0.98, f"limits: load < {load_limit:g} s, unload < {unload_limit:g} s",
                transform=ax.transAxes, va="top", fontsize=8, color=GREY)
        ax.xaxis.get_major_locator().set_params(integer=True)
        return _to_svg(fig)


def memory_per_cycle(mem_available_kb: Any, slab_kb: Any, tolerance_kb: float,
                     vmalloc_kb: Any = None, mem_available_tolerance_kb: float | None = None) -> str | None:
    """MemAvailable, Slab and VmallocUsed per cycle, as the change from the first cycle (kB)."""
    mem, slab, vmalloc = values(mem_available_kb), values(slab_kb), values(vmalloc_kb)
    tolerance_kb = tolerance_kb if abs(tolerance_kb) < PLOT_MAX else PLOT_MAX
    if len(mem) < 2 and len(slab) < 2:
        return None
    avail_tol = tolerance_kb if mem_available_tolerance_kb is None else mem_available_tolerance_kb
    avail_tol = avail_tol if abs(avail_tol) < PLOT_MAX else PLOT_MAX
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(6.4, 3.0))
        ax = fig.subplots()
        for series, name, style, color in ((mem, "MemAvailable", "o-", BLUE), (slab, "Slab", "s-", ORANGE),
                                           (vmalloc, "VmallocUsed", "^-", PURPLE)):
            if len(series) >= 2:
                ax.plot(range(1, len(series) + 1), [v - series[0] for v in series], style, color=color,
                        ms=3.5, label=f"{name} (cycle 1: {series[0]:,.0f} kB)")
        # Growth beyond the band is reported as a leak (Slab, Vmalloc); for
        # MemAvailable a loss beyond its own limit is.
        ax.axhspan(-tolerance_kb, tolerance_kb, color=PASS, alpha=0.07, lw=0)
        ax.axhline(tolerance_kb, color=PASS, lw=0.8, ls="--", label=f"growth tolerance +{tolerance_kb:,.0f} kB")
        if len(mem) >= 2:
            ax.axhline(-avail_tol, color=BLUE, lw=0.8, ls=":",
                       label=f"MemAvailable loss limit -{avail_tol:,.0f} kB")
        ax.set_xlabel("cycle")
        ax.set_ylabel("change from cycle 1 (kB)")
        ax.set_title("Guest memory per cycle")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8, frameon=False)
        ax.xaxis.get_major_locator().set_params(integer=True)
        return _to_svg(fig)


def mount_times(series: dict[str, tuple[Any, Any]], limit: float) -> str | None:
    """Mount and umount times by label: {"S4": (mount_s, umount_s), "S4 ext4": (...)}, in ms.
    Labels with a space (a reference filesystem) are drawn grey."""
    rows = [(sid, values(m, 1000), values(u, 1000)) for sid, (m, u) in series.items()]
    rows = [r for r in rows if r[1] or r[2]]
    if not rows:
        return None
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(6.4, 2.6))
        ax = fig.subplots()
        labels: list[str] = []
        x = 0
        for sid, mounts, umounts in rows:
            ref = " " in sid
            for kind, vals, color in (("mount", mounts, GREY if ref else BLUE),
                                      ("umount", umounts, GREY if ref else ORANGE)):
                if not vals:
                    continue
                ms = vals
                ax.bar(x, sum(ms) / len(ms), color=color, alpha=0.35, width=0.6)
                ax.plot([x] * len(ms), ms, "o", color=color, ms=4)
                labels.append(f"{label(sid, 16)}\n{kind}")
                x += 1
        ax.set_xticks(range(len(labels)), labels)
        ax.set_ylabel("ms")
        ax.set_title("Mount / umount time (bar: mean, dots: each)")
        ax.text(0.99, 0.98, f"limit: mount < {limit:g} s", transform=ax.transAxes, ha="right",
                va="top", fontsize=8, color=GREY)
        return _to_svg(fig)


def bench_bars(bench: Any) -> str | None:
    """Vector benchmark figures: one small panel per figure, VexFS bars beside numpy.

    `bench` is {figure name: {"vexfs": n, "numpy": n, "unit": "..."}}; a figure
    that is a plain number is drawn as a single bar.
    """
    figures: list[tuple[str, list[tuple[str, float]], str]] = []
    for name, value in bench_figures(bench).items():
        unit = label(value.get("unit", ""), 20)
        bars = [(label(k, 12), float(v)) for k, v in value.items()
                if k != "unit" and is_number(v) and abs(v) < PLOT_MAX]
        if bars:
            figures.append((label(name), bars, unit))
    if not figures:
        return None
    figures = figures[:12]
    cols = min(3, len(figures))
    rows = (len(figures) + cols - 1) // cols
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(2.3 * cols + 0.6, 2.4 * rows))
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax in axes.flat[len(figures):]:
            ax.set_visible(False)
        for ax, (name, bars, unit) in zip(axes.flat, figures):
            colors = [BLUE if k.lower().startswith("vexfs") else GREY if k.lower() == "numpy" else ORANGE
                      for k, _ in bars]
            ax.bar([k for k, _ in bars], [v for _, v in bars], color=colors, width=0.6)
            for i, (_, v) in enumerate(bars):
                ax.annotate(short(v), (i, v), ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")
            ax.set_title(name.replace("_", " "), fontsize=9)
            ax.set_ylabel(unit)
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: short(v)))
            ax.margins(y=0.18)
        fig.suptitle("Vector benchmark: VexFS (in-kernel) vs numpy (user space)", fontsize=10,
                     fontweight="bold")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
            fig.tight_layout()
        return _to_svg(fig)


ANN_COLORS = {"vexfs": BLUE, "vexfs-exact": "#0550ae", "hnswlib": ORANGE,
              "faiss-ivf": "#1a7f37", "faiss-hnsw": "#8250df"}


def ann_curve(ann: Any) -> str | None:
    """The ann-benchmarks view of S5's `ann` metric: recall@10 on x, QPS on a log y,
    one line per system (points ordered by recall); vexfs-exact as a marker."""
    if not isinstance(ann, dict) or not isinstance(ann.get("points"), list):
        return None
    series: dict[str, list[tuple[float, float]]] = {}
    for p in ann["points"]:
        if not isinstance(p, dict):
            continue
        r, qps = p.get("recall_at_10"), p.get("qps")
        if is_number(r) and is_number(qps) and 0 <= float(r) <= 1 and 0 < float(qps) < PLOT_MAX:
            series.setdefault(label(p.get("system", "?"), 16), []).append((float(r), float(qps)))
    if not series:
        return None
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(6.4, 4.0))
        ax = fig.subplots()
        for name, pts in sorted(series.items()):
            pts.sort()
            color = ANN_COLORS.get(name, GREY)
            style = "s" if name == "vexfs-exact" else "o-"
            ax.plot([r for r, _ in pts], [q for _, q in pts], style, color=color, label=name,
                    markersize=4, linewidth=1.4)
        ax.axvline(0.95, color=GREY, linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second (log)")
        ax.set_title(f"{label(ann.get('dataset', ''), 40)}: n={ann.get('n')} dim={ann.get('dim')}",
                     fontsize=9)
        ax.legend(fontsize=8, loc="lower left")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
            fig.tight_layout()
        return _to_svg(fig)
