"""The dm-log-writes log device format (read only).

From drivers/md/dm-log-writes.c (Linux 6.1): the log starts with a
`log_write_super` in its first sector; entries follow, each one sector
(`sectorsize` bytes, the logical block size of the logged device) holding a
`log_write_entry` (and, for a MARK, the mark's text right after it), then
the written data, `nr_sectors * sectorsize` bytes. Entry `sector` and
`nr_sectors` count device sectors of `sectorsize` bytes, not 512 bytes.
A DISCARD entry carries no data. Writes are logged in completion order and
only once a FLUSH covered them (FUA writes as they complete), so a prefix of
the log ending at a FLUSH, FUA or MARK entry is a state the disk could have
held at a crash.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator

LOG_FLUSH_FLAG = 1 << 0
LOG_FUA_FLAG = 1 << 1
LOG_DISCARD_FLAG = 1 << 2
LOG_MARK_FLAG = 1 << 3
LOG_METADATA_FLAG = 1 << 4
KNOWN_FLAGS = LOG_FLUSH_FLAG | LOG_FUA_FLAG | LOG_DISCARD_FLAG | LOG_MARK_FLAG | LOG_METADATA_FLAG

WRITE_LOG_VERSION = 1
WRITE_LOG_MAGIC = 0x6A736677736872

SUPER = struct.Struct("<QQQI")  # magic, version, nr_entries, sectorsize
ENTRY = struct.Struct("<QQQQ")  # sector, nr_sectors, flags, data_len

# A log entry's data is at most one bio; bios are far below this. A larger
# value means a corrupt log, refused before allocating it.
MAX_ENTRY_BYTES = 64 << 20


class LogFormatError(ValueError):
    """The log device does not hold a valid dm-log-writes log."""


@dataclass(frozen=True)
class LogSuper:
    nr_entries: int
    sectorsize: int


@dataclass(frozen=True)
class LogEntry:
    index: int  # 0-based position in the log
    sector: int  # first device sector written (units of sectorsize)
    nr_sectors: int
    flags: int
    mark: str | None  # the MARK text
    data_offset: int  # byte offset of the data in the log
    sectorsize: int

    @property
    def offset(self) -> int:
        """Byte offset of the write on the logged device."""
        return self.sector * self.sectorsize

    @property
    def length(self) -> int:
        return self.nr_sectors * self.sectorsize

    @property
    def is_point(self) -> bool:
        """A FLUSH, FUA or MARK entry ends a prefix the disk could have held."""
        return bool(self.flags & (LOG_FLUSH_FLAG | LOG_FUA_FLAG | LOG_MARK_FLAG))

    def kind(self) -> str:
        names = [n for f, n in ((LOG_FLUSH_FLAG, "flush"), (LOG_FUA_FLAG, "fua"),
                                (LOG_DISCARD_FLAG, "discard"), (LOG_MARK_FLAG, "mark"))
                 if self.flags & f]
        return "+".join(names) or "write"


def read_super(log: BinaryIO) -> LogSuper:
    log.seek(0)
    raw = log.read(SUPER.size)
    if len(raw) < SUPER.size:
        raise LogFormatError("log device shorter than its superblock")
    magic, version, nr_entries, sectorsize = SUPER.unpack(raw)
    if magic != WRITE_LOG_MAGIC:
        raise LogFormatError(f"bad log magic {magic:#x} (want {WRITE_LOG_MAGIC:#x})")
    if version != WRITE_LOG_VERSION:
        raise LogFormatError(f"unsupported log version {version}")
    if sectorsize < 512 or sectorsize > 65536 or sectorsize & (sectorsize - 1):
        raise LogFormatError(f"bad log sector size {sectorsize}")
    return LogSuper(nr_entries=nr_entries, sectorsize=sectorsize)


def entries(log: BinaryIO, log_size: int | None = None) -> Iterator[LogEntry]:
    """Every entry of the log, in order. Data is not read (see read_data)."""
    sup = read_super(log)
    ss = sup.sectorsize
    pos = ss  # the first entry follows the super's sector
    for index in range(sup.nr_entries):
        log.seek(pos)
        head = log.read(ss)
        if len(head) < ENTRY.size:
            raise LogFormatError(f"entry {index} at byte {pos} is past the end of the log")
        sector, nr_sectors, flags, data_len = ENTRY.unpack_from(head)
        if flags & ~KNOWN_FLAGS:
            raise LogFormatError(f"entry {index}: unknown flags {flags:#x}")
        if nr_sectors * ss > MAX_ENTRY_BYTES:
            raise LogFormatError(f"entry {index}: {nr_sectors} sectors is not a bio")
        mark = None
        if flags & LOG_MARK_FLAG:
            if data_len > ss - ENTRY.size:
                raise LogFormatError(f"entry {index}: mark of {data_len} bytes")
            mark = head[ENTRY.size:ENTRY.size + data_len].decode("utf-8", "replace")
        data_offset = pos + ss
        pos = data_offset
        if not flags & LOG_DISCARD_FLAG:
            pos += nr_sectors * ss
        if log_size is not None and pos > log_size:
            raise LogFormatError(f"entry {index}: data runs past the end of the log")
        yield LogEntry(index=index, sector=sector, nr_sectors=nr_sectors, flags=flags,
                       mark=mark, data_offset=data_offset, sectorsize=ss)


def has_data(entry: LogEntry) -> bool:
    return entry.nr_sectors > 0 and not entry.flags & (LOG_DISCARD_FLAG | LOG_MARK_FLAG)


def read_data(log: BinaryIO, entry: LogEntry) -> bytes:
    log.seek(entry.data_offset)
    data = log.read(entry.length)
    if len(data) != entry.length:
        raise LogFormatError(f"entry {entry.index}: short data")
    return data
