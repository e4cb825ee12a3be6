"""A killed harness takes its QEMU with it (vexfs.vm.qemu._die_with_parent)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in state  # dead, waiting for whoever inherited it


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="util-linux setpriv missing")
def test_child_is_killed_when_the_harness_is_killed(tmp_path: Path) -> None:
    # a stand-in for QEMU: started exactly as the harness starts QEMU
    script = (
        "import time\n"
        "from pathlib import Path\n"
        "from vexfs.vm.qemu import QemuProcess\n"
        f"p = QemuProcess(['sleep', '120'], [Path({str(tmp_path)!r}) / 'console.log'])\n"
        "print(p.proc.pid, flush=True)\n"
        "time.sleep(120)\n")
    harness = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               text=True)
    assert harness.stdout is not None
    pid = int(harness.stdout.readline())
    try:
        assert not _gone(pid)
        harness.kill()  # SIGKILL: no cleanup code of the harness runs
        harness.wait(10)
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid), "the child outlived the SIGKILLed harness"
    finally:
        if not _gone(pid):
            os.kill(pid, 9)
