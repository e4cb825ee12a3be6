"""`vexfs vm watch`: the live run view attached to the persistent VM.

The spec watches a VM in three terminals (console log, `watch dmesg | tail`
over ssh, `watch free; lsmod` over ssh). This does all three in one view:
it follows the VM's console log (every printk reaches it) through the crash
detector, and polls the guest over ssh for memory and module state. Any
`RunObserver` can receive the events; `vexfs vm watch` uses the same
`make_observer()` as `vexfs run`, so a terminal gets the rich view and a
pipe gets plain log lines.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import Callable

from vexfs.crash.detect import CrashDetector
from vexfs.report.events import RunObserver

log = logging.getLogger(__name__)

# One ssh round trip gathers what the spec's `watch free; lsmod` showed, plus
# the module's own live-object counters.
STATS_COMMAND = (
    "grep -E '^(MemAvailable|Slab):' /proc/meminfo; "
    "if [ -d /sys/module/vexfs ]; then echo module=loaded; else echo module=absent; fi; "
    "for f in /sys/fs/vexfs/inodes /sys/fs/vexfs/mounts /sys/fs/vexfs/buffers; do "
    "[ -r $f ] && echo \"${f##*/}=$(cat $f)\"; done; true"
)


def parse_stats(text: str) -> dict[str, float | str]:
    """STATS_COMMAND's output -> guest_stats() values (kB as numbers)."""
    stats: dict[str, float | str] = {}
    for line in text.splitlines():
        if ":" in line and line.split(":", 1)[0] in ("MemAvailable", "Slab"):
            key, rest = line.split(":", 1)
            fields = rest.split()
            if fields and fields[0].isdigit():
                stats[f"{key} kB"] = float(fields[0])
        elif "=" in line:
            key, value = line.split("=", 1)
            value = value.strip()
            stats[key.strip()] = float(value) if value.lstrip("-").isdigit() else value
    return stats


class ConsoleFollower:
    """Reads lines appended to a log file, like `tail -F` from its end."""

    def __init__(self, path: Path, from_start: bool = False) -> None:
        self.path = path
        self._fh = path.open("r", errors="backslashreplace")
        if not from_start:
            self._fh.seek(0, 2)
        self._partial = ""

    def read_lines(self) -> list[str]:
        chunk = self._fh.read()
        if not chunk:
            return []
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()
        return [line.rstrip("\r") for line in lines]

    def close(self) -> None:
        self._fh.close()


def watch(observer: RunObserver, console_log: Path, ssh_argv: list[str] | None,
          alive: Callable[[], bool], duration: float | None = None,
          stats_interval: float = 3.0, poll_interval: float = 0.25,
          from_start: bool = False) -> int:
    """Feed the observer until the VM stops, `duration` passes or Ctrl-C.

    Returns the number of crash reports seen."""
    follower = ConsoleFollower(console_log, from_start=from_start)
    detector = CrashDetector()
    crashes = 0
    started = time.monotonic()
    next_stats = started
    observer.run_started("watch", ["VM"])
    observer.scenario_started("VM", f"persistent VM ({console_log.name})")
    observer.step("VM", "following the console; polling memory and module state over ssh")
    try:
        while True:
            for line in follower.read_lines():
                observer.console_line(line)
                crash = detector.feed(line)
                if crash is not None:
                    crashes += 1
                    crash.log_path = str(console_log)
                    observer.crash_detected(crash, restoring=False)
            crash = detector.poll()
            if crash is not None:
                crashes += 1
                observer.crash_detected(crash, restoring=False)
            now = time.monotonic()
            if ssh_argv and now >= next_stats:
                next_stats = now + stats_interval
                try:
                    out = subprocess.run(ssh_argv + [STATS_COMMAND], capture_output=True,
                                         text=True, timeout=30).stdout
                    observer.guest_stats(parse_stats(out))
                except subprocess.TimeoutExpired:
                    observer.guest_stats({"ssh": "no answer in 30 s"})
            if not alive():
                observer.step("VM", "the VM has stopped")
                break
            if duration is not None and now - started >= duration:
                break
            time.sleep(poll_interval)
    except KeyboardInterrupt:
        pass
    finally:
        follower.close()
        observer.run_finished(crashes == 0, str(console_log))
    return crashes
