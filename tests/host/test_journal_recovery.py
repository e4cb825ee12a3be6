"""jbd2 recovery in Python (vexfs/fs/journal_recovery.py).

1. A journal the real kernel wrote: ext4 on Linux 6.1 with an external
   journal device, power cut (sysrq b) after fsyncs, renames and rm -rf
   (revokes). Every block our replay produces must equal what e2fsck's own
   replay (`e2fsck -E journal_only`) wrote, and every block e2fsck changed
   must be among ours.
2. A CSUM_V3 + 64BIT journal (VexFS's features) built here block by block
   as fs/jbd2/commit.c lays it out: tag3 checksums, an escaped block, a
   revoke, a torn commit, a corrupt descriptor before a good commit.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import struct
from pathlib import Path

import pytest

from vexfs.fs import journal as J
from vexfs.fs.journal_recovery import JournalError

DATA = Path(__file__).parent / "data" / "jbd2"
BS = 4096


def test_replay_of_a_kernel_written_journal_matches_e2fsck() -> None:
    exp = json.loads((DATA / "ext4-extjournal-expected.json").read_text())
    img = io.BytesIO(lzma.decompress((DATA / "ext4-extjournal-journal.img.xz").read_bytes()))

    class Dev:
        def read_block(self, n: int, count: int = 1) -> bytes:
            return img.getvalue()[n * BS:(n + count) * BS]

    geom = J.JournalGeometry(exp["journal_start_block"], exp["journal_blocks"], BS)
    assert J.needs_recovery(Dev(), geom)
    assert J.check_journal(Dev(), geom) == []
    res = J.recover(Dev(), geom, write=False)
    assert res.transactions > 10 and res.revoked > 0 and not res.problems
    got = {str(b): hashlib.sha256(d).hexdigest() for b, d in res.blocks.items() if b != 0}
    assert 0 in res.blocks  # e2fsck rewrites the superblock after its replay: not compared
    assert got == exp["e2fsck_replayed_sha256"]
    assert set(map(str, exp["blocks_e2fsck_changed"])) <= set(got)


# ---------------------------------------------------------------- synthetic v3

START, LEN = 10, 1100  # journal region: superblock in block 10, log 11..1109
UUID = bytes(range(16))


class Img:
    def __init__(self) -> None:
        self.buf = bytearray((START + LEN) * BS)

    def read_block(self, n: int, count: int = 1) -> bytes:
        return bytes(self.buf[n * BS:(n + count) * BS])

    def write_block(self, n: int, data: bytes) -> None:
        self.buf[n * BS:n * BS + len(data)] = data


def _sb(img: Img, s_start: int, seq: int) -> J.JournalGeometry:
    geom = J.JournalGeometry(START, LEN, BS)
    jsb = J.make_journal_superblock(geom, UUID, sequence=seq)
    jsb.s_first, jsb.s_maxlen, jsb.s_start = START + 1, START + LEN, s_start
    jsb.s_checksum = J.superblock_checksum(jsb)
    img.write_block(START, bytes(jsb).ljust(BS, b"\0"))
    return geom


SEED = J.jbd2_crc32c(UUID)


def _tail(block: bytearray) -> bytes:
    block[-4:] = bytes(4)
    block[-4:] = struct.pack(">I", J.jbd2_crc32c(bytes(block), SEED))
    return bytes(block)


def _transaction(img: Img, at: int, seq: int, writes: list[tuple[int, bytes]],
                 revokes: list[int] = (), commit_sec: int = 100) -> int:
    """Descriptor + data (+ revoke) + commit at log block `at`; returns the next block."""
    pos = at
    if revokes:
        rb = bytearray(BS)
        struct.pack_into(">III", rb, 0, J.JBD2_MAGIC_NUMBER, J.JBD2_REVOKE_BLOCK, seq)
        struct.pack_into(">I", rb, 12, 16 + 8 * len(revokes))
        for i, b in enumerate(revokes):
            struct.pack_into(">Q", rb, 16 + 8 * i, b)
        img.write_block(pos, _tail(rb))
        pos += 1
    desc = bytearray(BS)
    struct.pack_into(">III", desc, 0, J.JBD2_MAGIC_NUMBER, J.JBD2_DESCRIPTOR_BLOCK, seq)
    off = 12
    for i, (home, data) in enumerate(writes):
        flags = 0 if i == 0 else 2  # SAME_UUID after the first
        stored = bytearray(data)
        if struct.unpack_from(">I", stored)[0] == J.JBD2_MAGIC_NUMBER:
            stored[:4] = bytes(4)
            flags |= 1  # ESCAPE
        if i == len(writes) - 1:
            flags |= 8  # LAST_TAG
        csum = J.jbd2_crc32c(bytes(stored), J.jbd2_crc32c(struct.pack(">I", seq), SEED))
        struct.pack_into(">IIII", desc, off, home & 0xFFFFFFFF, flags, home >> 32, csum)
        off += 16
        if i == 0:
            desc[off:off + 16] = UUID
            off += 16
        img.write_block(pos + 1 + i, bytes(stored))
    img.write_block(pos, _tail(desc))
    pos += 1 + len(writes)
    cb = bytearray(BS)
    struct.pack_into(">III", cb, 0, J.JBD2_MAGIC_NUMBER, J.JBD2_COMMIT_BLOCK, seq)
    struct.pack_into(">Q", cb, 48, commit_sec)
    struct.pack_into(">I", cb, 16, J.jbd2_crc32c(bytes(cb), SEED))
    img.write_block(pos, bytes(cb))
    return pos + 1


def _blk(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest() * (BS // 32)


def test_csum_v3_replay_revoke_escape_and_torn_commit() -> None:
    img = Img()
    geom = _sb(img, START + 1, 7)
    magic_block = struct.pack(">I", J.JBD2_MAGIC_NUMBER) + _blk("m")[4:]
    nxt = _transaction(img, START + 1, 7, [(3, _blk("a1")), (4, _blk("b1")), (5, magic_block)])
    nxt = _transaction(img, nxt, 8, [(3, _blk("a2")), (1 << 33, _blk("far"))], revokes=[4])
    last = _transaction(img, nxt, 9, [(6, _blk("c3"))])
    res = J.recover(img, geom)
    assert res.transactions == 3 and res.last_sequence == 10
    assert res.blocks[3] == _blk("a2")  # the newer transaction wins
    assert 4 not in res.blocks and res.revoked == 1  # revoked by transaction 8
    assert res.blocks[5] == magic_block  # escaped block gets its magic back
    assert res.blocks[1 << 33] == _blk("far") and res.blocks[6] == _blk("c3")
    assert J.check_journal(img, geom) == []
    # torn commit of transaction 9: half of the commit block is old (zeros)
    torn = bytearray(img.read_block(last - 1))
    torn[BS // 2:] = bytes(BS // 2)
    torn[16:20] = b"\x01\x02\x03\x04"
    img.write_block(last - 1, bytes(torn))
    res = J.recover(img, geom)
    assert res.transactions == 2 and 6 not in res.blocks and res.last_sequence == 9
    # a bad data block: reported and not replayed (as the kernel skips it)
    img.buf[(START + 2) * BS] ^= 0xFF
    res = J.recover(img, geom)
    assert res.problems and "invalid checksum of journal block" in res.problems[0]
    # write=True applies the blocks and marks the journal empty
    res = J.recover(img, geom, write=True)
    assert img.read_block(3) == _blk("a2") and not J.needs_recovery(img, geom)


def test_corrupt_descriptor_before_a_newer_commit_is_refused() -> None:
    img = Img()
    geom = _sb(img, START + 1, 1)
    nxt = _transaction(img, START + 1, 1, [(3, _blk("x"))], commit_sec=50)
    _transaction(img, nxt, 2, [(4, _blk("y"))], commit_sec=60)
    img.buf[nxt * BS + 100] ^= 1  # descriptor of transaction 2 corrupt, its commit good
    with pytest.raises(JournalError, match="invalid checksum"):
        J.recover(img, geom)
    assert any("invalid checksum" in p for p in J.check_journal(img, geom))


def test_region_relative_numbering_as_mkfs_vexfs_writes_it() -> None:
    """mkfs.vexfs numbers the log from its region (s_first 1): log block n is
    device block START + n, unlike ext4's device-numbered external journal."""
    img = Img()
    geom = J.JournalGeometry(START, LEN, BS)
    jsb = J.make_journal_superblock(geom, UUID, sequence=4)
    jsb.s_start = jsb.s_first  # first log block (absolute, as mkfs.vexfs writes it)
    jsb.s_checksum = J.superblock_checksum(jsb)
    img.write_block(START, bytes(jsb).ljust(BS, b"\0"))
    # write the transaction at region block 1 = device block START + 1
    _transaction(img, START + 1, 4, [(7, _blk("r"))])
    assert J.check_journal(img, geom) == []
    res = J.recover(img, geom, write=True)
    assert res.transactions == 1 and img.read_block(7) == _blk("r")
    assert not J.needs_recovery(img, geom)
    assert img.read_block(START)[:4] == struct.pack(">I", J.JBD2_MAGIC_NUMBER)


def test_fsck_replays_first_and_n_writes_nothing(tmp_path: Path) -> None:
    """fsck.vexfs on an image whose journal holds a committed transaction:
    -n says it needs recovery, checks the replayed view and writes nothing;
    -y replays it onto the device and leaves the journal empty."""
    import subprocess
    import sys

    from vexfs import layout as L

    img_path = tmp_path / "t.img"
    with open(img_path, "wb") as fh:
        fh.truncate(64 << 20)
    subprocess.run([sys.executable, "-m", "vexfs.mkfs", "-q", str(img_path)], check=True)
    raw = bytearray(img_path.read_bytes())
    sb = L.SuperBlock.unpack(bytes(raw[:BS]))
    geom = J.JournalGeometry.from_superblock(sb)
    assert geom is not None
    start = geom.start_block
    jsb = J.read_journal_superblock(raw[start * BS:(start + 1) * BS])
    jsb.s_start = jsb.s_first  # first log block (absolute, as mkfs.vexfs writes it)
    jsb.s_checksum = J.superblock_checksum(jsb)
    raw[start * BS:start * BS + 1024] = bytes(jsb)

    class Buf:
        def write_block(self, n: int, data: bytes) -> None:
            raw[n * BS:n * BS + len(data)] = data

    global SEED, UUID
    saved = SEED, UUID
    UUID, SEED = bytes(jsb.s_uuid), J.jbd2_crc32c(bytes(jsb.s_uuid))
    try:
        # the transaction writes the last (free) block of the filesystem
        last_free = sb.s_blocks_count - 1
        _transaction(Buf(), start + 1, int(jsb.s_sequence),  # type: ignore[arg-type]
                     [(last_free, b"\xa5" * BS)])
    finally:
        SEED, UUID = saved
    img_path.write_bytes(bytes(raw))
    before = img_path.read_bytes()
    n = subprocess.run([sys.executable, "-m", "vexfs.fsck", "-n", "-f", str(img_path)],
                       capture_output=True, text=True)
    assert "journal needs recovery (1 transactions, 1 blocks)" in n.stdout, n.stdout + n.stderr
    assert n.returncode == 0, n.stdout
    assert img_path.read_bytes() == before
    y = subprocess.run([sys.executable, "-m", "vexfs.fsck", "-y", "-f", str(img_path)],
                       capture_output=True, text=True)
    assert "recovering journal: 1 transactions, 1 blocks replayed" in y.stdout, y.stdout
    # e2fsck's convention: a run that replayed the journal modified the
    # filesystem (exit 1), even when the check then finds nothing
    assert y.returncode == 1, y.stdout + y.stderr
    assert "FILE SYSTEM WAS MODIFIED" in y.stdout, y.stdout
    after = img_path.read_bytes()
    assert after[(sb.s_blocks_count - 1) * BS:] == b"\xa5" * BS
    with open(img_path, "rb") as fh:
        assert not J.needs_recovery(fh, geom)
    again = subprocess.run([sys.executable, "-m", "vexfs.fsck", "-y", "-f", str(img_path)],
                           capture_output=True, text=True)
    assert again.returncode == 0 and "recovering" not in again.stdout, again.stdout


def test_fsck_aborted_journal_reported_then_cleared(tmp_path: Path) -> None:
    """A journal the kernel aborted (jbd2 s_errno set; the kernel refuses to
    mount it): -n reports it, writes nothing and exits 4; -y clears the
    errno, marks the filesystem ERROR for the check and ends clean with exit
    1 (modified); the next -n is clean."""
    import subprocess
    import sys

    from vexfs import layout as L

    img_path = tmp_path / "a.img"
    with open(img_path, "wb") as fh:
        fh.truncate(32 << 20)
    subprocess.run([sys.executable, "-m", "vexfs.mkfs", "-q", str(img_path)], check=True)
    raw = bytearray(img_path.read_bytes())
    sb = L.SuperBlock.unpack(bytes(raw[:BS]))
    geom = J.JournalGeometry.from_superblock(sb)
    assert geom is not None
    start = geom.start_block
    jsb = J.read_journal_superblock(raw[start * BS:(start + 1) * BS])
    jsb.s_errno = -5  # -EIO, as jbd2_journal_abort() records it
    jsb.s_checksum = J.superblock_checksum(jsb)
    raw[start * BS:start * BS + 1024] = bytes(jsb)
    img_path.write_bytes(bytes(raw))
    before = img_path.read_bytes()
    n = subprocess.run([sys.executable, "-m", "vexfs.fsck", "-n", "-f", str(img_path)],
                       capture_output=True, text=True)
    assert n.returncode == 4, n.stdout + n.stderr
    assert "journal was aborted (errno -5)" in n.stdout, n.stdout
    assert img_path.read_bytes() == before
    y = subprocess.run([sys.executable, "-m", "vexfs.fsck", "-y", "-f", str(img_path)],
                       capture_output=True, text=True)
    assert y.returncode == 1, y.stdout + y.stderr
    assert "cleared the journal's error" in y.stdout, y.stdout
    after = img_path.read_bytes()
    jsb2 = J.read_journal_superblock(after[start * BS:(start + 1) * BS])
    assert jsb2.s_errno == 0 and jsb2.s_checksum == J.superblock_checksum(jsb2)
    sb2 = L.SuperBlock.unpack(after[:BS])
    assert not sb2.s_state & L.VEXFS_STATE_ERROR and sb2.s_state & L.VEXFS_STATE_CLEAN
    n2 = subprocess.run([sys.executable, "-m", "vexfs.fsck", "-n", "-f", str(img_path)],
                        capture_output=True, text=True)
    assert n2.returncode == 0, n2.stdout + n2.stderr
