"""Vector collections on VexFS: the numpy client for the ioctl API and `vexfs vec`."""

from vexfs.vector.client import Collection, CollectionStats

__all__ = ["Collection", "CollectionStats"]
