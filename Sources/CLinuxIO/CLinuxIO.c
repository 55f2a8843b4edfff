#define _GNU_SOURCE
#include "CLinuxIO.h"

#include <fcntl.h>
#include <pthread.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int osb_o_direct_flag(void) { return O_DIRECT; }

int osb_punch_hole(int fd, uint64_t offset, uint64_t length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}

int osb_block_device_zero_out(int fd, uint64_t offset, uint64_t length) {
    uint64_t range[2] = {offset, length};
    return ioctl(fd, BLKZEROOUT, range);
}

int osb_block_device_size(int fd, uint64_t *size) { return ioctl(fd, BLKGETSIZE64, size); }

int osb_ioprio_set(int tid, int ioclass, int level) {
    // IOPRIO_WHO_PROCESS = 1; the priority is the class in the top bits (shift 13) and the level below.
    return (int)syscall(SYS_ioprio_set, 1, tid, (ioclass << 13) | level);
}

void osb_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }

int64_t osb_seek_data(int fd, uint64_t offset) { return (int64_t)lseek(fd, (off_t)offset, SEEK_DATA); }

int64_t osb_seek_hole(int fd, uint64_t offset) { return (int64_t)lseek(fd, (off_t)offset, SEEK_HOLE); }
