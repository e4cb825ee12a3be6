"""`vexfs run`: run the VM scenarios and write results/<run-id>/."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

log = logging.getLogger(__name__)

# scenarios `vexfs run` runs by default besides the spec's S1..S6
DEFAULT_EXTRA = ("R1",)
DEFAULT_CRASH = ("C1",)
# The goal of the default run on the 2-core TCG machine (issue 17): S1..S6
# and R1 at default counts done within 6 min of the start. C1 runs after
# them, timed apart.
TIME_GOAL_IDS = ("S1", "S2", "S3", "S4", "S5", "S6", "R1")
TIME_GOAL_S = 360.0


def _observer():
    from vexfs.report.events import PlainObserver

    try:
        from vexfs.report.live import make_observer
        observer = make_observer()
    except Exception as exc:  # the live view is optional; plain logs always work
        log.debug("live view unavailable: %s", exc)
        observer = PlainObserver()
    if isinstance(observer, PlainObserver):
        # Progress lines (scenario started/finished, steps) are INFO on
        # "vexfs.run": show them without -v when not on a terminal (CI).
        run_log = logging.getLogger("vexfs.run")
        if run_log.getEffectiveLevel() > logging.INFO:
            run_log.setLevel(logging.INFO)
        if not logging.getLogger().handlers:
            logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    return observer


def print_summary(run, out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    colours = {"passed": "green", "failed": "red", "error": "bold red", "skipped": "dim"}
    table = Table(title=f"VexFS run {run.run_id} ({run.environment.kernel_version}, "
                        f"{run.environment.accelerator or '?'})")
    table.add_column("Scenario")
    table.add_column("Name")
    table.add_column("Status")
    table.add_column("Time", justify="right")
    table.add_column("Criteria", justify="right")
    table.add_column("Why")
    for s in run.scenarios:
        status = s.status.value
        ok = sum(1 for c in s.criteria if c.passed)
        why = s.message or ""
        if s.crashes:
            c = s.crashes[0]
            why = c.title if c.title.lower().startswith(c.kind) else f"{c.kind}: {c.title}"
        table.add_row(s.id, s.name, f"[{colours.get(status, '')}]{status}[/]",
                      f"{s.duration_s:.1f} s", f"{ok}/{len(s.criteria)}", why[:90])
    console = Console(file=sys.stdout)
    console.print(table)
    from vexfs.report.robustness import summary_lines

    for line in summary_lines(run):  # R1: cases tried, failures found
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    from vexfs.report.timing import time_lines

    for line in time_lines(run):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"{'PASSED' if run.passed else 'FAILED'} in {run.duration_s:.1f} s; "
                  f"report: {out_dir / 'report.json'}")


def default_time_goal(chosen, fuzz_cases: int, ioctl_calls: int, leak_cycles: int,
                      bench_sizes: str, seed_timing: bool):
    """The 6-min goal, judged when the run holds all of S1..S6 and R1 at
    their default counts (other counts time other work)."""
    from vexfs.harness.runner import TimeGoal

    ids = {s.id for s in chosen}
    defaults = (fuzz_cases, ioctl_calls, leak_cycles, bench_sizes, seed_timing) == (
        1000, 100_000, 20, "10000,100000", False)
    if defaults and set(TIME_GOAL_IDS) <= ids:
        return TimeGoal(ids=TIME_GOAL_IDS, limit_s=TIME_GOAL_S)
    return None


def _sizes(value: str) -> str:
    """Validate a comma-separated list of positive sizes, early and clearly."""
    try:
        sizes = [int(x) for x in value.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of positive sizes")
    return ",".join(map(str, sizes))


def prepare_kernel_and_module(kernel_spec: str | None, module_path: Path | None):
    """The guest kernel (fetched, headers installed) and the checked module
    for it (built unless `module_path` is given). Every VM this process and
    its children boot then runs that kernel ($VEXFS_KERNEL is set to it)."""
    import os

    from vexfs.vm.build import BuildError, build_vexfs, check_module, module_path as built_path
    from vexfs.vm.kernel import KERNEL_ENV, KernelError, ensure_kernel

    try:
        click.echo(f"Preparing the guest kernel{' ' + kernel_spec if kernel_spec else ''} "
                   "and headers...", err=True)
        kernel = ensure_kernel(kernel_spec, headers=module_path is None)
        os.environ[KERNEL_ENV] = kernel.version
        if module_path is None:
            click.echo(f"Building {built_path(kernel)} for {kernel.version}...", err=True)
            info = build_vexfs(kernel)
        else:
            info = check_module(module_path, kernel)
    except (KernelError, BuildError) as exc:
        raise click.ClickException(str(exc)) from None
    return kernel, info


@click.command("run")
@click.argument("scenario_ids", metavar="[SCENARIO]...", nargs=-1)
@click.option("--module", "module_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Test this vexfs.ko instead of building kernel/build/vexfs.ko.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the report here (default: results/<run-id>/, and results/latest).")
@click.option("--seed-timing", is_flag=True,
              help="Keep the spec's `sleep 1` pauses (default: as fast as correctness allows).")
@click.option("--fuzz-cases", type=click.IntRange(0), default=1000, show_default=True,
              help="R1: corrupt-image fuzz cases (0 skips the stage).")
@click.option("--ioctl-calls", type=click.IntRange(0), default=100_000, show_default=True,
              help="R1: hostile ioctl calls (0 skips the stage).")
@click.option("--leak-cycles", type=int, default=20, show_default=True,
              help="R1: mount/umount cycles under slub_debug (0 skips; else >= 3; the memory "
                   "trend is judged from 10).")
@click.option("--fuzz-seed", type=int, default=1, show_default=True,
              help="R1: seed of the image and ioctl fuzzers (a case is a function of seed and "
                   "number).")
@click.option("--bench-sizes", default="10000,100000", show_default=True,
              callback=lambda ctx, param, value: _sizes(value),
              help="S5: collection sizes of the vector benchmark (comma-separated).")
@click.option("--crash-episodes", type=click.IntRange(1), default=300, show_default=True,
              help="C1: episodes of the VexFS crash-point workload (each ends in a mark; "
                   "about 3.5 replay points each).")
@click.option("--power-cuts", type=click.IntRange(0), default=20, show_default=True,
              help="C1: power-cut rounds (sysrq-b in a VM, checked on the next boot).")
@click.option("--kernel", "kernel_spec", default=None, metavar="VERSION",
              help="Guest kernel: any linux-image-<VERSION>-amd64 apt offers, e.g. 6.1, 6.12, "
                   "6.12-rt, 6.1.0-57-amd64, 6.12.117+deb12-rt-amd64 (default: $VEXFS_KERNEL, "
                   "else apt's current kernel).")
@click.option("-j", "--jobs", type=click.IntRange(0), default=0, show_default="one per core",
              help="Scenario VMs at once (each scenario still gets its own fresh VM).")
@click.option("--symbols", is_flag=True,
              help="Install the guest kernel's debug vmlinux (linux-image-<ver>-dbg, ~850 MB "
                   "download) so crash traces resolve kernel frames to file:line too "
                   "(vexfs frames always are).")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
def run(scenario_ids: tuple[str, ...], module_path: Path | None, out_dir: Path | None,
        seed_timing: bool, fuzz_cases: int, ioctl_calls: int, leak_cycles: int,
        fuzz_seed: int, bench_sizes: str, crash_episodes: int, power_cuts: int,
        kernel_spec: str | None,
        jobs: int, symbols: bool, list_only: bool) -> None:
    """Run the VM test scenarios (default: S1..S6, C1 crash consistency, R1 fuzzing).

    Each scenario boots a fresh VM of the Debian guest kernel, runs the
    spec's steps with every success criterion checked by code, and the run
    writes report.json, junit.xml, report.html and the console logs into
    results/<run-id>/. Exit status 1 if any scenario failed or errored.
    """
    from vexfs.harness import scenarios as registry

    if list_only:
        for s in registry.discover().values():
            click.echo(f"{s.id:5} {s.name}  {s.description}")
        return
    try:
        chosen = registry.select(list(scenario_ids))
        if not scenario_ids:
            # the default run: the spec's S1..S6, C1 (crash consistency),
            # then R1 (robustness fuzzing) unless every one of its stages is
            # switched off
            chosen += registry.select(list(DEFAULT_CRASH))
            if fuzz_cases or ioctl_calls or leak_cycles:
                chosen += registry.select(list(DEFAULT_EXTRA))
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0])) from None
    if leak_cycles != 0 and leak_cycles < 3:
        raise click.UsageError("--leak-cycles must be 0 (skip) or at least 3")
    if not chosen:
        raise click.UsageError("no scenarios to run")

    from vexfs.harness.framework import RunOptions
    from vexfs.harness.runner import RunnerConfig, new_run_id, run_all

    kernel, info = prepare_kernel_and_module(kernel_spec, module_path)
    from vexfs.vm.paths import results_dir
    if symbols:
        from vexfs.crash.symbolize import SymbolizeError, install_debug_vmlinux

        click.echo(f"Installing the debug vmlinux of {kernel.version}...", err=True)
        try:
            click.echo(f"kernel symbols: {install_debug_vmlinux(kernel.version)}", err=True)
        except (SymbolizeError, OSError) as exc:
            raise click.ClickException(str(exc)) from None

    run_id = new_run_id()
    default_out = out_dir is None
    out = out_dir or results_dir() / run_id
    cfg = RunnerConfig(kernel=kernel, out_dir=out, run_id=run_id,
                       options=RunOptions(seed_timing=seed_timing, module_path=info.path.resolve(),
                                          fuzz_cases=fuzz_cases, ioctl_calls=ioctl_calls,
                                          leak_cycles=leak_cycles, fuzz_seed=fuzz_seed,
                                          bench_sizes=bench_sizes,
                                          crash_episodes=crash_episodes,
                                          power_cuts=power_cuts),
                       observer=_observer(), module=info, jobs=jobs,
                       run_last=DEFAULT_CRASH,
                       time_goal=default_time_goal(chosen, fuzz_cases, ioctl_calls, leak_cycles,
                                                   bench_sizes, seed_timing))
    result = run_all(chosen, cfg)
    if default_out:
        from vexfs.report.writers import update_latest_link
        update_latest_link(results_dir(), out)
    try:
        cfg.observer.run_finished(result.passed, str(out))
    except Exception:
        log.exception("observer.run_finished failed")
    print_summary(result, out)
    sys.exit(0 if result.passed else 1)


@click.command("matrix")
@click.argument("scenario_ids", metavar="[SCENARIO]...", nargs=-1)
@click.option("--kernels", default=",".join(("6.1", "6.12", "6.12-rt")), show_default=True,
              help="Comma-separated --kernel specs (6.1, 6.12, 6.12-rt, or releases).")
@click.option("-j", "--jobs", type=click.IntRange(0), default=0, show_default="one per core",
              help="Scenario VMs at once within each kernel.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the matrix here (default: results/matrix-<id>/).")
@click.option("--fuzz-cases", type=click.IntRange(0), default=1000, show_default=True,
              help="R1 (when named): corrupt-image fuzz cases.")
@click.option("--ioctl-calls", type=click.IntRange(0), default=100_000, show_default=True,
              help="R1 (when named): hostile ioctl calls.")
@click.option("--leak-cycles", type=int, default=20, show_default=True,
              help="R1 (when named): slub_debug mount cycles (0 or >= 3).")
@click.option("--bench-sizes", default="10000,100000", show_default=True,
              callback=lambda ctx, param, value: _sizes(value),
              help="S5: collection sizes of the vector benchmark.")
def matrix(scenario_ids: tuple[str, ...], kernels: str, jobs: int, out_dir: Path | None,
           fuzz_cases: int, ioctl_calls: int, leak_cycles: int, bench_sizes: str) -> None:
    """Run scenarios (default S1..S6) on several guest kernels; one report.

    Each kernel gets a full run in <out>/<release>/ (module built against
    its headers, a fresh VM per scenario); <out>/matrix.html and matrix.json
    hold the kernel x scenario table, each cell linking to its run. Exit
    status 1 unless every cell passed.
    """
    from vexfs.harness import scenarios as registry
    from vexfs.harness.framework import RunOptions
    from vexfs.harness.matrix import fpu_text, run_matrix
    from vexfs.harness.runner import new_run_id
    from vexfs.vm.paths import results_dir

    run_log = logging.getLogger("vexfs.run")  # progress (kernel fetch, builds) without -v
    if run_log.getEffectiveLevel() > logging.INFO:
        run_log.setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    specs = [k.strip() for k in kernels.split(",") if k.strip()]
    if not specs:
        raise click.UsageError("--kernels names no kernel")
    try:
        registry.select(list(scenario_ids))
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0])) from None
    if leak_cycles != 0 and leak_cycles < 3:
        raise click.UsageError("--leak-cycles must be 0 (skip) or at least 3")
    out = out_dir or results_dir() / f"matrix-{new_run_id()}"

    def options(module: Path) -> RunOptions:
        return RunOptions(module_path=module, fuzz_cases=fuzz_cases, ioctl_calls=ioctl_calls,
                          leak_cycles=leak_cycles, bench_sizes=bench_sizes)

    result = run_matrix(specs, list(scenario_ids), out, options_factory=options,
                        observer_factory=_observer, jobs=jobs)
    width = max(len(r.release or r.spec) for r in result.rows)
    click.echo(f"{'kernel':{width}}  " + "  ".join(f"{s:>12}" for s in result.scenarios))
    for row in result.rows:
        cells = [(f"{c.status} {c.duration_s:.0f}s" if (c := row.cells.get(s)) else "-")
                 for s in result.scenarios]
        click.echo(f"{row.release or row.spec:{width}}  " + "  ".join(f"{c:>12}" for c in cells)
                   + (f"  ({row.error})" if row.error else "")
                   + (f"  [{fpu_text(row)}]" if row.fpu_max_ns is not None else ""))
    click.echo(f"{'PASSED' if result.passed else 'FAILED'} in {result.duration_s:.1f} s; "
               f"report: {out / 'matrix.html'}")
    sys.exit(0 if result.passed else 1)
