// SPDX-License-Identifier: GPL-2.0
/*
 * fz_ioctl - guest side of `vexfs fuzz ioctl`, and a small collection maker.
 *
 *   fz_ioctl mkcoll PATH DIM N          create a collection, insert N vectors
 *   fz_ioctl fuzz MNT CALLS SEED THREADS [RO_MNT [KILL_ROUNDS]]
 *
 * fuzz: on the mounted VexFS at MNT, THREADS threads of this process plus
 * one forked child share CALLS ioctl calls, on a pool of fds: collections
 * (O_RDWR, O_RDONLY, O_WRONLY), a plain file, an empty file (CREATE target),
 * a directory, a tmpfs file, /dev/null and a closed fd. Commands: the six
 * vector ioctls (mostly), other numbers in the 'V' range, the right numbers
 * with a wrong size/direction, random numbers (minus the generic VFS ones
 * that act on the filesystem, e.g. FIFREEZE). Arguments: random and hostile
 * field values (counts 0/1/max/max+1/2^31/2^32-1, dims, k, metrics, flags,
 * reserved), pointers that are NULL, unmapped, kernel addresses, misaligned,
 * read-only, straddling an unmapped page, or valid; floats with NaN/Inf.
 *
 * Hostile contexts (issue 14): the forked child drops to uid/gid 65534 and
 * works on root's files (a 0666 collection, a 0666 empty file it may not
 * CREATE on: EPERM); the pool also holds the collection opened through a
 * read-only bind mount RO_MNT (mutations: EROFS), an immutable and an
 * append-only collection (chattr +i/+a via FS_IOC_SETFLAGS, when the
 * filesystem supports it; mutations: EPERM) and a collection whose header
 * is forged (c_count 2^34 over a sparse file, valid checksum: every call
 * fails, EUCLEAN, at once). After the fuzz a kill watchdog runs
 * KILL_ROUNDS rounds (default 20): a victim process loops over hostile calls
 * (a GET on the forged collection every other call), gets SIGKILL at a
 * random moment and must be reaped within 1 s of what a victim making no
 * VexFS call needs in the same run ("SLOWKILL" lines otherwise).
 *
 * Every failing call's errno is checked against the documented set
 * (docs/vector-api.md); stricter expectations where the answer is certain
 * (bad struct pointer -> EFAULT; not-ours command -> ENOTTY; mutation on a
 * read-only fd never succeeds). Violations are printed as "BADERRNO ..."
 * lines (first 50); the summary is one JSON line "IOCTL-SUMMARY {...}".
 * Progress "IO S <n>" goes to /dev/console every 2000 calls per thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include "vexfs_fs.h"

#define NFD 16
#define BUFSZ (8 << 20)
#define NCMD 7		/* the six vector ioctls, then "any other number" */
#define NOBODY 65534

enum fdkind { FD_COLL_RW, FD_COLL_RO, FD_COLL_WO, FD_COLL2_RW, FD_PLAIN, FD_EMPTY, FD_DIR,
	      FD_TMPFS, FD_DEVNULL, FD_CLOSED, FD_COLL_PATH, FD_COLL3_RW, FD_RO_MOUNT,
	      FD_IMMUTABLE, FD_APPEND, FD_FORGED };

static const char *const cmd_names[NCMD] = { "CREATE", "INSERT", "GET", "DELETE", "SEARCH",
					     "STATS", "other" };

static int fds[NFD];
static int have_ro_mount, have_immutable, have_append;
static int unprivileged;	/* this process dropped to NOBODY (the forked child) */
static char mnt[512];
static char ro_mnt[512];
static unsigned char *buf;	/* BUFSZ valid r/w bytes */
/*
 * The kill watchdog's victim says here which call it is in (shared with
 * the parent): {cmd, fd kind, count/nq} before each ioctl, 0 after it.
 */
static volatile unsigned long *victim_call;
static unsigned char *rdonly;	/* one read-only page */
static unsigned char *hole;	/* an unmapped page right after `edge` */
static unsigned char *edge;	/* last r/w page before `hole` */
static int console_fd = -1;
static long calls_per_worker;
static unsigned long long seed0;

struct stats {
	unsigned long calls, ok, bad;
	unsigned long err[140];
	unsigned long cmd_calls[NCMD], cmd_ok[NCMD];
	unsigned long cmd_err[NCMD][140];
	unsigned long ctx_calls[NFD];	/* calls per fd kind */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct stats total;
static int bad_printed;

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static uint64_t pick(uint64_t *s, const uint64_t *v, int n)
{
	return v[rnd(s) % n];
}

static const uint64_t counts[] = { 0, 1, 2, 3, 7, 16, 100, 1000, VEXFS_MAX_BATCH,
	VEXFS_MAX_BATCH + 1, 0x7fffffff, 0x80000000, 0xffffffff, 65535 };
static const uint64_t dims[] = { 0, 1, 2, 3, 7, 16, 4095, VEXFS_MAX_DIM, VEXFS_MAX_DIM + 1,
	0x80000000, 0xffffffff };
static const uint64_t ks[] = { 0, 1, 2, 5, 10, VEXFS_MAX_K, VEXFS_MAX_K + 1, 0xffffffff };
static const uint64_t smalls[] = { 0, 0, 0, 0, 1, 2, 3, 0x80000000, 0xffffffff };

enum ptrkind { P_VALID, P_NULL, P_UNMAPPED, P_KERNEL, P_MISALIGN, P_RDONLY, P_EDGE, P_HUGE,
	       P_NKINDS };

/* a pointer of some kind for `bytes` bytes, `align`-aligned when valid */
static uint64_t mkptr(uint64_t *s, size_t bytes, int *kind_out)
{
	int kind = rnd(s) % 100 < 70 ? P_VALID : (int)(rnd(s) % P_NKINDS);
	uint64_t p;

	if (kind == P_VALID && bytes > BUFSZ)
		kind = P_EDGE;
	switch (kind) {
	case P_VALID:
		p = (uint64_t)(uintptr_t)buf + ((rnd(s) % (BUFSZ - bytes + 1)) & ~(uint64_t)15);
		break;
	case P_NULL:
		p = 0;
		break;
	case P_UNMAPPED:
		p = (uint64_t)(uintptr_t)hole;
		break;
	case P_KERNEL:
		p = rnd(s) & 1 ? 0xffffffff81000000ULL : 0xffff888000000000ULL;
		break;
	case P_MISALIGN:
		p = (uint64_t)(uintptr_t)buf + 1 + rnd(s) % 3;
		break;
	case P_RDONLY:
		p = (uint64_t)(uintptr_t)rdonly;
		break;
	case P_EDGE:	/* starts valid, runs into the unmapped page */
		p = (uint64_t)(uintptr_t)hole - 8 * (1 + rnd(s) % 4);
		break;
	default:
		p = 0x00007ffffffff000ULL + (rnd(s) % 4096);
		break;
	}
	if (kind_out)
		*kind_out = kind;
	return p;
}

static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (console_fd >= 0 && n > 0 && write(console_fd, line, n) < 0)
		console_fd = -1;
}

/* errnos docs/vector-api.md allows a vector ioctl on a VexFS file to return */
static int documented(int e)
{
	switch (e) {
	case ENOTTY: case EINVAL: case EFAULT: case EBADF: case EROFS: case EPERM:
	case EEXIST: case ENOTEMPTY: case EUCLEAN: case ENOSPC: case EFBIG: case ENOENT:
	case EDQUOT: case ENOMEM: case EINTR: case EIO:
	case ENODATA:	/* an index ioctl on a collection without an index */
	case EOPNOTSUPP: /* float16 where unsupported (no index on float16 yet) */
		return 1;
	}
	return 0;
}

static int is_generic_vfs(unsigned int cmd)
{
	/* handled by do_vfs_ioctl or ioctl_* helpers before the filesystem:
	 * some act on the whole fs (FIFREEZE is 'X'), the fd (FIOCLEX is tty
	 * type 0x54) or data (FICLONE is 0x94); random numbers skip those types */
	switch (_IOC_TYPE(cmd)) {
	case 0x00: case 'X': case 'f': case 0x94: case 0x54: case 0x12:
		return 1;
	}
	return 0;
}

static int is_ours(unsigned int cmd)
{
	return cmd == VEXFS_IOC_CREATE || cmd == VEXFS_IOC_INSERT || cmd == VEXFS_IOC_GET ||
	       cmd == VEXFS_IOC_DELETE || cmd == VEXFS_IOC_SEARCH || cmd == VEXFS_IOC_STATS ||
	       cmd == VEXFS_IOC_INDEX_BUILD || cmd == VEXFS_IOC_INDEX_ASSIGN ||
	       cmd == VEXFS_IOC_INDEX_SEARCH || cmd == VEXFS_IOC_INDEX_STATS ||
	       cmd == VEXFS_IOC_INDEX_DROP;
}

/* no input struct: a bad pointer is not necessarily EFAULT */
static int no_input(unsigned int cmd)
{
	return cmd == VEXFS_IOC_STATS || cmd == VEXFS_IOC_INDEX_STATS ||
	       cmd == VEXFS_IOC_INDEX_DROP;
}

static void report_bad(const char *why, int fdk, unsigned int cmd, int ptrk, long rc, int e)
{
	pthread_mutex_lock(&lock);
	total.bad++;
	if (bad_printed++ < 50)
		printf("BADERRNO %s: fd kind %d cmd 0x%08x argptr kind %d rc %ld errno %d (%s)\n",
		       why, fdk, cmd, ptrk, rc, e, strerror(e));
	fflush(stdout);
	pthread_mutex_unlock(&lock);
}

static int cmd_index(unsigned int cmd)
{
	switch (cmd) {
	case VEXFS_IOC_CREATE: return 0;
	case VEXFS_IOC_INSERT: return 1;
	case VEXFS_IOC_GET: return 2;
	case VEXFS_IOC_DELETE: return 3;
	case VEXFS_IOC_SEARCH: return 4;
	case VEXFS_IOC_STATS: return 5;
	}
	return 6;
}

static void fill_floats(uint64_t *s, float *f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned int r = rnd(s) % 1000;

		f[i] = r == 0 ? NAN : r == 1 ? INFINITY : r == 2 ? -INFINITY :
			(float)((int)(rnd(s) % 2001) - 1000) / 100.0f;
	}
}

static void one_call(uint64_t *s, struct stats *st)
{
	union {
		struct vexfs_ioc_create c;
		struct vexfs_ioc_insert i;
		struct vexfs_ioc_get g;
		struct vexfs_ioc_delete d;
		struct vexfs_ioc_search q;
		struct vexfs_ioc_stats t;
		struct vexfs_ioc_index_build xb;
		struct vexfs_ioc_index_assign xa;
		struct vexfs_ioc_index_search xs;
		unsigned char raw[256];
	} a;
	int fdk = rnd(s) % 100;
	unsigned int cmd, r = rnd(s) % 100, nr = 0;
	int ptrk = P_VALID, strict_fault = 0, ours = 0, not_ours = 0, is_mut = 0;
	uint64_t argp;
	long rc;
	int e, fd;

	/* fd: collections mostly */
	fdk = fdk < 30 ? FD_COLL_RW : fdk < 38 ? FD_COLL2_RW : fdk < 42 ? FD_COLL3_RW :
	      fdk < 48 ? FD_COLL_RO : fdk < 53 ? FD_COLL_WO : fdk < 59 ? FD_PLAIN :
	      fdk < 64 ? FD_EMPTY : fdk < 68 ? FD_DIR : fdk < 71 ? FD_TMPFS :
	      fdk < 74 ? FD_DEVNULL : fdk < 77 ? FD_CLOSED : fdk < 80 ? FD_COLL_PATH :
	      fdk < 85 ? FD_RO_MOUNT : fdk < 90 ? FD_IMMUTABLE : fdk < 95 ? FD_APPEND :
	      FD_FORGED;
	/* contexts this filesystem or run cannot set up fall back to the plain one */
	if ((fdk == FD_RO_MOUNT && !have_ro_mount) || (fdk == FD_IMMUTABLE && !have_immutable) ||
	    (fdk == FD_APPEND && !have_append))
		fdk = FD_COLL_RW;
	fd = fds[fdk];

	if (r < 85) {
		static const unsigned int cmds[] = { VEXFS_IOC_CREATE, VEXFS_IOC_INSERT,
			VEXFS_IOC_INSERT, VEXFS_IOC_GET, VEXFS_IOC_DELETE, VEXFS_IOC_SEARCH,
			VEXFS_IOC_SEARCH, VEXFS_IOC_STATS, VEXFS_IOC_INDEX_BUILD,
			VEXFS_IOC_INDEX_ASSIGN, VEXFS_IOC_INDEX_SEARCH, VEXFS_IOC_INDEX_SEARCH,
			VEXFS_IOC_INDEX_STATS, VEXFS_IOC_INDEX_DROP };
		cmd = cmds[rnd(s) % 14];
		ours = 1;
	} else if (r < 92) {	/* 'V' range, other numbers or sizes */
		nr = rnd(s) % 256;
		cmd = _IOC(rnd(s) % 4, 'V', nr, rnd(s) % 128);
		ours = is_ours(cmd);
		not_ours = !ours;
	} else {
		do
			cmd = rnd(s);
		while (is_generic_vfs(cmd));
		ours = is_ours(cmd);
		not_ours = !ours && _IOC_TYPE(cmd) == 'V';
	}

	memset(&a, 0, sizeof(a));
	if (rnd(s) % 10 == 0)
		for (unsigned int k = 0; k < sizeof(a.raw); k++)
			a.raw[k] = rnd(s);
	if (cmd == VEXFS_IOC_CREATE) {
		a.c.dim = pick(s, dims, 11);
		if (rnd(s) % 2)
			a.c.dim = 1 + rnd(s) % 64;
		a.c.metric = rnd(s) % 4 ? rnd(s) % 3 : rnd(s);
		a.c.flags = pick(s, smalls, 9);
		a.c.dtype = pick(s, smalls, 9);
		is_mut = 1;
	} else if (cmd == VEXFS_IOC_INSERT) {
		uint32_t n = rnd(s) % 12 ? rnd(s) % 64 : pick(s, counts, 14);

		a.i.count = n;
		a.i.flags = rnd(s) % 3 ? rnd(s) % 2 : pick(s, smalls, 9);
		a.i.ids_ptr = mkptr(s, (size_t)8 * (n > 4096 ? 4096 : n), NULL);
		a.i.vectors_ptr = mkptr(s, (size_t)4 * 64 * (n > 4096 ? 4096 : n), NULL);
		if (a.i.ids_ptr >= (uintptr_t)buf && a.i.ids_ptr < (uintptr_t)buf + BUFSZ - 8 * 64)
			for (uint32_t k = 0; k < 64 && k < n; k++)
				((uint64_t *)(uintptr_t)a.i.ids_ptr)[k] = rnd(s) % 20 ? rnd(s) % 500 : rnd(s);
		if (a.i.vectors_ptr >= (uintptr_t)buf &&
		    a.i.vectors_ptr < (uintptr_t)buf + BUFSZ - 4 * 64 * 64)
			fill_floats(s, (float *)(uintptr_t)a.i.vectors_ptr, 64 * (n < 64 ? n : 64));
		is_mut = 1;
	} else if (cmd == VEXFS_IOC_GET) {
		uint32_t n = rnd(s) % 12 ? rnd(s) % 64 : pick(s, counts, 14);

		a.g.count = n;
		a.g.flags = pick(s, smalls, 9);
		a.g.ids_ptr = mkptr(s, (size_t)8 * (n > 4096 ? 4096 : n), NULL);
		a.g.vectors_ptr = mkptr(s, (size_t)4 * 64 * (n > 4096 ? 4096 : n), NULL);
		a.g.found_ptr = rnd(s) % 3 ? mkptr(s, n > 4096 ? 4096 : n, NULL) : 0;
	} else if (cmd == VEXFS_IOC_DELETE) {
		uint32_t n = rnd(s) % 12 ? rnd(s) % 16 : pick(s, counts, 14);

		a.d.count = n;
		a.d.flags = pick(s, smalls, 9);
		a.d.ids_ptr = mkptr(s, (size_t)8 * (n > 4096 ? 4096 : n), NULL);
		if (a.d.ids_ptr >= (uintptr_t)buf && a.d.ids_ptr < (uintptr_t)buf + BUFSZ - 8 * 16)
			for (uint32_t k = 0; k < 16 && k < n; k++)
				((uint64_t *)(uintptr_t)a.d.ids_ptr)[k] = rnd(s) % 500;
		is_mut = 1;
	} else if (cmd == VEXFS_IOC_SEARCH) {
		uint32_t nq = rnd(s) % 12 ? 1 + rnd(s) % 4 : pick(s, counts, 14);
		uint32_t k = rnd(s) % 6 ? 1 + rnd(s) % 20 : pick(s, ks, 8);
		size_t cap = nq > 16 ? 16 : nq;

		a.q.nq = nq;
		a.q.k = k;
		a.q.flags = pick(s, smalls, 9);
		a.q.reserved = pick(s, smalls, 9);
		a.q.queries_ptr = mkptr(s, 4 * 64 * cap, NULL);
		a.q.distances_ptr = mkptr(s, 4 * cap * (k > 1024 ? 1024 : k), NULL);
		a.q.ids_ptr = mkptr(s, 8 * cap * (k > 1024 ? 1024 : k), NULL);
		if (a.q.queries_ptr >= (uintptr_t)buf &&
		    a.q.queries_ptr < (uintptr_t)buf + BUFSZ - 4 * 64 * 16)
			fill_floats(s, (float *)(uintptr_t)a.q.queries_ptr, 64 * cap);
	}

	else if (cmd == VEXFS_IOC_INDEX_BUILD) {
		uint32_t nl = rnd(s) % 8 ? 1 + rnd(s) % 8 : pick(s, counts, 14);

		a.xb.nlist = nl;
		a.xb.nprobe = rnd(s) % 4 ? 1 + rnd(s) % (nl ? nl : 1) : pick(s, counts, 14);
		a.xb.flags = rnd(s) % 4 ? 0 : pick(s, smalls, 9);
		a.xb.reserved = rnd(s) % 4 ? 0 : pick(s, smalls, 9);
		a.xb.centroids_ptr = mkptr(s, (size_t)4 * 64 * (nl > 64 ? 64 : nl), NULL);
		if (a.xb.centroids_ptr >= (uintptr_t)buf &&
		    a.xb.centroids_ptr < (uintptr_t)buf + BUFSZ - 4 * 64 * 64)
			fill_floats(s, (float *)(uintptr_t)a.xb.centroids_ptr,
				    64 * (nl < 64 ? nl : 64));
		is_mut = 1;
	} else if (cmd == VEXFS_IOC_INDEX_ASSIGN) {
		uint32_t n = rnd(s) % 12 ? rnd(s) % 64 : pick(s, counts, 14);

		a.xa.count = n;
		a.xa.flags = rnd(s) % 4 ? 0 : pick(s, smalls, 9);
		a.xa.ids_ptr = mkptr(s, (size_t)8 * (n > 4096 ? 4096 : n), NULL);
		a.xa.lists_ptr = mkptr(s, (size_t)4 * (n > 4096 ? 4096 : n), NULL);
		if (a.xa.ids_ptr >= (uintptr_t)buf && a.xa.ids_ptr < (uintptr_t)buf + BUFSZ - 8 * 64)
			for (uint32_t k = 0; k < 64 && k < n; k++)
				((uint64_t *)(uintptr_t)a.xa.ids_ptr)[k] = rnd(s) % 500;
		if (a.xa.lists_ptr >= (uintptr_t)buf && a.xa.lists_ptr < (uintptr_t)buf + BUFSZ - 4 * 64)
			for (uint32_t k = 0; k < 64 && k < n; k++)
				((uint32_t *)(uintptr_t)a.xa.lists_ptr)[k] = rnd(s) % 10;
		is_mut = 1;
	} else if (cmd == VEXFS_IOC_INDEX_SEARCH) {
		uint32_t nq = rnd(s) % 12 ? 1 + rnd(s) % 4 : pick(s, counts, 14);
		uint32_t k = rnd(s) % 6 ? 1 + rnd(s) % 20 : pick(s, ks, 8);
		size_t cap = nq > 16 ? 16 : nq;

		a.xs.nq = nq;
		a.xs.k = k;
		a.xs.nprobe = rnd(s) % 4 ? rnd(s) % 10 : pick(s, counts, 14);
		a.xs.flags = rnd(s) % 4 ? 0 : pick(s, smalls, 9);
		a.xs.queries_ptr = mkptr(s, 4 * 64 * cap, NULL);
		a.xs.distances_ptr = mkptr(s, 4 * cap * (k > 1024 ? 1024 : k), NULL);
		a.xs.ids_ptr = mkptr(s, 8 * cap * (k > 1024 ? 1024 : k), NULL);
		if (a.xs.queries_ptr >= (uintptr_t)buf &&
		    a.xs.queries_ptr < (uintptr_t)buf + BUFSZ - 4 * 64 * 16)
			fill_floats(s, (float *)(uintptr_t)a.xs.queries_ptr, 64 * cap);
	} else if (cmd == VEXFS_IOC_INDEX_DROP) {
		is_mut = 1;
	}

	/* where the struct itself lives */
	{
		unsigned int w = rnd(s) % 100;
		size_t sz = _IOC_SIZE(cmd) ? _IOC_SIZE(cmd) : 64;
		unsigned char *slot = buf + BUFSZ - 4096 + (rnd(s) % 64) * 8;

		if (w < 80) {
			memcpy(slot, &a, sizeof(a) < sz ? sizeof(a) : sz);
			argp = (uintptr_t)slot;
		} else if (w < 84) {
			argp = 0, ptrk = P_NULL;
		} else if (w < 88) {
			argp = (uintptr_t)hole, ptrk = P_UNMAPPED;
		} else if (w < 92) {
			argp = 0xffffffff81000000ULL, ptrk = P_KERNEL;
		} else if (w < 96) {
			memcpy(rdonly + 0, &a, 0);	/* read-only: contents stay zero */
			argp = (uintptr_t)rdonly, ptrk = P_RDONLY;
		} else {
			argp = (uintptr_t)hole - 8, ptrk = P_EDGE;	/* struct straddles */
		}
	}
	strict_fault = ptrk == P_NULL || ptrk == P_UNMAPPED || ptrk == P_KERNEL || ptrk == P_EDGE;

	if (victim_call) {
		victim_call[1] = fdk;
		victim_call[0] = cmd;
	}
	errno = 0;
	rc = ioctl(fd, cmd, (unsigned long)argp);
	e = errno;
	if (victim_call)
		victim_call[0] = 0;
	st->calls++;
	st->ctx_calls[fdk]++;
	st->cmd_calls[cmd_index(cmd)]++;
	if (rc == 0) {
		st->ok++;
		st->cmd_ok[cmd_index(cmd)]++;
	} else if (e >= 0 && e < 140) {
		st->err[e]++;
		st->cmd_err[cmd_index(cmd)][e]++;
	}

	/* the oracle, from the most certain to the general */
	if (fdk == FD_CLOSED) {
		if (rc != -1 || e != EBADF)
			report_bad("closed fd must give EBADF", fdk, cmd, ptrk, rc, e);
		return;
	}
	if (fdk == FD_COLL_PATH) {
		if (rc != -1 || e != EBADF)
			report_bad("O_PATH fd must give EBADF", fdk, cmd, ptrk, rc, e);
		return;
	}
	if (fdk == FD_TMPFS || fdk == FD_DEVNULL)
		return;	/* not our filesystem: only "no crash" */
	if (!ours && !not_ours)
		return;	/* a random non-'V' number: the VFS may handle it */
	if (not_ours || fdk == FD_DIR) {
		if (rc != -1 || e != ENOTTY)
			report_bad("not a VexFS ioctl of a collection file: ENOTTY expected",
				   fdk, cmd, ptrk, rc, e);
		return;
	}
	if (fdk == FD_FORGED && rc == 0) {
		report_bad("call on a forged collection header (c_count over a sparse file) succeeded",
			   fdk, cmd, ptrk, rc, e);
		return;
	}
	if (is_mut && (fdk == FD_RO_MOUNT || fdk == FD_IMMUTABLE || fdk == FD_APPEND)) {
		int want = fdk == FD_RO_MOUNT ? EROFS : EPERM;

		if (rc == 0 || (e != want && e != EINVAL && e != EFAULT))
			report_bad(fdk == FD_RO_MOUNT ? "mutation through a read-only mount: EROFS expected"
				   : "mutation of an immutable/append-only file: EPERM expected",
				   fdk, cmd, ptrk, rc, e);
		return;
	}
	if (rc == 0 && cmd == VEXFS_IOC_CREATE && unprivileged) {
		report_bad("CREATE by a user who does not own the file succeeded", fdk, cmd, ptrk,
			   rc, e);
		return;
	}
	if (rc == 0 && cmd == VEXFS_IOC_STATS && fdk == FD_COLL_WO) {
		report_bad("STATS succeeded on an O_WRONLY fd", fdk, cmd, ptrk, rc, e);
		return;
	}
	if (rc == 0) {
		if (is_mut && fdk == FD_COLL_RO)
			report_bad("mutation succeeded on an O_RDONLY fd", fdk, cmd, ptrk, rc, e);
		if (!is_mut && !no_input(cmd) && fdk == FD_COLL_WO)
			report_bad("read succeeded on an O_WRONLY fd", fdk, cmd, ptrk, rc, e);
		if (strict_fault && cmd != VEXFS_IOC_INDEX_DROP)
			report_bad("call with an invalid struct pointer succeeded", fdk, cmd, ptrk, rc, e);
		return;
	}
	if (!documented(e)) {
		report_bad("errno not documented", fdk, cmd, ptrk, rc, e);
		return;
	}
	if (strict_fault && !no_input(cmd) && e != EFAULT)
		report_bad("invalid struct pointer must give EFAULT", fdk, cmd, ptrk, rc, e);
}

static void *worker(void *arg)
{
	uint64_t s = seed0 * 0x9e3779b97f4a7c15ULL + (uintptr_t)arg * 7919 + 1;
	struct stats st;
	long i;

	memset(&st, 0, sizeof(st));
	for (i = 0; i < calls_per_worker; i++) {
		if (i % 2000 == 0)
			say("IO S %ld\n", (long)(uintptr_t)arg * 1000000000L + i);
		one_call(&s, &st);
		/* the CREATE target: a collection after a good CREATE; make a new one */
		if (i % 500 == 499 && (uintptr_t)arg == 0) {
			char p[600];

			int nfd;

			/* other threads use this fd number concurrently: replace
			 * the file behind it atomically with dup2(), never close it */
			snprintf(p, sizeof(p), "%s/fz_empty", mnt);
			unlink(p);
			nfd = open(p, O_RDWR | O_CREAT, 0644);
			if (nfd >= 0) {
				dup2(nfd, fds[FD_EMPTY]);
				close(nfd);
			}
		}
	}
	pthread_mutex_lock(&lock);
	total.calls += st.calls;
	total.ok += st.ok;
	for (i = 0; i < 140; i++)
		total.err[i] += st.err[i];
	for (i = 0; i < NCMD; i++) {
		int k;

		total.cmd_calls[i] += st.cmd_calls[i];
		total.cmd_ok[i] += st.cmd_ok[i];
		for (k = 0; k < 140; k++)
			total.cmd_err[i][k] += st.cmd_err[i][k];
	}
	for (i = 0; i < NFD; i++)
		total.ctx_calls[i] += st.ctx_calls[i];
	pthread_mutex_unlock(&lock);
	return NULL;
}

static uint32_t crc32c(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t c = ~0U;
	int k;

	while (n--) {
		c ^= *b++;
		for (k = 0; k < 8; k++)
			c = c >> 1 ^ (0x82F63B78U & -(c & 1));
	}
	return ~c;
}

/* a collection whose checksummed header counts 2^34 records over a sparse file */
static int forge(const char *path)
{
	struct vexfs_collection_header h;
	uint64_t count = 1ULL << 34;
	int fd = open(path, O_RDWR);

	if (fd < 0 || pread(fd, &h, sizeof(h), 0) != sizeof(h))
		return -1;
	h.c_count = count;
	h.c_checksum = 0;
	h.c_checksum = crc32c(&h, sizeof(h));
	if (pwrite(fd, &h, sizeof(h), 0) != sizeof(h) ||
	    ftruncate(fd, VEXFS_DATA_OFFSET + count * h.c_record_size))
		return -1;
	return fd;
}

/* chattr +i / +a on an open fd; 0 when this filesystem has no such flags */
static int set_flags(int fd, int fl)
{
	return ioctl(fd, FS_IOC_SETFLAGS, &fl) == 0;
}

/*
 * The kill watchdog: each round a victim process loops over hostile calls
 * (every other one a GET on the forged collection, the rest as the fuzz
 * draws them) and gets SIGKILL after a random 10-300 ms. The bound is "every
 * VexFS call returns within 1 s of SIGKILL" on real hardware; under TCG two
 * things stretch what the guest sees, and each is measured in the same run:
 *  - what the machine needs to deliver SIGKILL and reap any process: a
 *    baseline victim that only loops on getppid(2) (no VexFS call) is killed
 *    in every round too, interleaved with the VexFS victim so that both see
 *    the same load (a loaded TCG guest takes hundreds of ms, once in a while
 *    a whole second, to schedule and tear down a process);
 *  - how much slower the guest runs kernel-style CPU work than the host: the
 *    same userspace workload (sorting VEXFS_MAX_BATCH id entries with a
 *    comparison callback, the CPU work a SIGKILLed INSERT/GET/DELETE may still
 *    finish: ids_load()'s sort) is timed in the guest (CPU time, best of 6,
 *    before and after the rounds) and on the host (its figure is an
 *    argument): slowdown = guest / host, at least 1.
 * A VexFS victim is slow when it is reaped later than
 * 1000 ms * slowdown + the slowest baseline reap. Each round prints a
 * KILLROUND line: reap time, CPU time the victim used after the kill
 * (/proc/PID/schedstat before, wait4's rusage after) and the call it was in;
 * a victim not reaped within DIAG_MS also gets KILLDIAG lines (its state and
 * kernel stack).
 */
#define DIAG_MS 300.0
#define MAX_ROUNDS 200

struct cal_ent {
	uint64_t id;
	uint32_t idx, pad;
	uint64_t slot;
};

static int cal_cmp(const void *a, const void *b)
{
	const struct cal_ent *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* CPU ms of one calibration run: VEXFS_MAX_BATCH random ids sorted */
static double calibrate_once(void)
{
	static struct cal_ent e[VEXFS_MAX_BATCH];
	struct timespec t0, t1;
	uint64_t s = 12345;
	unsigned int i;

	for (i = 0; i < VEXFS_MAX_BATCH; i++) {
		e[i].id = rnd(&s);
		e[i].idx = i;
		e[i].slot = ~0ULL;
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	qsort(e, VEXFS_MAX_BATCH, sizeof(e[0]), cal_cmp);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
	return (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
}

static double calibrate(int runs)
{
	double best = 1e18, ms;
	int i;

	for (i = 0; i < runs; i++) {
		ms = calibrate_once();
		if (ms < best)
			best = ms;
	}
	return best;
}

/* CPU time a task has used so far (/proc/PID/schedstat, ns), in ms */
static double task_cpu_ms(pid_t pid)
{
	char p[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/schedstat", pid);
	f = fopen(p, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns / 1e6;
}

/* A victim not reaped DIAG_MS after SIGKILL: where it is (state, kernel stack). */
static void kill_diag(int round, pid_t pid, double ms, const unsigned long *at_kill)
{
	char p[64], text[4096];
	const char *files[] = { "stat", "wchan", "stack" };
	unsigned int i;

	printf("KILLDIAG round %d: victim %d not reaped after %.0f ms, killed in %s 0x%lx (fd kind %lu)\n",
	       round, pid, ms, at_kill[0] ? cmd_names[cmd_index(at_kill[0])] : "no ioctl",
	       at_kill[0], at_kill[1]);
	for (i = 0; i < 3; i++) {
		int fd, n;

		snprintf(p, sizeof(p), "/proc/%d/%s", pid, files[i]);
		fd = open(p, O_RDONLY);
		n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
		if (fd >= 0)
			close(fd);
		if (n < 0)
			n = 0;
		text[n] = 0;
		printf("KILLDIAG %s: %s\n", files[i], text);
	}
	fflush(stdout);
}

/* One round: fork a victim, SIGKILL it, time the reap; *ms and *cpu out. */
static void kill_one(int r, unsigned long long seed, int baseline, double *ms, double *cpu,
		     unsigned long *at_kill)
{
	uint64_t s = seed * 31 + r + 1;
	struct timespec t0, t1;
	struct rusage ru;
	double cpu0;
	int st, diag = 0;
	pid_t pid = fork();

	if (pid == 0) {
		struct stats vst;
		uint64_t id = 12345;
		struct vexfs_ioc_get g = { .ids_ptr = (uintptr_t)&id,
					   .vectors_ptr = (uintptr_t)buf, .count = 1 };

		memset(&vst, 0, sizeof(vst));
		for (;;) {
			if (baseline) {
				getppid();
				continue;
			}
			victim_call[1] = FD_FORGED;
			victim_call[0] = VEXFS_IOC_GET;
			ioctl(fds[FD_FORGED], VEXFS_IOC_GET, &g);
			victim_call[0] = 0;
			one_call(&s, &vst);
		}
	}
	usleep(10000 + rnd(&s) % 290000);
	at_kill[0] = baseline ? 0 : victim_call[0];
	at_kill[1] = baseline ? 0 : victim_call[1];
	cpu0 = task_cpu_ms(pid);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	kill(pid, SIGKILL);
	for (;;) {
		pid_t w = wait4(pid, &st, diag ? 0 : WNOHANG, &ru);

		clock_gettime(CLOCK_MONOTONIC, &t1);
		*ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
		if (w == pid)
			break;
		if (!diag && *ms > DIAG_MS) {
			if (!baseline)
				kill_diag(r, pid, *ms, at_kill);
			diag = 1;	/* then block: the host's watchdog catches a hang */
			continue;
		}
		usleep(1000);
	}
	*cpu = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 +
	       ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3 - cpu0;
	printf("KILLROUND %s %d reap %.1f ms cpu-after-kill %.1f ms in %s 0x%lx fd %lu\n",
	       baseline ? "baseline" : "vexfs", r, *ms, *cpu,
	       at_kill[0] ? cmd_names[cmd_index(at_kill[0])] : "-", at_kill[0], at_kill[1]);
	fflush(stdout);
}

struct killwatch {
	int rounds, slow;
	double max_ms, base_max_ms, max_cpu, base_max_cpu;
	double cal_guest_ms, cal_host_ms, slowdown, limit_ms;
	char slowest_call[16];
};

static void kill_watch(int rounds, unsigned long long seed, double cal_host_ms,
		       struct killwatch *kw)
{
	static double vms[MAX_ROUNDS];
	static unsigned long vcall[MAX_ROUNDS];
	unsigned long at_kill[2];
	double ms, cpu, c2;
	int r;

	if (rounds > MAX_ROUNDS)
		rounds = MAX_ROUNDS;
	memset(kw, 0, sizeof(*kw));
	kw->rounds = rounds;
	kw->cal_guest_ms = calibrate(3);
	for (r = 0; r < rounds; r++) {
		kill_one(r, seed, 1, &ms, &cpu, at_kill);
		if (ms > kw->base_max_ms)
			kw->base_max_ms = ms;
		if (cpu > kw->base_max_cpu)
			kw->base_max_cpu = cpu;
		kill_one(r, seed, 0, &ms, &cpu, at_kill);
		vms[r] = ms;
		vcall[r] = at_kill[0];
		if (ms > kw->max_ms) {
			kw->max_ms = ms;
			snprintf(kw->slowest_call, sizeof(kw->slowest_call), "%s",
				 at_kill[0] ? cmd_names[cmd_index(at_kill[0])] : "-");
		}
		if (cpu > kw->max_cpu)
			kw->max_cpu = cpu;
	}
	c2 = calibrate(3);
	if (c2 < kw->cal_guest_ms)
		kw->cal_guest_ms = c2;
	kw->cal_host_ms = cal_host_ms;
	kw->slowdown = cal_host_ms > 0 ? kw->cal_guest_ms / cal_host_ms : 1;
	if (kw->slowdown < 1)
		kw->slowdown = 1;
	kw->limit_ms = 1000 * kw->slowdown + kw->base_max_ms;
	for (r = 0; r < rounds; r++)
		if (vms[r] > kw->limit_ms) {
			printf("SLOWKILL round %d: victim reaped %.0f ms after SIGKILL in %s "
			       "(limit %.0f)\n", r, vms[r],
			       vcall[r] ? cmd_names[cmd_index(vcall[r])] : "-", kw->limit_ms);
			kw->slow++;
		}
	fflush(stdout);
}

static int mkcoll(const char *path, unsigned int dim, unsigned int n, unsigned int metric)
{
	struct vexfs_ioc_create c = { .dim = dim, .metric = metric };
	struct vexfs_ioc_insert ins;
	uint64_t *ids = calloc(n + 1, 8);
	float *v = calloc((size_t)(n + 1) * dim, 4);
	unsigned int i;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || !ids || !v) {
		perror(path);
		return 1;
	}
	if (ioctl(fd, VEXFS_IOC_CREATE, &c) < 0) {
		perror("VEXFS_IOC_CREATE");
		return 1;
	}
	for (i = 0; i < n; i++)
		ids[i] = i;
	for (i = 0; i < n * dim; i++)
		v[i] = (float)((i * 37) % 101) / 10.0f - 5.0f;
	/* in batches of at most VEXFS_MAX_BATCH ids */
	for (i = 0; i < n; i += VEXFS_MAX_BATCH) {
		unsigned int cnt = n - i < VEXFS_MAX_BATCH ? n - i : VEXFS_MAX_BATCH;

		memset(&ins, 0, sizeof(ins));
		ins.ids_ptr = (uintptr_t)(ids + i);
		ins.vectors_ptr = (uintptr_t)(v + (size_t)i * dim);
		ins.count = cnt;
		if (ioctl(fd, VEXFS_IOC_INSERT, &ins) < 0) {
			perror("VEXFS_IOC_INSERT");
			return 1;
		}
	}
	close(fd);
	return 0;
}

static int open_pool(void)
{
	char p[600];
	int fd;

	snprintf(p, sizeof(p), "%s/fz_coll", mnt);
	if (mkcoll(p, 16, 200, VEXFS_METRIC_L2))
		return -1;
	chmod(p, 0666);		/* the unprivileged child works on it too */
	fds[FD_COLL_RW] = open(p, O_RDWR);
	fds[FD_COLL_RO] = open(p, O_RDONLY);
	fds[FD_COLL_WO] = open(p, O_WRONLY);
	fds[FD_COLL_PATH] = open(p, O_PATH);
	snprintf(p, sizeof(p), "%s/fz_coll2", mnt);
	if (mkcoll(p, 7, 50, VEXFS_METRIC_COSINE))
		return -1;
	fds[FD_COLL2_RW] = open(p, O_RDWR);
	snprintf(p, sizeof(p), "%s/fz_coll3", mnt);
	if (mkcoll(p, 1, 0, VEXFS_METRIC_IP))
		return -1;
	fds[FD_COLL3_RW] = open(p, O_RDWR);
	snprintf(p, sizeof(p), "%s/fz_plain", mnt);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0 && write(fd, "not a collection, just bytes\n", 29) != 29)
		return -1;
	fds[FD_PLAIN] = fd;
	snprintf(p, sizeof(p), "%s/fz_empty", mnt);
	fds[FD_EMPTY] = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	snprintf(p, sizeof(p), "%s/fz_dir", mnt);
	mkdir(p, 0755);
	fds[FD_DIR] = open(p, O_RDONLY | O_DIRECTORY);
	fds[FD_TMPFS] = open("/tmp/fz_other_fs", O_RDWR | O_CREAT | O_TRUNC, 0644);
	fds[FD_DEVNULL] = open("/dev/null", O_RDWR);
	snprintf(p, sizeof(p), "%s/fz_empty_root", mnt);	/* the child's CREATE target */
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0666);
	if (fd >= 0) {
		fchmod(fd, 0666);
		close(fd);
	}
	if (ro_mnt[0]) {
		snprintf(p, sizeof(p), "%s/fz_coll", ro_mnt);
		fds[FD_RO_MOUNT] = open(p, O_RDONLY);
		have_ro_mount = fds[FD_RO_MOUNT] >= 0;
	}
	if (!have_ro_mount)
		fds[FD_RO_MOUNT] = dup(fds[FD_COLL_RO]);
	snprintf(p, sizeof(p), "%s/fz_immutable", mnt);
	if (mkcoll(p, 8, 20, VEXFS_METRIC_L2))
		return -1;
	fds[FD_IMMUTABLE] = open(p, O_RDWR);
	have_immutable = fds[FD_IMMUTABLE] >= 0 && set_flags(fds[FD_IMMUTABLE], FS_IMMUTABLE_FL);
	snprintf(p, sizeof(p), "%s/fz_append", mnt);
	if (mkcoll(p, 8, 20, VEXFS_METRIC_L2))
		return -1;
	fds[FD_APPEND] = open(p, O_RDWR);
	have_append = fds[FD_APPEND] >= 0 && set_flags(fds[FD_APPEND], FS_APPEND_FL);
	snprintf(p, sizeof(p), "%s/fz_forged", mnt);
	if (mkcoll(p, 4, 3, VEXFS_METRIC_L2))
		return -1;
	fds[FD_FORGED] = forge(p);
	/*
	 * A closed fd number that nothing can reuse: the kernel hands out the
	 * lowest free number, so a low closed number could be taken by a
	 * concurrent open() in another thread (the driver's own reopen does
	 * that) and stop being closed. This process never holds ~1000 fds.
	 */
	fds[FD_CLOSED] = 1000;
	if (fcntl(fds[FD_CLOSED], F_GETFD) != -1 || errno != EBADF) {
		fprintf(stderr, "fz_ioctl: fd %d is unexpectedly open\n", fds[FD_CLOSED]);
		return -1;
	}
	for (fd = 0; fd < NFD; fd++)
		if (fds[fd] < 0 && fd != FD_CLOSED) {
			fprintf(stderr, "fz_ioctl: fd %d failed to open: %s\n", fd, strerror(errno));
			return -1;
		}
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t th[16];
	long calls, nthreads, i;
	int status = 0, kill_rounds;
	double cal_host_ms;
	struct killwatch kw;
	pid_t child;

	if (argc >= 4 && !strcmp(argv[1], "mkcoll"))
		return mkcoll(argv[2], atoi(argv[3]), argc > 4 ? atoi(argv[4]) : 0,
			      argc > 5 ? atoi(argv[5]) : 0);
	if (argc >= 2 && !strcmp(argv[1], "calibrate")) {
		printf("CALIBRATE cpu_ms=%.3f\n", calibrate(argc > 2 ? atoi(argv[2]) : 6));
		return 0;
	}
	if (argc < 6 || strcmp(argv[1], "fuzz")) {
		fprintf(stderr, "usage: %s mkcoll PATH DIM N [METRIC] | calibrate [RUNS] | "
			"fuzz MNT CALLS SEED THREADS [RO_MNT [KILL_ROUNDS [HOST_CAL_MS]]]\n",
			argv[0]);
		return 2;
	}
	snprintf(mnt, sizeof(mnt), "%s", argv[2]);
	if (argc > 6 && strcmp(argv[6], "-"))
		snprintf(ro_mnt, sizeof(ro_mnt), "%s", argv[6]);
	kill_rounds = argc > 7 ? atoi(argv[7]) : 20;
	cal_host_ms = argc > 8 ? atof(argv[8]) : 0;
	calls = atol(argv[3]);
	seed0 = strtoull(argv[4], NULL, 0);
	nthreads = atol(argv[5]);
	if (nthreads < 1 || nthreads > 16)
		nthreads = 4;
	console_fd = open("/dev/console", O_WRONLY | O_NOCTTY);
	buf = mmap(NULL, BUFSZ + 2 * 4096, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED)
		return 2;
	edge = buf + BUFSZ - 4096;
	hole = buf + BUFSZ;
	rdonly = buf + BUFSZ + 4096;
	munmap(hole, 4096);
	mprotect(rdonly, 4096, PROT_READ);
	if (open_pool())
		return 2;
	/* one child process shares the same files (its own fds) */
	calls_per_worker = calls / (nthreads + 1);
	child = fork();
	if (child == 0) {
		seed0 ^= 0xabcdef;
		/* an unprivileged user on root's files (the fds it inherits, and
		 * its own opens of root's 0666 files) */
		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY)) {
			perror("fz_ioctl: dropping to nobody");
			_exit(3);
		}
		unprivileged = 1;
		close(fds[FD_COLL_RW]);
		close(fds[FD_EMPTY]);
		{
			char p[600];

			snprintf(p, sizeof(p), "%s/fz_coll", mnt);
			fds[FD_COLL_RW] = open(p, O_RDWR);
			snprintf(p, sizeof(p), "%s/fz_empty_root", mnt);
			fds[FD_EMPTY] = open(p, O_RDWR);
			if (fds[FD_COLL_RW] < 0 || fds[FD_EMPTY] < 0) {
				perror("fz_ioctl: nobody opening root's 0666 files");
				_exit(3);
			}
		}
		worker((void *)(uintptr_t)15);
		printf("CHILD %lu calls %lu ok %lu bad\n", total.calls, total.ok, total.bad);
		fflush(stdout);
		_exit(total.bad ? 1 : 0);
	}
	for (i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
	for (i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	waitpid(child, &status, 0);
	total.calls += calls_per_worker;	/* the child's (its own summary line above) */
	victim_call = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (victim_call == MAP_FAILED)
		return 2;
	kill_watch(kill_rounds, seed0, cal_host_ms, &kw);
	/* leave nothing fsck.vexfs or umount would trip over */
	if (have_immutable)
		set_flags(fds[FD_IMMUTABLE], 0);
	if (have_append)
		set_flags(fds[FD_APPEND], 0);
	{
		char p[600];

		snprintf(p, sizeof(p), "%s/fz_forged", mnt);
		unlink(p);
	}
	for (i = 0; i < NFD; i++)
		if (i != FD_CLOSED)
			close(fds[i]);
	printf("IOCTL-SUMMARY {\"calls\": %lu, \"ok\": %lu, \"bad\": %lu, \"child_status\": %d, "
	       "\"errno\": {", total.calls, total.ok, total.bad, status);
	{
		int first = 1;

		for (i = 0; i < 140; i++)
			if (total.err[i]) {
				printf("%s\"%ld\": %lu", first ? "" : ", ", i, total.err[i]);
				first = 0;
			}
	}
	printf("}, \"per_ioctl\": {");
	for (i = 0; i < NCMD; i++) {
		int k, first = 1;

		printf("%s\"%s\": {\"calls\": %lu, \"ok\": %lu, \"errno\": {", i ? ", " : "",
		       cmd_names[i], total.cmd_calls[i], total.cmd_ok[i]);
		for (k = 0; k < 140; k++)
			if (total.cmd_err[i][k]) {
				printf("%s\"%d\": %lu", first ? "" : ", ", k, total.cmd_err[i][k]);
				first = 0;
			}
		printf("}}");
	}
	printf("}, \"contexts\": {\"read_only_mount\": %ld, \"immutable\": %ld, "
	       "\"append_only\": %ld, \"forged_header\": %lu, \"unprivileged_child\": %ld}",
	       have_ro_mount ? (long)total.ctx_calls[FD_RO_MOUNT] : -1L,
	       have_immutable ? (long)total.ctx_calls[FD_IMMUTABLE] : -1L,
	       have_append ? (long)total.ctx_calls[FD_APPEND] : -1L,
	       total.ctx_calls[FD_FORGED], WIFEXITED(status) ? calls_per_worker : 0L);
	printf(", \"killwatch\": {\"rounds\": %d, \"slow\": %d, \"max_reap_ms\": %.1f, "
	       "\"slowest_call\": \"%s\", \"baseline_max_reap_ms\": %.1f, "
	       "\"max_cpu_after_kill_ms\": %.1f, \"baseline_max_cpu_after_kill_ms\": %.1f, "
	       "\"calibrate_guest_ms\": %.3f, \"calibrate_host_ms\": %.3f, "
	       "\"slowdown\": %.4f, \"limit_ms\": %.1f}}\n",
	       kw.rounds, kw.slow, kw.max_ms, kw.slowest_call, kw.base_max_ms, kw.max_cpu,
	       kw.base_max_cpu, kw.cal_guest_ms, kw.cal_host_ms, kw.slowdown, kw.limit_ms);
	say("IO D %lu\n", total.calls);
	return total.bad || status ? 1 : 0;	/* slow kills: in "killwatch" */
}
