// SPDX-License-Identifier: GPL-2.0
/*
 * dir.c - directory blocks: validation, lookup, insertion, deletion and
 * readdir.
 *
 * Directory blocks are read through the block device buffer cache after
 * mapping the directory's logical block with its extent map; every block
 * is verified (tail magic, CRC-32C, the whole rec_len chain) before its
 * entries are used, and its checksum is recomputed after every change.
 * Callers hold the directory's i_rwsem (the VFS takes it), which serializes
 * all changes to one directory.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/hash.h>
#include <linux/pagemap.h>
#include <linux/sched/signal.h>
#include <linux/stringhash.h>
#include "vexfs.h"

#define VEXFS_DE_HDR	VEXFS_DIR_ENTRY_HEADER

static inline struct vexfs_dir_entry *vexfs_de(struct buffer_head *bh, u32 off)
{
	return (struct vexfs_dir_entry *)(bh->b_data + off);
}

static inline u64 vexfs_dir_blocks(struct inode *dir)
{
	return i_size_read(dir) >> VEXFS_BLOCK_BITS;
}

unsigned char vexfs_ft(umode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:	return VEXFS_FT_REG_FILE;
	case S_IFDIR:	return VEXFS_FT_DIR;
	case S_IFCHR:	return VEXFS_FT_CHRDEV;
	case S_IFBLK:	return VEXFS_FT_BLKDEV;
	case S_IFIFO:	return VEXFS_FT_FIFO;
	case S_IFSOCK:	return VEXFS_FT_SOCK;
	case S_IFLNK:	return VEXFS_FT_SYMLINK;
	}
	return VEXFS_FT_UNKNOWN;
}

static unsigned char vexfs_dt(u8 ft)
{
	static const unsigned char map[] = {
		[VEXFS_FT_UNKNOWN] = DT_UNKNOWN, [VEXFS_FT_REG_FILE] = DT_REG,
		[VEXFS_FT_DIR] = DT_DIR, [VEXFS_FT_CHRDEV] = DT_CHR,
		[VEXFS_FT_BLKDEV] = DT_BLK, [VEXFS_FT_FIFO] = DT_FIFO,
		[VEXFS_FT_SOCK] = DT_SOCK, [VEXFS_FT_SYMLINK] = DT_LNK,
	};

	return ft < ARRAY_SIZE(map) ? map[ft] : DT_UNKNOWN;
}

/*
 * What is wrong with the entry at @off of a directory block, or NULL: the
 * header inside the block, a rec_len that advances and stays in the block, a
 * name inside its record, an inode number in range.
 */
static const char *vexfs_de_bad(struct super_block *sb, struct buffer_head *bh,
				u32 off)
{
	struct vexfs_dir_entry *de;
	u32 rec_len, ino;

	if (off + VEXFS_DE_HDR > VEXFS_DIR_DATA_BYTES)
		return "entry header crosses the block end";
	de = vexfs_de(bh, off);
	rec_len = le16_to_cpu(de->d_rec_len);
	ino = le32_to_cpu(de->d_inode);
	if (rec_len < VEXFS_DE_HDR || rec_len % 4 ||
	    rec_len > VEXFS_DIR_DATA_BYTES - off)
		return "bad rec_len";
	if (ino && (!de->d_name_len ||
		    VEXFS_DIR_REC_LEN(de->d_name_len) > rec_len))
		return "bad name length";
	if (ino > VEXFS_SB(sb)->s_inodes_count)
		return "inode number out of range";
	return NULL;
}

/*
 * The second line of defence inside every walk of a block that
 * vexfs_dir_check() accepted: the entry at @off is checked again before it
 * is used, so a block changed behind the check (a bug, a cross-linked
 * buffer) is reported, never walked forever or past its end.
 */
static bool vexfs_de_ok(struct inode *dir, struct buffer_head *bh, u32 off)
{
	const char *why = vexfs_de_bad(dir->i_sb, bh, off);

	if (likely(!why))
		return true;
	vexfs_error(dir->i_sb, "directory inode %lu (disk block %llu) offset %u: %s",
		    dir->i_ino, (u64)bh->b_blocknr, off, why);
	return false;
}

/*
 * Between two blocks of a directory walk: the walk's length comes from the
 * disk (i_size), so it yields and a fatal signal ends it.
 */
static int vexfs_dir_next_block(void)
{
	cond_resched();
	return fatal_signal_pending(current) ? -EINTR : 0;
}

static bool vexfs_dir_check(struct inode *dir, struct buffer_head *bh, u64 n)
{
	struct super_block *sb = dir->i_sb;
	const struct vexfs_dir_tail *t = (const void *)(bh->b_data + VEXFS_DIR_DATA_BYTES);
	u32 off = 0, idx = 0;
	const char *why = NULL;

	if (le32_to_cpu(t->dt_magic) != VEXFS_DIR_TAIL_MAGIC) {
		why = "bad tail magic";
		goto bad;
	}
	if (!vexfs_dirblk_csum_ok(bh->b_data)) {
		why = "checksum mismatch";
		goto bad;
	}
	while (off < VEXFS_DIR_DATA_BYTES) {
		struct vexfs_dir_entry *de = vexfs_de(bh, off);
		u32 ino;

		why = vexfs_de_bad(sb, bh, off);
		if (why)
			goto bad;
		ino = le32_to_cpu(de->d_inode);
		if (n == 0 && idx < 2) {
			bool dot = idx == 0;

			if (!ino || de->d_name_len != (dot ? 1 : 2) ||
			    memcmp(de->d_name, "..", de->d_name_len) ||
			    (dot && ino != dir->i_ino)) {
				why = dot ? "first entry is not \".\"" :
					    "second entry is not \"..\"";
				goto bad;
			}
		}
		off += le16_to_cpu(de->d_rec_len);
		idx++;
	}
	if (n == 0 && idx < 2) {
		why = "missing \".\" or \"..\"";
		goto bad;
	}
	return true;
bad:
	vexfs_error(sb, "directory inode %lu block %llu (disk block %llu): %s",
		    dir->i_ino, n, (u64)bh->b_blocknr, why);
	return false;
}

/*
 * Read and verify directory block @n of @dir. The check is skipped only for
 * a buffer verified as a directory block (not as an extent or bitmap
 * block: a cross-linked block is checked again as what it is used for).
 */
static struct buffer_head *vexfs_dir_bread(struct inode *dir, u64 n)
{
	struct vexfs_inode_info *ei = VEXFS_I(dir);
	struct buffer_head *bh;
	u64 pblk, len;
	int mapped;

	down_read(&ei->i_ext_sem);
	mapped = vexfs_ext_map(dir, n, &pblk, &len);
	up_read(&ei->i_ext_sem);
	if (mapped != 1) {
		vexfs_error(dir->i_sb, "directory inode %lu: block %llu is a hole",
			    dir->i_ino, n);
		return ERR_PTR(-EUCLEAN);
	}
	bh = vexfs_bread(dir->i_sb, pblk);
	if (!bh) {
		vexfs_error(dir->i_sb, "directory inode %lu: unable to read block %llu",
			    dir->i_ino, pblk);
		return ERR_PTR(-EIO);
	}
	if (!vexfs_verified(bh, VEXFS_META_DIR)) {
		if (!vexfs_dir_check(dir, bh, n)) {
			vexfs_brelse(bh);
			return ERR_PTR(-EUCLEAN);
		}
		vexfs_set_verified(bh, VEXFS_META_DIR);
	}
	return bh;
}

/*
 * Finish a change to directory block @bh of @dir: checksum and dirty it,
 * unlock it (the caller locked it), write it now for dirsync, release it.
 */
static int vexfs_dir_release(struct inode *dir, struct buffer_head *bh)
{
	struct super_block *sb = dir->i_sb;
	int err;

	vexfs_dirblk_csum_set(bh->b_data);
	unlock_buffer(bh);
	err = vexfs_journal_dirty(sb, bh);
	if (!VEXFS_SB(sb)->s_journal && IS_DIRSYNC(dir) &&
	    sync_dirty_buffer(bh))
		vexfs_check_wb_err(sb);
	vexfs_brelse(bh);
	return err;
}

/*
 * Start changing directory block @bh: journal write access, then the
 * buffer lock. On error @bh is released.
 */
static int vexfs_dir_lock(struct inode *dir, struct buffer_head *bh)
{
	int err = vexfs_journal_get_write(dir->i_sb, bh);

	if (err) {
		vexfs_brelse(bh);
		return err;
	}
	lock_buffer(bh);
	return 0;
}

/* The same for an entry change, which also updates the directory's times. */
static int vexfs_dir_changed(struct inode *dir, struct buffer_head *bh)
{
	int err = vexfs_dir_release(dir, bh);

	vexfs_inode_touch_mctime(dir);
	mark_inode_dirty(dir);
	return err;
}

static bool vexfs_match(const struct qstr *name, struct vexfs_dir_entry *de)
{
	return de->d_inode && de->d_name_len == name->len &&
	       !memcmp(de->d_name, name->name, name->len);
}

/*
 * Lookup index of a big directory, in memory only (nothing on disk changes):
 * per directory block, a 2048-bit Bloom filter of the names in it and its
 * biggest free gap. Without it every lookup of a name that is not there
 * (each create) and every insertion reads and walks every block: a
 * directory of 10,000 entries cost ~50 block reads per create. Built by the
 * first lookup once the directory has VEXFS_DINDEX_MIN_BLOCKS blocks, kept
 * up to date by every change (all under the directory's exclusive i_rwsem,
 * so no lookup, which holds it shared, sees a change half made), freed with
 * the inode. A stale Bloom bit only costs a block read; a name is never
 * missed: every entry's bits are set before it is written. Allocation
 * failures just drop the index (back to walking every block).
 */
#define VEXFS_DINDEX_MIN_BLOCKS	4
#define VEXFS_DINDEX_MAX_BLOCKS	65536	/* 16 MiB of index for a 256 MiB directory */
#define VEXFS_DINDEX_BITS	2048

struct vexfs_dindex_blk {
	unsigned long bloom[VEXFS_DINDEX_BITS / BITS_PER_LONG];
	u32 free;			/* biggest rec_len - used in the block */
};

struct vexfs_dindex {
	u32 nblocks;
	u32 cap;
	struct vexfs_dindex_blk blk[];
};

static void vexfs_dindex_hash(const char *name, u32 len, u32 *a, u32 *b)
{
	u32 h = full_name_hash(NULL, name, len);

	*a = hash_32(h, ilog2(VEXFS_DINDEX_BITS));
	*b = hash_32(h ^ 0x9e3779b9, ilog2(VEXFS_DINDEX_BITS));
}

static void vexfs_dindex_add_name(struct vexfs_dindex_blk *blk, const char *name, u32 len)
{
	u32 a, b;

	vexfs_dindex_hash(name, len, &a, &b);
	__set_bit(a, blk->bloom);
	__set_bit(b, blk->bloom);
}

static bool vexfs_dindex_may_hold(struct vexfs_dindex_blk *blk, u32 a, u32 b)
{
	return test_bit(a, blk->bloom) && test_bit(b, blk->bloom);
}

/*
 * The biggest gap of verified directory block @bh; 0 (never chosen for an
 * insertion, whose own walk reports the damage) if an entry is bad.
 */
static u32 vexfs_dir_blk_free(struct inode *dir, struct buffer_head *bh)
{
	u32 off = 0, best = 0;

	while (off < VEXFS_DIR_DATA_BYTES) {
		struct vexfs_dir_entry *de = vexfs_de(bh, off);
		u32 rec_len, used;

		if (vexfs_de_bad(dir->i_sb, bh, off))
			return 0;
		rec_len = le16_to_cpu(de->d_rec_len);
		used = de->d_inode ? VEXFS_DIR_REC_LEN(de->d_name_len) : 0;
		if (rec_len - used > best)
			best = rec_len - used;
		off += rec_len;
	}
	return best;
}

static struct vexfs_dindex *vexfs_dindex_alloc(u32 cap)
{
	/* cap <= VEXFS_DINDEX_MAX_BLOCKS: at most 17 MiB */
	return kvzalloc(sizeof(struct vexfs_dindex) +
			(size_t)cap * sizeof(struct vexfs_dindex_blk),
			GFP_KERNEL | __GFP_NOWARN);
}

void vexfs_dindex_free(struct inode *inode)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);

	kvfree(ei->i_dindex);
	ei->i_dindex = NULL;
}

/*
 * The index of @dir, built now if it has none yet and is big enough; NULL:
 * walk every block. Called with i_rwsem held, shared or exclusive: two
 * lookups may build at once, the first to install wins.
 */
static struct vexfs_dindex *vexfs_dindex_get(struct inode *dir)
{
	struct vexfs_inode_info *ei = VEXFS_I(dir);
	/* pairs with the cmpxchg() that installs a fully built index */
	struct vexfs_dindex *di = smp_load_acquire(&ei->i_dindex);
	u64 n, nblocks = vexfs_dir_blocks(dir);
	u32 cap;

	if (di)
		return di->nblocks == nblocks ? di : NULL;
	if (nblocks < VEXFS_DINDEX_MIN_BLOCKS || nblocks > VEXFS_DINDEX_MAX_BLOCKS)
		return NULL;
	cap = roundup_pow_of_two(nblocks + 1);
	di = vexfs_dindex_alloc(min_t(u32, cap, VEXFS_DINDEX_MAX_BLOCKS));
	if (!di)
		return NULL;
	di->cap = min_t(u32, cap, VEXFS_DINDEX_MAX_BLOCKS);
	di->nblocks = nblocks;
	for (n = 0; n < nblocks; n++) {
		struct buffer_head *bh = vexfs_dir_bread(dir, n);
		u32 off = 0;

		if (IS_ERR(bh) || fatal_signal_pending(current)) {
			/* the caller's walk meets (and reports) the bad block */
			if (!IS_ERR(bh))
				vexfs_brelse(bh);
			kvfree(di);
			return NULL;
		}
		while (off < VEXFS_DIR_DATA_BYTES) {
			struct vexfs_dir_entry *de = vexfs_de(bh, off);

			if (vexfs_de_bad(dir->i_sb, bh, off)) {
				/* no index: the caller's walk reports it */
				vexfs_brelse(bh);
				kvfree(di);
				return NULL;
			}
			if (de->d_inode)
				vexfs_dindex_add_name(&di->blk[n], de->d_name, de->d_name_len);
			off += le16_to_cpu(de->d_rec_len);
		}
		di->blk[n].free = vexfs_dir_blk_free(dir, bh);
		vexfs_brelse(bh);
		cond_resched();
	}
	if (cmpxchg(&ei->i_dindex, NULL, di)) {
		kvfree(di);
		/* another lookup installed its index first (cmpxchg above) */
		di = smp_load_acquire(&ei->i_dindex);
		return di && di->nblocks == nblocks ? di : NULL;
	}
	return di;
}

/* Directory block @n was just added (i_rwsem exclusive): index it. */
static void vexfs_dindex_grow(struct inode *dir, u64 n)
{
	struct vexfs_inode_info *ei = VEXFS_I(dir);
	struct vexfs_dindex *di = ei->i_dindex, *nd;

	if (!di)
		return;
	if (di->nblocks != n || n >= VEXFS_DINDEX_MAX_BLOCKS) {
		vexfs_dindex_free(dir);
		return;
	}
	if (n >= di->cap) {
		u32 cap = min_t(u32, di->cap * 2, VEXFS_DINDEX_MAX_BLOCKS);

		nd = vexfs_dindex_alloc(cap);
		if (!nd) {
			vexfs_dindex_free(dir);
			return;
		}
		memcpy(nd->blk, di->blk, sizeof(di->blk[0]) * di->nblocks);
		nd->cap = cap;
		nd->nblocks = di->nblocks;
		kvfree(di);
		ei->i_dindex = nd;
		di = nd;
	}
	memset(&di->blk[n], 0, sizeof(di->blk[n]));
	di->blk[n].free = VEXFS_DIR_DATA_BYTES;
	di->nblocks = n + 1;
}

/* Block @n of @dir (@bh) changed (i_rwsem exclusive): refresh its gap. */
static void vexfs_dindex_update(struct inode *dir, u64 n, struct buffer_head *bh)
{
	struct vexfs_dindex *di = VEXFS_I(dir)->i_dindex;

	if (di && n < di->nblocks)
		di->blk[n].free = vexfs_dir_blk_free(dir, bh);
}

/* The logical block of directory block @bh, or U64_MAX. */
static u64 vexfs_dir_lblk(struct inode *dir, struct buffer_head *bh)
{
	struct vexfs_inode_info *ei = VEXFS_I(dir);
	u64 pblk = bh->b_blocknr, lblk = U64_MAX;
	u32 i;

	down_read(&ei->i_ext_sem);
	for (i = 0; i < ei->i_nr_ext; i++) {
		struct vexfs_mext *e = &ei->i_ext[i];

		if (pblk >= e->pblk && pblk < e->pblk + e->len) {
			lblk = e->lblk + (pblk - e->pblk);
			break;
		}
	}
	up_read(&ei->i_ext_sem);
	return lblk;
}

/*
 * Find @name in @dir. Returns the entry with *bhp holding its block, NULL
 * if absent, or an ERR_PTR.
 */
struct vexfs_dir_entry *vexfs_find_entry(struct inode *dir,
					 const struct qstr *name,
					 struct buffer_head **bhp)
{
	u64 n, nblocks = vexfs_dir_blocks(dir);
	struct vexfs_dindex *di = vexfs_dindex_get(dir);
	u32 a = 0, b = 0;

	if (di)
		vexfs_dindex_hash(name->name, name->len, &a, &b);
	for (n = 0; n < nblocks; n++) {
		struct buffer_head *bh;
		u32 off = 0;
		int err = n ? vexfs_dir_next_block() : 0;

		if (err)
			return ERR_PTR(err);
		if (di && !vexfs_dindex_may_hold(&di->blk[n], a, b))
			continue;
		bh = vexfs_dir_bread(dir, n);
		if (IS_ERR(bh))
			return ERR_CAST(bh);
		while (off < VEXFS_DIR_DATA_BYTES) {
			struct vexfs_dir_entry *de = vexfs_de(bh, off);

			if (!vexfs_de_ok(dir, bh, off)) {
				vexfs_brelse(bh);
				return ERR_PTR(-EUCLEAN);
			}
			if (vexfs_match(name, de)) {
				*bhp = bh;
				return de;
			}
			off += le16_to_cpu(de->d_rec_len);
		}
		vexfs_brelse(bh);
	}
	return NULL;
}

struct vexfs_dir_entry *vexfs_dotdot(struct inode *dir, struct buffer_head **bhp)
{
	struct buffer_head *bh = vexfs_dir_bread(dir, 0);
	struct vexfs_dir_entry *de;

	if (IS_ERR(bh))
		return ERR_CAST(bh);
	de = vexfs_de(bh, 0);
	if (!vexfs_de_ok(dir, bh, 0) ||
	    !vexfs_de_ok(dir, bh, le16_to_cpu(de->d_rec_len))) {
		vexfs_brelse(bh);
		return ERR_PTR(-EUCLEAN);
	}
	de = vexfs_de(bh, le16_to_cpu(de->d_rec_len));
	*bhp = bh;
	return de;
}

static void vexfs_fill_de(struct vexfs_dir_entry *de, struct inode *inode,
			  const char *name, u8 len)
{
	de->d_inode = cpu_to_le32(inode->i_ino);
	de->d_name_len = len;
	de->d_file_type = vexfs_ft(inode->i_mode);
	memcpy(de->d_name, name, len);
}

/* Fill a fresh directory block: one free entry spanning it, and the tail. */
static void vexfs_init_dir_block(struct buffer_head *bh)
{
	struct vexfs_dir_entry *de = vexfs_de(bh, 0);

	memset(bh->b_data, 0, VEXFS_BLOCK_SIZE);
	de->d_rec_len = cpu_to_le16(VEXFS_DIR_DATA_BYTES);
}

/* Allocate directory block @n (== current number of blocks) of @dir. */
static struct buffer_head *vexfs_dir_grow(struct inode *dir, u64 n)
{
	struct vexfs_inode_info *ei = VEXFS_I(dir);
	struct buffer_head *bh;
	u64 pblk;
	u32 got;
	int err;

	down_write(&ei->i_ext_sem);
	err = vexfs_ext_alloc(dir, n, 1, &pblk, &got);
	up_write(&ei->i_ext_sem);
	mark_inode_dirty(dir);
	if (err)
		return ERR_PTR(err);
	bh = vexfs_getblk(dir->i_sb, pblk);
	if (!bh)
		return ERR_PTR(-ENOMEM);
	err = vexfs_journal_get_create(dir->i_sb, bh);
	if (err) {
		vexfs_brelse(bh);
		return ERR_PTR(err);
	}
	lock_buffer(bh);
	vexfs_init_dir_block(bh);
	set_buffer_uptodate(bh);
	vexfs_set_verified(bh, VEXFS_META_DIR);
	unlock_buffer(bh);
	i_size_write(dir, (n + 1) << VEXFS_BLOCK_BITS);
	mark_inode_dirty(dir);
	vexfs_dindex_grow(dir, n);
	return bh;
}

int vexfs_add_link(struct dentry *dentry, struct inode *inode)
{
	struct inode *dir = d_inode(dentry->d_parent);
	const struct qstr *name = &dentry->d_name;
	u32 need = VEXFS_DIR_REC_LEN(name->len);
	u64 n, nblocks = vexfs_dir_blocks(dir);
	struct vexfs_dir_entry *de = NULL;
	struct buffer_head *bh = NULL;
	struct vexfs_dindex *di;
	int err;

	if (name->len > VEXFS_NAME_LEN)
		return -ENAMETOOLONG;
	di = vexfs_dindex_get(dir);
	if (di) {
		/* the index answers both questions: is the name there, where is room */
		de = vexfs_find_entry(dir, name, &bh);
		if (IS_ERR(de))
			return PTR_ERR(de);
		if (de) {
			vexfs_brelse(bh);
			return -EEXIST;
		}
		for (n = 0; n < nblocks; n++) {
			u32 off = 0;

			if (di->blk[n].free < need)
				continue;
			err = vexfs_dir_next_block();
			if (err)
				return err;
			bh = vexfs_dir_bread(dir, n);
			if (IS_ERR(bh))
				return PTR_ERR(bh);
			while (off < VEXFS_DIR_DATA_BYTES) {
				u32 rec_len, used;

				if (!vexfs_de_ok(dir, bh, off)) {
					vexfs_brelse(bh);
					return -EUCLEAN;
				}
				de = vexfs_de(bh, off);
				rec_len = le16_to_cpu(de->d_rec_len);
				used = de->d_inode ? VEXFS_DIR_REC_LEN(de->d_name_len) : 0;
				if (rec_len >= used + need)
					goto found;
				off += rec_len;
			}
			/* the recorded gap was wrong: correct it, look on */
			di->blk[n].free = vexfs_dir_blk_free(dir, bh);
			vexfs_brelse(bh);
		}
		n = nblocks;
		goto grow;
	}
	for (n = 0; n < nblocks; n++) {
		u32 off = 0;

		err = n ? vexfs_dir_next_block() : 0;
		if (err)
			return err;
		bh = vexfs_dir_bread(dir, n);
		if (IS_ERR(bh))
			return PTR_ERR(bh);
		while (off < VEXFS_DIR_DATA_BYTES) {
			u32 rec_len, used;

			if (!vexfs_de_ok(dir, bh, off)) {
				vexfs_brelse(bh);
				return -EUCLEAN;
			}
			de = vexfs_de(bh, off);
			rec_len = le16_to_cpu(de->d_rec_len);
			if (vexfs_match(name, de)) {
				vexfs_brelse(bh);
				return -EEXIST;
			}
			used = de->d_inode ? VEXFS_DIR_REC_LEN(de->d_name_len) : 0;
			if (rec_len >= used + need)
				goto found;
			off += rec_len;
		}
		vexfs_brelse(bh);
	}
grow:
	bh = vexfs_dir_grow(dir, nblocks);
	if (IS_ERR(bh))
		return PTR_ERR(bh);
	de = vexfs_de(bh, 0);
found:
	err = vexfs_dir_lock(dir, bh);
	if (err)
		return err;
	if (de->d_inode) {
		u32 used = VEXFS_DIR_REC_LEN(de->d_name_len);
		struct vexfs_dir_entry *nde = (void *)de + used;

		nde->d_rec_len = cpu_to_le16(le16_to_cpu(de->d_rec_len) - used);
		de->d_rec_len = cpu_to_le16(used);
		de = nde;
	}
	vexfs_fill_de(de, inode, name->name, name->len);
	/* dir_grow may have replaced the index */
	di = VEXFS_I(dir)->i_dindex;
	if (di && n < di->nblocks) {
		vexfs_dindex_add_name(&di->blk[n], name->name, name->len);
		di->blk[n].free = vexfs_dir_blk_free(dir, bh);
	}
	return vexfs_dir_changed(dir, bh);
}

/* Remove @de (in @bh, which this releases) from @dir. */
int vexfs_delete_entry(struct inode *dir, struct vexfs_dir_entry *de,
		       struct buffer_head *bh)
{
	u32 off = 0, target = (char *)de - bh->b_data;
	struct vexfs_dir_entry *prev = NULL;
	int err;

	while (off < target) {
		if (!vexfs_de_ok(dir, bh, off)) {
			vexfs_brelse(bh);
			return -EUCLEAN;
		}
		prev = vexfs_de(bh, off);
		off += le16_to_cpu(prev->d_rec_len);
	}
	if (off != target) {
		vexfs_error(dir->i_sb, "directory inode %lu: entry to delete at offset %u is not on the rec_len chain",
			    dir->i_ino, target);
		vexfs_brelse(bh);
		return -EUCLEAN;
	}
	err = vexfs_dir_lock(dir, bh);
	if (err)
		return err;
	if (prev)
		prev->d_rec_len = cpu_to_le16(le16_to_cpu(prev->d_rec_len) +
					      le16_to_cpu(de->d_rec_len));
	else
		de->d_inode = 0;
	if (VEXFS_I(dir)->i_dindex)
		vexfs_dindex_update(dir, vexfs_dir_lblk(dir, bh), bh);
	return vexfs_dir_changed(dir, bh);
}

/* Point @de (in @bh, which this releases) at @inode. */
int vexfs_set_link(struct inode *dir, struct vexfs_dir_entry *de,
		   struct buffer_head *bh, struct inode *inode)
{
	int err = vexfs_dir_lock(dir, bh);

	if (err)
		return err;
	de->d_inode = cpu_to_le32(inode->i_ino);
	de->d_file_type = vexfs_ft(inode->i_mode);
	return vexfs_dir_changed(dir, bh);
}

/*
 * Point the ".." entry @de (in @bh, which this releases) of directory @dir
 * at @parent. Moving a directory changes its parent's times, not its own
 * (as ext2/ext4): the entry is rewritten without touching @dir's mtime.
 */
int vexfs_set_dotdot(struct inode *dir, struct vexfs_dir_entry *de,
		     struct buffer_head *bh, struct inode *parent)
{
	int err = vexfs_dir_lock(dir, bh);

	if (err)
		return err;
	de->d_inode = cpu_to_le32(parent->i_ino);
	de->d_file_type = vexfs_ft(parent->i_mode);
	return vexfs_dir_release(dir, bh);
}

/* First block of a new directory: "." and "..". */
int vexfs_make_empty(struct inode *inode, struct inode *parent)
{
	struct vexfs_dir_entry *de;
	struct buffer_head *bh;
	u32 dot = VEXFS_DIR_REC_LEN(1);

	bh = vexfs_dir_grow(inode, 0);
	if (IS_ERR(bh))
		return PTR_ERR(bh);
	/* dir_grow got create access: the block is ours in this handle */
	lock_buffer(bh);
	de = vexfs_de(bh, 0);
	vexfs_fill_de(de, inode, ".", 1);
	de->d_rec_len = cpu_to_le16(dot);
	de = vexfs_de(bh, dot);
	vexfs_fill_de(de, parent, "..", 2);
	de->d_rec_len = cpu_to_le16(VEXFS_DIR_DATA_BYTES - dot);
	return vexfs_dir_release(inode, bh);
}

/* 1 if @inode holds only "." and "..", 0 if not, -errno on error. */
int vexfs_empty_dir(struct inode *inode)
{
	u64 n, nblocks = vexfs_dir_blocks(inode);

	for (n = 0; n < nblocks; n++) {
		struct buffer_head *bh;
		u32 off = 0, idx = 0;
		int err = n ? vexfs_dir_next_block() : 0;

		if (err)
			return err;
		bh = vexfs_dir_bread(inode, n);
		if (IS_ERR(bh))
			return PTR_ERR(bh);
		while (off < VEXFS_DIR_DATA_BYTES) {
			struct vexfs_dir_entry *de = vexfs_de(bh, off);

			if (!vexfs_de_ok(inode, bh, off)) {
				vexfs_brelse(bh);
				return -EUCLEAN;
			}
			if (de->d_inode && !(n == 0 && idx < 2)) {
				vexfs_brelse(bh);
				return 0;
			}
			off += le16_to_cpu(de->d_rec_len);
			idx++;
		}
		vexfs_brelse(bh);
	}
	return 1;
}

/*
 * readdir: ctx->pos is block * 4096 + byte offset of the next entry. Each
 * block is walked from its start, so a position left inside an entry that
 * was merged away by a deletion simply resumes at the next entry.
 */
static int vexfs_readdir(struct file *file, struct dir_context *ctx)
{
	struct inode *dir = file_inode(file);
	u64 nblocks = vexfs_dir_blocks(dir);
	u64 n = ctx->pos >> VEXFS_BLOCK_BITS;
	u32 skip = ctx->pos & (VEXFS_BLOCK_SIZE - 1);

	for (; n < nblocks; n++, skip = 0) {
		struct buffer_head *bh;
		u32 off = 0;
		int err = vexfs_dir_next_block();

		if (err)
			return err;
		bh = vexfs_dir_bread(dir, n);
		if (IS_ERR(bh))
			return PTR_ERR(bh);
		while (off < VEXFS_DIR_DATA_BYTES) {
			struct vexfs_dir_entry *de = vexfs_de(bh, off);

			if (!vexfs_de_ok(dir, bh, off)) {
				vexfs_brelse(bh);
				return -EUCLEAN;
			}
			if (off >= skip && de->d_inode) {
				ctx->pos = (n << VEXFS_BLOCK_BITS) + off;
				if (!dir_emit(ctx, de->d_name, de->d_name_len,
					      le32_to_cpu(de->d_inode),
					      vexfs_dt(de->d_file_type))) {
					vexfs_brelse(bh);
					return 0;
				}
			}
			off += le16_to_cpu(de->d_rec_len);
		}
		vexfs_brelse(bh);
		ctx->pos = (n + 1) << VEXFS_BLOCK_BITS;
	}
	return 0;
}

const struct file_operations vexfs_dir_operations = {
	.llseek		= generic_file_llseek,
	.read		= generic_read_dir,
	.iterate_shared	= vexfs_readdir,
	.fsync		= vexfs_fsync,
};
