"""jbd2 journal recovery in Python: parse, check and replay (fsck, offline reader).

The three passes of the kernel's fs/jbd2/recovery.c (and e2fsck/recovery.c):

1. SCAN from the superblock's ``s_start``/``s_sequence``: follow descriptor,
   revoke and commit blocks while each has the jbd2 magic and the expected
   sequence; the first block that does not is the end of the log. A commit
   block whose checksum fails ends the log *before* that transaction (a torn
   commit: the transaction never committed). A descriptor or revoke block
   whose checksum fails is stale unless a later commit is at least as new:
   then the journal is corrupt (the kernel's -EFSBADCRC).
2. REVOKE: collect revoke records (block -> newest revoking sequence).
3. REPLAY: every tagged block of every committed transaction, oldest first,
   unless revoked by a record of the same or a later transaction; escaped
   blocks get their magic back; a data block whose tag checksum fails is
   not replayed and is reported (the kernel skips it the same way).

Tags are ``journal_block_tag3_t`` (16 bytes) with CSUM_V3, otherwise
``journal_block_tag_t`` (8 bytes, +4 with 64BIT, +2 with CSUM_V2); the flags
are the big-endian 16 bits at byte 6 in both. Without SAME_UUID a 16-byte
UUID follows the tag. Tag block numbers are filesystem blocks.

Numbering: a journal opened with ``jbd2_journal_init_dev(bdev, fs_bdev,
start, len, bs)`` reads its superblock at device block ``start``, but
jbd2_journal_bmap() maps log block n to device block n with no offset unless
the filesystem sets ``journal->j_bmap``. ext4's external journal device uses
device numbers (mke2fs -O journal_dev: superblock in block 1, s_first 2,
s_maxlen = device blocks). VexFS's mkfs numbers the log from its region
(s_first 1, s_maxlen = region blocks), which is right only if the kernel maps
log block n to ``s_journal_start + n`` (j_bmap). Both are read here: a
journal whose ``s_first`` is past the superblock's block is device-numbered,
otherwise region-relative.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TextIO, Union

from vexfs.fs import journal as J

if TYPE_CHECKING:
    from vexfs import layout as L_
    from vexfs.fs.blockdev import Device

log = logging.getLogger(__name__)

JBD2_FLAG_ESCAPE = 1
JBD2_FLAG_SAME_UUID = 2
JBD2_FLAG_DELETED = 4
JBD2_FLAG_LAST_TAG = 8
JBD2_CRC32_CHKSUM = 1
JBD2_CRC32_CHKSUM_SIZE = 4
HEADER = struct.Struct(">III")
COMMIT_SEC = struct.Struct(">Q")  # h_commit_sec at byte 48 of commit_header
COMMIT_SEC_OFF = 12 + 4 + 32
SUPPORTED_INCOMPAT = (J.JBD2_FEATURE_INCOMPAT_REVOKE | J.JBD2_FEATURE_INCOMPAT_64BIT
                      | J.JBD2_FEATURE_INCOMPAT_ASYNC_COMMIT | J.JBD2_FEATURE_INCOMPAT_CSUM_V2
                      | J.JBD2_FEATURE_INCOMPAT_CSUM_V3)


class JournalError(ValueError):
    """The journal cannot be recovered (corrupt superblock or log)."""


class _BlockReader(Protocol):
    def read_block(self, blkno: int, count: int = 1) -> bytes: ...


Readable = Union[_BlockReader, BinaryIO]


@dataclass
class RecoveryResult:
    transactions: int = 0  # committed transactions found (and replayed)
    blocks: dict[int, bytes] = field(default_factory=dict)  # fs block -> replayed content
    last_sequence: int = 0  # the sequence after the last committed transaction
    start_sequence: int = 0
    revoked: int = 0  # tagged blocks not replayed because revoked
    problems: list[str] = field(default_factory=list)  # bad data-block checksums etc.
    written: bool = False


@dataclass
class _Journal:
    f: Readable
    geom: J.JournalGeometry
    sb: J.JournalSuperBlock
    seed: int

    @property
    def offset(self) -> int:
        """Device block of log block 0 (see the module doc on numbering)."""
        return 0 if self.sb.s_first > self.geom.start_block else self.geom.start_block

    @property
    def incompat(self) -> int:
        return int(self.sb.s_feature_incompat)

    @property
    def csum_v23(self) -> bool:
        return bool(self.incompat & (J.JBD2_FEATURE_INCOMPAT_CSUM_V2
                                     | J.JBD2_FEATURE_INCOMPAT_CSUM_V3))

    @property
    def tag_bytes(self) -> int:
        if self.incompat & J.JBD2_FEATURE_INCOMPAT_CSUM_V3:
            return 16
        size = 12 + (2 if self.incompat & J.JBD2_FEATURE_INCOMPAT_CSUM_V2 else 0)
        return size if self.incompat & J.JBD2_FEATURE_INCOMPAT_64BIT else size - 4

    def read(self, jblock: int) -> bytes:
        """Log block jblock (a device block number, see the module doc)."""
        bs = self.geom.block_size
        fsblock = jblock + self.offset
        if hasattr(self.f, "read_block"):
            data = self.f.read_block(fsblock)  # type: ignore[union-attr]
        else:
            data = os.pread(self.f.fileno(), bs, fsblock * bs)  # type: ignore[union-attr]
        if len(data) != bs:
            raise JournalError(f"journal block {jblock} (fs block {fsblock}) is past the device")
        return data

    def wrap(self, jblock: int) -> int:
        first, last = int(self.sb.s_first), int(self.sb.s_maxlen)
        return jblock - (last - first) if jblock >= last else jblock

    def block_tail_ok(self, block: bytes) -> bool:
        """Descriptor/revoke block tail checksum (CSUM_V2/V3)."""
        if not self.csum_v23:
            return True
        stored = struct.unpack_from(">I", block, len(block) - 4)[0]
        return bool(J.jbd2_crc32c(block[:-4] + bytes(4), self.seed) == stored)

    def commit_ok(self, block: bytes) -> bool:
        if not self.csum_v23:
            return True
        stored = struct.unpack_from(">I", block, 16)[0]
        raw = bytearray(block)
        raw[16:20] = bytes(4)
        return bool(J.jbd2_crc32c(raw, self.seed) == stored)

    def tag_ok(self, tag: bytes, sequence: int, data: bytes) -> bool:
        if not self.csum_v23:
            return True
        csum = J.jbd2_crc32c(data, J.jbd2_crc32c(struct.pack(">I", sequence), self.seed))
        if self.incompat & J.JBD2_FEATURE_INCOMPAT_CSUM_V3:
            return bool(struct.unpack_from(">I", tag, 12)[0] == csum)
        return bool(struct.unpack_from(">H", tag, 4)[0] == csum & 0xFFFF)

    def tags(self, block: bytes) -> list[tuple[int, int, bytes]]:
        """(fs block, flags, raw tag) of a descriptor block, as count_tags walks it."""
        size = len(block) - (4 if self.csum_v23 else 0)
        tb = self.tag_bytes
        big = bool(self.incompat & J.JBD2_FEATURE_INCOMPAT_64BIT)
        out = []
        pos = HEADER.size
        while pos + tb <= size:
            tag = block[pos:pos + tb]
            flags = struct.unpack_from(">H", tag, 6)[0]
            blocknr = struct.unpack_from(">I", tag, 0)[0]
            if big:
                blocknr |= struct.unpack_from(">I", tag, 8)[0] << 32
            out.append((blocknr, flags, tag))
            pos += tb
            if not flags & JBD2_FLAG_SAME_UUID:
                pos += 16
            if flags & JBD2_FLAG_LAST_TAG:
                break
        return out

    def revokes(self, block: bytes) -> list[int]:
        r_count = struct.unpack_from(">I", block, 12)[0]
        rsize = 8 if self.incompat & J.JBD2_FEATURE_INCOMPAT_64BIT else 4
        limit = len(block) - (4 if self.csum_v23 else 0)
        if r_count > limit or r_count < 16:
            raise JournalError(f"revoke block with r_count {r_count}")
        fmt = ">Q" if rsize == 8 else ">I"
        return [struct.unpack_from(fmt, block, off)[0] for off in range(16, r_count - rsize + 1,
                                                                          rsize)]


def superblock_problems(sb: J.JournalSuperBlock, geom: J.JournalGeometry) -> list[str]:
    """Why this journal superblock cannot be used (empty: it can)."""
    out = []
    if sb.s_header.h_magic != J.JBD2_MAGIC_NUMBER:
        return [f"journal superblock magic {int(sb.s_header.h_magic):#x} is not jbd2's"]
    if sb.s_header.h_blocktype not in (J.JBD2_SUPERBLOCK_V1, J.JBD2_SUPERBLOCK_V2):
        out.append(f"journal superblock type {int(sb.s_header.h_blocktype)}")
    if sb.s_blocksize != geom.block_size:
        out.append(f"journal block size {int(sb.s_blocksize)}, filesystem {geom.block_size}")
    device_numbered = sb.s_first > geom.start_block
    base = 0 if device_numbered else geom.start_block
    end = geom.start_block + geom.blocks
    if sb.s_maxlen + base > end or sb.s_maxlen + base - geom.start_block < \
            J.JBD2_MIN_JOURNAL_BLOCKS:
        out.append(f"journal log ends at block {int(sb.s_maxlen) + base}, the region is "
                   f"blocks {geom.start_block}..{end - 1}")
    if not 1 <= sb.s_first < sb.s_maxlen:
        out.append(f"journal first log block {int(sb.s_first)}")
    if sb.s_start and not sb.s_first <= sb.s_start < sb.s_maxlen:
        out.append(f"journal start {int(sb.s_start)} outside the log")
    if sb.s_header.h_blocktype == J.JBD2_SUPERBLOCK_V2:
        bad = int(sb.s_feature_incompat) & ~SUPPORTED_INCOMPAT
        if bad:
            out.append(f"unsupported jbd2 incompat features {bad:#x}")
        if sb.s_feature_incompat & J.JBD2_FEATURE_INCOMPAT_CSUM_V3 and \
                sb.s_feature_incompat & J.JBD2_FEATURE_INCOMPAT_CSUM_V2:
            out.append("both CSUM_V2 and CSUM_V3 set")
        if sb.s_feature_incompat & (J.JBD2_FEATURE_INCOMPAT_CSUM_V2
                                    | J.JBD2_FEATURE_INCOMPAT_CSUM_V3):
            if sb.s_checksum_type != J.JBD2_CRC32C_CHKSUM:
                out.append(f"journal checksum type {int(sb.s_checksum_type)}")
            elif J.superblock_checksum(sb) != sb.s_checksum:
                out.append("journal superblock checksum mismatch")
    return out


def _open(f: Readable, geom: J.JournalGeometry) -> _Journal:
    bs = geom.block_size
    if hasattr(f, "read_block"):
        raw = f.read_block(geom.start_block)  # type: ignore[union-attr]
    else:
        raw = os.pread(f.fileno(), bs, geom.start_block * bs)  # type: ignore[union-attr]
    sb = J.read_journal_superblock(raw)
    problems = superblock_problems(sb, geom)
    if problems:
        raise JournalError("; ".join(problems))
    seed = J.jbd2_crc32c(bytes(sb.s_uuid))
    return _Journal(f=f, geom=geom, sb=sb, seed=seed)


def needs_recovery(f: Readable, geom: J.JournalGeometry) -> bool:
    """True if the journal holds transactions not yet checkpointed (s_start != 0)."""
    return int(_open(f, geom).sb.s_start) != 0


def _scan(j: _Journal) -> tuple[int, list[tuple[int, list[tuple[int, int, bytes, int]]]],
                                dict[int, int], list[str]]:
    """PASS_SCAN + PASS_REVOKE in one walk: committed transactions with their
    (fs block, flags, tag, journal block) lists, revoke table, problems."""
    seq = int(j.sb.s_sequence)
    jblock = int(j.sb.s_start)
    maxlen = int(j.sb.s_maxlen)
    committed: list[tuple[int, list[tuple[int, int, bytes, int]]]] = []
    revoked: dict[int, int] = {}
    problems: list[str] = []
    pending: list[tuple[int, int, bytes, int]] = []
    pending_revokes: list[int] = []
    need_check_commit_time = False
    last_commit_time = 0
    steps = 0
    while True:
        steps += 1
        if steps > 4 * maxlen:  # every block visited more than once: a loop in a corrupt log
            raise JournalError("journal log does not end (loop)")
        block = j.read(jblock)
        here = jblock
        jblock = j.wrap(jblock + 1)
        magic, btype, bseq = HEADER.unpack_from(block)
        if magic != J.JBD2_MAGIC_NUMBER or bseq != seq:
            break
        if btype == J.JBD2_DESCRIPTOR_BLOCK:
            if not j.block_tail_ok(block):
                need_check_commit_time = True
            tags = j.tags(block)
            for blocknr, flags, tag in tags:
                pending.append((blocknr, flags, tag, jblock))
                jblock = j.wrap(jblock + 1)
            continue
        if btype == J.JBD2_COMMIT_BLOCK:
            commit_time = COMMIT_SEC.unpack_from(block, COMMIT_SEC_OFF)[0]
            if need_check_commit_time:
                if commit_time >= last_commit_time:
                    raise JournalError(f"invalid checksum found in transaction {seq} "
                                       f"(journal block {here})")
                break  # stale blocks of an older use of the log: the end
            if not j.commit_ok(block):
                # a torn or stale commit: the transaction did not commit
                break
            last_commit_time = commit_time
            committed.append((seq, pending))
            for b in pending_revokes:
                revoked[b] = seq if b not in revoked or seq > revoked[b] else revoked[b]
            pending, pending_revokes = [], []
            seq = (seq + 1) & 0xFFFFFFFF
            continue
        if btype == J.JBD2_REVOKE_BLOCK:
            if not j.block_tail_ok(block):
                need_check_commit_time = True
                continue
            pending_revokes += j.revokes(block)
            continue
        break  # an unknown block type ends the scan, as in the kernel
    return seq, committed, revoked, problems


def recover(f: Readable, geom: J.JournalGeometry, write: bool = False) -> RecoveryResult:
    """Replay the journal's committed transactions. The replayed blocks are
    returned in .blocks; with write=True they are written to f (which must
    then be writable) and the journal is marked empty, as jbd2 does after
    recovery (s_start 0, s_sequence past the last transaction)."""
    j = _open(f, geom)
    res = RecoveryResult(start_sequence=int(j.sb.s_sequence), last_sequence=int(j.sb.s_sequence))
    if j.sb.s_start == 0:
        return res
    end_seq, committed, revoked, problems = _scan(j)
    res.problems += problems
    res.transactions = len(committed)
    res.last_sequence = end_seq
    for seq, tags in committed:
        for blocknr, flags, tag, jb in tags:
            if blocknr in revoked and _tid_geq(revoked[blocknr], seq):
                res.revoked += 1
                continue
            data = j.read(jb)
            if flags & JBD2_FLAG_ESCAPE:
                data = struct.pack(">I", J.JBD2_MAGIC_NUMBER) + data[4:]
            if not j.tag_ok(tag, seq, j.read(jb)):
                res.problems.append(f"invalid checksum of journal block {jb} "
                                    f"(home block {blocknr}, transaction {seq}): not replayed")
                continue
            res.blocks[blocknr] = data
    if write:
        _write_back(j, res)
    return res


def _tid_geq(a: int, b: int) -> bool:
    return ((a - b) & 0xFFFFFFFF) < 0x80000000


def _write_back(j: _Journal, res: RecoveryResult) -> None:
    bs = j.geom.block_size
    for blocknr, data in sorted(res.blocks.items()):
        J._write(j.f, blocknr * bs, data)  # type: ignore[arg-type]
    sb = j.sb
    sb.s_start = 0
    sb.s_sequence = (res.last_sequence + 1) & 0xFFFFFFFF
    if sb.s_feature_incompat & (J.JBD2_FEATURE_INCOMPAT_CSUM_V2 | J.JBD2_FEATURE_INCOMPAT_CSUM_V3):
        sb.s_checksum = J.superblock_checksum(sb)
    raw = bytearray(j.read(j.geom.start_block - j.offset))
    raw[:len(bytes(sb))] = bytes(sb)
    J._write(j.f, j.geom.start_block * bs, bytes(raw))  # type: ignore[arg-type]
    res.written = True


def check_journal(f: Readable, geom: J.JournalGeometry) -> list[str]:
    """Problems of the journal's own structure (empty list: sound)."""
    try:
        j = _open(f, geom)
    except (JournalError, ValueError) as e:
        return [str(e)]
    if j.sb.s_start == 0:
        return []
    try:
        _, committed, _, problems = _scan(j)
        for seq, tags in committed:
            for blocknr, _flags, tag, jb in tags:
                if blocknr >= (1 << 48):
                    problems.append(f"transaction {seq} tags block {blocknr}, "
                                    "beyond any filesystem")
                elif not j.tag_ok(tag, seq, j.read(jb)):
                    problems.append(f"invalid checksum of journal block {jb} "
                                    f"(home block {blocknr}, transaction {seq})")
        return problems
    except JournalError as e:
        return [str(e)]


# ---------------------------------------------------------------- users: reader and fsck


class ReplayedDevice:
    """A read-only view of a device with the journal's committed blocks
    applied in memory (the offline reader and fsck -n: nothing is written)."""

    def __init__(self, dev: Device, blocks: dict[int, bytes], block_size: int) -> None:
        self._dev, self._blocks, self._bs = dev, blocks, block_size
        self.size = dev.size

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray(self._dev.read(offset, length))
        first, last = offset // self._bs, (offset + len(out) - 1) // self._bs
        for b in range(first, last + 1) if out else ():
            data = self._blocks.get(b)
            if data is None:
                continue
            lo = max(offset, b * self._bs)
            hi = min(offset + len(out), (b + 1) * self._bs)
            out[lo - offset:hi - offset] = data[lo - b * self._bs:hi - b * self._bs]
        return bytes(out)

    def read_block(self, blkno: int, count: int = 1) -> bytes:
        return self.read(blkno * self._bs, count * self._bs)

    def write(self, offset: int, data: bytes) -> None:
        raise OSError(30, "the replayed journal view is read-only")

    def write_block(self, blkno: int, data: bytes) -> None:
        raise OSError(30, "the replayed journal view is read-only")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._dev.close()

    def __getattr__(self, name: str) -> Any:  # fd, path... of the real device
        return getattr(self._dev, name)


def _geometry_of(sb: L_.SuperBlock) -> J.JournalGeometry | None:
    return J.JournalGeometry.from_superblock(sb)


def replayed_view(dev: Device, sb: L_.SuperBlock) -> tuple[object, RecoveryResult | None]:
    """(device to read through, recovery result): the device itself when the
    filesystem has no journal or it is clean, else a ReplayedDevice."""
    geom = _geometry_of(sb)
    if geom is None:
        return dev, None
    try:
        if not needs_recovery(dev, geom):
            return dev, None
        res = recover(dev, geom, write=False)
    except (JournalError, OSError) as e:
        log.warning("journal not replayed in the offline view: %s", e)
        return dev, None
    return ReplayedDevice(dev, res.blocks, geom.block_size), res


@dataclass
class FsckReplay:
    """What fsck's journal step did (fsck_replay)."""

    stop: int | None = None  # an exit code to stop with, or None to go on checking
    replayed: int = 0  # transactions written onto the device (-y/-p)
    aborted_errno: int = 0  # the jbd2 errno of a journal aborted on an earlier mount
    cleared: bool = False  # ... and -y/-p cleared it


def fsck_replay(path: str, sb: L_.SuperBlock, mode: str, out: TextIO) -> FsckReplay:
    """fsck's journal step, before anything else reads the filesystem (e2fsck's
    order). -y/-p: replay onto the device and clear RECOVER. -n: say the
    journal needs recovery; the check then reads the replayed view in memory
    (vexfs.fs.filesystem.Image) and nothing is written. A journal that the
    kernel aborted (jbd2's s_errno set: a journal or metadata write failed)
    is reported; -y/-p clear the errno after replaying, as e2fsck does, and
    mark the filesystem ERROR so that the check that follows is a full one."""
    from vexfs import layout as L
    from vexfs.fs.blockdev import Device

    outcome = FsckReplay()
    geom = _geometry_of(sb)
    if geom is None:
        return outcome
    writable = mode in ("y", "p")
    with Device(path, writable=writable) as dev:
        problems = check_journal(dev, geom)
        for p in problems:
            print(f"fsck.vexfs: {path}: journal: {p}", file=out)
        try:
            dirty = needs_recovery(dev, geom)
            outcome.aborted_errno = int(_open(dev, geom).sb.s_errno)
        except JournalError:
            print(f"fsck.vexfs: {path}: the journal superblock is unusable; not checking a "
                  "filesystem whose journal cannot be replayed", file=out)
            outcome.stop = 4
            return outcome
        if outcome.aborted_errno:
            print(f"fsck.vexfs: {path}: the journal was aborted (errno {outcome.aborted_errno}) "
                  "on an earlier mount: a journal or metadata write failed", file=out)
        if not dirty or mode == "n":
            if dirty:
                res = recover(dev, geom, write=False)
                print(f"fsck.vexfs: {path}: the journal needs recovery ({res.transactions} "
                      f"transactions, {len(res.blocks)} blocks); -n does not replay it: "
                      "checking the replayed view in memory", file=out)
            if problems:
                outcome.stop = 4
            elif outcome.aborted_errno and writable:
                _clear_errno(dev, geom, path, out)
                outcome.cleared = True
            return outcome
        res = recover(dev, geom, write=True)
        outcome.replayed = res.transactions
        raw = bytearray(dev.read_block(0))
        nsb = L.SuperBlock.unpack(bytes(raw))
        if nsb.s_feature_incompat & L.VEXFS_FEATURE_INCOMPAT_RECOVER:
            from vexfs.fs.alloc import write_superblock

            nsb.s_feature_incompat &= ~L.VEXFS_FEATURE_INCOMPAT_RECOVER
            write_superblock(dev, nsb)
        dev.flush()
        print(f"fsck.vexfs: {path}: recovering journal: {res.transactions} transactions, "
              f"{len(res.blocks)} blocks replayed", file=out)
        if outcome.aborted_errno:
            _clear_errno(dev, geom, path, out)
            outcome.cleared = True
    return outcome


def _clear_errno(dev: Any, geom: J.JournalGeometry, path: str, out: TextIO) -> None:
    """Clear jbd2's s_errno (the kernel refuses to mount while it is set) and
    set the filesystem's ERROR state in its place, so the check that follows
    treats it as one with errors and clears that only when it finds the
    filesystem sound."""
    from vexfs import layout as L
    from vexfs.fs.alloc import write_superblock

    j = _open(dev, geom)
    jsb = j.sb
    jsb.s_errno = 0
    if jsb.s_feature_incompat & (J.JBD2_FEATURE_INCOMPAT_CSUM_V2 | J.JBD2_FEATURE_INCOMPAT_CSUM_V3):
        jsb.s_checksum = J.superblock_checksum(jsb)
    bs = geom.block_size
    raw = bytearray(j.read(geom.start_block - j.offset))
    raw[:len(bytes(jsb))] = bytes(jsb)
    J._write(dev, geom.start_block * bs, bytes(raw))
    nsb = L.SuperBlock.unpack(dev.read_block(0))
    nsb.s_state |= L.VEXFS_STATE_ERROR
    write_superblock(dev, nsb)
    dev.flush()
    print(f"fsck.vexfs: {path}: cleared the journal's error (the filesystem is marked as having "
          "errors until this check finds none)", file=out)
