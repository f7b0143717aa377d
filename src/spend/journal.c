/*
 * Spend journal frames and segment files; see journal.h for the format and
 * the locking protocol.
 */
#include "spend/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include "core/alloc.h"
#include "core/crc32.h"

#define N_STRS 12
#define N_INTS 7
#define STR_NULL 0xFFFFu
#define VERSION 1

static void put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_i64(uint8_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(u >> (8 * i));
    }
}

static uint32_t get_u16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int64_t get_i64(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) {
        u |= (uint64_t)p[i] << (8 * i);
    }
    return (int64_t)u;
}

/* The record's strings in frame order. */
static void strs_of(const struct lx_spend_record *r, const char *s[N_STRS])
{
    s[0] = r->request_id;
    s[1] = r->call_type;
    s[2] = r->api_key;
    s[3] = r->key_alias;
    s[4] = r->user_id;
    s[5] = r->team_id;
    s[6] = r->end_user;
    s[7] = r->model;
    s[8] = r->model_group;
    s[9] = r->model_id;
    s[10] = r->custom_llm_provider;
    s[11] = r->api_base;
}

int lx_journal_encode(const struct lx_spend_record *r, struct lx_buf *out)
{
    if (!r->request_id || !r->call_type) {
        return LX_EINVAL;
    }
    const char *s[N_STRS];
    size_t sl[N_STRS];
    strs_of(r, s);
    size_t payload = 1 + N_INTS * 8 + 2;
    for (int i = 0; i < N_STRS; i++) {
        sl[i] = s[i] ? LX_MIN(strlen(s[i]), (size_t)LX_JOURNAL_MAX_STR) : 0;
        payload += 2 + sl[i];
    }
    size_t start = out->len;
    int rc = lx_buf_reserve(out, LX_JOURNAL_HEADER + payload);
    if (rc) {
        return rc;
    }
    uint8_t *f = (uint8_t *)out->data + start;
    uint8_t *p = f + LX_JOURNAL_HEADER;
    *p++ = VERSION;
    for (int i = 0; i < N_STRS; i++) {
        put_u16(p, s[i] ? (uint32_t)sl[i] : STR_NULL);
        p += 2;
        if (sl[i]) {
            memcpy(p, s[i], sl[i]);
            p += sl[i];
        }
    }
    const int64_t ints[N_INTS] = {r->prompt_tokens,     r->completion_tokens, r->total_tokens,
                                  r->cache_read_tokens, r->spend_nanos,       r->start_time_ms,
                                  r->end_time_ms};
    for (int i = 0; i < N_INTS; i++) {
        put_i64(p, ints[i]);
        p += 8;
    }
    *p++ = r->cache_hit ? 1 : 0;
    *p++ = r->is_failure ? 1 : 0;
    put_u32(f, LX_JOURNAL_MAGIC);
    put_u32(f + 4, (uint32_t)payload);
    put_u32(f + 8, lx_crc32(0, f + LX_JOURNAL_HEADER, payload));
    out->len = start + LX_JOURNAL_HEADER + payload;
    out->data[out->len] = '\0';
    return 0;
}

int lx_journal_decode(const void *data, size_t n, struct lx_spend_record *out, struct lx_arena *a,
                      size_t *out_len)
{
    const uint8_t *f = data;
    *out_len = LX_JOURNAL_HEADER;
    if (n < 4) {
        /* A cut header is incomplete only if what is there matches the magic. */
        uint8_t m[4];
        put_u32(m, LX_JOURNAL_MAGIC);
        return memcmp(f, m, n) == 0 ? LX_EAGAIN : LX_EINVAL;
    }
    if (get_u32(f) != LX_JOURNAL_MAGIC) {
        return LX_EINVAL;
    }
    if (n < LX_JOURNAL_HEADER) {
        return LX_EAGAIN;
    }
    uint32_t len = get_u32(f + 4);
    if (len > LX_JOURNAL_MAX_PAYLOAD || len < 1 + N_STRS * 2 + N_INTS * 8 + 2) {
        return LX_EINVAL;
    }
    *out_len = LX_JOURNAL_HEADER + len;
    if (n - LX_JOURNAL_HEADER < len) {
        return LX_EAGAIN;
    }
    const uint8_t *p = f + LX_JOURNAL_HEADER;
    const uint8_t *end = p + len;
    if (lx_crc32(0, p, len) != get_u32(f + 8) || *p++ != VERSION) {
        return LX_EINVAL;
    }
    const char *s[N_STRS];
    for (int i = 0; i < N_STRS; i++) {
        if (end - p < 2) {
            return LX_EINVAL;
        }
        uint32_t sl = get_u16(p);
        p += 2;
        if (sl == STR_NULL) {
            s[i] = NULL;
            continue;
        }
        if (sl > LX_JOURNAL_MAX_STR || (size_t)(end - p) < sl || memchr(p, '\0', sl)) {
            return LX_EINVAL;
        }
        s[i] = lx_arena_strndup(a, (const char *)p, sl);
        p += sl;
    }
    if ((size_t)(end - p) != N_INTS * 8 + 2 || !s[0] || !s[1] || p[N_INTS * 8] > 1 ||
        p[N_INTS * 8 + 1] > 1) {
        return LX_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    out->request_id = s[0];
    out->call_type = s[1];
    out->api_key = s[2];
    out->key_alias = s[3];
    out->user_id = s[4];
    out->team_id = s[5];
    out->end_user = s[6];
    out->model = s[7];
    out->model_group = s[8];
    out->model_id = s[9];
    out->custom_llm_provider = s[10];
    out->api_base = s[11];
    out->prompt_tokens = get_i64(p);
    out->completion_tokens = get_i64(p + 8);
    out->total_tokens = get_i64(p + 16);
    out->cache_read_tokens = get_i64(p + 24);
    out->spend_nanos = get_i64(p + 32);
    out->start_time_ms = get_i64(p + 40);
    out->end_time_ms = get_i64(p + 48);
    out->cache_hit = p[56] == 1;
    out->is_failure = p[57] == 1;
    return 0;
}

size_t lx_journal_resync(const void *data, size_t n)
{
    const uint8_t *b = data;
    uint8_t m[4];
    put_u32(m, LX_JOURNAL_MAGIC);
    for (size_t i = 1; i < n; i++) {
        if (b[i] == m[0] && memcmp(b + i, m, LX_MIN(n - i, (size_t)4)) == 0) {
            return i;
        }
    }
    return n;
}

/* ---- segment files ---- */

int lx_journal_mkdir(const char *dir, struct lx_error *err)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(path)) {
        return lx_error_set(err, LX_EINVAL, "spend journal directory name is empty or too long");
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            char c = path[i];
            path[i] = '\0';
            if (mkdir(path, 0700) != 0 && errno != EEXIST) {
                return lx_error_set(err, LX_EIO, "cannot create spend journal directory %s: %s",
                                    path, strerror(errno));
            }
            path[i] = c;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return lx_error_set(err, LX_EIO, "spend journal path %s is not a directory", dir);
    }
    return 0;
}

int lx_journal_segment_create(const char *dir, const char *name, char **out_path,
                              struct lx_error *err)
{
    char tmp[4200];
    char final[4200];
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
    snprintf(final, sizeof(final), "%s/%s.lxj", dir, name);
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        return lx_error_set(err, LX_EIO, "cannot create spend journal segment %s: %s", tmp,
                            strerror(errno));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || rename(tmp, final) != 0) {
        /* Another process removed our fresh .tmp file as a leftover: the caller retries. */
        int e = errno;
        close(fd);
        unlink(tmp);
        return lx_error_set(err, LX_EIO, "cannot set up spend journal segment %s: %s", final,
                            strerror(e));
    }
    *out_path = lx_strdup(final);
    return fd;
}

int lx_journal_segment_adopt(const char *path)
{
    int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? LX_ENOTFOUND : LX_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        return e == EWOULDBLOCK ? LX_EAGAIN : LX_EIO;
    }
    /* Whoever held it before may have finished it and removed it meanwhile. */
    struct stat a, b;
    if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
        close(fd);
        return LX_ENOTFOUND;
    }
    return fd;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int lx_journal_list(const char *dir, lx_journal_each_cb fn, void *ud)
{
    DIR *d = opendir(dir);
    if (!d) {
        return LX_EIO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (has_suffix(e->d_name, ".tmp")) {
            char path[4200];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            int fd = lx_journal_segment_adopt(path);
            if (fd >= 0) {
                unlink(path);
                close(fd);
            }
            continue;
        }
        if (!has_suffix(e->d_name, ".lxj")) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = lx_realloc(names, cap * sizeof(*names));
        }
        names[n++] = lx_strdup(e->d_name);
    }
    closedir(d);
    if (n) {
        qsort(names, n, sizeof(*names), cmp_names);
    }
    for (size_t i = 0; i < n; i++) {
        fn(ud, names[i]);
        lx_free(names[i]);
    }
    lx_free(names);
    return 0;
}
