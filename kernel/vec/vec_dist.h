/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vec_dist.h - the distance kernels of the portable vector core: the job
 * they run, the metrics, and the integer keys distances leave them as.
 * Same code in vexfs.ko and in the host library (see vec_shim.h).
 */
#ifndef _VEXFS_VEC_DIST_H
#define _VEXFS_VEC_DIST_H

#include "vec_shim.h"
#include "vexfs_fs.h"

/*
 * A distance job: nq queries against nr stored vectors.
 *
 * queries: nq rows of dim4 floats (dim4 = round_up(dim, 4)), zero padded.
 * vecs:    nr pointers to stored vectors (in the page cache, or copies of
 *          records that cross a page), each dim4 floats, zero padded.
 * keys:    out, nq rows of nr keys (row q at keys + q * nr).
 * thresh:  L2 only, optional: per query, the key of the worst of the k
 *          results kept so far (VEXFS_KEY_NAN while fewer than k). A stored
 *          vector whose distance provably exceeds it gets key VEXFS_KEY_NAN
 *          ("skipped", never kept) instead of its exact distance.
 *
 * Screening (thresh != NULL): the distance is first bounded from below with
 * the expansion |a|^2 + |b|^2 - 2 a.b (one multiply-add per dimension
 * instead of a subtract and a multiply-add) minus a rounding error bound
 * e = (dim4 + 8) * 2^-21 * (|a|^2 + |b|^2); that bound is twice the worst-case
 * float32 error of the expansion plus that of the direct sum, so a vector
 * is skipped only if its exactly computed key would exceed thresh. Every
 * vector that can enter the top k gets its distance from the direct formula,
 * so results are identical with and without screening.
 */
#define VEXFS_DIST_MAX_NQ	64	/* queries per job */

struct vexfs_dist_job {
	const void *queries;
	const void *const *vecs;
	u32 *keys;
	const u32 *thresh;
	u32 nq;
	u32 nr;
	u32 dim4;
	u32 metric;		/* enum vexfs_metric */
};

/*
 * The distance kernels. Each must be called between kernel_fpu_begin() and
 * kernel_fpu_end(); vexfs_dist_run() does that in bounded sections.
 * Metric definitions (a = query, b = stored vector, n = dim):
 *   L2:     sum_i (a_i - b_i)^2                       (squared euclidean)
 *   IP:     -sum_i a_i * b_i                          (smaller is closer)
 *   COSINE: 1 - dot(a, b) / (|a| * |b|), and 1 when |a| or |b| is 0
 */
void vexfs_dist_scalar(const struct vexfs_dist_job *job);
void vexfs_dist_sse2(const struct vexfs_dist_job *job);
void vexfs_dist_avx2(const struct vexfs_dist_job *job);

/*
 * Keys: a float f with bit pattern b maps to
 *   b | 0x80000000   if f >= +0 (so positive floats sort above negatives),
 *   ~b               if f < 0   (larger magnitude sorts lower),
 * which makes unsigned comparison of keys equal to float comparison for all
 * non-NaN floats, infinities included. -0.0 is mapped like +0.0 and every
 * NaN to 0xffffffff (after +Inf), by the math code that produces the keys.
 */
#define VEXFS_KEY_NAN		0xffffffffU

static inline u32 vexfs_key_to_bits(u32 key)
{
	if (key == VEXFS_KEY_NAN)
		return 0x7fc00000U;	/* the canonical quiet NaN */
	return (key & 0x80000000U) ? (key & 0x7fffffffU) : ~key;
}

/* true if the float bit pattern b is NaN or +-Inf */
static inline bool vexfs_bits_nonfinite(u32 b)
{
	return (b & 0x7f800000U) == 0x7f800000U;
}

#endif /* _VEXFS_VEC_DIST_H */
