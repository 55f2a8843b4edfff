/* backend.h: finding, starting and stopping the `osbackup bacula-backend` process. */
#ifndef OSB_BACKEND_H
#define OSB_BACKEND_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;     /* also the process group id: the child calls setpgid(0, 0) */
    int to_fd;     /* its stdin */
    int from_fd;   /* its stdout */
    int err_fd;    /* its stderr */
} osb_process;

/* The process group another thread (the FD's cancel) may signal. `pgid` is 0 when there is none;
 * `signalling` counts signals in flight, so that the reaper can wait them out before the pid may be
 * reused. Both are touched with atomics only. */
typedef struct {
    int pgid;
    int signalling;
} osb_group_slot;

/* Publishes the group of a started backend. */
void osb_group_set(osb_group_slot *slot, pid_t pgid);

/* Sends sig to the slot's group, if any; lock-free and allocation-free (safe from the cancel thread). */
void osb_group_signal(osb_group_slot *slot, int sig);

/* Picks the backend executable: `configured` (backend=) if given, else `osbackup` in the FD's
 * ExePath directory, else /usr/local/bin/osbackup, else the first `osbackup` on PATH.
 * Writes it to out; returns 0, or -1 with a sentence in err. */
int osb_find_backend(const char *configured, const char *exe_path, char *out, size_t outlen, char *err, size_t errlen);

/* Starts `path bacula-backend` in its own process group with the FD's environment and three pipes.
 * Returns 0, or -1 with a sentence in err (the exec failure is reported, not a silent exit 127). */
int osb_spawn(const char *path, osb_process *p, char *err, size_t errlen);

/* Waits up to wait_ms for the process to exit by itself (after its stdin was closed); then SIGTERM to
 * the group, up to grace_ms more, then SIGKILL to the group; always reaps. Describes the exit in how.
 * The slot is cleared, and the signals in flight waited out, before the reap: a concurrent cancel never
 * signals a reused pid. */
void osb_stop(osb_process *p, osb_group_slot *slot, int wait_ms, int grace_ms, char *how, size_t howlen);

#endif
