"""Corrupt images against vexfs.ko in a real VM: every corruption is refused
(at mount) or reported (at first use) with a "vexfs (loopN): error: ..."
dmesg line and an errno, the kernel never crashes or hangs, and the module's
counters return to zero.

The guest side (``python tests/vm/test_fs_corrupt.py guest <workdir>``)
builds a pristine image with mkfs.vexfs and the kernel, derives one image
per corruption, calls mount(2) through ctypes to get the exact errno, and
prints JSON ``{case: [ok, detail]}``.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import crc32c

REPO = Path(__file__).resolve().parents[2]
PY = REPO / ".venv/bin/python"
THIS = Path(__file__).resolve()
MODULE = REPO / "kernel/build/vexfs.ko"
BS = 4096
MNT = "/mnt/c"

# ---------------------------------------------------------------- guest side

libc = ctypes.CDLL(None, use_errno=True)


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def mount(dev: str, ro: bool = False) -> int:
    os.makedirs(MNT, exist_ok=True)
    rc = libc.mount(dev.encode(), MNT.encode(), b"vexfs", 1 if ro else 0, None)
    return 0 if rc == 0 else ctypes.get_errno()


def umount() -> None:
    libc.umount2(MNT.encode(), 0)


def dmesg_mark() -> int:
    return len(sh("dmesg").splitlines())


def dmesg_since(mark: int) -> list[str]:
    return [ln for ln in sh("dmesg").splitlines()[mark:] if "vexfs (" in ln]


class Img:
    """An image file with helpers to patch metadata and fix checksums."""

    def __init__(self, path: Path):
        self.path = path
        self.f = open(path, "r+b")
        sb = self.read(0, 256)
        (self.blocks,) = struct.unpack_from("<Q", sb, 24)
        self.itable = struct.unpack_from("<Q", sb, 64)[0]
        self.ibitmap, self.bbitmap = struct.unpack_from("<QQ", sb, 48)

    def read(self, off: int, n: int) -> bytes:
        self.f.seek(off)
        return self.f.read(n)

    def write(self, off: int, data: bytes) -> None:
        self.f.seek(off)
        self.f.write(data)

    def fix(self, off: int, size: int, csum_off: int) -> None:
        b = bytearray(self.read(off, size))
        b[csum_off:csum_off + 4] = bytes(4)
        b[csum_off:csum_off + 4] = struct.pack("<I", crc32c.crc32c(bytes(b)))
        self.write(off, bytes(b))

    def patch(self, off: int, fmt: str, *vals, fix: tuple | None = None) -> None:
        self.write(off, struct.pack(fmt, *vals))
        if fix:
            self.fix(*fix)

    # checksum regions
    SB = (0, 256, 252)

    def ino_off(self, ino: int) -> int:
        return self.itable * BS + (ino - 1) * 256

    def ino_fix(self, ino: int) -> tuple:
        return (self.ino_off(ino), 256, 252)

    def inode(self, ino: int) -> dict:
        b = self.read(self.ino_off(ino), 256)
        return {"extent0": struct.unpack_from("<QQI", b, 104),
                "extent_block": struct.unpack_from("<Q", b, 88)[0]}

    def close(self) -> None:
        self.f.close()


def guest(work: Path) -> dict:
    r: dict = {}
    base = work / "base.img"
    sh("truncate", "-s", "16M", str(base))
    sh(str(REPO / ".venv/bin/mkfs.vexfs"), "-q", str(base))
    # populate with the kernel: a directory with entries, a chained file
    loop = sh("losetup", "-f", "--show", str(base))
    assert mount(loop) == 0
    os.mkdir(f"{MNT}/dir")
    for i in range(50):
        Path(f"{MNT}/dir/f{i}").write_bytes(b"x" * i)
    fd = os.open(f"{MNT}/frag", os.O_CREAT | os.O_RDWR, 0o644)
    for i in range(400):
        os.pwrite(fd, b"y" * 4096, 2 * i * 4096)
    os.close(fd)
    Path(f"{MNT}/plain").write_bytes(b"p" * 10000)
    inos = {n: os.stat(f"{MNT}/{n}").st_ino for n in ("dir", "frag", "plain")}
    umount()
    sh("losetup", "-d", loop)

    def case(name: str, corrupt, want_mount: int, use=None, want_use: tuple = (),
             ro: bool = False) -> None:
        img_path = work / f"{name}.img"
        shutil.copy(base, img_path)
        img = Img(img_path)
        corrupt(img)
        img.close()
        lp = sh("losetup", "-f", "--show", str(img_path))
        mark = dmesg_mark()
        rc = mount(lp, ro=ro)
        detail = f"mount={errno.errorcode.get(rc, rc)}"
        ok = rc == want_mount
        if rc == 0 and use is not None:
            urc = 0
            try:
                use()
            except OSError as e:
                urc = e.errno
            detail += f" use={errno.errorcode.get(urc, urc)}"
            ok = ok and urc in want_use
        if rc == 0:
            umount()
        sh("losetup", "-d", lp)
        img_path.unlink()
        lines = dmesg_since(mark)
        errs = [ln for ln in lines if "error:" in ln]
        if want_mount or any(want_use):
            ok = ok and bool(errs)
        r[name] = [ok, detail + " | " + (errs[0] if errs else "no dmesg error line")]

    def ls_dir():
        os.listdir(f"{MNT}/dir")

    def read_frag():
        Path(f"{MNT}/frag").read_bytes()

    def read_plain():
        Path(f"{MNT}/plain").read_bytes()

    def write_new():
        Path(f"{MNT}/newfile").write_bytes(b"z" * 100000)
        os.sync()

    # --- superblock
    case("bad_magic", lambda i: i.patch(0, "<I", 0x12345678), errno.EINVAL)
    case("sb_checksum", lambda i: i.patch(144, "<4s", b"junk"), errno.EBADMSG)
    case("bad_version", lambda i: i.patch(4, "<I", 2, fix=Img.SB), errno.EINVAL)
    case("unknown_incompat", lambda i: i.patch(12, "<I", 0x81, fix=Img.SB), errno.EINVAL)
    case("unknown_ro_compat_rw", lambda i: i.patch(16, "<I", 0x80, fix=Img.SB), errno.EINVAL)
    case("unknown_ro_compat_ro", lambda i: i.patch(16, "<I", 0x80, fix=Img.SB), 0, ro=True,
         use=read_plain, want_use=(0,))
    case("bad_block_size", lambda i: i.patch(20, "<I", 1024, fix=Img.SB), errno.EINVAL)
    case("larger_than_device", lambda i: i.patch(24, "<Q", i.blocks * 2, fix=Img.SB),
         errno.EUCLEAN)
    case("regions_overlap", lambda i: i.patch(64, "<Q", i.bbitmap, fix=Img.SB), errno.EUCLEAN)
    case("data_start_past_end", lambda i: i.patch(72, "<Q", i.blocks + 5, fix=Img.SB),
         errno.EUCLEAN)
    case("free_count_too_big", lambda i: i.patch(32, "<Q", i.blocks * 3, fix=Img.SB),
         errno.EUCLEAN)
    case("bitmap_size_wrong", lambda i: i.patch(84, "<I", 99, fix=Img.SB), errno.EUCLEAN)

    # --- root inode
    case("root_checksum", lambda i: i.patch(i.ino_off(1) + 4, "<I", 999), errno.EBADMSG)
    case("root_not_dir", lambda i: i.patch(i.ino_off(1), "<H", 0o100644, fix=i.ino_fix(1)),
         errno.EUCLEAN)
    case("root_extent_outside", lambda i: i.patch(i.ino_off(1) + 112, "<Q", 2,
                                                   fix=i.ino_fix(1)), errno.EUCLEAN)

    # --- found at first use: the mount succeeds, the access fails cleanly
    def dir_block(i: Img) -> int:
        return i.inode(inos["dir"])["extent0"][1]

    def rec_len_bad(i: Img):
        blk = dir_block(i)
        i.patch(blk * BS + 12 + 4, "<H", 4090)
        i.fix(blk * BS, BS, BS - 4)
    case("dir_rec_len", rec_len_bad, 0, use=ls_dir, want_use=(errno.EUCLEAN,))

    def dir_csum(i: Img):
        i.patch(dir_block(i) * BS + 40, "<B", 0x55)
    case("dir_checksum", dir_csum, 0, use=ls_dir, want_use=(errno.EUCLEAN,))

    def name_len_bad(i: Img):
        blk = dir_block(i)
        # third entry (first real one): name_len beyond its rec_len
        i.patch(blk * BS + 24 + 6, "<B", 200)
        i.fix(blk * BS, BS, BS - 4)
    case("dir_name_len", name_len_bad, 0, use=ls_dir, want_use=(errno.EUCLEAN,))

    def chain_loop(i: Img):
        eb = i.inode(inos["frag"])["extent_block"]
        i.patch(eb * BS + 8, "<Q", eb)  # eb_next -> itself
        i.fix(eb * BS, BS, 4)
    case("extent_chain_loop", chain_loop, 0, use=read_frag, want_use=(errno.EUCLEAN,))

    def chain_csum(i: Img):
        eb = i.inode(inos["frag"])["extent_block"]
        i.patch(eb * BS + 100, "<B", 0x77)
    case("extent_block_checksum", chain_csum, 0, use=read_frag,
         want_use=(errno.EBADMSG,))

    def extent_overlap(i: Img):
        # second inline extent of frag starts inside the first
        off = i.ino_off(inos["frag"])
        lblk0 = struct.unpack_from("<Q", i.read(off + 104, 8))[0]
        i.patch(off + 128, "<Q", lblk0, fix=i.ino_fix(inos["frag"]))
    case("extent_overlap", extent_overlap, 0, use=read_frag, want_use=(errno.EUCLEAN,))

    def extent_range(i: Img):
        i.patch(i.ino_off(inos["plain"]) + 112, "<Q", i.blocks - 1,
                fix=i.ino_fix(inos["plain"]))
    case("extent_past_device", extent_range, 0, use=read_plain, want_use=(errno.EUCLEAN,))

    def inode_csum(i: Img):
        i.patch(i.ino_off(inos["plain"]) + 16, "<Q", 12345)
    case("inode_checksum", inode_csum, 0, use=read_plain, want_use=(errno.EBADMSG,))

    def dir_links_one(i: Img):
        i.patch(i.ino_off(inos["dir"]) + 2, "<H", 1, fix=i.ino_fix(inos["dir"]))
    case("dir_link_count_one", dir_links_one, 0, use=ls_dir, want_use=(errno.EUCLEAN,))

    def bbitmap_csum(i: Img):
        i.patch(i.bbitmap * BS + 2000, "<B", 0xAA)
    case("block_bitmap_checksum", bbitmap_csum, 0, use=write_new,
         want_use=(errno.EBADMSG, errno.EROFS))

    def ibitmap_magic(i: Img):
        i.patch(i.ibitmap * BS, "<I", 0)
    case("inode_bitmap_magic", ibitmap_magic, 0, use=write_new,
         want_use=(errno.EUCLEAN, errno.EROFS))

    # a runtime error remounts read-only (errors=remount-ro default)
    img_path = work / "ro.img"
    shutil.copy(base, img_path)
    img = Img(img_path)
    dir_csum(img)
    img.close()
    lp = sh("losetup", "-f", "--show", str(img_path))
    mount(lp)
    try:
        ls_dir()
    except OSError:
        pass
    ro = " ro," in [ln for ln in open("/proc/mounts") if MNT in ln][0]
    umount()
    sh("losetup", "-d", lp)
    r["error_remounts_ro"] = [ro, ""]

    # random byte flips in the metadata: never a crash or hang
    rnd = random.Random(99)
    img0 = Img(base)
    meta_end = (img0.itable + 4) * BS
    img0.close()
    survived = 0
    for n in range(25):
        p = work / "fuzz.img"
        shutil.copy(base, p)
        with open(p, "r+b") as fh:
            for _ in range(20):
                off = rnd.choice([rnd.randrange(BS, meta_end),
                                  rnd.randrange(meta_end, 16 * 1024 * 1024)])
                fh.seek(off)
                fh.write(bytes([rnd.randrange(256)]))
        lp = sh("losetup", "-f", "--show", str(p))
        if mount(lp) == 0:
            for dirpath, dirnames, filenames in os.walk(MNT, onerror=lambda e: None):
                for fn in filenames:
                    try:
                        Path(dirpath, fn).read_bytes()
                    except OSError:
                        pass
            try:
                Path(f"{MNT}/fz").write_bytes(b"f" * 50000)
                os.unlink(f"{MNT}/fz")
            except OSError:
                pass
            umount()
        sh("losetup", "-d", lp)
        survived += 1
    r["fuzz_no_crash"] = [survived == 25, f"{survived} images"]
    return r


# ----------------------------------------------------------------- host side


def test_corrupt_images_refused_with_errno_and_dmesg():
    from vexfs.vm.quick import run_script

    script = f"""
set -e
cd {REPO}
modprobe loop
insmod /tmp/vexfs.ko
mkdir -p /tmp/cw
printf 'RESULT: %s\\n' "$({PY} {THIS} guest /tmp/cw)"
echo "COUNTERS $(cat /sys/fs/vexfs/inodes) $(cat /sys/fs/vexfs/buffers) $(cat /sys/fs/vexfs/mounts) $(cat /sys/fs/vexfs/extent_maps)"
rmmod vexfs
echo RMMOD-OK
"""
    res = run_script(script, modules=[MODULE], timeout=900)
    assert not res.crashed, res.console[-4000:]
    assert res.returncode == 0, res.output[-3000:]
    line = next(ln for ln in res.output.splitlines() if ln.startswith("RESULT: "))
    checks = json.loads(line[len("RESULT: "):])
    failed = {k: v for k, v in checks.items() if not v[0]}
    assert not failed, f"failed: {json.dumps(failed, indent=1)}"
    assert len(checks) >= 25
    assert "COUNTERS 0 0 0 0" in res.output
    assert "RMMOD-OK" in res.output


try:
    import pytest

    test_corrupt_images_refused_with_errno_and_dmesg = pytest.mark.vm(pytest.mark.timeout(1200)(
        test_corrupt_images_refused_with_errno_and_dmesg))
except ImportError:
    pass


if __name__ == "__main__":
    print(json.dumps(guest(Path(sys.argv[2]))))
