// SPDX-License-Identifier: GPL-2.0
/*
 * VexFS ioctl entry point: copies the argument struct, checks
 * every field (ranges, flags, reserved fields, alignment, size products),
 * the file (regular, open mode) and the mount (read-only, write access),
 * then calls the collection code in vector.c.
 *
 * Errors (see docs/vector-api.md): ENOTTY unknown command or not a
 * collection; EINVAL bad field; EFAULT bad pointer; EBADF fd lacks the
 * read/write mode the operation needs; EROFS read-only mount; EPERM
 * immutable/append-only file, CREATE by a non-owner, UPSERT/DELETE on an
 * O_APPEND fd; EEXIST/ENOTEMPTY create on a collection or a non-empty
 * file; EUCLEAN corrupt collection; ENOSPC/EFBIG no room (EFBIG also past
 * RLIMIT_FSIZE); EINTR a fatal signal. Mutations follow write(2)'s rules
 * (vector.c coll_write_begin(), end_write() below).
 *
 * All structs have the same layout for 32- and 64-bit callers, so
 * .compat_ioctl can be compat_ptr_ioctl().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/fsnotify.h>
#include <linux/kernel.h>
#include <linux/mount.h>
#include <linux/overflow.h>
#include <linux/uaccess.h>

#include "vector.h"

/* struct sizes are ABI: keep them in step with the uapi header comments */
static_assert(sizeof(struct vexfs_ioc_create) == 16);
static_assert(sizeof(struct vexfs_ioc_insert) == 40);
static_assert(sizeof(struct vexfs_ioc_get) == 40);
static_assert(sizeof(struct vexfs_ioc_delete) == 24);
static_assert(sizeof(struct vexfs_ioc_search) == 40);
static_assert(sizeof(struct vexfs_ioc_stats) == 56);
static_assert(sizeof(struct vexfs_ioc_index_build) == 24);
static_assert(sizeof(struct vexfs_ioc_index_assign) == 32);
static_assert(sizeof(struct vexfs_ioc_index_search) == 48);
static_assert(sizeof(struct vexfs_ioc_index_stats) == 48);

/* a user buffer pointer must be aligned to its element size */
static bool uptr_ok(u64 ptr, size_t align)
{
	return IS_ALIGNED(ptr, align);
}

/*
 * rows * cols * elem bytes must not overflow and must fit in the address
 * space; the result itself is not used to allocate (work is chunked), only
 * to reject absurd arguments early.
 */
static int size_ok(u64 rows, u64 cols, u64 elem)
{
	u64 bytes;

	if (check_mul_overflow(rows, cols, &bytes) ||
	    check_mul_overflow(bytes, elem, &bytes) || bytes > TASK_SIZE_MAX)
		return -EINVAL;
	return 0;
}

static int need_mode(struct file *filp, fmode_t mode)
{
	return (filp->f_mode & mode) == mode ? 0 : -EBADF;
}

/*
 * Mutations: writable mount (EROFS first, even for a read-only fd, so the
 * cause is clear), writable fd, file neither immutable nor append-only.
 * On success the caller owns a mnt_want_write_file() reference.
 */
static int begin_write(struct file *filp)
{
	struct inode *inode = file_inode(filp);
	int err;

	err = mnt_want_write_file(filp);
	if (err)
		return err;
	err = need_mode(filp, FMODE_WRITE);
	if (!err && (IS_IMMUTABLE(inode) || IS_APPEND(inode)))
		err = -EPERM;
	if (err)
		mnt_drop_write_file(filp);
	return err;
}

/*
 * The end of a mutation, as for write(2) (generic_file_write_iter): if the
 * file changed, an inotify/fanotify IN_MODIFY event, and for O_SYNC/O_DSYNC
 * descriptors, -o sync mounts and chattr +S files the change is on disk
 * before the ioctl returns (fsync outside the inode lock, as
 * generic_write_sync). Drops the mnt_want_write_file() reference.
 */
static int end_write(struct file *filp, int err, bool changed)
{
	struct inode *inode = file_inode(filp);

	if (changed) {
		fsnotify_modify(filp);
		if (IS_SYNC(inode) || (filp->f_flags & O_DSYNC)) {
			bool datasync = !IS_SYNC(inode) &&
					!(filp->f_flags & __O_SYNC);
			int err2 = vfs_fsync_range(filp, 0, LLONG_MAX, datasync);

			if (!err)
				err = err2;
		}
	}
	mnt_drop_write_file(filp);
	return err;
}

static long ioc_create(struct file *filp, void __user *uarg)
{
	struct vexfs_ioc_create a;
	int err;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.dtype > VEXFS_DTYPE_F16 || a.dim < 1 ||
	    a.dim > VEXFS_MAX_DIM || a.metric > VEXFS_METRIC_IP)
		return -EINVAL;
	err = begin_write(filp);
	if (err)
		return err;
	err = vexfs_coll_create(filp, a.dim, a.metric, a.dtype);
	return end_write(filp, err, !err);
}

/*
 * The dimension is a property of the collection, so checks that need it
 * (size of the vectors buffer) happen with the maximum dimension here and
 * exactly in vector.c, whose copies are bounded per chunk anyway.
 */
static long ioc_insert(struct file *filp, void __user *uarg)
{
	struct vexfs_ioc_insert a;
	int err, err2 = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags & ~VEXFS_INSERT_FLAGS || a.count > VEXFS_MAX_BATCH ||
	    !uptr_ok(a.ids_ptr, 8) || !uptr_ok(a.vectors_ptr, 2) ||
	    size_ok(a.count, VEXFS_MAX_DIM, 4))
		return -EINVAL;
	err = begin_write(filp);
	if (err)
		return err;
	err = vexfs_coll_insert(filp, &a);
	err = end_write(filp, err, a.added || a.updated);
	/* report the counts even on error: a failed upsert may be partial */
	if (copy_to_user(uarg, &a, sizeof(a)))
		err2 = -EFAULT;
	return err ? err : err2;
}

static long ioc_get(struct file *filp, void __user *uarg)
{
	struct vexfs_ioc_get a;
	int err;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.count > VEXFS_MAX_BATCH || !uptr_ok(a.ids_ptr, 8) ||
	    !uptr_ok(a.vectors_ptr, 2) || size_ok(a.count, VEXFS_MAX_DIM, 4))
		return -EINVAL;
	err = need_mode(filp, FMODE_READ);
	if (err)
		return err;
	err = vexfs_coll_get(filp, &a);
	if (err)
		return err;
	return copy_to_user(uarg, &a, sizeof(a)) ? -EFAULT : 0;
}

static long ioc_delete(struct file *filp, void __user *uarg)
{
	struct vexfs_ioc_delete a;
	int err, err2 = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.count > VEXFS_MAX_BATCH || !uptr_ok(a.ids_ptr, 8))
		return -EINVAL;
	err = begin_write(filp);
	if (err)
		return err;
	err = vexfs_coll_delete(filp, &a);
	err = end_write(filp, err, a.deleted);
	if (copy_to_user(uarg, &a, sizeof(a)))
		err2 = -EFAULT;
	return err ? err : err2;
}

static long ioc_search(struct file *filp, void __user *uarg)
{
	struct vexfs_ioc_search a;
	int err;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.reserved || a.k < 1 || a.k > VEXFS_MAX_K ||
	    a.nq > VEXFS_MAX_NQ || !uptr_ok(a.queries_ptr, 4) ||
	    !uptr_ok(a.distances_ptr, 4) || !uptr_ok(a.ids_ptr, 8) ||
	    size_ok(a.nq, VEXFS_MAX_DIM, 4) || size_ok(a.nq, a.k, 8))
		return -EINVAL;
	err = need_mode(filp, FMODE_READ);
	if (err)
		return err;
	return vexfs_coll_search(filp, &a);
}

static long ioc_stats(struct file *filp, void __user *uarg)
{
	struct vexfs_ioc_stats a;
	int err;

	/* STATS reads the header: the descriptor must be open for reading */
	err = need_mode(filp, FMODE_READ);
	if (err)
		return err;
	memset(&a, 0, sizeof(a));	/* reserved fields go out as zero */
	err = vexfs_coll_stats(filp, &a);
	if (err)
		return err;
	return copy_to_user(uarg, &a, sizeof(a)) ? -EFAULT : 0;
}

/* ---- ANN index (index.c) ---- */

static long ioc_index_build(struct file *filp, void __user *uarg)
{
	struct vexfs_ioc_index_build a;
	int err;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.reserved || a.nlist < 1 ||
	    a.nlist > VEXFS_INDEX_MAX_NLIST || a.nprobe < 1 ||
	    a.nprobe > a.nlist || !uptr_ok(a.centroids_ptr, 4) ||
	    size_ok(a.nlist, VEXFS_MAX_DIM, 4))
		return -EINVAL;
	err = begin_write(filp);
	if (err)
		return err;
	err = vexfs_index_build(filp, &a);
	return end_write(filp, err, !err);
}

static long ioc_index_assign(struct file *filp, void __user *uarg)
{
	struct vexfs_ioc_index_assign a;
	int err, err2 = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.count > VEXFS_MAX_BATCH || !uptr_ok(a.ids_ptr, 8) ||
	    !uptr_ok(a.lists_ptr, 4))
		return -EINVAL;
	err = begin_write(filp);
	if (err)
		return err;
	err = vexfs_index_assign(filp, &a);
	/* a failed batch may have assigned part of it: report it changed */
	err = end_write(filp, err, true);
	if (copy_to_user(uarg, &a, sizeof(a)))
		err2 = -EFAULT;
	return err ? err : err2;
}

static long ioc_index_search(struct file *filp, void __user *uarg)
{
	struct vexfs_ioc_index_search a;
	int err;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.k < 1 || a.k > VEXFS_MAX_K || a.nq > VEXFS_MAX_NQ ||
	    a.nprobe > VEXFS_INDEX_MAX_NLIST || !uptr_ok(a.queries_ptr, 4) ||
	    !uptr_ok(a.distances_ptr, 4) || !uptr_ok(a.ids_ptr, 8) ||
	    size_ok(a.nq, VEXFS_MAX_DIM, 4) || size_ok(a.nq, a.k, 8))
		return -EINVAL;
	err = need_mode(filp, FMODE_READ);
	if (err)
		return err;
	err = vexfs_index_search(filp, &a);
	if (err)
		return err;
	return copy_to_user(uarg, &a, sizeof(a)) ? -EFAULT : 0;
}

static long ioc_index_stats(struct file *filp, void __user *uarg)
{
	struct vexfs_ioc_index_stats a;
	int err;

	/* as STATS: the index header is read, so the fd must be readable */
	err = need_mode(filp, FMODE_READ);
	if (err)
		return err;
	memset(&a, 0, sizeof(a));
	err = vexfs_index_stats(filp, &a);
	if (err)
		return err;
	return copy_to_user(uarg, &a, sizeof(a)) ? -EFAULT : 0;
}

static long ioc_index_drop(struct file *filp)
{
	int err = begin_write(filp);

	if (err)
		return err;
	err = vexfs_index_drop(filp);
	return end_write(filp, err, !err);
}

long vexfs_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	/* collections are regular files; everything else has no ioctls */
	if (!S_ISREG(file_inode(filp)->i_mode))
		return -ENOTTY;

	switch (cmd) {
	case VEXFS_IOC_CREATE:
		return ioc_create(filp, uarg);
	case VEXFS_IOC_INSERT:
		return ioc_insert(filp, uarg);
	case VEXFS_IOC_GET:
		return ioc_get(filp, uarg);
	case VEXFS_IOC_DELETE:
		return ioc_delete(filp, uarg);
	case VEXFS_IOC_SEARCH:
		return ioc_search(filp, uarg);
	case VEXFS_IOC_STATS:
		return ioc_stats(filp, uarg);
	case VEXFS_IOC_INDEX_BUILD:
		return ioc_index_build(filp, uarg);
	case VEXFS_IOC_INDEX_ASSIGN:
		return ioc_index_assign(filp, uarg);
	case VEXFS_IOC_INDEX_SEARCH:
		return ioc_index_search(filp, uarg);
	case VEXFS_IOC_INDEX_STATS:
		return ioc_index_stats(filp, uarg);
	case VEXFS_IOC_INDEX_DROP:
		return ioc_index_drop(filp);
	default:
		return -ENOTTY;
	}
}
