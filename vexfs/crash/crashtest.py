"""Build the TEST-ONLY crash module `vexfs_crashtest.ko` and name its triggers.

The module (source: kernel/test/crashtest/) crashes the guest kernel on
demand. It is never built or installed by `make run`; VM tests build it with
`build_crashtest()` and copy it into a throwaway VM.

Control file: `/proc/vexfs_crashtest` (mode 0600, root). Write one trigger
name (a trailing newline is fine); reading it lists the triggers. An unknown
name fails the write with EINVAL. Each trigger runs in the writer's context::

    insmod /tmp/vexfs_crashtest.ko
    echo oops > /proc/vexfs_crashtest

What the console shows for each trigger on the Debian 6.1 guest, and what
`vexfs.crash.detect` reports (title / kind), is `TRIGGERS` below; the golden
captures under tests/host/data/console/ are the proof. Triggers that leave
the kernel running (`warn`, `refcount`, `sleep_atomic`, `slab_leak`, `ok`,
`hang`, and `double_free` with slub_debug) let the writer continue; `oops`, `gpf`, `divide`, `bug`,
`list_corrupt`, `double_free` and `dentry_leak` kill the writing process
(the shell sees "Killed" / exit 137) but the kernel lives on unless
`panic_on_oops=1`; `panic`, `oops_irq` and `stack_overflow` end the VM (QEMU exits with
`panic=-1 -no-reboot`); `softlockup` and `freeze` never return: the harness's
no-progress timeout must catch them (`softlockup` still prints watchdog/RCU
reports; `freeze` leaves the console silent for good).
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIR = REPO / "kernel" / "test" / "crashtest"
MODULE_NAME = "vexfs_crashtest"
CONTROL_FILE = "/proc/vexfs_crashtest"
DEFAULT_KVER = "6.1.0-56-amd64"  # used when no 6.1 headers are installed


def default_kver() -> str:
    """The newest installed Debian 6.1 amd64 headers (the guest kernel's:
    Debian replaces the ABI number on upgrade, e.g. -56 by -57)."""
    found = []
    for path in Path("/usr/src").glob("linux-headers-6.1.0-*-amd64"):
        abi = path.name.removeprefix("linux-headers-6.1.0-").removesuffix("-amd64")
        if abi.isdigit():
            found.append((int(abi), path.name.removeprefix("linux-headers-")))
    return max(found)[1] if found else DEFAULT_KVER


@dataclass(frozen=True)
class Trigger:
    name: str
    kind: str | None  # the Crash.kind the detector reports; None: no crash report
    title: str | None  # the Crash.title (func names from this module)
    survives: bool  # does the writing process get its write() back?
    note: str = ""


# What each trigger produces on the Debian 6.1.0 amd64 guest (default sysctls).
TRIGGERS: dict[str, Trigger] = {t.name: t for t in (
    Trigger("ok", None, None, True, "prints an info line only"),
    Trigger("panic", "panic", "Kernel panic - not syncing: vexfs_crashtest: panic requested",
            False, "the VM powers off at once with panic=-1 -no-reboot"),
    Trigger("bug", "bug", "kernel BUG at crashtest/vexfs_crashtest.c:LINE!", False,
            "BUG(): invalid opcode trap, writer killed"),
    Trigger("warn", "warning", "WARNING in crashtest_warn", True),
    Trigger("oops", "oops", "BUG: kernel NULL pointer dereference in crashtest_oops", False),
    Trigger("gpf", "gpf", "general protection fault in crashtest_gpf", False),
    Trigger("divide", "oops", "divide error in crashtest_divide", False),
    Trigger("oops_irq", "oops", "BUG: kernel NULL pointer dereference in crashtest_timer_fn", False,
            "in a timer callback (softirq); the kernel then panics 'Fatal exception in interrupt'"),
    Trigger("stack_overflow", "oops", "BUG: TASK stack guard page was hit in crashtest_recurse",
            False, "deep recursion; the kernel then panics 'Fatal exception in interrupt'"),
    Trigger("hang", "hang", "INFO: task hung in crashtest_hang", False,
            "D state forever; reported after kernel.hung_task_timeout_secs (120 s default)"),
    Trigger("softlockup", "stall", "INFO: rcu detected stall in crashtest_softlockup", False,
            "preemption off forever: RCU's self-detected stall after ~21 s comes first, the "
            "'BUG: soft lockup in crashtest_softlockup' (kind lockup) later (49 s observed: the "
            "stall dump touches the watchdog)"),
    Trigger("freeze", None, None, False,
            "all CPUs spin with irqs off: silence; only a host-side timeout sees it"),
    Trigger("sleep_atomic", "bug", "BUG: scheduling while atomic in crashtest_sleep_atomic", True),
    Trigger("list_corrupt", "bug", "list_add corruption in crashtest_list_corrupt", False),
    Trigger("refcount", "warning", "refcount_t: addition on 0; use-after-free in crashtest_refcount",
            True, "WARN_ONCE: once per boot"),
    Trigger("slab_leak", None, None, True,
            "silent by default: the cache is merged into kmalloc-64, so kmem_cache_destroy() "
            "finds nothing. With slub_debug (or slab_nomerge) it is a 'leak': 'BUG "
            "vexfs_crashtest_leak: Objects remaining on __kmem_cache_shutdown()' then the "
            "'kmem_cache_destroy vexfs_crashtest_leak: Slab cache still has objects' WARNING"),
    Trigger("double_free", "bug", "kernel BUG at mm/slub.c:LINE!", False,
            "SLAB_FREELIST_HARDENED; with slub_debug=F: 'BUG kmalloc-64: Object already free'"),
    Trigger("dentry_leak", "leak",
            "BUG: Dentry still in use [unmount of vexfs_crashtest]", False,
            "then 'VFS: Busy inodes after unmount of vexfs_crashtest' (kernel BUG)"),
)}


class CrashtestBuildError(RuntimeError):
    pass


def headers_dir(kver: str | None = None) -> Path:
    return Path("/usr/src") / f"linux-headers-{kver or default_kver()}"


def build_crashtest(kdir: Path | None = None, kver: str | None = None) -> Path:
    """Build vexfs_crashtest.ko against the guest kernel headers; return its path.

    `make` is incremental, so calling this from every test is cheap.
    """
    kdir = kdir or headers_dir(kver)
    if not (kdir / "Makefile").exists():
        raise CrashtestBuildError(f"kernel headers not found at {kdir}")
    cmd = ["make", "-C", str(SOURCE_DIR), f"KDIR={kdir}", "modules"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CrashtestBuildError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    ko = SOURCE_DIR / f"{MODULE_NAME}.ko"
    if not ko.is_file():
        raise CrashtestBuildError(f"build succeeded but {ko} is missing")
    log.debug("built %s", ko)
    return ko


def trigger_script(trigger: str, module_dir: str = "/tmp", background: bool = False) -> str:
    """Guest shell lines that load the module and fire `trigger`."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown crashtest trigger {trigger!r}; known: {', '.join(TRIGGERS)}")
    fire = f"echo {trigger} > {CONTROL_FILE}"
    if background:
        fire += " &"
    return f"insmod {module_dir}/{MODULE_NAME}.ko\n{fire}\n"
