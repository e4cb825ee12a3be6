#!/usr/bin/env python3
"""Build the VexFS Debian packages (`make deb`): dist/vexfs-dkms_<v>_all.deb
and dist/vexfs-tools_<v>_all.deb.

- vexfs-dkms: the module's sources in /usr/src/vexfs-<v>/ with dkms.conf;
  its postinst registers them with DKMS and builds + installs vexfs.ko for
  the running kernel when that kernel's headers are installed (DKMS's
  autoinstall covers kernels installed later), so `modprobe vexfs` works.
- vexfs-tools: the Python package (built as a wheel by pip, unpacked into
  /usr/lib/python3/dist-packages) and mkfs.vexfs, fsck.vexfs in /usr/sbin and
  vexfs in /usr/bin, run by Debian's python3, so `mkfs -t vexfs` and
  `fsck -t vexfs` find them as they find mkfs.ext4/fsck.ext4.

The version of both is kernel/VERSION, the one version number of VexFS.
Needs dpkg-deb and pip (the checkout's .venv); no debhelper.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KERNEL = REPO / "kernel"
MAINTAINER = "VexFS developers <vexfs@localhost>"

log = logging.getLogger("mkdeb")

# Debian packages the tools need at run time (mkfs/fsck need crc32c; the
# vexfs CLI click; the vector client numpy) and those only some commands use.
TOOLS_DEPENDS = "python3 (>= 3.11), python3-click, python3-numpy, python3-crc32c"
TOOLS_RECOMMENDS = "python3-rich, python3-matplotlib, python3-junit.xml"

# Scripts installed into the system PATH: (path in the package, module, function).
SCRIPTS = [
    ("usr/sbin/mkfs.vexfs", "vexfs.mkfs", "main"),
    ("usr/sbin/fsck.vexfs", "vexfs.fsck", "main"),
    ("usr/bin/vexfs", "vexfs.cli", "main"),
]

DKMS_POSTINST = """#!/bin/sh
# vexfs-dkms postinst: register the sources with DKMS, then build and
# install vexfs.ko for the running kernel if its headers are installed.
set -e
NAME=vexfs
VERSION=@VERSION@
if [ "$1" = configure ]; then
	if [ ! -e "/var/lib/dkms/$NAME/$VERSION" ]; then
		dkms add -m "$NAME" -v "$VERSION"
	fi
	KVER=$(uname -r)
	if [ -e "/lib/modules/$KVER/build/Makefile" ]; then
		dkms build -m "$NAME" -v "$VERSION" -k "$KVER"
		dkms install -m "$NAME" -v "$VERSION" -k "$KVER"
	else
		echo "vexfs-dkms: no headers for kernel $KVER (apt-get install linux-headers-$KVER);" \\
		     "DKMS builds vexfs.ko once they are installed" >&2
	fi
fi
exit 0
"""

DKMS_PRERM = """#!/bin/sh
# vexfs-dkms prerm: remove every build of this version from DKMS.
set -e
NAME=vexfs
VERSION=@VERSION@
if [ -e "/var/lib/dkms/$NAME/$VERSION" ]; then
	dkms remove -m "$NAME" -v "$VERSION" --all || true
fi
exit 0
"""

# vexfs-tools maintainer scripts, as dh_python3 writes them: byte-compile
# the modules at install time and remove the .pyc files before removal (else
# `dpkg -r` leaves the __pycache__ directories Python wrote at run time).
TOOLS_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ] && command -v py3compile >/dev/null 2>&1; then
	py3compile -p vexfs-tools
fi
exit 0
"""

TOOLS_PRERM = """#!/bin/sh
set -e
if command -v py3clean >/dev/null 2>&1; then
	py3clean -p vexfs-tools
else
	find /usr/lib/python3/dist-packages/vexfs -type d -name __pycache__ \\
		-exec rm -rf {} + 2>/dev/null || true
fi
exit 0
"""

SCRIPT_TEMPLATE = """#!/usr/bin/python3
# Installed by vexfs-tools {version}.
import sys

from {module} import {func}

sys.exit({func}())
"""


class BuildError(RuntimeError):
    pass


def version() -> str:
    value = (KERNEL / "VERSION").read_text().strip()
    if not value or any(c.isspace() for c in value):
        raise BuildError(f"kernel/VERSION holds {value!r}, not a version")
    return value


def _control(fields: dict[str, str]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in fields.items() if v)


def _installed_size(root: Path) -> str:
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and "DEBIAN" not in p.parts)
    return str(max(1, total // 1024))


def _dpkg_deb(root: Path, out: Path) -> Path:
    if shutil.which("dpkg-deb") is None:
        raise BuildError("dpkg-deb not found: apt-get install dpkg-dev (make setup does)")
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"dpkg-deb --build {root} failed:\n{proc.stderr.strip()}")
    return out


def module_sources() -> list[Path]:
    """The files DKMS needs: the module's sources as git tracks them (no
    build products, no test-only modules), or by pattern outside git."""
    proc = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others",
                           "--exclude-standard", "kernel"], capture_output=True,
                          text=True)
    if proc.returncode == 0 and proc.stdout.strip():
        files = [REPO / line for line in proc.stdout.splitlines()]
    else:
        files = [p for p in KERNEL.rglob("*") if p.is_file()]
    keep = []
    for path in files:
        rel = path.relative_to(KERNEL)
        if rel.parts[0] in ("test", "build") or not path.is_file():
            continue
        if path.suffix in (".c", ".h") or path.name in ("Kbuild", "Makefile", "VERSION", "dkms.conf"):
            keep.append(path)
    for required in ("Kbuild", "VERSION", "dkms.conf"):
        if KERNEL / required not in keep:
            raise BuildError(f"kernel/{required} missing from the module sources")
    return sorted(keep)


def build_dkms(out_dir: Path, work: Path) -> Path:
    ver = version()
    root = work / "vexfs-dkms"
    src = root / "usr" / "src" / f"vexfs-{ver}"
    for path in module_sources():
        dest = src / path.relative_to(KERNEL)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.name == "dkms.conf":
            dest.write_text(path.read_text().replace("@VERSION@", ver))
        else:
            shutil.copyfile(path, dest)
    debian = root / "DEBIAN"
    debian.mkdir(parents=True)
    (debian / "control").write_text(_control({
        "Package": "vexfs-dkms", "Version": ver, "Architecture": "all",
        "Maintainer": MAINTAINER, "Installed-Size": _installed_size(root),
        "Depends": "dkms (>= 2.1.0.0), make, gcc",
        "Recommends": "linux-headers-amd64 | linux-headers-generic, vexfs-tools",
        "Section": "kernel", "Priority": "optional",
        "Description": "VexFS vector-native filesystem kernel module (DKMS)\n"
                       " The vexfs.ko sources, built by DKMS for every installed kernel\n"
                       " that has its headers (Debian 6.1, 6.12 and 6.12-rt are supported).",
    }))
    for name, text in (("postinst", DKMS_POSTINST), ("prerm", DKMS_PRERM)):
        script = debian / name
        script.write_text(text.replace("@VERSION@", ver))
        script.chmod(0o755)
    return _dpkg_deb(root, out_dir / f"vexfs-dkms_{ver}_all.deb")


def build_wheel(work: Path, python: str) -> Path:
    """The vexfs wheel, built by pip from this checkout (in pip's isolated
    build environment: setuptools and wheel from PyPI, cached after once)."""
    wheels = work / "wheel"
    proc = subprocess.run([python, "-m", "pip", "--disable-pip-version-check", "wheel", "-q",
                           "--no-deps", "-w", str(wheels), str(REPO)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"pip wheel failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    found = sorted(wheels.glob("vexfs-*.whl"))
    if not found:
        raise BuildError(f"pip wheel left no vexfs-*.whl in {wheels}")
    return found[-1]


def build_tools(out_dir: Path, work: Path, python: str) -> tuple[Path, Path]:
    ver = version()
    wheel = build_wheel(work, python)
    if f"vexfs-{ver}-" not in wheel.name:
        raise BuildError(f"{wheel.name} does not carry version {ver} (kernel/VERSION)")
    root = work / "vexfs-tools"
    site = root / "usr" / "lib" / "python3" / "dist-packages"
    site.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.endswith("/") or "/__pycache__/" in member:
                continue
            zf.extract(member, site)
    for rel, module, func in SCRIPTS:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SCRIPT_TEMPLATE.format(version=ver, module=module, func=func))
        path.chmod(0o755)
    doc = root / "usr" / "share" / "doc" / "vexfs-tools"
    doc.mkdir(parents=True)
    shutil.copyfile(REPO / "README.md", doc / "README.md")
    debian = root / "DEBIAN"
    debian.mkdir()
    (debian / "control").write_text(_control({
        "Package": "vexfs-tools", "Version": ver, "Architecture": "all",
        "Maintainer": MAINTAINER, "Installed-Size": _installed_size(root),
        "Depends": TOOLS_DEPENDS, "Recommends": TOOLS_RECOMMENDS,
        "Suggests": "vexfs-dkms", "Section": "admin", "Priority": "optional",
        "Description": "VexFS vector-native filesystem utilities\n"
                       " mkfs.vexfs, fsck.vexfs (so mkfs -t vexfs and fsck -t vexfs work),\n"
                       " the offline image reader and the vexfs command (vector client).",
    }))
    for name, text in (("postinst", TOOLS_POSTINST), ("prerm", TOOLS_PRERM)):
        script = debian / name
        script.write_text(text)
        script.chmod(0o755)
    deb = _dpkg_deb(root, out_dir / f"vexfs-tools_{ver}_all.deb")
    shutil.copyfile(wheel, out_dir / wheel.name)
    return deb, out_dir / wheel.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/mkdeb.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output directory")
    parser.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python")
                        if (REPO / ".venv" / "bin" / "python").exists() else sys.executable,
                        help="Python whose pip builds the wheel")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="mkdeb: %(message)s")
    try:
        with tempfile.TemporaryDirectory(prefix="vexfs-mkdeb-") as tmp:
            work = Path(tmp)
            dkms = build_dkms(args.out, work)
            tools, wheel = build_tools(args.out, work, args.python)
    except BuildError as exc:
        log.error("%s", exc)
        return 1
    for path in (dkms, tools, wheel):
        log.info("built %s (%d kB)", os.path.relpath(path), path.stat().st_size // 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
