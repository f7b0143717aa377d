/*
 * The spend journal: the on-disk form of spend records, and the segment files
 * that hold them until the ledger has committed them to the store.
 *
 * A record is one frame, written with a single write(2):
 *
 *     magic   u32 LE  "LXJ1"
 *     length  u32 LE  payload bytes (at most LX_JOURNAL_MAX_PAYLOAD)
 *     crc     u32 LE  CRC-32 (IEEE) of the payload
 *     payload         u8 version (1); 12 strings, each u16 LE length + bytes
 *                     (0xFFFF = NULL); 7 int64 LE (prompt, completion, total
 *                     and cache-read tokens, spend nanos, start and end time
 *                     ms); u8 cache_hit; u8 status (0 success, 1 failure)
 *
 * The page cache keeps a written frame through a kill -9 of the process; an
 * fsync (batched by the ledger) keeps it through a power loss. A reader
 * treats every byte as untrusted: a frame with a bad magic, length, checksum
 * or payload is reported as corrupt and the reader resynchronises on the next
 * magic; a frame cut by the end of the file is reported as incomplete.
 *
 * Segment files are named "<prefix>.lxj" inside the journal directory. The
 * process writing a segment holds an exclusive flock(2) on it for its whole
 * life, so another process can tell a live segment (locked) from one left by
 * a process that died (lockable), and replays only the latter. A segment is
 * created under a ".tmp" name, locked, then renamed, so no other process can
 * lock a segment between its creation and its owner's lock.
 */
#ifndef LX_SPEND_JOURNAL_H
#define LX_SPEND_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/compiler.h"
#include "core/error.h"

/*
 * One billable call, as a row of lx_spend_logs. Strings are NUL-terminated
 * and may be NULL (SQL NULL) except request_id and call_type. Money is
 * nano-USD; times are unix milliseconds.
 */
struct lx_spend_record {
    const char *request_id; /* x-litellm-call-id: unique per call, the row's key */
    const char *call_type;  /* "acompletion", "atext_completion", "aembedding" */
    const char *api_key;    /* SHA-256 hex of the virtual key */
    const char *key_alias;
    const char *user_id;
    const char *team_id;
    const char *end_user;
    const char *model;       /* the model the deployment was asked for */
    const char *model_group; /* the model name the client asked for */
    const char *model_id;    /* the deployment id */
    const char *custom_llm_provider;
    const char *api_base;
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t total_tokens;
    int64_t cache_read_tokens;
    int64_t spend_nanos;
    int64_t start_time_ms;
    int64_t end_time_ms;
    bool is_failure; /* status "failure" (spend 0) rather than "success" */
    bool cache_hit;
};

#define LX_JOURNAL_MAGIC 0x314a584cu /* "LXJ1" read as little-endian u32 */
#define LX_JOURNAL_HEADER 12u
#define LX_JOURNAL_MAX_PAYLOAD 65536u
#define LX_JOURNAL_MAX_STR 4096u /* longer strings are cut at encode time */

/* "success" or "failure". */
static inline const char *lx_spend_status(const struct lx_spend_record *r)
{
    return r->is_failure ? "failure" : "success";
}

/*
 * Append r as one frame to out. Strings longer than LX_JOURNAL_MAX_STR are
 * cut. Returns 0, LX_EINVAL (request_id or call_type missing), or the
 * buffer's LX_ETOOBIG / LX_ENOMEM (out is then unchanged).
 */
int lx_journal_encode(const struct lx_spend_record *r, struct lx_buf *out) LX_MUST_CHECK;

/*
 * Decode the frame at the start of p[0..n). Returns 0 (out filled, strings
 * copied into the arena; *out_len = frame bytes), LX_EAGAIN (p holds the
 * start of a frame that may be complete with more bytes; *out_len = bytes
 * the whole frame needs, or LX_JOURNAL_HEADER when the header is cut), or
 * LX_EINVAL (not a valid frame). Never reads past p + n.
 */
int lx_journal_decode(const void *p, size_t n, struct lx_spend_record *out, struct lx_arena *a,
                      size_t *out_len) LX_MUST_CHECK;

/* Offset of the next possible frame start after offset 0 (n when there is none). */
size_t lx_journal_resync(const void *p, size_t n);

/* ---- segment files ---- */

/* Create dir (and its parents) if missing. Blocking. */
int lx_journal_mkdir(const char *dir, struct lx_error *err) LX_MUST_CHECK;

/*
 * Create a new segment "<dir>/<name>.lxj", exclusively locked, open for
 * appending and reading. Returns the fd (>= 0) and sets *out_path (owned, free
 * with lx_free), or a negative LX_E* code with err filled. Blocking.
 */
int lx_journal_segment_create(const char *dir, const char *name, char **out_path,
                              struct lx_error *err);

/*
 * Try to take over the segment at path: returns its fd, locked, when no live
 * process holds it and it still exists; LX_EAGAIN when it is locked (live);
 * LX_ENOTFOUND when it vanished; LX_EIO on other errors. Blocking.
 */
int lx_journal_segment_adopt(const char *path);

/*
 * Call fn for each "*.lxj" file name in dir (not the path), in name order.
 * Leftover ".tmp" files nobody holds are removed. Returns 0 or LX_EIO.
 */
typedef void (*lx_journal_each_cb)(void *ud, const char *name);
int lx_journal_list(const char *dir, lx_journal_each_cb fn, void *ud);

#endif
