/*
 * libFuzzer target for what the router reads from upstreams and clients:
 * error bodies (lx_router_classify), Retry-After values
 * (lx_router_parse_retry_after) and the backoff computed from them. The
 * first two bytes are an HTTP status; the rest is the body, also read as a
 * Retry-After value. Checks: the class is in range and consistent with the
 * status (only 400/413/422 can be context-window or content-policy), the
 * retry-after is finite and non-negative, and the backoff stays within
 * [router_settings.retry_after, max(60, 8)] seconds.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "router/router.h"

static struct lx_config *cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg) {
        static const char yaml[] = "model_list: []\nrouter_settings: {retry_after: 0.25}\n";
        struct lx_error err = {0};
        cfg = lx_config_load_string("fuzz.yaml", yaml, sizeof(yaml) - 1, &err);
        if (!cfg) {
            abort();
        }
    }
    if (size < 2) {
        return 0;
    }
    int status = 100 + (int)(((unsigned)data[0] << 8 | data[1]) % 500);
    struct lx_str body = {(const char *)data + 2, size - 2};
    enum lx_err_class ec = lx_router_classify(status, body);
    if (ec <= LX_ERRC_NONE || ec >= LX_ERRC_COUNT) {
        abort();
    }
    bool bad_request_status = status == 400 || status == 413 || status == 422;
    if ((ec == LX_ERRC_CONTEXT_WINDOW || ec == LX_ERRC_CONTENT_POLICY) && !bad_request_status) {
        abort();
    }
    if (lx_router_classify(status, body) != ec) {
        abort(); /* deterministic */
    }
    double ra = lx_router_parse_retry_after(body);
    if (!isfinite(ra) || ra < 0) {
        abort();
    }
    double b = lx_router_backoff_s(cfg, data[0] % 16, ra);
    if (!isfinite(b) || b < 0.25 || b > 60) {
        abort();
    }
    return 0;
}
