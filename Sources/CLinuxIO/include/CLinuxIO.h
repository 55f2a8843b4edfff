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

#endif
