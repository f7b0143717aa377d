/*
 * CRC-32/IEEE (the zlib / AWS event stream / spend journal checksum).
 * Thread-safe; the table is built once on first use.
 */
#ifndef LX_CORE_CRC32_H
#define LX_CORE_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32 of p[0..n), continuing from crc (start with 0). */
uint32_t lx_crc32(uint32_t crc, const void *p, size_t n);

#endif
