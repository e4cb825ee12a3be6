// SPDX-License-Identifier: GPL-2.0
/*
 * acl.c - POSIX ACLs through the kernel's generic helpers (posix_acl_*),
 * stored as xattrs of index VEXFS_XATTR_INDEX_ACL_ACCESS/_DEFAULT in the
 * Linux xattr form (posix_acl_to_xattr() in the initial user namespace,
 * as btrfs does). The 6.1 and 6.12 differences of the inode operations
 * are in compat.h (VEXFS_IOP_ACL, vexfs_set_acl_arg_t).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <linux/slab.h>
#include "vexfs.h"

static int vexfs_acl_index(int type)
{
	switch (type) {
	case ACL_TYPE_ACCESS:
		return VEXFS_XATTR_INDEX_ACL_ACCESS;
	case ACL_TYPE_DEFAULT:
		return VEXFS_XATTR_INDEX_ACL_DEFAULT;
	}
	return -EINVAL;
}

struct posix_acl *vexfs_get_acl(struct inode *inode, int type, bool rcu)
{
	int index = vexfs_acl_index(type);
	struct posix_acl *acl;
	void *value = NULL;
	int ret;

	if (rcu)
		return ERR_PTR(-ECHILD);
	if (index < 0)
		return ERR_PTR(index);
	ret = vexfs_xattr_get(inode, index, "", NULL, 0);
	if (ret > 0) {
		value = kmalloc(ret, GFP_NOFS);
		if (!value)
			return ERR_PTR(-ENOMEM);
		ret = vexfs_xattr_get(inode, index, "", value, ret);
	}
	if (ret > 0)
		acl = posix_acl_from_xattr(&init_user_ns, value, ret);
	else if (ret == -ENODATA || !ret)
		acl = NULL;
	else
		acl = ERR_PTR(ret);
	kfree(value);
	return acl;
}

/* Store @acl (NULL: remove it) of @type; the caller is in a handle. */
static int __vexfs_set_acl(struct inode *inode, struct posix_acl *acl, int type)
{
	int index = vexfs_acl_index(type);
	void *value = NULL;
	size_t size = 0;
	int err;

	if (index < 0)
		return index;
	if (type == ACL_TYPE_DEFAULT && !S_ISDIR(inode->i_mode))
		return acl ? -EACCES : 0;
	if (acl) {
		size = posix_acl_xattr_size(acl->a_count);
		if (size > VEXFS_XATTR_SPACE)
			return -ENOSPC;
		value = kmalloc(size, GFP_NOFS);
		if (!value)
			return -ENOMEM;
		err = posix_acl_to_xattr(&init_user_ns, acl, value, size);
		if (err < 0)
			goto out;
	}
	err = vexfs_xattr_set(inode, index, "", value, size, 0);
	if (err == -ENODATA && !acl)
		err = 0;	/* removing an ACL that is not there */
	if (!err)
		set_cached_acl(inode, type, acl);
out:
	kfree(value);
	return err;
}

int vexfs_set_acl(vexfs_idmap_t *idmap, vexfs_set_acl_arg_t *arg,
		  struct posix_acl *acl, int type)
{
	struct inode *inode = vexfs_set_acl_inode(arg);
	umode_t mode = inode->i_mode;
	handle_t *handle;
	int err;

	handle = vexfs_journal_start(inode->i_sb, VEXFS_CREDITS_XATTR +
				     VEXFS_CREDITS_INODE, 1);
	if (IS_ERR(handle))
		return PTR_ERR(handle);
	if (type == ACL_TYPE_ACCESS && acl) {
		/* an ACL equal to the mode bits is stored as the mode alone */
		err = posix_acl_update_mode(idmap, inode, &mode, &acl);
		if (err)
			goto out;
	}
	err = __vexfs_set_acl(inode, acl, type);
	if (!err && mode != inode->i_mode) {
		inode->i_mode = mode;
		vexfs_inode_touch_ctime(inode);
		mark_inode_dirty(inode);
	}
out:
	return vexfs_journal_end(handle, err);
}

/*
 * A new inode in @dir: its default and access ACLs inherited from @dir's
 * default ACL, and its mode with the umask applied when @dir has none (the
 * VFS leaves the umask to us on an SB_POSIXACL filesystem).
 */
int vexfs_init_acl(struct inode *inode, struct inode *dir)
{
	struct posix_acl *default_acl, *acl;
	int err;

	err = posix_acl_create(dir, &inode->i_mode, &default_acl, &acl);
	if (err)
		return err;
	if (default_acl) {
		err = __vexfs_set_acl(inode, default_acl, ACL_TYPE_DEFAULT);
		posix_acl_release(default_acl);
	} else {
		inode->i_default_acl = NULL;
	}
	if (acl) {
		if (!err)
			err = __vexfs_set_acl(inode, acl, ACL_TYPE_ACCESS);
		posix_acl_release(acl);
	} else {
		inode->i_acl = NULL;
	}
	return err;
}

/*
 * Everything a new inode inherits before it gets a name: ACLs, then the
 * LSM's security label. Called by every create path inside its handle
 * (credits: VEXFS_CREDITS_NEWINODE includes one xattr block).
 */
int vexfs_init_new_inode(struct inode *inode, struct inode *dir,
			 const struct qstr *qstr)
{
	int err = vexfs_init_acl(inode, dir);

	if (!err)
		err = vexfs_init_security(inode, dir, qstr);
	if (!err)
		mark_inode_dirty(inode);
	return err;
}
