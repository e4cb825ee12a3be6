"""Booting a fuzz VM: a GuestVM with the module loaded, a console progress
callback and a watchdog that enforces a per-step time limit even when the
kernel keeps printing (which defeats the session's silent-console check).
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from pathlib import Path
from typing import Callable

from vexfs.report.model import Crash
from vexfs.vm.build import VEXFS_KO
from vexfs.vm.session import GuestVM

log = logging.getLogger(__name__)

GUEST_MODULE = "/tmp/vexfs.ko"
# First lines of kernel reports (the detector's own table is richer; these
# only locate where a report began in the console).
CRASH_HEADERS = ("WARNING:", "BUG:", "Oops", "Kernel panic", "general protection fault",
                 "kernel BUG at", "Unable to handle kernel", "invalid opcode:", "divide error:",
                 "UBSAN:", "INFO: task", "rcu: INFO:", "watchdog: BUG:", "list_add corruption",
                 "list_del corruption", "refcount_t:", "VFS: Busy inodes")


def default_module() -> Path:
    return VEXFS_KO


class Progress:
    """Tracks `<TAG> S <n>` lines the guest drivers write to /dev/console."""

    def __init__(self, tag: str = "FZ") -> None:
        self.re = re.compile(rf"\b{tag} S (\d+)")
        self.done_re = re.compile(rf"\b{tag} D (\d+)")
        self.current: int | None = None
        self.started = time.monotonic()
        self.done = False
        self.lines = 0
        # recent console lines with the case current when each arrived
        self._recent: collections.deque[tuple[str, int | None]] = collections.deque(maxlen=4000)

    def feed(self, line: str) -> None:
        m = self.re.search(line)
        if m:
            self.current = int(m.group(1))
            self.started = time.monotonic()
            self.lines += 1
        elif self.done_re.search(line):
            self.done = True
        else:
            self._recent.append((line.rstrip(), self.current))

    def case_of(self, crash: Crash) -> int | None:
        """The case that was running when `crash`'s report began.

        The crash reaches the harness only once its report is complete, and
        a driver that survives the crash (a WARNING) may already have
        announced the next case by then, so `current` can be one too far:
        look up the report's first header line in the console as it came."""
        lines = [ln.rstrip() for ln in crash.trace.splitlines() if ln.strip()]
        header = next((ln for ln in lines if any(h in ln for h in CRASH_HEADERS)), None)
        if header is None:
            return self.current
        for line, case in reversed(self._recent):
            if line == header:
                return case
        return self.current


class Watchdog:
    """Kills the VM when one case has run longer than `limit` seconds."""

    def __init__(self, vm: GuestVM, progress: Progress, limit: float) -> None:
        self.vm, self.progress, self.limit = vm, progress, limit
        self.fired: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fuzz-watchdog")

    def __enter__(self) -> "Watchdog":
        self.progress.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            if time.monotonic() - self.progress.started > self.limit:
                self.fired = self.progress.current
                log.warning("case %s ran longer than %.0f s: killing the VM",
                            self.fired, self.limit)
                self.vm.kill()
                return


def boot(name: str, log_dir: Path, module: Path, callbacks: list[Callable[[str], None]],
         hang_timeout: float = 30.0, memory: str = "1G",
         cmdline_extra: list[str] | None = None, load: bool = True) -> GuestVM:
    """A started VM with the module copied to /tmp/vexfs.ko (and loaded)."""
    vm = GuestVM(name=name, log_dir=log_dir, memory=memory, hang_timeout=hang_timeout,
                 console_callbacks=callbacks, cmdline_extra=cmdline_extra, spec_log=False)
    try:
        vm.start()
        # The host root is the guest's root: copying the module there beats
        # pushing 3 MB of base64 through the agent under TCG.
        vm.run(["cp", str(Path(module).resolve()), GUEST_MODULE], check=True, timeout=60)
        # loop is a module in the Debian kernel; without it mount -o loop
        # fails with a misleading EPERM
        vm.run("modprobe loop max_loop=16 2>/dev/null || modprobe loop", timeout=60)
        if load:
            vm.run(["insmod", GUEST_MODULE], check=True)
    except Exception:
        vm.kill()
        raise
    return vm
