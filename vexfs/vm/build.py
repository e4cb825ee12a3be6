"""Build kernel modules against the guest kernel's headers and check them.

`build_vexfs()` runs `make -C kernel` (which leaves kernel/build/vexfs.ko),
`check_module()` reads a .ko's modinfo and refuses one whose vermagic does
not match the guest kernel, so a module built for another kernel fails
with a clear message before any VM boots.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vexfs.vm.kernel import GuestKernel
from vexfs.vm.paths import REPO_ROOT, cache_dir, file_lock, shared_cache_dir

log = logging.getLogger(__name__)

KERNEL_SRC = REPO_ROOT / "kernel"
VEXFS_KO = KERNEL_SRC / "build" / "vexfs.ko"
CRASHTEST_SRC = KERNEL_SRC / "test" / "crashtest"


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModuleInfo:
    path: Path
    name: str
    vermagic: str
    version: str
    srcversion: str
    license: str
    description: str

    @property
    def kernel_release(self) -> str:
        return self.vermagic.split()[0] if self.vermagic else ""


def parse_modinfo(text: str, path: Path) -> ModuleInfo:
    """`modinfo` output (key: value lines; repeated keys keep the first)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return ModuleInfo(path=path, name=fields.get("name", path.name.split(".ko")[0]),
                      vermagic=fields.get("vermagic", ""), version=fields.get("version", ""),
                      srcversion=fields.get("srcversion", ""), license=fields.get("license", ""),
                      description=fields.get("description", ""))


def modinfo(path: Path) -> ModuleInfo:
    proc = subprocess.run(["modinfo", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"modinfo {path} failed: {proc.stderr.strip()}")
    return parse_modinfo(proc.stdout, path)


def check_module(path: Path, kernel: GuestKernel) -> ModuleInfo:
    """modinfo of `path`, or BuildError if it was built for another kernel."""
    path = Path(path)
    if not path.is_file():
        raise BuildError(f"module {path} does not exist")
    info = modinfo(path)
    if info.kernel_release != kernel.version:
        raise BuildError(f"{path} was built for kernel {info.kernel_release or '?'} "
                         f"(vermagic '{info.vermagic}'), the guest runs {kernel.version}; "
                         f"rebuild with KDIR={kernel.headers_dir}")
    return info


def _make(src: Path, kernel: GuestKernel, target: str = "") -> None:
    cmd = ["make", "-C", str(src), f"KVER={kernel.version}", f"KDIR={kernel.headers_dir}"]
    if target:
        cmd.append(target)
    log.info("building: %s", " ".join(cmd))
    with file_lock(f"build {src.resolve()}"):  # one make per directory at a time
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip().splitlines()
        raise BuildError(f"{' '.join(cmd)} failed ({proc.returncode}):\n" + "\n".join(out[-40:]))


def module_path(kernel: GuestKernel) -> Path:
    """Where build_vexfs() leaves the module for `kernel`: kernel/build/vexfs.ko
    for the default kernel (in-tree build, as ever), kernel/build/<release>/
    vexfs.ko for any other (built in a private copy of the sources, so builds
    for several kernels never share object files)."""
    return VEXFS_KO if _is_default(kernel) else KERNEL_SRC / "build" / kernel.version / "vexfs.ko"


def _is_default(kernel: GuestKernel) -> bool:
    from vexfs.vm.kernel import KernelError, discover_version

    try:
        return kernel.version == discover_version()
    except (KernelError, FileNotFoundError):
        return kernel.version.startswith("6.1.") and "-rt-" not in kernel.version


def _copy_sources(dest: Path) -> None:
    """kernel/ minus build products and the test-only modules, refreshed
    file by file (unchanged files keep their mtime, so make stays incremental)."""
    skip = shutil.ignore_patterns("*.o", "*.ko", "*.mod", "*.mod.c", ".*.cmd", "*.symvers",
                                  "modules.order", "build", "test", ".tmp*")
    shutil.copytree(KERNEL_SRC, dest, ignore=skip, dirs_exist_ok=True,
                    copy_function=_copy_if_changed)


def _copy_if_changed(src: str, dst: str) -> None:
    s, d = Path(src), Path(dst)
    if d.exists() and d.stat().st_size == s.stat().st_size and d.read_bytes() == s.read_bytes():
        return
    shutil.copy2(s, d)


# -- the build cache ------------------------------------------------------
# A module is a function of its sources, the kernel release and the headers
# package: build_key() hashes exactly those. The module built for a key is
# kept in shared_cache_dir()/modules/<key>/ (shared by every checkout on the
# machine, fresh CI clones too) and a stamp next to the target records the
# key it was built from. A build whose key is stamped or cached runs no make
# at all (make's own no-op still costs seconds and rewrites kbuild's files).
SOURCE_SUFFIXES = (".c", ".h", ".S")
SOURCE_NAMES = ("Kbuild", "Makefile", "VERSION")
KEY_ENV = "VEXFS_BUILD_CACHE"  # "0": always run make, never read the cache


def _source_files(src: Path, skip_dirs: tuple[str, ...]) -> list[Path]:
    files = []
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if rel.parts[0] in skip_dirs or not path.is_file():
            continue
        if path.suffix in SOURCE_SUFFIXES or path.name in SOURCE_NAMES:
            if not path.name.endswith(".mod.c"):  # generated by modpost
                files.append(path)
    return sorted(files)


def build_key(src: Path, kernel: GuestKernel, skip_dirs: tuple[str, ...] = ()) -> str:
    """sha256 of every source file (path and bytes), the kernel release, its
    package version and the headers' config."""
    h = hashlib.sha256()
    h.update(f"{kernel.version}\0{kernel.package_version}\0{_compiler()}\0".encode())
    config = Path(kernel.headers_dir) / ".config"
    if config.is_file():
        h.update(hashlib.sha256(config.read_bytes()).digest())
    for path in _source_files(src, skip_dirs):
        h.update(str(path.relative_to(src)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:32]


@functools.lru_cache(maxsize=1)
def _compiler() -> str:
    try:
        return subprocess.run(["gcc", "--version"], capture_output=True, text=True,
                              timeout=30).stdout.split("\n", 1)[0]
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _stamp(target: Path) -> Path:
    return target.with_name(f".{target.name}.key")


def _cache_enabled() -> bool:
    return os.environ.get(KEY_ENV, "1") != "0"


def _cached_build(key: str, target: Path, name: str) -> bool:
    """True if `target` is (now) the module built for `key`: already
    stamped, or copied from the shared cache."""
    if not _cache_enabled():
        return False
    stamp = _stamp(target)
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        log.info("%s is up to date (build key %s): no make", target, key[:12])
        return True
    cached = shared_cache_dir() / "modules" / key / name
    if cached.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        shutil.copyfile(cached, tmp)
        os.replace(tmp, target)
        stamp.write_text(key + "\n")
        log.info("%s: from the build cache (%s)", target, cached.parent)
        return True
    return False


def _store_build(key: str, target: Path, name: str) -> None:
    _stamp(target).write_text(key + "\n")
    if not _cache_enabled():
        return
    dest = shared_cache_dir() / "modules" / key
    try:
        dest.mkdir(parents=True, exist_ok=True)
        tmp = dest / f".{name}.tmp{os.getpid()}"
        shutil.copyfile(target, tmp)
        os.replace(tmp, dest / name)
    except OSError as exc:  # a read-only or full cache only costs the next build
        log.warning("could not cache %s in %s: %s", target, dest, exc)


def build_vexfs(kernel: GuestKernel) -> ModuleInfo:
    """Build vexfs.ko for `kernel`; returns the checked module (module_path()).
    Runs no make when the build cache has this key (see build_key())."""
    target = module_path(kernel)
    with file_lock(f"module {target.resolve()}"):
        key = build_key(KERNEL_SRC, kernel, skip_dirs=("build", "test"))
        if _cached_build(key, target, "vexfs.ko"):
            return check_module(target, kernel)
        _stamp(target).unlink(missing_ok=True)
        if target == VEXFS_KO:
            _make(KERNEL_SRC, kernel)
        else:
            src = cache_dir() / "build" / kernel.version / "kernel"
            _copy_sources(src)
            _make(src, kernel)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / "build" / "vexfs.ko", target)
        info = check_module(target, kernel)
        _store_build(key, target, "vexfs.ko")
        return info


def build_crashtest(kernel: GuestKernel) -> ModuleInfo:
    """The test-only crash module (never part of `vexfs run`)."""
    target = CRASHTEST_SRC / "vexfs_crashtest.ko"
    with file_lock(f"module {target.resolve()}"):
        key = build_key(CRASHTEST_SRC, kernel)
        if not _cached_build(key, target, target.name):
            _stamp(target).unlink(missing_ok=True)
            _make(CRASHTEST_SRC, kernel, "modules")
            info = check_module(target, kernel)
            _store_build(key, target, target.name)
            return info
        return check_module(target, kernel)


def main() -> int:
    """`python -m vexfs.vm.build [--crashtest]`: build against the guest
    kernel's headers (installing kernel and headers first) and check vermagic."""
    import argparse
    import sys

    from vexfs.vm.kernel import KernelError, ensure_kernel

    parser = argparse.ArgumentParser(prog="python -m vexfs.vm.build", description=main.__doc__)
    parser.add_argument("--crashtest", action="store_true",
                        help="also build the TEST-ONLY crash module")
    parser.add_argument("--kernel", default=None,
                        help="kernel to build for: 6.1, 6.12, 6.12-rt or a release "
                             "(default: $VEXFS_KERNEL, else apt's current kernel)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        kernel = ensure_kernel(args.kernel)
        infos = [build_vexfs(kernel)] + ([build_crashtest(kernel)] if args.crashtest else [])
    except (KernelError, BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for info in infos:
        print(f"{info.path}: {info.name} {info.version} (srcversion {info.srcversion}), "
              f"vermagic {info.vermagic}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
