/*
 * OpenAI-format usage objects read from raw JSON with the tree-less scanner
 * of json/json.h: a pass-through response is never parsed into a cJSON tree
 * just to bill it.
 */
#include "spend/usage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "json/json.h"

static bool is_null(struct lx_str v)
{
    return v.p == NULL || lx_str_eq_c(v, "null");
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* JSON whitespace (RFC 8259, section 2) removed at both ends. */
static struct lx_str json_trim(struct lx_str s)
{
    while (s.n && is_ws(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n && is_ws(s.p[s.n - 1])) {
        s.n--;
    }
    return s;
}

/*
 * A token count from a raw JSON value already validated by the scanner:
 * absent or null is 0; an integer, or a number with a fraction or an
 * exponent that is integral (some servers print 12.0), in [0, 2^53].
 */
static int read_count(struct lx_str v, int64_t *out)
{
    *out = 0;
    if (is_null(v)) {
        return 0;
    }
    if (v.n == 0 || v.p[0] == '-' || (v.p[0] < '0' || v.p[0] > '9')) {
        return LX_EINVAL;
    }
    unsigned long long u = 0;
    if (lx_str_to_u64(v, (unsigned long long)LX_USAGE_MAX_TOKENS, &u) == 0) {
        *out = (int64_t)u;
        return 0;
    }
    /* A JSON number with a fraction or exponent (else it was too big): small enough to copy. */
    char buf[64];
    bool fractional = memchr(v.p, '.', v.n) || memchr(v.p, 'e', v.n) || memchr(v.p, 'E', v.n);
    if (v.n >= sizeof(buf) || !fractional) {
        return LX_EINVAL;
    }
    memcpy(buf, v.p, v.n);
    buf[v.n] = '\0';
    char *end = NULL;
    double d = strtod(buf, &end);
    if (end != buf + v.n || !(d >= 0) || d > (double)LX_USAGE_MAX_TOKENS || d != floor(d)) {
        return LX_EINVAL;
    }
    *out = (int64_t)d;
    return 0;
}

int lx_usage_parse_openai(struct lx_str raw, struct lx_usage *out)
{
    memset(out, 0, sizeof(*out));
    struct lx_str t = json_trim(raw);
    if (is_null(t) || t.n == 0) {
        return LX_ENOTFOUND;
    }
    if (t.p[0] != '{') {
        return LX_EINVAL;
    }
    static const struct lx_str keys[] = {
        LX_STR("prompt_tokens"),
        LX_STR("completion_tokens"),
        LX_STR("prompt_tokens_details"),
        LX_STR("cache_read_input_tokens"),
        LX_STR("cache_creation_input_tokens"),
    };
    struct lx_str v[LX_ARRAY_LEN(keys)];
    if (lx_json_find_top_many(t, keys, LX_ARRAY_LEN(keys), v)) {
        return LX_EINVAL;
    }
    struct lx_usage u = {0};
    int64_t cache_read_alt = 0;
    int rc = read_count(v[0], &u.prompt_tokens);
    rc = rc ? rc : read_count(v[1], &u.completion_tokens);
    rc = rc ? rc : read_count(v[3], &cache_read_alt);
    rc = rc ? rc : read_count(v[4], &u.cache_creation_tokens);
    if (!rc && !is_null(v[2])) {
        struct lx_str details = v[2];
        struct lx_str cached = LX_STR_NULL;
        if (details.p[0] != '{') {
            rc = LX_EINVAL;
        } else {
            int frc = lx_json_find_top(details, LX_STR("cached_tokens"), &cached);
            rc = frc == LX_EINVAL ? LX_EINVAL : read_count(cached, &u.cache_read_tokens);
        }
    }
    if (rc) {
        return LX_EINVAL;
    }
    if (u.cache_read_tokens == 0) {
        u.cache_read_tokens = cache_read_alt;
    }
    *out = u;
    return 0;
}
