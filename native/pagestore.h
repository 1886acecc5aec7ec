/*
** pagestore.h: the slotted page, pagestore's unit of storage.
**
** Everything in a pagestore file except page 0 (the file header, described at
** the end of this comment) is a slotted page. This header is the reference for
** the page layout; docs/format.md repeats it and tests/test_format.py keeps the
** two in step.
**
** All integers on disk are LITTLE-ENDIAN. Offsets are bytes from the start of
** the page. Page sizes are powers of two from 512 to 65536 bytes.
**
** PAGE LAYOUT
**
**      0        40                lower          upper                 page_size
**      +--------+-----------------+--------------+---------------------+
**      | header | slot array ->   |   free gap   |  <- record bytes    |
**      +--------+-----------------+--------------+---------------------+
**
** The slot array grows from the front, record bytes are packed from the
** back. A record is addressed from outside the page only by its slot id (its
** index in the slot array); where its bytes lie is the page's own business, so
** compaction can move bytes without changing any slot id.
**
** PAGE HEADER (PS_HEADER_SIZE = 40 bytes)
**
**   OFFSET  SIZE  DESCRIPTION
**      0      4   checksum: CRC32C of bytes [4, page_size). It covers the
**                 page number, so a page written to the wrong place fails.
**      4      4   pgno: the page's own number in the file
**      8      8   lsn: log sequence number of the last change (set by the WAL)
**     16      1   type: one of PS_PAGE_* (the page layer does not interpret it)
**     17      1   flags: reserved for the layers above, zero today
**     18      2   nslots: entries in the slot array, free ones included
**     20      2   nlive: slots whose state is not PS_SLOT_FREE
**     22      2   lower: end of the slot array = 40 + 6 * nslots
**     24      4   upper: start of the record area; page_size when empty
**     28      4   frag: free bytes inside [upper, page_size) not owned by
**                 any live record (holes left by deletes and shrinks)
**     32      4   next: next page in a chain (overflow, free list, map),
**                 0 for none; the page layer does not interpret it
**     36      4   reserved, zero
**
** SLOT ENTRY (PS_SLOT_SIZE = 6 bytes), slot i at offset 40 + 6 * i
**
**   OFFSET  SIZE  DESCRIPTION
**      0      2   offset of the record's first byte (0 for a free slot and
**                 for a zero-length record)
**      2      2   length of the record in bytes
**      4      1   state: PS_SLOT_FREE, PS_SLOT_LIVE or PS_SLOT_OVERFLOW
**      5      1   reserved, zero
**
** A PAGE IS VALID if and only if:
**   - lower == 40 + 6 * nslots and lower <= upper <= page_size;
**   - nlive equals the number of slots whose state is not FREE, and the last
**     slot (if any) is not FREE (trailing free slots are always trimmed);
**   - a FREE slot has offset 0 and length 0; a state is one of those defined;
**   - a non-empty live record lies inside [upper, page_size), and no two
**     live records overlap; a zero-length live record has offset 0;
**   - frag == (page_size - upper) - (sum of live record lengths);
**   - the reserved bytes are zero.
** The checksum is verified separately (ps_page_verify), because a page being
** built in memory is valid before it has a checksum.
**
** DERIVED QUANTITIES (named, as LMDB does, so nobody recomputes them wrong)
**   contiguous free = upper - lower          (insertable without compaction)
**   total free      = upper - lower + frag   (after compaction)
**   max insertable  = total free, less PS_SLOT_SIZE unless a free slot can be
**                     reused, capped at PS_MAX_RECORD
**
** FILE HEADER (page 0), written and read by pagestore/format.py
**
**   OFFSET  SIZE  DESCRIPTION
**      0     16   magic: "pagestore\0fmt\0\0\0" (PS_MAGIC)
**     16      4   format version (PS_FORMAT_VERSION)
**     20      4   page size in bytes
**     24      4   checksum: CRC32C of bytes [0, 24) then [28, 512)
**     28      4   page_count: pages in the file, page 0 included
**     32      4   root: page number of the B+tree root
**     36      4   tree_height: 1 when the root is a leaf
**     40      4   freelist_head: first free-list trunk page, 0 for none
**     44      4   freelist_count: pages the free list owns, trunks included
**     48      4   fsm_head: first free-space-map page, 0 for none
**     52      4   freelist_trunks: free-list trunk pages (reserved, zero, before version 4)
**     56      8   record_count: live keys in the store
**     64      8   live_bytes: sum of key and value lengths of live records
**     72      8   lsn: last committed transaction id
**     80      8   file_id: random, chosen at creation; ties the log to the file
**     88      8   checkpoint_seq: count of completed checkpoints
**     96     16   key_codec: the key codec's name, ASCII, NUL-padded ("bytes")
**    112     16   value_codec: the value codec's name, ASCII, NUL-padded
**    128    384   reserved, zero (the checksummed header ends at byte 512)
**    512    ...   unused, zero up to page_size
** The checksum covers every byte of the first 512 but its own four, so any
** damage to the header, its version and page size included, is reported as
** header damage on page 0. Only the magic is read before the checksum: a file
** whose magic differs is not ours. Every later version keeps this checksum
** rule, so a newer file is told apart from a damaged one. Version 1 (before the codec names) summed
** bytes [28, 512) only and kept bytes [96, 512) zero; it is read as a store of
** bytes to bytes, and the next header written is the current version. Version 3
** differs from 2 only in its log, whose frames may be deltas (pagestore/wal.py):
** a version-2 reader would take that log for another file's and lose its commits,
** so it must refuse the file. Version 4 (PS_TRUNK_FORMAT_VERSION) lists the
** free pages as extents in trunk pages instead of chaining them through each
** free page's next field, so a freed page is never written:
**
** FREE-LIST TRUNK (a slotted page of type PS_PAGE_FREE, pagestore/freelist.py)
**   slot 0 holds the extents; next = the next trunk, 0 for the last.
**
**   OFFSET  SIZE  DESCRIPTION (in slot 0's record, extent i)
**     8i      4   first page of the extent
**     8i+4    4   count of pages, 1 or more
**
**   Extents are ascending and disjoint across the whole chain, inside
**   [1, page_count), and never cover a trunk. A version 3 file's free list
**   (a chain of PS_PAGE_FREE pages through next) is rewritten as trunks by the
**   first commit after it is opened.
**
** NODE PAGES (B+tree, pagestore/btree.py; searched and decoded by node.c)
**   A node page is a slotted page of type PS_PAGE_LEAF or PS_PAGE_INTERNAL
**   whose slots are dense and live (nslots == nlive): it is always written
**   whole. Keys are ordered bytewise and strictly ascending.
**
**   LEAF RECORD, slot i = the i-th entry in key order
**
**   OFFSET  SIZE  DESCRIPTION
**      0      4   rid page number (u32)
**      4      2   rid slot (u16); the rid is PS_NODE_RID_SIZE = 6 bytes
**      6    ...   the key: the rest of the record (record length - 6)
**
**   An internal node with n children has n records. Slot 0 is exactly
**   PS_NODE_CHILD_SIZE = 4 bytes, the leftmost child's page number (u32).
**   INTERNAL RECORD, slot i (0 < i < n)
**
**   OFFSET  SIZE  DESCRIPTION
**      0      4   child i page number (u32), never 0
**      4    ...   separator key i: the rest of the record (length - 4)
**
**   Child i holds the keys k with key(i) <= k < key(i + 1), where key(i)
**   is slot i's separator, key(0) = -infinity and key(n) = +infinity.
**
** CONVENTIONS OF THIS API
**   Every function takes the caller's buffer and its size, returns a PS_*
**   status code, and writes results through out-parameters. No I/O, no
**   malloc, no globals. Mutating functions expect a valid page (see above)
**   and still bounds-check every offset they follow, so a page corrupted
**   behind their back yields an error code, never a stray access.
*/
#ifndef PAGESTORE_H
#define PAGESTORE_H

#include <stdint.h>

/* ---- CDEF BEGIN: the region below is read by native/build_ffi.py ---- */

#define PS_NATIVE_VERSION 9     /* bumped on any ABI or format change */
#define PS_FORMAT_VERSION 4     /* on-disk format version in page 0 */
#define PS_TRUNK_FORMAT_VERSION 4 /* first version whose free list is trunks of extents */

#define PS_HEADER_SIZE 40
#define PS_SLOT_SIZE 6
#define PS_MIN_PAGE_SIZE 512
#define PS_MAX_PAGE_SIZE 65536
#define PS_MAX_RECORD 65535     /* the slot's length field is 16 bits */
#define PS_MAX_SLOTS 10915      /* (65535 - 40) / 6: lower fits 16 bits */
#define PS_FILE_HEADER_SIZE 512 /* checksummed part of page 0 */

/* Header field offsets. */
#define PS_OFF_CHECKSUM 0
#define PS_OFF_PGNO 4
#define PS_OFF_LSN 8
#define PS_OFF_TYPE 16
#define PS_OFF_FLAGS 17
#define PS_OFF_NSLOTS 18
#define PS_OFF_NLIVE 20
#define PS_OFF_LOWER 22
#define PS_OFF_UPPER 24
#define PS_OFF_FRAG 28
#define PS_OFF_NEXT 32

/* Slot states. */
#define PS_SLOT_FREE 0          /* unused; reused by the next insert */
#define PS_SLOT_LIVE 1          /* an ordinary record */
#define PS_SLOT_OVERFLOW 2      /* a live record holding an overflow stub */

/* Page types (the page layer stores them; the layers above give meaning). */
#define PS_PAGE_FREE 0          /* a free-list trunk (format 3: a page on the free list) */
#define PS_PAGE_HEAP 1          /* value records of the record heap */
#define PS_PAGE_LEAF 2          /* B+tree leaf: slot i = i-th entry in key order */
#define PS_PAGE_INTERNAL 3      /* B+tree internal node */
#define PS_PAGE_OVERFLOW 4      /* one chunk of a large record, in slot 0 */
#define PS_PAGE_FSM 5           /* free-space map: one byte per page */
#define PS_PAGE_META 6          /* page 0 (not slotted; listed for inspect) */

/* B+tree node records (see NODE PAGES above). */
#define PS_NODE_RID_SIZE 6      /* leaf record prefix: rid page (u32), slot (u16) */
#define PS_NODE_CHILD_SIZE 4    /* internal record prefix: child page (u32) */

/* Status codes: one numbered range, each with a strerror (ps_strerror). */
#define PS_OK 0
#define PS_EFULL 1              /* the record does not fit in this page */
#define PS_ENOSLOT 2            /* slot id out of range or free */
#define PS_EINVAL 3             /* bad argument: size, length, state, aliasing */
#define PS_ECORRUPT_HEADER 10   /* header fields inconsistent */
#define PS_ECORRUPT_SLOT 11     /* a slot points outside the record area */
#define PS_ECORRUPT_OVERLAP 12  /* two live records overlap */
#define PS_ECORRUPT_SPACE 13    /* free-space accounting does not add up */
#define PS_ECHECKSUM 14         /* stored checksum does not match the bytes */
#define PS_EPGNO 15             /* page stamped with another page number */
#define PS_ENODE_TYPE 16        /* a B+tree pointer leads to a page that is not a node */
#define PS_ECORRUPT_NODE 17     /* node slots not dense and live, or a record too short */
#define PS_ENODE_ORDER 18       /* node keys are not strictly ascending */
#define PS_EOUTSIDE 19          /* page number 0, or past the end of the mapped file */
#define PS_ETYPE 20             /* page is not of the type the caller asked for */
#define PS_ECORRUPT_DELTA 21    /* a log delta run lies outside the page or out of order */

int ps_native_version(void);
const char *ps_strerror(int code);
uint32_t ps_crc32c(uint32_t crc, const uint8_t *data, uint64_t len);
uint32_t ps_crc32c_sw(uint32_t crc, const uint8_t *data, uint64_t len); /* portable path */

/* Lifecycle and integrity. */
int ps_page_init(uint8_t *page, uint32_t page_size, uint32_t pgno, uint8_t type);
int ps_page_validate(const uint8_t *page, uint32_t page_size);
int ps_page_set_checksum(uint8_t *page, uint32_t page_size);
int ps_page_verify(const uint8_t *page, uint32_t page_size, uint32_t expected_pgno);

/* Records. Slot ids never change while the record lives. */
int ps_page_insert(uint8_t *page, uint32_t page_size, const uint8_t *data,
                   uint32_t len, uint8_t state, uint16_t *slot_out);
int ps_page_read(const uint8_t *page, uint32_t page_size, uint32_t slot,
                 uint32_t *offset_out, uint32_t *len_out, uint8_t *state_out);
int ps_page_update(uint8_t *page, uint32_t page_size, uint32_t slot,
                   const uint8_t *data, uint32_t len, uint8_t state);
int ps_page_delete(uint8_t *page, uint32_t page_size, uint32_t slot);
int ps_page_compact(uint8_t *page, uint32_t page_size);

/* Free space: contiguous now, total after compaction, largest insertable. */
int ps_page_free_space(const uint8_t *page, uint32_t page_size,
                       uint32_t *contiguous_out, uint32_t *total_out,
                       uint32_t *max_insert_out);

/* Batch read: the live slots in slot-id order with their offsets, lengths and
** states; cap is the capacity of the output arrays (PS_MAX_SLOTS always
** suffices). */
int ps_page_read_all(const uint8_t *page, uint32_t page_size, uint16_t *slots_out,
                     uint32_t *offsets_out, uint32_t *lens_out, uint8_t *states_out,
                     uint32_t cap, uint32_t *count_out);

/* Scattered batch read: ps_page_read of slot slots[i] in the page at pages[i]
** (every page page_size bytes), for i < n: status_out[i] is what ps_page_read
** returns, and where that is PS_OK the record's offset, length and state are
** in offsets_out[i], lens_out[i], states_out[i] (otherwise all three are 0:
** no live record has state 0, PS_SLOT_FREE). A NULL page gets PS_EINVAL.
** One call for a run of a
** scan's values, which lie in as many pages as records. Returns PS_OK, or
** PS_EINVAL for a bad page size or a NULL array with n > 0. */
int ps_page_read_many(const uint8_t *const *pages, uint32_t page_size, const uint16_t *slots,
                      uint32_t n, uint32_t *offsets_out, uint32_t *lens_out,
                      uint8_t *states_out, int32_t *status_out);

/* Batch build: append n records (lengths in lens, bytes concatenated in data)
** to a page, each with state PS_SLOT_LIVE, taking new slots at the end of the
** array. Either all fit and are written, or PS_EFULL and the page is untouched. */
int ps_page_append_many(uint8_t *page, uint32_t page_size, const uint8_t *data,
                        const uint32_t *lens, uint32_t n);

/* Batch build of one-record pages (the pages of an overflow chain): for
** i < n, the i-th page_size bytes of `pages` become an empty page of `type`
** numbered pgnos[i] (ps_page_init), with next field nexts[i], holding in slot
** 0, state PS_SLOT_LIVE, the lens[i] bytes of `data` that follow the bytes of
** the pages before it. The page numbers are only stamped, never followed; lsn
** and checksum are left to ps_page_seal_many. PS_EINVAL for a bad page size
** or NULL arrays with n > 0; PS_EFULL when a record does not fit an empty
** page (the pages before it are built). */
int ps_page_build_singles(uint8_t *pages, uint32_t page_size, uint32_t n, uint8_t type,
                          const uint32_t *pgnos, const uint32_t *nexts,
                          const uint8_t *data, const uint32_t *lens);

/* Seal n pages lying back to back in `pages`: stamp `lsn` into each, then
** its checksum (what ps_page_set_checksum does for one page). */
int ps_page_seal_many(uint8_t *pages, uint32_t page_size, uint32_t n, uint64_t lsn);

/* B+tree nodes (node.c). The page must already have passed ps_page_verify
** or ps_page_validate; these still bounds-check every slot they follow.
**
** ps_node_search: binary search of the node's keys for `key`. With after=0
** the index of the first key >= key (bisect_left), and equal_out says
** whether that key equals it; with after=1 the first key > key
** (bisect_right). pgno_out/slot_out: for a leaf the rid of entry index (0, 0
** when index == entries); for an internal node child index's page number. */
int ps_node_search(const uint8_t *page, uint32_t page_size, const uint8_t *key, uint32_t klen,
                   int after, uint32_t *index_out, uint8_t *equal_out, uint32_t *pgno_out,
                   uint16_t *slot_out);

/* ps_node_decode: checks the whole node (dense live slots, record lengths,
** strictly ascending keys, no child 0) and, when key_off_out is not NULL,
** writes where each key starts and ends in the page (leaf: entry i; internal:
** key j, from slot j + 1) and each entry's page number (and, for a leaf, rid
** slot; slot_out may be NULL for internal nodes). count_out: entries of a
** leaf, children of an internal node. cap: capacity of the arrays. */
int ps_node_decode(const uint8_t *page, uint32_t page_size, uint32_t *key_off_out,
                   uint32_t *key_end_out, uint32_t *pgno_out, uint16_t *slot_out, uint32_t cap,
                   uint32_t *count_out);

/* ps_node_build: writes a whole node page: header (pgno, type, zero lsn and
** checksum) and n entries. Leaf: n keys (lengths key_lens[0..n), bytes
** concatenated in keys) with rids pgnos[i], slots[i]. Internal: n children
** pgnos[0..n) and n - 1 keys; slots unused. PS_EFULL (page untouched) when
** they do not fit. */
int ps_node_build(uint8_t *page, uint32_t page_size, uint32_t pgno, uint8_t type,
                  const uint8_t *keys, const uint32_t *key_lens, const uint32_t *pgnos,
                  const uint16_t *slots, uint32_t n);

/* Leaf changes in place, for the puts and deletes that neither overflow nor
** underfill their leaf (index: from ps_node_search).
** ps_node_leaf_insert: a new entry (key, rid) at index; PS_EINVAL unless the
** key lies strictly between its neighbours; PS_EFULL (page untouched) when it
** does not fit even after compaction.
** ps_node_leaf_remove: drops entry index; used_out = bytes the remaining
** entries cost (records plus slots), for the caller's underfull test.
** ps_node_leaf_set_rid: points entry index at another record. */
int ps_node_leaf_insert(uint8_t *page, uint32_t page_size, uint32_t index, const uint8_t *key,
                        uint32_t klen, uint32_t pgno, uint16_t slot);
int ps_node_leaf_remove(uint8_t *page, uint32_t page_size, uint32_t index, uint32_t *used_out);
int ps_node_leaf_set_rid(uint8_t *page, uint32_t page_size, uint32_t index, uint32_t pgno,
                         uint16_t slot);

/* MAPPED PAGES (map.c)
** The data file, mapped read-only: page pgno lies at base + pgno * page_size,
** for pgno < len / page_size. The caller fills a ps_map_t once per mapping
** and passes it with a page number, so a read in place costs no pointer
** object per call. `verified` is a bitset, one bit per page (verified_len
** bytes): a page whose bit is clear is verified before anything else reads
** it (ps_page_verify against pgno: checksum, stamped number, structure; and
** for a node page the node check of ps_node_decode), and its bit is set only
** if it passes. The caller clears a page's bit when it rewrites the page in
** the file. Page 0 (the file header, not a slotted page) and pages past the
** mapping or the bitset give PS_EOUTSIDE. The map is never written.
**
** ps_map_check: verify page pgno (if its bit is clear); PS_OK when it is sound.
** ps_map_node_search: ps_node_search on page pgno; want_type (PS_PAGE_LEAF
**   or PS_PAGE_INTERNAL, or -1 for either) gives PS_ETYPE for the other kind.
** ps_map_node_decode: ps_node_decode of page pgno, with each key's start
**   and end as offsets from base (not from the page), for slicing the map.
** ps_map_page_read: ps_page_read of slot `slot` in page pgno, the offset
**   from base; want_type >= 0: PS_ETYPE for a page of another type. next_out
**   (may be NULL): the page header's next field, for the caller to follow.
** ps_map_read_many: ps_page_read of slot slots[i] in page pgnos[i] for i < n,
**   the scattered batch of a scan's values. pages, when not NULL, overrides
**   the map per entry: a non-NULL pages[i] is a page image of the caller's
**   (a dirty or logged page, already verified) and its offset is from
**   pages[i]; otherwise the offset is from base. want_type >= 0: a page of
**   another type gets PS_ETYPE. status_out[i] is the entry's status; where it
**   is not PS_OK, offset, length and state are 0. Returns PS_OK, or PS_EINVAL
**   for a bad map or a NULL array with n > 0. */
typedef struct {
    const uint8_t *base;        /* the mapping's first byte (page 0) */
    uint64_t len;               /* bytes mapped */
    uint32_t page_size;
    uint8_t *verified;          /* bit pgno set: page pgno verified */
    uint64_t verified_len;      /* bytes of the bitset */
} ps_map_t;

int ps_map_check(ps_map_t *map, uint32_t pgno);
int ps_map_node_search(ps_map_t *map, uint32_t pgno, int want_type, const uint8_t *key, uint32_t klen,
                       int after, uint32_t *index_out, uint8_t *equal_out, uint32_t *pgno_out,
                       uint16_t *slot_out);
int ps_map_node_decode(ps_map_t *map, uint32_t pgno, int want_type, uint64_t *key_off_out,
                       uint64_t *key_end_out, uint32_t *pgno_out, uint16_t *slot_out, uint32_t cap,
                       uint32_t *count_out);
int ps_map_page_read(ps_map_t *map, uint32_t pgno, uint32_t slot, int want_type, uint64_t *offset_out,
                     uint32_t *len_out, uint8_t *state_out, uint32_t *next_out);
int ps_map_read_many(ps_map_t *map, const uint8_t *const *pages, const uint32_t *pgnos,
                     const uint16_t *slots, uint32_t n, int want_type, uint64_t *offsets_out,
                     uint32_t *lens_out, uint8_t *states_out, int32_t *status_out);

/* LEAN CALLS (map.c): the read path's three hot calls with few arguments and
** the answer returned, not written through out-parameters: a binding pays for
** every argument it converts and every out-parameter it reads back (a cffi
** call with ten arguments and four out-parameters cost five times one with
** four arguments and none). They are what ps_map_node_search and
** ps_map_page_read do, on the same verified pages; a negative result is
** -(status code).
** ps_map_child: the page number of the child of internal node pgno whose range
**   holds key (ps_map_node_search with want_type PS_PAGE_INTERNAL, after=1).
** ps_map_leaf_find: ps_map_node_search of leaf pgno for key (after=0), packed
**   as rid_pgno << 31 | rid_slot << 15 | index << 1 | equal (all of it fits
**   63 bits: index < PS_MAX_SLOTS < 2^14); rid (0, 0) past the last entry.
** ps_map_value: the offset from base of the record in slot `slot` of heap page
**   pgno, its length in *len_out, when it is a whole live record
**   (PS_SLOT_LIVE) of a PS_PAGE_HEAP page; -PS_ENOSLOT for a record in
**   another state (an overflow stub), -PS_ETYPE for a page of another type. */
int64_t ps_map_child(ps_map_t *map, uint32_t pgno, const uint8_t *key, uint32_t klen);
int64_t ps_map_leaf_find(ps_map_t *map, uint32_t pgno, const uint8_t *key, uint32_t klen);
int64_t ps_map_value(ps_map_t *map, uint32_t pgno, uint32_t slot, uint32_t *len_out);

/* Page deltas (delta.c): the runs in which two images of a page differ (the log's
** frames after a page's first whole image), and applying them. See delta.c. */
int ps_delta_make(const uint8_t *old, const uint8_t *new_, uint32_t page_size, uint8_t *out,
                  uint32_t cap, uint32_t *len_out);
int ps_delta_apply(uint8_t *page, uint32_t page_size, const uint8_t *delta, uint32_t len);

/* ---- CDEF END ---- */

#endif /* PAGESTORE_H */
