"""`vexfs run R1` end to end with small counts: the robustness figures
(cases tried, failures found) must land in report.json, report.html,
junit.xml and the terminal summary, every criterion passing. The full
counts (1,000 cases, 100,000 calls, 20 cycles) are R1's defaults in
`make run` and the other tests/vm/test_robust_*.py.

The leak stage is switched off here (`--leak-cycles 0`, and checked to be
reported as skipped): its slub_debug boot and mount race cost 2-4 minutes
even at 3 cycles, and its code path (run_leaks + leaks.verdicts) is what
test_robust_leaks.py runs at 20 cycles; R1's glue around it is tested on
a recorded run in tests/host/test_report_robustness.py."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vexfs.vm.build import VEXFS_KO
from vexfs.vm.paths import REPO_ROOT

VEXFS = REPO_ROOT / ".venv" / "bin" / "vexfs"
CASES, CALLS = 30, 5000


@pytest.mark.vm
@pytest.mark.timeout(900)
def test_vexfs_run_r1_reports_the_fuzz_figures(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run([str(VEXFS), "run", "R1", "--module", str(VEXFS_KO), "--out", str(out),
                           "--fuzz-cases", str(CASES), "--ioctl-calls", str(CALLS),
                           "--leak-cycles", "0", "--fuzz-seed", "11"],
                          capture_output=True, text=True, timeout=880,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CI": "1",
                               "HOME": str(tmp_path)})
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    assert (out / "report.json").exists(), proc.returncode
    report = json.loads((out / "report.json").read_text())
    (r1,) = report["scenarios"]
    failed = [c for c in r1["criteria"] if not c["passed"]]
    assert proc.returncode == 0 and r1["status"] == "passed", failed or r1["message"]
    m = r1["metrics"]
    assert m["plan"] == {"fuzz_cases": CASES, "ioctl_calls": CALLS, "leak_cycles": 0,
                         "seed": 11}

    img = m["image_fuzz"]
    assert img["cases_requested"] == CASES and img["cases_run"] == CASES and img["seed"] == 11
    assert img["crashes"] == img["hangs"] == img["failures"] == 0 and img["findings"] == []
    assert img["mounted"] + img["refused_total"] == CASES
    assert "kernel_0.img" in img["bases"]
    assert (out / "R1" / "image" / "summary.json").exists()
    assert list((out / "R1" / "image" / "console").glob("*.log"))

    ioc = m["ioctl_fuzz"]
    assert ioc["calls_requested"] == CALLS and ioc["calls"] >= CALLS * 0.95
    assert ioc["errno_violations"] == 0 and ioc["crashes"] == 0 and ioc["fsck_exit"] == 0
    assert ioc["errno"]["EFAULT"] > 0 and ioc["errno"]["EINVAL"] > 0

    assert m["leaks"] == {"skipped": "--leak-cycles 0"}

    names = [c["name"] for c in r1["criteria"]]
    assert f"Corrupt images: 0 kernel crashes or hangs in {CASES} corrupt-image cases" in names
    assert f"ioctl fuzz: 0 kernel crashes or hangs in {ioc['calls']} ioctl calls" in names
    # 6 image/ioctl criteria + 7 of the ioctl fuzzer's coverage (per ioctl, per
    # context, kill watchdog, structures); no leak criteria with --leak-cycles 0
    assert len(names) == 6 + 7 and not [n for n in names if n.startswith("Leaks:")]

    page = (out / "report.html").read_text()
    section = page[page.index("<h2>Robustness</h2>"):page.index("<h2>Plots</h2>")]
    assert f"{CASES} of {CASES} cases (seed 11)" in section
    assert f"{ioc['calls']} of {CALLS} calls" in section
    assert "skipped (--leak-cycles 0)" in section
    assert section.count('<span class="ok">0</span>') == 2  # failures found, per stage run

    props = {p.get("name"): p.get("value")
             for p in ET.parse(out / "junit.xml").getroot().iter("property")}
    assert props["robustness.image_fuzz.failures"] == "0"
    assert props["robustness.ioctl_fuzz.tried"].startswith(f"{ioc['calls']} of {CALLS} calls")

    assert f"Corrupt-image fuzz: {CASES} of {CASES} cases (seed 11); failures found: 0" \
        in proc.stdout
    assert f"ioctl fuzz: {ioc['calls']} of {CALLS} calls" in proc.stdout
    assert "Leaks and lifetime: skipped (--leak-cycles 0)" in proc.stdout


@pytest.mark.vm
@pytest.mark.timeout(900)
def test_r1_records_a_fuzz_crash_as_a_failure_and_goes_on(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel WARNING fired (by the test-only vexfs_crashtest module) while
    corrupt-image case 3 runs: R1 must record it as a crash with its trace,
    console log and reproducer, fail the crash criterion, finish the other
    cases in a fresh VM and still write the whole report."""
    import functools

    import vexfs.fuzz.imagefuzz as imagefuzz
    from vexfs.crash.crashtest import build_crashtest
    from vexfs.harness.runner import RunnerConfig, run_all
    from vexfs.harness.scenarios import r1_robustness as r1
    from vexfs.harness.framework import RunOptions
    from vexfs.report.events import PlainObserver

    monkeypatch.setattr(imagefuzz, "FuzzConfig", functools.partial(
        imagefuzz.FuzzConfig, inject=(3, "warn"), crashtest_module=build_crashtest()))
    from vexfs.vm.kernel import ensure_kernel

    out = tmp_path / "run"
    cfg = RunnerConfig(kernel=ensure_kernel(headers=False), out_dir=out, observer=PlainObserver(),
                       options=RunOptions(module_path=VEXFS_KO.resolve(), fuzz_cases=8,
                                          ioctl_calls=0, leak_cycles=0, fuzz_seed=4))
    run = run_all([r1.SCENARIO], cfg)
    (res,) = run.scenarios
    assert res.status.value == "failed", res.message
    crit = {c.name: c for c in res.criteria}
    crash_c = crit["Corrupt images: 0 kernel crashes or hangs in 8 corrupt-image cases"]
    assert not crash_c.passed and "case 3: crash" in crash_c.detail, crash_c.detail
    assert crit["Corrupt images: 8 corrupt-image cases ran"].passed  # the rest ran after it
    (crash,) = res.crashes
    assert crash.kind == "warning" and crash.title.startswith("corrupt image case 3: ")
    assert "crashtest_warn" in crash.trace and "R1/image/findings/case_000003_crash" in crash.trace
    assert (out / crash.log_path).is_file() and crash.log_path.startswith("R1/image/console/")
    repro = out / "R1" / "image" / "findings" / "case_000003_crash"
    assert (repro / "image.img").exists() and (repro / "repro.sh").exists()
    img = res.metrics["image_fuzz"]
    assert img["cases_run"] == 8 and img["crashes"] == 1 and img["failures"] == 1
    assert img["boots"] >= 2  # the crashing boot and the fresh one after it
    report = json.loads((out / "report.json").read_text())
    assert report["scenarios"][0]["crashes"][0]["kind"] == "warning"
    page = (out / "report.html").read_text()
    assert "1 kernel crash/hang report" in page and "case 3: crash" in page
    failure = ET.parse(out / "junit.xml").getroot().find(".//testcase/failure")
    assert failure is not None and "0 kernel crashes or hangs in 8 corrupt-image cases" in \
        failure.get("message")
