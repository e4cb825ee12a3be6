// SPDX-License-Identifier: GPL-2.0
/*
 * sysfs.c - /sys/fs/vexfs/: module-wide live-object counters (read by leak
 * checks; all return to 0 once every vexfs filesystem is unmounted) and one
 * directory per mounted filesystem, /sys/fs/vexfs/<dev>/.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kobject.h>
#include <linux/sysfs.h>
#include "vexfs.h"
#include "vector.h"

atomic_long_t vexfs_nr_inodes = ATOMIC_LONG_INIT(0);
atomic_long_t vexfs_nr_mounts = ATOMIC_LONG_INIT(0);
atomic_long_t vexfs_nr_buffers = ATOMIC_LONG_INIT(0);
atomic_long_t vexfs_nr_extmaps = ATOMIC_LONG_INIT(0);

static struct kobject *vexfs_kobj;

#define VEXFS_COUNTER_ATTR(name, counter)				\
static ssize_t name##_show(struct kobject *kobj,			\
			   struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&(counter)));	\
}									\
static struct kobj_attribute vexfs_attr_##name = __ATTR_RO(name)

VEXFS_COUNTER_ATTR(inodes, vexfs_nr_inodes);
VEXFS_COUNTER_ATTR(mounts, vexfs_nr_mounts);
VEXFS_COUNTER_ATTR(buffers, vexfs_nr_buffers);
VEXFS_COUNTER_ATTR(extent_maps, vexfs_nr_extmaps);

static ssize_t version_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%s format=%u\n", VEXFS_MODULE_VERSION,
			  VEXFS_FORMAT_VERSION);
}

static struct kobj_attribute vexfs_attr_version = __ATTR_RO(version);

/* the distance code searches use now (simd= parameter or the measurement) */
static ssize_t simd_show(struct kobject *kobj, struct kobj_attribute *attr,
			 char *buf)
{
	return sysfs_emit(buf, "%s\n", vexfs_simd_name(vexfs_simd_mode()));
}

static struct kobj_attribute vexfs_attr_simd = __ATTR_RO(simd);

/* what the load-time measurement found: "<path> <MB/s>" per runnable path */
static ssize_t simd_speed_show(struct kobject *kobj,
			       struct kobj_attribute *attr, char *buf)
{
	int len = 0;
	u32 mode;

	for (mode = 0; mode < VEXFS_SIMD_NR; mode++)
		if (vexfs_simd_speed(mode))
			len += sysfs_emit_at(buf, len, "%s %u\n",
					     vexfs_simd_name(mode),
					     vexfs_simd_speed(mode));
	return len;
}

static struct kobj_attribute vexfs_attr_simd_speed = __ATTR_RO(simd_speed);

/* float16 collections: the conversion in use, and what was measured */
static ssize_t f16cvt_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	return sysfs_emit(buf, "%s\n", vexfs_f16cvt_name(vexfs_f16cvt_mode()));
}

static struct kobj_attribute vexfs_attr_f16cvt = __ATTR_RO(f16cvt);

static ssize_t f16cvt_speed_show(struct kobject *kobj,
				 struct kobj_attribute *attr, char *buf)
{
	int len = 0;
	u32 mode;

	for (mode = 0; mode < VEXFS_F16CVT_NR; mode++)
		if (vexfs_f16cvt_speed(mode))
			len += sysfs_emit_at(buf, len, "%s %u\n",
					     vexfs_f16cvt_name(mode),
					     vexfs_f16cvt_speed(mode));
	return len;
}

static struct kobj_attribute vexfs_attr_f16cvt_speed = __ATTR_RO(f16cvt_speed);

static struct attribute *vexfs_global_attrs[] = {
	&vexfs_attr_inodes.attr,
	&vexfs_attr_mounts.attr,
	&vexfs_attr_buffers.attr,
	&vexfs_attr_extent_maps.attr,
	&vexfs_attr_version.attr,
	&vexfs_attr_simd.attr,
	&vexfs_attr_simd_speed.attr,
	&vexfs_attr_f16cvt.attr,
	&vexfs_attr_f16cvt_speed.attr,
	NULL,
};

static const struct attribute_group vexfs_global_group = {
	.attrs = vexfs_global_attrs,
};

/* Per-mount directory */
struct vexfs_sb_attr {
	struct attribute attr;
	ssize_t (*show)(struct vexfs_sb_info *sbi, char *buf);
};

#define VEXFS_SB_ATTR(_n, fmt, expr)					\
static ssize_t sb_##_n##_show(struct vexfs_sb_info *sbi, char *buf)	\
{									\
	return sysfs_emit(buf, fmt "\n", expr);				\
}									\
static struct vexfs_sb_attr vexfs_sb_attr_##_n = {			\
	.attr = { .name = #_n, .mode = 0444 },				\
	.show = sb_##_n##_show,						\
}

VEXFS_SB_ATTR(blocks_count, "%llu", sbi->s_blocks_count);
VEXFS_SB_ATTR(free_blocks, "%llu", READ_ONCE(sbi->s_free_blocks));
VEXFS_SB_ATTR(inodes_count, "%u", sbi->s_inodes_count);
VEXFS_SB_ATTR(free_inodes, "%u", READ_ONCE(sbi->s_free_inodes));
VEXFS_SB_ATTR(data_start, "%llu", sbi->s_data_start);
VEXFS_SB_ATTR(error_count, "%d", atomic_read(&sbi->s_error_count));

static struct attribute *vexfs_sb_attrs[] = {
	&vexfs_sb_attr_blocks_count.attr,
	&vexfs_sb_attr_free_blocks.attr,
	&vexfs_sb_attr_inodes_count.attr,
	&vexfs_sb_attr_free_inodes.attr,
	&vexfs_sb_attr_data_start.attr,
	&vexfs_sb_attr_error_count.attr,
	NULL,
};
ATTRIBUTE_GROUPS(vexfs_sb);

static ssize_t vexfs_sb_attr_show(struct kobject *kobj, struct attribute *attr,
				  char *buf)
{
	struct vexfs_sb_info *sbi = container_of(kobj, struct vexfs_sb_info, s_kobj);
	struct vexfs_sb_attr *a = container_of(attr, struct vexfs_sb_attr, attr);

	return a->show(sbi, buf);
}

static const struct sysfs_ops vexfs_sb_sysfs_ops = {
	.show = vexfs_sb_attr_show,
};

static void vexfs_sb_release(struct kobject *kobj)
{
	struct vexfs_sb_info *sbi = container_of(kobj, struct vexfs_sb_info, s_kobj);

	complete(&sbi->s_kobj_unregister);
}

static struct kobj_type vexfs_sb_ktype = {
	.default_groups	= vexfs_sb_groups,
	.sysfs_ops	= &vexfs_sb_sysfs_ops,
	.release	= vexfs_sb_release,
};

int vexfs_sysfs_register_sb(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	int err;

	init_completion(&sbi->s_kobj_unregister);
	err = kobject_init_and_add(&sbi->s_kobj, &vexfs_sb_ktype, vexfs_kobj,
				   "%s", sb->s_id);
	if (err) {
		kobject_put(&sbi->s_kobj);
		wait_for_completion(&sbi->s_kobj_unregister);
		return err;
	}
	sbi->s_kobj_added = true;
	return 0;
}

void vexfs_sysfs_unregister_sb(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);

	if (!sbi->s_kobj_added)
		return;
	kobject_del(&sbi->s_kobj);
	kobject_put(&sbi->s_kobj);
	wait_for_completion(&sbi->s_kobj_unregister);
	sbi->s_kobj_added = false;
}

int vexfs_sysfs_init(void)
{
	int err;

	vexfs_kobj = kobject_create_and_add("vexfs", fs_kobj);
	if (!vexfs_kobj)
		return -ENOMEM;
	err = sysfs_create_group(vexfs_kobj, &vexfs_global_group);
	if (err) {
		kobject_put(vexfs_kobj);
		vexfs_kobj = NULL;
	}
	return err;
}

void vexfs_sysfs_exit(void)
{
	sysfs_remove_group(vexfs_kobj, &vexfs_global_group);
	kobject_put(vexfs_kobj);
	vexfs_kobj = NULL;
}
