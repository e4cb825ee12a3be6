"""Random damage, the same data oracle as the golden corpus (f_corpus.py).

Hypothesis overwrites a few random byte runs of the base image's metadata
(superblock excluded: its damage is the corpus's business), runs
``fsck.vexfs -y`` and checks: no crash, exit 1 or 4 (0 if the bytes did not
change anything), a repaired image is clean on the second run, and every
inode the damage did not touch (its inode slot, extent blocks and data
blocks) is still reachable somewhere in the tree with identical content.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import f_corpus as F
from vexfs import layout as L
from vexfs.fs.filesystem import BS, Image
from vexfs.fsck import run_fsck

_STATE: dict[str, object] = {}
_OUTCOMES: list[int] = []


def _base(tmp: Path) -> tuple[bytes, dict[str, F.Entry], dict[int, list[tuple[int, int]]],
                              list[tuple[int, int]]]:
    """Base image bytes, manifest, the byte ranges each inode owns, and the
    metadata byte ranges damage is drawn from."""
    if "base" not in _STATE:
        p = tmp / "rbase.img"
        F.build_base(p)
        owned: dict[int, list[tuple[int, int]]] = {}
        targets: list[tuple[int, int]] = []
        with Image(p) as im:
            sb = im.sb
            targets.append((sb.s_ibitmap_start * BS, (sb.s_bbitmap_start +
                                                      sb.s_bbitmap_blocks) * BS))
            targets.append((sb.s_itable_start * BS, (sb.s_itable_start + 8) * BS))
            for ino, inode in im.scan_inodes():
                blk, off = im.inode_location(ino)
                ranges = [(blk * BS + off, blk * BS + off + L.VEXFS_INODE_SIZE)]
                em = im.extent_map(inode, ino)
                ranges += [(e.start * BS, e.end * BS) for e in em.extents]
                ranges += [(c * BS, (c + 1) * BS) for c in em.chain]
                owned[ino] = ranges
                if stat.S_ISDIR(inode.i_mode):
                    targets += [(e.start * BS, e.end * BS) for e in em.extents]
                targets += [(c * BS, (c + 1) * BS) for c in em.chain]
        _STATE["base"] = (p.read_bytes(), F.manifest(p), owned, targets)
    return _STATE["base"]  # type: ignore[return-value]


damage_runs = st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 24),
                                 st.integers(0, 255), st.booleans()), min_size=1, max_size=4)


#: more examples for a longer hunt: VEXFS_RANDOM_DAMAGE_EXAMPLES=2000 pytest ...
EXAMPLES = int(os.environ.get("VEXFS_RANDOM_DAMAGE_EXAMPLES", "30"))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES == 30,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(runs=damage_runs)
def test_random_metadata_damage_keeps_intact_data(tmp_path: Path,
                                                   runs: list[tuple[int, int, int, bool]]) -> None:
    data, base, owned, targets = _base(tmp_path)
    img = bytearray(data)
    hit: list[tuple[int, int]] = []
    for where, length, value, random_bytes in runs:
        lo, hi = targets[where % len(targets)]
        start = lo + (where // len(targets)) % max(1, hi - lo - length)
        patch = bytes((value * (i + 7) * 31 + where) & 0xFF for i in range(length)) \
            if random_bytes else bytes([value]) * length
        img[start:start + length] = patch
        hit.append((start, start + length))
    path = tmp_path / "r.img"
    path.write_bytes(bytes(img))
    out = io.StringIO()
    rc = run_fsck(str(path), "y", force=True, out=out)
    _OUTCOMES.append(rc)
    assert rc in (0, 1, 4), out.getvalue()
    if rc == 4:
        return          # what is left is reported; the corpus covers exact outcomes
    out2 = io.StringIO()
    assert run_fsck(str(path), "n", force=True, out=out2) == 0, \
        f"not clean after repair:\n{out.getvalue()}\n--- second run:\n{out2.getvalue()}"

    def touched(ino: int) -> bool:
        return any(a < z2 and a2 < z for a, z in owned.get(ino, []) for a2, z2 in hit)

    with Image(path) as im:
        found = {ino: (p, inode) for p, ino, inode in im.walk("/")}
        for p, e in base.items():
            if touched(e.ino):
                continue
            assert e.ino in found, f"intact {p} (inode {e.ino}) is gone:\n{out.getvalue()}"
            _, inode = found[e.ino]
            kind, facts = F._facts(im, e.ino, inode)
            assert (kind, facts) == (e.kind, e.facts), f"intact {p} changed"


def test_random_damage_exercised_repairs(tmp_path: Path) -> None:
    """The examples did damage something (not only no-op bytes): most needed a repair."""
    if not _OUTCOMES:                 # run alone: draw the examples here
        test_random_metadata_damage_keeps_intact_data(tmp_path)
    assert len(_OUTCOMES) >= 30 and _OUTCOMES.count(1) >= len(_OUTCOMES) // 2, _OUTCOMES
