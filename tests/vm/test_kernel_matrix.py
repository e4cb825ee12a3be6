"""S1-S4 on Debian's 6.12 kernel through `vexfs matrix`, beside the 6.1 runs.

The rest of the suite boots the default kernel (apt's current 6.1); this
test proves the compat header on the current 6.12: `vexfs matrix --kernels
6.12 S1 S2 S3 S4` fetches the 6.12 image (linux-image-6.12-amd64 resolved
by apt), installs its headers, builds kernel/build/<release>/vexfs.ko
against them and runs the four scenarios in parallel VMs (-j 2). It checks
the matrix report: one row, the 6.12 release, every cell passed with its
criteria, each cell's links resolving to that kernel's report and
transcript, and the module that ran carrying the 6.12 vermagic.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VEXFS = REPO / ".venv" / "bin" / "vexfs"
SCENARIOS = ["S1", "S2", "S3", "S4"]


def test_s1_to_s4_pass_on_612(tmp_path: Path) -> None:
    out = tmp_path / "matrix"
    started = time.monotonic()
    proc = subprocess.run([str(VEXFS), "matrix", "--kernels", "6.12", "-j", "2", "--out", str(out),
                           *SCENARIOS], capture_output=True, text=True, timeout=3000)
    wall = time.monotonic() - started
    print(f"vexfs matrix --kernels 6.12 -j 2 {' '.join(SCENARIOS)}: {wall:.0f} s")
    print(proc.stdout[-3000:])
    data = json.loads((out / "matrix.json").read_text())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert data["passed"] is True and data["scenarios"] == SCENARIOS
    (row,) = data["rows"]
    assert row["spec"] == "6.12" and row["release"].startswith("6.12.") and not row["error"]
    for sid in SCENARIOS:
        cell = row["cells"][sid]
        assert cell["status"] == "passed", (sid, cell["message"])
        assert cell["criteria_total"] > 0 and cell["criteria_passed"] == cell["criteria_total"]
        report, _, anchor = cell["report_link"].partition("#")
        assert (out / report).is_file() and anchor == sid
        assert (out / cell["transcript_link"]).read_text().startswith(f"# {sid} ")
    run = json.loads((out / row["run_dir"] / "report.json").read_text())
    assert run["environment"]["kernel_version"] == row["release"]
    module = Path(run["environment"]["module_path"])
    assert module == REPO / "kernel" / "build" / row["release"] / "vexfs.ko"
    vermagic = subprocess.run(["modinfo", "-F", "vermagic", str(module)], capture_output=True,
                              text=True, check=True).stdout
    assert vermagic.split()[0] == row["release"]
    page = (out / "matrix.html").read_text()
    assert all(f'href="{row["cells"][s]["report_link"]}"' in page for s in SCENARIOS)
