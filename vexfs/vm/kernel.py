"""The guest kernel: find Debian's current kernel, fetch and unpack it.

The guest runs the stock Debian kernel the headers package points at
(`linux-headers-amd64` depends on `linux-headers-<version>`). We download the
matching `linux-image-<version>` .deb with `apt-get download` (no install: the
host keeps its own kernel), unpack it under `.cache/kernel/<version>/root`,
run `depmod -b` so `modprobe` works in the guest, and make sure the matching
headers are installed so `make -C kernel` builds a module with the right
vermagic. Every step is skipped when its result is already there.

Any other Debian kernel apt offers can be asked for (`vexfs run --kernel
6.12`, `--kernel 6.12-rt`, `--kernel 6.1.0-57-amd64`, or the environment
variable VEXFS_KERNEL for every VM the process and its children boot):
`resolve_version()` turns a meta name into the release its
`linux-image-<name>-amd64` package depends on today.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vexfs.vm.paths import cache_dir

log = logging.getLogger(__name__)
# A few progress lines for a first run (downloads, installs): "vexfs.run"
# is shown by `vexfs run` at the default verbosity; the tools' own output
# goes to logs/bootstrap.log.
progress = logging.getLogger("vexfs.run.kernel")

HEADERS_META = "linux-headers-amd64"
KERNEL_ENV = "VEXFS_KERNEL"  # a --kernel spec for every VM of this process and its children
DEFAULT_SPECS = ("", "default", "amd64", "current")

# A full release (uname -r): 6.1.0-57-amd64, 6.12.117+deb12-amd64, 6.12.117+deb12-rt-amd64.
_FULL_RELEASE = re.compile(r"^\d+\.\d+\.\d+[A-Za-z0-9.+~-]*-amd64$")
_SPEC_CHARS = re.compile(r"^[A-Za-z0-9.+~-]*$")


class KernelError(RuntimeError):
    """The guest kernel could not be found, fetched or prepared."""


@dataclass(frozen=True)
class GuestKernel:
    version: str  # uname -r, e.g. 6.1.0-56-amd64
    root: Path  # unpacked linux-image package
    package_version: str = ""

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.version}"

    @property
    def vmlinux(self) -> Path:
        """Uncompressed ELF kernel (PVH entry): boots ~3 s faster under TCG
        than vmlinuz, whose xz decompression runs emulated."""
        return self.root.parent / f"vmlinux-{self.version}"

    @property
    def boot_image(self) -> Path:
        return self.vmlinux if self.vmlinux.exists() else self.vmlinuz

    @property
    def config(self) -> Path:
        return self.root / "boot" / f"config-{self.version}"

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib" / "modules" / self.version

    @property
    def headers_dir(self) -> Path:
        return Path("/usr/src") / f"linux-headers-{self.version}"

    def find_module(self, name: str) -> Path | None:
        """The .ko of a module by name (`9pnet_virtio`; `-` and `_` equal)."""
        wanted = name.replace("-", "_")
        for path in self.modules_dir.rglob("*.ko*"):
            base = path.name.split(".ko")[0].replace("-", "_")
            if base == wanted:
                return path
        return None

    def builtin(self, name: str) -> bool:
        listing = self.modules_dir / "modules.builtin"
        if not listing.exists():
            return False
        wanted = name.replace("-", "_")
        return any(Path(line.strip()).name.split(".ko")[0].replace("-", "_") == wanted
                   for line in listing.read_text().splitlines())


def parse_headers_depends(apt_cache_output: str) -> str:
    """The kernel version from `apt-cache depends linux-headers-amd64`.

    The meta package depends on exactly one `linux-headers-<ver>` whose
    <ver> ends in the flavour (`-amd64`); `|Depends:` alternatives and
    `<virtual>` entries are ignored.
    """
    versions = []
    for line in apt_cache_output.splitlines():
        match = re.match(r"\s*\|?Depends:\s*linux-headers-(\d+\.\d+[^\s<>]*-amd64)\s*$", line)
        if match:
            versions.append(match.group(1))
    if not versions:
        raise KernelError(f"no linux-headers-<version>-amd64 dependency in:\n{apt_cache_output}")
    # Several candidates can appear with multiple repositories; take the newest.
    return max(versions, key=_version_key)


def _version_key(version: str) -> tuple:
    # (0, number) sorts before (1, text): never compares an int with a str
    # (6.12.117+deb12-amd64 has a text part where 6.1.0-57-amd64 has a number).
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                 for p in re.split(r"[.\-+]", version))


def parse_policy_candidate(apt_cache_policy_output: str) -> str:
    """The candidate package version from `apt-cache policy <pkg>`."""
    match = re.search(r"^\s*Candidate:\s*(\S+)", apt_cache_policy_output, re.MULTILINE)
    if not match or match.group(1) == "(none)":
        raise KernelError(f"no installable candidate in:\n{apt_cache_policy_output}")
    return match.group(1)


# apt's answers change only when its package lists or dpkg's status do:
# `apt-cache` answers are kept in .cache/apt-memo/ under the command and that
# state's fingerprint (each call loads the whole package cache: ~1 s idle,
# 12 s at load 30, and every VM test process and `vexfs run` asks).
APT_STATE = (Path("/var/lib/apt/lists"), Path("/var/lib/dpkg/status"))


def _apt_fingerprint() -> str:
    parts = []
    for path in APT_STATE:
        try:
            st = path.stat()
            parts.append(f"{path}:{st.st_mtime_ns}:{st.st_size}:{st.st_ino}")
        except OSError:
            parts.append(f"{path}:-")
    lists = APT_STATE[0]
    try:  # apt-get update may rewrite a list in place: its files' times too
        parts += [f"{f.name}:{f.stat().st_mtime_ns}" for f in sorted(lists.glob("*_Packages*"))]
    except OSError:
        pass
    return "\n".join(parts)


def _apt_memo(cmd: list[str]) -> str | None:
    """apt-cache's output for `cmd`, from the memo or freshly (and kept)."""
    import hashlib

    key = hashlib.sha256(("\0".join(cmd) + "\0" + _apt_fingerprint()).encode()).hexdigest()
    memo = cache_dir() / "apt-memo" / key[:32]
    try:
        return memo.read_text()
    except OSError:
        return None


def _apt_store(cmd: list[str], out: str) -> None:
    import hashlib

    key = hashlib.sha256(("\0".join(cmd) + "\0" + _apt_fingerprint()).encode()).hexdigest()
    memo = cache_dir() / "apt-memo" / key[:32]
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}")
        tmp.write_text(out)
        os.replace(tmp, memo)
    except OSError as exc:
        log.debug("cannot keep the apt answer: %s", exc)


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    memo = cmd[0] == "apt-cache" and os.environ.get("VEXFS_APT_MEMO", "1") != "0"
    if memo:
        cached = _apt_memo(cmd)
        if cached is not None:
            return cached
    log.debug("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise KernelError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    if memo:
        _apt_store(cmd, proc.stdout)
    return proc.stdout


def discover_version() -> str:
    """The Debian kernel version the headers meta package currently points at."""
    version = parse_headers_depends(_run(["apt-cache", "depends", HEADERS_META]))
    _remember_default(version)
    return version


def parse_image_depends(apt_cache_output: str) -> str:
    """The release a linux-image meta package depends on (`apt-cache depends
    linux-image-6.12-amd64` -> 6.12.117+deb12-amd64); an `-unsigned`
    alternative names the same release."""
    versions = []
    for line in apt_cache_output.splitlines():
        match = re.match(r"\s*\|?Depends:\s*linux-image-(\d+\.\d+\.\d+[^\s<>]*?-amd64)"
                         r"(?:-unsigned)?\s*$", line)
        if match:
            versions.append(match.group(1))
    if not versions:
        raise KernelError(f"no linux-image-<version>-amd64 dependency in:\n{apt_cache_output}")
    return max(versions, key=_version_key)


def meta_package(spec: str) -> str:
    """The linux-image meta package of a short spec: `6.12` ->
    linux-image-6.12-amd64, `6.12-rt` -> linux-image-6.12-rt-amd64, `rt` ->
    linux-image-rt-amd64, `6.1`/`default` -> linux-image-amd64 (bookworm's 6.1)."""
    name = spec.removeprefix("linux-image-").removesuffix("-amd64")
    if name in DEFAULT_SPECS or name == "6.1":
        return "linux-image-amd64"
    return f"linux-image-{name}-amd64"


def resolve_version(spec: str | None) -> str:
    """The kernel release (uname -r) a --kernel spec names.

    None or "default": apt's current default kernel (the one
    linux-headers-amd64 points at). A full release (`6.1.0-57-amd64`,
    `6.12.117+deb12-rt-amd64`, optionally as `linux-image-<release>`) is
    taken as it is; anything else is a meta name resolved with apt-cache.
    """
    if spec is None or spec.strip() in DEFAULT_SPECS:
        return discover_version()
    spec = spec.strip()
    if not _SPEC_CHARS.match(spec):
        raise KernelError(f"{spec!r} is not a kernel version or package name")
    release = spec.removeprefix("linux-image-").removeprefix("linux-headers-")
    release = release.removesuffix("-unsigned")
    if _FULL_RELEASE.match(release):
        return release
    meta = meta_package(spec)
    try:
        out = _run(["apt-cache", "depends", meta])
    except KernelError as exc:
        raise KernelError(f"apt knows no kernel {spec!r} (no package {meta}); try e.g. "
                          f"6.1, 6.12, 6.12-rt or a release like 6.1.0-57-amd64") from exc
    return parse_image_depends(out)


def _default_file() -> Path:
    return kernels_base() / "default-version"


def _remember_default(version: str) -> None:
    """So an offline run picks the default kernel, not the newest cached one."""
    try:
        _default_file().parent.mkdir(parents=True, exist_ok=True)
        _default_file().write_text(version + "\n")
    except OSError as exc:
        log.debug("cannot record the default kernel: %s", exc)


def kernels_base() -> Path:
    """.cache/kernel. A checkout that has none (a fresh clone, CI's) gets a
    link to the machine's shared kernel cache (shared_cache_dir()/kernel), so
    a kernel is downloaded, unpacked and depmod'ed once per machine, not once
    per clone; an existing .cache/kernel (a directory, or a worktree's link)
    and a VEXFS_CACHE location are used as they are."""
    from vexfs.vm.paths import shared_cache_dir

    base = cache_dir() / "kernel"
    if base.exists() or base.is_symlink() or os.environ.get("VEXFS_CACHE"):
        return base
    shared = shared_cache_dir() / "kernel"
    try:
        shared.mkdir(parents=True, exist_ok=True)
        base.parent.mkdir(parents=True, exist_ok=True)
        base.symlink_to(shared, target_is_directory=True)
        log.info("kernel cache: %s -> %s (shared by this machine's checkouts)", base, shared)
    except FileExistsError:
        pass  # another process linked it meanwhile
    except OSError as exc:
        log.debug("no shared kernel cache (%s): using %s", exc, base)
    return base


def kernel_dir(version: str) -> Path:
    # resolved: a worktree's .cache/kernel may be a symlink to a shared copy,
    # and the guest's initramfs cannot follow a host symlink when it binds
    # the modules directory
    return kernels_base().resolve() / version


def _image_debs(base: Path, pkg: str) -> list[Path]:
    return sorted(list(base.glob(f"{pkg}_*.deb")) + list(base.glob(f"{pkg}-unsigned_*.deb")))


def fetch(version: str) -> GuestKernel:
    """Download and unpack linux-image-<version> into the cache (once)."""
    # Resolved: the guest's init bind-mounts these paths before its
    # switch_root, where an absolute symlink (a worktree's shared cache)
    # would point outside the new root.
    base = kernel_dir(version).resolve()
    root = base / "root"
    kernel = GuestKernel(version=version, root=root)
    stamp = base / "unpacked.ok"
    if not stamp.exists():
        base.mkdir(parents=True, exist_ok=True)
        pkg = f"linux-image-{version}"
        debs = _image_debs(base, pkg)
        if not debs:
            progress.info("downloading %s (apt-get download)", pkg)
            try:
                _run(["apt-get", "download", pkg], cwd=base)
            except KernelError:
                # Older point releases may only be in the archive unsigned.
                progress.info("downloading %s-unsigned", pkg)
                _run(["apt-get", "download", f"{pkg}-unsigned"], cwd=base)
            debs = _image_debs(base, pkg)
            if not debs:
                raise KernelError(f"apt-get download {pkg} produced no .deb in {base}")
        tmp = base / "root.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        progress.info("unpacking %s", debs[-1].name)
        _run(["dpkg-deb", "-x", str(debs[-1]), str(tmp)])
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
        (base / "package").write_text(debs[-1].name.split("_")[1] + "\n")
        stamp.write_text(debs[-1].name + "\n")
    if not kernel.vmlinuz.exists():
        raise KernelError(f"{kernel.vmlinuz} missing after unpacking; remove {base} and retry")
    if not (kernel.modules_dir / "modules.dep").exists():
        # modules.dep makes `modprobe dm-flakey` work inside the guest.
        _run(["depmod", "-b", str(root), version])
    if not kernel.vmlinux.exists():
        try:
            extract_vmlinux(kernel.vmlinuz, kernel.vmlinux)
        except KernelError as exc:
            log.warning("%s; booting the compressed vmlinuz", exc)
    build_link = kernel.modules_dir / "build"
    if not build_link.is_symlink() and not build_link.exists():
        # So `make -C /lib/modules/$(uname -r)/build` works inside the guest.
        build_link.symlink_to(kernel.headers_dir)
    pkgfile = base / "package"
    return GuestKernel(version=version, root=root,
                       package_version=pkgfile.read_text().strip() if pkgfile.exists() else "")


_ELF_MAGIC = b"\x7fELF"
_COMPRESSED = [  # (magic, decompressor) as scripts/extract-vmlinux tries them
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b\x08", "gzip"),
]


def extract_vmlinux(vmlinuz: Path, out: Path) -> None:
    """Write the ELF vmlinux embedded (compressed) in a bzImage.

    Like scripts/extract-vmlinux: find the compressed payload by its magic,
    decompress it, keep the result only if it is an ELF with a PVH note
    (Xen ELF note type 18, XEN_ELFNOTE_PHYS32_ENTRY), which QEMU needs to
    boot it directly.
    """
    import gzip
    import lzma

    data = vmlinuz.read_bytes()
    for magic, kind in _COMPRESSED:
        start = data.find(magic)
        while start != -1:
            try:
                if kind == "xz":
                    elf = lzma.LZMADecompressor().decompress(data[start:])
                elif kind == "gzip":
                    elf = gzip.GzipFile(fileobj=__import__("io").BytesIO(data[start:])).read()
                else:  # zstd (Debian's 6.12 kernels): no stdlib decompressor
                    elf = _unzstd(data[start:])
                    if not elf:
                        break  # no zstd binary: fall back to vmlinuz
            except (lzma.LZMAError, OSError, EOFError):
                elf = b""
            if elf.startswith(_ELF_MAGIC) and _has_pvh_note(elf):
                tmp = out.with_suffix(".tmp")
                tmp.write_bytes(elf)
                tmp.rename(out)
                return
            start = data.find(magic, start + 1)
    raise KernelError(f"no PVH-bootable ELF vmlinux found inside {vmlinuz}")


def _unzstd(payload: bytes) -> bytes:
    """Decompress a zstd frame with the zstd tool (trailing bytes after the
    frame are what the bzImage appends; zstd stops at the frame's end)."""
    if shutil.which("zstd") is None:
        return b""
    proc = subprocess.run(["zstd", "-d", "-c", "-q"], input=payload, capture_output=True)
    # zstd exits non-zero on the trailing garbage but has written the frame.
    return proc.stdout


def _has_pvh_note(elf: bytes) -> bool:
    """True if the ELF has a "Xen" note of type 18 (PVH 32-bit entry)."""
    import struct

    if elf[4] != 2:  # ELFCLASS64 only
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == 18:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def _bootstrap_log() -> Path:
    from vexfs.vm.paths import logs_dir

    return logs_dir() / "bootstrap.log"


def _logged_run(cmd: list[str]) -> None:
    """Run an apt command with its output appended to logs/bootstrap.log."""
    path = _bootstrap_log()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with open(path, "a", encoding="utf-8", errors="replace") as logf:
        logf.write(f"\n$ {' '.join(cmd)}\n")
        logf.flush()
        proc = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join(path.read_text(errors="replace").splitlines()[-20:])
        raise KernelError(f"{' '.join(cmd)} failed ({proc.returncode}); end of {path}:\n{tail}")


def headers_installed(version: str) -> bool:
    return (Path("/usr/src") / f"linux-headers-{version}" / "Makefile").exists()


def ensure_headers(version: str) -> Path:
    """Install linux-headers-<version> with apt when it is missing."""
    path = Path("/usr/src") / f"linux-headers-{version}"
    if not headers_installed(version):
        progress.info("installing linux-headers-%s (apt-get install; log: %s)", version,
                      _bootstrap_log())
        _logged_run(["apt-get", "-o", "DPkg::Lock::Timeout=900", "install", "-y", "-qq",
                     "--no-install-recommends", f"linux-headers-{version}"])
        if not headers_installed(version):
            raise KernelError(f"linux-headers-{version} installed but {path} has no Makefile")
    return path


def cached_versions() -> list[str]:
    base = kernels_base()
    if not base.is_dir():
        return []
    return sorted((p.name for p in base.iterdir() if (p / "unpacked.ok").exists()),
                  key=_version_key)


def ensure_kernel(version: str | None = None, headers: bool = True) -> GuestKernel:
    """The guest kernel, fetched and prepared; headers installed if asked.

    `version` is a --kernel spec (resolve_version()); None means
    $VEXFS_KERNEL, or else apt's current default kernel; if apt cannot
    answer (offline), the default recorded last time, or the newest cached.
    """
    if version is None:
        version = os.environ.get(KERNEL_ENV) or None
    if version is not None and version.strip() not in DEFAULT_SPECS:
        version = resolve_version(version)
    else:
        try:
            version = discover_version()
        except (KernelError, FileNotFoundError) as exc:
            cached = cached_versions()
            if not cached:
                raise
            remembered = _default_file().read_text().strip() if _default_file().exists() else ""
            version = remembered if remembered in cached else cached[-1]
            log.warning("apt lookup failed (%s); using cached kernel %s", exc, version)
    from vexfs.vm.paths import file_lock

    import fcntl

    # Parallel test workers fetch once: a lock per checkout, and one beside
    # the (possibly machine-wide) kernel cache for other checkouts.
    shared_lock = kernels_base().resolve() / f".{version}.lock"
    shared_lock.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(f"kernel {version}"), open(shared_lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        kernel = fetch(version)
        if headers:
            ensure_headers(version)
    return kernel
