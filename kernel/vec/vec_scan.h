/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vec_scan.h - exact top-k search of the portable vector core: the scan
 * loop over stored vectors a window at a time, and the per-query heaps.
 *
 * Integer code only (distances arrive as keys, see vec_dist.h). Where the
 * vectors live is the caller's business: vexfs.ko maps page-cache pages
 * (vector.c), the host library points into an array (host/vec_host.c).
 * Both go through struct vexfs_scan_ops.
 */
#ifndef _VEXFS_VEC_SCAN_H
#define _VEXFS_VEC_SCAN_H

#include "vec_dist.h"

struct vexfs_topk_ent {
	u32 key;
	u32 pad;
	u64 id;
};

struct vexfs_scan_ops {
	/* point vecs[0..nr) and ids[0..nr) at records [slot, slot + nr) */
	int (*map)(void *ctx, u64 slot, u32 nr, const void **vecs, u64 *ids);
	/* after each window, mapped or not */
	void (*unmap)(void *ctx);
	/* run one distance job (the kernel: in one FPU section) */
	int (*run)(void *ctx, const struct vexfs_dist_job *job);
	/* between windows: reschedule, 0 or -EINTR on a fatal signal */
	int (*pause)(void *ctx);
};

/*
 * One scan: nq <= VEXFS_DIST_MAX_NQ queries (rows of dim4 floats) against
 * records [0, count), rper records per window. The caller allocates the
 * buffers: vecs and ids (rper), keys (nq * rper), thresh and hn (nq),
 * heaps (nq * k); for dtype VEXFS_DTYPE_F16 also cvt (VEXFS_F16_BLOCK
 * floats) and cvt_vecs (VEXFS_F16_BLOCK / 4 pointers), see vec_dist.h.
 */
struct vexfs_scan {
	const struct vexfs_scan_ops *ops;
	void *ctx;
	const void *queries;
	u32 nq;
	u32 k;
	u32 dim4;
	u32 metric;
	u32 dtype;		/* enum vexfs_dtype of the stored vectors */
	u32 f16cvt;		/* VEXFS_F16CVT_* */
	void *cvt;
	const void **cvt_vecs;
	bool screen;		/* L2: skip vectors provably outside the top k */
	u64 count;
	u32 rper;
	const void **vecs;
	u64 *ids;
	u32 *keys;
	u32 *thresh;
	struct vexfs_topk_ent *heaps;
	u32 *hn;
};

/* scan every record; the k best per query end up in heaps/hn */
int vexfs_scan_run(struct vexfs_scan *s);

/*
 * Query q's results in order (distance, then id): k float bit patterns and
 * ids; past the hn[q] hits, +Inf and VEXFS_NO_ID. Sorts the heap in place.
 */
void vexfs_scan_result(struct vexfs_scan *s, u32 q, u32 *bits, u64 *ids);

#endif /* _VEXFS_VEC_SCAN_H */
