/*
 * Helpers shared by the translating provider files of this module
 * (gemini.c, ollama.c, ...); not for use outside src/providers/.
 */
#ifndef LX_PROVIDERS_PROVIDER_UTIL_H
#define LX_PROVIDERS_PROVIDER_UTIL_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "json/writer.h"
#include "providers/provider.h"

/* Size of the buffer lx_provider__call_id fills, NUL included, with room to spare. */
#define LX_PROVIDER_CALL_ID_SIZE 32

/*
 * Write a fresh OpenAI-style tool call id, "call_" plus 24 random hex digits
 * (lx_rand_u64), NUL-terminated, into out (caller storage of
 * LX_PROVIDER_CALL_ID_SIZE bytes). Never fails; any thread.
 */
void lx_provider__call_id(char out[LX_PROVIDER_CALL_ID_SIZE]);

/* Largest token count accepted from an upstream: 2^53, exact in a double. */
#define LX_PROVIDER_MAX_TOKENS 9007199254740992.0

/*
 * A token count from an upstream usage object: 0 when key is absent or
 * null, -1 when it is not a number in [0, LX_PROVIDER_MAX_TOKENS].
 */
long long lx_provider__token_count(const cJSON *obj, const char *key);

/*
 * A request parameter: the client's value, else the deployment's default
 * (litellm_params extra params); a JSON null counts as absent. Borrowed.
 */
const cJSON *lx_provider__param(const struct lx_provider_call *call, const char *key);

/* Append a request header (name borrowed, static; value borrowed); silently capped at
 * LX_PROVIDER_MAX_HEADERS. */
void lx_provider__add_header(struct lx_provider_request *out, const char *name,
                             struct lx_str value);

/*
 * OpenAI chat.completion.chunk writers for the stream translators. A chunk is
 * built in `chunk` (reset by _chunk_begin) through w, then closed and appended
 * to out as one SSE event by _chunk_emit (returns 0 or w's first failure).
 *
 *   _chunk_begin   {"id":..,"object":"chat.completion.chunk","created":..,"model":..
 *   _choice_begin  ,"choices":[{"index":N,"delta":{
 *   _choice_end    },"logprobs":null,"finish_reason":F|null}]
 */
void lx_provider__chunk_begin(struct lx_jw *w, struct lx_buf *chunk, const char *id,
                              int64_t created, const char *model);
void lx_provider__choice_begin(struct lx_jw *w, long long index);
void lx_provider__choice_end(struct lx_jw *w, const char *finish);
int lx_provider__chunk_emit(struct lx_jw *w, struct lx_buf *out);

/*
 * The head of a non-streamed OpenAI chat answer, up to the open message:
 * {"id":..,"object":"chat.completion","created":now,"model":..,"choices":[{"index":0,
 * "message":{"role":"assistant"
 */
void lx_provider__message_begin(struct lx_jw *w, struct lx_str id, struct lx_str model);

/* One OpenAI tool call: {"index":N,"id":..,"type":"function","function":{"name","arguments"}} */
void lx_provider__tool_call(struct lx_jw *w, size_t index, const char *id, struct lx_str name,
                            struct lx_str args);

#endif
