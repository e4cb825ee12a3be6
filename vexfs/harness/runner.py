"""Run scenarios, each in a fresh VM, and build the Run report.

Clean state = a fresh boot per scenario: the guest root is the host's
filesystem over virtio-9p, which makes QEMU refuse snapshots (migration
blocker), and a boot costs a few seconds (docs/harness.md has the numbers).
A crash or hang ends the scenario as `error` with the captured trace; the
VM is killed and the next scenario boots a new one.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from vexfs.harness.framework import GUEST_MODULE, RunOptions, Scenario, ScenarioContext
from vexfs.report.events import RunObserver
from vexfs.report.model import Crash, Criterion, Environment, Run, ScenarioResult, Status
from vexfs.vm.build import ModuleInfo
from vexfs.vm.kernel import GuestKernel
from vexfs.vm.qemu import CPU_MODEL, qemu_version
from vexfs.vm.session import BootInfo, GuestCrashed, GuestDied, GuestVM, VMError

log = logging.getLogger(__name__)


@dataclass
class RunnerConfig:
    kernel: GuestKernel
    out_dir: Path
    options: RunOptions
    observer: RunObserver
    module: ModuleInfo | None = None
    run_id: str = ""
    write_report: bool = True
    boot_times: list[float] = field(default_factory=list)
    accel: str = ""
    jobs: int = 1  # scenario VMs at once; 0 = one per host core
    # Scenarios started only once all the others have finished, and timed
    # apart (C1, the crash-consistency scenario, is outside the default
    # run's time goal): their VMs never share the cores with the goal's.
    run_last: tuple[str, ...] = ()
    time_goal: "TimeGoal | None" = None


@dataclass(frozen=True)
class TimeGoal:
    """A run-level criterion: the scenarios `ids` (all run before any
    run_last one) are all done within `limit_s` of the run's start."""

    ids: tuple[str, ...]
    limit_s: float

    @property
    def label(self) -> str:
        return _id_range(self.ids)


def _id_range(ids: tuple[str, ...] | list[str]) -> str:
    """"S1-S6+R1" for S1..S6 and R1: consecutive numbers of one letter as a range."""
    groups: list[list[tuple[str, int]]] = []
    for sid in ids:
        letter, num = sid[:1], sid[1:]
        if not num.isdigit():
            groups.append([(sid, -1)])
            continue
        last = groups[-1][-1] if groups else None
        if last and last[1] >= 0 and last[0][:1] == letter and int(num) == last[1] + 1:
            groups[-1].append((sid, int(num)))
        else:
            groups.append([(sid, int(num))])
    return "+".join(g[0][0] if len(g) == 1 else f"{g[0][0]}-{g[-1][0]}" for g in groups)


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def _host() -> str:
    try:
        os_name = platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    except OSError:
        os_name = platform.system()
    return f"{platform.node()} ({os_name}, host kernel {platform.release()})"


def _write(run: Run, out_dir: Path, final: bool = True) -> None:
    try:
        from vexfs.report.writers import write_run
    except ImportError as exc:  # report package broken: keep the JSON at least
        log.error("report writers unavailable (%s); writing report.json only", exc)
        import json
        (out_dir / "report.json").write_text(json.dumps(run.to_dict(), indent=2, default=str))
        return
    # The HTML (matplotlib) takes seconds: only for the final report.
    write_run(run, out_dir, html=final)


BOOT_ATTEMPTS = 2


def _boot(scenario: Scenario, cfg: RunnerConfig, index: int, on_crash, transcript,
          failed_logs: list[Path]) -> tuple[GuestVM, BootInfo]:
    """A booted VM for the scenario. A boot that fails before the scenario
    has done anything (the module is not even copied yet) says nothing about
    the code under test, so it is retried once on a new VM; its console log
    is kept and listed with the scenario's logs."""
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        suffix = "" if attempt == 1 else f"-retry{attempt - 1}"
        vm = GuestVM(name=f"{scenario.id}-boot{index}{suffix}", log_dir=cfg.out_dir / "console",
                     kernel=cfg.kernel, memory=scenario.memory,
                     hang_timeout=scenario.hang_timeout,
                     console_callbacks=[_console_sink(cfg, scenario.id)], on_crash=on_crash)
        cfg.observer.step(scenario.id, "booting a fresh VM")
        try:
            return vm, vm.start()
        except (GuestCrashed, VMError) as exc:
            vm.kill()
            if attempt == BOOT_ATTEMPTS:
                raise
            failed_logs.extend(p for p in vm.log_paths if p.is_relative_to(cfg.out_dir))
            transcript.write(f"# boot {attempt} failed before the scenario started ({exc}); "
                             f"retrying on a new VM\n")
            log.warning("%s: boot failed (%s); retrying", scenario.id, exc)
    raise AssertionError("unreachable")


def symbolize_crashes(crashes: list[Crash], cfg: RunnerConfig) -> None:
    """The spec's "analyze panic trace": each crash's frames resolved to
    file:line in place (vexfs.crash.symbolize); never raises."""
    if not crashes:
        return
    try:
        from vexfs.crash.symbolize import default_symbolizer

        symbolizer = default_symbolizer(cfg.options.module_path, cfg.kernel.version)
        for crash in crashes:
            crash.trace = symbolizer.annotate(crash.trace)
    except Exception:
        log.exception("symbolizing crash traces failed")


def _console_sink(cfg: RunnerConfig, scenario_id: str):
    """The observer's console callback; with several VMs at once each line
    says which scenario's VM printed it (the console logs stay per VM)."""
    if cfg.jobs <= 1:
        return cfg.observer.console_line
    return lambda line: cfg.observer.console_line(f"{scenario_id}| {line}")


def report_crash(observer: RunObserver, crash: Crash, scenario_id: str) -> None:
    """observer.crash_detected, naming the scenario when the observer takes it
    (parallel scenarios: the live view must not blame the last one started)."""
    try:
        try:
            observer.crash_detected(crash, restoring=True, scenario_id=scenario_id)  # type: ignore[call-arg]
        except TypeError:
            observer.crash_detected(crash, restoring=True)
    except Exception:
        log.exception("observer.crash_detected failed")


def run_scenario(scenario: Scenario, cfg: RunnerConfig, index: int) -> ScenarioResult:
    """One scenario in its own fresh VM; never raises."""
    out = cfg.out_dir
    observer = cfg.observer
    observer.scenario_started(scenario.id, scenario.name)
    transcript_path = out / f"{scenario.id}.log"
    started = time.monotonic()
    vm: GuestVM | None = None
    crashes: list[Crash] = []
    status, message = Status.ERROR, ""
    ctx: ScenarioContext | None = None
    boot_logs: list[Path] = []  # consoles of boots that failed before the scenario began

    def on_crash(crash: Crash) -> None:
        report_crash(observer, crash, scenario.id)

    with open(transcript_path, "w", encoding="utf-8") as transcript:
        transcript.write(f"# {scenario.id} {scenario.name}\n")
        if scenario.own_vms:
            return _run_own_vms(scenario, cfg, transcript, transcript_path, started)
        try:
            vm, boot = _boot(scenario, cfg, index, on_crash, transcript, boot_logs)
            cfg.boot_times.append(boot.boot_s)
            cfg.accel = boot.accel
            transcript.write(f"# booted in {boot.boot_s:.2f} s ({boot.accel}); guest uptime "
                             f"{boot.guest_uptime_s:.2f} s at agent start\n")
            ctx = ScenarioContext(scenario, vm, cfg.options, observer, transcript)
            if scenario.needs_module:
                if cfg.options.module_path is None:
                    raise VMError("scenario needs the module but none was given")
                vm.put_file(cfg.options.module_path, GUEST_MODULE)
            scenario.fn(ctx)
            # A WARN (or any report) that completed after the last command
            # still belongs to this scenario.
            time.sleep(0.2)
            vm.watch.flush()
            if vm.watch.crashed:
                raise GuestCrashed(vm.watch.crashes[0])
            if not ctx.criteria:
                status, message = Status.ERROR, "the scenario recorded no criteria"
            elif all(c.passed for c in ctx.criteria):
                status = Status.PASSED
            else:
                failed = [c.name for c in ctx.criteria if not c.passed]
                status = Status.FAILED
                message = (f"{len(failed)} of {len(ctx.criteria)} criteria failed: "
                           + "; ".join(failed))
        except GuestCrashed as exc:
            status = Status.ERROR
            message = str(exc)
            transcript.write(f"\n# ERROR: {exc}\n")
        except (GuestDied, VMError) as exc:
            status, message = Status.ERROR, str(exc).splitlines()[0]
            transcript.write(f"\n# ERROR: {exc}\n")
        except Exception as exc:  # a harness/scenario bug: report it, go on
            status, message = Status.ERROR, f"{type(exc).__name__}: {exc}"
            transcript.write(f"\n# HARNESS ERROR\n{traceback.format_exc()}")
            log.exception("%s failed", scenario.id)
        finally:
            if vm is not None:
                vm.kill()
                crashes = list(vm.watch.crashes)
    duration = time.monotonic() - started
    logs = [str(transcript_path.relative_to(out))]
    logs += [str(p.relative_to(out)) for p in boot_logs if p.is_relative_to(out)]
    if vm is not None:
        for path in vm.log_paths:
            if path.is_relative_to(out):
                logs.append(str(path.relative_to(out)))
        console_rel = logs[1] if len(logs) > 1 else ""
        for crash in crashes:  # the full console of the boot that crashed
            crash.log_path = console_rel
    symbolize_crashes(crashes, cfg)
    result = ScenarioResult(id=scenario.id, name=scenario.name, status=status,
                            duration_s=duration,
                            criteria=list(ctx.criteria) if ctx else [],
                            metrics=dict(ctx.metrics) if ctx else {},
                            crashes=crashes, logs=logs, message=message)
    observer.scenario_finished(result)
    return result


def _verdict(criteria) -> tuple[Status, str]:
    if not criteria:
        return Status.ERROR, "the scenario recorded no criteria"
    if all(c.passed for c in criteria):
        return Status.PASSED, ""
    failed = [c.name for c in criteria if not c.passed]
    return Status.FAILED, f"{len(failed)} of {len(criteria)} criteria failed: " + "; ".join(failed)


def _run_own_vms(scenario: Scenario, cfg: RunnerConfig, transcript, transcript_path: Path,
                 started: float) -> ScenarioResult:
    """A scenario that boots its own VMs (R1's fuzzers). A kernel crash in one
    of them is a finding the scenario records (ctx.crash + a failed
    criterion) and survives by booting a fresh VM, so the scenario ends
    `failed`, not `error`; `error` stays for a harness failure."""
    out = cfg.out_dir
    work = out / scenario.id
    work.mkdir(parents=True, exist_ok=True)
    ctx = ScenarioContext(scenario, None, cfg.options, cfg.observer, transcript, work_dir=work)
    try:
        if scenario.needs_module and cfg.options.module_path is None:
            raise VMError("scenario needs the module but none was given")
        scenario.fn(ctx)
        status, message = _verdict(ctx.criteria)
    except Exception as exc:
        status, message = Status.ERROR, f"{type(exc).__name__}: {exc}"
        transcript.write(f"\n# HARNESS ERROR\n{traceback.format_exc()}")
        log.exception("%s failed", scenario.id)
    transcript.flush()
    logs = [str(transcript_path.relative_to(out))] + list(ctx.logs)
    symbolize_crashes(ctx.crashes, cfg)
    result = ScenarioResult(id=scenario.id, name=scenario.name, status=status,
                            duration_s=time.monotonic() - started,
                            criteria=list(ctx.criteria), metrics=dict(ctx.metrics),
                            crashes=list(ctx.crashes), logs=logs, message=message)
    cfg.observer.scenario_finished(result)
    return result


def run_all(scenarios: list[Scenario], cfg: RunnerConfig) -> Run:
    """Run `scenarios` in order, writing the report after each one."""
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "console").mkdir(exist_ok=True)
    run_id = cfg.run_id or out.name
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.monotonic()
    env = Environment(
        kernel_version=cfg.kernel.version, accelerator="", host=_host(),
        qemu_version=qemu_version(),
        module_path=str(cfg.options.module_path or ""),
        module_srcversion=cfg.module.srcversion if cfg.module else "",
        cpu_model=CPU_MODEL,
        extra={"guest_root": "host / over virtio-9p (read-only) + tmpfs/overlay for writable dirs",
               "clean_state": "fresh VM boot per scenario",
               "kernel_package": cfg.kernel.package_version,
               "module_version": cfg.module.version if cfg.module else "",
               "seed_timing": cfg.options.seed_timing})
    run = Run(run_id=run_id, started_at=started_at, duration_s=0.0, environment=env,
              finished=False, planned=[s.id for s in scenarios],
              writer=f"{platform.node()}:{os.getpid()}")
    jobs = max(1, min(cfg.jobs or default_jobs(), len(scenarios)))
    cfg.jobs = jobs
    env.extra["jobs"] = jobs
    if cfg.write_report:
        _write(run, out, final=False)        # RUNNING from the start, never PASSED
    cfg.observer.run_started(run_id, [s.id for s in scenarios])
    done: dict[int, ScenarioResult] = {}
    lock = threading.Lock()

    def finished(index: int, result: ScenarioResult) -> None:
        with lock:  # the report lists scenarios in their order, finished ones only
            done[index] = result
            run.scenarios = [done[i] for i in sorted(done)]
            env.accelerator = cfg.accel
            env.extra["boot_s"] = [round(b, 2) for b in cfg.boot_times]
            run.duration_s = time.monotonic() - started
            if cfg.write_report:
                _write(run, out, final=False)

    indexed = list(enumerate(scenarios, 1))
    phases = [[(i, s) for i, s in indexed if s.id not in cfg.run_last],
              [(i, s) for i, s in indexed if s.id in cfg.run_last]]
    timing: list[dict] = []
    env.extra["timing"] = timing
    for phase in phases:
        if not phase:
            continue
        phase_started = time.monotonic()
        _run_phase(phase, cfg, min(jobs, len(phase)), finished)
        timing.append({"scenarios": [s.id for _, s in phase],
                       "label": _id_range([s.id for _, s in phase]),
                       "started_s": round(phase_started - started, 1),
                       "wall_s": round(time.monotonic() - phase_started, 1),
                       "done_s": round(time.monotonic() - started, 1)})
    run.duration_s = time.monotonic() - started
    env.extra["scenario_s_total"] = round(sum(r.duration_s for r in run.scenarios), 1)
    env.extra["wall_s"] = round(run.duration_s, 1)
    if cfg.time_goal is not None:
        run.goals.append(judge_time_goal(cfg.time_goal, run, timing))
    run.finished = True
    if cfg.write_report:
        _write(run, out)
    return run


def _run_phase(phase: list[tuple[int, Scenario]], cfg: RunnerConfig, jobs: int,
               finished) -> None:
    if jobs <= 1:
        for index, scenario in phase:
            finished(index, run_scenario(scenario, cfg, index))
        return
    # One fresh VM per scenario as ever, `jobs` of them at a time: each
    # has its own name, console log, transcript, sockets and crash
    # watcher, so nothing but the host's cores is shared.
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="scenario") as pool:
        futures = {pool.submit(run_scenario, scenario, cfg, index): index
                   for index, scenario in phase}
        for future in as_completed(futures):
            finished(futures[future], future.result())


def judge_time_goal(goal: TimeGoal, run: Run, timing: list[dict]) -> Criterion:
    """The goal as a criterion: met iff every one of its scenarios ran in
    the first phase and that phase was done within the limit. The detail
    names the measured wall time and the per-scenario times."""
    name = f"{goal.label} wall time <= {goal.limit_s:.0f} s"
    by_id = {s.id: s for s in run.scenarios}
    missing = [sid for sid in goal.ids if sid not in by_id]
    first = timing[0] if timing else {}
    outside = [sid for sid in goal.ids if sid not in first.get("scenarios", [])]
    if missing or outside:
        return Criterion(name=name, passed=False,
                         detail=f"not measurable: {', '.join(missing + outside)} did not run "
                                "in the timed phase")
    wall = float(first["done_s"])
    per = ", ".join(f"{sid} {by_id[sid].duration_s:.1f} s" for sid in goal.ids)
    jobs = run.environment.extra.get("jobs", 1)
    verdict = "met" if wall <= goal.limit_s else "MISSED"
    return Criterion(name=name, passed=wall <= goal.limit_s,
                     detail=f"{verdict}: {goal.label} done {wall:.1f} s after the start "
                            f"(-j {jobs}, host load {_loadavg()}); {per}")


def _loadavg() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def default_jobs() -> int:
    """One scenario VM per host core."""
    return max(1, os.cpu_count() or 1)

