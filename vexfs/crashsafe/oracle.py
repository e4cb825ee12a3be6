"""What must hold at a replay point, and the check of a mounted replay.

Given the workload's episodes and the newest mark at or before the point
(`ep-<n>`), the namespace must be episode n's `after` state, except for the
paths episode n+1 touches, which must jointly be one of its
`alternatives` (at the mark entry itself, where no later write can be in
the log yet, exactly `after`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from vexfs.crashsafe.workload import (
    BLOCK, Absent, Coll, Dir, Episode, File, Partial, Special, State, Symlink, vector)

# names a filesystem itself keeps at its root (ext4's lost+found)
IGNORED = {"lost+found"}


@dataclass
class Expectation:
    base: dict[str, State]
    alternatives: list[dict[str, State]]  # empty: exactly base
    label: str


def expectation(episodes: list[Episode], last_mark: str | None, at_mark: bool) -> Expectation:
    if last_mark is None or last_mark == "ep-start":
        n = -1
    elif last_mark.startswith("ep-"):
        n = int(last_mark[3:])
    elif last_mark in ("umounted", "dm-log-writes-end"):
        n = len(episodes) - 1
    else:
        raise ValueError(f"unexpected mark {last_mark!r}")
    base = episodes[n].after if n >= 0 else {}
    nxt = episodes[n + 1] if n + 1 < len(episodes) else None
    alts = [] if at_mark or nxt is None else nxt.alternatives
    label = f"after ep-{n}" + (f", during ep-{n + 1} ({nxt.kind})" if alts and nxt else "")
    return Expectation(base=base, alternatives=alts, label=label)


def scan(root: Path) -> dict[str, tuple[str, os.stat_result]]:
    """Every path under root: (kind, stat), kind 'd', 'f', 'l' (symlink), 'p'
    (fifo), 'c' (char device) or 'o'."""
    out: dict[str, tuple[str, os.stat_result]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in IGNORED]
            filenames = [f for f in filenames if f not in IGNORED]
        for name in dirnames + filenames:
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            st = os.lstat(os.path.join(dirpath, name))
            m = st.st_mode
            kind = "d" if stat.S_ISDIR(m) else "f" if stat.S_ISREG(m) else \
                "l" if stat.S_ISLNK(m) else "p" if stat.S_ISFIFO(m) else \
                "c" if stat.S_ISCHR(m) else "o"
            out[rel] = (kind, st)
    return out


def _partial_ok(got: bytes, want: Partial) -> str | None:
    if len(got) > len(want.content):
        return f"{len(got)} bytes, more than the {len(want.content)} written"
    if got[:want.keep] != want.content[:min(want.keep, len(got))]:
        return "bytes written before this episode changed"
    for off in range(want.keep - want.keep % BLOCK, len(got), BLOCK):
        lo = max(off, want.keep)
        blk = got[lo:off + BLOCK]
        if blk != want.content[lo:lo + len(blk)] and blk.count(0) != len(blk):
            return f"block at {off} is neither the data written nor zeros"
    return None


def _coll_state(path: Path, want: Coll) -> str | None:
    """None if the collection is exactly `want`, else why not."""
    import numpy as np

    from vexfs.vector import Collection

    try:
        with Collection.open(path, readonly=True) as col:
            n = len(col)
            if n != len(want.versions):
                return f"{n} vectors, want {len(want.versions)}"
            if not want.versions:
                return None
            ids = [i for i, _ in want.versions]
            got, found = col.get(ids, missing="mask")
            if not found.all():
                return f"{int((~found).sum())} ids missing"
            exp = np.stack([vector(i, v) for i, v in want.versions])
            if not np.array_equal(got, exp):
                bad = int((~(got == exp).all(axis=1)).sum())
                return f"{bad} vectors differ from their last upsert"
    except OSError as e:
        return f"cannot read the collection: {e}"
    return None


def _state_ok(root: Path, rel: str, want: State, seen: dict) -> str | None:
    have = seen.get(rel)
    if isinstance(want, Absent):
        return None if have is None else "exists, should not"
    if have is None:
        return "missing"
    kind, st = have
    if isinstance(want, Dir):
        return None if kind == "d" else f"is {kind}, want a directory"
    if isinstance(want, Special):
        return None if kind == want.kind else f"is {kind}, want a {want.kind} node"
    if isinstance(want, Symlink):
        if kind != "l":
            return f"is {kind}, want a symlink"
        try:
            got_target = os.readlink(root / rel)
        except OSError as e:
            return f"readlink: {e}"
        return None if got_target == want.target else \
            f"symlink to {got_target[:40]!r}, want {want.target[:40]!r}"
    if kind != "f":
        return f"is {kind}, want a file"
    if isinstance(want, Coll):
        return _coll_state(root / rel, want)
    try:
        got = (root / rel).read_bytes()
    except OSError as e:
        return f"unreadable: {e}"
    if isinstance(want, File):
        if got != want.content:
            return f"content differs ({len(got)} bytes, want {len(want.content)})"
        if want.mode is not None and stat.S_IMODE(st.st_mode) != want.mode:
            return f"mode {stat.S_IMODE(st.st_mode):o}, want {want.mode:o}"
        return None
    assert isinstance(want, Partial)
    return _partial_ok(got, want)


def check_tree(root: Path, exp: Expectation, loose: bool = False) -> list[str]:
    """Violations of `exp` by the filesystem mounted at root. loose (a torn
    write): the paths the running episode touches are not checked, since a
    torn data block may legitimately hold half old, half new bytes."""
    seen = scan(root)
    touched = set().union(*exp.alternatives) if exp.alternatives else set()
    problems: list[str] = []
    for rel, want in exp.base.items():
        if rel in touched:
            continue
        why = _state_ok(root, rel, want, seen)
        if why:
            problems.append(f"{rel}: {why} ({exp.label})")
    if exp.alternatives and not loose:
        reasons = []
        for alt in exp.alternatives:
            bad = [f"{r}: {w}" for r in sorted(alt) if (w := _state_ok(root, r, alt[r], seen))]
            if not bad:
                break
            reasons.append("; ".join(bad))
        else:
            problems.append(f"no allowed state of ep paths {sorted(touched)} "
                            f"({exp.label}): {reasons[:3]}")
    for rel in seen:
        if rel not in exp.base and rel not in touched:
            problems.append(f"{rel}: unexpected path ({exp.label})")
    # hard links: names of one model inode are one inode on disk
    by_inode: dict[int, set[int]] = {}
    for rel, want in exp.base.items():
        if isinstance(want, File) and rel not in touched and rel in seen:
            by_inode.setdefault(want.inode, set()).add(seen[rel][1].st_ino)
    problems += [f"model inode {i}: names are {len(s)} different inodes"
                 for i, s in by_inode.items() if len(s) > 1]
    return problems
