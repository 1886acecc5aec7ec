/*
** crc32c.c: CRC32C (Castagnoli), the checksum of pages, the file header and
** log frames. The SSE4.2 instruction computes it directly when the CPU has
** it (checked once per call through a cheap builtin); otherwise slice-by-8
** tables do eight bytes a step. Both give the same value: a test checks the
** standard vector "123456789" -> 0xE3069283 on each path, and the harness
** compares the two paths on every length and alignment up to a few pages.
**
** The hardware path runs three streams at once over consecutive 256-byte
** blocks and joins them with a shift table (crc32c_shift.h), as Mark Adler's
** crc32c.c does: the crc32 instruction takes three cycles but can start one
** a cycle, so a single stream waits on itself. A page's first read verifies
** its checksum (map.c), on the path of most point reads of a new map.
*/
#include <string.h>

#include "pagestore.h"
#include "crc32c_table.h"
#include "crc32c_shift.h"

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, uint64_t len) {
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                             ((uint32_t)p[3] << 24));
        uint32_t hi = (uint32_t)p[4] | ((uint32_t)p[5] << 8) | ((uint32_t)p[6] << 16) |
                      ((uint32_t)p[7] << 24);
        crc = ps_crc32c_table[7][lo & 0xff] ^ ps_crc32c_table[6][(lo >> 8) & 0xff] ^
              ps_crc32c_table[5][(lo >> 16) & 0xff] ^ ps_crc32c_table[4][lo >> 24] ^
              ps_crc32c_table[3][hi & 0xff] ^ ps_crc32c_table[2][(hi >> 8) & 0xff] ^
              ps_crc32c_table[1][(hi >> 16) & 0xff] ^ ps_crc32c_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) crc = ps_crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PS_HAVE_HW_CRC 1
/* shift_short: raw register c after PS_CRC32C_SHORT zero bytes more. */
static uint32_t shift_short(uint32_t c) {
    return ps_crc32c_short[0][c & 0xff] ^ ps_crc32c_short[1][(c >> 8) & 0xff] ^
           ps_crc32c_short[2][(c >> 16) & 0xff] ^ ps_crc32c_short[3][c >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
                                                             uint64_t len) {
    uint64_t c = ~crc;
    while (len >= 3 * PS_CRC32C_SHORT) { /* three independent streams, joined per round */
        uint64_t c1 = 0, c2 = 0;
        for (const uint8_t *end = p + PS_CRC32C_SHORT; p < end; p += 8) {
            uint64_t v0, v1, v2;
            memcpy(&v0, p, 8);
            memcpy(&v1, p + PS_CRC32C_SHORT, 8);
            memcpy(&v2, p + 2 * PS_CRC32C_SHORT, 8);
            c = __builtin_ia32_crc32di(c, v0);
            c1 = __builtin_ia32_crc32di(c1, v1);
            c2 = __builtin_ia32_crc32di(c2, v2);
        }
        c = shift_short((uint32_t)c) ^ (uint32_t)c1;
        c = shift_short((uint32_t)c) ^ (uint32_t)c2;
        p += 2 * PS_CRC32C_SHORT;
        len -= 3 * PS_CRC32C_SHORT;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

/* ps_crc32c_sw: the portable path, exported for the test that compares paths. */
uint32_t ps_crc32c_sw(uint32_t crc, const uint8_t *data, uint64_t len) {
    return crc32c_sw(crc, data, len);
}

uint32_t ps_crc32c(uint32_t crc, const uint8_t *data, uint64_t len) {
#ifdef PS_HAVE_HW_CRC
    if (__builtin_cpu_supports("sse4.2")) return crc32c_hw(crc, data, len);
#endif
    return crc32c_sw(crc, data, len);
}
