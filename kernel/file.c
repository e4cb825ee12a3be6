// SPDX-License-Identifier: GPL-2.0
/*
 * file.c - regular file operations: everything goes through the page
 * cache with the generic helpers; page_mkwrite allocates blocks at fault
 * time so ENOSPC reaches the writer; fsync also flushes the metadata
 * blocks; fallocate allocates zeroed blocks.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blkdev.h>
#include <linux/falloc.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include "vexfs.h"

int vexfs_fsync(struct file *file, loff_t start, loff_t end, int datasync)
{
	struct inode *inode = file->f_mapping->host;
	struct super_block *sb = inode->i_sb;
	int err, err2;

	if (VEXFS_SB(sb)->s_journal) {
		/*
		 * The data first (ordered writeback would do it at the commit,
		 * but fsync returns its errors), then the commit of the
		 * inode's last transaction: its inode, extents and, for a new
		 * file, its directory entry (same transaction). jbd2 flushes
		 * the device cache with the commit.
		 */
		err = file_write_and_wait_range(file, start, end);
		if (err)
			return err;
		err = vexfs_journal_sync_inode(inode);
		err2 = vexfs_check_wb_err(sb);
		return err ?: err2;
	}
	err = __generic_file_fsync(file, start, end, datasync);
	if (err)
		return err;
	/* bitmaps, extent and directory blocks live in the bdev cache */
	err = sync_blockdev(sb->s_bdev);
	/* a failed metadata write is reported (errors=) right away */
	err2 = vexfs_check_wb_err(sb);
	if (err || err2)
		return err ?: err2;
	return blkdev_issue_flush(sb->s_bdev);
}

static vm_fault_t vexfs_page_mkwrite(struct vm_fault *vmf)
{
	struct inode *inode = file_inode(vmf->vma->vm_file);
	handle_t *handle;
	vm_fault_t ret;

	sb_start_pagefault(inode->i_sb);
	file_update_time(vmf->vma->vm_file);
	filemap_invalidate_lock_shared(inode->i_mapping);
	/* the allocation and the dirty page in one handle (ordered data) */
	handle = vexfs_journal_start(inode->i_sb, VEXFS_CREDITS_ALLOC +
				     VEXFS_CREDITS_INODE, 0);
	if (IS_ERR(handle)) {
		ret = VM_FAULT_SIGBUS;
	} else {
		ret = vexfs_mkwrite_return(block_page_mkwrite(vmf->vma, vmf,
							   vexfs_get_block));
		vexfs_journal_note_inode(inode);
		vexfs_journal_stop(handle);
	}
	filemap_invalidate_unlock_shared(inode->i_mapping);
	sb_end_pagefault(inode->i_sb);
	return ret;
}

static const struct vm_operations_struct vexfs_file_vm_ops = {
	.fault		= filemap_fault,
	.map_pages	= filemap_map_pages,
	.page_mkwrite	= vexfs_page_mkwrite,
};

static int vexfs_file_mmap(struct file *file, struct vm_area_struct *vma)
{
	file_accessed(file);
	vma->vm_ops = &vexfs_file_vm_ops;
	return 0;
}

/* Allocate and zero blocks for the holes in [lblk, lblk + count). */
static int vexfs_alloc_range(struct inode *inode, u64 lblk, u64 count)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	struct super_block *sb = inode->i_sb;
	u64 end = lblk + count;
	handle_t *handle;
	int err = 0;

	while (lblk < end) {
		u64 pblk, len;
		u32 got;
		int mapped;

		if (fatal_signal_pending(current))
			return -EINTR;
		/*
		 * One handle per allocated run: the zeroes are on disk
		 * (sb_issue_zeroout waits) before the extent commits.
		 */
		handle = vexfs_journal_start(sb, VEXFS_CREDITS_ALLOC +
					     VEXFS_CREDITS_INODE, 0);
		if (IS_ERR(handle))
			return PTR_ERR(handle);
		down_write(&ei->i_ext_sem);
		mapped = vexfs_ext_map(inode, lblk, &pblk, &len);
		if (mapped) {
			up_write(&ei->i_ext_sem);
			vexfs_journal_stop(handle);
			lblk += min(len, end - lblk);
			continue;
		}
		len = min3(len, end - lblk, (u64)U32_MAX);
		err = vexfs_ext_alloc(inode, lblk, len, &pblk, &got);
		if (!err) {
			/* no unwritten extents in format v1: zero on disk */
			clean_bdev_aliases(sb->s_bdev, pblk, got);
			err = sb_issue_zeroout(sb, pblk, got, GFP_NOFS);
		}
		up_write(&ei->i_ext_sem);
		mark_inode_dirty(inode);
		err = vexfs_journal_end(handle, err);
		if (err)
			return err;
		lblk += got;
		cond_resched();
	}
	return 0;
}

static long vexfs_fallocate(struct file *file, int mode, loff_t offset,
			    loff_t len)
{
	struct inode *inode = file_inode(file);
	loff_t end;
	int err;

	if (mode & ~FALLOC_FL_KEEP_SIZE)
		return -EOPNOTSUPP;
	if (!S_ISREG(inode->i_mode))
		return -ENODEV;
	if (offset < 0 || len <= 0 || check_add_overflow(offset, len, &end))
		return -EINVAL;
	inode_lock(inode);
	err = inode_newsize_ok(inode, end);
	if (err)
		goto out;
	err = file_modified(file);
	if (err)
		goto out;
	err = vexfs_alloc_range(inode, offset >> VEXFS_BLOCK_BITS,
				DIV_ROUND_UP_ULL(end, VEXFS_BLOCK_SIZE) -
				(offset >> VEXFS_BLOCK_BITS));
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > i_size_read(inode)) {
		/* extend over what was allocated, even after a partial ENOSPC */
		if (!err)
			i_size_write(inode, end);
	}
	vexfs_inode_touch_ctime(inode);
	/* the new size in a handle of its own (->dirty_inode) */
	mark_inode_dirty(inode);
out:
	inode_unlock(inode);
	return err;
}

const struct file_operations vexfs_file_operations = {
	.llseek		= generic_file_llseek,
	.read_iter	= generic_file_read_iter,
	.write_iter	= generic_file_write_iter,
	.mmap		= vexfs_file_mmap,
	.open		= generic_file_open,
	.fsync		= vexfs_fsync,
	.splice_read	= vexfs_splice_read,
	.splice_write	= iter_file_splice_write,
	.fallocate	= vexfs_fallocate,
	.unlocked_ioctl	= vexfs_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

const struct inode_operations vexfs_file_inode_operations = {
	.getattr	= vexfs_getattr,
	.setattr	= vexfs_setattr,
	.listxattr	= vexfs_listxattr,
	VEXFS_IOP_ACL,
	.fileattr_get	= vexfs_fileattr_get,
	.fileattr_set	= vexfs_fileattr_set,
	.fiemap		= vexfs_fiemap,
};
