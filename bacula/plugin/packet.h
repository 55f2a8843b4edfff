/* packet.h: the framing of docs/bacula-protocol.md over the backend's pipes.
 *
 * A packet is 1 status character, 6 ASCII decimal digits (payload length, 0..999999), '\n', then the
 * payload. The reader checks every field and names the byte offset of what was wrong; it never holds
 * more than one packet's payload. Every wait is a poll(2) bounded by the session timeout, and while
 * waiting the backend's standard error is drained into the debug log, so a chatty backend can never
 * block on a full stderr pipe while we wait for it. */
#ifndef OSB_PACKET_H
#define OSB_PACKET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define OSB_MAX_PAYLOAD 999999
#define OSB_ERROR_MAX 512

typedef void (*osb_debug_fn)(void *arg, const char *line);

/* How long a cancelled backend may take to clean up before the waits give up (then SIGKILL follows). */
#define OSB_CANCEL_GRACE_S 120

typedef struct osb_conn {
    int to_fd;        /* backend's stdin (we write) */
    int from_fd;      /* backend's stdout (we read packets) */
    int err_fd;       /* backend's stderr (we relay lines to the debug log) */
    int err_eof;      /* stderr reached EOF: no longer polled */
    int timeout_s;    /* longest silence between two packets */
    pid_t pid;        /* the backend's leader: its exit ends every wait, even if a child keeps the pipes */
    const int *cancelled; /* set by the FD's cancel (another thread): waits end OSB_CANCEL_GRACE_S after it */
    int64_t cancel_seen_ms;
    uint64_t offset;  /* bytes consumed from the backend's stdout: named in protocol errors */
    unsigned char rbuf[65536];
    size_t rpos, rlen;
    char *payload;    /* OSB_MAX_PAYLOAD + 1 bytes; text payloads are NUL-terminated here */
    char errline[1024];
    size_t errlen;
    osb_debug_fn debug;
    void *debug_arg;
    char error[OSB_ERROR_MAX]; /* why the last call failed, for the job log */
} osb_conn;

typedef struct {
    char status;      /* C D F I W E A K */
    size_t len;
    char *data;       /* points into conn->payload; valid until the next osb_recv */
} osb_packet;

/* The fds stay owned by the caller (osb_stop closes them). Returns 0, or -1 (allocation failed). */
int osb_conn_init(osb_conn *c, int to_fd, int from_fd, int err_fd, int timeout_s, osb_debug_fn debug, void *arg);
void osb_conn_free(osb_conn *c);

/* Each returns 0, or -1 with c->error set (the backend is gone, stalled, or broke the framing). */
int osb_send(osb_conn *c, char status, const void *data, size_t len);
int osb_send_text(osb_conn *c, const char *text); /* a C packet */
int osb_recv(osb_conn *c, osb_packet *p);

/* Relays whatever the backend has written to stderr so far without waiting (at the end of a session). */
void osb_drain_stderr(osb_conn *c, int wait_ms);

/* 1 when s[0..n) is valid UTF-8 without NUL. */
int osb_valid_text(const char *s, size_t n);

#endif
