"""Why did `insmod vexfs.ko` fail? The spec's "Module load failure" procedure
done by code: check dmesg for the specific error, verify the module file's
integrity, check kernel version compatibility.

`diagnose()` is pure (host-testable): it takes what the guest said and
showed (insmod's exit and stderr, the new dmesg lines, `uname -r`, the
guest copy's sha256, the guest kernel's modules.symbols) and the host's
built .ko, and returns the causes it could establish, each with evidence:

  integrity    guest copy's sha256 differs from the build's (truncated or
               corrupted in transfer), or the file is not a whole ELF
               module (truncated .ko: its section headers lie past the end)
  vermagic     the module's vermagic vs the guest kernel: release vs
               `uname -r` and the kernel's own "version magic ... should be"
  modversions  "disagrees about version of symbol X" (built against other
               headers: symbol CRCs differ)
  symbols      "Unknown symbol X": which module of the guest kernel exports
               it (modules.symbols / Module.symvers) -> load that first; or
               none does (built for another kernel or config)
  signature    signature / lockdown refusals (fatal) and the unsigned-module
               taint notice (not a failure: CONFIG_MODULE_SIG without enforce)
  exists       the module is already loaded
  dmesg        any other kernel line naming the module at load time

`collect()` gathers those facts from a guest through any `run(cmd)`.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

ELF_MAGIC = b"\x7fELF"


@dataclass
class Cause:
    kind: str
    message: str
    evidence: list[str] = field(default_factory=list)
    fatal: bool = True  # False: a notice that does not stop the load


@dataclass
class Diagnosis:
    module: str
    rc: int
    causes: list[Cause]

    @property
    def fatal(self) -> list[Cause]:
        return [c for c in self.causes if c.fatal]

    def summary(self) -> str:
        if not self.causes:
            return f"insmod {self.module} exited {self.rc}: no cause found"
        return "; ".join(f"{c.kind}: {c.message}" for c in self.causes)

    def text(self) -> str:
        lines = [f"module load failure diagnosis ({self.module}, insmod exit {self.rc}):"]
        for c in self.causes:
            lines.append(f"  [{c.kind}{'' if c.fatal else ', notice'}] {c.message}")
            lines.extend(f"      {e}" for e in c.evidence[:5])
        return "\n".join(lines)


@dataclass
class ElfCheck:
    ok: bool
    problem: str = ""


def check_elf(data: bytes) -> ElfCheck:
    """Is `data` a whole ELF64 relocatable module? (header, section table
    inside the file, every section's contents inside the file)."""
    if len(data) < 64 or not data.startswith(ELF_MAGIC):
        return ElfCheck(False, f"not an ELF file ({len(data)} bytes, starts {data[:4]!r})")
    if data[4] != 2 or data[5] != 1:
        return ElfCheck(False, "not a little-endian ELF64 object")
    e_type, = struct.unpack_from("<H", data, 16)
    if e_type != 1:
        return ElfCheck(False, f"ELF type {e_type}, not a relocatable object (ET_REL)")
    e_shoff, = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    end = e_shoff + e_shentsize * e_shnum
    if e_shentsize != 64 or end > len(data):
        return ElfCheck(False, f"truncated: the section table ends at byte {end}, the file has "
                               f"{len(data)}")
    for i in range(e_shnum):
        base = e_shoff + i * 64
        sh_type, = struct.unpack_from("<I", data, base + 4)
        sh_offset, sh_size = struct.unpack_from("<QQ", data, base + 0x18)
        if sh_type != 8 and sh_offset + sh_size > len(data):  # 8: SHT_NOBITS
            return ElfCheck(False, f"truncated: section {i} ends at byte {sh_offset + sh_size}, "
                                   f"the file has {len(data)}")
    return ElfCheck(True)


def modinfo_fields(data: bytes) -> dict[str, str]:
    """key=value strings of the module's .modinfo (found by content, so it
    also works on a damaged file as long as the strings survive)."""
    out: dict[str, str] = {}
    keys = rb"(vermagic|name|srcversion|depends|version)"
    for m in re.finditer(rb"(?<![\w.])" + keys + rb"=([\x20-\x7e]*)\x00", data):
        out.setdefault(m.group(1).decode(), m.group(2).decode())
    return out


def parse_modules_symbols(text: str) -> dict[str, str]:
    """modules.symbols ("alias symbol:NAME module") -> {symbol: module}."""
    table = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "alias" and parts[1].startswith("symbol:"):
            table[parts[1][7:]] = parts[2]
    return table


def parse_module_symvers(text: str) -> dict[str, str]:
    """Module.symvers ("CRC\tNAME\tMODULE\tEXPORT\tNS") -> {symbol: module name}."""
    table = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            table[parts[1]] = Path(parts[2]).name
    return table


_UNKNOWN_RE = re.compile(r"(\w+): Unknown symbol (\w+) \(err (-?\d+)\)")
_DISAGREE_RE = re.compile(r"(\w+): disagrees about version of symbol (\w+)")
_MAGIC_RE = re.compile(r"(\w+): version magic '([^']*)' should be '([^']*)'")
_NOCRC_RE = re.compile(r"(\w+): no symbol version for (\w+)")
_SIG_FATAL_RE = re.compile(r"Loading of (?:unsigned )?module is rejected"
                           r"|Lockdown: .*unsigned module"
                           r"|module signature .*(?:rejected|invalid)|Key was rejected", re.I)
_SIG_NOTICE_RE = re.compile(r"module verification failed: signature and/or required key missing")
_TAINT_RE = re.compile(r"loading out-of-tree module taints kernel")


def _names(symbols: list[str], shown: int = 6) -> str:
    more = len(symbols) - shown
    return ", ".join(symbols[:shown]) + (f" and {more} more" if more > 0 else "")


def diagnose(*, module: Path, rc: int, stderr: str, dmesg: list[str], guest_release: str,
             guest_sha256: str = "", guest_size: int | None = None,
             guest_symbols: dict[str, str] | None = None,
             loaded_modules: set[str] | None = None) -> Diagnosis:
    """The causes of one failed (or suspicious) insmod; see the module doc."""
    data = module.read_bytes() if module.exists() else b""
    name = modinfo_fields(data).get("name") or module.name.split(".ko")[0]
    causes: list[Cause] = []
    symbols = guest_symbols or {}

    # --- integrity: the guest's copy against the build ----------------------------
    built = hashlib.sha256(data).hexdigest() if data else ""
    if guest_sha256 and built and guest_sha256 != built:
        size = f" ({guest_size} bytes in the guest, {len(data)} built)" if guest_size is not None \
            else ""
        causes.append(Cause("integrity", f"the guest's copy differs from the build{size}: "
                            "the transfer truncated or corrupted it; copy it again",
                            [f"guest sha256 {guest_sha256}", f"build sha256 {built}"]))
    elf = check_elf(data) if data else ElfCheck(False, f"{module} not found on the host")
    if not elf.ok:
        causes.append(Cause("integrity", f"{module.name} is not a loadable module: {elf.problem}; "
                            "rebuild it (make module)"))

    # --- kernel version compatibility --------------------------------------------
    vermagic = modinfo_fields(data).get("vermagic", "")
    release = vermagic.split(" ", 1)[0] if vermagic else ""
    ours = re.compile(rf"\b{re.escape(name)}: ")
    dmesg = [line for line in dmesg if MARK not in line]
    magic_lines = [line for line in dmesg if _MAGIC_RE.search(line) and ours.search(line)]
    for line in magic_lines:
        m = _MAGIC_RE.search(line)
        assert m is not None
        causes.append(Cause("vermagic", f"the module's vermagic '{m.group(2).strip()}' does not "
                            f"match the kernel's '{m.group(3).strip()}': build it against the "
                            f"headers of {guest_release}", [line.strip()]))
    if release and guest_release and release != guest_release:
        causes.append(Cause("vermagic", f"built for kernel {release}, the guest runs "
                            f"{guest_release}: build against linux-headers-{guest_release}",
                            [f"vermagic={vermagic}"]))
    disagree = [m for line in dmesg for m in [_DISAGREE_RE.search(line)]
                if m and m.group(1) == name]
    if disagree:
        syms = sorted({m.group(2) for m in disagree})
        causes.append(Cause("modversions", f"symbol versions (CRCs) differ for {', '.join(syms)}: "
                            f"the module was built against other headers than {guest_release}'s",
                            [m.group(0) for m in disagree]))
    nocrc = [m for line in dmesg for m in [_NOCRC_RE.search(line)] if m and m.group(1) == name]
    if nocrc:
        causes.append(Cause("modversions", "no symbol version for "
                            + ", ".join(sorted({m.group(2) for m in nocrc})),
                            [m.group(0) for m in nocrc]))

    # --- unknown symbols and who provides them -----------------------------------
    unknown = [m for line in dmesg for m in [_UNKNOWN_RE.search(line)] if m and m.group(1) == name]
    by_provider: dict[str, list[str]] = {}
    for m in unknown:
        by_provider.setdefault(symbols.get(m.group(2), ""), []).append(m.group(2))
    for provider, syms in sorted(by_provider.items()):
        syms = sorted(set(syms))
        if provider:
            loaded = loaded_modules is not None and provider in loaded_modules
            hint = (f"{provider} is loaded, yet its symbols were not found (built against "
                    f"other headers?)" if loaded else
                    f"load it first: modprobe {provider} (a distro with an ext4 root has "
                    f"{provider} loaded)" if provider == "jbd2" else
                    f"load it first: modprobe {provider}")
            causes.append(Cause("symbols", f"unknown symbol(s) {_names(syms)}, exported by "
                                f"module {provider} of {guest_release}: {hint}"))
        else:
            causes.append(Cause("symbols", f"unknown symbol(s) {_names(syms)}, exported by "
                                f"no module of {guest_release}: the module was built for another "
                                "kernel or configuration"))

    # --- signatures, taint, other kernel lines -----------------------------------
    fatal_sig = [line.strip() for line in dmesg if _SIG_FATAL_RE.search(line)]
    if fatal_sig or "Key was rejected" in stderr:
        causes.append(Cause("signature", "the kernel refused an unsigned or badly signed module "
                            "(module.sig_enforce=1 or lockdown): sign it with the kernel's key "
                            "or boot without enforcement", fatal_sig or [stderr.strip()]))
    notices = [line.strip() for line in dmesg
               if _SIG_NOTICE_RE.search(line) or _TAINT_RE.search(line)]
    if notices:
        causes.append(Cause("signature", "unsigned out-of-tree module: the kernel is tainted "
                            "(OE), the load is not refused (signatures not enforced)", notices,
                            fatal=False))
    if "File exists" in stderr or (loaded_modules is not None and name in loaded_modules):
        causes.append(Cause("exists", f"{name} is already loaded: rmmod {name} first",
                            [stderr.strip()] if stderr.strip() else []))
    explained = set(magic_lines) | {m.string for m in disagree + unknown + nocrc} | \
        set(fatal_sig) | set(notices)
    explained = {line.strip() for line in explained}
    other = [line.strip() for line in dmesg
             if re.search(rf"\b{re.escape(name)}\b|module", line) and line.strip() not in explained
             and MARK not in line]
    if rc != 0 and other:
        causes.append(Cause("dmesg", "kernel messages at load time", other[-10:]))
    if rc != 0 and not [c for c in causes if c.fatal] and stderr.strip():
        causes.append(Cause("insmod", stderr.strip().splitlines()[-1]))
    return Diagnosis(module=name, rc=rc, causes=causes)


class _Result(Protocol):
    rc: int
    stdout: str
    stderr: str


MARK = "vexfs-loadcheck"


def load_and_diagnose(run: Callable[[str], _Result], host_module: Path, guest_path: str,
                      ) -> tuple[_Result, Diagnosis | None]:
    """insmod `guest_path` in a guest through `run`; on failure diagnose it
    from the kernel lines printed since just before the insmod. Two guest
    commands in all (each is an ssh login for the interactive VM)."""
    mark = f"{MARK}-{uuid.uuid4().hex[:12]}"  # unique: earlier calls left theirs in dmesg
    result = run(f"echo {mark} > /dev/kmsg; insmod {shlex.quote(guest_path)}")
    if result.rc == 0:
        return result, None
    dmesg = f"dmesg | sed -n '/{mark}/,$p' | tail -n +2"
    return result, diagnose_in_guest(run, host_module, guest_path, result, dmesg)


def diagnose_in_guest(run: Callable[[str], _Result], host_module: Path, guest_path: str,
                      result: _Result, dmesg_cmd: str = "dmesg") -> Diagnosis:
    """Gather the guest's facts about a failed insmod in one command
    (`dmesg_cmd`'s lines, uname -r, sha256 and size of its copy, lsmod, the
    guest's modules.symbols entries for each unknown symbol) and diagnose."""
    q = shlex.quote(guest_path)
    facts = run(
        f"uname -r; sha256sum {q} | cut -d' ' -f1; stat -c %s {q}; echo ---; "
        f"{dmesg_cmd} > /tmp/.vexfs-loadcheck; cat /tmp/.vexfs-loadcheck; echo ---; "
        "cut -d' ' -f1 /proc/modules | tr '\\n' ' '; echo; echo ---; "
        "sed -n 's/.*Unknown symbol \\([A-Za-z0-9_]*\\) .*/alias symbol:\\1 /p' "
        "/tmp/.vexfs-loadcheck | sort -u > /tmp/.vexfs-loadcheck.syms; "
        "[ -s /tmp/.vexfs-loadcheck.syms ] && grep -F -f /tmp/.vexfs-loadcheck.syms "
        "\"/lib/modules/$(uname -r)/modules.symbols\"; "
        "rm -f /tmp/.vexfs-loadcheck /tmp/.vexfs-loadcheck.syms; true")
    parts = facts.stdout.split("---\n")
    head = parts[0].split() if parts else []
    release = head[0] if head else ""
    sha = head[1] if len(head) > 1 else ""
    size = int(head[2]) if len(head) > 2 and head[2].isdigit() else None
    dmesg = parts[1].splitlines() if len(parts) > 1 else []
    loaded = set(parts[2].split()) if len(parts) > 2 else set()
    symbols = parse_modules_symbols(parts[3]) if len(parts) > 3 else {}
    return diagnose(module=host_module, rc=result.rc, stderr=result.stderr, dmesg=dmesg,
                    guest_release=release, guest_sha256=sha, guest_size=size,
                    guest_symbols=symbols, loaded_modules=loaded)
