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

int ps_delta_make(const uint8_t *old, const uint8_t *new_, uint32_t page_size, uint8_t *out,
                  uint32_t cap, uint32_t *len_out) {
    if (!valid_page_size(page_size) || page_size > 65536) return PS_EINVAL;
    uint32_t n = 0, i = 0;
    while (i < page_size) {
        /* skip equal bytes, 8 at a time where they line up */
        while (i + 8 <= page_size) {
            uint64_t a, b;
            memcpy(&a, old + i, 8);
            memcpy(&b, new_ + i, 8);
            if (a != b) break;
            i += 8;
        }
        while (i < page_size && old[i] == new_[i]) i++;
        if (i >= page_size) break;
        uint32_t start = i, last = i;
        /* extend while the next difference is within the gap */
        for (uint32_t j = i + 1; j < page_size && j - last <= PS_DELTA_GAP; j++) {
            if (old[j] != new_[j]) last = j;
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
