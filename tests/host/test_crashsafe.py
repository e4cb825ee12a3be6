"""dm-log-writes parsing and incremental replay on synthetic logs laid out
as drivers/md/dm-log-writes.c writes them; the workload's model against a
real directory; the oracle's partial-write and rename rules."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from vexfs.crashsafe import logformat, oracle
from vexfs.crashsafe.replay import Replayer
from vexfs.crashsafe.workload import ABSENT, File, Partial, Workload, pattern

SS = 512


def write_log(path: Path, entries: list[tuple[int, int, bytes | str]]) -> None:
    """entries: (sector, flags, data or mark text), as the kernel lays them out."""
    out = bytearray(SS)
    for sector, flags, payload in entries:
        if flags & logformat.LOG_MARK_FLAG:
            text = payload.encode() if isinstance(payload, str) else payload
            head = logformat.ENTRY.pack(0, 0, flags, len(text)) + text
            out += head.ljust(SS, b"\0")
        else:
            data = payload if isinstance(payload, bytes) else b""
            out += logformat.ENTRY.pack(sector, len(data) // SS, flags, 0).ljust(SS, b"\0")
            if not flags & logformat.LOG_DISCARD_FLAG:
                out += data
    nr = len(entries)
    out[:logformat.SUPER.size] = logformat.SUPER.pack(logformat.WRITE_LOG_MAGIC,
                                                      logformat.WRITE_LOG_VERSION, nr, SS)
    path.write_bytes(bytes(out))


def test_replay_stops_at_every_flush_fua_and_mark(tmp_path: Path) -> None:
    F, FUA, MARK = logformat.LOG_FLUSH_FLAG, logformat.LOG_FUA_FLAG, logformat.LOG_MARK_FLAG
    a, b, c = b"A" * 4096, b"B" * 1024, b"C" * 8192
    write_log(tmp_path / "log", [(0, 0, a), (8, 0, b), (0, F, b""), (2, FUA, c),
                                 (0, MARK, "ep-0"), (16, logformat.LOG_DISCARD_FLAG, b"")])
    dev = tmp_path / "dev"
    dev.write_bytes(b"\xff" * 65536)
    rp = Replayer(tmp_path / "log", dev, 65536)
    states = []
    for pt in rp.points():
        states.append((pt.entry.kind(), pt.last_mark, dev.read_bytes()))
        if pt.number == 1:  # after the FUA write of c: tear its last block
            off, old = rp.torn_undo()  # type: ignore[misc]
            assert off == 1024 + 8192 - 2048 and old == b"\xff" * 2048
    kinds = [s[0] for s in states]
    assert kinds == ["flush", "fua", "mark"]
    s0 = states[0][2]
    assert s0[:4096] == a and s0[4096:5120] == b and s0[5120:] == b"\xff" * (65536 - 5120)
    s1 = states[1][2]
    assert s1[1024:9216] == c and s1[:1024] == a[:1024]
    assert states[2][1] == "ep-0"
    # the discard after the last point is applied too (zeros at sector 16..)
    assert rp.stats.entries == 6


def test_log_errors_are_refused(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\0" * 1024)
    with pytest.raises(logformat.LogFormatError, match="magic"):
        list(logformat.entries(open(tmp_path / "bad", "rb")))
    write_log(tmp_path / "log", [(200, 0, b"x" * 512)])
    dev = tmp_path / "dev"
    dev.write_bytes(bytes(4096))
    with pytest.raises(logformat.LogFormatError, match="past the device"):
        list(Replayer(tmp_path / "log", dev, 4096).points())
    raw = bytearray((tmp_path / "log").read_bytes())
    struct.pack_into("<Q", raw, SS + 16, 1 << 40)  # unknown flag bits
    (tmp_path / "log").write_bytes(bytes(raw))
    with pytest.raises(logformat.LogFormatError, match="unknown flags"):
        list(logformat.entries(open(tmp_path / "log", "rb")))


def test_workload_model_matches_a_real_directory(tmp_path: Path) -> None:
    marks: list[str] = []
    root = tmp_path / "fs"
    root.mkdir()
    wl = Workload(root, seed=3, mark=marks.append)
    wl.run(300)
    assert marks[0] == "ep-start" and len(marks) == 301
    kinds = {e.kind for e in wl.episodes}
    assert {"create", "overwrite", "replace-rename", "rename", "unlink", "link",
            "truncate", "mkdir", "syncfs"} <= kinds
    exp = oracle.expectation(wl.episodes, marks[-1], at_mark=True)
    assert oracle.check_tree(root, exp) == []
    assert wl.ops > 600


def test_oracle_catches_stale_bytes_lost_files_and_half_renames(tmp_path: Path) -> None:
    new = pattern("n", 10000)
    (tmp_path / "f").write_bytes(new[:4096] + b"\x55" * 4096)  # a previous owner's bytes
    assert "neither" in oracle._partial_ok((tmp_path / "f").read_bytes(), Partial(new, 0))
    assert oracle._partial_ok(new[:4096] + bytes(4096), Partial(new, 0)) is None
    old = File(b"old", 1)
    exp = oracle.Expectation(base={"a": old}, alternatives=[
        {"a": old, "b": ABSENT}, {"a": ABSENT, "b": old}], label="t")
    (tmp_path / "f").unlink()
    assert any("no allowed state" in p for p in oracle.check_tree(tmp_path, exp))  # neither
    (tmp_path / "a").write_bytes(b"old")
    assert oracle.check_tree(tmp_path, exp) == []
    (tmp_path / "b").write_bytes(b"old")
    assert any("no allowed state" in p for p in oracle.check_tree(tmp_path, exp))  # both
    strict = oracle.Expectation(base={"a": old}, alternatives=[], label="t")
    assert any("unexpected path" in p for p in oracle.check_tree(tmp_path, strict))
