// SPDX-License-Identifier: GPL-2.0
/*
 * vexfs_crashtest - TEST-ONLY module that crashes the kernel on demand.
 *
 * It exists so the VexFS VM harness can prove, on real kernel crashes, that
 * it detects, classifies and records them and then recovers on a clean VM.
 * It is never installed by `make run`; never load it on a machine you care
 * about.
 *
 * Interface: write a trigger name to /proc/vexfs_crashtest, e.g.
 *	echo oops > /proc/vexfs_crashtest
 * Reading the file lists the triggers. The expected console signature of
 * each trigger (6.1 x86_64 Debian kernel) is documented in
 * kernel/test/crashtest/README and next to each handler below.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bug.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/mutex.h>
#include <linux/preempt.h>
#include <linux/proc_fs.h>
#include <linux/refcount.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/stop_machine.h>
#include <linux/string.h>
#include <linux/timer.h>
#include <linux/uaccess.h>

#define CRASHTEST_PROC_NAME	"vexfs_crashtest"
#define CRASHTEST_FS_MAGIC	0x76786374	/* "vxct" */
#define CRASHTEST_MAX_WRITE	32

/*
 * Read through READ_ONCE() at run time so the compiler cannot see the bad
 * value and turn the access into a trap of its own (or drop it).
 */
static unsigned long crashtest_null_addr;
static unsigned long crashtest_noncanonical_addr = 0xdead000000000000UL;
static int crashtest_zero;

static DEFINE_MUTEX(crashtest_hang_mutex);

/* "Kernel panic - not syncing: vexfs_crashtest: panic requested" */
static noinline void crashtest_panic(void)
{
	panic(KBUILD_MODNAME ": panic requested\n");
}

/* "kernel BUG at <source file>:<line>!" then "invalid opcode:" */
static noinline void crashtest_bug(void)
{
	BUG();
}

/* "WARNING: CPU: n PID: n at <source file>:<line> crashtest_warn+" */
static noinline void crashtest_warn(void)
{
	WARN(1, KBUILD_MODNAME ": warning requested\n");
}

/* "BUG: kernel NULL pointer dereference, address: 0000000000000000" */
static noinline void crashtest_oops(void)
{
	int *p = (int *)READ_ONCE(crashtest_null_addr);

	WRITE_ONCE(*p, 1);
}

/* "general protection fault, probably for non-canonical address 0xdead..." */
static noinline void crashtest_gpf(void)
{
	int *p = (int *)READ_ONCE(crashtest_noncanonical_addr);

	pr_info("read %d\n", READ_ONCE(*p));
}

static struct timer_list crashtest_timer;

static void crashtest_timer_fn(struct timer_list *t)
{
	int *p = (int *)READ_ONCE(crashtest_null_addr);

	WRITE_ONCE(*p, 2);
}

/*
 * The NULL dereference of "oops", in a timer callback (softirq context, like
 * a bio completion): the call trace has an <IRQ> section and the kernel
 * panics: "Kernel panic - not syncing: Fatal exception in interrupt".
 */
static noinline void crashtest_oops_irq(void)
{
	mod_timer(&crashtest_timer, jiffies + 1);
	msleep(100);
}

/*
 * Recursion with a 256-byte frame, bounded only far beyond what the 16 KiB
 * vmap'ed stack holds: "BUG: TASK stack guard page was hit at ..." then a
 * panic.
 */
static int crashtest_max_depth = 1 << 20;

static noinline int crashtest_recurse(int depth)
{
	char frame[256];

	if (depth >= READ_ONCE(crashtest_max_depth))
		return 0;
	memset(frame, depth, sizeof(frame));
	barrier_data(frame);
	return crashtest_recurse(depth + 1) + frame[depth & 255];
}

static noinline void crashtest_stack_overflow(void)
{
	pr_info("depth %d\n", crashtest_recurse(0));
}

/* "divide error: 0000 [#1] PREEMPT SMP NOPTI" */
static noinline void crashtest_divide(void)
{
	int zero = READ_ONCE(crashtest_zero);

	pr_info("quotient %d\n", 1000 / zero);
}

/*
 * A self-deadlock on a mutex: the writer sleeps in D state forever. Nothing
 * is printed until the hung-task detector runs (kernel.hung_task_timeout_secs,
 * 120 s by default): "INFO: task sh:<pid> blocked for more than N seconds."
 */
static noinline void crashtest_hang(void)
{
	mutex_lock(&crashtest_hang_mutex);
	mutex_lock(&crashtest_hang_mutex);	/* never returns */
	mutex_unlock(&crashtest_hang_mutex);
	mutex_unlock(&crashtest_hang_mutex);
}

/*
 * Spin forever with preemption disabled: this CPU never schedules again.
 * About 20 s later (2 * watchdog_thresh) the soft-lockup detector prints
 * "watchdog: BUG: soft lockup - CPU#n stuck for 22s! [sh:<pid>]", and RCU
 * prints "rcu: INFO: rcu_preempt self-detected stall on CPU". Interrupts
 * still run, so the console keeps printing these reports.
 */
static noinline void crashtest_softlockup(void)
{
	preempt_disable();
	for (;;)
		cpu_relax();
}

static int crashtest_freeze_fn(void *data)
{
	for (;;)
		cpu_relax();
	return 0;
}

/*
 * stop_machine() whose function never returns: every CPU spins with
 * interrupts disabled, so the guest stops answering and the console goes
 * silent for good (no NMI watchdog under TCG). Only an outside timeout
 * can see this one.
 */
static noinline void crashtest_freeze(void)
{
	stop_machine(crashtest_freeze_fn, NULL, NULL);
}

/* "BUG: scheduling while atomic: sh/<pid>/0x00000002"; the kernel goes on. */
static noinline void crashtest_sleep_atomic(void)
{
	preempt_disable();
	msleep(20);
	preempt_enable();
}

/*
 * CONFIG_DEBUG_LIST + CONFIG_BUG_ON_DATA_CORRUPTION:
 * "list_add corruption. next->prev should be prev (...), but was 0000..."
 * then "kernel BUG at lib/list_debug.c:<line>!".
 */
static noinline void crashtest_list_corrupt(void)
{
	static struct list_head head, a, b, c;

	INIT_LIST_HEAD(&head);
	list_add(&a, &head);
	/* head->next now points at b, whose ->prev does not point back */
	WRITE_ONCE(head.next, &b);
	b.prev = NULL;
	b.next = &a;
	list_add(&c, &head);
}

/* "refcount_t: addition on 0; use-after-free." then a WARNING (once). */
static noinline void crashtest_refcount(void)
{
	refcount_t ref = REFCOUNT_INIT(0);

	refcount_inc(&ref);
}

/*
 * A leaked object in a dedicated slab cache, then kmem_cache_destroy():
 * "kmem_cache_destroy vexfs_crashtest_leak: Slab cache still has objects"
 * (a WARNING), preceded with slub_debug by
 * "BUG vexfs_crashtest_leak (...): Objects remaining in ... on
 * __kmem_cache_shutdown()". The kernel goes on.
 */
static noinline void crashtest_slab_leak(void)
{
	struct kmem_cache *cache;
	void *obj;

	cache = kmem_cache_create("vexfs_crashtest_leak", 64, 0, 0, NULL);
	if (!cache)
		return;
	obj = kmem_cache_alloc(cache, GFP_KERNEL);
	if (!obj) {
		kmem_cache_destroy(cache);
		return;
	}
	pr_info("leaking object %p\n", obj);
	kmem_cache_destroy(cache);
}

/*
 * kfree() twice: SLAB_FREELIST_HARDENED catches it as
 * "kernel BUG at mm/slub.c:<line>!"; with slub_debug=F it is
 * "BUG kmalloc-64 (...): Object already free".
 */
static noinline void crashtest_double_free(void)
{
	void *obj = kmalloc(64, GFP_KERNEL);

	if (!obj)
		return;
	kfree(obj);
	kfree(obj);
}

/*
 * A tiny filesystem whose kill_sb forgets to drop the dentries made by
 * simple_fill_super() (kill_anon_super instead of kill_litter_super): the
 * classic leak. Unmounting it prints "BUG: Dentry ... still in use (1)
 * [unmount of vexfs_crashtest vexfs_crashtest]" with a WARNING, then
 * "VFS: Busy inodes after unmount of vexfs_crashtest (vexfs_crashtest)",
 * which CONFIG_BUG_ON_DATA_CORRUPTION turns into "kernel BUG at
 * fs/super.c:<line>!".
 */
static const struct file_operations crashtest_leak_fops = {
	.owner = THIS_MODULE,
	.llseek = noop_llseek,
};

static int crashtest_fill_super(struct super_block *sb, void *data, int silent)
{
	static const struct tree_descr files[] = {
		[2] = { "leak", &crashtest_leak_fops, 0444 },
		{ "" },
	};

	return simple_fill_super(sb, CRASHTEST_FS_MAGIC, files);
}

static struct dentry *crashtest_mount(struct file_system_type *type, int flags,
				      const char *dev, void *data)
{
	return mount_nodev(type, flags, data, crashtest_fill_super);
}

static struct file_system_type crashtest_fs_type = {
	.owner = THIS_MODULE,
	.name = "vexfs_crashtest",
	.mount = crashtest_mount,
	.kill_sb = kill_anon_super,	/* deliberately wrong, see above */
};

static noinline void crashtest_dentry_leak(void)
{
	struct vfsmount *mnt = kern_mount(&crashtest_fs_type);

	if (IS_ERR(mnt)) {
		pr_err("kern_mount failed: %ld\n", PTR_ERR(mnt));
		return;
	}
	kern_unmount(mnt);
}

static noinline void crashtest_ok(void)
{
	pr_info("ok: no crash requested\n");
}

struct crashtest_trigger {
	const char *name;
	void (*fn)(void);
};

static const struct crashtest_trigger crashtest_triggers[] = {
	{ "ok", crashtest_ok },
	{ "panic", crashtest_panic },
	{ "bug", crashtest_bug },
	{ "warn", crashtest_warn },
	{ "oops", crashtest_oops },
	{ "gpf", crashtest_gpf },
	{ "divide", crashtest_divide },
	{ "oops_irq", crashtest_oops_irq },
	{ "stack_overflow", crashtest_stack_overflow },
	{ "hang", crashtest_hang },
	{ "softlockup", crashtest_softlockup },
	{ "freeze", crashtest_freeze },
	{ "sleep_atomic", crashtest_sleep_atomic },
	{ "list_corrupt", crashtest_list_corrupt },
	{ "refcount", crashtest_refcount },
	{ "slab_leak", crashtest_slab_leak },
	{ "double_free", crashtest_double_free },
	{ "dentry_leak", crashtest_dentry_leak },
};

static ssize_t crashtest_write(struct file *file, const char __user *ubuf,
			       size_t count, loff_t *ppos)
{
	char buf[CRASHTEST_MAX_WRITE];
	size_t len = min(count, sizeof(buf) - 1);
	const char *name;
	size_t i;

	if (count == 0)
		return 0;
	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	name = strim(buf);

	for (i = 0; i < ARRAY_SIZE(crashtest_triggers); i++) {
		if (strcmp(name, crashtest_triggers[i].name))
			continue;
		pr_info("trigger %s (pid %d, %s)\n", crashtest_triggers[i].name,
			task_pid_nr(current), current->comm);
		crashtest_triggers[i].fn();
		return count;
	}
	pr_warn("unknown trigger \"%s\"\n", name);
	return -EINVAL;
}

static int crashtest_show(struct seq_file *m, void *v)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(crashtest_triggers); i++)
		seq_printf(m, "%s\n", crashtest_triggers[i].name);
	return 0;
}

static int crashtest_open(struct inode *inode, struct file *file)
{
	return single_open(file, crashtest_show, NULL);
}

static const struct proc_ops crashtest_proc_ops = {
	.proc_open = crashtest_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = crashtest_write,
};

static struct proc_dir_entry *crashtest_proc;

static int __init crashtest_init(void)
{
	int err;

	timer_setup(&crashtest_timer, crashtest_timer_fn, 0);
	err = register_filesystem(&crashtest_fs_type);
	if (err)
		return err;

	crashtest_proc = proc_create(CRASHTEST_PROC_NAME, 0600, NULL,
				     &crashtest_proc_ops);
	if (!crashtest_proc) {
		unregister_filesystem(&crashtest_fs_type);
		return -ENOMEM;
	}
	pr_info("loaded: write a trigger to /proc/%s (TEST ONLY)\n",
		CRASHTEST_PROC_NAME);
	return 0;
}

static void __exit crashtest_exit(void)
{
	proc_remove(crashtest_proc);
	del_timer_sync(&crashtest_timer);
	unregister_filesystem(&crashtest_fs_type);
	pr_info("unloaded\n");
}

module_init(crashtest_init);
module_exit(crashtest_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("VexFS developers");
MODULE_DESCRIPTION("VexFS test-only module: crashes the kernel on demand");
MODULE_VERSION("1.0");
