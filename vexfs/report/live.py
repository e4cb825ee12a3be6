"""A live terminal view of a run (rich), and the choice between it and plain logs.

`make_observer(stream)` is what `vexfs run` and `vexfs vm watch` call: on a
terminal they get `LiveView` — scenario progress with elapsed time and the
current step, the guest console tail with warnings and errors highlighted,
guest memory and module state, and a banner while a crash or hang is being
handled — and anywhere else (CI, pipes, files) `PlainObserver`'s line logs.

The harness calls observers from more than one thread (the console reader
feeds `console_line`), so state changes take a lock, and the screen is redrawn
by rich's refresh thread from a snapshot. No observer method ever raises.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from vexfs.report.events import PlainObserver, RunObserver
from vexfs.report.model import Crash, ScenarioResult, Status

log = logging.getLogger(__name__)

# Console lines worth a colour. Errors: the crash signatures the harness acts
# on (issue 3's list). Expected noise: our unsigned out-of-tree module taints
# the kernel on every load; that is not a problem and is shown dimmed.
ERROR_RE = re.compile(
    r"Kernel panic|BUG:|kernel BUG at|Oops|general protection fault|Unable to handle kernel|"
    r"invalid opcode:|divide error:|UBSAN:|blocked for more than|rcu.*stall|Dentry .* still in use|"
    r"Call Trace:|RIP: |segfault|\berror\b|\bfailed\b", re.IGNORECASE)
WARNING_RE = re.compile(r"WARNING:|\bwarn(ing)?\b|cut here|Tainted:", re.IGNORECASE)
EXPECTED_RE = re.compile(r"module verification failed|loading out-of-tree module taints kernel")
VEXFS_RE = re.compile(r"\bvexfs\b", re.IGNORECASE)

STATUS_STYLE = {Status.PASSED: "bold green", Status.FAILED: "bold red", Status.ERROR: "bold white on red",
                Status.SKIPPED: "dim"}


def _never_raise(method: Callable) -> Callable:
    """Observer methods run inside the harness: a display bug must not fail a run."""
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception:  # noqa: BLE001
            log.debug("live view: %s failed", method.__name__, exc_info=True)
    return wrapper


def style_console_line(line: str) -> Text:
    """A console line with its severity as a style."""
    text = Text(line.rstrip("\n"), no_wrap=True, overflow="ellipsis")
    if EXPECTED_RE.search(line):
        text.stylize("dim")
    elif ERROR_RE.search(line):
        text.stylize("bold red")
    elif WARNING_RE.search(line):
        text.stylize("yellow")
    elif VEXFS_RE.search(line):
        text.stylize("cyan")
    return text


def _fmt_elapsed(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def _fmt_stat(key: str, value: float | str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if key.lower().endswith("kb") or key in ("MemAvailable", "MemFree", "Slab", "SUnreclaim", "MemTotal"):
            return f"{value / 1024:,.1f} MiB" if abs(value) >= 10240 else f"{value:,.0f} kB"
        if key.endswith("_ms"):
            return f"{value:,.1f} ms"
        if key.endswith("_s"):
            return f"{value * 1000:,.1f} ms" if abs(value) < 1 else f"{value:,.2f} s"
        return f"{value:,.3g}" if isinstance(value, float) else f"{value:,}"
    return str(value)


@dataclass
class _Scenario:
    id: str
    name: str = ""
    status: Status | None = None  # None: pending or running
    started: float | None = None
    duration_s: float | None = None
    step: str = ""
    message: str = ""
    crashes: int = 0


@dataclass
class _State:
    run_id: str = ""
    started: float = field(default_factory=time.monotonic)
    scenarios: dict[str, _Scenario] = field(default_factory=dict)
    current: str | None = None
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=500))
    warnings_seen: int = 0
    errors_seen: int = 0
    stats: dict[str, float | str] = field(default_factory=dict)
    first_stats: dict[str, float | str] = field(default_factory=dict)
    stats_at: float | None = None
    crash: Crash | None = None
    crash_scenario: str | None = None
    restoring: bool = False
    finished: bool | None = None  # the run's verdict once it ended
    report_dir: str = ""


class LiveView:
    """The rich live view; implements `RunObserver`."""

    def __init__(self, console: Console | None = None, tail_lines: int = 12,
                 refresh_per_second: float = 4, auto_start: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console or Console(stderr=True)
        self.tail_lines = tail_lines
        self._clock = clock
        self._state = _State(started=clock())
        self._lock = threading.Lock()
        self._auto_start = auto_start
        self._live: Live | None = None
        self._refresh_per_second = refresh_per_second
        self._swapped_handlers: list[tuple[logging.StreamHandler, IO[str]]] = []

    # --- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        if self._live is not None:
            return
        self._live = Live(console=self.console, get_renderable=self.render, transient=False,
                          refresh_per_second=self._refresh_per_second, redirect_stdout=True,
                          redirect_stderr=True)
        self._live.start()
        # Log records written to the terminal would tear the live display:
        # route stream handlers through rich's redirected stderr while live.
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler and handler.stream in (sys.__stderr__, sys.__stdout__):
                self._swapped_handlers.append((handler, handler.stream))
                handler.setStream(sys.stderr)

    def stop(self) -> None:
        for handler, stream in self._swapped_handlers:
            handler.setStream(stream)
        self._swapped_handlers.clear()
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def __enter__(self) -> "LiveView":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _changed(self) -> None:
        if self._live is None and self._auto_start and self._state.finished is None:
            self.start()

    # --- RunObserver ------------------------------------------------------------

    @_never_raise
    def run_started(self, run_id: str, scenario_ids: list[str]) -> None:
        with self._lock:
            self._state.run_id = run_id
            self._state.started = self._clock()
            for sid in scenario_ids:
                self._state.scenarios.setdefault(sid, _Scenario(sid))
        self._changed()

    @_never_raise
    def scenario_started(self, scenario_id: str, name: str) -> None:
        with self._lock:
            sc = self._state.scenarios.setdefault(scenario_id, _Scenario(scenario_id))
            sc.name, sc.started, sc.status, sc.step = name, self._clock(), None, "starting"
            self._state.current = scenario_id
            # A new scenario runs on a clean VM: the crash being handled is over.
            self._state.crash, self._state.restoring = None, False
        self._changed()

    @_never_raise
    def step(self, scenario_id: str, description: str) -> None:
        with self._lock:
            self._state.scenarios.setdefault(scenario_id, _Scenario(scenario_id)).step = description
            if self._state.crash is not None and self._state.crash_scenario == scenario_id \
                    and not self._state.restoring:
                self._state.crash = None
        self._changed()

    @_never_raise
    def console_line(self, line: str) -> None:
        with self._lock:
            self._state.tail.append(line.rstrip("\n"))
            if not EXPECTED_RE.search(line):
                if ERROR_RE.search(line):
                    self._state.errors_seen += 1
                elif WARNING_RE.search(line):
                    self._state.warnings_seen += 1
        self._changed()

    @_never_raise
    def guest_stats(self, stats: dict[str, float | str]) -> None:
        with self._lock:
            for key, value in stats.items():
                self._state.first_stats.setdefault(key, value)
            self._state.stats.update(stats)
            self._state.stats_at = self._clock()
        self._changed()

    @_never_raise
    def crash_detected(self, crash: Crash, restoring: bool, scenario_id: str | None = None) -> None:
        with self._lock:
            owner = scenario_id or self._state.current
            self._state.crash, self._state.restoring = crash, restoring
            self._state.crash_scenario = owner
            if owner in self._state.scenarios:
                self._state.scenarios[owner].crashes += 1
        self._changed()

    @_never_raise
    def scenario_finished(self, result: ScenarioResult) -> None:
        with self._lock:
            sc = self._state.scenarios.setdefault(result.id, _Scenario(result.id))
            sc.name = result.name or sc.name
            sc.status, sc.duration_s, sc.message = Status(result.status), result.duration_s, result.message
            sc.step = ""
            sc.crashes = max(sc.crashes, len(result.crashes))
            if self._state.current == result.id:
                self._state.current = None
        self._changed()

    @_never_raise
    def run_finished(self, passed: bool, report_dir: str) -> None:
        with self._lock:
            self._state.finished, self._state.report_dir = passed, report_dir
            self._state.crash, self._state.restoring = None, False
        if self._live is not None:
            self._live.refresh()
        self.stop()

    # --- rendering ----------------------------------------------------------------

    def render(self) -> RenderableType:
        """One frame, from a snapshot of the state."""
        with self._lock:
            st = self._state
            now = self._clock()
            scenarios = [_Scenario(**vars(s)) for s in st.scenarios.values()]
            tail = list(st.tail)[-self.tail_lines:]
            stats, first = dict(st.stats), dict(st.first_stats)
            crash, restoring, crash_sid = st.crash, st.restoring, st.crash_scenario
            finished, report_dir = st.finished, st.report_dir
            run_id, elapsed = st.run_id, now - st.started
            warnings_seen, errors_seen = st.warnings_seen, st.errors_seen
            stats_age = None if st.stats_at is None else now - st.stats_at

        parts: list[RenderableType] = []
        done = sum(1 for s in scenarios if s.status is not None)
        header = Text.assemble(("VexFS run ", "bold"), (run_id or "…", "bold cyan"),
                               f"  ·  {_fmt_elapsed(elapsed)}  ·  {done}/{len(scenarios)} scenarios done")
        if finished is not None:
            header.append("  ·  ")
            header.append("PASSED" if finished else "FAILED", style="bold green" if finished else "bold red")
            if report_dir:
                header.append(f"  ·  report: {report_dir}")
        parts.append(header)

        if crash is not None:
            what = "HANG" if crash.kind == "hang" else f"KERNEL {crash.kind.upper()}"
            body = Text.assemble((f"⚠ {what} detected", "bold"),
                                 f" in {crash_sid or '?'}: {crash.title}\n",
                                 ("restoring a clean VM…" if restoring else "VM left as is (no restore)",
                                  "bold"))
            parts.append(Panel(body, style="bold white on red", border_style="red"))

        table = Table(expand=True, box=None, pad_edge=False, show_edge=False)
        table.add_column("", width=2, no_wrap=True)
        table.add_column("Scenario", no_wrap=True, ratio=3)
        table.add_column("Status", no_wrap=True, width=8)
        table.add_column("Time", justify="right", no_wrap=True, width=8)
        table.add_column("Now", ratio=5, no_wrap=True, overflow="ellipsis")
        for s in scenarios:
            label = f"{s.id} {s.name}".strip()
            if s.status is not None:
                style = STATUS_STYLE[s.status]
                icon = {"passed": "✔", "failed": "✘", "error": "⚠", "skipped": "–"}[s.status.value]
                table.add_row(Text(icon, style=style), label, Text(s.status.value, style=style),
                              f"{s.duration_s or 0:.1f} s", Text(s.message, style="dim"))
            elif s.started is not None:
                table.add_row(Spinner("dots", style="cyan"), Text(label, style="bold"),
                              Text("running", style="cyan"), _fmt_elapsed(now - s.started),
                              s.step + (f"  ({s.crashes} crash)" if s.crashes else ""))
            else:
                table.add_row(Text("·", style="dim"), Text(label, style="dim"), Text("pending", style="dim"),
                              "", "")
        parts.append(table)

        lines = [style_console_line(line) for line in tail] or [Text("(no console output yet)", style="dim")]
        counts = f"{errors_seen} error / {warnings_seen} warning lines"
        console_panel = Panel(Group(*lines), title="guest console", subtitle=counts, subtitle_align="right",
                              border_style="blue", height=self.tail_lines + 2)
        stats_table = Table.grid(padding=(0, 1))
        stats_table.add_column(style="bold", no_wrap=True, min_width=12)
        stats_table.add_column(justify="right", no_wrap=True)
        stats_table.add_column(no_wrap=True)
        for key, value in stats.items():
            delta = ""
            base = first.get(key)
            if isinstance(value, (int, float)) and isinstance(base, (int, float)) and value != base:
                d = value - base
                delta = f"({'+' if d > 0 else ''}{_fmt_stat(key, d)})"
            style = ""
            if "module" in key.lower() or "state" in key.lower():
                style = "green" if str(value).lower() in ("live", "loaded") else "yellow"
            stats_table.add_row(key, Text(_fmt_stat(key, value), style=style), Text(delta, style="dim"))
        if not stats:
            stats_table.add_row(Text("(no guest stats yet)", style="dim"), "", "")
        age = f"{stats_age:.0f} s ago" if stats_age is not None else ""
        stats_panel = Panel(stats_table, title="guest", subtitle=age, subtitle_align="right",
                            border_style="blue", height=self.tail_lines + 2)
        grid = Table.grid(expand=True)
        grid.add_column(ratio=2)
        grid.add_column(ratio=1, min_width=46)
        grid.add_row(console_panel, stats_panel)
        parts.append(grid)
        return Group(*parts)


def _is_tty(stream: IO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


def make_observer(stream: IO[str] | None = None) -> RunObserver:
    """The live view when `stream` (default: stderr) is a terminal, else plain logging.

    `TERM=dumb` and `CI` in the environment force plain output too."""
    stream = stream if stream is not None else sys.stderr
    if _is_tty(stream) and os.environ.get("TERM", "") != "dumb" and not os.environ.get("CI"):
        return LiveView(Console(file=stream))
    return PlainObserver()
