/*
 * SSE parser and encoder; see sse.h for the contract.
 *
 * Invariants of the parser between feeds: no slice borrows from a previous
 * feed (data_state is never DATA_BORROWED and name_borrowed is false), and
 * `line` holds the bytes of the current unterminated line. Within one feed a
 * line that lies wholly in the caller's buffer is parsed in place; its field
 * values may be borrowed until the end of the feed, when whatever is still
 * borrowed is copied ("spilled") into the parser's buffers.
 *
 * Line ends are found with two cached memchr results (next LF, next CR), each
 * recomputed only once the scan has passed it, so a feed is scanned at most
 * twice whatever its mix of CR and LF.
 */
#include "http/sse.h"

#include <string.h>

#include "core/assert.h"
#include "core/error.h"

enum {
    DATA_NONE,     /* no data line since the last dispatch */
    DATA_BORROWED, /* exactly one data line, borrowed: data_ref */
    DATA_OWNED,    /* joined data in p->data */
};

#define BOM_DECIDED 3

static const unsigned char utf8_bom[3] = {0xEF, 0xBB, 0xBF};

/* Finds line breaks (CR or LF) in one buffer in linear total time. */
struct eol_finder {
    const char *lf; /* next LF at or after the last query, end if none, NULL before the first */
    const char *cr;
};

static const char *next_break(struct eol_finder *f, const char *s, const char *end)
{
    if (!f->lf || f->lf < s) {
        f->lf = memchr(s, '\n', (size_t)(end - s));
        if (!f->lf) {
            f->lf = end;
        }
    }
    if (!f->cr || f->cr < s) {
        f->cr = memchr(s, '\r', (size_t)(end - s));
        if (!f->cr) {
            f->cr = end;
        }
    }
    return f->lf < f->cr ? f->lf : f->cr;
}

void lx_sse_init(struct lx_sse_parser *p, size_t max_event_bytes)
{
    memset(p, 0, sizeof(*p));
    p->max_event_bytes = max_event_bytes;
    lx_buf_init(&p->line, max_event_bytes);
    lx_buf_init(&p->data, max_event_bytes);
    lx_buf_init(&p->name, max_event_bytes);
    lx_buf_init(&p->id, max_event_bytes);
}

void lx_sse_fini(struct lx_sse_parser *p)
{
    lx_buf_fini(&p->line);
    lx_buf_fini(&p->data);
    lx_buf_fini(&p->name);
    lx_buf_fini(&p->id);
}

static void clear_event(struct lx_sse_parser *p)
{
    p->data_state = DATA_NONE;
    p->data_ref = LX_STR_NULL;
    lx_buf_reset(&p->data);
    p->name_borrowed = false;
    p->name_ref = LX_STR_NULL;
    lx_buf_reset(&p->name);
}

static int dispatch(struct lx_sse_parser *p, lx_sse_event_cb cb, void *ud)
{
    /* Spec: "If the data buffer is an empty string, set the data buffer and
     * the event type buffer to the empty string and return." */
    if (p->data_state == DATA_NONE) {
        clear_event(p);
        return 0;
    }
    struct lx_sse_event ev = {
        .name = p->name_borrowed ? p->name_ref : lx_buf_str(&p->name),
        .data = p->data_state == DATA_BORROWED ? p->data_ref : lx_buf_str(&p->data),
        .id = lx_buf_str(&p->id),
    };
    int rc = cb(ud, &ev);
    clear_event(p);
    return rc;
}

static int add_data(struct lx_sse_parser *p, struct lx_str v, bool can_borrow)
{
    int rc = 0;
    switch (p->data_state) {
    case DATA_NONE:
        if (can_borrow) {
            p->data_ref = v;
            p->data_state = DATA_BORROWED;
            return 0;
        }
        rc = lx_buf_append_str(&p->data, v);
        break;
    case DATA_BORROWED:
        rc = lx_buf_append_str(&p->data, p->data_ref);
        p->data_ref = LX_STR_NULL;
        if (rc == 0) {
            rc = lx_buf_append(&p->data, "\n", 1);
        }
        if (rc == 0) {
            rc = lx_buf_append_str(&p->data, v);
        }
        break;
    default:
        rc = lx_buf_append(&p->data, "\n", 1);
        if (rc == 0) {
            rc = lx_buf_append_str(&p->data, v);
        }
        break;
    }
    p->data_state = DATA_OWNED;
    return rc;
}

static int set_name(struct lx_sse_parser *p, struct lx_str v, bool can_borrow)
{
    lx_buf_reset(&p->name);
    if (can_borrow) {
        p->name_ref = v;
        p->name_borrowed = true;
        return 0;
    }
    p->name_borrowed = false;
    p->name_ref = LX_STR_NULL;
    return lx_buf_append_str(&p->name, v);
}

/*
 * One complete line, terminator excluded. can_borrow: the line lies in the
 * caller's buffer, so values may be kept as slices until the feed ends.
 */
static int process_line(struct lx_sse_parser *p, struct lx_str line, bool can_borrow,
                        lx_sse_event_cb cb, void *ud)
{
    if (line.n == 0) {
        return dispatch(p, cb, ud);
    }
    if (line.p[0] == ':') {
        return 0; /* comment (providers send ": keep-alive" / ": OPENROUTER PROCESSING") */
    }
    struct lx_str field = line;
    struct lx_str value = {line.p + line.n, 0};
    const char *colon = memchr(line.p, ':', line.n);
    if (colon) {
        field.n = (size_t)(colon - line.p);
        value = lx_str_sub(line, field.n + 1);
        if (value.n && value.p[0] == ' ') {
            value = lx_str_sub(value, 1);
        }
    }
    switch (field.n) {
    case 4:
        if (memcmp(field.p, "data", 4) == 0) {
            return add_data(p, value, can_borrow);
        }
        break;
    case 5:
        if (memcmp(field.p, "event", 5) == 0) {
            return set_name(p, value, can_borrow);
        }
        break; /* "retry" is ignored: we do not reconnect upstream streams */
    case 2:
        if (memcmp(field.p, "id", 2) == 0 && (value.n == 0 || !memchr(value.p, '\0', value.n))) {
            lx_buf_reset(&p->id);
            return lx_buf_append_str(&p->id, value);
        }
        break;
    default:
        break;
    }
    return 0;
}

/* Copy what is still borrowed from the feed that is about to end. */
static int spill(struct lx_sse_parser *p)
{
    if (p->data_state == DATA_BORROWED) {
        p->data_state = DATA_OWNED;
        int rc = lx_buf_append_str(&p->data, p->data_ref);
        p->data_ref = LX_STR_NULL;
        if (rc) {
            return rc;
        }
    }
    if (p->name_borrowed) {
        p->name_borrowed = false;
        int rc = lx_buf_append_str(&p->name, p->name_ref);
        p->name_ref = LX_STR_NULL;
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* Just past the line end at eol (CR, LF or CRLF); a CR last in the feed sets skip_lf. */
static const char *after_break(struct lx_sse_parser *p, const char *eol, const char *end)
{
    if (*eol == '\r') {
        if (eol + 1 == end) {
            p->skip_lf = true;
            return end;
        }
        if (eol[1] == '\n') {
            return eol + 2;
        }
    }
    return eol + 1;
}

/* Skip a UTF-8 BOM at the very start of the stream, possibly split across feeds. */
static int skip_bom(struct lx_sse_parser *p, const char **s, const char *end)
{
    while (*s < end && p->bom < BOM_DECIDED) {
        if ((unsigned char)**s != utf8_bom[p->bom]) {
            /* Not a BOM after all: the bytes matched so far start the first line. */
            size_t matched = p->bom;
            p->bom = BOM_DECIDED;
            return matched ? lx_buf_append(&p->line, utf8_bom, matched) : 0;
        }
        p->bom++;
        (*s)++;
    }
    return 0;
}

static int feed(struct lx_sse_parser *p, const char *s, const char *end, lx_sse_event_cb cb,
                void *ud)
{
    int rc;
    if (p->bom < BOM_DECIDED) {
        rc = skip_bom(p, &s, end);
        if (rc || s == end) {
            return rc;
        }
    }
    if (p->skip_lf && s < end) {
        p->skip_lf = false;
        if (*s == '\n') {
            s++;
        }
    }
    struct eol_finder f = {NULL, NULL};
    if (p->line.len > 0) {
        /* Finish the line carried over from earlier feeds. */
        const char *eol = next_break(&f, s, end);
        rc = lx_buf_append(&p->line, s, (size_t)(eol - s));
        if (rc || eol == end) {
            return rc;
        }
        rc = process_line(p, lx_buf_str(&p->line), false, cb, ud);
        lx_buf_reset(&p->line);
        if (rc) {
            return rc;
        }
        s = after_break(p, eol, end);
    }
    while (s < end) {
        const char *eol = next_break(&f, s, end);
        if (eol == end) {
            break;
        }
        struct lx_str line = {s, (size_t)(eol - s)};
        if (line.n > p->max_event_bytes) {
            return LX_ETOOBIG;
        }
        rc = process_line(p, line, true, cb, ud);
        if (rc) {
            return rc;
        }
        s = after_break(p, eol, end);
    }
    if (s < end) {
        rc = lx_buf_append(&p->line, s, (size_t)(end - s));
        if (rc) {
            return rc;
        }
    }
    return spill(p);
}

int lx_sse_feed(struct lx_sse_parser *p, const char *data, size_t n, lx_sse_event_cb cb, void *ud)
{
    if (p->err) {
        return p->err;
    }
    if (n == 0) {
        return 0;
    }
    int rc = feed(p, data, data + n, cb, ud);
    if (rc) {
        /* Stopped: drop slices into the caller's buffer so nothing dangles. */
        p->err = rc;
        clear_event(p);
    }
    return rc;
}

int lx_sse_finish(struct lx_sse_parser *p, bool *out_truncated)
{
    bool truncated = p->err != 0 || p->line.len > 0 || (p->bom > 0 && p->bom < BOM_DECIDED) ||
                     p->data_state != DATA_NONE || p->name.len > 0;
    if (out_truncated) {
        *out_truncated = truncated;
    }
    int rc = p->err;
    clear_event(p);
    lx_buf_reset(&p->line);
    lx_buf_reset(&p->id);
    p->err = 0;
    p->bom = 0;
    p->skip_lf = false;
    return rc;
}

int lx_sse_append_event(struct lx_buf *out, struct lx_str name, struct lx_str data)
{
    if (name.n && (memchr(name.p, '\n', name.n) || memchr(name.p, '\r', name.n))) {
        return LX_EINVAL;
    }
    if (!data.p) {
        data = LX_STR("");
    }
    /* Size the output exactly first, so one reserve covers it and a failure
     * leaves out untouched. */
    const char *s = data.p, *end = data.p + data.n;
    struct eol_finder f = {NULL, NULL};
    size_t lines = 1, break_bytes = 0;
    while (s < end) {
        const char *eol = next_break(&f, s, end);
        if (eol == end) {
            break;
        }
        const char *next = (*eol == '\r' && eol + 1 < end && eol[1] == '\n') ? eol + 2 : eol + 1;
        break_bytes += (size_t)(next - eol);
        lines++;
        s = next;
    }
    size_t need = (name.n ? sizeof("event: \n") - 1 + name.n : 0) +
                  lines * (sizeof("data: \n") - 1) + (data.n - break_bytes) + 1;
    int rc = lx_buf_reserve(out, need);
    if (rc) {
        return rc;
    }
    char *w = out->data + out->len;
    if (name.n) {
        memcpy(w, "event: ", 7);
        memcpy(w + 7, name.p, name.n);
        w[7 + name.n] = '\n';
        w += 8 + name.n;
    }
    s = data.p;
    f = (struct eol_finder){NULL, NULL};
    for (;;) {
        /* One line (the usual JSON chunk): no need to look for breaks again. */
        const char *eol = (s < end && lines > 1) ? next_break(&f, s, end) : end;
        memcpy(w, "data: ", 6);
        w += 6;
        if (eol > s) {
            memcpy(w, s, (size_t)(eol - s));
            w += eol - s;
        }
        *w++ = '\n';
        if (eol == end) {
            break;
        }
        s = (*eol == '\r' && eol + 1 < end && eol[1] == '\n') ? eol + 2 : eol + 1;
    }
    *w++ = '\n';
    LX_DASSERT(w == out->data + out->len + need);
    out->len += need;
    out->data[out->len] = '\0';
    return 0;
}
