"""I/O errors and full disks under a mounted VexFS (run in one VM boot).

Each check is a shell fragment that prints `R <name> <value>` lines; the
host parses them into a dict and the tests assert on it. Device-mapper
tables are switched live under the mounted filesystem (`dmsetup load` +
`suspend`/`resume`), so the filesystem sees a healthy device turn bad:

 - flakey error_writes: writes fail with EIO, reads work;
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
setup_dm() {{ # $1 name, $2 size MB -> /dev/mapper/$1 over a loop device, formatted
  truncate -s $2M /tmp/$1.img
  L=$(losetup -f --show /tmp/$1.img)
  S=$(blockdev --getsz $L)
  # no udev in the guest: dmsetup makes the /dev/mapper node itself
  dmsetup create --noudevsync $1 --table "0 $S linear $L 0"
  dmsetup mknodes $1
  $MKFS -q /dev/mapper/$1
  mkdir -p /mnt/$1
  mount -t vexfs /dev/mapper/$1 /mnt/$1
  R $1_mounted "$(mountpoint -q /mnt/$1 && echo yes || echo no)"
}}
swap_table() {{ dmsetup load $1 --table "$2" && dmsetup suspend --noudevsync --nolockfs $1 && dmsetup resume --noudevsync $1; }}
linear() {{ echo "0 $S linear $L 0"; }}
"""

FLAKEY_ERROR_WRITES = """
setup_dm few 16
mkdir /mnt/few/d; echo before > /mnt/few/d/old; dd if=/dev/urandom of=/mnt/few/big bs=4k count=64 2>/dev/null; sync
swap_table few "0 $S flakey $L 0 0 5 1 error_writes"
R ew_write "$(errno_of sh -ec 'dd if=/dev/zero of=/mnt/few/new bs=4k count=32 conv=fsync 2>&1')"
R ew_sync "$(errno_of sh -ec 'echo x > /mnt/few/d/n2; sync -f /mnt/few')"
R ew_read_old "$(errno_of cat /mnt/few/d/old)"
R ew_after_error "$(errno_of touch /mnt/few/after)"
R ew_ro "$(grep -q ' /mnt/few vexfs ro' /proc/mounts && echo yes || echo no)"
R ew_sysfs_errors "$(cat /sys/fs/vexfs/dm-*/error_count 2>/dev/null | head -1)"
swap_table few "$(linear)"
R ew_umount "$(errno_of umount /mnt/few)"
R ew_fsck "$(fsck_rc /dev/mapper/few | tail -1)"
dmsetup remove --noudevsync few; losetup -d $L
"""

FLAKEY_DROP_WRITES = """
setup_dm fdw 16
echo before > /mnt/fdw/old; sync
swap_table fdw "0 $S flakey $L 0 0 5 1 drop_writes"
R dw_write "$(errno_of sh -ec 'dd if=/dev/urandom of=/mnt/fdw/new bs=4k count=16 conv=fsync 2>&1; mkdir /mnt/fdw/nd; sync')"
swap_table fdw "$(linear)"
R dw_umount "$(errno_of umount /mnt/fdw)"
R dw_fsck "$(fsck_rc /dev/mapper/fdw | tail -1)"
dmsetup remove --noudevsync fdw; losetup -d $L
"""

FLAKEY_ALL_IO = """
setup_dm fall 16
mkdir /mnt/fall/d; for i in 1 2 3 4 5; do echo f$i > /mnt/fall/d/f$i; done
dd if=/dev/urandom of=/mnt/fall/big bs=4k count=32 2>/dev/null; sync
umount /mnt/fall; mount -t vexfs /dev/mapper/fall /mnt/fall   # cold caches
swap_table fall "0 $S flakey $L 0 0 5"
R io_read "$(errno_of cat /mnt/fall/big)"
R io_ls "$(errno_of ls /mnt/fall/d)"
R io_write "$(errno_of sh -ec 'echo x > /mnt/fall/n; sync -f /mnt/fall')"
swap_table fall "$(linear)"
R io_umount "$(errno_of umount /mnt/fall)"
R io_fsck "$(fsck_rc /dev/mapper/fall | tail -1)"
dmsetup remove --noudevsync fall; losetup -d $L
"""

ERROR_TARGET = """
setup_dm ferr 16
echo data > /mnt/ferr/f; sync
umount /mnt/ferr; mount -t vexfs /dev/mapper/ferr /mnt/ferr
swap_table ferr "0 $S error"
R et_read "$(errno_of cat /mnt/ferr/f)"
R et_write "$(errno_of sh -ec 'echo y > /mnt/ferr/g; sync -f /mnt/ferr')"
R et_umount "$(errno_of umount /mnt/ferr)"
swap_table ferr "$(linear)"
R et_fsck "$(fsck_rc /dev/mapper/ferr | tail -1)"
dmsetup remove --noudevsync ferr; losetup -d $L
"""

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
