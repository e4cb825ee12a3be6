// SPDX-License-Identifier: GPL-2.0
/*
 * vec_scan.c - exact top-k: the scan loop and the per-query heaps.
 * Integer code only; see vec_scan.h. Same file in vexfs.ko and the host
 * library.
 */
#include "vec_scan.h"

/* (key, id) order: smaller distance first, ties by smaller id */
static bool ent_less(const struct vexfs_topk_ent *a,
		     const struct vexfs_topk_ent *b)
{
	return a->key < b->key || (a->key == b->key && a->id < b->id);
}

/* max-heap of the k best so far: h[0] is the worst kept */
static void heap_sift_down(struct vexfs_topk_ent *h, u32 n, u32 i)
{
	for (;;) {
		u32 l = 2 * i + 1, r = l + 1, m = i;
		struct vexfs_topk_ent t;

		if (l < n && ent_less(&h[m], &h[l]))
			m = l;
		if (r < n && ent_less(&h[m], &h[r]))
			m = r;
		if (m == i)
			return;
		t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void heap_push(struct vexfs_topk_ent *h, u32 *n, u32 k, u32 key,
		      u64 id)
{
	struct vexfs_topk_ent e = { .key = key, .id = id };
	u32 i;

	if (*n == k) {
		if (!ent_less(&e, &h[0]))
			return;
		h[0] = e;
		heap_sift_down(h, k, 0);
		return;
	}
	i = (*n)++;
	h[i] = e;
	while (i && ent_less(&h[(i - 1) / 2], &h[i])) {
		u32 p = (i - 1) / 2;
		struct vexfs_topk_ent t = h[p];

		h[p] = h[i];
		h[i] = t;
		i = p;
	}
}

static int topk_cmp(const void *a, const void *b)
{
	const struct vexfs_topk_ent *x = a, *y = b;

	if (ent_less(x, y))
		return -1;
	return ent_less(y, x) ? 1 : 0;
}

int vexfs_scan_run(struct vexfs_scan *s)
{
	u64 slot = 0;
	u32 qi, r;
	int err = 0;

	if (WARN_ON_ONCE(s->nq > VEXFS_DIST_MAX_NQ || !s->k || !s->rper ||
			 (s->dtype == VEXFS_DTYPE_F16 &&
			  (!s->cvt || !s->cvt_vecs))))
		return -EINVAL;	/* a caller bug, never user input */
	memset(s->hn, 0, s->nq * sizeof(*s->hn));
	while (slot < s->count) {
		u32 nr = (u32)min((u64)s->rper, s->count - slot);
		struct vexfs_dist_job job = {
			.queries = s->queries, .vecs = s->vecs, .keys = s->keys,
			.thresh = s->screen ? s->thresh : NULL,
			.nq = s->nq, .nr = nr, .dim4 = s->dim4,
			.metric = s->metric, .dtype = s->dtype,
			.f16cvt = s->f16cvt, .cvt = s->cvt,
			.cvt_vecs = s->cvt_vecs,
		};

		/* worst kept result per query: anything provably worse is skipped */
		for (qi = 0; qi < s->nq; qi++)
			s->thresh[qi] = s->hn[qi] == s->k ?
					s->heaps[(size_t)qi * s->k].key :
					VEXFS_KEY_NAN;

		err = s->ops->map(s->ctx, slot, nr, s->vecs, s->ids);
		if (!err)
			err = s->ops->run(s->ctx, &job);
		s->ops->unmap(s->ctx);
		if (err)
			break;
		for (qi = 0; qi < s->nq; qi++) {
			const u32 *kq = s->keys + (size_t)qi * nr;
			struct vexfs_topk_ent *h = s->heaps + (size_t)qi * s->k;
			u32 *hn = &s->hn[qi];

			for (r = 0; r < nr; r++)
				if (*hn < s->k || kq[r] <= h[0].key)
					heap_push(h, hn, s->k, kq[r], s->ids[r]);
		}
		slot += nr;
		err = s->ops->pause(s->ctx);
		if (err)
			break;
	}
	return err;
}

void vexfs_scan_result(struct vexfs_scan *s, u32 q, u32 *bits, u64 *ids)
{
	struct vexfs_topk_ent *h = s->heaps + (size_t)q * s->k;
	u32 n = s->hn[q], j;

	vec_sort(h, n, sizeof(*h), topk_cmp);
	for (j = 0; j < s->k; j++) {
		if (j < n) {
			bits[j] = vexfs_key_to_bits(h[j].key);
			ids[j] = h[j].id;
		} else {
			bits[j] = 0x7f800000U;	/* +Inf */
			ids[j] = VEXFS_NO_ID;
		}
	}
}
