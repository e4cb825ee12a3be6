// SPDX-License-Identifier: GPL-2.0
/*
 * VexFS vector collections: storage of records in the file's
 * data (through the page cache), batch insert/upsert/get/delete, exact top-k
 * search (the choice of distance kernel is in vec_select.c).
 *
 * Layout (kernel/uapi/vexfs_fs.h): header in bytes [0, 4096), then c_count
 * dense records of c_record_size bytes. All functions here are called from
 * ioctl.c, which checked the argument ranges and holds no lock; the locking
 * (i_rwsem: exclusive for mutations, shared for reads) is taken here.
 *
 * No float arithmetic in this file: vectors are moved as bytes and checked
 * for NaN/Inf by their bit patterns; distances come back from vec_math_*.c
 * as u32 keys whose integer order is the float order (vector.h), so top-k
 * selection below is plain integer code.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/backing-dev.h>
#include <linux/crc32.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/ktime.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/overflow.h>
#include <linux/pagemap.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <linux/writeback.h>

#include "vexfs.h"
#include "vector.h"

/* ---- collection header and record I/O ---- */

#define HDR_SIZE	sizeof(struct vexfs_collection_header)
#define REC_HDR		sizeof(struct vexfs_vector_record)
#define IO_CHUNK	(256U * 1024U)	/* bytes of records per kernel buffer */
#define FPU_WORK	(1U << 20)	/* multiply-adds per FPU section */

struct coll {
	u32 dim;
	u32 dim4;
	u32 metric;
	u32 rs;			/* record size */
	u32 flags;		/* c_flags: VEXFS_COLL_FL_* */
	u64 count;
};

static u32 coll_rec_size(u32 dim)
{
	return REC_HDR + 4 * round_up(dim, 4);
}

static loff_t rec_pos(const struct coll *c, u64 slot)
{
	return VEXFS_DATA_OFFSET + (loff_t)slot * c->rs;
}

static u32 hdr_csum(struct vexfs_collection_header *h)
{
	__le32 saved = h->c_checksum;
	u32 crc;

	h->c_checksum = 0;
	crc = ~__crc32c_le(~0U, (const u8 *)h, HDR_SIZE);
	h->c_checksum = saved;
	return crc;
}

/* Copy len bytes at pos of the file's data into buf, via the page cache. */
static int coll_read(struct inode *inode, loff_t pos, void *buf, size_t len)
{
	char *dst = buf;

	while (len) {
		pgoff_t index = pos >> PAGE_SHIFT;
		size_t off = offset_in_page(pos);
		size_t n = min_t(size_t, len, PAGE_SIZE - off);
		struct page *page;

		page = read_mapping_page(inode->i_mapping, index, NULL);
		if (IS_ERR(page))
			return PTR_ERR(page);
		memcpy_from_page(dst, page, off, n);
		put_page(page);
		dst += n;
		pos += n;
		len -= n;
	}
	return 0;
}

/*
 * write(2)'s rules for a vector ioctl that changes the file, checked once
 * under the inode lock before anything is written (the per-write limits are
 * in coll_write(), the completion in ioctl.c's end_write()):
 *  - the LSMs (and IMA) see a write: rw_verify_area() ->
 *    security_file_permission(MAY_WRITE);
 *  - S_ISUID/S_ISGID are dropped as on write(2) (file_remove_privs);
 *  - O_APPEND: a collection only grows at its end (new records, then the
 *    header's count, which commits them), so INSERT of new ids and CREATE
 *    are allowed on an O_APPEND descriptor; @overwrite operations (UPSERT,
 *    which rewrites existing records in place, and DELETE, which moves the
 *    last record into the hole) are not: EPERM.
 */
static int coll_write_begin(struct file *filp, bool overwrite)
{
	loff_t pos = 0;
	int err;

	if (overwrite && (filp->f_flags & O_APPEND))
		return -EPERM;
	err = rw_verify_area(WRITE, filp, &pos, VEXFS_DATA_OFFSET);
	if (err)
		return err;
	return file_remove_privs(filp);
}

/*
 * Write len bytes of buf at pos through the filesystem's own buffered write
 * path (write_begin/write_end allocate blocks and extend i_size). The caller
 * holds the inode lock and mnt_want_write_file(), and passed
 * coll_write_begin(). generic_write_checks() applies RLIMIT_FSIZE (SIGXFSZ,
 * EFBIG) and s_maxbytes as for write(2); O_APPEND does not move @pos (see
 * coll_write_begin). A short write is an error: EINTR when a fatal signal
 * cut it, else ENOSPC (EDQUOT...); the caller undoes what it appended.
 */
static int coll_write(struct file *filp, loff_t pos, const void *buf,
		      size_t len)
{
	struct inode *inode = file_inode(filp);
	struct kvec kv = { .iov_base = (void *)buf, .iov_len = len };
	struct iov_iter iter;
	struct kiocb kiocb;
	ssize_t ret;

	init_sync_kiocb(&kiocb, filp);
	kiocb.ki_flags &= ~IOCB_APPEND;
	kiocb.ki_pos = pos;
	iov_iter_kvec(&iter, WRITE, &kv, 1, len);
	ret = generic_write_checks(&kiocb, &iter);
	if (ret < 0)
		return ret;
	if (iov_iter_count(&iter) != len)
		return -EFBIG;
	vexfs_set_writer_bdi(inode_to_bdi(inode));
	ret = generic_perform_write(&kiocb, &iter);
	vexfs_set_writer_bdi(NULL);
	if (ret < 0)
		return ret;
	if (ret != len)
		return fatal_signal_pending(current) ? -EINTR : -ENOSPC;
	return 0;
}

/* Are all blocks of bytes [pos, pos + len) of @inode allocated? */
static bool coll_range_mapped(struct inode *inode, loff_t pos, size_t len)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	u64 lblk = pos >> VEXFS_BLOCK_BITS;
	u64 end = DIV_ROUND_UP_ULL((u64)pos + len, VEXFS_BLOCK_SIZE);
	bool ok = true;

	down_read(&ei->i_ext_sem);
	while (ok && lblk < end) {
		u64 pblk, n;

		ok = vexfs_ext_map(inode, lblk, &pblk, &n) == 1;
		lblk += n;
	}
	up_read(&ei->i_ext_sem);
	return ok;
}

/* pages one record (16 + 4 * 4096 bytes) can touch at any alignment */
#define OVERWRITE_PAGES	(DIV_ROUND_UP(REC_HDR + 4 * VEXFS_MAX_DIM, PAGE_SIZE) + 1)

/*
 * Overwrite len bytes at pos inside i_size (the header, existing records):
 * straight into the page cache, as a write fault does; the blocks exist,
 * nothing is allocated. Every page is read first and only then is anything
 * changed, and the copy cannot fail: a record move or a header update is
 * whole or not done. (generic_perform_write() stops between pages when a
 * fatal signal is pending, so a SIGKILL in the middle of DELETE left half a
 * record, or moved records under an old count: duplicate ids.) The caller
 * holds the inode lock exclusively and passed coll_write_begin().
 */
static int coll_overwrite(struct file *filp, loff_t pos, const void *buf,
			  size_t len)
{
	struct inode *inode = file_inode(filp);
	struct address_space *mapping = inode->i_mapping;
	struct page *pages[OVERWRITE_PAGES];
	pgoff_t first = pos >> PAGE_SHIFT;
	unsigned int n = DIV_ROUND_UP(offset_in_page(pos) + len, PAGE_SIZE);
	const char *src = buf;
	unsigned int i;

	if (!len)
		return 0;
	if (n > OVERWRITE_PAGES || pos + (loff_t)len > i_size_read(inode))
		return -EINVAL;
	/* a hole would be allocated at writeback, past every check: refuse */
	if (!coll_range_mapped(inode, pos, len)) {
		pr_warn_ratelimited("inode %lu: hole inside a collection's records or header\n",
				    inode->i_ino);
		return -EUCLEAN;
	}
	for (i = 0; i < n; i++) {
		pages[i] = read_mapping_page(mapping, first + i, NULL);
		if (IS_ERR(pages[i])) {
			int err = PTR_ERR(pages[i]);

			while (i--)
				put_page(pages[i]);
			return err;
		}
	}
	for (i = 0; i < n; i++) {
		size_t off = i ? 0 : offset_in_page(pos);
		size_t m = min_t(size_t, len, PAGE_SIZE - off);

		lock_page(pages[i]);
		folio_wait_stable(page_folio(pages[i]));
		memcpy_to_page(pages[i], off, src, m);
		set_page_dirty(pages[i]);
		unlock_page(pages[i]);
		put_page(pages[i]);
		src += m;
		len -= m;
	}
	balance_dirty_pages_ratelimited(mapping);
	return 0;
}

/* Shrink (or restore) the file to size bytes, freeing blocks past it. */
static int coll_truncate(struct file *filp, loff_t size)
{
	struct iattr ia = {
		.ia_valid = ATTR_SIZE | ATTR_MTIME | ATTR_CTIME,
		.ia_size = size,
	};

	return notify_change(vexfs_file_idmap(filp), filp->f_path.dentry, &ia,
			     NULL);
}

/*
 * Read and check the header. -ENOTTY: not a collection; -EUCLEAN: the flag
 * is set but the header or the file size is inconsistent.
 */
static int coll_load(struct inode *inode, struct coll *c)
{
	struct vexfs_collection_header h;
	u64 need;
	int err;

	if (!S_ISREG(inode->i_mode) || !vexfs_inode_is_collection(inode))
		return -ENOTTY;
	if (i_size_read(inode) < VEXFS_DATA_OFFSET)
		goto corrupt;
	err = coll_read(inode, 0, &h, sizeof(h));
	if (err)
		return err;
	if (le32_to_cpu(h.c_magic) != VEXFS_COLLECTION_MAGIC ||
	    le32_to_cpu(h.c_version) != VEXFS_COLLECTION_VERSION ||
	    le32_to_cpu(h.c_checksum) != hdr_csum(&h))
		goto corrupt;
	c->dim = le32_to_cpu(h.c_dim);
	c->metric = le32_to_cpu(h.c_metric);
	c->rs = le32_to_cpu(h.c_record_size);
	c->count = le64_to_cpu(h.c_count);
	if (c->dim < 1 || c->dim > VEXFS_MAX_DIM || c->metric > VEXFS_METRIC_IP ||
	    c->rs != coll_rec_size(c->dim) ||
	    (le32_to_cpu(h.c_flags) & ~VEXFS_COLL_FLAGS))
		goto corrupt;
	c->flags = le32_to_cpu(h.c_flags);
	c->dim4 = round_up(c->dim, 4);
	/*
	 * Records past c_count (a batch cut short by a crash) are ignored.
	 * The header is file data anyone with write access can forge: c_count
	 * must fit in the blocks actually allocated, not just in i_size (a
	 * sparse file would otherwise make every scan walk ~2^38 holes).
	 */
	if (check_mul_overflow(c->count, (u64)c->rs, &need) ||
	    check_add_overflow(need, (u64)VEXFS_DATA_OFFSET, &need) ||
	    need > (u64)i_size_read(inode) ||
	    DIV_ROUND_UP_ULL(need, VEXFS_BLOCK_SIZE) >
	    (u64)inode->i_blocks >> (VEXFS_BLOCK_BITS - 9))
		goto corrupt;
	return 0;
corrupt:
	pr_warn_ratelimited("inode %lu: corrupt vector collection header\n",
			    inode->i_ino);
	return -EUCLEAN;
}

/* For zero-sized batches: still report ENOTTY/EUCLEAN like any other call. */
static int coll_check(struct inode *inode)
{
	struct coll c;
	int err;

	inode_lock_shared(inode);
	err = coll_load(inode, &c);
	inode_unlock_shared(inode);
	return err;
}

static int coll_store_header(struct file *filp, const struct coll *c)
{
	struct vexfs_collection_header h = {
		.c_magic = cpu_to_le32(VEXFS_COLLECTION_MAGIC),
		.c_version = cpu_to_le32(VEXFS_COLLECTION_VERSION),
		.c_dim = cpu_to_le32(c->dim),
		.c_metric = cpu_to_le32(c->metric),
		.c_count = cpu_to_le64(c->count),
		.c_record_size = cpu_to_le32(c->rs),
		.c_flags = cpu_to_le32(c->flags),
	};

	h.c_checksum = cpu_to_le32(hdr_csum(&h));
	/* block 0 exists (CREATE writes it first): never cut by a signal */
	return coll_overwrite(filp, 0, &h, sizeof(h));
}

/* ---- batches of ids ---- */

/* One id of a batch: sorted by (id, idx) to find duplicates and matches. */
struct id_ent {
	u64 id;
	u64 slot;		/* U64_MAX: not in the collection */
	u32 idx;		/* position in the caller's batch */
	u32 pad;
};

static int id_ent_cmp(const void *a, const void *b)
{
	const struct id_ent *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return 0;
}

/* first entry with this id, or NULL */
static struct id_ent *id_find(struct id_ent *ents, u32 n, u64 id)
{
	u32 lo = 0, hi = n;

	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;

		if (ents[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < n && ents[lo].id == id) ? &ents[lo] : NULL;
}

/*
 * Copy count ids from user memory and return them sorted by (id, idx), with
 * slot = U64_MAX. count <= VEXFS_MAX_BATCH, so the allocation is bounded.
 */
static struct id_ent *ids_load(u64 uptr, u32 count)
{
	const u64 __user *uids = u64_to_user_ptr(uptr);
	struct id_ent *ents;
	u32 i;

	ents = kvmalloc_array(count, sizeof(*ents), GFP_KERNEL);
	if (!ents)
		return ERR_PTR(-ENOMEM);
	for (i = 0; i < count; i++) {
		if (get_user(ents[i].id, uids + i)) {
			kvfree(ents);
			return ERR_PTR(-EFAULT);
		}
		ents[i].idx = i;
		ents[i].slot = U64_MAX;
		ents[i].pad = 0;
		if (!(i & 4095)) {
			cond_resched();
			if (fatal_signal_pending(current)) {
				kvfree(ents);
				return ERR_PTR(-EINTR);
			}
		}
	}
	sort(ents, count, sizeof(*ents), id_ent_cmp, NULL);
	return ents;
}

/*
 * Scan the ids of records [0, end) and set slot on every batch entry whose
 * id matches (all entries with that id). Ids of the collection are unique,
 * so each id matches at most one slot. @end comes from the header (file
 * data): the scan yields and a fatal signal ends it (-EINTR) at every page.
 */
static int coll_match_ids(struct inode *inode, const struct coll *c, u64 end,
			  struct id_ent *ents, u32 n)
{
	struct page *page = NULL;
	pgoff_t cur = 0;
	u64 slot;
	int err = 0;

	for (slot = 0; slot < end; slot++) {
		loff_t pos = rec_pos(c, slot);
		pgoff_t index = pos >> PAGE_SHIFT;
		struct id_ent *e;
		__le64 raw;
		u64 id;

		if (!page || index != cur) {
			if (page)
				put_page(page);
			page = read_mapping_page(inode->i_mapping, index, NULL);
			if (IS_ERR(page)) {
				err = PTR_ERR(page);
				page = NULL;
				break;
			}
			cur = index;
			cond_resched();
			if (fatal_signal_pending(current)) {
				err = -EINTR;
				break;
			}
		}
		/* 16-byte aligned record headers never straddle a page */
		memcpy_from_page((char *)&raw, page, offset_in_page(pos),
				 sizeof(raw));
		id = le64_to_cpu(raw);
		for (e = id_find(ents, n, id); e && e < ents + n && e->id == id;
		     e++)
			e->slot = slot;
	}
	if (page)
		put_page(page);
	return err;
}

/*
 * Build records [first, first + n) of the batch into buf (n * rs bytes).
 * Ids come from the kernel copy that was checked; vectors are copied from
 * user memory now and checked for NaN/Inf.
 */
static int records_build(const struct coll *c, const u64 *kids,
			 const u8 __user *uvecs, u32 first, u32 n, u8 *buf)
{
	size_t vbytes = (size_t)c->dim * 4;
	u32 i, j;

	memset(buf, 0, (size_t)n * c->rs);
	for (i = 0; i < n; i++) {
		struct vexfs_vector_record *r = (void *)(buf + (size_t)i * c->rs);
		const u32 *bits = (const u32 *)(r + 1);

		r->r_id = cpu_to_le64(kids[first + i]);
		if (copy_from_user(r + 1, uvecs + (size_t)(first + i) * vbytes,
				   vbytes))
			return -EFAULT;
		for (j = 0; j < c->dim; j++)
			if (vexfs_bits_nonfinite(bits[j]))
				return -EINVAL;
	}
	return 0;
}

/* ---- operations ---- */

int vexfs_coll_create(struct file *filp, u32 dim, u32 metric)
{
	struct inode *inode = file_inode(filp);
	struct coll c = {
		.dim = dim, .metric = metric, .rs = coll_rec_size(dim),
	};
	u8 *zero;
	int err;

	/*
	 * The collection flag is a persistent inode attribute, like the
	 * chattr flags: only the owner (or CAP_FOWNER) may set it.
	 */
	if (!inode_owner_or_capable(vexfs_file_idmap(filp), inode))
		return -EPERM;
	zero = kzalloc(VEXFS_DATA_OFFSET, GFP_KERNEL);
	if (!zero)
		return -ENOMEM;
	inode_lock(inode);
	err = coll_write_begin(filp, false);
	if (err)
		goto out;
	if (vexfs_inode_is_collection(inode)) {
		err = -EEXIST;
		goto out;
	}
	if (i_size_read(inode) != 0) {
		err = -ENOTEMPTY;
		goto out;
	}
	/* the zero block first, then the header, then the flag */
	err = coll_write(filp, 0, zero, VEXFS_DATA_OFFSET);
	if (!err)
		err = coll_store_header(filp, &c);
	if (err) {
		coll_truncate(filp, 0);
	} else {
		vexfs_inode_set_collection(inode, true);
		file_update_time(filp);
	}
out:
	inode_unlock(inode);
	kfree(zero);
	return err;
}

/*
 * Insert or upsert a batch (count <= VEXFS_MAX_BATCH).
 *
 * Insert: every id must be new and distinct within the batch, else EEXIST
 * and nothing changes. Upsert: an id already in the collection has its
 * vector overwritten in place; a new id is appended; an id repeated in the
 * batch takes its last vector.
 *
 * Every vector is read and checked (EFAULT, EINVAL for NaN/Inf) before
 * the batch commits. Order of writes, so that a failure leaves the
 * collection as it was:
 * 1. new records are appended past the last committed record (this is the
 *    only step that allocates, so the only one that can hit ENOSPC); on any
 *    error the file is truncated back to its old size;
 * 2. the header (count) is rewritten: the batch is committed;
 * 3. (upsert) existing records are overwritten in place; blocks are already
 *    allocated and the vectors were checked, so only EFAULT (the caller
 *    unmapped or changed its buffer meanwhile) or EIO can interrupt this.
 */
int vexfs_coll_insert(struct file *filp, struct vexfs_ioc_insert *arg)
{
	struct inode *inode = file_inode(filp);
	const u8 __user *uvecs = u64_to_user_ptr(arg->vectors_ptr);
	bool upsert = arg->flags & VEXFS_INSERT_UPSERT;
	u32 n = arg->count, i, per, added = 0, updated = 0;
	struct id_ent *ents;
	u64 old_count, end;
	u64 *kids = NULL;
	bool *newpos = NULL;
	struct coll c;
	u8 *buf = NULL;
	int err;

	arg->added = 0;
	arg->updated = 0;
	if (!n)
		return coll_check(inode);
	ents = ids_load(arg->ids_ptr, n);
	if (IS_ERR(ents))
		return PTR_ERR(ents);

	inode_lock(inode);
	err = coll_write_begin(filp, upsert);
	if (!err)
		err = coll_load(inode, &c);
	if (err)
		goto out_unlock;
	err = -ENOMEM;
	per = max_t(u32, 1, IO_CHUNK / c.rs);
	buf = kvmalloc((size_t)min(per, n) * c.rs, GFP_KERNEL);
	kids = kvmalloc_array(n, sizeof(*kids), GFP_KERNEL);
	newpos = kvcalloc(n, sizeof(*newpos), GFP_KERNEL);
	if (!buf || !kids || !newpos)
		goto out_unlock;

	old_count = c.count;
	err = coll_match_ids(inode, &c, old_count, ents, n);
	if (err)
		goto out_unlock;
	/*
	 * Decide what every batch position does. For insert, any match or
	 * duplicate is EEXIST. For upsert, among entries with the same id only
	 * the last position (highest idx, last in sort order) is written.
	 */
	for (i = 0; i < n; i++) {
		bool dup = i + 1 < n && ents[i + 1].id == ents[i].id;

		if (!upsert && (dup || ents[i].slot != U64_MAX)) {
			err = -EEXIST;
			goto out_unlock;
		}
	}
	/* check for overflow of the final size before writing anything */
	end = old_count + n;
	if (end > (u64)(inode->i_sb->s_maxbytes - VEXFS_DATA_OFFSET) / c.rs ||
	    ((c.flags & VEXFS_COLL_FL_INDEX) &&
	     end > vexfs_index_max_records(c.rs))) {
		err = -EFBIG;
		goto out_unlock;
	}

	end = old_count;
	for (i = 0; i < n; i++) {
		bool last = i + 1 == n || ents[i + 1].id != ents[i].id;

		kids[ents[i].idx] = ents[i].id;
		newpos[ents[i].idx] = last && ents[i].slot == U64_MAX;
	}
	/*
	 * Upsert: check the vectors that will overwrite records (readable,
	 * finite) before anything is written, so that bad input fails the
	 * whole batch; appended vectors are checked in step 1, before commit.
	 */
	for (i = 0; i < n && upsert; i++) {
		bool last = i + 1 == n || ents[i + 1].id != ents[i].id;

		if (!last || ents[i].slot == U64_MAX)
			continue;
		err = records_build(&c, kids, uvecs, ents[i].idx, 1, buf);
		if (!err && !(i & 255)) {
			cond_resched();
			if (fatal_signal_pending(current))
				err = -EINTR;
		}
		if (err)
			goto out_unlock;
	}

	/* step 1: append new ids, in batch order, a buffer-full at a time */
	i = 0;
	while (i < n && !err) {
		u32 first = i, run = 0;

		if (!newpos[i]) {
			i++;
			continue;
		}
		while (i < n && newpos[i] && run < per) {
			i++;
			run++;
		}
		err = records_build(&c, kids, uvecs, first, run, buf);
		if (!err)
			err = coll_write(filp, rec_pos(&c, end), buf,
					 (size_t)run * c.rs);
		if (!err) {
			end += run;
			added += run;
		}
		if (!err && fatal_signal_pending(current))
			err = -EINTR;
	}
	if (err)
		goto undo;

	/* step 2: commit */
	c.count = end;
	if (end != old_count) {
		err = coll_store_header(filp, &c);
		if (err) {
			c.count = old_count;
			goto undo;
		}
	}

	/* step 3: overwrite existing records in place (upsert only) */
	for (i = 0; i < n && upsert; i++) {
		bool last = i + 1 == n || ents[i + 1].id != ents[i].id;

		if (!last || ents[i].slot == U64_MAX)
			continue;
		err = records_build(&c, kids, uvecs, ents[i].idx, 1, buf);
		if (!err)
			err = coll_overwrite(filp, rec_pos(&c, ents[i].slot),
					     buf, c.rs);
		/* the record's list may no longer fit: it becomes pending */
		if (!err && (c.flags & VEXFS_COLL_FL_INDEX))
			err = vexfs_index_move(filp, ents[i].slot, U64_MAX);
		if (!err && fatal_signal_pending(current))
			err = -EINTR;	/* after a whole record: a partial upsert */
		if (err)
			break;
		updated++;
		cond_resched();
	}
	if (added || updated)
		file_update_time(filp);
	goto out_unlock;

undo:
	/*
	 * nothing committed: drop appended records (restores the old size);
	 * with an index, i_size covers the index: records past c_count are
	 * ignored (and their assign entries are still 0, pending).
	 */
	if (!(c.flags & VEXFS_COLL_FL_INDEX) &&
	    (end != old_count || i_size_read(inode) > rec_pos(&c, old_count)))
		coll_truncate(filp, rec_pos(&c, old_count));
	added = 0;
out_unlock:
	inode_unlock(inode);
	kvfree(newpos);
	kvfree(kids);
	kvfree(buf);
	kvfree(ents);
	arg->added = added;
	arg->updated = updated;
	return err;
}

/*
 * The start of GET and DELETE on @n ids: copy them in, lock the inode
 * (exclusively for @excl), load the header and match every id to its slot.
 * Returns the ids with the inode locked (the caller unlocks it and frees
 * them with kvfree()), or an ERR_PTR with nothing held.
 */
static struct id_ent *coll_lock_ids(struct file *filp, u64 uptr, u32 n,
				    bool excl, struct coll *c)
{
	struct inode *inode = file_inode(filp);
	struct id_ent *ents = ids_load(uptr, n);
	int err;

	if (IS_ERR(ents))
		return ents;
	if (excl)
		inode_lock(inode);
	else
		inode_lock_shared(inode);
	/* exclusive: DELETE, a write that overwrites records */
	err = excl ? coll_write_begin(filp, true) : 0;
	if (!err)
		err = coll_load(inode, c);
	if (!err)
		err = coll_match_ids(inode, c, c->count, ents, n);
	if (!err)
		return ents;
	if (excl)
		inode_unlock(inode);
	else
		inode_unlock_shared(inode);
	kvfree(ents);
	return ERR_PTR(err);
}

int vexfs_coll_get(struct file *filp, struct vexfs_ioc_get *arg)
{
	struct inode *inode = file_inode(filp);
	u8 __user *uvecs = u64_to_user_ptr(arg->vectors_ptr);
	u8 __user *ufound = u64_to_user_ptr(arg->found_ptr);
	u32 n = arg->count, i, per, nfound = 0;
	struct id_ent *ents;
	u64 *slots = NULL;
	size_t vbytes;
	u8 *buf = NULL;
	struct coll c;
	int err;

	arg->nfound = 0;
	if (!n)
		return coll_check(inode);
	ents = coll_lock_ids(filp, arg->ids_ptr, n, false, &c);
	if (IS_ERR(ents))
		return PTR_ERR(ents);
	err = -ENOMEM;
	slots = kvmalloc_array(n, sizeof(*slots), GFP_KERNEL);
	vbytes = (size_t)c.dim * 4;
	per = max_t(u32, 1, IO_CHUNK / c.rs);
	buf = kvmalloc((size_t)min(per, n) * vbytes, GFP_KERNEL);
	if (!slots || !buf)
		goto out;
	for (i = 0; i < n; i++)
		slots[ents[i].idx] = ents[i].slot;

	/* output in batch order, a buffer-full at a time; missing: zeros */
	err = 0;
	for (i = 0; i < n && !err; i += per) {
		u32 m = min(per, n - i), j;

		for (j = 0; j < m && !err; j++) {
			u8 *dst = buf + (size_t)j * vbytes;
			u64 slot = slots[i + j];

			if (slot == U64_MAX) {
				memset(dst, 0, vbytes);
			} else {
				err = coll_read(inode, rec_pos(&c, slot) + REC_HDR,
						dst, vbytes);
				nfound++;
			}
			if (!err && ufound &&
			    put_user(slot != U64_MAX ? 1 : 0, ufound + i + j))
				err = -EFAULT;
		}
		if (!err && copy_to_user(uvecs + (size_t)i * vbytes, buf,
					 (size_t)m * vbytes))
			err = -EFAULT;
		cond_resched();
		if (!err && fatal_signal_pending(current))
			err = -EINTR;
	}
	if (!err && !ufound && nfound != n)
		err = -ENOENT;
out:
	inode_unlock_shared(inode);
	kvfree(buf);
	kvfree(slots);
	kvfree(ents);
	arg->nfound = err ? 0 : nfound;
	return err;
}

static int u64_desc_cmp(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? 1 : (x > y ? -1 : 0);
}

/*
 * Delete a batch of ids (missing ids are skipped). Each deleted slot is
 * filled with the current last record, from the highest slot down, then the
 * header count is written and the file truncated. Only in-place overwrites
 * and a shrink: no allocation, so no ENOSPC.
 */
int vexfs_coll_delete(struct file *filp, struct vexfs_ioc_delete *arg)
{
	struct inode *inode = file_inode(filp);
	u32 n = arg->count, i, nslots = 0;
	struct id_ent *ents;
	u64 *slots = NULL;
	u64 old_count;
	u8 *rec = NULL;
	struct coll c;
	int err;

	arg->deleted = 0;
	if (!n)
		return coll_check(inode);
	ents = coll_lock_ids(filp, arg->ids_ptr, n, true, &c);
	if (IS_ERR(ents))
		return PTR_ERR(ents);
	err = -ENOMEM;
	slots = kvmalloc_array(n, sizeof(*slots), GFP_KERNEL);
	rec = kvmalloc(c.rs, GFP_KERNEL);
	if (!slots || !rec)
		goto out;
	for (i = 0; i < n; i++)
		if (ents[i].slot != U64_MAX &&
		    (i == 0 || ents[i - 1].id != ents[i].id))
			slots[nslots++] = ents[i].slot;
	err = 0;
	if (!nslots)
		goto out;
	sort(slots, nslots, sizeof(*slots), u64_desc_cmp, NULL);

	old_count = c.count;
	for (i = 0; i < nslots && !err; i++) {
		u64 last = c.count - 1;

		if (slots[i] != last) {
			err = coll_read(inode, rec_pos(&c, last), rec, c.rs);
			if (!err)
				err = coll_overwrite(filp, rec_pos(&c, slots[i]),
						     rec, c.rs);
		}
		/* the index follows the move: last's entry goes to its new slot */
		if (!err && (c.flags & VEXFS_COLL_FL_INDEX))
			err = vexfs_index_move(filp, last, slots[i]);
		if (!err)
			c.count--;
		/* between whole moves: the header below commits those done */
		if (!err && fatal_signal_pending(current))
			err = -EINTR;
		cond_resched();
	}
	if (c.count != old_count) {
		int err2 = coll_store_header(filp, &c);

		/* with an index, i_size covers the index region: keep it */
		if (!err2 && !(c.flags & VEXFS_COLL_FL_INDEX))
			err2 = coll_truncate(filp, rec_pos(&c, c.count));
		if (!err)
			err = err2;
		file_update_time(filp);
	}
	arg->deleted = old_count - c.count;
out:
	inode_unlock(inode);
	kvfree(rec);
	kvfree(slots);
	kvfree(ents);
	return err;
}

/* ---- search ---- */

/*
 * Buffers of one search: a window of page-cache pages holding up to rper
 * records, a pointer to each record's vector, its id, and a bounce area for
 * records that cross a page boundary (only those are copied: at most one
 * per page of the window, or every record when a record is a page or more).
 */
struct scan_buf {
	struct inode *inode;
	const struct coll *c;
	u8 *bounce;		/* nbounce * rs bytes */
	const void **vecs;	/* rper */
	u64 *ids;		/* rper */
	struct page **pages;	/* max_pages */
	u32 max_pages;
	u32 npages;		/* references held by the current window */
	u32 nbounce;
	u32 rper;
};

static void scan_buf_free(struct scan_buf *sb)
{
	kvfree(sb->bounce);
	kvfree(sb->vecs);
	kvfree(sb->ids);
	kvfree(sb->pages);
}

static int scan_buf_alloc(struct scan_buf *sb, const struct coll *c, u32 rper)
{
	sb->rper = rper;
	sb->max_pages = DIV_ROUND_UP((size_t)rper * c->rs, PAGE_SIZE) + 1;
	sb->nbounce = min(rper, sb->max_pages);
	sb->bounce = kvmalloc((size_t)sb->nbounce * c->rs, GFP_KERNEL);
	sb->vecs = kvmalloc_array(rper, sizeof(*sb->vecs), GFP_KERNEL);
	sb->ids = kvmalloc_array(rper, sizeof(*sb->ids), GFP_KERNEL);
	sb->pages = kvmalloc_array(sb->max_pages, sizeof(*sb->pages), GFP_KERNEL);
	if (!sb->bounce || !sb->vecs || !sb->ids || !sb->pages) {
		scan_buf_free(sb);
		return -ENOMEM;
	}
	return 0;
}

/*
 * vexfs_scan_ops.map: records [slot, slot + nr): read their pages
 * (references held in sb->pages until scan_unmap()), point vecs at each
 * vector in place or, for a record crossing a page boundary, at a copy in
 * the bounce area. VexFS is x86-64 only (SIMD), where page cache pages are
 * never highmem, so page_address() is valid while the reference is held.
 */
static int scan_map(void *ctx, u64 slot, u32 nr, const void **vecs, u64 *ids)
{
	struct scan_buf *sb = ctx;
	const struct coll *c = sb->c;
	loff_t start = rec_pos(c, slot), end = rec_pos(c, slot + nr);
	pgoff_t first = start >> PAGE_SHIFT;
	u32 n = ((end - 1) >> PAGE_SHIFT) - first + 1, i, r, nb = 0;

	BUILD_BUG_ON(IS_ENABLED(CONFIG_HIGHMEM));
	sb->npages = 0;
	if (WARN_ON_ONCE(n > sb->max_pages || nr > sb->rper))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		struct page *page = read_mapping_page(sb->inode->i_mapping,
						      first + i, NULL);

		if (IS_ERR(page))
			return PTR_ERR(page);
		sb->pages[i] = page;
		sb->npages = i + 1;
	}
	for (r = 0; r < nr; r++) {
		loff_t pos = rec_pos(c, slot + r);
		u32 pi = (pos >> PAGE_SHIFT) - first;
		size_t off = offset_in_page(pos);
		const u8 *rec;

		if (off + c->rs <= PAGE_SIZE) {
			rec = (const u8 *)page_address(sb->pages[pi]) + off;
		} else {
			u8 *dst;
			size_t left = c->rs, done = 0;

			/* one crossing record per page boundary of the window */
			if (WARN_ON_ONCE(nb >= sb->nbounce))
				return -EINVAL;
			dst = sb->bounce + (size_t)nb++ * c->rs;
			while (left) {
				size_t m = min_t(size_t, left, PAGE_SIZE - off);

				memcpy(dst + done,
				       (const u8 *)page_address(sb->pages[pi]) + off,
				       m);
				done += m;
				left -= m;
				pi++;
				off = 0;
			}
			rec = dst;
		}
		ids[r] = le64_to_cpu(*(const __le64 *)rec);
		vecs[r] = rec + REC_HDR;
	}
	return 0;
}

static void scan_unmap(void *ctx)
{
	struct scan_buf *sb = ctx;

	while (sb->npages)
		put_page(sb->pages[--sb->npages]);
}

static int scan_run(void *ctx, const struct vexfs_dist_job *job)
{
	return vexfs_dist_run(job);
}

static int scan_pause(void *ctx)
{
	cond_resched();
	return fatal_signal_pending(current) ? -EINTR : 0;
}

static const struct vexfs_scan_ops scan_ops = {
	.map = scan_map,
	.unmap = scan_unmap,
	.run = scan_run,
	.pause = scan_pause,
};

int vexfs_coll_search(struct file *filp, struct vexfs_ioc_search *arg)
{
	struct inode *inode = file_inode(filp);
	const u8 __user *uq = u64_to_user_ptr(arg->queries_ptr);
	u8 __user *udist = u64_to_user_ptr(arg->distances_ptr);
	u8 __user *uids = u64_to_user_ptr(arg->ids_ptr);
	u32 nq = arg->nq, k = arg->k, qper, rper, done, j;
	struct vexfs_topk_ent *heaps = NULL;
	u32 *keys = NULL, *hn = NULL, *obits = NULL, *thresh = NULL;
	u64 *oids = NULL;
	struct scan_buf sb = { 0 };
	u8 *qbuf = NULL;
	struct coll c;
	int err;

	/* the dimension decides the buffer sizes: peek at the header first */
	inode_lock_shared(inode);
	err = coll_load(inode, &c);
	inode_unlock_shared(inode);
	if (err || !nq)
		return err;

	/* queries per chunk: bounded by the heap memory, nq * k entries */
	qper = clamp_t(u32, 16384 / k, 1, VEXFS_DIST_MAX_NQ);
	qper = min(qper, nq);
	/* records per FPU section: bounded by work and by buffer size */
	rper = FPU_WORK / (qper * c.dim4);
	rper = clamp_t(u32, rper, 1, max_t(u32, 1, IO_CHUNK / c.rs));

	err = -ENOMEM;
	qbuf = kvcalloc((size_t)qper * c.dim4, 4, GFP_KERNEL);
	keys = kvmalloc_array((size_t)qper * rper, sizeof(u32), GFP_KERNEL);
	heaps = kvmalloc_array((size_t)qper * k, sizeof(*heaps), GFP_KERNEL);
	hn = kcalloc(qper, sizeof(u32), GFP_KERNEL);
	thresh = kcalloc(qper, sizeof(u32), GFP_KERNEL);
	obits = kvmalloc_array(k, sizeof(u32), GFP_KERNEL);
	oids = kvmalloc_array(k, sizeof(u64), GFP_KERNEL);
	if (!qbuf || !keys || !heaps || !hn || !thresh || !obits || !oids)
		goto out;
	err = scan_buf_alloc(&sb, &c, rper);
	if (err)
		goto out;
	sb.inode = inode;

	err = 0;
	for (done = 0; done < nq && !err; done += qper) {
		u32 m = min(qper, nq - done), qi;
		size_t vbytes = (size_t)c.dim * 4;
		struct vexfs_scan scan = {
			.ops = &scan_ops, .ctx = &sb, .queries = qbuf,
			.nq = m, .k = k, .dim4 = c.dim4, .metric = c.metric,
			.screen = c.metric == VEXFS_METRIC_L2 &&
				  vexfs_simd_mode() != VEXFS_SIMD_SCALAR,
			.rper = rper, .vecs = sb.vecs, .ids = sb.ids,
			.keys = keys, .thresh = thresh, .heaps = heaps, .hn = hn,
		};

		/* nq comes from the caller: every chunk may be the last */
		if (fatal_signal_pending(current)) {
			err = -EINTR;
			break;
		}
		/* copy and check the queries before taking the lock */
		for (qi = 0; qi < m; qi++) {
			u8 *row = qbuf + (size_t)qi * c.dim4 * 4;
			const u32 *bits = (const u32 *)row;

			if (copy_from_user(row, uq + (size_t)(done + qi) * vbytes,
					   vbytes)) {
				err = -EFAULT;
				break;
			}
			for (j = 0; j < c.dim; j++)
				if (vexfs_bits_nonfinite(bits[j]))
					err = -EINVAL;
			if (err)
				break;
		}
		if (err)
			break;

		inode_lock_shared(inode);
		{
			struct coll now;

			/* the collection may have changed since the peek */
			err = coll_load(inode, &now);
			if (!err && (now.dim != c.dim || now.metric != c.metric ||
				     now.rs != c.rs))
				err = -ESTALE;
			if (!err) {
				sb.c = &now;
				scan.count = now.count;
				err = vexfs_scan_run(&scan);
				sb.c = NULL;
			}
		}
		inode_unlock_shared(inode);
		if (err)
			break;

		/* sort each heap and copy out, padding past the hits */
		for (qi = 0; qi < m && !err; qi++) {
			size_t row = (size_t)(done + qi) * k;

			vexfs_scan_result(&scan, qi, obits, oids);
			if (copy_to_user(udist + row * 4, obits, k * 4) ||
			    copy_to_user(uids + row * 8, oids, k * 8))
				err = -EFAULT;
		}
	}
out:
	kvfree(oids);
	kvfree(obits);
	kfree(thresh);
	kfree(hn);
	kvfree(heaps);
	kvfree(keys);
	scan_buf_free(&sb);
	kvfree(qbuf);
	return err;
}

int vexfs_coll_stats(struct file *filp, struct vexfs_ioc_stats *arg)
{
	struct inode *inode = file_inode(filp);
	struct coll c;
	int err;

	inode_lock_shared(inode);
	err = coll_load(inode, &c);
	if (!err) {
		arg->count = c.count;
		arg->bytes = i_size_read(inode);
		arg->blocks = inode->i_blocks >> (VEXFS_BLOCK_BITS - 9);
		arg->dim = c.dim;
		arg->metric = c.metric;
		arg->record_size = c.rs;
		arg->simd = vexfs_simd_mode();
	}
	inode_unlock_shared(inode);
	return err;
}

/* ---- for the ANN index (index.c); the caller holds i_rwsem ---- */

static void coll_to_info(const struct coll *c, struct vexfs_coll_info *ci)
{
	ci->dim = c->dim;
	ci->dim4 = c->dim4;
	ci->metric = c->metric;
	ci->rs = c->rs;
	ci->flags = c->flags;
	ci->count = c->count;
}

int vexfs_coll_info_load(struct inode *inode, struct vexfs_coll_info *ci)
{
	struct coll c;
	int err = coll_load(inode, &c);

	if (!err)
		coll_to_info(&c, ci);
	return err;
}

int vexfs_coll_pread(struct inode *inode, loff_t pos, void *buf, size_t len)
{
	return coll_read(inode, pos, buf, len);
}

int vexfs_coll_pwrite(struct file *filp, loff_t pos, const void *buf,
		      size_t len)
{
	struct inode *inode = file_inode(filp);

	/*
	 * Inside the file and allocated (index entries next to records being
	 * moved): whole, never cut by a fatal signal, as the records are
	 */
	if (len <= PAGE_SIZE && pos + (loff_t)len <= i_size_read(inode) &&
	    coll_range_mapped(inode, pos, len))
		return coll_overwrite(filp, pos, buf, len);
	return coll_write(filp, pos, buf, len);
}

int vexfs_coll_set_size(struct file *filp, loff_t size)
{
	return coll_truncate(filp, size);
}

/* rewrite the header with new c_flags (the rest as loaded) */
int vexfs_coll_set_flags(struct file *filp, struct vexfs_coll_info *ci,
			 u32 flags)
{
	struct coll c = {
		.dim = ci->dim, .dim4 = ci->dim4, .metric = ci->metric,
		.rs = ci->rs, .flags = flags, .count = ci->count,
	};
	int err = coll_store_header(filp, &c);

	if (!err)
		ci->flags = flags;
	return err;
}

/*
 * The slots of n ids copied from user memory, in the caller's order
 * (U64_MAX: absent). Returns a kvmalloc'd array (n <= VEXFS_MAX_BATCH).
 */
u64 *vexfs_coll_slots(struct inode *inode, const struct vexfs_coll_info *ci,
		      u64 ids_uptr, u32 n)
{
	struct coll c = {
		.dim = ci->dim, .dim4 = ci->dim4, .metric = ci->metric,
		.rs = ci->rs, .flags = ci->flags, .count = ci->count,
	};
	struct id_ent *ents = ids_load(ids_uptr, n);
	u64 *slots;
	u32 i;
	int err;

	if (IS_ERR(ents))
		return ERR_CAST(ents);
	slots = kvmalloc_array(n, sizeof(*slots), GFP_KERNEL);
	err = slots ? coll_match_ids(inode, &c, c.count, ents, n) : -ENOMEM;
	if (err) {
		kvfree(slots);
		kvfree(ents);
		return ERR_PTR(err);
	}
	for (i = 0; i < n; i++)
		slots[ents[i].idx] = ents[i].slot;
	kvfree(ents);
	return slots;
}
