"""Where the harness keeps things: repo root, caches, logs, results.

Everything lives inside the checkout (git-ignored `.cache/`, `logs/`,
`results/`), so a checkout is self-contained and a second run reuses what the
first one downloaded and built. VEXFS_CACHE overrides the cache location.
"""

from __future__ import annotations

import os
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
