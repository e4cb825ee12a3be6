"""Shared steps of the block-device scenarios S3, S4 and S5.

Not a scenario module (the leading underscore keeps the registry from
importing it as one). Each helper runs the spec's shell step in the guest,
checks what it can by code and leaves every command in the transcript.

Two things the spec takes for granted need doing in our guest:
 - the loop driver is a module in the Debian kernel, so `/dev/loop0` only
   exists after `modprobe loop` (`ensure_loop`);
 - `mkfs.vexfs`/`fsck.vexfs`/`vexfs` live in the repo's venv, whose bin
   directory is put first on PATH for every command (`GUEST_ENV`), so the
   spec's `which mkfs.vexfs` finds them as an installed tool would be found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vexfs import layout as L
from vexfs.harness.framework import ScenarioContext
from vexfs.vm.paths import REPO_ROOT
from vexfs.vm.session import CommandResult

VENV_BIN = REPO_ROOT / ".venv" / "bin"
GUEST_PYTHON = str(VENV_BIN / "python")
GUEST_ENV = {"PATH": f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

# Kernel lines at warn/err level that come from the emulated machine or the
# guest's tmpfs-backed /tmp, not from anything VexFS does. Each is matched
# narrowly, and every line dropped this way is still written to the
# transcript and to the `ignored_kernel_lines` metric, so nothing is hidden.
ENVIRONMENT_ARTIFACTS = [
    # TCG runs the guest's timer interrupts late on a loaded 2-core host
    # (kernel/time/hrtimer.c, pr_warn_once).
    (re.compile(r"hrtimer: interrupt took \d+ ns"), "TCG timer jitter"),
    # The loop driver advertises WRITE_ZEROES when the backing file has
    # ->fallocate, but tmpfs refuses FALLOC_FL_ZERO_RANGE; the block layer
    # logs the refused request and falls back to writing zeroes. mkfs.ext4
    # on the same loop device prints the same lines (S4 records that).
    (re.compile(r"operation not supported error, dev loop\d+, sector \d+ op 0x9:\(WRITE_ZEROES\)"),
     "loop over tmpfs: WRITE_ZEROES unsupported (BLKZEROOUT falls back)"),
]

TOP_COUNTERS = ("inodes", "mounts", "buffers", "extent_maps")


def sh(ctx: ScenarioContext, cmd: str | list[str], **kwargs) -> CommandResult:
    """ctx.run with the venv's bin first on PATH."""
    env = dict(GUEST_ENV)
    env.update(kwargs.pop("env", None) or {})
    return ctx.run(cmd, env=env, **kwargs)


def err_tail(result: CommandResult, limit: int = 400) -> str:
    text = (result.stderr.strip() or result.stdout.strip())
    return text[-limit:]


@dataclass
class KernelLog:
    """What the kernel printed at warn level or above, split into real
    problems, lines the scenario expected (e.g. a refused mount of a blank
    device) and known environment artifacts."""
    problems: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def collect(self, ctx: ScenarioContext, expect: re.Pattern | None = None,
                clear: bool = False) -> list[str]:
        """Read ctx.dmesg_problems(); returns the new real problems. With
        `clear`, the ring buffer is emptied afterwards so the next collect()
        only sees what follows (crash reports are never cleared: they stay
        in the VM's watch and are returned again, so dedupe)."""
        new: list[str] = []
        problems, noise = ctx.dmesg_problems()
        for line in noise:  # the framework's own emulation-noise list
            if line not in self.ignored:
                self.ignored.append(line)
                ctx.note(f"# ignored (emulation noise): {line}")
        for line in problems:
            reason = next((why for pat, why in ENVIRONMENT_ARTIFACTS if pat.search(line)), None)
            if reason:
                if line not in self.ignored:
                    self.ignored.append(line)
                    ctx.note(f"# ignored ({reason}): {line}")
            elif expect is not None and expect.search(line):
                if line not in self.expected:
                    self.expected.append(line)
            elif line not in self.problems:
                self.problems.append(line)
                new.append(line)
        if clear:
            ctx.clear_dmesg()
        return new

    def record(self, ctx: ScenarioContext) -> None:
        ctx.metric("kernel_warnings", list(self.problems))
        ctx.metric("ignored_kernel_lines", list(self.ignored))


def ensure_loop(ctx: ScenarioContext) -> bool:
    """`modprobe loop` (a module in the Debian kernel) so /dev/loop0 exists."""
    ctx.run("modprobe loop")
    return ctx.run("test -b /dev/loop0").rc == 0


def insmod(ctx: ScenarioContext) -> CommandResult:
    result = ctx.run(["insmod", ctx.module])
    ctx.metric("load_s", result.duration_s)
    return result


def top_counters(ctx: ScenarioContext) -> dict[str, int | str]:
    """The module-wide live-object counters (/sys/fs/vexfs/<name>)."""
    counters = ctx.module_counters()
    return {k: v for k, v in counters.items() if "/" not in k}


def counters_at_zero(ctx: ScenarioContext) -> tuple[bool, str]:
    """Every module-wide counter is 0 (nothing mounted, no live objects) and
    no per-mount directory is left under /sys/fs/vexfs."""
    counters = ctx.module_counters()
    top = {k: v for k, v in counters.items() if "/" not in k}
    per_mount = sorted({k.split("/")[0] for k in counters if "/" in k})
    missing = [k for k in TOP_COUNTERS if k not in top]
    nonzero = {k: v for k, v in top.items() if isinstance(v, int) and v != 0}
    ok = bool(top) and not missing and not nonzero and not per_mount
    numeric = {k: v for k, v in top.items() if isinstance(v, int)}
    detail = (f"counters {numeric}" + (f"; missing {missing}" if missing else "")
              + (f"; per-mount dirs left: {per_mount}" if per_mount else "")
              if top else "/sys/fs/vexfs not readable")
    return ok, detail


def make_image(ctx: ScenarioContext, path: str, mib: int) -> tuple[bool, str]:
    """The spec's `dd if=/dev/zero of=PATH bs=1M count=MIB`, checked."""
    dd = ctx.run(f"dd if=/dev/zero of={path} bs=1M count={mib}", timeout=300)
    ctx.metric("dd_s", dd.duration_s)
    size = ctx.run(["stat", "-c", "%s", path]).stdout.strip()
    ok = dd.rc == 0 and size == str(mib << 20)
    return ok, f"dd exit {dd.rc}, {size or '?'} bytes (want {mib << 20}) in {dd.duration_s:.2f} s"


def losetup(ctx: ScenarioContext, dev: str, image: str) -> tuple[bool, str]:
    """The spec's `losetup DEV IMAGE`, checked: exit 0, the device is bound to
    the image and has its size."""
    result = ctx.run(["losetup", dev, image])
    ctx.note(f"Loop device setup: {result.rc}")
    name = dev.rsplit("/", 1)[-1]
    back = ctx.run(f"cat /sys/block/{name}/loop/backing_file").stdout.strip()
    sectors = ctx.run(f"cat /sys/block/{name}/size").stdout.strip()
    img_size = ctx.run(["stat", "-c", "%s", image]).stdout.strip()
    ok = (result.rc == 0 and back == image and sectors.isdigit() and img_size.isdigit()
          and int(sectors) * 512 == int(img_size))
    return ok, (f"losetup exit {result.rc}" + (f" ({err_tail(result)})" if result.rc else "")
                + f"; backing_file {back or '-'}; {sectors or '?'} sectors for a "
                  f"{img_size or '?'}-byte image")


def mkfs(ctx: ScenarioContext, dev: str) -> tuple[bool, str]:
    """The spec's `which mkfs.vexfs && mkfs.vexfs DEV`, checked."""
    which = sh(ctx, "which mkfs.vexfs")
    if which.rc != 0:
        return False, "mkfs.vexfs not available (which: exit %d)" % which.rc
    result = sh(ctx, ["mkfs.vexfs", dev], timeout=120)
    ctx.metric("mkfs_s", result.duration_s)
    return result.rc == 0, (f"{which.stdout.strip()} {dev}: exit {result.rc} in "
                            f"{result.duration_s:.2f} s"
                            + (f": {err_tail(result)}" if result.rc else ""))


def superblock_on(ctx: ScenarioContext, dev: str, tmp: str = "/tmp/vexfs_sb.bin") -> tuple[bool, str, dict]:
    """Read block 0 of DEV and decode it with the layout mirror: the VexFS
    signature (magic, version), a valid checksum and the device's geometry."""
    ctx.run(f"dd if={dev} of={tmp} bs=4096 count=1 iflag=direct status=none")
    try:
        raw = ctx.vm.read_file(tmp)
    except Exception as exc:  # the agent reports a missing file as an error
        return False, f"cannot read block 0 of {dev}: {exc}", {}
    ctx.run(["rm", "-f", tmp])
    if len(raw) < 256:
        return False, f"block 0 of {dev}: only {len(raw)} bytes", {}
    sb = L.SuperBlock.unpack(raw)
    dev_bytes = ctx.run(["blockdev", "--getsize64", dev]).stdout.strip()
    want_blocks = int(dev_bytes) // L.VEXFS_BLOCK_SIZE if dev_bytes.isdigit() else -1
    info = {"magic": hex(sb.s_magic), "version": sb.s_version, "blocks": sb.s_blocks_count,
            "checksum_ok": L.struct_checksum_ok(sb), "state": sb.s_state}
    ok = (sb.s_magic == L.VEXFS_MAGIC and sb.s_version == L.VEXFS_FORMAT_VERSION
          and info["checksum_ok"] and sb.s_blocks_count == want_blocks)
    return ok, (f"magic {info['magic']} (want {L.VEXFS_MAGIC:#x}), version {sb.s_version}, "
                f"checksum {'valid' if info['checksum_ok'] else 'INVALID'}, {sb.s_blocks_count} "
                f"blocks (device: {want_blocks})"), info


def mounted(ctx: ScenarioContext, mnt: str) -> str:
    """The fs type /proc/mounts lists at MNT, or ''."""
    for line in ctx.run("cat /proc/mounts").stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == mnt:
            return parts[2]
    return ""


def drop_caches(ctx: ScenarioContext) -> None:
    """So the next reads come from the device, not the page cache. The
    mount/umount binaries and their libraries are then read back in (they
    come over virtio-9p, seconds under TCG), so a timed mount right after
    measures the filesystem, not the loading of /usr/bin/mount."""
    ctx.run("sync; echo 3 > /proc/sys/vm/drop_caches; "
            "mount --version >/dev/null; umount --version >/dev/null")


def fsck_clean(ctx: ScenarioContext, dev: str) -> tuple[bool, str]:
    """`fsck.vexfs -n -f DEV` (check only, full check): exit 0 = clean."""
    result = sh(ctx, ["fsck.vexfs", "-n", "-f", dev], timeout=300)
    ctx.metric("fsck_s", result.duration_s)
    out = (result.stdout + result.stderr).strip().splitlines()
    return result.rc == 0, (f"fsck.vexfs -n -f exit {result.rc} in {result.duration_s:.2f} s: "
                            + " | ".join(out[-8:]))


def cleanup(ctx: ScenarioContext, dev: str, image: str) -> None:
    """The spec's cleanup (`losetup -d`, `rm`, `rmmod vexfs`), each part
    checked, with the module's counters read just before rmmod."""
    detach = ctx.run(["losetup", "-d", dev])
    name = dev.rsplit("/", 1)[-1]
    still = ctx.run(f"cat /sys/block/{name}/loop/backing_file 2>/dev/null").stdout.strip()
    ctx.check("Cleanup: loop device detached", detach.rc == 0 and not still,
              f"losetup -d exit {detach.rc}" + (f" ({err_tail(detach)})" if detach.rc else "")
              + (f"; still bound to {still}" if still else "; no backing file"))
    rm = ctx.run(["rm", image])
    gone = ctx.run(["test", "-e", image]).rc != 0
    ctx.check("Cleanup: image removed", rm.rc == 0 and gone,
              f"rm exit {rm.rc}; {image} {'gone' if gone else 'still there'}")
    ok, detail = counters_at_zero(ctx)
    ctx.check("Cleanup: module counters back to zero before rmmod", ok, detail)
    unload = ctx.run(["rmmod", "vexfs"])
    ctx.metric("unload_s", unload.duration_s)
    in_lsmod, in_proc = ctx.module_loaded()
    ctx.check("Cleanup: module unloaded", unload.rc == 0 and not in_lsmod and not in_proc,
              f"rmmod exit {unload.rc}" + (f" ({err_tail(unload)})" if unload.rc else "")
              + f"; lsmod {'lists' if in_lsmod else 'does not list'} vexfs")
