/*
** page.c: slotted-page operations on a caller-owned buffer.
**
** See pagestore.h for the layout and the rule that makes a page valid. The
** shape of every function: check arguments, check every offset read from the
** page against page_size, act, return a PS_* code. Nothing here allocates,
** does I/O or keeps state between calls.
*/
#include <string.h>

#include "pagestore.h"
#include "internal.h"

_Static_assert(PS_HEADER_SIZE == 40, "page header is 40 bytes");
_Static_assert(PS_SLOT_SIZE == 6, "slot entry is 6 bytes");
_Static_assert(PS_MAX_SLOTS == (65535 - PS_HEADER_SIZE) / PS_SLOT_SIZE,
               "PS_MAX_SLOTS keeps lower within its 16-bit field");
_Static_assert(PS_OFF_NEXT + 8 == PS_HEADER_SIZE, "header fields fill 40 bytes");

/* The decoded header fields that the operations use. */
typedef struct {
    uint32_t nslots, nlive, lower, upper, frag;
} hdr_t;

static void read_hdr(const uint8_t *page, hdr_t *h) {
    h->nslots = get16(page + PS_OFF_NSLOTS);
    h->nlive = get16(page + PS_OFF_NLIVE);
    h->lower = get16(page + PS_OFF_LOWER);
    h->upper = get32(page + PS_OFF_UPPER);
    h->frag = get32(page + PS_OFF_FRAG);
}

static void write_hdr(uint8_t *page, const hdr_t *h) {
    put16(page + PS_OFF_NSLOTS, h->nslots);
    put16(page + PS_OFF_NLIVE, h->nlive);
    put16(page + PS_OFF_LOWER, h->lower);
    put32(page + PS_OFF_UPPER, h->upper);
    put32(page + PS_OFF_FRAG, h->frag);
}

static inline uint8_t *slot_ptr(uint8_t *page, uint32_t i) {
    return page + PS_HEADER_SIZE + (size_t)i * PS_SLOT_SIZE;
}
static inline const uint8_t *cslot_ptr(const uint8_t *page, uint32_t i) {
    return page + PS_HEADER_SIZE + (size_t)i * PS_SLOT_SIZE;
}

static void set_slot(uint8_t *page, uint32_t i, uint32_t off, uint32_t len, uint8_t state) {
    uint8_t *s = slot_ptr(page, i);
    put16(s, off);
    put16(s + 2, len);
    s[4] = state;
    s[5] = 0;
}

/* sane_hdr: the cheap checks every mutating call makes before following any
** offset from the header. The full rule is ps_page_validate's. */
static int sane_hdr(const hdr_t *h, uint32_t page_size) {
    if (h->lower != PS_HEADER_SIZE + h->nslots * PS_SLOT_SIZE) return PS_ECORRUPT_HEADER;
    if (h->lower > h->upper || h->upper > page_size) return PS_ECORRUPT_HEADER;
    if (h->nlive > h->nslots) return PS_ECORRUPT_HEADER;
    if (h->frag > page_size - h->upper) return PS_ECORRUPT_SPACE;
    return PS_OK;
}

/* aliases: does [data, data+len) overlap the page buffer? Records are copied
** into the page, and compaction moves bytes, so a source inside the page
** could be overwritten before it is read. */
static int aliases(const uint8_t *page, uint32_t page_size, const uint8_t *data, uint32_t len) {
    uintptr_t p = (uintptr_t)page, d = (uintptr_t)data;
    return len > 0 && d < p + page_size && p < d + len;
}

int ps_native_version(void) { return PS_NATIVE_VERSION; }

const char *ps_strerror(int code) {
    switch (code) {
    case PS_OK: return "ok";
    case PS_EFULL: return "record does not fit in the page";
    case PS_ENOSLOT: return "no live record at that slot";
    case PS_EINVAL: return "invalid argument";
    case PS_ECORRUPT_HEADER: return "page header fields are inconsistent";
    case PS_ECORRUPT_SLOT: return "a slot points outside the record area";
    case PS_ECORRUPT_OVERLAP: return "two records overlap";
    case PS_ECORRUPT_SPACE: return "free-space accounting does not add up";
    case PS_ECHECKSUM: return "checksum mismatch";
    case PS_EPGNO: return "page is stamped with another page number";
    case PS_ENODE_TYPE: return "page is not a B+tree node";
    case PS_ECORRUPT_NODE: return "B+tree node slots are not dense and live, or a record is too short";
    case PS_ENODE_ORDER: return "B+tree node keys are not strictly ascending";
    case PS_EOUTSIDE: return "page number outside the mapped file";
    case PS_ETYPE: return "page is of another type than expected";
    case PS_ECORRUPT_DELTA: return "log delta run outside the page or out of order";
    default: return "unknown status code";
    }
}

int ps_page_init(uint8_t *page, uint32_t page_size, uint32_t pgno, uint8_t type) {
    if (!valid_page_size(page_size)) return PS_EINVAL;
    memset(page, 0, page_size);
    put32(page + PS_OFF_PGNO, pgno);
    page[PS_OFF_TYPE] = type;
    hdr_t h = {0, 0, PS_HEADER_SIZE, page_size, 0};
    write_hdr(page, &h);
    return PS_OK;
}

/* ---- sorting live slots by record offset, without malloc ----
** Compaction and validation both need the live records in offset order. The
** index array lives on the stack (PS_MAX_SLOTS * 2 bytes = 21 KiB); heapsort
** keeps the worst case O(n log n) with no recursion. */

static void sift_down(uint16_t *idx, const uint32_t *key, uint32_t start, uint32_t n) {
    uint32_t root = start;
    for (;;) {
        uint32_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && key[idx[child + 1]] > key[idx[child]]) child++;
        if (key[idx[root]] >= key[idx[child]]) return;
        uint16_t t = idx[root]; idx[root] = idx[child]; idx[child] = t;
        root = child;
    }
}

static void sort_by_key(uint16_t *idx, const uint32_t *key, uint32_t n) {
    if (n < 2) return;
    for (uint32_t i = n / 2; i-- > 0;) sift_down(idx, key, i, n);
    for (uint32_t end = n - 1; end > 0; end--) {
        uint16_t t = idx[0]; idx[0] = idx[end]; idx[end] = t;
        sift_down(idx, key, 0, end);
    }
}

int ps_page_validate(const uint8_t *page, uint32_t page_size) {
    uint16_t idx[PS_MAX_SLOTS];
    uint32_t off[PS_MAX_SLOTS];
    hdr_t h;
    uint32_t live = 0, n = 0;
    uint64_t live_bytes = 0;

    if (!valid_page_size(page_size)) return PS_EINVAL;
    read_hdr(page, &h);
    /* nslots is bounded by the page before lower is trusted. */
    if (h.nslots > PS_MAX_SLOTS || h.nslots > (page_size - PS_HEADER_SIZE) / PS_SLOT_SIZE)
        return PS_ECORRUPT_HEADER;
    if (h.lower != PS_HEADER_SIZE + h.nslots * PS_SLOT_SIZE) return PS_ECORRUPT_HEADER;
    if (h.lower > h.upper || h.upper > page_size) return PS_ECORRUPT_HEADER;
    if (get32(page + 36) != 0) return PS_ECORRUPT_HEADER;

    for (uint32_t i = 0; i < h.nslots; i++) {
        const uint8_t *s = cslot_ptr(page, i);
        uint32_t o = get16(s), l = get16(s + 2);
        uint8_t st = s[4];
        if (s[5] != 0) return PS_ECORRUPT_SLOT;
        if (st == PS_SLOT_FREE) {
            if (o != 0 || l != 0) return PS_ECORRUPT_SLOT;
            continue;
        }
        if (st != PS_SLOT_LIVE && st != PS_SLOT_OVERFLOW) return PS_ECORRUPT_SLOT;
        live++;
        if (l == 0) {
            if (o != 0) return PS_ECORRUPT_SLOT;
            continue;
        }
        if (o < h.upper || (uint64_t)o + l > page_size) return PS_ECORRUPT_SLOT;
        live_bytes += l;
        idx[n] = (uint16_t)i;
        off[i] = o;
        n++;
    }
    if (h.nslots > 0 && cslot_ptr(page, h.nslots - 1)[4] == PS_SLOT_FREE) return PS_ECORRUPT_HEADER;
    if (live != h.nlive) return PS_ECORRUPT_HEADER;
    if (live_bytes > page_size - h.upper) return PS_ECORRUPT_OVERLAP;

    sort_by_key(idx, off, n);
    for (uint32_t k = 1; k < n; k++) {
        uint32_t prev_end = off[idx[k - 1]] + get16(cslot_ptr(page, idx[k - 1]) + 2);
        if (prev_end > off[idx[k]]) return PS_ECORRUPT_OVERLAP;
    }
    if ((uint64_t)h.frag + live_bytes != page_size - h.upper) return PS_ECORRUPT_SPACE;
    return PS_OK;
}

int ps_page_set_checksum(uint8_t *page, uint32_t page_size) {
    if (!valid_page_size(page_size)) return PS_EINVAL;
    put32(page + PS_OFF_CHECKSUM, ps_crc32c(0, page + 4, page_size - 4));
    return PS_OK;
}

int ps_page_seal_many(uint8_t *pages, uint32_t page_size, uint32_t n, uint64_t lsn) {
    if (!valid_page_size(page_size) || (n > 0 && pages == NULL)) return PS_EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *page = pages + (size_t)i * page_size;
        put32(page + PS_OFF_LSN, (uint32_t)lsn);
        put32(page + PS_OFF_LSN + 4, (uint32_t)(lsn >> 32));
        put32(page + PS_OFF_CHECKSUM, ps_crc32c(0, page + 4, page_size - 4));
    }
    return PS_OK;
}

int ps_page_verify(const uint8_t *page, uint32_t page_size, uint32_t expected_pgno) {
    if (!valid_page_size(page_size)) return PS_EINVAL;
    if (get32(page + PS_OFF_CHECKSUM) != ps_crc32c(0, page + 4, page_size - 4)) return PS_ECHECKSUM;
    if (get32(page + PS_OFF_PGNO) != expected_pgno) return PS_EPGNO;
    return ps_page_validate(page, page_size);
}

int ps_page_compact(uint8_t *page, uint32_t page_size) {
    uint16_t idx[PS_MAX_SLOTS];
    uint32_t off[PS_MAX_SLOTS];
    hdr_t h;
    uint32_t n = 0;
    int rc = ps_page_validate(page, page_size);
    if (rc != PS_OK) return rc;
    read_hdr(page, &h);
    for (uint32_t i = 0; i < h.nslots; i++) {
        const uint8_t *s = cslot_ptr(page, i);
        if (s[4] == PS_SLOT_FREE || get16(s + 2) == 0) continue;
        idx[n] = (uint16_t)i;
        off[i] = get16(s);
        n++;
    }
    sort_by_key(idx, off, n);
    /* Highest record first: each moves up (towards page_size) and lands at or
    ** above where it was, and every record not yet moved lies wholly below it,
    ** so memmove never overwrites bytes still to be read. */
    uint32_t top = page_size;
    for (uint32_t k = n; k-- > 0;) {
        uint8_t *s = slot_ptr(page, idx[k]);
        uint32_t len = get16(s + 2), from = get16(s);
        top -= len;
        if (top != from) memmove(page + top, page + from, len);
        put16(s, top);
    }
    h.upper = top;
    h.frag = 0;
    write_hdr(page, &h);
    return PS_OK;
}

int ps_page_free_space(const uint8_t *page, uint32_t page_size, uint32_t *contiguous_out,
                       uint32_t *total_out, uint32_t *max_insert_out) {
    hdr_t h;
    if (!valid_page_size(page_size)) return PS_EINVAL;
    read_hdr(page, &h);
    int rc = sane_hdr(&h, page_size);
    if (rc != PS_OK) return rc;
    uint32_t contiguous = h.upper - h.lower;
    uint32_t total = contiguous + h.frag;
    uint32_t max_insert = total;
    if (h.nlive == h.nslots) {
        if (h.nslots >= PS_MAX_SLOTS) max_insert = 0;
        else max_insert = total >= PS_SLOT_SIZE ? total - PS_SLOT_SIZE : 0;
    }
    if (max_insert > PS_MAX_RECORD) max_insert = PS_MAX_RECORD;
    if (contiguous_out) *contiguous_out = contiguous;
    if (total_out) *total_out = total;
    if (max_insert_out) *max_insert_out = max_insert;
    return PS_OK;
}

/* lowest_free_slot: the slot an insert reuses, or nslots when none is free.
** Free slots exist only when nlive < nslots, which skips the scan otherwise. */
static uint32_t lowest_free_slot(const uint8_t *page, const hdr_t *h) {
    if (h->nlive == h->nslots) return h->nslots;
    for (uint32_t i = 0; i < h->nslots; i++)
        if (cslot_ptr(page, i)[4] == PS_SLOT_FREE) return i;
    return h->nslots;
}

int ps_page_insert(uint8_t *page, uint32_t page_size, const uint8_t *data, uint32_t len,
                   uint8_t state, uint16_t *slot_out) {
    hdr_t h;
    if (!valid_page_size(page_size)) return PS_EINVAL;
    if (state != PS_SLOT_LIVE && state != PS_SLOT_OVERFLOW) return PS_EINVAL;
    if (len > PS_MAX_RECORD || (len > 0 && data == NULL)) return PS_EINVAL;
    if (aliases(page, page_size, data, len)) return PS_EINVAL;
    read_hdr(page, &h);
    int rc = sane_hdr(&h, page_size);
    if (rc != PS_OK) return rc;

    uint32_t slot = lowest_free_slot(page, &h);
    uint32_t slot_cost = slot == h.nslots ? PS_SLOT_SIZE : 0;
    if (slot == h.nslots && h.nslots >= PS_MAX_SLOTS) return PS_EFULL;
    uint32_t need = len + slot_cost;
    if (need > h.upper - h.lower) {
        if (need > h.upper - h.lower + h.frag) return PS_EFULL;
        rc = ps_page_compact(page, page_size);
        if (rc != PS_OK) return rc;
        read_hdr(page, &h);
    }
    uint32_t off = 0;
    if (len > 0) {
        h.upper -= len;
        off = h.upper;
        memcpy(page + off, data, len);
    }
    if (slot == h.nslots) {
        h.nslots++;
        h.lower += PS_SLOT_SIZE;
    }
    h.nlive++;
    set_slot(page, slot, off, len, state);
    write_hdr(page, &h);
    *slot_out = (uint16_t)slot;
    return PS_OK;
}

int ps_page_build_singles(uint8_t *pages, uint32_t page_size, uint32_t n, uint8_t type,
                          const uint32_t *pgnos, const uint32_t *nexts,
                          const uint8_t *data, const uint32_t *lens) {
    if (!valid_page_size(page_size)) return PS_EINVAL;
    if (n > 0 && (pages == NULL || pgnos == NULL || nexts == NULL || lens == NULL)) return PS_EINVAL;
    const uint8_t *at = data;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *page = pages + (size_t)i * page_size;
        uint16_t slot;
        ps_page_init(page, page_size, pgnos[i], type);
        int rc = ps_page_insert(page, page_size, at, lens[i], PS_SLOT_LIVE, &slot);
        if (rc != PS_OK) return rc;
        put32(page + PS_OFF_NEXT, nexts[i]);
        at += lens[i];
    }
    return PS_OK;
}

/* live_slot: bounds-check a slot id and the record it points at. */
static int live_slot(const uint8_t *page, uint32_t page_size, const hdr_t *h, uint32_t slot,
                     uint32_t *off, uint32_t *len) {
    int rc = sane_hdr(h, page_size);
    if (rc != PS_OK) return rc;
    if (slot >= h->nslots) return PS_ENOSLOT;
    const uint8_t *s = cslot_ptr(page, slot);
    if (s[4] == PS_SLOT_FREE) return PS_ENOSLOT;
    *off = get16(s);
    *len = get16(s + 2);
    if (*len > 0 && (*off < h->upper || (uint64_t)*off + *len > page_size)) return PS_ECORRUPT_SLOT;
    return PS_OK;
}

int ps_page_read(const uint8_t *page, uint32_t page_size, uint32_t slot, uint32_t *offset_out,
                 uint32_t *len_out, uint8_t *state_out) {
    hdr_t h;
    uint32_t off, len;
    if (!valid_page_size(page_size)) return PS_EINVAL;
    read_hdr(page, &h);
    int rc = live_slot(page, page_size, &h, slot, &off, &len);
    if (rc != PS_OK) return rc;
    *offset_out = off;
    *len_out = len;
    if (state_out) *state_out = cslot_ptr(page, slot)[4];
    return PS_OK;
}

int ps_page_read_many(const uint8_t *const *pages, uint32_t page_size, const uint16_t *slots,
                      uint32_t n, uint32_t *offsets_out, uint32_t *lens_out,
                      uint8_t *states_out, int32_t *status_out) {
    if (!valid_page_size(page_size)) return PS_EINVAL;
    if (n > 0 && (!pages || !slots || !offsets_out || !lens_out || !states_out || !status_out))
        return PS_EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t off = 0, len = 0;
        uint8_t st = 0;
        int rc = pages[i] ? ps_page_read(pages[i], page_size, slots[i], &off, &len, &st) : PS_EINVAL;
        status_out[i] = rc;
        offsets_out[i] = off;
        lens_out[i] = len;
        states_out[i] = st;
    }
    return PS_OK;
}

int ps_page_update(uint8_t *page, uint32_t page_size, uint32_t slot, const uint8_t *data,
                   uint32_t len, uint8_t state) {
    hdr_t h;
    uint32_t off, old;
    if (!valid_page_size(page_size)) return PS_EINVAL;
    if (state != PS_SLOT_LIVE && state != PS_SLOT_OVERFLOW) return PS_EINVAL;
    if (len > PS_MAX_RECORD || (len > 0 && data == NULL)) return PS_EINVAL;
    if (aliases(page, page_size, data, len)) return PS_EINVAL;
    read_hdr(page, &h);
    int rc = live_slot(page, page_size, &h, slot, &off, &old);
    if (rc != PS_OK) return rc;

    if (len <= old) {
        /* In place: the record keeps its offset and the tail becomes a hole.
        ** A record shrunk to nothing gives up its bytes entirely. */
        if (len > 0) memcpy(page + off, data, len);
        else off = 0;
        h.frag += old - len;
        set_slot(page, slot, off, len, state);
        write_hdr(page, &h);
        return PS_OK;
    }
    if (len > h.upper - h.lower + h.frag + old) return PS_EFULL;
    /* Give up the old bytes first, so compaction can reclaim them. */
    h.frag += old;
    set_slot(page, slot, 0, 0, state);
    write_hdr(page, &h);
    if (len > h.upper - h.lower) {
        rc = ps_page_compact(page, page_size);
        if (rc != PS_OK) return rc;
        read_hdr(page, &h);
    }
    h.upper -= len;
    memcpy(page + h.upper, data, len);
    set_slot(page, slot, h.upper, len, state);
    write_hdr(page, &h);
    return PS_OK;
}

int ps_page_delete(uint8_t *page, uint32_t page_size, uint32_t slot) {
    hdr_t h;
    uint32_t off, len;
    if (!valid_page_size(page_size)) return PS_EINVAL;
    read_hdr(page, &h);
    int rc = live_slot(page, page_size, &h, slot, &off, &len);
    if (rc != PS_OK) return rc;
    set_slot(page, slot, 0, 0, PS_SLOT_FREE);
    h.nlive--;
    h.frag += len;
    /* Trim trailing free slots so the array shrinks (and lower with it). */
    while (h.nslots > 0 && cslot_ptr(page, h.nslots - 1)[4] == PS_SLOT_FREE) {
        h.nslots--;
        h.lower -= PS_SLOT_SIZE;
    }
    if (h.nlive == 0) {
        /* An empty page needs no compaction to be whole again. */
        h.upper = page_size;
        h.frag = 0;
    } else if (len > 0 && off == h.upper) {
        /* The lowest record went: the record area starts higher. Cheap, and
        ** it keeps the contiguous gap as large as it can be without moving
        ** bytes. Holes just above the old record stay counted in frag. */
        h.upper += len;
        h.frag -= len;
    }
    write_hdr(page, &h);
    return PS_OK;
}

int ps_page_read_all(const uint8_t *page, uint32_t page_size, uint16_t *slots_out,
                     uint32_t *offsets_out, uint32_t *lens_out, uint8_t *states_out,
                     uint32_t cap, uint32_t *count_out) {
    hdr_t h;
    uint32_t n = 0;
    if (!valid_page_size(page_size)) return PS_EINVAL;
    read_hdr(page, &h);
    int rc = sane_hdr(&h, page_size);
    if (rc != PS_OK) return rc;
    if (cap < h.nlive) return PS_EINVAL;
    for (uint32_t i = 0; i < h.nslots; i++) {
        const uint8_t *s = cslot_ptr(page, i);
        if (s[4] == PS_SLOT_FREE) continue;
        uint32_t o = get16(s), l = get16(s + 2);
        if (l > 0 && (o < h.upper || (uint64_t)o + l > page_size)) return PS_ECORRUPT_SLOT;
        if (n >= cap) return PS_ECORRUPT_HEADER; /* more live slots than nlive */
        slots_out[n] = (uint16_t)i;
        offsets_out[n] = o;
        lens_out[n] = l;
        if (states_out) states_out[n] = s[4];
        n++;
    }
    *count_out = n;
    return PS_OK;
}

int ps_page_append_many(uint8_t *page, uint32_t page_size, const uint8_t *data,
                        const uint32_t *lens, uint32_t n) {
    hdr_t h;
    uint64_t total = 0;
    if (!valid_page_size(page_size)) return PS_EINVAL;
    read_hdr(page, &h);
    int rc = sane_hdr(&h, page_size);
    if (rc != PS_OK) return rc;
    for (uint32_t i = 0; i < n; i++) {
        if (lens[i] > PS_MAX_RECORD) return PS_EINVAL;
        total += lens[i];
    }
    if (total > 0 && (data == NULL || aliases(page, page_size, data, (uint32_t)total)))
        return PS_EINVAL;
    if ((uint64_t)h.nslots + n > PS_MAX_SLOTS) return PS_EFULL;
    uint64_t need = total + (uint64_t)n * PS_SLOT_SIZE;
    if (need > h.upper - h.lower) {
        if (need > (uint64_t)h.upper - h.lower + h.frag) return PS_EFULL;
        rc = ps_page_compact(page, page_size);
        if (rc != PS_OK) return rc;
        read_hdr(page, &h);
    }
    const uint8_t *src = data;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t off = 0;
        if (lens[i] > 0) {
            h.upper -= lens[i];
            off = h.upper;
            memcpy(page + off, src, lens[i]);
            src += lens[i];
        }
        set_slot(page, h.nslots, off, lens[i], PS_SLOT_LIVE);
        h.nslots++;
        h.nlive++;
        h.lower += PS_SLOT_SIZE;
    }
    write_hdr(page, &h);
    return PS_OK;
}
