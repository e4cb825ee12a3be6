/* SPDX-License-Identifier: GPL-2.0 */
/*
 * compat.h - every kernel-version difference VexFS builds against, in one
 * place (the model is simplefs's SIMPLEFS_AT_LEAST()).
 *
 * The .c files call the vexfs_* helpers and types below and never test
 * LINUX_VERSION_CODE themselves. Supported: Debian's 6.1 series (the
 * default guest) and the 6.12 series, including its PREEMPT_RT flavour.
 * Each block names the kernel release that changed the API.
 */
#ifndef _VEXFS_COMPAT_H
#define _VEXFS_COMPAT_H

#include <linux/version.h>
#include <linux/fs.h>
#include <linux/blkdev.h>
#include <linux/buffer_head.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/sched.h>
#include <linux/backing-dev.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <linux/xattr.h>

#define VEXFS_AT_LEAST(major, minor, rev) \
	(KERNEL_VERSION(major, minor, rev) <= LINUX_VERSION_CODE)

/*
 * 6.3: inode operations and the VFS permission helpers take the mount's
 * struct mnt_idmap instead of its struct user_namespace.
 */
#if VEXFS_AT_LEAST(6, 3, 0)
#define vexfs_idmap_t		struct mnt_idmap
#define VEXFS_NOP_IDMAP		(&nop_mnt_idmap)

static inline vexfs_idmap_t *vexfs_file_idmap(struct file *file)
{
	return file_mnt_idmap(file);
}
#else
#define vexfs_idmap_t		struct user_namespace
#define VEXFS_NOP_IDMAP		(&init_user_ns)

static inline vexfs_idmap_t *vexfs_file_idmap(struct file *file)
{
	return file_mnt_user_ns(file);
}
#endif

/* 6.6: generic_fillattr() takes the statx request mask. */
static inline void vexfs_fillattr(vexfs_idmap_t *idmap, u32 request_mask,
				  struct inode *inode, struct kstat *stat)
{
#if VEXFS_AT_LEAST(6, 6, 0)
	generic_fillattr(idmap, request_mask, inode, stat);
#else
	generic_fillattr(idmap, inode, stat);
#endif
}

/*
 * 6.6 (ctime) and 6.7 (atime, mtime): the inode timestamps became private
 * fields behind accessors.
 */
static inline struct timespec64 vexfs_inode_get_atime(const struct inode *inode)
{
#if VEXFS_AT_LEAST(6, 7, 0)
	return inode_get_atime(inode);
#else
	return inode->i_atime;
#endif
}

static inline struct timespec64 vexfs_inode_get_mtime(const struct inode *inode)
{
#if VEXFS_AT_LEAST(6, 7, 0)
	return inode_get_mtime(inode);
#else
	return inode->i_mtime;
#endif
}

static inline struct timespec64 vexfs_inode_get_ctime(const struct inode *inode)
{
#if VEXFS_AT_LEAST(6, 6, 0)
	return inode_get_ctime(inode);
#else
	return inode->i_ctime;
#endif
}

static inline void vexfs_inode_set_atime(struct inode *inode,
					 struct timespec64 ts)
{
#if VEXFS_AT_LEAST(6, 7, 0)
	inode_set_atime_to_ts(inode, ts);
#else
	inode->i_atime = ts;
#endif
}

static inline void vexfs_inode_set_mtime(struct inode *inode,
					 struct timespec64 ts)
{
#if VEXFS_AT_LEAST(6, 7, 0)
	inode_set_mtime_to_ts(inode, ts);
#else
	inode->i_mtime = ts;
#endif
}

static inline void vexfs_inode_set_ctime(struct inode *inode,
					 struct timespec64 ts)
{
#if VEXFS_AT_LEAST(6, 6, 0)
	inode_set_ctime_to_ts(inode, ts);
#else
	inode->i_ctime = ts;
#endif
}

/* ctime = now; returns the time set. */
static inline struct timespec64 vexfs_inode_touch_ctime(struct inode *inode)
{
	struct timespec64 now = current_time(inode);

	vexfs_inode_set_ctime(inode, now);
	return now;
}

/* mtime = ctime = now (a content change); returns the time set. */
static inline struct timespec64 vexfs_inode_touch_mctime(struct inode *inode)
{
	struct timespec64 now = vexfs_inode_touch_ctime(inode);

	vexfs_inode_set_mtime(inode, now);
	return now;
}

/*
 * 6.12: ->write_begin()/->write_end(), block_write_begin() and
 * generic_write_end() pass a struct folio instead of a struct page.
 */
#if VEXFS_AT_LEAST(6, 12, 0)
#define vexfs_write_page_t	struct folio
#else
#define vexfs_write_page_t	struct page
#endif

/* 6.8: ->error_remove_page() became ->error_remove_folio(). */
#if VEXFS_AT_LEAST(6, 8, 0)
#define VEXFS_AOP_ERROR_REMOVE	.error_remove_folio = generic_error_remove_folio
#else
#define VEXFS_AOP_ERROR_REMOVE	.error_remove_page = generic_error_remove_page
#endif

/* 6.8: block_page_mkwrite_return() was replaced by vmf_fs_error(). */
static inline vm_fault_t vexfs_mkwrite_return(int err)
{
#if VEXFS_AT_LEAST(6, 8, 0)
	return vmf_fs_error(err);
#else
	return block_page_mkwrite_return(err);
#endif
}

/* 6.5: generic_file_splice_read() was replaced by filemap_splice_read(). */
#if VEXFS_AT_LEAST(6, 5, 0)
#define vexfs_splice_read	filemap_splice_read
#else
#define vexfs_splice_read	generic_file_splice_read
#endif

/*
 * 6.5: task_struct lost backing_dev_info (balance_dirty_pages() no longer
 * needs the writer to name its device).
 */
static inline void vexfs_set_writer_bdi(struct backing_dev_info *bdi)
{
#if !VEXFS_AT_LEAST(6, 5, 0)
	current->backing_dev_info = bdi;
#endif
}

/* 6.10: struct block_device lost bd_inode; its page cache is bd_mapping. */
static inline struct address_space *vexfs_bdev_mapping_of(struct block_device *bdev)
{
#if VEXFS_AT_LEAST(6, 10, 0)
	return bdev->bd_mapping;
#else
	return bdev->bd_inode->i_mapping;
#endif
}

/*
 * 6.2: POSIX ACLs got their own VFS API. The filesystem's ->get_acl()
 * became ->get_inode_acl() (the same arguments), ->set_acl() takes the
 * dentry instead of the inode, posix_acl_chmod() takes the dentry, and the
 * system.posix_acl_* xattrs no longer go through sb->s_xattr handlers (the
 * VFS calls the inode operations itself).
 */
#if VEXFS_AT_LEAST(6, 2, 0)
#define vexfs_set_acl_arg_t	struct dentry
#define VEXFS_IOP_ACL		.get_inode_acl = vexfs_get_acl, \
				.set_acl = vexfs_set_acl
#define VEXFS_ACL_XATTR_HANDLERS
static inline struct inode *vexfs_set_acl_inode(struct dentry *dentry)
{
	return d_inode(dentry);
}

static inline int vexfs_posix_acl_chmod(vexfs_idmap_t *idmap,
					struct dentry *dentry, umode_t mode)
{
	return posix_acl_chmod(idmap, dentry, mode);
}
#else
#define vexfs_set_acl_arg_t	struct inode
#define VEXFS_IOP_ACL		.get_acl = vexfs_get_acl, \
				.set_acl = vexfs_set_acl
#define VEXFS_ACL_XATTR_HANDLERS &posix_acl_access_xattr_handler, \
				 &posix_acl_default_xattr_handler,
static inline struct inode *vexfs_set_acl_inode(struct inode *inode)
{
	return inode;
}

static inline int vexfs_posix_acl_chmod(vexfs_idmap_t *idmap,
					struct dentry *dentry, umode_t mode)
{
	return posix_acl_chmod(idmap, d_inode(dentry), mode);
}
#endif

#endif /* _VEXFS_COMPAT_H */
