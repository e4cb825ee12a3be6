"""ddmin shrinker: minimality, budget, and the image use (no VM)."""

from __future__ import annotations

import random

from vexfs.fuzz.mutate import apply_bytes
from vexfs.fuzz.shrink import ddmin


def test_finds_the_single_culprit() -> None:
    items = list(range(100))
    probes = []

    def fails(sub):
        probes.append(len(sub))
        return 42 in sub

    best, used = ddmin(items, fails)
    assert best == [42]
    assert used == len(probes) and used < 40


def test_finds_an_interacting_pair_and_is_one_minimal() -> None:
    items = list(range(64))

    def fails(sub):
        return 3 in sub and 50 in sub

    best, _ = ddmin(items, fails)
    assert sorted(best) == [3, 50]
    for x in best:  # 1-minimal: dropping any element stops the failure
        assert not fails([y for y in best if y != x])


def test_budget_bounds_the_probes_and_keeps_a_failing_set() -> None:
    items = list(range(1000))
    need = set(random.Random(1).sample(items, 12))

    def fails(sub):
        return need <= set(sub)

    best, used = ddmin(items, fails, max_probes=15)
    assert used <= 15
    assert fails(best)
    assert len(best) <= len(items)


def test_shrinks_image_bytes() -> None:
    base = bytes(4096)
    img = bytearray(base)
    for off in (10, 200, 300, 4000):
        img[off] = 0xFF
    offsets = [10, 200, 300, 4000]

    def crashes(sub):  # a "kernel" that dies when bytes 200 and 4000 are both set
        cand = apply_bytes(base, img, sub)
        return cand[200] == 0xFF and cand[4000] == 0xFF

    best, _ = ddmin(offsets, crashes)
    assert sorted(best) == [200, 4000]


def test_single_item_input() -> None:
    best, used = ddmin([7], lambda s: True)
    assert best == [7] and used == 0


def test_crash_is_attributed_to_the_case_its_report_began_in() -> None:
    # A WARNING does not stop the driver: "FZ S 6" may reach the harness
    # before the report is complete. The report's header line decides.
    from vexfs.fuzz.vmutil import Progress
    from vexfs.report.model import Crash

    p = Progress()
    for line in ["FZ S 5", "[    4.01] vexfs: mounting",
                 "[    4.02] WARNING: CPU: 0 PID: 56 at crashtest_warn+0x1/0x2",
                 "[    4.03] Call Trace:", "FZ S 6", "[    4.04] ---[ end trace 0 ]---"]:
        p.feed(line)
    crash = Crash(kind="warning", title="WARNING in crashtest_warn",
                  trace="[    4.01] vexfs: mounting\n"
                        "[    4.02] WARNING: CPU: 0 PID: 56 at crashtest_warn+0x1/0x2\n"
                        "[    4.03] Call Trace:\n[    4.04] ---[ end trace 0 ]---\n")
    assert p.current == 6
    assert p.case_of(crash) == 5
    assert p.case_of(Crash(kind="hang", title="hang", trace="no header here")) == 6
