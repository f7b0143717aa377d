/*
 * libFuzzer target for Redis replies: hiredis' redisReader parses the bytes
 * (as the worker's connection does), and every reply it yields goes through
 * our decoders of the rate-limit script's result (for each scope count the
 * first byte picks, with and without budgets read alongside), the NOSCRIPT
 * check and the integer-reply reader. The
 * bytes are fed whole and one byte at a time; both must yield the same
 * replies and decodings. A decoded reply must respect the script's shape.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "limits/limits_int.h"

#define MAX_REPLIES 64

struct outcome {
    int n;
    int rc[MAX_REPLIES];
    bool ok[MAX_REPLIES];
    int bad[MAX_REPLIES];
    long long first[MAX_REPLIES];
    bool noscript[MAX_REPLIES];
    long long integer[MAX_REPLIES];
    bool failed; /* the reader reported a protocol error */
    size_t budgets;
};

static void decode_one(const redisReply *rep, size_t scopes, struct outcome *o)
{
    if (o->n >= MAX_REPLIES) {
        return;
    }
    struct lx_limits__admit_reply ar;
    int i = o->n++;
    o->rc[i] = lx_limits__decode_admit(rep, scopes, &ar);
    o->ok[i] = ar.ok;
    o->bad[i] = ar.bad;
    o->first[i] = ar.requests[0];
    if (o->rc[i] == 0) {
        if (ar.ok ? ar.bad != -1 : (ar.bad < 0 || (size_t)ar.bad >= scopes)) {
            abort();
        }
        for (size_t k = 0; k < scopes; k++) {
            if (ar.requests[k] < 0 || ar.tokens[k] < 0) {
                abort();
            }
        }
    } else if (o->rc[i] != -8 /* LX_EUPSTREAM */) {
        abort();
    }
    /* The same reply as an admission that also read budgets (spend/shared.h). */
    size_t budgets = o->budgets;
    int rb = lx_limits__decode_admit_b(rep, scopes, budgets, &ar);
    if (rb == 0) {
        bool budget_bad = !ar.ok && (size_t)ar.bad >= scopes;
        if ((ar.ok && ar.bad != -1) ||
            (!ar.ok && (ar.bad < 0 || (size_t)ar.bad >= scopes + budgets)) ||
            budget_bad != (ar.kind == LX_LIMITS_BUDGET) || (budgets == 0 && rb != o->rc[i])) {
            abort();
        }
        for (size_t k = 0; k < budgets; k++) {
            if (ar.b_mark[k] < 0 || (!ar.b_exists[k] && ar.b_exists[k] != 0)) {
                abort();
            }
        }
    } else if (rb != -8 /* LX_EUPSTREAM */) {
        abort();
    }
    o->noscript[i] = lx_limits__is_noscript(rep);
    o->integer[i] = lx_limits__int_reply(rep);
}

static void run(const uint8_t *data, size_t size, size_t step, size_t scopes, size_t budgets,
                struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    o->budgets = budgets;
    redisReader *rd = redisReaderCreate();
    rd->maxbuf = 0;
    size_t off = 0;
    while (off < size && !o->failed) {
        size_t n = step ? (size - off < step ? size - off : step) : size;
        if (redisReaderFeed(rd, (const char *)data + off, n) != REDIS_OK) {
            o->failed = true;
            break;
        }
        off += n;
        for (;;) {
            void *rep = NULL;
            if (redisReaderGetReply(rd, &rep) != REDIS_OK) {
                o->failed = true;
                break;
            }
            if (!rep) {
                break;
            }
            decode_one(rep, scopes, o);
            freeReplyObject(rep);
        }
    }
    redisReaderFree(rd);
}

/*
 * hiredis allocates an array reply's element table from its declared count
 * before the elements arrive: a huge "*N" only measures the allocator.
 */
static bool huge_array(const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (d[i] != '*') {
            continue;
        }
        unsigned long v = 0;
        for (size_t k = i + 1; k < n && k < i + 12 && d[k] >= '0' && d[k] <= '9'; k++) {
            v = v * 10 + (unsigned long)(d[k] - '0');
        }
        if (v > 4096) {
            return true;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) {
        return 0;
    }
    size_t scopes = data[0] % (LX_LIMITS_MAX_SCOPES + 2); /* also past the maximum */
    size_t budgets = (data[0] / 16u) % (LX_LIMITS_MAX_BUDGETS + 2);
    data++;
    size--;
    if (huge_array(data, size)) {
        return 0;
    }
    static struct outcome whole, bytes;
    run(data, size, 0, scopes, budgets, &whole);
    if (size <= 4096) {
        run(data, size, 1, scopes, budgets, &bytes);
        /* Replies before a protocol error must be the same whichever way the bytes came. */
        int n = whole.n < bytes.n ? whole.n : bytes.n;
        if (!whole.failed && !bytes.failed && whole.n != bytes.n) {
            abort();
        }
        for (int i = 0; i < n; i++) {
            if (whole.rc[i] != bytes.rc[i] || whole.ok[i] != bytes.ok[i] ||
                whole.bad[i] != bytes.bad[i] || whole.first[i] != bytes.first[i] ||
                whole.noscript[i] != bytes.noscript[i] || whole.integer[i] != bytes.integer[i]) {
                abort();
            }
        }
    }
    return 0;
}
