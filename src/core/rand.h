/*
 * Fast per-thread pseudo-random numbers (xoshiro256**) seeded from the
 * kernel, for load balancing, jitter and request ids. Not for secrets: keys
 * and salts use OpenSSL's RAND_bytes.
 */
#ifndef LX_CORE_RAND_H
#define LX_CORE_RAND_H

#include <stddef.h>
#include <stdint.h>

uint64_t lx_rand_u64(void);
/* Uniform in [0, bound) for bound > 0. */
uint64_t lx_rand_below(uint64_t bound);
/* A random (version 4) UUID as 36 characters plus NUL. */
void lx_uuid4(char out[37]);

#endif
