#!/usr/bin/env python3
"""Run the kernel's checkpatch.pl over VexFS's C sources.

checkpatch.pl ships inside Debian's linux-source-6.1 tarball; this extracts
the three files it needs into .cache/checkpatch/ once, then checks every .c
and .h under kernel/ (the test-only crash module included). Exit status is
non-zero when checkpatch reports any error or warning.
"""

from __future__ import annotations

import glob
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "checkpatch"
NEEDED = ("scripts/checkpatch.pl", "scripts/spelling.txt", "scripts/const_structs.checkpatch")


def checkpatch_path() -> Path:
    script = CACHE / "scripts" / "checkpatch.pl"
    if script.exists():
        return script
    tarballs = sorted(glob.glob("/usr/src/linux-source-*.tar.xz"))
    if not tarballs:
        raise SystemExit("checkpatch: no /usr/src/linux-source-*.tar.xz; "
                         "apt-get install linux-source-6.1 (make setup does)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarballs[-1]) as tar:
        for member in tar:
            for want in NEEDED:
                if member.name.endswith("/" + want):
                    member.name = want
                    tar.extract(member, CACHE)
    return script


COMPAT_HEADER = "compat.h"


def sources() -> list[Path]:
    kernel = REPO / "kernel"
    files = [p for p in kernel.rglob("*") if p.suffix in (".c", ".h")]
    return sorted(p for p in files if not p.name.endswith(".mod.c"))


def main(argv: list[str]) -> int:
    script = checkpatch_path()
    files = [Path(a) for a in argv] or sources()
    # kernel/compat.h is the one file allowed to test LINUX_VERSION_CODE: an
    # out-of-tree module builds against several kernels, and that header
    # holds every difference so the .c files need no version tests.
    groups = [([f for f in files if f.name != COMPAT_HEADER], []),
              ([f for f in files if f.name == COMPAT_HEADER], ["--ignore", "LINUX_VERSION_CODE"])]
    findings = []
    for group, extra in groups:
        if not group:
            continue
        cmd = ["perl", str(script), "--no-tree", "--terse", "--show-types", *extra,
               "-f", *map(str, group)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        print(result.stdout, end="")
        print(result.stderr, end="", file=sys.stderr)
        findings += [line for line in result.stdout.splitlines()
                     if ": ERROR:" in line or ": WARNING:" in line]
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
