"""The live terminal view (frames captured with rich's recording console) and the plain fallback."""

from __future__ import annotations

import io
import logging
import threading

import pytest
from rich.console import Console

from vexfs.report.events import PlainObserver
from vexfs.report.live import LiveView, make_observer, style_console_line
from vexfs.report.model import Crash, Criterion, ScenarioResult, Status


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _console() -> Console:
    return Console(record=True, force_terminal=True, width=140, file=io.StringIO(), color_system="truecolor")


def _frame(view: LiveView, console: Console) -> str:
    console.print(view.render())
    return console.export_text(clear=True)


def _drive(view: LiveView, clock: Clock) -> None:
    view.run_started("20261125-110000", ["S1", "S2", "S6"])
    view.scenario_started("S1", "Basic kernel module lifecycle")
    clock.t += 4.2
    view.scenario_finished(ScenarioResult("S1", "Basic kernel module lifecycle", Status.PASSED, 4.2,
                                          criteria=[Criterion("loads", True)]))
    view.scenario_started("S2", "Module load/unload stress")
    clock.t += 3.0
    view.step("S2", "cycle 7/20: rmmod vexfs")
    view.guest_stats({"MemAvailable": 1_842_000, "Slab": 41_200, "vexfs module": "Live"})
    view.guest_stats({"MemAvailable": 1_841_000, "Slab": 41_300})
    view.console_line("[   12.1] vexfs: VexFS 0.1.0 loaded\n")
    view.console_line("[   12.0] vexfs: loading out-of-tree module taints kernel.")
    view.console_line("[   12.2] WARNING: CPU: 0 PID: 99 at fs/vexfs/super.c:10 vexfs_x+0x1/0x2")


def test_frames_show_progress_tail_and_stats() -> None:
    console, clock = _console(), Clock()
    view = LiveView(console, auto_start=False, clock=clock)
    _drive(view, clock)
    frame = _frame(view, console)
    assert "VexFS run 20261125-110000" in frame
    assert "1/3 scenarios done" in frame
    assert "✔" in frame and "passed" in frame and "4.2 s" in frame
    assert "running" in frame and "cycle 7/20: rmmod vexfs" in frame and "0:03.0" in frame
    assert "pending" in frame  # S6 has not started
    assert "vexfs: VexFS 0.1.0 loaded" in frame
    assert "WARNING: CPU: 0 PID: 99" in frame
    assert "1 warning lines" in frame and "0 error" in frame  # the taint line is expected, not counted
    assert "MemAvailable" in frame and "1.8 GiB" not in frame and "1,797.9 MiB" in frame
    assert "(-1000 kB)" in frame or "(-1,000 kB)" in frame
    assert "Live" in frame


def test_crash_banner_then_cleared_by_next_scenario() -> None:
    console, clock = _console(), Clock()
    view = LiveView(console, auto_start=False, clock=clock)
    _drive(view, clock)
    view.crash_detected(Crash("oops", "BUG: kernel NULL pointer dereference in vexfs_fill_super",
                              "trace"), restoring=True)
    frame = _frame(view, console)
    assert "KERNEL OOPS detected in S2" in frame
    assert "restoring a clean VM" in frame
    view.scenario_finished(ScenarioResult("S2", "Module load/unload stress", Status.ERROR, 9.0,
                                          message="kernel oops; VM restored"))
    view.scenario_started("S6", "Error handling")
    frame = _frame(view, console)
    assert "KERNEL OOPS detected" not in frame
    assert "error" in frame and "kernel oops; VM restored" in frame
    view.crash_detected(Crash("hang", "no console output for 30 s", ""), restoring=True)
    assert "HANG detected in S6" in _frame(view, console)


def test_error_lines_are_red_and_counted() -> None:
    red = style_console_line("[  3.0] BUG: unable to handle page fault for address: 0000")
    assert any("red" in str(span.style) for span in red.spans)
    dim = style_console_line("vexfs: module verification failed: signature and/or required key missing")
    assert any("dim" in str(span.style) for span in dim.spans)
    console, clock = _console(), Clock()
    view = LiveView(console, auto_start=False, clock=clock)
    view.run_started("r", ["S1"])
    view.console_line("Kernel panic - not syncing: Fatal exception")
    assert "1 error / 0 warning lines" in _frame(view, console)


def test_live_refresh_thread_and_finish() -> None:
    """A real Live session on a (forced) terminal: concurrent console lines from
    another thread, then the final frame stays on screen."""
    console, clock = _console(), Clock()
    view = LiveView(console, clock=clock, refresh_per_second=50)
    _drive(view, clock)  # auto-starts the Live display
    t = threading.Thread(target=lambda: [view.console_line(f"line {i}") for i in range(300)])
    t.start()
    t.join()
    view.scenario_finished(ScenarioResult("S2", "Module load/unload stress", Status.PASSED, 3.0))
    view.scenario_started("S6", "Error handling")
    view.scenario_finished(ScenarioResult("S6", "Error handling", Status.FAILED, 1.0, message="EIO"))
    view.run_finished(False, "results/20261125-110000")
    out = console.export_text()
    assert "FAILED" in out and "report: results/20261125-110000" in out
    assert "line 299" in out
    view.console_line("after the end")  # must not raise or restart the display
    assert view._live is None


def test_observer_methods_never_raise() -> None:
    view = LiveView(_console(), auto_start=False)
    view.scenario_finished(None)  # type: ignore[arg-type]
    view.guest_stats(None)  # type: ignore[arg-type]
    view.crash_detected(None, True)  # type: ignore[arg-type]
    assert "scenarios done" in _frame(view, view.console)


def test_make_observer_picks_by_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_observer(Tty()), LiveView)
    assert isinstance(make_observer(io.StringIO()), PlainObserver)
    monkeypatch.setenv("CI", "1")
    assert isinstance(make_observer(Tty()), PlainObserver)
    monkeypatch.delenv("CI")
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_observer(Tty()), PlainObserver)


def test_plain_observer_logs(caplog: pytest.LogCaptureFixture) -> None:
    obs = PlainObserver()
    with caplog.at_level(logging.DEBUG, logger="vexfs.run"):
        obs.run_started("r1", ["S1", "S2"])
        obs.scenario_started("S1", "lifecycle")
        obs.step("S1", "insmod /tmp/vexfs.ko")
        obs.console_line("vexfs: loaded")
        obs.guest_stats({"MemAvailable": 1})
        obs.crash_detected(Crash("panic", "Kernel panic - not syncing", ""), restoring=True)
        obs.scenario_finished(ScenarioResult("S1", "lifecycle", Status.ERROR, 2.5, message="panicked"))
        obs.run_finished(False, "results/r1")
    msgs = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("INFO", "run r1: scenarios S1 S2") in msgs
    assert ("INFO", "S1: insmod /tmp/vexfs.ko") in msgs
    assert ("DEBUG", "console: vexfs: loaded") in msgs
    assert ("ERROR", "CRASH panic: Kernel panic - not syncing (restoring a clean VM)") in msgs
    assert ("INFO", "S1 lifecycle: error in 2.5 s panicked") in msgs
    assert ("INFO", "run FAILED; report in results/r1") in msgs
