/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vexfs_fs.h - VexFS on-disk format and ioctl ABI.
 *
 * This header is the single source of truth for everything that crosses the
 * kernel boundary: the on-disk layout (read by the kernel module, written by
 * mkfs.vexfs, checked by fsck.vexfs) and the ioctl ABI (used by the Python
 * client).  The Python mirror lives in vexfs/layout.py; tests/host compiles a
 * C program against this header and compares every sizeof/offsetof with it.
 *
 * All multi-byte on-disk fields are little endian.  Every struct has explicit
 * padding so that its size is the same on every ABI.
 *
 * Disk layout (block size 4096, block numbers are 64 bit):
 *
 *   block 0                       superblock (struct vexfs_super_block)
 *   [ibitmap_start, +ibitmap_blocks)  inode bitmap blocks
 *   [bbitmap_start, +bbitmap_blocks)  block bitmap blocks (one bit per block
 *                                     of the whole device, metadata included)
 *   [itable_start, +itable_blocks)    inode table (16 x 256-byte inodes/block)
 *   [journal_start, +journal_blocks)  jbd2 journal (only with
 *                                     VEXFS_FEATURE_COMPAT_HAS_JOURNAL)
 *   [data_start, blocks_count)        data: file/dir/symlink data, extent
 *                                     blocks, collection data
 *
 * Inode numbers start at 1 (VEXFS_ROOT_INO); inode 0 means "no inode" in a
 * directory entry. Inode N lives in slot N-1 of the inode table and bit N-1 of
 * the inode bitmap.
 */
#ifndef _UAPI_LINUX_VEXFS_FS_H
#define _UAPI_LINUX_VEXFS_FS_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define VEXFS_MAGIC		0x58455656U	/* "VVEX" read as LE bytes */
#define VEXFS_FORMAT_VERSION	1U
#define VEXFS_BLOCK_SIZE	4096U
#define VEXFS_BLOCK_BITS	12U
#define VEXFS_INODE_SIZE	256U
#define VEXFS_INODES_PER_BLOCK	(VEXFS_BLOCK_SIZE / VEXFS_INODE_SIZE)
#define VEXFS_ROOT_INO		1U
#define VEXFS_NAME_LEN		255U
#define VEXFS_LABEL_LEN		64U
#define VEXFS_MIN_BLOCKS	64U	/* 256 KiB: smallest device mkfs accepts */
#define VEXFS_MIN_JOURNAL_BLOCKS 1024U	/* jbd2's JBD2_MIN_JOURNAL_BLOCKS */

/*
 * Checksums: standard CRC-32C (Castagnoli; the value Python's crc32c.crc32c()
 * returns, i.e. ~__crc32c_le(~0, buf, len) in the kernel), computed over the
 * whole structure or block with its own checksum field set to zero.
 */

/* Superblock feature flags. Unknown INCOMPAT bits refuse the mount; unknown
 * RO_COMPAT bits refuse a read-write mount; unknown COMPAT bits are ignored.
 */
/*
 * HAS_JOURNAL: [s_journal_start, +s_journal_blocks) holds a jbd2 journal
 * (a jbd2 v2 superblock in its first block, big endian as jbd2 defines it).
 * It is COMPAT, as in ext4: a module without journal support may mount a
 * filesystem whose journal is empty, the region is just reserved metadata.
 * RECOVER: set on disk while a journaled filesystem is mounted read-write
 * (the journal may hold transactions to replay); cleared at a clean
 * unmount. INCOMPAT, so nothing that cannot replay a journal mounts it.
 */
#define VEXFS_FEATURE_COMPAT_HAS_JOURNAL 0x1U
#define VEXFS_FEATURE_COMPAT_SUPP	VEXFS_FEATURE_COMPAT_HAS_JOURNAL
#define VEXFS_FEATURE_INCOMPAT_EXTENTS	0x1U	/* always set in version 1 */
#define VEXFS_FEATURE_INCOMPAT_RECOVER	0x2U	/* journal needs recovery */
/*
 * XATTR: some inode may have an extended attribute block (i_xattr_lo/hi,
 * struct vexfs_xattr_header below). Set by the kernel (superblock written
 * synchronously) before the first xattr block is allocated, and by
 * mkfs.vexfs -d when it copies xattrs. INCOMPAT because a module without
 * xattr support would rewrite inodes without the block pointer: the
 * attributes (ACLs, security labels) would be lost and the block leaked.
 */
#define VEXFS_FEATURE_INCOMPAT_XATTR	0x4U
#define VEXFS_FEATURE_INCOMPAT_SUPP	(VEXFS_FEATURE_INCOMPAT_EXTENTS | \
					 VEXFS_FEATURE_INCOMPAT_RECOVER | \
					 VEXFS_FEATURE_INCOMPAT_XATTR)
#define VEXFS_FEATURE_RO_COMPAT_COLLECTIONS 0x1U /* vector collections */
/* some collection has an ANN index (VEXFS_COLL_FL_INDEX, see below) */
#define VEXFS_FEATURE_RO_COMPAT_ANN_INDEX 0x4U
#define VEXFS_FEATURE_RO_COMPAT_SUPP	(VEXFS_FEATURE_RO_COMPAT_COLLECTIONS | \
					 VEXFS_FEATURE_RO_COMPAT_ANN_INDEX)

/* s_state */
#define VEXFS_STATE_CLEAN	0x0001U	/* cleanly unmounted */
#define VEXFS_STATE_ERROR	0x0002U	/* errors detected; run fsck.vexfs */

struct vexfs_super_block {
	__le32	s_magic;		/* VEXFS_MAGIC */
	__le32	s_version;		/* VEXFS_FORMAT_VERSION */
	__le32	s_feature_compat;
	__le32	s_feature_incompat;
	__le32	s_feature_ro_compat;
	__le32	s_block_size;		/* VEXFS_BLOCK_SIZE */
	__le64	s_blocks_count;		/* total blocks, device size / 4096 */
	__le64	s_free_blocks;
	__le32	s_inodes_count;		/* inode table slots */
	__le32	s_free_inodes;
	__le64	s_ibitmap_start;
	__le64	s_bbitmap_start;
	__le64	s_itable_start;
	__le64	s_data_start;		/* first block not used by metadata */
	__le32	s_ibitmap_blocks;
	__le32	s_bbitmap_blocks;
	__le32	s_itable_blocks;
	__le32	s_root_ino;		/* VEXFS_ROOT_INO */
	__le16	s_state;		/* VEXFS_STATE_* */
	__le16	s_inode_size;		/* VEXFS_INODE_SIZE */
	__le32	s_mount_count;
	__le64	s_mkfs_time;		/* seconds since the epoch */
	__le64	s_mount_time;
	__le64	s_write_time;
	__u8	s_uuid[16];
	__u8	s_label[VEXFS_LABEL_LEN];	/* NUL padded, not terminated */
	__le64	s_journal_start;	/* first journal block, 0 = no journal */
	__le32	s_journal_blocks;	/* journal length in blocks */
	__le32	s_reserved[8];
	__le32	s_checksum;		/* CRC-32C of this struct */
};					/* 256 bytes; rest of block 0 is zero */

/*
 * Bitmap blocks: a 16-byte header, then 4080 bytes of bits (bit i of byte j
 * covers item j*8+i of this block's range). Bitmap block b covers items
 * [b*VEXFS_BITS_PER_BITMAP, (b+1)*VEXFS_BITS_PER_BITMAP). Bits past the last
 * item (blocks_count or inodes_count) are set to 1 so they are never handed
 * out.
 */
#define VEXFS_BITMAP_MAGIC	0x504d4256U	/* "VBMP" */
struct vexfs_bitmap_header {
	__le32	bh_magic;		/* VEXFS_BITMAP_MAGIC */
	__le32	bh_checksum;		/* CRC-32C of the whole 4096-byte block */
	__le64	bh_index;		/* b: which bitmap block of its bitmap */
};
#define VEXFS_BITMAP_BYTES	(VEXFS_BLOCK_SIZE - 16U)
#define VEXFS_BITS_PER_BITMAP	(VEXFS_BITMAP_BYTES * 8U)	/* 32640 */

/*
 * Extents map file block ranges to disk block ranges. An inode holds
 * VEXFS_INLINE_EXTENTS extents; when it needs more, i_extent_block points to
 * the first of a chain of extent blocks. Extents are sorted by ee_logical and
 * never overlap, in the inode and across the chain; holes (sparse files) are
 * simply unmapped ranges. ee_len == 0 marks an unused slot; used slots come
 * first.
 */
struct vexfs_extent {
	__le64	ee_logical;		/* first file block */
	__le64	ee_start;		/* first disk block */
	__le32	ee_len;			/* number of blocks, >= 1 */
	__le32	ee_reserved;
};					/* 24 bytes */

#define VEXFS_INLINE_EXTENTS	6U

#define VEXFS_EXTENT_BLOCK_MAGIC 0x54584556U	/* "VEXT" */
struct vexfs_extent_block_header {
	__le32	eb_magic;		/* VEXFS_EXTENT_BLOCK_MAGIC */
	__le32	eb_checksum;		/* CRC-32C of the whole 4096-byte block */
	__le64	eb_next;		/* next extent block, 0 = end of chain */
	__le32	eb_count;		/* used extents in this block */
	__le32	eb_ino;			/* owning inode, for fsck */
	__le64	eb_reserved;
};					/* 32 bytes, then the extents */
#define VEXFS_EXTENTS_PER_BLOCK \
	((VEXFS_BLOCK_SIZE - 32U) / 24U)	/* 169 */

/* i_flags */
#define VEXFS_INODE_FL_COLLECTION	0x00000001U /* vector collection file */
/*
 * chattr flags (FS_IOC_GETFLAGS/SETFLAGS), with the values of the FS_*_FL
 * flags of <linux/fs.h> so they pass through unchanged.
 */
#define VEXFS_INODE_FL_SYNC		0x00000008U /* chattr +S: sync writes */
#define VEXFS_INODE_FL_IMMUTABLE	0x00000010U /* chattr +i */
#define VEXFS_INODE_FL_APPEND		0x00000020U /* chattr +a */
#define VEXFS_INODE_FL_NODUMP		0x00000040U /* chattr +d */
#define VEXFS_INODE_FL_NOATIME		0x00000080U /* chattr +A */
#define VEXFS_INODE_FL_USER		(VEXFS_INODE_FL_SYNC | \
					 VEXFS_INODE_FL_IMMUTABLE | \
					 VEXFS_INODE_FL_APPEND | \
					 VEXFS_INODE_FL_NODUMP | \
					 VEXFS_INODE_FL_NOATIME)
#define VEXFS_INODE_FL_ALL		(VEXFS_INODE_FL_COLLECTION | \
					 VEXFS_INODE_FL_USER)

struct vexfs_inode {
	__le16	i_mode;			/* S_IF* | permission bits; 0 = free */
	__le16	i_links_count;
	__le32	i_uid;
	__le32	i_gid;
	__le32	i_flags;		/* VEXFS_INODE_FL_* */
	__le64	i_size;			/* bytes */
	__le64	i_blocks;		/* 4 KiB blocks allocated, extent blocks
					 * included
					 */
	__le64	i_atime;		/* seconds since the epoch (signed) */
	__le64	i_mtime;
	__le64	i_ctime;
	__le64	i_crtime;
	__le32	i_atime_nsec;
	__le32	i_mtime_nsec;
	__le32	i_ctime_nsec;
	__le32	i_crtime_nsec;
	__le32	i_generation;
	__le32	i_nr_extents;		/* used inline extents, 0..6 */
	__le64	i_extent_block;		/* first extent block, 0 = none */
	__le32	i_rdev;			/* device number for char/block nodes
					 * (new_encode_dev format)
					 */
	__le32	i_xattr_lo;		/* xattr block, low 32 bits (was
					 * i_reserved0, 0 = no xattr block)
					 */
	struct vexfs_extent i_extents[VEXFS_INLINE_EXTENTS];	/* 144 bytes */
	__le32	i_xattr_hi;		/* xattr block, high 32 bits (was
					 * i_reserved)
					 */
	__le32	i_checksum;		/* CRC-32C of this 256-byte inode */
};					/* 256 bytes */

/*
 * Directory blocks: entries in the style of ext2, each 4-byte aligned, whose
 * rec_len chain covers bytes [0, VEXFS_DIR_DATA_BYTES) of the block exactly;
 * an entry with inode 0 is free space. The last 8 bytes are a tail holding
 * the block's checksum. The first block of every directory starts with "."
 * and "..". i_size of a directory is a multiple of VEXFS_BLOCK_SIZE.
 */
struct vexfs_dir_entry {
	__le32	d_inode;		/* 0 = unused */
	__le16	d_rec_len;		/* bytes to the next entry */
	__u8	d_name_len;
	__u8	d_file_type;		/* VEXFS_FT_* */
	char	d_name[];		/* not NUL terminated */
};
#define VEXFS_DIR_ENTRY_HEADER	8U
#define VEXFS_DIR_REC_LEN(name_len) \
	((VEXFS_DIR_ENTRY_HEADER + (name_len) + 3U) & ~3U)

#define VEXFS_DIR_TAIL_MAGIC	0x52494456U	/* "VDIR" */
struct vexfs_dir_tail {
	__le32	dt_magic;		/* VEXFS_DIR_TAIL_MAGIC */
	__le32	dt_checksum;		/* CRC-32C of the whole 4096-byte block */
};
#define VEXFS_DIR_DATA_BYTES	(VEXFS_BLOCK_SIZE - 8U)

enum {
	VEXFS_FT_UNKNOWN = 0,
	VEXFS_FT_REG_FILE = 1,
	VEXFS_FT_DIR = 2,
	VEXFS_FT_CHRDEV = 3,
	VEXFS_FT_BLKDEV = 4,
	VEXFS_FT_FIFO = 5,
	VEXFS_FT_SOCK = 6,
	VEXFS_FT_SYMLINK = 7,
};

/*
 * Extended attributes (VEXFS_FEATURE_INCOMPAT_XATTR). An inode has at most
 * one xattr block, (u64)i_xattr_hi << 32 | i_xattr_lo (0 = none), in the data
 * area, owned by that inode alone (never shared) and counted in its
 * i_blocks. The block: struct vexfs_xattr_header, then xh_count entries
 * packed from byte 32, each a struct vexfs_xattr_entry, e_name_len bytes of
 * name (without its prefix, not NUL terminated), e_value_size bytes of
 * value, zero padding to VEXFS_XATTR_REC_LEN(); the rest of the block is
 * zero. xh_used = 32 + the sum of the entries' lengths. (e_name_index,
 * name) is unique in a block. So all of an inode's xattrs (names, values
 * and 4 bytes + padding each) share VEXFS_XATTR_SPACE = 4064 bytes; a set
 * that does not fit gets ENOSPC.
 *
 * Name indexes (as ext2/ext4): user.* 1, system.posix_acl_access 2 and
 * system.posix_acl_default 3 (empty name), trusted.* 4, security.* 6.
 * POSIX ACL values are stored in the Linux xattr form (a 4-byte header of
 * version 2, then entries {__le16 tag, __le16 perm, __le32 id}, ids as seen
 * in the initial user namespace).
 */
#define VEXFS_XATTR_MAGIC	0x54415856U	/* "VXAT" */
#define VEXFS_XATTR_INDEX_USER		1U
#define VEXFS_XATTR_INDEX_ACL_ACCESS	2U
#define VEXFS_XATTR_INDEX_ACL_DEFAULT	3U
#define VEXFS_XATTR_INDEX_TRUSTED	4U
#define VEXFS_XATTR_INDEX_SECURITY	6U

struct vexfs_xattr_header {
	__le32	xh_magic;		/* VEXFS_XATTR_MAGIC */
	__le32	xh_checksum;		/* CRC-32C of the whole 4096-byte block */
	__le32	xh_ino;			/* owning inode */
	__le16	xh_count;		/* entries */
	__le16	xh_used;		/* bytes used, this header included */
	__le64	xh_reserved[2];		/* 0 */
};					/* 32 bytes, then the entries */

struct vexfs_xattr_entry {
	__u8	e_name_index;		/* VEXFS_XATTR_INDEX_* */
	__u8	e_name_len;		/* >= 1, except 0 for the ACL indexes */
	__le16	e_value_size;		/* bytes of value */
	char	e_name[];		/* name, then the value */
};					/* 4 bytes */
#define VEXFS_XATTR_HEADER	32U
#define VEXFS_XATTR_ENTRY_HEADER 4U
#define VEXFS_XATTR_REC_LEN(name_len, value_size) \
	((VEXFS_XATTR_ENTRY_HEADER + (name_len) + (value_size) + 3U) & ~3U)
#define VEXFS_XATTR_SPACE	(VEXFS_BLOCK_SIZE - VEXFS_XATTR_HEADER)	/* 4064 */

/*
 * Symlinks: the target (without NUL) is the file's data, i_size bytes, in
 * the data blocks mapped by its extents, like a regular file.
 */

/*
 * Vector collections. A collection is a regular file with
 * VEXFS_INODE_FL_COLLECTION set. Its data, read through the page cache like
 * any file:
 *
 *   bytes [0, 4096)         struct vexfs_collection_header (rest zero)
 *   bytes [4096, ...)       c_count records of c_record_size bytes, dense
 *                           (deleting a record moves the last one into its
 *                           place), each: struct vexfs_vector_record then
 *                           c_dim float32 values (IEEE 754, little endian),
 *                           zero padding up to c_record_size.
 *
 * c_record_size = 16 + 4 * round_up(c_dim, 4), so every vector is 16-byte
 * aligned within the file. i_size = 4096 + c_count * c_record_size.
 */
#define VEXFS_COLLECTION_MAGIC	0x4c434556U	/* "VECL" */
#define VEXFS_COLLECTION_VERSION 1U
#define VEXFS_DATA_OFFSET	4096U
#define VEXFS_MAX_DIM		4096U

enum vexfs_metric {
	VEXFS_METRIC_L2 = 0,		/* squared euclidean distance */
	VEXFS_METRIC_COSINE = 1,	/* 1 - cos(a, b) */
	VEXFS_METRIC_IP = 2,		/* -dot(a, b): smaller is closer */
};

struct vexfs_collection_header {
	__le32	c_magic;		/* VEXFS_COLLECTION_MAGIC */
	__le32	c_version;		/* VEXFS_COLLECTION_VERSION */
	__le32	c_dim;			/* 1..VEXFS_MAX_DIM */
	__le32	c_metric;		/* enum vexfs_metric */
	__le64	c_count;		/* live records */
	__le32	c_record_size;		/* bytes per record */
	__le32	c_flags;		/* VEXFS_COLL_FL_* */
	__le64	c_reserved[4];
	__le32	c_reserved2;
	__le32	c_checksum;		/* CRC-32C of this 72-byte struct */
};

struct vexfs_vector_record {
	__le64	r_id;			/* caller's id, unique per collection */
	__le32	r_flags;		/* reserved, 0 */
	__le32	r_reserved;
};					/* 16 bytes, then the floats */

/*
 * ioctl ABI: see the "ioctl ABI" section below, and docs/vector-api.md.
 */
#define VEXFS_IOC_MAGIC		'V'

/*
 * ---- ioctl ABI (vector collections) ----
 *
 * Every struct below has explicit padding and only fixed-size types; user
 * pointers are __u64. Fields marked "in" are read, fields marked "out" are
 * written back (with the whole struct: reserved fields come back zero).
 * Reserved and flags fields that are not defined here must be zero (else
 * EINVAL). A count of 0 is a valid no-op.
 *
 * Pointers must be naturally aligned (ids: 8 bytes, floats: 4 bytes, found
 * flags: 1 byte), else EINVAL; unreadable or unwritable memory gives EFAULT.
 * Vectors are float32, row-major, packed: dim floats per vector. Non-finite
 * values (NaN, +-Inf) in vectors or queries are rejected with EINVAL.
 */
#define VEXFS_MAX_K		1024U		/* search: 1 <= k <= this */
#define VEXFS_MAX_NQ		65536U		/* search: queries per call */
#define VEXFS_MAX_BATCH		65536U		/* insert/get/delete ids per call */
#define VEXFS_NO_ID		0xffffffffffffffffULL	/* search padding id */

/* VEXFS_IOC_CREATE: turn an empty regular file into a collection. */
struct vexfs_ioc_create {
	__u32	dim;			/* in: 1..VEXFS_MAX_DIM */
	__u32	metric;			/* in: enum vexfs_metric */
	__u32	flags;			/* in: 0 */
	__u32	reserved;		/* in: 0 */
};					/* 16 bytes */

/* VEXFS_IOC_INSERT flags */
#define VEXFS_INSERT_UPSERT	0x1U	/* overwrite existing ids */
#define VEXFS_INSERT_FLAGS	VEXFS_INSERT_UPSERT

struct vexfs_ioc_insert {
	__u64	ids_ptr;		/* in: const __u64 ids[count] */
	__u64	vectors_ptr;		/* in: const float vectors[count][dim] */
	__u32	count;			/* in: 0..VEXFS_MAX_BATCH */
	__u32	flags;			/* in: VEXFS_INSERT_* */
	__u64	added;			/* out: records appended */
	__u64	updated;		/* out: records overwritten (upsert) */
};					/* 40 bytes */

struct vexfs_ioc_get {
	__u64	ids_ptr;		/* in: const __u64 ids[count] */
	__u64	vectors_ptr;		/* out: float vectors[count][dim] */
	__u64	found_ptr;		/* out: __u8 found[count], or 0 */
	__u32	count;			/* in: 0..VEXFS_MAX_BATCH */
	__u32	flags;			/* in: 0 */
	__u64	nfound;			/* out: ids found */
};					/* 40 bytes */

struct vexfs_ioc_delete {
	__u64	ids_ptr;		/* in: const __u64 ids[count] */
	__u32	count;			/* in: 0..VEXFS_MAX_BATCH */
	__u32	flags;			/* in: 0 */
	__u64	deleted;		/* out: records removed */
};					/* 24 bytes */

struct vexfs_ioc_search {
	__u64	queries_ptr;		/* in: const float queries[nq][dim] */
	__u64	distances_ptr;		/* out: float distances[nq][k] */
	__u64	ids_ptr;		/* out: __u64 ids[nq][k] */
	__u32	nq;			/* in: 0..VEXFS_MAX_NQ */
	__u32	k;			/* in: 1..VEXFS_MAX_K */
	__u32	flags;			/* in: 0 */
	__u32	reserved;		/* in: 0 */
};					/* 40 bytes */

/* vexfs_ioc_stats.simd: the distance code searches use right now */
#define VEXFS_SIMD_SCALAR	0U
#define VEXFS_SIMD_SSE2		1U
#define VEXFS_SIMD_AVX2		2U

struct vexfs_ioc_stats {
	__u64	count;			/* out: live records */
	__u64	bytes;			/* out: i_size */
	__u64	blocks;			/* out: 4 KiB blocks allocated */
	__u32	dim;			/* out */
	__u32	metric;			/* out */
	__u32	record_size;		/* out */
	__u32	simd;			/* out: VEXFS_SIMD_* */
	__u64	reserved[2];		/* out: 0 */
};					/* 56 bytes */

#define VEXFS_IOC_CREATE _IOW(VEXFS_IOC_MAGIC, 1, struct vexfs_ioc_create)
#define VEXFS_IOC_INSERT _IOWR(VEXFS_IOC_MAGIC, 2, struct vexfs_ioc_insert)
#define VEXFS_IOC_GET	 _IOWR(VEXFS_IOC_MAGIC, 3, struct vexfs_ioc_get)
#define VEXFS_IOC_DELETE _IOWR(VEXFS_IOC_MAGIC, 4, struct vexfs_ioc_delete)
#define VEXFS_IOC_SEARCH _IOW(VEXFS_IOC_MAGIC, 5, struct vexfs_ioc_search)
#define VEXFS_IOC_STATS	 _IOR(VEXFS_IOC_MAGIC, 6, struct vexfs_ioc_stats)

/*
 * ---- ANN index of a collection (IVF, VEXFS_COLL_FL_INDEX) ----
 *
 * A collection whose header has VEXFS_COLL_FL_INDEX in c_flags carries an
 * inverted-file index in the same file, in a region that starts at the fixed
 * byte offset VEXFS_INDEX_BASE (the file is sparse in between: records may
 * grow up to that offset, else EFBIG):
 *
 *   INDEX_BASE + 0              struct vexfs_index_header (rest of block 0)
 *   INDEX_BASE + ASSIGN_OFF     __le32 assign[slot]: the list of the record
 *                               in that slot, as list + 1; 0 = pending (not
 *                               yet assigned; searched exactly with every
 *                               query). Entries >= c_count are 0. Holes read
 *                               as zero, i.e. pending.
 *   INDEX_BASE + CENT_OFF       x_nlist centroids, rows of round_up(dim, 4)
 *                               float32 (zero padded), list l at row l.
 *
 * i_size = INDEX_BASE + CENT_OFF + x_nlist * 4 * round_up(dim, 4).
 * The index is advisory: search results always come from the records
 * themselves (ids and distances read from the record slots), so a stale or
 * damaged assignment can only cost recall, never return a deleted id or a
 * wrong distance. Out-of-range assign values or a bad header give EUCLEAN.
 */
#define VEXFS_COLL_FL_INDEX	0x1U
#define VEXFS_COLL_FLAGS	VEXFS_COLL_FL_INDEX

#define VEXFS_INDEX_BASE	(1ULL << 40)	/* byte offset in the file */
#define VEXFS_INDEX_ASSIGN_OFF	4096ULL
#define VEXFS_INDEX_CENT_OFF	(1ULL << 35)	/* room for 2^33 assign entries */
#define VEXFS_INDEX_MAGIC	0x46564956U	/* "VIVF" */
#define VEXFS_INDEX_VERSION	1U
#define VEXFS_INDEX_MAX_NLIST	16384U
#define VEXFS_INDEX_KIND_IVF	1U

struct vexfs_index_header {
	__le32	x_magic;		/* VEXFS_INDEX_MAGIC */
	__le32	x_version;		/* VEXFS_INDEX_VERSION */
	__le32	x_kind;			/* VEXFS_INDEX_KIND_IVF */
	__le32	x_nlist;		/* 1..VEXFS_INDEX_MAX_NLIST */
	__le32	x_dim;			/* == c_dim */
	__le32	x_metric;		/* == c_metric */
	__le32	x_nprobe;		/* default nprobe, 1..x_nlist */
	__le32	x_flags;		/* 0 */
	__le64	x_alloc;		/* assign entries [0, x_alloc) have blocks */
	__le64	x_reserved[2];
	__le32	x_reserved2;
	__le32	x_checksum;		/* CRC-32C of this 64-byte struct */
};					/* 64 bytes */

/* VEXFS_IOC_INDEX_BUILD: install centroids (every record becomes pending) */
struct vexfs_ioc_index_build {
	__u64	centroids_ptr;		/* in: const float centroids[nlist][dim] */
	__u32	nlist;			/* in: 1..VEXFS_INDEX_MAX_NLIST */
	__u32	nprobe;			/* in: default nprobe, 1..nlist */
	__u32	flags;			/* in: 0 */
	__u32	reserved;		/* in: 0 */
};					/* 24 bytes */

/* VEXFS_IOC_INDEX_ASSIGN: put records (by id) on lists */
struct vexfs_ioc_index_assign {
	__u64	ids_ptr;		/* in: const __u64 ids[count] */
	__u64	lists_ptr;		/* in: const __u32 lists[count], < nlist */
	__u32	count;			/* in: 0..VEXFS_MAX_BATCH */
	__u32	flags;			/* in: 0 */
	__u64	assigned;		/* out: ids found and assigned */
};					/* 32 bytes */

/* VEXFS_IOC_INDEX_SEARCH: approximate top-k, nprobe lists + pending */
struct vexfs_ioc_index_search {
	__u64	queries_ptr;		/* in: const float queries[nq][dim] */
	__u64	distances_ptr;		/* out: float distances[nq][k] */
	__u64	ids_ptr;		/* out: __u64 ids[nq][k] */
	__u32	nq;			/* in: 0..VEXFS_MAX_NQ */
	__u32	k;			/* in: 1..VEXFS_MAX_K */
	__u32	nprobe;			/* in: 0 = the index's default */
	__u32	flags;			/* in: 0 */
	__u64	scanned;		/* out: records whose distance was taken */
};					/* 48 bytes */

struct vexfs_ioc_index_stats {
	__u64	count;			/* out: live records */
	__u64	indexed;		/* out: records on a list */
	__u64	pending;		/* out: records not on a list */
	__u64	index_bytes;		/* out: bytes of index blocks allocated */
	__u32	nlist;			/* out: 0 = no index */
	__u32	nprobe;			/* out: default nprobe */
	__u32	kind;			/* out: VEXFS_INDEX_KIND_* or 0 */
	__u32	reserved;		/* out: 0 */
};					/* 48 bytes */

#define VEXFS_IOC_INDEX_BUILD  _IOW(VEXFS_IOC_MAGIC, 8, struct vexfs_ioc_index_build)
#define VEXFS_IOC_INDEX_ASSIGN _IOWR(VEXFS_IOC_MAGIC, 9, struct vexfs_ioc_index_assign)
#define VEXFS_IOC_INDEX_SEARCH _IOWR(VEXFS_IOC_MAGIC, 10, struct vexfs_ioc_index_search)
#define VEXFS_IOC_INDEX_STATS  _IOR(VEXFS_IOC_MAGIC, 11, struct vexfs_ioc_index_stats)
#define VEXFS_IOC_INDEX_DROP   _IO(VEXFS_IOC_MAGIC, 12)

#endif /* _UAPI_LINUX_VEXFS_FS_H */
