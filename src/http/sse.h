/*
 * Server-sent events (text/event-stream): an incremental parser for streams
 * from upstream LLM providers and an encoder for the events we write to
 * clients.
 *
 * The parser follows WHATWG HTML, "Interpreting an event stream"
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
 * lines end in CRLF, LF or CR (a CR that ends one feed and an LF that starts
 * the next are one line end); a UTF-8 BOM at the start of the stream is
 * skipped; lines starting with ':' are comments; "field:value" loses one
 * space after the colon; a line without a colon is a field with an empty
 * value; "data" lines are joined with LF; "event" sets the event type; "id"
 * sets the last event id unless it contains NUL (it persists across events,
 * as the spec says); "retry" and unknown fields are ignored. A blank line
 * dispatches the event if at least one data line was seen since the last
 * dispatch ("data:" alone counts: it dispatches an event with empty data);
 * otherwise it only clears the event type. Bytes are not UTF-8 validated.
 *
 * Input arrives in arbitrary fragments. Lines are found with memchr, and an
 * event whose lines all sit inside one feed is handed to the callback as
 * slices of the caller's buffer without copying. Only a line that spans
 * feeds, an event that spans feeds, or an event with several data lines is
 * copied into the parser's own buffers, which are reused across events.
 *
 * The parser is a plain struct so it can live inside a request object; it
 * allocates nothing until it has to copy. It is not thread-safe; use it from
 * one thread (the loop thread of its request).
 */
#ifndef LX_HTTP_SSE_H
#define LX_HTTP_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/compiler.h"
#include "core/str.h"

/*
 * One dispatched event. All slices are borrowed and valid only during the
 * callback: they point into the buffer passed to lx_sse_feed or into the
 * parser's buffers.
 */
struct lx_sse_event {
    struct lx_str name; /* event type; empty means "message" */
    struct lx_str data; /* data lines joined with LF, no trailing LF */
    struct lx_str id;   /* last event id seen on the stream, may be empty */
};

/*
 * Called once per dispatched event, synchronously from inside lx_sse_feed
 * (events are the output of a parse, not a completion). Returning non-zero
 * stops the parse: lx_sse_feed returns that value and the parser stays
 * stopped (see lx_sse_feed). The callback must not call lx_sse_* on the same
 * parser.
 */
typedef int (*lx_sse_event_cb)(void *ud, const struct lx_sse_event *ev);

/* Internal state; treat the fields as private. */
struct lx_sse_parser {
    struct lx_buf line;     /* a partial line carried over to the next feed */
    struct lx_buf data;     /* joined data when it cannot be borrowed */
    struct lx_buf name;     /* event type when it cannot be borrowed */
    struct lx_buf id;       /* last event id */
    struct lx_str data_ref; /* data borrowed from the current feed */
    struct lx_str name_ref; /* event type borrowed from the current feed */
    size_t max_event_bytes;
    int err; /* sticky: first error or non-zero callback result */
    unsigned char data_state;
    unsigned char bom; /* BOM bytes matched at the stream start; 3 once decided */
    bool name_borrowed;
    bool skip_lf; /* the last feed ended in CR: drop an LF that starts the next */
};

/*
 * Prepare a parser in caller storage. max_event_bytes caps every line
 * (terminator excluded) and the joined data of one event; exceeding it makes
 * lx_sse_feed return LX_ETOOBIG. The parser holds at most about four times
 * that much memory. Cannot fail.
 */
void lx_sse_init(struct lx_sse_parser *p, size_t max_event_bytes);

/* Free the parser's buffers. The struct may be initialised again. */
void lx_sse_fini(struct lx_sse_parser *p);

/*
 * Parse the next n bytes of the stream and call cb for each event completed
 * by them, in order. data is borrowed for the duration of the call only.
 *
 * Returns 0, LX_ETOOBIG (a line or an event's data over the cap), LX_ENOMEM,
 * or the non-zero value a callback returned. After a non-zero return the
 * parser is stopped: the rest of the buffer is not parsed and further calls
 * return the same value until lx_sse_finish resets it. The result does not
 * depend on how the stream was split into feeds.
 */
LX_MUST_CHECK int lx_sse_feed(struct lx_sse_parser *p, const char *data, size_t n,
                              lx_sse_event_cb cb, void *ud);

/*
 * End of stream. An unterminated final event is discarded without dispatch,
 * as the spec requires; *out_truncated (if non-NULL) tells whether anything
 * was pending: bytes of an unterminated line, or data or an event type not
 * yet followed by a blank line; it is also set if the parser was stopped by
 * an error or a callback. A stream that ends cleanly ends in a blank line, so
 * truncated means the upstream connection was cut mid-event.
 *
 * Returns the parser's sticky error (0 if none). Afterwards the parser is
 * reset to its initial state, keeping its memory, and can parse a new stream.
 */
int lx_sse_finish(struct lx_sse_parser *p, bool *out_truncated);

/*
 * Append one event to out: "event: <name>\n" if name is non-empty, then one
 * "data: <line>\n" per line of data, then "\n". data is split on CRLF, CR and
 * LF, so line breaks inside data come back as LF when parsed; empty data
 * gives one "data: " line, which parses back as an event with empty data.
 *
 * Returns 0, LX_EINVAL (name contains CR or LF), LX_ETOOBIG (out's limit) or
 * LX_ENOMEM; on failure out is unchanged.
 */
LX_MUST_CHECK int lx_sse_append_event(struct lx_buf *out, struct lx_str name, struct lx_str data);

#endif
