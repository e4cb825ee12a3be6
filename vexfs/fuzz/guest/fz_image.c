// SPDX-License-Identifier: GPL-2.0
/*
 * fz_image - guest side of `vexfs fuzz image`.
 *
 *   fz_image BASEDIR CASEFILE RESULTFILE [MNTDIR]
 *
 * Reads the base images BASEDIR/base_<i>.img and the mutated cases of
 * CASEFILE (written by vexfs/fuzz/casefile.py: base image index + byte
 * patches), and for each case: writes the mutated image to a tmpfs file,
 * attaches it to a loop device, mounts it as vexfs (success or a clean
 * refusal), walks everything (lstat, readdir, read, readlink, STATS/SEARCH/
 * GET on collections), writes a little (new file, mkdir, append, insert a
 * vector), unmounts, detaches, and records which 4 KiB blocks the kernel
 * changed (the host runs fsck.vexfs -n on the result).
 *
 * Progress goes to /dev/console as "FZ S <case>" before each case, so the
 * host attributes a kernel crash or hang to the case that was running and
 * restarts the VM after it. Results are appended to RESULTFILE and fsynced
 * per case, so they survive a crash of a later case.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include "vexfs_fs.h"

#define MAX_BASES 16
#define BS 4096
#define WALK_MAX_ENTRIES 4000
#define WALK_MAX_DEPTH 24
#define READ_MAX (1 << 20)

struct res_head {		/* one per case in RESULTFILE, then blocks */
	uint32_t magic;		/* 'FZR1' */
	uint32_t case_no;
	int32_t mount_err;	/* 0 = mounted */
	int32_t umount_err;
	uint32_t entries;	/* objects visited by the walk */
	uint32_t walk_errors;	/* syscalls that failed during the walk */
	uint32_t eio;		/* of which EIO/EUCLEAN */
	uint32_t writes_ok;	/* write-phase operations that succeeded */
	uint32_t nchanged;	/* changed blocks: u32 numbers, then data */
	uint32_t usec;
	uint32_t ro_after;	/* mount had gone read-only by the end */
	uint32_t pad;
};

static unsigned char *bases[MAX_BASES];
static size_t base_len[MAX_BASES];
static int console_fd = -1;
static const char *kmsg_prefix = "";
static char mnt[512] = "/tmp/fz_mnt";
static char imgpath[] = "/tmp/fz_case.img";
static struct res_head cur;
static unsigned char rbuf[65536];

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int pre = snprintf(line, sizeof(line), "%s", kmsg_prefix);
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line + pre, sizeof(line) - pre, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n += pre;
	if (n >= (int)sizeof(line))
		n = sizeof(line) - 1;
	if (console_fd >= 0 && write(console_fd, line, n) < 0)
		console_fd = -1;
}

/*
 * Progress markers go through /dev/kmsg, not /dev/console: a kmsg record is
 * a printk, ordered with the kernel's own messages on the console, while a
 * tty write to /dev/console can reach the serial port after printk output
 * that came later (a WARNING of case N then showed up before "FZ S N").
 * Userspace kmsg writes are rate limited by default: lift that, we are PID
 * 1's child in a throwaway VM. <6> = KERN_INFO, so markers are no warnings.
 */
static void open_console(void)
{
	int fd = open("/proc/sys/kernel/printk_devkmsg", O_WRONLY);

	if (fd >= 0) {
		if (write(fd, "on\n", 3) < 0)
			perror("fz_image: printk_devkmsg");
		close(fd);
	}
	console_fd = open("/dev/kmsg", O_WRONLY);
	if (console_fd >= 0) {
		kmsg_prefix = "<6>";
		return;
	}
	console_fd = open("/dev/console", O_WRONLY | O_NOCTTY);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	buf = malloc(st.st_size ? st.st_size : 1);
	while (buf && got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, st.st_size - got);

		if (r <= 0) {
			free(buf);
			buf = NULL;
			break;
		}
		got += r;
	}
	close(fd);
	*len = got;
	return buf;
}

static void walk_err(int e)
{
	cur.walk_errors++;
	if (e == EIO || e == EUCLEAN)
		cur.eio++;
}

/* Vector ioctls on whatever looks like a collection. */
static void poke_collection(int fd, int rw)
{
	struct vexfs_ioc_stats st;
	struct vexfs_ioc_search s;
	struct vexfs_ioc_get g;
	static float q[VEXFS_MAX_DIM * 2] __attribute__((aligned(16)));
	static float out[VEXFS_MAX_DIM * 4] __attribute__((aligned(16)));
	float dist[8];
	uint64_t ids[8] = { 0, 1, 2, 3 };
	uint64_t rid[8];
	uint8_t found[8];
	unsigned int i, dim;

	memset(&st, 0, sizeof(st));
	if (ioctl(fd, VEXFS_IOC_STATS, &st) < 0) {
		if (errno != ENOTTY)
			walk_err(errno);
		return;
	}
	dim = st.dim;
	if (dim < 1 || dim > VEXFS_MAX_DIM)
		return;
	for (i = 0; i < dim; i++)
		q[i] = (float)(i % 7) * 0.25f;
	memset(&s, 0, sizeof(s));
	s.queries_ptr = (uintptr_t)q;
	s.distances_ptr = (uintptr_t)dist;
	s.ids_ptr = (uintptr_t)rid;
	s.nq = 1;
	s.k = 8;
	if (ioctl(fd, VEXFS_IOC_SEARCH, &s) < 0)
		walk_err(errno);
	memset(&g, 0, sizeof(g));
	g.ids_ptr = (uintptr_t)ids;
	g.vectors_ptr = (uintptr_t)out;
	g.found_ptr = (uintptr_t)found;
	g.count = 4;
	if (ioctl(fd, VEXFS_IOC_GET, &g) < 0)
		walk_err(errno);
	if (rw) {
		struct vexfs_ioc_insert ins;
		uint64_t nid = 0x5a5a0000ULL + cur.case_no;

		memset(&ins, 0, sizeof(ins));
		ins.ids_ptr = (uintptr_t)&nid;
		ins.vectors_ptr = (uintptr_t)q;
		ins.count = 1;
		ins.flags = VEXFS_INSERT_UPSERT;
		if (ioctl(fd, VEXFS_IOC_INSERT, &ins) == 0)
			cur.writes_ok++;
	}
}

static void walk(int dirfd, int depth)
{
	DIR *d;
	struct dirent *de;

	if (depth > WALK_MAX_DEPTH)
		return;
	d = fdopendir(dirfd);
	if (!d) {
		walk_err(errno);
		close(dirfd);
		return;
	}
	for (;;) {
		struct stat st;
		int fd;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				walk_err(errno);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (++cur.entries > WALK_MAX_ENTRIES)
			break;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			walk_err(errno);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			fd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
			if (fd < 0)
				walk_err(errno);
			else
				walk(fd, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			size_t total = 0;
			ssize_t r;

			fd = openat(dirfd, de->d_name, O_RDONLY | O_NOFOLLOW);
			if (fd < 0) {
				walk_err(errno);
				continue;
			}
			while (total < READ_MAX && (r = read(fd, rbuf, sizeof(rbuf))) > 0)
				total += r;
			if (r < 0)
				walk_err(errno);
			/* a read past EOF and one at a far offset */
			if (pread(fd, rbuf, 512, st.st_size + 4096) < 0)
				walk_err(errno);
			if (pread(fd, rbuf, 512, (off_t)1 << 40) < 0 && errno != EINVAL)
				walk_err(errno);
			poke_collection(fd, 0);
			close(fd);
		} else if (S_ISLNK(st.st_mode)) {
			char target[4097];

			if (readlinkat(dirfd, de->d_name, target, sizeof(target) - 1) < 0)
				walk_err(errno);
			/* following it may point anywhere inside the mount */
			fd = openat(dirfd, de->d_name, O_RDONLY | O_NONBLOCK);
			if (fd >= 0)
				close(fd);
		}
	}
	closedir(d);
}

/* Find some regular file and collection to modify (first match). */
static void find_targets(char *file, char *coll, size_t len)
{
	DIR *d = opendir(mnt);
	struct dirent *de;

	file[0] = coll[0] = 0;
	if (!d)
		return;
	while ((de = readdir(d))) {
		char p[1024];
		struct stat st;
		int fd;

		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		snprintf(p, sizeof(p), "%s/%s", mnt, de->d_name);
		if (lstat(p, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		fd = open(p, O_RDONLY);
		if (fd >= 0) {
			struct vexfs_ioc_stats s;

			if (ioctl(fd, VEXFS_IOC_STATS, &s) == 0) {
				if (!coll[0])
					snprintf(coll, len, "%s", p);
			} else if (!file[0]) {
				snprintf(file, len, "%s", p);
			}
			close(fd);
		}
	}
	closedir(d);
}

/* flush this filesystem only (sync() would also walk the 9p root) */
static void syncfs_mnt(void)
{
	int fd = open(mnt, O_RDONLY | O_DIRECTORY);

	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
}

static void write_phase(void)
{
	char p[1024], file[1024], coll[1024];
	int fd;

	memset(rbuf, 0xa5, 8192);
	snprintf(p, sizeof(p), "%s/fz_new", mnt);
	fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd >= 0) {
		if (write(fd, rbuf, 5000) == 5000)
			cur.writes_ok++;
		close(fd);
	}
	snprintf(p, sizeof(p), "%s/fz_dir", mnt);
	if (mkdir(p, 0755) == 0)
		cur.writes_ok++;
	snprintf(p, sizeof(p), "%s/fz_dir/x", mnt);
	fd = open(p, O_CREAT | O_WRONLY, 0644);
	if (fd >= 0) {
		cur.writes_ok++;
		close(fd);
	}
	find_targets(file, coll, sizeof(file));
	if (file[0]) {
		fd = open(file, O_WRONLY | O_APPEND);
		if (fd >= 0) {
			if (write(fd, rbuf, 100) == 100)
				cur.writes_ok++;
			close(fd);
		}
	}
	if (coll[0]) {
		fd = open(coll, O_RDWR);
		if (fd >= 0) {
			poke_collection(fd, 1);
			close(fd);
		}
	}
	snprintf(p, sizeof(p), "%s/fz_new", mnt);
	if (unlink(p) == 0)
		cur.writes_ok++;
	syncfs_mnt();
}

static int loop_attach(int imgfd, char *dev, size_t len)
{
	int ctl = open("/dev/loop-control", O_RDWR);
	int n, fd;

	if (ctl < 0)
		return -1;
	n = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	if (n < 0)
		return -1;
	snprintf(dev, len, "/dev/loop%d", n);
	fd = open(dev, O_RDWR);
	if (fd < 0)
		return -1;
	if (ioctl(fd, LOOP_SET_FD, imgfd) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void loop_detach(const char *dev)
{
	int fd = open(dev, O_RDWR);

	if (fd < 0)
		return;
	ioctl(fd, BLKFLSBUF, 0);
	ioctl(fd, LOOP_CLR_FD, 0);
	close(fd);
}

/*
 * Test hook for the harness's own tests: FZ_INJECT="<case>:<trigger>" fires
 * a vexfs_crashtest trigger when that case starts, to prove that a crash is
 * attributed to the running case, saved, shrunk and survived.
 */
static void inject(uint32_t case_no)
{
	const char *spec = getenv("FZ_INJECT");
	char trig[32];
	unsigned int n;
	int fd;

	if (!spec || sscanf(spec, "%u:%31s", &n, trig) != 2 || n != case_no)
		return;
	fd = open("/proc/vexfs_crashtest", O_WRONLY);
	if (fd < 0)
		return;
	if (write(fd, trig, strlen(trig)) < 0)
		perror("fz_image: inject");
	close(fd);
}

static int run_case(FILE *res, uint32_t case_no, unsigned char *img, size_t len)
{
	struct timespec t0, t1;
	char dev[64];
	unsigned char *post;
	size_t plen;
	uint32_t *changed;
	int imgfd, rootfd, i, tries;

	memset(&cur, 0, sizeof(cur));
	cur.magic = 0x31525a46;
	cur.case_no = case_no;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	say("FZ S %u\n", case_no);
	inject(case_no);

	imgfd = open(imgpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (imgfd < 0 || pwrite(imgfd, img, len, 0) != (ssize_t)len) {
		perror("fz_image: write image");
		return -1;
	}
	if (loop_attach(imgfd, dev, sizeof(dev)) < 0) {
		perror("fz_image: loop");
		close(imgfd);
		return -1;
	}
	if (mount(dev, mnt, "vexfs", 0, NULL) < 0) {
		cur.mount_err = errno;
	} else {
		rootfd = open(mnt, O_RDONLY | O_DIRECTORY);
		if (rootfd < 0)
			walk_err(errno);
		else
			walk(rootfd, 0);
		write_phase();
		{
			/* did an error flip the mount read-only? */
			char p[1024];
			int fd;

			snprintf(p, sizeof(p), "%s/fz_probe", mnt);
			fd = open(p, O_CREAT | O_WRONLY, 0644);
			if (fd < 0 && errno == EROFS)
				cur.ro_after = 1;
			if (fd >= 0) {
				close(fd);
				unlink(p);
			}
		}
		for (tries = 0; tries < 50; tries++) {
			if (umount(mnt) == 0) {
				cur.umount_err = 0;
				break;
			}
			cur.umount_err = errno;
			if (errno != EBUSY)
				break;
			usleep(20000);
		}
	}
	loop_detach(dev);

	post = malloc(len);
	plen = post ? (size_t)pread(imgfd, post, len, 0) : 0;
	close(imgfd);
	changed = calloc(len / BS + 1, sizeof(uint32_t));
	if (post && changed && plen == len) {
		for (i = 0; i < (int)(len / BS); i++)
			if (memcmp(img + (size_t)i * BS, post + (size_t)i * BS, BS))
				changed[cur.nchanged++] = i;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cur.usec = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
	fwrite(&cur, sizeof(cur), 1, res);
	fwrite(changed, sizeof(uint32_t), cur.nchanged, res);
	for (i = 0; i < (int)cur.nchanged; i++)
		fwrite(post + (size_t)changed[i] * BS, BS, 1, res);
	fflush(res);
	fdatasync(fileno(res));
	free(post);
	free(changed);
	return 0;
}

static int rd32(FILE *f, uint32_t *v)
{
	return fread(v, 4, 1, f) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
	FILE *cf, *res;
	char magic[8], path[1024];
	uint32_t ncases, c;
	unsigned char *img = NULL;
	size_t img_cap = 0;
	int nb;

	if (argc < 4) {
		fprintf(stderr, "usage: %s BASEDIR CASEFILE RESULTFILE [MNTDIR]\n", argv[0]);
		return 2;
	}
	if (argc > 4)
		snprintf(mnt, sizeof(mnt), "%s", argv[4]);
	mkdir(mnt, 0755);
	open_console();
	for (nb = 0; nb < MAX_BASES; nb++) {
		snprintf(path, sizeof(path), "%s/base_%d.img", argv[1], nb);
		bases[nb] = slurp(path, &base_len[nb]);
		if (!bases[nb])
			break;
	}
	if (!nb) {
		fprintf(stderr, "fz_image: no base images in %s\n", argv[1]);
		return 2;
	}
	cf = fopen(argv[2], "rb");
	res = fopen(argv[3], "ab");
	if (!cf || !res || fread(magic, 8, 1, cf) != 1 || memcmp(magic, "VXFZCAS1", 8) ||
	    rd32(cf, &ncases)) {
		fprintf(stderr, "fz_image: bad case file %s or result file %s\n", argv[2], argv[3]);
		return 2;
	}
	for (c = 0; c < ncases; c++) {
		uint32_t case_no, base, npatch, p, off, len;

		if (rd32(cf, &case_no) || rd32(cf, &base) || rd32(cf, &npatch) ||
		    base >= (uint32_t)nb) {
			fprintf(stderr, "fz_image: truncated case file at case %u\n", c);
			return 2;
		}
		if (img_cap < base_len[base]) {
			free(img);
			img_cap = base_len[base];
			img = malloc(img_cap);
			if (!img)
				return 2;
		}
		memcpy(img, bases[base], base_len[base]);
		for (p = 0; p < npatch; p++) {
			if (rd32(cf, &off) || rd32(cf, &len) || off + (uint64_t)len > base_len[base] ||
			    fread(img + off, 1, len, cf) != len) {
				fprintf(stderr, "fz_image: bad patch in case %u\n", case_no);
				return 2;
			}
		}
		if (run_case(res, case_no, img, base_len[base]) < 0)
			return 3;
	}
	say("FZ D %u\n", ncases);
	fclose(res);
	return 0;
}
