"""No /lost+found and an orphan: /lost+found is created once."""

import os  # noqa: F401

from vexfs import layout as L  # noqa: F401


def make(d):
    ino = d.unlink_entry("/", "lost+found")
    d.edit_inode(ino, i_mode=0, i_links_count=0)
    d.bitmap_bit("inode", ino - 1, False)
    d.lose("/lost+found")
    d.unlink_entry("/docs", "b.txt")
    d.unlink_entry("/docs", "a.txt")
    d.moved["/docs/b.txt"] = "/lost+found/#%d" % d.ino("/docs/b.txt")
    d.moved["/docs/a.txt"] = "/lost+found/#%d" % d.ino("/docs/a.txt")
    d.lost.pop("/lost+found")
    d.changed.add("/lost+found")
