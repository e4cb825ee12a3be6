"""The image mutator: determinism, field-aware targeting, checksum handling,
and patch/diff round trips (no VM)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from vexfs import layout as L
from vexfs.fsck import run_fsck
from vexfs.fuzz import bases
from vexfs.fuzz.casefile import Case, apply_blocks, decode_cases, decode_results, encode_cases
from vexfs.fuzz.mutate import ImageModel, Mutator, apply_bytes, case_rng, changed_bytes, \
    diff_runs, mutate, struct_fields


@pytest.fixture(scope="module")
def base_a(tmp_path_factory) -> tuple[Path, bytes, ImageModel]:
    p = tmp_path_factory.mktemp("fz") / "a.img"
    bases.build_offline_a(p)
    return p, p.read_bytes(), ImageModel.build(str(p))


def test_offline_bases_are_clean(tmp_path: Path) -> None:
    for i, build in enumerate(bases.OFFLINE):
        p = tmp_path / f"b{i}.img"
        build(p)
        out = io.StringIO()
        assert run_fsck(str(p), "n", out=out) == 0, out.getvalue()


def test_model_covers_every_structure(base_a) -> None:
    _, data, m = base_a
    kinds = {r.kind for r in m.regions}
    assert {"super", "ibitmap", "bbitmap", "inode", "dirblock", "extblock", "collhdr",
            "collrec", "symlink", "data"} <= kinds
    # every region's checksum verifies on the valid base
    for r in m.regions:
        if r.csum is not None:
            assert L.checksum_ok(data[r.csum.start:r.csum.start + r.csum.length],
                                 r.csum.field_off), r
    # directory entries point at real entries: the first of each block is "."
    for r in m.of_kind("dirblock"):
        first = r.entries[0]
        assert data[first + 8:first + 9] in (b".", b"n", b"h", b"d", b"l", b"e", b"s", b"f",
                                             b"v")
    assert L.VEXFS_ROOT_INO in m.used_inodes and L.VEXFS_ROOT_INO in m.dirs


def test_struct_fields_flatten_nested_extents() -> None:
    names = {f.name: f for f in struct_fields(L.Inode, 1000)}
    assert names["i_extents[5].ee_len"].offset == 1000 + L.Inode.i_extents.offset + 5 * 24 + 16
    assert names["i_checksum"].size == 4
    sb = {f.name for f in struct_fields(L.SuperBlock, 0)}
    assert "s_uuid" in sb and "s_reserved[7]" in sb and "s_journal_blocks" in sb


def test_mutation_is_deterministic_and_changes_the_image(base_a) -> None:
    _, data, m = base_a
    for case in range(50):
        a, log_a = mutate(m, data, case_rng(9, case))
        b, log_b = mutate(m, data, case_rng(9, case))
        assert a == b and log_a == log_b
        assert a != data and log_a
    assert mutate(m, data, case_rng(9, 1))[0] != mutate(m, data, case_rng(10, 1))[0]


def test_checksums_recomputed_and_left_wrong(base_a) -> None:
    _, data, m = base_a
    fixed = wrong = 0
    for case in range(300):
        _, log_ = mutate(m, data, case_rng(5, case))
        text = " ".join(log_)
        fixed += "checksum recomputed" in text
        wrong += "checksum left wrong" in text
    assert fixed > 30 and wrong > 30


def test_recomputed_checksum_really_verifies(base_a) -> None:
    _, data, m = base_a
    sb_region = m.of_kind("super")[0]
    img = bytearray(data)
    mut = Mutator(m, img, random.Random(1), p_fix=1.0)
    for _ in range(20):
        mut.op_field()
    # every region touched with p_fix=1 has a valid checksum again
    assert L.checksum_ok(img[:256], L.SB_CHECKSUM_OFF) or \
        sb_region.csum is None
    for r in m.regions:
        if r.csum is not None:
            assert L.checksum_ok(img[r.csum.start:r.csum.start + r.csum.length],
                                 r.csum.field_off), r.kind


def test_all_operators_run(base_a) -> None:
    _, data, m = base_a
    for op in set(Mutator.OPS):
        img = bytearray(data)
        for seed in range(20):
            getattr(Mutator(m, img, random.Random(seed)), "op_" + op)()
        assert img != data, op


def test_fsck_never_raises_on_mutations(base_a, tmp_path: Path) -> None:
    """fsck.vexfs must report, never crash, whatever the mutation."""
    _, data, m = base_a
    codes = set()
    for case in range(150):
        img, ops = mutate(m, data, case_rng(77, case))
        p = tmp_path / "x.img"
        p.write_bytes(img)
        rc = run_fsck(str(p), "n", out=io.StringIO())
        codes.add(rc)
        assert rc in (0, 4, 8), (case, ops, rc)
    assert 4 in codes


def test_diff_runs_and_case_file_round_trip(base_a) -> None:
    _, data, m = base_a
    cases = []
    imgs = {}
    for n in range(20):
        img, _ = mutate(m, data, case_rng(3, n))
        imgs[n] = img
        cases.append(Case(n, 0, diff_runs(data, img)))
    back = decode_cases(encode_cases(cases))
    for c in back:
        rebuilt = bytearray(data)
        for off, chunk in c.patches:
            rebuilt[off:off + len(chunk)] = chunk
        assert rebuilt == imgs[c.case_no]


def test_apply_bytes_subset(base_a) -> None:
    _, data, m = base_a
    img, _ = mutate(m, data, case_rng(4, 4))
    offs = changed_bytes(data, img)
    assert apply_bytes(data, img, offs) == img
    assert apply_bytes(data, img, []) == bytearray(data)


def test_result_decoding_drops_a_torn_record() -> None:
    import struct
    head = struct.pack("<IIiiIIIIIIII", 0x31525A46, 7, 0, 0, 10, 1, 0, 3, 1, 1000, 0, 0)
    rec = head + struct.pack("<I", 5) + b"\xab" * 4096
    res = decode_results(rec + rec[:100])
    assert len(res) == 1 and res[0].case_no == 7 and res[0].blocks[5] == b"\xab" * 4096
    out = apply_blocks(bytes(8 * 4096), res[0].blocks)
    assert out[5 * 4096:6 * 4096] == b"\xab" * 4096 and out[:4096] == bytes(4096)


@pytest.mark.parametrize("kind", ["crosslink", "empty_extblock", "chain_cycle",
                                  "forged_collection", "links_low"])
def test_structure_aware_cases(base_a, kind, tmp_path: Path) -> None:
    """Each structure-aware case does what it says on a valid base, with the
    covering checksums valid (so the kernel's structure checks are reached,
    not its checksum checks), is labelled for R1's coverage, and fsck.vexfs
    reports the damage without raising or hanging."""
    from vexfs.fuzz.mutate import op_label
    from vexfs.image import Image

    _, data, m = base_a
    seen = 0
    for seed in range(12):
        img = bytearray(data)
        mut = Mutator(m, img, random.Random(seed), p_fix=1.0)
        getattr(mut, "_struct_" + kind)()
        if not mut.log:
            continue
        seen += 1
        assert op_label(mut.log[-1]) == f"struct:{kind}", mut.log
        p = tmp_path / "s.img"
        p.write_bytes(img)
        with Image(str(p)) as im:
            for r in m.of_kind("inode", "extblock", "collhdr"):
                if r.csum is not None:
                    assert L.checksum_ok(img[r.csum.start:r.csum.start + r.csum.length],
                                         r.csum.field_off), (kind, r.kind, mut.log)
            sb = im.sb
        out = io.StringIO()
        rc = run_fsck(str(p), "n", out=out)
        assert rc in (0, 4, 8), (kind, mut.log, out.getvalue()[-500:])
        if kind != "links_low":     # a removed name can leave counts consistent
            assert rc != 0, (kind, mut.log, out.getvalue()[-500:])
        assert sb.s_blocks_count
    assert seen >= 6, kind


def test_struct_op_is_in_the_mix_and_labelled(base_a) -> None:
    from vexfs.fuzz.mutate import op_label

    _, data, m = base_a
    labels: set[str] = set()
    for case in range(400):
        _, log_ = mutate(m, data, case_rng(21, case))
        labels |= {op_label(e) for e in log_}
    assert {f"struct:{k}" for k in Mutator.STRUCT_KINDS} <= labels, labels
    assert {"inode", "dirent", "super"} <= labels, labels
    assert "other" not in labels, labels
