"""Build the guest-side C drivers (vexfs/fuzz/guest/*.c) on the host.

The guest sees the host root at the same paths, so a binary built here under
.cache/fuzz/bin runs in the guest as is (same libc). Rebuilt when the source
or the uapi header is newer than the binary.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from vexfs.vm.paths import REPO_ROOT, cache_dir

log = logging.getLogger(__name__)

GUEST_SRC = Path(__file__).resolve().parent / "guest"
UAPI = REPO_ROOT / "kernel" / "uapi"
CFLAGS = ["-O2", "-g", "-Wall", "-Wextra", "-Wno-sign-compare", "-Wno-unused-parameter",
          "-pthread", f"-I{UAPI}"]


def build(name: str) -> Path:
    """Path of the built guest program `name` (fz_image, fz_ioctl...)."""
    src = GUEST_SRC / f"{name}.c"
    out_dir = cache_dir() / "fuzz" / "bin"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / name
    deps = [src, UAPI / "vexfs_fs.h"]
    if out.exists() and all(out.stat().st_mtime >= d.stat().st_mtime for d in deps):
        return out
    cmd = ["gcc", *CFLAGS, "-o", str(out) + ".tmp", str(src)]
    log.info("building %s", " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"building {src} failed:\n{res.stderr}")
    Path(str(out) + ".tmp").replace(out)
    return out
