/*
 * The AWS event stream encoding (application/vnd.amazon.eventstream), the
 * binary framing of Bedrock's ConverseStream and other AWS streaming APIs
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/RESTSelectObjectAppendix.html,
 * "Event stream encoding"). A message is:
 *
 *   total length u32 BE | headers length u32 BE | prelude CRC u32 BE (of the 8 bytes before)
 *   | headers | payload | message CRC u32 BE (of everything before it)
 *
 * and a header is name length u8 | name | type u8 | value, where the value of
 * type 0/1 (bool true/false) is empty, 2 (byte) 1 byte, 3 (short) 2, 4 (int)
 * 4, 5 (long) 8, 6 (bytes) and 7 (string) a u16 BE length plus that many
 * bytes, 8 (timestamp) 8 and 9 (uuid) 16. CRCs are CRC-32/IEEE (zlib's).
 *
 * The parser is incremental: it takes arbitrary fragments, hands each
 * complete message to a callback, and buffers only a message that spans
 * fragments (a message wholly inside one fragment is passed as slices of the
 * caller's bytes). It checks the prelude as soon as 12 bytes are there, so an
 * oversized or corrupt length is refused before anything is buffered. Any
 * error is sticky: a broken stream cannot be resynchronised.
 *
 * Not thread-safe; one parser per stream on its loop thread.
 */
#ifndef LX_PROVIDERS_EVENTSTREAM_H
#define LX_PROVIDERS_EVENTSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/compiler.h"
#include "core/error.h"
#include "core/str.h"

#define LX_EVENTSTREAM_PRELUDE_BYTES 12
/* Prelude plus message CRC: the smallest message. */
#define LX_EVENTSTREAM_MIN_MESSAGE 16
/* Largest message accepted by default (AWS caps payloads at 16 MiB as well). */
#define LX_EVENTSTREAM_MAX_MESSAGE (16u << 20)

/*
 * One decoded message; slices are borrowed and valid only during the
 * callback. The well-known string headers are picked out (empty when absent
 * or not a string); every header was validated.
 */
struct lx_eventstream_message {
    struct lx_str message_type;   /* ":message-type": "event", "exception", "error" */
    struct lx_str event_type;     /* ":event-type" */
    struct lx_str exception_type; /* ":exception-type" */
    struct lx_str error_code;     /* ":error-code" (message type "error") */
    struct lx_str error_message;  /* ":error-message" */
    struct lx_str content_type;   /* ":content-type" */
    struct lx_str headers;        /* the raw header block */
    struct lx_str payload;
};

/*
 * Called once per complete message from inside lx_eventstream_feed. A
 * non-zero return stops the parse: feed returns it and the parser stays
 * stopped.
 */
typedef int (*lx_eventstream_cb)(void *ud, const struct lx_eventstream_message *m);

/* Internal state; treat the fields as private. */
struct lx_eventstream_parser {
    struct lx_buf buf;  /* bytes of a message that spans feeds */
    size_t max_message; /* cap on a message's total length */
    uint32_t total;     /* total length of the buffered message, once its prelude is checked */
    int error;          /* sticky: 0 or the code that stopped the parser */
};

/* max_message: 0 means LX_EVENTSTREAM_MAX_MESSAGE. */
void lx_eventstream_init(struct lx_eventstream_parser *p, size_t max_message);
void lx_eventstream_fini(struct lx_eventstream_parser *p);

/*
 * Parse n bytes. Returns 0; LX_EUPSTREAM with err set for a malformed stream
 * (CRC mismatch: "event stream CRC mismatch ..."; bad lengths or headers);
 * LX_ETOOBIG with err set for a message over the cap; LX_ENOMEM; or the
 * callback's non-zero value (err untouched). err may be NULL.
 */
LX_MUST_CHECK int lx_eventstream_feed(struct lx_eventstream_parser *p, const void *data, size_t n,
                                      lx_eventstream_cb cb, void *ud, struct lx_error *err);

/* True when part of a message is buffered (the stream stopped mid-message). */
bool lx_eventstream_pending(const struct lx_eventstream_parser *p);

/*
 * Decode one complete message m[0..n) (n is its total length) into *out
 * without checking anything but structure and CRCs. Returns 0 or LX_EUPSTREAM
 * with err set. The slices point into m.
 */
LX_MUST_CHECK int lx_eventstream_decode(const unsigned char *m, size_t n,
                                        struct lx_eventstream_message *out, struct lx_error *err);

/* A string header for the encoder. */
struct lx_eventstream_header {
    const char *name;
    struct lx_str value;
};

/*
 * Append one message with string headers (type 7) and payload to out, CRCs
 * included. For tests and llmux-mock. Returns 0, LX_EINVAL (a name over 255
 * bytes or a value over 65535), LX_ETOOBIG or LX_ENOMEM.
 */
LX_MUST_CHECK int lx_eventstream_encode(struct lx_buf *out, const struct lx_eventstream_header *h,
                                        size_t n_headers, struct lx_str payload);

#endif
