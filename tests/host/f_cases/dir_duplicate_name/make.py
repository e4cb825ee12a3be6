"""Two entries of /docs are named a.txt: the second (an intact inode) is renamed in place to
a.tx~, as e2fsck renames duplicates; nothing is removed."""

from vexfs import layout as L  # noqa: F401


def make(d):
    d.edit_entry("/docs", "b.txt", new_name=b"a.txt")
    d.moved["/docs/b.txt"] = "/docs/a.tx~"
