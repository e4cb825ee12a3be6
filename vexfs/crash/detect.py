"""Streaming kernel crash detector for a guest's serial console.

    det = CrashDetector()
    for line in console:
        crash = det.feed(line)       # a Crash when a report has just ended
        ...
    crash = det.flush()              # end of stream: the report still open

`parse_log(text)` does the same for a saved log and returns every report.

How it works, per line: strip the printk timestamp / caller id (the
prefix may also sit in the middle of a line when a kernel message
interrupts userspace output on the same console); test the cleaned line
against one precompiled alternation of all header strings (the prefilter:
most lines cost one regex search); only on a hit try the suppressions and
the formats of `vexfs.crash.signatures`. A header opens a report; its
lines are collected until the format's end (`---[ end trace`, `</TASK>`,
a `====` banner, the panic's `Kernel Offset:`...), a bound of
`max_lines`, a new header (for reports without end marker), `flush()`, or
`report_timeout` seconds after the header (checked on the next line, or
by `poll()`, which the streaming caller may call while the console is
quiet).
Then the title's `{FUNC}` is resolved from the report's RIP line, header or
call trace, and the `Crash` is returned.

`Crash.corrupted` is set when a title matched but the report is not whole:
a part the format needs (usually `Call Trace:`) is missing, or the
function for the title could not be found. Its title then has no
" in FUNC" part.

Userspace output on the same console (the harness tees the script's
output there) must not look like a crash: once a timestamped kernel line
has been seen, headers are only accepted on timestamped lines
(`kernel_lines_only=None`, the default, does this automatically).

`feed()` never raises: an internal error is logged and the line dropped.
At most one Crash completes per `feed()` call. A report whose title was
already returned is not returned again (`dedupe=True`): the kernel repeats
hung-task and lockup reports; `counts` keeps how often each title came.

Hangs print nothing, so the console alone cannot show them: when the
harness sees no progress for its timeout it calls `hang(seconds)` to get a
`Crash(kind="hang")` whose trace is the console tail. For a report that
started but never ended (the VM died mid-report), call `flush()`; the
`in_report` property says one is open.
"""

from __future__ import annotations

import collections
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Callable

from vexfs.crash import signatures as sig
from vexfs.report.model import Crash

log = logging.getLogger(__name__)

MAX_LINE = 4096  # longer lines are cut before matching (regex cost bound)
CONTEXT_BEFORE = 5  # lines kept before a header, for the reader of the trace
TAIL_LINES = 60  # console tail kept for hang()
TASK_REPORT_NO_STACK = 60  # a "task" report with no Call Trace this long is over

# Reports that measure time: a guest clock running much faster than the
# host's makes them fire falsely (see guest_clock_ratio).
TIME_KINDS = ("stall", "lockup", "hang")
CLOCK_SUSPECT_RATIO = 3.0
CLOCK_MIN_WALL_S = 10.0

_ABS_PATH_RE = re.compile(r"^/(?:[^/]+/)*([^/]+/[^/]+)$")


def _split_line(raw: str) -> tuple[str, bool, float | None]:
    line = raw.rstrip("\r\n")
    if "\r" in line:  # a carriage return redraws the line: keep the last part
        line = line.rsplit("\r", 1)[-1] or line.replace("\r", "")
    match = sig.TIMESTAMP_RE.search(line)
    if match:
        value = match.group("ts")
        line = line[match.end():]
        if line.startswith("["):
            line = sig.CALLER_ID_RE.sub("", line, count=1)
        return line, True, float(value) if value else None
    return sig.SYSLOG_PREFIX_RE.sub("", line, count=1), False, None


def clean_line(raw: str) -> tuple[str, bool]:
    """The console line without printk decorations, and whether it had a timestamp."""
    line, stamped, _ = _split_line(raw)
    return line, stamped


def normalize_func(name: str) -> str:
    return sig.FUNC_SUFFIX_RE.sub("", name)


def normalize_src(path: str) -> str:
    """Absolute source paths (out-of-tree modules) differ per checkout:
    keep the last two components, e.g. kernel/inode.c."""
    match = _ABS_PATH_RE.match(path)
    return match.group(1) if match else path


@dataclass
class _Report:
    fmt: sig.Format
    match: re.Match[str]
    lines: list[str]  # raw lines, context first
    header_index: int
    clean: list[str] = field(default_factory=list)  # cleaned lines from the header on
    opened: float = 0.0  # clock() when the header arrived
    seen_trace: bool = False
    seen_panic: bool = False
    task_done: bool = False  # "</TASK>" seen after the call trace
    task_ends: int = 0  # "</TASK>" lines seen (stall reports)
    seen_rip: bool = False  # a kernel "RIP: 0010:" line seen (stall reports)


class CrashDetector:
    def __init__(self, max_lines: int = 300, kernel_lines_only: bool | None = None,
                 dedupe: bool = True, report_timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_lines = max_lines
        # a report still open this long after its header is over, whatever
        # follows (the kernel prints a report in milliseconds; a silent
        # console mid-report means the rest is not coming)
        self.report_timeout = report_timeout
        self._clock = clock
        self.kernel_lines_only = kernel_lines_only
        self.dedupe = dedupe
        # title -> how many reports had it; with dedupe only the first is returned
        # (a hung task is reported every check interval, a soft lockup every few s)
        self.counts: collections.Counter[str] = collections.Counter()
        self._timestamps_seen = False
        self._context: collections.deque[str] = collections.deque(maxlen=CONTEXT_BEFORE)
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._report: _Report | None = None
        self.lines_fed = 0
        # (guest printk time, host clock) of the first and last stamped line
        self._clock_first: tuple[float, float] | None = None
        self._clock_last: tuple[float, float] | None = None

    # --- public API -------------------------------------------------------------
    @property
    def in_report(self) -> bool:
        return self._report is not None

    def feed(self, line: str) -> Crash | None:
        try:
            return self._feed(line)
        except Exception:  # the harness must keep streaming whatever happens
            log.exception("crash detector failed on line %.200r", line)
            self._report = None
            return None

    def flush(self) -> Crash | None:
        try:
            return self._finish()
        except Exception:
            log.exception("crash detector flush failed")
            self._report = None
            return None

    def poll(self) -> Crash | None:
        """Call now and then while the console is quiet: ends a report that
        has been open longer than `report_timeout` (returned like feed())."""
        try:
            report = self._report
            if report is not None and self._clock() - report.opened > self.report_timeout:
                return self._finish()
        except Exception:
            log.exception("crash detector poll failed")
            self._report = None
        return None

    def hang(self, seconds: float, what: str = "progress") -> Crash:
        """A Crash for a guest that made no `what` for `seconds` (the harness's
        timeout; the console cannot report this itself)."""
        return Crash(kind="hang", title=f"hang: no {what} for {int(seconds)} s",
                     trace="\n".join(self._tail))

    @property
    def guest_clock_ratio(self) -> float | None:
        """How fast the guest's printk clock ran against the host's, over the
        stream so far (None until 10 s of host time with timestamps). Under
        TCG on an overloaded host the guest clock was seen running ~20x fast
        (its TSC miscalibrated), and then RCU stalls and soft lockups fire
        without any kernel bug."""
        if self._clock_first is None or self._clock_last is None:
            return None
        wall = self._clock_last[1] - self._clock_first[1]
        if wall < CLOCK_MIN_WALL_S:
            return None
        return (self._clock_last[0] - self._clock_first[0]) / wall

    # --- internals --------------------------------------------------------------
    def _track_clock(self, stamp: float) -> None:
        now = self._clock()
        if self._clock_first is None or (self._clock_last and stamp < self._clock_last[0] - 1):
            self._clock_first = (stamp, now)  # first line, or the guest rebooted
        self._clock_last = (stamp, now)

    def _annotate(self, crash: Crash) -> Crash:
        ratio = self.guest_clock_ratio
        if crash.kind in TIME_KINDS and ratio is not None and ratio > CLOCK_SUSPECT_RATIO:
            note = (f"[vexfs.crash] the guest clock ran {ratio:.1f}x faster than the host's "
                    f"during this boot: this {crash.kind} report may be an artefact of a "
                    f"starved/miscalibrated VM, not a kernel bug")
            log.warning("%s: %s", crash.title, note)
            crash.trace += "\n" + note
        return crash

    def _feed(self, raw: str) -> Crash | None:
        self.lines_fed += 1
        raw = raw.rstrip("\r\n")
        if len(raw) > MAX_LINE:
            raw = raw[:MAX_LINE]
        self._tail.append(raw)
        text, stamped, stamp = _split_line(raw)
        if stamped:
            self._timestamps_seen = True
            if stamp is not None and (self.lines_fed & 15 == 1 or self._clock_first is None):
                self._track_clock(stamp)  # sampled: the host clock costs a syscall
        kernel_only = self.kernel_lines_only
        if kernel_only is None:
            kernel_only = self._timestamps_seen
        may_start = stamped or not kernel_only

        done: Crash | None = None
        report = self._report
        if report is not None and self._clock() - report.opened > self.report_timeout:
            done = self._finish()  # stale: this line starts afresh
            report = None
        if report is not None:
            if report.fmt.end == "slub" and report.task_done and not sig.SLUB_TAIL_RE.match(text):
                done = self._finish()  # the object details are over; this line is not ours
                report = None
            elif report.fmt.end == "line" or (
                    report.fmt.end in ("task", "slub", "stall") and may_start and self._match_header(text)):
                # one-line reports end at once; reports without an end marker
                # end where the next one begins
                done = self._finish()
            else:
                self._append(report, raw, text)
                if self._ended(report, text):
                    done = self._finish()
                return done

        if may_start:
            found = self._match_header(text)
            if found is not None:
                fmt, match = found
                lines = list(self._context) + [raw]
                self._report = _Report(fmt, match, lines, len(lines) - 1, [text],
                                       opened=self._clock())
                self._context.clear()
                return done
        self._context.append(raw)
        return done

    def _match_header(self, text: str) -> tuple[sig.Format, re.Match[str]] | None:
        if not sig.HEADER_PREFILTER.search(text):
            return None
        for pattern in sig.SUPPRESSIONS:
            if pattern.search(text):
                return None
        for oops in sig.OOPSES:
            if oops.header not in text:
                continue
            if any(p.search(text) for p in oops.suppressions):
                continue
            for fmt in oops.formats:
                match = fmt.title.search(text)
                if match:
                    return fmt, match
        return None

    def _append(self, report: _Report, raw: str, text: str) -> None:
        report.lines.append(raw)
        report.clean.append(text)
        if not report.seen_trace and sig.CALL_TRACE_RE.match(text):
            report.seen_trace = True
        if not report.seen_panic and sig.PANIC_LINE_RE.search(text):
            report.seen_panic = True

    def _ended(self, report: _Report, text: str) -> bool:
        end = report.fmt.end
        if len(report.clean) >= self.max_lines:
            return True
        if sig.END_TRACE_RE.search(text):
            return True
        if (end == "panic" or report.seen_panic) and sig.PANIC_END_RE.match(text):
            return True
        if end == "stall":
            if sig.KERNEL_RIP_RE.match(text):
                report.seen_rip = True
            if report.seen_trace and sig.TASK_END_RE.match(text):
                report.task_ends += 1
                return report.seen_rip or report.task_ends >= 2
            return False
        if end == "slub":
            if report.seen_trace and sig.TASK_END_RE.match(text):
                report.task_done = True
            return not report.seen_trace and len(report.clean) > TASK_REPORT_NO_STACK
        if end == "task":
            if report.seen_trace and sig.TASK_END_RE.match(text):
                return True
            return not report.seen_trace and len(report.clean) > TASK_REPORT_NO_STACK
        if end == "banner":
            return bool(sig.BANNER_RE.match(text))
        return False

    def _finish(self) -> Crash | None:
        report = self._report
        self._report = None
        if report is None:
            return None
        crash = self._annotate(build_crash(report))
        self.counts[crash.title] += 1
        if self.dedupe and self.counts[crash.title] > 1:
            log.debug("repeated crash report %r (%d)", crash.title, self.counts[crash.title])
            return None
        return crash


def _captures(report: _Report) -> list[str]:
    groups = [g or "" for g in report.match.groups()]
    fmt = report.fmt
    # titles show a source path the same whatever the checkout directory
    if "{{SRC}}" in fmt.title.pattern or any(g.endswith((".c", ".h", ".S", ".rs")) for g in groups):
        groups = [normalize_src(g) for g in groups]
    return groups


def _find_func(report: _Report) -> str | None:
    fmt = report.fmt
    skip = sig.SKIP_FRAMES + fmt.skip
    for source in fmt.stack:
        if source == "header":
            groups = [g for g in report.match.groups() if g]
            if groups:
                name = normalize_func(groups[-1])
                if not any(p.search(name) for p in skip):
                    return name
        elif source == "rip":
            for text in report.clean:
                match = sig.RIP_RE.match(text)
                if match:
                    return normalize_func(match.group(1))
        elif source in ("trace", "hang_trace"):
            in_trace = False
            for text in report.clean:
                if sig.CALL_TRACE_RE.match(text):
                    in_trace = True
                    continue
                if not in_trace:
                    continue
                match = sig.FRAME_RE.match(text)
                if not match or match.group(1):  # "? foo" frames are unreliable guesses
                    continue
                name = normalize_func(match.group(2))
                if any(p.search(name) for p in skip):
                    continue
                return name
    return None


def build_crash(report: _Report) -> Crash:
    fmt = report.fmt
    groups = _captures(report)
    title = fmt.fmt
    for i, value in enumerate(groups, start=1):
        title = title.replace("{%d}" % i, value)
    corrupted = fmt.corrupted
    if "{FUNC}" in title:
        func = _find_func(report)
        if func:
            title = title.replace("{FUNC}", func)
        else:
            title = title.replace(" in {FUNC}", "").replace("{FUNC}", "?")
            if not fmt.func_optional:
                corrupted = True
    body = "\n".join(report.clean)
    for needed in fmt.needs:
        # "Call Trace:" stands for any stack header (arm64 prints "Call trace:")
        present = report.seen_trace if needed == "Call Trace:" else needed in body
        if not present:
            corrupted = True
    title = re.sub(r"  +", " ", title)  # an optional capture left empty
    return Crash(kind=fmt.kind, title=title.strip(), trace="\n".join(report.lines),
                 corrupted=corrupted)


def parse_log(text: str, **kwargs) -> list[Crash]:
    """Every crash report in a saved console log, in order."""
    detector = CrashDetector(**kwargs)
    crashes: list[Crash] = []
    for line in text.splitlines():
        crash = detector.feed(line)
        if crash is not None:
            crashes.append(crash)
    crash = detector.flush()
    if crash is not None:
        crashes.append(crash)
    return crashes


def first_crash(text: str) -> Crash | None:
    crashes = parse_log(text)
    return crashes[0] if crashes else None


@dataclass(frozen=True)
class BlockedTask:
    comm: str
    pid: int
    func: str  # the first frame that is not the scheduler or a lock primitive


_TASK_RE = re.compile(r"^task:(\S+)\s+state:D\b.*?\bpid:\s*(\d+)")


def blocked_tasks(text: str) -> list[BlockedTask]:
    """The D-state tasks in a `sysrq w` (Show Blocked State) or hung-task dump.

    For the harness's hang report: after echo w > /proc/sysrq-trigger the
    console lists each blocked task with its stack; this names where each one
    waits, e.g. BlockedTask("sh", 147, "crashtest_hang").
    """
    found: list[BlockedTask] = []
    skip = sig.SKIP_FRAMES + sig.SKIP_HANG_FRAMES
    current: tuple[str, int] | None = None
    for raw in text.splitlines():
        line, _ = clean_line(raw)
        match = _TASK_RE.match(line)
        if match:
            current = (match.group(1), int(match.group(2)))
            continue
        if current is None:
            continue
        if sig.TASK_END_RE.match(line):
            current = None
            continue
        frame = sig.FRAME_RE.match(line)
        if frame and not frame.group(1):
            name = normalize_func(frame.group(2))
            if not any(p.search(name) for p in skip):
                found.append(BlockedTask(current[0], current[1], name))
                current = None
    return found
