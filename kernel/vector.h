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

/* Collection operations (vector.c), called by ioctl.c with arguments that
 * passed the checks on ranges, flags and alignment.
 */
int vexfs_coll_create(struct file *filp, u32 dim, u32 metric);
int vexfs_coll_insert(struct file *filp, struct vexfs_ioc_insert *arg);
int vexfs_coll_get(struct file *filp, struct vexfs_ioc_get *arg);
int vexfs_coll_delete(struct file *filp, struct vexfs_ioc_delete *arg);
int vexfs_coll_search(struct file *filp, struct vexfs_ioc_search *arg);
int vexfs_coll_stats(struct file *filp, struct vexfs_ioc_stats *arg);

/* vector.c, for index.c: the caller holds i_rwsem (exclusive to write) */
struct vexfs_coll_info {
	u32 dim;
	u32 dim4;
	u32 metric;
	u32 rs;
	u32 flags;		/* c_flags */
	u64 count;
};

int vexfs_coll_info_load(struct inode *inode, struct vexfs_coll_info *ci);
int vexfs_coll_pread(struct inode *inode, loff_t pos, void *buf, size_t len);
int vexfs_coll_pwrite(struct file *filp, loff_t pos, const void *buf,
		      size_t len);
int vexfs_coll_set_size(struct file *filp, loff_t size);
int vexfs_coll_set_flags(struct file *filp, struct vexfs_coll_info *ci,
			 u32 flags);
u64 *vexfs_coll_slots(struct inode *inode, const struct vexfs_coll_info *ci,
		      u64 ids_uptr, u32 n);

/* index.c: the ANN (IVF) index of a collection */
u64 vexfs_index_max_records(u32 rs);
int vexfs_index_move(struct file *filp, u64 from, u64 to);
int vexfs_index_build(struct file *filp, struct vexfs_ioc_index_build *arg);
int vexfs_index_assign(struct file *filp, struct vexfs_ioc_index_assign *arg);
int vexfs_index_search(struct file *filp, struct vexfs_ioc_index_search *arg);
int vexfs_index_stats(struct file *filp, struct vexfs_ioc_index_stats *arg);
int vexfs_index_drop(struct file *filp);

#endif /* _VEXFS_VECTOR_H */
