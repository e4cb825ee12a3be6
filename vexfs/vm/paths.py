"""Where the harness keeps things: repo root, caches, logs, results.

Everything lives inside the checkout (git-ignored `.cache/`, `logs/`,
`results/`), so a checkout is self-contained and a second run reuses what the
first one downloaded and built. VEXFS_CACHE overrides the cache location.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    return Path(os.environ.get("VEXFS_CACHE", REPO_ROOT / ".cache"))


def logs_dir() -> Path:
    path = REPO_ROOT / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    return REPO_ROOT / "results"


def shared_cache_dir() -> Path:
    """A cache shared by every checkout on this machine (fresh CI clones
    too): built modules keyed by the hash of what went into them.
    VEXFS_SHARED_CACHE overrides it; XDG_CACHE_HOME is honoured."""
    forced = os.environ.get("VEXFS_SHARED_CACHE")
    if forced:
        return Path(forced)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vexfs"


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """An exclusive lock (flock) shared by every process of this checkout:
    parallel test workers and `vexfs run`s never build into one directory
    or fetch one kernel at once. `name` may be any string."""
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / (hashlib.sha256(name.encode()).hexdigest()[:16] + ".lock")
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
