/*
** harness.c: a sanitizer-built stress test of the page layer, in C.
**
** The Python tests go through cffi, where an out-of-bounds write may land in
** some other object and go unnoticed. Here every page is its own heap
** allocation of exactly page_size bytes, so AddressSanitizer catches a stray
** access at the first byte past it, and UBSan catches shifts and overflows.
** Seven parts, all seeded and deterministic:
**
**   ops     random operation sequences against an in-C model of the records;
**           after every operation the page must validate and every live
**           record must read back the model's bytes; and once, a 64 KiB
**           page filled to PS_MAX_SLOTS records (the slot-id limit).
**   images  random buffers and mutated valid pages through ps_page_validate;
**           the ones that validate go through every operation and must stay
**           valid, the ones that don't go through every operation anyway
**           (the header promises an error code, never a stray access).
**   crc     ps_crc32c (hardware path when present) == ps_crc32c_sw.
**   nodes   B+tree node pages (node.c): nodes built from a model and
**           decoded and searched against it; leaf insert/remove/set_rid
**           sequences against the model, the page valid after each; and
**           mutated or random node images through every node function,
**           the changes on copies.
**   map     a file of pages in one allocation read through ps_map_* (map.c)
**           against the page functions, the verified bitset checked; then
**           pages damaged behind the bits, which must still give codes.
**   delta   page deltas (delta.c) made from random edits and applied back,
**           and hostile delta bytes applied, which must give codes.
**   singles batch builds of one-record pages (ps_page_build_singles, then
**           ps_page_seal_many) equal to the same pages built one at a time.
**
** Usage: harness [ITERATIONS [SEED]]. Built and run by run_harness.sh.
*/
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagestore.h"

/* ---- deterministic randomness (xorshift64*) ---- */

static uint64_t rng_state;

static uint64_t rnd(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

/* below: uniform in [0, n), n > 0. */
static uint32_t below(uint32_t n) { return (uint32_t)(rnd() % n); }

/* fill_tag: the bytes of a record are a function of (tag, length), so the
** model stores two integers per record instead of a copy of its bytes. */
static void fill_tag(uint8_t *out, uint32_t tag, uint32_t len) {
    uint64_t s = 0x9E3779B97F4A7C15ULL * (tag + 1);
    for (uint32_t i = 0; i < len; i++) {
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        out[i] = (uint8_t)((s * 0x2545F4914F6CDD1DULL) >> 56);
    }
}

/* ---- failure reporting ---- */

static uint64_t failures;
static const char *context = "";

static void fail(const char *fmt, ...) {
    va_list ap;
    failures++;
    if (failures > 20) return; /* the first few tell the story */
    fprintf(stderr, "FAIL [%s] ", context);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void wr16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

/* ---- the model: slot id -> (live, state, length, tag) ---- */

typedef struct {
    uint8_t live, state;
    uint32_t len, tag;
} mrec_t;

static mrec_t model[PS_MAX_SLOTS + 8];
static uint32_t m_nslots;       /* highest live slot + 1 (trailing free slots trimmed) */
static uint32_t m_nlive;
static uint64_t m_bytes;        /* sum of live lengths */
static uint32_t next_tag;

/* Scratch buffers, heap-allocated once at the largest page size. */
static uint8_t *scratch, *data_buf, *backup;
static uint16_t *ra_slots;
static uint32_t *ra_offs, *ra_lens;
static uint8_t *ra_states;

static void model_reset(void) {
    memset(model, 0, sizeof model);
    m_nslots = m_nlive = 0;
    m_bytes = 0;
}

static uint32_t model_free(uint32_t page_size) {
    return page_size - PS_HEADER_SIZE - PS_SLOT_SIZE * m_nslots - (uint32_t)m_bytes;
}

static uint32_t model_lowest_free(void) {
    for (uint32_t i = 0; i < m_nslots; i++)
        if (!model[i].live) return i;
    return m_nslots;
}

/* model_max_insert: what ps_page_free_space must report as max insertable. */
static uint32_t model_max_insert(uint32_t page_size) {
    uint32_t total = model_free(page_size);
    if (m_nlive < m_nslots) return total > PS_MAX_RECORD ? PS_MAX_RECORD : total;
    if (m_nslots >= PS_MAX_SLOTS) return 0;
    uint32_t m = total >= PS_SLOT_SIZE ? total - PS_SLOT_SIZE : 0;
    return m > PS_MAX_RECORD ? PS_MAX_RECORD : m;
}

/* model_insert_fits: does a len-byte insert succeed (after compaction)? */
static int model_insert_fits(uint32_t page_size, uint32_t len) {
    uint32_t slot = model_lowest_free();
    if (slot == m_nslots && m_nslots >= PS_MAX_SLOTS) return 0;
    uint32_t need = len + (slot == m_nslots ? PS_SLOT_SIZE : 0);
    return need <= model_free(page_size);
}

static void model_set(uint32_t slot, uint32_t len, uint32_t tag, uint8_t state) {
    if (model[slot].live) {
        m_bytes -= model[slot].len;
    } else {
        m_nlive++;
    }
    model[slot] = (mrec_t){1, state, len, tag};
    m_bytes += len;
    if (slot >= m_nslots) m_nslots = slot + 1;
}

static void model_delete(uint32_t slot) {
    m_bytes -= model[slot].len;
    m_nlive--;
    model[slot].live = 0;
    while (m_nslots > 0 && !model[m_nslots - 1].live) m_nslots--;
}

/* pick_live: a random live slot; the model must have one. */
static uint32_t pick_live(void) {
    uint32_t k = below(m_nlive);
    for (uint32_t i = 0; i < m_nslots; i++)
        if (model[i].live && k-- == 0) return i;
    return 0;
}

/* ---- checking a page against the model ---- */

static uint64_t n_read_many;

/* check_read_many: ps_page_read_many over slots [0, n) of one page (every
** entry the same page, in a shuffled order, with one NULL page among them)
** must agree entry by entry with ps_page_read. Arrays are sized exactly n,
** so ASan catches a write past them. */
static void check_read_many(const uint8_t *page, uint32_t page_size, uint32_t n) {
    if (n == 0) return;
    const uint8_t **pages = malloc(sizeof *pages * n);
    uint16_t *slots = malloc(sizeof *slots * n);
    uint32_t *offs = malloc(sizeof *offs * n), *lens = malloc(sizeof *lens * n);
    uint8_t *states = malloc(n);
    int32_t *status = malloc(sizeof *status * n);
    uint32_t null_at = below(n);
    for (uint32_t i = 0; i < n; i++) {
        pages[i] = i == null_at ? NULL : page;
        slots[i] = (uint16_t)i;
    }
    for (uint32_t i = n; i > 1; i--) { /* shuffle, so the order is not the slot order */
        uint32_t j = below(i);
        uint16_t t = slots[i - 1]; slots[i - 1] = slots[j]; slots[j] = t;
    }
    int rc = ps_page_read_many(pages, page_size, slots, n, offs, lens, states, status);
    n_read_many++;
    if (rc != PS_OK) fail("read_many: %s", ps_strerror(rc));
    for (uint32_t i = 0; rc == PS_OK && i < n; i++) {
        uint32_t off = 0, len = 0;
        uint8_t st = 0;
        int want = pages[i] ? ps_page_read(page, page_size, slots[i], &off, &len, &st) : PS_EINVAL;
        if (status[i] != want) fail("read_many entry %u (slot %u): rc %d, read says %d", i, slots[i], status[i], want);
        else if (want == PS_OK && (offs[i] != off || lens[i] != len || states[i] != st))
            fail("read_many entry %u (slot %u) differs from read", i, slots[i]);
        else if (want != PS_OK && (offs[i] || lens[i] || states[i]))
            fail("read_many entry %u (slot %u) failed but left a non-zero offset, length or state", i, slots[i]);
    }
    if (ps_page_read_many(NULL, page_size, slots, n, offs, lens, states, status) != PS_EINVAL)
        fail("read_many accepted a NULL page array");
    if (ps_page_read_many(pages, page_size + 1, slots, n, offs, lens, states, status) != PS_EINVAL)
        fail("read_many accepted a bad page size");
    free(pages); free(slots); free(offs); free(lens); free(states); free(status);
}

static void check_against_model(const uint8_t *page, uint32_t page_size) {
    int rc = ps_page_validate(page, page_size);
    if (rc != PS_OK) {
        fail("validate: %s", ps_strerror(rc));
        return;
    }
    if (rd16(page + PS_OFF_NSLOTS) != m_nslots)
        fail("nslots %u, model %u", rd16(page + PS_OFF_NSLOTS), m_nslots);
    if (rd16(page + PS_OFF_NLIVE) != m_nlive)
        fail("nlive %u, model %u", rd16(page + PS_OFF_NLIVE), m_nlive);
    uint32_t contiguous, total, max_insert;
    rc = ps_page_free_space(page, page_size, &contiguous, &total, &max_insert);
    if (rc != PS_OK) fail("free_space: %s", ps_strerror(rc));
    if (total != model_free(page_size)) fail("total free %u, model %u", total, model_free(page_size));
    if (contiguous > total) fail("contiguous %u > total %u", contiguous, total);
    if (max_insert != model_max_insert(page_size))
        fail("max_insert %u, model %u", max_insert, model_max_insert(page_size));

    for (uint32_t i = 0; i < m_nslots + 2; i++) {
        uint32_t off = 0, len = 0;
        uint8_t st = 0;
        rc = ps_page_read(page, page_size, i, &off, &len, &st);
        if (i >= m_nslots || !model[i].live) {
            if (rc != PS_ENOSLOT) fail("read of dead slot %u: rc %d", i, rc);
            continue;
        }
        if (rc != PS_OK) { fail("read slot %u: %s", i, ps_strerror(rc)); continue; }
        if (len != model[i].len || st != model[i].state) {
            fail("slot %u: len %u state %u, model len %u state %u", i, len, st, model[i].len,
                 model[i].state);
            continue;
        }
        if (len > 0 && (off < PS_HEADER_SIZE || (uint64_t)off + len > page_size)) {
            fail("slot %u: record [%u, +%u) outside the page", i, off, len);
            continue;
        }
        fill_tag(scratch, model[i].tag, len);
        if (len > 0 && memcmp(page + off, scratch, len) != 0) fail("slot %u: bytes differ", i);
    }

    check_read_many(page, page_size, m_nslots + 2);

    uint32_t count = 0;
    rc = ps_page_read_all(page, page_size, ra_slots, ra_offs, ra_lens, ra_states, PS_MAX_SLOTS, &count);
    if (rc != PS_OK) { fail("read_all: %s", ps_strerror(rc)); return; }
    if (count != m_nlive) fail("read_all count %u, model %u", count, m_nlive);
    uint32_t k = 0;
    for (uint32_t i = 0; i < m_nslots && k < count; i++) {
        if (!model[i].live) continue;
        if (ra_slots[k] != i || ra_lens[k] != model[i].len || ra_states[k] != model[i].state)
            fail("read_all entry %u: slot %u len %u, model slot %u len %u", k, ra_slots[k], ra_lens[k],
                 i, model[i].len);
        k++;
    }
}

/* ---- part 1: operation sequences ---- */

static uint64_t n_ops;

/* pick_len: lengths that hit the interesting places: empty, small, large,
** exactly the capacity, and one past it. */
static uint32_t pick_len(uint32_t page_size, uint32_t cap) {
    switch (below(12)) {
    case 0: return 0;
    case 1: case 2: case 3: case 4: return 1 + below(32);
    case 5: case 6: return below(page_size / 8 + 1);
    case 7: return below(page_size / 2 + 1);
    case 8: return cap;
    case 9: return cap + 1;
    case 10: return cap > 4 ? cap - below(5) : cap;
    default: return cap + 1 + below(64);
    }
}

static uint32_t pick_page_size(void) {
    static const uint32_t sizes[] = {512, 512, 512, 1024, 2048, 4096, 4096, 8192, 16384, 32768, 65536};
    return sizes[below(sizeof sizes / sizeof sizes[0])];
}

static void op_insert(uint8_t *page, uint32_t page_size) {
    uint32_t cap = model_max_insert(page_size);
    uint32_t len = pick_len(page_size, cap);
    if (len > PS_MAX_RECORD) len = PS_MAX_RECORD;
    uint8_t state = below(8) == 0 ? PS_SLOT_OVERFLOW : PS_SLOT_LIVE;
    uint32_t tag = next_tag++;
    fill_tag(data_buf, tag, len);
    int fits = model_insert_fits(page_size, len);
    uint32_t want_slot = model_lowest_free();
    memcpy(backup, page, page_size);
    uint16_t slot = 0xFFFF;
    int rc = ps_page_insert(page, page_size, data_buf, len, state, &slot);
    if (fits) {
        if (rc != PS_OK) { fail("insert %u bytes (free %u): %s", len, model_free(page_size), ps_strerror(rc)); return; }
        if (slot != want_slot) fail("insert took slot %u, lowest free is %u", slot, want_slot);
        model_set(slot, len, tag, state);
    } else {
        if (rc != PS_EFULL) fail("insert %u bytes (free %u): rc %d, want EFULL", len, model_free(page_size), rc);
        if (memcmp(backup, page, page_size) != 0) fail("failed insert changed the page");
    }
}

static void op_update(uint8_t *page, uint32_t page_size) {
    if (m_nlive == 0) return;
    uint32_t slot = pick_live();
    uint32_t old = model[slot].len;
    uint32_t cap = model_free(page_size) + old; /* the most an update can take */
    uint32_t len;
    switch (below(4)) {
    case 0: len = old ? below(old + 1) : 0; break;       /* shrink */
    case 1: len = old + below(cap - old + 1); break;     /* grow within reach */
    default: len = pick_len(page_size, cap); break;      /* edges */
    }
    if (len > PS_MAX_RECORD) len = PS_MAX_RECORD;
    uint8_t state = below(8) == 0 ? PS_SLOT_OVERFLOW : PS_SLOT_LIVE;
    uint32_t tag = next_tag++;
    fill_tag(data_buf, tag, len);
    memcpy(backup, page, page_size);
    int rc = ps_page_update(page, page_size, slot, data_buf, len, state);
    if (len <= cap) {
        if (rc != PS_OK) { fail("update slot %u %u->%u bytes (free %u): %s", slot, old, len, model_free(page_size), ps_strerror(rc)); return; }
        model_set(slot, len, tag, state);
    } else {
        if (rc != PS_EFULL) fail("update slot %u to %u bytes (cap %u): rc %d, want EFULL", slot, len, cap, rc);
        if (memcmp(backup, page, page_size) != 0) fail("failed update changed the page");
    }
}

static void op_delete(uint8_t *page, uint32_t page_size) {
    if (m_nlive == 0) return;
    uint32_t slot = pick_live();
    int rc = ps_page_delete(page, page_size, slot);
    if (rc != PS_OK) { fail("delete slot %u: %s", slot, ps_strerror(rc)); return; }
    model_delete(slot);
    /* A second delete of the same slot must say so, and change nothing. */
    memcpy(backup, page, page_size);
    rc = ps_page_delete(page, page_size, slot);
    if (rc != PS_ENOSLOT) fail("second delete of slot %u: rc %d", slot, rc);
    if (memcmp(backup, page, page_size) != 0) fail("failed delete changed the page");
}

static void op_compact(uint8_t *page, uint32_t page_size) {
    int rc = ps_page_compact(page, page_size);
    if (rc != PS_OK) { fail("compact: %s", ps_strerror(rc)); return; }
    if (rd32(page + PS_OFF_FRAG) != 0) fail("frag %u after compaction", rd32(page + PS_OFF_FRAG));
    if (rd32(page + PS_OFF_UPPER) != page_size - m_bytes)
        fail("upper %u after compaction, want %u", rd32(page + PS_OFF_UPPER), (uint32_t)(page_size - m_bytes));
}

static void op_append_many(uint8_t *page, uint32_t page_size) {
    uint32_t lens[8], tags[8], n = below(8) + 1, total = 0;
    uint32_t cap = model_free(page_size);
    for (uint32_t i = 0; i < n; i++) {
        lens[i] = below(3) == 0 ? pick_len(page_size, cap / n) : below(48);
        if (lens[i] > PS_MAX_RECORD) lens[i] = PS_MAX_RECORD;
        tags[i] = next_tag++;
        fill_tag(data_buf + total, tags[i], lens[i]);
        total += lens[i];
    }
    int fits = m_nslots + n <= PS_MAX_SLOTS && (uint64_t)total + n * PS_SLOT_SIZE <= cap;
    memcpy(backup, page, page_size);
    int rc = ps_page_append_many(page, page_size, data_buf, lens, n);
    if (fits) {
        if (rc != PS_OK) { fail("append_many of %u (%u bytes, free %u): %s", n, total, cap, ps_strerror(rc)); return; }
        uint32_t first = m_nslots;
        for (uint32_t i = 0; i < n; i++) model_set(first + i, lens[i], tags[i], PS_SLOT_LIVE);
    } else {
        if (rc != PS_EFULL) fail("append_many of %u (%u bytes, free %u): rc %d, want EFULL", n, total, cap, rc);
        if (memcmp(backup, page, page_size) != 0) fail("failed append_many changed the page");
    }
}

static void op_checksum(uint8_t *page, uint32_t page_size) {
    uint32_t pgno = rd32(page + PS_OFF_PGNO);
    ps_page_set_checksum(page, page_size);
    int rc = ps_page_verify(page, page_size, pgno);
    if (rc != PS_OK) fail("verify after set_checksum: %s", ps_strerror(rc));
    rc = ps_page_verify(page, page_size, pgno + 1);
    if (rc != PS_EPGNO) fail("verify with the wrong pgno: rc %d, want EPGNO", rc);
    uint32_t at = 4 + below(page_size - 4);
    uint8_t bit = (uint8_t)(1u << below(8));
    page[at] ^= bit;
    rc = ps_page_verify(page, page_size, pgno);
    if (rc != PS_ECHECKSUM) fail("verify after flipping byte %u: rc %d, want ECHECKSUM", at, rc);
    page[at] ^= bit;
}

/* fill_many: fill a large page with small records fast, so sequences reach
** the slot-count limit and the full-page paths without thousands of steps. */
static void op_fill_many(uint8_t *page, uint32_t page_size) {
    uint32_t lens[64], tags[64], total = 0, n = 64;
    uint32_t each = below(3) == 0 ? 0 : 1 + below(4);
    for (uint32_t i = 0; i < n; i++) {
        lens[i] = each;
        tags[i] = next_tag++;
        fill_tag(data_buf + total, tags[i], each);
        total += each;
    }
    if (m_nslots + n > PS_MAX_SLOTS || total + n * PS_SLOT_SIZE > model_free(page_size)) return;
    int rc = ps_page_append_many(page, page_size, data_buf, lens, n);
    if (rc != PS_OK) { fail("fill_many: %s", ps_strerror(rc)); return; }
    uint32_t first = m_nslots;
    for (uint32_t i = 0; i < n; i++) model_set(first + i, lens[i], tags[i], PS_SLOT_LIVE);
}

static void run_sequence(uint32_t page_size, uint32_t nops) {
    uint8_t *page = malloc(page_size);
    uint32_t pgno = (uint32_t)rnd();
    if (ps_page_init(page, page_size, pgno, (uint8_t)below(7)) != PS_OK) fail("init %u", page_size);
    model_reset();
    check_against_model(page, page_size);
    /* Each sequence leans towards growing or shrinking, so pages spend time
    ** both nearly empty and nearly full. */
    uint32_t bias = below(3);
    for (uint32_t k = 0; k < nops && failures == 0; k++) {
        uint32_t r = below(100);
        if (bias == 0 && r < 20) r += 30; /* grow: fewer deletes */
        if (r < 30) op_insert(page, page_size);
        else if (r < 48) op_update(page, page_size);
        else if (r < 66 - (bias == 1 ? 0 : 6)) op_delete(page, page_size);
        else if (r < 72) op_compact(page, page_size);
        else if (r < 80) op_append_many(page, page_size);
        else if (r < 82) op_checksum(page, page_size);
        else if (r < 84 && page_size >= 16384) op_fill_many(page, page_size);
        else if (r < 90) {
            /* read a dead slot: must be ENOSLOT */
            uint32_t off, len;
            uint32_t s = m_nslots + below(4);
            if (m_nlive < m_nslots && below(2)) s = model_lowest_free();
            if (ps_page_read(page, page_size, s, &off, &len, NULL) != PS_ENOSLOT)
                fail("read of dead slot %u did not say ENOSLOT", s);
        } else op_insert(page, page_size);
        n_ops++;
        check_against_model(page, page_size);
    }
    free(page);
}

/* ---- part 2: random and mutated page images ---- */

static uint64_t n_images, n_images_valid, n_image_ops, n_targeted;

/* build_valid: a valid page reached by random operations (no model). */
static void build_valid(uint8_t *page, uint32_t page_size) {
    uint16_t slot;
    ps_page_init(page, page_size, (uint32_t)rnd(), (uint8_t)below(7));
    uint32_t steps = below(60);
    for (uint32_t k = 0; k < steps; k++) {
        uint32_t nslots = rd16(page + PS_OFF_NSLOTS);
        uint32_t r = below(10), len = below(3) ? below(40) : below(page_size / 4);
        fill_tag(data_buf, next_tag++, len);
        if (r < 6) ps_page_insert(page, page_size, data_buf, len, PS_SLOT_LIVE + below(2), &slot);
        else if (r < 8 && nslots) ps_page_update(page, page_size, below(nslots), data_buf, len, PS_SLOT_LIVE);
        else if (nslots) ps_page_delete(page, page_size, below(nslots));
    }
    if (below(4) == 0) ps_page_compact(page, page_size);
    if (below(2)) ps_page_set_checksum(page, page_size);
}

/* An interesting value for a header or slot field. */
static uint32_t edge_value(uint32_t page_size, uint32_t cur) {
    switch (below(10)) {
    case 0: return 0;
    case 1: return 1;
    case 2: return page_size;
    case 3: return page_size - 1;
    case 4: return 0xFFFF;
    case 5: return 0xFFFFFFFFu;
    case 6: return cur + 1 + below(8);
    case 7: return cur - 1 - below(8);
    case 8: return cur + PS_SLOT_SIZE;
    default: return (uint32_t)rnd();
    }
}

/* Verdicts a mutation promises for the page it leaves (when it was the only
** change to a valid page). */
enum { ANY = 0, STAYS_VALID = 1, BREAKS = 2 };

static uint8_t *slot_at(uint8_t *page, uint32_t i) { return page + PS_HEADER_SIZE + PS_SLOT_SIZE * i; }

/* pick_slot: a random slot whose state is (or is not) FREE and whose length
** is at least min_len; -1 if there is none. */
static int32_t pick_slot(uint8_t *page, uint32_t nslots, int want_free, uint32_t min_len) {
    if (nslots == 0) return -1;
    uint32_t start = below(nslots);
    for (uint32_t k = 0; k < nslots; k++) {
        uint32_t i = (start + k) % nslots;
        uint8_t *s = slot_at(page, i);
        if ((s[4] == PS_SLOT_FREE) == want_free && rd16(s + 2) >= min_len) return (int32_t)i;
    }
    return -1;
}

/* mutate: one change to a page image, returning what it promises. Blind
** damage (bit flips, random bytes, edge values in fields) promises nothing:
** validate must merely not crash. Targeted changes break exactly one clause
** of the validity rule while keeping the rest consistent (so validate must
** reject them), or keep the page valid on purpose (so validate must accept
** them, and the operations meet valid but unusual pages). */
static int mutate(uint8_t *page, uint32_t page_size) {
    uint32_t nslots = rd16(page + PS_OFF_NSLOTS);
    uint32_t lower = rd16(page + PS_OFF_LOWER), upper = rd32(page + PS_OFF_UPPER);
    uint32_t frag = rd32(page + PS_OFF_FRAG);
    int32_t i, j;
    /* After earlier blind damage the header may lie: then only blind damage
    ** that follows no slot is safe for the harness itself. */
    int sane = lower == PS_HEADER_SIZE + PS_SLOT_SIZE * nslots && lower <= upper && upper <= page_size;
    switch (sane ? below(24) : below(4)) {
    /* ---- blind damage ---- */
    case 0: { /* bit flips anywhere */
        uint32_t n = 1 + below(4);
        while (n--) page[below(page_size)] ^= (uint8_t)(1u << below(8));
        return ANY;
    }
    case 1: /* a bit flip in the header or slot array */
        page[below(lower + 8 < page_size ? lower + 8 : page_size)] ^= (uint8_t)(1u << below(8));
        return ANY;
    case 2: /* a byte overwrite in the header */
        page[below(PS_HEADER_SIZE)] = (uint8_t)rnd();
        return ANY;
    case 3: { /* a header field set to an edge value */
        static const uint8_t offs16[] = {PS_OFF_NSLOTS, PS_OFF_NLIVE, PS_OFF_LOWER};
        static const uint8_t offs32[] = {PS_OFF_UPPER, PS_OFF_FRAG};
        if (below(2)) {
            uint8_t o = offs16[below(3)];
            wr16(page + o, edge_value(page_size, rd16(page + o)));
        } else {
            uint8_t o = offs32[below(2)];
            wr32(page + o, edge_value(page_size, rd32(page + o)));
        }
        return ANY;
    }
    case 4: /* a slot's offset or length to an edge value (truncated lengths included) */
        if ((i = pick_slot(page, nslots, below(4) == 0, 0)) < 0) return ANY;
        {
            uint8_t *f = slot_at(page, i) + below(2) * 2;
            wr16(f, edge_value(page_size, rd16(f)));
        }
        return ANY;
    case 5: { /* random bytes over a random range */
        uint32_t at = below(page_size), n = 1 + below(64);
        for (uint32_t k = 0; k < n && at + k < page_size; k++) page[at + k] = (uint8_t)rnd();
        return ANY;
    }

    /* ---- targeted: the page stays valid ---- */
    case 6: /* swap two live slot entries */
        if ((i = pick_slot(page, nslots, 0, 0)) < 0 || (j = pick_slot(page, nslots, 0, 0)) < 0) return ANY;
        {
            uint8_t t[PS_SLOT_SIZE];
            memcpy(t, slot_at(page, i), PS_SLOT_SIZE);
            memcpy(slot_at(page, i), slot_at(page, j), PS_SLOT_SIZE);
            memcpy(slot_at(page, j), t, PS_SLOT_SIZE);
        }
        return STAYS_VALID;
    case 7: { /* shorten a record: its tail becomes a hole counted in frag */
        if ((i = pick_slot(page, nslots, 0, 1)) < 0) return ANY;
        uint32_t len = rd16(slot_at(page, i) + 2), d = 1 + below(len);
        wr16(slot_at(page, i) + 2, len - d);
        if (len == d) wr16(slot_at(page, i), 0);
        wr32(page + PS_OFF_FRAG, frag + d);
        return STAYS_VALID;
    }
    case 8: { /* move upper down: the gap is counted in frag */
        if (upper <= lower) return ANY;
        uint32_t d = 1 + below(upper - lower);
        wr32(page + PS_OFF_UPPER, upper - d);
        wr32(page + PS_OFF_FRAG, frag + d);
        return STAYS_VALID;
    }
    case 9: /* fields the page layer does not interpret */
        page[PS_OFF_TYPE] = (uint8_t)rnd();
        page[PS_OFF_FLAGS] = (uint8_t)rnd();
        wr32(page + PS_OFF_NEXT, (uint32_t)rnd());
        wr32(page + PS_OFF_PGNO, (uint32_t)rnd());
        page[PS_OFF_LSN + below(8)] = (uint8_t)rnd();
        return STAYS_VALID;
    case 10: /* a live record flips between LIVE and OVERFLOW */
        if ((i = pick_slot(page, nslots, 0, 0)) < 0) return ANY;
        slot_at(page, i)[4] ^= PS_SLOT_LIVE ^ PS_SLOT_OVERFLOW;
        return STAYS_VALID;
    case 11: /* a byte of free gap or of a record's contents */
        if (upper > lower) page[lower + below(upper - lower)] = (uint8_t)rnd();
        if (upper < page_size) page[upper + below(page_size - upper)] = (uint8_t)rnd();
        return STAYS_VALID;

    /* ---- targeted: exactly one clause of the rule breaks ---- */
    case 12: /* reserved header bytes */
        page[36 + below(4)] = (uint8_t)(1 + below(255));
        return BREAKS;
    case 13: /* a slot's reserved byte */
        if ((i = pick_slot(page, nslots, below(2), 0)) < 0) return ANY;
        slot_at(page, i)[5] = (uint8_t)(1 + below(255));
        return BREAKS;
    case 14: /* a state that is not defined */
        if ((i = pick_slot(page, nslots, 0, 0)) < 0) return ANY;
        slot_at(page, i)[4] = (uint8_t)(3 + below(253));
        return BREAKS;
    case 15: { /* the last slot freed without trimming, counts kept right */
        if (nslots == 0) return ANY;
        uint8_t *s = slot_at(page, nslots - 1);
        wr32(page + PS_OFF_FRAG, frag + rd16(s + 2));
        wr16(page + PS_OFF_NLIVE, rd16(page + PS_OFF_NLIVE) - 1);
        memset(s, 0, PS_SLOT_SIZE);
        return BREAKS;
    }
    case 16: { /* two records overlap, byte counts kept right */
        if ((i = pick_slot(page, nslots, 0, 1)) < 0 || (j = pick_slot(page, nslots, 0, 1)) < 0 || i == j)
            return ANY;
        uint32_t lo = rd16(slot_at(page, j)), li = rd16(slot_at(page, i) + 2);
        uint32_t lj = rd16(slot_at(page, j) + 2);
        /* Start record i inside record j, keeping it inside the page. */
        uint32_t at = lo + below(lj);
        if (at + li > page_size) return ANY;
        wr16(slot_at(page, i), at);
        return BREAKS;
    }
    case 17: /* a free slot with a length */
        if ((i = pick_slot(page, nslots, 1, 0)) < 0) return ANY;
        wr16(slot_at(page, i) + 2 * below(2), 1 + below(page_size - 1));
        return BREAKS;
    case 18: /* a zero-length record with an offset */
        if ((i = pick_slot(page, nslots, 0, 0)) < 0 || rd16(slot_at(page, i) + 2) != 0) return ANY;
        wr16(slot_at(page, i), 1 + below(page_size - 1));
        return BREAKS;
    case 19: /* lower off by a slot or a byte */
        wr16(page + PS_OFF_LOWER, lower + (below(2) ? PS_SLOT_SIZE : 1) * (below(2) ? 1 : -1));
        return BREAKS;
    case 20: /* nlive off by one */
        wr16(page + PS_OFF_NLIVE, rd16(page + PS_OFF_NLIVE) + (below(2) ? 1 : -1));
        return BREAKS;
    case 21: /* frag off */
        wr32(page + PS_OFF_FRAG, frag + (below(2) ? 1 + below(100) : -1 - below(100)));
        return BREAKS;
    case 22: { /* a record starting below upper (in the gap or the slot array) */
        if ((i = pick_slot(page, nslots, 0, 1)) < 0 || upper == 0) return ANY;
        wr16(slot_at(page, i), below(upper));
        return BREAKS;
    }
    default: { /* a record running past the end of the page */
        if ((i = pick_slot(page, nslots, 0, 1)) < 0) return ANY;
        uint32_t off = rd16(slot_at(page, i)), room = page_size - off;
        if (room >= 0xFFFF) return ANY;
        wr16(slot_at(page, i) + 2, room + 1 + below(0xFFFF - room));
        return BREAKS;
    }
    }
}

/* random_image: random bytes, sometimes with a plausible header. */
static void random_image(uint8_t *page, uint32_t page_size) {
    for (uint32_t i = 0; i < page_size; i++) page[i] = (uint8_t)rnd();
    if (below(2)) {
        uint32_t nslots = below(page_size < 4096 ? 12 : 64);
        wr16(page + PS_OFF_NSLOTS, nslots);
        wr16(page + PS_OFF_NLIVE, below(nslots + 1));
        wr16(page + PS_OFF_LOWER, PS_HEADER_SIZE + PS_SLOT_SIZE * nslots);
        wr32(page + PS_OFF_UPPER, page_size - below(page_size / 2));
        wr32(page + PS_OFF_FRAG, below(64));
        wr32(page + 36, 0);
        for (uint32_t i = 0; i < nslots; i++) {
            uint8_t *s = page + PS_HEADER_SIZE + PS_SLOT_SIZE * i;
            s[4] = (uint8_t)below(3);
            s[5] = 0;
            wr16(s + 2, below(64));
            wr16(s, page_size - below(page_size / 2));
        }
    }
}

/* battery: every operation on the image. When the page was valid it must
** stay valid and answer sensibly; otherwise only memory safety is checked
** (by the sanitizers) and the results are ignored. */
static void battery(uint8_t *page, uint32_t page_size, int valid) {
    uint32_t nslots = rd16(page + PS_OFF_NSLOTS);
    uint32_t off, len, c = 0, t = 0, m = 0, count = 0;
    uint8_t st;
    uint16_t slot;
    int rc;
#define EXPECT_VALID(what)                                                           \
    do {                                                                             \
        n_image_ops++;                                                               \
        if (valid && (rc = ps_page_validate(page, page_size)) != PS_OK)              \
            fail("valid image broken by %s: %s", what, ps_strerror(rc));             \
    } while (0)

    for (uint32_t i = 0; i < nslots + 2 && i < PS_MAX_SLOTS + 2; i++) {
        rc = ps_page_read(page, page_size, i, &off, &len, &st);
        if (valid && rc == PS_OK && len > 0 && (off < PS_HEADER_SIZE || (uint64_t)off + len > page_size))
            fail("read of slot %u on a valid image points outside the page", i);
        if (valid && rc != PS_OK && rc != PS_ENOSLOT) fail("read of slot %u on a valid image: rc %d", i, rc);
        if (rc == PS_OK && len > 0 && (uint64_t)off + len <= page_size) memcpy(scratch, page + off, len);
    }
    check_read_many(page, page_size, nslots + 2 < PS_MAX_SLOTS + 2 ? nslots + 2 : PS_MAX_SLOTS + 2);
    n_image_ops++;
    rc = ps_page_free_space(page, page_size, &c, &t, &m);
    if (valid && rc != PS_OK) fail("free_space on a valid image: rc %d", rc);
    rc = ps_page_read_all(page, page_size, ra_slots, ra_offs, ra_lens, ra_states, PS_MAX_SLOTS, &count);
    if (valid && rc != PS_OK) fail("read_all on a valid image: rc %d", rc);
    EXPECT_VALID("read_all");
    {
        /* The Python wrapper sizes its arrays by the header's nlive, which a
        ** corrupt page may understate: arrays of exactly that size catch a
        ** read_all that writes past its cap. */
        uint32_t cap = rd16(page + PS_OFF_NLIVE), got = 0;
        uint16_t *sl = malloc(sizeof *sl * (cap ? cap : 1));
        uint32_t *of = malloc(sizeof *of * (cap ? cap : 1)), *ln = malloc(sizeof *ln * (cap ? cap : 1));
        uint8_t *stt = malloc(cap ? cap : 1);
        int rc2 = ps_page_read_all(page, page_size, sl, of, ln, stt, cap, &got);
        if (valid && (rc2 != PS_OK || got != count)) fail("read_all with cap nlive: rc %d, %u of %u", rc2, got, count);
        free(sl); free(of); free(ln); free(stt);
    }

    uint32_t lens_try[] = {0, 1, 7, 100, page_size / 3, valid && rc == PS_OK ? m : 5, m + 1};
    for (uint32_t k = 0; k < sizeof lens_try / sizeof lens_try[0]; k++) {
        uint32_t l = lens_try[k] > PS_MAX_RECORD ? PS_MAX_RECORD : lens_try[k];
        fill_tag(data_buf, next_tag++, l);
        rc = ps_page_insert(page, page_size, data_buf, l, PS_SLOT_LIVE, &slot);
        if (valid && rc != PS_OK && rc != PS_EFULL) fail("insert on a valid image: rc %d", rc);
        EXPECT_VALID("insert");
    }
    nslots = rd16(page + PS_OFF_NSLOTS);
    for (uint32_t k = 0; k < 6; k++) {
        uint32_t s = nslots ? below(nslots + 1) : 0, l = below(3) ? below(64) : below(page_size / 2);
        fill_tag(data_buf, next_tag++, l);
        rc = ps_page_update(page, page_size, s, data_buf, l, PS_SLOT_LIVE + below(2));
        if (valid && rc != PS_OK && rc != PS_EFULL && rc != PS_ENOSLOT) fail("update on a valid image: rc %d", rc);
        EXPECT_VALID("update");
    }
    for (uint32_t k = 0; k < 4; k++) {
        nslots = rd16(page + PS_OFF_NSLOTS);
        rc = ps_page_delete(page, page_size, nslots ? below(nslots + 1) : 0);
        if (valid && rc != PS_OK && rc != PS_ENOSLOT) fail("delete on a valid image: rc %d", rc);
        EXPECT_VALID("delete");
    }
    uint32_t alens[3] = {below(20), 0, below(200)};
    fill_tag(data_buf, next_tag++, alens[0] + alens[1] + alens[2]);
    rc = ps_page_append_many(page, page_size, data_buf, alens, 3);
    if (valid && rc != PS_OK && rc != PS_EFULL) fail("append_many on a valid image: rc %d", rc);
    EXPECT_VALID("append_many");
    rc = ps_page_compact(page, page_size);
    if (valid && rc != PS_OK) fail("compact on a valid image: rc %d", rc);
    EXPECT_VALID("compact");
    ps_page_set_checksum(page, page_size);
    rc = ps_page_verify(page, page_size, rd32(page + PS_OFF_PGNO));
    if (valid && rc != PS_OK) fail("verify on a valid image after set_checksum: rc %d", rc);
#undef EXPECT_VALID
}

static void run_image(uint32_t page_size) {
    uint8_t *page = malloc(page_size);
    int expect = ANY;
    if (below(8) == 0) {
        random_image(page, page_size);
    } else {
        build_valid(page, page_size);
        int rc = ps_page_validate(page, page_size);
        if (rc != PS_OK) fail("a page built by operations does not validate: %s", ps_strerror(rc));
        uint32_t n = below(3) == 0 ? 2 + below(3) : 1;
        for (uint32_t k = 0; k < n; k++) expect = mutate(page, page_size);
        if (n > 1) expect = ANY;
        n_targeted += expect != ANY;
    }
    n_images++;
    int rc = ps_page_validate(page, page_size);
    if (rc == PS_OK) n_images_valid++;
    else if (rc < PS_ECORRUPT_HEADER || rc > PS_ECORRUPT_SPACE)
        fail("validate of a bad image returned %d, not a corruption code", rc);
    if (expect == STAYS_VALID && rc != PS_OK) fail("a valid-preserving mutation was rejected: %s", ps_strerror(rc));
    if (expect == BREAKS && rc == PS_OK) fail("a rule-breaking mutation was accepted");
    /* verify must agree with validate once the checksum and pgno are right. */
    if (below(4) == 0) {
        ps_page_set_checksum(page, page_size);
        int vrc = ps_page_verify(page, page_size, rd32(page + PS_OFF_PGNO));
        if (vrc != rc) fail("verify says %d, validate says %d", vrc, rc);
    }
    battery(page, page_size, rc == PS_OK);
    free(page);
}

/* ---- the slot-count limit ----
** Only a 64 KiB page can run out of slot ids before bytes: PS_MAX_SLOTS
** zero-length records leave exactly one slot entry's worth of free space,
** which must not be handed out (lower would no longer fit 16 bits). */

static void run_slot_limit(void) {
    uint32_t page_size = PS_MAX_PAGE_SIZE, c, t, m;
    uint8_t *page = malloc(page_size);
    uint32_t *lens = calloc(PS_MAX_SLOTS + 1, sizeof *lens);
    uint16_t slot;
    ps_page_init(page, page_size, 9, PS_PAGE_HEAP);
    model_reset();
    if (ps_page_append_many(page, page_size, data_buf, lens, PS_MAX_SLOTS + 1) != PS_EFULL)
        fail("append_many of PS_MAX_SLOTS + 1 records did not say EFULL");
    if (ps_page_append_many(page, page_size, data_buf, lens, PS_MAX_SLOTS) != PS_OK)
        fail("append_many of PS_MAX_SLOTS empty records failed");
    for (uint32_t i = 0; i < PS_MAX_SLOTS; i++) model_set(i, 0, 0, PS_SLOT_LIVE);
    check_against_model(page, page_size);
    ps_page_free_space(page, page_size, &c, &t, &m);
    if (t != page_size - PS_HEADER_SIZE - PS_SLOT_SIZE * PS_MAX_SLOTS || m != 0)
        fail("full slot array: total %u, max_insert %u", t, m);
    if (ps_page_insert(page, page_size, data_buf, 0, PS_SLOT_LIVE, &slot) != PS_EFULL)
        fail("insert past PS_MAX_SLOTS did not say EFULL");
    if (ps_page_append_many(page, page_size, data_buf, lens, 1) != PS_EFULL)
        fail("append_many past PS_MAX_SLOTS did not say EFULL");
    if (ps_page_delete(page, page_size, 77) != PS_OK) fail("delete slot 77");
    model_delete(77);
    if (ps_page_insert(page, page_size, data_buf, 0, PS_SLOT_LIVE, &slot) != PS_OK || slot != 77)
        fail("insert after a delete at the slot limit did not reuse slot 77");
    model_set(77, 0, 0, PS_SLOT_LIVE);
    check_against_model(page, page_size);
    n_ops += 6;
    free(lens);
    free(page);
}

/* ---- part 2b: batch builds of one-record pages ----
** ps_page_build_singles then ps_page_seal_many must give, page for page, the
** bytes that ps_page_init, ps_page_insert, the next field, the lsn and
** ps_page_set_checksum give one page at a time; and a record too large for
** a page is PS_EFULL. */

static uint64_t n_singles;

static void run_singles(uint32_t page_size) {
    uint32_t n = 1 + below(2), pgnos[2], nexts[2], lens[2], total = 0;  /* data_buf holds two pages */
    uint32_t room = page_size - PS_HEADER_SIZE - PS_SLOT_SIZE;
    uint64_t lsn = rnd();
    uint8_t type = (uint8_t)below(7);
    for (uint32_t i = 0; i < n; i++) {
        pgnos[i] = (uint32_t)rnd();
        nexts[i] = i + 1 < n ? (uint32_t)rnd() : 0;
        lens[i] = below(3) ? room : below(room + 1);
        fill_tag(data_buf + total, next_tag++, lens[i]);
        total += lens[i];
    }
    uint8_t *pages = malloc((size_t)n * page_size);
    uint8_t *one = malloc(page_size);
    int rc = ps_page_build_singles(pages, page_size, n, type, pgnos, nexts, data_buf, lens);
    if (rc != PS_OK) fail("build_singles of %u pages: %s", n, ps_strerror(rc));
    rc = ps_page_seal_many(pages, page_size, n, lsn);
    if (rc != PS_OK) fail("seal_many of %u pages: %s", n, ps_strerror(rc));
    uint32_t at = 0;
    for (uint32_t i = 0; i < n && failures == 0; i++) {
        uint16_t slot;
        ps_page_init(one, page_size, pgnos[i], type);
        if (ps_page_insert(one, page_size, data_buf + at, lens[i], PS_SLOT_LIVE, &slot) != PS_OK || slot != 0)
            fail("insert of %u bytes into an empty page", lens[i]);
        wr32(one + PS_OFF_NEXT, nexts[i]);
        wr32(one + PS_OFF_LSN, (uint32_t)lsn);
        wr32(one + PS_OFF_LSN + 4, (uint32_t)(lsn >> 32));
        ps_page_set_checksum(one, page_size);
        if (memcmp(one, pages + (size_t)i * page_size, page_size) != 0)
            fail("build_singles page %u of %u differs from one built alone", i, n);
        if (ps_page_verify(pages + (size_t)i * page_size, page_size, pgnos[i]) != PS_OK)
            fail("build_singles page %u does not verify", i);
        at += lens[i];
    }
    lens[0] = room + 1;
    if (ps_page_build_singles(pages, page_size, 1, type, pgnos, nexts, data_buf, lens) != PS_EFULL)
        fail("build_singles of a record larger than a page is not EFULL");
    if (ps_page_build_singles(pages, 1000, 1, type, pgnos, nexts, data_buf, lens) != PS_EINVAL
        || ps_page_seal_many(pages, 1000, 1, lsn) != PS_EINVAL)
        fail("batch builds take a page size that is not a power of two");
    if (ps_page_build_singles(pages, page_size, 1, type, NULL, nexts, data_buf, lens) != PS_EINVAL)
        fail("build_singles takes a NULL array");
    free(pages);
    free(one);
    n_singles++;
}

/* ---- part 3: CRC32C paths ---- */

static uint64_t n_crc;

static void run_crc(void) {
    static const uint8_t vec[] = "123456789";
    if (ps_crc32c(0, vec, 9) != 0xE3069283u) fail("ps_crc32c(\"123456789\") = %08x", ps_crc32c(0, vec, 9));
    if (ps_crc32c_sw(0, vec, 9) != 0xE3069283u) fail("ps_crc32c_sw(\"123456789\") = %08x", ps_crc32c_sw(0, vec, 9));
    if (ps_crc32c(0, vec, 0) != 0 || ps_crc32c_sw(0, NULL, 0) != 0) fail("crc of nothing is not 0");
    for (uint32_t k = 0; k < 2000; k++) {
        uint32_t len = below(4) ? below(100) : below(70000);
        uint32_t start = below(8); /* unaligned starts */
        for (uint32_t i = 0; i < len + start; i++) scratch[i] = (uint8_t)rnd();
        uint32_t seed = below(2) ? 0 : (uint32_t)rnd();
        uint32_t hw = ps_crc32c(seed, scratch + start, len);
        uint32_t sw = ps_crc32c_sw(seed, scratch + start, len);
        if (hw != sw) fail("crc32c paths differ on %u bytes: %08x vs %08x", len, hw, sw);
        /* Continuing a CRC over a split equals the CRC of the whole. */
        uint32_t cut = len ? below(len + 1) : 0;
        uint32_t part = ps_crc32c(ps_crc32c(seed, scratch + start, cut), scratch + start + cut, len - cut);
        if (part != hw) fail("crc32c over a split at %u of %u differs", cut, len);
        n_crc++;
    }
}

/* ---- part 4: B+tree nodes (node.c) ----
** Nodes built with ps_node_build from a model (a sorted array of keys, each
** its own allocation of exactly its length), leaf changes in place against
** that model, and mutated node images through every node function. Every
** array handed to C is allocated at exactly the size it promises, so a
** decode that writes past its cap or a build that reads past key_lens is an
** ASan report, not a silent overwrite. */

static uint64_t n_node_builds, n_node_ops, n_node_searches, n_node_compactions;
static uint64_t n_node_images, n_node_sound, n_node_promised;

/* A node entry in the model. Leaf: key and rid. Internal: separator key j
** in entry j, and the children in nm_child[0..nkeys]. */
typedef struct {
    uint8_t *key;
    uint32_t klen, pgno;
    uint16_t slot;
} nent_t;

static nent_t *nm;          /* capacity PS_MAX_SLOTS + 1 */
static uint32_t nm_n;       /* keys in the model */
static uint32_t *nm_child;  /* internal nodes: nm_n + 1 children */
static uint8_t *nkey_buf;   /* scratch for one key, PS_MAX_PAGE_SIZE bytes */

static int key_cmp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl) {
    uint32_t m = al < bl ? al : bl;
    for (uint32_t i = 0; i < m; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return al < bl ? -1 : al > bl;
}

static int nent_cmp(const void *x, const void *y) {
    const nent_t *a = x, *b = y;
    return key_cmp(a->key, a->klen, b->key, b->klen);
}

/* nm_bisect: bisect_left (after = 0) or bisect_right (after = 1) on the model's keys. */
static uint32_t nm_bisect(const uint8_t *k, uint32_t kl, int after) {
    uint32_t lo = 0, hi = nm_n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(nm[mid].key, nm[mid].klen, k, kl);
        if (c < 0 || (after && c == 0)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void nm_clear(void) {
    for (uint32_t i = 0; i < nm_n; i++) free(nm[i].key);
    nm_n = 0;
}

static uint8_t *dup_key(const uint8_t *k, uint32_t kl) {
    uint8_t *p = malloc(kl ? kl : 1);
    if (kl) memcpy(p, k, kl);
    return p;
}

/* nm_cost: bytes the model's node takes after the header (slots and records). */
static uint64_t nm_cost(int leaf) {
    uint64_t c = leaf ? 0 : PS_SLOT_SIZE + PS_NODE_CHILD_SIZE;
    for (uint32_t i = 0; i < nm_n; i++)
        c += PS_SLOT_SIZE + (leaf ? PS_NODE_RID_SIZE : PS_NODE_CHILD_SIZE) + nm[i].klen;
    return c;
}

/* random_key: a random key of at most max bytes into out, returning its
** length: mostly short over a small alphabet (prefixes and equal keys),
** sometimes random bytes, rarely long. */
static uint32_t random_key(uint8_t *out, uint32_t max) {
    static const uint8_t alphabet[] = {0x00, 0x01, 'a', 0xFE, 0xFF};
    uint32_t len, r = below(10);
    if (r < 5) {
        len = below(6);
        if (len > max) len = max;
        for (uint32_t i = 0; i < len; i++) out[i] = alphabet[below(5)];
        return len;
    }
    len = r < 9 ? below(40) : below(max / 4 + 1);
    if (len > max) len = max;
    for (uint32_t i = 0; i < len; i++) out[i] = (uint8_t)rnd();
    return len;
}

static uint32_t random_rid_pgno(void) {
    switch (below(4)) {
    case 0: return 0;
    case 1: return 0xFFFFFFFFu;
    default: return (uint32_t)rnd();
    }
}

static uint32_t random_child(void) {
    uint32_t c = below(4) == 0 ? 0xFFFFFFFFu : (uint32_t)rnd();
    return c ? c : 1;
}

/* nm_fill: a random model for a node of page_size: empty, a few keys, full
** to the brim, or one key of the greatest length; over > 0 asks for that
** many bytes too many. Keys sorted and unique. */
static void nm_fill(uint32_t page_size, int leaf, uint32_t over) {
    uint64_t budget = page_size - PS_HEADER_SIZE;
    uint32_t per = PS_SLOT_SIZE + (leaf ? PS_NODE_RID_SIZE : PS_NODE_CHILD_SIZE);
    uint64_t used = leaf ? 0 : per;
    nm_clear();
    uint32_t mode = below(4);
    if (mode == 3) {
        uint32_t kl = (uint32_t)(budget - used - per + over);
        for (uint32_t i = 0; i < kl; i++) nkey_buf[i] = (uint8_t)rnd();
        nm[nm_n++] = (nent_t){dup_key(nkey_buf, kl), kl, random_rid_pgno(), (uint16_t)rnd()};
    } else {
        uint32_t want = mode == 0 ? below(4) : mode == 1 ? below(40) : PS_MAX_SLOTS;
        for (uint32_t tries = 0; nm_n < want && tries < want + 64; tries++) {
            uint32_t kl = random_key(nkey_buf, page_size / 2);
            if (used + per + kl > budget) {
                if (over && mode == 2) {
                    nm[nm_n++] = (nent_t){dup_key(nkey_buf, kl), kl, random_rid_pgno(), (uint16_t)rnd()};
                    used += per + kl;
                }
                if (mode == 2) break;
                continue;
            }
            nm[nm_n++] = (nent_t){dup_key(nkey_buf, kl), kl, random_rid_pgno(), (uint16_t)rnd()};
            used += per + kl;
        }
    }
    qsort(nm, nm_n, sizeof *nm, nent_cmp);
    uint32_t w = 0;
    for (uint32_t i = 0; i < nm_n; i++) {
        if (w > 0 && nent_cmp(&nm[w - 1], &nm[i]) == 0) { free(nm[i].key); continue; }
        nm[w++] = nm[i];
    }
    nm_n = w;
    for (uint32_t i = 0; i <= nm_n; i++) nm_child[i] = random_child();
}

/* nm_build: ps_node_build from the model, every input array allocated at
** exactly its size. */
static int nm_build(uint8_t *page, uint32_t page_size, uint32_t pgno, int leaf) {
    uint32_t n = leaf ? nm_n : nm_n + 1;
    uint64_t total = 0;
    for (uint32_t i = 0; i < nm_n; i++) total += nm[i].klen;
    uint8_t *keys = total ? malloc(total) : NULL;
    uint32_t *lens = nm_n ? malloc(sizeof *lens * nm_n) : NULL;
    uint32_t *pgnos = malloc(sizeof *pgnos * (n ? n : 1));
    uint16_t *slots = leaf && n ? malloc(sizeof *slots * n) : NULL;
    uint64_t at = 0;
    for (uint32_t i = 0; i < nm_n; i++) {
        if (nm[i].klen) memcpy(keys + at, nm[i].key, nm[i].klen);
        at += nm[i].klen;
        lens[i] = nm[i].klen;
    }
    for (uint32_t i = 0; i < n; i++) {
        pgnos[i] = leaf ? nm[i].pgno : nm_child[i];
        if (leaf) slots[i] = nm[i].slot;
    }
    int rc = ps_node_build(page, page_size, pgno, leaf ? PS_PAGE_LEAF : PS_PAGE_INTERNAL, keys, lens,
                           pgnos, slots, n);
    free(keys); free(lens); free(pgnos); free(slots);
    return rc;
}

/* node_decode_exact: ps_node_decode into arrays of exactly cap entries
** (compared with the model when want_model); returns its status. */
static int node_decode_exact(const uint8_t *page, uint32_t page_size, uint32_t cap, int want_model,
                             int leaf, uint32_t **offs_out, uint32_t **ends_out, uint32_t *count_out) {
    uint32_t c = cap ? cap : 1;
    uint32_t *offs = malloc(sizeof *offs * c), *ends = malloc(sizeof *ends * c);
    uint32_t *pgnos = malloc(sizeof *pgnos * c);
    uint16_t *slots = malloc(sizeof *slots * c);
    uint32_t count = 0xDEAD;
    int rc = ps_node_decode(page, page_size, offs, ends, pgnos, below(2) || leaf ? slots : NULL, cap, &count);
    if (rc == PS_OK && count > cap) fail("decode returned %u entries with cap %u", count, cap);
    if (rc == PS_OK && want_model) {
        uint32_t n = leaf ? nm_n : nm_n + 1;
        if (count != n) fail("decode: %u entries, model %u", count, n);
        for (uint32_t i = 0; i < nm_n && count == n; i++) {
            uint32_t kl = ends[i] - offs[i];
            if (offs[i] > ends[i] || ends[i] > page_size) {
                fail("decode: key %u at [%u, %u)", i, offs[i], ends[i]);
                break;
            }
            if (key_cmp(page + offs[i], kl, nm[i].key, nm[i].klen) != 0) { fail("decode: key %u differs", i); break; }
            if (leaf && (pgnos[i] != nm[i].pgno || slots[i] != nm[i].slot))
                fail("decode: rid %u is (%u, %u), model (%u, %u)", i, pgnos[i], slots[i], nm[i].pgno, nm[i].slot);
        }
        for (uint32_t i = 0; !leaf && i < n && count == n; i++)
            if (pgnos[i] != nm_child[i]) fail("decode: child %u is %u, model %u", i, pgnos[i], nm_child[i]);
    }
    free(pgnos); free(slots);
    if (offs_out) { *offs_out = offs; *ends_out = ends; } else { free(offs); free(ends); }
    if (count_out) *count_out = count;
    return rc;
}

/* check_node: a page that must be a sound node equal to the model. */
static void check_node(const uint8_t *page, uint32_t page_size, int leaf) {
    int rc = ps_page_validate(page, page_size);
    if (rc != PS_OK) { fail("node page does not validate: %s", ps_strerror(rc)); return; }
    uint32_t count = 0;
    rc = ps_node_decode(page, page_size, NULL, NULL, NULL, NULL, 0, &count);
    if (rc != PS_OK) { fail("node check: %s", ps_strerror(rc)); return; }
    uint32_t n = leaf ? nm_n : nm_n + 1;
    rc = node_decode_exact(page, page_size, n, 1, leaf, NULL, NULL, NULL);
    if (rc != PS_OK) fail("decode with cap %u: %s", n, ps_strerror(rc));
    if (n > 0) {
        /* one short: refused, and nothing written past the arrays */
        rc = node_decode_exact(page, page_size, n - 1, 0, leaf, NULL, NULL, NULL);
        if (rc != PS_EINVAL) fail("decode with cap %u of %u entries: rc %d, want EINVAL", n - 1, n, rc);
    }
    uint32_t c, t, m;
    ps_page_free_space(page, page_size, &c, &t, &m);
    if (t != page_size - PS_HEADER_SIZE - nm_cost(leaf))
        fail("node free space %u, model %u", t, (uint32_t)(page_size - PS_HEADER_SIZE - nm_cost(leaf)));
}

/* search_one: ps_node_search for one probe (a heap copy of exactly klen
** bytes) against bisect on the model. */
static void search_one(const uint8_t *page, uint32_t page_size, int leaf, const uint8_t *k, uint32_t kl) {
    uint8_t *probe = dup_key(k, kl);
    for (int after = 0; after < 2; after++) {
        uint32_t index = 0xDEAD, pgno = 0xDEAD;
        uint8_t equal = 0xFF;
        uint16_t slot = 0xDEAD;
        int rc = ps_node_search(page, page_size, kl || below(2) ? probe : NULL, kl, after, &index, &equal,
                                &pgno, &slot);
        n_node_searches++;
        if (rc != PS_OK) { fail("search: %s", ps_strerror(rc)); break; }
        uint32_t want = nm_bisect(k, kl, after);
        int want_eq = !after && want < nm_n && key_cmp(nm[want].key, nm[want].klen, k, kl) == 0;
        if (index != want || equal != want_eq) {
            fail("search (after %d, %u-byte probe): index %u equal %d, bisect %u equal %d", after, kl, index,
                 equal, want, want_eq);
            break;
        }
        uint32_t wp = leaf ? (want < nm_n ? nm[want].pgno : 0) : nm_child[want];
        uint16_t ws = leaf && want < nm_n ? nm[want].slot : 0;
        if (pgno != wp || slot != ws) fail("search: entry %u gave (%u, %u), model (%u, %u)", want, pgno, slot, wp, ws);
    }
    free(probe);
}

/* search_probes: every key (or a sample), its neighbours, prefixes and both ends. */
static void search_probes(const uint8_t *page, uint32_t page_size, int leaf, uint32_t nprobe) {
    static uint8_t ff[70];
    memset(ff, 0xFF, sizeof ff);
    search_one(page, page_size, leaf, NULL, 0);
    search_one(page, page_size, leaf, ff, 3);
    search_one(page, page_size, leaf, ff, 70);
    for (uint32_t k = 0; k < nprobe; k++) {
        uint32_t kl;
        if (nm_n == 0 || below(4) == 0) {
            kl = random_key(nkey_buf, 64);
        } else {
            const nent_t *e = &nm[below(nm_n)];
            kl = e->klen;
            memcpy(nkey_buf, e->key, kl);
            switch (below(5)) {
            case 0: break;                                      /* the key */
            case 1: nkey_buf[kl++] = below(2) ? 0x00 : 0xFF; break; /* just after */
            case 2: if (kl) kl--; break;                         /* a prefix */
            case 3: if (kl) kl = below(kl); break;
            default:                                            /* just before or after, same length */
                if (kl) nkey_buf[kl - 1] += below(2) ? 1 : -1;
                break;
            }
        }
        search_one(page, page_size, leaf, nkey_buf, kl);
    }
}

static void run_node_build(uint32_t page_size) {
    int leaf = below(2);
    uint32_t over = below(3) == 0 ? 1 + below(8) : 0;
    nm_fill(page_size, leaf, over);
    uint8_t *page = malloc(page_size);
    for (uint32_t i = 0; i < page_size; i++) page[i] = (uint8_t)rnd();
    memcpy(backup, page, page_size);
    uint32_t pgno = (uint32_t)rnd();
    int fits = nm_cost(leaf) <= page_size - PS_HEADER_SIZE;
    int rc = nm_build(page, page_size, pgno, leaf);
    n_node_builds++;
    if (!fits) {
        if (rc != PS_EFULL) fail("build of %" PRIu64 " bytes in %u: rc %d, want EFULL", nm_cost(leaf), page_size, rc);
        if (memcmp(backup, page, page_size) != 0) fail("a refused build changed the page");
        free(page);
        return;
    }
    if (rc != PS_OK) {
        fail("build of %u keys (%" PRIu64 " bytes): %s", nm_n, nm_cost(leaf), ps_strerror(rc));
        free(page);
        return;
    }
    if (rd32(page + PS_OFF_PGNO) != pgno || page[PS_OFF_TYPE] != (leaf ? PS_PAGE_LEAF : PS_PAGE_INTERNAL) ||
        rd32(page + PS_OFF_CHECKSUM) != 0 || rd32(page + PS_OFF_FRAG) != 0)
        fail("build: header pgno %u type %u checksum %u frag %u", rd32(page + PS_OFF_PGNO), page[PS_OFF_TYPE],
             rd32(page + PS_OFF_CHECKSUM), rd32(page + PS_OFF_FRAG));
    check_node(page, page_size, leaf);
    search_probes(page, page_size, leaf, nm_n < 200 ? 3 * nm_n + 8 : 400);
    free(page);
}

/* ---- leaf changes in place ---- */

static uint64_t nm_used(void) { return nm_cost(1); }

static void leaf_op_insert(uint8_t *page, uint32_t page_size) {
    uint64_t free_now = page_size - PS_HEADER_SIZE - nm_used();
    uint32_t kl;
    if (below(3)) {
        kl = random_key(nkey_buf, 64);
    } else {
        /* as long as the room left, give or take a few bytes */
        int64_t room = (int64_t)free_now - PS_SLOT_SIZE - PS_NODE_RID_SIZE;
        int64_t l = below(2) ? room - below(12) : room + 1 + below(12);
        if (l < 0) l = 0;
        if (l > PS_MAX_RECORD - PS_NODE_RID_SIZE) l = PS_MAX_RECORD - PS_NODE_RID_SIZE;
        kl = (uint32_t)l;
        uint32_t head = random_key(nkey_buf, kl < 4 ? kl : 4);
        for (uint32_t i = head; i < kl; i++) nkey_buf[i] = (uint8_t)rnd();
    }
    uint8_t *key = dup_key(nkey_buf, kl);
    uint32_t index = 0xDEAD, pgno = 0;
    uint8_t equal = 0xFF;
    uint16_t slot = 0, sp;
    int rc = ps_node_search(page, page_size, key, kl, 0, &index, &equal, &pgno, &slot);
    uint32_t want = nm_bisect(key, kl, 0);
    int present = want < nm_n && key_cmp(nm[want].key, nm[want].klen, key, kl) == 0;
    if (rc != PS_OK || index != want || equal != present)
        fail("search before insert: rc %d index %u equal %d, model %u %d", rc, index, equal, want, present);
    memcpy(backup, page, page_size);
    pgno = random_rid_pgno();
    sp = (uint16_t)rnd();
    uint32_t contiguous = rd32(page + PS_OFF_UPPER) - rd16(page + PS_OFF_LOWER);
    rc = ps_node_leaf_insert(page, page_size, want, kl || below(2) ? key : NULL, kl, pgno, sp);
    if (present) {
        if (rc != PS_EINVAL) fail("insert of a present key: rc %d, want EINVAL", rc);
        if (memcmp(backup, page, page_size) != 0) fail("a refused insert changed the page");
        free(key);
        return;
    }
    uint64_t need = PS_SLOT_SIZE + PS_NODE_RID_SIZE + kl;
    if (need > free_now) {
        if (rc != PS_EFULL)
            fail("insert of %" PRIu64 " bytes with %" PRIu64 " free: rc %d, want EFULL", need, free_now, rc);
        if (memcmp(backup, page, page_size) != 0) fail("an insert that did not fit changed the page");
        free(key);
        return;
    }
    if (rc != PS_OK) {
        fail("insert of %" PRIu64 " bytes with %" PRIu64 " free: %s", need, free_now, ps_strerror(rc));
        free(key);
        return;
    }
    if (need > contiguous) {
        n_node_compactions++;
        if (rd32(page + PS_OFF_FRAG) != 0) fail("frag %u after an insert that compacted", rd32(page + PS_OFF_FRAG));
    }
    memmove(&nm[want + 1], &nm[want], sizeof *nm * (nm_n - want));
    nm[want] = (nent_t){key, kl, pgno, sp};
    nm_n++;
}

static void leaf_op_wrong_index(uint8_t *page, uint32_t page_size) {
    uint32_t kl = random_key(nkey_buf, 16);
    uint8_t *key = dup_key(nkey_buf, kl);
    uint32_t right = nm_bisect(key, kl, 0);
    int present = right < nm_n && key_cmp(nm[right].key, nm[right].klen, key, kl) == 0;
    uint32_t index = below(4) == 0 ? 0xFFFFFFFFu - below(2) : below(nm_n + 3);
    if (index == right && !present) index = right + 1; /* a neighbour's slot, or past the end */
    memcpy(backup, page, page_size);
    int rc = ps_node_leaf_insert(page, page_size, index, key, kl, 1, 2);
    int fits = PS_SLOT_SIZE + PS_NODE_RID_SIZE + kl <= page_size - PS_HEADER_SIZE - nm_used();
    /* whether fit or order is checked first is node.c's choice */
    if (rc != PS_EINVAL && !(rc == PS_EFULL && !fits))
        fail("insert of a %u-byte key at wrong index %u (right %u, present %d): rc %d", kl, index, right, present, rc);
    if (memcmp(backup, page, page_size) != 0) fail("a refused insert changed the page");
    free(key);
}

static void leaf_op_remove(uint8_t *page, uint32_t page_size) {
    if (nm_n == 0) return;
    uint32_t runs = below(6) == 0 ? 1 + below(nm_n) : 1;
    for (uint32_t k = 0; k < runs && nm_n; k++) {
        uint32_t index = below(nm_n), used = 0xDEAD;
        int rc = ps_node_leaf_remove(page, page_size, index, &used);
        if (rc != PS_OK) { fail("remove %u of %u: %s", index, nm_n, ps_strerror(rc)); return; }
        free(nm[index].key);
        memmove(&nm[index], &nm[index + 1], sizeof *nm * (nm_n - index - 1));
        nm_n--;
        if (used != nm_used()) fail("remove: used %u, model %" PRIu64, used, nm_used());
    }
}

static void leaf_op_set_rid(uint8_t *page, uint32_t page_size) {
    if (nm_n == 0) return;
    uint32_t index = below(nm_n), pgno = random_rid_pgno();
    uint16_t slot = (uint16_t)rnd();
    int rc = ps_node_leaf_set_rid(page, page_size, index, pgno, slot);
    if (rc != PS_OK) { fail("set_rid %u: %s", index, ps_strerror(rc)); return; }
    nm[index].pgno = pgno;
    nm[index].slot = slot;
}

static void leaf_op_past_the_end(uint8_t *page, uint32_t page_size) {
    uint32_t index = below(2) ? nm_n + below(3) : 0xFFFFFFFFu, used;
    memcpy(backup, page, page_size);
    if (ps_node_leaf_remove(page, page_size, index, &used) != PS_EINVAL)
        fail("remove of entry %u of %u: not EINVAL", index, nm_n);
    if (ps_node_leaf_set_rid(page, page_size, index, 1, 1) != PS_EINVAL)
        fail("set_rid of entry %u of %u: not EINVAL", index, nm_n);
    if (memcmp(backup, page, page_size) != 0) fail("a refused remove or set_rid changed the page");
}

static void run_node_ops(uint32_t page_size, uint32_t nops) {
    uint8_t *page = malloc(page_size);
    nm_fill(page_size, 1, 0);
    if (nm_build(page, page_size, (uint32_t)rnd(), 1) != PS_OK) {
        fail("build of a leaf that fits");
        free(page);
        return;
    }
    check_node(page, page_size, 1);
    uint32_t bias = below(3); /* towards growing, shrinking, or neither */
    for (uint32_t k = 0; k < nops && failures == 0; k++) {
        uint32_t r = below(100);
        if (bias == 0 && r >= 40 && r < 60) r -= 40;
        if (bias == 1 && r < 15) r += 40;
        if (r < 40) leaf_op_insert(page, page_size);
        else if (r < 47) leaf_op_wrong_index(page, page_size);
        else if (r < 72) leaf_op_remove(page, page_size);
        else if (r < 84) leaf_op_set_rid(page, page_size);
        else if (r < 88) leaf_op_past_the_end(page, page_size);
        else search_probes(page, page_size, 1, 8);
        n_node_ops++;
        check_node(page, page_size, 1);
    }
    nm_clear();
    free(page);
}

/* ---- node images: mutated and random ---- */

/* node_mutate: one change to a node image and what it promises: SOUND (still
** a sound node), BROKEN (still a valid page, no longer a sound node), ANY. */
enum { N_ANY = 0, N_SOUND = 1, N_BROKEN = 2 };

static int node_mutate(uint8_t *page, uint32_t page_size) {
    uint32_t nslots = rd16(page + PS_OFF_NSLOTS), lower = rd16(page + PS_OFF_LOWER);
    uint32_t upper = rd32(page + PS_OFF_UPPER), frag = rd32(page + PS_OFF_FRAG);
    int sane = lower == PS_HEADER_SIZE + PS_SLOT_SIZE * nslots && lower <= upper && upper <= page_size;
    int leaf = page[PS_OFF_TYPE] == PS_PAGE_LEAF, node = leaf || page[PS_OFF_TYPE] == PS_PAGE_INTERNAL;
    uint32_t i = sane && nslots ? below(nslots) : 0;
    uint8_t *s = slot_at(page, i);
    uint32_t off = sane && nslots ? rd16(s) : 0, len = sane && nslots ? rd16(s + 2) : 0;
    int rec_ok = sane && nslots && len && off >= upper && off + len <= page_size && s[4] == PS_SLOT_LIVE;
    switch (sane && nslots ? below(15) : below(4)) {
    /* ---- blind ---- */
    case 0:
        page[below(page_size)] ^= (uint8_t)(1u << below(8));
        return N_ANY;
    case 1:
        page[below(lower + 8 < page_size ? lower + 8 : page_size)] = (uint8_t)rnd();
        return N_ANY;
    case 2: { /* a header field to an edge value */
        static const uint8_t offs16[] = {PS_OFF_NSLOTS, PS_OFF_NLIVE, PS_OFF_LOWER};
        static const uint8_t offs32[] = {PS_OFF_UPPER, PS_OFF_FRAG};
        if (below(2)) { uint8_t o = offs16[below(3)]; wr16(page + o, edge_value(page_size, rd16(page + o))); }
        else { uint8_t o = offs32[below(2)]; wr32(page + o, edge_value(page_size, rd32(page + o))); }
        return N_ANY;
    }
    case 3:
        page[PS_OFF_TYPE] = below(2) ? PS_PAGE_LEAF : PS_PAGE_INTERNAL;
        return N_ANY;
    case 4: /* a record byte: rid, child or key */
        if (upper < page_size) page[upper + below(page_size - upper)] = (uint8_t)rnd();
        return N_ANY;
    case 5: /* a slot field to an edge value */
        wr16(s + 2 * below(2), edge_value(page_size, rd16(s)));
        return N_ANY;

    /* ---- the node stays sound ---- */
    case 6: /* a leaf rid or a non-zero child */
        if (!node || !rec_ok || len < 4) return N_ANY;
        wr32(page + off, leaf ? (uint32_t)rnd() : random_child());
        if (leaf && len >= 6) wr16(page + off + 4, (uint16_t)rnd());
        return N_SOUND;
    case 7: /* fields no node rule reads */
        wr32(page + PS_OFF_CHECKSUM, (uint32_t)rnd());
        wr32(page + PS_OFF_PGNO, (uint32_t)rnd());
        page[PS_OFF_LSN + below(8)] = (uint8_t)rnd();
        wr32(page + PS_OFF_NEXT, (uint32_t)rnd());
        page[PS_OFF_FLAGS] = (uint8_t)rnd();
        return node ? N_SOUND : N_ANY;

    /* ---- still a valid page, no longer a sound node ---- */
    case 8: { /* two slot entries swapped: keys out of order */
        uint32_t first = leaf ? 0 : 1;
        if (!node || nslots < first + 2) return N_ANY;
        uint32_t a = first + below(nslots - first), b = first + below(nslots - first);
        if (a == b) return N_ANY;
        uint8_t t[PS_SLOT_SIZE];
        memcpy(t, slot_at(page, a), PS_SLOT_SIZE);
        memcpy(slot_at(page, a), slot_at(page, b), PS_SLOT_SIZE);
        memcpy(slot_at(page, b), t, PS_SLOT_SIZE);
        return N_BROKEN;
    }
    case 9: /* a node slot marked OVERFLOW */
        if (!node) return N_ANY;
        s[4] = PS_SLOT_OVERFLOW;
        return N_BROKEN;
    case 10: /* an internal child set to 0 */
        if (!node || leaf || !rec_ok || len < 4) return N_ANY;
        wr32(page + off, 0);
        return N_BROKEN;
    case 11: /* the type of another layer */
        if (!node) return N_ANY;
        page[PS_OFF_TYPE] = (uint8_t)(below(2) ? below(2) : 4 + below(252));
        return N_BROKEN;
    case 12: { /* a record shorter than its prefix, frag counting the hole */
        uint32_t prefix = leaf ? PS_NODE_RID_SIZE : PS_NODE_CHILD_SIZE;
        if (!node || !rec_ok || len < prefix) return N_ANY;
        uint32_t nl = 1 + below(prefix - 1);
        wr16(s + 2, nl);
        wr32(page + PS_OFF_FRAG, frag + len - nl);
        return N_BROKEN;
    }
    case 13: { /* a middle slot freed, counts kept right: slots not dense */
        if (!node || i + 1 >= nslots || rd16(page + PS_OFF_NLIVE) != nslots) return N_ANY;
        wr32(page + PS_OFF_FRAG, frag + len);
        wr16(page + PS_OFF_NLIVE, nslots - 1);
        memset(s, 0, PS_SLOT_SIZE);
        return N_BROKEN;
    }
    default: /* a key byte (order may break) */
        if (!rec_ok) return N_ANY;
        page[off + below(len)] = (uint8_t)rnd();
        return N_ANY;
    }
}

/* node_image: a valid node built from a random model (sometimes with a
** defect build lets through: keys out of order, a duplicate, child 0), or
** random bytes under a node type. Returns the promise. */
static int node_image(uint8_t *page, uint32_t page_size) {
    if (below(10) == 0) {
        for (uint32_t k = 0; k < page_size; k++) page[k] = (uint8_t)rnd();
        page[PS_OFF_TYPE] = below(2) ? PS_PAGE_LEAF : PS_PAGE_INTERNAL;
        if (below(2)) {
            uint32_t nslots = below(page_size < 4096 ? 12 : 64);
            uint32_t upper = page_size - below(page_size / 2);
            wr16(page + PS_OFF_NSLOTS, nslots);
            wr16(page + PS_OFF_NLIVE, nslots);
            wr16(page + PS_OFF_LOWER, PS_HEADER_SIZE + PS_SLOT_SIZE * nslots);
            wr32(page + PS_OFF_UPPER, upper);
            for (uint32_t k = 0; k < nslots; k++) {
                uint8_t *s = slot_at(page, k);
                wr16(s, upper + below(page_size - upper + 1));
                wr16(s + 2, below(48));
                s[4] = below(4) ? PS_SLOT_LIVE : (uint8_t)below(3);
                s[5] = 0;
            }
        }
        return N_ANY;
    }
    int leaf = below(2), zero = -1;
    nm_fill(page_size, leaf, 0);
    int promise = N_SOUND;
    switch (below(8)) {
    case 0: /* two keys swapped */
        if (nm_n >= 2) {
            uint32_t a = below(nm_n - 1);
            nent_t t = nm[a]; nm[a] = nm[a + 1]; nm[a + 1] = t;
            promise = N_BROKEN;
        }
        break;
    case 1: /* a key equal to its successor */
        if (nm_n >= 2) {
            uint32_t a = below(nm_n - 1);
            free(nm[a].key);
            nm[a].key = dup_key(nm[a + 1].key, nm[a + 1].klen);
            nm[a].klen = nm[a + 1].klen;
            promise = nm_cost(leaf) <= page_size - PS_HEADER_SIZE ? N_BROKEN : N_ANY;
        }
        break;
    case 2: /* an internal child 0 */
        if (!leaf) { zero = below(nm_n + 1); nm_child[zero] = 0; promise = N_BROKEN; }
        break;
    default: break;
    }
    int rc = nm_build(page, page_size, (uint32_t)rnd(), leaf);
    if (rc == PS_EFULL) {
        nm_fill(page_size, leaf, 0);
        rc = nm_build(page, page_size, (uint32_t)rnd(), leaf);
        promise = N_SOUND;
        zero = -1;
    }
    if (rc != PS_OK) fail("build for an image: %s", ps_strerror(rc));
    if (zero >= 0) {
        /* search never hands out child 0: the least key leads to child 0's
        ** range, separator j - 1 (searched after) to child j's */
        uint32_t index = 0, pgno = 0;
        uint8_t equal = 0;
        uint16_t slot = 0;
        const uint8_t *probe = zero ? nm[zero - 1].key : NULL;
        uint32_t kl = zero ? nm[zero - 1].klen : 0;
        rc = ps_node_search(page, page_size, probe, kl, zero > 0, &index, &equal, &pgno, &slot);
        n_node_searches++;
        if (rc != PS_ECORRUPT_NODE)
            fail("search leading to child %d, page 0: rc %d (index %u, pgno %u)", zero, rc, index, pgno);
    }
    nm_clear();
    return promise;
}

/* node_battery: every node function on the image; changes on copies, each
** its own allocation of page_size. decode agrees with the check (checked);
** a sound node (a valid page that passes the check) must answer as its
** decoded keys say and stay sound through every change; any refused change
** leaves its copy as it was. */
static void node_battery(const uint8_t *page, uint32_t page_size, int checked, int sound) {
    uint32_t nslots = rd16(page + PS_OFF_NSLOTS);
    uint32_t cap = nslots < PS_MAX_SLOTS ? nslots : PS_MAX_SLOTS, count = 0, c = cap ? cap : 1;
    uint32_t *offs = malloc(sizeof *offs * c), *ends = malloc(sizeof *ends * c), *pgnos = malloc(sizeof *pgnos * c);
    uint16_t *slots = malloc(sizeof *slots * c);
    int leaf = page[PS_OFF_TYPE] == PS_PAGE_LEAF;
    int rc = ps_node_decode(page, page_size, offs, ends, pgnos, slots, cap, &count);
    if (checked && rc != PS_OK) fail("decode refused what check accepted: %s", ps_strerror(rc));
    if (!checked && rc == PS_OK) fail("decode accepted what check refused");
    if (rc == PS_OK && count > cap) fail("decode returned %u entries with cap %u", count, cap);
    if (cap > 1) {
        rc = node_decode_exact(page, page_size, below(cap), 0, leaf, NULL, NULL, NULL);
        if (rc == PS_OK) fail("decode into arrays smaller than the node succeeded");
    }
    uint32_t nkeys = !sound ? 0 : leaf ? count : count - 1;
    uint32_t fit = (page_size - PS_HEADER_SIZE) / PS_SLOT_SIZE, maxs = nslots < fit ? nslots : fit;
    uint8_t *copy = malloc(page_size);
    for (uint32_t k = 0; k < 6; k++) {
        /* probes: the empty key, random keys, and the bytes of records */
        uint32_t kl = 0;
        if (k > 0 && k < 3) {
            kl = random_key(nkey_buf, 32);
        } else if (k >= 3 && maxs) {
            const uint8_t *s = page + PS_HEADER_SIZE + PS_SLOT_SIZE * below(maxs);
            uint32_t o = rd16(s), l = rd16(s + 2), from = below(2) ? (leaf ? PS_NODE_RID_SIZE : PS_NODE_CHILD_SIZE) : 0;
            if ((uint64_t)o + l <= page_size && l < 256 && from <= l) {
                kl = l - from;
                memcpy(nkey_buf, page + o + from, kl);
            }
        }
        uint8_t *probe = dup_key(nkey_buf, kl);
        for (int after = 0; after < 2; after++) {
            uint32_t index = 0xDEAD, pgno = 0xDEAD;
            uint8_t equal = 0xFF;
            uint16_t slot = 0xDEAD;
            rc = ps_node_search(page, page_size, probe, kl, after, &index, &equal, &pgno, &slot);
            n_node_searches++;
            if (!sound) continue;
            if (rc != PS_OK) { fail("search of a sound node: %s", ps_strerror(rc)); continue; }
            /* the oracle: a linear scan of the decoded keys */
            uint32_t want = 0;
            int want_eq = 0;
            for (uint32_t j = 0; j < nkeys; j++) {
                int cmp = key_cmp(page + offs[j], ends[j] - offs[j], probe, kl);
                if (cmp < 0 || (after && cmp == 0)) want = j + 1;
                if (!after && cmp == 0) want_eq = 1;
            }
            uint32_t wp = leaf ? (want < count ? pgnos[want] : 0) : pgnos[want];
            uint16_t ws = leaf && want < count ? slots[want] : 0;
            if (index != want || equal != want_eq || pgno != wp || slot != ws)
                fail("search of a sound image (after %d): (%u, %d, %u, %u), scan (%u, %d, %u, %u)", after, index,
                     equal, pgno, slot, want, want_eq, wp, ws);
        }
        /* the changes, each on a fresh copy */
        uint32_t idx[4] = {0, nslots, nslots + 1, nslots ? below(nslots) : 0};
        for (uint32_t j = 0; j < 4; j++) {
            for (int op = 0; op < 3; op++) {
                uint32_t used;
                memcpy(copy, page, page_size);
                if (op == 0) rc = ps_node_leaf_insert(copy, page_size, idx[j], kl || below(2) ? probe : NULL, kl, 5, 6);
                else if (op == 1) rc = ps_node_leaf_remove(copy, page_size, idx[j], &used);
                else rc = ps_node_leaf_set_rid(copy, page_size, idx[j], 5, 6);
                n_node_ops++;
                if (rc != PS_OK) {
                    if (memcmp(copy, page, page_size) != 0)
                        fail("a refused leaf change (op %d, rc %d) changed the page", op, rc);
                    if (sound && leaf && rc != PS_EINVAL && rc != PS_EFULL)
                        fail("leaf change %d at %u on a sound leaf: %s", op, idx[j], ps_strerror(rc));
                    if (sound && !leaf && rc != PS_EINVAL) fail("leaf change on an internal node: rc %d", rc);
                    continue;
                }
                if (sound && !leaf) fail("a leaf change succeeded on an internal node");
                if (sound) {
                    uint32_t c2;
                    int v = ps_page_validate(copy, page_size);
                    int d = ps_node_decode(copy, page_size, NULL, NULL, NULL, NULL, 0, &c2);
                    if (v != PS_OK || d != PS_OK)
                        fail("leaf change %d at %u left a broken node: validate %d, decode %d", op, idx[j], v, d);
                    else if (c2 != count + (op == 0) - (op == 1))
                        fail("leaf change %d left %u entries of %u", op, c2, count);
                }
            }
        }
        free(probe);
    }
    free(copy);
    free(offs); free(ends); free(pgnos); free(slots);
}

static void run_node_image(uint32_t page_size) {
    uint8_t *page = malloc(page_size);
    int promise = node_image(page, page_size);
    /* one mutation of a sound node keeps the mutation's promise; more, none */
    int base = promise;
    uint32_t n = below(4);
    for (uint32_t k = 0; k < n; k++) promise = node_mutate(page, page_size);
    if (n > 1 || (n == 1 && base != N_SOUND)) promise = N_ANY;
    int v = ps_page_validate(page, page_size);
    uint32_t count;
    int d = ps_node_decode(page, page_size, NULL, NULL, NULL, NULL, 0, &count);
    if (d != PS_OK && (d < PS_ECORRUPT_HEADER || d > PS_ENODE_ORDER))
        fail("node check returned %d, not a corruption code", d);
    if (promise != N_ANY) {
        n_node_promised++;
        if (v != PS_OK) fail("a mutation promising a valid page broke it: %s", ps_strerror(v));
        if (promise == N_SOUND && d != PS_OK) fail("a sound node was refused: %s", ps_strerror(d));
        if (promise == N_BROKEN && d == PS_OK) fail("a broken node passed the node check");
    }
    int sound = v == PS_OK && d == PS_OK;
    n_node_images++;
    n_node_sound += sound;
    node_battery(page, page_size, d == PS_OK, sound);
    free(page);
}

/* ---- part 5: mapped pages (map.c) ----
** A "file" of npages pages in one allocation of exactly npages * page_size
** bytes (ASan catches a read past its end): page 0 is junk (the file
** header is not a slotted page), the rest are verified heap pages, sound
** leaves and internal nodes, random images and damaged pages. Every ps_map_*
** answer is compared with the page functions on the same page, and each
** page's bit must be set exactly when the page passed verification. Then the
** bits are all set over a file of damaged and random images (a page changed
** behind the map after it was verified): every call still returns a code,
** never a stray access. */

static uint64_t n_map_calls, n_map_pages_bad;

enum { MP_HEAP, MP_LEAF, MP_INTERNAL, MP_RANDOM, MP_BAD_CRC, MP_BAD_PGNO };

static int map_page_sound(const uint8_t *page, uint32_t page_size, uint32_t pgno) {
    int rc = ps_page_verify(page, page_size, pgno);
    uint8_t t = page[PS_OFF_TYPE];
    if (rc == PS_OK && (t == PS_PAGE_LEAF || t == PS_PAGE_INTERNAL)) {
        uint32_t count;
        rc = ps_node_decode(page, page_size, NULL, NULL, NULL, NULL, 0, &count);
    }
    return rc;
}

static void map_fill_page(uint8_t *page, uint32_t page_size, uint32_t pgno, int kind) {
    uint16_t slot;
    switch (kind) {
    case MP_LEAF:
    case MP_INTERNAL:
        nm_fill(page_size, kind == MP_LEAF, 0);
        if (nm_build(page, page_size, pgno, kind == MP_LEAF) != PS_OK) {
            nm_clear();
            ps_page_init(page, page_size, pgno, PS_PAGE_LEAF);
        }
        nm_clear();
        break;
    case MP_RANDOM:
        if (below(2)) random_image(page, page_size);
        else node_image(page, page_size);
        break;
    default:
        ps_page_init(page, page_size, pgno, PS_PAGE_HEAP);
        for (uint32_t k = below(40); k > 0; k--) {
            uint32_t len = below(3) ? below(60) : below(page_size / 3);
            fill_tag(data_buf, next_tag++, len);
            ps_page_insert(page, page_size, data_buf, len, PS_SLOT_LIVE + below(2), &slot);
        }
        if (below(3) == 0 && rd16(page + PS_OFF_NSLOTS)) ps_page_delete(page, page_size, below(rd16(page + PS_OFF_NSLOTS)));
        break;
    }
    if (kind != MP_RANDOM || below(2)) {
        if (kind == MP_BAD_PGNO) wr32(page + PS_OFF_PGNO, pgno + 1);
        ps_page_set_checksum(page, page_size);
    }
    if (kind == MP_BAD_CRC) page[PS_HEADER_SIZE + below(page_size - PS_HEADER_SIZE)] ^= (uint8_t)(1 + below(255));
}

static void map_compare(ps_map_t *m, uint32_t npages, int trusting) {
    uint32_t ps = m->page_size;
    uint32_t *offs = malloc(sizeof *offs * PS_MAX_SLOTS), *ends = malloc(sizeof *ends * PS_MAX_SLOTS);
    uint32_t *pg = malloc(sizeof *pg * PS_MAX_SLOTS);
    uint16_t *sl = malloc(sizeof *sl * PS_MAX_SLOTS);
    for (uint32_t pgno = 0; pgno < npages + 2; pgno++) {
        const uint8_t *page = pgno < npages ? m->base + (uint64_t)pgno * ps : NULL;
        int sound = page && pgno > 0 ? map_page_sound(page, ps, pgno) : PS_EOUTSIDE;
        int before = pgno < npages && (m->verified[pgno >> 3] >> (pgno & 7)) & 1;
        int rc = ps_map_check(m, pgno);
        n_map_calls++;
        int want = pgno == 0 || pgno >= npages ? PS_EOUTSIDE : trusting && before ? PS_OK : sound;
        if (rc != want) fail("map check of page %u: rc %d, want %d", pgno, rc, want);
        int after = pgno < npages && (m->verified[pgno >> 3] >> (pgno & 7)) & 1;
        if (pgno < npages && after != (before || rc == PS_OK)) fail("page %u: bit %d after check rc %d", pgno, after, rc);
        if (rc != PS_OK) { n_map_pages_bad++; }
        /* search and decode agree with the page functions on a verified page */
        uint32_t kl = random_key(nkey_buf, 40);
        for (int want_type = -1; want_type <= PS_PAGE_INTERNAL; want_type += want_type < 0 ? 3 : 1) {
            uint32_t i1 = 0, p1 = 0, i2 = 0, p2 = 0;
            uint8_t e1 = 0, e2 = 0;
            uint16_t s1 = 0, s2 = 0;
            int after_ = below(2);
            int r1 = ps_map_node_search(m, pgno, want_type, nkey_buf, kl, after_, &i1, &e1, &p1, &s1);
            n_map_calls++;
            if (rc != PS_OK) {
                if (r1 != rc) fail("map search of unsound page %u: rc %d, check said %d", pgno, r1, rc);
                continue;
            }
            int r2;
            uint8_t t = page[PS_OFF_TYPE];
            if (t != PS_PAGE_LEAF && t != PS_PAGE_INTERNAL) r2 = PS_ENODE_TYPE;
            else if (want_type >= 0 && t != want_type) r2 = PS_ETYPE;
            else r2 = ps_node_search(page, ps, nkey_buf, kl, after_, &i2, &e2, &p2, &s2);
            if (r1 != r2 || (r1 == PS_OK && (i1 != i2 || e1 != e2 || p1 != p2 || s1 != s2)))
                fail("map search of page %u (type %d): rc %d, page search rc %d", pgno, want_type, r1, r2);
        }
        /* the lean calls answer as the wide ones they stand for, errors included */
        {
            uint32_t i1 = 0, p1 = 0, l1 = 0, len = 0, nx = 0, slot = below(8);
            uint8_t e1 = 0, st1 = 0;
            uint16_t s1 = 0;
            uint64_t o1 = 0;
            int r1 = ps_map_node_search(m, pgno, PS_PAGE_INTERNAL, nkey_buf, kl, 1, &i1, &e1, &p1, &s1);
            int64_t c = ps_map_child(m, pgno, nkey_buf, kl);
            if (c != (r1 != PS_OK ? -(int64_t)r1 : (int64_t)p1))
                fail("map child of page %u: %lld, search rc %d child %u", pgno, (long long)c, r1, p1);
            r1 = ps_map_node_search(m, pgno, PS_PAGE_LEAF, nkey_buf, kl, 0, &i1, &e1, &p1, &s1);
            int64_t f = ps_map_leaf_find(m, pgno, nkey_buf, kl);
            if (r1 != PS_OK ? f != -(int64_t)r1
                            : f < 0 || (uint64_t)f >> 31 != p1 || ((uint64_t)f >> 15 & 0xFFFF) != s1 ||
                                  ((uint64_t)f >> 1 & 0x3FFF) != i1 || ((uint64_t)f & 1) != (e1 ? 1u : 0u))
                fail("map leaf find of page %u: %lld, search rc %d", pgno, (long long)f, r1);
            r1 = ps_map_page_read(m, pgno, slot, PS_PAGE_HEAP, &o1, &l1, &st1, &nx);
            int64_t v = ps_map_value(m, pgno, slot, &len);
            int64_t want_v = r1 != PS_OK ? -(int64_t)r1 : st1 != PS_SLOT_LIVE ? -(int64_t)PS_ENOSLOT : (int64_t)o1;
            if (v != want_v || (v >= 0 && len != l1))
                fail("map value of page %u slot %u: %lld, page read rc %d", pgno, slot, (long long)v, r1);
            if (ps_map_value(m, pgno, slot, NULL) != -(int64_t)PS_EINVAL) fail("map value took a NULL length");
            n_map_calls += 7;
        }
        if (rc == PS_OK) {
            uint32_t cap = 1 + below(PS_MAX_SLOTS), c1 = 0, c2 = 0;
            uint64_t *o64 = malloc(sizeof *o64 * cap), *e64 = malloc(sizeof *e64 * cap);
            uint32_t *p64 = malloc(sizeof *p64 * cap);
            uint16_t *s64 = malloc(sizeof *s64 * cap);
            int r1 = ps_map_node_decode(m, pgno, -1, o64, e64, p64, s64, cap, &c1);
            n_map_calls++;
            uint8_t t = page[PS_OFF_TYPE];
            int r2 = t != PS_PAGE_LEAF && t != PS_PAGE_INTERNAL ? PS_ENODE_TYPE
                     : ps_node_decode(page, ps, offs, ends, pg, sl, cap, &c2);
            if (r1 != r2) fail("map decode of page %u: rc %d, page decode %d", pgno, r1, r2);
            else if (r1 == PS_OK) {
                if (c1 != c2) fail("map decode of page %u: %u entries, page decode %u", pgno, c1, c2);
                uint32_t nkeys = t == PS_PAGE_LEAF ? c1 : c1 ? c1 - 1 : 0;
                for (uint32_t j = 0; j < nkeys; j++)
                    if (o64[j] != (uint64_t)pgno * ps + offs[j] || e64[j] != (uint64_t)pgno * ps + ends[j])
                        fail("map decode of page %u: key %u at %llu, page says %u", pgno, j,
                             (unsigned long long)o64[j], offs[j]);
                for (uint32_t j = 0; j < c1; j++)
                    if (p64[j] != pg[j] || (t == PS_PAGE_LEAF && s64[j] != sl[j]))
                        fail("map decode of page %u: entry %u differs", pgno, j);
            }
            free(o64); free(e64); free(p64); free(s64);
        }
    }
    /* read_many over random (page, slot) pairs, some pages handed as images */
    uint32_t n = 1 + below(200);
    const uint8_t **pages = malloc(sizeof *pages * n);
    uint32_t *pgnos = malloc(sizeof *pgnos * n);
    uint16_t *slots = malloc(sizeof *slots * n);
    uint64_t *o = malloc(sizeof *o * n);
    uint32_t *l = malloc(sizeof *l * n);
    uint8_t *st = malloc(n);
    int32_t *status = malloc(sizeof *status * n);
    int use_pages = below(2), want_type = below(3) ? PS_PAGE_HEAP : -1;
    for (uint32_t i = 0; i < n; i++) {
        pgnos[i] = below(npages + 2);
        slots[i] = (uint16_t)below(below(4) ? 8 : 70000);
        pages[i] = use_pages && below(3) == 0 && pgnos[i] > 0 && pgnos[i] < npages ? m->base + (uint64_t)pgnos[i] * ps : NULL;
    }
    uint8_t *bits = malloc(m->verified_len);
    memcpy(bits, m->verified, m->verified_len);
    int rc = ps_map_read_many(m, use_pages ? pages : NULL, pgnos, slots, n, want_type, o, l, st, status);
    n_map_calls++;
    if (rc != PS_OK) fail("map read_many: rc %d", rc);
    for (uint32_t i = 0; rc == PS_OK && i < n; i++) {
        uint32_t p = pgnos[i], off = 0, len = 0;
        uint8_t s8 = 0;
        int given = use_pages && pages[i];
        int before = p < npages && (bits[p >> 3] >> (p & 7)) & 1;
        int want = given ? PS_OK : p == 0 || p >= npages ? PS_EOUTSIDE
                   : trusting && before ? PS_OK : map_page_sound(m->base + (uint64_t)p * ps, ps, p);
        const uint8_t *page = p < npages ? m->base + (uint64_t)p * ps : NULL;
        if (want == PS_OK && want_type >= 0 && page[PS_OFF_TYPE] != want_type) want = PS_ETYPE;
        if (want == PS_OK) want = ps_page_read(page, ps, slots[i], &off, &len, &s8);
        uint64_t at = given ? 0 : (uint64_t)p * ps;
        if (status[i] != want) fail("map read_many entry %u (page %u slot %u): rc %d, want %d", i, p, slots[i], status[i], want);
        else if (want == PS_OK && (o[i] != at + off || l[i] != len || st[i] != s8)) fail("map read_many entry %u differs", i);
        else if (want != PS_OK && (o[i] || l[i] || st[i])) fail("map read_many entry %u failed but left values", i);
        if (want == PS_OK && len && !given) memcpy(scratch, m->base + o[i], len);
        if (!given) { /* the single read agrees */
            uint64_t o1 = 0;
            uint32_t l1 = 0, nx = 0;
            uint8_t s1 = 0;
            int r1 = ps_map_page_read(m, p, slots[i], want_type, &o1, &l1, &s1, below(2) ? &nx : NULL);
            n_map_calls++;
            if (r1 != status[i] || (r1 == PS_OK && (o1 != o[i] || l1 != l[i] || s1 != st[i])))
                fail("map page_read of page %u slot %u: rc %d, read_many said %d", p, slots[i], r1, status[i]);
            if (r1 == PS_OK && nx && nx != rd32(page + PS_OFF_NEXT)) fail("map page_read: wrong next");
        }
    }
    if (ps_map_read_many(m, NULL, NULL, slots, n, -1, o, l, st, status) != PS_EINVAL) fail("map read_many took NULL pgnos");
    free(bits);
    free(pages); free(pgnos); free(slots); free(o); free(l); free(st); free(status);
    free(offs); free(ends); free(pg); free(sl);
}

static void run_map(uint32_t page_size) {
    uint32_t npages = 2 + below(page_size <= 4096 ? 24 : 6);
    uint8_t *file = malloc((size_t)npages * page_size);
    for (uint32_t i = 0; i < page_size; i++) file[i] = (uint8_t)rnd();
    for (uint32_t pgno = 1; pgno < npages; pgno++) {
        int kind = below(10);
        kind = kind < 3 ? MP_HEAP : kind < 5 ? MP_LEAF : kind < 7 ? MP_INTERNAL : kind < 8 ? MP_RANDOM
               : kind < 9 ? MP_BAD_CRC : MP_BAD_PGNO;
        map_fill_page(file + (size_t)pgno * page_size, page_size, pgno, kind);
    }
    uint64_t vlen = below(4) == 0 ? (npages - 1) / 8 : (npages + 7) / 8; /* sometimes a bitset too short */
    uint8_t *bits = calloc(vlen ? vlen : 1, 1);
    ps_map_t m = {file, (uint64_t)npages * page_size, page_size, bits, vlen};
    uint32_t usable = vlen * 8 < npages ? (uint32_t)(vlen * 8) : npages;
    map_compare(&m, usable, 0);
    map_compare(&m, usable, 0); /* the second pass reads verified pages by their bits */
    /* pages changed behind the map after they were verified: nothing is re-checked, nothing strays */
    for (uint32_t pgno = 1; pgno < npages; pgno++) {
        if (below(3) == 0) {
            uint8_t *page = file + (size_t)pgno * page_size;
            if (below(2)) random_image(page, page_size);
            else mutate(page, page_size);
        }
    }
    memset(bits, 0xFF, vlen);
    map_compare(&m, usable, 1);
    ps_map_t bad = {file, (uint64_t)npages * page_size, page_size + 1, bits, vlen};
    if (ps_map_check(&bad, 1) != PS_EINVAL) fail("map with a bad page size accepted");
    if (ps_map_check(NULL, 1) != PS_EINVAL) fail("NULL map accepted");
    free(bits);
    free(file);
}

/* ---- deltas (delta.c): make from random edits, apply, and apply hostile bytes ---- */

static uint64_t n_deltas, n_delta_bad;

static void run_delta(uint32_t page_size) {
    uint8_t *old = malloc(page_size), *new_ = malloc(page_size), *page = malloc(page_size);
    uint32_t cap = below(page_size) + 1, len = 0;
    uint8_t *out = malloc(cap + 8);
    for (uint32_t i = 0; i < page_size; i++) old[i] = (uint8_t)rnd();
    memcpy(new_, old, page_size);
    uint32_t edits = below(6) == 0 ? page_size : below(40);
    for (uint32_t e = 0; e < edits; e++) {
        uint32_t at = below(page_size), n = 1 + below(below(4) == 0 ? 300 : 8);
        for (uint32_t k = 0; k < n && at + k < page_size; k++) new_[at + k] = (uint8_t)(new_[at + k] + 1 + below(255));
    }
    int rc = ps_delta_make(old, new_, page_size, out, cap, &len);
    n_deltas++;
    if (rc == PS_OK) {
        if (len > cap) fail("delta of %u bytes past its cap %u", len, cap);
        memcpy(page, old, page_size);
        if (ps_delta_apply(page, page_size, out, len) != PS_OK) fail("a made delta does not apply");
        if (memcmp(page, new_, page_size) != 0) fail("a made delta does not rebuild the new image");
    } else if (rc != PS_EFULL) {
        fail("ps_delta_make returned %d", rc);
    }
    /* hostile deltas: random bytes, and a made one with one byte changed; a refusal leaves the page alone */
    uint32_t blen = below(cap + 8);
    for (uint32_t i = 0; i < blen; i++) out[i] = (uint8_t)rnd();
    if (rc == PS_OK && len > 0 && below(2)) { blen = len; out[below(len)] ^= (uint8_t)(1 + below(255)); }
    memcpy(page, old, page_size);
    rc = ps_delta_apply(page, page_size, out, blen);
    if (rc != PS_OK) {
        n_delta_bad++;
        if (rc != PS_ECORRUPT_DELTA) fail("ps_delta_apply on hostile bytes returned %d", rc);
        if (memcmp(page, old, page_size) != 0) fail("a refused delta changed the page");
    }
    free(old); free(new_); free(page); free(out);
}

int main(int argc, char **argv) {
    uint64_t iterations = argc > 1 ? strtoull(argv[1], NULL, 10) : 1500;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 20240601;
    rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;

    scratch = malloc(PS_MAX_PAGE_SIZE + 80000);
    data_buf = malloc(PS_MAX_PAGE_SIZE * 2);
    backup = malloc(PS_MAX_PAGE_SIZE);
    ra_slots = malloc(sizeof *ra_slots * PS_MAX_SLOTS);
    ra_offs = malloc(sizeof *ra_offs * PS_MAX_SLOTS);
    ra_lens = malloc(sizeof *ra_lens * PS_MAX_SLOTS);
    ra_states = malloc(PS_MAX_SLOTS);
    nm = malloc(sizeof *nm * (PS_MAX_SLOTS + 1));
    nm_child = malloc(sizeof *nm_child * (PS_MAX_SLOTS + 2));
    nkey_buf = malloc(PS_MAX_PAGE_SIZE + 8);

    context = "crc";
    run_crc();
    context = "slot limit";
    run_slot_limit();
    for (uint64_t it = 0; it < iterations && failures == 0; it++) {
        uint32_t page_size = pick_page_size();
        context = "ops";
        run_sequence(page_size, 50 + below(page_size <= 4096 ? 600 : 300));
        context = "images";
        for (int k = 0; k < 50 && failures == 0; k++) run_image(pick_page_size());
        context = "nodes";
        run_node_build(pick_page_size());
        if (it % 2 == 0 && failures == 0) run_node_ops(pick_page_size(), 20 + below(300));
        for (int k = 0; k < 16 && failures == 0; k++) run_node_image(pick_page_size());
        context = "map";
        if (failures == 0) run_map(pick_page_size());
        context = "delta";
        for (int k = 0; k < 20 && failures == 0; k++) run_delta(pick_page_size());
        context = "singles";
        if (failures == 0) run_singles(pick_page_size());
    }
    printf("delta: %" PRIu64 " made and applied, %" PRIu64 " hostile refused\n", n_deltas, n_delta_bad);
    printf("harness: %" PRIu64 " ops, %" PRIu64 " images (%" PRIu64 " validated, %" PRIu64
           " with a promised verdict, %" PRIu64 " image ops), %" PRIu64 " batch reads, %" PRIu64 " crc checks; nodes: %" PRIu64
           " builds, %" PRIu64 " leaf ops (%" PRIu64 " compacting), %" PRIu64 " searches, %" PRIu64
           " images (%" PRIu64 " sound, %" PRIu64 " with a promised verdict); map: %" PRIu64 " calls, %" PRIu64
           " unsound pages; %" PRIu64 " batch builds; %" PRIu64 " failures (seed %" PRIu64 ")\n",
           n_ops, n_images, n_images_valid, n_targeted, n_image_ops, n_read_many, n_crc, n_node_builds, n_node_ops,
           n_node_compactions, n_node_searches, n_node_images, n_node_sound, n_node_promised, n_map_calls, n_map_pages_bad, n_singles, failures, seed);
    free(scratch); free(data_buf); free(backup);
    free(ra_slots); free(ra_offs); free(ra_lens); free(ra_states);
    nm_clear();
    free(nm); free(nm_child); free(nkey_buf);
    return failures ? 1 : 0;
}
