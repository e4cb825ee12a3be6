// SPDX-License-Identifier: GPL-2.0
/*
 * extent.c - the extent map of an inode and get_block for the page cache.
 *
 * In memory an inode's extents are one sorted array (struct vexfs_mext),
 * loaded and fully validated when the inode is read. On disk the first
 * VEXFS_INLINE_EXTENTS live in the inode, the rest in a chain of extent
 * blocks. VexFS writes the chain densely: extent i >= 6 is in chain block
 * (i - 6) / 169, slot (i - 6) % 169, so a change at index i rewrites only the
 * chain blocks from i's block on (appending rewrites just the last one). A
 * chain written by another tool that is not dense is repacked on the first
 * change. Chain blocks are rewritten whole, so they are never read back.
 *
 * Locking: ei->i_ext_sem (read for lookups, write for changes); block
 * allocation nests the per-sb s_alloc_lock inside it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include "vexfs.h"

#define VEXFS_EPB	VEXFS_EXTENTS_PER_BLOCK

static u32 vexfs_chain_needed(u32 nr_ext)
{
	if (nr_ext <= VEXFS_INLINE_EXTENTS)
		return 0;
	return DIV_ROUND_UP(nr_ext - VEXFS_INLINE_EXTENTS, VEXFS_EPB);
}

/*
 * Map arrays can be large (one entry per extent): allocate with kvmalloc in
 * a NOFS scope so big arrays may come from vmalloc even though we may be
 * called from writeback.
 */
static void *vexfs_map_alloc(size_t n, size_t size)
{
	unsigned int nofs = memalloc_nofs_save();
	void *p = kvmalloc_array(n, size, GFP_KERNEL);

	memalloc_nofs_restore(nofs);
	return p;
}

static int vexfs_ext_reserve(struct vexfs_inode_info *ei, u32 n)
{
	struct vexfs_mext *p;
	u32 cap;

	if (n <= ei->i_ext_cap)
		return 0;
	cap = max_t(u32, n, ei->i_ext_cap * 2);
	p = vexfs_map_alloc(cap, sizeof(*p));
	if (!p)
		return -ENOMEM;
	memcpy(p, ei->i_ext, ei->i_nr_ext * sizeof(*p));
	if (ei->i_ext != ei->i_ext_inline)
		kvfree(ei->i_ext);
	else
		atomic_long_inc(&vexfs_nr_extmaps);
	ei->i_ext = p;
	ei->i_ext_cap = cap;
	return 0;
}

static int vexfs_chain_reserve(struct vexfs_inode_info *ei, u32 n)
{
	u64 *p;
	u32 cap;

	if (n <= ei->i_chain_cap)
		return 0;
	cap = max_t(u32, n, max_t(u32, 4, ei->i_chain_cap * 2));
	p = vexfs_map_alloc(cap, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (ei->i_chain) {
		memcpy(p, ei->i_chain, ei->i_nr_chain * sizeof(*p));
		kvfree(ei->i_chain);
	} else {
		atomic_long_inc(&vexfs_nr_extmaps);
	}
	ei->i_chain = p;
	ei->i_chain_cap = cap;
	return 0;
}

void vexfs_ext_release(struct inode *inode)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);

	if (ei->i_ext != ei->i_ext_inline) {
		kvfree(ei->i_ext);
		atomic_long_dec(&vexfs_nr_extmaps);
		ei->i_ext = ei->i_ext_inline;
		ei->i_ext_cap = VEXFS_INLINE_EXTENTS;
	}
	if (ei->i_chain) {
		kvfree(ei->i_chain);
		atomic_long_dec(&vexfs_nr_extmaps);
		ei->i_chain = NULL;
		ei->i_chain_cap = 0;
	}
	ei->i_nr_ext = 0;
	ei->i_nr_chain = 0;
	ei->i_chain_linked = 0;
}

/* Append one on-disk extent to the in-memory map, validating it. */
static int vexfs_ext_push(struct inode *inode, const struct vexfs_extent *de,
			  const char *where)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	struct vexfs_sb_info *sbi = VEXFS_SB(inode->i_sb);
	u64 lblk = le64_to_cpu(de->ee_logical);
	u64 pblk = le64_to_cpu(de->ee_start);
	u32 len = le32_to_cpu(de->ee_len);
	struct vexfs_mext *prev;
	int err;

	if (!len || lblk >= VEXFS_MAX_LBLK || len > VEXFS_MAX_LBLK - lblk) {
		vexfs_error(inode->i_sb,
			    "inode %lu: %s extent %u: bad logical range %llu+%u",
			    inode->i_ino, where, ei->i_nr_ext, lblk, len);
		return -EUCLEAN;
	}
	if (!vexfs_data_range_ok(sbi, pblk, len)) {
		vexfs_error(inode->i_sb,
			    "inode %lu: %s extent %u: blocks %llu+%u outside the data region",
			    inode->i_ino, where, ei->i_nr_ext, pblk, len);
		return -EUCLEAN;
	}
	if (ei->i_nr_ext) {
		prev = &ei->i_ext[ei->i_nr_ext - 1];
		if (lblk < prev->lblk + prev->len) {
			vexfs_error(inode->i_sb,
				    "inode %lu: %s extent %u: logical block %llu overlaps or is out of order",
				    inode->i_ino, where, ei->i_nr_ext, lblk);
			return -EUCLEAN;
		}
	}
	err = vexfs_ext_reserve(ei, ei->i_nr_ext + 1);
	if (err)
		return err;
	ei->i_ext[ei->i_nr_ext].lblk = lblk;
	ei->i_ext[ei->i_nr_ext].pblk = pblk;
	ei->i_ext[ei->i_nr_ext].len = len;
	ei->i_nr_ext++;
	return 0;
}

/*
 * Load and validate the extent map of a freshly read inode. i_blocks must
 * fit in the filesystem, and the walk is bounded by it as it goes: every
 * chain block counts one block and must hold at least one extent (of at
 * least one block), so a loop in the chain, of empty blocks or not, is
 * reported after at most i_blocks / 2 chain blocks, never followed, and the
 * arrays never outgrow what the filesystem can hold. The walk yields and a
 * fatal signal ends it (-EINTR).
 */
int vexfs_ext_load(struct inode *inode, const struct vexfs_inode *raw)
{
	struct super_block *sb = inode->i_sb;
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	u32 nr = le32_to_cpu(raw->i_nr_extents), i;
	u64 blk = le64_to_cpu(raw->i_extent_block);
	u64 iblocks = le64_to_cpu(raw->i_blocks);
	u64 mapped = 0;
	int err = -EUCLEAN;

	ei->i_chain_dense = true;
	if (nr > VEXFS_INLINE_EXTENTS) {
		vexfs_error(sb, "inode %lu: i_nr_extents %u > %u", inode->i_ino,
			    nr, VEXFS_INLINE_EXTENTS);
		goto fail;
	}
	if (iblocks > sbi->s_blocks_count - sbi->s_data_start) {
		vexfs_error(sb, "inode %lu: i_blocks %llu larger than the data region (%llu blocks)",
			    inode->i_ino, iblocks,
			    sbi->s_blocks_count - sbi->s_data_start);
		goto fail;
	}
	for (i = 0; i < nr; i++) {
		err = vexfs_ext_push(inode, &raw->i_extents[i], "inline");
		if (err)
			goto fail;
		mapped += ei->i_ext[i].len;
	}
	if (blk && nr < VEXFS_INLINE_EXTENTS)
		ei->i_chain_dense = false;
	while (blk) {
		const struct vexfs_extent_block_header *h;
		const struct vexfs_extent *de;
		struct buffer_head *bh;
		u32 count;

		err = -EUCLEAN;
		if (mapped + ei->i_nr_chain >= iblocks) {
			vexfs_error(sb, "inode %lu: extent chain longer than i_blocks %llu (loop?)",
				    inode->i_ino, iblocks);
			goto fail;
		}
		if (ei->i_nr_chain) {
			cond_resched();
			if (fatal_signal_pending(current)) {
				err = -EINTR;
				goto fail;
			}
		}
		if (!vexfs_data_range_ok(sbi, blk, 1)) {
			vexfs_error(sb, "inode %lu: extent block %llu outside the data region",
				    inode->i_ino, blk);
			goto fail;
		}
		bh = vexfs_bread(sb, blk);
		if (!bh) {
			vexfs_error(sb, "inode %lu: unable to read extent block %llu",
				    inode->i_ino, blk);
			err = -EIO;
			goto fail;
		}
		h = (const void *)bh->b_data;
		count = le32_to_cpu(h->eb_count);
		if (le32_to_cpu(h->eb_magic) != VEXFS_EXTENT_BLOCK_MAGIC) {
			vexfs_error(sb, "inode %lu: extent block %llu: bad magic 0x%08x",
				    inode->i_ino, blk, le32_to_cpu(h->eb_magic));
		} else if (!vexfs_extblk_csum_ok(bh->b_data)) {
			vexfs_error(sb, "inode %lu: extent block %llu: checksum mismatch",
				    inode->i_ino, blk);
			err = -EBADMSG;
		} else if (le32_to_cpu(h->eb_ino) != inode->i_ino) {
			vexfs_error(sb, "inode %lu: extent block %llu belongs to inode %u",
				    inode->i_ino, blk, le32_to_cpu(h->eb_ino));
		} else if (count > VEXFS_EPB) {
			vexfs_error(sb, "inode %lu: extent block %llu: eb_count %u > %u",
				    inode->i_ino, blk, count, VEXFS_EPB);
		} else if (!count) {
			/* VexFS never writes one; a loop of them costs nothing to build */
			vexfs_error(sb, "inode %lu: extent block %llu is empty (eb_count 0)",
				    inode->i_ino, blk);
		} else {
			err = vexfs_chain_reserve(ei, ei->i_nr_chain + 1);
		}
		if (err) {
			vexfs_brelse(bh);
			goto fail;
		}
		ei->i_chain[ei->i_nr_chain++] = blk;
		if (count < VEXFS_EPB && h->eb_next)
			ei->i_chain_dense = false;
		de = (const void *)(bh->b_data + sizeof(*h));
		for (i = 0; i < count && !err; i++) {
			err = vexfs_ext_push(inode, &de[i], "chained");
			if (!err)
				mapped += le32_to_cpu(de[i].ee_len);
		}
		if (!err && mapped + ei->i_nr_chain > iblocks) {
			vexfs_error(sb, "inode %lu: extents map more than i_blocks %llu",
				    inode->i_ino, iblocks);
			err = -EUCLEAN;
		}
		blk = le64_to_cpu(h->eb_next);
		vexfs_brelse(bh);
		if (err)
			goto fail;
	}
	ei->i_chain_linked = ei->i_nr_chain;
	/* i_blocks counts the xattr block too (loaded before the extents) */
	if (mapped + ei->i_nr_chain + !!ei->i_xattr_blk != iblocks) {
		vexfs_error(sb, "inode %lu: i_blocks %llu but extents map %llu blocks + %u extent blocks + %u xattr block",
			    inode->i_ino, iblocks, mapped, ei->i_nr_chain,
			    !!ei->i_xattr_blk);
		err = -EUCLEAN;
		goto fail;
	}
	inode->i_blocks = iblocks << (VEXFS_BLOCK_BITS - 9);
	return 0;
fail:
	vexfs_ext_release(inode);
	return err;
}

/* Fill the extent fields of an on-disk inode. Caller holds i_ext_sem. */
void vexfs_ext_to_raw(struct inode *inode, struct vexfs_inode *raw)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	u32 n = min_t(u32, ei->i_nr_ext, VEXFS_INLINE_EXTENTS), i;

	memset(raw->i_extents, 0, sizeof(raw->i_extents));
	for (i = 0; i < n; i++) {
		raw->i_extents[i].ee_logical = cpu_to_le64(ei->i_ext[i].lblk);
		raw->i_extents[i].ee_start = cpu_to_le64(ei->i_ext[i].pblk);
		raw->i_extents[i].ee_len = cpu_to_le32(ei->i_ext[i].len);
	}
	raw->i_nr_extents = cpu_to_le32(n);
	raw->i_extent_block = cpu_to_le64(ei->i_nr_chain ? ei->i_chain[0] : 0);
}

/* Index of the last extent with lblk <= @lblk, or -1. */
static long vexfs_ext_search(struct vexfs_inode_info *ei, u64 lblk)
{
	long lo = 0, hi = (long)ei->i_nr_ext - 1, ans = -1;

	while (lo <= hi) {
		long mid = lo + (hi - lo) / 2;

		if (ei->i_ext[mid].lblk <= lblk) {
			ans = mid;
			lo = mid + 1;
		} else {
			hi = mid - 1;
		}
	}
	return ans;
}

/*
 * Map @lblk. Returns 1 if mapped (*pblk, *len = blocks mapped contiguously
 * from there) or 0 for a hole (*len = blocks until the next extent, or
 * U64_MAX). Caller holds i_ext_sem.
 */
int vexfs_ext_map(struct inode *inode, u64 lblk, u64 *pblk, u64 *len)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	long i = vexfs_ext_search(ei, lblk);
	struct vexfs_mext *e;

	if (i >= 0) {
		e = &ei->i_ext[i];
		if (lblk < e->lblk + e->len) {
			*pblk = e->pblk + (lblk - e->lblk);
			*len = e->lblk + e->len - lblk;
			return 1;
		}
	}
	if (i + 1 < (long)ei->i_nr_ext)
		*len = ei->i_ext[i + 1].lblk - lblk;
	else
		*len = U64_MAX;
	return 0;
}

/* Rewrite chain block @k from the in-memory map. */
static int vexfs_write_chain_block(struct inode *inode, u32 k, u32 need)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	struct vexfs_extent_block_header *h;
	struct vexfs_extent *de;
	struct buffer_head *bh;
	u32 first = VEXFS_INLINE_EXTENTS + k * VEXFS_EPB, i, count;
	int err;

	count = min_t(u32, VEXFS_EPB, ei->i_nr_ext - first);
	bh = vexfs_getblk(inode->i_sb, ei->i_chain[k]);
	if (!bh)
		return -ENOMEM;
	err = vexfs_journal_get_write(inode->i_sb, bh);
	if (err) {
		vexfs_brelse(bh);
		return err;
	}
	lock_buffer(bh);
	memset(bh->b_data, 0, VEXFS_BLOCK_SIZE);
	h = (void *)bh->b_data;
	h->eb_magic = cpu_to_le32(VEXFS_EXTENT_BLOCK_MAGIC);
	h->eb_next = cpu_to_le64(k + 1 < need ? ei->i_chain[k + 1] : 0);
	h->eb_count = cpu_to_le32(count);
	h->eb_ino = cpu_to_le32(inode->i_ino);
	de = (void *)(bh->b_data + sizeof(*h));
	for (i = 0; i < count; i++) {
		de[i].ee_logical = cpu_to_le64(ei->i_ext[first + i].lblk);
		de[i].ee_start = cpu_to_le64(ei->i_ext[first + i].pblk);
		de[i].ee_len = cpu_to_le32(ei->i_ext[first + i].len);
	}
	vexfs_extblk_csum_set(bh->b_data);
	set_buffer_uptodate(bh);
	vexfs_set_verified(bh, VEXFS_META_EXTENT);
	unlock_buffer(bh);
	err = vexfs_journal_dirty(inode->i_sb, bh);
	if (!VEXFS_SB(inode->i_sb)->s_journal && IS_SYNC(inode) &&
	    sync_dirty_buffer(bh))
		vexfs_check_wb_err(inode->i_sb);
	vexfs_brelse(bh);
	return err;
}

/*
 * Write the map back after a change at extent index @from: rewrite the
 * chain blocks that hold extents from @from on, free chain blocks no longer
 * needed. The caller made sure enough chain blocks are allocated.
 */
static int vexfs_ext_commit(struct inode *inode, u32 from)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	u32 need = vexfs_chain_needed(ei->i_nr_ext), k, first;
	int err = 0;

	if (!ei->i_chain_dense || from < VEXFS_INLINE_EXTENTS)
		first = 0;
	else
		first = (from - VEXFS_INLINE_EXTENTS) / VEXFS_EPB;
	/* when shrinking, the new last block must get eb_next = 0 */
	if (need < ei->i_nr_chain && need && first > need - 1)
		first = need - 1;
	/* when growing, the old last block must link to the new one */
	if (ei->i_chain_linked && ei->i_chain_linked < need &&
	    first > ei->i_chain_linked - 1)
		first = ei->i_chain_linked - 1;
	for (k = first; k < need; k++)
		err = vexfs_write_chain_block(inode, k, need) ?: err;
	for (k = need; k < ei->i_nr_chain; k++) {
		vexfs_journal_forget(inode->i_sb, ei->i_chain[k]);
		err = vexfs_free_blocks(inode->i_sb, ei->i_chain[k], 1) ?: err;
		inode_sub_bytes(inode, VEXFS_BLOCK_SIZE);
	}
	if (need < ei->i_nr_chain)
		ei->i_nr_chain = need;
	ei->i_chain_linked = need;
	ei->i_chain_dense = true;
	/*
	 * No mark_inode_dirty() here: i_ext_sem is held and ->dirty_inode
	 * takes it to copy the map into the inode table. Callers mark the
	 * inode dirty after dropping the lock.
	 */
	return err;
}

/*
 * A block just allocated for the chain: with a journal, take create access
 * now (it cancels a revoke of the block's previous life as metadata).
 */
static int vexfs_chain_block_new(struct super_block *sb, u64 blk)
{
	struct buffer_head *bh;
	int err;

	if (!VEXFS_SB(sb)->s_journal)
		return 0;
	bh = vexfs_getblk(sb, blk);
	if (!bh)
		return -ENOMEM;
	err = vexfs_journal_get_create(sb, bh);
	vexfs_brelse(bh);
	return err;
}

/* Make sure the chain can hold @nr extents, allocating chain blocks. */
static int vexfs_chain_prepare(struct inode *inode, u32 nr)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	u32 need = vexfs_chain_needed(nr);
	int err;

	while (ei->i_nr_chain < need) {
		u64 goal = 0, blk;

		if (ei->i_nr_chain)
			goal = ei->i_chain[ei->i_nr_chain - 1] + 1;
		else if (ei->i_nr_ext)
			goal = ei->i_ext[ei->i_nr_ext - 1].pblk +
			       ei->i_ext[ei->i_nr_ext - 1].len;
		err = vexfs_chain_reserve(ei, ei->i_nr_chain + 1);
		if (err)
			return err;
		err = vexfs_new_blocks(inode->i_sb, goal, 1, &blk);
		if (err < 0)
			return err;
		err = vexfs_chain_block_new(inode->i_sb, blk);
		if (err) {
			vexfs_free_blocks(inode->i_sb, blk, 1);
			return err;
		}
		ei->i_chain[ei->i_nr_chain++] = blk;
		inode_add_bytes(inode, VEXFS_BLOCK_SIZE);
	}
	return 0;
}

/* Insert [lblk, +len) -> pblk into the sorted map, merging neighbours.
 * Returns the lowest index that changed. Space was reserved by the caller.
 */
static u32 vexfs_ext_insert(struct vexfs_inode_info *ei, u64 lblk, u64 pblk,
			    u32 len)
{
	long p = vexfs_ext_search(ei, lblk);
	u32 n = p + 1;		/* insertion index */
	struct vexfs_mext *prev = p >= 0 ? &ei->i_ext[p] : NULL;
	struct vexfs_mext *next = n < ei->i_nr_ext ? &ei->i_ext[n] : NULL;

	if (prev && prev->lblk + prev->len == lblk &&
	    prev->pblk + prev->len == pblk && (u64)prev->len + len <= U32_MAX) {
		prev->len += len;
		if (next && prev->lblk + prev->len == next->lblk &&
		    prev->pblk + prev->len == next->pblk &&
		    (u64)prev->len + next->len <= U32_MAX) {
			prev->len += next->len;
			memmove(next, next + 1,
				(ei->i_nr_ext - n - 1) * sizeof(*next));
			ei->i_nr_ext--;
		}
		return p;
	}
	if (next && lblk + len == next->lblk && pblk + len == next->pblk &&
	    (u64)next->len + len <= U32_MAX) {
		next->lblk = lblk;
		next->pblk = pblk;
		next->len += len;
		return n;
	}
	memmove(&ei->i_ext[n + 1], &ei->i_ext[n],
		(ei->i_nr_ext - n) * sizeof(*next));
	ei->i_ext[n].lblk = lblk;
	ei->i_ext[n].pblk = pblk;
	ei->i_ext[n].len = len;
	ei->i_nr_ext++;
	return n;
}

/*
 * Allocate up to @want blocks for the hole starting at @lblk and map them.
 * On success, *pblk and *got describe the new blocks (not zeroed on disk).
 * Caller holds i_ext_sem for writing and has checked lblk is unmapped.
 */
int vexfs_ext_alloc(struct inode *inode, u64 lblk, u32 want, u64 *pblk,
		    u32 *got)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	struct super_block *sb = inode->i_sb;
	u64 goal = 0, hole, start;
	long p;
	int n, err;

	if (lblk >= VEXFS_MAX_LBLK)
		return -EFBIG;
	p = vexfs_ext_search(ei, lblk);
	if (p + 1 < (long)ei->i_nr_ext)
		hole = ei->i_ext[p + 1].lblk - lblk;
	else
		hole = VEXFS_MAX_LBLK - lblk;
	want = min_t(u64, want, hole);
	if (p >= 0) {
		struct vexfs_mext *e = &ei->i_ext[p];

		goal = e->pblk + e->len + (lblk - (e->lblk + e->len));
		if (goal >= VEXFS_SB(sb)->s_blocks_count)
			goal = e->pblk + e->len;
	} else if (ei->i_nr_ext) {
		struct vexfs_mext *e = &ei->i_ext[0];

		if (e->pblk > e->lblk - lblk + want)
			goal = e->pblk - (e->lblk - lblk);
	}

	/* reserve memory and chain room for one more extent before allocating */
	err = vexfs_ext_reserve(ei, ei->i_nr_ext + 1);
	if (err)
		return err;
	err = vexfs_chain_prepare(inode, ei->i_nr_ext + 1);
	if (err)
		goto undo_chain;
	n = vexfs_new_blocks(sb, goal, want, &start);
	if (n < 0) {
		err = n;
		goto undo_chain;
	}
	err = vexfs_ext_commit(inode, vexfs_ext_insert(ei, lblk, start, n));
	inode_add_bytes(inode, (loff_t)n << VEXFS_BLOCK_BITS);
	*pblk = start;
	*got = n;
	return err;

undo_chain:
	/* give back a chain block reserved for an extent that never came */
	if (ei->i_nr_chain > vexfs_chain_needed(ei->i_nr_ext))
		vexfs_ext_commit(inode, ei->i_nr_ext);
	return err;
}

/*
 * Free every block mapped at or after file block @first, trimming the
 * extent that straddles it, and free chain blocks no longer needed.
 */
int vexfs_ext_truncate(struct inode *inode, u64 first)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	struct super_block *sb = inode->i_sb;
	bool meta = S_ISDIR(inode->i_mode);
	u32 old = ei->i_nr_ext, from = old;
	u64 freed = 0;
	int err = 0;

	down_write(&ei->i_ext_sem);
	while (ei->i_nr_ext) {
		struct vexfs_mext *e = &ei->i_ext[ei->i_nr_ext - 1];
		u64 keep = 0, i;

		if (e->lblk + e->len <= first)
			break;
		if (e->lblk < first)
			keep = first - e->lblk;
		/* directory blocks live in the bdev buffer cache */
		for (i = keep; meta && i < e->len; i++)
			vexfs_journal_forget(sb, e->pblk + i);
		err = vexfs_free_blocks(sb, e->pblk + keep, e->len - keep) ?: err;
		freed += e->len - keep;
		from = ei->i_nr_ext - 1;
		if (keep) {
			e->len = keep;
			break;
		}
		ei->i_nr_ext--;
	}
	inode_sub_bytes(inode, (loff_t)freed << VEXFS_BLOCK_BITS);
	if (from < old || ei->i_nr_chain > vexfs_chain_needed(ei->i_nr_ext))
		err = vexfs_ext_commit(inode, from) ?: err;
	up_write(&ei->i_ext_sem);
	mark_inode_dirty(inode);
	return err;
}

/*
 * get_block for the page cache: map iblock, allocating (create) up to
 * bh->b_size bytes of contiguous blocks for a hole. New blocks are marked
 * buffer_new so the generic code zeroes what is not written and drops
 * stale aliases in the block device cache.
 */
int vexfs_get_block(struct inode *inode, sector_t iblock,
		    struct buffer_head *bh, int create)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	u32 max = max_t(u32, bh->b_size >> VEXFS_BLOCK_BITS, 1), got;
	journal_t *journal = VEXFS_SB(inode->i_sb)->s_journal;
	handle_t *handle = NULL;
	u64 pblk, len;
	int ret;

	down_read(&ei->i_ext_sem);
	ret = vexfs_ext_map(inode, iblock, &pblk, &len);
	up_read(&ei->i_ext_sem);
	if (ret == 1)
		goto mapped;
	if (!create)
		return 0;
	if (journal && !journal_current_handle()) {
		/*
		 * Writeback found a dirty block that write_begin/page_mkwrite
		 * did not allocate. jbd2's own thread (ordered data) must not
		 * start a handle: leave the buffer unmapped.
		 */
		if (current == journal->j_task) {
			WARN_ON_ONCE(1);
			return 0;
		}
		handle = vexfs_journal_start(inode->i_sb, VEXFS_CREDITS_ALLOC, 0);
		if (IS_ERR(handle))
			return PTR_ERR(handle);
	}

	down_write(&ei->i_ext_sem);
	ret = vexfs_ext_map(inode, iblock, &pblk, &len);
	if (ret == 0) {
		ret = vexfs_ext_alloc(inode, iblock, max, &pblk, &got);
		up_write(&ei->i_ext_sem);
		mark_inode_dirty(inode);
		if (ret)
			goto out;
		len = got;
		set_buffer_new(bh);
		/* ordered data: these pages reach the disk before the commit */
		ret = vexfs_journal_ordered(inode, (loff_t)iblock << VEXFS_BLOCK_BITS,
					    (loff_t)got << VEXFS_BLOCK_BITS);
		if (ret)
			goto out;
	} else {
		up_write(&ei->i_ext_sem);
	}
	ret = vexfs_journal_stop(handle);
	handle = NULL;
	if (ret)
		return ret;
mapped:
	map_bh(bh, inode->i_sb, pblk);
	bh->b_size = min_t(u64, len, max) << VEXFS_BLOCK_BITS;
	return 0;
out:
	vexfs_journal_stop(handle);
	return ret;
}
