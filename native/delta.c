/*
** delta.c: the byte ranges in which two images of one page differ, and
** applying them. The log (pagestore/wal.py) writes a page's first image in a
** log generation whole, and after that only what changed since its previous
** frame: a B+tree leaf that gains one entry changes a few hundred of its 4,096
** bytes (its header, the tail of its slot array, the new record).
**
** DELTA FORMAT (a frame's payload when it is not a whole image), little-endian:
** a sequence of runs, each
**
**     OFFSET  SIZE  DESCRIPTION
**        0      2   offset of the run in the page
**        2      2   length of the run, > 0
**        4      n   the run's bytes in the new image
**
** Runs ascend and do not overlap. Two differences fewer than PS_DELTA_GAP
** bytes apart share one run (a run header costs 4 bytes).
**
** Page-local like page.c: the caller's buffers, no I/O, no malloc; a delta
** read from disk is bounds-checked run by run before any byte is copied.
*/
#include <string.h>

#include "pagestore.h"
#include "internal.h"

#define PS_DELTA_GAP 8

/* The XOR of the 8 bytes at a and b, as a little-endian word: byte k of the pages is bits 8k..8k+7. */
static inline uint64_t xor8(const uint8_t *a, const uint8_t *b) {
    uint64_t x, y;
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return __builtin_bswap64(x ^ y);
#else
    return x ^ y;
#endif
}

/* next_diff: the first offset from i on at which the images differ, or size. Equal stretches go
** 32 bytes a step (four words OR-ed: a leaf's commit changes a few hundred of 4,096 bytes), then
** the word, then the byte (the lowest set byte of the XOR). */
static uint32_t next_diff(const uint8_t *old, const uint8_t *new_, uint32_t i, uint32_t size) {
    while (i + 32 <= size) {
        if ((xor8(old + i, new_ + i) | xor8(old + i + 8, new_ + i + 8) | xor8(old + i + 16, new_ + i + 16) |
             xor8(old + i + 24, new_ + i + 24)) != 0)
            break;
        i += 32;
    }
    while (i + 8 <= size) {
        uint64_t x = xor8(old + i, new_ + i);
        if (x != 0) return i + (uint32_t)(__builtin_ctzll(x) >> 3);
        i += 8;
    }
    while (i < size && old[i] == new_[i]) i++;
    return i;
}

int ps_delta_make(const uint8_t *old, const uint8_t *new_, uint32_t page_size, uint8_t *out,
                  uint32_t cap, uint32_t *len_out) {
    if (!valid_page_size(page_size) || page_size > 65536) return PS_EINVAL;
    uint32_t n = 0, i = 0;
    while (i < page_size) {
        i = next_diff(old, new_, i, page_size); /* skip equal bytes */
        if (i >= page_size) break;
        uint32_t start = i, last = i;
        /* Extend while the next difference is within the gap: the run ends at the first difference
        ** followed by PS_DELTA_GAP equal bytes (or the page's end). A word at last + 1 holds the
        ** next PS_DELTA_GAP bytes: all equal, the run ends; else its highest difference is the
        ** run's last so far (every difference below it is within the gap of the one before). */
        for (;;) {
            uint32_t q = last + 1;
            if (q + PS_DELTA_GAP <= page_size) {
                uint64_t x = xor8(old + q, new_ + q);
                if (x == 0) break;
                last = q + (uint32_t)((63 - __builtin_clzll(x)) >> 3);
                continue;
            }
            /* the page's last bytes, one at a time, as the gap's rule says */
            for (uint32_t j = q; j < page_size && j - last <= PS_DELTA_GAP; j++) {
                if (old[j] != new_[j]) last = j;
            }
            break;
        }
        uint32_t len = last + 1 - start;
        if (len > 65535) return PS_EFULL; /* a whole 64 KiB page changed: log it whole */
        if ((uint64_t)n + 4 + len > cap) return PS_EFULL;
        put16(out + n, start);
        put16(out + n + 2, len);
        memcpy(out + n + 4, new_ + start, len);
        n += 4 + len;
        i = last + 1;
    }
    *len_out = n;
    return PS_OK;
}

int ps_delta_apply(uint8_t *page, uint32_t page_size, const uint8_t *delta, uint32_t len) {
    if (!valid_page_size(page_size)) return PS_EINVAL;
    /* validate every run before changing a byte: a bad delta leaves the page as it was */
    uint32_t p = 0, prev_end = 0;
    while (p < len) {
        if (len - p < 4) return PS_ECORRUPT_DELTA;
        uint32_t off = get16(delta + p), n = get16(delta + p + 2);
        if (n == 0 || off < prev_end || (uint64_t)off + n > page_size || (uint64_t)p + 4 + n > len)
            return PS_ECORRUPT_DELTA;
        prev_end = off + n;
        p += 4 + n;
    }
    p = 0;
    while (p < len) {
        uint32_t off = get16(delta + p), n = get16(delta + p + 2);
        memcpy(page + off, delta + p + 4, n);
        p += 4 + n;
    }
    return PS_OK;
}
