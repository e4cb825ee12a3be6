"""fsck.vexfs: check and repair a VexFS filesystem (the front end).

    fsck.vexfs [-n] [-y] [-p] [-f] [-v] [-V] DEVICE|FILE

  -n  check only; the device is opened read-only and nothing is written
  -y  repair everything that can be repaired (may remove directory entries,
      clear corrupt inodes, reconnect orphans to /lost+found, copy blocks two
      files share, rebuild a damaged superblock from the on-disk layout)
  -p  preen: repair only what the problem table marks safe without a human
      (counts, bitmaps, link counts, checksums of blocks whose structure is
      valid, deleted inodes, file types, state); anything else -> exit 4 and
      "run fsck manually". A filesystem whose state is clean is skipped unless -f.
  -f  force a full check with -p even if the state is clean
  -v  verbose: each pass's header as the pass starts, and statistics
  -V  print the version

Without -n/-y/-p the check is read-only, as with -n (this tool never asks
questions).

Exit codes (fsck(8)/e2fsck): 0 no errors, 1 errors corrected, 2 corrected and
the system should be rebooted (never used: fsck.vexfs refuses mounted
filesystems), 4 errors left uncorrected, 8 operational error (cannot open,
not VexFS, unsupported version or features, device shorter than the
filesystem), 16 usage error, 32 canceled by the user (Ctrl-C).

A device shorter than the superblock says is never "fixed": fsck.vexfs
writes nothing and exits 8 (e2fsck does the same), since shrinking the
filesystem to the device would discard everything past its end.

In repair mode the fixes are applied and the whole check runs again (up to
``MAX_ROUNDS`` times: clearing an inode in one round creates dangling entries
and stale bitmaps that the next round repairs), so the exit code always
reflects a re-check of what is on disk, never a hope.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import stat
import sys
from typing import TextIO

from vexfs import layout as L
from vexfs.fs.alloc import write_superblock
from vexfs.fs.blockdev import Device, holders, mounted_at
from vexfs.fs.errors import FormatError, ImageError
from vexfs.fs.filesystem import BS, Image
from vexfs.fs.geometry import Geometry, device_too_short, superblock_problems
from vexfs.fsck.checker import EXIT_CANCELED, EXIT_CORRECTED, EXIT_OK, EXIT_OPERATIONAL, \
    EXIT_UNCORRECTED, EXIT_USAGE, MAX_ROUNDS, VERSION, Checker, FatalError, Problem, problem
from vexfs.fsck.problems import PASSES, message

log = logging.getLogger(__name__)


def run_fsck(path: str, mode: str, force: bool = False, verbose: bool = False,
             out: TextIO | None = None) -> int:
    """Check (and in mode 'y'/'p' repair) the filesystem; returns the exit code.
    mode: 'n' read-only, 'y' repair all, 'p' preen."""
    out = sys.stdout if out is None else out
    writable = mode in ("y", "p")
    try:
        mnt = mounted_at(path)
    except OSError as e:
        print(f"fsck.vexfs: cannot open {path}: {e.strerror}", file=sys.stderr)
        return EXIT_OPERATIONAL
    if mnt is not None:
        if writable:
            print(f"fsck.vexfs: {path} is mounted on {mnt}; cannot repair a mounted "
                  "filesystem", file=sys.stderr)
            return EXIT_OPERATIONAL
        print(f"fsck.vexfs: warning: {path} is mounted on {mnt}; results may be stale",
              file=sys.stderr)
    elif writable:
        held = holders(path)
        if held:
            print(f"fsck.vexfs: {path} is in use by {', '.join(held)}; cannot repair it",
                  file=sys.stderr)
            return EXIT_OPERATIONAL
    try:
        with Device(path) as dev:
            size = dev.size
            raw = dev.read(0, min(BS, size)) if size else b""
    except OSError as e:
        print(f"fsck.vexfs: cannot open {path}: {e.strerror}", file=sys.stderr)
        return EXIT_OPERATIONAL
    if len(raw) < 256:
        print(f"fsck.vexfs: {path}: too small ({size} bytes) to hold a VexFS filesystem",
              file=sys.stderr)
        return EXIT_OPERATIONAL
    sb = L.SuperBlock.unpack(raw)
    if device_too_short(sb, size // BS):
        # e2fsck: "The filesystem size is ... but the physical size of the device
        # is ...": never shrink the filesystem to the device, change nothing
        print(f"fsck.vexfs: {path}: " + message("sb.device_short", blocks=sb.s_blocks_count,
                                                device_blocks=size // BS), file=out)
        return EXIT_OPERATIONAL
    journal = None
    if not superblock_problems(sb, size // BS):
        # the journal first, as e2fsck (vexfs/fs/journal_recovery.py)
        from vexfs.fs.journal_recovery import fsck_replay
        if verbose and sb.s_feature_compat & L.VEXFS_FEATURE_COMPAT_HAS_JOURNAL:
            print(PASSES[0], file=out, flush=True)
        journal = fsck_replay(path, sb, mode, out)
        if journal.stop is not None:
            return journal.stop
        with Device(path) as dev:
            sb = L.SuperBlock.unpack(dev.read(0, min(BS, size)))
    sb_issues = superblock_problems(sb, size // BS)
    rebuilt: L.SuperBlock | None = None
    sb_problem: Problem | None = None
    if sb_issues:
        fatal_op = sb.s_magic != L.VEXFS_MAGIC or sb.s_version != L.VEXFS_FORMAT_VERSION or \
            sb.s_feature_incompat & ~L.VEXFS_FEATURE_INCOMPAT_SUPP or \
            sb.s_feature_ro_compat & ~L.VEXFS_FEATURE_RO_COMPAT_SUPP
        print(f"fsck.vexfs: {path}: superblock is unusable: " + "; ".join(sb_issues),
              file=out)
        if fatal_op:
            return EXIT_OPERATIONAL
        try:
            with Device(path) as dev:
                found = rebuild_superblock(sb, dev)
        except OSError as e:
            print(f"fsck.vexfs: cannot read {path}: {e.strerror}", file=out)
            return EXIT_OPERATIONAL
        if found is None:
            print("fsck.vexfs: the geometry is corrupt, no layout matching the bitmaps and "
                  "root inode was found, and there is no backup superblock; cannot check "
                  "further", file=out)
            return EXIT_UNCORRECTED
        rebuilt, changes = found
        sb_problem = problem("sb.geometry", changes=", ".join(changes))
        if mode != "y":
            print(f"fsck.vexfs: {path}: checking with the rebuilt superblock; "
                  "run fsck.vexfs -y to write it", file=out)
            writable = False      # -p must not build repairs on an unwritten superblock
    elif not L.struct_checksum_ok(sb):
        # Fields look sane but the checksum says one is not: if the layout
        # explains the superblock better with some field changed, use that.
        try:
            with Device(path) as dev:
                found = rebuild_superblock(sb, dev)
        except OSError:
            found = None
        if found is not None and found[1]:
            rebuilt, changes = found
            sb_problem = problem("sb.geometry", changes=", ".join(changes))
            if mode != "y":
                print(f"fsck.vexfs: {path}: checking with the rebuilt superblock; "
                      "run fsck.vexfs -y to write it", file=out)
                writable = False
    if mode == "p" and not force and sb.s_state == L.VEXFS_STATE_CLEAN and \
            L.struct_checksum_ok(sb) and rebuilt is None:
        used_i = sb.s_inodes_count - sb.s_free_inodes
        used_b = sb.s_blocks_count - sb.s_free_blocks
        print(f"{path}: clean, {used_i}/{sb.s_inodes_count} files, "
              f"{used_b}/{sb.s_blocks_count} blocks", file=out)
        return EXIT_CORRECTED if journal is not None and journal.replayed else EXIT_OK

    fixed_any = False
    error_acked = False
    error_problem: Problem | None = None
    reported: list[Problem] = []
    remaining: list[Problem] = []
    stats: dict[str, int] = {}
    try:
        img = Image(path, writable=writable, require_checksum=False, sb=rebuilt,
                    exclusive=writable)
    except OSError as e:
        if e.errno == errno.EBUSY:
            print(f"fsck.vexfs: {path} is in use by the system (mounted, or held by "
                  "device-mapper/md); cannot repair it", file=sys.stderr)
        else:
            print(f"fsck.vexfs: {path}: {e.strerror or e}", file=sys.stderr)
        return EXIT_OPERATIONAL
    except ImageError as e:
        print(f"fsck.vexfs: {path}: {e}", file=sys.stderr)
        return EXIT_OPERATIONAL
    with img:
        if sb_problem is not None:
            reported.append(sb_problem)
            if mode == "y" and rebuilt is not None:
                write_superblock(img.dev, rebuilt)
                sb_problem.fixed = fixed_any = True

        def on_pass(n: int) -> None:
            if verbose:
                print(PASSES[n], file=out, flush=True)

        lost_found: int | None = None
        for rnd in range(MAX_ROUNDS + 1):
            if not (rebuilt is not None and mode != "y"):
                img.sb = L.SuperBlock.unpack(img.dev.read_block(0))
            if verbose and rnd:
                print(f"Restarting the check (round {rnd + 1}) after repairs", file=out)
            checker = Checker(img, error_state_acked=error_acked, on_pass=on_pass,
                              lost_found=lost_found)
            try:
                problems = checker.check()
            except FatalError as e:
                print(f"fsck.vexfs: {path}: {e}", file=out)
                return e.exit_code
            except ImageError as e:
                print(f"fsck.vexfs: {path}: {e}", file=out)
                return EXIT_UNCORRECTED
            stats = checker.stats
            if not problems:
                remaining = []
                break
            reported += problems
            if not writable or rnd == MAX_ROUNDS:
                remaining = problems
                break
            if verbose:
                print(f"Round {rnd + 1}: {len(problems)} problems, repairing", file=out)
            bitmaps_bad = any(q.code.startswith("bitmap.") for q in problems)
            for p in problems:
                if not p.fix or not (mode == "y" or p.preen):
                    continue
                # reconnecting orphans and cloning shared blocks allocate blocks:
                # wait for correct bitmaps
                if p.code in ("orphan.directory", "orphan.unreferenced",
                              "block.multiply_claimed") and bitmaps_bad:
                    continue
                try:
                    p.fix()
                    p.fixed = True
                except (OSError, ImageError) as e:
                    print(f"fsck.vexfs: could not repair ({p.message}): {e}", file=out)
            for p in problems:
                if p.code == "sb.error_state" and p.fixed:
                    error_acked, error_problem = True, p
            if checker.pending_clone:
                try:
                    checker.clone_claims(checker.pending_clone)
                except (OSError, ImageError) as e:
                    print(f"fsck.vexfs: could not copy shared blocks: {e}", file=out)
                    for p in problems:
                        if p.code == "block.multiply_claimed":
                            p.fixed = False
                img.sb = L.SuperBlock.unpack(img.dev.read_block(0))
            if checker.pending_reconnect:
                try:
                    checker.reconnect_orphans(checker.pending_reconnect)
                    if checker.adopted_lost_found is not None:
                        lf_p = problem("lost_found.relinked", ino=checker.adopted_lost_found)
                        lf_p.fixed = True
                        reported.append(lf_p)
                    if checker.created_lost_found is not None:
                        lf_p = problem("lost_found.created", ino=checker.created_lost_found)
                        lf_p.fixed = True
                        reported.append(lf_p)
                except (OSError, ImageError) as e:
                    print(f"fsck.vexfs: could not reconnect orphans: {e}", file=out)
                    for p in problems:
                        if p.code in ("orphan.directory", "orphan.unreferenced"):
                            p.fixed = False
            lost_found = checker.lost_found
            img.dev.flush()
            if not any(p.fixed for p in problems):
                remaining = problems
                break
            fixed_any = True
        if sb_problem is not None and not sb_problem.fixed:
            remaining.append(sb_problem)
        if remaining and error_problem is not None:
            remaining.append(error_problem)    # the ERROR state stays while errors do
        if writable and not remaining:
            sbn = L.SuperBlock.unpack(img.dev.read_block(0))
            if sbn.s_state != L.VEXFS_STATE_CLEAN:
                sbn.s_state = L.VEXFS_STATE_CLEAN
                write_superblock(img.dev, sbn)
            img.dev.flush()
    still = {p.message for p in remaining}
    seen: set[str] = set()
    for p in reported:
        if p.message in seen:
            continue
        seen.add(p.message)
        if mode == "n":
            tag = ""
        elif p.message in still:
            tag = " [NOT FIXED]"
        else:
            tag = " [FIXED]"
        print(f"{path}: {p.message}{tag}", file=out)
    if stats:
        print(f"{path}: {stats['inodes_used']}/{stats['inodes']} files, "
              f"{stats['blocks_used']}/{stats['blocks']} blocks", file=out)
    if journal is not None and journal.aborted_errno and not journal.cleared:
        # -n: the kernel refuses to mount until a repair run clears it
        print(f"{path}: the journal was aborted (errno {journal.aborted_errno}) on an earlier "
              "mount; run fsck.vexfs -y to clear it", file=out)
        return EXIT_UNCORRECTED
    if remaining:
        if mode == "p":
            print(f"{path}: UNEXPECTED INCONSISTENCY; RUN fsck.vexfs MANUALLY "
                  "(without -p)", file=out)
        elif mode == "n":
            print(f"{path}: {len(still)} problems found; run fsck.vexfs -y to repair",
                  file=out)
        else:
            print(f"{path}: errors remain that fsck.vexfs cannot repair", file=out)
        return EXIT_UNCORRECTED
    # e2fsck: a run that only replayed the journal (or cleared its error)
    # modified the filesystem too, and says so with exit 1
    if fixed_any or (journal is not None and (journal.replayed or journal.cleared)):
        print(f"{path}: ***** FILE SYSTEM WAS MODIFIED *****", file=out)
        return EXIT_CORRECTED
    return EXIT_OK


def rebuild_superblock(sb: L.SuperBlock, dev: Device
                       ) -> tuple[L.SuperBlock, list[str]] | None:
    """A usable superblock for a damaged one, or None.

    There is no backup superblock, but mkfs.vexfs's layout is a pure function
    of (blocks_count, inodes_count). Try the counts the damaged superblock and
    the device suggest; accept the first layout whose bitmap blocks carry the
    right magic and index and whose inode table starts with a valid root
    directory inode, and restore the fields that have one legal value.
    """
    dev_blocks = dev.size // BS
    found: list[tuple[L.SuperBlock, list[str]]] = []
    blocks_c = [sb.s_blocks_count, dev_blocks]
    inodes_c = [sb.s_inodes_count, sb.s_itable_blocks * L.VEXFS_INODES_PER_BLOCK,
                (sb.s_data_start - sb.s_itable_start) * L.VEXFS_INODES_PER_BLOCK]
    for blocks in dict.fromkeys(blocks_c):
        for inodes in dict.fromkeys(inodes_c):
            if not 0 < blocks <= dev_blocks or not 0 < inodes < 2**32:
                continue
            try:
                g = Geometry.compute(blocks, inodes, int(sb.s_journal_blocks) if
                                     sb.s_feature_compat & L.VEXFS_FEATURE_COMPAT_HAS_JOURNAL
                                     else 0)
            except FormatError:
                continue
            if g.inodes != inodes:
                continue
            cand = L.SuperBlock.from_buffer_copy(bytes(sb))
            for field_name, value in (
                    ("s_blocks_count", g.blocks), ("s_inodes_count", g.inodes),
                    ("s_ibitmap_start", g.ibitmap_start), ("s_ibitmap_blocks", g.ibitmap_blocks),
                    ("s_bbitmap_start", g.bbitmap_start), ("s_bbitmap_blocks", g.bbitmap_blocks),
                    ("s_itable_start", g.itable_start), ("s_itable_blocks", g.itable_blocks),
                    ("s_data_start", g.data_start), ("s_block_size", BS),
                    ("s_journal_start", g.journal_start),
                    ("s_journal_blocks", g.journal_blocks),
                    ("s_inode_size", L.VEXFS_INODE_SIZE), ("s_root_ino", L.VEXFS_ROOT_INO)):
                setattr(cand, field_name, value)
            cand.s_feature_incompat |= L.VEXFS_FEATURE_INCOMPAT_EXTENTS
            cand.s_state &= L.VEXFS_STATE_CLEAN | L.VEXFS_STATE_ERROR
            cand.s_free_blocks = min(cand.s_free_blocks, g.blocks)   # recounted later
            cand.s_free_inodes = min(cand.s_free_inodes, g.inodes)
            if superblock_problems(cand, dev_blocks) or not _layout_matches(cand, dev):
                continue
            changes = [f"{name} {getattr(sb, name)} -> {getattr(cand, name)}"
                       for name, *_ in L.SuperBlock._fields_
                       if name not in ("s_checksum", "s_uuid", "s_label", "s_reserved")
                       and getattr(sb, name) != getattr(cand, name)]
            found.append((L.seal(cand), changes))
    # the layout that explains the damaged superblock with the fewest changes
    return min(found, key=lambda f: len(f[1])) if found else None


def _layout_matches(sb: L.SuperBlock, dev: Device) -> bool:
    try:
        for start, count in ((sb.s_ibitmap_start, sb.s_ibitmap_blocks),
                             (sb.s_bbitmap_start, sb.s_bbitmap_blocks)):
            for i in range(count):
                head = L.BitmapHeader.unpack(dev.read_block(start + i))
                if head.bh_magic != L.VEXFS_BITMAP_MAGIC or head.bh_index != i:
                    return False
        root = L.Inode.unpack(dev.read_block(sb.s_itable_start))
        # metadata blocks [0, data_start) are marked in use, and inode 1 is
        bits = dev.read_block(sb.s_bbitmap_start)[16:]
        ibits = dev.read_block(sb.s_ibitmap_start)[16:]
    except ImageError:
        return False
    n = min(sb.s_data_start, L.VEXFS_BITS_PER_BITMAP)
    meta_marked = all(bits[i >> 3] >> (i & 7) & 1 for i in range(n))
    return stat.S_ISDIR(root.i_mode) and L.struct_checksum_ok(root) and meta_marked \
        and bool(ibits[0] & 1)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fsck.vexfs", description="Check and repair VexFS.",
                                epilog="Exit: 0 clean, 1 corrected, 2 corrected (reboot), "
                                       "4 uncorrected, 8 operational error, 16 usage "
                                       "error, 32 canceled by the user.")
    p.add_argument("-n", action="store_true", help="check only, open read-only")
    p.add_argument("-y", action="store_true", help="repair everything repairable")
    p.add_argument("-p", "-a", dest="p", action="store_true", help="preen: safe repairs only")
    p.add_argument("-f", action="store_true", help="check even if the state is clean")
    p.add_argument("-v", action="store_true",
                   help="verbose: print each pass's header as it starts, and statistics")
    p.add_argument("-V", action="store_true", help="print the version and exit")
    p.add_argument("device", nargs="?")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="fsck.vexfs: %(message)s")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_OK if e.code == 0 else EXIT_USAGE
    if args.V:
        print(f"fsck.vexfs (vexfs) {VERSION}, on-disk format version {L.VEXFS_FORMAT_VERSION}")
        return EXIT_OK
    if not args.device:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    if sum((args.n, args.y, args.p)) > 1:
        print("fsck.vexfs: only one of -n, -y and -p may be given", file=sys.stderr)
        return EXIT_USAGE
    mode = "y" if args.y else "p" if args.p else "n"
    if not os.path.exists(args.device):
        print(f"fsck.vexfs: {args.device}: no such file or device", file=sys.stderr)
        return EXIT_OPERATIONAL
    try:
        return run_fsck(args.device, mode, force=args.f, verbose=args.v)
    except KeyboardInterrupt:          # fsck(8): 32 = canceled by user request
        print(f"fsck.vexfs: {args.device}: interrupted; the check was not finished",
              file=sys.stderr)
        return EXIT_CANCELED
    except BrokenPipeError:             # output piped into head & co.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OPERATIONAL
    except Exception as e:              # a bug here must still give fsck(8)'s code
        log.exception("internal error")
        print(f"fsck.vexfs: internal error while checking {args.device}: "
              f"{type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_OPERATIONAL


if __name__ == "__main__":
    sys.exit(main())
