/*
** map.c: pages read in place from the memory-mapped data file.
**
** The pager maps the data file read-only; a page whose newest committed
** image is in the file is searched and read where it lies, with no copy and
** no pread. Python passes the mapping once (a ps_map_t) and a page number per
** call. Each function is page-local: it works on the one page it is given
** (or, for the batch read, the pages it is given), and a page number it reads
** from a page is returned to the caller, never followed. See pagestore.h
** (MAPPED PAGES) for the contract.
**
** Nothing in the map is trusted: a page is verified in full the first time
** it is touched (its bit in the caller's bitset records that), and every
** function after that still bounds-checks every offset it follows, exactly
** as on a private copy.
*/
#include <string.h>

#include "pagestore.h"
#include "internal.h"

/* map_page: the bytes of page pgno, verified once. */
static int map_page(ps_map_t *m, uint32_t pgno, const uint8_t **page) {
    if (m == NULL || m->base == NULL || m->verified == NULL || !valid_page_size(m->page_size)) return PS_EINVAL;
    if (pgno == 0 || (uint64_t)pgno >= m->len / m->page_size || (uint64_t)(pgno >> 3) >= m->verified_len)
        return PS_EOUTSIDE;
    const uint8_t *p = m->base + (uint64_t)pgno * m->page_size;
    uint8_t bit = (uint8_t)(1u << (pgno & 7));
    if (!(m->verified[pgno >> 3] & bit)) {
        int rc = ps_page_verify(p, m->page_size, pgno);
        if (rc == PS_OK && (p[PS_OFF_TYPE] == PS_PAGE_LEAF || p[PS_OFF_TYPE] == PS_PAGE_INTERNAL)) {
            uint32_t count;
            rc = ps_node_decode(p, m->page_size, NULL, NULL, NULL, NULL, 0, &count);
        }
        if (rc != PS_OK) return rc;
        m->verified[pgno >> 3] |= bit;
    }
    *page = p;
    return PS_OK;
}

static int node_of_type(const uint8_t *page, int want_type) {
    uint8_t type = page[PS_OFF_TYPE];
    if (type != PS_PAGE_LEAF && type != PS_PAGE_INTERNAL) return PS_ENODE_TYPE;
    if (want_type >= 0 && type != want_type) return PS_ETYPE;
    return PS_OK;
}

int ps_map_check(ps_map_t *map, uint32_t pgno) {
    const uint8_t *page;
    return map_page(map, pgno, &page);
}

int ps_map_node_search(ps_map_t *map, uint32_t pgno, int want_type, const uint8_t *key, uint32_t klen,
                       int after, uint32_t *index_out, uint8_t *equal_out, uint32_t *pgno_out,
                       uint16_t *slot_out) {
    const uint8_t *page;
    int rc = map_page(map, pgno, &page);
    if (rc != PS_OK) return rc;
    rc = node_of_type(page, want_type);
    if (rc != PS_OK) return rc;
    return ps_node_search(page, map->page_size, key, klen, after, index_out, equal_out, pgno_out, slot_out);
}

int ps_map_node_decode(ps_map_t *map, uint32_t pgno, int want_type, uint64_t *key_off_out,
                       uint64_t *key_end_out, uint32_t *pgno_out, uint16_t *slot_out, uint32_t cap,
                       uint32_t *count_out) {
    const uint8_t *page;
    int rc = map_page(map, pgno, &page);
    if (rc != PS_OK) return rc;
    rc = node_of_type(page, want_type);
    if (rc != PS_OK) return rc;
    if (key_off_out == NULL || key_end_out == NULL || pgno_out == NULL || count_out == NULL) return PS_EINVAL;
    if (cap > PS_MAX_SLOTS) cap = PS_MAX_SLOTS; /* no node has more entries */
    uint32_t off32[PS_MAX_SLOTS], end32[PS_MAX_SLOTS]; /* the decoder's page-relative offsets */
    uint32_t count = 0;
    rc = ps_node_decode(page, map->page_size, off32, end32, pgno_out, slot_out, cap, &count);
    if (rc != PS_OK) return rc;
    uint64_t at = (uint64_t)pgno * map->page_size;
    uint32_t nkeys = page[PS_OFF_TYPE] == PS_PAGE_LEAF ? count : (count ? count - 1 : 0);
    for (uint32_t j = 0; j < nkeys; j++) {
        key_off_out[j] = at + off32[j];
        key_end_out[j] = at + end32[j];
    }
    *count_out = count;
    return PS_OK;
}

int ps_map_page_read(ps_map_t *map, uint32_t pgno, uint32_t slot, int want_type, uint64_t *offset_out,
                     uint32_t *len_out, uint8_t *state_out, uint32_t *next_out) {
    const uint8_t *page;
    uint32_t off, len;
    uint8_t st;
    int rc = map_page(map, pgno, &page);
    if (rc != PS_OK) return rc;
    if (want_type >= 0 && page[PS_OFF_TYPE] != want_type) return PS_ETYPE;
    rc = ps_page_read(page, map->page_size, slot, &off, &len, &st);
    if (rc != PS_OK) return rc;
    *offset_out = (uint64_t)pgno * map->page_size + off;
    *len_out = len;
    if (state_out) *state_out = st;
    if (next_out) *next_out = get32(page + PS_OFF_NEXT);
    return PS_OK;
}

int ps_map_read_many(ps_map_t *map, const uint8_t *const *pages, const uint32_t *pgnos,
                     const uint16_t *slots, uint32_t n, int want_type, uint64_t *offsets_out,
                     uint32_t *lens_out, uint8_t *states_out, int32_t *status_out) {
    if (map == NULL || !valid_page_size(map->page_size)) return PS_EINVAL;
    if (n > 0 && (!pgnos || !slots || !offsets_out || !lens_out || !states_out || !status_out)) return PS_EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *page = NULL;
        uint64_t at = 0;
        uint32_t off = 0, len = 0;
        uint8_t st = 0;
        int rc;
        if (pages != NULL && pages[i] != NULL) {
            page = pages[i];
            rc = PS_OK;
        } else {
            rc = map_page(map, pgnos[i], &page);
            at = (uint64_t)pgnos[i] * map->page_size;
        }
        if (rc == PS_OK && want_type >= 0 && page[PS_OFF_TYPE] != want_type) rc = PS_ETYPE;
        if (rc == PS_OK) rc = ps_page_read(page, map->page_size, slots[i], &off, &len, &st);
        status_out[i] = rc;
        offsets_out[i] = rc == PS_OK ? at + off : 0;
        lens_out[i] = rc == PS_OK ? len : 0;
        states_out[i] = rc == PS_OK ? st : 0;
    }
    return PS_OK;
}

int64_t ps_map_child(ps_map_t *map, uint32_t pgno, const uint8_t *key, uint32_t klen) {
    uint32_t idx[2];
    uint8_t eq;
    uint16_t slot;
    int rc = ps_map_node_search(map, pgno, PS_PAGE_INTERNAL, key, klen, 1, idx, &eq, idx + 1, &slot);
    if (rc != PS_OK) return -(int64_t)rc;
    return (int64_t)idx[1];
}

int64_t ps_map_leaf_find(ps_map_t *map, uint32_t pgno, const uint8_t *key, uint32_t klen) {
    uint32_t idx[2];
    uint8_t eq;
    uint16_t slot;
    int rc = ps_map_node_search(map, pgno, PS_PAGE_LEAF, key, klen, 0, idx, &eq, idx + 1, &slot);
    if (rc != PS_OK) return -(int64_t)rc;
    if (idx[0] >= (1u << 14)) return -(int64_t)PS_ECORRUPT_NODE; /* no node has that many entries */
    return (int64_t)(((uint64_t)idx[1] << 31) | ((uint64_t)slot << 15) | ((uint64_t)idx[0] << 1) | (eq ? 1u : 0u));
}

int64_t ps_map_value(ps_map_t *map, uint32_t pgno, uint32_t slot, uint32_t *len_out) {
    uint64_t off;
    uint32_t len;
    uint8_t st;
    if (len_out == NULL) return -(int64_t)PS_EINVAL;
    int rc = ps_map_page_read(map, pgno, slot, PS_PAGE_HEAP, &off, &len, &st, NULL);
    if (rc != PS_OK) return -(int64_t)rc;
    if (st != PS_SLOT_LIVE) return -(int64_t)PS_ENOSLOT;
    *len_out = len;
    return (int64_t)off;
}
