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
    wl.run(400)
    # a replace is two episodes: the run may end one past the count
    assert marks[0] == "ep-start" and len(marks) == len(wl.episodes) + 1
    assert len(wl.episodes) in (400, 401)
    kinds = {e.kind for e in wl.episodes}
    # every operation kind of issue 10 (C1 checks the same list on VexFS)
    assert {"create", "overwrite", "append", "replace-rename", "rename", "unlink", "link",
            "truncate", "mkdir", "rmdir", "syncfs", "mknod", "symlink", "setattr", "fallocate",
            "rename-dir", "rename-over-dir", "rename-exchange", "rename-noreplace"} <= kinds
    exp = oracle.expectation(wl.episodes, marks[-1], at_mark=True)
    assert oracle.check_tree(root, exp) == []
    assert wl.ops > 800
    # the same seed without a filesystem (the power-cut check's model) agrees
    dry = Workload(tmp_path / "nowhere", seed=3, mark=lambda _m: None, dry=True)
    dry.run(400)
    assert [e.kind for e in dry.episodes] == [e.kind for e in wl.episodes]
    assert dry.episodes[-1].after == wl.episodes[-1].after
    assert not (tmp_path / "nowhere").exists()


def test_oracle_checks_symlinks_nodes_and_modes(tmp_path: Path) -> None:
    import os

    from vexfs.crashsafe.workload import Special, Symlink

    os.symlink("there", tmp_path / "l")
    os.mkfifo(tmp_path / "p")
    (tmp_path / "f").write_bytes(b"x")
    os.chmod(tmp_path / "f", 0o640)
    ok = oracle.Expectation(base={"l": Symlink("there"), "p": Special("p"),
                                  "f": File(b"x", 1, 0o640)}, alternatives=[], label="t")
    assert oracle.check_tree(tmp_path, ok) == []
    bad = oracle.Expectation(base={"l": Symlink("elsewhere"), "p": Special("c"),
                                   "f": File(b"x", 1, 0o600)}, alternatives=[], label="t")
    problems = oracle.check_tree(tmp_path, bad)
    assert len(problems) == 3 and any("symlink to" in p for p in problems), problems
    assert any("want a c node" in p for p in problems) and any("mode 640" in p for p in problems)


def test_dm_ioctl_layout() -> None:
    """struct dm_ioctl is 312 bytes; DM_TARGET_MSG is _IOWR(0xfd, 14, struct
    dm_ioctl) = 0xc138fd0e, as in linux/dm-ioctl.h."""
    from vexfs.crashsafe import dmlog

    assert dmlog.DM_IOCTL.size == 312 and dmlog.DM_TARGET_SPEC.size == 40
    assert dmlog._dm_cmd(dmlog.DM_TARGET_MSG) == 0xC138FD0E
    assert dmlog._dm_cmd(dmlog.DM_DEV_CREATE) == 0xC138FD03


def test_powercut_summary() -> None:
    from vexfs.crashsafe.powercut import summarize

    r = {"rounds": [{"violations": [], "episodes_durable": 3, "needs_recovery": True,
                     "recovered_transactions": 4, "recovery_ms": 30},
                    {"violations": ["x"], "episodes_durable": 0}],
         "cuts": 2, "boots": 3, "total_s": 100.0}
    s = summarize(r)
    assert s["rounds"] == 2 and s["clean"] == 1 and s["violations"] == 1
    assert s["replays"] == 1 and s["replay_ms_max"] == 30 and s["needed_recovery"] == 1


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
