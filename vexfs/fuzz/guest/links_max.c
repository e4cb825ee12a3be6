// SPDX-License-Identifier: GPL-2.0
/*
 * links_max: link(2) one file until the filesystem refuses, in a tight loop
 * (the EMLINK check of tests/vm/test_posix.py; a Python loop of 65000
 * os.link calls takes minutes under TCG, this takes seconds).
 *
 *   links_max TARGET DIR
 *
 * Makes DIR/dK (250 names each, so no directory gets long) and links TARGET
 * as DIR/dK/lN until link(2) fails, then prints one line
 *
 *   LINKS names=N errno=E nlink=L link_ms=T
 *
 * (N: the names TARGET had when link(2) failed, counting its own; E: that
 * errno; L: st_nlink then), removes every name it made and DIR's
 * subdirectories, and prints "CLEANUP unlinked=U nlink=L" (TARGET's
 * st_nlink after, 1 when all went). Exit 0 when it ran to the end, 1 on a
 * failure other than the one link(2) that ended the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PER_DIR 250
#define MAX_TRY 200000	/* far past any limit: a filesystem without one ends here */

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	char path[4096];
	struct stat st;
	long n, made = 0, unlinked = 0, d;
	int err = 0;
	double t0;

	if (argc != 3) {
		fprintf(stderr, "usage: %s TARGET DIR\n", argv[0]);
		return 2;
	}
	t0 = now_ms();
	for (n = 1; n < MAX_TRY; n++) {
		if ((n - 1) % PER_DIR == 0) {
			snprintf(path, sizeof(path), "%s/d%ld", argv[2], (n - 1) / PER_DIR);
			if (mkdir(path, 0755)) {
				perror(path);
				return 1;
			}
		}
		snprintf(path, sizeof(path), "%s/d%ld/l%ld", argv[2], (n - 1) / PER_DIR, n);
		if (link(argv[1], path)) {
			err = errno;
			break;
		}
		made++;
	}
	if (stat(argv[1], &st)) {
		perror(argv[1]);
		return 1;
	}
	printf("LINKS names=%ld errno=%d nlink=%lu link_ms=%.0f\n", made + 1, err,
	       (unsigned long)st.st_nlink, now_ms() - t0);
	fflush(stdout);
	for (n = 1; n <= made; n++) {
		snprintf(path, sizeof(path), "%s/d%ld/l%ld", argv[2], (n - 1) / PER_DIR, n);
		if (unlink(path)) {
			perror(path);
			return 1;
		}
		unlinked++;
	}
	for (d = 0; d <= (n - 1) / PER_DIR; d++) {
		snprintf(path, sizeof(path), "%s/d%ld", argv[2], d);
		if (rmdir(path) && errno != ENOENT) {
			perror(path);
			return 1;
		}
	}
	if (stat(argv[1], &st)) {
		perror(argv[1]);
		return 1;
	}
	printf("CLEANUP unlinked=%ld nlink=%lu\n", unlinked, (unsigned long)st.st_nlink);
	return 0;
}
