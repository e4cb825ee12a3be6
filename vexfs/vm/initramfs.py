"""The guest's initramfs: static busybox, a few modules, and our init.

The guest's real root is the host's own root filesystem shared read-only
over virtio-9p (virtme-ng's idea): no image to build or keep in sync, and
`/work/main/.venv` with every tool is simply there. The initramfs only has
to bring up virtio + 9p, mount that root, and hand over; see guest/init.sh.

The archive is written in Python (cpio "newc" format) and cached under
`.cache/initramfs/` keyed by a hash of everything that goes into it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import threading
from pathlib import Path

from vexfs.vm import bytecode
from vexfs.vm.kernel import GuestKernel
from vexfs.vm.paths import cache_dir

log = logging.getLogger(__name__)

BUSYBOX = Path("/bin/busybox")
GUEST_DIR = Path(__file__).resolve().parent / "guest"

# Modules the initramfs loads itself (the rest come from the shared root via
# modprobe). The dependency closure is taken from modules.dep. jbd2 (and the
# crc32c its journal checksums use) is loaded at boot as on a distribution
# with an ext4 root: vexfs.ko depends on jbd2, and the spec loads it with a
# plain `insmod /tmp/vexfs.ko`.
BOOT_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_console",
                "crc32c_generic", "jbd2"]


class CpioWriter:
    """A minimal cpio "newc" archive writer (what the kernel unpacks)."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._ino = 1
        self._seen: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        name = name.lstrip("/")
        if name in self._seen:
            return
        self._seen.add(name)
        namez = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08X}" for v in (
            self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(namez), 0))
        self._ino += 1
        self._buf.write(header.encode() + namez)
        self._pad()
        self._buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self._buf.write(b"\0" * (-self._buf.tell() % 4))

    def mkdir(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self._entry("/".join(parts[:i]), stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        parent = os.path.dirname(name.strip("/"))
        if parent:
            self.mkdir(parent)
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        data = self._buf.getvalue()
        return data + b"\0" * (-len(data) % 512)


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """modules.dep -> {relative path: [dependency paths]}."""
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        mod, rest = line.split(":", 1)
        deps[mod.strip()] = rest.split()
    return deps


def module_closure(deps: dict[str, list[str]], names: list[str]) -> list[str]:
    """Paths of `names` and everything they need, dependencies first."""
    by_name = {Path(p).name.split(".ko")[0].replace("-", "_"): p for p in deps}
    order: list[str] = []

    def visit(path: str, stack: tuple[str, ...]) -> None:
        if path in order or path in stack:
            return
        for dep in deps.get(path, []):
            visit(dep, stack + (path,))
        order.append(path)

    for name in names:
        path = by_name.get(name.replace("-", "_"))
        if path is None:
            continue  # built into vmlinux (or absent); the init tolerates it
        visit(path, ())
    return order


def decompress_module(path: Path) -> tuple[bytes, str]:
    """A module's ELF bytes and plain .ko name: busybox insmod loads only
    uncompressed modules, and Debian's 6.12 kernels ship them as .ko.xz."""
    import gzip
    import lzma
    import subprocess

    data, name = path.read_bytes(), path.name
    if name.endswith(".ko.xz"):
        return lzma.decompress(data), name[:-3]
    if name.endswith(".ko.gz"):
        return gzip.decompress(data), name[:-3]
    if name.endswith(".ko.zst"):
        proc = subprocess.run(["zstd", "-d", "-c", "-q"], input=data, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"cannot decompress {path} (zstd: {proc.stderr.decode().strip()})")
        return proc.stdout, name[:-4]
    return data, name


def build(kernel: GuestKernel) -> Path:
    """The initramfs for `kernel`, built once and cached. Every boot path
    comes here first, so it is also where the checkout's bytecode is brought
    up to date for the guest (vexfs.vm.bytecode)."""
    bytecode.ensure_compiled()
    deps = parse_modules_dep((kernel.modules_dir / "modules.dep").read_text())
    mods = module_closure(deps, BOOT_MODULES)
    init = (GUEST_DIR / "init.sh").read_bytes()
    busybox = BUSYBOX.read_bytes()
    digest = hashlib.sha256()
    for part in (init, busybox, kernel.version.encode(), "\n".join(mods).encode()):
        digest.update(hashlib.sha256(part).digest())
    out = cache_dir() / "initramfs" / f"{kernel.version}-{digest.hexdigest()[:16]}.cpio"
    if out.exists():
        return out
    log.info("building initramfs %s", out)
    cpio = CpioWriter()
    for d in ("dev", "proc", "sys", "newroot", "tmp", "bin", "sbin", "etc"):
        cpio.mkdir(d)
    cpio.file("bin/busybox", busybox, 0o755)
    cpio.symlink("bin/sh", "busybox")
    cpio.file("init", init, 0o755)
    listing = []
    for rel in mods:
        data, name = decompress_module(kernel.modules_dir / rel)
        cpio.file(f"modules/{name}", data)
        listing.append(name)
    cpio.file("modules/order", ("\n".join(listing) + "\n").encode())
    cpio.file("etc/kernel-version", (kernel.version + "\n").encode())
    out.parent.mkdir(parents=True, exist_ok=True)
    # Scenario VMs boot in parallel: each builder writes its own temporary
    # file; the renames are atomic and the contents identical.
    tmp = out.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(cpio.finish())
    tmp.rename(out)
    return out
