// SPDX-License-Identifier: GPL-2.0
/*
 * buffer.c - metadata buffers and metadata write errors.
 *
 * Every metadata block lives in the block device's buffer cache and is
 * written back asynchronously (flusher, sync, fsync). When such a write
 * fails, end_buffer_async_write() sets BH_Write_EIO, clears BH_Uptodate
 * and bumps the errseq of the block device mapping. A plain sb_bread()
 * would then read the block again from the disk, i.e. hand out the copy
 * from before the change that was lost (a bitmap that no longer shows
 * the blocks and inodes handed out since). So, as ext4 does
 * (ext4_buffer_uptodate(), ext4_check_bdev_write_error()):
 *
 *  - a buffer that lost a write is never re-read: its memory is the newest
 *    copy; it is made uptodate and dirty again so writeback retries it;
 *  - the bdev mapping's errseq is checked on every metadata read, in the
 *    sync paths and at unmount; a new error is reported through
 *    vexfs_error() (errors= policy) with one line per block that lost a
 *    write and is still cached;
 *  - after a lost write, a bitmap or inode table block that was changed on
 *    this mount and is no longer in memory is not read from the disk at
 *    all (its on-disk copy may be stale): the reader gets -EIO instead.
 *    Directory and extent blocks (in the data region, unbounded in
 *    number) are not tracked.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blkdev.h>
#include <linux/pagemap.h>
#include <linux/pagevec.h>
#include <linux/slab.h>
#include "vexfs.h"

static struct address_space *vexfs_bdev_mapping(struct super_block *sb)
{
	return vexfs_bdev_mapping_of(sb->s_bdev);
}

/* Start watching the block device's write-back errors (at mount). */
void vexfs_wb_err_init(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);

	spin_lock_init(&sbi->s_bdev_wb_lock);
	sbi->s_lost_pending = U64_MAX;
	atomic_set(&sbi->s_lost_noted, 0);
	/* skip errors of earlier users of the device, as ext4 does */
	errseq_check_and_advance(&vexfs_bdev_mapping(sb)->wb_err,
				 &sbi->s_bdev_wb_err);
}

/*
 * Called once the geometry is known: one bit per bitmap and inode table
 * block, set when the block is changed on this mount (a million inodes
 * need 8 KiB).
 */
int vexfs_wb_err_setup_bitmaps(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	u64 n = (u64)sbi->s_ibitmap_blocks + sbi->s_bbitmap_blocks +
		sbi->s_itable_blocks;

	sbi->s_bmp_changed = kvcalloc(BITS_TO_LONGS(n), sizeof(long),
				      GFP_KERNEL);
	return sbi->s_bmp_changed ? 0 : -ENOMEM;
}

void vexfs_wb_err_destroy(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);

	kvfree(sbi->s_bmp_changed);
	sbi->s_bmp_changed = NULL;
}

/* Index of @blk in s_bmp_changed, or -1 if it is not tracked. */
static long vexfs_tracked_slot(struct vexfs_sb_info *sbi, u64 blk)
{
	if (blk >= sbi->s_ibitmap_start &&
	    blk - sbi->s_ibitmap_start < sbi->s_ibitmap_blocks)
		return blk - sbi->s_ibitmap_start;
	if (blk >= sbi->s_bbitmap_start &&
	    blk - sbi->s_bbitmap_start < sbi->s_bbitmap_blocks)
		return sbi->s_ibitmap_blocks + (blk - sbi->s_bbitmap_start);
	if (blk >= sbi->s_itable_start &&
	    blk - sbi->s_itable_start < sbi->s_itable_blocks)
		return (long)sbi->s_ibitmap_blocks + sbi->s_bbitmap_blocks +
		       (blk - sbi->s_itable_start);
	return -1;
}

/* What block @blk is, for messages. */
static void vexfs_block_what(struct vexfs_sb_info *sbi, u64 blk, char *buf,
			     size_t len)
{
	u64 first;

	if (!blk) {
		strscpy(buf, "superblock", len);
	} else if (blk >= sbi->s_ibitmap_start &&
		   blk - sbi->s_ibitmap_start < sbi->s_ibitmap_blocks) {
		snprintf(buf, len, "inode bitmap block %llu",
			 blk - sbi->s_ibitmap_start);
	} else if (blk >= sbi->s_bbitmap_start &&
		   blk - sbi->s_bbitmap_start < sbi->s_bbitmap_blocks) {
		snprintf(buf, len, "block bitmap block %llu",
			 blk - sbi->s_bbitmap_start);
	} else if (blk >= sbi->s_itable_start &&
		   blk - sbi->s_itable_start < sbi->s_itable_blocks) {
		first = (blk - sbi->s_itable_start) * VEXFS_INODES_PER_BLOCK + 1;
		snprintf(buf, len, "inode table, inodes %llu-%llu", first,
			 first + VEXFS_INODES_PER_BLOCK - 1);
	} else {
		strscpy(buf, "directory or extent block", len);
	}
}

/*
 * @bh (ours, holding metadata we wrote) lost a write: say which block, and
 * remember it for the vexfs_error() report of the next check. Only logs
 * and records; callable with the buffer locked.
 */
void vexfs_note_lost_write(struct super_block *sb, struct buffer_head *bh)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	u64 blk = bh->b_blocknr;
	char what[48];

	vexfs_block_what(sbi, blk, what, sizeof(what));
	vexfs_msg(sb, KERN_ERR,
		  "error: lost write of metadata block %llu (%s); keeping the in-memory copy",
		  blk, what);
	WRITE_ONCE(sbi->s_lost_write, true);
	atomic_inc(&sbi->s_lost_noted);
	cmpxchg64(&sbi->s_lost_pending, U64_MAX, blk);
}

/*
 * A buffer that lost a write holds the newest contents: make it uptodate
 * and dirty again so that writeback retries it. Caller holds the buffer
 * lock. Returns true if the buffer had lost a write.
 */
static bool vexfs_restore_locked(struct super_block *sb,
				 struct buffer_head *bh)
{
	if (!buffer_write_io_error(bh))
		return false;
	vexfs_note_lost_write(sb, bh);
	clear_buffer_write_io_error(bh);
	set_buffer_uptodate(bh);
	mark_buffer_dirty(bh);
	return true;
}

/*
 * Walk the block device's cached pages for buffers that lost a write and
 * restore them.
 */
static void vexfs_restore_lost_writes(struct super_block *sb)
{
	struct address_space *mapping = vexfs_bdev_mapping(sb);
	struct folio_batch fbatch;
	unsigned int i;
	pgoff_t index = 0;

	folio_batch_init(&fbatch);
	while (filemap_get_folios(mapping, &index, ULONG_MAX, &fbatch)) {
		for (i = 0; i < folio_batch_count(&fbatch); i++) {
			struct folio *folio = fbatch.folios[i];
			struct buffer_head *head, *bh;

			folio_lock(folio);
			head = folio->mapping == mapping ? folio_buffers(folio) : NULL;
			bh = head;
			while (bh) {
				if (buffer_write_io_error(bh)) {
					lock_buffer(bh);
					vexfs_restore_locked(sb, bh);
					unlock_buffer(bh);
				}
				bh = bh->b_this_page;
				if (bh == head)
					break;
			}
			folio_unlock(folio);
		}
		folio_batch_release(&fbatch);
		cond_resched();
	}
}

/*
 * Has a write of the block device's page cache (our metadata) failed since
 * the last check? If so: restore what is still cached, report through
 * vexfs_error() (errors= policy) and return -EIO. Cheap when nothing
 * failed (one errseq comparison).
 */
int __vexfs_check_wb_err(struct super_block *sb, const char *func)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	struct address_space *mapping = vexfs_bdev_mapping(sb);
	char what[48];
	int err, n;
	u64 blk;

	if (!sbi || !errseq_check(&mapping->wb_err,
				  READ_ONCE(sbi->s_bdev_wb_err)))
		return 0;
	spin_lock(&sbi->s_bdev_wb_lock);
	err = errseq_check_and_advance(&mapping->wb_err, &sbi->s_bdev_wb_err);
	spin_unlock(&sbi->s_bdev_wb_lock);
	if (!err)
		return 0;
	WRITE_ONCE(sbi->s_lost_write, true);
	vexfs_restore_lost_writes(sb);
	blk = xchg(&sbi->s_lost_pending, U64_MAX);
	n = atomic_xchg(&sbi->s_lost_noted, 0);
	if (blk == U64_MAX) {
		__vexfs_error(sb, func,
			      "I/O error writing metadata (the failed block is no longer cached)");
	} else {
		vexfs_block_what(sbi, blk, what, sizeof(what));
		__vexfs_error(sb, func,
			      "I/O error writing metadata block %llu (%s), %d lost block write%s in all",
			      blk, what, n, n == 1 ? "" : "s");
	}
	return err;
}

/*
 * Read metadata block @blk. A cached buffer that lost a write is used as
 * is (restored, see above), never re-read. With @trust_disk false, a
 * tracked block (bitmap, inode table) that was changed on this mount, is
 * no longer cached and may have lost a write is refused with -EIO instead
 * of being read.
 * Returns the buffer or an ERR_PTR; the callers report the failure.
 */
struct buffer_head *vexfs_bread_meta(struct super_block *sb, u64 blk,
				     bool trust_disk)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	struct buffer_head *bh;
	char what[48];
	long slot;
	int err;

	vexfs_check_wb_err(sb);
	bh = sb_getblk(sb, blk);
	if (!bh)
		return ERR_PTR(-ENOMEM);
	atomic_long_inc(&vexfs_nr_buffers);
	if (bh_uptodate_or_lock(bh))
		return bh;
	if (vexfs_restore_locked(sb, bh)) {
		unlock_buffer(bh);
		return bh;
	}
	if (!trust_disk && READ_ONCE(sbi->s_lost_write) && sbi->s_bmp_changed) {
		slot = vexfs_tracked_slot(sbi, blk);
		if (slot >= 0 && test_bit(slot, sbi->s_bmp_changed)) {
			unlock_buffer(bh);
			vexfs_brelse(bh);
			vexfs_block_what(sbi, blk, what, sizeof(what));
			vexfs_msg(sb, KERN_ERR,
				  "error: block %llu (%s) changed on this mount and lost from memory after a failed metadata write: not using its on-disk copy",
				  blk, what);
			return ERR_PTR(-EIO);
		}
	}
	err = __bh_read(bh, REQ_META, true);
	if (err) {
		vexfs_brelse(bh);
		return ERR_PTR(err);
	}
	return bh;
}

/*
 * Dirty a metadata buffer we hold with valid contents. If a write failed
 * since we read it, our copy is still the newest: note the lost write and
 * make the buffer uptodate again (mark_buffer_dirty() warns otherwise).
 * Bitmap and inode table blocks are remembered as changed on this mount.
 */
void vexfs_mark_buffer_dirty(struct super_block *sb, struct buffer_head *bh)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	long slot;

	if (unlikely(buffer_write_io_error(bh) || !buffer_uptodate(bh))) {
		if (buffer_write_io_error(bh))
			vexfs_note_lost_write(sb, bh);
		clear_buffer_write_io_error(bh);
		set_buffer_uptodate(bh);
	}
	if (sbi->s_bmp_changed) {
		slot = vexfs_tracked_slot(sbi, bh->b_blocknr);
		if (slot >= 0)
			set_bit(slot, sbi->s_bmp_changed);
	}
	mark_buffer_dirty(bh);
}
