/*
 * Log line formatting and output. The level is a plain int read without
 * synchronisation on the hot path; it changes only at start and on reload,
 * and a stale read only means one line more or less.
 */
#include "log/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/error.h"
#include "core/time.h"

atomic_int lx_log_level_current = LX_LOG_INFO;
static atomic_bool json_mode; /* set by a reload while workers log */

#define LINE_MAX_BYTES 4096
#define TBUF_BYTES 16384

static _Thread_local bool tbuf_on;
static _Thread_local size_t tbuf_len;
static _Thread_local char tbuf[TBUF_BYTES];

void lx_log_set_level(enum lx_log_level level)
{
    atomic_store_explicit(&lx_log_level_current, (int)level, memory_order_relaxed);
}

void lx_log_set_json(bool json)
{
    atomic_store_explicit(&json_mode, json, memory_order_relaxed);
}

int lx_log_parse_level(const char *s, enum lx_log_level *out)
{
    static const struct {
        const char *name;
        enum lx_log_level level;
    } names[] = {{"DEBUG", LX_LOG_DEBUG},   {"INFO", LX_LOG_INFO},   {"WARNING", LX_LOG_WARNING},
                 {"WARN", LX_LOG_WARNING},  {"ERROR", LX_LOG_ERROR}, {"CRITICAL", LX_LOG_CRITICAL},
                 {"FATAL", LX_LOG_CRITICAL}};
    for (size_t i = 0; i < LX_ARRAY_LEN(names); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return LX_EINVAL;
}

static const char *level_name(enum lx_log_level level)
{
    switch (level) {
    case LX_LOG_DEBUG:
        return "DEBUG";
    case LX_LOG_INFO:
        return "INFO";
    case LX_LOG_WARNING:
        return "WARNING";
    case LX_LOG_ERROR:
        return "ERROR";
    default:
        return "CRITICAL";
    }
}

static void write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

void lx_log_flush(void)
{
    if (tbuf_len) {
        write_all(tbuf, tbuf_len);
        tbuf_len = 0;
    }
}

void lx_log_thread_buffer(bool on)
{
    if (!on) {
        lx_log_flush();
    }
    tbuf_on = on;
}

/* JSON-escape src into dst (capacity cap); returns bytes written. */
static size_t json_escape(char *dst, size_t cap, const char *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (o + 6 >= cap) {
            break;
        }
        if (c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c == '\n') {
            dst[o++] = '\\';
            dst[o++] = 'n';
        } else if (c < 0x20) {
            dst[o++] = '\\';
            dst[o++] = 'u';
            dst[o++] = '0';
            dst[o++] = '0';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        } else {
            dst[o++] = (char)c;
        }
    }
    return o;
}

void lx_log_msg(enum lx_log_level level, const char *fmt, ...)
{
    char msg[LINE_MAX_BYTES];
    char line[LINE_MAX_BYTES * 2];
    char ts[32];
    va_list ap;
    va_start(ap, fmt);
    int mn = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (mn < 0) {
        return;
    }
    size_t msg_len = (size_t)mn < sizeof(msg) ? (size_t)mn : sizeof(msg) - 1;
    lx_wall_iso8601(ts, sizeof(ts));
    size_t n;
    if (atomic_load_explicit(&json_mode, memory_order_relaxed)) {
        n = (size_t)snprintf(line, sizeof(line),
                             "{\"timestamp\":\"%s\",\"level\":\"%s\",\"message\":\"", ts,
                             level_name(level));
        n += json_escape(line + n, sizeof(line) - n - 4, msg, msg_len);
        memcpy(line + n, "\"}\n", 3);
        n += 3;
    } else {
        int hn = snprintf(line, sizeof(line), "%s %-7s ", ts, level_name(level));
        n = (size_t)hn;
        size_t room = sizeof(line) - n - 1;
        size_t take = msg_len < room ? msg_len : room;
        memcpy(line + n, msg, take);
        n += take;
        line[n++] = '\n';
    }
    if (tbuf_on) {
        if (tbuf_len + n > sizeof(tbuf)) {
            lx_log_flush();
        }
        if (n <= sizeof(tbuf)) {
            memcpy(tbuf + tbuf_len, line, n);
            tbuf_len += n;
            return;
        }
    }
    write_all(line, n);
}
