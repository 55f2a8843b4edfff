// Linux I/O calls that Swift's Glibc module does not expose (they need _GNU_SOURCE).
#ifndef OSBACKUP_CLINUXIO_H
#define OSBACKUP_CLINUXIO_H

#include <stdint.h>

/// The open(2) flag for O_DIRECT on this architecture.
int osb_o_direct_flag(void);

/// Makes a range of a regular file a hole (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE).
/// Returns 0, or -1 with errno set.
int osb_punch_hole(int fd, uint64_t offset, uint64_t length);

/// Zeroes a range of a block device (BLKZEROOUT). Returns 0, or -1 with errno set.
int osb_block_device_zero_out(int fd, uint64_t offset, uint64_t length);

/// The size of a block device in bytes (BLKGETSIZE64). Returns 0, or -1 with errno set.
int osb_block_device_size(int fd, uint64_t *size);

/// Sets the I/O scheduling class (1 realtime, 2 best-effort, 3 idle) and level (0-7) of thread `tid`
/// (ioprio_set, IOPRIO_WHO_PROCESS). Returns 0, or -1 with errno set.
int osb_ioprio_set(int tid, int ioclass, int level);

/// Names the calling thread (at most 15 bytes are kept), as /proc/<pid>/task/<tid>/comm and top show it.
void osb_set_thread_name(const char *name);

/// The first offset at or after `offset` that holds data (lseek SEEK_DATA). Returns it, or -1 with errno
/// set: ENXIO when only holes follow `offset`, EINVAL where the file system cannot say.
int64_t osb_seek_data(int fd, uint64_t offset);

/// The first offset at or after `offset` that is in a hole (lseek SEEK_HOLE; the end of the file counts as
/// one). Returns it, or -1 with errno set.
int64_t osb_seek_hole(int fd, uint64_t offset);

#endif
