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

File states: `Absent`, `Dir`, `File(content, inode, mode)` exact (mode
checked once an episode set it), `Partial(content, keep)` (crash while the
content was being written: size <= len(content), the first `keep` bytes
exact, every other 4 KiB block either the new bytes or zeros — never a
previous owner's bytes), `Symlink(target)`, `Special(kind)` (a fifo or a
character device node), `Coll(ids->version)` a vector collection exactly
after some whole batch.

Operations (issue 10's list): create, mknod (fifo and char device),
symlink, link, unlink, mkdir, rmdir, rename (plain, over an fsynced file,
a directory with its children, over an empty directory, RENAME_EXCHANGE,
RENAME_NOREPLACE onto an existing name -> EEXIST, then to a new one),
setattr (chmod) and truncate (shrink and grow), fallocate, allocating
writes (create, overwrite, append), syncfs, and collection create and
insert/upsert/delete batches.

With `dry=True` nothing touches a filesystem: the same seed gives the same
episodes and model (the power-cut check rebuilds the model that way).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import random
import stat
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
    mode: int | None = None  # permission bits, once an episode chose them


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Special:
    kind: str  # "p" fifo, "c" character device


@dataclass(frozen=True)
class Partial:
    content: bytes
    keep: int


@dataclass(frozen=True)
class Coll:
    versions: tuple[tuple[int, int], ...]  # sorted (id, version)


State = Absent | Dir | File | Partial | Coll | Symlink | Special
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

    def leaves(self) -> list[str]:
        """Names that are not directories or collections (files, symlinks, nodes)."""
        return sorted(p for p, s in self.paths.items() if isinstance(s, (File, Symlink, Special)))


RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def renameat2(old: Path, new: Path, flags: int) -> None:
    if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(new))


class Workload:
    """Runs episodes on the filesystem mounted at `root`, calling `mark`
    after each one; `episodes` keeps what each promised."""

    def __init__(self, root: Path, seed: int, mark: Callable[[str], None],
                 vectors: bool = False, dry: bool = False) -> None:
        self.root, self.rng, self.mark = Path(root), random.Random(seed), mark
        self.vectors, self.dry = vectors, dry
        self.model = Model()
        self.episodes: list[Episode] = []
        self.ops = 0
        self._tag = 0

    # ---- helpers ----
    def _p(self, rel: str) -> Path:
        return self.root / rel

    def _fsync_path(self, rel: str) -> None:
        self.ops += 1
        if self.dry:
            return
        fd = os.open(self._p(rel) if rel else self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

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
        self.ops += 2
        if self.dry:
            return
        with open(self._p(rel), mode) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def _do(self, fn: Callable[..., object], *args: object) -> None:
        """One namespace/attribute syscall (skipped when dry)."""
        self.ops += 1
        if not self.dry:
            fn(*args)

    def _finish(self, kind: str, alternatives: list[dict[str, State]],
                changes: dict[str, State]) -> None:
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

    def _retarget(self, inode: int, content: bytes, mode: int | None = -1) -> dict[str, State]:
        """Every name of `inode` now holds `content` (and `mode`; -1: as before)."""
        out: dict[str, State] = {}
        for p in self.model.inode_names(inode):
            old = self.model.paths[p]
            assert isinstance(old, File)
            out[p] = File(content, inode, old.mode if mode == -1 else mode)
        return out

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
        alts: list[dict[str, State]] = [{n: old for n in names},
                                        {n: Partial(data, 0) for n in names}]
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
        self._do(os.truncate, self._p(rel), n)
        self._fsync_path(rel)
        names = self.model.inode_names(old.inode)
        alts: list[dict[str, State]] = [{x: old for x in names},
                                        {x: File(data, old.inode, old.mode) for x in names}]
        if n < len(old.content) and n % BLOCK:
            # A shrink zeroes the tail of the block that holds the new end in
            # place (ext4 writes that page as ordered data) before the
            # transaction changing i_size commits: a crash between them shows
            # the old size with that tail zeroed. Not a lost fsync, allowed.
            end = min(len(old.content), n - n % BLOCK + BLOCK)
            zeroed = old.content[:n] + bytes(end - n) + old.content[end:]
            alts.append({x: File(zeroed, old.inode, old.mode) for x in names})
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
        self._do(os.rename, self._p(tmp), self._p(target))
        self._fsync_dir_of(target)
        # the target's other names (hard links) keep the old inode
        self._finish("replace-rename", [{tmp: new, target: old}, {tmp: ABSENT, target: new}],
                     {tmp: ABSENT, target: new})

    def ep_rename(self) -> None:
        src = self.rng.choice(self.model.leaves())
        st = self.model.paths[src]
        dst = self._new_name("r")
        self._do(os.rename, self._p(src), self._p(dst))
        self._fsync_dir_of(src)
        self._fsync_dir_of(dst)
        self._finish("rename", [{src: st, dst: ABSENT}, {src: ABSENT, dst: st}],
                     {src: ABSENT, dst: st})

    def ep_link(self) -> None:
        src = self.rng.choice(self.model.files())
        st = self.model.paths[src]
        dst = self._new_name("l")
        self._do(os.link, self._p(src), self._p(dst))
        self._fsync_path(src)
        self._fsync_dir_of(dst)
        self._finish("link", [{dst: ABSENT}, {dst: st}], {dst: st})

    def ep_unlink(self) -> None:
        rel = self.rng.choice(self.model.leaves())
        st = self.model.paths[rel]
        self._do(os.unlink, self._p(rel))
        self._fsync_dir_of(rel)
        self._finish("unlink", [{rel: st}, {rel: ABSENT}], {rel: ABSENT})

    def ep_mkdir(self) -> None:
        parents = [""] + [d for d in self.model.dirs() if d.count("/") < 2]
        parent = self.rng.choice(parents)
        self._tag += 1
        rel = os.path.join(parent, f"d{self._tag}") if parent else f"d{self._tag}"
        self._do(os.mkdir, self._p(rel))
        self._fsync_dir_of(rel)
        self._finish("mkdir", [{rel: ABSENT}, {rel: DIR}], {rel: DIR})

    def ep_mknod(self) -> None:
        kind = self.rng.choice(["p", "c"])
        rel = self._new_name("n")
        if kind == "p":
            self._do(os.mkfifo, self._p(rel), 0o644)
        else:  # /dev/null's numbers: any char device will do, nothing opens it
            self._do(os.mknod, self._p(rel), 0o644 | stat.S_IFCHR, os.makedev(1, 3))
        self._fsync_dir_of(rel)
        st = Special(kind)
        self._finish("mknod", [{rel: ABSENT}, {rel: st}], {rel: st})

    def ep_symlink(self) -> None:
        rel = self._new_name("y")
        leaves = self.model.leaves()
        # a relative target naming an existing name, or a long dangling one
        # (past the inline size: the target then needs a block)
        target = self.rng.choice(leaves) if leaves and self.rng.random() < 0.5 else \
            "dangling/" + "t" * self.rng.choice([5, 100, 300])
        self._do(os.symlink, target, self._p(rel))
        self._fsync_dir_of(rel)
        st = Symlink(target)
        self._finish("symlink", [{rel: ABSENT}, {rel: st}], {rel: st})

    def ep_setattr(self) -> None:
        rel = self.rng.choice(self.model.files())
        old: File = self.model.paths[rel]  # type: ignore[assignment]
        mode = self.rng.choice([0o600, 0o640, 0o755, 0o444, 0o4711])
        self._do(os.chmod, self._p(rel), mode)
        self._fsync_path(rel)
        names = self.model.inode_names(old.inode)
        new = File(old.content, old.inode, mode)
        self._finish("setattr", [{n: self.model.paths[n] for n in names}, {n: new for n in names}],
                     {n: new for n in names})

    def ep_fallocate(self) -> None:
        rel = self.rng.choice(self.model.files())
        old: File = self.model.paths[rel]  # type: ignore[assignment]
        off = self.rng.choice([0, len(old.content), len(old.content) + 3000])
        length = self.rng.choice([1, BLOCK, 20000])
        size = max(len(old.content), off + length)
        data = old.content + bytes(size - len(old.content))
        if not self.dry:
            fd = os.open(self._p(rel), os.O_WRONLY)
            try:
                os.posix_fallocate(fd, off, length)
                os.fsync(fd)
            finally:
                os.close(fd)
        self.ops += 2
        names = self.model.inode_names(old.inode)
        alts: list[dict[str, State]] = [{n: old for n in names},
                                        {n: File(data, old.inode, old.mode) for n in names}]
        self._finish("fallocate", alts, self._retarget(old.inode, data))

    def _subtree(self, d: str) -> list[str]:
        return [p for p in self.model.paths if p == d or p.startswith(d + "/")]

    def ep_rename_dir(self) -> None:
        """A directory with its children to a new name, or over an empty
        directory elsewhere (which it replaces)."""
        m = self.model
        src = self.rng.choice(m.dirs())
        inside = set(self._subtree(src))
        parents = [""] + [d for d in m.dirs() if d not in inside and d.count("/") < 1]
        over = [d for d in self._empty_dirs() if d not in inside]
        if over and self.rng.random() < 0.5:
            dst, kind = self.rng.choice(over), "rename-over-dir"
        else:
            parent = self.rng.choice(parents)
            self._tag += 1
            dst = os.path.join(parent, f"m{self._tag}") if parent else f"m{self._tag}"
            kind = "rename-dir"
        self._do(os.rename, self._p(src), self._p(dst))
        self._fsync_dir_of(src)
        self._fsync_dir_of(dst)
        moved = {dst + p[len(src):]: m.paths[p] for p in sorted(inside)}
        before: dict[str, State] = {p: m.paths[p] for p in inside}
        before.update({p: m.paths.get(p, ABSENT) for p in moved})
        after: dict[str, State] = {p: ABSENT for p in inside}
        after.update(moved)
        self._finish(kind, [before, after], after)

    def ep_exchange(self) -> None:
        """RENAME_EXCHANGE of two names (files, symlinks, nodes): both or neither."""
        a, b = self.rng.sample(self.model.leaves(), 2)
        sa, sb = self.model.paths[a], self.model.paths[b]
        self._do(renameat2, self._p(a), self._p(b), RENAME_EXCHANGE)
        self._fsync_dir_of(a)
        self._fsync_dir_of(b)
        self._finish("rename-exchange", [{a: sa, b: sb}, {a: sb, b: sa}], {a: sb, b: sa})

    def ep_noreplace(self) -> None:
        """RENAME_NOREPLACE onto an existing name must fail with EEXIST and
        change nothing; then to a new name it is a plain rename."""
        src, busy = self.rng.sample(self.model.leaves(), 2)
        st = self.model.paths[src]
        if not self.dry:
            try:
                renameat2(self._p(src), self._p(busy), RENAME_NOREPLACE)
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise
            else:
                raise RuntimeError(f"RENAME_NOREPLACE replaced the existing {busy}")
        dst = self._new_name("q")
        self._do(renameat2, self._p(src), self._p(dst), RENAME_NOREPLACE)
        self._fsync_dir_of(src)
        self._fsync_dir_of(dst)
        self._finish("rename-noreplace", [{src: st, dst: ABSENT}, {src: ABSENT, dst: st}],
                     {src: ABSENT, dst: st})

    def _empty_dirs(self) -> list[str]:
        return [d for d in self.model.dirs()
                if not any(p.startswith(d + "/") for p in self.model.paths)]

    def ep_rmdir(self) -> None:
        rel = self.rng.choice(self._empty_dirs())
        self._do(os.rmdir, self._p(rel))
        self._fsync_dir_of(rel)
        self._finish("rmdir", [{rel: DIR}, {rel: ABSENT}], {rel: ABSENT})

    def ep_syncfs(self) -> None:
        """Several small creates with no fsync, then syncfs(2) (os.sync)."""
        made: dict[str, State] = {}
        for _ in range(self.rng.randint(2, 6)):
            rel, data = self._new_name("s"), self._content(0, 9000)
            if not self.dry:
                with open(self._p(rel), "wb") as fh:
                    fh.write(data)
            self.ops += 1
            made[rel] = self._file(data)
        self.ops += 1
        if not self.dry:
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.syncfs(fd) if hasattr(os, "syncfs") else os.sync()
            finally:
                os.close(fd)
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
        if not self.dry:
            with Collection.create(self._p(rel), dim=VEC_DIM) as col:
                col.sync()
        self._fsync_dir_of(rel)
        self.ops += 1
        empty = Coll(())
        self._finish("coll-create", [{rel: ABSENT}, {rel: empty}], {rel: empty})

    def ep_coll_batch(self) -> None:
        import numpy as np

        from vexfs.vector import Collection

        rel = self.rng.choice([p for p, s in self.model.paths.items() if isinstance(s, Coll)])
        old: Coll = self.model.paths[rel]  # type: ignore[assignment]
        cur = dict(old.versions)
        kind = self.rng.choice(["insert", "upsert", "delete"] if cur else ["insert"])
        if kind == "insert":
            base = max(cur, default=-1) + 1
            ids = list(range(base, base + self.rng.randint(1, 300)))
            for i in ids:
                cur[i] = 0
        elif kind == "upsert":
            ids = sorted(self.rng.sample(sorted(cur), min(len(cur), self.rng.randint(1, 100))))
            ids += [max(cur) + 1 + j for j in range(self.rng.randint(0, 20))]
            for i in ids:
                cur[i] = cur.get(i, -1) + 1
        else:
            ids = self.rng.sample(sorted(cur), min(len(cur), self.rng.randint(1, 150)))
            for i in ids:
                del cur[i]
        if not self.dry:
            with Collection.open(self._p(rel)) as col:
                if kind == "delete":
                    col.delete(ids)
                else:
                    vecs = np.stack([vector(i, cur[i]) for i in ids])
                    (col.insert if kind == "insert" else col.upsert)(ids, vecs)
                col.sync()
        self.ops += 2
        new = Coll(tuple(sorted(cur.items())))
        self._finish(f"coll-{kind}", [{rel: old}, {rel: new}], {rel: new})

    def step(self) -> None:
        m = self.model
        files, leaves = m.files(), m.leaves()
        choices: list[tuple[Callable[[], None], int]] = [
            (self.ep_create, 6), (self.ep_mkdir, 2), (self.ep_mknod, 1), (self.ep_symlink, 1)]
        if files:
            choices += [(self.ep_overwrite, 3), (self.ep_append, 2), (self.ep_truncate, 2),
                        (self.ep_replace, 3), (self.ep_link, 1), (self.ep_setattr, 1),
                        (self.ep_fallocate, 1)]
        if leaves:
            choices += [(self.ep_rename, 3),
                        (self.ep_unlink, 0 if len(leaves) < 10 else 2 if len(leaves) < 60 else 8)]
        if len(leaves) >= 2:
            choices += [(self.ep_exchange, 1), (self.ep_noreplace, 1)]
        if m.dirs():
            choices.append((self.ep_rename_dir, 1))
        if self._empty_dirs():
            choices.append((self.ep_rmdir, 2))
        choices.append((self.ep_syncfs, 1))
        if self.vectors:
            colls = [p for p, s in m.paths.items() if isinstance(s, Coll)]
            choices.append((self.ep_coll_create, 1 if len(colls) < 2 else 0))
            if colls:
                choices.append((self.ep_coll_batch, 4))
        fns, weights = zip(*[(f, w) for f, w in choices if w > 0], strict=True)
        self.rng.choices(fns, weights)[0]()

    def run(self, episodes: int) -> None:
        self.mark("ep-start")
        while len(self.episodes) < episodes:
            self.step()
