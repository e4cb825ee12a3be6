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
 *          For dtype VEXFS_DTYPE_F16 they are dim4 float16 values instead,
 *          converted to float32 inside the job (in the FPU section) by the
 *          converter f16cvt, VEXFS_F16_BLOCK floats at a time, into cvt
 *          (VEXFS_F16_BLOCK floats) pointed to by cvt_vecs
 *          (VEXFS_F16_BLOCK / 4 pointers): scratch the caller allocates.
 *          The distances are then those of the float32 path on the exact
 *          float32 values of the stored float16 numbers.
 * keys:    out, nq rows of keys, row q at keys + q * ldk (ldk = nr if 0).
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
#define VEXFS_F16_BLOCK		8192	/* floats converted per step (32 KiB) */

struct vexfs_dist_job {
	const void *queries;
	const void *const *vecs;
	u32 *keys;
	const u32 *thresh;
	u32 nq;
	u32 nr;
	u32 dim4;
	u32 metric;		/* enum vexfs_metric */
	u32 ldk;		/* key row stride; 0: nr */
	u32 dtype;		/* enum vexfs_dtype of the stored vectors */
	u32 f16cvt;		/* VEXFS_F16CVT_*, for dtype VEXFS_DTYPE_F16 */
	void *cvt;		/* float16: VEXFS_F16_BLOCK floats of scratch */
	const void **cvt_vecs;	/* float16: VEXFS_F16_BLOCK / 4 pointers */
};

/* key row stride of a job */
static inline u32 vexfs_job_ldk(const struct vexfs_dist_job *job)
{
	return job->ldk ? job->ldk : job->nr;
}

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
 * float16 -> float32, n values (a multiple of 4 for sse2 and f16c), exact
 * (every binary16 value, subnormals, infinities and NaN payloads included,
 * is a binary32 value). FPU code like the kernels above: call only inside
 * kernel_fpu_begin()/end(). f16c needs the F16C CPU feature (and lives in
 * the AVX2 object). vexfs_f16_cvt() dispatches on VEXFS_F16CVT_*.
 */
void vexfs_f16_cvt_scalar(const void *src, void *dst, u32 n);
void vexfs_f16_cvt_sse2(const void *src, void *dst, u32 n);
void vexfs_f16_cvt_f16c(const void *src, void *dst, u32 n);
void vexfs_f16_cvt(u32 f16cvt, const void *src, void *dst, u32 n);

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
