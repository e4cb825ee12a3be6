"""Incremental replay of a dm-log-writes log onto a scratch image.

`Replayer.points()` applies the log entry by entry to one target file and
stops at every FLUSH, FUA and MARK entry, so each crash point costs only
the entries since the previous one (not a replay from the start). The
caller checks a *copy* of the target at each point (`snapshot`), because
mounting or fsck replaying a journal writes to the device.

A torn write (`torn_snapshot`): at a point, the last data entry before it
is made to have reached the disk only partly: the second half of its last
block keeps the bytes it had before that write.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from vexfs.crashsafe import logformat
from vexfs.crashsafe.logformat import LogEntry

FS_BLOCK = 4096


@dataclass
class Point:
    number: int  # 0-based count of points so far
    entry: LogEntry  # the FLUSH/FUA/MARK entry that ends the prefix
    last_mark: str | None  # the newest mark at or before this entry
    entries_applied: int


@dataclass
class ReplayStats:
    entries: int = 0
    points: int = 0
    bytes_written: int = 0
    apply_s: float = 0.0
    snapshot_s: float = 0.0
    marks: list[str] = field(default_factory=list)


class Replayer:
    def __init__(self, log_path: Path, target: Path, device_size: int) -> None:
        self.log_path, self.target, self.device_size = Path(log_path), Path(target), device_size
        self.stats = ReplayStats()
        # (offset, bytes before) of the second half of the last data entry's last block
        self._torn_undo: tuple[int, bytes] | None = None
        # the newest mark before that data entry (a torn write is a crash
        # during the operation that wrote it, so what it promised is the
        # previous mark's)
        self.torn_mark: str | None = None
        self._last_mark: str | None = None

    def _apply(self, dev: BinaryIO, log: BinaryIO, entry: LogEntry) -> None:
        end = entry.offset + entry.length
        if end > self.device_size:
            raise logformat.LogFormatError(
                f"entry {entry.index} writes bytes {entry.offset}..{end}, past the device "
                f"({self.device_size} bytes)")
        if entry.flags & logformat.LOG_DISCARD_FLAG:
            # A discarded range reads back as zeros on the loop/tmpfs devices
            # these runs use, so zero it (as xfstests' replay-log does).
            dev.seek(entry.offset)
            dev.write(bytes(entry.length))
            self._torn_undo = None
            return
        if not logformat.has_data(entry):
            return
        data = logformat.read_data(log, entry)
        last = min(FS_BLOCK, len(data))
        half = entry.offset + len(data) - last // 2
        dev.seek(half)
        self._torn_undo = (half, dev.read(last // 2))
        self.torn_mark = self._last_mark
        dev.seek(entry.offset)
        dev.write(data)
        self.stats.bytes_written += len(data)

    def points(self, start_mark: str | None = None) -> Iterator[Point]:
        """Yield after each point has been applied to the target. With
        start_mark, entries before that mark are applied but not yielded
        (e.g. skip mkfs)."""
        with open(self.target, "r+b") as dev, open(self.log_path, "rb") as log:
            log_size = os.fstat(log.fileno()).st_size or None
            last_mark: str | None = None
            started = start_mark is None
            t0 = time.monotonic()
            for entry in logformat.entries(log, log_size):
                self._apply(dev, log, entry)
                self.stats.entries += 1
                if entry.mark is not None:
                    last_mark = self._last_mark = entry.mark
                    self.stats.marks.append(entry.mark)
                    if not started and entry.mark == start_mark:
                        started = True
                if not (started and entry.is_point):
                    continue
                dev.flush()
                self.stats.apply_s += time.monotonic() - t0
                yield Point(number=self.stats.points, entry=entry, last_mark=last_mark,
                            entries_applied=self.stats.entries)
                self.stats.points += 1
                t0 = time.monotonic()
            self.stats.apply_s += time.monotonic() - t0

    def snapshot(self, dest: Path) -> Path:
        """A copy of the target as it is now (the caller may mount it).
        Written in place (not replaced), so a loop device bound to dest
        stays bound."""
        t0 = time.monotonic()
        with open(self.target, "rb") as src, open(dest, "r+b" if dest.exists() else "wb") as dst:
            size = os.fstat(src.fileno()).st_size
            done = 0
            while done < size:
                n = os.sendfile(dst.fileno(), src.fileno(), done, size - done)
                if n <= 0:
                    break
                done += n
        self.stats.snapshot_s += time.monotonic() - t0
        return dest

    def torn_undo(self) -> tuple[int, bytes] | None:
        """(offset, bytes): writing these onto a copy of the target makes the
        last data entry's last block only half reach the disk; None if
        there was no data entry since the last discard."""
        return self._torn_undo

    def torn_snapshot(self, dest: Path) -> Path | None:
        """A copy of the target with the torn last write (see torn_undo)."""
        if self._torn_undo is None:
            return None
        self.snapshot(dest)
        off, old = self._torn_undo
        with open(dest, "r+b") as fh:
            fh.seek(off)
            fh.write(old)
        return dest
