"""`vexfs vm`: a persistent test VM you can ssh into (the spec's workflow)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click


@click.group("vm")
def vm() -> None:
    """Start, stop and inspect the persistent test VM.

    The VM runs the Debian guest kernel with the host's root filesystem
    shared read-only (writable overlays on /tmp, /root, /mnt...), sshd on
    guest port 22 forwarded to localhost:2222, and its console (with dmesg)
    streamed to logs/test-kernel-vm_<timestamp>.log. Then, as in the spec:

    \b
        ssh -p 2222 root@localhost
        scp -P 2222 kernel/build/vexfs.ko root@localhost:/tmp/
        tail -f logs/test-kernel-vm_*.log
    """


@vm.command()
@click.option("--port", default=2222, show_default=True, help="Host port forwarded to guest sshd.")
@click.option("--memory", default="2G", show_default=True)
@click.option("--cpus", default=2, show_default=True)
@click.option("--no-ssh-config", is_flag=True,
              help="Do not add the localhost:PORT block to ~/.ssh/config.")
@click.option("--kernel", "kernel_spec", default=None, metavar="VERSION",
              help="Guest kernel: 6.1, 6.12, 6.12-rt or a release such as 6.1.0-57-amd64 "
                   "(default: $VEXFS_KERNEL, else apt's current kernel).")
def start(port: int, memory: str, cpus: int, no_ssh_config: bool,
          kernel_spec: str | None) -> None:
    """Boot the VM in the background; return once ssh answers."""
    from vexfs.vm import persistent
    from vexfs.vm.kernel import KernelError

    started = time.monotonic()
    try:
        state = persistent.start(port=port, memory=memory, cpus=cpus,
                                 configure_ssh=not no_ssh_config, kernel_spec=kernel_spec)
    except (persistent.VMStateError, OSError, KernelError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"VM running (pid {state.pid}, {state.accel}), up in "
               f"{time.monotonic() - started:.1f} s")
    click.echo(f"  ssh:     ssh -p {state.ssh_port} root@localhost")
    click.echo(f"  copy:    scp -P {state.ssh_port} kernel/build/vexfs.ko root@localhost:/tmp/")
    click.echo(f"  console: tail -f {state.log_path}")
    click.echo("  stop:    vexfs vm stop")


@vm.command()
def stop() -> None:
    """Stop the VM (its tmpfs state is discarded)."""
    from vexfs.vm import persistent

    click.echo("VM stopped" if persistent.stop() else "no VM was running")


@vm.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Is the VM running? Exit 1 if not."""
    from vexfs.vm import persistent

    info = persistent.status()
    if as_json:
        click.echo(json.dumps(info, indent=2))
    elif not info["running"]:
        click.echo("not running")
    else:
        click.echo(f"running: pid {info['pid']}, {info['accel']}, up {info['uptime_s']} s, "
                   f"qemu {info['qemu_status']}")
        click.echo(f"ssh port {info['ssh_port']}: {info['ssh']}")
        click.echo(f"console log: {info['log_path']}")
    sys.exit(0 if info["running"] else 1)


@vm.command(context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def shell(command: tuple[str, ...]) -> None:
    """ssh into the VM as root (or run COMMAND there)."""
    from vexfs.vm import persistent, ssh

    state = persistent.load_state()
    if state is None or not state.alive():
        raise click.ClickException("no VM running; `vexfs vm start` first")
    argv = ssh.ssh_argv(state.ssh_port, ssh.ensure_keys(state.ssh_port)) + list(command)
    os.execvp(argv[0], argv)


@vm.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (tail -f).")
@click.option("-n", "--lines", default=50, show_default=True, help="Lines of history to show.")
def logs(follow: bool, lines: int) -> None:
    """Show the VM's console log (kernel messages included)."""
    from vexfs.vm import persistent
    from vexfs.vm.paths import logs_dir

    state = persistent.load_state()
    if state is not None:
        path = Path(state.log_path)
    else:
        candidates = sorted(logs_dir().glob("test-kernel-vm_*.log"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise click.ClickException("no VM console log yet")
        path = candidates[-1]
    argv = ["tail", f"-n{lines}"] + (["-F"] if follow else []) + [str(path)]
    os.execvp(argv[0], argv)


@vm.command()
@click.option("--duration", type=float, default=None,
              help="Stop after this many seconds (default: until the VM stops or Ctrl-C).")
@click.option("--from-start", is_flag=True, help="Replay the console log from its beginning.")
@click.option("--no-stats", is_flag=True, help="Do not poll the guest over ssh.")
def watch(duration: float | None, from_start: bool, no_stats: bool) -> None:
    """Live view of the running VM: console/dmesg tail with warnings
    highlighted, crash banners, guest memory and module state. Exit 1 if a
    kernel crash report was seen."""
    from vexfs.report.live import make_observer
    from vexfs.vm import persistent, ssh
    from vexfs.vm.watch import watch as run_watch

    state = persistent.load_state()
    if state is None or not state.alive():
        raise click.ClickException("no VM running; `vexfs vm start` first")
    argv = None if no_stats else ssh.ssh_argv(state.ssh_port, ssh.ensure_keys(state.ssh_port))
    crashes = run_watch(make_observer(), Path(state.log_path), argv, state.alive,
                        duration=duration, from_start=from_start)
    sys.exit(1 if crashes else 0)


@vm.command()
@click.argument("module", default="kernel/build/vexfs.ko",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dest", default="/tmp/vexfs.ko", show_default=True, help="Path in the guest.")
def insmod(module: Path, dest: str) -> None:
    """Copy MODULE into the running VM (scp, as the spec does) and insmod it.

    On a load failure, says why (the spec's procedure, by code): the kernel's
    messages, the guest copy's checksum against the build, vermagic against
    the guest's `uname -r`, unknown symbols and the module exporting them,
    signature notices. Exit 1 if the module did not load."""
    import subprocess

    from vexfs.vm import loadcheck, persistent, ssh

    state = persistent.load_state()
    if state is None or not state.alive():
        raise click.ClickException("no VM running; `vexfs vm start` first")
    argv = ssh.ssh_argv(state.ssh_port, ssh.ensure_keys(state.ssh_port))
    copy = subprocess.run(ssh.scp_argv(argv) + [str(module), f"root@localhost:{dest}"],
                          capture_output=True, text=True)
    if copy.returncode != 0:
        raise click.ClickException(f"scp failed: {copy.stderr.strip()}")
    result, diagnosis = loadcheck.load_and_diagnose(lambda cmd: ssh.ssh_run(argv, cmd),
                                                    module, dest)
    if diagnosis is None:
        click.echo(f"{module} loaded ({dest})")
        return
    click.echo(result.stderr.rstrip(), err=True)
    click.echo(diagnosis.text())
    sys.exit(1)
