// SPDX-License-Identifier: GPL-2.0
/*
 * vec_cli.c - run vexfs_host_search() over a file of cases; the host tests
 * build this with -fsanitize=address,undefined (the Debian kernel has no
 * KASAN: memory errors of the vector core are caught here) and compare the
 * answers with numpy (tests/host/test_vec_core.py).
 *
 *   vec_cli CASES OUT
 *
 * CASES: repeated { u32 n_lo, n_hi, dim, nq, k, metric; s32 simd;
 *                   u32 dtype; s32 f16cvt;
 *                   x[n * dim] (f32, or f16 for dtype 1); f32 q[nq * dim] }
 * OUT:   per case  { s32 rc; f32 dist[nq * k]; s64 ids[nq * k] }
 * Every buffer is malloc'd at its exact size, so an overread shows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vec_host.h"

static void *read_exact(FILE *f, size_t bytes, int *eof)
{
	void *p = malloc(bytes ? bytes : 1);

	if (!p || fread(p, 1, bytes, f) != bytes) {
		free(p);
		*eof = 1;
		return NULL;
	}
	return p;
}

int main(int argc, char **argv)
{
	FILE *in, *out;
	int cases = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: %s CASES OUT\n", argv[0]);
		return 2;
	}
	in = fopen(argv[1], "rb");
	out = fopen(argv[2], "wb");
	if (!in || !out) {
		perror("vec_cli");
		return 1;
	}
	for (;;) {
		uint32_t h[6], dtype;
		int32_t simd, cvt, rc;
		uint64_t n;
		size_t esize;
		float *q, *dist;
		void *x;
		int64_t *ids;
		int eof = 0;

		if (fread(h, sizeof(h), 1, in) != 1 ||
		    fread(&simd, sizeof(simd), 1, in) != 1 ||
		    fread(&dtype, sizeof(dtype), 1, in) != 1 ||
		    fread(&cvt, sizeof(cvt), 1, in) != 1)
			break;
		n = h[0] | ((uint64_t)h[1] << 32);
		esize = dtype == 1 ? 2 : sizeof(float);
		x = read_exact(in, n * h[2] * esize, &eof);
		q = read_exact(in, (size_t)h[3] * h[2] * sizeof(float), &eof);
		if (eof) {
			fprintf(stderr, "vec_cli: truncated case %d\n", cases);
			return 1;
		}
		dist = malloc((size_t)h[3] * h[4] * sizeof(float) + 1);
		ids = malloc((size_t)h[3] * h[4] * sizeof(int64_t) + 1);
		if (!dist || !ids)
			return 1;
		if (dtype == 1)
			rc = vexfs_host_search_f16(x, n, h[2], q, h[3], h[4],
						   h[5], simd, cvt, dist, ids);
		else
			rc = vexfs_host_search(x, n, h[2], q, h[3], h[4], h[5],
					       simd, dist, ids);
		fwrite(&rc, sizeof(rc), 1, out);
		fwrite(dist, sizeof(float), (size_t)h[3] * h[4], out);
		fwrite(ids, sizeof(int64_t), (size_t)h[3] * h[4], out);
		free(x);
		free(q);
		free(dist);
		free(ids);
		cases++;
	}
	fclose(in);
	if (fclose(out))
		return 1;
	fprintf(stderr, "vec_cli: %d cases\n", cases);
	return 0;
}
