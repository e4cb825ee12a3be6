/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vec_shim.h - what the portable vector core (kernel/vec/) needs from its
 * environment, for the kernel and for userspace.
 *
 * The files of kernel/vec/ are plain C that compile unchanged into vexfs.ko
 * (Kbuild, __KERNEL__ defined) and into the host library
 * (vexfs/vector/native.py builds it with the system cc, optionally under
 * AddressSanitizer/UBSan), the way lib/raid6/test builds the kernel's RAID6
 * code in userspace and btrfs-progs shares kernel-shared/. Only this header
 * differs between the two.
 */
#ifndef _VEXFS_VEC_SHIM_H
#define _VEXFS_VEC_SHIM_H

#ifdef __KERNEL__

#include <linux/bug.h>
#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/minmax.h>
#include <linux/sort.h>
#include <linux/string.h>
#include <linux/types.h>

#define vec_sort(base, n, size, cmp)	sort(base, n, size, cmp, NULL)

#else /* userspace */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t s64;

#define WARN_ON_ONCE(cond)	(!!(cond))
#define vec_sort(base, n, size, cmp)	qsort(base, n, size, cmp)
#ifndef min
#define min(a, b)		((a) < (b) ? (a) : (b))
#endif

#endif /* __KERNEL__ */

#endif /* _VEXFS_VEC_SHIM_H */
