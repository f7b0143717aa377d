/* The one table from error codes to HTTP statuses and OpenAI error types. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

static const struct {
    int code;
    int status;
    const char *name;
} codes[] = {
    {LX_OK, 200, "ok"},
    {LX_EINVAL, 400, "invalid input"},
    {LX_ENOMEM, 500, "out of memory"},
    {LX_ETOOBIG, 413, "too large"},
    {LX_ENOTFOUND, 404, "not found"},
    {LX_EAUTH, 401, "authentication failed"},
    {LX_EFORBIDDEN, 403, "forbidden"},
    {LX_ETIMEDOUT, 504, "timed out"},
    {LX_EUPSTREAM, 502, "upstream error"},
    {LX_EIO, 500, "i/o error"},
    {LX_ECANCELED, 499, "cancelled"},
    {LX_EAGAIN, 503, "try again"},
    {LX_EUNAVAIL, 503, "unavailable"},
    {LX_EINTERNAL, 500, "internal error"},
    {LX_ECONFIG, 500, "configuration error"},
    {LX_EMETHOD, 405, "method not allowed"},
    {LX_EHEADERS, 431, "request headers too large"},
    {LX_ERATELIMIT, 429, "rate limited"},
    {LX_ECONFLICT, 409, "already exists"},
    {LX_EBUDGET, 400, "budget exceeded"},
};

const char *lx_strerror(int code)
{
    for (size_t i = 0; i < LX_ARRAY_LEN(codes); i++) {
        if (codes[i].code == code) {
            return codes[i].name;
        }
    }
    return "unknown error";
}

int lx_error_http_status(int code)
{
    for (size_t i = 0; i < LX_ARRAY_LEN(codes); i++) {
        if (codes[i].code == code) {
            return codes[i].status;
        }
    }
    return 500;
}

const char *lx_error_type_for_status(int status)
{
    switch (status) {
    case 400:
    case 404:
    case 405:
    case 413:
    case 422:
    case 431:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 408:
    case 504:
        return "timeout";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

int lx_error_vset(struct lx_error *err, int code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
    return code;
}

int lx_error_set(struct lx_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lx_error_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}
