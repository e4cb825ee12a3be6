"""Host tests for the initramfs builder: cpio format and module ordering."""

from __future__ import annotations

import subprocess
from pathlib import Path

from vexfs.vm.initramfs import CpioWriter, module_closure, parse_modules_dep

MODULES_DEP = """\
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/drivers/virtio/virtio.ko kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/fs/overlayfs/overlay.ko:
"""


def test_module_closure_orders_dependencies_first() -> None:
    deps = parse_modules_dep(MODULES_DEP)
    order = module_closure(deps, ["9pnet_virtio", "9p", "overlay", "not_a_module"])
    names = [Path(p).name for p in order]
    assert len(names) == len(set(names)), "no module twice"
    for mod, needs in (("9p.ko", ["9pnet.ko", "fscache.ko", "netfs.ko"]),
                       ("fscache.ko", ["netfs.ko"]),
                       ("9pnet_virtio.ko", ["virtio.ko", "virtio_ring.ko", "9pnet.ko"])):
        for dep in needs:
            assert names.index(dep) < names.index(mod), f"{dep} before {mod}"
    assert "overlay.ko" in names
    assert set(names) == {"9p.ko", "9pnet.ko", "fscache.ko", "netfs.ko", "9pnet_virtio.ko",
                          "virtio.ko", "virtio_ring.ko", "overlay.ko"}


def test_module_closure_accepts_dash_names() -> None:
    deps = parse_modules_dep("kernel/drivers/md/dm-flakey.ko: kernel/drivers/md/dm-mod.ko\n"
                             "kernel/drivers/md/dm-mod.ko:\n")
    assert [Path(p).name for p in module_closure(deps, ["dm_flakey"])] == ["dm-mod.ko", "dm-flakey.ko"]


def test_cpio_archive_is_readable_by_cpio(tmp_path: Path) -> None:
    w = CpioWriter()
    w.mkdir("dev")
    w.file("bin/busybox", b"\x7fELF" + b"x" * 1001, 0o755)
    w.symlink("bin/sh", "busybox")
    w.file("init", b"#!/bin/sh\necho hi\n", 0o755)
    w.file("modules/order", b"a.ko\n")
    w.file("init", b"duplicate ignored")
    data = w.finish()
    assert len(data) % 512 == 0
    archive = tmp_path / "x.cpio"
    archive.write_bytes(data)
    listing = subprocess.run(["cpio", "-it", "--quiet"], stdin=open(archive, "rb"),
                             capture_output=True, text=True, check=True).stdout.split()
    assert listing == ["dev", "bin", "bin/busybox", "bin/sh", "init", "modules", "modules/order"]
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], stdin=open(archive, "rb"), cwd=out, check=True)
    assert (out / "init").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (out / "init").stat().st_mode & 0o777 == 0o755
    assert (out / "bin" / "sh").is_symlink() and (out / "bin" / "sh").readlink() == Path("busybox")
    assert (out / "bin" / "busybox").stat().st_size == 1005
