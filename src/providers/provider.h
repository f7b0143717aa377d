/*
 * A provider is a table of operations that turn a client's OpenAI-format
 * request into the provider's wire format and the provider's answer back
 * into OpenAI's format. An OpenAI-compatible provider passes bodies through
 * (only the model name and deployment defaults are edited); a translating
 * provider (Anthropic, Gemini, ...) fills every operation.
 *
 * All operations run on a loop thread, allocate from the call's arena or
 * into the buffers they are given, and never block.
 */
#ifndef LX_PROVIDERS_PROVIDER_H
#define LX_PROVIDERS_PROVIDER_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/str.h"
#include "spend/usage.h"
#include "upstream/upstream.h"

enum lx_endpoint {
    LX_EP_CHAT,        /* /chat/completions */
    LX_EP_COMPLETIONS, /* /completions (legacy text) */
    LX_EP_EMBEDDINGS,  /* /embeddings */
};

#define LX_PROVIDER_MAX_HEADERS 24

/* What a provider needs to build the upstream request. */
struct lx_provider_call {
    enum lx_endpoint endpoint;
    const struct lx_deployment *dep;
    struct lx_str body; /* the client's JSON body, as received */
    const cJSON *json;  /* the same, parsed */
    bool stream;
    const char *api_key;        /* resolved provider key, or NULL */
    const char *upstream_model; /* the model name to send upstream (wildcards resolved) */
    struct lx_arena *arena;
    /*
     * The client's raw stream_options value (a slice of body, empty when
     * absent) and whether it asked for the usage chunk. An OpenAI-compatible
     * stream always asks its upstream for usage, to bill it; the pipeline
     * drops that chunk when the client did not ask.
     */
    struct lx_str stream_options;
    bool include_usage;
};

/* The upstream request a provider built. */
struct lx_provider_request {
    const char *url;
    struct lx_upstream_header headers[LX_PROVIDER_MAX_HEADERS];
    size_t n_headers;
    struct lx_buf *body; /* to fill; owned by the caller */
};

struct lx_sse_event;

/*
 * Operations of a provider. build_request is required; the others may be
 * NULL, which means the provider already speaks OpenAI's format and bodies
 * and events pass through unchanged.
 */
struct lx_provider_ops {
    const char *name;
    /* Build URL, headers and body. Returns 0 or an LX_E* code with err set (client-facing text). */
    int (*build_request)(const struct lx_provider_call *call, struct lx_provider_request *out,
                         struct lx_error *err);
    /* A 2xx non-streamed body into an OpenAI response body appended to out. */
    int (*translate_response)(const struct lx_provider_call *call, struct lx_str body,
                              struct lx_buf *out, struct lx_error *err);
    /*
     * An error body (status >= 400) into an OpenAI error body appended to out;
     * *io_status may be changed (e.g. Anthropic's 529 overloaded becomes 503).
     */
    int (*translate_error)(const struct lx_provider_call *call, struct lx_str body, int *io_status,
                           struct lx_buf *out);
    /* Per-stream translation state, allocated from call->arena (NULL on error). */
    void *(*stream_new)(const struct lx_provider_call *call);
    /*
     * One upstream SSE event into zero or more OpenAI SSE events appended to
     * out ("data: [DONE]" included when the upstream stream ends). Returns 0,
     * or LX_EUPSTREAM with err set when the event is malformed.
     */
    int (*translate_event)(void *state, const struct lx_sse_event *ev, struct lx_buf *out,
                           struct lx_error *err);
    /* Release what stream_new took besides arena memory (may be NULL). */
    void (*stream_free)(void *state);
    /*
     * Providers whose streams are not SSE (Ollama's NDJSON, Bedrock's AWS event
     * stream) parse the raw bytes themselves: each call appends OpenAI SSE
     * events to out; returns 0, or LX_EUPSTREAM/LX_ETOOBIG with err set.
     * When set, translate_event is not used.
     */
    int (*stream_feed)(void *state, const char *data, size_t n, struct lx_buf *out,
                       struct lx_error *err);
    /*
     * The upstream stream ended: append final events (if any) to out. Returns
     * non-zero when it ended in the middle of a frame. Used with stream_feed.
     */
    int (*stream_end)(void *state, struct lx_buf *out, struct lx_error *err);
    /*
     * The usage a translated stream has seen so far, in OpenAI's terms,
     * whether or not the client asked for the usage chunk. Returns true when
     * the upstream reported usage. May be called at any point before
     * stream_free; NULL for pass-through providers.
     */
    bool (*stream_usage)(void *state, struct lx_usage *out);
};

/* Anthropic Messages API (anthropic.c). */
extern const struct lx_provider_ops lx_provider_anthropic;
/* AWS Bedrock Converse / ConverseStream, SigV4-signed (bedrock.c). */
extern const struct lx_provider_ops lx_provider_bedrock;
/* Google AI Studio Gemini generateContent (gemini.c). */
extern const struct lx_provider_ops lx_provider_gemini;
/* Ollama /api/chat, NDJSON streams (ollama.c). */
extern const struct lx_provider_ops lx_provider_ollama;

/* The operations for a provider kind, or NULL when llmux cannot serve it yet. */
const struct lx_provider_ops *lx_provider_ops_for(enum lx_provider_kind kind);

/*
 * The api_base a deployment uses: its own, else its preset's default
 * (without a trailing slash). NULL when neither exists.
 */
struct lx_str lx_provider_api_base(const struct lx_deployment *dep);

#endif
