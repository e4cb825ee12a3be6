"""Resolve the frames of a kernel crash trace to file:line (the spec's
"analyze panic trace").

A trace names code as `func+0xOFF/0xSIZE [module]`. Like the kernel's
scripts/faddr2line, the frame is found in the object file's own symbol
table (`objdump -t`: the function's section, its offset in that section
and its size), and `addr2line -f -i` reads the line from the DWARF:

* module frames (`[vexfs]`, `[vexfs_crashtest]`): the .ko the run loaded
  (built with debug info by kbuild); a relocatable object, so addresses
  are section-relative (`addr2line -j SECTION`);
* kernel frames (no module): the guest kernel's vmlinux with debug info
  from `linux-image-<ver>-amd64-dbg` (`kernel_debug_vmlinux()`, installed on
  demand by `vexfs run --symbols`); absolute addresses. Without it kernel
  frames stay as printed and the note says how to get them.

A frame whose function size in the object cannot be the trace's /0xSIZE
(kallsyms counts to the next symbol: the ELF size plus padding) is not
resolved: the object is not the one that crashed, and any line it gave
would be wrong. Return addresses (every frame but the RIP) are looked
up at offset-1 so the line is the call, not the instruction after it.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from vexfs.vm.paths import REPO_ROOT, cache_dir

log = logging.getLogger(__name__)

FRAME_RE = re.compile(
    r"(?P<rip>RIP: 0010:)?(?P<func>[A-Za-z_][\w.$]*)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)"
    r"(?: \[(?P<mod>[\w-]+)\])?")
_OBJDUMP_SYM_RE = re.compile(
    r"^(?P<value>[0-9a-f]+) (?P<flags>.{7}) (?P<section>\S+)\t(?P<size>[0-9a-f]+) +(?P<name>\S+)$")
_KERNEL_SRC_PREFIX_RE = re.compile(r"^.*?/linux-[^/]*\d[^/]*/|^\./")
NOTE_PREFIX = "symbols:"


@dataclass(frozen=True)
class Symbol:
    name: str
    section: str
    value: int
    size: int
    extent: int = 0  # bytes to the next function in its section (0: last one)

    def matches(self, printed_size: int) -> bool:
        """Could the kernel print /0x`printed_size` for this function? kallsyms
        sizes run to the next symbol, so they include alignment padding."""
        if printed_size < self.size:
            return False
        return printed_size <= (self.extent or (self.size + 63) // 64 * 64 or 64)


@dataclass
class ObjectSymbols:
    path: Path
    relocatable: bool
    symbols: dict[str, Symbol] = field(default_factory=dict)


class SymbolizeError(RuntimeError):
    pass


@lru_cache(maxsize=16)
def _load(path: Path, mtime: float) -> ObjectSymbols:
    """The function symbols of an ELF object (cached per path and mtime)."""
    out = subprocess.run(["objdump", "-t", "-f", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SymbolizeError(f"objdump -t {path}: {out.stderr.strip()}")
    relocatable = "HAS_RELOC" in out.stdout.split("SYMBOL TABLE", 1)[0] and \
        "EXEC_P" not in out.stdout.split("SYMBOL TABLE", 1)[0]
    syms = ObjectSymbols(path=path, relocatable=relocatable)
    for line in out.stdout.splitlines():
        m = _OBJDUMP_SYM_RE.match(line)
        if m and "F" in m.group("flags"):
            sym = Symbol(m.group("name"), m.group("section"), int(m.group("value"), 16),
                         int(m.group("size"), 16))
            syms.symbols.setdefault(sym.name, sym)
    by_section: dict[str, list[Symbol]] = {}
    for sym in syms.symbols.values():
        by_section.setdefault(sym.section, []).append(sym)
    for members in by_section.values():
        members.sort(key=lambda s: s.value)
        for cur, nxt in zip(members, members[1:], strict=False):
            if nxt.value > cur.value:
                syms.symbols[cur.name] = Symbol(cur.name, cur.section, cur.value, cur.size,
                                                nxt.value - cur.value)
    return syms


def object_symbols(path: Path) -> ObjectSymbols:
    return _load(path.resolve(), path.stat().st_mtime)


def short_path(path: str) -> str:
    """A source path as a reader wants it: relative to the checkout for our
    code, relative to the kernel tree for the kernel's."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except (ValueError, OSError):
        pass
    if "/kernel/" in path and not path.startswith("/usr/src"):
        # a module built in another checkout of this repo
        return "kernel/" + path.rsplit("/kernel/", 1)[1]
    return _KERNEL_SRC_PREFIX_RE.sub("", path)


def _addr2line(path: Path, section: str | None, addrs: list[int]) -> list[str]:
    """file:line (innermost first, ' inlined from ' joined) per address."""
    argv = ["addr2line", "-e", str(path), "-a", "-f", "-i"]
    if section:
        argv += ["-j", section]
    out = subprocess.run(argv, input="".join(f"0x{a:x}\n" for a in addrs),
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SymbolizeError(f"addr2line {path}: {out.stderr.strip()}")
    # -a: each address's answer starts with the address on a line of its
    # own, then (function, file:line) pairs, innermost inline first
    answers: list[list[str]] = []
    for line in out.stdout.splitlines():
        if re.fullmatch(r"0x[0-9a-f]+", line):
            answers.append([])
        elif answers:
            answers[-1].append(line)
    results = []
    for answer in answers:
        chain = []
        for where in answer[1::2]:
            where = where.split(" (discriminator", 1)[0]
            file, _, line = where.rpartition(":")
            if file and file != "??" and line not in ("", "?", "0"):
                chain.append(f"{short_path(file)}:{line}")
        results.append(" inlined from ".join(chain))
    return (results + [""] * len(addrs))[:len(addrs)]


@dataclass
class Frame:
    line_index: int
    func: str
    offset: int
    size: int
    module: str | None
    is_rip: bool


def parse_frames(trace: str) -> list[Frame]:
    frames = []
    for i, line in enumerate(trace.splitlines()):
        m = FRAME_RE.search(line)
        if m:
            frames.append(Frame(i, m.group("func"), int(m.group("off"), 16),
                                int(m.group("size"), 16), m.group("mod"), bool(m.group("rip"))))
    return frames


class Symbolizer:
    """Resolves traces with the modules (name -> .ko) and optional vmlinux."""

    def __init__(self, modules: dict[str, Path] | None = None, vmlinux: Path | None = None,
                 kernel_version: str = "") -> None:
        self.modules = {k.replace("-", "_"): v for k, v in (modules or {}).items() if v.exists()}
        self.vmlinux = vmlinux if vmlinux is not None and vmlinux.exists() else None
        self.kernel_version = kernel_version
        self.available = shutil.which("addr2line") is not None and \
            shutil.which("objdump") is not None

    def _object(self, frame: Frame) -> Path | None:
        if frame.module is None:
            return self.vmlinux
        return self.modules.get(frame.module.replace("-", "_"))

    def resolve(self, trace: str) -> tuple[dict[int, str], list[str]]:
        """{trace line index: "file:line" or "(why not)"}, and notes."""
        notes: list[str] = []
        if not self.available:
            return {}, ["addr2line/objdump not installed (binutils): frames not resolved"]
        frames = parse_frames(trace)
        found: dict[int, str] = {}
        queries: dict[tuple[Path, str | None], list[tuple[Frame, int]]] = {}
        mismatched: set[str] = set()
        missing: set[str] = set()
        for frame in frames:
            obj = self._object(frame)
            if obj is None:
                missing.add(frame.module or "vmlinux")
                continue
            try:
                syms = object_symbols(obj)
            except (SymbolizeError, OSError) as exc:
                notes.append(str(exc))
                continue
            sym = syms.symbols.get(frame.func)
            if sym is None:
                continue
            if not sym.matches(frame.size):
                found[frame.line_index] = (f"not resolved: {frame.func} is 0x{sym.size:x} bytes "
                                           f"in {obj.name}, 0x{frame.size:x} in the trace")
                mismatched.add(obj.name)
                continue
            offset = frame.offset if frame.is_rip or frame.offset == 0 else frame.offset - 1
            key = (obj, sym.section if syms.relocatable else None)
            queries.setdefault(key, []).append((frame, sym.value + offset))
        for (obj, section), items in queries.items():
            try:
                where = _addr2line(obj, section, [addr for _, addr in items])
            except SymbolizeError as exc:
                notes.append(str(exc))
                continue
            for (frame, _), text in zip(items, where, strict=True):
                if text:
                    found[frame.line_index] = text
        used = [f"{name}: {short_path(str(p))}" for name, p in sorted(self.modules.items())]
        if self.vmlinux is not None:
            used.append(f"kernel: {self.vmlinux}")
        if used:
            notes.append("resolved with " + ", ".join(used))
        if mismatched:
            notes.append(f"{', '.join(sorted(mismatched))} is not the object that crashed "
                         "(function sizes differ): those frames are left unresolved")
        if "vmlinux" in missing:
            ver = self.kernel_version or "<version>"
            notes.append(f"kernel frames not resolved: no debug vmlinux (install "
                         f"linux-image-{ver}-dbg: `vexfs run --symbols`)")
        other = sorted(m for m in missing if m != "vmlinux")
        if other:
            notes.append(f"no debug object for module(s) {', '.join(other)}")
        return found, notes

    def annotate(self, trace: str) -> str:
        """The trace with " (file:line)" after each resolved frame and a
        `symbols:` note line at the end. Idempotent."""
        if any(line.startswith(NOTE_PREFIX) for line in trace.splitlines()):
            return trace
        found, notes = self.resolve(trace)
        out = []
        for i, line in enumerate(trace.splitlines()):
            if i in found:
                line = f"{line.rstrip()}  ({found[i]})"
            out.append(line)
        if notes:
            out.append(f"{NOTE_PREFIX} " + "; ".join(notes))
        return "\n".join(out)


# --- the guest kernel's debug vmlinux (linux-image-<ver>-dbg) -------------------

def debug_vmlinux_path(kernel_version: str) -> Path:
    return cache_dir() / "kernel-dbg" / kernel_version / "vmlinux"


def kernel_debug_vmlinux(kernel_version: str) -> Path | None:
    """The debug vmlinux for the guest kernel if installed: the system's
    (/usr/lib/debug/boot, the -dbg package installed with apt) or ours."""
    for path in (Path("/usr/lib/debug/boot") / f"vmlinux-{kernel_version}",
                 debug_vmlinux_path(kernel_version)):
        if path.is_file():
            return path
    return None


def install_debug_vmlinux(kernel_version: str) -> Path:
    """`apt-get download linux-image-<ver>-dbg` and extract only vmlinux into
    .cache/kernel-dbg/<ver>/ (the package is ~850 MB, its vmlinux ~1 GB)."""
    found = kernel_debug_vmlinux(kernel_version)
    if found is not None:
        return found
    package = f"linux-image-{kernel_version}-dbg"
    dest = debug_vmlinux_path(kernel_version)
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s (about 850 MB) for kernel frame symbols", package)
    dl = subprocess.run(["apt-get", "download", package], cwd=dest.parent,
                        capture_output=True, text=True)
    if dl.returncode != 0:
        raise SymbolizeError(f"apt-get download {package} failed: {dl.stderr.strip()[-500:]}")
    debs = sorted(dest.parent.glob(f"{package}_*.deb"))
    if not debs:
        raise SymbolizeError(f"apt-get download {package}: no .deb appeared")
    member = f"./usr/lib/debug/boot/vmlinux-{kernel_version}"
    tmp = dest.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        fsys = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[-1])],
                                stdout=subprocess.PIPE)
        tar = subprocess.run(["tar", "-xO", member], stdin=fsys.stdout, stdout=out,
                             stderr=subprocess.PIPE)
        fsys.wait()
    if tar.returncode != 0 or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        raise SymbolizeError(f"{debs[-1].name} has no {member}: {tar.stderr.decode()[-300:]}")
    tmp.rename(dest)
    debs[-1].unlink()
    return dest


def default_symbolizer(module_path: Path | None, kernel_version: str) -> Symbolizer:
    """vexfs.ko (the run's), the crash module if built, the debug vmlinux if installed."""
    from vexfs.crash.crashtest import MODULE_NAME, SOURCE_DIR

    modules: dict[str, Path] = {}
    if module_path is not None:
        modules["vexfs"] = module_path
    crashtest = SOURCE_DIR / f"{MODULE_NAME}.ko"
    if crashtest.exists():
        modules[MODULE_NAME] = crashtest
    return Symbolizer(modules, kernel_debug_vmlinux(kernel_version), kernel_version)
