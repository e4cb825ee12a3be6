"""Crash signatures on golden console captures from REAL crashes.

Each tests/host/data/console/<name>.log is the raw serial console of a
Debian 6.1 guest booted by the harness's quick runner, in which
vexfs_crashtest.ko fired one trigger (recorded with
`python -m vexfs.crash.capture <name>`). <name>.expect lists the crashes
the detector must report, in order (TITLE/KIND/CORRUPTED blocks), or
NO CRASH for the false-positive captures (clean boots, module loads,
an ext4 mount cycle).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vexfs.crash.crashtest import TRIGGERS
from vexfs.crash.detect import CrashDetector, parse_log
from vexfs.crash.expect import as_expected, format_expectations, load_expectations

DATA = Path(__file__).parent / "data" / "console"
LOGS = sorted(DATA.glob("*.log"))


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_there_are_real_captures():
    names = {p.stem for p in LOGS}
    # the crash kinds the harness must recognise, each from a real boot
    for needed in ("panic", "bug", "warn", "oops", "gpf", "divide", "hang", "softlockup",
                   "clean_boot", "clean_boot_verbose", "clean_modules"):
        assert needed in names, f"missing golden capture {needed}.log"


@pytest.mark.parametrize("log", LOGS, ids=_ids(LOGS))
def test_every_capture_has_an_expectation(log: Path):
    assert log.with_suffix(".expect").is_file(), f"{log.name} has no .expect file"


@pytest.mark.parametrize("log", LOGS, ids=_ids(LOGS))
def test_golden_capture(log: Path):
    expected = load_expectations(log.with_suffix(".expect"))
    crashes = parse_log(log.read_text(errors="replace"))
    got = [as_expected(c) for c in crashes]
    assert got == expected, (
        f"{log.name}: detector says\n{format_expectations(crashes)}\nexpected\n"
        f"{log.with_suffix('.expect').read_text()}")
    for crash in crashes:
        # the trace is the console excerpt, header included
        assert crash.trace and crash.trace in log.read_text(errors="replace").replace("\r", "")


@pytest.mark.parametrize("log", LOGS, ids=_ids(LOGS))
def test_streaming_equals_parse_log(log: Path):
    """The harness feeds lines one by one; it must see what parse_log sees."""
    det = CrashDetector()
    got = []
    for line in log.read_text(errors="replace").splitlines(keepends=True):
        crash = det.feed(line)
        if crash:
            got.append(crash)
    last = det.flush()
    if last:
        got.append(last)
    assert got == parse_log(log.read_text(errors="replace"))


def test_crash_reported_at_end_marker():
    """An oops is reported when its '---[ end trace' line arrives, not later."""
    lines = (DATA / "oops.log").read_text().splitlines()
    det = CrashDetector()
    for i, line in enumerate(lines):
        crash = det.feed(line)
        if crash:
            assert "---[ end trace" in line
            assert crash.trace.splitlines()[-1] == line
            assert "BUG: kernel NULL pointer dereference, address: 0000000000000000" in crash.trace
            assert "crashtest_write" in crash.trace  # the call trace is in it
            break
    else:
        pytest.fail("no crash reported while streaming oops.log")


def test_panic_trace_runs_to_kernel_offset():
    crash = parse_log((DATA / "panic.log").read_text())[0]
    assert crash.trace.splitlines()[-1].endswith("Kernel Offset: disabled")
    # a few lines of context before the header
    assert "trigger panic" in crash.trace.splitlines()[0] or "trigger panic" in crash.trace


def _trigger_title_re(title: str) -> re.Pattern[str]:
    return re.compile(re.escape(title).replace("LINE", r"\d+") + "$")


@pytest.mark.parametrize("name", [n for n, t in TRIGGERS.items() if t.title])
def test_crashtest_doc_matches_capture(name: str):
    """vexfs.crash.crashtest.TRIGGERS documents each trigger's title; the real capture agrees."""
    log = DATA / f"{name}.log"
    if not log.exists():
        pytest.fail(f"trigger {name} has no golden capture {log.name}")
    crashes = parse_log(log.read_text())
    assert crashes, f"{log.name}: no crash"
    trigger = TRIGGERS[name]
    assert _trigger_title_re(trigger.title).match(crashes[0].title), crashes[0].title
    assert crashes[0].kind == trigger.kind


@pytest.mark.parametrize("name", [n for n, t in TRIGGERS.items() if not t.title and n != "ok"])
def test_silent_triggers_yield_no_crash(name: str):
    """`freeze` and default `slab_leak` print nothing: only the harness timeout / slub_debug see them."""
    log = DATA / f"{name}.log"
    assert log.exists()
    assert parse_log(log.read_text()) == []


def test_crashtest_triggers_match_module_source():
    src = (Path(__file__).parents[2] / "kernel" / "test" / "crashtest" / "vexfs_crashtest.c").read_text()
    in_module = re.findall(r'\{ "(\w+)", crashtest_\w+ \}', src)
    assert in_module == list(TRIGGERS)


def _stamp(line: str) -> float:
    return float(re.match(r"\[\s*(\d+\.\d+)\]", line).group(1))


def test_recommended_hung_task_settings_report_before_the_harness_timeout():
    """vexfs/crash/README recommends hung_task_timeout_secs=15, check interval 5:
    the real capture shows the report less than 30 s after the task blocked."""
    lines = (DATA / "hang_recommended.log").read_text().splitlines()
    fired = next(_stamp(x) for x in lines if "trigger hang" in x)
    reported = next(_stamp(x) for x in lines if "blocked for more than 15 seconds" in x)
    assert 15 <= reported - fired < 30, reported - fired
