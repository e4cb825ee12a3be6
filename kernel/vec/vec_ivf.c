// SPDX-License-Identifier: GPL-2.0
/*
 * vec_ivf.c - which records an IVF query visits (see vec_ivf.h). Integer
 * code only. Same file in vexfs.ko and the host library.
 */
#include "vec_ivf.h"

int vexfs_ivf_probe_set(u8 *probe, u32 nlist, const u64 *lists, u32 n)
{
	u32 i;

	memset(probe, 0, nlist);
	for (i = 0; i < n; i++) {
		if (lists[i] >= nlist)
			return -EUCLEAN;
		probe[lists[i]] = 1;
	}
	return 0;
}

static bool visits(u32 v, const u8 *probe)
{
	return v == 0 || probe[v - 1];
}

s64 vexfs_ivf_count(const u32 *assign, u32 n, const u8 *probe, u32 nlist)
{
	s64 hits = 0;
	u32 i;

	for (i = 0; i < n; i++) {
		u32 v = vexfs_ivf_val(assign, i);

		if (v > nlist)
			return -EUCLEAN;
		hits += visits(v, probe);
	}
	return hits;
}

int vexfs_ivf_gather(const u32 *assign, u32 n, u32 *from, const u8 *probe,
		     u32 nlist, u64 base, u64 *out, u32 max)
{
	u32 i, got = 0;

	for (i = *from; i < n && got < max; i++) {
		u32 v = vexfs_ivf_val(assign, i);

		if (v > nlist)
			return -EUCLEAN;
		if (visits(v, probe))
			out[got++] = base + i;
	}
	*from = i;
	return got;
}
