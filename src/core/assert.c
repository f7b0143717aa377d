/* Assertion failure: print the location and abort (a core dump helps more than an exit code). */
#include "core/assert.h"

#include <stdio.h>
#include <stdlib.h>

void lx_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "llmux: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
