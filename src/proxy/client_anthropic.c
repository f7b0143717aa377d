/* Placeholder: the Anthropic client adapter is being written. */
#include "proxy/client.h"

static int no_request(struct lx_str body, struct lx_buf *out, struct lx_error *err)
{
    (void)body;
    (void)out;
    return lx_error_set(err, LX_EINVAL, "/v1/messages is not available yet");
}

const struct lx_client_adapter lx_client_anthropic = {.name = "anthropic",
                                                      .translate_request = no_request};

int lx_client_anthropic_count_tokens(struct lx_str body, struct lx_buf *out, struct lx_error *err)
{
    (void)body;
    (void)out;
    return lx_error_set(err, LX_EINVAL, "/v1/messages/count_tokens is not available yet");
}
