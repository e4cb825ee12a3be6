"""Crash trace symbolization (vexfs.crash.symbolize) on recorded crashes.

tests/host/data/symbolize/ holds real console captures (oops, warn, bug:
`python -m vexfs.crash.capture`, Debian 6.1.0-57 guest) and the very
vexfs_crashtest.ko that produced them. Each resolved frame must point at
the source line that does what the report says (the NULL write, the WARN,
the BUG, the trigger's indirect call), read from the source file itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vexfs.crash.detect import parse_log
from vexfs.crash.symbolize import NOTE_PREFIX, Symbolizer, parse_frames
from vexfs.harness.runner import symbolize_crashes
from vexfs.vm.paths import REPO_ROOT

DATA = Path(__file__).parent / "data" / "symbolize"
KO = DATA / "vexfs_crashtest.ko"
SOURCE = REPO_ROOT / "kernel" / "test" / "crashtest" / "vexfs_crashtest.c"
LOCATION_RE = re.compile(r"\((kernel/test/crashtest/vexfs_crashtest\.c):(\d+)\)$")


def symbolizer(**kw) -> Symbolizer:
    return Symbolizer({"vexfs_crashtest": KO}, kernel_version="6.1.0-57-amd64", **kw)


def annotated(name: str) -> str:
    crashes = parse_log((DATA / f"{name}.log").read_text())
    assert len(crashes) == 1, crashes
    return symbolizer().annotate(crashes[0].trace)


def resolved(trace: str, func: str, rip: bool = False) -> str:
    """The source line a frame of `func` resolved to."""
    for line in trace.splitlines():
        if f"{func}+0x" in line and ("RIP: 0010:" in line) == rip:
            m = LOCATION_RE.search(line)
            assert m, f"frame not resolved: {line}"
            return SOURCE.read_text().splitlines()[int(m.group(2)) - 1].strip()
    raise AssertionError(f"no {func} frame in\n{trace}")


def test_oops_frames_point_at_the_null_write_and_the_call() -> None:
    trace = annotated("oops")
    assert resolved(trace, "crashtest_oops", rip=True) == "WRITE_ONCE(*p, 1);"
    # a return address: the line of the call, not the one after it
    assert resolved(trace, "crashtest_write.cold") == "crashtest_triggers[i].fn();"


def test_warning_frames() -> None:
    trace = annotated("warn")
    assert resolved(trace, "crashtest_warn", rip=True).startswith("WARN(1,")
    assert resolved(trace, "crashtest_write.cold") == "crashtest_triggers[i].fn();"


def test_bug_frames() -> None:
    trace = annotated("bug")
    assert resolved(trace, "crashtest_bug", rip=True) == "BUG();"


def test_kernel_frames_without_debug_vmlinux_say_how_to_get_them() -> None:
    trace = annotated("oops")
    for line in trace.splitlines():
        if "vfs_write+0x" in line:
            assert "(" not in line.split("vfs_write+", 1)[1], line  # left as printed
    note = trace.splitlines()[-1]
    assert note.startswith(NOTE_PREFIX)
    assert "install linux-image-6.1.0-57-amd64-dbg" in note and "vexfs run --symbols" in note


def test_annotate_is_idempotent() -> None:
    trace = annotated("oops")
    assert symbolizer().annotate(trace) == trace


def test_other_build_is_not_trusted() -> None:
    """A frame whose printed function size cannot be this object's (another
    build of the module) is not given a line that would be wrong."""
    trace = ("RIP: 0010:crashtest_oops+0xc/0x400 [vexfs_crashtest]\n"
             " crashtest_write.cold+0x31/0x54 [vexfs_crashtest]\n")
    out = symbolizer().annotate(trace).splitlines()
    assert "not resolved: crashtest_oops is 0x17 bytes in vexfs_crashtest.ko, 0x400" in out[0]
    assert LOCATION_RE.search(out[1])
    assert "is not the object that crashed" in out[-1]


def test_unknown_module_is_named() -> None:
    out = symbolizer().annotate(" other_fn+0x10/0x40 [some_mod]\n")
    assert "no debug object for module(s) some_mod" in out


def test_frames_parsed() -> None:
    frames = parse_frames("[  1.0] RIP: 0010:foo+0x1a/0x30 [vexfs]\n[  1.1]  ? bar.cold+0x5/0x9\n")
    assert [(f.func, f.offset, f.size, f.module, f.is_rip) for f in frames] == [
        ("foo", 0x1a, 0x30, "vexfs", True), ("bar.cold", 5, 9, None, False)]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_kernel_frames_resolve_with_a_debug_vmlinux(tmp_path: Path) -> None:
    """The vmlinux path (absolute addresses, ET_EXEC) with a stand-in: a
    small executable built with -g, as the -dbg package's vmlinux is."""
    src = tmp_path / "fake_kernel.c"
    src.write_text("int counter;\n"
                   "__attribute__((noinline)) void vfs_write(void)\n{\n\tcounter++;\n}\n"
                   "int main(void)\n{\n\tvfs_write();\n\treturn 0;\n}\n")
    exe = tmp_path / "vmlinux"
    subprocess.run(["gcc", "-g", "-O0", "-no-pie", "-fno-pie", "-o", str(exe), str(src)],
                   check=True)
    sym = Symbolizer({}, vmlinux=exe)
    size = next(int(line.split()[4], 16) for line in subprocess.run(
        ["objdump", "-t", str(exe)], capture_output=True, text=True).stdout.splitlines()
        if line.endswith(" vfs_write"))
    out = sym.annotate(f"RIP: 0010:vfs_write+0x4/0x{size:x}\n")
    m = re.search(r"\((.*fake_kernel\.c):(\d+)\)", out)
    assert m and int(m.group(2)) in (3, 4), out
    assert "kernel frames not resolved" not in out


def test_runner_symbolizes_report_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's crashes (runner) carry resolved traces."""
    from types import SimpleNamespace

    from vexfs.crash import crashtest

    monkeypatch.setattr(crashtest, "SOURCE_DIR", DATA)  # where the runner finds the .ko

    crash = parse_log((DATA / "oops.log").read_text())[0]
    cfg = SimpleNamespace(options=SimpleNamespace(module_path=None),
                          kernel=SimpleNamespace(version="6.1.0-57-amd64"))
    symbolize_crashes([crash], cfg)  # type: ignore[arg-type]
    assert LOCATION_RE.search(next(line for line in crash.trace.splitlines()
                                   if "RIP: 0010:crashtest_oops" in line))
