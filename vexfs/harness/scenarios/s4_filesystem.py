"""Scenario 4: filesystem registration (the spec's steps, checked).

Spec steps: insmod; `grep vexfs /proc/filesystems`; 200 MB image on
/dev/loop0; `which mkfs.vexfs && mkfs.vexfs /dev/loop0`; `mkdir -p
/mnt/vexfs_test`; `mount -t vexfs`; `ls -la`; `echo "Hello VexFS" >
test.txt` and `cat` it; `mkdir testdir`; `ls -la`; `cd /; umount`; cleanup.

Criteria, each checked by code: vexfs registered (a block-device fs line in
/proc/filesystems); mount succeeds (/proc/mounts, per-mount sysfs dir) in
under 10 s (the spec's limit); the basic file operations (empty root, file
content byte for byte, testdir a directory, sizes in `ls -la`); umount
succeeds cleanly (gone from /proc/mounts, counters at zero); no kernel
panic or warning.

Beyond the spec: `fsck.vexfs -n` clean after umount; the offline reader
(`vexfs image cat`) sees what the kernel wrote; the data persists across
umount/mount with dropped caches and across a module reload; and an ext4
baseline: the same-size image formatted with mkfs.ext4 and mounted and
unmounted the same number of times in the same VM (`ext4_mount_s`,
`ext4_umount_s`). Mount/umount times are measured in the guest around the
mount(8)/umount(8) processes, identically for both filesystems.
"""

from __future__ import annotations

from vexfs.harness.framework import Scenario, ScenarioContext
from vexfs.harness.scenarios import _blockfs as B

IMAGE = "/tmp/vexfs_fs.img"
DEV = "/dev/loop0"
MNT = "/mnt/vexfs_test"
SIZE_MIB = 200
MOUNT_LIMIT_S = 10.0
HELLO = "Hello VexFS\n"

EXT4_IMAGE = "/tmp/ext4_fs.img"
EXT4_DEV = "/dev/loop1"
EXT4_MNT = "/mnt/ext4_test"


def _ls_entries(text: str) -> dict[str, list[str]]:
    """`ls -la` lines by name (names without spaces): {name: fields}."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 9 and fields[0][0] in "-dlbcps":
            out[" ".join(fields[8:])] = fields
    return out


def _timed_cycle(ctx: ScenarioContext, fstype: str, dev: str, mnt: str,
                 mounts: list[float], umounts: list[float], body=None) -> tuple[bool, str]:
    """mount, optional body(), umount; both timed in the guest."""
    m = ctx.run(["mount", "-t", fstype, dev, mnt], timeout=60)
    if m.rc != 0:
        return False, f"mount -t {fstype} exit {m.rc}: {B.err_tail(m, 200)}"
    mounts.append(m.duration_s)
    detail = body() if body else ""
    u = ctx.run(["umount", mnt], timeout=60)
    if u.rc != 0:
        return False, f"umount exit {u.rc}: {B.err_tail(u, 200)}"
    umounts.append(u.duration_s)
    return True, detail


def run(ctx: ScenarioContext) -> None:
    klog = B.KernelLog()
    ctx.clear_dmesg()
    B.ensure_loop(ctx)
    mount_s: list[float] = []
    umount_s: list[float] = []

    ctx.step("1. load module")
    load = B.insmod(ctx)

    ctx.step("2. check filesystem registration")
    grep = ctx.run("cat /proc/filesystems | grep vexfs")
    ctx.note(f"VexFS filesystem registration: {grep.rc}")
    lines = [line.split() for line in grep.stdout.splitlines()]
    ctx.check("VexFS appears in /proc/filesystems",
              load.rc == 0 and grep.rc == 0 and ["vexfs"] in lines,
              f"insmod exit {load.rc}; grep exit {grep.rc}: {grep.stdout.strip()!r}"
              + (" (a block-device filesystem: no 'nodev')" if ["vexfs"] in lines else ""))

    ctx.step("3. create test filesystem image (200 MB) on /dev/loop0")
    img_ok, img_detail = B.make_image(ctx, IMAGE, SIZE_MIB)
    lo_ok, lo_detail = B.losetup(ctx, DEV, IMAGE)

    ctx.step("4. mkfs.vexfs /dev/loop0")
    mk_ok, mk_detail = B.mkfs(ctx, DEV)
    ctx.check("mkfs.vexfs formats the loop device", img_ok and lo_ok and mk_ok,
              f"{img_detail}; {lo_detail}; {mk_detail}")

    ctx.step("5. mount -t vexfs /dev/loop0 /mnt/vexfs_test")
    ctx.run(["mkdir", "-p", MNT])
    m = ctx.run(["mount", "-t", "vexfs", DEV, MNT], timeout=60)
    ctx.note(f"Mount result: {m.rc}")
    fstype = B.mounted(ctx, MNT)
    sysfs = ctx.run("ls /sys/fs/vexfs/loop0").stdout.split()
    mount_ok = m.rc == 0 and fstype == "vexfs" and "blocks_count" in sysfs
    if m.rc == 0:
        mount_s.append(m.duration_s)
    ctx.check("Mount operation succeeds", mount_ok,
              f"mount exit {m.rc} in {m.duration_s:.3f} s" + (f": {B.err_tail(m)}" if m.rc else "")
              + f"; /proc/mounts type {fstype or '-'}; /sys/fs/vexfs/loop0: "
                f"{'present' if sysfs else 'absent'}")
    ctx.check(f"Filesystem mount time < {MOUNT_LIMIT_S:g} s",
              m.rc == 0 and m.duration_s < MOUNT_LIMIT_S, f"{m.duration_s:.3f} s")

    if not mount_ok:
        ctx.note("=== MOUNT FAILED ===")
        ctx.run("dmesg | tail -10")
        ctx.check("Basic file operations work", False, "not attempted: the mount failed")
        ctx.check("Unmount succeeds cleanly", False, "not attempted: the mount failed")
    else:
        ctx.note("=== MOUNT SUCCESSFUL ===")
        ctx.step("5a. basic operations: ls, echo/cat, mkdir, ls")
        ls0 = ctx.run(["ls", "-la", f"{MNT}/"])
        empty = set(_ls_entries(ls0.stdout)) == {".", ".."}
        wr = ctx.run(f'echo "Hello VexFS" > {MNT}/test.txt')
        cat = ctx.run(["cat", f"{MNT}/test.txt"])
        md = ctx.run(["mkdir", f"{MNT}/testdir"])
        ls1 = ctx.run(["ls", "-la", f"{MNT}/"])
        entries = _ls_entries(ls1.stdout)
        txt = entries.get("test.txt", [])
        tdir = entries.get("testdir", [])
        ok_ls = (txt[:1] and txt[0].startswith("-") and txt[4] == str(len(HELLO))
                 and tdir[:1] and tdir[0].startswith("d") and set(entries) == {".", "..", "test.txt", "testdir"})
        ctx.check("Basic file operations work",
                  ls0.rc == 0 and empty and wr.rc == 0 and cat.rc == 0 and cat.stdout == HELLO
                  and md.rc == 0 and ls1.rc == 0 and bool(ok_ls),
                  f"fresh root {'holds only . and ..' if empty else 'has ' + str(sorted(_ls_entries(ls0.stdout)))}; "
                  f"echo exit {wr.rc}; cat exit {cat.rc} -> {cat.stdout!r}; mkdir exit {md.rc}; "
                  f"ls -la: test.txt {' '.join(txt[:5]) or 'missing'}, testdir {' '.join(tdir[:2]) or 'missing'}"
                  + (f", unexpected entries {sorted(set(entries) - {'.', '..', 'test.txt', 'testdir'})}"
                     if set(entries) - {".", "..", "test.txt", "testdir"} else ""))

        ctx.step("5b. cd /; umount /mnt/vexfs_test")
        ctx.note("(no `cd` needed: every guest command is its own process, cwd /root)")
        u = ctx.run(["umount", MNT], timeout=60)
        ctx.note(f"Unmount result: {u.rc}")
        if u.rc == 0:
            umount_s.append(u.duration_s)
        still = B.mounted(ctx, MNT)
        zero_ok, zero_detail = B.counters_at_zero(ctx)
        ctx.check("Unmount succeeds cleanly", u.rc == 0 and not still and zero_ok,
                  f"umount exit {u.rc} in {u.duration_s:.3f} s" + (f": {B.err_tail(u)}" if u.rc else "")
                  + f"; /proc/mounts {'still lists ' + still if still else 'no longer lists it'}; "
                  + zero_detail)
    klog.collect(ctx)

    ctx.step("6. fsck.vexfs -n and the offline reader after umount")
    fs_ok, fs_detail = B.fsck_clean(ctx, DEV)
    ctx.check("fsck.vexfs -n clean after umount", fs_ok, fs_detail)
    offline = B.sh(ctx, ["vexfs", "image", "cat", DEV, "/test.txt"])
    offline_ls = B.sh(ctx, ["vexfs", "image", "ls", DEV, "/"])
    ctx.check("Offline reader sees what the kernel wrote",
              offline.rc == 0 and offline.stdout == HELLO and offline_ls.rc == 0
              and "testdir" in offline_ls.stdout,
              f"vexfs image cat exit {offline.rc} -> {offline.stdout[:80]!r}; image ls exit "
              f"{offline_ls.rc}: {' '.join(offline_ls.stdout.split())[:200]}"
              + (f"; {B.err_tail(offline, 200)}" if offline.rc else ""))

    ctx.step("7. persistence: remount (caches dropped), then after a module reload")

    def verify() -> str:
        cat = ctx.run(["cat", f"{MNT}/test.txt"])
        kind = ctx.run(["stat", "-c", "%F", f"{MNT}/testdir"]).stdout.strip()
        return f"{cat.stdout!r}|{kind}"

    want = f"{HELLO!r}|directory"
    B.drop_caches(ctx)
    ok1, seen1 = _timed_cycle(ctx, "vexfs", DEV, MNT, mount_s, umount_s, verify)
    reload_rm = ctx.run(["rmmod", "vexfs"])
    reload_in = ctx.run(["insmod", ctx.module])
    ok2, seen2 = _timed_cycle(ctx, "vexfs", DEV, MNT, mount_s, umount_s, verify)
    ctx.check("Data persists across umount/mount and module reload",
              ok1 and seen1 == want and reload_rm.rc == 0 and reload_in.rc == 0 and ok2 and seen2 == want,
              f"after remount: {seen1}; rmmod exit {reload_rm.rc}, insmod exit {reload_in.rc}; "
              f"after reload: {seen2} (want {want})")
    fs2_ok, fs2_detail = B.fsck_clean(ctx, DEV)
    ctx.check("fsck.vexfs -n clean after the remounts", fs2_ok, fs2_detail)
    ctx.metric("mount_s", mount_s)
    ctx.metric("umount_s", umount_s)
    if mount_s:
        ctx.check(f"Filesystem mount time < {MOUNT_LIMIT_S:g} s (every mount)",
                  max(mount_s) < MOUNT_LIMIT_S,
                  f"{len(mount_s)} mounts, max {max(mount_s):.3f} s; umount max "
                  f"{max(umount_s) if umount_s else float('nan'):.3f} s")
    klog.collect(ctx)

    ctx.step("8. cleanup")
    B.cleanup(ctx, DEV, IMAGE)

    ctx.step("9. ext4 baseline: same-size image, same VM, same timing")
    ext4_mount: list[float] = []
    ext4_umount: list[float] = []
    ctx.run("modprobe ext4")
    e_img_ok, e_img = B.make_image(ctx, EXT4_IMAGE, SIZE_MIB)
    ctx.metrics.pop("dd_s", None)  # keep dd_s for the VexFS image only
    ctx.run(["losetup", EXT4_DEV, EXT4_IMAGE])
    before = set(klog.ignored)
    mkext4 = ctx.run(["mkfs.ext4", "-q", "-F", EXT4_DEV], timeout=120)
    klog.collect(ctx)
    ctx.metric("ext4_mkfs_write_zeroes_lines", len(set(klog.ignored) - before))
    ctx.run(["mkdir", "-p", EXT4_MNT])
    e_ok = e_img_ok and mkext4.rc == 0
    e_detail = ""
    for _ in range(max(1, len(mount_s))):
        if not e_ok:
            break
        e_ok, e_detail = _timed_cycle(ctx, "ext4", EXT4_DEV, EXT4_MNT, ext4_mount, ext4_umount)
    ctx.run(["losetup", "-d", EXT4_DEV])
    ctx.run(["rm", "-f", EXT4_IMAGE])
    ctx.metric("ext4_mount_s", ext4_mount)
    ctx.metric("ext4_umount_s", ext4_umount)
    ctx.note(f"ext4 baseline: {e_img}; mkfs.ext4 exit {mkext4.rc}; mount {ext4_mount}, "
             f"umount {ext4_umount} {e_detail}")

    klog.collect(ctx)
    klog.record(ctx)
    ctx.check("No kernel panics or warnings during filesystem operations", not klog.problems,
              "none at warn level or above (taint notices excepted"
              + (f"; {len(klog.ignored)} environment line(s) ignored, see ignored_kernel_lines"
                 if klog.ignored else "") + ")"
              if not klog.problems else " | ".join(klog.problems[:20]))


SCENARIO = Scenario(id="S4", name="Filesystem registration", fn=run,
                    description="200 MB VexFS: /proc/filesystems, mkfs, mount, file ops, umount, "
                                "fsck, persistence, ext4 baseline")
