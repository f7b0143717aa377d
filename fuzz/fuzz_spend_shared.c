/*
 * libFuzzer target for the shared-spend replies Redis sends back: hiredis'
 * redisReader parses the bytes (as the worker's connection does), and every
 * reply goes through the decoders of an admission's MGET (for the scope count
 * the first byte picks, also past the maximum) and of the add script's
 * result. A decoded MGET must describe exactly the scopes asked for, with
 * nothing set for a missing counter.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "spend/shared.h"

#define MAX_REPLIES 64

static void decode_one(const redisReply *rep, size_t scopes)
{
    struct lx_spend_shared__val v[4];
    memset(v, 0xa5, sizeof(v));
    int rc = lx_spend_shared__decode_mget(rep, scopes, v);
    if (rc == 0) {
        if (scopes > 4 || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 * scopes) {
            abort();
        }
        for (size_t i = 0; i < scopes; i++) {
            const redisReply *c = rep->element[2 * i];
            if (v[i].exists != (c->type == REDIS_REPLY_STRING) || (!v[i].exists && v[i].value)) {
                abort();
            }
        }
    } else if (rc != -8 /* LX_EUPSTREAM */) {
        abort();
    }
    struct lx_spend_shared__val a;
    rc = lx_spend_shared__decode_add(rep, &a);
    if (rc == 0 && (!a.exists || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
                    a.value != rep->element[0]->integer)) {
        abort();
    } else if (rc != 0 && rc != -8) {
        abort();
    }
}

/*
 * hiredis allocates an array reply's element table from its declared count
 * before the elements arrive: a huge "*N" only measures the allocator.
 */
static int huge_array(const uint8_t *d, size_t n)
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
            return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) {
        return 0;
    }
    size_t scopes = data[0] % 6;
    data++;
    size--;
    if (huge_array(data, size)) {
        return 0;
    }
    redisReader *rd = redisReaderCreate();
    rd->maxbuf = 0;
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        for (int n = 0; n < MAX_REPLIES; n++) {
            void *rep = NULL;
            if (redisReaderGetReply(rd, &rep) != REDIS_OK || !rep) {
                break;
            }
            decode_one(rep, scopes);
            freeReplyObject(rep);
        }
    }
    redisReaderFree(rd);
    return 0;
}
