"""fsck.vexfs's problem table, as e2fsck's problem.c: one row per problem.

Each row says which pass finds it, the message (a ``str.format`` template
filled by the pass that finds it), whether preen (-p) may repair it without
asking a human, and whether answering "no" (-n, or a repair that failed)
leaves the filesystem invalid (the kernel may refuse it, return errors or
lose data) rather than merely untidy. The table in docs/format.md is
generated from this one (``python -m vexfs.fsck.problems --markdown``) and a
host test keeps the two equal.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

#: pass number -> header printed by -v as the pass starts
PASSES: dict[int, str] = {
    0: "Pass 0: journal",
    1: "Pass 1: superblock and geometry",
    2: "Pass 2: inodes and extents",
    3: "Pass 3: directory structure",
    4: "Pass 4: connectivity",
    5: "Pass 5: link counts",
    6: "Pass 6: block ownership, bitmaps and counters",
    7: "Pass 7: collections",
}


@dataclass(frozen=True)
class ProblemDef:
    code: str
    pass_no: int
    template: str
    #: -p may apply the fix on its own
    preen: bool
    #: leaving it unrepaired leaves the filesystem invalid
    invalid: bool


_ROWS: list[ProblemDef] = [
    # pass 1: superblock and geometry
    ProblemDef("sb.device_short", 1, "the superblock says the filesystem has {blocks} "
               "blocks but the device holds only {device_blocks} (a short copy or the wrong "
               "partition?); nothing was changed: check the device, or copy the image "
               "again", False, True),
    ProblemDef("sb.geometry", 1, "superblock fields are corrupt; rebuilt from the on-disk "
               "layout (bitmaps and root inode found where the format puts them): {changes}",
               False, True),
    ProblemDef("sb.checksum", 1, "superblock checksum mismatch (stored 0x{stored:08x}, "
               "computed 0x{computed:08x}); its fields are consistent, so the checksum will "
               "be rewritten", True, True),
    ProblemDef("sb.error_state", 1, "the kernel recorded errors on this filesystem "
               "(state ERROR)", True, False),
    ProblemDef("bitmap.header", 1, "{which} bitmap block {index} (block {blk}) {why}; it "
               "will be rebuilt", True, True),
    ProblemDef("bitmap.checksum", 1, "{which} bitmap block {index} (block {blk}): checksum "
               "mismatch; it will be rebuilt", True, True),
    # pass 2: inodes and extents
    ProblemDef("inode.mode", 2, "inode {ino}: invalid mode 0o{mode:o} (file type bits "
               "0o{ifmt:o} name no file type){action}", False, True),
    ProblemDef("inode.flags", 2, "inode {ino}: {why}; the flag will be cleared", True, True),
    ProblemDef("inode.extent", 2, "inode {ino}: {why}{action}", False, True),
    ProblemDef("inode.extent_chain", 2, "inode {ino}: {why}{action}", False, True),
    ProblemDef("inode.extent_block_checksum", 2, "inode {ino}: extent block {blk}: "
               "checksum mismatch (its extents are valid, the checksum will be rewritten)",
               True, True),
    ProblemDef("inode.size", 2, "inode {ino}: {why}{action}", False, True),
    ProblemDef("inode.size_max", 2, "inode {ino}: size {size} exceeds the largest file "
               "size {max}; it will be set to the end of its last extent ({end})", True, True),
    ProblemDef("inode.hole", 2, "inode {ino}: {kind} of {size} bytes has holes ({mapped} "
               "of {want} blocks mapped){action}", False, True),
    ProblemDef("symlink.size", 2, "inode {ino}: symlink target length {size} is outside "
               "1..{max}{action}", False, True),
    ProblemDef("symlink.target", 2, "inode {ino}: symlink target contains a NUL "
               "byte{action}", False, True),
    ProblemDef("inode.i_blocks", 2, "inode {ino}: i_blocks is {have}, its extents and "
               "extent blocks hold {want}", True, True),
    ProblemDef("inode.checksum", 2, "inode {ino}: checksum mismatch (stored "
               "0x{stored:08x}, computed 0x{computed:08x}); the inode is otherwise valid, "
               "so the checksum will be rewritten", True, True),
    ProblemDef("xattr.block", 2, "inode {ino}: xattr block {blk}: {why}; the pointer will "
               "be cleared (the inode's extended attributes and ACLs are lost)", False, True),
    ProblemDef("xattr.entry", 2, "inode {ino}: extended attribute {name}: {why}; it will "
               "be removed", False, True),
    ProblemDef("xattr.checksum", 2, "inode {ino}: xattr block {blk}: checksum mismatch "
               "(its entries are valid, the checksum will be rewritten)", True, True),
    ProblemDef("xattr.feature", 2, "inode {ino}: has an xattr block but the superblock "
               "lacks the XATTR feature; it will be set", True, True),
    # pass 3: directory structure
    ProblemDef("dir.tail", 3, "{where}: {why}; the tail will be rewritten keeping all "
               "{kept} entries", True, True),
    ProblemDef("dir.chain", 3, "{where}: {why}; the block will be rebuilt keeping its "
               "first {kept} entries{dots}", False, True),
    ProblemDef("dir.checksum", 3, "{where}: checksum mismatch (the entries are valid, the "
               "checksum will be rewritten)", True, True),
    ProblemDef("dir.dot", 3, "{where}: {why}{action}", False, True),
    ProblemDef("dir.file_type", 3, "{where}: {why}", True, False),
    ProblemDef("dir.name", 3, "{where}: entry {name!r} -> inode {ino}: {why}; renamed to "
               "{new!r}", False, True),
    ProblemDef("dir.name_removed", 3, "{where}: entry {name!r} -> inode {ino}: {why}; the "
               "entry will be removed (an inode no other entry names moves to /lost+found)",
               False, True),
    ProblemDef("dir.duplicate_name", 3, "{where}: name {name!r} appears twice; the second "
               "entry is renamed to {new!r}", False, True),
    ProblemDef("dir.duplicate_name_removed", 3, "{where}: name {name!r} appears twice and "
               "no name of the same length is free; the second entry will be removed (its "
               "inode moves to /lost+found)", False, True),
    ProblemDef("dir.entry_inode", 3, "{where}: entry {name!r} points to {why}; the entry "
               "will be removed", False, True),
    ProblemDef("dir.multiple_parents", 3, "{where}: entry {name!r} is a second link to "
               "directory inode {ino} (already at {path}); the entry will be removed", False,
               True),
    # pass 4: connectivity
    ProblemDef("orphan.directory", 4, "directory inode {ino} is not reachable from / (its "
               "parent is gone); it will be moved to /lost+found", False, True),
    ProblemDef("orphan.unreferenced", 4, "{desc} with link count {links} is in no "
               "directory; it will be moved to /lost+found", False, True),
    ProblemDef("orphan.deleted", 4, "{desc} was deleted (link count 0) but is still in "
               "use; it will be freed", True, True),
    ProblemDef("lost_found.relinked", 4, "directory inode {ino} is the old /lost+found "
               "(mode 0700, '..' is the root, only '#<ino>' entries); linked back as "
               "/lost+found", False, False),
    ProblemDef("lost_found.created", 4, "/lost+found not found; created as inode {ino}",
               False, False),
    # pass 5: link counts
    ProblemDef("inode.links", 5, "{desc}: link count is {have}, should be {want}", True, True),
    # pass 6: blocks, bitmaps, counters
    ProblemDef("block.multiply_claimed", 6, "inode {ino}: {claim} overlaps inode {other}'s "
               "{other_claim} ({shared} shared blocks, first {first}); inode {ino}'s blocks "
               "will be copied to free space", False, True),
    ProblemDef("bitmap.block_marked_free", 6, "block bitmap: {count} blocks in use are "
               "marked free ({ranges})", True, True),
    ProblemDef("bitmap.block_marked_used", 6, "block bitmap: {count} blocks marked in use "
               "are not used by anything ({ranges})", True, False),
    ProblemDef("bitmap.inode_marked_free", 6, "inode bitmap: {count} inodes in use are "
               "marked free ({ranges})", True, True),
    ProblemDef("bitmap.inode_marked_used", 6, "inode bitmap: {count} inodes marked in use "
               "are not used by anything ({ranges})", True, False),
    ProblemDef("bitmap.tail", 6, "{which} bitmap: {count} bits past the last {which} are "
               "clear (they must be set)", True, True),
    ProblemDef("sb.free_blocks", 6, "superblock free blocks count is {have}, counted {want}",
               True, False),
    ProblemDef("sb.free_inodes", 6, "superblock free inodes count is {have}, counted {want}",
               True, False),
    # pass 7: collections
    ProblemDef("collection.feature", 7, "inode {ino}: is a collection but the superblock "
               "lacks the COLLECTIONS feature; it will be set", True, True),
    ProblemDef("collection.header", 7, "inode {ino}: collection header: {why}", False, True),
    ProblemDef("collection.size", 7, "inode {ino}: collection size {size} is not 4096 + "
               "{count} records x {record_size} bytes = {expect}{action}", False, True),
    ProblemDef("collection.sparse", 7, "inode {ino}: collection header counts {count} "
               "records, which need {need} blocks, but only {mapped} blocks are allocated",
               False, True),
    ProblemDef("collection.checksum", 7, "inode {ino}: collection header checksum mismatch "
               "(stored 0x{stored:08x}, computed 0x{computed:08x})", True, True),
    ProblemDef("collection.duplicate_id", 7, "inode {ino}: collection has {count} duplicate "
               "record ids ({shown})", False, True),
    ProblemDef("collection.index_header", 7, "inode {ino}: ANN index header: {why}",
               False, True),
    ProblemDef("collection.index_entry", 7, "inode {ino}: ANN index: {count} assign entries "
               "name no list (first: slot {first}, value {value}; nlist {nlist})", False, True),
    ProblemDef("collection.index_dangling", 7, "inode {ino}: ANN index: {count} assign entries "
               "past the last record are not 0 (first: slot {first})", False, False),
    ProblemDef("collection.index_feature", 7, "inode {ino}: has an ANN index but the "
               "superblock lacks the ANN_INDEX feature; it will be set", True, True),
    ProblemDef("collection.record_flags", 7, "inode {ino}: {count} records have non-zero "
               "reserved r_flags (first: record {first}, id {id}, flags 0x{flags:x})",
               False, False),
]

PROBLEMS: dict[str, ProblemDef] = {row.code: row for row in _ROWS}
assert len(PROBLEMS) == len(_ROWS), "duplicate problem code"


def message(code: str, **fields: object) -> str:
    return PROBLEMS[code].template.format(**fields)


def markdown_table() -> str:
    """The problem table for docs/format.md."""
    lines = ["| code | pass | message | -p may fix | invalid if not fixed |",
             "|---|---|---|---|---|"]
    for row in _ROWS:
        tmpl = row.template.replace("|", "\\|")
        lines.append(f"| `{row.code}` | {row.pass_no} | {tmpl} | "
                     f"{'yes' if row.preen else 'no'} | {'yes' if row.invalid else 'no'} |")
    return "\n".join(lines) + "\n"


DOC_BEGIN = "<!-- BEGIN fsck problem table: generated by `python -m vexfs.fsck.problems " \
            "--update docs/format.md`; do not edit -->"
DOC_END = "<!-- END fsck problem table -->"


def render_doc(text: str) -> str:
    """``text`` (docs/format.md) with the generated table between the markers."""
    a, b = text.index(DOC_BEGIN), text.index(DOC_END)
    return text[:a + len(DOC_BEGIN)] + "\n\n" + markdown_table() + "\n" + text[b:]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--update"] and len(args) == 2:
        with open(args[1]) as f:
            text = f.read()
        new = render_doc(text)
        if new != text:
            with open(args[1], "w") as f:
                f.write(new)
        return 0
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
