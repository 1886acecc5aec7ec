/*
** internal.h: helpers shared by page.c and node.c; not part of the API (not
** in the CDEF region, not seen by cffi).
**
** Every integer on disk is little-endian (see pagestore.h); these read and
** write them byte by byte, so no alignment is assumed.
*/
#ifndef PAGESTORE_INTERNAL_H
#define PAGESTORE_INTERNAL_H

#include <stdint.h>

#include "pagestore.h"

static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

/* valid_page_size: a power of two from PS_MIN_PAGE_SIZE to PS_MAX_PAGE_SIZE. */
static inline int valid_page_size(uint32_t page_size) {
    return page_size >= PS_MIN_PAGE_SIZE && page_size <= PS_MAX_PAGE_SIZE &&
           (page_size & (page_size - 1)) == 0;
}

#endif /* PAGESTORE_INTERNAL_H */
