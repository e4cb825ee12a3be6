// SPDX-License-Identifier: GPL-2.0
/*
 * super.c - mount (fs_context), superblock validation, super_operations,
 * error handling and statfs.
 *
 * fill_super validates the on-disk superblock before trusting any of it,
 * in the order of ext2_fill_super: block size, magic (silent when probing),
 * checksum, version, features, geometry against the device, then the root
 * inode. Each refusal logs one "vexfs (<dev>): error: ..." line and returns
 * an errno: -EINVAL (not VexFS / unsupported), -EBADMSG (checksum mismatch,
 * what ext4 calls EFSBADCRC) or -EUCLEAN (inconsistent metadata, ext4's
 * EFSCORRUPTED).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blkdev.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/ktime.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/statfs.h>
#include <linux/writeback.h>
#include "vexfs.h"

/* The level is parsed from the formatted text, so it may come from %s. */
static __printf(1, 2) void vexfs_printk(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vprintk(fmt, args);
	va_end(args);
}

void vexfs_msg(struct super_block *sb, const char *level, const char *fmt, ...)
{
	struct va_format vaf;
	va_list args;

	va_start(args, fmt);
	vaf.fmt = fmt;
	vaf.va = &args;
	vexfs_printk("%svexfs (%s): %pV\n", level, sb->s_id, &vaf);
	va_end(args);
}

/*
 * Corruption detected at run time: log it, remember it in the superblock
 * (VEXFS_STATE_ERROR, so fsck.vexfs is asked for) and apply errors=.
 */
void __vexfs_error(struct super_block *sb, const char *func,
		   const char *fmt, ...)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	struct va_format vaf;
	va_list args;

	va_start(args, fmt);
	vaf.fmt = fmt;
	vaf.va = &args;
	vexfs_printk(KERN_ERR "vexfs (%s): error: %s: %pV\n", sb->s_id, func,
		     &vaf);
	va_end(args);

	if (!sbi)
		return;
	atomic_inc(&sbi->s_error_count);
	if (!sb->s_root)	/* still mounting: the mount fails anyway */
		return;
	if (!sbi->s_had_error) {
		sbi->s_had_error = true;
		if (!sb_rdonly(sb))
			vexfs_write_super(sb, false);
	}
	if (sbi->s_errors_mode == VEXFS_ERRORS_PANIC)
		panic("vexfs (%s): panic forced after error\n", sb->s_id);
	if (sbi->s_errors_mode == VEXFS_ERRORS_RO && !sb_rdonly(sb)) {
		vexfs_msg(sb, KERN_CRIT, "error: remounting filesystem read-only");
		sb->s_flags |= SB_RDONLY;
	}
}

/*
 * Write the in-memory counters and state into block 0 and checksum it.
 * The free counts are read without s_alloc_lock: a snapshot is enough
 * (fsck recomputes them) and errors may be reported under that lock.
 */
int vexfs_write_super(struct super_block *sb, bool wait)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	struct vexfs_super_block *vs = sbi->s_vs;
	struct buffer_head *bh = sbi->s_sbh;
	u16 state;

	lock_buffer(bh);
	if (buffer_write_io_error(bh) || !buffer_uptodate(bh)) {
		/*
		 * An earlier asynchronous write of the superblock failed, which
		 * cleared uptodate. Our in-memory copy is still the one that
		 * belongs on disk: mark it uptodate again before dirtying it
		 * (mark_buffer_dirty() warns on a !uptodate buffer), as
		 * ext4_commit_super() does. The errors= policy is applied by
		 * the next vexfs_check_wb_err().
		 */
		if (buffer_write_io_error(bh))
			vexfs_note_lost_write(sb, bh);
		clear_buffer_write_io_error(bh);
		set_buffer_uptodate(bh);
	}
	vs->s_free_blocks = cpu_to_le64(READ_ONCE(sbi->s_free_blocks));
	vs->s_free_inodes = cpu_to_le32(READ_ONCE(sbi->s_free_inodes));
	vs->s_write_time = cpu_to_le64(ktime_get_real_seconds());
	state = le16_to_cpu(vs->s_state);
	if (sbi->s_had_error)
		state |= VEXFS_STATE_ERROR;
	vs->s_state = cpu_to_le16(state);
	vexfs_sb_csum_set(vs);
	unlock_buffer(bh);
	mark_buffer_dirty(bh);
	if (wait && sync_dirty_buffer(bh)) {
		/* names block 0, restores the buffer and applies errors= */
		return vexfs_check_wb_err(sb) ?: -EIO;
	}
	return 0;
}

static void vexfs_set_clean(struct super_block *sb, bool clean)
{
	struct vexfs_super_block *vs = VEXFS_SB(sb)->s_vs;
	u16 state = le16_to_cpu(vs->s_state);

	if (clean)
		state |= VEXFS_STATE_CLEAN;
	else
		state &= ~VEXFS_STATE_CLEAN;
	lock_buffer(VEXFS_SB(sb)->s_sbh);
	vs->s_state = cpu_to_le16(state);
	unlock_buffer(VEXFS_SB(sb)->s_sbh);
}

/* Going read-write: mark the filesystem in use (not clean) on disk. */
static int vexfs_setup_rw(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	struct vexfs_super_block *vs = sbi->s_vs;
	u16 state = le16_to_cpu(vs->s_state);

	if (!(state & VEXFS_STATE_CLEAN) && !sbi->s_journal) {
		/*
		 * Without a journal nothing says the bitmaps match the files
		 * after a crash: allocating from them could cross-link
		 * files. Only fsck.vexfs (which marks the filesystem clean)
		 * or a read-only mount.
		 */
		vexfs_msg(sb, KERN_ERR,
			  "error: the filesystem was not cleanly unmounted and has no journal; run fsck.vexfs, or mount read-only");
		return -EUCLEAN;
	}
	if (state & VEXFS_STATE_ERROR)
		vexfs_msg(sb, KERN_WARNING,
			  "warning: mounting a filesystem with errors; running fsck.vexfs is recommended");
	lock_buffer(sbi->s_sbh);
	le32_add_cpu(&vs->s_mount_count, 1);
	vs->s_mount_time = cpu_to_le64(ktime_get_real_seconds());
	/* the journal may hold transactions from now on (ext4's RECOVER) */
	if (sbi->s_journal)
		vs->s_feature_incompat |= cpu_to_le32(VEXFS_FEATURE_INCOMPAT_RECOVER);
	unlock_buffer(sbi->s_sbh);
	vexfs_set_clean(sb, false);
	return vexfs_write_super(sb, true);
}

/* Clean unmount or remount read-only: the journal is empty from now on. */
static int vexfs_finish_rw(struct super_block *sb)
{
	struct vexfs_super_block *vs = VEXFS_SB(sb)->s_vs;

	lock_buffer(VEXFS_SB(sb)->s_sbh);
	vs->s_feature_incompat &= ~cpu_to_le32(VEXFS_FEATURE_INCOMPAT_RECOVER);
	unlock_buffer(VEXFS_SB(sb)->s_sbh);
	vexfs_set_clean(sb, true);
	return vexfs_write_super(sb, true);
}

static struct inode *vexfs_alloc_inode(struct super_block *sb)
{
	struct vexfs_inode_info *ei;

	ei = alloc_inode_sb(sb, vexfs_inode_cachep, GFP_KERNEL);
	if (!ei)
		return NULL;
	ei->i_ext = ei->i_ext_inline;
	ei->i_ext_cap = VEXFS_INLINE_EXTENTS;
	ei->i_nr_ext = 0;
	ei->i_chain = NULL;
	ei->i_nr_chain = 0;
	ei->i_chain_cap = 0;
	ei->i_chain_linked = 0;
	ei->i_chain_dense = true;
	ei->i_vflags = 0;
	ei->i_xattr_blk = 0;
	ei->i_sync_tid = 0;
	ei->i_dindex = NULL;
	jbd2_journal_init_jbd_inode(&ei->i_jinode, &ei->vfs_inode);
	atomic_long_inc(&vexfs_nr_inodes);
	return &ei->vfs_inode;
}

static void vexfs_free_inode(struct inode *inode)
{
	kmem_cache_free(vexfs_inode_cachep, VEXFS_I(inode));
	atomic_long_dec(&vexfs_nr_inodes);
}

static void vexfs_put_super(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	int aborted;

	vexfs_sysfs_unregister_sb(sb);
	/* checkpoints every committed transaction: the journal is empty */
	aborted = vexfs_journal_destroy(sb);
	if (!sb_rdonly(sb)) {
		if (aborted) {
			/* leave RECOVER set: the next mount replays */
			vexfs_write_super(sb, true);
		} else {
			vexfs_finish_rw(sb);
		}
	}
	/*
	 * Report a metadata write that failed since the last check and make
	 * what is still cached dirty again: the block device's final flush
	 * (blkdev_put) then writes the newest copy if the device is back.
	 */
	vexfs_check_wb_err(sb);
	vexfs_wb_err_destroy(sb);
	vexfs_brelse(sbi->s_sbh);
	sb->s_fs_info = NULL;
	kfree(sbi);
	atomic_long_dec(&vexfs_nr_mounts);
}

/*
 * For a waiting sync, write the metadata now rather than after we return
 * (sync_filesystem() flushes the block device after ->sync_fs): a write
 * that fails is then reported, and errors= applied, by this sync.
 */
static int vexfs_sync_fs(struct super_block *sb, int wait)
{
	int err, err2;

	if (sb_rdonly(sb))
		return 0;
	err = vexfs_write_super(sb, false);
	/*
	 * Without @wait: start the commit of the running transaction. With
	 * @wait (sync(2), syncfs(2)): commit it and write everything in
	 * place, so that sync leaves the journal empty (clean on disk).
	 */
	if (wait)
		err2 = vexfs_journal_flush(sb);
	else
		err2 = vexfs_journal_commit(sb, 0);
	err = err ?: err2;
	if (wait) {
		err2 = sync_blockdev(sb->s_bdev);
		err = err ?: err2;
		/*
		 * sync(2)/syncfs(2): what was written must survive a power
		 * cut, so flush the device's write cache (data overwritten in
		 * place has no commit to carry a flush).
		 */
		err2 = blkdev_issue_flush(sb->s_bdev);
		err = err ?: err2;
	}
	err2 = vexfs_check_wb_err(sb);
	return err ?: err2;
}

static int vexfs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct super_block *sb = dentry->d_sb;
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	u64 id = huge_encode_dev(sb->s_bdev->bd_dev);

	buf->f_type = VEXFS_MAGIC;
	buf->f_bsize = VEXFS_BLOCK_SIZE;
	buf->f_blocks = sbi->s_blocks_count - sbi->s_data_start;
	buf->f_bfree = READ_ONCE(sbi->s_free_blocks);
	buf->f_bavail = buf->f_bfree;
	buf->f_files = sbi->s_inodes_count;
	buf->f_ffree = READ_ONCE(sbi->s_free_inodes);
	buf->f_namelen = VEXFS_NAME_LEN;
	buf->f_fsid = u64_to_fsid(id);
	return 0;
}

static int vexfs_show_options(struct seq_file *seq, struct dentry *root)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(root->d_sb);

	if (sbi->s_errors_mode == VEXFS_ERRORS_CONTINUE)
		seq_puts(seq, ",errors=continue");
	else if (sbi->s_errors_mode == VEXFS_ERRORS_PANIC)
		seq_puts(seq, ",errors=panic");
	if (sbi->s_journal && sbi->s_commit_secs != VEXFS_DEFAULT_COMMIT_SECS)
		seq_printf(seq, ",commit=%u", sbi->s_commit_secs);
	return 0;
}

static const struct super_operations vexfs_sops = {
	.alloc_inode	= vexfs_alloc_inode,
	.free_inode	= vexfs_free_inode,
	.write_inode	= vexfs_write_inode,
	.dirty_inode	= vexfs_dirty_inode,
	.evict_inode	= vexfs_evict_inode,
	.put_super	= vexfs_put_super,
	.sync_fs	= vexfs_sync_fs,
	.statfs		= vexfs_statfs,
	.show_options	= vexfs_show_options,
};

/* Mount options */
struct vexfs_fs_context {
	unsigned int errors_mode;
	bool errors_set;
	unsigned int commit_secs;	/* 0: not given */
};

enum { Opt_errors, Opt_commit };

/* commit=: seconds between journal commits, as ext4 (0 = the default 5) */
#define VEXFS_MAX_COMMIT_SECS	(INT_MAX / HZ)

static const struct constant_table vexfs_param_errors[] = {
	{ "continue",	VEXFS_ERRORS_CONTINUE },
	{ "remount-ro",	VEXFS_ERRORS_RO },
	{ "panic",	VEXFS_ERRORS_PANIC },
	{}
};

const struct fs_parameter_spec vexfs_fs_parameters[] = {
	fsparam_enum("errors", Opt_errors, vexfs_param_errors),
	fsparam_u32("commit", Opt_commit),
	{}
};

static int vexfs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	struct vexfs_fs_context *ctx = fc->fs_private;
	struct fs_parse_result result;
	int opt;

	opt = fs_parse(fc, vexfs_fs_parameters, param, &result);
	if (opt < 0)
		return opt;
	if (opt == Opt_errors) {
		ctx->errors_mode = result.uint_32;
		ctx->errors_set = true;
	} else if (opt == Opt_commit) {
		if (result.uint_32 > VEXFS_MAX_COMMIT_SECS)
			return invalfc(fc, "commit=%u is more than %u seconds",
				       result.uint_32, VEXFS_MAX_COMMIT_SECS);
		ctx->commit_secs = result.uint_32 ?: VEXFS_DEFAULT_COMMIT_SECS;
	}
	return 0;
}

static u32 vexfs_div_bits(u64 n, u32 per)
{
	return DIV_ROUND_UP_ULL(n, per);
}

/* Geometry checks; returns a reason string or NULL if consistent. */
static const char *vexfs_check_geometry(struct super_block *sb,
					struct vexfs_sb_info *sbi,
					const struct vexfs_super_block *vs)
{
	u64 dev_blocks = bdev_nr_bytes(sb->s_bdev) >> VEXFS_BLOCK_BITS;
	struct { u64 start, len; } r[4] = {
		{ sbi->s_ibitmap_start, sbi->s_ibitmap_blocks },
		{ sbi->s_bbitmap_start, sbi->s_bbitmap_blocks },
		{ sbi->s_itable_start, sbi->s_itable_blocks },
		{ sbi->s_journal_start, sbi->s_journal_blocks },
	};
	bool has_journal = le32_to_cpu(vs->s_feature_compat) &
			   VEXFS_FEATURE_COMPAT_HAS_JOURNAL;
	int i, j, nr = has_journal ? 4 : 3;

	if (sbi->s_blocks_count < VEXFS_MIN_BLOCKS)
		return "block count below the minimum";
	if (sbi->s_blocks_count > dev_blocks)
		return "filesystem is larger than the device";
	if (le16_to_cpu(vs->s_inode_size) != VEXFS_INODE_SIZE)
		return "unsupported inode size";
	if (le32_to_cpu(vs->s_root_ino) != VEXFS_ROOT_INO)
		return "root inode number is not 1";
	if (!sbi->s_inodes_count)
		return "no inodes";
	if (sbi->s_ibitmap_blocks != vexfs_div_bits(sbi->s_inodes_count,
						    VEXFS_BITS_PER_BITMAP))
		return "inode bitmap size does not match the inode count";
	if (sbi->s_bbitmap_blocks != vexfs_div_bits(sbi->s_blocks_count,
						    VEXFS_BITS_PER_BITMAP))
		return "block bitmap size does not match the block count";
	if (sbi->s_itable_blocks != vexfs_div_bits(sbi->s_inodes_count,
						   VEXFS_INODES_PER_BLOCK))
		return "inode table size does not match the inode count";
	if (sbi->s_data_start >= sbi->s_blocks_count)
		return "data region starts past the end";
	if (has_journal && sbi->s_journal_blocks < VEXFS_MIN_JOURNAL_BLOCKS)
		return "journal smaller than jbd2's minimum";
	if (!has_journal && (sbi->s_journal_start || sbi->s_journal_blocks))
		return "journal fields set without the HAS_JOURNAL feature";
	if (!has_journal && (le32_to_cpu(vs->s_feature_incompat) &
			     VEXFS_FEATURE_INCOMPAT_RECOVER))
		return "RECOVER set without a journal";
	for (i = 0; i < nr; i++) {
		if (r[i].start < 1 || r[i].start >= sbi->s_data_start ||
		    r[i].len > sbi->s_data_start - r[i].start)
			return "metadata region outside [1, data_start)";
		for (j = 0; j < i; j++)
			if (r[i].start < r[j].start + r[j].len &&
			    r[j].start < r[i].start + r[i].len)
				return "metadata regions overlap";
	}
	if (sbi->s_free_blocks > sbi->s_blocks_count - sbi->s_data_start)
		return "free block count larger than the data region";
	if (sbi->s_free_inodes >= sbi->s_inodes_count)
		return "free inode count not below the inode count";
	return NULL;
}

static int vexfs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	struct vexfs_fs_context *ctx = fc->fs_private;
	int silent = fc->sb_flags & SB_SILENT;
	struct vexfs_super_block *vs;
	struct vexfs_sb_info *sbi;
	struct inode *root;
	const char *why;
	u32 v, feat;
	int err = -EINVAL;

	sbi = kzalloc(sizeof(*sbi), GFP_KERNEL);
	if (!sbi)
		return -ENOMEM;
	sb->s_fs_info = sbi;
	mutex_init(&sbi->s_alloc_lock);
	spin_lock_init(&sbi->s_pending_lock);
	INIT_LIST_HEAD(&sbi->s_pending_list);
	sbi->s_errors_mode = ctx->errors_mode;
	sbi->s_commit_secs = ctx->commit_secs ?: VEXFS_DEFAULT_COMMIT_SECS;
	vexfs_wb_err_init(sb);

	if (!sb_set_blocksize(sb, VEXFS_BLOCK_SIZE)) {
		vexfs_msg(sb, KERN_ERR, "error: unable to set block size %u (device sector size %u)",
			  VEXFS_BLOCK_SIZE, bdev_logical_block_size(sb->s_bdev));
		goto failed_sbi;
	}
	sbi->s_sbh = vexfs_bread(sb, 0);
	if (!sbi->s_sbh) {
		vexfs_msg(sb, KERN_ERR, "error: unable to read the superblock");
		err = -EIO;
		goto failed_sbi;
	}
	vs = (struct vexfs_super_block *)sbi->s_sbh->b_data;
	sbi->s_vs = vs;

	if (le32_to_cpu(vs->s_magic) != VEXFS_MAGIC) {
		if (!silent)
			vexfs_msg(sb, KERN_ERR, "error: can't find a vexfs filesystem (bad magic 0x%08x)",
				  le32_to_cpu(vs->s_magic));
		goto failed_bh;
	}
	if (!vexfs_sb_csum_ok(vs)) {
		vexfs_msg(sb, KERN_ERR, "error: superblock checksum mismatch (stored 0x%08x, computed 0x%08x); run fsck.vexfs",
			  le32_to_cpu(vs->s_checksum),
			  vexfs_csum_skip(vs, sizeof(*vs),
					  offsetof(struct vexfs_super_block, s_checksum)));
		err = -EBADMSG;
		goto failed_bh;
	}
	v = le32_to_cpu(vs->s_version);
	if (v != VEXFS_FORMAT_VERSION) {
		vexfs_msg(sb, KERN_ERR, "error: unsupported format version %u (this module supports %u)",
			  v, VEXFS_FORMAT_VERSION);
		goto failed_bh;
	}
	if (le32_to_cpu(vs->s_block_size) != VEXFS_BLOCK_SIZE) {
		vexfs_msg(sb, KERN_ERR, "error: unsupported block size %u",
			  le32_to_cpu(vs->s_block_size));
		goto failed_bh;
	}
	feat = le32_to_cpu(vs->s_feature_incompat);
	if (feat & ~VEXFS_FEATURE_INCOMPAT_SUPP) {
		vexfs_msg(sb, KERN_ERR, "error: unsupported incompatible features 0x%x",
			  feat & ~VEXFS_FEATURE_INCOMPAT_SUPP);
		goto failed_bh;
	}
	feat = le32_to_cpu(vs->s_feature_ro_compat);
	if ((feat & ~VEXFS_FEATURE_RO_COMPAT_SUPP) && !sb_rdonly(sb)) {
		vexfs_msg(sb, KERN_ERR, "error: unsupported read-only-compatible features 0x%x; mount read-only",
			  feat & ~VEXFS_FEATURE_RO_COMPAT_SUPP);
		goto failed_bh;
	}

	sbi->s_blocks_count = le64_to_cpu(vs->s_blocks_count);
	sbi->s_free_blocks = le64_to_cpu(vs->s_free_blocks);
	sbi->s_inodes_count = le32_to_cpu(vs->s_inodes_count);
	sbi->s_free_inodes = le32_to_cpu(vs->s_free_inodes);
	sbi->s_ibitmap_start = le64_to_cpu(vs->s_ibitmap_start);
	sbi->s_bbitmap_start = le64_to_cpu(vs->s_bbitmap_start);
	sbi->s_itable_start = le64_to_cpu(vs->s_itable_start);
	sbi->s_data_start = le64_to_cpu(vs->s_data_start);
	sbi->s_ibitmap_blocks = le32_to_cpu(vs->s_ibitmap_blocks);
	sbi->s_bbitmap_blocks = le32_to_cpu(vs->s_bbitmap_blocks);
	sbi->s_itable_blocks = le32_to_cpu(vs->s_itable_blocks);
	sbi->s_journal_start = le64_to_cpu(vs->s_journal_start);
	sbi->s_journal_blocks = le32_to_cpu(vs->s_journal_blocks);
	sbi->s_block_goal = sbi->s_data_start;
	why = vexfs_check_geometry(sb, sbi, vs);
	if (why) {
		vexfs_msg(sb, KERN_ERR, "error: corrupt superblock: %s (blocks %llu, device blocks %llu, inodes %u, data_start %llu); run fsck.vexfs",
			  why, sbi->s_blocks_count,
			  bdev_nr_bytes(sb->s_bdev) >> VEXFS_BLOCK_BITS,
			  sbi->s_inodes_count, sbi->s_data_start);
		err = -EUCLEAN;
		goto failed_bh;
	}
	err = vexfs_wb_err_setup_bitmaps(sb);
	if (err)
		goto failed_bh;
	if (le16_to_cpu(vs->s_state) & VEXFS_STATE_ERROR)
		sbi->s_had_error = true;
	if (le32_to_cpu(vs->s_feature_compat) & VEXFS_FEATURE_COMPAT_HAS_JOURNAL) {
		/* replays what the journal holds (before any metadata read) */
		err = vexfs_journal_load(sb, sbi->s_commit_secs);
		if (err)
			goto failed_bh;
		if (!(le16_to_cpu(vs->s_state) & VEXFS_STATE_CLEAN)) {
			/* the free counts are not journaled: count them */
			err = vexfs_recount_free(sb);
			if (err)
				goto failed_journal;
		}
	}

	sb->s_magic = VEXFS_MAGIC;
	sb->s_op = &vexfs_sops;
	sb->s_xattr = vexfs_xattr_handlers;
	sb->s_export_op = &vexfs_export_ops;
	sb->s_flags |= SB_POSIXACL;
	sb->s_maxbytes = VEXFS_MAX_BYTES;
	sb->s_max_links = 65000;
	sb->s_time_gran = 1;
	sb->s_time_min = S64_MIN;
	sb->s_time_max = S64_MAX;
	memcpy(&sb->s_uuid, vs->s_uuid, sizeof(vs->s_uuid));

	root = vexfs_iget(sb, VEXFS_ROOT_INO);
	if (IS_ERR(root)) {
		err = PTR_ERR(root);
		vexfs_msg(sb, KERN_ERR, "error: unable to read the root inode (%d); run fsck.vexfs",
			  err);
		goto failed_journal;
	}
	if (!S_ISDIR(root->i_mode) || root->i_nlink < 2) {
		vexfs_msg(sb, KERN_ERR, "error: corrupt root inode (mode 0%o, links %u); run fsck.vexfs",
			  root->i_mode, root->i_nlink);
		err = -EUCLEAN;
		goto failed_root;
	}
	sb->s_root = d_make_root(root);
	if (!sb->s_root) {
		err = -ENOMEM;
		goto failed_journal;
	}
	if (!sb_rdonly(sb)) {
		err = vexfs_setup_rw(sb);
		if (err)
			goto failed_dput;
	}
	atomic_long_inc(&vexfs_nr_mounts);
	if (vexfs_sysfs_register_sb(sb))
		vexfs_msg(sb, KERN_WARNING, "warning: no sysfs directory for this mount");
	return 0;

failed_dput:
	dput(sb->s_root);
	sb->s_root = NULL;
	goto failed_journal;
failed_root:
	iput(root);
failed_journal:
	vexfs_journal_destroy(sb);
failed_bh:
	vexfs_wb_err_destroy(sb);
	vexfs_brelse(sbi->s_sbh);
failed_sbi:
	sb->s_fs_info = NULL;
	kfree(sbi);
	return err;
}

static int vexfs_get_tree(struct fs_context *fc)
{
	return get_tree_bdev(fc, vexfs_fill_super);
}

static int vexfs_reconfigure(struct fs_context *fc)
{
	struct vexfs_fs_context *ctx = fc->fs_private;
	struct super_block *sb = fc->root->d_sb;
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	bool want_ro = fc->sb_flags & SB_RDONLY;
	int err = 0;

	sync_filesystem(sb);
	if (ctx->errors_set)
		sbi->s_errors_mode = ctx->errors_mode;
	if (ctx->commit_secs && sbi->s_journal) {
		sbi->s_commit_secs = ctx->commit_secs;
		write_lock(&sbi->s_journal->j_state_lock);
		sbi->s_journal->j_commit_interval = ctx->commit_secs * HZ;
		write_unlock(&sbi->s_journal->j_state_lock);
	}
	if (want_ro == sb_rdonly(sb))
		return 0;
	if (want_ro) {
		/* VFS already synced; empty the journal, write the clean state */
		err = vexfs_journal_flush(sb);
		if (err)
			return err;
		return vexfs_finish_rw(sb);
	}
	if (le32_to_cpu(sbi->s_vs->s_feature_ro_compat) &
	    ~VEXFS_FEATURE_RO_COMPAT_SUPP) {
		vexfs_msg(sb, KERN_ERR, "error: cannot remount read-write: unsupported read-only-compatible features");
		return -EROFS;
	}
	if (sbi->s_had_error)
		vexfs_msg(sb, KERN_WARNING, "warning: remounting read-write a filesystem with errors");
	err = vexfs_setup_rw(sb);
	return err;
}

static void vexfs_free_fc(struct fs_context *fc)
{
	kfree(fc->fs_private);
}

static const struct fs_context_operations vexfs_context_ops = {
	.parse_param	= vexfs_parse_param,
	.get_tree	= vexfs_get_tree,
	.reconfigure	= vexfs_reconfigure,
	.free		= vexfs_free_fc,
};

int vexfs_init_fs_context(struct fs_context *fc)
{
	struct vexfs_fs_context *ctx;

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx)
		return -ENOMEM;
	ctx->errors_mode = VEXFS_ERRORS_RO;
	fc->fs_private = ctx;
	fc->ops = &vexfs_context_ops;
	return 0;
}
