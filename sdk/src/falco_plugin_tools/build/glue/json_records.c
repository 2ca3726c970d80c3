/*
 * falco_plugin.json_records in C: the records of the array at a pointer of a
 * JSON document, as raw byte slices, with the values at a few pointers of
 * each record (json_fields.c includes this file: it needs the yyjson that a
 * library with JSON fields carries).
 *
 * yyjson checks the whole document (strict RFC 8259, UTF-8 validated). Then
 * a scanner that trusts it walks the text for the spans: it needs no tree
 * and hands each record out as the document spells it (whitespace between
 * tokens left out), so nothing is decoded and written again. Both run
 * without the GIL. With the GIL back, the spans become bytes objects and the
 * few values Python objects (by json.loads, handed in, for anything but
 * plain strings, integers, floats, booleans and null).
 *
 * NULL-or-None protocol: whatever this code cannot vouch for (a document
 * yyjson refuses even with its lone surrogate escapes set aside, duplicate
 * keys on the way to the array, nesting deeper than FP_JR_MAX_DEPTH, a key
 * holding a lone surrogate escape, no array at the pointer) returns None, and the Python
 * side computes the answer (or the json.loads error) itself, so that the two
 * paths never disagree.
 */

#define FP_JR_MAX_DEPTH 512 /* falco_plugin.jsonrecords.C_MAX_DEPTH */

typedef struct {
    const char *s;
    size_t n;
} fp_jr_tok;

typedef struct {
    fp_jr_tok *toks;
    size_t n;
} fp_jr_ptr;

typedef struct {
    size_t start, end; /* offsets in the document; end == start: missing */
} fp_jr_span;

enum { FP_JR_OK = 0, FP_JR_FALLBACK = 1, FP_JR_NOMEM = 2 };

static inline int fp_jr_is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static inline const uint8_t *fp_jr_ws(const uint8_t *p, const uint8_t *e) {
    while (p < e && fp_jr_is_ws(*p)) {
        p++;
    }
    return p;
}

/* Past the string opening at p (memchr finds the quotes: strings are most of a record's bytes);
 * *esc set when it holds a backslash. */
static const uint8_t *fp_jr_str_end(const uint8_t *p, const uint8_t *e, int *esc) {
    const uint8_t *from = ++p;
    for (;;) {
        const uint8_t *q = (const uint8_t *)memchr(p, '"', (size_t)(e - p));
        if (!q) {
            return e;
        }
        const uint8_t *b = q;
        while (b > from && b[-1] == '\\') {
            b--;
        }
        if (b != q) {
            *esc = 1;
        }
        if (((q - b) & 1) == 0) { /* an even run of backslashes escapes itself, not the quote */
            return q + 1;
        }
        p = q + 1;
    }
}

/* Past the value at p; *status turns FALLBACK when it nests too deep. */
static const uint8_t *fp_jr_skip(const uint8_t *p, const uint8_t *e, int *status) {
    int esc = 0;
    if (*p == '"') {
        return fp_jr_str_end(p, e, &esc);
    }
    if (*p != '{' && *p != '[') { /* a number, true, false or null */
        while (p < e && *p != ',' && *p != ']' && *p != '}' && !fp_jr_is_ws(*p)) {
            p++;
        }
        return p;
    }
    int depth = 0;
    while (p < e) {
        uint8_t c = *p;
        if (c == '"') {
            p = fp_jr_str_end(p, e, &esc);
            continue;
        }
        if (c == '{' || c == '[') {
            if (++depth > FP_JR_MAX_DEPTH) {
                *status = FP_JR_FALLBACK;
                return e;
            }
        } else if (c == '}' || c == ']') {
            if (--depth == 0) {
                return p + 1;
            }
        }
        p++;
    }
    return e;
}

/* Whether the escaped key [ks, ke) reads as token t; a lone surrogate escape makes it FALLBACK. */
static int fp_jr_key_is(const uint8_t *ks, const uint8_t *ke, fp_jr_tok t, int *status) {
    size_t o = 0;
    const uint8_t *p = ks;
    uint8_t out[4];
    while (p < ke) {
        size_t n = 1;
        if (*p != '\\') {
            out[0] = *p++;
        } else {
            uint8_t c = p[1];
            p += 2;
            switch (c) {
            case 'b': out[0] = '\b'; break;
            case 'f': out[0] = '\f'; break;
            case 'n': out[0] = '\n'; break;
            case 'r': out[0] = '\r'; break;
            case 't': out[0] = '\t'; break;
            case 'u': {
                unsigned u = 0, lo = 0;
                fp_json_hex4(p, &u); /* yyjson has checked the four hex digits */
                p += 4;
                if (u >= 0xD800 && u <= 0xDBFF && p + 6 <= ke && p[0] == '\\' && p[1] == 'u' &&
                    fp_json_hex4(p + 2, &lo)) {
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                        p += 6;
                    }
                }
                if (u >= 0xD800 && u <= 0xDFFF) {
                    *status = FP_JR_FALLBACK; /* no UTF-8 token equals it; Python decides */
                    return 0;
                }
                if (u < 0x80) {
                    out[0] = (uint8_t)u;
                } else if (u < 0x800) {
                    out[0] = (uint8_t)(0xC0 | (u >> 6));
                    out[1] = (uint8_t)(0x80 | (u & 0x3F));
                    n = 2;
                } else if (u < 0x10000) {
                    out[0] = (uint8_t)(0xE0 | (u >> 12));
                    out[1] = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
                    out[2] = (uint8_t)(0x80 | (u & 0x3F));
                    n = 3;
                } else {
                    out[0] = (uint8_t)(0xF0 | (u >> 18));
                    out[1] = (uint8_t)(0x80 | ((u >> 12) & 0x3F));
                    out[2] = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
                    out[3] = (uint8_t)(0x80 | (u & 0x3F));
                    n = 4;
                }
                break;
            }
            default: out[0] = c; /* \" \\ \/ */
            }
        }
        if (o + n > t.n || memcmp(t.s + o, out, n) != 0) {
            return 0;
        }
        o += n;
    }
    return o == t.n;
}

/* Token t as an array index into *index: RFC 6901 decimal without leading zeros ("-", past the
 * end, never exists); 0 when it is none, or too large to be one. */
static int fp_jr_index(fp_jr_tok t, size_t *index) {
    if (t.n == 0 || (t.s[0] == '0' && t.n > 1)) {
        return 0;
    }
    size_t x = 0;
    for (size_t k = 0; k < t.n; k++) {
        if (t.s[k] < '0' || t.s[k] > '9' || x > (SIZE_MAX - 9) / 10) {
            return 0;
        }
        x = x * 10 + (size_t)(t.s[k] - '0');
    }
    *index = x;
    return 1;
}

/* The value at token t of the container at p (NULL: missing). `first`: stop at the first
 * matching key (the caller knows there is no duplicate); else the last one wins. */
static const uint8_t *fp_jr_step(const uint8_t *p, const uint8_t *e, fp_jr_tok t, int first, int *status) {
    if (*p == '[') {
        size_t index;
        if (!fp_jr_index(t, &index)) {
            return NULL;
        }
        p = fp_jr_ws(p + 1, e);
        if (p >= e || *p == ']') {
            return NULL;
        }
        for (size_t k = 0; k < index; k++) {
            p = fp_jr_ws(fp_jr_skip(p, e, status), e);
            if (*status || p >= e || *p != ',') {
                return NULL;
            }
            p = fp_jr_ws(p + 1, e);
        }
        return p;
    }
    if (*p != '{') {
        return NULL;
    }
    const uint8_t *found = NULL;
    p = fp_jr_ws(p + 1, e);
    while (p < e && *p == '"') {
        int esc = 0;
        const uint8_t *ks = p + 1;
        p = fp_jr_str_end(p, e, &esc);
        const uint8_t *ke = p - 1;
        int match = esc ? fp_jr_key_is(ks, ke, t, status) : ((size_t)(ke - ks) == t.n && memcmp(ks, t.s, t.n) == 0);
        if (*status) {
            return NULL;
        }
        p = fp_jr_ws(fp_jr_ws(p, e) + 1, e); /* past ':' */
        if (match) {
            found = p; /* the last of duplicate keys wins, as in json.loads */
            if (first) {
                return found;
            }
        }
        p = fp_jr_ws(fp_jr_skip(p, e, status), e);
        if (*status || p >= e || *p != ',') {
            break;
        }
        p = fp_jr_ws(p + 1, e);
    }
    return *status ? NULL : found;
}

static const uint8_t *fp_jr_find(const uint8_t *p, const uint8_t *e, const fp_jr_tok *toks, size_t n, int first,
                                 int *status) {
    for (size_t k = 0; p && k < n; k++) {
        p = fp_jr_step(p, e, toks[k], first, status);
    }
    return p;
}

/* Whether yyjson's key k reads as token t (yyjson has unescaped it). */
static int fp_jr_yykey_is(yyjson_val *k, fp_jr_tok t) {
    return yyjson_get_len(k) == t.n && memcmp(yyjson_get_str(k), t.s, t.n) == 0;
}

/* Follow `at` in yyjson's tree: FP_JR_OK when it leads to an array along keys that each appear
 * once (so the scanner may stop at the first match), else FP_JR_FALLBACK. */
static int fp_jr_check_path(yyjson_val *v, const fp_jr_ptr *at, int rewritten) {
    for (size_t k = 0; v && k < at->n; k++) {
        fp_jr_tok t = at->toks[k];
        if (yyjson_is_obj(v)) {
            yyjson_val *key, *found = NULL;
            yyjson_obj_iter it = yyjson_obj_iter_with(v);
            int count = 0;
            while ((key = yyjson_obj_iter_next(&it))) {
                if (rewritten && memchr(yyjson_get_str(key), '\\', yyjson_get_len(key))) {
                    return FP_JR_FALLBACK; /* maybe a lone surrogate escape, now text: Python decides */
                }
                if (fp_jr_yykey_is(key, t)) {
                    found = yyjson_obj_iter_get_val(key);
                    count++;
                }
            }
            if (count != 1) {
                return FP_JR_FALLBACK;
            }
            v = found;
        } else if (yyjson_is_arr(v)) {
            size_t index;
            if (!fp_jr_index(t, &index)) {
                return FP_JR_FALLBACK;
            }
            v = yyjson_arr_get(v, index);
        } else {
            return FP_JR_FALLBACK;
        }
    }
    return v && yyjson_is_arr(v) ? FP_JR_OK : FP_JR_FALLBACK;
}

typedef struct {
    const uint8_t *doc;
    size_t len;
    fp_jr_ptr at;
    fp_jr_ptr *values;
    size_t nvalues;
    /* out: the records' texts one after the other (whitespace left out), and per record its span
     * there and nvalues value spans there */
    uint8_t *out;
    size_t olen;
    fp_jr_span *records;
    fp_jr_span *vals;
    size_t nrecords, cap;
} fp_jr_job;

static int fp_jr_grow(fp_jr_job *j) {
    size_t cap = j->cap ? 2 * j->cap : 256;
    void *r = realloc(j->records, cap * sizeof *j->records);
    if (!r) {
        return FP_JR_NOMEM;
    }
    j->records = (fp_jr_span *)r;
    if (j->nvalues) {
        void *v = realloc(j->vals, cap * j->nvalues * sizeof *j->vals);
        if (!v) {
            return FP_JR_NOMEM;
        }
        j->vals = (fp_jr_span *)v;
    }
    j->cap = cap;
    return FP_JR_OK;
}

/* Copy the value at *pp to o without the whitespace between its tokens; returns the end of the copy. */
static uint8_t *fp_jr_copy(const uint8_t **pp, const uint8_t *e, uint8_t *o, int *status) {
    const uint8_t *p = *pp;
    int esc = 0;
    if (*p != '{' && *p != '[') {
        const uint8_t *q = *p == '"' ? fp_jr_str_end(p, e, &esc) : p;
        while (q < e && *q != ',' && *q != ']' && *q != '}' && !fp_jr_is_ws(*q)) {
            q++; /* a number, true, false or null */
        }
        memcpy(o, p, (size_t)(q - p));
        *pp = q;
        return o + (q - p);
    }
    int depth = 0;
    while (p < e) {
        uint8_t c = *p;
        if (c == '"') {
            const uint8_t *q = fp_jr_str_end(p, e, &esc);
            memcpy(o, p, (size_t)(q - p));
            o += q - p;
            p = q;
            continue;
        }
        p++;
        if (fp_jr_is_ws(c)) {
            continue;
        }
        *o++ = c;
        if (c == '{' || c == '[') {
            if (++depth > FP_JR_MAX_DEPTH) {
                *status = FP_JR_FALLBACK;
                break;
            }
        } else if ((c == '}' || c == ']') && --depth == 0) {
            break;
        }
    }
    *pp = p;
    return o;
}

static int fp_jr_key_matches(const uint8_t *ks, const uint8_t *ke, fp_jr_tok t, int *status) {
    if (!memchr(ks, '\\', (size_t)(ke - ks))) {
        return (size_t)(ke - ks) == t.n && memcmp(ks, t.s, t.n) == 0;
    }
    return fp_jr_key_is(ks, ke, t, status);
}

/* The value at ptr, minus its first `skip` tokens, inside the copied value [s, e): its span in out. */
static int fp_jr_locate(fp_jr_job *j, const uint8_t *s, const uint8_t *e, const fp_jr_ptr *ptr, size_t skip,
                        fp_jr_span *v) {
    int status = FP_JR_OK;
    const uint8_t *at = fp_jr_find(s, e, ptr->toks + skip, ptr->n - skip, 0, &status);
    if (status) {
        return status;
    }
    if (at) {
        v->start = (size_t)(at - j->out);
        v->end = (size_t)(fp_jr_skip(at, e, &status) - j->out);
    }
    return status;
}

/* One record at *pp: copied into out, its values located. The members of a record that is an
 * object are walked once, for the copy and for the first token of every value pointer. */
static int fp_jr_record(fp_jr_job *j, const uint8_t **pp, const uint8_t *e) {
    if (j->nrecords == j->cap && fp_jr_grow(j) != FP_JR_OK) {
        return FP_JR_NOMEM;
    }
    size_t r = j->nrecords++;
    fp_jr_span *vals = j->vals + r * j->nvalues;
    memset(vals, 0, j->nvalues * sizeof *vals);
    const uint8_t *p = *pp;
    uint8_t *o = j->out + j->olen;
    int status = FP_JR_OK;
    if (*p == '{' && j->nvalues) {
        *o++ = '{';
        p = fp_jr_ws(p + 1, e);
        while (p < e && *p == '"') {
            int esc = 0;
            const uint8_t *q = fp_jr_str_end(p, e, &esc);
            const uint8_t *ks = p + 1, *ke = q - 1;
            memcpy(o, p, (size_t)(q - p));
            o += q - p;
            *o++ = ':';
            p = fp_jr_ws(fp_jr_ws(q, e) + 1, e);
            size_t vstart = (size_t)(o - j->out);
            o = fp_jr_copy(&p, e, o, &status);
            for (size_t k = 0; !status && k < j->nvalues; k++) {
                if (j->values[k].n && fp_jr_key_matches(ks, ke, j->values[k].toks[0], &status)) {
                    vals[k].start = vstart; /* the last of duplicate keys wins, as in json.loads */
                    vals[k].end = (size_t)(o - j->out);
                }
            }
            if (status) {
                return status;
            }
            p = fp_jr_ws(p, e);
            if (p >= e || *p != ',') {
                break;
            }
            *o++ = ',';
            p = fp_jr_ws(p + 1, e);
        }
        *o++ = '}';
        p++;
        for (size_t k = 0; k < j->nvalues; k++) {
            fp_jr_span *v = &vals[k];
            if (j->values[k].n == 0) {
                v->start = j->olen;
                v->end = (size_t)(o - j->out);
            } else if (v->end > v->start && j->values[k].n > 1) {
                fp_jr_span found = {0, 0};
                status = fp_jr_locate(j, j->out + v->start, j->out + v->end, &j->values[k], 1, &found);
                *v = found;
                if (status) {
                    return status;
                }
            }
        }
    } else {
        o = fp_jr_copy(&p, e, o, &status);
        for (size_t k = 0; !status && k < j->nvalues; k++) {
            status = fp_jr_locate(j, j->out + j->olen, o, &j->values[k], 0, &vals[k]);
        }
        if (status) {
            return status;
        }
    }
    j->records[r].start = j->olen;
    j->records[r].end = (size_t)(o - j->out);
    j->olen = (size_t)(o - j->out);
    *pp = p;
    return FP_JR_OK;
}

/* Runs without the GIL: touches only the job. */
static int fp_jr_scan(fp_jr_job *j) {
    yyjson_doc *checked = yyjson_read_opts((char *)j->doc, j->len, FP_JSON_READ_FLAGS, NULL, NULL);
    int rewritten = 0;
    if (!checked && j->len <= UINT32_MAX) { /* valid JSON but for a lone surrogate escape (copied as it is)? */
        checked = fp_json_read_escaping_surrogates(j->doc, (uint32_t)j->len);
        rewritten = 1;
    }
    int status = checked ? fp_jr_check_path(yyjson_doc_get_root(checked), &j->at, rewritten) : FP_JR_FALLBACK;
    if (checked) {
        yyjson_doc_free(checked);
    }
    if (status) {
        return status; /* not JSON to yyjson (a lone surrogate escape too), or no array there: Python says */
    }
    j->out = (uint8_t *)malloc(j->len ? j->len : 1);
    if (!j->out) {
        return FP_JR_NOMEM;
    }
    const uint8_t *e = j->doc + j->len;
    const uint8_t *p = fp_jr_find(fp_jr_ws(j->doc, e), e, j->at.toks, j->at.n, 1, &status);
    if (status || !p || *p != '[') {
        return FP_JR_FALLBACK;
    }
    p = fp_jr_ws(p + 1, e);
    while (p < e && *p != ']') {
        status = fp_jr_record(j, &p, e);
        if (status) {
            return status;
        }
        p = fp_jr_ws(p, e);
        if (p < e && *p == ',') {
            p = fp_jr_ws(p + 1, e);
        }
    }
    return FP_JR_OK;
}

/* The value at [s, s+n) as json.loads gives it (None when missing). */
static PyObject *fp_jr_value(const uint8_t *s, size_t n, PyObject *decode) {
    if (n == 0 || s[0] == 'n') {
        Py_RETURN_NONE;
    }
    if (s[0] == 't') {
        Py_RETURN_TRUE;
    }
    if (s[0] == 'f') {
        Py_RETURN_FALSE;
    }
    if (s[0] == '"' && !memchr(s, '\\', n)) {
        return PyUnicode_DecodeUTF8((const char *)s + 1, (Py_ssize_t)n - 2, "strict");
    }
    if ((s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) && n < 64) {
        char buf[64];
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (!memchr(s, '.', n) && !memchr(s, 'e', n) && !memchr(s, 'E', n)) {
            return PyLong_FromString(buf, NULL, 10);
        }
        double d = PyOS_string_to_double(buf, NULL, NULL);
        return d == -1.0 && PyErr_Occurred() ? NULL : PyFloat_FromDouble(d);
    }
    /* escaped strings, objects, arrays, long numbers: what json.loads makes of them */
    PyObject *text = PyBytes_FromStringAndSize((const char *)s, (Py_ssize_t)n);
    if (!text) {
        return NULL;
    }
    PyObject *v = PyObject_CallOneArg(decode, text);
    Py_DECREF(text);
    return v;
}

/* Tokens of a pointer from a tuple of bytes (references held by the caller's arguments). */
static int fp_jr_tokens(PyObject *tuple, fp_jr_ptr *out) {
    if (!PyTuple_Check(tuple)) {
        PyErr_SetString(PyExc_TypeError, "json_records: a pointer must be a tuple of bytes tokens");
        return -1;
    }
    out->n = (size_t)PyTuple_GET_SIZE(tuple);
    out->toks = (fp_jr_tok *)calloc(out->n ? out->n : 1, sizeof *out->toks);
    if (!out->toks) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t k = 0; k < out->n; k++) {
        PyObject *t = PyTuple_GET_ITEM(tuple, (Py_ssize_t)k);
        if (!PyBytes_Check(t)) {
            PyErr_SetString(PyExc_TypeError, "json_records: a pointer token must be bytes");
            return -1;
        }
        out->toks[k].s = PyBytes_AS_STRING(t);
        out->toks[k].n = (size_t)PyBytes_GET_SIZE(t);
    }
    return 0;
}

static void fp_jr_job_free(fp_jr_job *j) {
    free(j->at.toks);
    for (size_t k = 0; j->values && k < j->nvalues; k++) {
        free(j->values[k].toks);
    }
    free(j->values);
    free(j->out);
    free(j->records);
    free(j->vals);
}

static PyObject *fp_jr_results(fp_jr_job *j, PyObject *decode) {
    PyObject *list = PyList_New((Py_ssize_t)j->nrecords);
    for (size_t r = 0; list && r < j->nrecords; r++) {
        const fp_jr_span *span = &j->records[r];
        PyObject *raw = PyBytes_FromStringAndSize((const char *)j->out + span->start,
                                                  (Py_ssize_t)(span->end - span->start));
        PyObject *vals = raw ? PyTuple_New((Py_ssize_t)j->nvalues) : NULL;
        for (size_t k = 0; vals && k < j->nvalues; k++) {
            const fp_jr_span *v = &j->vals[r * j->nvalues + k];
            PyObject *value = fp_jr_value(j->out + v->start, v->end - v->start, decode);
            if (!value) {
                Py_CLEAR(vals);
                break;
            }
            PyTuple_SET_ITEM(vals, (Py_ssize_t)k, value);
        }
        PyObject *pair = vals ? PyTuple_Pack(2, raw, vals) : NULL;
        Py_XDECREF(raw);
        Py_XDECREF(vals);
        if (!pair) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)r, pair);
    }
    return list;
}

/* json_split(document: bytes, at: tuple[bytes], values: tuple[tuple[bytes]], decode) -> list | None */
static PyObject *fp_jr_split(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyTuple_Check(args[2]) || !PyCallable_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "json_records: expected (bytes, tuple, tuple, callable)");
        return NULL;
    }
    fp_jr_job j;
    memset(&j, 0, sizeof j);
    j.doc = (const uint8_t *)PyBytes_AS_STRING(args[0]);
    j.len = (size_t)PyBytes_GET_SIZE(args[0]);
    j.nvalues = (size_t)PyTuple_GET_SIZE(args[2]);
    j.values = (fp_jr_ptr *)calloc(j.nvalues ? j.nvalues : 1, sizeof *j.values);
    PyObject *result = NULL;
    if (!j.values) {
        PyErr_NoMemory();
        goto out;
    }
    if (fp_jr_tokens(args[1], &j.at) != 0) {
        goto out;
    }
    for (size_t k = 0; k < j.nvalues; k++) {
        if (fp_jr_tokens(PyTuple_GET_ITEM(args[2], (Py_ssize_t)k), &j.values[k]) != 0) {
            goto out;
        }
    }
    int status;
    /* The bytes object and the token tuples stay referenced by args: safe to read without the GIL. */
    PyThreadState *saved = PyEval_SaveThread();
    status = fp_jr_scan(&j);
    PyEval_RestoreThread(saved);
    if (status == FP_JR_NOMEM) {
        PyErr_NoMemory();
    } else if (status == FP_JR_FALLBACK) {
        result = Py_NewRef(Py_None);
    } else {
        result = fp_jr_results(&j, args[3]);
    }
out:
    fp_jr_job_free(&j);
    return result;
}

static PyMethodDef fp_jr_split_def = {"json_split", (PyCFunction)(void (*)(void))fp_jr_split, METH_FASTCALL,
                                      "Split JSON records in C (see falco_plugin.jsonrecords)."};

/* Offer the C splitter to falco_plugin.json_records (as falco_plugin._internal.json_split, which
 * every library has imported already) unless a library got there first (GIL held). A runtime
 * without the hook (an older SDK's) is left alone: it splits in Python. */
static int fp_jr_install(void) {
    PyObject *mod = PyImport_ImportModule("falco_plugin._internal");
    if (!mod) {
        PyErr_Clear();
        return 0;
    }
    int rc = 0;
    PyObject *current = PyObject_GetAttrString(mod, "json_split");
    if (!current) {
        PyErr_Clear();
    } else if (current == Py_None) {
        PyObject *fn = PyCFunction_New(&fp_jr_split_def, NULL);
        rc = fn ? PyObject_SetAttrString(mod, "json_split", fn) : -1;
        Py_XDECREF(fn);
    }
    Py_XDECREF(current);
    Py_DECREF(mod);
    return rc;
}
