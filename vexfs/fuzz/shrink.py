"""Minimise the mutated bytes of a failing case (delta debugging, ddmin).

`ddmin(items, still_fails)` returns a 1-minimal subset of `items` for which
`still_fails(subset)` is true: removing any single item makes the failure go
away (or the probe budget ran out, in which case the smallest failing subset
found so far is returned). For images the items are the offsets of the
bytes that differ from the base image, and the predicate builds
`base + those bytes` and runs it (in a VM for kernel crashes, on the host
for fsck crashes).
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Budget:
    def __init__(self, probes: int) -> None:
        self.left = probes
        self.used = 0

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.used += 1
        return True


def ddmin(items: Sequence[T], still_fails: Callable[[list[T]], bool],
          max_probes: int = 200) -> tuple[list[T], int]:
    """(minimal failing subset, probes used). `items` itself must fail."""
    current = list(items)
    budget = Budget(max_probes)
    cache: dict[tuple, bool] = {}

    def test(subset: list[T]) -> bool:
        key = tuple(subset)
        if key in cache:
            return cache[key]
        if not budget.take():
            raise _OutOfBudget
        cache[key] = bool(still_fails(subset))
        return cache[key]

    n = 2
    try:
        while len(current) >= 2:
            size = len(current)
            chunk = max(1, size // n)
            subsets = [current[i:i + chunk] for i in range(0, size, chunk)]
            progressed = False
            for sub in subsets:  # reduce to a subset
                if test(sub):
                    current, n, progressed = sub, 2, True
                    break
            if not progressed:
                for i in range(len(subsets)):  # reduce to a complement
                    comp = [x for j, s in enumerate(subsets) if j != i for x in s]
                    if comp and test(comp):
                        current, n, progressed = comp, max(n - 1, 2), True
                        break
            if not progressed:
                if n >= size:
                    break
                n = min(size, n * 2)
    except _OutOfBudget:
        log.info("shrink: probe budget of %d exhausted at %d items", max_probes, len(current))
    return current, budget.used


class _OutOfBudget(Exception):
    pass
