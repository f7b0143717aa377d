#!/usr/bin/env bash
# Ban unsafe libc calls everywhere and raw malloc/free outside core/alloc.c.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files 'src/*.c' 'src/*.h' 'tools/*.c' 'tools/*.h' 'fuzz/*.c')
status=0
banned='\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|sscanf|gets)\s*\('
if grep -nE "$banned" $files; then
    echo "lint: banned function (use snprintf, lx_buf, lx_str_to_u64, strtol with checks)"
    status=1
fi
raw=$(grep -nE '(^|[^_a-z])(malloc|calloc|realloc|free)\s*\(' $(echo "$files" | grep -v 'src/core/alloc.c') || true)
if [[ -n "$raw" ]]; then
    echo "$raw"
    echo "lint: raw allocation outside src/core/alloc.c (use lx_malloc/lx_free)"
    status=1
fi
exit $status
