"""An entry name in /docs contains '/': the bad byte is replaced in place ('a/txt' becomes
'a.txt' again); the entry and its intact inode stay."""

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_entry("/docs", "a.txt", new_name=b"a/txt")
