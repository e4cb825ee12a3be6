"""`make test`'s scheduling: one test file runs on one pytest-xdist worker.

A file's module-scoped fixture boots one VM or runs one scenario for all its
tests; if the file's tests are spread over workers, that work runs once per
worker. tests/conftest.py puts every test in its file's xdist group and
`make test` runs `--dist loadgroup`; this runs a real two-worker session
over a small file of this suite and checks where each test ran.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests/host/test_vm_initramfs.py"  # three fast tests, no VM


def test_one_file_runs_on_one_worker() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup",
         "--no-loadscope-reorder", "-v", "-p", "no:cacheprovider", PROBE],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    ran = re.findall(r"\[(gw\d+)\] \[\s*\d+%\] PASSED (\S+)", res.stdout)
    assert len(ran) >= 3, res.stdout[-3000:]
    workers = {worker for worker, _ in ran}
    assert len(workers) == 1, f"tests of one file ran on {sorted(workers)}: {ran}"
    assert all(nodeid.endswith("@host/test_vm_initramfs.py") for _, nodeid in ran), ran
