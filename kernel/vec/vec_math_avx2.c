// SPDX-License-Identifier: GPL-2.0
/*
 * Distance kernels for CPUs with AVX2 and FMA, chosen at
 * run time by vector.c when boot_cpu_has(X86_FEATURE_AVX2) &&
 * boot_cpu_has(X86_FEATURE_FMA).
 *
 * Built with -mavx2 -mfma (see Kbuild); must only run between
 * kernel_fpu_begin() and kernel_fpu_end(). GCC contracts a * b + c into FMA
 * (-ffp-contract=fast is GCC's default in GNU C mode). Same definitions and
 * key encoding as vec_math_sse2.c.
 */
#include "vec_dist.h"

#define v4sf float __attribute__((vector_size(16)))
#include "vec_math_hsum.h"
#define v8sf float __attribute__((vector_size(32)))

#define QBLOCK 4

static inline u32 f2key(float f)
{
	union { float f; u32 u; } v = { .f = f };

	if (f != f)
		return VEXFS_KEY_NAN;
	if (f == 0.0f)
		return 0x80000000U;
	return (v.u & 0x80000000U) ? ~v.u : (v.u | 0x80000000U);
}

static inline double sqrt_d(double x)
{
	double r;

	asm("vsqrtsd %1, %1, %0" : "=x" (r) : "x" (x));
	return r;
}

static inline float finish(u32 metric, float acc, float qn, float rn)
{
	switch (metric) {
	case VEXFS_METRIC_IP:
		return -acc;
	case VEXFS_METRIC_COSINE:
		if (qn == 0.0f || rn == 0.0f)
			return 1.0f;
		return (float)(1.0 - (double)acc / sqrt_d((double)qn * rn));
	default:
		return acc;
	}
}

/* unaligned loads (vmovups): no alignment is assumed anywhere */
static inline v8sf ld8(const float *p)
{
	v8sf v;

	__builtin_memcpy(&v, p, sizeof(v));
	return v;
}

/* unaligned loads (movups): no alignment is assumed anywhere */
static inline v4sf ld4(const float *p)
{
	v4sf v;

	__builtin_memcpy(&v, p, sizeof(v));
	return v;
}

/* fold 8 lanes to 4 */
static inline v4sf fold(v8sf v)
{
	union { v8sf v; v4sf h[2]; } u = { .v = v };

	return u.h[0] + u.h[1];
}

static inline float hsum4(v4sf v)
{
	union { v4sf v; float f[4]; } u = { .v = v };

	return (u.f[0] + u.f[1]) + (u.f[2] + u.f[3]);
}

/*
 * One query against one vector: four independent 8-lane accumulators (the
 * loop bound by FMA throughput, not by the latency of one chain), then
 * one 8-lane and one 4-lane step for the rest of dim4.
 */
static float dot1(const float *a, const float *x, u32 n)
{
	v8sf s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
	v4sf t;
	u32 i = 0;

	for (; i + 32 <= n; i += 32) {
		s0 += ld8(a + i) * ld8(x + i);
		s1 += ld8(a + i + 8) * ld8(x + i + 8);
		s2 += ld8(a + i + 16) * ld8(x + i + 16);
		s3 += ld8(a + i + 24) * ld8(x + i + 24);
	}
	for (; i + 8 <= n; i += 8)
		s0 += ld8(a + i) * ld8(x + i);
	t = fold((s0 + s1) + (s2 + s3));
	if (i < n)
		t += ld4(a + i) * ld4(x + i);
	return hsum4(t);
}

/* squared L2 of one pair, four accumulators as in dot1() */
static float l21(const float *a, const float *x, u32 n)
{
	v8sf s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 }, d;
	v4sf t;
	u32 i = 0;

	for (; i + 32 <= n; i += 32) {
		d = ld8(a + i) - ld8(x + i);
		s0 += d * d;
		d = ld8(a + i + 8) - ld8(x + i + 8);
		s1 += d * d;
		d = ld8(a + i + 16) - ld8(x + i + 16);
		s2 += d * d;
		d = ld8(a + i + 24) - ld8(x + i + 24);
		s3 += d * d;
	}
	for (; i + 8 <= n; i += 8) {
		d = ld8(a + i) - ld8(x + i);
		s0 += d * d;
	}
	t = fold((s0 + s1) + (s2 + s3));
	if (i < n) {
		v4sf e = ld4(a + i) - ld4(x + i);

		t += e * e;
	}
	return hsum4(t);
}

/* four queries a[0..3] against one vector x: dot or squared L2 */
static void block4(const float *const a[QBLOCK], const float *x, u32 n,
		   bool l2, float out[QBLOCK])
{
	v8sf s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
	v4sf t0, t1, t2, t3;
	u32 i = 0;

	if (l2) {
		for (; i + 8 <= n; i += 8) {
			v8sf xv = ld8(x + i), d0, d1, d2, d3;

			d0 = ld8(a[0] + i) - xv;
			d1 = ld8(a[1] + i) - xv;
			d2 = ld8(a[2] + i) - xv;
			d3 = ld8(a[3] + i) - xv;
			s0 += d0 * d0;
			s1 += d1 * d1;
			s2 += d2 * d2;
			s3 += d3 * d3;
		}
	} else {
		for (; i + 8 <= n; i += 8) {
			v8sf xv = ld8(x + i);

			s0 += ld8(a[0] + i) * xv;
			s1 += ld8(a[1] + i) * xv;
			s2 += ld8(a[2] + i) * xv;
			s3 += ld8(a[3] + i) * xv;
		}
	}
	t0 = fold(s0);
	t1 = fold(s1);
	t2 = fold(s2);
	t3 = fold(s3);
	if (i < n) {	/* dim4 is a multiple of 4: one 4-wide tail */
		v4sf xv = ld4(x + i), d0, d1, d2, d3;

		if (l2) {
			d0 = ld4(a[0] + i) - xv;
			d1 = ld4(a[1] + i) - xv;
			d2 = ld4(a[2] + i) - xv;
			d3 = ld4(a[3] + i) - xv;
			t0 += d0 * d0;
			t1 += d1 * d1;
			t2 += d2 * d2;
			t3 += d3 * d3;
		} else {
			t0 += ld4(a[0] + i) * xv;
			t1 += ld4(a[1] + i) * xv;
			t2 += ld4(a[2] + i) * xv;
			t3 += ld4(a[3] + i) * xv;
		}
	}
	out[0] = hsum4(t0);
	out[1] = hsum4(t1);
	out[2] = hsum4(t2);
	out[3] = hsum4(t3);
}

/* dots of four queries a[0..3] with two vectors x0, x1 (QBLOCK == 4) */
static void tile2(const float *const a[QBLOCK], const float *x0,
		  const float *x1, u32 n, v4sf *d0, v4sf *d1)
{
	v8sf s00 = { 0 }, s01 = { 0 }, s02 = { 0 }, s03 = { 0 };
	v8sf s10 = { 0 }, s11 = { 0 }, s12 = { 0 }, s13 = { 0 };
	v4sf t00, t01, t02, t03, t10, t11, t12, t13;
	u32 i = 0;

	for (; i + 8 <= n; i += 8) {
		v8sf y0 = ld8(x0 + i), y1 = ld8(x1 + i), av;

		av = ld8(a[0] + i);
		s00 += av * y0;
		s10 += av * y1;
		av = ld8(a[1] + i);
		s01 += av * y0;
		s11 += av * y1;
		av = ld8(a[2] + i);
		s02 += av * y0;
		s12 += av * y1;
		av = ld8(a[3] + i);
		s03 += av * y0;
		s13 += av * y1;
	}
	t00 = fold(s00);
	t01 = fold(s01);
	t02 = fold(s02);
	t03 = fold(s03);
	t10 = fold(s10);
	t11 = fold(s11);
	t12 = fold(s12);
	t13 = fold(s13);
	if (i < n) {	/* dim4 is a multiple of 4: one 4-wide tail */
		v4sf y0 = ld4(x0 + i), y1 = ld4(x1 + i), av;

		av = ld4(a[0] + i);
		t00 += av * y0;
		t10 += av * y1;
		av = ld4(a[1] + i);
		t01 += av * y0;
		t11 += av * y1;
		av = ld4(a[2] + i);
		t02 += av * y0;
		t12 += av * y1;
		av = ld4(a[3] + i);
		t03 += av * y0;
		t13 += av * y1;
	}
	*d0 = hsum4x4(t00, t01, t02, t03);
	*d1 = hsum4x4(t10, t11, t12, t13);
}

/*
 * float16 -> float32 with F16C's vcvtph2ps (8 per instruction, 4 for the
 * tail: n is a multiple of 4). Only called when the CPU has F16C (checked
 * by the caller: vec_select.c, vec_host.c). Inline asm, so no -mf16c.
 */
void vexfs_f16_cvt_f16c(const void *src, void *dst, u32 n)
{
	const u8 *h = src;
	u8 *o = dst;
	u32 i;

	for (i = 0; i + 8 <= n; i += 8) {
		v8sf v;

		asm("vcvtph2ps %1, %0" : "=x" (v)
		    : "m" (*(const u64 (*)[2])(h + 2 * i)));
		__builtin_memcpy(o + 4 * i, &v, 32);
	}
	if (i + 4 <= n) {
		v4sf v;

		asm("vcvtph2ps %1, %0" : "=x" (v)
		    : "m" (*(const u64 *)(h + 2 * i)));
		__builtin_memcpy(o + 4 * i, &v, 16);
		i += 4;
	}
	if (i < n)
		vexfs_f16_cvt_scalar(h + 2 * i, o + 4 * i, n - i);
}

#define VEXFS_DIST_FN vexfs_dist_avx2
#include "vec_math_driver.h"
