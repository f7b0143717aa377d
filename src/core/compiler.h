/*
 * Compiler helpers shared by every module: attributes, branch hints and the
 * LX_TESTABLE marker that exposes file-local functions to unit tests.
 */
#ifndef LX_CORE_COMPILER_H
#define LX_CORE_COMPILER_H

#define LX_MUST_CHECK __attribute__((warn_unused_result))
#define LX_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define LX_NORETURN __attribute__((noreturn))
#define LX_UNUSED __attribute__((unused))
#define LX_LIKELY(x) __builtin_expect(!!(x), 1)
#define LX_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LX_MAX(a, b) ((a) > (b) ? (a) : (b))
#define LX_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#ifdef LX_UNIT_TESTS
#define LX_TESTABLE
#else
#define LX_TESTABLE static
#endif

#endif
