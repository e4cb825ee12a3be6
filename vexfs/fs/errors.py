"""Exceptions of the VexFS core library."""

from __future__ import annotations


class ImageError(Exception):
    """The image is not a valid VexFS filesystem (or this part of it is corrupt)."""


class NoSpace(ImageError):
    """No free block or inode left (ENOSPC)."""


class FormatError(Exception):
    """A reason not to format (bad geometry, label, size); shown to the user."""
