// SPDX-License-Identifier: GPL-2.0
/*
 * xattr.c - extended attributes. Every inode has at most one xattr block of
 * its own (the format is in uapi/vexfs_fs.h, "Extended attributes"; ext2's
 * one block per inode, without ext2's block sharing). The user.*,
 * trusted.* and security.* handlers live here; acl.c stores the POSIX ACLs
 * through vexfs_xattr_get()/vexfs_xattr_set() under their own indexes.
 *
 * A change rewrites the whole block in one jbd2 handle (credits
 * VEXFS_CREDITS_XATTR): the new block contents are built in a scratch
 * buffer from a checked copy of the old ones, so a damaged block is
 * reported (EUCLEAN) and never half-updated. i_xattr_sem orders readers
 * against writers; it nests inside the journal handle, as in ext4.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/security.h>
#include <linux/slab.h>
#include <linux/xattr.h>
#include "vexfs.h"

#define VEXFS_XATTR_CSUM_OFF offsetof(struct vexfs_xattr_header, xh_checksum)

static u64 vexfs_raw_xattr_blk(const struct vexfs_inode *raw)
{
	return (u64)le32_to_cpu(raw->i_xattr_hi) << 32 |
	       le32_to_cpu(raw->i_xattr_lo);
}

int vexfs_xattr_load(struct inode *inode, const struct vexfs_inode *raw)
{
	struct super_block *sb = inode->i_sb;
	u64 blk = vexfs_raw_xattr_blk(raw);

	if (blk && !vexfs_data_range_ok(VEXFS_SB(sb), blk, 1)) {
		vexfs_error(sb, "inode %lu: xattr block %llu out of range",
			    inode->i_ino, blk);
		return -EUCLEAN;
	}
	VEXFS_I(inode)->i_xattr_blk = blk;
	return 0;
}

void vexfs_xattr_to_raw(struct inode *inode, struct vexfs_inode *raw)
{
	u64 blk = READ_ONCE(VEXFS_I(inode)->i_xattr_blk);

	raw->i_xattr_lo = cpu_to_le32(lower_32_bits(blk));
	raw->i_xattr_hi = cpu_to_le32(upper_32_bits(blk));
}

static bool vexfs_xattr_index_ok(unsigned int index, unsigned int name_len)
{
	switch (index) {
	case VEXFS_XATTR_INDEX_USER:
	case VEXFS_XATTR_INDEX_TRUSTED:
	case VEXFS_XATTR_INDEX_SECURITY:
		return name_len > 0;
	case VEXFS_XATTR_INDEX_ACL_ACCESS:
	case VEXFS_XATTR_INDEX_ACL_DEFAULT:
		return name_len == 0;
	}
	return false;
}

static struct vexfs_xattr_entry *vexfs_xe(void *blk, u32 off)
{
	return blk + off;
}

static u32 vexfs_xe_len(const struct vexfs_xattr_entry *e)
{
	return VEXFS_XATTR_REC_LEN(e->e_name_len, le16_to_cpu(e->e_value_size));
}

/*
 * Check a copy of the xattr block @nr of @inode: checksum, owner, and that
 * the entries tile [32, xh_used) exactly. The walk is bounded by the block
 * size (every entry is at least 4 bytes). Reports and returns false if not.
 */
static bool vexfs_xattr_check(struct inode *inode, void *blk, u64 nr)
{
	struct vexfs_xattr_header *h = blk;
	u32 count = le16_to_cpu(h->xh_count), used = le16_to_cpu(h->xh_used);
	u32 off = VEXFS_XATTR_HEADER, i;
	const char *why = NULL;

	if (le32_to_cpu(h->xh_magic) != VEXFS_XATTR_MAGIC)
		why = "bad magic";
	else if (le32_to_cpu(h->xh_checksum) !=
		 vexfs_csum_skip(blk, VEXFS_BLOCK_SIZE, VEXFS_XATTR_CSUM_OFF))
		why = "checksum mismatch";
	else if (le32_to_cpu(h->xh_ino) != inode->i_ino)
		why = "owned by another inode";
	else if (used < VEXFS_XATTR_HEADER || used > VEXFS_BLOCK_SIZE ||
		 count > VEXFS_XATTR_SPACE / VEXFS_XATTR_ENTRY_HEADER)
		why = "bad header";
	for (i = 0; !why && i < count; i++) {
		struct vexfs_xattr_entry *e = vexfs_xe(blk, off);

		if (used - off < VEXFS_XATTR_ENTRY_HEADER ||
		    vexfs_xe_len(e) > used - off)
			why = "entry past the end";
		else if (!vexfs_xattr_index_ok(e->e_name_index, e->e_name_len))
			why = "bad name index";
		else
			off += vexfs_xe_len(e);
	}
	if (!why && off != used)
		why = "entries do not match xh_used";
	if (why)
		vexfs_error(inode->i_sb, "inode %lu: xattr block %llu: %s",
			    inode->i_ino, nr, why);
	return !why;
}

/*
 * Copy the inode's xattr block into @buf (VEXFS_BLOCK_SIZE bytes) and check
 * it; an inode without one gets an empty header. i_xattr_sem is held.
 */
static int vexfs_xattr_read(struct inode *inode, void *buf)
{
	struct super_block *sb = inode->i_sb;
	u64 nr = VEXFS_I(inode)->i_xattr_blk;
	struct vexfs_xattr_header *h = buf;
	struct buffer_head *bh;

	if (!nr) {
		memset(buf, 0, VEXFS_BLOCK_SIZE);
		h->xh_magic = cpu_to_le32(VEXFS_XATTR_MAGIC);
		h->xh_ino = cpu_to_le32(inode->i_ino);
		h->xh_used = cpu_to_le16(VEXFS_XATTR_HEADER);
		return 0;
	}
	bh = vexfs_bread(sb, nr);
	if (!bh) {
		vexfs_error(sb, "inode %lu: unable to read xattr block %llu",
			    inode->i_ino, nr);
		return -EIO;
	}
	memcpy(buf, bh->b_data, VEXFS_BLOCK_SIZE);
	vexfs_brelse(bh);
	return vexfs_xattr_check(inode, buf, nr) ? 0 : -EUCLEAN;
}

/* The entry (index, name) in the checked block @blk, or NULL; *offp = its offset. */
static struct vexfs_xattr_entry *vexfs_xattr_find(void *blk, int index,
						  const char *name,
						  size_t name_len, u32 *offp)
{
	struct vexfs_xattr_header *h = blk;
	u32 count = le16_to_cpu(h->xh_count), off = VEXFS_XATTR_HEADER, i;

	for (i = 0; i < count; i++) {
		struct vexfs_xattr_entry *e = vexfs_xe(blk, off);

		if (e->e_name_index == index && e->e_name_len == name_len &&
		    !memcmp(e->e_name, name, name_len)) {
			*offp = off;
			return e;
		}
		off += vexfs_xe_len(e);
	}
	return NULL;
}

/*
 * Get the value of (index, name): its size, or -ENODATA, or -ERANGE when
 * @size (non-zero) is too small. @buf NULL or @size 0: just the size.
 */
int vexfs_xattr_get(struct inode *inode, int index, const char *name,
		    void *buf, size_t size)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	size_t name_len = strlen(name);
	struct vexfs_xattr_entry *e;
	void *blk;
	u32 off;
	int err;

	if (name_len > VEXFS_NAME_LEN)
		return -ERANGE;
	if (!READ_ONCE(ei->i_xattr_blk))
		return -ENODATA;
	blk = kmalloc(VEXFS_BLOCK_SIZE, GFP_NOFS);
	if (!blk)
		return -ENOMEM;
	down_read(&ei->i_xattr_sem);
	err = vexfs_xattr_read(inode, blk);
	if (err)
		goto out;
	e = vexfs_xattr_find(blk, index, name, name_len, &off);
	if (!e) {
		err = -ENODATA;
		goto out;
	}
	err = le16_to_cpu(e->e_value_size);
	if (buf && size) {
		if (err > size)
			err = -ERANGE;
		else
			memcpy(buf, e->e_name + e->e_name_len, err);
	}
out:
	up_read(&ei->i_xattr_sem);
	kfree(blk);
	return err;
}

/*
 * Before the first xattr block of the filesystem: set the INCOMPAT_XATTR
 * feature and write the superblock synchronously, so no module without
 * xattr support mounts a filesystem that has one.
 */
static int vexfs_xattr_feature(struct super_block *sb)
{
	struct vexfs_sb_info *sbi = VEXFS_SB(sb);
	__le32 bit = cpu_to_le32(VEXFS_FEATURE_INCOMPAT_XATTR);

	if (READ_ONCE(sbi->s_vs->s_feature_incompat) & bit)
		return 0;
	lock_buffer(sbi->s_sbh);
	sbi->s_vs->s_feature_incompat |= bit;
	unlock_buffer(sbi->s_sbh);
	vexfs_msg(sb, KERN_INFO, "first extended attribute: feature xattr set");
	return vexfs_write_super(sb, true);
}

/* Free the inode's xattr block @nr (its pointer is cleared by the caller). */
static int vexfs_xattr_free_block(struct inode *inode, u64 nr)
{
	vexfs_journal_forget(inode->i_sb, nr);
	inode_sub_bytes(inode, VEXFS_BLOCK_SIZE);
	return vexfs_free_blocks(inode->i_sb, nr, 1);
}

/* Write @blk (checksummed here) as the inode's xattr block, allocating it. */
static int vexfs_xattr_write(struct inode *inode, void *blk)
{
	struct super_block *sb = inode->i_sb;
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	struct vexfs_xattr_header *h = blk;
	u64 nr = ei->i_xattr_blk, goal = 0;
	struct buffer_head *bh;
	bool fresh = !nr;
	int err;

	if (fresh) {
		err = vexfs_xattr_feature(sb);
		if (err)
			return err;
		down_read(&ei->i_ext_sem);
		if (ei->i_nr_ext)
			goal = ei->i_ext[0].pblk;
		up_read(&ei->i_ext_sem);
		err = vexfs_new_blocks(sb, goal, 1, &nr);
		if (err < 0)
			return err;
		bh = vexfs_getblk(sb, nr);
		if (!bh) {
			vexfs_free_blocks(sb, nr, 1);
			return -ENOMEM;
		}
		err = vexfs_journal_get_create(sb, bh);
	} else {
		bh = vexfs_bread(sb, nr);
		if (!bh) {
			vexfs_error(sb, "inode %lu: unable to read xattr block %llu",
				    inode->i_ino, nr);
			return -EIO;
		}
		err = vexfs_journal_get_write(sb, bh);
	}
	if (err) {
		vexfs_brelse(bh);
		if (fresh)
			vexfs_free_blocks(sb, nr, 1);
		return err;
	}
	h->xh_checksum = cpu_to_le32(vexfs_csum_skip(blk, VEXFS_BLOCK_SIZE,
						     VEXFS_XATTR_CSUM_OFF));
	lock_buffer(bh);
	memcpy(bh->b_data, blk, VEXFS_BLOCK_SIZE);
	set_buffer_uptodate(bh);
	unlock_buffer(bh);
	err = vexfs_journal_dirty(sb, bh);
	if (!VEXFS_SB(sb)->s_journal && IS_SYNC(inode) && sync_dirty_buffer(bh))
		err = vexfs_check_wb_err(sb) ?: -EIO;
	vexfs_brelse(bh);
	if (fresh) {
		WRITE_ONCE(ei->i_xattr_blk, nr);
		inode_add_bytes(inode, VEXFS_BLOCK_SIZE);
	}
	return err;
}

static int __vexfs_xattr_set(struct inode *inode, int index, const char *name,
			     const void *value, size_t size, int flags)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	size_t name_len = strlen(name);
	struct vexfs_xattr_header *nh;
	struct vexfs_xattr_entry *e;
	void *old, *new;
	u32 off, noff = VEXFS_XATTR_HEADER, count, i, len;
	bool found = false;
	int err;

	if (name_len > VEXFS_NAME_LEN ||
	    !vexfs_xattr_index_ok(index, name_len))
		return -EINVAL;
	if (value && size > VEXFS_XATTR_SPACE)
		return -ENOSPC;
	old = kmalloc(VEXFS_BLOCK_SIZE, GFP_NOFS);
	new = kzalloc(VEXFS_BLOCK_SIZE, GFP_NOFS);
	err = -ENOMEM;
	if (!old || !new)
		goto out;
	err = vexfs_xattr_read(inode, old);
	if (err)
		goto out;
	memcpy(new, old, VEXFS_XATTR_HEADER);
	count = le16_to_cpu(((struct vexfs_xattr_header *)old)->xh_count);
	/* copy every other entry, in order */
	for (i = 0, off = VEXFS_XATTR_HEADER; i < count; i++, off += len) {
		e = vexfs_xe(old, off);
		len = vexfs_xe_len(e);
		if (e->e_name_index == index && e->e_name_len == name_len &&
		    !memcmp(e->e_name, name, name_len)) {
			found = true;
			continue;
		}
		memcpy(new + noff, e, len);
		noff += len;
	}
	nh = new;
	err = -EEXIST;
	if (found && (flags & XATTR_CREATE))
		goto out;
	err = -ENODATA;
	if (!found && ((flags & XATTR_REPLACE) || !value))
		goto out;
	count -= found;
	if (value) {
		len = VEXFS_XATTR_REC_LEN(name_len, size);
		err = -ENOSPC;
		if (len > VEXFS_BLOCK_SIZE - noff)
			goto out;
		e = vexfs_xe(new, noff);
		e->e_name_index = index;
		e->e_name_len = name_len;
		e->e_value_size = cpu_to_le16(size);
		memcpy(e->e_name, name, name_len);
		memcpy(e->e_name + name_len, value, size);
		noff += len;
		count++;
	}
	nh->xh_count = cpu_to_le16(count);
	nh->xh_used = cpu_to_le16(noff);
	nh->xh_ino = cpu_to_le32(inode->i_ino);
	if (count) {
		err = vexfs_xattr_write(inode, new);
	} else {
		u64 nr = ei->i_xattr_blk;

		WRITE_ONCE(ei->i_xattr_blk, 0);
		err = nr ? vexfs_xattr_free_block(inode, nr) : 0;
	}
	if (!err) {
		vexfs_inode_touch_ctime(inode);
		mark_inode_dirty(inode);
	}
out:
	kfree(new);
	kfree(old);
	return err;
}

/*
 * Set (index, name) to @value (@size bytes), or remove it (@value NULL).
 * @flags: XATTR_CREATE (-EEXIST if present) or XATTR_REPLACE (-ENODATA if
 * absent). -ENOSPC when the inode's attributes would not fit one block.
 */
int vexfs_xattr_set(struct inode *inode, int index, const char *name,
		    const void *value, size_t size, int flags)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	handle_t *handle;
	int err;

	/* joins the running handle of a create, if any */
	handle = vexfs_journal_start(inode->i_sb, VEXFS_CREDITS_XATTR, 1);
	if (IS_ERR(handle))
		return PTR_ERR(handle);
	down_write(&ei->i_xattr_sem);
	err = __vexfs_xattr_set(inode, index, name, value, size, flags);
	up_write(&ei->i_xattr_sem);
	return vexfs_journal_end(handle, err);
}

/*
 * The inode is being deleted (evict, inside its handle): free its xattr
 * block, after checking it is this inode's (a cross-linked pointer must
 * not free another inode's block).
 */
int vexfs_xattr_delete_inode(struct inode *inode)
{
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	u64 nr = ei->i_xattr_blk;
	void *blk;
	int err;

	if (!nr)
		return 0;
	blk = kmalloc(VEXFS_BLOCK_SIZE, GFP_NOFS);
	if (!blk)
		return -ENOMEM;
	down_write(&ei->i_xattr_sem);
	err = vexfs_xattr_read(inode, blk);
	if (!err) {
		WRITE_ONCE(ei->i_xattr_blk, 0);
		err = vexfs_xattr_free_block(inode, nr);
	}
	up_write(&ei->i_xattr_sem);
	kfree(blk);
	return err;
}

/* The prefix an entry is listed under, or NULL if it is not listed. */
static const char *vexfs_xattr_prefix(int index, struct dentry *dentry)
{
	switch (index) {
	case VEXFS_XATTR_INDEX_USER:
		return XATTR_USER_PREFIX;
	case VEXFS_XATTR_INDEX_TRUSTED:
		return capable(CAP_SYS_ADMIN) ? XATTR_TRUSTED_PREFIX : NULL;
	case VEXFS_XATTR_INDEX_SECURITY:
		return XATTR_SECURITY_PREFIX;
	case VEXFS_XATTR_INDEX_ACL_ACCESS:
		return IS_POSIXACL(d_inode(dentry)) ? XATTR_NAME_POSIX_ACL_ACCESS : NULL;
	case VEXFS_XATTR_INDEX_ACL_DEFAULT:
		return IS_POSIXACL(d_inode(dentry)) ? XATTR_NAME_POSIX_ACL_DEFAULT : NULL;
	}
	return NULL;
}

ssize_t vexfs_listxattr(struct dentry *dentry, char *buf, size_t size)
{
	struct inode *inode = d_inode(dentry);
	struct vexfs_inode_info *ei = VEXFS_I(inode);
	u32 count, off = VEXFS_XATTR_HEADER, i;
	size_t total = 0;
	void *blk;
	int err;

	if (!READ_ONCE(ei->i_xattr_blk))
		return 0;
	blk = kmalloc(VEXFS_BLOCK_SIZE, GFP_NOFS);
	if (!blk)
		return -ENOMEM;
	down_read(&ei->i_xattr_sem);
	err = vexfs_xattr_read(inode, blk);
	if (err)
		goto out;
	count = le16_to_cpu(((struct vexfs_xattr_header *)blk)->xh_count);
	for (i = 0; i < count; i++) {
		struct vexfs_xattr_entry *e = vexfs_xe(blk, off);
		const char *prefix = vexfs_xattr_prefix(e->e_name_index, dentry);

		off += vexfs_xe_len(e);
		if (!prefix)
			continue;
		if (buf) {
			size_t plen = strlen(prefix);

			if (total + plen + e->e_name_len + 1 > size) {
				err = -ERANGE;
				goto out;
			}
			memcpy(buf + total, prefix, plen);
			memcpy(buf + total + plen, e->e_name, e->e_name_len);
			buf[total + plen + e->e_name_len] = '\0';
		}
		total += strlen(prefix) + e->e_name_len + 1;
	}
out:
	up_read(&ei->i_xattr_sem);
	kfree(blk);
	return err ?: total;
}

static int vexfs_xattr_handler_get(const struct xattr_handler *handler,
				   struct dentry *unused, struct inode *inode,
				   const char *name, void *buffer, size_t size)
{
	return vexfs_xattr_get(inode, handler->flags, name, buffer, size);
}

static int vexfs_xattr_handler_set(const struct xattr_handler *handler,
				   vexfs_idmap_t *idmap,
				   struct dentry *unused, struct inode *inode,
				   const char *name, const void *value,
				   size_t size, int flags)
{
	return vexfs_xattr_set(inode, handler->flags, name, value, size, flags);
}

static bool vexfs_xattr_trusted_list(struct dentry *dentry)
{
	return capable(CAP_SYS_ADMIN);
}

static const struct xattr_handler vexfs_xattr_user_handler = {
	.prefix	= XATTR_USER_PREFIX,
	.flags	= VEXFS_XATTR_INDEX_USER,
	.get	= vexfs_xattr_handler_get,
	.set	= vexfs_xattr_handler_set,
};

static const struct xattr_handler vexfs_xattr_trusted_handler = {
	.prefix	= XATTR_TRUSTED_PREFIX,
	.flags	= VEXFS_XATTR_INDEX_TRUSTED,
	.list	= vexfs_xattr_trusted_list,
	.get	= vexfs_xattr_handler_get,
	.set	= vexfs_xattr_handler_set,
};

static const struct xattr_handler vexfs_xattr_security_handler = {
	.prefix	= XATTR_SECURITY_PREFIX,
	.flags	= VEXFS_XATTR_INDEX_SECURITY,
	.get	= vexfs_xattr_handler_get,
	.set	= vexfs_xattr_handler_set,
};

const struct xattr_handler *vexfs_xattr_handlers[] = {
	&vexfs_xattr_user_handler,
	&vexfs_xattr_trusted_handler,
	&vexfs_xattr_security_handler,
	VEXFS_ACL_XATTR_HANDLERS
	NULL
};

static int vexfs_initxattrs(struct inode *inode,
			    const struct xattr *xattr_array, void *fs_info)
{
	const struct xattr *xattr;
	int err = 0;

	for (xattr = xattr_array; xattr->name; xattr++) {
		err = vexfs_xattr_set(inode, VEXFS_XATTR_INDEX_SECURITY,
				      xattr->name, xattr->value,
				      xattr->value_len, 0);
		if (err)
			break;
	}
	return err;
}

/* The LSM's label of a new inode (SELinux, IMA/EVM), as security.* xattrs. */
int vexfs_init_security(struct inode *inode, struct inode *dir,
			const struct qstr *qstr)
{
	return security_inode_init_security(inode, dir, qstr,
					    &vexfs_initxattrs, NULL);
}
