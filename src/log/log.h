/*
 * Logging to stderr at a global level, as text or JSON lines
 * (litellm_settings.json_logs). Lines are formatted on the caller's stack and
 * written with one write(2), so lines from different threads never interleave.
 * A worker thread can turn on buffering for itself: its lines collect in a
 * thread-local buffer that the worker flushes once per loop iteration (one
 * syscall for many access-log lines) and that is flushed whenever it fills.
 *
 * Never pass a secret (master key, virtual key, provider key, Authorization
 * header) to these functions.
 */
#ifndef LX_LOG_LOG_H
#define LX_LOG_LOG_H

#include <stdatomic.h>
#include <stdbool.h>

#include "core/compiler.h"

enum lx_log_level {
    LX_LOG_DEBUG = 10,
    LX_LOG_INFO = 20,
    LX_LOG_WARNING = 30,
    LX_LOG_ERROR = 40,
    LX_LOG_CRITICAL = 50,
};

/* Atomic: a reload sets it while workers read it. */
extern atomic_int lx_log_level_current;

void lx_log_set_level(enum lx_log_level level);
/* "DEBUG", "INFO", "WARNING"/"WARN", "ERROR", "CRITICAL" (any case). Returns 0 or LX_EINVAL. */
int lx_log_parse_level(const char *s, enum lx_log_level *out);
void lx_log_set_json(bool json);
void lx_log_msg(enum lx_log_level level, const char *fmt, ...) LX_PRINTF(2, 3);

/* Buffer this thread's lines until lx_log_flush (or the buffer fills). */
void lx_log_thread_buffer(bool on);
void lx_log_flush(void);

#define LX_LOG_ENABLED(lvl)                                                                        \
    ((int)(lvl) >= atomic_load_explicit(&lx_log_level_current, memory_order_relaxed))
#define LX_LOG(lvl, ...)                                                                           \
    do {                                                                                           \
        if (LX_LOG_ENABLED(lvl)) {                                                                 \
            lx_log_msg((lvl), __VA_ARGS__);                                                        \
        }                                                                                          \
    } while (0)
#define LX_DEBUG(...) LX_LOG(LX_LOG_DEBUG, __VA_ARGS__)
#define LX_INFO(...) LX_LOG(LX_LOG_INFO, __VA_ARGS__)
#define LX_WARN(...) LX_LOG(LX_LOG_WARNING, __VA_ARGS__)
#define LX_ERROR(...) LX_LOG(LX_LOG_ERROR, __VA_ARGS__)

#endif
