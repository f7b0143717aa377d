/* xoshiro256** (Blackman & Vigna), one state per thread, seeded by getrandom(2). */
#include "core/rand.h"

#include <stdio.h>
#include <sys/random.h>

#include "core/time.h"

static _Thread_local uint64_t state[4];
static _Thread_local int seeded;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static void seed(void)
{
    if (getrandom(state, sizeof(state), 0) != (ssize_t)sizeof(state)) {
        /* Not a secret: a time-derived seed is acceptable if getrandom fails. */
        uint64_t t = lx_mono_ns();
        for (int i = 0; i < 4; i++) {
            t += 0x9e3779b97f4a7c15ull;
            state[i] = t ^ (t >> 31);
        }
    }
    if (!(state[0] | state[1] | state[2] | state[3])) {
        state[0] = 1;
    }
    seeded = 1;
}

uint64_t lx_rand_u64(void)
{
    if (!seeded) {
        seed();
    }
    uint64_t result = rotl(state[1] * 5, 7) * 9;
    uint64_t t = state[1] << 17;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= t;
    state[3] = rotl(state[3], 45);
    return result;
}

uint64_t lx_rand_below(uint64_t bound)
{
    /* Lemire's multiply-shift; the bias is below 2^-32 for the bounds we use. */
    return (uint64_t)(((unsigned __int128)lx_rand_u64() * bound) >> 64);
}

void lx_uuid4(char out[37])
{
    uint64_t hi = lx_rand_u64();
    uint64_t lo = lx_rand_u64();
    hi = (hi & 0xffffffffffff0fffull) | 0x0000000000004000ull;
    lo = (lo & 0x3fffffffffffffffull) | 0x8000000000000000ull;
    snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32),
             (unsigned)((hi >> 16) & 0xffff), (unsigned)(hi & 0xffff), (unsigned)(lo >> 48),
             (unsigned long long)(lo & 0xffffffffffffull));
}
