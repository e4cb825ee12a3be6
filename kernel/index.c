// SPDX-License-Identifier: GPL-2.0
/*
 * VexFS ANN index of a collection: an inverted file (IVF) stored in the
 * collection file itself, in the region at VEXFS_INDEX_BASE (format in
 * kernel/uapi/vexfs_fs.h, "ANN index"; reasons in docs/format.md).
 *
 *  - BUILD installs centroids trained in userspace (numpy k-means) and
 *    makes every record pending; ASSIGN puts records (by id) on lists.
 *  - INSERT leaves new records pending (their assign entry is 0), an
 *    upsert makes the overwritten record pending, DELETE moves the last
 *    record's entry with the record (vector.c calls vexfs_index_move()).
 *  - SEARCH: per query, the nprobe nearest centroids (the exact scan loop
 *    over the centroid rows), then the exact distances of the records on
 *    those lists and of every pending record (vec/vec_ivf.c picks them).
 *
 * The index is advisory: ids and distances always come from the records,
 * so a stale assignment costs recall, never correctness. Everything goes
 * through the page cache and the file's own buffered write path, under the
 * same inode lock and in the same ioctl as the record changes it follows.
 *
 * No float arithmetic here (see vector.h): vectors move as bytes.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/crc32.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/uaccess.h>

#include "vexfs.h"
#include "vector.h"
#include "vec/vec_ivf.h"

#define IDX_HDR_SIZE	sizeof(struct vexfs_index_header)
#define IO_CHUNK	(256U * 1024U)
#define FPU_WORK	(1U << 20)
#define ENT_PER_PAGE	(PAGE_SIZE / 4)
#define MAX_RPER	64U

static_assert(sizeof(struct vexfs_index_header) == 64);

struct ivf {
	u32 nlist;
	u32 nprobe;
	u64 alloc;		/* assign entries [0, alloc) have blocks */
};

static loff_t assign_pos(u64 slot)
{
	return VEXFS_INDEX_BASE + VEXFS_INDEX_ASSIGN_OFF + (loff_t)slot * 4;
}

static loff_t cent_pos(const struct vexfs_coll_info *ci, u64 list)
{
	return VEXFS_INDEX_BASE + VEXFS_INDEX_CENT_OFF +
	       (loff_t)list * ci->dim4 * 4;
}

static loff_t rec_pos(const struct vexfs_coll_info *ci, u64 slot)
{
	return VEXFS_DATA_OFFSET + (loff_t)slot * ci->rs;
}

u64 vexfs_index_max_records(u32 rs)
{
	u64 by_space = (VEXFS_INDEX_BASE - VEXFS_DATA_OFFSET) / rs;
	u64 by_assign = (VEXFS_INDEX_CENT_OFF - VEXFS_INDEX_ASSIGN_OFF) / 4;

	return min(by_space, by_assign);
}

static u32 idx_csum(struct vexfs_index_header *h)
{
	__le32 saved = h->x_checksum;
	u32 crc;

	h->x_checksum = 0;
	crc = ~__crc32c_le(~0U, (const u8 *)h, IDX_HDR_SIZE);
	h->x_checksum = saved;
	return crc;
}

/* -ENODATA: no index; -EUCLEAN: the index header is corrupt */
static int idx_load(struct inode *inode, const struct vexfs_coll_info *ci,
		    struct ivf *x)
{
	struct vexfs_index_header h;
	int err;

	if (!(ci->flags & VEXFS_COLL_FL_INDEX))
		return -ENODATA;
	if (i_size_read(inode) < VEXFS_INDEX_BASE + VEXFS_INDEX_CENT_OFF)
		goto corrupt;
	err = vexfs_coll_pread(inode, VEXFS_INDEX_BASE, &h, sizeof(h));
	if (err)
		return err;
	if (le32_to_cpu(h.x_magic) != VEXFS_INDEX_MAGIC ||
	    le32_to_cpu(h.x_version) != VEXFS_INDEX_VERSION ||
	    le32_to_cpu(h.x_kind) != VEXFS_INDEX_KIND_IVF ||
	    le32_to_cpu(h.x_checksum) != idx_csum(&h))
		goto corrupt;
	x->nlist = le32_to_cpu(h.x_nlist);
	x->nprobe = le32_to_cpu(h.x_nprobe);
	x->alloc = le64_to_cpu(h.x_alloc);
	if (!x->nlist || x->nlist > VEXFS_INDEX_MAX_NLIST || !x->nprobe ||
	    x->nprobe > x->nlist || le32_to_cpu(h.x_dim) != ci->dim ||
	    le32_to_cpu(h.x_metric) != ci->metric || h.x_flags ||
	    x->alloc > vexfs_index_max_records(ci->rs) ||
	    i_size_read(inode) < cent_pos(ci, x->nlist))
		goto corrupt;
	return 0;
corrupt:
	pr_warn_ratelimited("inode %lu: corrupt ANN index header\n",
			    inode->i_ino);
	return -EUCLEAN;
}

static int idx_store(struct file *filp, const struct vexfs_coll_info *ci,
		     const struct ivf *x)
{
	struct vexfs_index_header h = {
		.x_magic = cpu_to_le32(VEXFS_INDEX_MAGIC),
		.x_version = cpu_to_le32(VEXFS_INDEX_VERSION),
		.x_kind = cpu_to_le32(VEXFS_INDEX_KIND_IVF),
		.x_nlist = cpu_to_le32(x->nlist),
		.x_dim = cpu_to_le32(ci->dim),
		.x_metric = cpu_to_le32(ci->metric),
		.x_nprobe = cpu_to_le32(x->nprobe),
		.x_alloc = cpu_to_le64(x->alloc),
	};

	h.x_checksum = cpu_to_le32(idx_csum(&h));
	return vexfs_coll_pwrite(filp, VEXFS_INDEX_BASE, &h, sizeof(h));
}

static int idx_pause(void)
{
	cond_resched();
	return fatal_signal_pending(current) ? -EINTR : 0;
}

/* write zero assign entries [from, to), a page-sized buffer at a time */
static int assign_zero(struct file *filp, u64 from, u64 to)
{
	u8 *zero;
	int err = 0;

	if (from >= to)
		return 0;
	zero = kzalloc(PAGE_SIZE, GFP_KERNEL);
	if (!zero)
		return -ENOMEM;
	while (from < to && !err) {
		u64 n = min_t(u64, to - from, ENT_PER_PAGE - from % ENT_PER_PAGE);

		err = vexfs_coll_pwrite(filp, assign_pos(from), zero, n * 4);
		from += n;
		if (!err)
			err = idx_pause();
	}
	kfree(zero);
	return err;
}

/* make sure entries [0, count) have blocks, so DELETE never allocates */
static int assign_reserve(struct file *filp, const struct vexfs_coll_info *ci,
			  struct ivf *x)
{
	int err;

	if (x->alloc >= ci->count)
		return 0;
	err = assign_zero(filp, x->alloc, ci->count);
	if (err)
		return err;
	x->alloc = ci->count;
	return idx_store(filp, ci, x);
}

static int assign_get(struct inode *inode, u64 slot, u32 *v)
{
	__le32 raw;
	int err = vexfs_coll_pread(inode, assign_pos(slot), &raw, 4);

	*v = err ? 0 : le32_to_cpu(raw);
	return err;
}

static int assign_put(struct file *filp, u64 slot, u32 v)
{
	__le32 raw = cpu_to_le32(v);

	return vexfs_coll_pwrite(filp, assign_pos(slot), &raw, 4);
}

/*
 * A record moved from slot @from to slot @to (DELETE), or was rewritten
 * (@to = U64_MAX: upsert; the entry becomes pending), or deleted as the last
 * record (@to == @from). The entry of @from is cleared. Writes only entries
 * that are non-zero or below x_alloc, which have blocks: no allocation.
 */
int vexfs_index_move(struct file *filp, u64 from, u64 to)
{
	struct inode *inode = file_inode(filp);
	u32 v, w;
	int err;

	err = assign_get(inode, from, &v);
	if (err)
		return err;
	if (to != U64_MAX && to != from) {
		err = assign_get(inode, to, &w);
		if (!err && w != v)
			err = assign_put(filp, to, v);
		if (err)
			return err;
	}
	return v ? assign_put(filp, from, 0) : 0;
}

static int set_feature(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	__le32 bit = cpu_to_le32(VEXFS_FEATURE_RO_COMPAT_ANN_INDEX);

	if (sbi->s_vs->s_feature_ro_compat & bit)
		return 0;
	lock_buffer(sbi->s_sbh);
	sbi->s_vs->s_feature_ro_compat |= bit;
	unlock_buffer(sbi->s_sbh);
	return vexfs_write_super(sb, true);
}

/* drop the index: clear the flag first, then free the region */
static int idx_remove(struct file *filp, struct vexfs_coll_info *ci)
{
	int err = 0;

	if (ci->flags & VEXFS_COLL_FL_INDEX)
		err = vexfs_coll_set_flags(filp, ci,
					   ci->flags & ~VEXFS_COLL_FL_INDEX);
	if (!err)
		err = vexfs_coll_set_size(filp, rec_pos(ci, ci->count));
	return err;
}

/* copy nlist centroids (rows of dim floats) into the centroid region */
static int cent_write(struct file *filp, const struct vexfs_coll_info *ci,
		      const u8 __user *ucent, u32 nlist)
{
	size_t vbytes = (size_t)ci->dim * 4, row = (size_t)ci->dim4 * 4;
	u32 per = max_t(u32, 1, IO_CHUNK / row), l = 0, i, j;
	u8 *buf;
	int err = 0;

	buf = kvmalloc(min(per, nlist) * row, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	while (l < nlist && !err) {
		u32 m = min(per, nlist - l);

		memset(buf, 0, m * row);
		for (i = 0; i < m && !err; i++) {
			const u32 *bits = (const u32 *)(buf + i * row);

			if (copy_from_user(buf + i * row,
					   ucent + (size_t)(l + i) * vbytes, vbytes)) {
				err = -EFAULT;
				break;
			}
			for (j = 0; j < ci->dim; j++)
				if (vexfs_bits_nonfinite(bits[j]))
					err = -EINVAL;
		}
		if (!err)
			err = vexfs_coll_pwrite(filp, cent_pos(ci, l), buf, m * row);
		l += m;
		if (!err)
			err = idx_pause();
	}
	kvfree(buf);
	return err;
}

int vexfs_index_build(struct file *filp, struct vexfs_ioc_index_build *arg)
{
	struct inode *inode = file_inode(filp);
	struct vexfs_coll_info ci;
	struct ivf x = { .nlist = arg->nlist, .nprobe = arg->nprobe };
	int err;

	inode_lock(inode);
	err = vexfs_coll_info_load(inode, &ci);
	if (err)
		goto out;
	if (ci.count > vexfs_index_max_records(ci.rs)) {
		err = -EFBIG;
		goto out;
	}
	/* records past c_count (undone inserts) must not look indexed */
	err = cent_write(filp, &ci, u64_to_user_ptr(arg->centroids_ptr),
			 x.nlist);
	if (!err)
		err = assign_zero(filp, 0, ci.count);
	x.alloc = ci.count;
	if (!err)
		err = idx_store(filp, &ci, &x);
	if (!err && i_size_read(inode) > cent_pos(&ci, x.nlist))
		err = vexfs_coll_set_size(filp, cent_pos(&ci, x.nlist));
	if (!err)
		err = set_feature(inode->i_sb);
	if (!err && !(ci.flags & VEXFS_COLL_FL_INDEX))
		err = vexfs_coll_set_flags(filp, &ci,
					   ci.flags | VEXFS_COLL_FL_INDEX);
	if (err)
		idx_remove(filp, &ci);	/* a failed build leaves no index */
	else
		file_update_time(filp);
out:
	inode_unlock(inode);
	return err;
}

struct slot_val {
	u64 slot;
	u32 val;
	u32 idx;
};

static int slot_val_cmp(const void *a, const void *b)
{
	const struct slot_val *x = a, *y = b;

	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

int vexfs_index_assign(struct file *filp, struct vexfs_ioc_index_assign *arg)
{
	struct inode *inode = file_inode(filp);
	const u32 __user *ulists = u64_to_user_ptr(arg->lists_ptr);
	struct slot_val *sv = NULL;
	struct vexfs_coll_info ci;
	u32 n = arg->count, i, m = 0;
	u64 *slots = NULL;
	u8 *page = NULL;
	struct ivf x;
	int err;

	arg->assigned = 0;
	inode_lock(inode);
	err = vexfs_coll_info_load(inode, &ci);
	if (!err)
		err = idx_load(inode, &ci, &x);
	if (err || !n)
		goto out;
	slots = vexfs_coll_slots(inode, &ci, arg->ids_ptr, n);
	if (IS_ERR(slots)) {
		err = PTR_ERR(slots);
		slots = NULL;
		goto out;
	}
	err = -ENOMEM;
	sv = kvmalloc_array(n, sizeof(*sv), GFP_KERNEL);
	page = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!sv || !page)
		goto out;
	/* every list number is read and checked before anything is written */
	for (i = 0; i < n; i++) {
		u32 l;

		if (get_user(l, ulists + i)) {
			err = -EFAULT;
			goto out;
		}
		if (l >= x.nlist) {
			err = -EINVAL;
			goto out;
		}
		if (slots[i] != U64_MAX)
			sv[m++] = (struct slot_val){ slots[i], l + 1, i };
	}
	sort(sv, m, sizeof(*sv), slot_val_cmp, NULL);
	err = assign_reserve(filp, &ci, &x);
	/* read-modify-write one page of entries at a time */
	for (i = 0; i < m && !err;) {
		u64 base = sv[i].slot - sv[i].slot % ENT_PER_PAGE;
		u32 cnt = min_t(u64, ENT_PER_PAGE, ci.count - base);
		__le32 *ents = (__le32 *)page;

		err = vexfs_coll_pread(inode, assign_pos(base), page, cnt * 4);
		if (err)
			break;
		for (; i < m && sv[i].slot < base + cnt; i++) {
			ents[sv[i].slot - base] = cpu_to_le32(sv[i].val);
			if (i + 1 == m || sv[i + 1].slot != sv[i].slot)
				arg->assigned++;
		}
		err = vexfs_coll_pwrite(filp, assign_pos(base), page, cnt * 4);
		if (!err)
			err = idx_pause();
	}
	if (arg->assigned)
		file_update_time(filp);
out:
	inode_unlock(inode);
	kfree(page);
	kvfree(sv);
	kvfree(slots);
	return err;
}

/* ---- search ---- */

/*
 * One query's mapping state. Rows (centroids, or the vector part of the
 * records a query visits) are pointed at in place when they lie within one
 * page (a page reference held until unmap), else copied to the bounce area.
 * Records come from a cursor over the assign entries (one page held).
 */
struct ivf_map {
	struct inode *inode;
	const struct vexfs_coll_info *ci;
	const struct ivf *x;
	const u8 *probe;
	bool centroids;
	struct page **pages;	/* rper */
	u32 npages;
	u8 *bounce;		/* rper rows of dim4 floats */
	u64 *cand;		/* rper */
	u32 rper;
	/* assign cursor */
	struct page *apage;
	u64 abase;		/* slot of the first entry of apage */
	u32 afrom;		/* next entry of apage to look at */
};

static int map_row(struct ivf_map *m, u32 r, loff_t pos, const void **vec)
{
	size_t row = (size_t)m->ci->dim4 * 4, off = offset_in_page(pos);
	struct page *page;

	if (off + row > PAGE_SIZE) {
		u8 *dst = m->bounce + r * row;
		int err = vexfs_coll_pread(m->inode, pos, dst, row);

		*vec = dst;
		return err;
	}
	page = read_mapping_page(m->inode->i_mapping, pos >> PAGE_SHIFT, NULL);
	if (IS_ERR(page))
		return PTR_ERR(page);
	m->pages[m->npages++] = page;
	*vec = (const u8 *)page_address(page) + off;
	return 0;
}

static void cursor_drop(struct ivf_map *m)
{
	if (m->apage)
		put_page(m->apage);
	m->apage = NULL;
}

/* the next nr visited slots into m->cand; -EUCLEAN if there are fewer */
static int cursor_next(struct ivf_map *m, u32 nr)
{
	u32 got = 0;

	while (got < nr) {
		u32 n;
		int r;

		if (m->apage) {
			n = min_t(u64, ENT_PER_PAGE, m->ci->count - m->abase);
			r = vexfs_ivf_gather(page_address(m->apage), n, &m->afrom,
					     m->probe, m->x->nlist, m->abase,
					     m->cand + got, nr - got);
			if (r < 0)
				return r;
			got += r;
			if (m->afrom < n)
				continue;
			cursor_drop(m);
			m->abase += ENT_PER_PAGE;
		}
		if (got == nr)
			break;
		if (m->abase >= m->ci->count)
			return -EUCLEAN;	/* changed under us: never expected */
		m->apage = read_mapping_page(m->inode->i_mapping,
					     assign_pos(m->abase) >> PAGE_SHIFT,
					     NULL);
		if (IS_ERR(m->apage)) {
			r = PTR_ERR(m->apage);
			m->apage = NULL;
			return r;
		}
		m->afrom = 0;
	}
	return 0;
}

static int ivf_map(void *ctx, u64 slot, u32 nr, const void **vecs, u64 *ids)
{
	struct ivf_map *m = ctx;
	u32 r;
	int err;

	m->npages = 0;
	if (WARN_ON_ONCE(nr > m->rper))
		return -EINVAL;
	if (m->centroids) {
		for (r = 0; r < nr; r++) {
			ids[r] = slot + r;
			err = map_row(m, r, cent_pos(m->ci, slot + r), &vecs[r]);
			if (err)
				return err;
		}
		return 0;
	}
	err = cursor_next(m, nr);
	for (r = 0; r < nr && !err; r++) {
		loff_t pos = rec_pos(m->ci, m->cand[r]);
		__le64 raw;

		/* 16-byte aligned record headers never straddle a page */
		err = vexfs_coll_pread(m->inode, pos, &raw, sizeof(raw));
		ids[r] = le64_to_cpu(raw);
		if (!err)
			err = map_row(m, r, pos + sizeof(struct vexfs_vector_record),
				      &vecs[r]);
	}
	return err;
}

static void ivf_unmap(void *ctx)
{
	struct ivf_map *m = ctx;

	while (m->npages)
		put_page(m->pages[--m->npages]);
}

static int ivf_run(void *ctx, const struct vexfs_dist_job *job)
{
	return vexfs_dist_run(job);
}

static int ivf_pause_op(void *ctx)
{
	return idx_pause();
}

static const struct vexfs_scan_ops ivf_ops = {
	.map = ivf_map,
	.unmap = ivf_unmap,
	.run = ivf_run,
	.pause = ivf_pause_op,
};

/* how many records the probe set visits; -EUCLEAN for a bad entry */
static s64 count_visits(struct inode *inode, const struct vexfs_coll_info *ci,
			const struct ivf *x, const u8 *probe)
{
	u64 base;
	s64 total = 0;

	for (base = 0; base < ci->count; base += ENT_PER_PAGE) {
		u32 n = min_t(u64, ENT_PER_PAGE, ci->count - base);
		struct page *page;
		s64 c;

		page = read_mapping_page(inode->i_mapping,
					 assign_pos(base) >> PAGE_SHIFT, NULL);
		if (IS_ERR(page))
			return PTR_ERR(page);
		c = vexfs_ivf_count(page_address(page), n, probe, x->nlist);
		put_page(page);
		if (c < 0) {
			pr_warn_ratelimited("inode %lu: corrupt ANN index list entry\n",
					    inode->i_ino);
			return c;
		}
		total += c;
		if (!(base & (64 * ENT_PER_PAGE - 1)))
			cond_resched();
	}
	return total;
}

/* search buffers, sized for one query at a time (see docs/vector-api.md) */
struct ivf_bufs {
	u8 *q;
	const void **vecs;
	u64 *ids;
	u32 *keys;
	u32 thresh;
	u32 hn;
	struct vexfs_topk_ent *cheap;	/* nprobe */
	struct vexfs_topk_ent *rheap;	/* k */
	u64 *plist;			/* nprobe */
	u8 *probe;			/* nlist */
	u32 *obits;
	u64 *oids;
};

static int one_query(struct ivf_map *m, struct ivf_bufs *b, u32 k, u32 nprobe,
		     u64 *scanned)
{
	const struct vexfs_coll_info *ci = m->ci;
	bool screen = ci->metric == VEXFS_METRIC_L2 &&
		      vexfs_simd_mode() != VEXFS_SIMD_SCALAR;
	struct vexfs_scan cs = {
		.ops = &ivf_ops, .ctx = m, .queries = b->q, .nq = 1,
		.k = nprobe, .dim4 = ci->dim4, .metric = ci->metric,
		.screen = screen, .count = m->x->nlist, .rper = m->rper,
		.vecs = b->vecs, .ids = b->ids, .keys = b->keys,
		.thresh = &b->thresh, .heaps = b->cheap, .hn = &b->hn,
	};
	struct vexfs_scan rs = cs;
	s64 nvisit;
	u32 i;
	int err;

	m->centroids = true;
	err = vexfs_scan_run(&cs);
	if (err)
		return err;
	for (i = 0; i < b->hn; i++)
		b->plist[i] = b->cheap[i].id;
	err = vexfs_ivf_probe_set(b->probe, m->x->nlist, b->plist, b->hn);
	if (err)
		return err;
	nvisit = count_visits(m->inode, ci, m->x, b->probe);
	if (nvisit < 0)
		return nvisit;

	m->centroids = false;
	m->abase = 0;
	m->afrom = 0;
	rs.k = k;
	rs.count = nvisit;
	rs.heaps = b->rheap;
	err = vexfs_scan_run(&rs);
	cursor_drop(m);
	if (err)
		return err;
	*scanned += nvisit;
	vexfs_scan_result(&rs, 0, b->obits, b->oids);
	return 0;
}

static void bufs_free(struct ivf_bufs *b, struct ivf_map *m)
{
	kvfree(b->q);
	kvfree(b->vecs);
	kvfree(b->ids);
	kvfree(b->keys);
	kvfree(b->cheap);
	kvfree(b->rheap);
	kvfree(b->plist);
	kvfree(b->probe);
	kvfree(b->obits);
	kvfree(b->oids);
	kvfree(m->pages);
	kvfree(m->bounce);
	kvfree(m->cand);
}

int vexfs_index_search(struct file *filp, struct vexfs_ioc_index_search *arg)
{
	struct inode *inode = file_inode(filp);
	const u8 __user *uq = u64_to_user_ptr(arg->queries_ptr);
	u8 __user *udist = u64_to_user_ptr(arg->distances_ptr);
	u8 __user *uids = u64_to_user_ptr(arg->ids_ptr);
	u32 nq = arg->nq, k = arg->k, qi, j, nprobe, rper;
	struct vexfs_coll_info ci, now;
	struct ivf_bufs b = { 0 };
	struct ivf_map m = { 0 };
	struct ivf x, xnow;
	size_t vbytes, row;
	int err;

	arg->scanned = 0;
	inode_lock_shared(inode);
	err = vexfs_coll_info_load(inode, &ci);
	if (!err)
		err = idx_load(inode, &ci, &x);
	inode_unlock_shared(inode);
	if (err || !nq)
		return err;
	nprobe = arg->nprobe ? min(arg->nprobe, x.nlist) : x.nprobe;
	vbytes = (size_t)ci.dim * 4;
	row = (size_t)ci.dim4 * 4;
	rper = clamp_t(u32, FPU_WORK / ci.dim4, 1, MAX_RPER);
	rper = min_t(u32, rper, max_t(u32, 1, IO_CHUNK / row));

	err = -ENOMEM;
	b.q = kvzalloc(row, GFP_KERNEL);
	b.vecs = kvmalloc_array(rper, sizeof(*b.vecs), GFP_KERNEL);
	b.ids = kvmalloc_array(rper, sizeof(*b.ids), GFP_KERNEL);
	b.keys = kvmalloc_array(rper, sizeof(*b.keys), GFP_KERNEL);
	b.cheap = kvmalloc_array(VEXFS_INDEX_MAX_NLIST, sizeof(*b.cheap),
				 GFP_KERNEL);
	b.rheap = kvmalloc_array(k, sizeof(*b.rheap), GFP_KERNEL);
	b.plist = kvmalloc_array(VEXFS_INDEX_MAX_NLIST, sizeof(*b.plist),
				 GFP_KERNEL);
	b.probe = kvmalloc(VEXFS_INDEX_MAX_NLIST, GFP_KERNEL);
	b.obits = kvmalloc_array(k, sizeof(*b.obits), GFP_KERNEL);
	b.oids = kvmalloc_array(k, sizeof(*b.oids), GFP_KERNEL);
	m.pages = kvmalloc_array(rper, sizeof(*m.pages), GFP_KERNEL);
	m.bounce = kvmalloc(rper * row, GFP_KERNEL);
	m.cand = kvmalloc_array(rper, sizeof(*m.cand), GFP_KERNEL);
	if (!b.q || !b.vecs || !b.ids || !b.keys || !b.cheap || !b.rheap ||
	    !b.plist || !b.probe || !b.obits || !b.oids || !m.pages ||
	    !m.bounce || !m.cand)
		goto out;
	m.inode = inode;
	m.rper = rper;
	m.probe = b.probe;

	err = 0;
	for (qi = 0; qi < nq && !err; qi++) {
		const u32 *bits = (const u32 *)b.q;
		size_t off = (size_t)qi * k;

		if (copy_from_user(b.q, uq + (size_t)qi * vbytes, vbytes)) {
			err = -EFAULT;
			break;
		}
		for (j = 0; j < ci.dim; j++)
			if (vexfs_bits_nonfinite(bits[j]))
				err = -EINVAL;
		if (err)
			break;

		inode_lock_shared(inode);
		err = vexfs_coll_info_load(inode, &now);
		if (!err)
			err = idx_load(inode, &now, &xnow);
		if (!err && (now.dim != ci.dim || now.metric != ci.metric))
			err = -ESTALE;
		if (!err) {
			m.ci = &now;
			m.x = &xnow;
			err = one_query(&m, &b, k, min(nprobe, xnow.nlist),
					&arg->scanned);
		}
		inode_unlock_shared(inode);
		if (!err && (copy_to_user(udist + off * 4, b.obits, k * 4) ||
			     copy_to_user(uids + off * 8, b.oids, k * 8)))
			err = -EFAULT;
	}
out:
	bufs_free(&b, &m);
	return err;
}

int vexfs_index_stats(struct file *filp, struct vexfs_ioc_index_stats *arg)
{
	struct inode *inode = file_inode(filp);
	struct vexfs_coll_info ci;
	struct ivf x;
	u64 base;
	int err;

	inode_lock_shared(inode);
	err = vexfs_coll_info_load(inode, &ci);
	if (err)
		goto out;
	arg->count = ci.count;
	arg->pending = ci.count;
	err = idx_load(inode, &ci, &x);
	if (err == -ENODATA) {
		err = 0;
		goto out;
	}
	if (err)
		goto out;
	arg->nlist = x.nlist;
	arg->nprobe = x.nprobe;
	arg->kind = VEXFS_INDEX_KIND_IVF;
	arg->index_bytes = VEXFS_BLOCK_SIZE +
		round_up(x.alloc * 4, VEXFS_BLOCK_SIZE) +
		round_up((u64)x.nlist * ci.dim4 * 4, VEXFS_BLOCK_SIZE);
	for (base = 0; base < ci.count && !err; base += ENT_PER_PAGE) {
		u32 n = min_t(u64, ENT_PER_PAGE, ci.count - base), i;
		struct page *page;
		const __le32 *ents;

		page = read_mapping_page(inode->i_mapping,
					 assign_pos(base) >> PAGE_SHIFT, NULL);
		if (IS_ERR(page)) {
			err = PTR_ERR(page);
			break;
		}
		ents = page_address(page);
		for (i = 0; i < n; i++) {
			u32 v = le32_to_cpu(ents[i]);

			if (v > x.nlist)
				err = -EUCLEAN;
			else if (v)
				arg->indexed++;
		}
		put_page(page);
		cond_resched();
	}
	arg->pending = ci.count - arg->indexed;
out:
	inode_unlock_shared(inode);
	return err;
}

int vexfs_index_drop(struct file *filp)
{
	struct inode *inode = file_inode(filp);
	struct vexfs_coll_info ci;
	int err;

	inode_lock(inode);
	err = vexfs_coll_info_load(inode, &ci);
	if (!err && (ci.flags & VEXFS_COLL_FL_INDEX)) {
		err = idx_remove(filp, &ci);
		if (!err)
			file_update_time(filp);
	}
	inode_unlock(inode);
	return err;
}
