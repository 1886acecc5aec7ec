/*
** node.c: B+tree node pages, searched and decoded in one call each.
**
** The B+tree itself (splits, merges, what a separator is) lives in Python,
** pagestore/btree.py. What moved here is what a profile showed dominating
** once the store outgrows the node cache: decoding a leaf entry by entry in
** Python, and searching it. The record layout of node pages is documented in
** pagestore.h (NODE PAGES) and docs/format.md.
**
** Same conventions as page.c: caller's buffer, a PS_* status code, results
** through out-parameters, no I/O, no malloc, no globals; every offset read
** from the page is bounds-checked before it is followed.
*/
#include <string.h>

#include "pagestore.h"
#include "internal.h"

/* A node's entries, as the search and the decoder see them. */
typedef struct {
    const uint8_t *page;
    uint32_t page_size;
    int leaf;
    uint32_t nslots;   /* leaf: entries; internal: children */
    uint32_t upper;
} node_t;

/* open_node: header checks shared by every entry point. A node page has
** dense live slots (it is always written whole), so nslots == nlive, and an
** internal node has at least one child. */
static int open_node(const uint8_t *page, uint32_t page_size, node_t *n) {
    if (!valid_page_size(page_size)) return PS_EINVAL;
    uint8_t type = page[PS_OFF_TYPE];
    if (type != PS_PAGE_LEAF && type != PS_PAGE_INTERNAL) return PS_ENODE_TYPE;
    uint32_t nslots = get16(page + PS_OFF_NSLOTS);
    uint32_t lower = get16(page + PS_OFF_LOWER);
    uint32_t upper = get32(page + PS_OFF_UPPER);
    if (nslots > (page_size - PS_HEADER_SIZE) / PS_SLOT_SIZE) return PS_ECORRUPT_HEADER;
    if (lower != PS_HEADER_SIZE + nslots * PS_SLOT_SIZE) return PS_ECORRUPT_HEADER;
    if (lower > upper || upper > page_size) return PS_ECORRUPT_HEADER;
    if (get16(page + PS_OFF_NLIVE) != nslots) return PS_ECORRUPT_NODE;
    if (type == PS_PAGE_INTERNAL && nslots == 0) return PS_ECORRUPT_NODE; /* no children */
    n->page = page;
    n->page_size = page_size;
    n->leaf = type == PS_PAGE_LEAF;
    n->nslots = nslots;
    n->upper = upper;
    return PS_OK;
}

/* prefetch_node: asks for every cache line of the node at once: the slot array and the records
** (from `upper` to the page's end). A binary search's probes are a chain of dependent memory reads
** on a page not in the CPU's caches (a slot, then the key it points at, then the next slot...):
** about eight misses one after another for a leaf of a hundred entries. Fetched side by side,
** the page's lines arrive in the time of a few misses, and the search runs on lines at hand
** (bench/read_prefetch.py, 200k records: a random leaf search cost 0.71x-0.95x of the slots-only
** prefetch's, a whole get 0.88x-0.98x). A hint: it reads nothing C acts on, and open_node
** bounded the slot array and `upper` within the page. */
static void prefetch_node(const node_t *n) {
#if defined(__GNUC__) || defined(__clang__)
    const uint8_t *s = n->page + PS_HEADER_SIZE, *end = s + (size_t)n->nslots * PS_SLOT_SIZE;
    for (; s < end; s += 64) __builtin_prefetch(s);
    for (uint32_t at = n->upper & ~63u; at < n->page_size; at += 64) __builtin_prefetch(n->page + at);
#else
    (void)n;
#endif
}

/* record: slot i's bytes, bounds-checked, and at least `min` long. */
static int record(const node_t *n, uint32_t i, uint32_t min, const uint8_t **p, uint32_t *len) {
    const uint8_t *s = n->page + PS_HEADER_SIZE + (size_t)i * PS_SLOT_SIZE;
    uint32_t off = get16(s), l = get16(s + 2);
    if (s[4] != PS_SLOT_LIVE) return PS_ECORRUPT_NODE;
    if (l < min) return PS_ECORRUPT_NODE;
    if (l > 0 && (off < n->upper || (uint64_t)off + l > n->page_size)) return PS_ECORRUPT_SLOT;
    *p = n->page + off;
    *len = l;
    return PS_OK;
}

/* key j of the node: leaf entry j, or the separator in slot j + 1. */
static int node_key(const node_t *n, uint32_t j, const uint8_t **key, uint32_t *klen) {
    const uint8_t *p;
    uint32_t len;
    uint32_t prefix = n->leaf ? PS_NODE_RID_SIZE : PS_NODE_CHILD_SIZE;
    int rc = record(n, n->leaf ? j : j + 1, prefix, &p, &len);
    if (rc != PS_OK) return rc;
    *key = p + prefix;
    *klen = len - prefix;
    return PS_OK;
}

/* compare: bytewise, the way Python orders bytes. */
static int compare(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen) {
    uint32_t m = alen < blen ? alen : blen;
    int c = m ? memcmp(a, b, m) : 0;
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

int ps_node_search(const uint8_t *page, uint32_t page_size, const uint8_t *key, uint32_t klen,
                   int after, uint32_t *index_out, uint8_t *equal_out, uint32_t *pgno_out,
                   uint16_t *slot_out) {
    node_t n;
    int rc = open_node(page, page_size, &n);
    if (rc != PS_OK) return rc;
    uint32_t nkeys = n.leaf ? n.nslots : n.nslots - 1;
    uint32_t lo = 0, hi = nkeys;
    uint8_t equal = 0;
    prefetch_node(&n);
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const uint8_t *k;
        uint32_t kl;
        rc = node_key(&n, mid, &k, &kl);
        if (rc != PS_OK) return rc;
        int c = compare(k, kl, key, klen);
        if (c < 0 || (after && c == 0)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (!after && lo < nkeys) {
        const uint8_t *k;
        uint32_t kl;
        rc = node_key(&n, lo, &k, &kl);
        if (rc != PS_OK) return rc;
        equal = compare(k, kl, key, klen) == 0;
    }
    uint32_t pgno = 0, slot = 0;
    if (lo < n.nslots) {
        const uint8_t *p;
        uint32_t len;
        rc = record(&n, lo, n.leaf ? PS_NODE_RID_SIZE : PS_NODE_CHILD_SIZE, &p, &len);
        if (rc != PS_OK) return rc;
        pgno = get32(p);
        if (n.leaf) slot = get16(p + 4);
        else if (pgno == 0) return PS_ECORRUPT_NODE;
    }
    *index_out = lo;
    *equal_out = equal;
    *pgno_out = pgno;
    *slot_out = (uint16_t)slot;
    return PS_OK;
}

int ps_node_decode(const uint8_t *page, uint32_t page_size, uint32_t *key_off_out,
                   uint32_t *key_end_out, uint32_t *pgno_out, uint16_t *slot_out, uint32_t cap,
                   uint32_t *count_out) {
    node_t n;
    int rc = open_node(page, page_size, &n);
    if (rc != PS_OK) return rc;
    if (key_off_out && cap < n.nslots) return PS_EINVAL;
    const uint8_t *prev = NULL;
    uint32_t prev_len = 0;
    for (uint32_t i = 0; i < n.nslots; i++) {
        const uint8_t *p;
        uint32_t len;
        uint32_t prefix = n.leaf ? PS_NODE_RID_SIZE : PS_NODE_CHILD_SIZE;
        rc = record(&n, i, prefix, &p, &len);
        if (rc != PS_OK) return rc;
        uint32_t pgno = get32(p);
        if (!n.leaf && pgno == 0) return PS_ECORRUPT_NODE;
        if (!n.leaf && i == 0) {
            if (len != PS_NODE_CHILD_SIZE) return PS_ECORRUPT_NODE;
        } else {
            const uint8_t *k = p + prefix;
            uint32_t kl = len - prefix;
            if (prev != NULL && compare(prev, prev_len, k, kl) >= 0) return PS_ENODE_ORDER;
            prev = k;
            prev_len = kl;
        }
        if (key_off_out) {
            /* internal: key j is in slot j + 1; slot 0's entry is left unused */
            uint32_t j = n.leaf ? i : (i ? i - 1 : 0);
            if (n.leaf || i > 0) {
                key_off_out[j] = (uint32_t)(p - page) + prefix;
                key_end_out[j] = (uint32_t)(p - page) + len;
            }
            pgno_out[i] = pgno;
            if (slot_out) slot_out[i] = n.leaf ? get16(p + 4) : 0;
        }
    }
    *count_out = n.nslots;
    return PS_OK;
}

int ps_node_build(uint8_t *page, uint32_t page_size, uint32_t pgno, uint8_t type,
                  const uint8_t *keys, const uint32_t *key_lens, const uint32_t *pgnos,
                  const uint16_t *slots, uint32_t n) {
    if (!valid_page_size(page_size)) return PS_EINVAL;
    if (type != PS_PAGE_LEAF && type != PS_PAGE_INTERNAL) return PS_EINVAL;
    int leaf = type == PS_PAGE_LEAF;
    if (n > 0 && (pgnos == NULL || (leaf && slots == NULL))) return PS_EINVAL;
    uint32_t nkeys = leaf ? n : (n ? n - 1 : 0);
    uint64_t need = (uint64_t)n * PS_SLOT_SIZE, total = 0;
    for (uint32_t j = 0; j < nkeys; j++) {
        if (key_lens[j] > PS_MAX_RECORD) return PS_EINVAL;
        total += key_lens[j];
    }
    need += total + (uint64_t)n * (leaf ? PS_NODE_RID_SIZE : PS_NODE_CHILD_SIZE);
    if (n > PS_MAX_SLOTS || need > page_size - PS_HEADER_SIZE) return PS_EFULL;
    if (total > 0 && keys == NULL) return PS_EINVAL;
    if (total > 0) {
        uintptr_t p = (uintptr_t)page, d = (uintptr_t)keys;
        if (d < p + page_size && p < d + total) return PS_EINVAL; /* keys inside the page */
    }
    memset(page, 0, page_size);
    put32(page + PS_OFF_PGNO, pgno);
    page[PS_OFF_TYPE] = type;
    uint32_t upper = page_size;
    const uint8_t *k = keys;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t prefix = leaf ? PS_NODE_RID_SIZE : PS_NODE_CHILD_SIZE;
        uint32_t kl = 0;
        if (leaf) kl = key_lens[i];
        else if (i > 0) kl = key_lens[i - 1];
        uint32_t len = prefix + kl;
        upper -= len;
        uint8_t *r = page + upper;
        put32(r, pgnos[i]);
        if (leaf) put16(r + 4, slots[i]);
        if (kl) memcpy(r + prefix, k, kl);
        k += kl;
        uint8_t *s = page + PS_HEADER_SIZE + (size_t)i * PS_SLOT_SIZE;
        put16(s, upper);
        put16(s + 2, len);
        s[4] = PS_SLOT_LIVE;
        s[5] = 0;
    }
    put16(page + PS_OFF_NSLOTS, n);
    put16(page + PS_OFF_NLIVE, n);
    put16(page + PS_OFF_LOWER, PS_HEADER_SIZE + n * PS_SLOT_SIZE);
    put32(page + PS_OFF_UPPER, upper);
    return PS_OK;
}

/* ---- changing a leaf in place ----
** A put or delete that neither overflows nor underfills its leaf changes the
** page directly, without decoding it: the common case of every write. The
** slot array shifts (node slot ids are positions, not record ids: nothing
** outside the node holds them), record bytes go where the page layer would
** put them, and compaction (ps_page_compact) makes room when holes allow. */

/* open_leaf: a leaf whose header is sane for a change. */
static int open_leaf(uint8_t *page, uint32_t page_size, node_t *n, uint32_t *frag) {
    int rc = open_node(page, page_size, n);
    if (rc != PS_OK) return rc;
    if (!n->leaf) return PS_EINVAL;
    *frag = get32(page + PS_OFF_FRAG);
    if (*frag > page_size - n->upper) return PS_ECORRUPT_SPACE;
    return PS_OK;
}

/* leaf_entry: open_leaf, then entry index's record (bounds-checked). */
static int leaf_entry(uint8_t *page, uint32_t page_size, uint32_t index, node_t *n, uint32_t *frag,
                      const uint8_t **p, uint32_t *len) {
    int rc = open_leaf(page, page_size, n, frag);
    if (rc != PS_OK) return rc;
    if (index >= n->nslots) return PS_EINVAL;
    return record(n, index, PS_NODE_RID_SIZE, p, len);
}

static void set_counts(uint8_t *page, uint32_t nslots, uint32_t upper, uint32_t frag) {
    put16(page + PS_OFF_NSLOTS, nslots);
    put16(page + PS_OFF_NLIVE, nslots);
    put16(page + PS_OFF_LOWER, PS_HEADER_SIZE + nslots * PS_SLOT_SIZE);
    put32(page + PS_OFF_UPPER, upper);
    put32(page + PS_OFF_FRAG, frag);
}

int ps_node_leaf_insert(uint8_t *page, uint32_t page_size, uint32_t index, const uint8_t *key,
                        uint32_t klen, uint32_t pgno, uint16_t slot) {
    node_t n;
    uint32_t frag;
    int rc = open_leaf(page, page_size, &n, &frag);
    if (rc != PS_OK) return rc;
    if (index > n.nslots || (klen > 0 && key == NULL)) return PS_EINVAL;
    if (klen > PS_MAX_RECORD - PS_NODE_RID_SIZE) return PS_EINVAL;
    if (klen > 0) {
        uintptr_t p = (uintptr_t)page, d = (uintptr_t)key;
        if (d < p + page_size && p < d + klen) return PS_EINVAL;
    }
    /* the key must fall strictly between its neighbours */
    const uint8_t *k;
    uint32_t kl;
    if (index > 0) {
        rc = node_key(&n, index - 1, &k, &kl);
        if (rc != PS_OK) return rc;
        if (compare(k, kl, key, klen) >= 0) return PS_EINVAL;
    }
    if (index < n.nslots) {
        rc = node_key(&n, index, &k, &kl);
        if (rc != PS_OK) return rc;
        if (compare(key, klen, k, kl) >= 0) return PS_EINVAL;
    }
    uint32_t len = PS_NODE_RID_SIZE + klen;
    uint32_t lower = PS_HEADER_SIZE + n.nslots * PS_SLOT_SIZE;
    uint64_t need = (uint64_t)len + PS_SLOT_SIZE;
    if (n.nslots + 1 > PS_MAX_SLOTS) return PS_EFULL;
    if (need > (uint64_t)n.upper - lower + frag) return PS_EFULL;
    if (need > n.upper - lower) {
        rc = ps_page_compact(page, page_size);
        if (rc != PS_OK) return rc;
        n.upper = get32(page + PS_OFF_UPPER);
        frag = 0;
    }
    uint32_t upper = n.upper - len;
    uint8_t *r = page + upper;
    put32(r, pgno);
    put16(r + 4, slot);
    if (klen) memcpy(r + PS_NODE_RID_SIZE, key, klen);
    uint8_t *s = page + PS_HEADER_SIZE + (size_t)index * PS_SLOT_SIZE;
    memmove(s + PS_SLOT_SIZE, s, (size_t)(n.nslots - index) * PS_SLOT_SIZE);
    put16(s, upper);
    put16(s + 2, len);
    s[4] = PS_SLOT_LIVE;
    s[5] = 0;
    set_counts(page, n.nslots + 1, upper, frag);
    return PS_OK;
}

int ps_node_leaf_remove(uint8_t *page, uint32_t page_size, uint32_t index, uint32_t *used_out) {
    node_t n;
    uint32_t frag, len;
    const uint8_t *p;
    int rc = leaf_entry(page, page_size, index, &n, &frag, &p, &len);
    if (rc != PS_OK) return rc;
    uint32_t off = (uint32_t)(p - page), upper = n.upper;
    if (off == upper) upper += len; /* the lowest record: the area starts higher */
    else frag += len;
    if (frag > page_size - upper) return PS_ECORRUPT_SPACE;
    uint8_t *s = page + PS_HEADER_SIZE + (size_t)index * PS_SLOT_SIZE;
    memmove(s, s + PS_SLOT_SIZE, (size_t)(n.nslots - index - 1) * PS_SLOT_SIZE);
    uint32_t nslots = n.nslots - 1;
    if (nslots == 0) {
        upper = page_size;
        frag = 0;
    }
    set_counts(page, nslots, upper, frag);
    /* used = what the entries cost: usable bytes less the free ones */
    *used_out = (page_size - PS_HEADER_SIZE) - ((upper - (PS_HEADER_SIZE + nslots * PS_SLOT_SIZE)) + frag);
    return PS_OK;
}

int ps_node_leaf_set_rid(uint8_t *page, uint32_t page_size, uint32_t index, uint32_t pgno,
                         uint16_t slot) {
    node_t n;
    uint32_t frag, len;
    const uint8_t *p;
    int rc = leaf_entry(page, page_size, index, &n, &frag, &p, &len);
    if (rc != PS_OK) return rc;
    uint8_t *r = page + (p - page);
    put32(r, pgno);
    put16(r + 4, slot);
    return PS_OK;
}
