// SPDX-License-Identifier: GPL-2.0
/*
 * flags.c - the inode operations ext4 users expect besides read and write:
 * chattr flags (FS_IOC_GETFLAGS/SETFLAGS through ->fileattr_get/set: the
 * VFS does the ioctl, the ownership and CAP_LINUX_IMMUTABLE checks), FIEMAP
 * (filefrag) and O_TMPFILE.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fiemap.h>
#include <linux/fileattr.h>
#include "vexfs.h"

/* The VFS inode flags that mirror the on-disk chattr flags. */
void vexfs_set_inode_flags(struct inode *inode)
{
	u32 fl = READ_ONCE(VEXFS_I(inode)->i_vflags);
	unsigned int flags = 0;

	if (fl & VEXFS_INODE_FL_SYNC)
		flags |= S_SYNC;
	if (fl & VEXFS_INODE_FL_IMMUTABLE)
		flags |= S_IMMUTABLE;
	if (fl & VEXFS_INODE_FL_APPEND)
		flags |= S_APPEND;
	if (fl & VEXFS_INODE_FL_NOATIME)
		flags |= S_NOATIME;
	inode_set_flags(inode, flags, S_SYNC | S_IMMUTABLE | S_APPEND | S_NOATIME);
}

int vexfs_fileattr_get(struct dentry *dentry, struct fileattr *fa)
{
	u32 fl = READ_ONCE(VEXFS_I(d_inode(dentry))->i_vflags);

	fileattr_fill_flags(fa, fl & VEXFS_INODE_FL_USER);
	return 0;
}

/* Called with the inode locked, permission and capabilities checked. */
int vexfs_fileattr_set(vexfs_idmap_t *idmap, struct dentry *dentry,
		       struct fileattr *fa)
{
	struct inode *inode = d_inode(dentry);
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	handle_t *handle;
	u32 fl;

	if (fileattr_has_fsx(fa))
		return -EOPNOTSUPP;
	if (fa->flags & ~VEXFS_INODE_FL_USER)
		return -EOPNOTSUPP;
	handle = vexfs_journal_start(inode->i_sb, VEXFS_CREDITS_INODE, 0);
	if (IS_ERR(handle))
		return PTR_ERR(handle);
	fl = (READ_ONCE(ei->i_vflags) & ~VEXFS_INODE_FL_USER) | fa->flags;
	WRITE_ONCE(ei->i_vflags, fl);
	vexfs_set_inode_flags(inode);
	vexfs_inode_touch_ctime(inode);
	mark_inode_dirty(inode);
	return vexfs_journal_stop(handle);
}

/* Index of the first extent ending after @lblk (i_ext_sem held). */
static u32 vexfs_ext_after(struct vexfs_inode_info *ei, u64 lblk)
{
	u32 lo = 0, hi = ei->i_nr_ext;

	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;
		struct vexfs_mext *e = &ei->i_ext[mid];

		if (e->lblk + e->len <= lblk)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

#define VEXFS_FIEMAP_BATCH 16

/*
 * FIEMAP: the extent map as it is in memory. Extents are copied out in
 * batches with i_ext_sem dropped, so copying to a user buffer that faults
 * on this filesystem cannot deadlock against the map lock. VexFS v1 has no
 * delayed allocation and no unwritten extents: every extent is plain data.
 * FIEMAP_FLAG_XATTR reports the xattr block.
 */
int vexfs_fiemap(struct inode *inode, struct fiemap_extent_info *fieinfo,
		 u64 start, u64 len)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	struct vexfs_mext batch[VEXFS_FIEMAP_BATCH];
	u64 cur, last;
	int err;

	err = fiemap_prep(inode, fieinfo, start, &len, FIEMAP_FLAG_XATTR);
	if (err)
		return err;
	if (fieinfo->fi_flags & FIEMAP_FLAG_XATTR) {
		u64 blk = READ_ONCE(ei->i_xattr_blk);

		if (!blk)
			return 0;
		err = fiemap_fill_next_extent(fieinfo, 0, blk << VEXFS_BLOCK_BITS,
					      VEXFS_BLOCK_SIZE, FIEMAP_EXTENT_LAST);
		return err < 0 ? err : 0;
	}
	if (!len)
		return 0;
	cur = start >> VEXFS_BLOCK_BITS;
	last = (start + len - 1) >> VEXFS_BLOCK_BITS;
	while (cur <= last) {
		u32 i, n = 0, idx;
		bool end = false;

		down_read(&ei->i_ext_sem);
		idx = vexfs_ext_after(ei, cur);
		while (n < VEXFS_FIEMAP_BATCH && idx + n < ei->i_nr_ext &&
		       ei->i_ext[idx + n].lblk <= last) {
			batch[n] = ei->i_ext[idx + n];
			n++;
		}
		if (idx + n >= ei->i_nr_ext)
			end = true;
		up_read(&ei->i_ext_sem);
		for (i = 0; i < n; i++) {
			u32 fl = (end && i + 1 == n) ? FIEMAP_EXTENT_LAST : 0;

			err = fiemap_fill_next_extent(fieinfo,
						      batch[i].lblk << VEXFS_BLOCK_BITS,
						      batch[i].pblk << VEXFS_BLOCK_BITS,
						      (u64)batch[i].len << VEXFS_BLOCK_BITS,
						      fl);
			if (err)
				return err < 0 ? err : 0;	/* 1: buffer full */
			cur = batch[i].lblk + batch[i].len;
		}
		if (n < VEXFS_FIEMAP_BATCH)
			break;
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

/*
 * O_TMPFILE: a new inode without a name (link count 0 once d_tmpfile()
 * drops it). It is freed at its last close unless linkat() names it; after
 * a crash fsck.vexfs frees it (an allocated inode with no links).
 */
int vexfs_tmpfile(vexfs_idmap_t *idmap, struct inode *dir, struct file *file,
		  umode_t mode)
{
	handle_t *handle;
	struct inode *inode;
	int err;

	handle = vexfs_journal_start(dir->i_sb, VEXFS_CREDITS_NEWINODE +
				     VEXFS_CREDITS_INODE, 0);
	if (IS_ERR(handle))
		return PTR_ERR(handle);
	inode = vexfs_new_inode(dir, mode);
	if (IS_ERR(inode)) {
		err = PTR_ERR(inode);
		goto out;
	}
	err = vexfs_init_new_inode(inode, dir, NULL);
	if (err) {
		inode_dec_link_count(inode);
		discard_new_inode(inode);
		goto out;
	}
	d_tmpfile(file, inode);
	unlock_new_inode(inode);
	err = vexfs_journal_stop(handle);
	handle = NULL;
	if (!err)
		err = finish_open_simple(file, 0);
	return err;
out:
	return vexfs_journal_end(handle, err);
}
