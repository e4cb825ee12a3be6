"""The files exchanged with the guest drivers.

Case file (host -> fz_image), little endian:
    "VXFZCAS1" u32 ncases
    per case: u32 case_no, u32 base_index, u32 npatch,
              npatch x (u32 offset, u32 length, length bytes)

Result file (fz_image -> host): per case a 48-byte head (see
`ResultHead`), then nchanged u32 block numbers, then nchanged 4 KiB blocks
as the kernel left them after unmount.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

CASE_MAGIC = b"VXFZCAS1"
RESULT_MAGIC = 0x31525A46
_HEAD = struct.Struct("<IIiiIIIIIIII")
BS = 4096


@dataclass
class Case:
    case_no: int
    base: int
    patches: list[tuple[int, bytes]]


def encode_cases(cases: list[Case]) -> bytes:
    out = [CASE_MAGIC, struct.pack("<I", len(cases))]
    for c in cases:
        out.append(struct.pack("<III", c.case_no, c.base, len(c.patches)))
        for off, data in c.patches:
            out.append(struct.pack("<II", off, len(data)))
            out.append(data)
    return b"".join(out)


def decode_cases(data: bytes) -> list[Case]:
    if data[:8] != CASE_MAGIC:
        raise ValueError("not a case file")
    (n,) = struct.unpack_from("<I", data, 8)
    pos, cases = 12, []
    for _ in range(n):
        case_no, base, npatch = struct.unpack_from("<III", data, pos)
        pos += 12
        patches = []
        for _ in range(npatch):
            off, ln = struct.unpack_from("<II", data, pos)
            pos += 8
            patches.append((off, data[pos:pos + ln]))
            pos += ln
        cases.append(Case(case_no, base, patches))
    return cases


@dataclass
class ResultHead:
    case_no: int
    mount_err: int
    umount_err: int
    entries: int
    walk_errors: int
    eio: int
    writes_ok: int
    nchanged: int
    usec: int
    ro_after: int
    blocks: dict[int, bytes] = field(default_factory=dict)


def decode_results(data: bytes) -> list[ResultHead]:
    """Every complete record; a record cut short by a crash is dropped."""
    pos, out = 0, []
    while pos + _HEAD.size <= len(data):
        (magic, case_no, merr, uerr, entries, werr, eio, wok, nch, usec, ro,
         _pad) = _HEAD.unpack_from(data, pos)
        if magic != RESULT_MAGIC:
            raise ValueError(f"bad result record at byte {pos}")
        end = pos + _HEAD.size + 4 * nch + BS * nch
        if end > len(data):
            break
        nums = struct.unpack_from(f"<{nch}I", data, pos + _HEAD.size)
        bpos = pos + _HEAD.size + 4 * nch
        blocks = {b: data[bpos + i * BS:bpos + (i + 1) * BS] for i, b in enumerate(nums)}
        out.append(ResultHead(case_no, merr, uerr, entries, werr, eio, wok, nch, usec, ro,
                              blocks))
        pos = end
    return out


def apply_blocks(img: bytes, blocks: dict[int, bytes]) -> bytearray:
    out = bytearray(img)
    for b, data in blocks.items():
        out[b * BS:(b + 1) * BS] = data
    return out
