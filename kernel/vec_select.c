// SPDX-License-Identifier: GPL-2.0
/*
 * vec_select.c - which distance code searches run, chosen by measurement.
 *
 * CPUID says what a CPU can run, not what runs fastest: under QEMU's TCG
 * emulator the AVX2+FMA path is ~20x slower than SSE2 although CPUID
 * reports both. So, as lib/raid6/algos.c and crypto/xor.c do, every path
 * the CPU can run is timed once at module load on a small kernel buffer and
 * the fastest is used. simd= forces one (0 scalar, 1 sse2, 2 avx2), also at
 * run time, so tests can compare the paths on the same collection.
 *
 * Integer code only: the timed jobs run in vec_math_*.c inside
 * kernel_fpu_begin()/end(); the buffers are filled with float bit patterns
 * made from integers.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <asm/cpufeature.h>
#include <asm/fpu/api.h>

#include "vector.h"

static int simd = -1;
module_param(simd, int, 0644);
MODULE_PARM_DESC(simd,
		 "distance code: -1 fastest measured at load, 0 scalar, 1 sse2, 2 avx2");

static const char *const simd_names[VEXFS_SIMD_NR] = {
	[VEXFS_SIMD_SCALAR] = "scalar",
	[VEXFS_SIMD_SSE2] = "sse2",
	[VEXFS_SIMD_AVX2] = "avx2",
};

/* MB/s of stored vectors scanned per query, per path; 0: not runnable */
static u32 simd_mbps[VEXFS_SIMD_NR];
static u32 simd_measured = VEXFS_SIMD_SSE2;

static bool cpu_has_avx2_fma(void)
{
	return boot_cpu_has(X86_FEATURE_AVX2) && boot_cpu_has(X86_FEATURE_FMA);
}

static bool simd_runnable(u32 mode)
{
	return mode != VEXFS_SIMD_AVX2 || cpu_has_avx2_fma();
}

/*
 * float16 collections: the conversion to float32 runs inside the distance
 * job (FPU section), by one of three converters, also timed at load.
 * f16cvt= forces one (0 scalar, 1 sse2, 2 f16c; f16c falls back to sse2
 * on a CPU without F16C).
 */
static int f16cvt = -1;
module_param(f16cvt, int, 0644);
MODULE_PARM_DESC(f16cvt,
		 "float16 conversion: -1 fastest measured at load, 0 scalar, 1 sse2, 2 f16c");

static const char *const f16cvt_names[VEXFS_F16CVT_NR] = {
	[VEXFS_F16CVT_SCALAR] = "scalar",
	[VEXFS_F16CVT_SSE2] = "sse2",
	[VEXFS_F16CVT_F16C] = "f16c",
};

static u32 f16cvt_mbps[VEXFS_F16CVT_NR];
static u32 f16cvt_measured = VEXFS_F16CVT_SSE2;

static bool cpu_has_f16c(void)
{
	return boot_cpu_has(X86_FEATURE_F16C) && boot_cpu_has(X86_FEATURE_AVX);
}

static bool f16cvt_runnable(u32 mode)
{
	return mode != VEXFS_F16CVT_F16C || cpu_has_f16c();
}

u32 vexfs_f16cvt_mode(void)
{
	int want = READ_ONCE(f16cvt);

	if (want == VEXFS_F16CVT_SCALAR || want == VEXFS_F16CVT_SSE2)
		return want;
	if (want == VEXFS_F16CVT_F16C)
		return cpu_has_f16c() ? VEXFS_F16CVT_F16C : VEXFS_F16CVT_SSE2;
	return READ_ONCE(f16cvt_measured);
}

const char *vexfs_f16cvt_name(u32 mode)
{
	return mode < VEXFS_F16CVT_NR ? f16cvt_names[mode] : "?";
}

u32 vexfs_f16cvt_speed(u32 mode)
{
	return mode < VEXFS_F16CVT_NR ? READ_ONCE(f16cvt_mbps[mode]) : 0;
}

u32 vexfs_simd_mode(void)
{
	int want = READ_ONCE(simd);

	if (want == VEXFS_SIMD_SCALAR || want == VEXFS_SIMD_SSE2)
		return want;
	if (want == VEXFS_SIMD_AVX2)
		return cpu_has_avx2_fma() ? VEXFS_SIMD_AVX2 : VEXFS_SIMD_SSE2;
	return READ_ONCE(simd_measured);
}

const char *vexfs_simd_name(u32 mode)
{
	return mode < VEXFS_SIMD_NR ? simd_names[mode] : "?";
}

u32 vexfs_simd_speed(u32 mode)
{
	return mode < VEXFS_SIMD_NR ? READ_ONCE(simd_mbps[mode]) : 0;
}

static void dist_call(u32 mode, const struct vexfs_dist_job *job)
{
	if (mode == VEXFS_SIMD_AVX2)
		vexfs_dist_avx2(job);
	else if (mode == VEXFS_SIMD_SSE2)
		vexfs_dist_sse2(job);
	else
		vexfs_dist_scalar(job);
}

/*
 * The longest FPU section so far, in ns (kernel_fpu_begin() to _end(),
 * both included), and how many sections ran: preemption is off inside one,
 * so on PREEMPT_RT this is the latency VexFS adds. Write 0 to reset.
 * fpu_sections is a statistic: concurrent searches may lose an increment.
 */
static unsigned long fpu_max_ns;
module_param(fpu_max_ns, ulong, 0644);
MODULE_PARM_DESC(fpu_max_ns, "longest kernel_fpu_begin/end section so far (ns)");
static unsigned long fpu_sections;
module_param(fpu_sections, ulong, 0644);
MODULE_PARM_DESC(fpu_sections, "kernel_fpu_begin/end sections run so far");

static void vexfs_fpu_account(u64 ns)
{
	unsigned long old = READ_ONCE(fpu_max_ns);

	while (ns > old) {
		unsigned long seen = cmpxchg(&fpu_max_ns, old, (unsigned long)ns);

		if (seen == old)
			break;
		old = seen;
	}
	WRITE_ONCE(fpu_sections, READ_ONCE(fpu_sections) + 1);
}

/*
 * Run one distance job in a single FPU section. Callers size jobs so that
 * nq * nr * dim4 <= FPU_WORK (vector.c) multiply-adds, which keeps each
 * preemption-disabled section well under a millisecond on real hardware.
 * ioctls run in process context, where irq_fpu_usable() is always true; if
 * it is not, we refuse rather than corrupt another context's FPU state.
 */
int vexfs_dist_run(const struct vexfs_dist_job *job)
{
	u32 mode = vexfs_simd_mode();
	u64 start;

	if (WARN_ON_ONCE(!irq_fpu_usable()))
		return -EBUSY;
	start = ktime_get_ns();
	kernel_fpu_begin();
	dist_call(mode, job);
	kernel_fpu_end();
	vexfs_fpu_account(ktime_get_ns() - start);
	return 0;
}

/* ---- the measurement ---- */

/*
 * 64 stored vectors of 128 floats (32 KiB, cache resident: this times the
 * arithmetic, as the search loop streams one window of records at a time),
 * scanned by one query (the single-query path) and by four (the blocked
 * path) per round. A path is timed for at least CAL_NS and CAL_MIN_ROUNDS
 * rounds, at most CAL_MAX_ROUNDS; its fastest round counts, so a burst of
 * load from other tasks does not decide the choice.
 */
#define CAL_DIM		128
#define CAL_NR		64
#define CAL_NQ		4
#define CAL_NS		(1 * NSEC_PER_MSEC)
#define CAL_MIN_ROUNDS	2
#define CAL_MAX_ROUNDS	64

struct cal_buf {
	u32 vecs[CAL_NR * CAL_DIM];
	u32 queries[CAL_NQ * CAL_DIM];
	u32 keys[CAL_NQ * CAL_NR];
	const void *ptrs[CAL_NR];
	u16 halves[CAL_NR * CAL_DIM];		/* float16 in [1, 2) */
	const void *hptrs[CAL_NR];
	u32 cvt[VEXFS_F16_BLOCK];		/* conversion scratch */
	const void *cvt_vecs[VEXFS_F16_BLOCK / 4];
};

/* bit patterns of floats in [1, 2) from a 32-bit LCG (no float code here) */
static void cal_fill(u32 *bits, u32 n, u32 *seed)
{
	u32 i;

	for (i = 0; i < n; i++) {
		*seed = *seed * 1664525U + 1013904223U;
		bits[i] = 0x3f800000U | (*seed >> 9);
	}
}

/*
 * nanoseconds of the fastest round of @mode; with @cvt < VEXFS_F16CVT_NR
 * the stored vectors are the float16 ones, converted by @cvt
 */
static u64 cal_time(struct cal_buf *b, u32 mode, u32 cvt)
{
	struct vexfs_dist_job one = {
		.queries = b->queries, .vecs = b->ptrs, .keys = b->keys,
		.nq = 1, .nr = CAL_NR, .dim4 = CAL_DIM, .metric = VEXFS_METRIC_L2,
	};
	struct vexfs_dist_job four;
	u64 best = U64_MAX, spent = 0;
	u32 round;

	if (cvt < VEXFS_F16CVT_NR) {
		one.vecs = b->hptrs;
		one.dtype = VEXFS_DTYPE_F16;
		one.f16cvt = cvt;
		one.cvt = b->cvt;
		one.cvt_vecs = b->cvt_vecs;
	}
	four = one;
	four.nq = CAL_NQ;
	for (round = 0; round < CAL_MAX_ROUNDS; round++) {
		u64 t0, t;

		if (round >= CAL_MIN_ROUNDS && spent >= CAL_NS)
			break;
		kernel_fpu_begin();
		t0 = ktime_get_ns();
		dist_call(mode, &one);
		dist_call(mode, &four);
		t = ktime_get_ns() - t0;
		kernel_fpu_end();
		best = min(best, max_t(u64, t, 1));
		spent += t;
		cond_resched();
	}
	return best;
}

/*
 * float16: time a search of the float16 copy of the buffer (conversion and
 * distances in one FPU section, as searches run) with every runnable
 * converter, using distance path @mode; remember the fastest. MB/s count
 * the float16 bytes scanned.
 */
static void vexfs_f16cvt_calibrate(struct cal_buf *b, u32 mode)
{
	u64 bytes = (u64)CAL_NR * CAL_DIM * 2 * (1 + CAL_NQ);
	u32 cvt, best = VEXFS_F16CVT_SSE2;
	char msg[128];
	int len = 0;

	for (cvt = 0; cvt < VEXFS_F16CVT_NR; cvt++) {
		u64 ns;

		if (!f16cvt_runnable(cvt))
			continue;
		ns = cal_time(b, mode, cvt);
		f16cvt_mbps[cvt] = (u32)min_t(u64, div64_u64(bytes * 1000, ns),
					      U32_MAX);
		if (f16cvt_mbps[cvt] > f16cvt_mbps[best])
			best = cvt;
		len += scnprintf(msg + len, sizeof(msg) - len, "%s%s %u MB/s",
				 len ? ", " : "", f16cvt_names[cvt],
				 f16cvt_mbps[cvt]);
	}
	WRITE_ONCE(f16cvt_measured, best);
	pr_info("f16 (%s) %s: using %s\n", simd_names[mode], msg,
		f16cvt_names[vexfs_f16cvt_mode()]);
}

/*
 * Time every runnable path, remember the fastest. Called once from module
 * init; takes a few milliseconds (about 15 ms under QEMU TCG). Without
 * memory for the buffer the choice falls back to SSE2, the x86-64 baseline.
 */
void vexfs_simd_calibrate(void)
{
	u64 bytes = (u64)CAL_NR * CAL_DIM * 4 * (1 + CAL_NQ);
	u32 mode, best = VEXFS_SIMD_SSE2, seed = 0x5eed;
	struct cal_buf *b;
	u64 start = ktime_get_ns();
	char msg[128];
	int len = 0;

	if (!irq_fpu_usable()) {
		pr_warn("FPU not usable at load: distance code sse2, unmeasured\n");
		return;
	}
	b = kmalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return;	/* sse2, unmeasured: sysfs simd_speed stays empty */
	cal_fill(b->vecs, CAL_NR * CAL_DIM, &seed);
	cal_fill(b->queries, CAL_NQ * CAL_DIM, &seed);
	for (mode = 0; mode < CAL_NR; mode++) {
		b->ptrs[mode] = b->vecs + mode * CAL_DIM;
		b->hptrs[mode] = b->halves + mode * CAL_DIM;
	}
	for (mode = 0; mode < CAL_NR * CAL_DIM; mode++) {
		seed = seed * 1664525U + 1013904223U;
		b->halves[mode] = 0x3c00U | (seed >> 22);
	}

	cal_time(b, VEXFS_SIMD_SCALAR, VEXFS_F16CVT_NR);	/* warm up */
	for (mode = 0; mode < VEXFS_SIMD_NR; mode++) {
		u64 ns;

		if (!simd_runnable(mode))
			continue;
		ns = cal_time(b, mode, VEXFS_F16CVT_NR);
		simd_mbps[mode] = (u32)min_t(u64, div64_u64(bytes * 1000, ns),
					     U32_MAX);
		if (simd_mbps[mode] > simd_mbps[best])
			best = mode;
		len += scnprintf(msg + len, sizeof(msg) - len, "%s%s %u MB/s",
				 len ? ", " : "", simd_names[mode],
				 simd_mbps[mode]);
	}
	WRITE_ONCE(simd_measured, best);
	vexfs_f16cvt_calibrate(b, vexfs_simd_mode());
	kfree(b);
	len = (int)div_u64(ktime_get_ns() - start, NSEC_PER_USEC);
	if (simd >= 0)
		pr_info("l2 %s: measured %s, using %s (simd=%d; timed in %d us)\n",
			msg, simd_names[best],
			vexfs_simd_name(vexfs_simd_mode()), simd, len);
	else
		pr_info("l2 %s: using %s (timed in %d us)\n", msg,
			simd_names[best], len);
}
