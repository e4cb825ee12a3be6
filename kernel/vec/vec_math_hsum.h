/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vec_math_hsum.h - 4-lane helpers shared by vec_math_sse2.c and
 * vec_math_avx2.c (FPU code: included only by those two files, after they
 * define v4sf as float __attribute__((vector_size(16)))).
 */
#ifndef _VEXFS_VEC_MATH_HSUM_H
#define _VEXFS_VEC_MATH_HSUM_H

#define v4si_t int __attribute__((vector_size(16)))
/* (a macro, like v4sf: kernel style has no new typedefs) */

#ifdef __CHECKER__
/* sparse has no __builtin_shuffle: the same sums, lane by lane */
static inline v4sf hsum4x4(v4sf t0, v4sf t1, v4sf t2, v4sf t3)
{
	union { v4sf v; float f[4]; } a = { .v = t0 }, b = { .v = t1 },
		c = { .v = t2 }, d = { .v = t3 }, r;

	r.f[0] = (a.f[0] + a.f[2]) + (a.f[1] + a.f[3]);
	r.f[1] = (b.f[0] + b.f[2]) + (b.f[1] + b.f[3]);
	r.f[2] = (c.f[0] + c.f[2]) + (c.f[1] + c.f[3]);
	r.f[3] = (d.f[0] + d.f[2]) + (d.f[1] + d.f[3]);
	return r.v;
}
#else
/* [sum t0, sum t1, sum t2, sum t3]: four horizontal sums in six shuffles/adds */
static inline v4sf hsum4x4(v4sf t0, v4sf t1, v4sf t2, v4sf t3)
{
	const v4si_t lo = { 0, 4, 1, 5 }, hi = { 2, 6, 3, 7 };
	const v4si_t lh = { 0, 1, 4, 5 }, hl = { 2, 3, 6, 7 };
	v4sf a = __builtin_shuffle(t0, t1, lo) + __builtin_shuffle(t0, t1, hi);
	v4sf b = __builtin_shuffle(t2, t3, lo) + __builtin_shuffle(t2, t3, hi);

	return __builtin_shuffle(a, b, lh) + __builtin_shuffle(a, b, hl);
}
#endif

/*
 * A job over float16 vectors: convert them VEXFS_F16_BLOCK floats at a time
 * (a block stays in L1) into job->cvt and run the float32 kernel fn on each
 * block, writing its keys in place (same ldk, columns r0..). The screening
 * thresholds are per query, so blocks share them.
 */
static inline void f16_run(const struct vexfs_dist_job *job,
			   void (*fn)(const struct vexfs_dist_job *job))
{
	u32 per = VEXFS_F16_BLOCK / job->dim4, r0, r;
	struct vexfs_dist_job sub = *job;

	if (!per)
		per = 1;	/* dim4 <= VEXFS_MAX_DIM < VEXFS_F16_BLOCK */
	sub.dtype = VEXFS_DTYPE_F32;
	sub.vecs = job->cvt_vecs;
	sub.ldk = vexfs_job_ldk(job);
	for (r0 = 0; r0 < job->nr; r0 += per) {
		u32 m = min(per, job->nr - r0);

		for (r = 0; r < m; r++) {
			float *row = (float *)job->cvt + (size_t)r * job->dim4;

			vexfs_f16_cvt(job->f16cvt, job->vecs[r0 + r], row,
				      job->dim4);
			job->cvt_vecs[r] = row;
		}
		sub.nr = m;
		sub.keys = job->keys + r0;
		fn(&sub);
	}
}

#endif /* _VEXFS_VEC_MATH_HSUM_H */
