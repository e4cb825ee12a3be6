// SPDX-License-Identifier: GPL-2.0
/*
 * inode.c - reading, writing, creating and deleting inodes; the address
 * space operations of regular files and symlinks; setattr/getattr.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/buffer_head.h>
#include <linux/mpage.h>
#include <linux/pagemap.h>
#include <linux/random.h>
#include <linux/writeback.h>
#include <linux/uio.h>
#include "vexfs.h"

static int vexfs_read_folio(struct file *file, struct folio *folio)
{
	return mpage_read_folio(folio, vexfs_get_block);
}

static void vexfs_readahead(struct readahead_control *rac)
{
	mpage_readahead(rac, vexfs_get_block);
}

/*
 * No ->writepage: writeback goes through ->writepages alone, as on XFS and
 * btrfs (6.8 removed block_write_full_page(), and its folio successor is
 * not exported to modules); reclaim leaves dirty pages to the flusher.
 */
static int vexfs_writepages(struct address_space *mapping,
			    struct writeback_control *wbc)
{
	return mpage_writepages(mapping, wbc, vexfs_get_block);
}

/* Is any block of @inode mapped in [@first, @end)? */
static bool vexfs_any_mapped(struct inode *inode, u64 first, u64 end)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	u64 pblk, len;
	int mapped;

	if (first >= end)
		return false;
	down_read(&ei->i_ext_sem);
	mapped = vexfs_ext_map(inode, first, &pblk, &len);
	up_read(&ei->i_ext_sem);
	return mapped || len < end - first;
}

/*
 * A failed write of [@pos, @to) may have allocated blocks past i_size.
 * Without other blocks past i_size they are given back (truncate to
 * i_size). Blocks past i_size outside the write are preallocation
 * (fallocate FALLOC_FL_KEEP_SIZE) and stay: then the write's own blocks
 * past i_size stay too, zeroed on disk like preallocated ones (they may
 * have been allocated by this write and never written), and only their
 * page cache is dropped.
 */
static void vexfs_write_failed(struct address_space *mapping, loff_t pos,
			       loff_t to)
{
	struct inode *inode = mapping->host;
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	loff_t size = inode->i_size;
	u64 eof = DIV_ROUND_UP_ULL((u64)size, VEXFS_BLOCK_SIZE);
	u64 first = max_t(u64, eof, (u64)pos >> VEXFS_BLOCK_BITS);
	u64 end = DIV_ROUND_UP_ULL((u64)to, VEXFS_BLOCK_SIZE);

	if (to <= size)
		return;
	if (!vexfs_any_mapped(inode, eof, first) &&
	    !vexfs_any_mapped(inode, end, VEXFS_MAX_LBLK)) {
		truncate_pagecache(inode, size);
		vexfs_truncate_blocks(inode, size);
		return;
	}
	if (first >= end)
		return;
	truncate_pagecache_range(inode, (loff_t)first << VEXFS_BLOCK_BITS,
				 ((loff_t)end << VEXFS_BLOCK_BITS) - 1);
	while (first < end) {
		u64 pblk, len;
		int mapped;

		down_read(&ei->i_ext_sem);
		mapped = vexfs_ext_map(inode, first, &pblk, &len);
		up_read(&ei->i_ext_sem);
		len = min(len, end - first);
		if (mapped) {
			clean_bdev_aliases(inode->i_sb->s_bdev, pblk, len);
			sb_issue_zeroout(inode->i_sb, pblk, len, GFP_NOFS);
		}
		first += len;
	}
}

/*
 * With a journal, one handle runs from write_begin to write_end: the block
 * allocation and the new i_size commit together, and not before the page
 * holding the data is dirty (ordered data then writes it first). The
 * handle is started before the page is locked (jbd2's lock order, as ext4).
 */
static int vexfs_write_begin(struct file *file, struct address_space *mapping,
			     loff_t pos, unsigned int len,
			     vexfs_write_page_t **pagep,
			     void **fsdata)
{
	struct inode *inode = mapping->host;
	handle_t *handle;
	int ret;

	handle = vexfs_journal_start(inode->i_sb, VEXFS_CREDITS_ALLOC +
				     VEXFS_CREDITS_INODE, 0);
	if (IS_ERR(handle))
		return PTR_ERR(handle);
	ret = block_write_begin(mapping, pos, len, pagep, vexfs_get_block);
	if (ret < 0) {
		vexfs_write_failed(mapping, pos, pos + len);
		vexfs_journal_stop(handle);
	}
	return ret;
}

static int vexfs_write_end(struct file *file, struct address_space *mapping,
			   loff_t pos, unsigned int len, unsigned int copied,
			   vexfs_write_page_t *page, void *fsdata)
{
	struct inode *inode = mapping->host;
	handle_t *handle = VEXFS_SB(inode->i_sb)->s_journal ?
			   journal_current_handle() : NULL;
	int ret = generic_write_end(file, mapping, pos, len, copied, page,
				    fsdata);
	int err;

	if (ret < len)
		vexfs_write_failed(mapping, pos, pos + len);
	vexfs_journal_note_inode(inode);
	err = vexfs_journal_stop(handle);
	return err ?: ret;
}

/*
 * With a journal, O_DIRECT never allocates: its data would bypass ordered
 * mode and could reach the disk after the extent pointing at it commits.
 * An unmapped block ends the direct part (-ENOTBLK inside the DIO code)
 * and the VFS writes the rest through the page cache.
 */
static int vexfs_get_block_noalloc(struct inode *inode, sector_t iblock,
				   struct buffer_head *bh, int create)
{
	return vexfs_get_block(inode, iblock, bh, 0);
}

/* O_DIRECT through the generic block-device DIO code, as ext2 does. */
static ssize_t vexfs_direct_IO(struct kiocb *iocb, struct iov_iter *iter)
{
	struct address_space *mapping = iocb->ki_filp->f_mapping;
	size_t count = iov_iter_count(iter);
	loff_t offset = iocb->ki_pos;
	ssize_t ret;

	ret = blockdev_direct_IO(iocb, mapping->host, iter,
				 VEXFS_SB(mapping->host->i_sb)->s_journal ?
				 vexfs_get_block_noalloc : vexfs_get_block);
	if (ret < 0 && iov_iter_rw(iter) == WRITE)
		vexfs_write_failed(mapping, offset, offset + count);
	return ret;
}

static sector_t vexfs_bmap(struct address_space *mapping, sector_t block)
{
	return generic_block_bmap(mapping, block, vexfs_get_block);
}

const struct address_space_operations vexfs_aops = {
	.dirty_folio		= block_dirty_folio,
	.invalidate_folio	= block_invalidate_folio,
	.read_folio		= vexfs_read_folio,
	.readahead		= vexfs_readahead,
	.writepages		= vexfs_writepages,
	.write_begin		= vexfs_write_begin,
	.write_end		= vexfs_write_end,
	.bmap			= vexfs_bmap,
	.direct_IO		= vexfs_direct_IO,
	.migrate_folio		= buffer_migrate_folio,
	.is_partially_uptodate	= block_is_partially_uptodate,
	VEXFS_AOP_ERROR_REMOVE,
};

void vexfs_set_inode_ops(struct inode *inode)
{
	umode_t mode = inode->i_mode;

	if (S_ISREG(mode)) {
		inode->i_op = &vexfs_file_inode_operations;
		inode->i_fop = &vexfs_file_operations;
		inode->i_mapping->a_ops = &vexfs_aops;
	} else if (S_ISDIR(mode)) {
		inode->i_op = &vexfs_dir_inode_operations;
		inode->i_fop = &vexfs_dir_operations;
		inode->i_mapping->a_ops = &vexfs_aops;
	} else if (S_ISLNK(mode)) {
		inode->i_op = &vexfs_symlink_inode_operations;
		inode_nohighmem(inode);
		inode->i_mapping->a_ops = &vexfs_aops;
	} else {
		inode->i_op = &vexfs_special_inode_operations;
	}
}

static struct timespec64 vexfs_get_time(__le64 sec, __le32 nsec)
{
	struct timespec64 ts = {
		.tv_sec = (s64)le64_to_cpu(sec),
		.tv_nsec = min_t(u32, le32_to_cpu(nsec), NSEC_PER_SEC - 1),
	};

	return ts;
}

static bool vexfs_mode_ok(umode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR:
	case S_IFBLK: case S_IFIFO: case S_IFSOCK:
		return true;
	}
	return false;
}

struct inode *vexfs_iget(struct super_block *sb, unsigned long ino)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	struct vexfs_inode_info *ei;
	struct vexfs_inode *raw;
	struct buffer_head *bh;
	struct inode *inode;
	umode_t mode;
	loff_t size;
	int err;

	if (ino < VEXFS_ROOT_INO || ino > sbi->s_inodes_count) {
		vexfs_error(sb, "inode number %lu out of range [1, %u]", ino,
			    sbi->s_inodes_count);
		return ERR_PTR(-EUCLEAN);
	}
	inode = iget_locked(sb, ino);
	if (!inode)
		return ERR_PTR(-ENOMEM);
	if (!(inode->i_state & I_NEW))
		return inode;
	ei = VEXFS_I(inode);

	raw = kmalloc(sizeof(*raw), GFP_NOFS);
	if (!raw) {
		err = -ENOMEM;
		goto bad;
	}
	bh = vexfs_bread(sb, sbi->s_itable_start + (ino - 1) / VEXFS_INODES_PER_BLOCK);
	if (!bh) {
		vexfs_error(sb, "unable to read inode %lu", ino);
		err = -EIO;
		goto bad_raw;
	}
	memcpy(raw, bh->b_data + ((ino - 1) % VEXFS_INODES_PER_BLOCK) *
	       VEXFS_INODE_SIZE, sizeof(*raw));
	vexfs_brelse(bh);

	err = -EUCLEAN;
	mode = le16_to_cpu(raw->i_mode);
	size = le64_to_cpu(raw->i_size);
	if (!mode && !raw->i_links_count) {
		vexfs_error(sb, "inode %lu: reference to a free inode", ino);
		goto bad_raw;
	}
	if (!vexfs_inode_csum_ok(raw)) {
		vexfs_error(sb, "inode %lu: checksum mismatch", ino);
		err = -EBADMSG;
		goto bad_raw;
	}
	if (!vexfs_mode_ok(mode) || !raw->i_links_count ||
	    (S_ISDIR(mode) && le16_to_cpu(raw->i_links_count) < 2)) {
		vexfs_error(sb, "inode %lu: bad mode 0%o or link count %u", ino,
			    mode, le16_to_cpu(raw->i_links_count));
		goto bad_raw;
	}
	if (size < 0 || size > sb->s_maxbytes ||
	    (S_ISDIR(mode) && (!size || size % VEXFS_BLOCK_SIZE)) ||
	    (S_ISLNK(mode) && (!size || size >= VEXFS_BLOCK_SIZE))) {
		vexfs_error(sb, "inode %lu: bad size %lld for mode 0%o", ino,
			    size, mode);
		goto bad_raw;
	}

	inode->i_mode = mode;
	i_uid_write(inode, le32_to_cpu(raw->i_uid));
	i_gid_write(inode, le32_to_cpu(raw->i_gid));
	set_nlink(inode, le16_to_cpu(raw->i_links_count));
	inode->i_size = size;
	vexfs_inode_set_atime(inode, vexfs_get_time(raw->i_atime, raw->i_atime_nsec));
	vexfs_inode_set_mtime(inode, vexfs_get_time(raw->i_mtime, raw->i_mtime_nsec));
	vexfs_inode_set_ctime(inode, vexfs_get_time(raw->i_ctime, raw->i_ctime_nsec));
	ei->i_crtime = vexfs_get_time(raw->i_crtime, raw->i_crtime_nsec);
	inode->i_generation = le32_to_cpu(raw->i_generation);
	ei->i_vflags = le32_to_cpu(raw->i_flags);

	vexfs_set_inode_flags(inode);
	err = vexfs_xattr_load(inode, raw);
	if (err)
		goto bad_raw;
	err = vexfs_ext_load(inode, raw);
	if (err)
		goto bad_raw;
	if (S_ISDIR(mode) &&
	    (!ei->i_nr_ext || ei->i_ext[ei->i_nr_ext - 1].lblk +
	     ei->i_ext[ei->i_nr_ext - 1].len < (u64)size >> VEXFS_BLOCK_BITS)) {
		vexfs_error(sb, "directory inode %lu: blocks not all mapped", ino);
		err = -EUCLEAN;
		goto bad_raw;
	}
	vexfs_set_inode_ops(inode);
	if (!S_ISREG(mode) && !S_ISDIR(mode) && !S_ISLNK(mode))
		init_special_inode(inode, mode,
				   new_decode_dev(le32_to_cpu(raw->i_rdev)));
	kfree(raw);
	unlock_new_inode(inode);
	return inode;

bad_raw:
	kfree(raw);
bad:
	iget_failed(inode);
	return ERR_PTR(err);
}

static void vexfs_fill_raw(struct inode *inode, struct vexfs_inode *raw)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	struct timespec64 atime = vexfs_inode_get_atime(inode);
	struct timespec64 mtime = vexfs_inode_get_mtime(inode);
	struct timespec64 ctime = vexfs_inode_get_ctime(inode);

	memset(raw, 0, sizeof(*raw));
	raw->i_mode = cpu_to_le16(inode->i_mode);
	raw->i_links_count = cpu_to_le16(inode->i_nlink);
	raw->i_uid = cpu_to_le32(i_uid_read(inode));
	raw->i_gid = cpu_to_le32(i_gid_read(inode));
	raw->i_flags = cpu_to_le32(READ_ONCE(ei->i_vflags));
	raw->i_size = cpu_to_le64(i_size_read(inode));
	raw->i_blocks = cpu_to_le64(inode->i_blocks >> (VEXFS_BLOCK_BITS - 9));
	raw->i_atime = cpu_to_le64(atime.tv_sec);
	raw->i_mtime = cpu_to_le64(mtime.tv_sec);
	raw->i_ctime = cpu_to_le64(ctime.tv_sec);
	raw->i_crtime = cpu_to_le64(ei->i_crtime.tv_sec);
	raw->i_atime_nsec = cpu_to_le32(atime.tv_nsec);
	raw->i_mtime_nsec = cpu_to_le32(mtime.tv_nsec);
	raw->i_ctime_nsec = cpu_to_le32(ctime.tv_nsec);
	raw->i_crtime_nsec = cpu_to_le32(ei->i_crtime.tv_nsec);
	raw->i_generation = cpu_to_le32(inode->i_generation);
	if (S_ISCHR(inode->i_mode) || S_ISBLK(inode->i_mode))
		raw->i_rdev = cpu_to_le32(new_encode_dev(inode->i_rdev));
	vexfs_xattr_to_raw(inode, raw);
	down_read(&ei->i_ext_sem);
	vexfs_ext_to_raw(inode, raw);
	up_read(&ei->i_ext_sem);
	vexfs_inode_csum_set(raw);
}

/* Copy @raw (NULL: a free, all-zero inode) into the inode table. */
static int vexfs_put_raw(struct super_block *sb, unsigned long ino,
			 const struct vexfs_inode *raw, bool sync)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	struct buffer_head *bh;
	void *slot;
	int err = 0;

	bh = vexfs_bread(sb, sbi->s_itable_start + (ino - 1) / VEXFS_INODES_PER_BLOCK);
	if (!bh) {
		vexfs_error(sb, "unable to read inode table block of inode %lu", ino);
		return -EIO;
	}
	slot = bh->b_data + ((ino - 1) % VEXFS_INODES_PER_BLOCK) * VEXFS_INODE_SIZE;
	err = vexfs_journal_get_write(sb, bh);
	if (err) {
		vexfs_brelse(bh);
		return err;
	}
	lock_buffer(bh);
	if (raw)
		memcpy(slot, raw, VEXFS_INODE_SIZE);
	else
		memset(slot, 0, VEXFS_INODE_SIZE);
	unlock_buffer(bh);
	err = vexfs_journal_dirty(sb, bh);
	if (sbi->s_journal) {
		/* durability comes from the commit (fsync, sync_fs) */
		vexfs_brelse(bh);
		return err;
	}
	if (sync && sync_dirty_buffer(bh)) {
		/* reported (block named, errors= applied) by the check */
		vexfs_check_wb_err(sb);
		err = -EIO;
	}
	vexfs_brelse(bh);
	return err;
}

int vexfs_write_inode(struct inode *inode, struct writeback_control *wbc)
{
	struct vexfs_inode raw;

	if (is_bad_inode(inode))
		return -EIO;
	if (VEXFS_SB(inode->i_sb)->s_journal) {
		/*
		 * ->dirty_inode logged the inode already; a sync write waits
		 * for its transaction (as ext4_write_inode). Never from
		 * within a handle (writeback of memory reclaim).
		 */
		if (wbc->sync_mode != WB_SYNC_ALL || wbc->for_sync ||
		    journal_current_handle())
			return 0;
		return vexfs_journal_sync_inode(inode);
	}
	vexfs_fill_raw(inode, &raw);
	return vexfs_put_raw(inode->i_sb, inode->i_ino, &raw,
			     wbc->sync_mode == WB_SYNC_ALL);
}

/*
 * Keep the inode table buffer in step with the in-memory inode: every time
 * the VFS or we dirty an inode, its on-disk form is copied into the (dirty)
 * inode table buffer. So whenever the block device is flushed (fsync,
 * sync), the inodes written match the directory blocks and bitmaps written
 * with them: a new file's entry never reaches the disk without its inode.
 * Never called with i_ext_sem held (see vexfs_ext_commit).
 */
void vexfs_dirty_inode(struct inode *inode, int flags)
{
	struct vexfs_inode raw;
	handle_t *handle;

	if (!(flags & I_DIRTY_INODE) || is_bad_inode(inode))
		return;
	if (!inode->i_nlink && (inode->i_state & I_FREEING))
		return;
	/* joins the running handle of the operation, if any */
	handle = vexfs_journal_start(inode->i_sb, VEXFS_CREDITS_INODE, 0);
	if (IS_ERR(handle))
		return;
	vexfs_fill_raw(inode, &raw);
	vexfs_put_raw(inode->i_sb, inode->i_ino, &raw, false);
	vexfs_journal_note_inode(inode);
	vexfs_journal_stop(handle);
}

void vexfs_inode_set_collection(struct inode *inode, bool on)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	u32 fl = READ_ONCE(ei->i_vflags);

	if (on)
		fl |= VEXFS_INODE_FL_COLLECTION;
	else
		fl &= ~VEXFS_INODE_FL_COLLECTION;
	WRITE_ONCE(ei->i_vflags, fl);
	vexfs_inode_touch_ctime(inode);
	mark_inode_dirty(inode);
}
EXPORT_SYMBOL_GPL(vexfs_inode_set_collection);

/*
 * Allocate an inode for a new object in @dir. Returns it locked (I_NEW)
 * and hashed; the caller finishes it with d_instantiate_new().
 */
struct inode *vexfs_new_inode(struct inode *dir, umode_t mode)
{
	struct super_block *sb = dir->i_sb;
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	struct vexfs_inode_info *ei;
	struct buffer_head *bh;
	struct inode *inode;
	const struct vexfs_inode *old;
	u32 ino;
	int err;

	err = vexfs_new_ino(sb, 0, &ino);
	if (err)
		return ERR_PTR(err);

	/* The bitmap says free: the slot must be free too. */
	bh = vexfs_bread(sb, sbi->s_itable_start + (ino - 1) / VEXFS_INODES_PER_BLOCK);
	if (!bh) {
		vexfs_error(sb, "unable to read inode %u", ino);
		vexfs_free_ino(sb, ino);
		return ERR_PTR(-EIO);
	}
	old = (const void *)(bh->b_data + ((ino - 1) % VEXFS_INODES_PER_BLOCK) *
			     VEXFS_INODE_SIZE);
	if (old->i_mode && old->i_links_count && vexfs_inode_csum_ok(old)) {
		/*
		 * The bit stays set (not a leak): the slot is in use, so the
		 * bitmap now says what the inode table says.
		 */
		vexfs_brelse(bh);
		vexfs_error(sb, "inode %u is free in the bitmap but in use", ino);
		return ERR_PTR(-EUCLEAN);
	}
	vexfs_brelse(bh);

	inode = new_inode(sb);
	if (!inode) {
		vexfs_free_ino(sb, ino);
		return ERR_PTR(-ENOMEM);
	}
	ei = VEXFS_I(inode);
	inode_init_owner(VEXFS_NOP_IDMAP, inode, dir, mode);
	inode->i_ino = ino;
	inode->i_blocks = 0;
	ei->i_crtime = vexfs_inode_touch_mctime(inode);
	vexfs_inode_set_atime(inode, ei->i_crtime);
	inode->i_generation = get_random_u32();
	ei->i_vflags = 0;
	ei->i_chain_dense = true;
	if (insert_inode_locked(inode) < 0) {
		/* in use in memory: the bit stays set, as above */
		vexfs_error(sb, "inode %u allocated twice", ino);
		make_bad_inode(inode);
		iput(inode);
		return ERR_PTR(-EUCLEAN);
	}
	vexfs_set_inode_ops(inode);
	mark_inode_dirty(inode);
	return inode;
}

/*
 * Worst case of a truncate: the inode, a rewritten extent block, every
 * block bitmap block the freed extents can touch.
 */
int vexfs_truncate_credits(struct inode *inode)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);

	return 2 + vexfs_bitmap_credits(inode->i_sb, ei->i_nr_ext + ei->i_nr_chain);
}

/* Revoke records of a truncate: freed extent blocks, directory blocks. */
int vexfs_truncate_revokes(struct inode *inode)
{
	u64 n = VEXFS_I(inode)->i_nr_chain;

	/* every block of a directory (rmdir zeroed i_size already) */
	if (S_ISDIR(inode->i_mode))
		n += inode->i_blocks >> (VEXFS_BLOCK_BITS - 9);
	return min_t(u64, n, INT_MAX);
}

int vexfs_truncate_blocks(struct inode *inode, loff_t size)
{
	u64 first = DIV_ROUND_UP_ULL((u64)size, VEXFS_BLOCK_SIZE);

	if (!(S_ISREG(inode->i_mode) || S_ISDIR(inode->i_mode) ||
	      S_ISLNK(inode->i_mode)))
		return 0;
	return vexfs_ext_truncate(inode, first);
}

void vexfs_evict_inode(struct inode *inode)
{
	struct super_block *sb = inode->i_sb;
	bool want_delete = !inode->i_nlink && !is_bad_inode(inode);

	truncate_inode_pages_final(&inode->i_data);
	if (want_delete) {
		handle_t *handle;

		sb_start_intwrite(sb);
		/* NEWINODE credits cover the xattr block too, +1 revoke */
		handle = vexfs_journal_start(sb, vexfs_truncate_credits(inode) +
					     VEXFS_CREDITS_NEWINODE,
					     vexfs_truncate_revokes(inode) + 1);
		if (IS_ERR(handle)) {
			/* left allocated with no name: fsck.vexfs frees it */
			vexfs_msg(sb, KERN_WARNING, "warning: cannot free deleted inode %lu (%ld)",
				  inode->i_ino, PTR_ERR(handle));
		} else {
			inode->i_size = 0;
			vexfs_truncate_blocks(inode, 0);
			vexfs_xattr_delete_inode(inode);
			vexfs_put_raw(sb, inode->i_ino, NULL, IS_SYNC(inode));
			vexfs_free_ino(sb, inode->i_ino);
			vexfs_journal_stop(handle);
		}
		sb_end_intwrite(sb);
	}
	invalidate_inode_buffers(inode);
	clear_inode(inode);
	vexfs_journal_release_inode(inode);
	vexfs_ext_release(inode);
	vexfs_dindex_free(inode);
}

static int vexfs_setsize(struct inode *inode, loff_t newsize)
{
	struct address_space *mapping = inode->i_mapping;
	handle_t *handle;
	int err = 0;

	if (!(S_ISREG(inode->i_mode) || S_ISLNK(inode->i_mode)))
		return -EINVAL;
	inode_dio_wait(inode);
	/* lock order: invalidate_lock, then the handle (as ext4) */
	filemap_invalidate_lock(mapping);
	handle = vexfs_journal_start(inode->i_sb, vexfs_truncate_credits(inode),
				     vexfs_truncate_revokes(inode));
	if (IS_ERR(handle)) {
		err = PTR_ERR(handle);
		handle = NULL;
		goto out;
	}
	if (newsize < inode->i_size) {
		/* zero the tail of the new last block */
		err = block_truncate_page(mapping, newsize, vexfs_get_block);
		if (err)
			goto out;
	}
	truncate_setsize(inode, newsize);
	err = vexfs_truncate_blocks(inode, newsize);
	vexfs_inode_touch_mctime(inode);
	mark_inode_dirty(inode);
out:
	err = vexfs_journal_end(handle, err);
	filemap_invalidate_unlock(mapping);
	return err;
}

int vexfs_setattr(vexfs_idmap_t *idmap, struct dentry *dentry,
		  struct iattr *attr)
{
	struct inode *inode = d_inode(dentry);
	int err;

	err = setattr_prepare(idmap, dentry, attr);
	if (err)
		return err;
	if ((attr->ia_valid & ATTR_SIZE) && attr->ia_size != i_size_read(inode)) {
		err = vexfs_setsize(inode, attr->ia_size);
		if (err)
			return err;
	}
	/*
	 * A collection truncated to nothing (truncate, O_TRUNC) is a plain
	 * empty file again: VEXFS_IOC_CREATE may make it a collection anew.
	 */
	if ((attr->ia_valid & ATTR_SIZE) && !attr->ia_size &&
	    vexfs_inode_is_collection(inode))
		vexfs_inode_set_collection(inode, false);
	setattr_copy(idmap, inode, attr);
	/* ->dirty_inode logs it in a handle of its own */
	mark_inode_dirty(inode);
	if (attr->ia_valid & ATTR_MODE)
		return vexfs_posix_acl_chmod(idmap, dentry, inode->i_mode);
	return 0;
}

int vexfs_getattr(vexfs_idmap_t *idmap, const struct path *path,
		  struct kstat *stat, u32 request_mask, unsigned int flags)
{
	struct inode *inode = d_inode(path->dentry);

	if (request_mask & STATX_BTIME) {
		stat->result_mask |= STATX_BTIME;
		stat->btime = VEXFS_I(inode)->i_crtime;
	}
	vexfs_fillattr(idmap, request_mask, inode, stat);
	stat->blksize = VEXFS_BLOCK_SIZE;
	return 0;
}
