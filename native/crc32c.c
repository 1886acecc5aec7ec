/*
** crc32c.c: CRC32C (Castagnoli), the checksum of pages, the file header and
** log frames. The SSE4.2 instruction computes it directly when the CPU has
** it (checked once per call through a cheap builtin); otherwise slice-by-8
** tables do eight bytes a step. Both give the same value: a test checks the
** standard vector "123456789" -> 0xE3069283 on each path.
*/
#include <string.h>

#include "pagestore.h"
#include "crc32c_table.h"

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
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
                                                             uint64_t len) {
    uint64_t c = ~crc;
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
