"""fsck.vexfs: check and repair a VexFS filesystem.

``checker`` holds the passes, ``problems`` the problem table, ``cli`` the
command line and the repair loop (``run_fsck``). This package keeps the names
tools and tests import from ``vexfs.fsck``.
"""

from __future__ import annotations

from vexfs.fsck.checker import EXIT_CANCELED, EXIT_CORRECTED, EXIT_OK, EXIT_OPERATIONAL, \
    EXIT_REBOOT, EXIT_UNCORRECTED, EXIT_USAGE, LOST_FOUND, MAX_ROUNDS, Checker, FatalError, \
    InodeInfo, Problem
from vexfs.fsck.cli import build_parser, main, rebuild_superblock, run_fsck
from vexfs.fsck.problems import PASSES, PROBLEMS

__all__ = ["EXIT_CANCELED", "EXIT_CORRECTED", "EXIT_OK", "EXIT_OPERATIONAL", "EXIT_REBOOT",
           "EXIT_UNCORRECTED", "EXIT_USAGE", "LOST_FOUND", "MAX_ROUNDS", "PASSES", "PROBLEMS",
           "Checker", "FatalError", "InodeInfo", "Problem", "build_parser", "main",
           "rebuild_superblock", "run_fsck"]
