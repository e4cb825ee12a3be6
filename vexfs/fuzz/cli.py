"""`vexfs fuzz`: the corrupt-image and ioctl fuzzers (run in the VM)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _echo(msg: str) -> None:
    click.echo(msg, err=True)


@click.group()
def fuzz() -> None:
    """Fuzz corrupt images and ioctls in the VM (see docs/robustness.md)."""


@fuzz.command()
@click.option("--cases", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (bases, findings/, summary.json); "
                   "default .cache/fuzz/image-<seed>.")
@click.option("--module", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="vexfs.ko to test (default kernel/build/vexfs.ko).")
@click.option("--batch", type=click.IntRange(1), default=2000, show_default=True,
              help="Cases per VM boot.")
@click.option("--case-timeout", type=float, default=30.0, show_default=True)
@click.option("--no-shrink", is_flag=True, help="Do not minimise crashing cases.")
@click.option("--shrink-probes", type=click.IntRange(1), default=60, show_default=True)
@click.option("--no-kernel-base", is_flag=True,
              help="Only the offline-built seed images (skip the kernel-written one).")
def image(cases: int, seed: int, out: Path | None, module: Path | None, batch: int,
          case_timeout: float, no_shrink: bool, shrink_probes: int, no_kernel_base: bool) -> None:
    """Mutate valid images and mount/walk/write/umount/fsck each in the VM."""
    from vexfs.fuzz.imagefuzz import FuzzConfig, ImageFuzzer
    from vexfs.vm.paths import cache_dir

    cfg = FuzzConfig(cases=cases, seed=seed, out=out or cache_dir() / "fuzz" / f"image-{seed}",
                     module=module, batch=batch, case_timeout=case_timeout,
                     shrink=not no_shrink, shrink_probes=shrink_probes,
                     kernel_base=not no_kernel_base)
    summary = ImageFuzzer(cfg, echo=_echo).run()
    st = summary["stats"]
    click.echo(f"{st['cases_run']} cases in {summary['wall_s']} s "
               f"({summary['cases_per_s_wall']} cases/s wall, {summary['cases_per_s_vm']} "
               f"cases/s in the VM), {st['boots']} boots; mounted {st['mounted']}; mount "
               f"errnos {st['mount_errnos']}; findings: {len(summary['findings'])}")
    for f in summary["findings"]:
        click.echo(f"  case {f['case']}: {f['kind']}: {f['title']} -> {f['reproducer']}")
    click.echo(f"summary: {cfg.out / 'summary.json'}")
    sys.exit(1 if summary["findings"] else 0)


@fuzz.command()
@click.option("--calls", type=click.IntRange(1), default=100000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--threads", type=click.IntRange(1, 16), default=3, show_default=True)
@click.option("--module", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
def ioctl(calls: int, seed: int, threads: int, module: Path | None, out: Path | None) -> None:
    """Random and hostile vector ioctls; errno, crash and leak checks."""
    from vexfs.fuzz.ioctlfuzz import run_ioctl_fuzz
    from vexfs.vm.paths import cache_dir

    res = run_ioctl_fuzz(calls, seed, threads, module,
                         out or cache_dir() / "fuzz" / f"ioctl-{seed}", echo=_echo)
    click.echo(json.dumps(res, indent=2))
    sys.exit(0 if res["ok"] else 1)


@fuzz.command()
@click.option("--module", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--section", "sections", multiple=True,
              help="flakey_error_writes, flakey_meta_write, flakey_meta_continue, "
                   "flakey_drop_writes, flakey_all_io, error_target, enospc (default: all; "
                   "tests/host/test_fuzz_drivers.py keeps this list equal to faults.SECTIONS)")
def faults(module: Path | None, out: Path | None, sections: tuple[str, ...]) -> None:
    """dm-flakey/dm-error I/O errors and ENOSPC under a mounted VexFS."""
    from vexfs.fuzz.faults import run_faults
    from vexfs.vm.paths import cache_dir

    out = out or cache_dir() / "fuzz" / "faults"
    res = run_faults(out, module, list(sections) or None)
    click.echo(json.dumps(res["results"], indent=1))
    for c in res["crashes"]:
        click.echo(f"CRASH in {c['section']}: {c['title']}\n{c['trace'][-3000:]}")
    click.echo(f"transcript: {out / 'faults.txt'}; result: {out / 'faults.json'}")
    sys.exit(1 if res["crashes"] else 0)


@fuzz.command()
@click.option("--module", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--cycles", type=click.IntRange(3), default=20, show_default=True)
@click.option("--slub-debug", default="slub_debug=FZPU", show_default=True,
              help="Kernel command line argument for the boot ('' for none).")
def leaks(module: Path | None, out: Path | None, cycles: int, slub_debug: str) -> None:
    """Mount/workload/umount cycles under slub_debug; lifetime and race checks."""
    from vexfs.fuzz.leaks import analyse, run_leaks
    from vexfs.vm.paths import cache_dir

    out = out or cache_dir() / "fuzz" / "leaks"
    res = run_leaks(out, module, cycles, slub_debug)
    click.echo(json.dumps({"analysis": analyse(res, cycles), "results": res["results"],
                           "crashes": res["crashes"]}, indent=1))
    sys.exit(1 if res["crashes"] else 0)
