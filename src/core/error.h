/*
 * Error codes. Functions return 0 or a negative LX_E* code. One table maps
 * each code to the HTTP status and the OpenAI error type a client sees when
 * the code ends a request; struct lx_error carries a code plus a message when
 * the caller needs detail (config errors, upstream failures).
 */
#ifndef LX_CORE_ERROR_H
#define LX_CORE_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#include "core/compiler.h"

enum lx_errc {
    LX_OK = 0,
    LX_EINVAL = -1,      /* bad input: 400 */
    LX_ENOMEM = -2,      /* allocation failed: 500 */
    LX_ETOOBIG = -3,     /* a capped buffer would overflow: 413 */
    LX_ENOTFOUND = -4,   /* 404 */
    LX_EAUTH = -5,       /* missing or bad credentials: 401 */
    LX_EFORBIDDEN = -6,  /* 403 */
    LX_ETIMEDOUT = -7,   /* upstream timeout: 504 */
    LX_EUPSTREAM = -8,   /* upstream unreachable or garbage: 502 */
    LX_EIO = -9,         /* local I/O error */
    LX_ECANCELED = -10,  /* the operation was cancelled (client left, shutdown) */
    LX_EAGAIN = -11,     /* try again later / would block */
    LX_EUNAVAIL = -12,   /* service unavailable: 503 */
    LX_EINTERNAL = -13,  /* bug or unexpected state: 500 */
    LX_ECONFIG = -14,    /* configuration error */
    LX_EMETHOD = -15,    /* method not allowed: 405 */
    LX_EHEADERS = -16,   /* request headers too large: 431 */
    LX_ERATELIMIT = -17, /* 429 */
    LX_ECONFLICT = -18,  /* already exists (unique key, alias): 409 */
    LX_EBUDGET = -19,    /* budget exceeded: 400 budget_exceeded */
};

#define LX_ERROR_MSG_MAX 512

struct lx_error {
    int code;
    char msg[LX_ERROR_MSG_MAX];
};

/* Short name of a code ("invalid input"). Never NULL. */
const char *lx_strerror(int code);

/* HTTP status for a code that ends a request (500 for unknown codes). */
int lx_error_http_status(int code);

/* OpenAI error type for an HTTP status ("invalid_request_error", ...). */
const char *lx_error_type_for_status(int status);

/* Set code and a printf-formatted message. Returns code. err may be NULL. */
int lx_error_set(struct lx_error *err, int code, const char *fmt, ...) LX_PRINTF(3, 4);
/* The same with a va_list, for functions that forward their own format. */
int lx_error_vset(struct lx_error *err, int code, const char *fmt, va_list ap) LX_PRINTF(3, 0);

#endif
