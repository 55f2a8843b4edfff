/* packet.c: framing and pipe I/O with the backend (see packet.h). */
#define _GNU_SOURCE
#include "packet.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void set_error(osb_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(osb_conn *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int osb_conn_init(osb_conn *c, int to_fd, int from_fd, int err_fd, int timeout_s, osb_debug_fn debug, void *arg) {
    memset(c, 0, sizeof *c);
    c->to_fd = to_fd;
    c->from_fd = from_fd;
    c->err_fd = err_fd;
    c->timeout_s = timeout_s;
    c->debug = debug;
    c->debug_arg = arg;
    c->payload = malloc(OSB_MAX_PAYLOAD + 1);
    return c->payload ? 0 : -1;
}

void osb_conn_free(osb_conn *c) {
    free(c->payload);
    c->payload = NULL;
}

/* One stderr line (or 1 KiB of a longer one) to the debug log; control characters become '?'. */
static void flush_errline(osb_conn *c) {
    if (c->errlen == 0) return;
    c->errline[c->errlen] = '\0';
    for (size_t i = 0; i < c->errlen; i++)
        if ((unsigned char)c->errline[i] < 0x20 && c->errline[i] != '\t') c->errline[i] = '?';
    if (c->debug) c->debug(c->debug_arg, c->errline);
    c->errlen = 0;
}

/* Reads what is available on stderr (called only when poll said readable). */
static void read_stderr(osb_conn *c) {
    char buf[4096];
    ssize_t n = read(c->err_fd, buf, sizeof buf);
    if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
        flush_errline(c);
        c->err_eof = 1; /* the backend closed it or exited: stop polling it (the owner closes the fd) */
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            flush_errline(c);
        } else {
            c->errline[c->errlen++] = buf[i];
            if (c->errlen == sizeof c->errline - 1) flush_errline(c);
        }
    }
}

void osb_drain_stderr(osb_conn *c, int wait_ms) {
    int64_t deadline = now_ms() + wait_ms;
    while (c->err_fd >= 0 && !c->err_eof) {
        int left = (int)(deadline - now_ms());
        struct pollfd p = {c->err_fd, POLLIN, 0};
        if (poll(&p, 1, left > 0 ? left : 0) <= 0) break;
        read_stderr(c);
    }
    flush_errline(c);
}

/* 1 when the backend's leader process has exited. WNOWAIT leaves the zombie for osb_stop to reap:
 * an exited leader whose children still hold our pipes would otherwise look alive until they end. */
static int leader_exited(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (pid <= 0) return 0;
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0) return errno == ECHILD;
    return info.si_pid == pid;
}

/* Waits until fd is ready for `events` (or the deadline passes), relaying stderr meanwhile.
 * Returns 1 ready, 0 timeout, -1 poll error, -2 the backend exited (checked every second), -3 the job was
 * cancelled more than OSB_CANCEL_GRACE_S ago and the backend is still not done. */
static int wait_fd(osb_conn *c, int fd, short events, int64_t deadline) {
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) return 0;
        if (c->cancelled && __atomic_load_n(c->cancelled, __ATOMIC_SEQ_CST)) {
            if (c->cancel_seen_ms == 0) c->cancel_seen_ms = now_ms();
            if (now_ms() - c->cancel_seen_ms > (int64_t)OSB_CANCEL_GRACE_S * 1000) return -3;
        }
        int with_err = c->err_fd >= 0 && !c->err_eof;
        struct pollfd p[2] = {{fd, events, 0}, {c->err_fd, POLLIN, 0}};
        int n = poll(p, with_err ? 2 : 1, left > 1000 ? 1000 : (int)left);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) {
            if (leader_exited(c->pid)) return -2;
            continue;
        }
        if (with_err && p[1].revents) read_stderr(c);
        if (p[0].revents) return 1; /* readable, writable, or HUP/ERR: the next read/write says which */
    }
}

/* write(2) with SIGPIPE blocked for this thread: a dead backend must give EPIPE, not kill the FD.
 * A SIGPIPE raised by our write is thread-directed, so we consume it before unblocking. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t n) {
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t r = write(fd, buf, n);
    int saved = errno;
    if (r < 0 && errno == EPIPE) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return r;
}

static int write_all(osb_conn *c, const void *data, size_t len) {
    const char *p = data;
    int64_t deadline = now_ms() + (int64_t)c->timeout_s * 1000;
    while (len > 0) {
        int w = wait_fd(c, c->to_fd, POLLOUT, deadline);
        if (w == 0) {
            set_error(c, "the backend has not read its input for %d s (timeout=); it is stuck", c->timeout_s);
            return -1;
        }
        if (w == -3) {
            set_error(c, "the job was cancelled and the backend did not end within %d s", OSB_CANCEL_GRACE_S);
            return -1;
        }
        if (w == -2) {
            set_error(c, "the backend exited while the plugin was writing to it");
            return -1;
        }
        if (w < 0) {
            set_error(c, "poll on the backend's input failed: %s", strerror(errno));
            return -1;
        }
        ssize_t n = write_nosigpipe(c->to_fd, p, len);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            if (errno == EPIPE)
                set_error(c, "the backend closed its input (it exited or crashed)");
            else
                set_error(c, "writing to the backend failed: %s", strerror(errno));
            return -1;
        }
        p += n;
        len -= (size_t)n;
        deadline = now_ms() + (int64_t)c->timeout_s * 1000; /* progress resets the timeout */
    }
    return 0;
}

int osb_send(osb_conn *c, char status, const void *data, size_t len) {
    if (len > OSB_MAX_PAYLOAD) {
        set_error(c, "internal error: a %zu-byte packet is over the protocol's 999999", len);
        return -1;
    }
    char header[9];
    snprintf(header, sizeof header, "%c%06zu\n", status, len);
    if (write_all(c, header, 8) < 0) return -1;
    return len ? write_all(c, data, len) : 0;
}

int osb_send_text(osb_conn *c, const char *text) {
    return osb_send(c, 'C', text, strlen(text));
}

/* Copies exactly n bytes of the backend's stdout into dst. `what` names the wait in errors.
 * Returns 0, or -1 (error set); *eof_at_start is set when the stream ended before any byte. */
static int read_exact(osb_conn *c, void *dst, size_t n, int64_t deadline, int *eof_at_start) {
    unsigned char *d = dst;
    size_t got = 0;
    if (eof_at_start) *eof_at_start = 0;
    while (got < n) {
        if (c->rpos < c->rlen) {
            size_t k = c->rlen - c->rpos;
            if (k > n - got) k = n - got;
            memcpy(d + got, c->rbuf + c->rpos, k);
            c->rpos += k;
            got += k;
            continue;
        }
        int w = wait_fd(c, c->from_fd, POLLIN, deadline);
        if (w == 0) {
            set_error(c, "no packet from the backend for %d s (timeout=; a working backend sends K at least "
                         "every 60 s)", c->timeout_s);
            return -1;
        }
        if (w == -3) {
            set_error(c, "the job was cancelled and the backend did not end within %d s", OSB_CANCEL_GRACE_S);
            return -1;
        }
        if (w == -2) {
            set_error(c, "the backend exited without closing its output (a child of it still holds the pipe) "
                         "at byte %llu", (unsigned long long)(c->offset + got));
            return -1;
        }
        if (w < 0) {
            set_error(c, "poll on the backend's output failed: %s", strerror(errno));
            return -1;
        }
        ssize_t r = read(c->from_fd, c->rbuf, sizeof c->rbuf);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            set_error(c, "reading the backend's output failed: %s", strerror(errno));
            return -1;
        }
        if (r == 0) {
            if (got == 0 && eof_at_start) {
                *eof_at_start = 1;
                set_error(c, "the backend closed its output (it exited or crashed) at byte %llu",
                          (unsigned long long)(c->offset));
            } else {
                set_error(c, "the backend's output ended inside a packet, at byte %llu",
                          (unsigned long long)(c->offset + got));
            }
            return -1;
        }
        c->rpos = 0;
        c->rlen = (size_t)r;
    }
    return 0;
}

int osb_valid_text(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char b = u[i];
        size_t extra;
        uint32_t cp;
        if (b == 0) return 0;
        if (b < 0x80) { i++; continue; }
        if ((b & 0xE0) == 0xC0) { extra = 1; cp = b & 0x1F; }
        else if ((b & 0xF0) == 0xE0) { extra = 2; cp = b & 0x0F; }
        else if ((b & 0xF8) == 0xF0) { extra = 3; cp = b & 0x07; }
        else return 0;
        if (i + extra >= n) return 0; /* truncated sequence */
        for (size_t k = 1; k <= extra; k++) {
            if ((u[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (u[i + k] & 0x3F);
        }
        /* overlong forms, surrogates and values past U+10FFFF are not UTF-8 */
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return 0;
        i += extra + 1;
    }
    return 1;
}

int osb_recv(osb_conn *c, osb_packet *p) {
    unsigned char h[8];
    int64_t deadline = now_ms() + (int64_t)c->timeout_s * 1000;
    int eof = 0;
    uint64_t at = c->offset;
    if (read_exact(c, h, 8, deadline, &eof) < 0) return -1;
    c->offset += 8;
    if (!strchr("CDFIWEAK", h[0]) || h[0] == 0) {
        set_error(c, "backend protocol error at byte %llu: status character 0x%02x is not one of C D F I W E A K",
                  (unsigned long long)at, h[0]);
        return -1;
    }
    size_t len = 0;
    for (int i = 1; i <= 6; i++) {
        if (h[i] < '0' || h[i] > '9') {
            set_error(c, "backend protocol error at byte %llu: the length of a '%c' packet is not six decimal "
                         "digits (byte 0x%02x)", (unsigned long long)(at + (uint64_t)i), h[0], h[i]);
            return -1;
        }
        len = len * 10 + (size_t)(h[i] - '0');
    }
    if (h[7] != '\n') {
        set_error(c, "backend protocol error at byte %llu: the header of a '%c' packet does not end with a "
                     "newline (byte 0x%02x)", (unsigned long long)(at + 7), h[0], h[7]);
        return -1;
    }
    /* six digits cannot exceed 999999, so the size bound holds by construction */
    if ((h[0] == 'F' || h[0] == 'K') && len != 0) {
        set_error(c, "backend protocol error at byte %llu: a '%c' packet must be empty, it has %zu bytes",
                  (unsigned long long)at, h[0], len);
        return -1;
    }
    if (len && read_exact(c, c->payload, len, deadline, NULL) < 0) return -1;
    c->offset += len;
    c->payload[len] = '\0';
    if (h[0] != 'D' && !osb_valid_text(c->payload, len)) {
        set_error(c, "backend protocol error at byte %llu: the text of a '%c' packet holds a NUL or is not UTF-8",
                  (unsigned long long)(at + 8), h[0]);
        return -1;
    }
    p->status = (char)h[0];
    p->len = len;
    p->data = c->payload;
    return 0;
}
