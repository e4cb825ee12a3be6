"""`vexfs vm watch` logic without a VM: console following, crash events,
stats parsing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from vexfs.report.model import Crash
from vexfs.vm.watch import ConsoleFollower, parse_stats, watch

DATA = Path(__file__).parent / "data" / "console"


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.crashes: list[Crash] = []
        self.stats: list[dict] = []
        self.finished: bool | None = None

    def run_started(self, run_id, scenario_ids): pass
    def scenario_started(self, scenario_id, name): pass
    def step(self, scenario_id, description): pass
    def console_line(self, line): self.lines.append(line)
    def guest_stats(self, stats): self.stats.append(stats)
    def crash_detected(self, crash, restoring): self.crashes.append(crash)
    def scenario_finished(self, result): pass
    def run_finished(self, passed, report_dir): self.finished = passed


def test_parse_stats() -> None:
    out = ("MemAvailable:    1843212 kB\nSlab:              41236 kB\nmodule=loaded\n"
           "inodes=3\nmounts=1\nbuffers=0\n")
    assert parse_stats(out) == {"MemAvailable kB": 1843212.0, "Slab kB": 41236.0,
                                "module": "loaded", "inodes": 3.0, "mounts": 1.0, "buffers": 0.0}


def test_follower_returns_only_complete_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    log.write_text("old line\n")
    f = ConsoleFollower(log)
    assert f.read_lines() == []
    with log.open("a") as fh:
        fh.write("first\nsecond par")
    assert f.read_lines() == ["first"]
    with log.open("a") as fh:
        fh.write("t\n")
    assert f.read_lines() == ["second part"]
    f.close()


def test_watch_reports_a_crash_appended_to_the_live_log(tmp_path: Path) -> None:
    # A real WARN captured from the guest kernel, appended while watching.
    capture = (DATA / "warn.log").read_text(errors="replace")
    log = tmp_path / "test-kernel-vm_x.log"
    log.write_text("")
    rec = Recorder()
    stop = threading.Event()

    def writer() -> None:
        time.sleep(0.3)
        with log.open("a") as fh:
            fh.write(capture)
        time.sleep(0.5)
        stop.set()

    t = threading.Thread(target=writer)
    t.start()
    crashes = watch(rec, log, None, alive=lambda: not stop.is_set(), poll_interval=0.05)
    t.join()
    assert crashes == 1 and len(rec.crashes) == 1
    assert rec.crashes[0].kind == "warning"
    assert rec.crashes[0].log_path == str(log)
    assert len(rec.lines) >= capture.count("\n") - 1
    assert rec.finished is False
