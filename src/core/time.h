/* Clocks: monotonic milliseconds/nanoseconds for timeouts, wall-clock seconds for payloads. */
#ifndef LX_CORE_TIME_H
#define LX_CORE_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t lx_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t lx_mono_ms(void)
{
    return lx_mono_ns() / 1000000u;
}

static inline int64_t lx_wall_s(void)
{
    return (int64_t)time(NULL);
}

/* "2026-11-21T05:36:59.123Z" into out (at least 25 bytes). */
void lx_wall_iso8601(char *out, size_t n);

#endif
