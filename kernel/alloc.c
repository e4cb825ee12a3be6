// SPDX-License-Identifier: GPL-2.0
/*
 * alloc.c - inode and block bitmaps.
 *
 * Both bitmaps are arrays of bitmap blocks (struct vexfs_bitmap_header +
 * 4080 bytes of bits). Every bitmap block is verified (magic, index,
 * CRC-32C) the first time it is read and its checksum is recomputed on
 * every change. All allocator state (the bitmaps and the free counts) is
 * protected by the per-superblock s_alloc_lock mutex; it is a mutex because
 * bitmap blocks may have to be read from disk while it is held.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitops.h>
#include "vexfs.h"

#define VEXFS_BMP_HDR	sizeof(struct vexfs_bitmap_header)

static struct buffer_head *vexfs_read_bitmap(struct super_block *sb, u64 start,
					     u32 idx, const char *what)
{
	struct vexfs_bitmap_header *h;
	struct buffer_head *bh;

	bh = vexfs_bread_meta(sb, start + idx, false);
	if (IS_ERR(bh)) {
		vexfs_error(sb, "unable to read %s bitmap block %u (block %llu)",
			    what, idx, start + idx);
		return ERR_PTR(-EIO);
	}
	if (vexfs_verified(bh, VEXFS_META_BITMAP))
		return bh;
	h = (struct vexfs_bitmap_header *)bh->b_data;
	if (le32_to_cpu(h->bh_magic) != VEXFS_BITMAP_MAGIC ||
	    le64_to_cpu(h->bh_index) != idx) {
		vexfs_error(sb, "%s bitmap block %u (block %llu): bad magic 0x%08x or index %llu",
			    what, idx, start + idx, le32_to_cpu(h->bh_magic),
			    le64_to_cpu(h->bh_index));
		vexfs_brelse(bh);
		return ERR_PTR(-EUCLEAN);
	}
	if (!vexfs_bitmap_csum_ok(bh->b_data)) {
		vexfs_error(sb, "%s bitmap block %u (block %llu): checksum mismatch",
			    what, idx, start + idx);
		vexfs_brelse(bh);
		return ERR_PTR(-EBADMSG);
	}
	vexfs_set_verified(bh, VEXFS_META_BITMAP);
	return bh;
}

/* Checksum a changed bitmap block; the caller holds the buffer lock. */
static void vexfs_bitmap_dirty(struct super_block *sb, struct buffer_head *bh)
{
	vexfs_bitmap_csum_set(bh->b_data);
}

/*
 * Nothing is allocated once the filesystem is read-only: after an error
 * under errors=remount-ro (e.g. a lost metadata write, found here at the
 * latest) writers that got past the VFS's read-only check get EROFS.
 */
static int vexfs_alloc_allowed(struct super_block *sb)
{
	vexfs_check_wb_err(sb);
	return sb_rdonly(sb) ? -EROFS : 0;
}

/*
 * Allocate up to @want contiguous blocks, preferring @goal: the first free
 * block at or after goal (wrapping around the data region once) starts the
 * run, which grows while the following blocks are free. Returns the number
 * of blocks allocated (>= 1) with the first in *start, or -ENOSPC/-EIO/
 * -EUCLEAN with nothing changed.
 */
int vexfs_new_blocks(struct super_block *sb, u64 goal, u32 want, u64 *start)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	u64 lo = sbi->s_data_start, hi = sbi->s_blocks_count;
	u64 blk, scanned = 0, total = hi - lo;
	int ret = -ENOSPC;

	if (!want)
		return -EINVAL;
	ret = vexfs_alloc_allowed(sb);
	if (ret)
		return ret;
	ret = -ENOSPC;
	mutex_lock(&sbi->s_alloc_lock);
	if (!sbi->s_free_blocks)
		goto out;
	if (goal < lo || goal >= hi)
		goal = sbi->s_block_goal;
	if (goal < lo || goal >= hi)
		goal = lo;

	blk = goal;
	while (scanned < total) {
		u64 idx = blk / VEXFS_BITS_PER_BITMAP;
		u64 base = idx * VEXFS_BITS_PER_BITMAP;
		u64 end = min_t(u64, base + VEXFS_BITS_PER_BITMAP, hi);
		struct buffer_head *bh;
		void *map;
		unsigned long bit, lim = end - base;

		bh = vexfs_read_bitmap(sb, sbi->s_bbitmap_start, idx, "block");
		if (IS_ERR(bh)) {
			ret = PTR_ERR(bh);
			goto out;
		}
		map = bh->b_data + VEXFS_BMP_HDR;
		bit = blk - base;
		for (;;) {
			unsigned long next;

			bit = find_next_zero_bit_le(map, lim, bit);
			/* freed by a transaction that has not committed */
			next = bit < lim ? vexfs_pending_skip(sb, idx, bit, lim) : bit;
			if (next == bit)
				break;
			bit = next;
		}
		if (bit < lim) {
			u32 n = 1, i;

			while (n < want && bit + n < lim &&
			       !test_bit_le(bit + n, map) &&
			       !vexfs_pending_test(sb, idx, bit + n))
				n++;
			ret = vexfs_journal_get_write(sb, bh);
			if (ret) {
				vexfs_brelse(bh);
				goto out;
			}
			lock_buffer(bh);
			for (i = 0; i < n; i++)
				__set_bit_le(bit + i, map);
			vexfs_bitmap_dirty(sb, bh);
			unlock_buffer(bh);
			ret = vexfs_journal_dirty(sb, bh);
			vexfs_brelse(bh);
			if (ret)
				goto out;
			*start = base + bit;
			sbi->s_free_blocks -= min_t(u64, n, sbi->s_free_blocks);
			sbi->s_block_goal = base + bit + n;
			ret = n;
			goto out;
		}
		vexfs_brelse(bh);
		scanned += end - blk;
		blk = end >= hi ? lo : end;
	}
	/* the free blocks are freed by transactions not yet committed */
	if (vexfs_pending_any(sb))
		goto out;
	vexfs_msg(sb, KERN_WARNING,
		  "warning: free block count %llu but block bitmap is full; run fsck.vexfs",
		  sbi->s_free_blocks);
	sbi->s_free_blocks = 0;
out:
	mutex_unlock(&sbi->s_alloc_lock);
	return ret;
}

/* Free [start, start + count). Freeing a block that is already free is
 * reported as corruption (the bits are left as they are).
 */
int vexfs_free_blocks(struct super_block *sb, u64 start, u64 count)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	u64 freed = 0, bad = 0, first_bad = 0, s = start, c = count;
	int ret = 0;

	if (!count)
		return 0;
	if (!vexfs_data_range_ok(sbi, start, count)) {
		vexfs_error(sb, "freeing blocks [%llu, +%llu) outside the data region",
			    start, count);
		return -EUCLEAN;
	}
	mutex_lock(&sbi->s_alloc_lock);
	while (c) {
		u64 idx = s / VEXFS_BITS_PER_BITMAP;
		u32 off = s % VEXFS_BITS_PER_BITMAP;
		u32 n = min_t(u64, c, VEXFS_BITS_PER_BITMAP - off), i;
		struct buffer_head *bh;
		void *map;

		bh = vexfs_read_bitmap(sb, sbi->s_bbitmap_start, idx, "block");
		if (IS_ERR(bh)) {
			ret = PTR_ERR(bh);
			break;
		}
		map = bh->b_data + VEXFS_BMP_HDR;
		ret = vexfs_journal_get_write(sb, bh);
		if (ret) {
			vexfs_brelse(bh);
			break;
		}
		lock_buffer(bh);
		for (i = 0; i < n; i++) {
			if (__test_and_clear_bit_le(off + i, map))
				freed++;
			else if (!bad++)
				first_bad = s + i;
		}
		vexfs_bitmap_dirty(sb, bh);
		unlock_buffer(bh);
		ret = vexfs_journal_dirty(sb, bh);
		vexfs_brelse(bh);
		if (ret)
			break;
		/* not reusable before this transaction commits */
		vexfs_pending_add(sb, s, n);
		s += n;
		c -= n;
	}
	sbi->s_free_blocks = min(sbi->s_free_blocks + freed,
				 sbi->s_blocks_count - sbi->s_data_start);
	mutex_unlock(&sbi->s_alloc_lock);
	if (bad) {
		vexfs_error(sb, "freeing %llu already free blocks (first %llu)",
			    bad, first_bad);
		ret = ret ?: -EUCLEAN;
	}
	return ret;
}

/* Allocate the lowest free inode number at or after @goal. */
int vexfs_new_ino(struct super_block *sb, u32 goal, u32 *ino)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	u32 idx, nblocks = sbi->s_ibitmap_blocks;
	int ret;

	ret = vexfs_alloc_allowed(sb);
	if (ret)
		return ret;
	ret = -ENOSPC;
	mutex_lock(&sbi->s_alloc_lock);
	if (!sbi->s_free_inodes)
		goto out;
	if (goal >= sbi->s_inodes_count)
		goal = 0;
	for (idx = goal / VEXFS_BITS_PER_BITMAP; idx < nblocks; idx++) {
		u64 base = (u64)idx * VEXFS_BITS_PER_BITMAP;
		unsigned long lim = min_t(u64, VEXFS_BITS_PER_BITMAP,
					  sbi->s_inodes_count - base);
		unsigned long from = 0, bit;
		struct buffer_head *bh;
		void *map;

		if (goal > base)
			from = goal - base;
		bh = vexfs_read_bitmap(sb, sbi->s_ibitmap_start, idx, "inode");
		if (IS_ERR(bh)) {
			ret = PTR_ERR(bh);
			goto out;
		}
		map = bh->b_data + VEXFS_BMP_HDR;
		bit = find_next_zero_bit_le(map, lim, from);
		if (bit < lim) {
			ret = vexfs_journal_get_write(sb, bh);
			if (ret) {
				vexfs_brelse(bh);
				goto out;
			}
			lock_buffer(bh);
			__set_bit_le(bit, map);
			vexfs_bitmap_dirty(sb, bh);
			unlock_buffer(bh);
			ret = vexfs_journal_dirty(sb, bh);
			vexfs_brelse(bh);
			if (ret)
				goto out;
			*ino = base + bit + 1;
			sbi->s_free_inodes--;
			ret = 0;
			goto out;
		}
		vexfs_brelse(bh);
	}
	if (goal) {
		/* wrap around once to the start of the table */
		mutex_unlock(&sbi->s_alloc_lock);
		return vexfs_new_ino(sb, 0, ino);
	}
	vexfs_msg(sb, KERN_WARNING,
		  "warning: free inode count %u but inode bitmap is full; run fsck.vexfs",
		  sbi->s_free_inodes);
	sbi->s_free_inodes = 0;
out:
	mutex_unlock(&sbi->s_alloc_lock);
	return ret;
}

int vexfs_free_ino(struct super_block *sb, u32 ino)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	struct buffer_head *bh;
	u32 bit, idx;
	bool was_set;
	int err;

	if (ino <= VEXFS_ROOT_INO || ino > sbi->s_inodes_count) {
		vexfs_error(sb, "freeing invalid inode number %u", ino);
		return -EUCLEAN;
	}
	idx = (ino - 1) / VEXFS_BITS_PER_BITMAP;
	bit = (ino - 1) % VEXFS_BITS_PER_BITMAP;
	mutex_lock(&sbi->s_alloc_lock);
	bh = vexfs_read_bitmap(sb, sbi->s_ibitmap_start, idx, "inode");
	if (IS_ERR(bh)) {
		mutex_unlock(&sbi->s_alloc_lock);
		return PTR_ERR(bh);
	}
	err = vexfs_journal_get_write(sb, bh);
	if (err) {
		vexfs_brelse(bh);
		mutex_unlock(&sbi->s_alloc_lock);
		return err;
	}
	lock_buffer(bh);
	was_set = __test_and_clear_bit_le(bit, bh->b_data + VEXFS_BMP_HDR);
	vexfs_bitmap_dirty(sb, bh);
	unlock_buffer(bh);
	err = vexfs_journal_dirty(sb, bh);
	vexfs_brelse(bh);
	if (was_set && sbi->s_free_inodes < sbi->s_inodes_count)
		sbi->s_free_inodes++;
	mutex_unlock(&sbi->s_alloc_lock);
	if (!was_set) {
		vexfs_error(sb, "freeing inode %u which is already free", ino);
		return -EUCLEAN;
	}
	return err;
}

/*
 * A freed metadata block (directory or extent block) may still sit in the
 * block device's buffer cache, possibly dirty: drop the dirty state so a
 * late writeback cannot overwrite the block's next owner, and forget that it
 * was verified.
 */
void vexfs_forget_block(struct super_block *sb, u64 blk)
{
	struct buffer_head *bh = sb_find_get_block(sb, blk);

	if (!bh)
		return;
	lock_buffer(bh);
	clear_buffer_dirty(bh);
	/* a lost write of its old contents must not be restored later */
	clear_buffer_write_io_error(bh);
	vexfs_clear_verified(bh);
	unlock_buffer(bh);
	put_bh(bh);
}

/* Free bits among the first @nbits bits of bitmap block @bh. */
static u64 vexfs_count_free(struct buffer_head *bh, u32 nbits)
{
	const void *map = bh->b_data + VEXFS_BMP_HDR;
	u32 bit = 0, used = 0;

	for (;;) {
		bit = find_next_bit_le(map, nbits, bit);
		if (bit >= nbits)
			break;
		used++;
		bit++;
	}
	return nbits - used;
}

/*
 * After a journal replay: the free counts in the superblock are not
 * journaled (as ext4's), so count them from the bitmaps, which are.
 */
int vexfs_recount_free(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	u64 fblocks = 0, finodes = 0, base;
	struct buffer_head *bh;
	u32 i;

	for (i = 0; i < sbi->s_bbitmap_blocks; i++) {
		base = (u64)i * VEXFS_BITS_PER_BITMAP;
		bh = vexfs_read_bitmap(sb, sbi->s_bbitmap_start, i, "block");
		if (IS_ERR(bh))
			return PTR_ERR(bh);
		fblocks += vexfs_count_free(bh, min_t(u64, VEXFS_BITS_PER_BITMAP,
						      sbi->s_blocks_count - base));
		vexfs_brelse(bh);
		cond_resched();
	}
	for (i = 0; i < sbi->s_ibitmap_blocks; i++) {
		base = (u64)i * VEXFS_BITS_PER_BITMAP;
		bh = vexfs_read_bitmap(sb, sbi->s_ibitmap_start, i, "inode");
		if (IS_ERR(bh))
			return PTR_ERR(bh);
		finodes += vexfs_count_free(bh, min_t(u64, VEXFS_BITS_PER_BITMAP,
						      sbi->s_inodes_count - base));
		vexfs_brelse(bh);
		cond_resched();
	}
	mutex_lock(&sbi->s_alloc_lock);
	sbi->s_free_blocks = min(fblocks, sbi->s_blocks_count - sbi->s_data_start);
	sbi->s_free_inodes = min_t(u64, finodes, sbi->s_inodes_count - 1);
	mutex_unlock(&sbi->s_alloc_lock);
	return 0;
}
