/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VexFS vector collections: interface between ioctl.c (argument
 * checking, locking), vector.c (collection storage, top-k) and the distance
 * kernels in vec_math_*.c.
 *
 * Float rule: only vec_math_*.c are compiled with the FPU enabled. Every
 * other file sees floats only as memory behind a pointer (void * or u32 *)
 * and never does float arithmetic or float comparisons. Distances leave the
 * math code as 32-bit "keys" (see vexfs_key_to_bits()) whose unsigned integer
 * order is the order of the float values, so that top-k selection in
 * vector.c is integer-only code.
 */
#ifndef _VEXFS_VECTOR_H
#define _VEXFS_VECTOR_H

#include <linux/types.h>
#include "vexfs_fs.h"
#include "vec/vec_dist.h"
#include "vec/vec_scan.h"

struct file;
struct inode;

/* ioctl.c: .unlocked_ioctl of regular files (compat: compat_ptr_ioctl) */
long vexfs_ioctl(struct file *filp, unsigned int cmd, unsigned long arg);

/* vec_select.c: the distance code in use, chosen by timing at load */
#define VEXFS_SIMD_NR	3	/* VEXFS_SIMD_SCALAR .. VEXFS_SIMD_AVX2 */

void vexfs_simd_calibrate(void);
int vexfs_dist_run(const struct vexfs_dist_job *job);
u32 vexfs_simd_mode(void);
const char *vexfs_simd_name(u32 mode);
u32 vexfs_simd_speed(u32 mode);	/* MB/s measured at load, 0: not runnable */
#define VEXFS_F16CVT_NR	3	/* VEXFS_F16CVT_SCALAR .. VEXFS_F16CVT_F16C */
u32 vexfs_f16cvt_mode(void);
const char *vexfs_f16cvt_name(u32 mode);
u32 vexfs_f16cvt_speed(u32 mode);	/* MB/s of float16 searched, 0: n/a */

/* Collection operations (vector.c), called by ioctl.c with arguments that
 * passed the checks on ranges, flags and alignment.
 */
int vexfs_coll_create(struct file *filp, u32 dim, u32 metric, u32 dtype);
int vexfs_coll_insert(struct file *filp, struct vexfs_ioc_insert *arg);
int vexfs_coll_get(struct file *filp, struct vexfs_ioc_get *arg);
int vexfs_coll_delete(struct file *filp, struct vexfs_ioc_delete *arg);
int vexfs_coll_search(struct file *filp, struct vexfs_ioc_search *arg);
int vexfs_coll_stats(struct file *filp, struct vexfs_ioc_stats *arg);

#endif /* _VEXFS_VECTOR_H */
