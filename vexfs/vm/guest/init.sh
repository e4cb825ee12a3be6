#!/bin/sh
# PID 1 of every VexFS test VM (static busybox, from the initramfs).
#
# Brings up virtio + 9p, mounts the host's root read-only at /newroot with
# writable tmpfs/overlays where tools need to write, exposes the guest
# kernel's modules at /lib/modules/<version>, mounts the per-boot job share
# (read-write) at /run/vexfs, then runs /run/vexfs/job.sh chrooted into the
# host root. When the job ends the VM powers off (QEMU runs with
# -no-reboot, so a panic=-1 reboot also ends QEMU).
#
# Parameters come from the kernel command line, which the kernel passes to
# init as environment variables: vexfs_moddir (host path of the unpacked
# modules tree), vexfs_cache (9p cache mode).
export PATH=/bin:/sbin
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s /bin

say() { echo "vexfs-init: $*" > /dev/console; }
die() {
	say "FATAL: $*"
	echo "VEXFS-INIT-FAILED" > /dev/console
	poweroff -f
}

KVER=$(cat /etc/kernel-version)
for m in $(cat /modules/order); do
	insmod "/modules/$m" 2>/dev/null || say "insmod $m failed"
done

R=/newroot
opts="trans=virtio,version=9p2000.L,msize=512000,cache=${vexfs_cache:-loose}"
mount -t 9p -o "ro,$opts" hostroot $R || die "cannot mount the host root over 9p"

# Writable places. tmpfs where the host content is not needed, overlays
# (tmpfs upper over the read-only host dir) where it is. /tmp and /mnt are
# overlays, not plain tmpfs: a checkout (and its .venv and .cache) may live
# under either, as CI's fresh clones can, and must stay visible in the guest.
mount -t tmpfs -o mode=755 run $R/run || die "tmpfs /run"
mkdir -p /ovl
mount -t tmpfs -o mode=755 ovl /ovl
# vexfs_overlay=usr,...: more overlays a test asks for (installing .debs
# writes /usr; "modules" makes /lib/modules/<ver> writable for DKMS/depmod).
extra=$(echo "${vexfs_overlay:-}" | tr ',' ' ')
for d in tmp mnt etc var root home srv media opt $(echo " $extra " | sed 's/ modules / /'); do
	[ -d "$R/$d" ] || continue
	mkdir -p /ovl/$d/u /ovl/$d/w
	mount -t overlay -o "lowerdir=$R/$d,upperdir=/ovl/$d/u,workdir=/ovl/$d/w" "ovl_$d" "$R/$d" ||
		die "overlay on /$d"
done

# The guest kernel's own modules, whatever the host runs.
mount -t tmpfs -o mode=755 modules $R/lib/modules || die "tmpfs /lib/modules"
mkdir -p "$R/lib/modules/$KVER"
case " $extra " in
*" modules "*)
	mkdir -p /ovl/modules/u /ovl/modules/w
	mount -t overlay -o "lowerdir=$R$vexfs_moddir,upperdir=/ovl/modules/u,workdir=/ovl/modules/w" \
		ovl_modules "$R/lib/modules/$KVER" || die "modules overlay ($vexfs_moddir)" ;;
*)
	mount -o bind "$R$vexfs_moddir" "$R/lib/modules/$KVER" || die "modules bind ($vexfs_moddir)" ;;
esac

mount -t proc proc $R/proc
mount -t sysfs sys $R/sys
mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
# devtmpfs has no /dev/fd: bash's process substitution (DKMS uses it) needs it.
[ -e $R/dev/fd ] || ln -s /proc/self/fd $R/dev/fd
for i in 0:stdin 1:stdout 2:stderr; do
	[ -e "$R/dev/${i#*:}" ] || ln -s "/proc/self/fd/${i%%:*}" "$R/dev/${i#*:}"
done
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null

mkdir -p $R/run/vexfs
mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,cache=none" vexfsjob $R/run/vexfs ||
	die "cannot mount the job share"

hostname vexfs-vm
echo vexfs-vm > $R/etc/hostname
ip link set lo up 2>/dev/null
# Boot ran with `quiet`; from here on every printk up to KERN_INFO reaches
# the console, so module messages and kernel reports stream to the log.
echo 7 > /proc/sys/kernel/printk

say "root ready"
# QEMU 7.2's TCG mis-emulates AVX2 gathers whose index register is ymm4
# (every lane reads element 0), which makes numpy's AVX2 argsort and
# argpartition return wrong answers in the guest. X86_V3 switches off
# numpy's AVX2 code paths only; the guest CPU keeps AVX2/FMA, and
# vexfs.ko's AVX2 kernels use no gathers (tests/host/test_vector_build.py).
chroot $R /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 TERM=dumb NPY_DISABLE_CPU_FEATURES=X86_V3 \
	/bin/sh /run/vexfs/job.sh < /dev/null
rc=$?
say "job exited $rc"
sync
poweroff -f
