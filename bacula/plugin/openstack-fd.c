/* openstack-fd.c: the Bacula 9.6 File Daemon plugin "openstack".
 *
 * It owns no OpenStack logic: for each job that names `Plugin = "openstack: ..."` it starts
 * `osbackup bacula-backend` and relays between the FD's plugin calls and the backend, following
 * docs/bacula-protocol.md (framing in packet.c, process handling in backend.c, the Plugin string in
 * params.c). Everything runs on the job's thread except bEventCancelCommand, which only reads an
 * atomic process-group id and signals it. The FD must survive every backend failure: errors end the
 * job (M_FATAL), never the process. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "bacula_abi.h"
#include "packet.h"
#include "params.h"

#define PLUGIN_NAME "openstack"
#define DEFAULT_TIMEOUT_S 3600
#define DEBUG_LEVEL 100
#define MAX_SEEN 1000000               /* SEEN paths kept per job: bounded memory even with a runaway backend */
#define MAX_SEEN_BYTES (256 << 20)     /* ... and their bytes */
#define MAX_PARAM_WORD 8000            /* a Plugin line word (key=value) as one C packet of the opening */
#define OPTIONS_OBJECT "RestoreOptions" /* the restore object of the Plugin Options (Bacula's ini name) */
#define MAX_OPTIONS_LEN 65536           /* a restore options form or a filled one, in bytes */
#define MAX_OPTIONS 64                  /* filled forms kept per restore job (one per Plugin string) */

/* The Plugin Options an operator filled in bconsole for the backups of one Plugin string. */
struct osb_options {
    char *plugin_name;
    char *text;
    size_t len;
};

/* Whether a backend's file name is one of the backup namespace: /@openstack/… or /@local/…, no ".."
 * component, no control character. */
static int fname_in_namespace(const char *name) {
    if (strncmp(name, "/@openstack/", 12) != 0 && strncmp(name, "/@local/", 8) != 0) return 0;
    if (strstr(name, "/../") || (strlen(name) >= 3 && strcmp(name + strlen(name) - 3, "/..") == 0)) return 0;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        if (*c < 0x20 || *c == 0x7f) return 0;
    return 1;
}

static bFuncs *bfuncs;

static pInfo plugin_info = {
    sizeof(pInfo), BACULA_FD_INTERFACE_VERSION, BACULA_FD_PLUGIN_MAGIC,
    "AGPLv3", /* the 9.6 FD loads only "AGPLv3", "Bacula AGPLv3" or "Bacula" */
    "osbackup", "2026", "1", "OpenStack backup through osbackup bacula-backend (protocol 1)"};

enum mode { MODE_NONE, MODE_BACKUP, MODE_ESTIMATE, MODE_RESTORE };
enum phase {
    PH_NONE,   /* no backend yet */
    PH_FILES,  /* session open: files (backup) or restores flowing */
    PH_ENDED,  /* backup: END received, JobEnd not yet sent */
    PH_CLOSED, /* the session ended cleanly, backend reaped */
    PH_FAILED  /* the job was failed and the backend stopped */
};

struct osb_job {
    bpContext *ctx;
    enum mode mode;
    enum phase phase;
    osb_group_slot group; /* the backend's process group, signalled by the cancel thread */
    int cancelled; /* set by the cancel thread */
    osb_process proc;
    osb_conn conn;
    int conn_ready;
    char level;
    int errors;                         /* E packets received */
    char last_error[OSB_ERROR_MAX];     /* the backend's last E or A text */
    /* backup: the current file */
    int have_header; /* 1: a file header, 2: an object, read ahead by endBackupFile */
    char *fname;
    int64_t size, mtime;
    int delta;
    int64_t data_left;
    int data_done;
    size_t dpos, dlen; /* unread part of the current D packet (in conn.payload) */
    char *check_fname; /* checkChanges keeps a pointer to it in the FD's FF_PKT: lives until freePlugin */
    char **seen;
    size_t nseen, capseen, seen_bytes;
    int seen_sorted;
    char *object;      /* backup: the restore options form the backend sent (an FT_PLUGIN_CONFIG object) */
    size_t object_len;
    /* restore */
    int restore_data; /* 1 after the backend's OK: pluginIO writes go to it */
    struct osb_options options[MAX_OPTIONS]; /* bEventRestoreObject: the filled forms, before the files */
    size_t noptions;
};

/* ---- job log and debug log (JobMessage/DebugMessage are C-variadic: always "%s") ---- */

static void jmsg(struct osb_job *job, int type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void jmsg(struct osb_job *job, int type, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (bfuncs && bfuncs->JobMessage) bfuncs->JobMessage(job->ctx, __FILE__, __LINE__, type, 0, "%s\n", buf);
}

static void dmsg(struct osb_job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dmsg(struct osb_job *job, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (bfuncs && bfuncs->DebugMessage) bfuncs->DebugMessage(job->ctx, __FILE__, __LINE__, DEBUG_LEVEL, "%s\n", buf);
}

static void backend_stderr_line(void *arg, const char *line) {
    dmsg((struct osb_job *)arg, PLUGIN_NAME " backend: %s", line);
}

/* ---- session end ---- */

/* Stops the backend: politely (stdin closed, it exits by itself within 30 s) or not (SIGTERM now);
 * SIGKILL after a 120 s grace either way (a cancelled backend detaches and deletes its temporary cloud
 * resources first, which takes Cinder and Nova round trips). Reaps it, closes every fd. */
static void close_session(struct osb_job *job, int polite, char *how, size_t howlen) {
    snprintf(how, howlen, "was not running");
    if (job->proc.pid <= 0) return;
    if (!polite) {
        osb_group_signal(&job->group, SIGTERM);
    }
    if (job->conn_ready) osb_drain_stderr(&job->conn, polite ? 2000 : 200);
    osb_stop(&job->proc, &job->group, polite ? 30000 : 0, 120000, how, howlen);
    if (job->conn_ready) {
        osb_conn_free(&job->conn);
        job->conn_ready = 0;
    }
    dmsg(job, PLUGIN_NAME ": backend %s", how);
}

/* Fails the job with what went wrong, stops the backend, and names how it ended and its last error. */
static void fail(struct osb_job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct osb_job *job, const char *fmt, ...) {
    char what[1024], how[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (job->phase == PH_FAILED) return;
    job->phase = PH_FAILED;
    if (job->conn_ready && job->proc.pid > 0) {
        /* the backend may have said why before it stopped reading (a write that failed with EPIPE):
         * read what it already sent, a second at most, for its A or E text */
        int saved = job->conn.timeout_s;
        osb_packet p;
        job->conn.timeout_s = 1;
        for (int i = 0; i < 64 && osb_recv(&job->conn, &p) == 0; i++)
            if (p.status == 'A' || p.status == 'E') snprintf(job->last_error, sizeof job->last_error, "%s", p.data);
        job->conn.timeout_s = saved;
    }
    close_session(job, 0, how, sizeof how);
    int cancelled = __atomic_load_n(&job->cancelled, __ATOMIC_SEQ_CST);
    jmsg(job, M_FATAL, PLUGIN_NAME ": %s%s%s%s%s%s", cancelled ? "job cancelled: " : "", what,
         job->proc.pid == 0 && strcmp(how, "was not running") ? "; the backend " : "",
         job->proc.pid == 0 && strcmp(how, "was not running") ? how : "",
         *job->last_error ? "; its last error: " : "", job->last_error);
}

/* ---- receiving ---- */

/* Next C, D or F packet. I/W/E go to the job log, K only resets the timeout (each osb_recv has its own);
 * A fails the job. With e_is_reply, an E packet is returned to the caller (the answer to a restored part).
 * Returns 0, or -1 after failing the job. */
static int recv_next(struct osb_job *job, osb_packet *p, int e_is_reply) {
    for (;;) {
        if (osb_recv(&job->conn, p) < 0) {
            fail(job, "%s", job->conn.error);
            return -1;
        }
        switch (p->status) {
        case 'K':
            continue;
        case 'I':
            jmsg(job, M_INFO, PLUGIN_NAME ": %s", p->data);
            continue;
        case 'W':
            jmsg(job, M_WARNING, PLUGIN_NAME ": %s", p->data);
            continue;
        case 'E':
            job->errors++;
            snprintf(job->last_error, sizeof job->last_error, "%s", p->data);
            jmsg(job, M_ERROR, PLUGIN_NAME ": %s", p->data);
            if (e_is_reply) return 0;
            continue;
        case 'A':
            snprintf(job->last_error, sizeof job->last_error, "%s", p->data);
            fail(job, "the backend aborted");
            return -1;
        default:
            return 0; /* C D F */
        }
    }
}

/* A printable excerpt of a packet for error messages. */
static const char *excerpt(const osb_packet *p, char *buf, size_t len) {
    if (p->status != 'C') {
        snprintf(buf, len, "a '%c' packet of %zu bytes", p->status, p->len);
    } else {
        snprintf(buf, len, "C \"%.60s%s\"", p->data, p->len > 60 ? "..." : "");
    }
    return buf;
}

static int recv_command(struct osb_job *job, osb_packet *p, const char *expected) {
    char ex[128];
    if (recv_next(job, p, 0) < 0) return -1;
    if (p->status != 'C') {
        fail(job, "backend protocol error: got %s where %s was expected", excerpt(p, ex, sizeof ex), expected);
        return -1;
    }
    return 0;
}

static int send_text(struct osb_job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int send_text(struct osb_job *job, const char *fmt, ...) {
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) {
        fail(job, "internal error: a command for the backend is over %zu bytes", sizeof buf);
        return -1;
    }
    if (osb_send_text(&job->conn, buf) < 0) {
        fail(job, "%s", job->conn.error);
        return -1;
    }
    return 0;
}

static int send_packet(struct osb_job *job, char status, const void *data, size_t len) {
    if (osb_send(&job->conn, status, data, len) < 0) {
        fail(job, "%s", job->conn.error);
        return -1;
    }
    return 0;
}

/* ---- session start ---- */

static const char *str_value(struct osb_job *job, bVariable var) {
    char *s = NULL;
    if (bfuncs->getBaculaValue(job->ctx, var, &s) != bRC_OK || !s) return "";
    return s;
}

static int int_value(struct osb_job *job, bVariable var) {
    int v = 0;
    if (bfuncs->getBaculaValue(job->ctx, var, &v) != bRC_OK) return 0;
    return v;
}

/* bEventRestoreObject: keeps a copy of the Plugin Options the operator filled in (the Director sends one
 * per Plugin string whose Full stored our form, before the restore's first file). */
static void keep_options(struct osb_job *job, const struct restore_object_pkt *rop) {
    if (!rop || rop->object_type != FT_PLUGIN_CONFIG_FILLED || !rop->object_name ||
        strcmp(rop->object_name, OPTIONS_OBJECT) != 0 || !rop->object)
        return;
    if (rop->object_len < 0 || rop->object_len > MAX_OPTIONS_LEN || job->noptions == MAX_OPTIONS) {
        /* options that cannot be applied must not be dropped silently: a restore may go elsewhere without them */
        fail(job, "Plugin Options of %d bytes (or more than %d of them) are more than the plugin takes (%d bytes): "
                  "nothing is restored; give fewer or shorter options", rop->object_len, MAX_OPTIONS, MAX_OPTIONS_LEN);
        return;
    }
    if (rop->object_len > 0 && memchr(rop->object, '\0', (size_t)rop->object_len)) {
        /* the 9.6.7 Director with a SQLite catalog reads back an object of 3n+1 bytes as empty */
        fail(job, "the Director sent the Plugin Options empty (Bacula 9.6 with a SQLite catalog loses a "
                  "restore object whose length is one more than a multiple of 3): nothing is restored; run the "
                  "restore again with a space added at the end of one value (it is ignored), or give the "
                  "options on the Plugin line");
        return;
    }
    struct osb_options *o = &job->options[job->noptions];
    o->plugin_name = strdup(rop->plugin_name ? rop->plugin_name : "");
    o->text = malloc((size_t)rop->object_len + 1);
    if (!o->plugin_name || !o->text) {
        free(o->plugin_name);
        free(o->text);
        o->plugin_name = o->text = NULL;
        fail(job, "out of memory keeping the Plugin Options: nothing is restored");
        return;
    }
    memcpy(o->text, rop->object, (size_t)rop->object_len);
    o->text[rop->object_len] = '\0';
    o->len = (size_t)rop->object_len;
    job->noptions++;
    dmsg(job, PLUGIN_NAME ": Plugin Options of %d bytes for \"%.80s\"", rop->object_len, o->plugin_name);
}

/* The filled Plugin Options for the restore of Plugin string `cmd`: the form stored by the backups of
 * that string, else the only one the Director sent (one openstack line per FileSet), else none. */
static const struct osb_options *options_for(struct osb_job *job, const char *cmd) {
    for (size_t i = 0; i < job->noptions; i++)
        if (strcmp(job->options[i].plugin_name, cmd) == 0) return &job->options[i];
    if (job->noptions == 1) {
        dmsg(job, PLUGIN_NAME ": Plugin Options stored for \"%.80s\" used for \"%.80s\"", job->options[0].plugin_name, cmd);
        return &job->options[0];
    }
    return NULL;
}

static int start_session(struct osb_job *job, const char *cmd, enum mode mode) {
    char err[1024], path[4096];
    osb_params params;
    job->mode = mode;
    job->phase = PH_FILES;
    if (osb_params_parse(cmd, &params, err, sizeof err) < 0) {
        fail(job, "%s", err);
        return -1;
    }
    int timeout = DEFAULT_TIMEOUT_S;
    const char *t = osb_params_get(&params, "timeout");
    if (t) {
        char *end;
        long v = strtol(t, &end, 10);
        if (*t == '\0' || *end != '\0' || v < 1 || v > 7 * 86400) {
            osb_params_free(&params);
            fail(job, "timeout=%.40s is not a number of seconds between 1 and 604800", t);
            return -1;
        }
        timeout = (int)v;
    }
    for (size_t i = 0; i < params.count; i++) { /* keys only: values may be secrets */
        const char *eq = strchr(params.words[i], '=');
        dmsg(job, PLUGIN_NAME ": parameter %.*s", (int)(eq - params.words[i]), params.words[i]);
        if (strlen(params.words[i]) > MAX_PARAM_WORD) {
            fail(job, "the value of %.*s= on the Plugin line is longer than %d bytes: put it in a config= file",
                 (int)(eq - params.words[i]) > 64 ? 64 : (int)(eq - params.words[i]), params.words[i], MAX_PARAM_WORD);
            osb_params_free(&params);
            return -1;
        }
    }
    if (osb_find_backend(osb_params_get(&params, "backend"), str_value(job, bVarExePath), path, sizeof path, err,
                         sizeof err) < 0 ||
        osb_spawn(path, &job->proc, err, sizeof err) < 0) {
        osb_params_free(&params);
        fail(job, "%s", err);
        return -1;
    }
    osb_group_set(&job->group, job->proc.pid);
    if (__atomic_load_n(&job->cancelled, __ATOMIC_SEQ_CST)) kill(-job->proc.pid, SIGTERM); /* raced a cancel */
    dmsg(job, PLUGIN_NAME ": started %s bacula-backend, pid %d", path, (int)job->proc.pid);
    if (osb_conn_init(&job->conn, job->proc.to_fd, job->proc.from_fd, job->proc.err_fd, timeout,
                      backend_stderr_line, job) < 0) {
        osb_params_free(&params);
        fail(job, "out of memory for the backend's packet buffer");
        return -1;
    }
    job->conn_ready = 1;
    job->conn.pid = job->proc.pid;
    job->conn.cancelled = &job->cancelled;

    osb_packet p;
    if (send_text(job, "Hello openstack-fd 1") < 0 || recv_command(job, &p, "\"Hello osbackup 1\"") < 0) {
        osb_params_free(&params);
        return -1;
    }
    if (strcmp(p.data, "Hello osbackup 1") != 0) {
        osb_params_free(&params);
        fail(job, "the backend answered \"%.80s\" to \"Hello openstack-fd 1\", not \"Hello osbackup 1\"; install "
                  "an osbackup and an openstack-fd.so of the same release", p.data);
        return -1;
    }

    int level = int_value(job, bVarLevel);
    job->level = (level == 'F' || level == 'I' || level == 'D') ? (char)level : 'F';
    int replace = int_value(job, bVarReplace);
    int rc = send_text(job, "Job") || send_text(job, "JobId=%d", int_value(job, bVarJobId)) ||
             send_text(job, "JobName=%s", str_value(job, bVarJobName)) || send_text(job, "Level=%c", job->level) ||
             send_text(job, "Since=%d", int_value(job, bVarSinceTime)) ||
             send_text(job, "Accurate=%d", int_value(job, bVarAccurate) ? 1 : 0) ||
             send_text(job, "Where=%s", str_value(job, bVarWhere)) ||
             send_text(job, "RegexWhere=%s", str_value(job, bVarRegexWhere)) ||
             send_text(job, "Replace=%c", replace >= 'a' && replace <= 'z' ? replace : 'a') ||
             send_text(job, "WorkingDir=%s", str_value(job, bVarWorkingDir)) || send_packet(job, 'F', NULL, 0) ||
             send_text(job, "Params");
    for (size_t i = 0; rc == 0 && i < params.count; i++) rc = send_text(job, "%s", params.words[i]);
    osb_params_free(&params);
    if (rc || send_packet(job, 'F', NULL, 0)) return -1;
    const struct osb_options *options = mode == MODE_RESTORE ? options_for(job, cmd) : NULL;
    if (options && (send_text(job, "RestoreOptions") || send_packet(job, 'D', options->text, options->len) ||
                    send_packet(job, 'F', NULL, 0)))
        return -1;
    if (send_text(job, "%s", mode == MODE_BACKUP ? "BackupStart" : mode == MODE_ESTIMATE ? "EstimateStart" : "RestoreStart") ||
        recv_command(job, &p, "\"OK\"") < 0)
        return -1;
    if (strcmp(p.data, "OK") != 0) {
        char ex[128];
        fail(job, "backend protocol error: got %s where \"OK\" was expected", excerpt(&p, ex, sizeof ex));
        return -1;
    }
    return 0;
}

/* ---- backup: SEEN and CHECK ---- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int remember_seen(struct osb_job *job, const char *path) {
    if (job->nseen == MAX_SEEN || job->seen_bytes + strlen(path) + 1 > MAX_SEEN_BYTES) {
        fail(job, "the backend sent more than %d SEEN paths or %d MiB of them", MAX_SEEN, MAX_SEEN_BYTES >> 20);
        return -1;
    }
    if (job->nseen == job->capseen) {
        size_t cap = job->capseen ? job->capseen * 2 : 64;
        char **n = realloc(job->seen, cap * sizeof *n);
        if (!n) {
            fail(job, "out of memory remembering SEEN paths");
            return -1;
        }
        job->seen = n;
        job->capseen = cap;
    }
    char *copy = strdup(path);
    if (!copy) {
        fail(job, "out of memory remembering SEEN paths");
        return -1;
    }
    job->seen[job->nseen++] = copy;
    job->seen_bytes += strlen(copy) + 1;
    job->seen_sorted = 0;
    /* Marks it seen in the accurate list now (9.6 supports bVarFileSeen); checkFile is the fallback. */
    bfuncs->setBaculaValue(job->ctx, bVarFileSeen, copy);
    return 0;
}

/* Answers CHECK:<path> from the catalog through checkChanges (accurate_found and delta_seq). */
static int answer_check(struct osb_job *job, const char *path) {
    char *copy = strdup(path);
    if (!copy) {
        fail(job, "out of memory answering CHECK");
        return -1;
    }
    struct save_pkt sp;
    memset(&sp, 0, sizeof sp);
    sp.pkt_size = sp.pkt_end = (int32_t)sizeof sp;
    sp.type = FT_REG;
    sp.statp.st_mode = S_IFREG | 0640;
    sp.fname = copy;
    bRC rc = bfuncs->checkChanges(job->ctx, &sp);
    free(job->check_fname); /* the FD's FF_PKT pointed at the previous one until now */
    job->check_fname = copy;
    dmsg(job, PLUGIN_NAME ": CHECK %s: rc=%d found=%d delta_seq=%u", path, (int)rc, sp.accurate_found, sp.delta_seq);
    if (rc != bRC_Error && sp.accurate_found) return send_text(job, "CHECK:found %u", sp.delta_seq);
    return send_text(job, "CHECK:none");
}

/* ---- backup: file headers ---- */

static int parse_i64(const char *s, const char **end, int64_t *out, int allow_negative) {
    const char *p = s;
    int neg = 0;
    if (allow_negative && *p == '-') { neg = 1; p++; }
    if (*p < '0' || *p > '9') return -1;
    int64_t v = 0;
    while (*p >= '0' && *p <= '9') {
        if (v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*p++ - '0');
    }
    *out = neg ? -v : v;
    *end = p;
    return 0;
}

/* After OBJECT:<name>: the object's D packets up to F into job->object. Returns 0, or -1 (job failed). */
static int read_object(struct osb_job *job, const char *name) {
    osb_packet p;
    char ex[128];
    if (strcmp(name, OPTIONS_OBJECT) != 0) {
        fail(job, "backend protocol error: unknown object \"%.60s\" (the plugin knows " OPTIONS_OBJECT ")", name);
        return -1;
    }
    if (job->mode != MODE_BACKUP || job->level != 'F') {
        fail(job, "backend protocol error: OBJECT:%s outside a Full backup", name);
        return -1;
    }
    free(job->object);
    job->object = NULL;
    job->object_len = 0;
    for (;;) {
        if (recv_next(job, &p, 0) < 0) return -1;
        if (p.status == 'F') break;
        if (p.status != 'D' || job->object_len + p.len > MAX_OPTIONS_LEN) {
            fail(job, "backend protocol error: got %s in the object %s (D packets, at most %d bytes, then F)",
                 excerpt(&p, ex, sizeof ex), name, MAX_OPTIONS_LEN);
            return -1;
        }
        char *grown = realloc(job->object, job->object_len + p.len + 1);
        if (!grown) {
            fail(job, "out of memory for the object %s", name);
            return -1;
        }
        job->object = grown;
        memcpy(job->object + job->object_len, p.data, p.len);
        job->object_len += p.len;
        job->object[job->object_len] = '\0';
    }
    if (!job->object) {
        fail(job, "backend protocol error: the object %s is empty", name);
        return -1;
    }
    return 0;
}

/* Reads up to the next file header. Returns 1 (file header in job), 2 (an object in job->object),
 * 0 (END), -1 (job failed). */
static int read_header(struct osb_job *job) {
    osb_packet p;
    char ex[128];
    for (;;) {
        if (recv_command(job, &p, "FNAME:, OBJECT:, CHECK:, SEEN: or END") < 0) return -1;
        if (strncmp(p.data, "CHECK:", 6) == 0) {
            if (answer_check(job, p.data + 6) < 0) return -1;
        } else if (strncmp(p.data, "SEEN:", 5) == 0) {
            if (remember_seen(job, p.data + 5) < 0) return -1;
        } else if (strcmp(p.data, "END") == 0) {
            return 0;
        } else if (strncmp(p.data, "OBJECT:", 7) == 0) {
            char name[64];
            snprintf(name, sizeof name, "%s", p.data + 7);
            return read_object(job, name) < 0 ? -1 : 2;
        } else if (strncmp(p.data, "FNAME:", 6) == 0) {
            if (!fname_in_namespace(p.data + 6)) {
                fail(job, "backend protocol error: FNAME \"%.80s\" is not a path below /@openstack/ or /@local/ "
                          "without '..' and control characters", p.data + 6);
                return -1;
            }
            free(job->fname);
            job->fname = strdup(p.data + 6);
            if (!job->fname) {
                fail(job, "out of memory for a file name");
                return -1;
            }
            if (recv_command(job, &p, "STAT:<size> <mtime> <kind>") < 0) return -1;
            const char *s = p.data + 5, *e;
            if (strncmp(p.data, "STAT:", 5) != 0 || parse_i64(s, &e, &job->size, 0) < 0 || *e != ' ' ||
                parse_i64(e + 1, &e, &job->mtime, 1) < 0 || *e != ' ' ||
                (strcmp(e + 1, "full") != 0 && strcmp(e + 1, "delta") != 0)) {
                fail(job, "backend protocol error: got %s where \"STAT:<size> <mtime> full|delta\" was expected "
                          "for %s", excerpt(&p, ex, sizeof ex), job->fname);
                return -1;
            }
            job->delta = strcmp(e + 1, "delta") == 0;
            if (recv_next(job, &p, 0) < 0) return -1;
            if (p.status != 'F') {
                fail(job, "backend protocol error: got %s where F (end of the header of %s) was expected",
                     excerpt(&p, ex, sizeof ex), job->fname);
                return -1;
            }
            return 1;
        } else {
            fail(job, "backend protocol error: got %s where FNAME:, OBJECT:, CHECK:, SEEN: or END was expected",
                 excerpt(&p, ex, sizeof ex));
            return -1;
        }
    }
}

/* END: estimates close the session at once (nothing to install); backups wait for bEventEndBackupJob. */
static void on_end(struct osb_job *job) {
    job->phase = PH_ENDED;
    if (job->errors > 0)
        jmsg(job, M_FATAL, PLUGIN_NAME ": the backend reported %d error(s) (the last: %s); the job fails",
             job->errors, job->last_error);
}

static void send_job_end(struct osb_job *job, int ok) {
    osb_packet p;
    char how[256];
    if (send_text(job, "JobEnd:%s", ok ? "OK" : "FAILED") < 0 || recv_command(job, &p, "\"BYE\"") < 0) return;
    if (strcmp(p.data, "BYE") != 0) {
        char ex[128];
        fail(job, "backend protocol error: got %s where \"BYE\" was expected", excerpt(&p, ex, sizeof ex));
        return;
    }
    job->phase = PH_CLOSED;
    close_session(job, 1, how, sizeof how);
    if (strncmp(how, "exited with status 0", 20) != 0 || strlen(how) != 20)
        jmsg(job, M_WARNING, PLUGIN_NAME ": after BYE the backend %s", how);
}

/* ---- plugin entry points ---- */

static bRC newPlugin(bpContext *ctx) {
    struct osb_job *job = calloc(1, sizeof *job);
    if (!job) return bRC_Error;
    job->ctx = ctx;
    job->proc.pid = 0;
    job->proc.to_fd = job->proc.from_fd = job->proc.err_fd = -1;
    ctx->pContext = job;
    bfuncs->registerBaculaEvents(ctx, bEventJobEnd, bEventEndBackupJob, bEventEndRestoreJob, bEventBackupCommand,
                                 bEventRestoreCommand, bEventEstimateCommand, bEventCancelCommand,
                                 bEventRestoreObject, 0);
    return bRC_OK;
}

static void reset_job(struct osb_job *job) {
    char how[256];
    if (job->proc.pid > 0) close_session(job, 0, how, sizeof how);
    free(job->fname);
    job->fname = NULL;
    free(job->check_fname);
    job->check_fname = NULL;
    for (size_t i = 0; i < job->nseen; i++) free(job->seen[i]);
    free(job->seen);
    job->seen = NULL;
    job->nseen = job->capseen = job->seen_bytes = 0;
    free(job->object);
    job->object = NULL;
    job->object_len = 0;
    for (size_t i = 0; i < job->noptions; i++) {
        free(job->options[i].plugin_name);
        free(job->options[i].text);
    }
    job->noptions = 0;
}

static bRC freePlugin(bpContext *ctx) {
    struct osb_job *job = ctx->pContext;
    if (!job) return bRC_OK;
    reset_job(job);
    free(job);
    ctx->pContext = NULL;
    return bRC_OK;
}

static bRC getPluginValue(bpContext *ctx, pVariable var, void *value) {
    (void)ctx; (void)var; (void)value;
    return bRC_OK;
}

static bRC setPluginValue(bpContext *ctx, pVariable var, void *value) {
    (void)ctx; (void)var; (void)value;
    return bRC_OK;
}

static bRC handlePluginEvent(bpContext *ctx, bEvent *event, void *value) {
    struct osb_job *job = ctx->pContext;
    if (!job) return bRC_Error;
    switch (event->eventType) {
    case bEventCancelCommand: {
        /* another FD thread: no locks, no allocation, no job-log calls; the job thread sees the exit */
        __atomic_store_n(&job->cancelled, 1, __ATOMIC_SEQ_CST);
        osb_group_signal(&job->group, SIGTERM);
        return bRC_OK;
    }
    case bEventBackupCommand:
    case bEventEstimateCommand:
        if (job->phase != PH_NONE) {
            fail(job, "only one \"openstack:\" Plugin line per FileSet is supported (one backend per job); "
                      "put every server selector on that line");
            return bRC_Error;
        }
        return start_session(job, value, event->eventType == bEventBackupCommand ? MODE_BACKUP : MODE_ESTIMATE) < 0
                   ? bRC_Error : bRC_OK;
    case bEventRestoreObject:
        keep_options(job, value); /* NULL: the end of the objects */
        return bRC_OK;
    case bEventRestoreCommand:
        /* sent before every restored file: the first one starts the session */
        if (job->phase == PH_NONE) start_session(job, value, MODE_RESTORE);
        return bRC_OK; /* on failure createFile skips the files; the M_FATAL already stops the job */
    case bEventEndBackupJob:
        if (job->mode == MODE_BACKUP && job->phase == PH_ENDED) {
            int status = int_value(job, bVarJobStatus);
            send_job_end(job, (status == JS_Terminated || status == JS_Warnings) && job->errors == 0);
        } else if (job->phase == PH_FILES) {
            fail(job, "the backup ended before the backend sent END");
        }
        return bRC_OK;
    case bEventEndRestoreJob:
        if (job->mode == MODE_RESTORE && job->phase == PH_FILES) {
            osb_packet p;
            char how[256];
            int status = int_value(job, bVarJobStatus);
            if (__atomic_load_n(&job->cancelled, __ATOMIC_SEQ_CST) || job->errors > 0 ||
                !(status == JS_Running || status == JS_Terminated || status == JS_Warnings)) {
                /* END would make the backend restore what arrived (in place, even): a part may be missing */
                fail(job, "the restore was cancelled or failed before its end: nothing is restored (the backend "
                          "discards the parts it received)");
                return bRC_OK;
            }
            if (send_text(job, "END") < 0 || recv_command(job, &p, "\"OK\"") < 0) return bRC_OK;
            if (strcmp(p.data, "OK") != 0) {
                char ex[128];
                fail(job, "backend protocol error: got %s where \"OK\" (after END) was expected",
                     excerpt(&p, ex, sizeof ex));
                return bRC_OK;
            }
            job->phase = PH_CLOSED;
            close_session(job, 1, how, sizeof how);
        }
        return bRC_OK;
    case bEventJobEnd:
        reset_job(job);
        return bRC_OK;
    default:
        return bRC_OK;
    }
}

static bRC startBackupFile(bpContext *ctx, struct save_pkt *sp) {
    struct osb_job *job = ctx->pContext;
    if (!job || job->phase != PH_FILES) return bRC_Error;
    int kind = job->have_header;
    if (!kind) {
        kind = read_header(job);
        if (kind < 0) return bRC_Error;
        if (kind == 0) { /* END before any file: nothing to save from this line */
            on_end(job);
            if (job->mode == MODE_ESTIMATE) send_job_end(job, job->errors == 0);
            return bRC_Stop;
        }
    }
    job->have_header = 0;
    if (kind == 2) { /* the restore options form: a restore object, no data */
        sp->fname = (char *)OPTIONS_OBJECT;
        sp->type = FT_PLUGIN_CONFIG;
        sp->object_name = (char *)OPTIONS_OBJECT;
        sp->object = job->object;
        sp->object_len = (int32_t)job->object_len;
        sp->statp.st_mode = S_IFREG | 0640;
        sp->statp.st_nlink = 1;
        sp->statp.st_mtime = sp->statp.st_atime = sp->statp.st_ctime = time(NULL);
        sp->no_read = true;
        job->data_done = 1;
        dmsg(job, PLUGIN_NAME ": restore options form, %zu bytes", job->object_len);
        return bRC_OK;
    }
    if (job->delta && job->level == 'F') {
        fail(job, "backend protocol error: %s is kind=delta in a Full backup", job->fname);
        return bRC_Error;
    }
    sp->fname = job->fname;
    sp->type = FT_REG;
    sp->statp.st_mode = S_IFREG | 0640;
    sp->statp.st_size = job->size;
    sp->statp.st_nlink = 1;
    sp->statp.st_blksize = 65536;
    sp->statp.st_blocks = (job->size + 511) / 512;
    sp->statp.st_mtime = sp->statp.st_atime = sp->statp.st_ctime = job->mtime;
    sp->portable = true;
    sp->no_read = job->mode == MODE_ESTIMATE;
    if (job->delta && job->mode == MODE_BACKUP) {
        /* the FD fills delta_seq with the previous version's sequence; FO_DELTA makes it store seq + 1 */
        bfuncs->checkChanges(ctx, sp);
        if (!sp->accurate_found) {
            /* the Director would drop this part at restore: the backup of this volume is not restorable */
            jmsg(job, M_ERROR, PLUGIN_NAME ": %s is an incremental part but the catalog has no earlier version "
                               "of it (is Accurate = yes set on the Job?); a restore would lack its base", job->fname);
            job->errors++;
        }
        sp->flags |= FO_DELTA;
    }
    job->data_left = job->size;
    job->data_done = job->mode == MODE_ESTIMATE;
    job->dpos = job->dlen = 0;
    dmsg(job, PLUGIN_NAME ": file %s size %" PRId64 " %s delta_seq %u", job->fname, job->size,
         job->delta ? "delta" : "full", sp->delta_seq);
    return bRC_OK;
}

static bRC endBackupFile(bpContext *ctx) {
    struct osb_job *job = ctx->pContext;
    if (!job || job->phase != PH_FILES) return bRC_Error;
    if (!job->data_done) {
        fail(job, "Bacula stopped reading the data of %s before its end", job->fname);
        return bRC_Error;
    }
    int r = read_header(job);
    if (r < 0) return bRC_Error;
    if (r > 0) {
        job->have_header = r;
        return bRC_More; /* the FD calls startBackupFile again: many files from one Plugin line */
    }
    on_end(job);
    if (job->mode == MODE_ESTIMATE) send_job_end(job, job->errors == 0);
    return bRC_OK;
}

static void io_fail(struct io_pkt *io) {
    io->status = -1;
    io->io_errno = EIO;
}

static void backup_read(struct osb_job *job, struct io_pkt *io) {
    char ex[128];
    io->status = 0;
    while (!job->data_done && job->dpos == job->dlen) {
        osb_packet p;
        if (recv_next(job, &p, 0) < 0) return io_fail(io);
        if (p.status == 'F') {
            if (job->data_left != 0) {
                fail(job, "backend protocol error: the data of %s ended %" PRId64 " bytes before its STAT size %" PRId64,
                     job->fname, job->data_left, job->size);
                return io_fail(io);
            }
            job->data_done = 1;
        } else if (p.status == 'D') {
            if ((int64_t)p.len > job->data_left) {
                fail(job, "backend protocol error: %s has more data than its STAT size %" PRId64, job->fname,
                     job->size);
                return io_fail(io);
            }
            job->data_left -= (int64_t)p.len;
            job->dpos = 0;
            job->dlen = p.len;
        } else {
            fail(job, "backend protocol error: got %s inside the data of %s", excerpt(&p, ex, sizeof ex), job->fname);
            return io_fail(io);
        }
    }
    if (job->dpos < job->dlen) {
        size_t n = job->dlen - job->dpos;
        if (io->count < 0) {
            fail(job, "the File Daemon asked for %d bytes of %s", io->count, job->fname);
            return io_fail(io);
        }
        if (n > (size_t)io->count) n = (size_t)io->count;
        memcpy(io->buf, job->conn.payload + job->dpos, n);
        job->dpos += n;
        io->status = (int32_t)n;
    }
}

static void restore_close(struct osb_job *job, struct io_pkt *io) {
    osb_packet p;
    char ex[128];
    job->restore_data = 0;
    if (send_packet(job, 'F', NULL, 0) < 0 || recv_next(job, &p, 1) < 0) return io_fail(io);
    if (p.status == 'E') return; /* the part was refused: already in the job log as an error */
    if (p.status != 'C' || strcmp(p.data, "OK") != 0) {
        fail(job, "backend protocol error: got %s where \"OK\" or E (after a restored file) was expected",
             excerpt(&p, ex, sizeof ex));
        return io_fail(io);
    }
}

static bRC pluginIO(bpContext *ctx, struct io_pkt *io) {
    struct osb_job *job = ctx->pContext;
    io->status = 0;
    io->io_errno = 0;
    if (!job || job->phase != PH_FILES) {
        io_fail(io);
        return bRC_Error;
    }
    switch (io->func) {
    case IO_OPEN:
        if (job->mode == MODE_RESTORE && !job->restore_data) io_fail(io);
        break;
    case IO_READ:
        if (job->mode != MODE_BACKUP) io_fail(io);
        else backup_read(job, io);
        break;
    case IO_WRITE:
        if (job->mode != MODE_RESTORE || !job->restore_data || io->count < 0) {
            io_fail(io);
            break;
        }
        for (int32_t off = 0; off < io->count;) {
            int32_t n = io->count - off > OSB_MAX_PAYLOAD ? OSB_MAX_PAYLOAD : io->count - off;
            if (send_packet(job, 'D', io->buf + off, (size_t)n) < 0) {
                io_fail(io);
                return bRC_Error;
            }
            off += n;
        }
        io->status = io->count;
        break;
    case IO_CLOSE:
        if (job->mode == MODE_RESTORE && job->restore_data) restore_close(job, io);
        break;
    default: /* IO_SEEK: the data is a stream */
        io->status = -1;
        io->io_errno = ESPIPE;
        break;
    }
    return io->status < 0 ? bRC_Error : bRC_OK;
}

static bRC startRestoreFile(bpContext *ctx, const char *cmd) {
    (void)ctx; (void)cmd;
    return bRC_OK;
}

static bRC endRestoreFile(bpContext *ctx) {
    struct osb_job *job = ctx->pContext;
    if (job) job->restore_data = 0;
    return bRC_OK;
}

/* The catalog name: the FD gives ofname = Where + name; the backend wants the /@openstack/... name. */
static const char *original_name(const struct restore_pkt *rp) {
    const char *where = rp->where, *of = rp->ofname;
    if (!of) return "";
    if (rp->RegexWhere && *rp->RegexWhere) return of; /* not reversible: the backend gets the rewritten name */
    if (!where || !*where) return of;
    size_t wl = strlen(where);
    while (wl > 0 && where[wl - 1] == '/') wl--;
    if (wl > 0 && strncmp(of, where, wl) == 0 && of[wl] == '/') return of + wl;
    return of;
}

static bRC createFile(bpContext *ctx, struct restore_pkt *rp) {
    struct osb_job *job = ctx->pContext;
    rp->create_status = CF_SKIP;
    if (!job || job->phase != PH_FILES || job->mode != MODE_RESTORE) return bRC_OK;
    if (rp->type != FT_REG) {
        dmsg(job, PLUGIN_NAME ": skipping %s (type %d is not a regular file)", rp->ofname, rp->type);
        return bRC_OK;
    }
    const char *name = original_name(rp);
    osb_packet p;
    char ex[128];
    if (send_text(job, "FNAME:%s", name) < 0 ||
        send_text(job, "STAT:%" PRId64 " %u", (int64_t)rp->statp.st_size, rp->delta_seq) < 0 ||
        send_packet(job, 'F', NULL, 0) < 0 || recv_command(job, &p, "\"OK\" or \"SKIP\"") < 0) {
        rp->create_status = CF_ERROR;
        return bRC_OK;
    }
    if (strcmp(p.data, "OK") == 0) {
        job->restore_data = 1;
        rp->create_status = CF_EXTRACT;
    } else if (strcmp(p.data, "SKIP") == 0) {
        rp->create_status = CF_SKIP;
    } else {
        fail(job, "backend protocol error: got %s where \"OK\" or \"SKIP\" (for %s) was expected",
             excerpt(&p, ex, sizeof ex), name);
        rp->create_status = CF_ERROR;
    }
    return bRC_OK;
}

static bRC setFileAttributes(bpContext *ctx, struct restore_pkt *rp) {
    (void)ctx; (void)rp;
    return bRC_OK;
}

/* Accurate mode asks, for each catalog file not seen in this job, whether a plugin saw it. */
static bRC checkFile(bpContext *ctx, char *fname) {
    struct osb_job *job = ctx->pContext;
    if (!job || job->nseen == 0 || !fname) return bRC_OK;
    if (!job->seen_sorted) {
        qsort(job->seen, job->nseen, sizeof *job->seen, cmp_str);
        job->seen_sorted = 1;
    }
    return bsearch(&fname, job->seen, job->nseen, sizeof *job->seen, cmp_str) ? bRC_Seen : bRC_OK;
}

static bRC handleXACLdata(bpContext *ctx, struct xacl_pkt *xacl) {
    (void)ctx; (void)xacl;
    return bRC_OK;
}

static pFuncs plugin_funcs = {
    sizeof(pFuncs), BACULA_FD_INTERFACE_VERSION, newPlugin, freePlugin, getPluginValue, setPluginValue,
    handlePluginEvent, startBackupFile, endBackupFile, startRestoreFile, endRestoreFile, pluginIO, createFile,
    setFileAttributes, checkFile, handleXACLdata, NULL /* checkStream: none */};

bRC loadPlugin(bInfo *info, bFuncs *funcs, pInfo **pinfo, pFuncs **pfuncs);
bRC unloadPlugin(void);

bRC loadPlugin(bInfo *info, bFuncs *funcs, pInfo **pinfo, pFuncs **pfuncs) {
    (void)info; /* the FD checks our version against its own; nothing to negotiate here */
    bfuncs = funcs;
    *pinfo = &plugin_info;
    *pfuncs = &plugin_funcs;
    return bRC_OK;
}

bRC unloadPlugin(void) {
    return bRC_OK;
}
