/*
 * One Redis connection per worker loop (hiredis async on libuv), shared by
 * the modules of that worker that talk to Redis (rate limits, the response
 * cache).
 *
 * The connection never blocks its loop: the host name is resolved with
 * uv_getaddrinfo, the connect is non-blocking, and every command has a
 * deadline (LX_REDIS_CMD_TIMEOUT_MS). A command that misses its deadline, a
 * refused connect or a lost connection mark the link down at once: every
 * pending command fails with LX_EUNAVAIL (or LX_ETIMEDOUT for the one that
 * timed out), and new commands fail inside the call with LX_EUNAVAIL so the
 * caller can fall back to local state without waiting. The link reconnects
 * by itself in the background with exponential backoff (100 ms doubling to
 * 5 s); the `up` callback reports each (re)connection.
 *
 * Every function runs on the loop thread the connection was created on.
 */
#ifndef LX_REDIS_REDIS_H
#define LX_REDIS_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "config/config.h"
#include "core/compiler.h"

#define LX_REDIS_CMD_TIMEOUT_MS 50
#define LX_REDIS_CONNECT_TIMEOUT_MS 500

struct lx_redis;

/*
 * A command's outcome. result is 0 with a reply (which may be a Redis error
 * reply: check reply->type), LX_ETIMEDOUT, LX_EUNAVAIL (the link went down)
 * or LX_ECANCELED (the connection is being closed). The reply is borrowed for
 * the duration of the callback. The callback must not close the connection.
 */
typedef void (*lx_redis_reply_cb)(void *ud, int result, const redisReply *reply);
/* The link is up (after the first connect or a reconnect). */
typedef void (*lx_redis_up_cb)(struct lx_redis *r, void *ud);

/*
 * Start connecting to cfg (host, port, password, username are copied).
 * `up` (may be NULL) runs each time the link becomes usable. Never NULL.
 */
struct lx_redis *lx_redis_new(uv_loop_t *loop, const struct lx_redis_cfg *cfg, lx_redis_up_cb up,
                              void *ud);

/*
 * Close: pending commands get LX_ECANCELED; memory is released from the
 * close callbacks of its handles, so the loop must keep running.
 */
void lx_redis_close(struct lx_redis *r);

/* The link is connected and commands can be sent. */
bool lx_redis_is_up(const struct lx_redis *r);

/* Same host, port and credentials as cfg. */
bool lx_redis_same_target(const struct lx_redis *r, const struct lx_redis_cfg *cfg);

/*
 * Send a command (binary-safe arguments, borrowed for the call). Returns 0
 * and `cb` runs exactly once later; or LX_EUNAVAIL when the link is down (the
 * callback never runs).
 */
LX_MUST_CHECK int lx_redis_command(struct lx_redis *r, int argc, const char **argv,
                                   const size_t *lens, lx_redis_reply_cb cb, void *ud);

/*
 * Write the commands sent so far to the socket now (one non-blocking write)
 * instead of on the loop's next turn: a caller about to answer a client uses
 * it so that Redis has the command before the client can react to the answer.
 * A write error is left for the loop to handle (no callback runs inside).
 */
void lx_redis_flush(struct lx_redis *r);

/* Counters for tests and logs. */
struct lx_redis_stats {
    unsigned long connects; /* successful connects */
    unsigned long failures; /* connect failures, timeouts and losses */
    unsigned long sent;     /* commands sent */
    unsigned long timeouts; /* commands that missed their deadline */
    unsigned long pending;  /* commands awaiting a reply */
};
void lx_redis_get_stats(const struct lx_redis *r, struct lx_redis_stats *out);

#endif
