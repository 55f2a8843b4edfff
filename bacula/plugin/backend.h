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

/* Picks the backend executable: `configured` (backend=) if given, else `osbackup` in the FD's
 * ExePath directory, else /usr/local/bin/osbackup, else the first `osbackup` on PATH.
 * Writes it to out; returns 0, or -1 with a sentence in err. */
int osb_find_backend(const char *configured, const char *exe_path, char *out, size_t outlen, char *err, size_t errlen);

/* Starts `path bacula-backend` in its own process group with the FD's environment and three pipes.
 * Returns 0, or -1 with a sentence in err (the exec failure is reported, not a silent exit 127). */
int osb_spawn(const char *path, osb_process *p, char *err, size_t errlen);

/* Waits up to wait_ms for the process to exit by itself (after its stdin was closed); then SIGTERM to
 * the group, up to grace_ms more, then SIGKILL to the group; always reaps. Describes the exit in how.
 * *pgid_slot is zeroed before the reap so that a concurrent cancel never signals a reused pid. */
void osb_stop(osb_process *p, volatile int *pgid_slot, int wait_ms, int grace_ms, char *how, size_t howlen);

#endif
