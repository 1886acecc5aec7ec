/*
** fastpage.c: the read and write paths' hot page-local calls as a CPython extension
** module (pagestore._fastpage), METH_FASTCALL, over the same C functions the
** cffi module builds (node.c, map.c, page.c).
**
** Why a second binding: a cffi call pays for every argument it converts and
** every out-parameter read back (ps_map_node_search, ten arguments and four
** cdata cells: about 230 ns a call on the reference machine); the same search
** through a METH_FASTCALL function taking a handle and the key and returning
** its answer costs a fifth of that. bench/binding.py measures both.
**
** Only pagestore/_native.py imports this module; it falls back to cffi
** (lean signatures, the same answers) where the module is absent, on PyPy,
** or with PAGESTORE_NATIVE=cffi.
**
** Conventions:
**   - A map handle is the address (a Python int) of the pager's ps_map_t, the
**     struct the cffi module allocated; _native.map_handle makes it, and the
**     struct outlives every call (the pager keeps it for its life). Its base
**     is NULL while no map is attached: every call then gets PS_EINVAL.
**   - Keys and raw nodes are exact bytes objects. The write path's two calls
**     (page_insert_room, leaf_insert) change a pager frame in place: an exact
**     bytearray whose length is the page size; its bytes are as untrusted as
**     any page's (the C checks every offset), and a bytes argument can never
**     alias it.
**   - Every function is page-local: a page number read from a page is
**     returned, never followed.
**   - An error status raises through the callable given to init(), as
**     raise_fn(code, pgno, what): the one table of _native.raise_for, so a
**     damaged page gives CorruptionError naming it, as through cffi.
**   - The GIL is held throughout (the calls are short), so the verified
**     bitset of the map is only ever written under it.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "pagestore.h"

static PyObject *raise_fn = NULL; /* _native.raise_for */

/* fail: raise the exception of status `code` for page pgno; returns NULL. */
static PyObject *fail(int code, uint32_t pgno, const char *what) {
    if (PyErr_Occurred()) return NULL;
    if (raise_fn == NULL) {
        PyErr_Format(PyExc_RuntimeError, "pagestore._fastpage: status %d on page %u (init() not called)", code,
                     (unsigned)pgno);
        return NULL;
    }
    PyObject *r = PyObject_CallFunction(raise_fn, "iIs", code, (unsigned int)pgno, what);
    if (r != NULL) { /* raise_for always raises */
        Py_DECREF(r);
        PyErr_SetString(PyExc_RuntimeError, "pagestore._fastpage: raise_fn returned");
    }
    return NULL;
}

static int nargs_ok(Py_ssize_t n, Py_ssize_t want, const char *name) {
    if (n == want) return 1;
    PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, want, n);
    return 0;
}

static ps_map_t *as_map(PyObject *h) {
    void *p = PyLong_AsVoidPtr(h);
    if (p == NULL && !PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "null map handle");
    return (ps_map_t *)p;
}

static int as_u32(PyObject *o, uint32_t *out) {
    unsigned long v = PyLong_AsUnsignedLong(o);
    if (v == (unsigned long)-1 && PyErr_Occurred()) return 0;
    if (v > 0xFFFFFFFFul) {
        PyErr_SetString(PyExc_OverflowError, "page number or slot does not fit 32 bits");
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

static int as_bytes(PyObject *o, const char *what) {
    if (PyBytes_CheckExact(o)) return 1;
    PyErr_Format(PyExc_TypeError, "%s must be bytes, not %.100s", what, Py_TYPE(o)->tp_name);
    return 0;
}

static PyObject *search_tuple(uint32_t index, uint8_t equal, uint32_t pgno, uint16_t slot) {
    return Py_BuildValue("(IOIH)", (unsigned int)index, equal ? Py_True : Py_False, (unsigned int)pgno, slot);
}

/* init(raise_fn): the callable that raises for a status code (code, pgno, what). */
static PyObject *fp_init(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyCallable_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "init() needs a callable");
        return NULL;
    }
    Py_INCREF(arg);
    Py_XSETREF(raise_fn, arg);
    Py_RETURN_NONE;
}

/* map_child(h, pgno, key) -> child page number (ps_map_child). */
static PyObject *fp_map_child(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno;
    if (!nargs_ok(n, 3, "map_child") || !as_u32(args[1], &pgno) || !as_bytes(args[2], "key")) return NULL;
    ps_map_t *m = as_map(args[0]);
    if (m == NULL) return NULL;
    int64_t r = ps_map_child(m, pgno, (const uint8_t *)PyBytes_AS_STRING(args[2]), (uint32_t)PyBytes_GET_SIZE(args[2]));
    if (r < 0) return fail((int)-r, pgno, "internal node");
    return PyLong_FromLongLong(r);
}

/* map_find(h, pgno, key) -> (index, equal, rid pgno, rid slot) in leaf pgno. */
static PyObject *fp_map_find(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno, idx[2];
    uint8_t eq;
    uint16_t slot;
    if (!nargs_ok(n, 3, "map_find") || !as_u32(args[1], &pgno) || !as_bytes(args[2], "key")) return NULL;
    ps_map_t *m = as_map(args[0]);
    if (m == NULL) return NULL;
    int rc = ps_map_node_search(m, pgno, PS_PAGE_LEAF, (const uint8_t *)PyBytes_AS_STRING(args[2]),
                                (uint32_t)PyBytes_GET_SIZE(args[2]), 0, idx, &eq, idx + 1, &slot);
    if (rc != PS_OK) return fail(rc, pgno, "leaf");
    return search_tuple(idx[0], eq, idx[1], slot);
}

/* node_child(raw, key, pgno) -> child page number of raw internal node (pgno: for errors). */
static PyObject *fp_node_child(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno, idx[2];
    uint8_t eq;
    uint16_t slot;
    if (!nargs_ok(n, 3, "node_child") || !as_bytes(args[0], "raw") || !as_bytes(args[1], "key") ||
        !as_u32(args[2], &pgno))
        return NULL;
    int rc = ps_node_search((const uint8_t *)PyBytes_AS_STRING(args[0]), (uint32_t)PyBytes_GET_SIZE(args[0]),
                            (const uint8_t *)PyBytes_AS_STRING(args[1]), (uint32_t)PyBytes_GET_SIZE(args[1]), 1, idx,
                            &eq, idx + 1, &slot);
    if (rc != PS_OK) return fail(rc, pgno, "node search");
    return PyLong_FromUnsignedLong(idx[1]);
}

/* node_find(raw, key, after, pgno) -> (index, equal, pgno, slot): ps_node_search of a raw node. */
static PyObject *fp_node_find(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno, idx[2];
    uint8_t eq;
    uint16_t slot;
    if (!nargs_ok(n, 4, "node_find") || !as_bytes(args[0], "raw") || !as_bytes(args[1], "key") ||
        !as_u32(args[3], &pgno))
        return NULL;
    int after = PyObject_IsTrue(args[2]);
    if (after < 0) return NULL;
    int rc = ps_node_search((const uint8_t *)PyBytes_AS_STRING(args[0]), (uint32_t)PyBytes_GET_SIZE(args[0]),
                            (const uint8_t *)PyBytes_AS_STRING(args[1]), (uint32_t)PyBytes_GET_SIZE(args[1]), after,
                            idx, &eq, idx + 1, &slot);
    if (rc != PS_OK) return fail(rc, pgno, "node search");
    return search_tuple(idx[0], eq, idx[1], slot);
}

/* rid_or_none: the (rid pgno, rid slot) of a search that found its key, or None. */
static PyObject *rid_or_none(uint8_t equal, uint32_t pgno, uint16_t slot) {
    if (!equal) Py_RETURN_NONE;
    return Py_BuildValue("(IH)", (unsigned int)pgno, slot);
}

/* map_get(h, pgno, key) -> (rid pgno, rid slot) of key in leaf pgno, or None: a point read's leaf
** search with the rid as the answer (map_find, less to unpack). */
static PyObject *fp_map_get(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno, idx[2];
    uint8_t eq;
    uint16_t slot;
    if (!nargs_ok(n, 3, "map_get") || !as_u32(args[1], &pgno) || !as_bytes(args[2], "key")) return NULL;
    ps_map_t *m = as_map(args[0]);
    if (m == NULL) return NULL;
    int rc = ps_map_node_search(m, pgno, PS_PAGE_LEAF, (const uint8_t *)PyBytes_AS_STRING(args[2]),
                                (uint32_t)PyBytes_GET_SIZE(args[2]), 0, idx, &eq, idx + 1, &slot);
    if (rc != PS_OK) return fail(rc, pgno, "leaf");
    return rid_or_none(eq, idx[1], slot);
}

/* node_get(raw, key, pgno) -> (rid pgno, rid slot) of key in raw leaf pgno, or None. */
static PyObject *fp_node_get(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno, idx[2];
    uint8_t eq;
    uint16_t slot;
    if (!nargs_ok(n, 3, "node_get") || !as_bytes(args[0], "raw") || !as_bytes(args[1], "key") ||
        !as_u32(args[2], &pgno))
        return NULL;
    int rc = ps_node_search((const uint8_t *)PyBytes_AS_STRING(args[0]), (uint32_t)PyBytes_GET_SIZE(args[0]),
                            (const uint8_t *)PyBytes_AS_STRING(args[1]), (uint32_t)PyBytes_GET_SIZE(args[1]), 0, idx,
                            &eq, idx + 1, &slot);
    if (rc != PS_OK) return fail(rc, pgno, "leaf");
    return rid_or_none(eq, idx[1], slot);
}

/* find_many: out[t] = (rid pgno, rid slot) for each of keys[lo:hi] found in leaf `page`. */
static PyObject *find_many(const uint8_t *page, uint32_t size, uint32_t pgno, PyObject *keys, PyObject *lo_obj,
                           PyObject *hi_obj, PyObject *out) {
    uint32_t idx[2];
    uint8_t eq;
    uint16_t slot;
    if (!PyList_CheckExact(keys) || !PyList_CheckExact(out)) {
        PyErr_SetString(PyExc_TypeError, "find_many: keys and out must be lists");
        return NULL;
    }
    Py_ssize_t lo = PyLong_AsSsize_t(lo_obj), hi = PyLong_AsSsize_t(hi_obj);
    if (PyErr_Occurred()) return NULL;
    if (lo < 0 || hi > PyList_GET_SIZE(keys) || hi > PyList_GET_SIZE(out)) {
        PyErr_SetString(PyExc_IndexError, "find_many: bounds outside the lists");
        return NULL;
    }
    for (Py_ssize_t t = lo; t < hi; t++) {
        PyObject *k = PyList_GET_ITEM(keys, t);
        if (!as_bytes(k, "key")) return NULL;
        int rc = ps_node_search(page, size, (const uint8_t *)PyBytes_AS_STRING(k), (uint32_t)PyBytes_GET_SIZE(k), 0,
                                idx, &eq, idx + 1, &slot);
        if (rc != PS_OK) return fail(rc, pgno, "leaf");
        if (eq) {
            PyObject *rid = Py_BuildValue("(IH)", (unsigned int)idx[1], slot);
            if (rid == NULL) return NULL;
            if (PyList_SetItem(out, t, rid) < 0) return NULL; /* steals rid */
        }
    }
    Py_RETURN_NONE;
}

/* node_find_many(raw, keys, lo, hi, out, pgno): out[t] = (rid pgno, rid slot) for each of
** keys[lo:hi] found in raw leaf pgno (the others of out are left alone). */
static PyObject *fp_node_find_many(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno;
    if (!nargs_ok(n, 6, "node_find_many") || !as_bytes(args[0], "raw") || !as_u32(args[5], &pgno)) return NULL;
    const uint8_t *raw = (const uint8_t *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (size < PS_MIN_PAGE_SIZE || size > PS_MAX_PAGE_SIZE) return fail(PS_EINVAL, pgno, "leaf size");
    if (raw[PS_OFF_TYPE] != PS_PAGE_LEAF)
        return fail(raw[PS_OFF_TYPE] == PS_PAGE_INTERNAL ? PS_ETYPE : PS_ENODE_TYPE, pgno, "leaf");
    return find_many(raw, (uint32_t)size, pgno, args[1], args[2], args[3], args[4]);
}

/* map_find_many(h, pgno, keys, lo, hi, out): node_find_many of leaf pgno in the map. */
static PyObject *fp_map_find_many(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno;
    if (!nargs_ok(n, 6, "map_find_many") || !as_u32(args[1], &pgno)) return NULL;
    ps_map_t *m = as_map(args[0]);
    if (m == NULL) return NULL;
    int rc = ps_map_check(m, pgno);
    if (rc != PS_OK) return fail(rc, pgno, "leaf");
    const uint8_t *page = m->base + (uint64_t)pgno * m->page_size;
    if (page[PS_OFF_TYPE] != PS_PAGE_LEAF)
        return fail(page[PS_OFF_TYPE] == PS_PAGE_INTERNAL ? PS_ETYPE : PS_ENODE_TYPE, pgno, "leaf");
    return find_many(page, m->page_size, pgno, args[2], args[3], args[4], args[5]);
}

/* le32: the little-endian u32 at p. */
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* prefetch_record_slot: asks for heap page pgno's header line and slot `slot`'s line at once, before
** ps_map_page_read reads the first and then the second: on a page not in the CPU's caches they
** are two misses one after the other otherwise (map_values does the same for a batch). A hint:
** only a page inside the map and a slot entry inside the page are asked for. */
static void prefetch_record_slot(const ps_map_t *m, uint32_t pgno, uint32_t slot) {
    if (m->base == NULL || m->page_size == 0 || pgno == 0 || (uint64_t)pgno >= m->len / m->page_size) return;
    const uint8_t *page = m->base + (uint64_t)pgno * m->page_size;
    __builtin_prefetch(page);
    if (PS_HEADER_SIZE + (uint64_t)PS_SLOT_SIZE * slot < m->page_size)
        __builtin_prefetch(page + PS_HEADER_SIZE + (uint64_t)PS_SLOT_SIZE * slot);
}

/* map_value(h, pgno, slot) -> the bytes of a whole live record of heap page pgno; for a live
** overflow stub, its (total length, first overflow page, tail length) for the caller to take
** the chain (map_chain_value); None for anything else (a damaged page, a bad slot, a stub too
** short to be one: the caller's checking path). */
static PyObject *fp_map_value(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno, slot, len;
    uint64_t off;
    uint8_t st;
    if (!nargs_ok(n, 3, "map_value") || !as_u32(args[1], &pgno) || !as_u32(args[2], &slot)) return NULL;
    ps_map_t *m = as_map(args[0]);
    if (m == NULL) return NULL;
    prefetch_record_slot(m, pgno, slot);
    if (ps_map_page_read(m, pgno, slot, PS_PAGE_HEAP, &off, &len, &st, NULL) != PS_OK) Py_RETURN_NONE;
    const uint8_t *rec = m->base + off; /* ps_map_page_read bounded the record within its page */
    if (st == PS_SLOT_LIVE) {
        /* the record's lines asked for before the allocation of its bytes object, which then
        ** overlaps their fetch (a hint; the record lies within its page) */
        for (uint32_t at = 0; at < len && at < 512; at += 64) __builtin_prefetch(rec + at);
        return PyBytes_FromStringAndSize((const char *)rec, (Py_ssize_t)len);
    }
    if (st == PS_SLOT_OVERFLOW && len >= 8)
        return Py_BuildValue("(III)", (unsigned int)le32(rec), (unsigned int)le32(rec + 4), (unsigned int)(len - 8));
    Py_RETURN_NONE;
}

/* map_record(h, pgno, slot, want_type) -> (offset from the map's start, length, state, the page's
** next field) of live record `slot` in page pgno (want_type >= 0: of that page type), or None
** when there is none or the page is damaged, outside the map or of another type (the caller's
** checking path then raises the error naming the page). */
static PyObject *fp_map_record(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno, slot, len, next;
    uint64_t off;
    uint8_t st;
    if (!nargs_ok(n, 4, "map_record") || !as_u32(args[1], &pgno) || !as_u32(args[2], &slot)) return NULL;
    int want = PyLong_AsLong(args[3]) < 0 ? -1 : (int)PyLong_AsLong(args[3]);
    if (PyErr_Occurred()) return NULL;
    ps_map_t *m = as_map(args[0]);
    if (m == NULL) return NULL;
    if (ps_map_page_read(m, pgno, slot, want, &off, &len, &st, &next) != PS_OK) Py_RETURN_NONE;
    return Py_BuildValue("(KIII)", (unsigned long long)off, (unsigned int)len, (unsigned int)st, (unsigned int)next);
}

/* map_chunk(h, pgno) -> (bytes of slot 0 of overflow page pgno, the page's next field), or None
** as map_record: one link of an overflow chain, which the caller follows. */
static PyObject *fp_map_chunk(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno, len, next;
    uint64_t off;
    uint8_t st;
    if (!nargs_ok(n, 2, "map_chunk") || !as_u32(args[1], &pgno)) return NULL;
    ps_map_t *m = as_map(args[0]);
    if (m == NULL) return NULL;
    if (ps_map_page_read(m, pgno, 0, PS_PAGE_OVERFLOW, &off, &len, &st, &next) != PS_OK) Py_RETURN_NONE;
    PyObject *data = PyBytes_FromStringAndSize((const char *)m->base + off, (Py_ssize_t)len);
    if (data == NULL) return NULL;
    return Py_BuildValue("(NI)", data, (unsigned int)next);
}

/* page_value(buf, slot) -> the bytes of a whole live record of the heap page in buf (a verified
** page of the caller's: a bytes-like object of one page), or None for anything else. */
static PyObject *fp_page_value(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t slot, off, len;
    uint8_t st;
    Py_buffer view;
    if (!nargs_ok(n, 2, "page_value") || !as_u32(args[1], &slot)) return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *out = NULL;
    const uint8_t *page = (const uint8_t *)view.buf;
    if (view.len >= PS_MIN_PAGE_SIZE && view.len <= PS_MAX_PAGE_SIZE && page[PS_OFF_TYPE] == PS_PAGE_HEAP &&
        ps_page_read(page, (uint32_t)view.len, slot, &off, &len, &st) == PS_OK && st == PS_SLOT_LIVE) {
        out = PyBytes_FromStringAndSize((const char *)page + off, (Py_ssize_t)len);
    } else {
        out = Py_None;
        Py_INCREF(out);
    }
    PyBuffer_Release(&view);
    return out;
}

/* crc32c(data, crc) -> the CRC32C of a bytes-like object, continuing from crc: the page 0
** header's and the shared index header's checksums at every commit, without cffi's
** buffer conversion and GIL release (a switch point for the other threads of a group commit). */
static PyObject *fp_crc32c(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t crc;
    Py_buffer view;
    if (!nargs_ok(n, 2, "crc32c") || !as_u32(args[1], &crc)) return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    crc = ps_crc32c(crc, (const uint8_t *)view.buf, (uint64_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(crc);
}

/* chain_args: map_chain_run's and map_chain_value's (h, first, count, step); 0 with an
** exception set for bad ones. *ok is 0 for a run that cannot be one (the caller answers None). */
static int chain_args(PyObject *const *args, ps_map_t **m, uint32_t *first, uint32_t *count, int *step, int *ok) {
    if (!as_u32(args[1], first) || !as_u32(args[2], count)) return 0;
    long st = PyLong_AsLong(args[3]);
    if (st == -1 && PyErr_Occurred()) return 0;
    if (st != 1 && st != -1) {
        PyErr_SetString(PyExc_ValueError, "map_chain_run: step must be 1 or -1");
        return 0;
    }
    *m = as_map(args[0]);
    if (*m == NULL) return 0;
    *step = (int)st;
    *ok = !(*count == 0 || (st < 0 && *first < *count) || (st > 0 && (uint64_t)*first + *count > 0xFFFFFFFFull));
    return 1;
}

/* chain_walk: pass 1 over overflow pages first, first + step, ... (count of them): each sound
** and linked to the next of the run (0 for the last); their chunks' total length. 0 if not. */
static int chain_walk(ps_map_t *m, uint32_t first, uint32_t count, int step, uint64_t *total) {
    *total = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t pgno = step > 0 ? first + i : first - i, len, next;
        uint64_t off;
        uint8_t st;
        if (ps_map_page_read(m, pgno, 0, PS_PAGE_OVERFLOW, &off, &len, &st, &next) != PS_OK) return 0;
        uint32_t want = i + 1 == count ? 0 : (step > 0 ? pgno + 1 : pgno - 1);
        if (next != want) return 0;
        *total += len;
    }
    return 1;
}

/* chain_copy: pass 2, the chunks copied to dst (room for `room` bytes); 0 if anything moved. */
static int chain_copy(ps_map_t *m, uint32_t first, uint32_t count, int step, char *dst, uint64_t room) {
    uint64_t at = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t pgno = step > 0 ? first + i : first - i, len, next;
        uint64_t off;
        uint8_t st;
        if (ps_map_page_read(m, pgno, 0, PS_PAGE_OVERFLOW, &off, &len, &st, &next) != PS_OK || at + len > room)
            return 0;
        memcpy(dst + at, m->base + off, len);
        at += len;
    }
    return 1;
}

/* map_chain_run(h, first, count, step) -> the chunks (slot 0) of overflow pages first, first +
** step, ... (count pages, step +1 or -1) joined, when each is a sound overflow page whose next
** field names the page after it in that run (0 for the last); else None. The caller names
** every page: C reads those and checks their links, it follows none. For the common chain
** whose pages were allocated one after another, so a value is one call, not one a page. */
static PyObject *fp_map_chain_run(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    ps_map_t *m;
    uint32_t first, count;
    int step, ok;
    uint64_t total;
    if (!nargs_ok(n, 4, "map_chain_run") || !chain_args(args, &m, &first, &count, &step, &ok)) return NULL;
    if (!ok || !chain_walk(m, first, count, step, &total) || total > (uint64_t)PY_SSIZE_T_MAX) Py_RETURN_NONE;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (out == NULL) return NULL;
    if (!chain_copy(m, first, count, step, PyBytes_AS_STRING(out), total)) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    return out;
}

/* map_chain_value(h, first, count, step, pgno, slot) -> a whole overflow value: the chain run
** of map_chain_run, then the tail of the stub in slot `slot` of heap page pgno, in one bytes
** object, when the stub is a live overflow stub naming `first` and its total length is the
** run's and the tail's together; else None. Every page is one the caller names. */
static PyObject *fp_map_chain_value(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    ps_map_t *m;
    uint32_t first, count, pgno, slot, len;
    int step, ok;
    uint64_t total, off;
    uint8_t st;
    if (!nargs_ok(n, 6, "map_chain_value") || !chain_args(args, &m, &first, &count, &step, &ok) ||
        !as_u32(args[4], &pgno) || !as_u32(args[5], &slot))
        return NULL;
    if (!ok || ps_map_page_read(m, pgno, slot, PS_PAGE_HEAP, &off, &len, &st, NULL) != PS_OK ||
        st != PS_SLOT_OVERFLOW || len < 8)
        Py_RETURN_NONE;
    const uint8_t *stub = m->base + off;
    if (le32(stub + 4) != first || !chain_walk(m, first, count, step, &total)) Py_RETURN_NONE;
    uint32_t tail = len - 8;
    if (total + tail != (uint64_t)le32(stub)) Py_RETURN_NONE;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(total + tail));
    if (out == NULL) return NULL;
    char *dst = PyBytes_AS_STRING(out);
    if (!chain_copy(m, first, count, step, dst, total)) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    memcpy(dst + total, stub + 8, tail); /* the stub's page is unchanged: the GIL is held throughout */
    return out;
}

/* map_values(h, pgnos, slots) -> [map_value(h, pgnos[i], slots[i]) for i]: a scan's values in
** one call (page number 0: None, for the caller's pages that are not the map's).
**
** The records of a scan or of get_many lie one to a heap page, pages apart, and each is a
** few cache misses (the page header, its slot, the record): taken one after another they
** wait on each other. So entries go in batches of VALUES_BATCH: first every page's header
** and slot entry is prefetched, then every record is located (ps_map_value, which checks
** everything as before) and its first bytes prefetched, then each is copied out. Prefetching
** never faults and reads nothing C acts on; only page numbers inside the map are prefetched. */
#define VALUES_BATCH 32
static PyObject *fp_map_values(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    if (!nargs_ok(n, 3, "map_values")) return NULL;
    ps_map_t *m = as_map(args[0]);
    if (m == NULL) return NULL;
    PyObject *pgnos = args[1], *slots = args[2];
    if (!PyList_CheckExact(pgnos) || !PyList_CheckExact(slots) || PyList_GET_SIZE(pgnos) != PyList_GET_SIZE(slots)) {
        PyErr_SetString(PyExc_TypeError, "map_values: pgnos and slots must be lists of one length");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(pgnos);
    PyObject *out = PyList_New(count);
    if (out == NULL) return NULL;
    uint64_t npages = m->page_size ? m->len / m->page_size : 0;
    for (Py_ssize_t at = 0; at < count; at += VALUES_BATCH) {
        Py_ssize_t k = count - at < VALUES_BATCH ? count - at : VALUES_BATCH;
        uint32_t pg[VALUES_BATCH], sl[VALUES_BATCH], len[VALUES_BATCH];
        int64_t off[VALUES_BATCH];
        for (Py_ssize_t i = 0; i < k; i++) {
            if (!as_u32(PyList_GET_ITEM(pgnos, at + i), &pg[i]) || !as_u32(PyList_GET_ITEM(slots, at + i), &sl[i])) {
                Py_DECREF(out);
                return NULL;
            }
            if (pg[i] && pg[i] < npages && m->base != NULL) {
                const uint8_t *page = m->base + (uint64_t)pg[i] * m->page_size;
                __builtin_prefetch(page);
                if (PS_HEADER_SIZE + (uint64_t)PS_SLOT_SIZE * sl[i] < m->page_size)
                    __builtin_prefetch(page + PS_HEADER_SIZE + (uint64_t)PS_SLOT_SIZE * sl[i]);
            }
        }
        for (Py_ssize_t i = 0; i < k; i++) {
            off[i] = pg[i] ? ps_map_value(m, pg[i], sl[i], &len[i]) : -1;
            if (off[i] >= 0) {
                __builtin_prefetch(m->base + off[i]);
                if (len[i] > 64) __builtin_prefetch(m->base + off[i] + 64);
            }
        }
        for (Py_ssize_t i = 0; i < k; i++) {
            PyObject *v;
            if (off[i] < 0) {
                v = Py_None;
                Py_INCREF(v);
            } else {
                v = PyBytes_FromStringAndSize((const char *)m->base + off[i], (Py_ssize_t)len[i]);
                if (v == NULL) {
                    Py_DECREF(out);
                    return NULL;
                }
            }
            PyList_SET_ITEM(out, at + i, v);
        }
    }
    return out;
}

/* leaf_run: entries [i, j) of a verified leaf (page bytes `page`, at `at` in `src`), with
** j <= i + limit when limit >= 0; keys sliced out of src. */
static PyObject *leaf_run(const uint8_t *page, uint32_t page_size, uint32_t pgno, PyObject *start, int after,
                          PyObject *stop, Py_ssize_t limit) {
    static uint32_t offs[PS_MAX_SLOTS], ends[PS_MAX_SLOTS], pgnos[PS_MAX_SLOTS]; /* under the GIL */
    static uint16_t slots[PS_MAX_SLOTS];
    uint32_t count = 0, idx[2];
    uint8_t eq;
    uint16_t s;
    if (page[PS_OFF_TYPE] != PS_PAGE_LEAF)
        return fail(page[PS_OFF_TYPE] == PS_PAGE_INTERNAL ? PS_ETYPE : PS_ENODE_TYPE, pgno, "leaf");
    int rc = ps_node_decode(page, page_size, offs, ends, pgnos, slots, PS_MAX_SLOTS, &count);
    if (rc != PS_OK) return fail(rc, pgno, "leaf");
    uint32_t i = 0, j = count;
    if (start != Py_None) {
        rc = ps_node_search(page, page_size, (const uint8_t *)PyBytes_AS_STRING(start),
                            (uint32_t)PyBytes_GET_SIZE(start), after, idx, &eq, idx + 1, &s);
        if (rc != PS_OK) return fail(rc, pgno, "leaf");
        i = idx[0];
    }
    if (stop != Py_None) {
        rc = ps_node_search(page, page_size, (const uint8_t *)PyBytes_AS_STRING(stop),
                            (uint32_t)PyBytes_GET_SIZE(stop), 0, idx, &eq, idx + 1, &s);
        if (rc != PS_OK) return fail(rc, pgno, "leaf");
        j = idx[0] < i ? i : idx[0];
    }
    if (i > count) i = count;
    if (j > count) j = count;
    if (limit >= 0 && (Py_ssize_t)(j - i) > limit) j = i + (uint32_t)limit;
    PyObject *keys = PyList_New(j - i), *ps = PyList_New(j - i), *ss = PyList_New(j - i);
    if (keys == NULL || ps == NULL || ss == NULL) goto error;
    for (uint32_t t = i; t < j; t++) {
        PyObject *k = PyBytes_FromStringAndSize((const char *)page + offs[t], (Py_ssize_t)(ends[t] - offs[t]));
        PyObject *p = PyLong_FromUnsignedLong(pgnos[t]);
        PyObject *sl = PyLong_FromUnsignedLong(slots[t]);
        if (k == NULL || p == NULL || sl == NULL) {
            Py_XDECREF(k);
            Py_XDECREF(p);
            Py_XDECREF(sl);
            goto error;
        }
        PyList_SET_ITEM(keys, t - i, k);
        PyList_SET_ITEM(ps, t - i, p);
        PyList_SET_ITEM(ss, t - i, sl);
    }
    return Py_BuildValue("(IIINNN)", (unsigned int)i, (unsigned int)j, (unsigned int)count, keys, ps, ss);
error:
    Py_XDECREF(keys);
    Py_XDECREF(ps);
    Py_XDECREF(ss);
    return NULL;
}

static int run_args(PyObject *const *args, PyObject **start, int *after, PyObject **stop, Py_ssize_t *limit) {
    *start = args[0];
    *stop = args[2];
    if ((*start != Py_None && !as_bytes(*start, "start")) || (*stop != Py_None && !as_bytes(*stop, "stop"))) return 0;
    *after = PyObject_IsTrue(args[1]);
    if (*after < 0) return 0;
    *limit = PyLong_AsSsize_t(args[3]);
    return !(*limit == -1 && PyErr_Occurred());
}

/* map_leaf_run(h, pgno, start, after, stop, limit) -> (i, j, count, keys, rid pgnos, rid slots):
** the run of leaf pgno's entries from the first key >= start (> with after; 0 for None) to
** the first >= stop (count for None), at most limit of them (limit < 0: no limit). */
static PyObject *fp_map_leaf_run(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno;
    PyObject *start, *stop;
    int after;
    Py_ssize_t limit;
    if (!nargs_ok(n, 6, "map_leaf_run") || !as_u32(args[1], &pgno) || !run_args(args + 2, &start, &after, &stop, &limit))
        return NULL;
    ps_map_t *m = as_map(args[0]);
    if (m == NULL) return NULL;
    int rc = ps_map_check(m, pgno);
    if (rc != PS_OK) return fail(rc, pgno, "leaf");
    return leaf_run(m->base + (uint64_t)pgno * m->page_size, m->page_size, pgno, start, after, stop, limit);
}

/* leaf_run(raw, pgno, start, after, stop, limit): map_leaf_run of a raw leaf (a cached copy). */
static PyObject *fp_leaf_run(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno;
    PyObject *start, *stop;
    int after;
    Py_ssize_t limit;
    if (!nargs_ok(n, 6, "leaf_run") || !as_bytes(args[0], "raw") || !as_u32(args[1], &pgno) ||
        !run_args(args + 2, &start, &after, &stop, &limit))
        return NULL;
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (size < PS_MIN_PAGE_SIZE || size > PS_MAX_PAGE_SIZE) return fail(PS_EINVAL, pgno, "leaf size");
    return leaf_run((const uint8_t *)PyBytes_AS_STRING(args[0]), (uint32_t)size, pgno, start, after, stop, limit);
}

/* ---- the write path's page-local calls: a page frame (bytearray) changed in place ---- */

/* frame_bytes: the bytes of a pager frame (an exact bytearray of a page size); NULL with an
** exception set otherwise. The frame's length is the page size the C checks every offset against. */
static uint8_t *frame_bytes(PyObject *o, uint32_t *size, uint32_t pgno) {
    if (!PyByteArray_CheckExact(o)) {
        PyErr_Format(PyExc_TypeError, "frame must be a bytearray, not %.100s", Py_TYPE(o)->tp_name);
        return NULL;
    }
    Py_ssize_t n = PyByteArray_GET_SIZE(o);
    if (n < PS_MIN_PAGE_SIZE || n > PS_MAX_PAGE_SIZE) {
        fail(PS_EINVAL, pgno, "frame size");
        return NULL;
    }
    *size = (uint32_t)n;
    return (uint8_t *)PyByteArray_AS_STRING(o);
}

/* page_insert_room(frame, record, state, pgno) -> (slot, max_insert after it): ps_page_insert
** then ps_page_free_space, one call (the heap's placement of every record). A record that does
** not fit raises PageFullError (through raise_fn), the page unchanged. */
static PyObject *fp_page_insert_room(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t pgno, state, size, out[3];
    uint16_t slot;
    if (!nargs_ok(n, 4, "page_insert_room") || !as_bytes(args[1], "record") || !as_u32(args[2], &state) ||
        !as_u32(args[3], &pgno))
        return NULL;
    uint8_t *page = frame_bytes(args[0], &size, pgno);
    if (page == NULL) return NULL;
    Py_ssize_t len = PyBytes_GET_SIZE(args[1]);
    if (len > PS_MAX_RECORD) return fail(PS_EFULL, pgno, "record longer than a page holds");
    if (state > 0xFF) return fail(PS_EINVAL, pgno, "record state");
    /* a bytes record never lies inside a bytearray's buffer: no aliasing to handle */
    int rc = ps_page_insert(page, size, (const uint8_t *)PyBytes_AS_STRING(args[1]), (uint32_t)len, (uint8_t)state,
                            &slot);
    if (rc != PS_OK) return fail(rc, pgno, "record insert");
    rc = ps_page_free_space(page, size, out, out + 1, out + 2);
    if (rc != PS_OK) return fail(rc, pgno, "free space");
    return Py_BuildValue("(HI)", slot, (unsigned int)out[2]);
}

/* leaf_insert(frame, index, key, rid pgno, rid slot, pgno) -> the page's new bytes, or None:
** ps_node_leaf_insert in place in a leaf's frame, and a copy of the result (the node cache's raw
** form of the leaf), in one call. None: the entry does not fit (the page unchanged). */
static PyObject *fp_leaf_insert(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t index, rid_pgno, rid_slot, pgno, size;
    if (!nargs_ok(n, 6, "leaf_insert") || !as_u32(args[1], &index) || !as_bytes(args[2], "key") ||
        !as_u32(args[3], &rid_pgno) || !as_u32(args[4], &rid_slot) || !as_u32(args[5], &pgno))
        return NULL;
    if (rid_slot > 0xFFFF) return fail(PS_EINVAL, pgno, "rid slot");
    uint8_t *page = frame_bytes(args[0], &size, pgno);
    if (page == NULL) return NULL;
    Py_ssize_t klen = PyBytes_GET_SIZE(args[2]);
    if (klen > PS_MAX_RECORD) return fail(PS_EINVAL, pgno, "key length");
    int rc = ps_node_leaf_insert(page, size, index, (const uint8_t *)PyBytes_AS_STRING(args[2]), (uint32_t)klen,
                                 rid_pgno, (uint16_t)rid_slot);
    if (rc == PS_EFULL) Py_RETURN_NONE;
    if (rc != PS_OK) return fail(rc, pgno, "leaf insert");
    return PyBytes_FromStringAndSize((const char *)page, (Py_ssize_t)size);
}

/* leaf_remove(frame, index, pgno) -> (the page's new bytes, used): ps_node_leaf_remove in place in
** a leaf's frame and a copy of the result (the node cache's raw form of the leaf), in one call;
** `used` is what the entries left cost (ps_node_leaf_remove's used_out), for the merge test. */
static PyObject *fp_leaf_remove(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t index, pgno, size, used = 0;
    if (!nargs_ok(n, 3, "leaf_remove") || !as_u32(args[1], &index) || !as_u32(args[2], &pgno)) return NULL;
    uint8_t *page = frame_bytes(args[0], &size, pgno);
    if (page == NULL) return NULL;
    int rc = ps_node_leaf_remove(page, size, index, &used);
    if (rc != PS_OK) return fail(rc, pgno, "leaf remove");
    PyObject *raw = PyBytes_FromStringAndSize((const char *)page, (Py_ssize_t)size);
    if (raw == NULL) return NULL;
    return Py_BuildValue("(NI)", raw, (unsigned int)used);
}

/* record_delete(frame, slot, pgno) -> (length, stub, nlive, max_insert): a heap record deleted in
** place in its page's frame (ps_page_delete), with what the heap needs after it in one call: the
** record's length, its bytes when it was an overflow stub (state PS_SLOT_OVERFLOW; None for an
** ordinary record), the page's live records left and its largest insertable record now. */
static PyObject *fp_record_delete(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t slot, pgno, size, off, len, space[3];
    uint8_t state;
    if (!nargs_ok(n, 3, "record_delete") || !as_u32(args[1], &slot) || !as_u32(args[2], &pgno)) return NULL;
    if (slot > 0xFFFF) return fail(PS_ENOSLOT, pgno, "slot");
    uint8_t *page = frame_bytes(args[0], &size, pgno);
    if (page == NULL) return NULL;
    int rc = ps_page_read(page, size, slot, &off, &len, &state);
    if (rc != PS_OK) return fail(rc, pgno, "record delete");
    PyObject *stub;
    if (state == PS_SLOT_OVERFLOW) {
        stub = PyBytes_FromStringAndSize((const char *)page + off, (Py_ssize_t)len); /* read checked off+len */
        if (stub == NULL) return NULL;
    } else {
        stub = Py_None;
        Py_INCREF(stub);
    }
    rc = ps_page_delete(page, size, slot);
    if (rc == PS_OK) rc = ps_page_free_space(page, size, space, space + 1, space + 2);
    if (rc != PS_OK) {
        Py_DECREF(stub);
        return fail(rc, pgno, "record delete");
    }
    uint32_t nlive = (uint32_t)page[PS_OFF_NLIVE] | ((uint32_t)page[PS_OFF_NLIVE + 1] << 8);
    return Py_BuildValue("(INII)", (unsigned int)len, stub, (unsigned int)nlive, (unsigned int)space[2]);
}

/* record_patch(frame, slot, length, changes, pgno) -> the record's length: single bytes set inside
** the live record at `slot` of a page's frame, in place; `changes` is a list of (offset in the
** record, byte value) pairs. Nothing is changed when the record is not `length` bytes long (the
** caller raises, naming the page) or a pair is out of range (ValueError). The free-space map's
** flush at every commit: the record located without cffi's GIL release, a switch point for the
** other threads of a group commit in the middle of the leader's apply. */
static PyObject *fp_record_patch(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t slot, length, pgno, size, off, len;
    uint8_t state;
    if (!nargs_ok(n, 5, "record_patch") || !as_u32(args[1], &slot) || !as_u32(args[2], &length) ||
        !as_u32(args[4], &pgno))
        return NULL;
    PyObject *changes = args[3];
    if (!PyList_CheckExact(changes)) {
        PyErr_SetString(PyExc_TypeError, "changes must be a list");
        return NULL;
    }
    if (slot > 0xFFFF) return fail(PS_ENOSLOT, pgno, "slot");
    uint8_t *page = frame_bytes(args[0], &size, pgno);
    if (page == NULL) return NULL;
    int rc = ps_page_read(page, size, slot, &off, &len, &state);
    if (rc != PS_OK) return fail(rc, pgno, "record patch");
    if (len != length) return PyLong_FromUnsignedLong(len);
    Py_ssize_t count = PyList_GET_SIZE(changes);
    for (int pass = 0; pass < 2; pass++) { /* checked whole first: all or nothing */
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *pair = PyList_GET_ITEM(changes, i);
            if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
                PyErr_SetString(PyExc_TypeError, "a change must be an (offset, value) tuple");
                return NULL;
            }
            long at = PyLong_AsLong(PyTuple_GET_ITEM(pair, 0));
            if (at == -1 && PyErr_Occurred()) return NULL;
            long value = PyLong_AsLong(PyTuple_GET_ITEM(pair, 1));
            if (value == -1 && PyErr_Occurred()) return NULL;
            if (at < 0 || at >= (long)len || value < 0 || value > 255) {
                PyErr_Format(PyExc_ValueError, "patch of byte %ld = %ld does not lie inside the %u-byte record in slot %u",
                             at, value, (unsigned)len, (unsigned)slot);
                return NULL;
            }
            if (pass) page[off + (uint32_t)at] = (uint8_t)value; /* read checked off + len */
        }
    }
    return PyLong_FromUnsignedLong(len);
}

/* Little-endian stores for the frame header (the log's byte order, wal.py). */
static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

#define LOG_FRAME_HEADER 44 /* wal.py FRAME_HEADER_SIZE: 40 bytes of fields, then the CRC32C */

/* log_frame_build: one log frame at `head` (room for LOG_FRAME_HEADER + page_size bytes), for
** log_frames and log_append: with `seal` (an LSN, not 0) a page but page 0 (an exact bytearray: a
** pager frame) is first stamped with it and its checksum, in place (ps_page_seal_many); a frame
** whose `base` is not 0 and whose `before` is not None is a delta from `before` (delta.c) when the
** delta takes at most half a page, else the whole image. The header as wal.py's FRAME HEADER table
** lays it out, the checksum chained from *crc (updated). *plen: the payload's bytes; *used: the
** base written (0: whole). Returns 0, or -1 with an exception set. */
static int log_frame_build(uint8_t *head, uint32_t pgno, PyObject *image, PyObject *before, uint64_t base,
                           uint32_t commit, uint64_t txn, uint64_t offset, uint32_t salt, uint32_t page_size,
                           uint64_t seal, uint32_t *crc, uint32_t *plen, uint64_t *used) {
    if (seal != 0 && pgno != 0) {
        /* stamp the LSN and the checksum into the page's frame before it is logged */
        uint32_t size;
        uint8_t *frame = frame_bytes(image, &size, pgno);
        if (frame == NULL) return -1;
        int rc = size == page_size ? ps_page_seal_many(frame, size, 1, seal) : PS_EINVAL;
        if (rc != PS_OK) {
            fail(rc, pgno, "frame seal");
            return -1;
        }
    }
    Py_buffer img;
    if (PyObject_GetBuffer(image, &img, PyBUF_SIMPLE) != 0) return -1;
    if (img.len != (Py_ssize_t)page_size) {
        PyBuffer_Release(&img);
        fail(PS_EINVAL, pgno, "frame image size");
        return -1;
    }
    uint8_t *payload = head + LOG_FRAME_HEADER;
    uint32_t n = 0;
    *used = 0;
    if (base != 0 && before != Py_None) {
        Py_buffer old;
        if (PyObject_GetBuffer(before, &old, PyBUF_SIMPLE) != 0) {
            PyBuffer_Release(&img);
            return -1;
        }
        int rc = old.len == (Py_ssize_t)page_size
                     ? ps_delta_make((const uint8_t *)old.buf, (const uint8_t *)img.buf, page_size, payload,
                                     page_size / 2 /* wal.py DELTA_SHARE */, &n)
                     : PS_EINVAL;
        PyBuffer_Release(&old);
        if (rc == PS_OK)
            *used = base;
        else if (rc != PS_EFULL) {
            PyBuffer_Release(&img);
            fail(rc, pgno, "frame delta");
            return -1;
        }
    }
    if (!*used) {
        memcpy(payload, img.buf, page_size);
        n = page_size;
    }
    PyBuffer_Release(&img);
    put_le32(head, pgno);
    put_le32(head + 4, commit);
    put_le64(head + 8, txn);
    put_le64(head + 16, offset);
    put_le32(head + 24, salt);
    put_le32(head + 28, n);
    put_le64(head + 32, *used);
    uint32_t c = ps_crc32c(*crc, head, 40);
    c = ps_crc32c(c, payload, n);
    put_le32(head + 40, c);
    *crc = c;
    *plen = n;
    return 0;
}

/* log_args: the arguments log_frames and log_append share, args[1..7]. Returns 0, or -1 with an
** exception set. */
static int log_args(PyObject *const *args, unsigned long long *txn, uint32_t *salt, unsigned long long *offset,
                    uint32_t *crc, uint32_t *commit, uint32_t *page_size, unsigned long long *seal) {
    *txn = PyLong_AsUnsignedLongLong(args[1]);
    if (*txn == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    *offset = PyLong_AsUnsignedLongLong(args[3]);
    if (*offset == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    if (!as_u32(args[2], salt) || !as_u32(args[4], crc) || !as_u32(args[5], commit) || !as_u32(args[6], page_size))
        return -1;
    *seal = PyLong_AsUnsignedLongLong(args[7]);
    if (*seal == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    if (*page_size < PS_MIN_PAGE_SIZE || *page_size > PS_MAX_PAGE_SIZE) {
        fail(PS_EINVAL, 0, "page size");
        return -1;
    }
    return 0;
}

/* log_frames(frames, txn, salt, offset, crc, commit_page_count, page_size, seal) -> (bytearray, crc, sizes)
** A commit's log frames in one call (issue 23): the bytes of each frame of `frames` (a list of
** (pgno, image, before, base) tuples) back to back, as wal.py's FRAME HEADER table lays them out,
** the first at log offset `offset`, the checksum chain continued from `crc`. A frame whose `base`
** is not 0 and whose `before` is not None is logged as a delta from `before` (delta.c) when the
** delta takes at most half a page, else whole. The last frame carries `commit_page_count`. With
** `seal` (an LSN, not 0) each page but page 0 (an exact bytearray: a pager frame) is first stamped
** with it and its checksum, in place (ps_page_seal_many).
** Returns the frames, the chain's last checksum and each frame's payload size (the page size:
** logged whole, base 0; less: a delta from its base). Page-local: only the images handed in. */
static PyObject *fp_log_frames(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t salt, crc, commit, page_size;
    unsigned long long txn, offset, seal;
    if (!nargs_ok(n, 8, "log_frames")) return NULL;
    PyObject *list = args[0];
    if (!PyList_CheckExact(list)) {
        PyErr_SetString(PyExc_TypeError, "frames must be a list");
        return NULL;
    }
    if (log_args(args, &txn, &salt, &offset, &crc, &commit, &page_size, &seal) != 0) return NULL;
    Py_ssize_t nf = PyList_GET_SIZE(list);
    PyObject *out = PyByteArray_FromStringAndSize(NULL, nf * (Py_ssize_t)(LOG_FRAME_HEADER + page_size));
    PyObject *sizes = PyList_New(nf);
    if (out == NULL || sizes == NULL) goto error;
    uint8_t *o = (uint8_t *)PyByteArray_AS_STRING(out);
    size_t pos = 0;
    for (Py_ssize_t i = 0; i < nf; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 4) {
            PyErr_SetString(PyExc_TypeError, "a frame must be a tuple (pgno, image, before, base)");
            goto error;
        }
        uint32_t pgno, plen;
        uint64_t used;
        if (!as_u32(PyTuple_GET_ITEM(item, 0), &pgno)) goto error;
        unsigned long long base = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(item, 3));
        if (base == (unsigned long long)-1 && PyErr_Occurred()) goto error;
        if (log_frame_build(o + pos, pgno, PyTuple_GET_ITEM(item, 1), PyTuple_GET_ITEM(item, 2), base,
                            i == nf - 1 ? commit : 0, txn, offset, salt, page_size, seal, &crc, &plen, &used) != 0)
            goto error;
        pos += LOG_FRAME_HEADER + plen;
        offset += LOG_FRAME_HEADER + plen;
        PyObject *sz = PyLong_FromUnsignedLong(plen);
        if (sz == NULL) goto error;
        PyList_SET_ITEM(sizes, i, sz);
    }
    if (PyByteArray_Resize(out, (Py_ssize_t)pos) != 0) goto error;
    return Py_BuildValue("(NkN)", out, (unsigned long)crc, sizes);
error:
    Py_XDECREF(out);
    Py_XDECREF(sizes);
    return NULL;
}

/* log_append(frames, txn, salt, offset, crc, commit_page_count, page_size, seal, txn_index, index, depth,
**            pgnos, offsets, max_chain) -> (bytearray, crc, entries)
** log_frames with the log writer's per-frame bookkeeping (wal.py WAL._append) in the same call, so
** that a commit is a handful of Python-level calls (issue 23). `frames` is a list of (pgno, image,
** before) tuples (wal.py's Frame). First every frame is built, as log_frames builds it, its base
** chosen as WAL._append did: when `before` is not None, the page's newest frame (`txn_index`'s
** entry, else `index`'s) if its place in its chain (`depth`[that offset]) is below `max_chain`, else
** whole. Then, once all are built, for each frame: depth[its offset] = depth[base] + 1 for a delta,
** 0 for a whole image; txn_index[pgno] = its offset; pgno and offset appended to the lists `pgnos`
** and `offsets`. Returns the frames' bytes, the chain's last checksum and the shared index's
** entries (shm.py ``set_frames``): 16 bytes a frame, little-endian u64 pgno | size << 32, then u64
** offset. The dicts and lists are the caller's bookkeeping, not pages: no page number is followed.
** Raises KeyError when a base's offset has no depth (a bug: WAL kept them in step). */
static PyObject *fp_log_append(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    uint32_t salt, crc, commit, page_size;
    unsigned long long txn, offset, seal;
    if (!nargs_ok(n, 14, "log_append")) return NULL;
    PyObject *list = args[0], *txn_index = args[8], *index = args[9], *depth = args[10];
    PyObject *pgnos = args[11], *offsets = args[12];
    if (!PyList_CheckExact(list) || !PyList_CheckExact(pgnos) || !PyList_CheckExact(offsets)) {
        PyErr_SetString(PyExc_TypeError, "frames, pgnos and offsets must be lists");
        return NULL;
    }
    if (!PyDict_CheckExact(txn_index) || !PyDict_CheckExact(index) || !PyDict_CheckExact(depth)) {
        PyErr_SetString(PyExc_TypeError, "txn_index, index and depth must be dicts");
        return NULL;
    }
    long max_chain = PyLong_AsLong(args[13]);
    if (max_chain == -1 && PyErr_Occurred()) return NULL;
    if (log_args(args, &txn, &salt, &offset, &crc, &commit, &page_size, &seal) != 0) return NULL;
    Py_ssize_t nf = PyList_GET_SIZE(list);
    PyObject *out = PyByteArray_FromStringAndSize(NULL, nf * (Py_ssize_t)(LOG_FRAME_HEADER + page_size));
    PyObject *entries = PyBytes_FromStringAndSize(NULL, nf * 16);
    long *depths = PyMem_New(long, nf > 0 ? (size_t)nf : 1);
    if (out == NULL || entries == NULL || depths == NULL) {
        if (depths == NULL) PyErr_NoMemory();
        goto error;
    }
    uint8_t *o = (uint8_t *)PyByteArray_AS_STRING(out), *e = (uint8_t *)PyBytes_AS_STRING(entries);
    size_t pos = 0;
    unsigned long long at = offset;
    for (Py_ssize_t i = 0; i < nf; i++) { /* build: nothing of the caller's changed yet */
        PyObject *item = PyList_GET_ITEM(list, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 3) {
            PyErr_SetString(PyExc_TypeError, "a frame must be a tuple (pgno, image, before)");
            goto error;
        }
        PyObject *key = PyTuple_GET_ITEM(item, 0), *before = PyTuple_GET_ITEM(item, 2);
        uint32_t pgno, plen;
        uint64_t used, base = 0;
        long prev_depth = 0;
        if (!as_u32(key, &pgno)) goto error;
        if (before != Py_None) {
            PyObject *prev = PyDict_GetItemWithError(txn_index, key); /* borrowed */
            if (prev == NULL && !PyErr_Occurred()) prev = PyDict_GetItemWithError(index, key);
            if (prev == NULL && PyErr_Occurred()) goto error;
            if (prev != NULL) {
                PyObject *d = PyDict_GetItemWithError(depth, prev);
                if (d == NULL) {
                    if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, prev);
                    goto error;
                }
                prev_depth = PyLong_AsLong(d);
                if (prev_depth == -1 && PyErr_Occurred()) goto error;
                if (prev_depth < max_chain) {
                    base = PyLong_AsUnsignedLongLong(prev);
                    if (base == (uint64_t)-1 && PyErr_Occurred()) goto error;
                }
            }
        }
        if (log_frame_build(o + pos, pgno, PyTuple_GET_ITEM(item, 1), before, base, i == nf - 1 ? commit : 0, txn,
                            at, salt, page_size, seal, &crc, &plen, &used) != 0)
            goto error;
        depths[i] = used ? prev_depth + 1 : 0;
        put_le64(e + 16 * i, (uint64_t)pgno | (uint64_t)plen << 32);
        put_le64(e + 16 * i + 8, at);
        pos += LOG_FRAME_HEADER + plen;
        at += LOG_FRAME_HEADER + plen;
    }
    at = offset;
    for (Py_ssize_t i = 0; i < nf; i++) { /* the bookkeeping: fails only without memory */
        PyObject *key = PyTuple_GET_ITEM(PyList_GET_ITEM(list, i), 0);
        PyObject *off = PyLong_FromUnsignedLongLong(at), *dv = PyLong_FromLong(depths[i]);
        int bad = off == NULL || dv == NULL || PyDict_SetItem(depth, off, dv) != 0 ||
                  PyDict_SetItem(txn_index, key, off) != 0 || PyList_Append(pgnos, key) != 0 ||
                  PyList_Append(offsets, off) != 0;
        Py_XDECREF(off);
        Py_XDECREF(dv);
        if (bad) goto error;
        at += LOG_FRAME_HEADER + (uint32_t)(e[16 * i + 4] | e[16 * i + 5] << 8 | e[16 * i + 6] << 16 |
                                            (uint32_t)e[16 * i + 7] << 24);
    }
    PyMem_Free(depths);
    if (PyByteArray_Resize(out, (Py_ssize_t)pos) != 0) {
        Py_DECREF(out);
        Py_DECREF(entries);
        return NULL;
    }
    return Py_BuildValue("(NkN)", out, (unsigned long)crc, entries);
error:
    PyMem_Free(depths);
    Py_XDECREF(out);
    Py_XDECREF(entries);
    return NULL;
}

/* le64: the little-endian u64 at p. */
static uint64_t le64(const uint8_t *p) {
    return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}

/* log_advance(image, window, start, chain, pgno, salt, page_size) -> bool: brings `image` (a bytearray of
** page_size bytes, page `pgno`'s image as of its frame at chain[0]; None: no frame) to the image of
** the frame at chain[-1], from the frames at chain[1:] (offsets in log order), which lie in `window`
** (the log's bytes from offset `start`): each whole frame (base 0, page_size bytes) copied over it,
** each delta (its base the chain's frame before it) applied (delta.c), as wal.py read_frame applies
** a chain. False, `image` maybe half changed, when a frame is not where and what its offset says:
** outside the window, another page's, another offset's or salt's, a size that does not fit, a
** delta whose base is not the frame before it, or runs outside the page. The header as wal.py's
** FRAME HEADER table lays it out. Page-local: the caller's buffers, no page number followed. */
static PyObject *fp_log_advance(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    if (!nargs_ok(n, 7, "log_advance")) return NULL;
    PyObject *image = args[0], *window = args[1], *chain = args[3];
    if (!PyByteArray_CheckExact(image) || !PyList_CheckExact(chain)) {
        PyErr_SetString(PyExc_TypeError, "image must be a bytearray and chain a list");
        return NULL;
    }
    unsigned long long start = PyLong_AsUnsignedLongLong(args[2]);
    unsigned long pgno = PyLong_AsUnsignedLong(args[4]), salt = PyLong_AsUnsignedLong(args[5]);
    unsigned long page_size = PyLong_AsUnsignedLong(args[6]);
    if (PyErr_Occurred()) return NULL;
    Py_ssize_t len = PyList_GET_SIZE(chain);
    int have_prev = 0;
    unsigned long long prev = 0;
    if (len > 0 && PyList_GET_ITEM(chain, 0) != Py_None) {
        prev = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(chain, 0));
        if (prev == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
        have_prev = 1;
    }
    Py_buffer win;
    if (PyObject_GetBuffer(window, &win, PyBUF_SIMPLE) != 0) return NULL;
    uint8_t *img = (uint8_t *)PyByteArray_AS_STRING(image);
    const uint8_t *w = (const uint8_t *)win.buf;
    uint64_t wlen = (uint64_t)win.len;
    int ok = len > 1 && (unsigned long)PyByteArray_GET_SIZE(image) == page_size;
    for (Py_ssize_t i = 1; ok && i < len; i++) {
        unsigned long long off = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(chain, i));
        if (off == (unsigned long long)-1 && PyErr_Occurred()) {
            PyBuffer_Release(&win);
            return NULL;
        }
        if (off < start || off - start > wlen || wlen - (off - start) < LOG_FRAME_HEADER) {
            ok = 0;
            break;
        }
        const uint8_t *h = w + (off - start);
        uint32_t fn = le32(h + 28);
        uint64_t base = le64(h + 32);
        if (le32(h) != pgno || le64(h + 16) != off || le32(h + 24) != salt ||
            wlen - (off - start) - LOG_FRAME_HEADER < fn) {
            ok = 0;
            break;
        }
        if (base == 0) {
            if (fn != page_size) {
                ok = 0;
                break;
            }
            memcpy(img, h + LOG_FRAME_HEADER, page_size);
        } else if (fn >= page_size || base >= off || !have_prev || base != prev ||
                   ps_delta_apply(img, (uint32_t)page_size, h + LOG_FRAME_HEADER, fn) != PS_OK) {
            ok = 0;
            break;
        }
        prev = off;
        have_prev = 1;
    }
    PyBuffer_Release(&win);
    return PyBool_FromLong(ok);
}

/* log_adopt(entries, end, page_size, index, depth, max_chain) -> (pgnos, offsets, chains, latest, new_depth,
** end, last pgno, last offset, last size) or None: wal.py WAL._adopt's walk over the shared index's
** entries of the frames a writer catching up takes (16 bytes a frame, native u64 pgno | size << 32,
** then u64 offset), from the log's committed end `end`: each frame must begin where the one before
** ended and be 1 to page_size bytes; a delta's depth is its page's previous frame's (in these
** frames, else `depth` of the frame `index` names) plus one, at most max_chain; a whole frame's is
** 0. None when an entry breaks a rule (the caller reads the log file instead). Returns the frames'
** page numbers and offsets (lists, in order), chains (pgno -> [its frame in `index` or None, then
** its offsets here], for WAL.advance), latest (pgno -> its last offset here), new_depth (offset ->
** depth), the end past the last frame, and the last frame's page number, offset and size. Changes
** nothing of the caller's. The caller's bookkeeping, not pages: no page number is followed. */
static PyObject *fp_log_adopt(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    (void)self;
    if (!nargs_ok(n, 6, "log_adopt")) return NULL;
    PyObject *index = args[3], *depth = args[4];
    if (!PyDict_CheckExact(index) || !PyDict_CheckExact(depth)) {
        PyErr_SetString(PyExc_TypeError, "index and depth must be dicts");
        return NULL;
    }
    unsigned long long end = PyLong_AsUnsignedLongLong(args[1]);
    unsigned long page_size = PyLong_AsUnsignedLong(args[2]);
    long max_chain = PyLong_AsLong(args[5]);
    if (PyErr_Occurred()) return NULL;
    Py_buffer eb;
    if (PyObject_GetBuffer(args[0], &eb, PyBUF_SIMPLE) != 0) return NULL;
    if (eb.len <= 0 || eb.len % 16 != 0) {
        PyBuffer_Release(&eb);
        Py_RETURN_NONE;
    }
    Py_ssize_t nf = eb.len / 16;
    const uint8_t *e = (const uint8_t *)eb.buf;
    PyObject *pgnos = PyList_New(nf), *offsets = PyList_New(nf);
    PyObject *chains = PyDict_New(), *latest = PyDict_New(), *new_depth = PyDict_New();
    uint64_t off = 0, size = 0;
    uint32_t pgno = 0;
    int bail = 0;
    if (pgnos == NULL || offsets == NULL || chains == NULL || latest == NULL || new_depth == NULL) goto error;
    for (Py_ssize_t i = 0; i < nf; i++) {
        uint64_t word;
        memcpy(&word, e + 16 * i, 8);
        memcpy(&off, e + 16 * i + 8, 8);
        pgno = (uint32_t)(word & 0xFFFFFFFFu);
        size = word >> 32;
        if (off != end || size == 0 || size > page_size) {
            bail = 1;
            break;
        }
        PyObject *kp = PyLong_FromUnsignedLong(pgno);
        if (kp == NULL) goto error;
        PyList_SET_ITEM(pgnos, i, kp); /* stolen: pgnos keeps kp alive below */
        PyObject *ko = PyLong_FromUnsignedLongLong(off);
        if (ko == NULL) goto error;
        PyList_SET_ITEM(offsets, i, ko);
        PyObject *prev = PyDict_GetItemWithError(latest, kp); /* borrowed */
        if (prev == NULL) {
            if (PyErr_Occurred()) goto error;
            prev = PyDict_GetItemWithError(index, kp);
            if (prev == NULL && PyErr_Occurred()) goto error;
            PyObject *chain = PyList_New(2);
            if (chain == NULL) goto error;
            PyObject *first = prev != NULL ? prev : Py_None;
            Py_INCREF(first);
            PyList_SET_ITEM(chain, 0, first);
            Py_INCREF(ko);
            PyList_SET_ITEM(chain, 1, ko);
            int rc = PyDict_SetItem(chains, kp, chain);
            Py_DECREF(chain);
            if (rc != 0) goto error;
        } else {
            PyObject *chain = PyDict_GetItemWithError(chains, kp);
            if (chain == NULL || PyList_Append(chain, ko) != 0) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "log_adopt: a chain went missing");
                goto error;
            }
        }
        long d = 0;
        if (size != page_size) {
            if (prev == NULL) {
                bail = 1;
                break;
            }
            PyObject *pd = PyDict_GetItemWithError(new_depth, prev);
            if (pd == NULL) {
                if (PyErr_Occurred()) goto error;
                pd = PyDict_GetItemWithError(depth, prev);
                if (pd == NULL) {
                    if (PyErr_Occurred()) goto error;
                    bail = 1;
                    break;
                }
            }
            long pdv = PyLong_AsLong(pd);
            if (pdv == -1 && PyErr_Occurred()) goto error;
            if (pdv >= max_chain) {
                bail = 1;
                break;
            }
            d = pdv + 1;
        }
        PyObject *dv = PyLong_FromLong(d);
        if (dv == NULL) goto error;
        int rc = PyDict_SetItem(new_depth, ko, dv);
        Py_DECREF(dv);
        if (rc != 0 || PyDict_SetItem(latest, kp, ko) != 0) goto error;
        end = off + LOG_FRAME_HEADER + size;
    }
    PyBuffer_Release(&eb);
    if (bail) {
        /* items of pgnos / offsets not set yet are NULL: list dealloc skips them */
        Py_DECREF(pgnos);
        Py_DECREF(offsets);
        Py_DECREF(chains);
        Py_DECREF(latest);
        Py_DECREF(new_depth);
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(NNNNNKkKK)", pgnos, offsets, chains, latest, new_depth, (unsigned long long)end,
                         (unsigned long)pgno, (unsigned long long)off, (unsigned long long)size);
error:
    PyBuffer_Release(&eb);
    Py_XDECREF(pgnos);
    Py_XDECREF(offsets);
    Py_XDECREF(chains);
    Py_XDECREF(latest);
    Py_XDECREF(new_depth);
    return NULL;
}

static PyMethodDef methods[] = {
    {"init", (PyCFunction)fp_init, METH_O, "init(raise_fn): the callable raising for (code, pgno, what)"},
    {"map_child", (PyCFunction)(void (*)(void))fp_map_child, METH_FASTCALL, "map_child(h, pgno, key) -> child pgno"},
    {"map_find", (PyCFunction)(void (*)(void))fp_map_find, METH_FASTCALL,
     "map_find(h, pgno, key) -> (index, equal, rid pgno, rid slot)"},
    {"map_get", (PyCFunction)(void (*)(void))fp_map_get, METH_FASTCALL,
     "map_get(h, pgno, key) -> (rid pgno, rid slot) of key in leaf pgno, or None"},
    {"node_get", (PyCFunction)(void (*)(void))fp_node_get, METH_FASTCALL,
     "node_get(raw, key, pgno) -> (rid pgno, rid slot) of key in raw leaf pgno, or None"},
    {"node_child", (PyCFunction)(void (*)(void))fp_node_child, METH_FASTCALL, "node_child(raw, key, pgno) -> child pgno"},
    {"node_find", (PyCFunction)(void (*)(void))fp_node_find, METH_FASTCALL,
     "node_find(raw, key, after, pgno) -> (index, equal, pgno, slot)"},
    {"node_find_many", (PyCFunction)(void (*)(void))fp_node_find_many, METH_FASTCALL,
     "node_find_many(raw, keys, lo, hi, out, pgno): out[t] = rid of keys[t] found in the leaf"},
    {"map_find_many", (PyCFunction)(void (*)(void))fp_map_find_many, METH_FASTCALL,
     "map_find_many(h, pgno, keys, lo, hi, out): out[t] = rid of keys[t] found in leaf pgno"},
    {"map_value", (PyCFunction)(void (*)(void))fp_map_value, METH_FASTCALL,
     "map_value(h, pgno, slot) -> bytes of a live heap record, (total, first, tail length) of an overflow stub, or None"},
    {"map_record", (PyCFunction)(void (*)(void))fp_map_record, METH_FASTCALL,
     "map_record(h, pgno, slot, want_type) -> (offset, length, state, next) or None"},
    {"map_chunk", (PyCFunction)(void (*)(void))fp_map_chunk, METH_FASTCALL,
     "map_chunk(h, pgno) -> (bytes of slot 0 of an overflow page, next) or None"},
    {"page_value", (PyCFunction)(void (*)(void))fp_page_value, METH_FASTCALL,
     "page_value(buf, slot) -> bytes of a live record of a heap page, or None"},
    {"map_chain_run", (PyCFunction)(void (*)(void))fp_map_chain_run, METH_FASTCALL,
     "map_chain_run(h, first, count, step) -> the chunks of a run of linked overflow pages, or None"},
    {"map_chain_value", (PyCFunction)(void (*)(void))fp_map_chain_value, METH_FASTCALL,
     "map_chain_value(h, first, count, step, pgno, slot) -> a whole overflow value (chain run + the stub's tail), or None"},
    {"map_values", (PyCFunction)(void (*)(void))fp_map_values, METH_FASTCALL,
     "map_values(h, pgnos, slots) -> [bytes or None]"},
    {"map_leaf_run", (PyCFunction)(void (*)(void))fp_map_leaf_run, METH_FASTCALL,
     "map_leaf_run(h, pgno, start, after, stop, limit) -> (i, j, count, keys, pgnos, slots)"},
    {"leaf_run", (PyCFunction)(void (*)(void))fp_leaf_run, METH_FASTCALL,
     "leaf_run(raw, pgno, start, after, stop, limit) -> (i, j, count, keys, pgnos, slots)"},
    {"page_insert_room", (PyCFunction)(void (*)(void))fp_page_insert_room, METH_FASTCALL,
     "page_insert_room(frame, record, state, pgno) -> (slot, max_insert)"},
    {"crc32c", (PyCFunction)(void (*)(void))fp_crc32c, METH_FASTCALL, "crc32c(data, crc) -> CRC32C of data from crc"},
    {"log_frames", (PyCFunction)(void (*)(void))fp_log_frames, METH_FASTCALL,
     "log_frames(frames, txn, salt, offset, crc, commit_page_count, page_size, seal) -> (frames' bytes, crc, sizes)"},
    {"log_append", (PyCFunction)(void (*)(void))fp_log_append, METH_FASTCALL,
     "log_append(frames, txn, salt, offset, crc, commit_page_count, page_size, seal, txn_index, index, depth, "
     "pgnos, offsets, max_chain) -> (frames' bytes, crc, entries)"},
    {"log_adopt", (PyCFunction)(void (*)(void))fp_log_adopt, METH_FASTCALL,
     "log_adopt(entries, end, page_size, index, depth, max_chain) -> (pgnos, offsets, chains, latest, new_depth, end, "
     "last pgno, last offset, last size) or None"},
    {"log_advance", (PyCFunction)(void (*)(void))fp_log_advance, METH_FASTCALL,
     "log_advance(image, window, start, chain, pgno, salt, page_size) -> bool: image brought to the chain's last frame"},
    {"leaf_insert", (PyCFunction)(void (*)(void))fp_leaf_insert, METH_FASTCALL,
     "leaf_insert(frame, index, key, rid pgno, rid slot, pgno) -> new page bytes, or None if full"},
    {"leaf_remove", (PyCFunction)(void (*)(void))fp_leaf_remove, METH_FASTCALL,
     "leaf_remove(frame, index, pgno) -> (new page bytes, used)"},
    {"record_delete", (PyCFunction)(void (*)(void))fp_record_delete, METH_FASTCALL,
     "record_delete(frame, slot, pgno) -> (length, overflow stub or None, nlive, max_insert)"},
    {"record_patch", (PyCFunction)(void (*)(void))fp_record_patch, METH_FASTCALL,
     "record_patch(frame, slot, length, changes, pgno) -> the record's length (unchanged unless it is length)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pagestore._fastpage",
    "The read and write paths' hot page-local calls, METH_FASTCALL (see native/fastpage.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastpage(void) {
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) return NULL;
    if (PyModule_AddIntConstant(mod, "NATIVE_VERSION", PS_NATIVE_VERSION) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
