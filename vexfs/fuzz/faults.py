"""I/O errors and full disks under a mounted VexFS (run in one VM boot).

Each check is a shell fragment that prints `R <name> <value>` lines; the
host parses them into a dict and the tests assert on it. Device-mapper
tables are switched live under the mounted filesystem (`dmsetup load` +
`suspend`/`resume`), so the filesystem sees a healthy device turn bad:

 - flakey error_writes: writes fail with EIO, reads work;
 - the same, watching the first failed metadata write: with the default
   errors=remount-ro the mount must go read-only at that write (not later,
   on stale data re-read from the disk); with errors=continue the newest
   bitmaps stay in memory, and a changed bitmap that was lost from memory
   is refused rather than re-read;
 - flakey drop_writes: writes are silently lost;
 - flakey with no features: every I/O fails (reads too);
 - error target: the whole device is gone.

After the fault is removed (table back to linear) the filesystem is
unmounted and `fsck.vexfs -n` must exit 0 (consistent) or 4 with the
problems listed; never 8 (operational) or a traceback.

ENOSPC: a small image filled with file data, then with inodes, then with a
vector collection through VEXFS_IOC_INSERT; each must fail with ENOSPC,
fsck must be clean, and the space must be reusable after deletes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from vexfs.fuzz import cbuild
from vexfs.fuzz.vmutil import boot, default_module
from vexfs.vm.paths import REPO_ROOT
from vexfs.vm.session import GuestCrashed

log = logging.getLogger(__name__)

VENV = REPO_ROOT / ".venv" / "bin"

COMMON = f"""
MKFS={VENV}/mkfs.vexfs
FSCK={VENV}/fsck.vexfs
modprobe dm-flakey
modprobe dm-mod 2>/dev/null
R() {{ echo "R $1 $2"; }}
errno_of() {{ # run a command, print the errno name it reported (or OK)
  out=$("$@" 2>&1) && {{ echo OK; return; }}
  case "$out" in
    *"Input/output error"*) echo EIO;; *"Read-only file system"*) echo EROFS;;
    *"No space left"*) echo ENOSPC;; *"Structure needs cleaning"*) echo EUCLEAN;;
    *) echo "OTHER:$(echo "$out" | tr ' \\n' '__' | cut -c1-80)";;
  esac
}}
fsck_rc() {{ $FSCK -n "$1" > /tmp/fsck.out 2>&1; rc=$?; sed 's/^/  fsck: /' /tmp/fsck.out | tail -15 >&2; echo $rc; }}
setup_dm() {{ # $1 name, $2 size MB [, $3 mount options] -> /dev/mapper/$1 over a loop device, formatted
  truncate -s $2M /tmp/$1.img
  L=$(losetup -f --show /tmp/$1.img)
  S=$(blockdev --getsz $L)
  # no udev in the guest: dmsetup makes the /dev/mapper node itself
  dmsetup create --noudevsync $1 --table "0 $S linear $L 0"
  dmsetup mknodes $1
  $MKFS -q /dev/mapper/$1
  mkdir -p /mnt/$1
  mount -t vexfs ${{3:+-o $3}} /dev/mapper/$1 /mnt/$1
  R $1_mounted "$(mountpoint -q /mnt/$1 && echo yes || echo no)"
}}
swap_table() {{ dmsetup load $1 --table "$2" && dmsetup suspend --noudevsync --nolockfs $1 && dmsetup resume --noudevsync $1; }}
linear() {{ echo "0 $S linear $L 0"; }}
cold_remount() {{ umount /mnt/$1 && mount -t vexfs /dev/mapper/$1 /mnt/$1; }}  # empty caches
finish_dm_keep() {{ # $1 name, $2 result prefix [, $3 umount_first: unmount before the fault is removed]: fault removed, umount, fsck -n
  [ -n "$3" ] || swap_table $1 "$(linear)"
  R $2_umount "$(errno_of umount /mnt/$1)"
  [ -z "$3" ] || swap_table $1 "$(linear)"
  R $2_fsck "$(fsck_rc /dev/mapper/$1 | tail -1)"
  R $2_fsck_problems "$(grep -v -e 'files, ' -e 'problems found' -e 'is clean' -e 'run fsck.vexfs -y' /tmp/fsck.out | sed 's/^fsck.vexfs: //; s/^[^:]*: //' | tr '\n' '|')"
}}
teardown_dm() {{ dmsetup remove --noudevsync $1; losetup -d $L; }}
finish_dm() {{ finish_dm_keep "$@"; teardown_dm $1; }}
repair_dm() {{ # $1 name, $2 result prefix: after finish_dm_keep, fsck -y, fsck -n, mount and read the old file
  $FSCK -y /dev/mapper/$1 > /tmp/fsck_y.out 2>&1; R $2_fsck_y $?
  sed 's/^/  fsck -y: /' /tmp/fsck_y.out | tail -8 >&2
  R $2_fsck_after "$(fsck_rc /dev/mapper/$1 | tail -1)"
  R $2_remount "$(errno_of mount -t vexfs /dev/mapper/$1 /mnt/$1)"
  R $2_old_after "$(cat /mnt/$1/d/old 2>&1)"
  umount /mnt/$1 2>/dev/null
  teardown_dm $1
}}
start_write_errors() {{ # $1 name: an old file, then every write fails; M marks dmesg
  mkdir /mnt/$1/d; echo before > /mnt/$1/d/old; sync
  swap_table $1 "0 $S flakey $L 0 0 5 1 error_writes"
  M=$(dmesg | wc -l)
}}
meta_dmesg() {{ # $1 name, $2 result prefix: the kernel's lines since M, counted
  dmesg | tail -n +$((M + 1)) > /tmp/$1.dmesg
  R $2_lost_lines "$(grep -c 'vexfs (dm-[0-9]*): error: lost write of metadata block' /tmp/$1.dmesg)"
  R $2_ro_line "$(grep -c 'vexfs (dm-[0-9]*): error: remounting filesystem read-only' /tmp/$1.dmesg)"
  R $2_twice "$(grep -c -e 'allocated twice' -e 'free in the bitmap but in use' -e 'already free' /tmp/$1.dmesg)"
  R $2_abort_line "$(grep -c 'vexfs (dm-[0-9]*): error: [a-z_]*: the journal was aborted' /tmp/$1.dmesg)"
  R $2_abort_ro_line "$(grep -c 'an aborted journal takes no transactions' /tmp/$1.dmesg)"
}}
"""


def _dm_section(dev: str, prefix: str, body: str, mount_opts: str = "",
                umount_first: bool = False, repair: bool = False) -> str:
    """A fault section on /dev/mapper/<dev> (16 MiB, formatted, mounted with
    `mount_opts`): `body`, then the fault removed (after the unmount with
    `umount_first`), fsck -n and teardown, recorded as <prefix>_umount,
    <prefix>_fsck and <prefix>_fsck_problems. With `repair`, before the
    teardown: fsck -y (<prefix>_fsck_y), fsck -n again (<prefix>_fsck_after),
    a mount (<prefix>_remount) and the old file read back (<prefix>_old_after)."""
    end = (f"finish_dm_keep {dev} {prefix}\nrepair_dm {dev} {prefix}\n" if repair else
           f"finish_dm {dev} {prefix}{' umount_first' if umount_first else ''}\n")
    return f"setup_dm {dev} 16 {mount_opts}\n{body.strip()}\n{end}"


FLAKEY_ERROR_WRITES = _dm_section("few", "ew", body="""
mkdir /mnt/few/d; echo before > /mnt/few/d/old; dd if=/dev/urandom of=/mnt/few/big bs=4k count=64 2>/dev/null; sync
swap_table few "0 $S flakey $L 0 0 5 1 error_writes"
R ew_write "$(errno_of sh -ec 'dd if=/dev/zero of=/mnt/few/new bs=4k count=32 conv=fsync 2>&1')"
R ew_sync "$(errno_of sh -ec 'echo x > /mnt/few/d/n2; sync -f /mnt/few')"
R ew_read_old "$(errno_of cat /mnt/few/d/old)"
R ew_after_error "$(errno_of touch /mnt/few/after)"
R ew_ro "$(grep -q ' /mnt/few vexfs ro' /proc/mounts && echo yes || echo no)"
R ew_sysfs_errors "$(cat /sys/fs/vexfs/dm-*/error_count 2>/dev/null | head -1)"
""")

FLAKEY_DROP_WRITES = _dm_section("fdw", "dw", body="""
echo before > /mnt/fdw/old; sync
swap_table fdw "0 $S flakey $L 0 0 5 1 drop_writes"
R dw_write "$(errno_of sh -ec 'dd if=/dev/urandom of=/mnt/fdw/new bs=4k count=16 conv=fsync 2>&1; mkdir /mnt/fdw/nd; sync')"
""")

FLAKEY_ALL_IO = _dm_section("fall", "io", body="""
mkdir /mnt/fall/d; for i in 1 2 3 4 5; do echo f$i > /mnt/fall/d/f$i; done
dd if=/dev/urandom of=/mnt/fall/big bs=4k count=32 2>/dev/null; sync
cold_remount fall
swap_table fall "0 $S flakey $L 0 0 5"
R io_read "$(errno_of cat /mnt/fall/big)"
R io_ls "$(errno_of ls /mnt/fall/d)"
R io_write "$(errno_of sh -ec 'echo x > /mnt/fall/n; sync -f /mnt/fall')"
""")

ERROR_TARGET = _dm_section("ferr", "et", umount_first=True, body="""
echo data > /mnt/ferr/f; sync
cold_remount ferr
swap_table ferr "0 $S error"
R et_read "$(errno_of cat /mnt/ferr/f)"
R et_write "$(errno_of sh -ec 'echo y > /mnt/ferr/g; sync -f /mnt/ferr')"
""")

# The first failed metadata write (errors=remount-ro, the default): a new
# file's bitmaps, inode and directory block are dirty in memory when the
# device starts failing writes; the syncfs that writes them must report EIO
# and leave the mount read-only, with one dmesg line per lost block.
FLAKEY_META_WRITE = _dm_section("fmw", "mw", repair=True, body="""
start_write_errors fmw
R mw_create "$(errno_of sh -ec 'echo new > /mnt/fmw/d/n1')"
R mw_sync "$(errno_of sync -f /mnt/fmw)"
R mw_ro "$(grep -q ' /mnt/fmw vexfs ro' /proc/mounts && echo yes || echo no)"
R mw_touch "$(errno_of touch /mnt/fmw/d/n2)"
R mw_mkdir "$(errno_of mkdir /mnt/fmw/d2)"
R mw_read_old "$(errno_of cat /mnt/fmw/d/old)"
R mw_sysfs_errors "$(cat /sys/fs/vexfs/dm-*/error_count 2>/dev/null | head -1)"
meta_dmesg fmw mw
R mw_bitmap_named "$(grep -c 'error: lost write of metadata block [0-9]* (.* bitmap block' /tmp/fmw.dmesg)"
R mw_error_line "$(grep -m1 'error: vexfs_[a-z_]*: I/O error writing metadata' /tmp/fmw.dmesg | sed 's/.*error: //')"
R mw_first_vexfs_error "$(grep -m1 'vexfs (dm-[0-9]*): error:' /tmp/fmw.dmesg | sed 's/.*error: //')"
""")

# The same fault under errors=continue: the mount stays read-write and
# allocation goes on from the bitmaps in memory (the newest copy); once a
# changed bitmap has been dropped from memory after failing to write, it is
# refused (EIO) instead of being read back stale from the disk.
FLAKEY_META_CONTINUE = _dm_section("fmc", "mc", mount_opts="errors=continue", repair=True,
                                   body="""
start_write_errors fmc
R mc_create "$(errno_of sh -ec 'echo a > /mnt/fmc/d/c1')"
R mc_sync "$(errno_of sync -f /mnt/fmc)"
R mc_rw "$(grep -q ' /mnt/fmc vexfs rw' /proc/mounts && echo yes || echo no)"
R mc_ro "$(grep -q ' /mnt/fmc vexfs ro' /proc/mounts && echo yes || echo no)"
R mc_create_after "$(errno_of sh -ec 'echo b > /mnt/fmc/d/c2')"
R mc_ls_after "$(ls /mnt/fmc/d | tr '\\n' ' ')"
# The syncfs left the failed buffers restored (dirty). Let the flusher
# write them (no vexfs code runs on that path, so nothing restores them
# again): the writes fail and leave them clean. BLKFLSBUF on the loop
# device below (once it has a cached page: invalidate_bdev() does nothing
# for an empty mapping) empties the per-CPU buffer_head LRUs and page
# vectors, whose references would keep them; then the cache drop takes
# them out of memory.
wb=$(cat /proc/sys/vm/dirty_writeback_centisecs); ex=$(cat /proc/sys/vm/dirty_expire_centisecs)
echo 10 > /proc/sys/vm/dirty_writeback_centisecs; echo 1 > /proc/sys/vm/dirty_expire_centisecs
i=0; while [ $i -lt 50 ] && ! grep -q '^Dirty: *0 kB' /proc/meminfo; do sleep 0.2; i=$((i+1)); done
R mc_dirty_before_drop "$(grep '^Dirty:' /proc/meminfo | tr -s ' ' | cut -d' ' -f2)"
dd if=$L of=/dev/null bs=4k count=1 2>/dev/null; blockdev --flushbufs $L; echo 3 > /proc/sys/vm/drop_caches
echo $wb > /proc/sys/vm/dirty_writeback_centisecs; echo $ex > /proc/sys/vm/dirty_expire_centisecs
# in the root directory: its inode stays in memory, so the first tracked
# block the mkdir needs is the inode bitmap
R mc_mkdir_dropped "$(errno_of mkdir /mnt/fmc/c3)"
meta_dmesg fmc mc
R mc_refused "$(grep -c 'error: block [0-9]* ([a-z]* bitmap block [0-9]*) changed on this mount and lost from memory' /tmp/fmc.dmesg)"
R mc_ls_dropped "$(errno_of ls /mnt/fmc/d)"
""")

ENOSPC = """
truncate -s 8M /tmp/full.img
L=$(losetup -f --show /tmp/full.img)
$MKFS -q -N 256 $L
mkdir -p /mnt/full; mount -t vexfs $L /mnt/full
R full_mounted "$(mountpoint -q /mnt/full && echo yes || echo no)"
free0=$(df -k /mnt/full | awk 'NR==2{print $4}')
R sp_data "$(errno_of dd if=/dev/zero of=/mnt/full/fill bs=64k count=1000)"
R sp_df_full "$(df -k /mnt/full | awk 'NR==2{print $4}')"
i=0; res=OK
while [ $i -lt 400 ]; do
  if ! ( : > /mnt/full/i_$i ) 2>/tmp/e; then res=$(grep -q 'No space' /tmp/e && echo ENOSPC || cat /tmp/e); break; fi
  i=$((i+1)); done
R sp_inodes "$res"
R sp_inodes_made $i
rm -f /mnt/full/fill
R sp_vec "$(errno_of $FZ mkcoll /mnt/full/coll 64 200000)"
R sp_vec_stat "$(errno_of $FZ mkcoll /mnt/full/coll2 4 10)"
umount /mnt/full
R sp_fsck_full "$(fsck_rc $L | tail -1)"
mount -t vexfs $L /mnt/full
rm -f /mnt/full/coll /mnt/full/coll2 /mnt/full/i_*
sync
R sp_df_after_delete "$(df -k /mnt/full | awk 'NR==2{print $4}')"
R sp_df_initial "$free0"
R sp_reuse "$(errno_of dd if=/dev/urandom of=/mnt/full/again bs=64k count=40 conv=fsync)"
md5a=$(md5sum < /mnt/full/again)
umount /mnt/full; mount -t vexfs $L /mnt/full
R sp_reuse_intact "$([ "$(md5sum < /mnt/full/again)" = "$md5a" ] && echo yes || echo no)"
umount /mnt/full
R sp_fsck_after "$(fsck_rc $L | tail -1)"
losetup -d $L
"""

SECTIONS = {"flakey_error_writes": FLAKEY_ERROR_WRITES,
            "flakey_meta_write": FLAKEY_META_WRITE,
            "flakey_meta_continue": FLAKEY_META_CONTINUE,
            "flakey_drop_writes": FLAKEY_DROP_WRITES,
            "flakey_all_io": FLAKEY_ALL_IO, "error_target": ERROR_TARGET, "enospc": ENOSPC}


def parse(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("R "):
            parts = line.split(" ", 2)
            out[parts[1]] = parts[2].strip() if len(parts) > 2 else ""
    return out


def run_faults(out_dir: Path, module: Path | None = None,
               sections: list[str] | None = None) -> dict:
    """Run the fault sections in one VM (a fresh one after a crash, so one
    bug does not hide the others); returns {results, transcript, crashes,
    dmesg, counters, rmmod_rc}."""
    module = Path(module) if module else default_module()
    fz = cbuild.build("fz_ioctl")
    chosen = sections or list(SECTIONS)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"results": {}, "transcript": {}, "crashes": [], "dmesg": "", "boots": 0}
    vm = None
    try:
        for name in chosen:
            if vm is None:
                result["boots"] += 1
                vm = boot(f"faults{result['boots']}", out_dir / "console", module, [],
                          hang_timeout=120, memory="1G")
            script = f"FZ={fz}\n" + COMMON + SECTIONS[name]
            t0 = time.monotonic()
            try:
                res = vm.run(script, timeout=600, hang_timeout=300)
            except GuestCrashed as e:
                result["crashes"].append({"section": name, "kind": e.crash.kind,
                                          "title": e.crash.title,
                                          "trace": e.crash.trace[-5000:],
                                          "console": str(vm.log_paths[0]) if vm.log_paths
                                          else ""})
                vm.kill()
                vm = None
                continue
            result["transcript"][name] = res.stdout + res.stderr
            result["results"].update(parse(res.stdout))
            log.info("fault section %s: %.1f s", name, time.monotonic() - t0)
        if vm is not None:
            result["dmesg"] = vm.run("dmesg").stdout
            result["counters"] = vm.run("cat /sys/fs/vexfs/mounts /sys/fs/vexfs/inodes "
                                        "/sys/fs/vexfs/buffers").stdout.split()
            result["rmmod_rc"] = vm.run("rmmod vexfs").rc
            time.sleep(0.3)
            vm.watch.flush()
            for c in vm.watch.crashes:
                result["crashes"].append({"section": "end", "kind": c.kind, "title": c.title,
                                          "trace": c.trace[-5000:]})
    finally:
        if vm is not None:
            vm.kill()
    (out_dir / "faults.txt").write_text("\n\n".join(f"== {k}\n{v}" for k, v in
                                                     result["transcript"].items()))
    import json
    (out_dir / "faults.json").write_text(json.dumps(result, indent=2))
    return result
