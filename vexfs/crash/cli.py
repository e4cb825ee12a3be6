"""`python -m vexfs.crash` (or `vexfs crash` once registered): triage console logs.

    python -m vexfs.crash parse logs/quick_*.log     # the crashes in saved logs
    python -m vexfs.crash parse --json --all LOG     # every report, as JSON
    dmesg | python -m vexfs.crash parse -            # in the guest
    python -m vexfs.crash triggers                   # the crash module's triggers
    python -m vexfs.crash build-crashtest            # build vexfs_crashtest.ko
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from vexfs.crash import crashtest
from vexfs.crash.detect import parse_log


@click.group(name="crash")
def crash() -> None:
    """Kernel crash detection: parse console logs, the test-only crash module."""


@crash.command()
@click.argument("logs", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the crashes as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also repeated reports (no dedupe).")
@click.option("--trace", is_flag=True, help="Print each report's console excerpt.")
def parse(logs: tuple[Path, ...], as_json: bool, show_all: bool, trace: bool) -> None:
    """Find kernel crash reports in saved console LOGS ("-": stdin, e.g. `dmesg |`).

    Exit 1 if there is any."""
    found = 0
    out = []
    for log in logs:
        text = sys.stdin.read() if str(log) == "-" else log.read_text(errors="replace")
        crashes = parse_log(text, dedupe=not show_all)
        found += len(crashes)
        for c in crashes:
            c.log_path = str(log)
            if as_json:
                out.append(dataclasses.asdict(c))
                continue
            flag = " (corrupted)" if c.corrupted else ""
            click.echo(f"{log}: {c.kind}: {c.title}{flag}")
            if trace:
                click.echo(c.trace + "\n")
        if not crashes and not as_json:
            click.echo(f"{log}: no crash")
    if as_json:
        click.echo(json.dumps(out, indent=2))
    sys.exit(1 if found else 0)


@crash.command()
def triggers() -> None:
    """List the triggers of the test-only vexfs_crashtest.ko and what they print."""
    click.echo(f"control file: {crashtest.CONTROL_FILE}")
    for t in crashtest.TRIGGERS.values():
        what = f"{t.kind}: {t.title}" if t.title else "no crash report"
        click.echo(f"  {t.name:13} {what}" + (f"  [{t.note}]" if t.note else ""))


@crash.command(name="build-crashtest")
@click.option("--kdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Kernel build directory (default: the Debian guest headers).")
def build_crashtest(kdir: Path | None) -> None:
    """Build the TEST-ONLY vexfs_crashtest.ko and print its path."""
    try:
        click.echo(crashtest.build_crashtest(kdir))
    except crashtest.CrashtestBuildError as exc:
        raise click.ClickException(str(exc)) from exc


@crash.command()
@click.argument("log", type=click.Path(exists=True, dir_okay=False, allow_dash=True,
                                       path_type=Path))
@click.option("--module", "modules", multiple=True, metavar="NAME=KO",
              help="Debug object of a module in the trace (default: vexfs=kernel/build/vexfs.ko "
                   "and the built crash module).")
@click.option("--vmlinux", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Kernel debug vmlinux (default: the installed linux-image-<ver>-dbg one).")
@click.option("--kernel-version", default="",
              help="Guest kernel release (for the default vmlinux).")
def symbolize(log: Path, modules: tuple[str, ...], vmlinux: Path | None,
              kernel_version: str) -> None:
    """Print each crash report in LOG with its frames resolved to file:line."""
    from vexfs.crash.symbolize import Symbolizer, default_symbolizer, kernel_debug_vmlinux
    from vexfs.vm.build import VEXFS_KO

    text = sys.stdin.read() if str(log) == "-" else log.read_text(errors="replace")
    crashes = parse_log(text)
    if not kernel_version:
        import re

        m = re.search(r"\b(\d+\.\d+\.\d+-\d+-[\w-]+) #\d", text)
        kernel_version = m.group(1) if m else ""
    base = default_symbolizer(VEXFS_KO if VEXFS_KO.exists() else None, kernel_version)
    mods = dict(base.modules)
    for spec in modules:
        name, sep, path = spec.partition("=")
        if not sep:
            raise click.BadParameter(f"{spec!r}: expected NAME=KO", param_hint="--module")
        mods[name] = Path(path)
    sym = Symbolizer(mods, vmlinux or kernel_debug_vmlinux(kernel_version), kernel_version)
    for c in crashes:
        click.echo(f"--- {c.kind}: {c.title}\n{sym.annotate(c.trace)}\n")
    if not crashes:
        click.echo(f"{log}: no crash")
