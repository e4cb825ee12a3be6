// SPDX-License-Identifier: GPL-2.0
/*
 * vec_host.c - userspace glue of the portable vector core: the vectors live
 * in a malloc'd array (rows padded to dim4 floats, as records are in the
 * kernel), the scan loop and distance kernels are kernel/vec/'s, unchanged.
 * Sizing follows vexfs_coll_search() in kernel/vector.c.
 */
#include <stdlib.h>
#include <string.h>

#include "vec_scan.h"
#include "vec_ivf.h"
#include "vec_host.h"

#define FPU_WORK	(1U << 20)	/* multiply-adds per job, as in the kernel */
#define IO_CHUNK	(256U * 1024U)	/* bytes of vectors per window */

struct host_src {
	const float *x;		/* n rows of dim4 floats */
	uint32_t dim4;
	int simd;
};

static int host_map(void *ctx, u64 slot, u32 nr, const void **vecs, u64 *ids)
{
	struct host_src *h = ctx;
	u32 r;

	for (r = 0; r < nr; r++) {
		vecs[r] = h->x + (size_t)(slot + r) * h->dim4;
		ids[r] = slot + r;
	}
	return 0;
}

static void host_unmap(void *ctx)
{
}

static int host_run(void *ctx, const struct vexfs_dist_job *job)
{
	struct host_src *h = ctx;

	if (h->simd == VEXFS_SIMD_AVX2)
		vexfs_dist_avx2(job);
	else if (h->simd == VEXFS_SIMD_SSE2)
		vexfs_dist_sse2(job);
	else
		vexfs_dist_scalar(job);
	return 0;
}

static int host_pause(void *ctx)
{
	return 0;
}

static const struct vexfs_scan_ops host_ops = {
	.map = host_map, .unmap = host_unmap, .run = host_run,
	.pause = host_pause,
};

int vexfs_host_simd_ok(int simd)
{
	if (simd == VEXFS_SIMD_SCALAR || simd == VEXFS_SIMD_SSE2)
		return 1;
	if (simd == VEXFS_SIMD_AVX2)
		return __builtin_cpu_supports("avx2") &&
		       __builtin_cpu_supports("fma");
	return 0;
}

int vexfs_host_simd_default(void)
{
	return vexfs_host_simd_ok(VEXFS_SIMD_AVX2) ? VEXFS_SIMD_AVX2 :
						      VEXFS_SIMD_SSE2;
}

/* rows of dim floats -> rows of dim4 floats, zero padded (NULL: no memory) */
static float *pad_rows(const float *src, uint64_t n, uint32_t dim, uint32_t dim4)
{
	float *dst;
	uint64_t i;

	if (dim == dim4)
		return (float *)src;
	dst = calloc(n ? n : 1, (size_t)dim4 * sizeof(float));
	if (!dst)
		return NULL;
	for (i = 0; i < n; i++)
		memcpy(dst + i * dim4, src + i * dim, (size_t)dim * sizeof(float));
	return dst;
}

int vexfs_host_search(const float *x, uint64_t n, uint32_t dim,
		      const float *q, uint32_t nq, uint32_t k, uint32_t metric,
		      int simd, float *dist, int64_t *ids)
{
	uint32_t dim4 = (dim + 3) & ~3U, qper, rper, done, j;
	struct host_src src = { .dim4 = dim4 };
	struct vexfs_scan s = { 0 };
	float *xp = NULL, *qbuf = NULL;
	u32 *obits = NULL;
	int err = -ENOMEM;

	if (!dim || dim > VEXFS_MAX_DIM || !k || k > VEXFS_MAX_K ||
	    metric > VEXFS_METRIC_IP || (simd >= 0 && !vexfs_host_simd_ok(simd)))
		return -EINVAL;
	src.simd = simd < 0 ? vexfs_host_simd_default() : simd;
	qper = 16384 / k;
	qper = qper < 1 ? 1 : (qper > VEXFS_DIST_MAX_NQ ? VEXFS_DIST_MAX_NQ : qper);
	qper = qper > nq ? (nq ? nq : 1) : qper;
	rper = FPU_WORK / (qper * dim4);
	if (rper > IO_CHUNK / (dim4 * 4))
		rper = IO_CHUNK / (dim4 * 4);
	if (rper < 1)
		rper = 1;

	xp = pad_rows(x, n, dim, dim4);
	qbuf = calloc((size_t)qper * dim4, sizeof(float));
	s.vecs = malloc(rper * sizeof(*s.vecs));
	s.ids = malloc(rper * sizeof(*s.ids));
	s.keys = malloc((size_t)qper * rper * sizeof(*s.keys));
	s.thresh = malloc(qper * sizeof(*s.thresh));
	s.hn = malloc(qper * sizeof(*s.hn));
	s.heaps = malloc((size_t)qper * k * sizeof(*s.heaps));
	obits = malloc(k * sizeof(*obits));
	if (!xp || !qbuf || !s.vecs || !s.ids || !s.keys || !s.thresh || !s.hn ||
	    !s.heaps || !obits)
		goto out;
	src.x = xp;
	s.ops = &host_ops;
	s.ctx = &src;
	s.queries = qbuf;
	s.k = k;
	s.dim4 = dim4;
	s.metric = metric;
	s.screen = metric == VEXFS_METRIC_L2 && src.simd != VEXFS_SIMD_SCALAR;
	s.count = n;
	s.rper = rper;

	err = 0;
	for (done = 0; done < nq && !err; done += qper) {
		uint32_t m = nq - done < qper ? nq - done : qper, qi;

		for (qi = 0; qi < m; qi++)
			memcpy(qbuf + (size_t)qi * dim4, q + (size_t)(done + qi) * dim,
			       (size_t)dim * sizeof(float));
		s.nq = m;
		err = vexfs_scan_run(&s);
		for (qi = 0; qi < m && !err; qi++) {
			size_t row = (size_t)(done + qi) * k;

			vexfs_scan_result(&s, qi, obits, (u64 *)(ids + row));
			for (j = 0; j < k; j++)
				memcpy(dist + row + j, &obits[j], sizeof(float));
		}
	}
out:
	free(obits);
	free(s.heaps);
	free(s.hn);
	free(s.thresh);
	free(s.keys);
	free(s.ids);
	free(s.vecs);
	free(qbuf);
	if (xp != x)
		free(xp);
	return err;
}

/* ---- IVF (vec_ivf.c), the same flow as kernel/index.c ---- */

struct host_cand {
	const float *x;		/* rows of dim4 floats */
	const u64 *slots;	/* visited slots, in order */
	uint32_t dim4;
	int simd;
};

static int cand_map(void *ctx, u64 slot, u32 nr, const void **vecs, u64 *ids)
{
	struct host_cand *h = ctx;
	u32 r;

	for (r = 0; r < nr; r++) {
		u64 s = h->slots[slot + r];

		vecs[r] = h->x + (size_t)s * h->dim4;
		ids[r] = s;
	}
	return 0;
}

static int cand_run(void *ctx, const struct vexfs_dist_job *job)
{
	struct host_cand *h = ctx;
	struct host_src src = { .simd = h->simd };

	return host_run(&src, job);
}

static const struct vexfs_scan_ops cand_ops = {
	.map = cand_map, .unmap = host_unmap, .run = cand_run,
	.pause = host_pause,
};

int vexfs_host_ivf_search(const float *x, uint64_t n, uint32_t dim,
			  const float *cent, uint32_t nlist, const uint32_t *assign,
			  const float *q, uint32_t nq, uint32_t k, uint32_t nprobe,
			  uint32_t metric, int simd, float *dist, int64_t *ids,
			  uint64_t *scanned)
{
	uint32_t dim4 = (dim + 3) & ~3U, rper, qi, j, hn = 0, thresh = 0;
	struct host_src csrc = { .dim4 = dim4 };
	struct host_cand rsrc = { .dim4 = dim4 };
	struct vexfs_scan cs = { 0 }, rs;
	float *xp = NULL, *cp = NULL, *qbuf = NULL;
	struct vexfs_topk_ent *cheap = NULL, *rheap = NULL;
	u64 *plist = NULL, *slots = NULL, *sids = NULL;
	const void **vecs = NULL;
	u32 *keys = NULL, *obits = NULL;
	u8 *probe = NULL;
	int err = -ENOMEM;

	if (!dim || dim > VEXFS_MAX_DIM || !k || k > VEXFS_MAX_K || !nlist ||
	    nlist > VEXFS_INDEX_MAX_NLIST || !nprobe || nprobe > nlist ||
	    metric > VEXFS_METRIC_IP || n > UINT32_MAX ||
	    (simd >= 0 && !vexfs_host_simd_ok(simd)))
		return -EINVAL;
	simd = simd < 0 ? vexfs_host_simd_default() : simd;
	csrc.simd = simd;
	rsrc.simd = simd;
	rper = FPU_WORK / dim4;
	rper = rper > 64 ? 64 : (rper < 1 ? 1 : rper);
	*scanned = 0;

	xp = pad_rows(x, n, dim, dim4);
	cp = pad_rows(cent, nlist, dim, dim4);
	qbuf = calloc(dim4, sizeof(float));
	cheap = malloc(nprobe * sizeof(*cheap));
	rheap = malloc(k * sizeof(*rheap));
	plist = malloc(nprobe * sizeof(*plist));
	slots = malloc((n ? n : 1) * sizeof(*slots));
	sids = malloc(rper * sizeof(*sids));
	vecs = malloc(rper * sizeof(*vecs));
	keys = malloc(rper * sizeof(*keys));
	obits = malloc(k * sizeof(*obits));
	probe = malloc(nlist);
	if (!xp || !cp || !qbuf || !cheap || !rheap || !plist || !slots ||
	    !sids || !vecs || !keys || !obits || !probe)
		goto out;
	csrc.x = cp;
	rsrc.x = xp;
	rsrc.slots = slots;
	cs.ops = &host_ops;
	cs.ctx = &csrc;
	cs.queries = qbuf;
	cs.nq = 1;
	cs.k = nprobe;
	cs.dim4 = dim4;
	cs.metric = metric;
	cs.screen = metric == VEXFS_METRIC_L2 && simd != VEXFS_SIMD_SCALAR;
	cs.count = nlist;
	cs.rper = rper;
	cs.vecs = vecs;
	cs.ids = sids;
	cs.keys = keys;
	cs.thresh = &thresh;
	cs.hn = &hn;
	cs.heaps = cheap;
	rs = cs;
	rs.ops = &cand_ops;
	rs.ctx = &rsrc;
	rs.k = k;
	rs.heaps = rheap;

	err = 0;
	for (qi = 0; qi < nq && !err; qi++) {
		u32 from = 0;
		s64 cnt;
		int got;

		memcpy(qbuf, q + (size_t)qi * dim, (size_t)dim * sizeof(float));
		err = vexfs_scan_run(&cs);
		if (err)
			break;
		for (j = 0; j < hn; j++)
			plist[j] = cheap[j].id;
		err = vexfs_ivf_probe_set(probe, nlist, plist, hn);
		if (err)
			break;
		cnt = vexfs_ivf_count(assign, (u32)n, probe, nlist);
		if (cnt < 0) {
			err = (int)cnt;
			break;
		}
		got = vexfs_ivf_gather(assign, (u32)n, &from, probe, nlist, 0,
				       slots, (u32)n);
		if (got != cnt) {
			err = got < 0 ? got : -EIO;
			break;
		}
		rs.count = (u64)cnt;
		*scanned += (u64)cnt;
		err = vexfs_scan_run(&rs);
		if (err)
			break;
		vexfs_scan_result(&rs, 0, obits, (u64 *)(ids + (size_t)qi * k));
		for (j = 0; j < k; j++)
			memcpy(dist + (size_t)qi * k + j, &obits[j], sizeof(float));
	}
out:
	free(probe);
	free(obits);
	free(keys);
	free(vecs);
	free(sids);
	free(slots);
	free(plist);
	free(rheap);
	free(cheap);
	free(qbuf);
	if (cp != cent)
		free(cp);
	if (xp != x)
		free(xp);
	return err;
}
