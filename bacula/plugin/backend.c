/* backend.c: see backend.h. */
#define _GNU_SOURCE
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int executable(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int osb_find_backend(const char *configured, const char *exe_path, char *out, size_t outlen, char *err, size_t errlen) {
    if (configured && *configured) {
        if (!executable(configured)) {
            snprintf(err, errlen, "backend=%s is not an executable file (%s); fix the path in the Plugin line",
                     configured, access(configured, F_OK) ? strerror(errno) : "not executable");
            return -1;
        }
        snprintf(out, outlen, "%s", configured);
        return 0;
    }
    /* bVarExePath is the FD's directory in 9.6 (message.c strips the file name); accept a file too */
    if (exe_path && *exe_path) {
        struct stat st;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", exe_path);
        if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
            char *slash = strrchr(dir, '/');
            if (slash) *slash = '\0';
        }
        int n = snprintf(out, outlen, "%s/osbackup", dir);
        if (n > 0 && (size_t)n < outlen && executable(out)) return 0;
    }
    if (executable("/usr/local/bin/osbackup")) {
        snprintf(out, outlen, "/usr/local/bin/osbackup");
        return 0;
    }
    const char *path = getenv("PATH");
    if (path) {
        const char *p = path;
        while (*p) {
            const char *colon = strchr(p, ':');
            size_t len = colon ? (size_t)(colon - p) : strlen(p);
            if (len > 0) {
                int n = snprintf(out, outlen, "%.*s/osbackup", (int)len, p);
                if (n > 0 && (size_t)n < outlen && executable(out)) return 0;
            }
            p += len + (colon ? 1 : 0);
        }
    }
    snprintf(err, errlen, "no osbackup executable found (looked next to bacula-fd in %s, in /usr/local/bin and on "
             "PATH); run `make install` or add backend=/path/to/osbackup to the Plugin line",
             exe_path && *exe_path ? exe_path : "?");
    return -1;
}

static void close_pair(int fds[2]) {
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
}

int osb_spawn(const char *path, osb_process *p, char *err, size_t errlen) {
    int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1}, status[2] = {-1, -1};
    /* O_CLOEXEC everywhere: other FD threads may fork at the same time and must not inherit our ends */
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(er, O_CLOEXEC) || pipe2(status, O_CLOEXEC)) {
        snprintf(err, errlen, "cannot create pipes for the backend: %s", strerror(errno));
        close_pair(in); close_pair(out); close_pair(er); close_pair(status);
        return -1;
    }
    char *const argv[] = {(char *)path, (char *)"bacula-backend", NULL};
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot fork the backend: %s", strerror(errno));
        close_pair(in); close_pair(out); close_pair(er); close_pair(status);
        return -1;
    }
    if (pid == 0) {
        /* child: async-signal-safe calls only (the FD is multithreaded) */
        setpgid(0, 0);
        /* the FD may ignore or block signals; the backend needs the defaults (SIGTERM = cancel) */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < 32; s++)
            if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(er[1], 2) < 0) _exit(126);
        /* dup2 onto itself keeps CLOEXEC: make sure 0-2 survive the exec */
        for (int fd = 0; fd < 3; fd++) fcntl(fd, F_SETFD, 0);
        /* every other descriptor of the FD (Director and SD sockets, other jobs' files) closes at exec;
         * the status pipe too, which is how the parent learns the exec worked */
        struct rlimit limit;
        int highest = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 65536 ? (int)limit.rlim_cur : 65536;
        for (int fd = 3; fd < highest; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
        execv(path, argv);
        int e = errno;
        ssize_t ignored = write(status[1], &e, sizeof e);
        (void)ignored;
        _exit(127);
    }
    setpgid(pid, pid); /* also from the parent: no window where a cancel would miss the group */
    close(in[0]); close(out[1]); close(er[1]); close(status[1]);
    int child_errno = 0;
    ssize_t n;
    do n = read(status[0], &child_errno, sizeof child_errno); while (n < 0 && errno == EINTR);
    close(status[0]);
    if (n == (ssize_t)sizeof child_errno) {
        snprintf(err, errlen, "cannot run %s bacula-backend: %s", path, strerror(child_errno));
        close(in[1]); close(out[0]); close(er[0]);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        return -1;
    }
    p->pid = pid;
    p->to_fd = in[1];
    p->from_fd = out[0];
    p->err_fd = er[0];
    return 0;
}

/* Reads and drops whatever fd has ready now, without blocking. */
static void discard_available(int fd) {
    if (fd < 0) return;
    char sink[65536];
    for (int rounds = 0; rounds < 16; rounds++) {
        struct pollfd q = {fd, POLLIN, 0};
        if (poll(&q, 1, 0) <= 0 || !(q.revents & (POLLIN | POLLHUP))) return;
        if (read(fd, sink, sizeof sink) <= 0) return;
    }
}

void osb_group_set(osb_group_slot *slot, pid_t pgid) {
    __atomic_store_n(&slot->pgid, (int)pgid, __ATOMIC_SEQ_CST);
}

void osb_group_signal(osb_group_slot *slot, int sig) {
    /* counted before the load: once the reaper has cleared pgid and seen no signal in flight, every
     * later call loads 0 */
    __atomic_add_fetch(&slot->signalling, 1, __ATOMIC_SEQ_CST);
    int pg = __atomic_load_n(&slot->pgid, __ATOMIC_SEQ_CST);
    if (pg > 0) kill(-pg, sig);
    __atomic_sub_fetch(&slot->signalling, 1, __ATOMIC_SEQ_CST);
}

/* Clears the slot and waits until no signal to the group is in flight (a few microseconds at most). */
static void group_clear(osb_group_slot *slot) {
    __atomic_store_n(&slot->pgid, 0, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&slot->signalling, __ATOMIC_SEQ_CST) > 0) {
        struct timespec ts = {0, 100 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Waits up to ms for the exit. The exit is first observed without reaping (WNOWAIT), the cancel slot
 * is cleared, and only then is the zombie reaped: until the reap the pid cannot be reused, so a cancel
 * racing with us can only signal our own (exited) group. */
static int reap_within(osb_process *p, int ms, int *status, osb_group_slot *slot) {
    pid_t pid = p->pid;
    for (int waited = 0;; waited += 20) {
        /* keep its pipes flowing meanwhile: a backend blocked on a full stderr or stdout pipe could not
         * finish its cleanup (what it writes now is discarded: the job's outcome is already decided) */
        discard_available(p->err_fd);
        discard_available(p->from_fd);
        siginfo_t info;
        memset(&info, 0, sizeof info);
        int r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
        if (r < 0 && errno == ECHILD) return 1;
        if (r == 0 && info.si_pid == pid) {
            group_clear(slot);
            while (waitpid(pid, status, 0) < 0 && errno == EINTR) {}
            return 1;
        }
        if (waited >= ms) return 0;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void describe(int status, char *how, size_t howlen) {
    if (WIFEXITED(status))
        snprintf(how, howlen, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(how, howlen, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(how, howlen, "ended (status 0x%x)", status);
}

void osb_stop(osb_process *p, osb_group_slot *slot, int wait_ms, int grace_ms, char *how, size_t howlen) {
    if (p->to_fd >= 0) { close(p->to_fd); p->to_fd = -1; } /* EOF on stdin: a polite "stop now" */
    if (p->pid <= 0) { snprintf(how, howlen, "was not running"); return; }
    int status = 0;
    int done = reap_within(p, wait_ms, &status, slot);
    const char *forced = "";
    if (!done) {
        kill(-p->pid, SIGTERM);
        done = reap_within(p, grace_ms, &status, slot);
        forced = " after SIGTERM";
    }
    if (!done) {
        kill(-p->pid, SIGKILL);
        reap_within(p, 60000, &status, slot); /* SIGKILL cannot be ignored */
        forced = " after SIGKILL";
    }
    /* the leader is reaped; its children (if any) got the group signals above */
    group_clear(slot);
    char what[160];
    describe(status, what, sizeof what);
    snprintf(how, howlen, "%s%s", what, forced);
    if (p->from_fd >= 0) { close(p->from_fd); p->from_fd = -1; }
    if (p->err_fd >= 0) { close(p->err_fd); p->err_fd = -1; }
    p->pid = 0;
}
