"""Offline access to a VexFS image or device, without the kernel.

The code lives in the core library ``vexfs.fs`` (``filesystem.Image``,
``blockdev.Device``, ``dirent``, ``extents``, ``collection``); this module
keeps the names the tools, fuzzers and tests import from here.
"""

from __future__ import annotations

from vexfs.fs.blockdev import Device
from vexfs.fs.collection import Collection, collection_header_problems
from vexfs.fs.dirent import DirRecord, make_dir_block, name_problem, parse_dir_block
from vexfs.fs.errors import ImageError
from vexfs.fs.extents import MAX_FILE_SIZE, MAX_LBLK, ExtentMap, ExtentRec
from vexfs.fs.filesystem import BS, MAX_SYMLINK_HOPS, MAX_SYMLINK_LEN, DirEntryInfo, Image, \
    open_image
from vexfs.fs.geometry import superblock_problems

__all__ = ["BS", "MAX_FILE_SIZE", "MAX_LBLK", "MAX_SYMLINK_HOPS", "MAX_SYMLINK_LEN",
           "Collection", "Device", "DirEntryInfo", "DirRecord", "ExtentMap", "ExtentRec",
           "Image", "ImageError", "collection_header_problems", "make_dir_block",
           "name_problem", "open_image", "parse_dir_block", "superblock_problems"]
