"""mkfs.vexfs: create a VexFS filesystem on a block device or an image file.

    mkfs.vexfs [-L label] [-U uuid|random|time|clear] [-N inodes] [-J size=MiB]
               [-O ^has_journal] [-f] [-q] [-n] DEVICE|FILE [SIZE]

e2fsprogs conventions: refuses to overwrite an existing filesystem signature
or partition table unless -f, refuses a mounted (or otherwise exclusively
opened) device, prints the geometry, exit 0 on success and 1 on any error.
With SIZE (e.g. 100M, 2G) a missing FILE is created, or a shorter one
extended, as a sparse file.

Only metadata is written: the superblock, both bitmaps, the inode table
(zeroed, because stale bytes must never parse as inodes), the root directory
(inode 1 and its first block) and zeroes over the first MiB and the last
128 KiB so no stale signature of an older filesystem survives. Formatting 500 MB takes a few
milliseconds.

Geometry (all computed by ``Geometry.compute``):
  block 0 superblock, then the inode bitmap, the block bitmap, the inode
  table, the jbd2 journal, and the data region. The journal's default size
  follows mke2fs (ext2fs_default_journal_size): none below 8 MiB, 4 MiB below
  128 MiB, 16 MiB below 1 GiB, 32 MiB below 2 GiB, 64 MiB below 16 GiB, up
  to 1 GiB; ``-J size=`` sets it, ``-O ^has_journal`` leaves it out. The default inode count is one inode per
  16 KiB of device (``BYTES_PER_INODE``), rounded up to a whole inode-table
  block (16 inodes), at least 16, and at most 2^32 - 16.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import logging
import os
import re
import shutil
import stat
import struct
import sys
import time
import uuid as uuidlib
from dataclasses import dataclass

from vexfs import layout as L
from vexfs.fs.journal import JournalGeometry, default_journal_blocks, format_journal
from vexfs.image import Device, make_dir_block

log = logging.getLogger(__name__)

BS = L.VEXFS_BLOCK_SIZE
BYTES_PER_INODE = 16384
MIN_INODES = L.VEXFS_INODES_PER_BLOCK
MAX_INODES = 2**32 - L.VEXFS_INODES_PER_BLOCK
#: bytes zeroed at the start of the device so old signatures (btrfs at 64 KiB,
#: ISO9660 at 32 KiB, ...) cannot survive the format
WIPE_BYTES = 1 << 20
#: bytes zeroed at the end (backup GPT header, md 0.90/1.0 superblocks)
TAIL_WIPE_BYTES = 128 << 10


class MkfsError(Exception):
    """A reason not to format; the message is shown to the user."""


# --------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    blocks: int
    inodes: int
    ibitmap_start: int
    ibitmap_blocks: int
    bbitmap_start: int
    bbitmap_blocks: int
    itable_start: int
    itable_blocks: int
    data_start: int
    journal_start: int = 0
    journal_blocks: int = 0

    @property
    def root_dir_block(self) -> int:
        return self.data_start

    @property
    def metadata_blocks(self) -> int:
        return self.data_start

    @classmethod
    def compute(cls, blocks: int, inodes: int | None = None,
                journal_blocks: int = 0) -> "Geometry":
        """The layout for a device of ``blocks`` blocks; the journal (if
        ``journal_blocks``) follows the inode table, before the data region."""
        if blocks < L.VEXFS_MIN_BLOCKS:
            raise MkfsError(f"device too small: {blocks} blocks of 4 KiB, VexFS needs at "
                            f"least {L.VEXFS_MIN_BLOCKS} ({L.VEXFS_MIN_BLOCKS * BS // 1024} KiB)")
        if inodes is None:
            inodes = blocks * BS // BYTES_PER_INODE
        if inodes < 1:
            raise MkfsError(f"inode count {inodes} must be at least 1")
        inodes = L.div_round_up(inodes, L.VEXFS_INODES_PER_BLOCK) * L.VEXFS_INODES_PER_BLOCK
        inodes = max(MIN_INODES, inodes)
        if inodes > MAX_INODES:
            raise MkfsError(f"too many inodes ({inodes}); at most {MAX_INODES}")
        ib = L.ibitmap_blocks_for(inodes)
        bb = L.bbitmap_blocks_for(blocks)
        it = L.itable_blocks_for(inodes)
        if journal_blocks and not (L.VEXFS_MIN_JOURNAL_BLOCKS <= journal_blocks < 1 << 32):
            raise MkfsError(f"journal of {journal_blocks} blocks: jbd2 needs at least "
                            f"{L.VEXFS_MIN_JOURNAL_BLOCKS} (4 MiB)")
        journal_start = 1 + ib + bb + it if journal_blocks else 0
        data_start = 1 + ib + bb + it + journal_blocks
        # The root directory needs one data block; keep at least as many data
        # blocks as there are inodes, otherwise the inode table is pointless.
        if data_start + 1 > blocks:
            if journal_blocks:
                raise MkfsError(f"a journal of {journal_blocks} blocks does not fit beside "
                                f"{it} inode-table blocks on {blocks} blocks")
            raise MkfsError(f"{inodes} inodes need {it} inode-table blocks; the device "
                            f"has only {blocks} blocks")
        return cls(blocks=blocks, inodes=inodes, ibitmap_start=1, ibitmap_blocks=ib,
                   bbitmap_start=1 + ib, bbitmap_blocks=bb, itable_start=1 + ib + bb,
                   itable_blocks=it, data_start=data_start,
                   journal_start=journal_start, journal_blocks=journal_blocks)


# --------------------------------------------------------------------------
# Building the metadata
# --------------------------------------------------------------------------


def make_bitmap_blocks(nbits: int, nblocks: int, used: int) -> list[bytearray]:
    """Bitmap blocks with bits [0, used) set, bits >= nbits (the tail) set,
    each with a header and checksum."""
    out = []
    for b in range(nblocks):
        block = bytearray(BS)
        lo = b * L.VEXFS_BITS_PER_BITMAP
        hi = lo + L.VEXFS_BITS_PER_BITMAP
        bits = bytearray(L.VEXFS_BITMAP_BYTES)
        set_ranges = [(0, used), (nbits, hi)]
        for a, z in set_ranges:
            a, z = max(a, lo) - lo, min(z, hi) - lo
            if a < z:
                set_bit_range(bits, a, z)
        block[16:] = bits
        block[0:16] = bytes(L.BitmapHeader(bh_magic=L.VEXFS_BITMAP_MAGIC, bh_index=b))
        L.seal_block(block, "bitmap")
        out.append(block)
    return out


def set_bit_range(bits: bytearray, a: int, z: int) -> None:
    """Set bits [a, z) of a little-endian-bit-order bitmap."""
    while a < z and a % 8:
        bits[a // 8] |= 1 << (a % 8)
        a += 1
    full = (z - a) // 8
    if full:
        bits[a // 8:a // 8 + full] = b"\xff" * full
        a += full * 8
    while a < z:
        bits[a // 8] |= 1 << (a % 8)
        a += 1


def make_superblock(geo: Geometry, uuid: bytes, label: str, now: int,
                    used_blocks: int, used_inodes: int) -> L.SuperBlock:
    lab = label.encode()
    sb = L.SuperBlock(
        s_magic=L.VEXFS_MAGIC, s_version=L.VEXFS_FORMAT_VERSION,
        s_feature_compat=L.VEXFS_FEATURE_COMPAT_HAS_JOURNAL if geo.journal_blocks else 0,
        s_journal_start=geo.journal_start, s_journal_blocks=geo.journal_blocks,
        s_feature_incompat=L.VEXFS_FEATURE_INCOMPAT_EXTENTS,
        s_feature_ro_compat=L.VEXFS_FEATURE_RO_COMPAT_COLLECTIONS,
        s_block_size=BS, s_blocks_count=geo.blocks,
        s_free_blocks=geo.blocks - used_blocks,
        s_inodes_count=geo.inodes, s_free_inodes=geo.inodes - used_inodes,
        s_ibitmap_start=geo.ibitmap_start, s_bbitmap_start=geo.bbitmap_start,
        s_itable_start=geo.itable_start, s_data_start=geo.data_start,
        s_ibitmap_blocks=geo.ibitmap_blocks, s_bbitmap_blocks=geo.bbitmap_blocks,
        s_itable_blocks=geo.itable_blocks, s_root_ino=L.VEXFS_ROOT_INO,
        s_state=L.VEXFS_STATE_CLEAN, s_inode_size=L.VEXFS_INODE_SIZE,
        s_mount_count=0, s_mkfs_time=now, s_mount_time=0, s_write_time=now,
    )
    ctypes.memmove(sb.s_uuid, uuid, 16)
    ctypes.memmove(sb.s_label, lab, len(lab))
    return L.seal(sb)


def make_root_inode(geo: Geometry, now_ns: int) -> L.Inode:
    sec, nsec = divmod(now_ns, 10**9)
    ino = L.Inode(i_mode=stat.S_IFDIR | 0o755, i_links_count=2, i_uid=os.getuid(),
                  i_gid=os.getgid(), i_size=BS, i_blocks=1,
                  i_atime=sec, i_mtime=sec, i_ctime=sec, i_crtime=sec,
                  i_atime_nsec=nsec, i_mtime_nsec=nsec, i_ctime_nsec=nsec,
                  i_crtime_nsec=nsec, i_nr_extents=1)
    ino.i_extents[0].ee_logical = 0
    ino.i_extents[0].ee_start = geo.root_dir_block
    ino.i_extents[0].ee_len = 1
    return L.seal(ino)


# --------------------------------------------------------------------------
# Zeroing ranges fast
# --------------------------------------------------------------------------

BLKZEROOUT = 0x127F
BLKGETSIZE64 = 0x80081272
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
# the symbols of the running process include libc's (ctypes.util.find_library
# would fork ldconfig and cost seconds under TCG)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


# Below this size a block device gets plain zero writes: they cost a few ms,
# while BLKZEROOUT on a loop device whose backing file cannot zero a range
# (tmpfs) makes the block layer log an "operation not supported" I/O error
# for every call before it falls back.
DIRECT_ZERO_LIMIT = 64 << 20


def zero_range(dev: Device, offset: int, length: int) -> None:
    """Make [offset, offset+length) read as zero: plain writes for small
    ranges and BLKZEROOUT for large ones on block devices, a punched hole in
    files, plain zero writes as the fallback."""
    if length <= 0:
        return
    try:
        if dev.is_block and length > DIRECT_ZERO_LIMIT:
            fcntl.ioctl(dev.fd, BLKZEROOUT, struct.pack("QQ", offset, length))
            return
        if not dev.is_block and _libc.fallocate(dev.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           offset, length) == 0:
            return
        log.debug("punch hole failed: %s", os.strerror(ctypes.get_errno()))
    except OSError as e:
        log.debug("fast zeroing failed (%s), writing zeroes", e)
    chunk = b"\0" * (1 << 20)
    end = offset + length
    while offset < end:
        n = min(len(chunk), end - offset)
        dev.write(offset, chunk[:n])
        offset += n


# --------------------------------------------------------------------------
# Safety checks: existing signatures, mounted devices
# --------------------------------------------------------------------------

# (name, byte offset, magic bytes) of signatures probed without libblkid.
SIGNATURES: list[tuple[str, int, bytes]] = [
    ("vexfs", 0, L.VEXFS_MAGIC.to_bytes(4, "little")),
    ("ext2/ext3/ext4", 1080, b"\x53\xef"),
    ("xfs", 0, b"XFSB"),
    ("btrfs", 65536 + 64, b"_BHRfS_M"),
    ("swap", 4086, b"SWAPSPACE2"),
    ("swap (v0)", 4086, b"SWAP-SPACE"),
    ("crypto_LUKS", 0, b"LUKS\xba\xbe"),
    ("squashfs", 0, b"hsqs"),
    ("iso9660", 32769, b"CD001"),
    ("gpt partition table", 512, b"EFI PART"),
    ("f2fs", 1024, b"\x10\x20\xf5\xf2"),
    ("LVM2 member", 536, b"LVM2 001"),
    ("linux_raid_member", 4096, b"\xfc\x4e\x2b\xa9"),
]


def probe_signatures(dev: Device) -> list[str]:
    """Names of filesystem/partition-table signatures found on the device."""
    found: list[str] = []
    for name, off, magic in SIGNATURES:
        if off + len(magic) <= dev.size:
            if os.pread(dev.fd, len(magic), off) == magic:
                found.append(name)
    if dev.size >= 512:
        sector = os.pread(dev.fd, 512, 0)
        if sector[510:512] == b"\x55\xaa" and any(
                sector[446 + 16 * i + 4] for i in range(4)):
            found.append("dos partition table")
        elif sector[510:512] == b"\x55\xaa" and sector[3:11].strip():
            found.append("boot sector (FAT?)")
    found += blkid_probe(dev.path)
    # keep the order, drop duplicates
    return list(dict.fromkeys(found))


def blkid_probe(path: str) -> list[str]:
    """Signatures libblkid's low-level probe (blkid -p) recognises, if installed."""
    blkid = shutil.which("blkid") or ("/usr/sbin/blkid" if os.path.exists("/usr/sbin/blkid")
                                      else None)
    if not blkid:
        return []
    import subprocess      # lazily: costly to import under TCG, only needed here
    try:
        res = subprocess.run([blkid, "-p", "-o", "export", path], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.debug("blkid failed: %s", e)
        return []
    if res.returncode != 0:   # 2: nothing found; anything else: cannot tell
        return []
    out = []
    for line in res.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "TYPE":
            out.append(value)
        elif key == "PTTYPE":
            out.append(f"{value} partition table")
    return out


def _decode_mount_path(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounted_at(path: str) -> str | None:
    """Mount point if ``path`` (a block device, or a file backing a loop
    device) is mounted, else None."""
    real = os.path.realpath(path)
    st = os.stat(real)
    devnums: set[tuple[int, int]] = set()
    if stat.S_ISBLK(st.st_mode):
        devnums.add((os.major(st.st_rdev), os.minor(st.st_rdev)))
    else:
        # a regular file can be mounted through a loop device
        try:
            loops = os.listdir("/sys/block")
        except OSError:
            loops = []
        for name in loops:
            if not name.startswith("loop"):
                continue
            try:
                with open(f"/sys/block/{name}/loop/backing_file") as f:
                    backing = f.read().strip()
                with open(f"/sys/block/{name}/dev") as f:
                    maj, mnr = f.read().strip().split(":")
            except OSError:
                continue
            if backing == real:
                devnums.add((int(maj), int(mnr)))
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                maj, mnr = fields[2].split(":")
                sep = fields.index("-")
                source = _decode_mount_path(fields[sep + 2])
                if (int(maj), int(mnr)) in devnums or source == real:
                    return _decode_mount_path(fields[4])
    except OSError:
        pass
    try:
        with open("/proc/mounts") as f:
            for line in f:
                source, mnt = line.split()[:2]
                if _decode_mount_path(source) == real:
                    return _decode_mount_path(mnt)
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------
# The format itself
# --------------------------------------------------------------------------


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*", text)
    if not m:
        raise MkfsError(f"bad size {text!r} (use e.g. 100M, 2G, 65536K)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    return int(m.group(1)) * mult[m.group(2).lower()]


def parse_uuid(text: str | None) -> bytes:
    if text is None or text == "random":
        return uuidlib.uuid4().bytes
    if text == "time":
        return uuidlib.uuid1().bytes
    if text == "clear":
        return bytes(16)
    try:
        return uuidlib.UUID(text).bytes
    except ValueError:
        raise MkfsError(f"invalid UUID {text!r}") from None


@dataclass
class MkfsResult:
    geometry: Geometry
    uuid: bytes
    label: str
    seconds: float


def journal_blocks_for(blocks: int, journal_mib: int | None = None,
                       journal: bool = True) -> int:
    """Journal blocks for a device: none with ``journal=False``, ``journal_mib``
    MiB if given, else mke2fs's default for the size (none below 8 MiB)."""
    if not journal:
        return 0
    if journal_mib is None:
        return default_journal_blocks(blocks)
    want = journal_mib * (1 << 20) // BS
    if want < L.VEXFS_MIN_JOURNAL_BLOCKS:
        raise MkfsError(f"journal size {journal_mib} MiB is below jbd2's minimum of "
                        f"{L.VEXFS_MIN_JOURNAL_BLOCKS * BS >> 20} MiB")
    if want > blocks // 2:
        raise MkfsError(f"journal size {journal_mib} MiB is more than half of the device")
    return want


def format_device(dev: Device, uuid: bytes | None = None, label: str = "",
                  inodes: int | None = None, now_ns: int | None = None,
                  journal_mib: int | None = None, journal: bool = True) -> MkfsResult:
    """Write a fresh, empty VexFS onto an open writable device (with a jbd2
    journal unless ``journal`` is false or the device is below 8 MiB)."""
    t0 = time.perf_counter()
    if len(label.encode()) > L.VEXFS_LABEL_LEN:
        raise MkfsError(f"label is {len(label.encode())} bytes; at most {L.VEXFS_LABEL_LEN}")
    blocks = dev.size // BS
    geo = Geometry.compute(blocks, inodes, journal_blocks_for(blocks, journal_mib, journal))
    uuid = uuid if uuid is not None else uuidlib.uuid4().bytes
    now_ns = now_ns if now_ns is not None else time.time_ns()

    # 1. wipe the head and tail of the device (old signatures: btrfs at 64 KiB,
    #    a backup GPT header in the last sector...) and the inode table; both
    #    ends are metadata or still-free data blocks at this point
    wipe_end = min(WIPE_BYTES, dev.size)
    zero_range(dev, 0, wipe_end)
    tail_start = max(wipe_end, dev.size - TAIL_WIPE_BYTES)
    zero_range(dev, tail_start, dev.size - tail_start)
    it_lo, it_hi = geo.itable_start * BS, (geo.itable_start + geo.itable_blocks) * BS
    if it_hi > wipe_end:
        zero_range(dev, max(it_lo, wipe_end), it_hi - max(it_lo, wipe_end))
    # the journal: zeroed (no stale block of an older journal may look like a
    # transaction), then an empty jbd2 superblock in its first block
    if geo.journal_blocks:
        j_lo, j_hi = geo.journal_start * BS, (geo.journal_start + geo.journal_blocks) * BS
        if j_hi > wipe_end:
            zero_range(dev, max(j_lo, wipe_end), j_hi - max(j_lo, wipe_end))
        format_journal(dev, JournalGeometry(geo.journal_start, geo.journal_blocks, BS), uuid)
    # 2. bitmaps: metadata blocks + the root directory block are in use
    used_blocks = geo.data_start + 1
    for i, blk in enumerate(make_bitmap_blocks(geo.inodes, geo.ibitmap_blocks, 1)):
        dev.write_block(geo.ibitmap_start + i, blk)
    for i, blk in enumerate(make_bitmap_blocks(geo.blocks, geo.bbitmap_blocks, used_blocks)):
        dev.write_block(geo.bbitmap_start + i, blk)
    # 3. the root directory: inode 1 and its block with "." and ".."
    root = make_root_inode(geo, now_ns)
    itable0 = bytearray(BS)
    itable0[0:L.VEXFS_INODE_SIZE] = bytes(root)
    dev.write_block(geo.itable_start, itable0)
    dev.write_block(geo.root_dir_block, make_dir_block(
        [(L.VEXFS_ROOT_INO, b".", L.VEXFS_FT_DIR), (L.VEXFS_ROOT_INO, b"..", L.VEXFS_FT_DIR)]))
    # 4. the superblock last, so a half-written format never looks valid
    dev.flush()
    sb = make_superblock(geo, uuid, label, now_ns // 10**9, used_blocks, 1)
    block0 = bytearray(BS)
    block0[:len(bytes(sb))] = bytes(sb)
    dev.write_block(0, block0)
    dev.flush()
    return MkfsResult(geo, uuid, label, time.perf_counter() - t0)


def mkfs(path: str, label: str = "", uuid: str | None = None, inodes: int | None = None,
         force: bool = False, size: int | None = None, journal_mib: int | None = None,
         journal: bool = True) -> MkfsResult:
    """Format ``path`` with all of mkfs.vexfs's safety checks."""
    if size is not None:
        if size < L.VEXFS_MIN_BLOCKS * BS:
            raise MkfsError(f"size {size} is below the minimum {L.VEXFS_MIN_BLOCKS * BS}")
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            os.close(fd)
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode) and st.st_size < size:
            os.truncate(path, size)
        elif not stat.S_ISREG(st.st_mode):
            raise MkfsError(f"{path}: a size can only be given for a regular file")
    if not os.path.exists(path):
        raise MkfsError(f"{path}: no such file or device (give a SIZE to create a file)")
    st = os.stat(path)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise MkfsError(f"{path}: not a block device or regular file")
    mnt = mounted_at(path)
    if mnt is not None:
        raise MkfsError(f"{path} is mounted on {mnt}; will not make a filesystem here!")
    try:
        dev = Device(path, writable=True, exclusive=True)
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise MkfsError(f"{path} is apparently in use by the system (mounted, or "
                            "held by device-mapper/md); will not make a filesystem "
                            "here!") from None
        raise MkfsError(f"cannot open {path}: {e.strerror}") from None
    with dev:
        if dev.is_block and size is None:
            dev.size = struct.unpack("Q", fcntl.ioctl(dev.fd, BLKGETSIZE64, b"\0" * 8))[0]
        found = probe_signatures(dev)
        if found and not force:
            raise MkfsError(f"{path} contains a {found[0]} signature"
                            + (f" (also: {', '.join(found[1:])})" if found[1:] else "")
                            + "; use -f to overwrite it")
        if found:
            log.info("overwriting existing signatures: %s", ", ".join(found))
        size_note = dev.size % BS
        if size_note:
            log.info("ignoring the last %d bytes (not a whole block)", size_note)
        return format_device(dev, parse_uuid(uuid), label, inodes,
                             journal_mib=journal_mib, journal=journal)


def parse_journal_options(j_opts: str | None, features: str | None
                          ) -> tuple[int | None, bool]:
    """(journal size in MiB or None for the default, whether to make one)
    from mke2fs-style ``-J size=N`` and ``-O [^]has_journal``."""
    journal = True
    for feat in (features or "").split(","):
        feat = feat.strip()
        if not feat:
            continue
        if feat in ("^has_journal", "-has_journal"):
            journal = False
        elif feat not in ("has_journal", "+has_journal"):
            raise MkfsError(f"unknown feature {feat!r} (known: has_journal, ^has_journal)")
    mib = None
    for opt in (j_opts or "").split(","):
        opt = opt.strip()
        if not opt:
            continue
        key, _, value = opt.partition("=")
        if key != "size" or not value.isdigit():
            raise MkfsError(f"bad journal option {opt!r} (use -J size=MiB)")
        mib = int(value)
    if mib is not None and not journal:
        raise MkfsError("-J size= and -O ^has_journal contradict each other")
    return mib, journal


def describe(res: MkfsResult) -> str:
    g = res.geometry
    mib = g.blocks * BS / (1 << 20)
    lines = [
        f"Creating filesystem with {g.blocks} 4k blocks ({mib:.1f} MiB) and {g.inodes} inodes",
        f"Filesystem UUID: {uuidlib.UUID(bytes=res.uuid)}",
    ]
    if res.label:
        lines.append(f"Filesystem label: {res.label}")
    lines += [
        "Superblock:    block 0",
        f"Inode bitmap:  blocks {g.ibitmap_start}-{g.ibitmap_start + g.ibitmap_blocks - 1}",
        f"Block bitmap:  blocks {g.bbitmap_start}-{g.bbitmap_start + g.bbitmap_blocks - 1}",
        f"Inode table:   blocks {g.itable_start}-{g.itable_start + g.itable_blocks - 1} "
        f"({L.VEXFS_INODES_PER_BLOCK} inodes per block)",
        (f"Journal:       blocks {g.journal_start}-{g.journal_start + g.journal_blocks - 1} "
         f"({g.journal_blocks * BS >> 20} MiB, jbd2)" if g.journal_blocks
         else "Journal:       none"),
        f"Data blocks:   {g.data_start}-{g.blocks - 1} ({g.blocks - g.data_start} blocks, "
        f"{g.blocks - g.data_start - 1} free)",
        f"Writing superblock and filesystem metadata: done ({res.seconds * 1000:.1f} ms)",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mkfs.vexfs", description="Create a VexFS filesystem.",
        epilog="Exit status: 0 success, 1 error.")
    p.add_argument("-L", dest="label", default="", help="volume label (up to 64 bytes)")
    p.add_argument("-U", dest="uuid", default=None,
                   help="filesystem UUID: a UUID, 'random' (default), 'time' or 'clear'")
    p.add_argument("-N", dest="inodes", type=int, default=None,
                   help=f"number of inodes (default: one per {BYTES_PER_INODE // 1024} KiB)")
    p.add_argument("-J", dest="journal_opts", default=None, metavar="size=MiB",
                   help="journal options: size=N (MiB; default scaled with the device "
                        "as mke2fs: none below 8 MiB, 4 MiB up to 128 MiB, ..., 1 GiB)")
    p.add_argument("-O", dest="features", default=None, metavar="^has_journal",
                   help="features: '^has_journal' makes a filesystem without a journal "
                        "(the format of mkfs.vexfs before journaling)")
    p.add_argument("-f", dest="force", action="store_true",
                   help="overwrite an existing filesystem or partition table signature")
    p.add_argument("-q", dest="quiet", action="store_true", help="quiet: print nothing")
    p.add_argument("-n", dest="dry_run", action="store_true",
                   help="do not format; print what would be done")
    p.add_argument("-V", dest="version", action="store_true", help="print the version")
    p.add_argument("device", nargs="?", help="block device or image file")
    p.add_argument("size", nargs="?", help="size of the image file to create, e.g. 100M")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="mkfs.vexfs: %(message)s")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 1
    if args.version:
        print("mkfs.vexfs (vexfs) 0.1.0, on-disk format version "
              f"{L.VEXFS_FORMAT_VERSION}")
        return 0
    if not args.device:
        parser.print_usage(sys.stderr)
        return 1
    try:
        size = parse_size(args.size) if args.size else None
        journal_mib, journal = parse_journal_options(args.journal_opts, args.features)
        if args.dry_run:
            if size is None:
                with Device(args.device) as dev:
                    size = dev.size
            geo = Geometry.compute(size // BS, args.inodes,
                                   journal_blocks_for(size // BS, journal_mib, journal))
            print(describe(MkfsResult(geo, parse_uuid(args.uuid), args.label, 0.0)))
            return 0
        res = mkfs(args.device, label=args.label, uuid=args.uuid, inodes=args.inodes,
                   force=args.force, size=size, journal_mib=journal_mib, journal=journal)
    except MkfsError as e:
        print(f"mkfs.vexfs: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"mkfs.vexfs: {args.device}: {e.strerror or e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"mkfs.vexfs 0.1.0 (format version {L.VEXFS_FORMAT_VERSION})")
        print(describe(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
