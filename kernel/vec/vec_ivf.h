/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vec_ivf.h - the inverted-file (IVF) part of the portable vector core:
 * which records a query visits, given the lists it probes.
 *
 * The index (kernel/uapi/vexfs_fs.h, "ANN index") keeps, per record slot,
 * assign[slot] = list + 1, or 0 for a pending record. A query with probe
 * set P visits slot s iff assign[s] == 0 or assign[s] - 1 is in P; the
 * distances of the visited records are then taken by the exact scan loop
 * (vec_scan.c). Integer code only; the same file in vexfs.ko and the host
 * library.
 */
#ifndef _VEXFS_VEC_IVF_H
#define _VEXFS_VEC_IVF_H

#include "vec_scan.h"

/* assign values are stored little endian; VexFS is x86-64 only */
static inline u32 vexfs_ivf_val(const u32 *assign, u32 i)
{
	return assign[i];
}

/*
 * probe[l] = 1 for the lists in lists[0..n), 0 for the others (nlist bytes).
 * -EUCLEAN if a list number is >= nlist (a corrupt result, never expected).
 */
int vexfs_ivf_probe_set(u8 *probe, u32 nlist, const u64 *lists, u32 n);

/*
 * How many of assign[0..n) a query with probe set @probe visits.
 * -EUCLEAN if an entry is > nlist.
 */
s64 vexfs_ivf_count(const u32 *assign, u32 n, const u8 *probe, u32 nlist);

/*
 * Positions base + i of the visited entries among assign[*from..n), in
 * order, at most @max of them into out[]. *from advances past the last entry
 * examined. Returns how many were stored, or -EUCLEAN.
 */
int vexfs_ivf_gather(const u32 *assign, u32 n, u32 *from, const u8 *probe,
		     u32 nlist, u64 base, u64 *out, u32 max);

#endif /* _VEXFS_VEC_IVF_H */
