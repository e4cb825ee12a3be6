"""Expectation files for golden console captures (syzkaller's testdata style).

A `<name>.expect` file next to `<name>.log` lists the crashes the detector
must report, in order, one block each, blocks separated by a blank line:

    TITLE: WARNING in crashtest_warn
    KIND: warning
    CORRUPTED: N

A file with no block (only `#` comments, or `NO CRASH`) means the log must
yield no crash at all: the false-positive tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vexfs.report.model import Crash


@dataclass(frozen=True)
class Expected:
    title: str
    kind: str
    corrupted: bool


class ExpectError(ValueError):
    pass


def parse_expectations(text: str, source: str = "<expect>") -> list[Expected]:
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#") or stripped == "NO CRASH":
            continue
        if not stripped:
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = stripped.partition(":")
        if not sep or key not in ("TITLE", "KIND", "CORRUPTED"):
            raise ExpectError(f"{source}:{number}: expected TITLE/KIND/CORRUPTED, got {line!r}")
        if key in current:
            raise ExpectError(f"{source}:{number}: {key} twice in one block")
        current[key] = value.strip()
    if current:
        blocks.append(current)
    expected = []
    for block in blocks:
        missing = {"TITLE", "KIND", "CORRUPTED"} - block.keys()
        if missing:
            raise ExpectError(f"{source}: block {block} lacks {', '.join(sorted(missing))}")
        if block["CORRUPTED"] not in ("Y", "N"):
            raise ExpectError(f"{source}: CORRUPTED must be Y or N, got {block['CORRUPTED']!r}")
        expected.append(Expected(block["TITLE"], block["KIND"], block["CORRUPTED"] == "Y"))
    return expected


def load_expectations(path: Path) -> list[Expected]:
    return parse_expectations(path.read_text(), str(path))


def as_expected(crash: Crash) -> Expected:
    return Expected(crash.title, crash.kind, bool(getattr(crash, "corrupted", False)))


def format_expectations(crashes: list[Crash]) -> str:
    if not crashes:
        return "NO CRASH\n"
    return "\n".join(f"TITLE: {c.title}\nKIND: {c.kind}\nCORRUPTED: {'Y' if c.corrupted else 'N'}\n"
                     for c in crashes)
