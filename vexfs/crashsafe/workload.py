"""Seeded crash workloads and the durable model they promise.

A workload is a sequence of *episodes*. Each episode does a few operations
and ends by making them durable (fsync of the file, of the directory that
changed, or syncfs), and then the driver writes a mark `ep-<n>` into the
dm-log-writes log. So after mark ep-n the disk must hold exactly the model
state `after` of episode n; between mark ep-(n-1) and ep-n (the episode is
running when the crash hits) every path the episode does not touch must be
as before, and the paths it touches must be in one of the episode's
`alternatives` (joint states: a rename is either not done or done, never
both names or neither).

File states: `Absent`, `Dir`, `File(content)` exact, `Partial(content,
keep)` (crash while the content was being written: size <= len(content),
the first `keep` bytes exact, every other 4 KiB block either the new bytes
or zeros — never a previous owner's bytes), `Coll(ids->version)` a vector
collection exactly after some whole batch.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

BLOCK = 4096
VEC_DIM = 16


@dataclass(frozen=True)
class Absent:
    pass


@dataclass(frozen=True)
class Dir:
    pass


@dataclass(frozen=True)
class File:
    content: bytes
    inode: int  # the model's inode number: names with the same one are hard links


@dataclass(frozen=True)
class Partial:
    content: bytes
    keep: int


@dataclass(frozen=True)
class Coll:
    versions: tuple[tuple[int, int], ...]  # sorted (id, version)


State = Absent | Dir | File | Partial | Coll
ABSENT = Absent()
DIR = Dir()


def pattern(tag: str, n: int) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{tag}:{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


def vector(vid: int, version: int):
    import numpy as np

    return np.random.default_rng(vid * 7919 + version).standard_normal(VEC_DIM).astype(np.float32)


@dataclass
class Episode:
    number: int
    kind: str
    alternatives: list[dict[str, State]]  # joint states of touched paths during the episode
    after: dict[str, State]  # the whole namespace once the episode's mark is written
    ops: int = 0


@dataclass
class Model:
    """The namespace a correct filesystem holds after the last finished episode."""

    paths: dict[str, State] = field(default_factory=dict)
    next_inode: int = 1

    def files(self) -> list[str]:
        return sorted(p for p, s in self.paths.items() if isinstance(s, File))

    def dirs(self) -> list[str]:
        return sorted(p for p, s in self.paths.items() if isinstance(s, Dir))

    def inode_names(self, inode: int) -> list[str]:
        return [p for p, s in self.paths.items() if isinstance(s, File) and s.inode == inode]


class Workload:
    """Runs episodes on the filesystem mounted at `root`, calling `mark`
    after each one; `episodes` keeps what each promised."""

    def __init__(self, root: Path, seed: int, mark: Callable[[str], None],
                 vectors: bool = False) -> None:
        self.root, self.rng, self.mark, self.vectors = Path(root), random.Random(seed), mark, vectors
        self.model = Model()
        self.episodes: list[Episode] = []
        self.ops = 0
        self._tag = 0

    # ---- helpers ----
    def _p(self, rel: str) -> Path:
        return self.root / rel

    def _fsync_path(self, rel: str) -> None:
        fd = os.open(self._p(rel) if rel else self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.ops += 1

    def _fsync_dir_of(self, rel: str) -> None:
        self._fsync_path(os.path.dirname(rel))

    def _content(self, lo: int = 0, hi: int = 20000) -> bytes:
        self._tag += 1
        size = self.rng.choice([0, 1, 100, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK,
                                self.rng.randint(lo, hi), 70000])
        return pattern(f"c{self._tag}", size)

    def _new_name(self, prefix: str = "f") -> str:
        dirs = [""] + self.model.dirs()
        d = self.rng.choice(dirs)
        self._tag += 1
        return os.path.join(d, f"{prefix}{self._tag}") if d else f"{prefix}{self._tag}"

    def _write(self, rel: str, data: bytes, mode: str = "wb") -> None:
        with open(self._p(rel), mode) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self.ops += 2

    def _finish(self, kind: str, alternatives: list[dict[str, State]], changes: dict[str, State]) -> None:
        number = len(self.episodes)
        for path, st in changes.items():
            if isinstance(st, Absent):
                self.model.paths.pop(path, None)
            else:
                self.model.paths[path] = st
        self.episodes.append(Episode(number=number, kind=kind, alternatives=alternatives,
                                     after=dict(self.model.paths)))
        self.mark(f"ep-{number}")

    def _file(self, content: bytes, inode: int | None = None) -> File:
        if inode is None:
            inode = self.model.next_inode
            self.model.next_inode += 1
        return File(content, inode)

    def _retarget(self, inode: int, content: bytes) -> dict[str, State]:
        """Every name of `inode` now holds `content`."""
        return {p: File(content, inode) for p in self.model.inode_names(inode)}

    # ---- episodes ----
    def ep_create(self) -> None:
        rel, data = self._new_name(), self._content()
        self._write(rel, data)  # fsync of the new file makes its name durable too
        self._finish("create", [{rel: ABSENT}, {rel: Partial(data, 0)}], {rel: self._file(data)})

    def ep_overwrite(self) -> None:
        rel = self.rng.choice(self.model.files())
        old: File = self.model.paths[rel]  # type: ignore[assignment]
        data = self._content()
        self._write(rel, data)  # O_TRUNC then write
        names = self.model.inode_names(old.inode)
        alts: list[dict[str, State]] = [{n: old for n in names}, {n: Partial(data, 0) for n in names}]
        self._finish("overwrite", alts, self._retarget(old.inode, data))

    def ep_append(self) -> None:
        rel = self.rng.choice(self.model.files())
        old: File = self.model.paths[rel]  # type: ignore[assignment]
        self._tag += 1
        data = old.content + pattern(f"a{self._tag}", self.rng.choice([1, 500, BLOCK, 9000]))
        self._write(rel, data[len(old.content):], "ab")
        names = self.model.inode_names(old.inode)
        alts: list[dict[str, State]] = [{n: Partial(data, len(old.content)) for n in names}]
        self._finish("append", alts, self._retarget(old.inode, data))

    def ep_truncate(self) -> None:
        rel = self.rng.choice(self.model.files())
        old: File = self.model.paths[rel]  # type: ignore[assignment]
        n = self.rng.choice([0, len(old.content) // 2, len(old.content) + 5000])
        data = old.content[:n] + bytes(max(0, n - len(old.content)))
        os.truncate(self._p(rel), n)
        self._fsync_path(rel)
        self.ops += 1
        names = self.model.inode_names(old.inode)
        alts: list[dict[str, State]] = [{x: old for x in names}, {x: File(data, old.inode) for x in names}]
        if n < len(old.content) and n % BLOCK:
            # A shrink zeroes the tail of the block that holds the new end in
            # place (ext4 writes that page as ordered data) before the
            # transaction changing i_size commits: a crash between them shows
            # the old size with that tail zeroed. Not a lost fsync, allowed.
            end = min(len(old.content), n - n % BLOCK + BLOCK)
            zeroed = old.content[:n] + bytes(end - n) + old.content[end:]
            alts.append({x: File(zeroed, old.inode) for x in names})
        self._finish("truncate", alts, self._retarget(old.inode, data))

    def ep_replace(self) -> None:
        """write tmp, fsync, rename over an fsynced file, fsync the directory:
        the editor/database pattern. Two marks: after the tmp's fsync, after
        the rename's directory fsync."""
        target = self.rng.choice(self.model.files())
        old: File = self.model.paths[target]  # type: ignore[assignment]
        tmp = os.path.join(os.path.dirname(target), f".tmp{self._tag + 1}")
        data = self._content()
        self._write(tmp, data)
        new = self._file(data)
        self._finish("replace-tmp", [{tmp: ABSENT}, {tmp: Partial(data, 0)}], {tmp: new})
        os.rename(self._p(tmp), self._p(target))
        self._fsync_dir_of(target)
        self.ops += 1
        # the target's other names (hard links) keep the old inode
        self._finish("replace-rename", [{tmp: new, target: old}, {tmp: ABSENT, target: new}],
                     {tmp: ABSENT, target: new})

    def ep_rename(self) -> None:
        src = self.rng.choice(self.model.files())
        st = self.model.paths[src]
        dst = self._new_name("r")
        os.rename(self._p(src), self._p(dst))
        self._fsync_dir_of(src)
        self._fsync_dir_of(dst)
        self.ops += 1
        self._finish("rename", [{src: st, dst: ABSENT}, {src: ABSENT, dst: st}],
                     {src: ABSENT, dst: st})

    def ep_link(self) -> None:
        src = self.rng.choice(self.model.files())
        st = self.model.paths[src]
        dst = self._new_name("l")
        os.link(self._p(src), self._p(dst))
        self._fsync_path(src)
        self._fsync_dir_of(dst)
        self.ops += 1
        self._finish("link", [{dst: ABSENT}, {dst: st}], {dst: st})

    def ep_unlink(self) -> None:
        rel = self.rng.choice(self.model.files())
        st = self.model.paths[rel]
        os.unlink(self._p(rel))
        self._fsync_dir_of(rel)
        self.ops += 1
        self._finish("unlink", [{rel: st}, {rel: ABSENT}], {rel: ABSENT})

    def ep_mkdir(self) -> None:
        parents = [""] + [d for d in self.model.dirs() if d.count("/") < 2]
        parent = self.rng.choice(parents)
        self._tag += 1
        rel = os.path.join(parent, f"d{self._tag}") if parent else f"d{self._tag}"
        os.mkdir(self._p(rel))
        self._fsync_dir_of(rel)
        self.ops += 1
        self._finish("mkdir", [{rel: ABSENT}, {rel: DIR}], {rel: DIR})

    def _empty_dirs(self) -> list[str]:
        return [d for d in self.model.dirs()
                if not any(p.startswith(d + "/") for p in self.model.paths)]

    def ep_rmdir(self) -> None:
        rel = self.rng.choice(self._empty_dirs())
        os.rmdir(self._p(rel))
        self._fsync_dir_of(rel)
        self.ops += 1
        self._finish("rmdir", [{rel: DIR}, {rel: ABSENT}], {rel: ABSENT})

    def ep_syncfs(self) -> None:
        """Several small creates with no fsync, then syncfs(2) (os.sync)."""
        made: dict[str, State] = {}
        for _ in range(self.rng.randint(2, 6)):
            rel, data = self._new_name("s"), self._content(0, 9000)
            with open(self._p(rel), "wb") as fh:
                fh.write(data)
            self.ops += 1
            made[rel] = self._file(data)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.syncfs(fd) if hasattr(os, "syncfs") else os.sync()
        finally:
            os.close(fd)
        self.ops += 1
        # each file independently absent or partly there
        alts: list[dict[str, State]] = [{}]
        for rel, st in made.items():
            assert isinstance(st, File)
            alts = [dict(a, **{rel: s}) for a in alts for s in (ABSENT, Partial(st.content, 0))]
        self._finish("syncfs", alts, made)

    # ---- vector batches ----
    def ep_coll_create(self) -> None:
        from vexfs.vector import Collection

        rel = f"coll{len([p for p in self.model.paths if p.startswith('coll')])}"
        with Collection.create(self._p(rel), dim=VEC_DIM) as col:
            col.sync()
        self._fsync_dir_of(rel)
        self.ops += 2
        empty = Coll(())
        self._finish("coll-create", [{rel: ABSENT}, {rel: empty}], {rel: empty})

    def ep_coll_batch(self) -> None:
        import numpy as np

        from vexfs.vector import Collection

        rel = self.rng.choice([p for p, s in self.model.paths.items() if isinstance(s, Coll)])
        old: Coll = self.model.paths[rel]  # type: ignore[assignment]
        cur = dict(old.versions)
        kind = self.rng.choice(["insert", "upsert", "delete"] if cur else ["insert"])
        with Collection.open(self._p(rel)) as col:
            if kind == "insert":
                base = max(cur, default=-1) + 1
                ids = list(range(base, base + self.rng.randint(1, 300)))
                for i in ids:
                    cur[i] = 0
                col.insert(ids, np.stack([vector(i, 0) for i in ids]))
            elif kind == "upsert":
                ids = sorted(self.rng.sample(sorted(cur), min(len(cur), self.rng.randint(1, 100))))
                ids += [max(cur) + 1 + j for j in range(self.rng.randint(0, 20))]
                for i in ids:
                    cur[i] = cur.get(i, -1) + 1
                col.upsert(ids, np.stack([vector(i, cur[i]) for i in ids]))
            else:
                ids = self.rng.sample(sorted(cur), min(len(cur), self.rng.randint(1, 150)))
                for i in ids:
                    del cur[i]
                col.delete(ids)
            col.sync()
        self.ops += 2
        new = Coll(tuple(sorted(cur.items())))
        self._finish(f"coll-{kind}", [{rel: old}, {rel: new}], {rel: new})

    def step(self) -> None:
        m = self.model
        choices: list[tuple[Callable[[], None], int]] = [(self.ep_create, 6), (self.ep_mkdir, 1)]
        if m.files():
            choices += [(self.ep_overwrite, 3), (self.ep_append, 2), (self.ep_truncate, 2),
                        (self.ep_replace, 3), (self.ep_rename, 3), (self.ep_link, 1),
                        (self.ep_unlink, 0 if len(m.files()) < 10 else 2 if len(m.files()) < 60 else 8)]
        if self._empty_dirs():
            choices.append((self.ep_rmdir, 1))
        choices.append((self.ep_syncfs, 1))
        if self.vectors:
            colls = [p for p, s in m.paths.items() if isinstance(s, Coll)]
            choices.append((self.ep_coll_create, 1 if len(colls) < 2 else 0))
            if colls:
                choices.append((self.ep_coll_batch, 4))
        fns, weights = zip(*[(f, w) for f, w in choices if w > 0])
        self.rng.choices(fns, weights)[0]()

    def run(self, episodes: int) -> None:
        self.mark("ep-start")
        while len(self.episodes) < episodes:
            self.step()
