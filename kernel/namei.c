// SPDX-License-Identifier: GPL-2.0
/*
 * namei.c - directory inode operations: lookup, create, mknod, mkdir,
 * rmdir, unlink, link, symlink and rename (with RENAME_NOREPLACE and
 * RENAME_EXCHANGE). Modelled on fs/ext2/namei.c; the VFS holds the
 * directories' i_rwsem around each of these.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/pagemap.h>
#include "vexfs.h"

/*
 * A directory's link count drops with each subdirectory removed, but never
 * below 2 (its "." and its entry): an undercounted link count on disk must
 * not turn into freeing a directory that is still linked (as ext4_dec_count).
 */
static void vexfs_dec_dir_count(struct inode *dir)
{
	if (dir->i_nlink > 2)
		inode_dec_link_count(dir);
	else
		mark_inode_dirty(dir);
}

/*
 * @inode is about to lose the name in @dir: a link count already at zero
 * means the disk held fewer links than names. Report it (errors= policy)
 * and keep the inode: with a link count of one it is not freed while a name
 * still points at it; fsck.vexfs recounts the links.
 */
static int vexfs_check_nlink(struct inode *dir, struct inode *inode)
{
	if (likely(inode->i_nlink))
		return 0;
	vexfs_error(dir->i_sb, "directory inode %lu: inode %lu has a name but link count 0 (fewer links than names on disk)",
		    dir->i_ino, inode->i_ino);
	set_nlink(inode, 1);
	return -EUCLEAN;
}

static struct dentry *vexfs_lookup(struct inode *dir, struct dentry *dentry,
				   unsigned int flags)
{
	struct vexfs_dir_entry *de;
	struct buffer_head *bh;
	struct inode *inode = NULL;
	u32 ino;

	if (dentry->d_name.len > VEXFS_NAME_LEN)
		return ERR_PTR(-ENAMETOOLONG);
	de = vexfs_find_entry(dir, &dentry->d_name, &bh);
	if (IS_ERR(de))
		return ERR_CAST(de);
	if (de) {
		ino = le32_to_cpu(de->d_inode);
		vexfs_brelse(bh);
		inode = vexfs_iget(dir->i_sb, ino);
		if (IS_ERR(inode))
			return ERR_CAST(inode);
	}
	return d_splice_alias(inode, dentry);
}

static int vexfs_add_nondir(struct dentry *dentry, struct inode *inode)
{
	int err = vexfs_add_link(dentry, inode);

	if (!err) {
		d_instantiate_new(dentry, inode);
		return 0;
	}
	inode_dec_link_count(inode);
	discard_new_inode(inode);
	return err;
}

/* ACLs and security label of a new non-directory, then its name. */
static int vexfs_init_nondir(struct inode *dir, struct dentry *dentry,
			     struct inode *inode)
{
	int err = vexfs_init_new_inode(inode, dir, &dentry->d_name);

	if (err) {
		inode_dec_link_count(inode);
		discard_new_inode(inode);
		return err;
	}
	return vexfs_add_nondir(dentry, inode);
}

static int __vexfs_create(vexfs_idmap_t *idmap, struct inode *dir,
			struct dentry *dentry, umode_t mode, bool excl)
{
	struct inode *inode;

	if (dentry->d_name.len > VEXFS_NAME_LEN)
		return -ENAMETOOLONG;
	inode = vexfs_new_inode(dir, mode);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	return vexfs_init_nondir(dir, dentry, inode);
}

static int __vexfs_mknod(vexfs_idmap_t *idmap, struct inode *dir,
		       struct dentry *dentry, umode_t mode, dev_t rdev)
{
	struct inode *inode;

	if (dentry->d_name.len > VEXFS_NAME_LEN)
		return -ENAMETOOLONG;
	inode = vexfs_new_inode(dir, mode);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	init_special_inode(inode, inode->i_mode, rdev);
	vexfs_set_inode_ops(inode);
	mark_inode_dirty(inode);
	return vexfs_init_nondir(dir, dentry, inode);
}

static int __vexfs_symlink(vexfs_idmap_t *idmap, struct inode *dir,
			 struct dentry *dentry, const char *symname)
{
	unsigned int len = strlen(symname) + 1;
	struct inode *inode;
	int err;

	if (dentry->d_name.len > VEXFS_NAME_LEN)
		return -ENAMETOOLONG;
	if (len > VEXFS_BLOCK_SIZE)
		return -ENAMETOOLONG;
	inode = vexfs_new_inode(dir, S_IFLNK | 0777);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	/* page_symlink stores len - 1 bytes: the target without its NUL */
	err = vexfs_init_new_inode(inode, dir, &dentry->d_name) ?:
	      page_symlink(inode, symname, len);
	if (err) {
		inode_dec_link_count(inode);
		discard_new_inode(inode);
		return err;
	}
	mark_inode_dirty(inode);
	return vexfs_add_nondir(dentry, inode);
}

static int __vexfs_link(struct dentry *old_dentry, struct inode *dir,
		      struct dentry *dentry)
{
	struct inode *inode = d_inode(old_dentry);
	int err;

	if (dentry->d_name.len > VEXFS_NAME_LEN)
		return -ENAMETOOLONG;
	vexfs_inode_touch_ctime(inode);
	inode_inc_link_count(inode);
	ihold(inode);
	err = vexfs_add_link(dentry, inode);
	if (!err) {
		d_instantiate(dentry, inode);
		return 0;
	}
	inode_dec_link_count(inode);
	iput(inode);
	return err;
}

static int __vexfs_unlink(struct inode *dir, struct dentry *dentry)
{
	struct inode *inode = d_inode(dentry);
	struct vexfs_dir_entry *de;
	struct buffer_head *bh;
	int err;

	de = vexfs_find_entry(dir, &dentry->d_name, &bh);
	if (IS_ERR(de))
		return PTR_ERR(de);
	if (!de || le32_to_cpu(de->d_inode) != inode->i_ino) {
		if (de)
			vexfs_brelse(bh);
		vexfs_error(dir->i_sb, "directory inode %lu: entry for inode %lu vanished",
			    dir->i_ino, inode->i_ino);
		return -EUCLEAN;
	}
	err = vexfs_check_nlink(dir, inode);
	if (err) {
		vexfs_brelse(bh);
		return err;
	}
	err = vexfs_delete_entry(dir, de, bh);
	if (err)
		return err;
	vexfs_inode_set_ctime(inode, vexfs_inode_get_ctime(dir));
	inode_dec_link_count(inode);
	return 0;
}

static int __vexfs_mkdir(vexfs_idmap_t *idmap, struct inode *dir,
		       struct dentry *dentry, umode_t mode)
{
	struct inode *inode;
	int err;

	if (dentry->d_name.len > VEXFS_NAME_LEN)
		return -ENAMETOOLONG;
	inode_inc_link_count(dir);
	inode = vexfs_new_inode(dir, S_IFDIR | mode);
	err = PTR_ERR(inode);
	if (IS_ERR(inode))
		goto out_dir;
	inode_inc_link_count(inode);
	err = vexfs_init_new_inode(inode, dir, &dentry->d_name);
	if (err)
		goto out_fail;
	err = vexfs_make_empty(inode, dir);
	if (err)
		goto out_fail;
	err = vexfs_add_link(dentry, inode);
	if (err)
		goto out_fail;
	d_instantiate_new(dentry, inode);
	return 0;

out_fail:
	inode_dec_link_count(inode);
	inode_dec_link_count(inode);
	discard_new_inode(inode);
out_dir:
	inode_dec_link_count(dir);
	return err;
}

static int __vexfs_rmdir(struct inode *dir, struct dentry *dentry)
{
	struct inode *inode = d_inode(dentry);
	int err;

	err = vexfs_empty_dir(inode);
	if (err < 0)
		return err;
	if (!err)
		return -ENOTEMPTY;
	err = __vexfs_unlink(dir, dentry);
	if (err)
		return err;
	inode->i_size = 0;
	clear_nlink(inode);
	mark_inode_dirty(inode);
	vexfs_dec_dir_count(dir);
	return 0;
}

static int vexfs_exchange(struct inode *old_dir, struct dentry *old_dentry,
			  struct inode *new_dir, struct dentry *new_dentry)
{
	struct inode *old_inode = d_inode(old_dentry);
	struct inode *new_inode = d_inode(new_dentry);
	bool old_is_dir = S_ISDIR(old_inode->i_mode);
	bool new_is_dir = S_ISDIR(new_inode->i_mode);
	struct buffer_head *old_bh = NULL, *new_bh = NULL;
	struct buffer_head *old_dbh = NULL, *new_dbh = NULL;
	struct vexfs_dir_entry *old_de, *new_de;
	struct vexfs_dir_entry *old_dd = NULL, *new_dd = NULL;
	int err;

	old_de = vexfs_find_entry(old_dir, &old_dentry->d_name, &old_bh);
	if (IS_ERR_OR_NULL(old_de))
		return old_de ? PTR_ERR(old_de) : -ENOENT;
	new_de = vexfs_find_entry(new_dir, &new_dentry->d_name, &new_bh);
	if (IS_ERR_OR_NULL(new_de)) {
		err = new_de ? PTR_ERR(new_de) : -ENOENT;
		goto out_old;
	}
	if (old_dir != new_dir) {
		if (old_is_dir) {
			old_dd = vexfs_dotdot(old_inode, &old_dbh);
			if (IS_ERR(old_dd)) {
				err = PTR_ERR(old_dd);
				goto out_new;
			}
		}
		if (new_is_dir) {
			new_dd = vexfs_dotdot(new_inode, &new_dbh);
			if (IS_ERR(new_dd)) {
				err = PTR_ERR(new_dd);
				goto out_odd;
			}
		}
	}
	/* nothing can fail from here on */
	vexfs_set_link(old_dir, old_de, old_bh, new_inode);
	vexfs_set_link(new_dir, new_de, new_bh, old_inode);
	if (old_dd)
		vexfs_set_dotdot(old_inode, old_dd, old_dbh, new_dir);
	if (new_dd)
		vexfs_set_dotdot(new_inode, new_dd, new_dbh, old_dir);
	if (old_dir != new_dir && old_is_dir != new_is_dir) {
		if (old_is_dir) {
			inode_inc_link_count(new_dir);
			vexfs_dec_dir_count(old_dir);
		} else {
			inode_inc_link_count(old_dir);
			vexfs_dec_dir_count(new_dir);
		}
	}
	vexfs_inode_set_ctime(new_inode, vexfs_inode_touch_ctime(old_inode));
	mark_inode_dirty(old_inode);
	mark_inode_dirty(new_inode);
	return 0;

out_odd:
	vexfs_brelse(old_dbh);
out_new:
	vexfs_brelse(new_bh);
out_old:
	vexfs_brelse(old_bh);
	return err;
}

static int __vexfs_rename(vexfs_idmap_t *idmap,
			struct inode *old_dir, struct dentry *old_dentry,
			struct inode *new_dir, struct dentry *new_dentry,
			unsigned int flags)
{
	struct inode *old_inode = d_inode(old_dentry);
	struct inode *new_inode = d_inode(new_dentry);
	struct buffer_head *old_bh, *dir_bh = NULL;
	struct vexfs_dir_entry *old_de, *dir_de = NULL;
	int err;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if (new_dentry->d_name.len > VEXFS_NAME_LEN)
		return -ENAMETOOLONG;
	if (flags & RENAME_EXCHANGE)
		return vexfs_exchange(old_dir, old_dentry, new_dir, new_dentry);

	old_de = vexfs_find_entry(old_dir, &old_dentry->d_name, &old_bh);
	if (IS_ERR(old_de))
		return PTR_ERR(old_de);
	if (!old_de)
		return -ENOENT;
	if (S_ISDIR(old_inode->i_mode) && old_dir != new_dir) {
		dir_de = vexfs_dotdot(old_inode, &dir_bh);
		if (IS_ERR(dir_de)) {
			err = PTR_ERR(dir_de);
			goto out_old;
		}
	}
	if (new_inode) {
		struct vexfs_dir_entry *new_de;
		struct buffer_head *new_bh;

		if (S_ISDIR(old_inode->i_mode)) {
			err = vexfs_empty_dir(new_inode);
			if (err <= 0) {
				err = err ?: -ENOTEMPTY;
				goto out_dir;
			}
		}
		err = vexfs_check_nlink(new_dir, new_inode);
		if (err)
			goto out_dir;
		new_de = vexfs_find_entry(new_dir, &new_dentry->d_name, &new_bh);
		if (IS_ERR_OR_NULL(new_de)) {
			err = new_de ? PTR_ERR(new_de) : -ENOENT;
			goto out_dir;
		}
		vexfs_set_link(new_dir, new_de, new_bh, old_inode);
		vexfs_inode_touch_ctime(new_inode);
		if (S_ISDIR(old_inode->i_mode)) {
			clear_nlink(new_inode);
			mark_inode_dirty(new_inode);
		} else {
			inode_dec_link_count(new_inode);
		}
	} else {
		err = vexfs_add_link(new_dentry, old_inode);
		if (err)
			goto out_dir;
		if (S_ISDIR(old_inode->i_mode) && old_dir != new_dir)
			inode_inc_link_count(new_dir);
	}
	vexfs_inode_touch_ctime(old_inode);
	mark_inode_dirty(old_inode);

	/* the old entry may have moved if add_link split it: find it again */
	vexfs_brelse(old_bh);
	old_de = vexfs_find_entry(old_dir, &old_dentry->d_name, &old_bh);
	if (IS_ERR_OR_NULL(old_de)) {
		vexfs_brelse(dir_bh);
		vexfs_error(old_dir->i_sb, "directory inode %lu: renamed entry vanished",
			    old_dir->i_ino);
		return old_de ? PTR_ERR(old_de) : -EUCLEAN;
	}
	vexfs_delete_entry(old_dir, old_de, old_bh);
	if (dir_de) {
		/* ".." of the moved directory: not a change of its own times */
		vexfs_set_dotdot(old_inode, dir_de, dir_bh, new_dir);
		vexfs_dec_dir_count(old_dir);
	} else if (S_ISDIR(old_inode->i_mode) && new_inode) {
		/* same parent, replacing a directory: one subdir fewer */
		vexfs_dec_dir_count(old_dir);
	}
	return 0;

out_dir:
	vexfs_brelse(dir_bh);
out_old:
	vexfs_brelse(old_bh);
	return err;
}

/*
 * Each operation is one jbd2 handle (one atomic change on disk); credits
 * are its worst case of metadata blocks changed (vexfs.h VEXFS_CREDITS_*):
 * a new inode, a directory entry (possibly in a new directory block), the
 * inodes whose link counts or times change.
 */
#define VEXFS_CREDITS_CREATE	(VEXFS_CREDITS_NEWINODE + VEXFS_CREDITS_DIRENT + \
				 VEXFS_CREDITS_INODE)
#define VEXFS_CREDITS_MKDIR	(VEXFS_CREDITS_CREATE + VEXFS_CREDITS_ALLOC + 2)
#define VEXFS_CREDITS_SYMLINK	(VEXFS_CREDITS_CREATE + VEXFS_CREDITS_ALLOC)
#define VEXFS_CREDITS_LINK	(VEXFS_CREDITS_DIRENT + 2 * VEXFS_CREDITS_INODE)
#define VEXFS_CREDITS_UNLINK	(1 + 2 * VEXFS_CREDITS_INODE)
/* entry added in the new dir, removed in the old, '..' of a moved dir,
 * four inodes (two dirs, the moved inode, the replaced one)
 */
#define VEXFS_CREDITS_RENAME	(VEXFS_CREDITS_DIRENT + 2 + 4 * VEXFS_CREDITS_INODE)

static int vexfs_create(vexfs_idmap_t *idmap, struct inode *dir,
			struct dentry *dentry, umode_t mode, bool excl)
{
	handle_t *handle = vexfs_journal_start(dir->i_sb, VEXFS_CREDITS_CREATE, 0);

	if (IS_ERR(handle))
		return PTR_ERR(handle);
	return vexfs_journal_end(handle, __vexfs_create(idmap, dir, dentry, mode, excl));
}

static int vexfs_mknod(vexfs_idmap_t *idmap, struct inode *dir,
		       struct dentry *dentry, umode_t mode, dev_t rdev)
{
	handle_t *handle = vexfs_journal_start(dir->i_sb, VEXFS_CREDITS_CREATE, 0);

	if (IS_ERR(handle))
		return PTR_ERR(handle);
	return vexfs_journal_end(handle, __vexfs_mknod(idmap, dir, dentry, mode, rdev));
}

static int vexfs_symlink(vexfs_idmap_t *idmap, struct inode *dir,
			 struct dentry *dentry, const char *symname)
{
	handle_t *handle = vexfs_journal_start(dir->i_sb, VEXFS_CREDITS_SYMLINK, 0);

	if (IS_ERR(handle))
		return PTR_ERR(handle);
	return vexfs_journal_end(handle, __vexfs_symlink(idmap, dir, dentry, symname));
}

static int vexfs_link(struct dentry *old_dentry, struct inode *dir,
		      struct dentry *dentry)
{
	handle_t *handle = vexfs_journal_start(dir->i_sb, VEXFS_CREDITS_LINK, 0);

	if (IS_ERR(handle))
		return PTR_ERR(handle);
	return vexfs_journal_end(handle, __vexfs_link(old_dentry, dir, dentry));
}

static int vexfs_unlink(struct inode *dir, struct dentry *dentry)
{
	handle_t *handle = vexfs_journal_start(dir->i_sb, VEXFS_CREDITS_UNLINK, 0);

	if (IS_ERR(handle))
		return PTR_ERR(handle);
	return vexfs_journal_end(handle, __vexfs_unlink(dir, dentry));
}

static int vexfs_mkdir(vexfs_idmap_t *idmap, struct inode *dir,
		       struct dentry *dentry, umode_t mode)
{
	handle_t *handle = vexfs_journal_start(dir->i_sb, VEXFS_CREDITS_MKDIR, 0);

	if (IS_ERR(handle))
		return PTR_ERR(handle);
	return vexfs_journal_end(handle, __vexfs_mkdir(idmap, dir, dentry, mode));
}

static int vexfs_rmdir(struct inode *dir, struct dentry *dentry)
{
	handle_t *handle = vexfs_journal_start(dir->i_sb, VEXFS_CREDITS_UNLINK + 1, 0);

	if (IS_ERR(handle))
		return PTR_ERR(handle);
	return vexfs_journal_end(handle, __vexfs_rmdir(dir, dentry));
}

static int vexfs_rename(vexfs_idmap_t *idmap,
			struct inode *old_dir, struct dentry *old_dentry,
			struct inode *new_dir, struct dentry *new_dentry,
			unsigned int flags)
{
	handle_t *handle = vexfs_journal_start(old_dir->i_sb, VEXFS_CREDITS_RENAME, 0);

	if (IS_ERR(handle))
		return PTR_ERR(handle);
	return vexfs_journal_end(handle, __vexfs_rename(idmap, old_dir, old_dentry,
					      new_dir, new_dentry, flags));
}

const struct inode_operations vexfs_dir_inode_operations = {
	.create		= vexfs_create,
	.lookup		= vexfs_lookup,
	.link		= vexfs_link,
	.unlink		= vexfs_unlink,
	.symlink	= vexfs_symlink,
	.mkdir		= vexfs_mkdir,
	.rmdir		= vexfs_rmdir,
	.mknod		= vexfs_mknod,
	.rename		= vexfs_rename,
	.tmpfile	= vexfs_tmpfile,
	.getattr	= vexfs_getattr,
	.setattr	= vexfs_setattr,
	.listxattr	= vexfs_listxattr,
	VEXFS_IOP_ACL,
	.fileattr_get	= vexfs_fileattr_get,
	.fileattr_set	= vexfs_fileattr_set,
};

const struct inode_operations vexfs_special_inode_operations = {
	.getattr	= vexfs_getattr,
	.setattr	= vexfs_setattr,
	.listxattr	= vexfs_listxattr,
	VEXFS_IOP_ACL,
};

const struct inode_operations vexfs_symlink_inode_operations = {
	.get_link	= page_get_link,
	.getattr	= vexfs_getattr,
	.setattr	= vexfs_setattr,
	.listxattr	= vexfs_listxattr,
};
