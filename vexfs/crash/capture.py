"""Record golden console captures of REAL crashes for the signature tests.

    .venv/bin/python -m vexfs.crash.capture [NAME...] [--list] [--out DIR]

Each capture boots a fresh guest with `vexfs.vm.quick` (the same VM, kernel
command line and console path the harness uses), loads vexfs_crashtest.ko,
fires a trigger and saves the raw serial console to
tests/host/data/console/<name>.log. The expectation file <name>.expect is
written by hand after reading the log (see tests/host/test_crash_signatures.py);
`--draft` prints what the detector says today, as a starting point only.

A developer tool: the tests only read the saved logs, they never boot.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from vexfs.crash.crashtest import CONTROL_FILE, build_crashtest

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parents[2] / "tests" / "host" / "data" / "console"
LOAD = "insmod /tmp/vexfs_crashtest.ko\n"


def fire(trigger: str) -> str:
    return f"echo {trigger} > {CONTROL_FILE}\necho \"write exit $?\"\n"


@dataclass(frozen=True)
class Capture:
    name: str
    script: str
    timeout: float = 90
    cmdline: tuple[str, ...] = ()
    module: bool = True
    cpus: int = 2
    extra_modules: tuple[str, ...] = ()  # repo-relative files copied to /tmp in the guest


CAPTURES: dict[str, Capture] = {c.name: c for c in (
    # --- no crash: false-positive tests -------------------------------------
    Capture("clean_boot", "uname -a; cat /proc/cmdline\n", module=False),
    Capture("clean_boot_verbose", "uname -a; cat /proc/cmdline\n", module=False,
            cmdline=("loglevel=8",)),
    Capture("clean_boot_sysctl",
            "cat /proc/cmdline; for f in hung_task_timeout_secs hung_task_check_interval_secs "
            "softlockup_panic panic_on_oops panic_on_warn watchdog_thresh; do\n"
            "echo \"$f=$(cat /proc/sys/kernel/$f)\"; done\n", module=False,
            cmdline=("sysctl.kernel.hung_task_timeout_secs=15",
                     "sysctl.kernel.hung_task_check_interval_secs=5",
                     "softlockup_panic=1", "oops=panic")),
    Capture("clean_boot_slub_debug", "cat /proc/cmdline\n", module=False,
            cmdline=("slub_debug=FZPU",)),
    Capture("clean_modules",
            "set -x\n" + LOAD + fire("ok") + "cat " + CONTROL_FILE + "\n"
            "rmmod vexfs_crashtest\n"
            "modprobe loop && modprobe ext4\n"
            "truncate -s 64M /tmp/img && mkfs.ext4 -q /tmp/img\n"
            "mount -o loop /tmp/img /mnt && echo hi > /mnt/f && sync && umount /mnt\n"
            "rmmod ext4; modprobe null_blk; rmmod null_blk; lsmod\n",
            cmdline=("loglevel=8",)),
    Capture("clean_vexfs",
            "set -x\nmodprobe loop\ninsmod /tmp/vexfs.ko\n"
            "/work/main/.venv/bin/mkfs.vexfs -q /tmp/v.img 64M\n"
            "mount -t vexfs -o loop /tmp/v.img /mnt && mkdir /mnt/d && echo hello > /mnt/d/f "
            "&& cat /mnt/d/f && ls -la /mnt /mnt/d && sync && umount /mnt\n"
            "mount -t vexfs -o loop /tmp/v.img /mnt && cat /mnt/d/f && umount /mnt\n"
            "rmmod vexfs\nlsmod\n",
            module=False, extra_modules=("kernel/build/vexfs.ko",), timeout=150),
    # --- one trigger each ------------------------------------------------------
    Capture("panic", LOAD + fire("panic")),
    Capture("bug", LOAD + fire("bug")),
    Capture("warn", LOAD + fire("warn")),
    Capture("oops", LOAD + fire("oops")),
    Capture("gpf", LOAD + fire("gpf")),
    Capture("divide", LOAD + fire("divide")),
    Capture("oops_irq", LOAD + fire("oops_irq")),
    Capture("stack_overflow", LOAD + fire("stack_overflow")),
    Capture("sleep_atomic", LOAD + fire("sleep_atomic")),
    Capture("list_corrupt", LOAD + fire("list_corrupt")),
    Capture("refcount", LOAD + fire("refcount")),
    Capture("slab_leak", LOAD + fire("slab_leak")),
    Capture("slab_leak_slub_debug", LOAD + fire("slab_leak"), cmdline=("slub_debug=FZPU",)),
    Capture("slab_leak_nomerge", LOAD + fire("slab_leak"), cmdline=("slab_nomerge",)),
    Capture("double_free", LOAD + fire("double_free")),
    Capture("double_free_slub_debug", LOAD + fire("double_free"), cmdline=("slub_debug=FZPU",)),
    Capture("dentry_leak", LOAD + fire("dentry_leak")),
    Capture("hang",
            "echo 10 > /proc/sys/kernel/hung_task_timeout_secs\n" + LOAD
            + f"echo hang > {CONTROL_FILE} &\nsleep 35\necho still alive\n", timeout=90),
    Capture("hang_recommended",
            LOAD + f"echo hang > {CONTROL_FILE} &\nsleep 25\necho still alive\n", timeout=40,
            cmdline=("sysctl.kernel.hung_task_timeout_secs=15",
                     "sysctl.kernel.hung_task_check_interval_secs=5")),
    # what the harness asks for when a command makes no progress: sysrq w + l
    Capture("hang_sysrq",
            LOAD + f"echo hang > {CONTROL_FILE} &\nsleep 3\n"
            "echo w > /proc/sysrq-trigger; echo l > /proc/sysrq-trigger\nsleep 2\n", timeout=30),
    Capture("softlockup", LOAD + fire("softlockup"), timeout=60),
    Capture("softlockup_1cpu", LOAD + fire("softlockup"), timeout=60, cpus=1),
    Capture("freeze", LOAD + fire("freeze"), timeout=30),
    # --- with the panic_on_* knobs the harness may set ------------------------
    Capture("warn_panic_on_warn", "echo 1 > /proc/sys/kernel/panic_on_warn\n" + LOAD + fire("warn")),
    Capture("oops_panic_on_oops", "echo 1 > /proc/sys/kernel/panic_on_oops\n" + LOAD + fire("oops")),
    Capture("softlockup_panic",
            "echo 1 > /proc/sys/kernel/softlockup_panic\n" + LOAD + fire("softlockup"), timeout=60),
)}


@contextlib.contextmanager
def _cmdline_extra(extra: tuple[str, ...]) -> Iterator[None]:
    """Append kernel arguments to the quick runner's VMConfig for one boot.

    run_script() has no parameter for it; patching the class it instantiates
    keeps this tool from duplicating the VM engineer's boot code.
    """
    import vexfs.vm.quick as quick

    original = quick.VMConfig

    def patched(*args, **kwargs):
        config = original(*args, **kwargs)
        return dataclasses.replace(config, cmdline_extra=list(config.cmdline_extra) + list(extra))

    quick.VMConfig = patched  # type: ignore[assignment]
    try:
        yield
    finally:
        quick.VMConfig = original  # type: ignore[assignment]


def record(capture: Capture, out_dir: Path = DATA_DIR) -> Path:
    from vexfs.vm.quick import run_script

    modules = [build_crashtest()] if capture.module else []
    repo = Path(__file__).resolve().parents[2]
    modules += [repo / m for m in capture.extra_modules]
    with _cmdline_extra(capture.cmdline):
        result = run_script(capture.script, modules, timeout=capture.timeout, cpus=capture.cpus)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{capture.name}.log"
    path.write_text(result.console)
    log.info("%s: rc %d, timed_out %s, %d console lines -> %s", capture.name, result.returncode,
             result.timed_out, result.console.count("\n"), path)
    return path


def draft(path: Path) -> str:
    from vexfs.crash.detect import parse_log
    from vexfs.crash.expect import format_expectations

    return format_expectations(parse_log(path.read_text(errors="replace")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vexfs.crash.capture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="captures to record (default: all)")
    parser.add_argument("--list", action="store_true", help="list the captures and exit")
    parser.add_argument("--draft", action="store_true",
                        help="print the detector's view of saved logs instead of booting")
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.list:
        for c in CAPTURES.values():
            print(f"{c.name:24} cpus={c.cpus} timeout={c.timeout:g} cmdline={' '.join(c.cmdline)}")
        return 0
    unknown = [n for n in args.names if n not in CAPTURES]
    if unknown:
        parser.error(f"unknown capture(s): {', '.join(unknown)}")
    names = args.names or list(CAPTURES)
    for name in names:
        if args.draft:
            print(f"== {name}\n{draft(args.out / f'{name}.log')}")
        else:
            record(CAPTURES[name], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
