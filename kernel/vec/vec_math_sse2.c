// SPDX-License-Identifier: GPL-2.0
/*
 * Distance kernels: SSE2 (the x86-64 baseline) and the
 * scalar reference path.
 *
 * This file (and vec_math_avx2.c) alone is built with the FPU enabled (see
 * Kbuild). Its functions must only run between kernel_fpu_begin() and
 * kernel_fpu_end(); vexfs_dist_run() in vector.c guarantees that. Floats
 * enter and leave only through memory: queries and stored vectors by
 * pointer, results as integer keys (see vector.h).
 *
 * <immintrin.h> is not usable under kbuild's -nostdinc, so SIMD code uses
 * GCC vector extensions; GCC turns them into SSE2 instructions here.
 */
#include "vec_dist.h"

#define v4sf float __attribute__((vector_size(16)))
#include "vec_math_hsum.h"

#define QBLOCK 4	/* queries computed together against one vector */

static inline u32 f2key(float f)
{
	union { float f; u32 u; } v = { .f = f };

	if (f != f)
		return VEXFS_KEY_NAN;
	if (f == 0.0f)
		return 0x80000000U;	/* -0.0 and +0.0 are equal */
	return (v.u & 0x80000000U) ? ~v.u : (v.u | 0x80000000U);
}

static inline double sqrt_d(double x)
{
	double r;

	asm("sqrtsd %1, %0" : "=x" (r) : "x" (x));
	return r;
}

/* 1 - dot / (|a| |b|) where na, nb are squared norms; 1 for a zero vector */
static inline float cosine_dist(double dot, double na, double nb)
{
	if (na == 0.0 || nb == 0.0)
		return 1.0f;
	return (float)(1.0 - dot / sqrt_d(na * nb));
}

static inline float finish(u32 metric, float acc, float qn, float rn)
{
	switch (metric) {
	case VEXFS_METRIC_IP:
		return -acc;
	case VEXFS_METRIC_COSINE:
		return cosine_dist(acc, qn, rn);
	default:
		return acc;
	}
}

/* ---- scalar path: plain C, accumulates in double ---- */

static double dot_scalar(const float *a, const float *b, u32 n)
{
	double s = 0.0;
	u32 i;

	for (i = 0; i < n; i++)
		s += (double)a[i] * (double)b[i];
	return s;
}

static double l2_scalar(const float *a, const float *b, u32 n)
{
	double s = 0.0;
	u32 i;

	for (i = 0; i < n; i++) {
		double d = (double)a[i] - (double)b[i];

		s += d * d;
	}
	return s;
}

static void dist_scalar_f32(const struct vexfs_dist_job *job)
{
	const float *queries = job->queries;
	u32 q, r, n = job->dim4, ldk = vexfs_job_ldk(job);

	for (r = 0; r < job->nr; r++) {
		const float *x = job->vecs[r];
		double rn = 0.0;

		if (job->metric == VEXFS_METRIC_COSINE)
			rn = dot_scalar(x, x, n);
		for (q = 0; q < job->nq; q++) {
			const float *a = queries + (size_t)q * n;
			float d;

			switch (job->metric) {
			case VEXFS_METRIC_L2:
				d = (float)l2_scalar(a, x, n);
				break;
			case VEXFS_METRIC_IP:
				d = (float)-dot_scalar(a, x, n);
				break;
			default:
				d = cosine_dist(dot_scalar(a, x, n),
						dot_scalar(a, a, n), rn);
				break;
			}
			job->keys[(size_t)q * ldk + r] = f2key(d);
		}
	}
}

void vexfs_dist_scalar(const struct vexfs_dist_job *job)
{
	if (job->dtype == VEXFS_DTYPE_F16)
		f16_run(job, dist_scalar_f32);
	else
		dist_scalar_f32(job);
}

/* ---- float16 -> float32 ---- */

/* one value, integer code: the reference conversion */
static inline u32 f16_bits_to_f32(u32 h)
{
	u32 s = (h & 0x8000U) << 16, e = (h >> 10) & 0x1fU, m = h & 0x3ffU;

	if (e == 0x1f)			/* Inf, NaN (payload kept) */
		return s | 0x7f800000U | (m << 13);
	if (e)				/* normal: rebias 15 -> 127 */
		return s | ((e + 112) << 23) | (m << 13);
	if (!m)				/* +-0 */
		return s;
	/* subnormal m * 2^-24: normalize (at most 10 shifts) */
	e = 113;
	while (!(m & 0x400U)) {
		m <<= 1;
		e--;
	}
	return s | (e << 23) | ((m & 0x3ffU) << 13);
}

void vexfs_f16_cvt_scalar(const void *src, void *dst, u32 n)
{
	const u8 *h = src;
	u8 *o = dst;
	u32 i;

	for (i = 0; i < n; i++) {
		u16 v;
		u32 f;

		__builtin_memcpy(&v, h + 2 * i, 2);
		f = f16_bits_to_f32(v);
		__builtin_memcpy(o + 4 * i, &f, 4);
	}
}

/*
 * Four at a time: exponent and mantissa shifted into place, then a float
 * multiply by 2^112 rebiases the exponent (exact; it also turns float16
 * subnormals, which land as float32 subnormals, into the right normal
 * floats); Inf/NaN get the all-ones exponent back, then the sign.
 * Needs MXCSR without DAZ/FTZ: kernel_fpu_begin() loads the default.
 */
void vexfs_f16_cvt_sse2(const void *src, void *dst, u32 n)
{
	const u8 *h = src;
	u8 *o = dst;
	u32 i;

	for (i = 0; i + 4 <= n; i += 4) {
		union { v4si_t v; int i[4]; } w;
		v4si_t x, m, r;
		u16 v[4];
		v4sf f;
		int j;

		__builtin_memcpy(v, h + 2 * i, 8);
		for (j = 0; j < 4; j++)
			w.i[j] = v[j];
		x = w.v;
		m = (x & 0x7fff) << 13;
		f = (v4sf)m * 0x1p112f;
		r = (v4si_t)f | ((m >= (0x7c00 << 13)) & 0x7f800000);
		r |= (x & 0x8000) << 16;
		__builtin_memcpy(o + 4 * i, &r, 16);
	}
	if (i < n)
		vexfs_f16_cvt_scalar(h + 2 * i, o + 4 * i, n - i);
}

void vexfs_f16_cvt(u32 f16cvt, const void *src, void *dst, u32 n)
{
	if (f16cvt == VEXFS_F16CVT_F16C)
		vexfs_f16_cvt_f16c(src, dst, n);
	else if (f16cvt == VEXFS_F16CVT_SSE2)
		vexfs_f16_cvt_sse2(src, dst, n);
	else
		vexfs_f16_cvt_scalar(src, dst, n);
}

/* ---- SSE2 path ---- */

/* unaligned loads (movups): no alignment is assumed anywhere */
static inline v4sf ld4(const float *p)
{
	v4sf v;

	__builtin_memcpy(&v, p, sizeof(v));
	return v;
}

static inline float hsum4(v4sf v)
{
	union { v4sf v; float f[4]; } u = { .v = v };

	return (u.f[0] + u.f[1]) + (u.f[2] + u.f[3]);
}

/*
 * One query against one vector (the single-query path, and the norms):
 * four independent accumulators, so the loop is bound by the SIMD units'
 * throughput, not by the latency of one chain of additions (2x faster on
 * the host at 128 dims; no slower under TCG, where every lane is emulated).
 */
static float dot1(const float *a, const float *x, u32 n)
{
	v4sf s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
	u32 i = 0;

	for (; i + 16 <= n; i += 16) {
		s0 += ld4(a + i) * ld4(x + i);
		s1 += ld4(a + i + 4) * ld4(x + i + 4);
		s2 += ld4(a + i + 8) * ld4(x + i + 8);
		s3 += ld4(a + i + 12) * ld4(x + i + 12);
	}
	for (; i < n; i += 4)
		s0 += ld4(a + i) * ld4(x + i);
	return hsum4((s0 + s1) + (s2 + s3));
}

/* four queries a[0..3] against one vector x: dot or squared L2 */
static void block4(const float *const a[QBLOCK], const float *x, u32 n,
		   bool l2, float out[QBLOCK])
{
	v4sf s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
	u32 i;

	if (l2) {
		for (i = 0; i < n; i += 4) {
			v4sf xv = ld4(x + i), d0, d1, d2, d3;

			d0 = ld4(a[0] + i) - xv;
			d1 = ld4(a[1] + i) - xv;
			d2 = ld4(a[2] + i) - xv;
			d3 = ld4(a[3] + i) - xv;
			s0 += d0 * d0;
			s1 += d1 * d1;
			s2 += d2 * d2;
			s3 += d3 * d3;
		}
	} else {
		for (i = 0; i < n; i += 4) {
			v4sf xv = ld4(x + i);

			s0 += ld4(a[0] + i) * xv;
			s1 += ld4(a[1] + i) * xv;
			s2 += ld4(a[2] + i) * xv;
			s3 += ld4(a[3] + i) * xv;
		}
	}
	out[0] = hsum4(s0);
	out[1] = hsum4(s1);
	out[2] = hsum4(s2);
	out[3] = hsum4(s3);
}

/* dots of four queries a[0..3] with two vectors x0, x1 (QBLOCK == 4) */
static void tile2(const float *const a[QBLOCK], const float *x0,
		  const float *x1, u32 n, v4sf *d0, v4sf *d1)
{
	v4sf s00 = { 0 }, s01 = { 0 }, s02 = { 0 }, s03 = { 0 };
	v4sf s10 = { 0 }, s11 = { 0 }, s12 = { 0 }, s13 = { 0 };
	u32 i;

	for (i = 0; i < n; i += 4) {
		v4sf y0 = ld4(x0 + i), y1 = ld4(x1 + i), av;

		av = ld4(a[0] + i);
		s00 += av * y0;
		s10 += av * y1;
		av = ld4(a[1] + i);
		s01 += av * y0;
		s11 += av * y1;
		av = ld4(a[2] + i);
		s02 += av * y0;
		s12 += av * y1;
		av = ld4(a[3] + i);
		s03 += av * y0;
		s13 += av * y1;
	}
	*d0 = hsum4x4(s00, s01, s02, s03);
	*d1 = hsum4x4(s10, s11, s12, s13);
}

/* squared L2 of one pair, four accumulators as in dot1() */
static float l21(const float *a, const float *x, u32 n)
{
	v4sf s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 }, d;
	u32 i = 0;

	for (; i + 16 <= n; i += 16) {
		d = ld4(a + i) - ld4(x + i);
		s0 += d * d;
		d = ld4(a + i + 4) - ld4(x + i + 4);
		s1 += d * d;
		d = ld4(a + i + 8) - ld4(x + i + 8);
		s2 += d * d;
		d = ld4(a + i + 12) - ld4(x + i + 12);
		s3 += d * d;
	}
	for (; i < n; i += 4) {
		d = ld4(a + i) - ld4(x + i);
		s0 += d * d;
	}
	return hsum4((s0 + s1) + (s2 + s3));
}

#define VEXFS_DIST_FN vexfs_dist_sse2
#include "vec_math_driver.h"
