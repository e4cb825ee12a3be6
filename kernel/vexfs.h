/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vexfs.h - in-kernel structures and prototypes of the VexFS module.
 *
 * The on-disk format lives in uapi/vexfs_fs.h; this header holds the
 * in-memory superblock and inode info, the helpers shared between files
 * and one prototype group per .c file.
 */
#ifndef _VEXFS_H
#define _VEXFS_H

#include <linux/fs.h>
#include <linux/buffer_head.h>
#include <linux/kobject.h>
#include <linux/mutex.h>
#include <linux/rwsem.h>
#include <linux/atomic.h>
#include <linux/completion.h>
#include <linux/errseq.h>
#include <linux/spinlock.h>
#include <linux/fs_parser.h>
#include <linux/jbd2.h>
#include <linux/list.h>
#include "vexfs_fs.h"
#include "compat.h"

#ifndef VEXFS_MODULE_VERSION	/* from kernel/VERSION, by Kbuild */
#error "VEXFS_MODULE_VERSION must come from kernel/VERSION (build with Kbuild)"
#endif

/* errors= mount option: what to do when corruption is detected */
/* s_journal_flags: the journal's abort was reported (journal.c) */
#define VEXFS_JF_ABORT_REPORTED	0

enum vexfs_errors_mode {
	VEXFS_ERRORS_CONTINUE,
	VEXFS_ERRORS_RO,		/* default, like ext2 errors=remount-ro */
	VEXFS_ERRORS_PANIC,
};

struct vexfs_sb_info {
	struct buffer_head *s_sbh;		/* block 0, held while mounted */
	struct vexfs_super_block *s_vs;		/* points into s_sbh->b_data */

	/* geometry, validated at mount and never changed afterwards */
	u64 s_blocks_count;
	u64 s_ibitmap_start;
	u64 s_bbitmap_start;
	u64 s_itable_start;
	u64 s_data_start;
	u32 s_inodes_count;
	u32 s_ibitmap_blocks;
	u32 s_bbitmap_blocks;
	u32 s_itable_blocks;

	/* allocator state, protected by s_alloc_lock */
	struct mutex s_alloc_lock;
	u64 s_free_blocks;
	u32 s_free_inodes;
	u64 s_block_goal;		/* where the next new file starts looking */

	/* error state */
	unsigned int s_errors_mode;	/* enum vexfs_errors_mode */
	atomic_t s_error_count;
	bool s_had_error;		/* persist VEXFS_STATE_ERROR */

	/* metadata write errors (buffer.c) */
	errseq_t s_bdev_wb_err;		/* bdev mapping errseq last seen */
	spinlock_t s_bdev_wb_lock;
	bool s_lost_write;		/* a metadata write failed on this mount */
	u64 s_lost_pending;		/* first block noted since the last report */
	atomic_t s_lost_noted;		/* lost writes noted since then */
	unsigned long *s_bmp_changed;	/* bitmap/itable blocks changed */

	/* journal.c: jbd2, NULL for a filesystem without a journal */
	journal_t *s_journal;
	u64 s_journal_start;
	u32 s_journal_blocks;
	unsigned int s_commit_secs;	/* commit= mount option */
	bool s_recovered;		/* the journal was replayed at mount */
	unsigned long s_journal_flags;	/* VEXFS_JF_* bits */
	/* blocks freed by transactions not yet committed (journal.c) */
	spinlock_t s_pending_lock;
	struct list_head s_pending_list;
	unsigned long **s_pending_map;	/* per block bitmap block, or NULL */

	/* /sys/fs/vexfs/<dev>/ */
	struct kobject s_kobj;
	struct completion s_kobj_unregister;
	bool s_kobj_added;
};

/*
 * File blocks [0, VEXFS_MAX_LBLK) can be mapped; s_maxbytes is the byte
 * offset of the first unmappable block, so the VFS refuses (EFBIG) what the
 * extent code would.
 */
#define VEXFS_MAX_LBLK	((u64)MAX_LFS_FILESIZE >> VEXFS_BLOCK_BITS)
#define VEXFS_MAX_BYTES	((loff_t)(VEXFS_MAX_LBLK << VEXFS_BLOCK_BITS))

/* One extent in memory, CPU byte order. */
struct vexfs_mext {
	u64 lblk;
	u64 pblk;
	u32 len;
};

struct vexfs_inode_info {
	/*
	 * i_ext_sem protects the extent map below (i_ext, i_nr_ext, i_chain,
	 * i_nr_chain) against concurrent lookups from readahead/writeback and
	 * modifications from write_begin, truncate and fallocate.
	 */
	struct rw_semaphore i_ext_sem;
	struct vexfs_mext *i_ext;	/* sorted by lblk; i_ext_inline or kvmalloc */
	u32 i_nr_ext;
	u32 i_ext_cap;
	u64 *i_chain;			/* extent block numbers, in chain order */
	u32 i_nr_chain;
	u32 i_chain_cap;
	u32 i_chain_linked;		/* chain blocks linked on disk */
	bool i_chain_dense;		/* chain packed 169 per block */
	struct vexfs_mext i_ext_inline[VEXFS_INLINE_EXTENTS];

	u32 i_vflags;			/* on-disk i_flags (VEXFS_INODE_FL_*) */
	/* xattr.c: the xattr block (0 = none), changed under i_xattr_sem */
	struct rw_semaphore i_xattr_sem;
	u64 i_xattr_blk;
	struct jbd2_inode i_jinode;	/* ordered data (journal.c) */
	tid_t i_sync_tid;		/* last transaction changing it */
	struct timespec64 i_crtime;
	struct vexfs_dindex *i_dindex;	/* big directories' lookup index (dir.c) */
	struct inode vfs_inode;
};

static inline struct vexfs_sb_info *VEXFS_SB(struct super_block *sb)
{
	return sb->s_fs_info;
}

static inline struct vexfs_inode_info *VEXFS_I(struct inode *inode)
{
	return container_of(inode, struct vexfs_inode_info, vfs_inode);
}

/*
 * Collection flag accessors (for the vector code). The flag is persisted in
 * the on-disk i_flags by write_inode; callers hold the inode lock and the
 * setter marks the inode dirty.
 */
static inline bool vexfs_inode_is_collection(struct inode *inode)
{
	return READ_ONCE(VEXFS_I(inode)->i_vflags) & VEXFS_INODE_FL_COLLECTION;
}

void vexfs_inode_set_collection(struct inode *inode, bool on);

/* sysfs.c: live-object counters read by leak checks */
extern atomic_long_t vexfs_nr_inodes;	/* in-memory vexfs inodes */
extern atomic_long_t vexfs_nr_mounts;	/* mounted superblocks */
extern atomic_long_t vexfs_nr_buffers;	/* buffer_head references held */
extern atomic_long_t vexfs_nr_extmaps;	/* heap extent/chain arrays */
int vexfs_sysfs_init(void);
void vexfs_sysfs_exit(void);
int vexfs_sysfs_register_sb(struct super_block *sb);
void vexfs_sysfs_unregister_sb(struct super_block *sb);

/* buffer.c: metadata reads and write errors. Every buffer_head reference
 * goes through vexfs_bread*()/vexfs_getblk()/vexfs_brelse() so the
 * "buffers" counter proves none is leaked.
 */
void vexfs_wb_err_init(struct super_block *sb);
int vexfs_wb_err_setup_bitmaps(struct super_block *sb);
void vexfs_wb_err_destroy(struct super_block *sb);
int __vexfs_check_wb_err(struct super_block *sb, const char *func);
#define vexfs_check_wb_err(sb) __vexfs_check_wb_err(sb, __func__)
void vexfs_note_lost_write(struct super_block *sb, struct buffer_head *bh);
struct buffer_head *vexfs_bread_meta(struct super_block *sb, u64 blk,
				     bool trust_disk);
void vexfs_mark_buffer_dirty(struct super_block *sb, struct buffer_head *bh);
void vexfs_note_changed(struct super_block *sb, struct buffer_head *bh);

/* Read metadata block @blk; NULL on error (the caller reports it). */
static inline struct buffer_head *vexfs_bread(struct super_block *sb, u64 blk)
{
	struct buffer_head *bh = vexfs_bread_meta(sb, blk, false);

	return IS_ERR(bh) ? NULL : bh;
}

static inline struct buffer_head *vexfs_getblk(struct super_block *sb, u64 blk)
{
	struct buffer_head *bh = sb_getblk(sb, blk);

	if (bh)
		atomic_long_inc(&vexfs_nr_buffers);
	return bh;
}

static inline void vexfs_brelse(struct buffer_head *bh)
{
	if (bh) {
		atomic_long_dec(&vexfs_nr_buffers);
		brelse(bh);
	}
}

/*
 * Verified bits: the checksum and structure of this metadata buffer were
 * checked, as one metadata type, since it was last read from disk. One bit
 * per type: a block cross-linked between two types (a crafted image, a stale
 * bitmap) that was checked or written as one type is checked again before it
 * is used as another. jbd2 owns the state bits from BH_PrivateStart on;
 * filesystems start at BH_JBDPrivateStart (as ext4).
 */
enum vexfs_meta_type {
	VEXFS_META_DIR,		/* directory block (dir.c) */
	VEXFS_META_EXTENT,	/* extent chain block (extent.c) */
	VEXFS_META_BITMAP,	/* inode or block bitmap block (alloc.c) */
	VEXFS_META_TYPES
};
enum { BH_VexfsVerified = BH_JBDPrivateStart };	/* + enum vexfs_meta_type */

static inline bool vexfs_verified(struct buffer_head *bh,
				  enum vexfs_meta_type t)
{
	return test_bit(BH_VexfsVerified + t, &bh->b_state);
}

/* Mark @bh checked as type @t, and as no other type. */
static inline void vexfs_set_verified(struct buffer_head *bh,
				      enum vexfs_meta_type t)
{
	unsigned int i;

	for (i = 0; i < VEXFS_META_TYPES; i++)
		if (i != t)
			clear_bit(BH_VexfsVerified + i, &bh->b_state);
	set_bit(BH_VexfsVerified + t, &bh->b_state);
}

static inline void vexfs_clear_verified(struct buffer_head *bh)
{
	unsigned int i;

	for (i = 0; i < VEXFS_META_TYPES; i++)
		clear_bit(BH_VexfsVerified + i, &bh->b_state);
}

/* journal.c: jbd2 handles and buffers; all no-ops without a journal */
#define VEXFS_DEFAULT_COMMIT_SECS 5
/* credits: one operation's worst case of metadata blocks changed */
#define VEXFS_CREDITS_INODE	1	/* one inode table block */
/* new blocks: bitmap block(s), up to 2 extent chain blocks, the inode */
#define VEXFS_CREDITS_ALLOC	5
/* a directory entry added: the entry block, or a new block + its alloc */
#define VEXFS_CREDITS_DIRENT	(1 + VEXFS_CREDITS_ALLOC)
/* revoke records one allocation may need (freed extent blocks) */
#define VEXFS_REVOKES_ALLOC	4
/* an xattr set: the xattr block, its allocation, the inode */
#define VEXFS_CREDITS_XATTR	(1 + VEXFS_CREDITS_ALLOC + VEXFS_CREDITS_INODE)
/*
 * a new inode: inode bitmap + its inode table block, and the xattr block
 * its inherited ACLs and security label may need
 */
#define VEXFS_CREDITS_NEWINODE	(2 + VEXFS_CREDITS_XATTR)
int vexfs_journal_load(struct super_block *sb, unsigned int commit_secs);
int vexfs_journal_destroy(struct super_block *sb);
int vexfs_journal_flush(struct super_block *sb);
void vexfs_journal_abort_policy(struct super_block *sb);
handle_t *vexfs_journal_start(struct super_block *sb, int credits, int revokes);
int vexfs_journal_stop(handle_t *handle);
int vexfs_journal_end(handle_t *handle, int err);
int vexfs_journal_get_write(struct super_block *sb, struct buffer_head *bh);
int vexfs_journal_get_create(struct super_block *sb, struct buffer_head *bh);
int vexfs_journal_dirty(struct super_block *sb, struct buffer_head *bh);
void vexfs_journal_forget(struct super_block *sb, u64 blk);
int vexfs_journal_ordered(struct inode *inode, loff_t pos, loff_t len);
void vexfs_journal_release_inode(struct inode *inode);
void vexfs_journal_note_inode(struct inode *inode);
int vexfs_journal_sync_inode(struct inode *inode);
int vexfs_journal_commit(struct super_block *sb, int wait);
void vexfs_pending_add(struct super_block *sb, u64 start, u64 count);
unsigned long vexfs_pending_skip(struct super_block *sb, u64 idx,
				 unsigned long bit, unsigned long lim);
bool vexfs_pending_test(struct super_block *sb, u64 idx, unsigned long bit);
bool vexfs_pending_any(struct super_block *sb);
/* credits to change the bitmaps for freeing or allocating @blocks blocks */
static inline int vexfs_bitmap_credits(struct super_block *sb, u64 nr_ext)
{
	return min_t(u64, VEXFS_SB(sb)->s_bbitmap_blocks, nr_ext + 1);
}

/* csum.c */
u32 vexfs_crc32c(const void *buf, size_t len);
u32 vexfs_csum_skip(const void *buf, size_t len, size_t csum_off);
bool vexfs_sb_csum_ok(const struct vexfs_super_block *vs);
void vexfs_sb_csum_set(struct vexfs_super_block *vs);
bool vexfs_inode_csum_ok(const struct vexfs_inode *raw);
void vexfs_inode_csum_set(struct vexfs_inode *raw);
bool vexfs_bitmap_csum_ok(const void *block);
void vexfs_bitmap_csum_set(void *block);
bool vexfs_extblk_csum_ok(const void *block);
void vexfs_extblk_csum_set(void *block);
bool vexfs_dirblk_csum_ok(const void *block);
void vexfs_dirblk_csum_set(void *block);

/* super.c */
__printf(3, 4) void vexfs_msg(struct super_block *sb, const char *level,
			      const char *fmt, ...);
__printf(3, 4) void __vexfs_error(struct super_block *sb, const char *func,
				  const char *fmt, ...);
#define vexfs_error(sb, fmt, ...) \
	__vexfs_error(sb, __func__, fmt, ##__VA_ARGS__)
int vexfs_write_super(struct super_block *sb, bool wait);
extern const struct fs_parameter_spec vexfs_fs_parameters[];
int vexfs_init_fs_context(struct fs_context *fc);
static inline bool vexfs_data_range_ok(struct vexfs_sb_info *sbi,
				       u64 start, u64 len)
{
	return len && start >= sbi->s_data_start &&
	       start < sbi->s_blocks_count &&
	       len <= sbi->s_blocks_count - start;
}

/* alloc.c */
int vexfs_new_blocks(struct super_block *sb, u64 goal, u32 want, u64 *start);
int vexfs_free_blocks(struct super_block *sb, u64 start, u64 count);
int vexfs_new_ino(struct super_block *sb, u32 goal, u32 *ino);
int vexfs_free_ino(struct super_block *sb, u32 ino);
void vexfs_forget_block(struct super_block *sb, u64 blk);
int vexfs_recount_free(struct super_block *sb);

/* extent.c */
int vexfs_ext_load(struct inode *inode, const struct vexfs_inode *raw);
void vexfs_ext_to_raw(struct inode *inode, struct vexfs_inode *raw);
void vexfs_ext_release(struct inode *inode);
int vexfs_ext_map(struct inode *inode, u64 lblk, u64 *pblk, u64 *len);
int vexfs_ext_alloc(struct inode *inode, u64 lblk, u32 want, u64 *pblk,
		    u32 *got);
int vexfs_ext_truncate(struct inode *inode, u64 first);
int vexfs_get_block(struct inode *inode, sector_t iblock,
		    struct buffer_head *bh, int create);

/* inode.c */
extern const struct address_space_operations vexfs_aops;
struct inode *vexfs_iget(struct super_block *sb, unsigned long ino);
struct inode *vexfs_new_inode(struct inode *dir, umode_t mode);
int vexfs_write_inode(struct inode *inode, struct writeback_control *wbc);
void vexfs_dirty_inode(struct inode *inode, int flags);
void vexfs_evict_inode(struct inode *inode);
int vexfs_setattr(vexfs_idmap_t *idmap, struct dentry *dentry,
		  struct iattr *attr);
int vexfs_getattr(vexfs_idmap_t *idmap, const struct path *path,
		  struct kstat *stat, u32 request_mask, unsigned int flags);
void vexfs_set_inode_ops(struct inode *inode);
int vexfs_truncate_blocks(struct inode *inode, loff_t size);
int vexfs_truncate_credits(struct inode *inode);
int vexfs_truncate_revokes(struct inode *inode);

/* dir.c */
extern const struct file_operations vexfs_dir_operations;
struct vexfs_dir_entry *vexfs_find_entry(struct inode *dir,
					 const struct qstr *name,
					 struct buffer_head **bhp);
struct vexfs_dir_entry *vexfs_dotdot(struct inode *dir,
				     struct buffer_head **bhp);
int vexfs_add_link(struct dentry *dentry, struct inode *inode);
int vexfs_delete_entry(struct inode *dir, struct vexfs_dir_entry *de,
		       struct buffer_head *bh);
int vexfs_set_link(struct inode *dir, struct vexfs_dir_entry *de,
		   struct buffer_head *bh, struct inode *inode);
int vexfs_set_dotdot(struct inode *dir, struct vexfs_dir_entry *de,
		     struct buffer_head *bh, struct inode *parent);
int vexfs_make_empty(struct inode *inode, struct inode *parent);
int vexfs_empty_dir(struct inode *inode);
void vexfs_dindex_free(struct inode *inode);
unsigned char vexfs_ft(umode_t mode);

/* namei.c */
extern const struct inode_operations vexfs_dir_inode_operations;
extern const struct inode_operations vexfs_special_inode_operations;
extern const struct inode_operations vexfs_symlink_inode_operations;

/* file.c */
extern const struct file_operations vexfs_file_operations;
extern const struct inode_operations vexfs_file_inode_operations;
int vexfs_fsync(struct file *file, loff_t start, loff_t end, int datasync);

/* ioctl.c (vector engineer) */
long vexfs_ioctl(struct file *filp, unsigned int cmd, unsigned long arg);

/* xattr.c */
extern const struct xattr_handler *vexfs_xattr_handlers[];
int vexfs_xattr_get(struct inode *inode, int index, const char *name,
		    void *buf, size_t size);
int vexfs_xattr_set(struct inode *inode, int index, const char *name,
		    const void *value, size_t size, int flags);
ssize_t vexfs_listxattr(struct dentry *dentry, char *buf, size_t size);
int vexfs_xattr_load(struct inode *inode, const struct vexfs_inode *raw);
void vexfs_xattr_to_raw(struct inode *inode, struct vexfs_inode *raw);
int vexfs_xattr_delete_inode(struct inode *inode);
int vexfs_init_security(struct inode *inode, struct inode *dir,
			const struct qstr *qstr);

/* acl.c */
struct posix_acl *vexfs_get_acl(struct inode *inode, int type, bool rcu);
int vexfs_set_acl(vexfs_idmap_t *idmap, vexfs_set_acl_arg_t *arg,
		  struct posix_acl *acl, int type);
int vexfs_init_acl(struct inode *inode, struct inode *dir);
int vexfs_init_new_inode(struct inode *inode, struct inode *dir,
			 const struct qstr *qstr);

/* flags.c: chattr flags, FIEMAP, O_TMPFILE */
void vexfs_set_inode_flags(struct inode *inode);
int vexfs_fileattr_get(struct dentry *dentry, struct fileattr *fa);
int vexfs_fileattr_set(vexfs_idmap_t *idmap, struct dentry *dentry,
		       struct fileattr *fa);
int vexfs_fiemap(struct inode *inode, struct fiemap_extent_info *fieinfo,
		 u64 start, u64 len);
int vexfs_tmpfile(vexfs_idmap_t *idmap, struct inode *dir, struct file *file,
		  umode_t mode);

/* export.c */
extern const struct export_operations vexfs_export_ops;

/* module.c */
extern struct kmem_cache *vexfs_inode_cachep;

#endif /* _VEXFS_H */
