"""The `vexfs` command line.

Each command group lives in the module that implements it; this root only
names them, and imports a group when it is invoked, so `vexfs --help` stays
fast and one broken subsystem does not take the others down.
"""

from __future__ import annotations

import importlib
import logging

import click

# name -> ("module:attribute" of a click command or group, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("vexfs.harness.cli:run", "Run the VM test scenarios and write a report."),
    "matrix": ("vexfs.harness.cli:matrix", "Run scenarios across guest kernels: one report."),
    "vm": ("vexfs.vm.cli:vm", "Start, stop and inspect the persistent test VM."),
    "image": ("vexfs.image_cli:image", "Read a VexFS image offline (ls, cat, stat)."),
    "vec": ("vexfs.vector.cli:vec", "Vector collections: create, insert, search."),
    "bench": ("vexfs.bench.cli:bench", "Benchmarks run inside the VM."),
    "fuzz": ("vexfs.fuzz.cli:fuzz", "Fuzz corrupt images and ioctls in the VM."),
    "report": ("vexfs.report.cli:report", "Render and compare run reports."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="vexfs")
def main(verbose: int) -> None:
    """VexFS tools: VM scenario runner, image tools, vector client, reports."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    # Run progress (vexfs.report.events.PlainObserver) is the point of a
    # non-interactive `vexfs run`: show it even at the default verbosity.
    logging.getLogger("vexfs.run").setLevel(min(level, logging.INFO))


if __name__ == "__main__":
    main()
