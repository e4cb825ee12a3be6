"""VexFS: a vector-native Linux filesystem, its userspace tools and VM harness."""

__version__ = "0.1.0"
