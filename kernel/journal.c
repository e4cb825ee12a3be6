// SPDX-License-Identifier: GPL-2.0
/*
 * journal.c - metadata journaling on the kernel's jbd2.
 *
 * The journal is the contiguous region [s_journal_start, +s_journal_blocks)
 * of the filesystem's own device (docs/format.md), opened with
 * jbd2_journal_init_dev(bdev, bdev, start, len, 4096): the simplest
 * internal journal, as ocfs2 and ext4 use for an external one. (The
 * alternative, jbd2_journal_init_inode(), needs a journal inode and ->bmap;
 * the region needs neither and fsck finds it from the superblock alone.)
 *
 * Every operation that changes metadata runs in one jbd2 handle
 * (vexfs_journal_start/stop) whose credits are counted from its worst case;
 * every metadata buffer (bitmaps, inode table, directory and extent blocks)
 * is changed between vexfs_journal_get_write()/get_create() and
 * vexfs_journal_dirty(). Without a journal (images from an older mkfs, or
 * mkfs -O ^has_journal) the same helpers fall back to plain buffer dirtying.
 *
 * Ordered data: each regular file has a jbd2_inode; a handle that maps new
 * blocks into a file adds the range with jbd2_journal_inode_ranged_write(),
 * so jbd2 writes those pages before the commit block of the transaction
 * that points at them (ext4's data=ordered).
 *
 * Freed blocks: a block freed in transaction T is clear in the bitmap at
 * once (journaled) but stays "pending" in memory until T commits, and the
 * allocator skips pending blocks (ext4 does the same with its buddy cache),
 * so a crash before T's commit never finds a block of the old file
 * overwritten by its next owner. Freed metadata blocks are also revoked so
 * a replay of an older transaction cannot write their old contents over
 * the new owner's data.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blkdev.h>
#include <linux/jbd2.h>
#include <linux/ktime.h>
#include <linux/slab.h>
#include <linux/pagemap.h>
#include <linux/writeback.h>
#include "vexfs.h"

struct vexfs_pending {
	struct list_head list;
	tid_t tid;
	u64 start;
	u64 count;
};

/* Longs covering one bitmap block's 32640 bits. */
#define VEXFS_PENDING_LONGS	BITS_TO_LONGS(VEXFS_BITS_PER_BITMAP)

static void vexfs_pending_clear(struct vexfs_sb_info *sbi, u64 start,
				u64 count)
{
	while (count) {
		u64 idx = start / VEXFS_BITS_PER_BITMAP;
		u32 off = start % VEXFS_BITS_PER_BITMAP;
		u32 n = min_t(u64, count, VEXFS_BITS_PER_BITMAP - off);

		if (sbi->s_pending_map[idx])
			bitmap_clear(sbi->s_pending_map[idx], off, n);
		start += n;
		count -= n;
	}
}

/* jbd2 commit callback (kjournald2): blocks freed by @txn are reusable. */
/*
 * Ordered data: write the inode's dirty range before the transaction that
 * points at it commits. jbd2_journal_submit_inode_data_buffers() is not
 * exported after 6.1 (ext4 and ocfs2 carry their own copy of this), so
 * VexFS does the same on every kernel.
 */
static int vexfs_submit_inode_data(struct jbd2_inode *jinode)
{
	struct writeback_control wbc = {
		.sync_mode = WB_SYNC_ALL,
		.nr_to_write = LONG_MAX,
		.range_start = jinode->i_dirty_start,
		.range_end = jinode->i_dirty_end,
	};

	return filemap_fdatawrite_wbc(jinode->i_vfs_inode->i_mapping, &wbc);
}

static void vexfs_commit_callback(journal_t *journal, transaction_t *txn)
{
	struct super_block *sb = journal->j_private;
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	struct vexfs_pending *p, *tmp;
	LIST_HEAD(done);

	spin_lock(&sbi->s_pending_lock);
	list_for_each_entry_safe(p, tmp, &sbi->s_pending_list, list) {
		if (tid_gt(p->tid, txn->t_tid))
			continue;
		vexfs_pending_clear(sbi, p->start, p->count);
		list_move(&p->list, &done);
	}
	spin_unlock(&sbi->s_pending_lock);
	list_for_each_entry_safe(p, tmp, &done, list)
		kfree(p);
}

/*
 * Blocks [start, +count) were just freed in the running handle: keep them
 * from the allocator until that transaction commits. Called under
 * s_alloc_lock. On allocation failure the blocks are reusable at once (the
 * pre-journal behaviour) and a warning says so.
 */
void vexfs_pending_add(struct super_block *sb, u64 start, u64 count)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	handle_t *handle = journal_current_handle();
	struct vexfs_pending *p, *last;
	u64 s = start, c = count;
	tid_t tid;

	if (!sbi->s_journal || !handle || !count)
		return;
	tid = handle->h_transaction->t_tid;
	while (c) {
		u64 idx = s / VEXFS_BITS_PER_BITMAP;
		u32 n = min_t(u64, c, VEXFS_BITS_PER_BITMAP -
			      s % VEXFS_BITS_PER_BITMAP);

		if (!sbi->s_pending_map[idx]) {
			unsigned long *m = kcalloc(VEXFS_PENDING_LONGS,
						   sizeof(long), GFP_NOFS);

			if (!m)
				goto nomem;
			spin_lock(&sbi->s_pending_lock);
			if (!sbi->s_pending_map[idx]) {
				sbi->s_pending_map[idx] = m;
				m = NULL;
			}
			spin_unlock(&sbi->s_pending_lock);
			kfree(m);
		}
		s += n;
		c -= n;
	}
	p = kmalloc(sizeof(*p), GFP_NOFS);
	if (!p)
		goto nomem;
	spin_lock(&sbi->s_pending_lock);
	last = list_empty(&sbi->s_pending_list) ? NULL :
	       list_last_entry(&sbi->s_pending_list, struct vexfs_pending, list);
	if (last && last->tid == tid && last->start + last->count == start) {
		last->count += count;
		kfree(p);
		p = NULL;
	} else {
		p->tid = tid;
		p->start = start;
		p->count = count;
		list_add_tail(&p->list, &sbi->s_pending_list);
	}
	s = start;
	c = count;
	while (c) {
		u64 idx = s / VEXFS_BITS_PER_BITMAP;
		u32 off = s % VEXFS_BITS_PER_BITMAP;
		u32 n = min_t(u64, c, VEXFS_BITS_PER_BITMAP - off);

		bitmap_set(sbi->s_pending_map[idx], off, n);
		s += n;
		c -= n;
	}
	spin_unlock(&sbi->s_pending_lock);
	return;
nomem:
	vexfs_msg(sb, KERN_WARNING,
		  "warning: no memory to hold freed blocks [%llu, +%llu) until their transaction commits; they are reusable at once",
		  start, count);
}

/*
 * Is @bit of block bitmap block @idx freed by a transaction that has not
 * committed yet? Returns the first bit at or after @bit that is not
 * pending (== @bit if it is not), bounded by @lim.
 */
unsigned long vexfs_pending_skip(struct super_block *sb, u64 idx,
				 unsigned long bit, unsigned long lim)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	unsigned long next;

	if (!sbi->s_journal || !sbi->s_pending_map[idx])
		return bit;
	spin_lock(&sbi->s_pending_lock);
	next = find_next_zero_bit(sbi->s_pending_map[idx], lim, bit);
	spin_unlock(&sbi->s_pending_lock);
	return next;
}

bool vexfs_pending_test(struct super_block *sb, u64 idx, unsigned long bit)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	bool ret;

	if (!sbi->s_journal || !sbi->s_pending_map[idx])
		return false;
	spin_lock(&sbi->s_pending_lock);
	ret = test_bit(bit, sbi->s_pending_map[idx]);
	spin_unlock(&sbi->s_pending_lock);
	return ret;
}

bool vexfs_pending_any(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	bool ret;

	if (!sbi->s_journal)
		return false;
	spin_lock(&sbi->s_pending_lock);
	ret = !list_empty(&sbi->s_pending_list);
	spin_unlock(&sbi->s_pending_lock);
	return ret;
}

static void vexfs_pending_destroy(struct vexfs_sb_info *sbi)
{
	struct vexfs_pending *p, *tmp;
	u32 i;

	list_for_each_entry_safe(p, tmp, &sbi->s_pending_list, list)
		kfree(p);
	INIT_LIST_HEAD(&sbi->s_pending_list);
	if (sbi->s_pending_map) {
		for (i = 0; i < sbi->s_bbitmap_blocks; i++)
			kfree(sbi->s_pending_map[i]);
		kvfree(sbi->s_pending_map);
		sbi->s_pending_map = NULL;
	}
}

/* ---- handles ---- */

/*
 * The journal was aborted (a journal write failed, or a checkpoint write of
 * metadata, or jbd2 found a bug): no transaction can start any more, so
 * whatever errors= says the filesystem cannot stay writable. As ext4 does
 * for an aborted journal (__ext4_abort), report it once as an error (which
 * records the ERROR state, and panics with errors=panic) and make the
 * mount read-only, saying so. What the journal had committed is on disk
 * or in the log: the next mount or fsck.vexfs replays it, and jbd2's errno
 * in the journal superblock makes the kernel refuse to mount until
 * fsck.vexfs has checked the filesystem and cleared it.
 */
void vexfs_journal_abort_policy(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	journal_t *journal = sbi->s_journal;

	if (!journal || !is_journal_aborted(journal) ||
	    test_and_set_bit(VEXFS_JF_ABORT_REPORTED, &sbi->s_journal_flags))
		return;
	vexfs_error(sb, "the journal was aborted (%d): a journal or metadata write failed",
		    jbd2_journal_errno(journal));
	if (!sb_rdonly(sb)) {
		vexfs_msg(sb, KERN_CRIT,
			  "error: remounting filesystem read-only: an aborted journal takes no transactions, whatever errors= says");
		sb->s_flags |= SB_RDONLY;
	}
}

/*
 * Start a handle for @credits metadata blocks and @revokes revoke records.
 * Nested calls (a handle is already running in this task) join it. Returns
 * NULL without a journal, an ERR_PTR on failure (-EROFS after an abort).
 */
handle_t *vexfs_journal_start(struct super_block *sb, int credits, int revokes)
{
	journal_t *journal = VEXFS_SB(sb)->s_journal;
	handle_t *handle;

	if (!journal)
		return NULL;
	if (sb_rdonly(sb))
		return ERR_PTR(-EROFS);
	if (is_journal_aborted(journal)) {
		vexfs_journal_abort_policy(sb);
		return ERR_PTR(-EROFS);
	}
	credits = min(credits, journal->j_max_transaction_buffers);
	/*
	 * Any allocation may free an extent block (neighbouring extents
	 * merge, or a reserved chain block is given back): room for a few
	 * revoke records in every handle (they cost one journal block).
	 */
	revokes += VEXFS_REVOKES_ALLOC;
	handle = jbd2__journal_start(journal, credits, 0, revokes, GFP_NOFS,
				     0, 0);
	if (IS_ERR(handle))
		vexfs_msg(sb, KERN_ERR, "error: cannot start a journal handle (%ld)",
			  PTR_ERR(handle));
	return handle;
}

/* Stop @handle (NULL or an ERR_PTR are ignored). Returns an errno. */
int vexfs_journal_stop(handle_t *handle)
{
	if (IS_ERR_OR_NULL(handle))
		return 0;
	return jbd2_journal_stop(handle);
}

/* Stop @handle after an operation that returned @err: the first error. */
int vexfs_journal_end(handle_t *handle, int err)
{
	int err2 = vexfs_journal_stop(handle);

	return err ?: err2;
}

/* The running handle of this task for @sb's journal, or NULL. */
static handle_t *vexfs_handle(struct super_block *sb, const char *what)
{
	handle_t *handle = journal_current_handle();

	if (!handle) {
		vexfs_msg(sb, KERN_ERR, "error: %s outside a journal handle", what);
		WARN_ON_ONCE(1);
	}
	return handle;
}

static int vexfs_journal_err(struct super_block *sb, const char *what,
			     struct buffer_head *bh, int err)
{
	if (err)
		vexfs_error(sb, "journal: %s of block %llu failed (%d)", what,
			    (u64)bh->b_blocknr, err);
	return err;
}

/* Before changing metadata buffer @bh (not locked by the caller). */
int vexfs_journal_get_write(struct super_block *sb, struct buffer_head *bh)
{
	handle_t *handle;

	if (!VEXFS_SB(sb)->s_journal)
		return 0;
	handle = vexfs_handle(sb, "metadata change");
	if (!handle)
		return 0;
	return vexfs_journal_err(sb, "write access", bh,
				 jbd2_journal_get_write_access(handle, bh));
}

/* Before filling newly allocated metadata block @bh (from vexfs_getblk). */
int vexfs_journal_get_create(struct super_block *sb, struct buffer_head *bh)
{
	handle_t *handle;
	int err;

	if (!VEXFS_SB(sb)->s_journal)
		return 0;
	handle = vexfs_handle(sb, "new metadata block");
	if (!handle)
		return 0;
	/* jbd2 wants the buffer locked here (as ext4_getblk holds it) */
	lock_buffer(bh);
	err = jbd2_journal_get_create_access(handle, bh);
	unlock_buffer(bh);
	return vexfs_journal_err(sb, "create access", bh, err);
}

/*
 * After changing @bh (unlocked): log it in the running transaction, or
 * without a journal dirty it for writeback (keeping buffer.c's lost-write
 * policy either way).
 */
int vexfs_journal_dirty(struct super_block *sb, struct buffer_head *bh)
{
	handle_t *handle;
	int err;

	if (!VEXFS_SB(sb)->s_journal) {
		vexfs_mark_buffer_dirty(sb, bh);
		return 0;
	}
	vexfs_note_changed(sb, bh);
	handle = vexfs_handle(sb, "metadata change");
	if (!handle) {
		vexfs_mark_buffer_dirty(sb, bh);
		return 0;
	}
	err = jbd2_journal_dirty_metadata(handle, bh);
	return vexfs_journal_err(sb, "logging", bh, err);
}

/*
 * Metadata block @blk (a directory or extent block) was freed: it must not
 * be written back, and with a journal its older logged copies must not be
 * replayed over its next owner (revoke).
 */
void vexfs_journal_forget(struct super_block *sb, u64 blk)
{
	struct buffer_head *bh;
	handle_t *handle;
	int err;

	if (!VEXFS_SB(sb)->s_journal) {
		vexfs_forget_block(sb, blk);
		return;
	}
	handle = vexfs_handle(sb, "freeing metadata");
	if (!handle) {
		vexfs_forget_block(sb, blk);
		return;
	}
	bh = sb_find_get_block(sb, blk);
	if (bh)
		vexfs_clear_verified(bh);
	err = jbd2_journal_revoke(handle, blk, bh);
	if (err) {
		vexfs_error(sb, "journal: revoke of block %llu failed (%d)", blk, err);
		if (bh)
			put_bh(bh);
	}
	/* jbd2_journal_revoke() dropped the reference on success */
}

/*
 * Regular file @inode got new blocks for bytes [pos, pos + len) in the
 * running handle: write those pages before this transaction commits.
 */
int vexfs_journal_ordered(struct inode *inode, loff_t pos, loff_t len)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	handle_t *handle;

	if (!VEXFS_SB(inode->i_sb)->s_journal || len <= 0)
		return 0;
	handle = journal_current_handle();
	if (!handle)
		return 0;
	return jbd2_journal_inode_ranged_write(handle, &ei->i_jinode, pos, len);
}

/* The end of an inode's life: jbd2 must be done with its data first. */
void vexfs_journal_release_inode(struct inode *inode)
{
	journal_t *journal = VEXFS_SB(inode->i_sb)->s_journal;

	if (journal)
		jbd2_journal_release_jbd_inode(journal, &VEXFS_I(inode)->i_jinode);
}

/* Remember the inode's last transaction, for fsync. */
void vexfs_journal_note_inode(struct inode *inode)
{
	handle_t *handle = journal_current_handle();

	if (VEXFS_SB(inode->i_sb)->s_journal && handle)
		WRITE_ONCE(VEXFS_I(inode)->i_sync_tid,
			   handle->h_transaction->t_tid);
}

/* Wait until the transaction with @inode's last change is on disk. */
int vexfs_journal_sync_inode(struct inode *inode)
{
	journal_t *journal = VEXFS_SB(inode->i_sb)->s_journal;
	tid_t tid = READ_ONCE(VEXFS_I(inode)->i_sync_tid);
	int err;

	if (!journal)
		return 0;
	if (is_journal_aborted(journal)) {
		vexfs_journal_abort_policy(inode->i_sb);
		return -EROFS;
	}
	/* jbd2 flushes the device cache with the commit when it has to */
	if (jbd2_trans_will_send_data_barrier(journal, tid))
		return jbd2_complete_transaction(journal, tid);
	err = jbd2_complete_transaction(journal, tid);
	if (err)
		return err;
	return blkdev_issue_flush(inode->i_sb->s_bdev);
}

/* ->sync_fs: commit the running transaction and wait for it. */
int vexfs_journal_commit(struct super_block *sb, int wait)
{
	journal_t *journal = VEXFS_SB(sb)->s_journal;
	tid_t target;
	int err = 0;

	if (!journal)
		return 0;
	if (jbd2_journal_start_commit(journal, &target) && wait)
		err = jbd2_log_wait_commit(journal, target);
	if (is_journal_aborted(journal)) {
		vexfs_journal_abort_policy(sb);
		return -EROFS;
	}
	return err;
}

/* ---- mount and unmount ---- */

/*
 * Open and replay the journal of @sb (mount). Says in dmesg how many
 * transactions were replayed and how long it took. A journal that cannot
 * be opened or replayed refuses the mount with an errno.
 */
int vexfs_journal_load(struct super_block *sb, unsigned int commit_secs)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	journal_superblock_t *jsb;
	struct buffer_head *bh;
	journal_t *journal;
	u32 seq_before, magic, replayed;
	bool dirty;
	ktime_t t0;
	int err;

	if (sbi->s_journal_blocks < JBD2_MIN_JOURNAL_BLOCKS ||
	    sbi->s_journal_start + sbi->s_journal_blocks > INT_MAX) {
		vexfs_msg(sb, KERN_ERR, "error: journal of %u blocks: jbd2 needs at least %u",
			  sbi->s_journal_blocks, JBD2_MIN_JOURNAL_BLOCKS);
		return -EUCLEAN;
	}
	/* what the journal holds before replay, for the message below */
	bh = vexfs_bread(sb, sbi->s_journal_start);
	if (!bh) {
		vexfs_msg(sb, KERN_ERR, "error: cannot read the journal superblock (block %llu)",
			  sbi->s_journal_start);
		return -EIO;
	}
	jsb = (journal_superblock_t *)bh->b_data;
	magic = be32_to_cpu(jsb->s_header.h_magic);
	dirty = jsb->s_start != 0;
	seq_before = be32_to_cpu(jsb->s_sequence);
	vexfs_brelse(bh);
	if (magic != JBD2_MAGIC_NUMBER) {
		vexfs_msg(sb, KERN_ERR, "error: corrupt journal: bad journal superblock magic 0x%08x; run fsck.vexfs",
			  magic);
		return -EUCLEAN;
	}
	if (dirty && bdev_read_only(sb->s_bdev)) {
		vexfs_msg(sb, KERN_ERR, "error: the journal needs recovery but the device is read-only");
		return -EROFS;
	}
	sbi->s_pending_map = kvcalloc(sbi->s_bbitmap_blocks, sizeof(long *),
				      GFP_KERNEL);
	if (!sbi->s_pending_map)
		return -ENOMEM;
	/*
	 * jbd2 numbers a journal on a device from the device's block 0: the
	 * length it takes is the end of the log (s_maxlen), not its size.
	 */
	journal = jbd2_journal_init_dev(sb->s_bdev, sb->s_bdev,
					sbi->s_journal_start,
					sbi->s_journal_start + sbi->s_journal_blocks,
					VEXFS_BLOCK_SIZE);
	if (!journal) {
		vexfs_msg(sb, KERN_ERR, "error: cannot open the journal at block %llu (%u blocks)",
			  sbi->s_journal_start, sbi->s_journal_blocks);
		err = -EIO;
		goto out_pending;
	}
	journal->j_private = sb;
	journal->j_commit_interval = commit_secs * HZ;
	journal->j_commit_callback = vexfs_commit_callback;
	journal->j_submit_inode_data_buffers = vexfs_submit_inode_data;
	journal->j_finish_inode_data_buffers =
		jbd2_journal_finish_inode_data_buffers;
	journal->j_flags |= JBD2_BARRIER;

	t0 = ktime_get();
	err = jbd2_journal_load(journal);
	if (err) {
		vexfs_msg(sb, KERN_ERR, "error: corrupt journal: replay failed (%d); run fsck.vexfs",
			  err);
		err = err == -ENOMEM ? err : -EUCLEAN;
		goto out_destroy;
	}
	if (dirty) {
		replayed = journal->j_transaction_sequence - 1 - seq_before;
		vexfs_msg(sb, KERN_INFO, "recovered %u transactions in %lld ms",
			  replayed, ktime_ms_delta(ktime_get(), t0));
	}
	/*
	 * jbd2 sizes transactions from s_maxlen (the end of the log): bound
	 * them by the log itself, a quarter of it as for ext4.
	 */
	journal->j_max_transaction_buffers =
		min_t(int, journal->j_max_transaction_buffers,
		      sbi->s_journal_blocks / 4);
	if (!jbd2_journal_set_features(journal, 0, 0,
				       JBD2_FEATURE_INCOMPAT_64BIT |
				       JBD2_FEATURE_INCOMPAT_CSUM_V3)) {
		vexfs_msg(sb, KERN_ERR, "error: cannot enable journal checksums");
		err = -EINVAL;
		goto out_destroy;
	}
	err = jbd2_journal_errno(journal);
	if (err) {
		vexfs_msg(sb, KERN_ERR, "error: the journal was aborted (%d) on an earlier mount; run fsck.vexfs",
			  err);
		err = -EUCLEAN;
		goto out_destroy;
	}
	sbi->s_journal = journal;
	sbi->s_recovered = dirty;
	return 0;

out_destroy:
	jbd2_journal_destroy(journal);
out_pending:
	kvfree(sbi->s_pending_map);
	sbi->s_pending_map = NULL;
	return err;
}

/* Checkpoint everything and close the journal (unmount, failed mount). */
int vexfs_journal_destroy(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	int err;

	if (!sbi->s_journal)
		return 0;
	err = jbd2_journal_destroy(sbi->s_journal);
	sbi->s_journal = NULL;
	vexfs_pending_destroy(sbi);
	if (err)
		vexfs_msg(sb, KERN_ERR, "error: the journal was aborted (%d); run fsck.vexfs",
			  err);
	return err;
}

/* Write everything in the journal in place (remount read-only). */
int vexfs_journal_flush(struct super_block *sb)
{
	journal_t *journal = VEXFS_SB(sb)->s_journal;
	int err;

	if (!journal)
		return 0;
	jbd2_journal_lock_updates(journal);
	err = jbd2_journal_flush(journal, 0);
	jbd2_journal_unlock_updates(journal);
	vexfs_journal_abort_policy(sb);
	return err;
}
