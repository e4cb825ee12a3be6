/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vec_math_driver.h - the distance driver loops shared by the SIMD kernels.
 *
 * Included only by vec_math_sse2.c and vec_math_avx2.c (built with the FPU
 * enabled, see Kbuild; called only between kernel_fpu_begin() and
 * kernel_fpu_end()), after each has defined, for its own instruction set:
 *
 *   QBLOCK                 queries computed together against one vector
 *   u32 f2key(float)       distance -> sortable integer key (vector.h)
 *   float finish(metric, acc, qn, rn)   raw sum -> distance for the metric
 *   float dot1(a, x, n)    dot product of two n-float vectors
 *   float l21(a, x, n)     squared L2 distance of two n-float vectors
 *   void block4(a[QBLOCK], x, n, l2, out[QBLOCK])  QBLOCK queries vs x
 *   void tile2(a[QBLOCK], x0, x1, n, &d0, &d1)  dots of QBLOCK queries
 *                          with two vectors: d0 = [a_j . x0], d1 = [a_j . x1]
 *   v4sf, ld4()            the 4-float vector type and its unaligned load
 *   VEXFS_DIST_FN          the name of the entry point to define
 *
 * so the same loops compile to SSE2 in one object and AVX2+FMA in the
 * other (no gathers: vector loads only, see tests/host/test_vector_build.py).
 */
#ifndef _VEXFS_VEC_MATH_DRIVER_H
#define _VEXFS_VEC_MATH_DRIVER_H

/* L2 with screening by a lower bound from the expansion (see vec_dist.h) */
static u32 screen_key(const float *a, const float *x, u32 n, float dot,
		      float qn, float rn, u32 thresh)
{
	float approx = qn + rn - 2.0f * dot;
	float bound = (float)(n + 8) * (1.0f / 2097152.0f) * (qn + rn);
	u32 lb = f2key(approx - bound);

	if (lb != VEXFS_KEY_NAN && lb > thresh)
		return VEXFS_KEY_NAN;
	return f2key(l21(a, x, n));
}

/*
 * The same test for four queries at once: dots, query norms and the
 * thresholds (as floats, +Inf while a heap is not full) in vectors. The
 * float compare is the key compare for non-NaN values, and a NaN bound
 * compares false: never skipped, as in screen_key().
 */
static void screen4(const float *const a[QBLOCK], const float *x, u32 n,
		    v4sf dot, v4sf qn, float rn, v4sf thr, u32 *keys,
		    u32 stride)
{
	v4sf s = qn + rn;
	v4sf lb = (s - 2.0f * dot) - (float)(n + 8) * (1.0f / 2097152.0f) * s;
	union { v4si_t v; int i[4]; } skip = { .v = lb > thr };
	int j;

	for (j = 0; j < QBLOCK; j++)
		keys[(size_t)j * stride] = skip.i[j] ? VEXFS_KEY_NAN :
					   f2key(l21(a[j], x, n));
}

static void dist_l2_screened(const struct vexfs_dist_job *job)
{
	const float *queries = job->queries;
	u32 n = job->dim4, nq = job->nq, nr = job->nr, ldk = vexfs_job_ldk(job);
	float qn[VEXFS_DIST_MAX_NQ];
	v4sf thr[VEXFS_DIST_MAX_NQ / QBLOCK];
	u32 q, r;

	for (q = 0; q < nq; q++)
		qn[q] = dot1(queries + (size_t)q * n, queries + (size_t)q * n, n);
	for (q = 0; q + QBLOCK <= nq; q += QBLOCK) {
		union { v4sf v; u32 b[4]; } t;
		int j;

		for (j = 0; j < QBLOCK; j++)
			t.b[j] = job->thresh[q + j] == VEXFS_KEY_NAN ? 0x7f800000U :
				 vexfs_key_to_bits(job->thresh[q + j]);
		thr[q / QBLOCK] = t.v;
	}

	/*
	 * Two stored vectors against a block of four queries per pass over
	 * the dimensions (tile2: 8 sums, each vector and query chunk loaded
	 * once for 2 x 4 products); an odd last vector is paired with itself
	 * and its second result dropped.
	 */
	for (r = 0; r < nr; r += 2) {
		bool two = r + 1 < nr;
		const float *x0 = job->vecs[r];
		const float *x1 = two ? job->vecs[r + 1] : x0;
		float rn0 = dot1(x0, x0, n), rn1 = two ? dot1(x1, x1, n) : rn0;
		u32 *keys = job->keys + r;

		for (q = 0; q + QBLOCK <= nq; q += QBLOCK) {
			const float *a[QBLOCK];
			v4sf d0, d1, qn4;
			int j;

			for (j = 0; j < QBLOCK; j++)
				a[j] = queries + (size_t)(q + j) * n;
			__builtin_memcpy(&qn4, qn + q, sizeof(qn4));
			tile2(a, x0, x1, n, &d0, &d1);
			screen4(a, x0, n, d0, qn4, rn0, thr[q / QBLOCK],
				keys + (size_t)q * ldk, ldk);
			if (two)
				screen4(a, x1, n, d1, qn4, rn1, thr[q / QBLOCK],
					keys + (size_t)q * ldk + 1, ldk);
		}
		for (; q < nq; q++) {
			const float *a = queries + (size_t)q * n;

			keys[(size_t)q * ldk] =
				screen_key(a, x0, n, dot1(a, x0, n), qn[q], rn0,
					   job->thresh[q]);
			if (two)
				keys[(size_t)q * ldk + 1] =
					screen_key(a, x1, n, dot1(a, x1, n), qn[q],
						   rn1, job->thresh[q]);
		}
	}
}

static void dist_f32(const struct vexfs_dist_job *job)
{
	const float *queries = job->queries;
	u32 n = job->dim4, nq = job->nq, metric = job->metric;
	u32 ldk = vexfs_job_ldk(job);
	bool l2 = metric == VEXFS_METRIC_L2;
	float qn[VEXFS_DIST_MAX_NQ] = { 0 };
	u32 q, r;

	if (WARN_ON_ONCE(nq > VEXFS_DIST_MAX_NQ))
		return;
	/*
	 * Screening pays a norm of every stored vector per call, shared by the
	 * queries of a block; for fewer queries than a block one exact pass
	 * per pair is cheaper.
	 */
	if (l2 && job->thresh && nq >= QBLOCK) {
		dist_l2_screened(job);
		return;
	}
	if (metric == VEXFS_METRIC_COSINE)
		for (q = 0; q < nq; q++)
			qn[q] = dot1(queries + (size_t)q * n,
				     queries + (size_t)q * n, n);

	for (r = 0; r < job->nr; r++) {
		const float *x = job->vecs[r];
		u32 *keys = job->keys + r;
		float rn = 0.0f;

		if (metric == VEXFS_METRIC_COSINE)
			rn = dot1(x, x, n);
		for (q = 0; q + QBLOCK <= nq; q += QBLOCK) {
			const float *a[QBLOCK];
			float s[QBLOCK];
			int j;

			for (j = 0; j < QBLOCK; j++)
				a[j] = queries + (size_t)(q + j) * n;
			block4(a, x, n, l2, s);
			for (j = 0; j < QBLOCK; j++)
				keys[(size_t)(q + j) * ldk] =
					f2key(finish(metric, s[j], qn[q + j], rn));
		}
		for (; q < nq; q++) {
			const float *a = queries + (size_t)q * n;
			float s = l2 ? l21(a, x, n) : dot1(a, x, n);

			keys[(size_t)q * ldk] =
				f2key(finish(metric, s, qn[q], rn));
		}
	}
}

void VEXFS_DIST_FN(const struct vexfs_dist_job *job)
{
	if (job->dtype == VEXFS_DTYPE_F16)
		f16_run(job, dist_f32);
	else
		dist_f32(job);
}

#endif /* _VEXFS_VEC_MATH_DRIVER_H */
