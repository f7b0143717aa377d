/* Helpers shared by the translating providers; see provider_util.h. */
#include "providers/provider_util.h"

#include <stdint.h>
#include <string.h>

#include "core/rand.h"

void lx_provider__call_id(char out[LX_PROVIDER_CALL_ID_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = lx_rand_u64(), b = lx_rand_u64();
    memcpy(out, "call_", 5);
    for (int i = 0; i < 16; i++) {
        out[5 + i] = hex[(a >> (i * 4)) & 15];
    }
    for (int i = 0; i < 8; i++) {
        out[21 + i] = hex[(b >> (i * 4)) & 15];
    }
    out[29] = '\0';
}
