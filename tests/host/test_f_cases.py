"""The golden repair corpus (see tests/host/f_corpus.py): for every case in
tests/host/f_cases/, the first and second ``fsck.vexfs -y`` give exactly the
recorded output and exit status, and the data oracle holds."""

from __future__ import annotations

from pathlib import Path

import pytest

import f_corpus as F
from vexfs.fs.errors import ImageError
from vexfs.fs.filesystem import Image

CASES = F.all_cases()


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40, CASES


def _new_path(d: F.Damage, p: str) -> str | None:
    """Where base path ``p`` must be after the repair (None: lost)."""
    for old in sorted(d.lost, key=len):
        if p == old or p.startswith(old.rstrip("/") + "/"):
            return None
    for old, new in sorted(d.moved.items(), key=lambda kv: -len(kv[0])):
        if p == old or p.startswith(old + "/"):
            return new + p[len(old):]
    return p


def _changed(d: F.Damage, p: str) -> bool:
    return any(p == c or p.startswith(c.rstrip("/") + "/") for c in d.changed)


def oracle(d: F.Damage, out: str, rc: int, before: bytes) -> None:
    if d.untouched_image:
        assert d.path.read_bytes() == before, "the image was changed"
        return
    for p in d.lost:
        assert f"inode {d.ino(p)}" in out, f"the output does not say what happened to {p}"
    for p, new in d.moved.items():
        if new.startswith("/lost+found/#"):
            said = f"inode {d.ino(p)}" in out and "lost+found" in out
        else:
            said = repr(new.rsplit("/", 1)[1]) in out       # renamed in place
        assert said, f"the output does not say {p} went to {new}"
    with Image(d.path) as im:
        for p, e in d.base.items():
            where = _new_path(d, p)
            if where is None:
                continue
            try:
                ino = im.lookup(where, follow=False)
                inode = im.iget(ino)
                if _changed(d, p):
                    continue            # it must be there; its content may differ
                kind, facts = F._facts(im, ino, inode)
            except (OSError, ImageError) as exc:
                raise AssertionError(f"{p} (expected at {where}) does not read back: "
                                     f"{exc}") from None
            assert ino == e.ino, f"{where} is inode {ino}, was {e.ino}"
            assert kind == e.kind, f"{where}: a {kind}, was a {e.kind}"
            assert facts == e.facts, f"{where} differs after repair: {facts} != {e.facts}"
        for p in d.lost:
            with pytest.raises((FileNotFoundError, ImageError)):
                im.lookup(p, follow=False)


@pytest.mark.parametrize("name", CASES)
def test_case(name: str, tmp_path: Path) -> None:
    d = F.make_case(name, tmp_path)
    before = d.path.read_bytes()
    first = F.run_y(tmp_path)
    second = F.run_y(tmp_path)
    expect1 = (F.CASES / name / "expect.1").read_text()
    expect2 = (F.CASES / name / "expect.2").read_text()
    assert first[1] == expect1, f"first fsck -y output differs (regenerate with " \
        f"python tests/host/f_corpus.py {name} if intended)"
    assert second[1] == expect2, "second fsck -y output differs"
    if first[0] in (0, 1):
        assert second[0] == 0, "not clean after the repair"
    oracle(d, first[1], first[0], before)
