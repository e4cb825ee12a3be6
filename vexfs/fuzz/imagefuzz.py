"""`vexfs fuzz image`: corrupt-image fuzzing of the kernel module (and fsck).

Flow (see docs/robustness.md):
 1. Seed images: the offline ones of vexfs.fuzz.bases, plus one written by
    the real kernel in the first VM (cached per module build).
 2. Cases: case i = base (i mod nbases) mutated with `case_rng(seed, i)`;
    only the byte patches travel to the guest (a case file in the VM's
    shared job directory).
 3. One VM boot runs a batch of cases with the C driver fz_image (mount,
    walk, write, umount per case; progress "FZ S <i>" on the console).
    The console goes through the crash detector (vexfs.crash via the
    session's CrashWatch); a panic/Oops/BUG/WARNING, a silent console for
    `case_timeout` s or a case running longer than `case_timeout` ends the
    boot: the case that was running is saved as a reproducer, and a fresh
    VM goes on with the next case.
 4. Host checks per case, from the blocks the kernel changed: fsck.vexfs -n
    on the image before and after must not raise; a mount must be refused
    when the superblock checksum is wrong; umount must succeed; an image
    fsck calls consistent must still be consistent after the kernel wrote
    to it.
 5. Each kernel crash is shrunk (ddmin over the mutated bytes, each probe a
    single-case run; non-crashing probes share a VM).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vexfs import layout as L
from vexfs.fsck import run_fsck
from vexfs.fuzz import bases as basemod
from vexfs.fuzz import cbuild
from vexfs.fuzz.casefile import Case, ResultHead, apply_blocks, decode_results, encode_cases
from vexfs.fuzz.mutate import ImageModel, apply_bytes, case_rng, changed_bytes, diff_runs, \
    mutate, op_label
from vexfs.fuzz.shrink import ddmin
from vexfs.fuzz.vmutil import Progress, Watchdog, boot
from vexfs.report.model import Crash
from vexfs.vm.paths import cache_dir
from vexfs.vm.session import GuestCrashed, GuestVM, VMError

log = logging.getLogger(__name__)

GUEST_JOB = "/run/vexfs"  # the VM's job dir (shared read-write over 9p)
# docs/kernel.md: a refused mount returns EINVAL (not VexFS, bad geometry or
# features), EUCLEAN (structure), EBADMSG (checksum), EIO (read error);
# ENOMEM is always possible
MOUNT_ERRNOS = {errno.EINVAL, errno.EUCLEAN, errno.EBADMSG, errno.EIO, errno.ENOMEM}


@dataclass
class Finding:
    kind: str  # crash, hang, fsck-exception, mount-accepted-bad-sb, umount-failed, corrupted-clean-image
    case: int
    title: str
    detail: str = ""
    reproducer: str = ""
    shrunk_bytes: int | None = None
    mutated_bytes: int | None = None
    console: str = ""  # crash/hang: the console log of the boot it happened in
    crash_kind: str = ""  # crash/hang: the detector's kind (warning, oops, bug, panic, hang...)
    trace: str = ""  # crash/hang: the whole captured report (detail keeps only its tail)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class FuzzStats:
    cases_run: int = 0
    boots: int = 0
    mounted: int = 0
    mount_errnos: Counter = field(default_factory=Counter)
    walk_entries: int = 0
    eio_seen: int = 0
    went_ro: int = 0
    writes_ok: int = 0
    guest_case_s: float = 0.0
    vm_s: float = 0.0
    fsck_exit: Counter = field(default_factory=Counter)
    # coverage per structure (op_label of each mutation): cases, and how many
    # of those mounted (the rest were refused at mount)
    struct_cases: Counter = field(default_factory=Counter)
    struct_mounted: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("struct_cases")
        d.pop("struct_mounted")
        d["structures"] = {k: {"cases": v, "mounted": self.struct_mounted.get(k, 0)}
                           for k, v in sorted(self.struct_cases.items())}
        import errno as _e
        d["mount_errnos"] = {(_e.errorcode.get(k, str(k)) if k else "mounted"): v
                             for k, v in self.mount_errnos.items()}
        d["fsck_exit"] = {str(k): v for k, v in self.fsck_exit.items()}
        return d


@dataclass
class FuzzConfig:
    cases: int = 1000
    seed: int = 1
    out: Path = field(default_factory=lambda: cache_dir() / "fuzz" / "image")
    module: Path | None = None
    batch: int = 2000  # cases per VM boot (a crash ends a boot earlier)
    case_timeout: float = 30.0
    shrink: bool = True
    shrink_probes: int = 60
    kernel_base: bool = True
    memory: str = "1G"
    p_fix: float = 0.6
    # test hook: (case, vexfs_crashtest trigger) fired when that case starts;
    # needs `crashtest_module` (see tests/vm/test_robust_fuzz_image.py)
    inject: tuple[int, str] | None = None
    crashtest_module: Path | None = None


def _fsck(path: Path) -> tuple[int | str, str]:
    """fsck.vexfs -n in process: (exit code or 'exception', output)."""
    out = io.StringIO()
    try:
        import contextlib
        with contextlib.redirect_stderr(out):
            rc = run_fsck(str(path), "n", out=out)
        return rc, out.getvalue()
    except Exception as e:  # a fsck bug: it must report, never raise
        import traceback
        return "exception", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"


def _sb_checksum_ok(img: bytes) -> bool:
    return L.checksum_ok(img, L.SB_CHECKSUM_OFF, 256)


class ImageFuzzer:
    def __init__(self, cfg: FuzzConfig, echo: Callable[[str], None] = lambda s: None,
                 console: list[Callable[[str], None]] | None = None) -> None:
        self.cfg = cfg
        self.echo = echo
        # extra console-line callbacks for every boot (`vexfs run`'s live view)
        self.console_callbacks = list(console or [])
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "console").mkdir(exist_ok=True)
        self.module = Path(cfg.module) if cfg.module else None
        if self.module is None:
            from vexfs.fuzz.vmutil import default_module
            self.module = default_module()
        self.bases: list[bytes] = []
        self.models: list[ImageModel] = []
        self.base_names: list[str] = []
        self.findings: list[Finding] = []
        self.stats = FuzzStats()
        self.driver = cbuild.build("fz_image")
        self.ioctl_driver = cbuild.build("fz_ioctl")
        self.tmp = Path(tempfile.mkdtemp(prefix="vexfs-fuzz-"))
        # kernel console lines printed while each case ran (first 20 per case)
        self.case_console: dict[int, list[str]] = {}
        # the structures each case's mutations targeted (coverage)
        self.case_labels: dict[int, set[str]] = {}
        self._console_case: int | None = None

    def _console(self, line: str) -> None:
        import re as _re
        m = _re.search(r"\bFZ S (\d+)", line)
        if m:
            self._console_case = int(m.group(1))
            return
        if self._console_case is not None and _re.match(r"\s*\[\s*\d+\.\d+\]", line):
            lines = self.case_console.setdefault(self._console_case, [])
            if len(lines) < 20:
                lines.append(line.rstrip())

    # -- seed images -------------------------------------------------------
    def _module_key(self) -> str:
        return hashlib.sha256(self.module.read_bytes()).hexdigest()[:16]

    def prepare_offline(self) -> None:
        bdir = self.out / "bases"
        bdir.mkdir(exist_ok=True)
        for i, build in enumerate(basemod.OFFLINE):
            path = bdir / f"offline_{i}.img"
            if not path.exists():
                build(path)
            self._add_base(path)

    def _add_base(self, path: Path) -> None:
        self.models.append(ImageModel.build(str(path)))
        self.bases.append(path.read_bytes())
        self.base_names.append(path.name)

    def make_kernel_base(self, vm: GuestVM) -> None:
        cached = cache_dir() / "fuzz" / f"kernel_base_{self._module_key()}.img"
        if not cached.exists():
            script = f"IMG=/tmp/kbase.img FZ={self.ioctl_driver}\n" + basemod.KERNEL_BASE_SCRIPT
            res = vm.run(script, timeout=120)
            if res.rc != 0:
                raise RuntimeError(f"making the kernel-written base image failed (rc {res.rc}): "
                                   f"{res.stdout[-1000:]}{res.stderr[-1000:]}")
            data = vm.read_file("/tmp/kbase.img")
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(data)
        dest = self.out / "bases" / "kernel_0.img"
        shutil.copyfile(cached, dest)
        rc, text = _fsck(dest)
        if rc != 0:
            raise RuntimeError(f"the kernel-written base image is not clean per fsck.vexfs "
                               f"(exit {rc}):\n{text}")
        self._add_base(dest)

    # -- cases ---------------------------------------------------------------
    def case_image(self, n: int) -> tuple[int, bytearray, list[str]]:
        b = n % len(self.bases)
        img, ops = mutate(self.models[b], self.bases[b], case_rng(self.cfg.seed, n),
                          self.cfg.p_fix)
        return b, img, ops

    def make_cases(self, lo: int, hi: int) -> list[Case]:
        out = []
        for n in range(lo, hi):
            b, img, ops = self.case_image(n)
            self.case_labels[n] = {op_label(e) for e in ops}
            out.append(Case(n, b, diff_runs(self.bases[b], img)))
        return out

    # -- VM ------------------------------------------------------------------
    def _boot(self, progress: Progress) -> GuestVM:
        self.stats.boots += 1
        vm = boot(f"fuzz-image-{self.stats.boots}", self.out / "console", self.module,
                  [progress.feed, self._console, *self.console_callbacks],
                  hang_timeout=self.cfg.case_timeout,
                  memory=self.cfg.memory)
        if self.cfg.crashtest_module is not None:
            vm.run(["insmod", str(Path(self.cfg.crashtest_module).resolve())], check=True)
        return vm

    def _stage(self, vm: GuestVM, cases: list[Case], tag: str) -> tuple[str, str, Path]:
        job = vm.config.job_dir / "fz"
        job.mkdir(exist_ok=True)
        for i, data in enumerate(self.bases):
            p = job / f"base_{i}.img"
            if not p.exists():
                p.write_bytes(data)
        (job / f"cases_{tag}.bin").write_bytes(encode_cases(cases))
        res = job / f"res_{tag}.bin"
        res.unlink(missing_ok=True)
        return f"{GUEST_JOB}/fz/cases_{tag}.bin", f"{GUEST_JOB}/fz/res_{tag}.bin", res

    def run_batch(self, vm: GuestVM, progress: Progress, cases: list[Case], tag: str
                  ) -> tuple[list[ResultHead], Crash | None, int | None]:
        """Run cases in `vm`. Returns (results, crash, crashing case)."""
        case_path, res_guest, res_host = self._stage(vm, cases, tag)
        cmd = [str(self.driver), f"{GUEST_JOB}/fz", case_path, res_guest, "/tmp/fz_mnt"]
        crash: Crash | None = None
        bad_case: int | None = None
        progress.current, progress.done = None, False
        t0 = time.monotonic()
        with Watchdog(vm, progress, self.cfg.case_timeout * 2) as dog:
            try:
                env = {"FZ_INJECT": f"{self.cfg.inject[0]}:{self.cfg.inject[1]}"} \
                    if self.cfg.inject else None
                res = vm.run(cmd, hang_timeout=self.cfg.case_timeout, env=env)
                if res.rc != 0:
                    raise RuntimeError(f"fz_image failed (rc {res.rc}): {res.stderr[-2000:]}")
            except GuestCrashed as e:
                crash, bad_case = e.crash, progress.case_of(e.crash)
            except VMError as e:
                bad_case = progress.current
                if dog.fired is not None:
                    crash = Crash(kind="hang", title=f"hang: case ran longer than "
                                  f"{self.cfg.case_timeout * 2:.0f} s",
                                  trace="\n".join(vm.console_lines[-60:]))
                else:
                    crash = Crash(kind="died", title=f"VM died: {str(e).splitlines()[0]}",
                                  trace="\n".join(vm.console_lines[-60:]))
        self.stats.vm_s += time.monotonic() - t0
        results = decode_results(res_host.read_bytes()) if res_host.exists() else []
        return results, crash, bad_case

    # -- host-side checks ------------------------------------------------------
    def check_result(self, case: Case, r: ResultHead) -> None:
        st = self.stats
        st.cases_run += 1
        st.mount_errnos[r.mount_err] += 1
        st.walk_entries += r.entries
        st.eio_seen += r.eio
        st.went_ro += r.ro_after
        st.writes_ok += r.writes_ok
        st.guest_case_s += r.usec / 1e6
        labels = self.case_labels.get(case.case_no, set())
        st.struct_cases.update(labels)
        if r.mount_err == 0:
            st.struct_mounted.update(labels)
        base = self.bases[case.base]
        pre = bytearray(base)
        for off, data in case.patches:
            pre[off:off + len(data)] = data
        if r.mount_err != 0:
            if r.mount_err not in MOUNT_ERRNOS:
                import errno as _e
                self._finding("mount-bad-errno", case.case_no,
                              f"mount refused with {_e.errorcode.get(r.mount_err, r.mount_err)},"
                              f" not one of docs/kernel.md's refusal errnos", pre)
            return
        st.mounted += 1
        if not _sb_checksum_ok(pre):
            self._finding("mount-accepted-bad-sb", case.case_no,
                          "mount succeeded although the superblock checksum is wrong", pre)
        if r.umount_err != 0:
            import errno as _e
            self._finding("umount-failed", case.case_no,
                          f"umount failed: {_e.errorcode.get(r.umount_err, r.umount_err)}", pre)
        post = apply_blocks(pre, r.blocks)
        pre_p, post_p = self.tmp / "pre.img", self.tmp / "post.img"
        pre_p.write_bytes(pre)
        post_p.write_bytes(post)
        rc_pre, out_pre = _fsck(pre_p)
        rc_post, out_post = _fsck(post_p)
        st.fsck_exit[rc_post] += 1
        for which, rc, text, img in (("before", rc_pre, out_pre, pre), ("after", rc_post,
                                                                            out_post, post)):
            if rc == "exception":
                self._finding("fsck-exception", case.case_no,
                              f"fsck.vexfs -n raised on the image {which} the kernel ran",
                              img, detail=text)
        if rc_pre == 0 and rc_post not in (0, "exception"):
            import re as _re
            m = _re.search(r"(\d+) problems found", out_post)
            only_state = "(state ERROR)" in out_post and m is not None and m.group(1) == "1"
            if only_state:
                # the kernel rejected something fsck accepts: one of the two
                # checkers is wrong; the dmesg line of the case says what
                self._finding("fsck-kernel-disagree", case.case_no,
                              "fsck.vexfs -n calls the mutated image consistent but the kernel "
                              "reported an error on it (state ERROR after umount)", pre,
                              detail=out_post[-3000:], post=post)
            else:
                self._finding("corrupted-clean-image", case.case_no,
                              "fsck.vexfs -n found the mutated image consistent, but not after "
                              "the kernel mounted, walked, wrote and unmounted it", pre,
                              detail=out_post[-3000:], post=post)

    def _finding(self, kind: str, case_no: int, title: str, img: bytes, detail: str = "",
                 post: bytes | None = None, crash: Crash | None = None) -> Finding:
        d = self.out / "findings" / f"case_{case_no:06d}_{kind}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "image.img").write_bytes(img)
        if post is not None:
            (d / "after.img").write_bytes(post)
        b, _, ops = self.case_image(case_no)
        meta = {"kind": kind, "title": title, "seed": self.cfg.seed, "case": case_no,
                "kernel_lines": self.case_console.get(case_no, []),
                "base": self.base_names[b],
                "base_sha256": hashlib.sha256(self.bases[b]).hexdigest(),
                "mutations": ops, "module": str(self.module),
                "module_sha256": hashlib.sha256(self.module.read_bytes()).hexdigest(),
                "detail": detail[-20000:]}
        if crash is not None:
            meta["crash"] = {"kind": crash.kind, "title": crash.title, "trace": crash.trace}
        (d / "case.json").write_text(json.dumps(meta, indent=2))
        shutil.copyfile(self.out / "bases" / self.base_names[b], d / "base.img")
        (d / "repro.sh").write_text(REPRO_SH.format(module=self.module))
        os.chmod(d / "repro.sh", 0o755)
        f = Finding(kind, case_no, title, detail[-2000:], str(d),
                    mutated_bytes=len(changed_bytes(self.bases[b], img)))
        self.findings.append(f)
        self.echo(f"FINDING case {case_no}: {kind}: {title} -> {d}")
        return f

    # -- shrinking -------------------------------------------------------------
    def shrink(self, finding: Finding, crash: Crash) -> None:
        b, img, _ = self.case_image(finding.case)
        base = self.bases[b]
        offsets = changed_bytes(base, img)
        state: dict = {"vm": None, "progress": None, "n": 0}

        def probe(subset: list[int]) -> bool:
            cand = apply_bytes(base, img, subset)
            if state["vm"] is None:
                state["progress"] = Progress()
                state["vm"] = self._boot(state["progress"])
            state["n"] += 1
            case = Case(finding.case, b, diff_runs(base, cand))
            _, c2, _ = self.run_batch(state["vm"], state["progress"], [case],
                                      f"shrink{state['n']}")
            if c2 is None:
                return False
            state["vm"].kill()
            state["vm"] = None
            same = c2.kind == crash.kind and c2.title == crash.title
            if not same:
                log.info("shrink probe hit a different crash: %s", c2.title)
            return same

        try:
            best, used = ddmin(offsets, probe, self.cfg.shrink_probes)
        finally:
            if state["vm"] is not None:
                state["vm"].kill()
        d = Path(finding.reproducer)
        small = apply_bytes(base, img, best)
        (d / "minimized.img").write_bytes(small)
        (d / "minimized_bytes.json").write_text(json.dumps(
            {"offsets": best, "values": [img[o] for o in best],
             "base_values": [base[o] for o in best], "probes": used,
             "from": len(offsets)}, indent=2))
        finding.shrunk_bytes = len(best)
        self.echo(f"shrunk case {finding.case}: {len(offsets)} -> {len(best)} bytes "
                  f"in {used} probes")

    # -- main loop -------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.cfg
        t_start = time.monotonic()
        self.prepare_offline()
        crashes: list[tuple[Finding, Crash]] = []
        next_case = 0
        first = True
        while next_case < cfg.cases:
            progress = Progress()
            vm = self._boot(progress)
            try:
                if first and cfg.kernel_base:
                    self.make_kernel_base(vm)
                    first = False
                hi = min(cfg.cases, next_case + cfg.batch)
                cases = self.make_cases(next_case, hi)
                by_no = {c.case_no: c for c in cases}
                results, crash, bad = self.run_batch(vm, progress, cases, f"{next_case}")
                done = max((r.case_no for r in results), default=next_case - 1)
                if crash is not None:
                    if bad is None:
                        bad = done + 1
                    # A driver that survives the crash (a WARNING) may finish
                    # later cases before the VM is killed: those ran on a
                    # tainted kernel and run again on the fresh VM.
                    results = [r for r in results if r.case_no < bad]
                for r in results:
                    self.check_result(by_no[r.case_no], r)
                if crash is None:
                    if done != hi - 1:
                        raise RuntimeError(f"fz_image stopped after case {done} of "
                                           f"{next_case}..{hi - 1} without a crash")
                    next_case = hi
                    self.echo(f"cases {hi}/{cfg.cases}: {self.stats.mounted} mounted, "
                              f"{len(self.findings)} findings")
                    continue
                self.stats.cases_run += 1
                b, img, _ = self.case_image(bad)
                f = self._finding(crash.kind if crash.kind in ("hang", "died") else "crash",
                                  bad, crash.title, img, detail=crash.trace, crash=crash)
                f.console = str(vm.log_paths[0]) if vm.log_paths else ""
                f.crash_kind = crash.kind
                f.trace = crash.trace
                crashes.append((f, crash))
                next_case = bad + 1
            finally:
                vm.kill()
        if cfg.shrink:
            for f, crash in crashes:
                if crash.kind == "died":
                    continue
                try:
                    self.shrink(f, crash)
                except Exception as e:
                    log.exception("shrinking case %d failed", f.case)
                    self.echo(f"shrinking case {f.case} failed: {e}")
        total = time.monotonic() - t_start
        summary = {
            "seed": cfg.seed, "cases": cfg.cases, "bases": self.base_names,
            "stats": self.stats.to_dict(), "wall_s": round(total, 1),
            "cases_per_s_wall": round(self.stats.cases_run / total, 2) if total else 0,
            "cases_per_s_vm": round(self.stats.cases_run / self.stats.vm_s, 2)
            if self.stats.vm_s else 0,
            "findings": [f.to_dict() for f in self.findings],
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        shutil.rmtree(self.tmp, ignore_errors=True)
        return summary


REPRO_SH = """#!/bin/sh
# Replays this reproducer in a fresh VM: mounts image.img (or the image given
# as $1, e.g. minimized.img), walks it, writes, unmounts.
#   ./repro.sh [minimized.img]
D=$(cd "$(dirname "$0")" && pwd)
IMG=${{1:-image.img}}
cd /work/main && .venv/bin/python -m vexfs.vm.quick --module {module} --timeout 120 -- "
insmod /tmp/vexfs.ko
cp $D/$IMG /tmp/r.img
L=\\$(losetup -f --show /tmp/r.img)
mkdir -p /tmp/m
mount -t vexfs \\$L /tmp/m && {{ ls -laR /tmp/m; find /tmp/m -type f -exec cat {{}} + >/dev/null; \\
  find /tmp/m -type l -exec readlink {{}} \\; ; echo x > /tmp/m/new; umount /tmp/m; }}
losetup -d \\$L
dmesg | tail -40
"
"""
