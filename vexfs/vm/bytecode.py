"""Bytecode of this checkout's Python package, written on the host before a guest boots.

Guests see the host root read-only over 9p; what a guest writes lands in a
per-boot overlay and is gone at the next boot. A module of the checkout
without an up-to-date .pyc on the host is therefore compiled again by every
Python process in every guest, under TCG: every mkfs.vexfs, fsck.vexfs and
vexfs call a scenario makes. The editable install (pip install -e) compiles
nothing, and a host shell with PYTHONDONTWRITEBYTECODE=1 never leaves .pyc
files behind. compileall writes only the missing and stale ones (it compares
each source's mtime and size with its .pyc header), so calling it before
every boot costs a directory walk; writes are atomic, so parallel callers
(xdist workers, `vexfs run -j N`) are safe.
"""

from __future__ import annotations

import compileall
import logging
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../vexfs


def ensure_compiled(package_dir: Path = PACKAGE_DIR) -> bool:
    """Compile every stale or missing .pyc under `package_dir`; False if a
    source failed to compile (logged: the guest would then fail the same way)."""
    ok = compileall.compile_dir(str(package_dir), quiet=2, workers=1)
    if not ok:
        log.warning("compileall: some modules under %s do not compile", package_dir)
    return bool(ok)
