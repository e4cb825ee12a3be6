"""The VexFS core library, as lib/ext2fs is to e2fsprogs.

Every tool stands on it: mkfs.vexfs (``format``, ``populate``), fsck.vexfs
(every pass reads through ``filesystem`` and repairs through ``writer``), the
offline reader ``vexfs image`` and the test image builder.

Modules, one job each:

- ``errors``      the exceptions (``ImageError``, ``NoSpace``, ``FormatError``)
- ``blockdev``    block I/O: ``Device`` (O_EXCL for block devices), mounted /
                  in-use detection over every mount namespace and sysfs holders
- ``geometry``    ``Geometry.compute`` and superblock validation
- ``bitmap``      bitmap blocks: build, read, write, count, describe ranges
- ``dirent``      the directory block codec
- ``extents``     extent records and the validating extent-map walk
- ``collection``  vector collection header checks and record codec
- ``filesystem``  ``Image``: superblock, inode scan, data streaming, lookup
- ``alloc``       ``Allocator``: in-memory bitmaps, first-fit allocation, commit
- ``writer``      ``FsWriter``: create inodes, directory entries, files, dirs
- ``format``      ``format_device``: write a fresh empty filesystem
- ``populate``    fill a filesystem from a host directory tree (mkfs -d)
- ``journal``     the jbd2 journal superblock and ``format_journal`` (engineer K)
- ``journal_recovery``  jbd2 parse, check and replay: ``needs_recovery``,
                  ``check_journal``, ``recover``, the replayed view (engineer P)
"""
