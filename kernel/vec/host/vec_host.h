/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vec_host.h - the portable vector core (kernel/vec/) as a userspace
 * library: exact top-k over vectors in memory, with the kernel's own
 * distance kernels and scan loop. Loaded by vexfs/vector/native.py
 * (ctypes); vec_cli.c drives it under AddressSanitizer/UBSan in the tests.
 */
#ifndef _VEXFS_VEC_HOST_H
#define _VEXFS_VEC_HOST_H

#include <stdint.h>

/* 1 if this CPU can run path @simd (VEXFS_SIMD_*), else 0 */
int vexfs_host_simd_ok(int simd);

/* the path vexfs_host_search() uses for simd = -1: avx2 if the CPU has it */
int vexfs_host_simd_default(void);

/*
 * Exact top-k of nq queries (rows of dim floats) over n vectors (rows of
 * dim floats), metric VEXFS_METRIC_*, path simd (-1: default). Writes
 * nq * k distances and ids (row index, -1 past n) in the kernel's order.
 * Returns 0 or a negative errno (-EINVAL bad argument, -ENOMEM).
 */
int vexfs_host_search(const float *x, uint64_t n, uint32_t dim,
		      const float *q, uint32_t nq, uint32_t k, uint32_t metric,
		      int simd, float *dist, int64_t *ids);

/*
 * IVF top-k, the flow of the kernel's VEXFS_IOC_INDEX_SEARCH: per query the
 * nprobe nearest of nlist centroids (rows of dim floats), then the exact
 * top-k over the rows i of x with assign[i] == 0 (pending) or assign[i] - 1
 * among those lists. ids are row numbers; *scanned counts the rows visited.
 * -EUCLEAN if an assign entry is > nlist.
 */
int vexfs_host_ivf_search(const float *x, uint64_t n, uint32_t dim,
			  const float *cent, uint32_t nlist, const uint32_t *assign,
			  const float *q, uint32_t nq, uint32_t k, uint32_t nprobe,
			  uint32_t metric, int simd, float *dist, int64_t *ids,
			  uint64_t *scanned);

#endif /* _VEXFS_VEC_HOST_H */
