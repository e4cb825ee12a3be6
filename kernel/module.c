// SPDX-License-Identifier: GPL-2.0
/*
 * module.c - module init/exit and the "vexfs" file_system_type.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs_context.h>
#include <linux/module.h>
#include <linux/slab.h>
#include "vexfs.h"
#include "vector.h"

struct kmem_cache *vexfs_inode_cachep;

static void vexfs_inode_init_once(void *obj)
{
	struct vexfs_inode_info *ei = obj;

	init_rwsem(&ei->i_ext_sem);
	init_rwsem(&ei->i_xattr_sem);
	inode_init_once(&ei->vfs_inode);
}

static struct file_system_type vexfs_fs_type = {
	.owner			= THIS_MODULE,
	.name			= "vexfs",
	.init_fs_context	= vexfs_init_fs_context,
	.parameters		= vexfs_fs_parameters,
	.kill_sb		= kill_block_super,
	.fs_flags		= FS_REQUIRES_DEV,
};
MODULE_ALIAS_FS("vexfs");

static int __init vexfs_init(void)
{
	int err;

	vexfs_inode_cachep = kmem_cache_create("vexfs_inode_cache",
					       sizeof(struct vexfs_inode_info), 0,
					       SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT,
					       vexfs_inode_init_once);
	if (!vexfs_inode_cachep)
		return -ENOMEM;
	vexfs_simd_calibrate();
	err = vexfs_sysfs_init();
	if (err)
		goto out_cache;
	err = register_filesystem(&vexfs_fs_type);
	if (err)
		goto out_sysfs;
	pr_info("VexFS %s loaded (format v%u, block size %u, crc32c metadata)\n",
		VEXFS_MODULE_VERSION, VEXFS_FORMAT_VERSION, VEXFS_BLOCK_SIZE);
	return 0;

out_sysfs:
	vexfs_sysfs_exit();
out_cache:
	kmem_cache_destroy(vexfs_inode_cachep);
	return err;
}

static void __exit vexfs_exit(void)
{
	unregister_filesystem(&vexfs_fs_type);
	vexfs_sysfs_exit();
	/* free_inode runs from RCU: wait for it before destroying the cache */
	rcu_barrier();
	kmem_cache_destroy(vexfs_inode_cachep);
	pr_info("VexFS %s unloaded\n", VEXFS_MODULE_VERSION);
}

module_init(vexfs_init);
module_exit(vexfs_exit);

MODULE_LICENSE("GPL");
MODULE_VERSION(VEXFS_MODULE_VERSION);
MODULE_AUTHOR("VexFS team");
MODULE_DESCRIPTION("VexFS: a vector-native extent filesystem");
