/* bacula_abi.h: our own declarations of the Bacula 9.6 File Daemon plugin ABI
 * (FD_PLUGIN_INTERFACE_VERSION 14, as in Debian 12's bacula-fd 9.6.7).
 *
 * Written from the layout of src/filed/fd_plugins.h, src/lib/plugins.h and src/fileopts.h at the
 * Release-9.6.7 tag; no Bacula code is included. Field order and types must match that release
 * exactly: the FD hands us pointers to its own structs. Other interface versions (11.x = 21,
 * 13.x/15.x = 22) change save_pkt, restore_pkt and io_pkt, so this plugin is for 9.6 only and the FD
 * refuses it elsewhere (pInfo.version). Bacula is built with _FILE_OFFSET_BITS=64: so are we
 * (the Makefile passes it), so struct stat and off_t agree. */
#ifndef OSB_BACULA_ABI_H
#define OSB_BACULA_ABI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define BACULA_FD_INTERFACE_VERSION 14
#define BACULA_FD_PLUGIN_MAGIC "*FDPluginData*"

typedef enum {
    bRC_OK = 0, bRC_Stop = 1, bRC_Error = 2, bRC_More = 3, bRC_Term = 4,
    bRC_Seen = 5, bRC_Core = 6, bRC_Skip = 7, bRC_Cancel = 8
} bRC;

typedef struct bpContext {
    void *bContext; /* the FD's */
    void *pContext; /* ours: struct osb_job * */
} bpContext;

typedef struct { uint32_t eventType; } bEvent;
typedef struct { uint32_t size; uint32_t version; } bInfo;

enum {
    bEventJobStart = 1, bEventJobEnd = 2, bEventStartBackupJob = 3, bEventEndBackupJob = 4,
    bEventStartRestoreJob = 5, bEventEndRestoreJob = 6, bEventStartVerifyJob = 7, bEventEndVerifyJob = 8,
    bEventBackupCommand = 9, bEventRestoreCommand = 10, bEventEstimateCommand = 11, bEventLevel = 12,
    bEventSince = 13, bEventCancelCommand = 14 /* sent from another FD thread */,
    bEventRestoreObject = 18 /* before a restore's files, once per object, then once with NULL */
};

typedef enum {
    bVarJobId = 1, bVarFDName = 2, bVarLevel = 3, bVarType = 4, bVarClient = 5, bVarJobName = 6,
    bVarJobStatus = 7, bVarSinceTime = 8, bVarAccurate = 9, bVarFileSeen = 10, bVarVssObject = 11,
    bVarVssDllHandle = 12, bVarWorkingDir = 13, bVarWhere = 14, bVarRegexWhere = 15, bVarExePath = 16,
    bVarVersion = 17, bVarDistName = 18, bVarxxx = 19, bVarPrevJobName = 20, bVarPrefixLinks = 21,
    bVarInteractiveSession = 22, bVarFileIndex = 23, bVarReplace = 24
} bVariable;

typedef enum { pVarName = 1, pVarDescription = 2 } pVariable;

/* Message types (src/lib/message.h): the JobMessage type argument. */
enum { M_ABORT = 1, M_DEBUG = 2, M_FATAL = 3, M_ERROR = 4, M_WARNING = 5, M_INFO = 6 };

/* File types (src/findlib/find.h) and createFile statuses (src/findlib/bfile.h). */
enum { FT_REG = 3, FT_PLUGIN_CONFIG = 27, FT_PLUGIN_CONFIG_FILLED = 28 };
enum { CF_SKIP = 1, CF_ERROR = 2, CF_EXTRACT = 3, CF_CREATED = 4, CF_CORE = 5 };
enum { IO_OPEN = 1, IO_READ = 2, IO_WRITE = 3, IO_CLOSE = 4, IO_SEEK = 5 };

/* Job status characters (src/jcr.h) we look at. */
enum { JS_Terminated = 'T', JS_Warnings = 'W', JS_Running = 'R' };

/* src/fileopts.h: save_pkt.flags bits a command plugin may set. */
#define FO_SPARSE   (UINT64_C(1) << 5)
#define FO_PORTABLE (UINT64_C(1) << 10)
#define FO_DELTA    (UINT64_C(1) << 28) /* the FD gives this version delta_seq + 1 */
#define FO_PLUGIN   (UINT64_C(1) << 29)
#define FO_OFFSETS  (UINT64_C(1) << 30)

struct save_pkt {
    int32_t pkt_size;
    char *fname;
    char *link;
    struct stat statp;
    int32_t type;
    uint64_t flags;
    bool no_read;
    bool portable;
    bool accurate_found; /* valid after checkChanges() */
    char *cmd;
    uint32_t delta_seq;  /* after checkChanges(): the catalog's sequence of the previous version */
    char *object_name;
    char *object;
    int32_t object_len;
    int32_t index;
    int32_t LinkFI;
    int32_t pkt_end;
};

struct restore_pkt {
    int32_t pkt_size;
    int32_t stream;
    int32_t data_stream;
    int32_t type;
    int32_t file_index;
    int32_t LinkFI;
    uid_t uid;
    struct stat statp;
    const char *attrEx;
    const char *ofname; /* output name, Where applied */
    const char *olname;
    const char *where;
    const char *RegexWhere;
    int replace;
    int create_status;
    uint32_t delta_seq;
    int32_t pkt_end;
};

struct io_pkt {
    int32_t pkt_size;
    int32_t func;
    int32_t count;
    int32_t flags;
    mode_t mode;
    char *buf;
    const char *fname;
    int32_t status;
    int32_t io_errno;
    int32_t lerror;
    int32_t whence;
    int64_t offset; /* boffset_t */
    bool win32;
    int32_t pkt_end;
};

/* bEventRestoreObject's value (src/filed/fd_plugins.h): a restore object the Director sends before the
 * files of a restore (FT_PLUGIN_CONFIG_FILLED: the Plugin Options the operator filled in bconsole). */
struct restore_object_pkt {
    int32_t pkt_size;
    char *object_name;
    char *object;
    char *plugin_name; /* the Plugin string of the backup that stored the form */
    int32_t object_type;
    int32_t object_len;
    int32_t object_full_len;
    int32_t object_index;
    int32_t object_compression;
    int32_t stream;
    uint32_t JobId;
    int32_t pkt_end;
};

struct xacl_pkt;   /* not used: pointers only */
struct stream_pkt;

typedef struct {
    uint32_t size;
    uint32_t version;
    bRC (*registerBaculaEvents)(bpContext *ctx, ...);
    bRC (*getBaculaValue)(bpContext *ctx, bVariable var, void *value);
    bRC (*setBaculaValue)(bpContext *ctx, bVariable var, void *value);
    bRC (*JobMessage)(bpContext *ctx, const char *file, int line, int type, int64_t mtime, const char *fmt, ...);
    bRC (*DebugMessage)(bpContext *ctx, const char *file, int line, int level, const char *fmt, ...);
    void *(*baculaMalloc)(bpContext *ctx, const char *file, int line, size_t size);
    void (*baculaFree)(bpContext *ctx, const char *file, int line, void *mem);
    bRC (*AddExclude)(bpContext *ctx, const char *file);
    bRC (*AddInclude)(bpContext *ctx, const char *file);
    bRC (*AddOptions)(bpContext *ctx, const char *opts);
    bRC (*AddRegex)(bpContext *ctx, const char *item, int type);
    bRC (*AddWild)(bpContext *ctx, const char *item, int type);
    bRC (*NewOptions)(bpContext *ctx);
    bRC (*NewInclude)(bpContext *ctx);
    bRC (*NewPreInclude)(bpContext *ctx);
    bRC (*checkChanges)(bpContext *ctx, struct save_pkt *sp);
    bRC (*AcceptFile)(bpContext *ctx, struct save_pkt *sp);
} bFuncs;

typedef struct {
    uint32_t size;
    uint32_t version;
    const char *plugin_magic;
    const char *plugin_license; /* the 9.6 FD accepts only "AGPLv3", "Bacula AGPLv3" or "Bacula" */
    const char *plugin_author;
    const char *plugin_date;
    const char *plugin_version;
    const char *plugin_description;
} pInfo;

typedef struct {
    uint32_t size;
    uint32_t version;
    bRC (*newPlugin)(bpContext *ctx);
    bRC (*freePlugin)(bpContext *ctx);
    bRC (*getPluginValue)(bpContext *ctx, pVariable var, void *value);
    bRC (*setPluginValue)(bpContext *ctx, pVariable var, void *value);
    bRC (*handlePluginEvent)(bpContext *ctx, bEvent *event, void *value);
    bRC (*startBackupFile)(bpContext *ctx, struct save_pkt *sp);
    bRC (*endBackupFile)(bpContext *ctx);
    bRC (*startRestoreFile)(bpContext *ctx, const char *cmd);
    bRC (*endRestoreFile)(bpContext *ctx);
    bRC (*pluginIO)(bpContext *ctx, struct io_pkt *io);
    bRC (*createFile)(bpContext *ctx, struct restore_pkt *rp);
    bRC (*setFileAttributes)(bpContext *ctx, struct restore_pkt *rp);
    bRC (*checkFile)(bpContext *ctx, char *fname);
    bRC (*handleXACLdata)(bpContext *ctx, struct xacl_pkt *xacl);
    bRC (*checkStream)(bpContext *ctx, struct stream_pkt *sp);
} pFuncs;

/* Layout guards for x86_64/aarch64 Linux (LP64), computed from the 9.6.7 declarations. */
#if defined(__LP64__) && defined(__linux__)
_Static_assert(sizeof(struct stat) == 144 || sizeof(struct stat) == 128, "unexpected struct stat");
_Static_assert(sizeof(pInfo) == 56, "pInfo layout");
_Static_assert(sizeof(pFuncs) == 8 + 15 * 8, "pFuncs layout");
_Static_assert(sizeof(bFuncs) == 8 + 17 * 8, "bFuncs layout");
_Static_assert(sizeof(struct restore_object_pkt) == 64, "restore_object_pkt layout");
#endif

#endif
