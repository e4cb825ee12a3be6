// SPDX-License-Identifier: GPL-2.0
/*
 * export.c - export_operations, so VexFS can be exported over NFS and
 * open_by_handle_at() works. A file handle is the inode number and its
 * i_generation (random per new inode), plus the parent's for connectable
 * handles: FILEID_INO32_GEN(_PARENT), decoded by the generic helpers. A
 * handle of a deleted or reused inode gives ESTALE, never a filesystem
 * error.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/exportfs.h>
#include "vexfs.h"

static int vexfs_encode_fh(struct inode *inode, __u32 *fh, int *max_len,
			   struct inode *parent)
{
	int len = parent ? 4 : 2;

	if (*max_len < len) {
		*max_len = len;
		return FILEID_INVALID;
	}
	fh[0] = inode->i_ino;
	fh[1] = inode->i_generation;
	if (parent) {
		fh[2] = parent->i_ino;
		fh[3] = parent->i_generation;
	}
	*max_len = len;
	return parent ? FILEID_INO32_GEN_PARENT : FILEID_INO32_GEN;
}

/* Is inode @ino in use on disk (so vexfs_iget() will not call it corrupt)? */
static bool vexfs_ino_in_use(struct super_block *sb, u64 ino)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	const struct vexfs_inode *raw;
	struct buffer_head *bh;
	bool used;

	bh = vexfs_bread(sb, sbi->s_itable_start + (ino - 1) / VEXFS_INODES_PER_BLOCK);
	if (!bh)
		return false;
	raw = (const void *)(bh->b_data + ((ino - 1) % VEXFS_INODES_PER_BLOCK) *
			     VEXFS_INODE_SIZE);
	used = raw->i_mode && raw->i_links_count;
	vexfs_brelse(bh);
	return used;
}

static struct inode *vexfs_nfs_get_inode(struct super_block *sb, u64 ino,
					 u32 generation)
{
	struct inode *inode;

	if (ino < VEXFS_ROOT_INO || ino > VEXFS_SB(sb)->s_inodes_count)
		return ERR_PTR(-ESTALE);
	inode = ilookup(sb, ino);
	if (!inode) {
		if (!vexfs_ino_in_use(sb, ino))
			return ERR_PTR(-ESTALE);
		inode = vexfs_iget(sb, ino);
		if (IS_ERR(inode))
			return ERR_CAST(inode);
	}
	if (is_bad_inode(inode) || !inode->i_nlink ||
	    (generation && inode->i_generation != generation)) {
		iput(inode);
		return ERR_PTR(-ESTALE);
	}
	return inode;
}

static struct dentry *vexfs_fh_to_dentry(struct super_block *sb,
					 struct fid *fid, int fh_len,
					 int fh_type)
{
	return generic_fh_to_dentry(sb, fid, fh_len, fh_type,
				    vexfs_nfs_get_inode);
}

static struct dentry *vexfs_fh_to_parent(struct super_block *sb,
					 struct fid *fid, int fh_len,
					 int fh_type)
{
	return generic_fh_to_parent(sb, fid, fh_len, fh_type,
				    vexfs_nfs_get_inode);
}

static struct dentry *vexfs_get_parent(struct dentry *child)
{
	struct vexfs_dir_entry *de;
	struct buffer_head *bh;
	u32 ino;

	de = vexfs_dotdot(d_inode(child), &bh);
	if (IS_ERR(de))
		return ERR_CAST(de);
	ino = le32_to_cpu(de->d_inode);
	vexfs_brelse(bh);
	return d_obtain_alias(vexfs_iget(child->d_sb, ino));
}

/* NFS COMMIT / sync exports: the inode's metadata on stable storage. */
static int vexfs_commit_metadata(struct inode *inode)
{
	return write_inode_now(inode, 1);
}

const struct export_operations vexfs_export_ops = {
	.encode_fh	= vexfs_encode_fh,
	.fh_to_dentry	= vexfs_fh_to_dentry,
	.fh_to_parent	= vexfs_fh_to_parent,
	.get_parent	= vexfs_get_parent,
	.commit_metadata = vexfs_commit_metadata,
};
