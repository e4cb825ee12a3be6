// SPDX-License-Identifier: GPL-2.0
/*
 * csum.c - CRC-32C checksums of every VexFS metadata structure.
 *
 * Every checksum is the standard CRC-32C (what Python's crc32c.crc32c()
 * returns) of the whole structure with its own checksum field taken as
 * zero. The field is skipped rather than zeroed in place so a buffer that
 * is concurrently being written to disk never sees a transient value.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/crc32.h>
#include <linux/stddef.h>
#include "vexfs.h"

static const u8 vexfs_zero4[4];

u32 vexfs_crc32c(const void *buf, size_t len)
{
	return ~__crc32c_le(~0U, buf, len);
}

/* CRC-32C of buf[0, len) with the 4 bytes at csum_off read as zero */
u32 vexfs_csum_skip(const void *buf, size_t len, size_t csum_off)
{
	const u8 *p = buf;
	u32 crc;

	crc = __crc32c_le(~0U, p, csum_off);
	crc = __crc32c_le(crc, vexfs_zero4, 4);
	crc = __crc32c_le(crc, p + csum_off + 4, len - csum_off - 4);
	return ~crc;
}

#define VEXFS_SB_CSUM_OFF offsetof(struct vexfs_super_block, s_checksum)

bool vexfs_sb_csum_ok(const struct vexfs_super_block *vs)
{
	return le32_to_cpu(vs->s_checksum) ==
		vexfs_csum_skip(vs, sizeof(*vs), VEXFS_SB_CSUM_OFF);
}

void vexfs_sb_csum_set(struct vexfs_super_block *vs)
{
	vs->s_checksum = cpu_to_le32(vexfs_csum_skip(vs, sizeof(*vs),
						     VEXFS_SB_CSUM_OFF));
}

#define VEXFS_INODE_CSUM_OFF offsetof(struct vexfs_inode, i_checksum)

bool vexfs_inode_csum_ok(const struct vexfs_inode *raw)
{
	return le32_to_cpu(raw->i_checksum) ==
		vexfs_csum_skip(raw, sizeof(*raw), VEXFS_INODE_CSUM_OFF);
}

void vexfs_inode_csum_set(struct vexfs_inode *raw)
{
	raw->i_checksum = cpu_to_le32(vexfs_csum_skip(raw, sizeof(*raw),
						      VEXFS_INODE_CSUM_OFF));
}

#define VEXFS_BMP_CSUM_OFF offsetof(struct vexfs_bitmap_header, bh_checksum)

bool vexfs_bitmap_csum_ok(const void *block)
{
	const struct vexfs_bitmap_header *h = block;

	return le32_to_cpu(h->bh_checksum) ==
		vexfs_csum_skip(block, VEXFS_BLOCK_SIZE, VEXFS_BMP_CSUM_OFF);
}

void vexfs_bitmap_csum_set(void *block)
{
	struct vexfs_bitmap_header *h = block;

	h->bh_checksum = cpu_to_le32(vexfs_csum_skip(block, VEXFS_BLOCK_SIZE,
						     VEXFS_BMP_CSUM_OFF));
}

#define VEXFS_EXT_CSUM_OFF offsetof(struct vexfs_extent_block_header, eb_checksum)

bool vexfs_extblk_csum_ok(const void *block)
{
	const struct vexfs_extent_block_header *h = block;

	return le32_to_cpu(h->eb_checksum) ==
		vexfs_csum_skip(block, VEXFS_BLOCK_SIZE, VEXFS_EXT_CSUM_OFF);
}

void vexfs_extblk_csum_set(void *block)
{
	struct vexfs_extent_block_header *h = block;

	h->eb_checksum = cpu_to_le32(vexfs_csum_skip(block, VEXFS_BLOCK_SIZE,
						     VEXFS_EXT_CSUM_OFF));
}

#define VEXFS_DIR_CSUM_OFF \
	(VEXFS_DIR_DATA_BYTES + offsetof(struct vexfs_dir_tail, dt_checksum))

bool vexfs_dirblk_csum_ok(const void *block)
{
	const struct vexfs_dir_tail *t = block + VEXFS_DIR_DATA_BYTES;

	return le32_to_cpu(t->dt_checksum) ==
		vexfs_csum_skip(block, VEXFS_BLOCK_SIZE, VEXFS_DIR_CSUM_OFF);
}

void vexfs_dirblk_csum_set(void *block)
{
	struct vexfs_dir_tail *t = block + VEXFS_DIR_DATA_BYTES;

	t->dt_magic = cpu_to_le32(VEXFS_DIR_TAIL_MAGIC);
	t->dt_checksum = cpu_to_le32(vexfs_csum_skip(block, VEXFS_BLOCK_SIZE,
						     VEXFS_DIR_CSUM_OFF));
}
