"""The table of Linux kernel crash formats, in the style of syzkaller's pkg/report.

Each `Oops` entry has a cheap `header` string (a plain substring test done
before any regex), the `formats` tried in order (specific first, catch-all
last) and `suppressions`: lines that contain the header but are not crashes.

A `Format` turns the header line into a stable, one-line title: variable
parts (PIDs, addresses, seconds, task names) are left out so the same bug
gets the same title on every run, as syzkaller does for deduplication. The
`{FUNC}` in a title is taken from the report body by the format's `stack`
sources: the `RIP:`/`pc :` line, the function in the header itself, or the
first frame of the `Call Trace:` that is not in the skip lists (dump_stack,
__warn, report_bug, panic, trap handlers, the scheduler for hung tasks...).

Regexes may use `{{ADDR}}`, `{{PC}}`, `{{FUNC}}` and `{{SRC}}`, expanded by
`compile_re()`, so entries stay readable.

Kinds: panic, oops, gpf, bug, warning, hang, lockup, stall, leak, memory,
ubsan, kasan, lockdep, oom. (`hang` is also what the harness reports when
the guest makes no progress: see `CrashDetector.hang()`.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KINDS = ("panic", "oops", "gpf", "bug", "warning", "hang", "lockup", "stall", "leak",
         "memory", "ubsan", "kasan", "lockdep", "oom")

_EXPANSIONS = {
    "{{ADDR}}": r"(?:0x)?[0-9a-fA-F]{6,16}",
    "{{PC}}": r"\[<?(?:0x)?[0-9a-fA-F]{8,16}>?\]",
    # a symbol as %pS prints it: name+off/size [module]; the name is captured
    "{{FUNC}}": r"([A-Za-z0-9_.$]+)\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+",
    "{{SRC}}": r"([A-Za-z0-9_/.\-]+\.(?:c|h|S|rs)):(\d+)",
}


def compile_re(pattern: str) -> re.Pattern[str]:
    for key, value in _EXPANSIONS.items():
        pattern = pattern.replace(key, value)
    return re.compile(pattern)


# --- how a console line is cleaned before matching (syzkaller's consoleOutputRe)
# "[   12.345678] ", "[   12.345678][  T123] ", "<4>[   12.3] ", "[Tue Nov 25 10:48:47 2026] "
TIMESTAMP_RE = re.compile(
    r"(?:<\d{1,2}>)?\[\s*(?P<ts>\d{1,8}\.\d{1,9})\](?:\[\s*[TC]\d+\])?\s?"
    r"|(?:<\d{1,2}>)?\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\]\s?")
SYSLOG_PREFIX_RE = re.compile(r"^<\d{1,2}>")
CALLER_ID_RE = re.compile(r"^\[\s*[TC]\d+\]\s?")

# --- stack frames
RIP_RE = re.compile(r"^\s*(?:RIP|EIP|pc)\s*:\s*(?:[0-9a-f]{4}:)?(?:\[<[0-9a-f]+>\]\s*)?"
                    r"([A-Za-z0-9_.$]+)\+0x[0-9a-f]+/0x[0-9a-f]+")
FRAME_RE = re.compile(r"^\s*(?:\[<[0-9a-f]+>\]\s*)?(\?\s+)?([A-Za-z0-9_.$]+)\+0x[0-9a-f]+/0x[0-9a-f]+")
KERNEL_RIP_RE = re.compile(r"^\s*RIP: 0010:")
CALL_TRACE_RE = re.compile(r"^\s*(?:Call Trace:|Call trace:|Backtrace:)")
# GCC clones: foo.cold, foo.isra.0, foo.constprop.3, foo.part.1
FUNC_SUFFIX_RE = re.compile(r"(?:\.(?:cold|isra|constprop|part|llvm|lto_priv)(?:\.\d+)?)+$")

# Frames that are the reporting machinery, never the culprit.
SKIP_FRAMES = tuple(re.compile(p) for p in (
    r"^dump_stack(_lvl)?$", r"^show_stack$", r"^show_trace_log_lvl$", r"^show_regs$",
    r"^__warn(_printk)?$", r"^warn_slowpath", r"^report_bug$", r"^handle_bug$",
    r"^__report_bug$", r"^do_error_trap$", r"^do_trap$", r"^do_int3", r"^die(_addr)?$",
    r"^__die", r"^oops_(begin|end|enter|exit)$", r"^exc_[a-z_]+$", r"^asm_exc_[a-z_]+$",
    r"^asm_sysvec_[a-z_]+$", r"^sysvec_[a-z_]+$", r"^__sysvec_[a-z_]+$",
    r"^panic$", r"^vpanic$", r"^nmi_panic$", r"^check_panic_on_warn$",
    r"^page_fault_oops$", r"^kernelmode_fixup_or_oops$", r"^__bad_area_nosemaphore$",
    r"^bad_area_nosemaphore$", r"^do_user_addr_fault$", r"^do_kern_addr_fault$",
    r"^no_context$", r"^spurious_kernel_fault$", r"^fixup_exception$",
    r"^__schedule_bug$", r"^schedule_debug", r"^__might_(sleep|resched|fault)$",
    r"^___might_sleep$", r"^refcount_warn_saturate$", r"^__refcount_", r"^refcount_",
    r"^__list_(add|del_entry)_valid(_or_report)?$", r"^__list_(add|del)", r"^list_(add|del)",
    r"^kasan_", r"^__kasan_", r"^print_address_description", r"^print_report$",
    r"^ubsan_", r"^__ubsan_handle_", r"^handle_overflow$", r"^ubsan_epilogue$",
    r"^watchdog_timer_fn$", r"^__hrtimer_run_queues$", r"^hrtimer_interrupt$",
    r"^__run_hrtimer$", r"^nmi_cpu_backtrace", r"^nmi_trigger_cpumask_backtrace$",
    r"^arch_trigger_cpumask_backtrace$", r"^rcu_dump_cpu_stacks$", r"^print_cpu_stall",
    r"^check_cpu_stall$", r"^rcu_pending$", r"^rcu_sched_clock_irq$",
    r"^update_process_times$", r"^tick_", r"^handle_irq", r"^__irq_exit_rcu$",
    r"^irq_exit_rcu$", r"^__do_softirq$", r"^lockdep_", r"^print_usage_bug",
    r"^__lock_acquire$", r"^lock_acquire$", r"^slab_err$", r"^slab_bug$",
    r"^object_err$", r"^print_trailer$", r"^check_object$", r"^free_debug_processing$",
    r"^__slab_free$", r"^kfree$", r"^kmem_cache_free$", r"^do_slab_free$",
    r"^slab_free", r"^set_freepointer$", r"^free_to_partial_list$",
    r"^kmem_cache_destroy$", r"^__kmem_cache_shutdown$", r"^list_slab_objects$",
    r"^umount_check$", r"^d_walk$", r"^do_one_tree$", r"^shrink_dcache_for_umount$",
    r"^generic_shutdown_super$",
    # thread entry points, and the RCU grace-period kthread whose stack an RCU
    # stall report dumps before (or instead of) the stalled CPU's
    r"^kthread$", r"^ret_from_fork", r"^rcu_gp_",
))

# A task blocked in D state: skip the sleeping/locking primitives.
SKIP_HANG_FRAMES = tuple(re.compile(p) for p in (
    r"^__?schedule", r"^schedule_", r"^preempt_schedule", r"^io_schedule",
    r"^__mutex_lock", r"^mutex_lock", r"^__mutex_", r"^rt_mutex", r"^__rt_mutex",
    r"^rwsem_down_", r"^down_(read|write)", r"^__down", r"^down$", r"^down_",
    r"^wait_for_", r"^__wait_", r"^wait_on_", r"^__wait_on_", r"^out_of_line_wait_on_bit",
    r"^bit_wait", r"^folio_wait", r"^__folio_lock", r"^__lock_page", r"^wait_woken$",
    r"^do_wait_for_common$", r"^__flush_work", r"^flush_work$", r"^__synchronize_srcu",
    r"^synchronize_rcu", r"^percpu_down_", r"^__percpu_down_", r"^__lock_sock",
    r"^futex_", r"^do_nanosleep$", r"^hrtimer_nanosleep$", r"^schedule$",
    r"^msleep", r"^usleep_range", r"^ssleep$", r"^schedule_hrtimeout",
))


@dataclass(frozen=True)
class Format:
    """One report format. `title` is matched against the cleaned header line.

    `fmt` builds the title: "{1}".."{9}" are title captures, "{FUNC}" the
    function found by `stack`. `end` says how the report ends on the console:
      "trace"  at "---[ end trace" / "---[ end Kernel panic" (and, once a
               panic is inside the report, at "Kernel Offset:"/"Rebooting in")
      "task"   at the first "</TASK>" after a call trace (reports that print
               a stack but no end marker), or at the next crash header
      "banner" at the next "=====" line (KASAN/UBSAN/KFENCE/slub)
      "line"   the header line is the whole report
      "panic"  at "Kernel Offset:", "Rebooting in", "---[ end Kernel panic"
      "stall"  like "task", but an RCU stall report may first dump the GP
               kthread's stack: it ends at the "</TASK>" of a stack that had
               a kernel RIP line (the stalled CPU), or at the second one
      "slub"   like "task", then through slub_debug's object details that
               follow the stack ("Object 0x..", "Allocated in" + frames...)
    `needs` must all appear in the report, or the report is marked corrupted
    (syzkaller's report regexp), e.g. a report cut off before its call trace.
    """

    title: re.Pattern[str]
    fmt: str
    kind: str
    stack: tuple[str, ...] = ()  # "rip", "header", "trace", "hang_trace"
    end: str = "trace"
    needs: tuple[str, ...] = ("Call Trace:",)
    func_optional: bool = False  # a missing {FUNC} is not corruption
    skip: tuple[re.Pattern[str], ...] = ()
    corrupted: bool = False  # the catch-all "we know it's a crash, not which" formats


@dataclass(frozen=True)
class Oops:
    header: str
    formats: tuple[Format, ...]
    suppressions: tuple[re.Pattern[str], ...] = field(default_factory=tuple)


def F(title: str, fmt: str, kind: str, **kw) -> Format:  # noqa: N802 - table readability
    return Format(title=compile_re(title), fmt=fmt, kind=kind, **kw)


# "subsys: " prefixes printk adds with pr_fmt, e.g. "watchdog: BUG: soft lockup",
# "rcu: INFO: rcu_preempt self-detected stall on CPU".
PREFIX = r"^(?:[A-Za-z0-9_ ./-]{1,24}: )?"

OOPSES: tuple[Oops, ...] = (
    Oops("BUG:", (
        F(PREFIX + r"BUG: kernel NULL pointer dereference, address: {{ADDR}}",
          "BUG: kernel NULL pointer dereference in {FUNC}", "oops", stack=("rip", "trace")),
        F(PREFIX + r"BUG: unable to handle page fault for address: {{ADDR}}",
          "BUG: unable to handle page fault in {FUNC}", "oops", stack=("rip", "trace")),
        F(PREFIX + r"BUG: unable to handle kernel (paging request|NULL pointer dereference)",
          "BUG: unable to handle kernel {1} in {FUNC}", "oops", stack=("rip", "trace")),
        F(PREFIX + r"BUG: (?:(\w+) )?stack guard page was hit at",
          "BUG: {1} stack guard page was hit in {FUNC}", "oops", stack=("rip", "trace")),
        F(PREFIX + r"BUG: soft lockup - CPU#\d+ stuck for \d+s!",
          "BUG: soft lockup in {FUNC}", "lockup", stack=("rip", "trace"), end="task"),
        F(PREFIX + r"BUG: scheduling while atomic",
          "BUG: scheduling while atomic in {FUNC}", "bug",
          stack=("trace",), end="task", skip=SKIP_HANG_FRAMES),
        F(PREFIX + r"BUG: sleeping function called from invalid context at",
          "BUG: sleeping function called from invalid context in {FUNC}", "bug",
          stack=("trace",), end="task", skip=SKIP_HANG_FRAMES),
        F(PREFIX + r"BUG: Dentry .* still in use \(-?\d+\) \[unmount of (\S+)(?: \S*)?\]",
          "BUG: Dentry still in use [unmount of {1}]", "leak", needs=(), stack=()),
        F(PREFIX + r"BUG: workqueue lockup - pool",
          "BUG: workqueue lockup", "lockup", end="task", needs=()),
        F(PREFIX + r"BUG: Bad page state in process",
          "BUG: Bad page state", "memory", stack=("trace",), end="task", func_optional=True),
        F(PREFIX + r"BUG: Bad page map in process",
          "BUG: Bad page map", "memory", end="task", needs=()),
        F(PREFIX + r"BUG: Bad rss-counter state", "BUG: Bad rss-counter state", "memory",
          end="line", needs=()),
        F(PREFIX + r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}", "KASAN: {1} in {FUNC}", "kasan",
          stack=("header", "trace"), end="banner"),
        F(PREFIX + r"BUG: KASAN: ([a-z\-]+)", "KASAN: {1} in {FUNC}", "kasan",
          stack=("trace",), end="banner"),
        F(PREFIX + r"BUG: KFENCE: ([a-z\- ]+?) in {{FUNC}}", "KFENCE: {1} in {FUNC}", "memory",
          stack=("header", "trace"), end="banner", needs=()),
        F(PREFIX + r"BUG: using (__this_cpu_\w+|smp_processor_id)\(\) in preemptible",
          "BUG: using {1}() in preemptible code in {FUNC}", "bug",
          stack=("trace",), end="task"),
        F(PREFIX + r"BUG: spinlock (\w+(?: \w+)?) on CPU#\d+",
          "BUG: spinlock {1} in {FUNC}", "bug", stack=("trace",), end="task"),
        F(PREFIX + r"BUG: (?:unable to handle|kernel)", "BUG: unable to handle kernel access in {FUNC}",
          "oops", stack=("rip", "trace")),
        # catch-all: a BUG we have no entry for; the title is its first words
        F(PREFIX + r"BUG: ([A-Za-z][A-Za-z _\-]{2,60}[A-Za-z])", "BUG: {1}", "bug", end="task", needs=(),
          ),
    )),
    Oops("kernel BUG at", (
        F(PREFIX + r"kernel BUG at {{SRC}}!", "kernel BUG at {1}:{2}!", "bug", stack=("rip", "trace"),
          func_optional=True),
        F(PREFIX + r"kernel BUG at (.+?)!?$", "kernel BUG at {1}!", "bug", stack=("rip", "trace"),
          func_optional=True),
    )),
    Oops("WARNING:", (
        F(PREFIX + r"WARNING: CPU: \d+ PID: -?\d+ at {{SRC}} {{FUNC}}", "WARNING in {FUNC}", "warning",
          stack=("header", "trace")),
        F(PREFIX + r"WARNING: CPU: \d+ PID: -?\d+ at {{FUNC}}", "WARNING in {FUNC}", "warning",
          stack=("header", "trace")),
        F(PREFIX + r"WARNING: (possible circular locking dependency detected|possible recursive "
          r"locking detected|inconsistent lock state|suspicious RCU usage|bad unlock balance "
          r"detected!|held lock freed!|lock held when returning to user space!|possible irq lock "
          r"inversion dependency detected|bad contention detected!|nested lock was not taken)",
          "WARNING: {1}", "lockdep", end="task", needs=()),
        F(PREFIX + r"WARNING: CPU: \d+ PID: -?\d+ at", "WARNING in {FUNC}", "warning",
          stack=("rip", "trace")),
        # catch-all, at the very start of a kernel line only: the unwinder's
        # "WARNING: stack recursion on stack type 4" and the like
        F(r"^WARNING: ([A-Za-z][A-Za-z _\-]{2,60}[A-Za-z])", "WARNING: {1}", "warning", end="task",
          needs=()),
    ), suppressions=(
        re.compile(r"Spectre V2 : WARNING|RETBleed: WARNING|WARNING: Unprivileged eBPF"),
        re.compile(r"WARNING: The mand mount option"),
        re.compile(r"WARNING: (?:/etc/ssh|.*moduli)"),
    )),
    Oops("INFO:", (
        F(PREFIX + r"INFO: task (.+):-?\d+ blocked for more than \d+ seconds",
          "INFO: task hung in {FUNC}", "hang", stack=("hang_trace",), end="task",
          skip=SKIP_HANG_FRAMES),
        F(PREFIX + r"INFO: rcu_(?:preempt|sched|bh|tasks\w*) (?:self-)?detected (?:expedited )?stalls?",
          "INFO: rcu detected stall in {FUNC}", "stall", stack=("rip", "trace"), end="stall",
          needs=(), func_optional=True, skip=SKIP_HANG_FRAMES),
        F(PREFIX + r"INFO: rcu (?:self-)?detected (?:expedited )?stalls?",
          "INFO: rcu detected stall in {FUNC}", "stall", stack=("rip", "trace"), end="stall",
          needs=(), func_optional=True, skip=SKIP_HANG_FRAMES),
        F(PREFIX + r"INFO: task (.+):-?\d+ can't die for more than \d+ seconds",
          "INFO: task can't die in {FUNC}", "hang", stack=("hang_trace",), end="task",
          skip=SKIP_HANG_FRAMES),
    ), suppressions=(
        # an NMI handler slow under emulation: a timing note, not a bug
        # (observed under TCG in softlockup_panic.log)
        re.compile(r"INFO: NMI handler \(.*\) took too long to run"),
        re.compile(r"INFO: Stall ended before state dump start"),
    )),
    Oops("general protection fault", (
        F(PREFIX + r"general protection fault", "general protection fault in {FUNC}", "gpf",
          stack=("rip", "trace")),
    )),
    Oops("divide error:", (
        F(PREFIX + r"divide error: ", "divide error in {FUNC}", "oops", stack=("rip", "trace")),
    )),
    Oops("invalid opcode:", (
        F(PREFIX + r"invalid opcode: ", "invalid opcode in {FUNC}", "oops", stack=("rip", "trace")),
    )),
    Oops("Oops", (
        F(r"^(?:Internal error: )?Oops(?: - \w+)?: ", "Oops in {FUNC}", "oops", stack=("rip", "trace")),
    )),
    Oops("Unable to handle kernel", (
        F(PREFIX + r"Unable to handle kernel (paging request|NULL pointer dereference|access to user "
          r"memory|execute from non-executable memory|read from unreadable memory|write to read-only "
          r"memory)", "Unable to handle kernel {1} in {FUNC}", "oops", stack=("rip", "trace")),
    )),
    Oops("Kernel panic - not syncing", (
        # the panic that follows an oops (panic_on_oops / oops in interrupt):
        # the oops already printed the stack, panic() does not repeat it
        F(PREFIX + r"Kernel panic - not syncing: (Fatal exception(?: in interrupt)?)\s*$",
          "Kernel panic - not syncing: {1}", "panic", end="panic", needs=()),
        F(PREFIX + r"Kernel panic - not syncing: (.+?)\s*$", "Kernel panic - not syncing: {1}", "panic",
          end="panic"),
    )),
    Oops("UBSAN:", (
        F(PREFIX + r"UBSAN: ([a-z\-]+(?: [a-z\-]+)*) in {{SRC}}", "UBSAN: {1} in {FUNC}", "ubsan",
          stack=("trace",), end="banner"),
        F(PREFIX + r"UBSAN: (.+?) in ", "UBSAN: {1} in {FUNC}", "ubsan", stack=("trace",), end="banner"),
    )),
    Oops("list_", (
        F(PREFIX + r"(list_add|list_del) (?:corruption|double add)", "{1} corruption in {FUNC}", "bug",
          stack=("trace",)),
    )),
    Oops("refcount_t: ", (
        F(PREFIX + r"refcount_t: (.+?)\.?\s*$", "refcount_t: {1} in {FUNC}", "warning", stack=("trace",)),
    )),
    Oops("Busy inodes after unmount", (
        F(PREFIX + r"VFS: Busy inodes after unmount of (\S+?)\.? \((\S+)\)",
          "VFS: Busy inodes after unmount of {2}", "leak", needs=(), stack=()),
        F(PREFIX + r"VFS: Busy inodes after unmount of (\S+?)\.",
          "VFS: Busy inodes after unmount of {1}", "leak", needs=(), stack=()),
    )),
    Oops("Slab cache still has objects", (
        F(PREFIX + r"kmem_cache_destroy (\S+): Slab cache still has objects",
          "kmem_cache_destroy {1}: Slab cache still has objects", "leak", needs=()),
    )),
    Oops("BUG ", (
        # slub_debug: "BUG kmalloc-64 (Tainted: G OE): Object already free"
        F(r"^BUG (\S+) \((?:Not tainted|Tainted: [^)]*)\): Objects remaining in \S+ on "
          r"__kmem_cache_shutdown",
          "BUG {1}: Objects remaining on __kmem_cache_shutdown()", "leak", end="slub", needs=()),
        F(r"^BUG (\S+) \((?:Not tainted|Tainted: [^)]*)\): ([A-Za-z][A-Za-z ]+?)(?: [0-9]|$|:|\()",
          "BUG {1}: {2}", "memory", end="slub", needs=()),
    )),
    Oops("hard LOCKUP", (
        F(PREFIX + r"Watchdog detected hard LOCKUP on cpu \d+", "BUG: hard lockup in {FUNC}", "lockup",
          stack=("rip", "trace"), end="task", func_optional=True),
    )),
    Oops("Out of memory: Killed process", (
        F(PREFIX + r"Out of memory: Killed process \d+ \((.+?)\)", "Out of memory: Killed process {1}",
          "oom", end="line", needs=()),
    )),
)

# Lines that are never crashes, whatever they contain. Checked before the
# table, so they also keep a report from starting.
SUPPRESSIONS: tuple[re.Pattern[str], ...] = tuple(re.compile(p) for p in (
    r"loading out-of-tree module taints kernel",
    r"module verification failed: signature and/or required key missing",
    r"module is from the staging directory",
    r"Disabling lock debugging due to kernel taint",
    # Boot noise of the Debian guest under TCG, seen in clean_boot_verbose.log
    # ("x86/cpu: User Mode Instruction Prevention (UMIP) activated", "Spectre
    # V2 : Mitigation: Retpolines", "x86/fpu: ...", "clocksource: ...", "tsc:
    # ..."). None of them contains a crash header today; they are listed so a
    # wording change (e.g. "Spectre V2 : WARNING: ...") can never become a crash.
    r"^x86/cpu: ",
    r"^Spectre V[12] : ",
    r"^x86/fpu: ",
    r"^clocksource: ",
    r"^tsc: ",
    r"^hrtimer: interrupt took \d+ ns",  # TCG timing, softlockup_panic.log
    # The same mitigation messages on real CPUs (not seen under TCG).
    r"^\[Firmware Bug\]: ",
    r"^RETBleed: ",
    r"^MDS: ",
    r"^MMIO Stale Data: ",
    r"^GDS: ",
    r"^SRBDS: ",
    r"^ITS: ",
))

# Report ends.
END_TRACE_RE = re.compile(r"---\[ end (?:trace|Kernel panic)")
PANIC_END_RE = re.compile(r"^(?:Kernel Offset: |Rebooting in -?\d+ seconds|---\[ end Kernel panic)")
TASK_END_RE = re.compile(r"^\s*</TASK>\s*$")
BANNER_RE = re.compile(r"^={20,}\s*$")
SLUB_TAIL_RE = re.compile(
    r"^\s*$|^(?:Object|Redzone|Padding|Bytes b4|Allocated in|Freed in|INFO: |FIX |Slab |"
    r"Disabling lock debugging)|^\s+\S+\+0x[0-9a-f]+/0x[0-9a-f]+")
PANIC_LINE_RE = re.compile(r"Kernel panic - not syncing")

HEADERS: tuple[str, ...] = tuple(o.header for o in OOPSES)
# One regex for the prefilter: a line without any header costs one search.
HEADER_PREFILTER = re.compile("|".join(re.escape(h) for h in HEADERS))
