/*
 * Assertions. LX_ASSERT is always compiled in and aborts with the location;
 * LX_DASSERT exists only in debug builds. Neither is ever used on client,
 * upstream or config input: those get errors, not aborts.
 */
#ifndef LX_CORE_ASSERT_H
#define LX_CORE_ASSERT_H

#include "core/compiler.h"

LX_NORETURN void lx_assert_fail(const char *expr, const char *file, int line);

#define LX_ASSERT(e)                                                                               \
    do {                                                                                           \
        if (LX_UNLIKELY(!(e))) {                                                                   \
            lx_assert_fail(#e, __FILE__, __LINE__);                                                \
        }                                                                                          \
    } while (0)

#ifdef NDEBUG
#define LX_DASSERT(e)                                                                              \
    do {                                                                                           \
    } while (0)
#else
#define LX_DASSERT(e) LX_ASSERT(e)
#endif

#endif
