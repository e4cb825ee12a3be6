"""Crash detection on the console stream, as the VM layer sees it.

The signature table and the streaming parser belong to `vexfs.crash`
(`CrashDetector.feed(line) -> Crash | None`, `flush()`). This adapter feeds
it every console line and keeps what it reports. If `vexfs.crash` cannot be
imported (a broken checkout), a small built-in list of the most common
headers still marks the boot as crashed, so a crash is never missed.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Callable

from vexfs.report.model import Crash

log = logging.getLogger(__name__)

_FALLBACK = re.compile(
    r"Kernel panic - not syncing|\bBUG:|kernel BUG at|\bOops\b|general protection fault|"
    r"WARNING:|Unable to handle kernel|invalid opcode:|divide error:|UBSAN:|"
    r"INFO: task .* blocked for more than|rcu.*stall|Dentry .* still in use")
_TS = re.compile(r"^\[\s*\d+\.\d+\]\s?")


class _FallbackDetector:
    def __init__(self) -> None:
        self._lines: list[str] = []

    def feed(self, line: str) -> Crash | None:
        text = _TS.sub("", line)
        if _FALLBACK.search(text):
            kind = "panic" if "panic" in text else "warning" if "WARNING" in text else "oops"
            return Crash(kind=kind, title=text.strip()[:200], trace=line)
        return None

    def flush(self) -> Crash | None:
        return None


def new_detector():
    try:
        from vexfs.crash.detect import CrashDetector
    except Exception as exc:  # ImportError, or a syntax error in progress
        log.warning("vexfs.crash unavailable (%s); using the fallback crash patterns", exc)
        return _FallbackDetector()
    return CrashDetector()


class CrashWatch:
    """Feeds console lines to a detector; remembers and announces crashes."""

    def __init__(self, on_crash: Callable[[Crash], None] | None = None) -> None:
        self.detector = new_detector()
        self.crashes: list[Crash] = []
        self.event = threading.Event()
        self._on_crash = on_crash
        self._lock = threading.Lock()

    def feed(self, line: str) -> None:
        with self._lock:
            try:
                crash = self.detector.feed(line)
            except Exception:
                log.exception("crash detector failed on %r", line)
                return
        if crash is not None:
            self._record(crash)

    def poll(self) -> None:
        """Close a report the console left open (the detector's
        report_timeout); call while the console is quiet."""
        poll = getattr(self.detector, "poll", None)
        if poll is None:
            return
        with self._lock:
            try:
                crash = poll()
            except Exception:
                log.exception("crash detector poll failed")
                return
        if crash is not None:
            self._record(crash)

    def flush(self) -> None:
        with self._lock:
            try:
                crash = self.detector.flush()
            except Exception:
                log.exception("crash detector flush failed")
                return
        if crash is not None:
            self._record(crash)

    def record(self, crash: Crash) -> None:
        """Add a crash found by other means (the session's hang detector)."""
        self._record(crash)

    def _record(self, crash: Crash) -> None:
        self.crashes.append(crash)
        self.event.set()
        if self._on_crash is not None:
            try:
                self._on_crash(crash)
            except Exception:
                log.exception("crash callback failed")

    @property
    def crashed(self) -> bool:
        return bool(self.crashes)
