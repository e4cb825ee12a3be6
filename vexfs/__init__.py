"""VexFS: a vector-native Linux filesystem, its userspace tools and VM harness."""

from __future__ import annotations


def _version() -> str:
    """kernel/VERSION, the one version number of VexFS (the package's
    metadata carries it once installed; a checkout reads the file)."""
    from pathlib import Path

    source = Path(__file__).resolve().parent.parent / "kernel" / "VERSION"
    if source.is_file():
        return source.read_text().strip()
    try:
        from importlib.metadata import version

        return version("vexfs")
    except Exception:  # not installed as a distribution (copied files)
        return "unknown"


__version__ = _version()
