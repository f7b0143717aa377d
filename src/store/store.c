/*
 * The store: a job queue served by one thread that owns the database
 * connection, and ports that bring completions back to loop threads.
 *
 * Threads. lx_store_exec (a loop thread) copies a batch into one job and
 * appends it to the queue under s->lock; the store thread pops jobs in order,
 * runs them through the engine (store/sqlite.c, store/postgres.c) and hands
 * each finished job to its port's completion list, waking the port's loop
 * with uv_async_send. The port's async callback runs the user callbacks on
 * the loop thread. lx_store_exec_sync queues the same kind of job and waits
 * on a condition variable.
 *
 * Invariants (all under s->lock): a job is in exactly one place: the queue,
 * s->running, or its port's completion list; a port never receives a job
 * after it started closing; uv_async_send is only called for ports that are
 * not closing. A job whose port closed while it ran is marked canceled and
 * dropped by the store thread (its callback already ran with LX_ECANCELED).
 *
 * Outage. When the engine reports a dead connection, the store goes down
 * (lx_store_is_up false): queued jobs fail with LX_EUNAVAIL, new ones are
 * refused at once, and the thread reconnects with a backoff that doubles
 * from 50 ms up to 2 s. See docs/internals/store.md.
 */
#include "store/store.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/time.h"
#include "log/log.h"
#include "store/store_int.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

struct lx_store_port {
    struct lx_store *s;
    uv_loop_t *loop;
    uv_async_t async;
    struct lx_store__job *done_head, *done_tail; /* under s->lock */
    bool closing;                                /* under s->lock once set */
    size_t pending; /* batches queued and not yet delivered (loop thread) */
};

/* ---- results ---- */

void lx_store__rb_init(struct lx_store__rb *rb)
{
    memset(rb, 0, sizeof(*rb));
    lx_buf_init(&rb->text, LX_STORE_MAX_RESULT_BYTES);
}

void lx_store__rb_fini(struct lx_store__rb *rb)
{
    lx_buf_fini(&rb->text);
    LX_FREE(rb->offs);
    rb->n_offs = rb->cap_offs = rb->n_cols = 0;
}

static int rb_push(struct lx_store__rb *rb, const char *p, size_t n)
{
    if (rb->n_offs == rb->cap_offs) {
        size_t cap = rb->cap_offs ? rb->cap_offs * 2 : 16;
        if (cap > LX_STORE_MAX_RESULT_BYTES / sizeof(size_t)) {
            return LX_ETOOBIG;
        }
        size_t *o = lx_try_realloc(rb->offs, cap * sizeof(size_t));
        if (!o) {
            return LX_ENOMEM;
        }
        rb->offs = o;
        rb->cap_offs = cap;
    }
    if (!p) {
        rb->offs[rb->n_offs++] = SIZE_MAX;
        return 0;
    }
    size_t at = rb->text.len;
    int rc = lx_buf_append(&rb->text, p, n);
    if (rc == 0) {
        rc = lx_buf_append(&rb->text, "", 1);
    }
    if (rc) {
        lx_buf_truncate(&rb->text, at);
        return rc;
    }
    rb->offs[rb->n_offs++] = at;
    return 0;
}

int lx_store__rb_col(struct lx_store__rb *rb, const char *name)
{
    LX_ASSERT(rb->n_offs == rb->n_cols);
    int rc = rb_push(rb, name ? name : "", name ? strlen(name) : 0);
    if (rc == 0) {
        rb->n_cols++;
    }
    return rc;
}

int lx_store__rb_cell(struct lx_store__rb *rb, const char *p, size_t n)
{
    return rb_push(rb, p, n);
}

int lx_store__rb_finish(struct lx_store__rb *rb, int64_t changes, struct lx_store_result **out)
{
    size_t n_cells = rb->n_offs - rb->n_cols;
    size_t n_rows = rb->n_cols ? n_cells / rb->n_cols : 0;
    size_t ptrs = rb->n_offs * sizeof(char *);
    size_t total = sizeof(struct lx_store_result) + ptrs + rb->text.len + 1;
    struct lx_store_result *r = lx_try_malloc(total);
    if (!r) {
        lx_store__rb_fini(rb);
        return LX_ENOMEM;
    }
    char **p = (char **)(void *)(r + 1);
    char *text = (char *)(p + rb->n_offs);
    if (rb->text.len) {
        memcpy(text, rb->text.data, rb->text.len);
    }
    text[rb->text.len] = '\0';
    for (size_t i = 0; i < rb->n_offs; i++) {
        p[i] = rb->offs[i] == SIZE_MAX ? NULL : text + rb->offs[i];
    }
    r->n_rows = n_rows;
    r->n_cols = rb->n_cols;
    r->cols = p;
    r->cells = p + rb->n_cols;
    r->changes = changes;
    lx_store__rb_fini(rb);
    *out = r;
    return 0;
}

void lx_store_result_free(struct lx_store_result *r)
{
    lx_free(r);
}

const char *lx_store_cell(const struct lx_store_result *r, size_t row, const char *col)
{
    if (!r || row >= r->n_rows || !col) {
        return NULL;
    }
    for (size_t c = 0; c < r->n_cols; c++) {
        if (strcmp(r->cols[c], col) == 0) {
            return r->cells[row * r->n_cols + c];
        }
    }
    return NULL;
}

int64_t lx_store_cell_int(const struct lx_store_result *r, size_t row, const char *col,
                          int64_t dflt)
{
    const char *v = lx_store_cell(r, row, col);
    if (!v || !*v) {
        return dflt;
    }
    const char *p = v;
    bool neg = false;
    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    if (!*p) {
        return dflt;
    }
    uint64_t acc = 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            return dflt;
        }
        unsigned d = (unsigned)(*p - '0');
        if (acc > (limit - d) / 10) {
            return dflt;
        }
        acc = acc * 10 + d;
    }
    if (neg) {
        return acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
    }
    return (int64_t)acc;
}

/* ---- SQL ---- */

void lx_store__rewrite_placeholders(char *sql)
{
    char *p = sql;
    while (*p) {
        char c = *p;
        if (c == '\'' || c == '"') {
            /* A quoted string or identifier; a doubled quote is an escaped one. */
            p++;
            while (*p && *p != c) {
                p++;
            }
            if (*p) {
                p++;
            }
        } else if (c == '-' && p[1] == '-') {
            while (*p && *p != '\n') {
                p++;
            }
        } else if (c == '/' && p[1] == '*') {
            p += 2;
            while (*p && !(*p == '*' && p[1] == '/')) {
                p++;
            }
            if (*p) {
                p += 2;
            }
        } else if (c == '$' && p[1] >= '0' && p[1] <= '9') {
            *p++ = '?';
        } else {
            p++;
        }
    }
}

/* ---- jobs ---- */

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* One allocation holding the job and copies of the statements and parameters. */
static struct lx_store__job *job_new(const struct lx_store_stmt *stmts, size_t n)
{
    size_t n_params = 0, text = 0;
    for (size_t i = 0; i < n; i++) {
        if (stmts[i].n_params > 65535) {
            return NULL;
        }
        n_params += stmts[i].n_params;
        for (size_t k = 0; k < stmts[i].n_params; k++) {
            const struct lx_store_param *pa = &stmts[i].params[k];
            if (pa->type == LX_SP_TEXT && pa->s) {
                size_t l = strlen(pa->s);
                if (l > LX_STORE_MAX_RESULT_BYTES) {
                    return NULL;
                }
                text += l + 1;
            }
        }
    }
    size_t off_stmts = align8(sizeof(struct lx_store__job));
    size_t off_params = off_stmts + align8(n * sizeof(struct lx_store_stmt));
    size_t off_text = off_params + align8(n_params * sizeof(struct lx_store_param));
    char *mem = lx_try_malloc(off_text + text);
    if (!mem) {
        return NULL;
    }
    struct lx_store__job *j = (struct lx_store__job *)(void *)mem;
    memset(j, 0, sizeof(*j));
    j->stmts = (struct lx_store_stmt *)(void *)(mem + off_stmts);
    j->n = n;
    struct lx_store_param *pp = (struct lx_store_param *)(void *)(mem + off_params);
    char *tp = mem + off_text;
    for (size_t i = 0; i < n; i++) {
        j->stmts[i].sql = stmts[i].sql;
        j->stmts[i].params = pp;
        j->stmts[i].n_params = stmts[i].n_params;
        for (size_t k = 0; k < stmts[i].n_params; k++) {
            const struct lx_store_param *pa = &stmts[i].params[k];
            *pp = *pa;
            if (pa->type == LX_SP_TEXT && pa->s) {
                size_t l = strlen(pa->s);
                memcpy(tp, pa->s, l + 1);
                pp->s = tp;
                tp += l + 1;
            } else if (pa->type == LX_SP_TEXT) {
                pp->type = LX_SP_NULL;
            }
            pp++;
        }
    }
    return j;
}

static void job_free(struct lx_store__job *j)
{
    if (j->res) {
        lx_store_result_free(j->res);
    }
    lx_free(j);
}

static int check_batch(const struct lx_store_stmt *stmts, size_t n)
{
    if (!stmts || n == 0) {
        return LX_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!stmts[i].sql || (stmts[i].n_params && !stmts[i].params)) {
            return LX_EINVAL;
        }
    }
    return 0;
}

/* A finished job goes to its waiter. Under s->lock. */
static void complete(struct lx_store *s, struct lx_store__job *j)
{
    if (j->canceled) {
        job_free(j);
        return;
    }
    if (!j->port) {
        j->done = true;
        uv_cond_broadcast(&s->sync_cv);
        return;
    }
    struct lx_store_port *p = j->port;
    j->next = NULL;
    if (p->done_tail) {
        p->done_tail->next = j;
    } else {
        p->done_head = j;
    }
    p->done_tail = j;
    uv_async_send(&p->async);
}

static void enqueue(struct lx_store *s, struct lx_store__job *j)
{
    j->next = NULL;
    if (s->tail) {
        s->tail->next = j;
    } else {
        s->head = j;
    }
    s->tail = j;
    s->queued++;
    uv_cond_signal(&s->wake);
}

static struct lx_store__job *dequeue(struct lx_store *s)
{
    struct lx_store__job *j = s->head;
    if (j) {
        s->head = j->next;
        if (!s->head) {
            s->tail = NULL;
        }
        j->next = NULL;
        s->queued--;
    }
    return j;
}

/* Fail every queued job (the database is down, or the store is closing). Under s->lock. */
static void fail_queue(struct lx_store *s, int rc, const char *msg)
{
    struct lx_store__job *j;
    while ((j = dequeue(s)) != NULL) {
        j->rc = rc;
        lx_error_set(&j->err, rc, "%s", msg);
        complete(s, j);
    }
}

static void go_down(struct lx_store *s, const struct lx_error *why)
{
    if (atomic_exchange(&s->up, false)) {
        LX_WARN("store: %s is unreachable (%s); reconnecting", s->url.redacted, why->msg);
    }
    s->backoff_ms = 0;
    s->retry_at_ms = lx_mono_ms();
}

/* ---- the store thread ---- */

static void store_thread(void *arg)
{
    struct lx_store *s = arg;
    uv_mutex_lock(&s->lock);
    for (;;) {
        if (!atomic_load(&s->up)) {
            fail_queue(s, LX_EUNAVAIL, "the database is unreachable");
            if (s->stopping) {
                break;
            }
            uint64_t now = lx_mono_ms();
            if (now >= s->retry_at_ms) {
                struct lx_error err = {0};
                uv_mutex_unlock(&s->lock);
                s->eng->disconnect(s);
                int rc = s->eng->connect(s, &err);
                uv_mutex_lock(&s->lock);
                if (rc == 0) {
                    s->backoff_ms = 0;
                    atomic_store(&s->up, true);
                    LX_INFO("store: reconnected to %s", s->url.redacted);
                } else {
                    s->backoff_ms =
                        s->backoff_ms ? LX_MIN(s->backoff_ms * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
                    s->retry_at_ms = lx_mono_ms() + s->backoff_ms;
                    LX_DEBUG("store: reconnect failed (%s); next try in %" PRIu64 " ms", err.msg,
                             s->backoff_ms);
                }
                continue;
            }
            uv_cond_timedwait(&s->wake, &s->lock, (s->retry_at_ms - now) * 1000000u);
            continue;
        }
        struct lx_store__job *j = dequeue(s);
        if (!j) {
            if (s->stopping) {
                break;
            }
            uv_cond_wait(&s->wake, &s->lock);
            continue;
        }
        s->running = j;
        uv_mutex_unlock(&s->lock);
        j->rc = s->eng->run(s, j->stmts, j->n, &j->res, &j->err);
        bool alive = s->eng->alive(s);
        uv_mutex_lock(&s->lock);
        s->running = NULL;
        if (!alive) {
            if (j->rc == 0 || j->rc == LX_EINVAL) {
                /* The connection died on the way: the outcome is unknown to the caller. */
                j->rc = LX_EUNAVAIL;
            }
            if (j->res) {
                lx_store_result_free(j->res);
                j->res = NULL;
            }
            go_down(s, &j->err);
        }
        complete(s, j);
    }
    uv_mutex_unlock(&s->lock);
}

/* ---- migrations ---- */

int lx_store__latest_version(void)
{
    return lx_store_n_migrations ? lx_store_migrations[lx_store_n_migrations - 1].version : 0;
}

/* The applied version; a database without the migrations table is at 0. */
static int read_version(struct lx_store *s, int *out, struct lx_error *err)
{
    static const struct lx_store_stmt st = {"SELECT MAX(version) AS v FROM lx_schema_migrations",
                                            NULL, 0};
    struct lx_store_result *r = NULL;
    struct lx_error e = {0};
    int rc = s->eng->run(s, &st, 1, &r, &e);
    if (rc == LX_ENOTFOUND) {
        *out = 0;
        return 0;
    }
    if (rc) {
        return lx_error_set(err, rc, "%s", e.msg);
    }
    *out = (int)lx_store_cell_int(r, 0, "v", 0);
    lx_store_result_free(r);
    return 0;
}

static int apply_one(struct lx_store *s, const struct lx_store_migration *m, struct lx_error *err)
{
    int rc = s->eng->script(s, s->eng->begin_sql, err);
    if (rc) {
        return rc;
    }
    int v = 0;
    rc = read_version(s, &v, err);
    if (rc == 0 && v >= m->version) {
        /* Another instance applied it while this one waited for the lock. */
        return s->eng->script(s, "COMMIT", err);
    }
    if (rc == 0) {
        rc = s->eng->script(s, m->sql, err);
    }
    if (rc == 0) {
        struct lx_store_param ps[] = {LX_SP_I(m->version), LX_SP_T(m->name), LX_SP_I(lx_wall_s())};
        struct lx_store_stmt st = {
            "INSERT INTO lx_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", ps,
            3};
        rc = s->eng->run(s, &st, 1, NULL, err);
    }
    if (rc == 0) {
        rc = s->eng->script(s, "COMMIT", err);
    }
    if (rc) {
        struct lx_error ignored = {0};
        (void)s->eng->script(s, "ROLLBACK", &ignored);
        return lx_error_set(err, rc, "migration %d (%s): %s", m->version, m->name, err->msg);
    }
    LX_INFO("store: applied migration %d (%s)", m->version, m->name);
    return 0;
}

static int migrate(struct lx_store *s, struct lx_error *err)
{
    int v = 0;
    int rc = read_version(s, &v, err);
    if (rc) {
        return rc;
    }
    int latest = lx_store__latest_version();
    if (v >= latest) {
        /* Up to date: that one query is the whole cost. */
        s->schema_version = v;
        if (v > latest) {
            LX_WARN("store: the database is at schema version %d, newer than this build's %d", v,
                    latest);
        }
        return 0;
    }
    if (s->eng->lock) {
        rc = s->eng->lock(s, true, err);
        if (rc) {
            return rc;
        }
    }
    rc = s->eng->script(s,
                        "CREATE TABLE IF NOT EXISTS lx_schema_migrations ("
                        " version BIGINT PRIMARY KEY,"
                        " name TEXT NOT NULL,"
                        " applied_at BIGINT NOT NULL)",
                        err);
    for (size_t i = 0; rc == 0 && i < lx_store_n_migrations; i++) {
        if (lx_store_migrations[i].version > v) {
            rc = apply_one(s, &lx_store_migrations[i], err);
        }
    }
    if (s->eng->lock) {
        struct lx_error e2 = {0};
        int rc2 = s->eng->lock(s, false, &e2);
        if (rc == 0 && rc2) {
            rc = lx_error_set(err, rc2, "%s", e2.msg);
        }
    }
    if (rc == 0) {
        s->schema_version = latest;
    }
    return rc;
}

/* ---- open and close ---- */

struct lx_store *lx_store_open(const char *url, struct lx_error *err)
{
    uint64_t t0 = lx_mono_ns();
    struct lx_store *s = LX_NEW(struct lx_store);
    int rc = lx_store__url_parse(url, &s->url, err);
    if (rc) {
        lx_free(s);
        return NULL;
    }
    s->kind = s->url.kind;
    s->eng = s->kind == LX_STORE_SQLITE ? &lx_store__sqlite : &lx_store__postgres;
    uv_mutex_init(&s->lock);
    uv_cond_init(&s->wake);
    uv_cond_init(&s->sync_cv);
    struct lx_error e = {0};
    rc = s->eng->connect(s, &e);
    if (rc == 0) {
        rc = migrate(s, &e);
    }
    if (rc == 0) {
        atomic_store(&s->up, true);
        if (uv_thread_create(&s->thread, store_thread, s) != 0) {
            rc = lx_error_set(&e, LX_EINTERNAL, "cannot start the store thread");
        } else {
            s->thread_started = true;
        }
    }
    if (rc) {
        lx_error_set(err, rc, "cannot open the database %s: %s", s->url.redacted, e.msg);
        s->eng->disconnect(s);
        uv_cond_destroy(&s->sync_cv);
        uv_cond_destroy(&s->wake);
        uv_mutex_destroy(&s->lock);
        lx_store__url_fini(&s->url);
        lx_free(s);
        return NULL;
    }
    LX_INFO("store: %s (%s), schema version %d, opened in %.1f ms", s->url.redacted, s->eng->name,
            s->schema_version, (double)(lx_mono_ns() - t0) / 1e6);
    return s;
}

void lx_store_close(struct lx_store *s)
{
    if (!s) {
        return;
    }
    uv_mutex_lock(&s->lock);
    LX_ASSERT(s->n_ports == 0);
    s->stopping = true;
    uv_cond_signal(&s->wake);
    uv_mutex_unlock(&s->lock);
    if (s->thread_started) {
        uv_thread_join(&s->thread);
    }
    s->eng->disconnect(s);
    uv_cond_destroy(&s->sync_cv);
    uv_cond_destroy(&s->wake);
    uv_mutex_destroy(&s->lock);
    lx_store__url_fini(&s->url);
    lx_free(s);
}

enum lx_store_kind lx_store_kind(const struct lx_store *s)
{
    return s->kind;
}

bool lx_store_is_up(const struct lx_store *s)
{
    return atomic_load(&((struct lx_store *)s)->up);
}

const char *lx_store_url_redacted(const struct lx_store *s)
{
    return s->url.redacted;
}

int lx_store_schema_version(const struct lx_store *s)
{
    return s->schema_version;
}

/* ---- ports ---- */

static void deliver(struct lx_store__job *list, bool cancel)
{
    while (list) {
        struct lx_store__job *j = list;
        list = j->next;
        if (cancel && j->rc != LX_ECANCELED) {
            j->rc = LX_ECANCELED;
            lx_error_set(&j->err, LX_ECANCELED, "the store port closed");
        }
        if (j->rc == 0) {
            j->cb(j->ud, 0, j->res, NULL);
        } else {
            j->cb(j->ud, j->rc, NULL, &j->err);
        }
        job_free(j);
    }
}

static void on_port_async(uv_async_t *a)
{
    struct lx_store_port *p = a->data;
    uv_mutex_lock(&p->s->lock);
    struct lx_store__job *list = p->done_head;
    p->done_head = p->done_tail = NULL;
    uv_mutex_unlock(&p->s->lock);
    for (struct lx_store__job *j = list; j; j = j->next) {
        /* The loop may end once nothing is pending (the handle is unref'd then). */
        if (--p->pending == 0) {
            uv_unref((uv_handle_t *)&p->async);
        }
    }
    deliver(list, false);
}

struct lx_store_port *lx_store_port_new(struct lx_store *s, uv_loop_t *loop)
{
    struct lx_store_port *p = LX_NEW(struct lx_store_port);
    p->s = s;
    p->loop = loop;
    uv_async_init(loop, &p->async, on_port_async);
    p->async.data = p;
    /* A port keeps its loop alive only while it has batches pending. */
    uv_unref((uv_handle_t *)&p->async);
    uv_mutex_lock(&s->lock);
    s->n_ports++;
    uv_mutex_unlock(&s->lock);
    return p;
}

static void on_port_closed(uv_handle_t *h)
{
    lx_free(h->data);
}

void lx_store_port_close(struct lx_store_port *p)
{
    if (!p) {
        return;
    }
    struct lx_store *s = p->s;
    struct lx_store__job *head = NULL, **tail = &head;
    uv_mutex_lock(&s->lock);
    p->closing = true;
    /* Finished but not yet delivered, oldest first. */
    *tail = p->done_head;
    while (*tail) {
        tail = &(*tail)->next;
    }
    p->done_head = p->done_tail = NULL;
    /* The running one finishes on the store thread, which drops it; its callback runs now. */
    if (s->running && s->running->port == p) {
        struct lx_store__job *stub = LX_NEW(struct lx_store__job);
        stub->cb = s->running->cb;
        stub->ud = s->running->ud;
        s->running->canceled = true;
        *tail = stub;
        tail = &stub->next;
    }
    /* Queued ones leave the queue. */
    struct lx_store__job **q = &s->head;
    s->tail = NULL;
    while (*q) {
        struct lx_store__job *j = *q;
        if (j->port == p) {
            *q = j->next;
            j->next = NULL;
            s->queued--;
            *tail = j;
            tail = &j->next;
        } else {
            s->tail = j;
            q = &j->next;
        }
    }
    s->n_ports--;
    uv_mutex_unlock(&s->lock);
    p->pending = 0;
    deliver(head, true);
    uv_close((uv_handle_t *)&p->async, on_port_closed);
}

/* ---- exec ---- */

int lx_store_exec(struct lx_store_port *p, const struct lx_store_stmt *stmts, size_t n,
                  lx_store_cb cb, void *ud)
{
    struct lx_store *s = p->s;
    if (check_batch(stmts, n) || !cb) {
        return LX_EINVAL;
    }
    if (p->closing) {
        return LX_ECANCELED;
    }
    if (!atomic_load(&s->up)) {
        return LX_EUNAVAIL;
    }
    struct lx_store__job *j = job_new(stmts, n);
    if (!j) {
        return LX_ENOMEM;
    }
    j->port = p;
    j->cb = cb;
    j->ud = ud;
    int rc;
    uv_mutex_lock(&s->lock);
    if (s->stopping || s->queued >= LX_STORE_MAX_QUEUED) {
        /* A database too slow for the load: refuse rather than queue without bound. */
        rc = s->stopping ? LX_ECANCELED : LX_EUNAVAIL;
        uv_mutex_unlock(&s->lock);
        job_free(j);
        return rc;
    }
    enqueue(s, j);
    uv_mutex_unlock(&s->lock);
    if (p->pending++ == 0) {
        uv_ref((uv_handle_t *)&p->async);
    }
    return 0;
}

int lx_store_exec_sync(struct lx_store *s, const struct lx_store_stmt *stmts, size_t n,
                       struct lx_store_result **out_res, struct lx_error *err)
{
    if (out_res) {
        *out_res = NULL;
    }
    if (check_batch(stmts, n)) {
        return lx_error_set(err, LX_EINVAL, "empty or malformed batch");
    }
    if (!atomic_load(&s->up)) {
        return lx_error_set(err, LX_EUNAVAIL, "the database is unreachable");
    }
    struct lx_store__job *j = job_new(stmts, n);
    if (!j) {
        return lx_error_set(err, LX_ENOMEM, "out of memory");
    }
    uv_mutex_lock(&s->lock);
    if (s->stopping || s->queued >= LX_STORE_MAX_QUEUED) {
        bool stopping = s->stopping;
        uv_mutex_unlock(&s->lock);
        job_free(j);
        return stopping ? lx_error_set(err, LX_ECANCELED, "the store is closing")
                        : lx_error_set(err, LX_EUNAVAIL, "the database is overloaded");
    }
    enqueue(s, j);
    while (!j->done) {
        uv_cond_wait(&s->sync_cv, &s->lock);
    }
    uv_mutex_unlock(&s->lock);
    int rc = j->rc;
    if (rc) {
        lx_error_set(err, rc, "%s", j->err.msg);
    } else if (out_res) {
        *out_res = j->res;
        j->res = NULL;
    }
    job_free(j);
    return rc;
}
