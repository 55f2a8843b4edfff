#define _GNU_SOURCE
#include "CLinuxIO.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

int osb_o_direct_flag(void) { return O_DIRECT; }

int osb_punch_hole(int fd, uint64_t offset, uint64_t length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}

int osb_block_device_zero_out(int fd, uint64_t offset, uint64_t length) {
    uint64_t range[2] = {offset, length};
    return ioctl(fd, BLKZEROOUT, range);
}

int osb_block_device_size(int fd, uint64_t *size) { return ioctl(fd, BLKGETSIZE64, size); }
