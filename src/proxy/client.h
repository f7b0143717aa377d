/*
 * Client wire formats other than OpenAI's. The pipeline works in OpenAI's
 * chat format from end to end; a client adapter translates at its edges: the
 * client's request into an OpenAI chat request, and the OpenAI answer, stream
 * events and errors back into the client's format. Anthropic's Messages API
 * (/v1/messages) is one, so Anthropic SDKs can use any configured model.
 *
 * All functions are pure translations over buffers: they never block and
 * allocate only into the buffers (or the arena) they are given.
 */
#ifndef LX_PROXY_CLIENT_H
#define LX_PROXY_CLIENT_H

#include <cjson/cJSON.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/str.h"

struct lx_client_adapter {
    const char *name;
    /*
     * The client's request body into an OpenAI chat request body appended to
     * out. LX_EINVAL with err set (client-facing text) when the request is
     * invalid; LX_ENOMEM, LX_ETOOBIG.
     */
    int (*translate_request)(struct lx_str body, struct lx_buf *out, struct lx_error *err);
    /* An OpenAI chat.completion body into the client's response body appended to out. */
    int (*translate_response)(struct lx_str openai_body, struct lx_buf *out, struct lx_error *err);
    /* An error into the client's error body appended to out. */
    int (*error_body)(int status, const char *type, struct lx_str message, struct lx_buf *out);
    /* Stream state, allocated from arena; `request` is the client's parsed request. */
    void *(*stream_new)(struct lx_arena *arena, const cJSON *request);
    /*
     * The data of one OpenAI stream event ("[DONE]" included, and error
     * events {"error":{...}}) into zero or more client events appended to out.
     */
    int (*translate_event)(void *state, struct lx_str openai_data, struct lx_buf *out,
                           struct lx_error *err);
    /* Release what stream_new took besides arena memory (may be NULL). */
    void (*stream_free)(void *state);
};

/* Anthropic's Messages API: POST /v1/messages. */
extern const struct lx_client_adapter lx_client_anthropic;

/*
 * /v1/messages/count_tokens: an estimate of a Messages request's input
 * tokens as {"input_tokens": N} appended to out. LX_EINVAL with err set on a
 * bad request.
 */
int lx_client_anthropic_count_tokens(struct lx_str body, struct lx_buf *out, struct lx_error *err);

#endif
