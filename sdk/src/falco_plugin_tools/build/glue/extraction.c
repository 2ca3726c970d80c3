/*
 * Field extraction: get_fields is a C constant; extract_fields calls the
 * bound extractor of each requested field directly (vectorcall) with the
 * shared Event, and converts the result in C into typed arrays owned by the
 * state, valid until the next extract_fields call on it.
 */

enum { FP_ARG_NONE = 0, FP_ARG_INDEX = 1, FP_ARG_KEY = 2 };

typedef struct {
    const char *name;
    uint32_t type;
    int is_list;
    int arg;
    int arg_required;
} fp_field_info;

static const fp_field_info fp_fields[] = {FP_FIELD_ROWS};

#ifdef FP_HAS_JSON_FIELDS
/* Fields by JSON pointer, answered in C without the GIL (json_fields.c). */
static int fp_json_is(fp_state *st, uint32_t field_id);
static void fp_json_begin(fp_state *st);
static int fp_json_extract(fp_state *st, const ss_plugin_event_input *evt, ss_plugin_extract_field *f,
                           size_t *first);
static void fp_json_finish(fp_state *st, ss_plugin_extract_field *f, size_t first);
#define FP_IS_JSON(st, id) fp_json_is(st, id)
#else
#define FP_IS_JSON(st, id) 0
#endif

/* How the glue calls one field's extractor: the function under the bound method with the plugin
 * prepended (no bound-method hop), through its vectorcall slot directly (PyObject_Vectorcall's
 * result check only catches misbehaving C callables; fp_extract_one keeps the part that matters). */
typedef struct {
    PyObject *fn;      /* borrowed from `fields` */
    PyObject *self;    /* the bound method's self (borrowed), or NULL: fn is called as it is */
    vectorcallfunc vc; /* fn's vectorcall, or NULL: PyObject_Vectorcall */
} fp_caller;

struct fp_extraction_state {
    PyObject *fields; /* tuple of bound extractor methods, by field id */
    fp_caller *callers; /* by field id */
    PyObject **keep;  /* references backing the values returned by the last call */
    size_t nkeep, capkeep;
    uint64_t *u64;
    size_t capu64;
    ss_plugin_bool *b32;
    size_t capb32;
    const char **str;
    size_t capstr;
    ss_plugin_byte_buffer *buf;
    size_t capbuf;
    uint32_t *off_start, *off_len;
    size_t cap_off_start, cap_off_len;
};

static int fp_extraction_attach(fp_state *st) {
    struct fp_extraction_state *x = (struct fp_extraction_state *)calloc(1, sizeof *x);
    if (!x) {
        PyErr_NoMemory();
        return -1;
    }
    st->extraction = x;
    x->fields = PyObject_GetAttrString(st->py, "fields");
    if (x->fields && !PyTuple_Check(x->fields)) {
        PyErr_SetString(PyExc_TypeError, "State.fields must be a tuple");
        Py_CLEAR(x->fields);
    }
    if (!x->fields) {
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(x->fields);
    x->callers = (fp_caller *)calloc(n ? (size_t)n : 1u, sizeof *x->callers);
    if (!x->callers) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PyTuple_GET_ITEM(x->fields, i);
        fp_caller *c = &x->callers[i];
        /* The tuple keeps the bound method alive, and the method its function and self. */
        c->fn = PyMethod_Check(m) ? PyMethod_GET_FUNCTION(m) : m;
        c->self = PyMethod_Check(m) ? PyMethod_GET_SELF(m) : NULL;
        c->vc = PyVectorcall_Function(c->fn);
    }
    return 0;
}

static void fp_release_values(struct fp_extraction_state *st) {
    for (size_t i = 0; i < st->nkeep; i++) {
        Py_DECREF(st->keep[i]);
    }
    st->nkeep = 0;
}

static void fp_extraction_release(fp_state *st) {
    struct fp_extraction_state *x = st->extraction;
    if (!x) {
        return;
    }
    fp_release_values(x);
    Py_CLEAR(x->fields);
    free(x->callers);
    free(x->keep);
    free(x->u64);
    free(x->b32);
    free(x->str);
    free(x->buf);
    free(x->off_start);
    free(x->off_len);
    free(x);
    st->extraction = NULL;
}

FP_EXPORT const char *plugin_get_fields(void) { return FP_FIELDS_JSON; }

#ifdef FP_EXTRACT_SOURCES_JSON
FP_EXPORT const char *plugin_get_extract_event_sources(void) { return FP_EXTRACT_SOURCES_JSON; }
#endif

#ifdef FP_EXTRACT_TYPES
static uint16_t fp_extract_types[] = {FP_EXTRACT_TYPES};
FP_EXPORT uint16_t *plugin_get_extract_event_types(uint32_t *numtypes, ss_plugin_t *s) {
    (void)s;
    *numtypes = (uint32_t)(sizeof fp_extract_types / sizeof fp_extract_types[0]);
    return fp_extract_types;
}
#endif

static int fp_keep(struct fp_extraction_state *st, PyObject *o) {
    if (fp_grow((void **)&st->keep, &st->capkeep, st->nkeep + 1, sizeof(PyObject *))) {
        PyErr_NoMemory();
        return -1;
    }
    Py_INCREF(o);
    st->keep[st->nkeep++] = o;
    return 0;
}

/* Bytes returned for a string field must be text, as a str would be: -1 with
 * a ValueError naming the first bad byte. ASCII (the common case) is one pass
 * in C; anything else is checked by Python's strict UTF-8 decoder. */
static int fp_check_utf8(const char *c, Py_ssize_t len) {
    unsigned char high = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        high |= (unsigned char)c[i];
    }
    if (high < 0x80) {
        return 0;
    }
    PyObject *text = PyUnicode_DecodeUTF8(c, len, "strict");
    if (text) {
        Py_DECREF(text);
        return 0;
    }
    Py_ssize_t at = 0;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && PyObject_TypeCheck(value, (PyTypeObject *)PyExc_UnicodeDecodeError)) {
        PyUnicodeDecodeError_GetStart(value, &at);
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Format(PyExc_ValueError,
                 "the value is not valid UTF-8 (byte 0x%02x at offset %zd), which a Falco string field must be "
                 "(return a str, or decode the bytes with errors=\"replace\")",
                 (unsigned)(unsigned char)c[at < len ? at : 0], at);
    return -1;
}

/* Store one value of a field; *slot is the index of the value in its typed array. */
static int fp_store(struct fp_extraction_state *st, const fp_field_info *fi, PyObject *v, size_t slot) {
    switch (fi->type) {
    case FTYPE_UINT64:
    case FTYPE_RELTIME:
    case FTYPE_ABSTIME: {
        if (fp_grow((void **)&st->u64, &st->capu64, slot + 1, sizeof(uint64_t))) {
            PyErr_NoMemory();
            return -1;
        }
        unsigned long long x = PyLong_AsUnsignedLongLong(v);
        if (x == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "expected an int between 0 and 2**64-1, got %R", v);
            return -1;
        }
        st->u64[slot] = x;
        return 0;
    }
    case FTYPE_BOOL: {
        if (fp_grow((void **)&st->b32, &st->capb32, slot + 1, sizeof(ss_plugin_bool))) {
            PyErr_NoMemory();
            return -1;
        }
        int t = PyObject_IsTrue(v);
        if (t < 0) {
            return -1;
        }
        st->b32[slot] = (ss_plugin_bool)t;
        return 0;
    }
    case FTYPE_STRING: {
        if (fp_grow((void **)&st->str, &st->capstr, slot + 1, sizeof(const char *))) {
            PyErr_NoMemory();
            return -1;
        }
        const char *c;
        Py_ssize_t len;
        if (PyUnicode_Check(v)) {
            c = PyUnicode_AsUTF8AndSize(v, &len); /* cached in the str object, which we keep */
            if (!c) {
                return -1;
            }
        } else if (PyBytes_Check(v)) {
            c = PyBytes_AS_STRING(v);
            len = PyBytes_GET_SIZE(v);
            if (fp_check_utf8(c, len) != 0) {
                return -1;
            }
        } else {
            PyErr_Format(PyExc_TypeError, "expected str, got %s", Py_TYPE(v)->tp_name);
            return -1;
        }
        /* The host reads a C string: a NUL inside would silently cut the value
         * into something the plugin did not return. */
        const char *nul = memchr(c, '\0', (size_t)len);
        if (nul) {
            PyErr_Format(PyExc_ValueError,
                         "the value contains a NUL character at offset %zd, which a Falco string field cannot carry "
                         "(escape or strip it in the plugin)",
                         (Py_ssize_t)(nul - c));
            return -1;
        }
        st->str[slot] = c;
        return fp_keep(st, v);
    }
    case FTYPE_IPADDR:
    case FTYPE_IPNET: {
        if (fp_grow((void **)&st->buf, &st->capbuf, slot + 1, sizeof(ss_plugin_byte_buffer))) {
            PyErr_NoMemory();
            return -1;
        }
        PyObject *packed;
        if (PyBytes_Check(v)) {
            packed = Py_NewRef(v);
        } else {
            PyObject *addr = fi->type == FTYPE_IPNET ? PyObject_GetAttrString(v, "network_address") : Py_NewRef(v);
            packed = addr ? PyObject_GetAttrString(addr, "packed") : NULL;
            Py_XDECREF(addr);
            if (!packed) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "expected an ipaddress object or packed bytes, got %s",
                             Py_TYPE(v)->tp_name);
                return -1;
            }
        }
        if (!PyBytes_Check(packed) || (PyBytes_GET_SIZE(packed) != 4 && PyBytes_GET_SIZE(packed) != 16)) {
            Py_DECREF(packed);
            PyErr_SetString(PyExc_ValueError, "an IP value must be 4 or 16 bytes");
            return -1;
        }
        st->buf[slot].len = (uint32_t)PyBytes_GET_SIZE(packed);
        st->buf[slot].ptr = PyBytes_AS_STRING(packed);
        int rc = fp_keep(st, packed);
        Py_DECREF(packed);
        return rc;
    }
    default:
        PyErr_Format(PyExc_TypeError, "unsupported field type %u", fi->type);
        return -1;
    }
}

/* Counters of the typed value arrays used by one extract call. */
typedef struct {
    size_t u64, b32, str, buf;
} fp_slots;

static size_t *fp_slot_for(fp_slots *n, uint32_t type) {
    switch (type) {
    case FTYPE_BOOL:
        return &n->b32;
    case FTYPE_STRING:
        return &n->str;
    case FTYPE_IPADDR:
    case FTYPE_IPNET:
        return &n->buf;
    default:
        return &n->u64;
    }
}

/* Extract one field of the current event into f; returns -1 with a Python error set. */
static int fp_extract_one(fp_state *state, ss_plugin_extract_field *f, fp_slots *n, size_t *first,
                          uint32_t *off_start, uint32_t *off_len) {
    struct fp_extraction_state *st = state->extraction;
    const fp_field_info *fi = &fp_fields[f->field_id];
    const fp_caller *c = &st->callers[f->field_id];
    /* args[0]: scratch for PY_VECTORCALL_ARGUMENTS_OFFSET; [1]: self, [2]: the event, [3]: the argument */
    PyObject *args[4] = {NULL, c->self, state->event, NULL};
    size_t nargs = 1;
    if (f->arg_present) {
        if (fi->arg == FP_ARG_INDEX) {
            args[3] = PyLong_FromUnsignedLongLong(f->arg_index);
        } else if (fi->arg == FP_ARG_KEY) {
            args[3] = f->arg_key ? PyUnicode_DecodeUTF8(f->arg_key, strlen(f->arg_key), "replace") : NULL;
            if (!f->arg_key) {
                PyErr_SetString(PyExc_ValueError, "the host passed no key argument");
            }
        } else {
            PyErr_SetString(PyExc_ValueError, "this field takes no argument");
        }
        if (!args[3]) {
            return -1;
        }
        nargs = 2;
    } else if (fi->arg_required) {
        PyErr_Format(PyExc_ValueError, "this field requires an argument: %s[%s]", fi->name,
                     fi->arg == FP_ARG_INDEX ? "<index>" : "<key>");
        return -1;
    }
    PyObject **argv = c->self ? args + 1 : args + 2;
    nargs += c->self ? 1 : 0;
    PyObject *r = c->vc ? c->vc(c->fn, argv, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
                        : PyObject_Vectorcall(c->fn, argv, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_XDECREF(args[3]);
    if (!r) {
        if (!PyErr_Occurred()) { /* what PyObject_Vectorcall's check would say of a broken C callable */
            PyErr_SetString(PyExc_SystemError, "a field extractor returned NULL without setting an exception");
        }
        return -1;
    }
    *off_start = 0;
    *off_len = 0;
    if (Py_TYPE(r) == (PyTypeObject *)fp_located) {
        PyObject *value = PyTuple_GET_ITEM(r, 0);
        unsigned long start = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(r, 1));
        unsigned long length = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(r, 2));
        if (PyErr_Occurred()) {
            Py_DECREF(r);
            return -1;
        }
        *off_start = (uint32_t)(FP_PAYLOAD_OFFSET + start);
        *off_len = (uint32_t)length;
        Py_INCREF(value);
        Py_SETREF(r, value);
    }
    size_t *slot = fp_slot_for(n, fi->type);
    *first = *slot;
    int rc = 0;
    if (r == Py_None) {
        f->res_len = 0;
    } else if (fi->is_list) {
        PyObject *seq = PySequence_Fast(r, "a list field must return a sequence");
        if (!seq) {
            rc = -1;
        } else {
            Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
            for (Py_ssize_t j = 0; j < k && rc == 0; j++) {
                rc = fp_store(st, fi, PySequence_Fast_GET_ITEM(seq, j), (*slot)++);
            }
            f->res_len = (uint64_t)k;
            if (rc == 0) {
                rc = fp_keep(st, seq); /* strings inside stay alive with it */
            }
            Py_DECREF(seq);
        }
    } else {
        rc = fp_store(st, fi, r, (*slot)++);
        f->res_len = 1;
    }
    Py_DECREF(r);
    return rc;
}

FP_EXPORT ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *evt,
                                             const ss_plugin_field_extract_input *in) {
    fp_state *st = (fp_state *)s;
    if (!st->py) {
        fp_set_error(st, "extract_fields: the plugin is not initialised");
        return SS_PLUGIN_FAILURE;
    }
    uint32_t nf = in->num_fields;
    for (uint32_t i = 0; i < nf; i++) {
        if (in->fields[i].field_id >= FP_NFIELDS) {
            fp_set_error(st, "extract_fields: unknown field id %u", (unsigned)in->fields[i].field_id);
            return SS_PLUGIN_FAILURE;
        }
    }
    struct fp_extraction_state *x = st->extraction;
    if (fp_grow((void **)&x->off_start, &x->cap_off_start, nf, sizeof(uint32_t)) ||
        fp_grow((void **)&x->off_len, &x->cap_off_len, nf, sizeof(uint32_t))) {
        fp_set_error(st, "extract_fields: out of memory");
        return SS_PLUGIN_FAILURE;
    }
    size_t firsts[16];
    size_t *first = nf <= 16 ? firsts : (size_t *)malloc(nf * sizeof(size_t));
    if (!first) {
        fp_set_error(st, "extract_fields: out of memory");
        return SS_PLUGIN_FAILURE;
    }
    ss_plugin_rc rc = SS_PLUGIN_SUCCESS;
#ifdef FP_HAS_JSON_FIELDS
    /* The JSON fields first, without the GIL; it is taken only if Python fields remain. */
    int python_fields = 0;
    fp_json_begin(st);
    for (uint32_t i = 0; i < nf; i++) {
        ss_plugin_extract_field *f = &in->fields[i];
        if (!fp_json_is(st, f->field_id)) {
            python_fields = 1;
            continue;
        }
        x->off_start[i] = 0;
        x->off_len[i] = 0;
        if (fp_json_extract(st, evt, f, &first[i]) != 0) {
            rc = SS_PLUGIN_FAILURE;
            break;
        }
    }
    if (rc == SS_PLUGIN_SUCCESS) {
        for (uint32_t i = 0; i < nf; i++) {
            if (fp_json_is(st, in->fields[i].field_id)) {
                fp_json_finish(st, &in->fields[i], first[i]);
            }
        }
    }
    if (rc != SS_PLUGIN_SUCCESS || !python_fields) {
#if FP_API_MINOR >= 12 /* value offsets */
        if (rc == SS_PLUGIN_SUCCESS && in->value_offsets) {
            in->value_offsets->start = x->off_start;
            in->value_offsets->length = x->off_len;
        }
#endif
        if (first != firsts) {
            free(first);
        }
        return rc;
    }
#endif
    fp_gil g = fp_gil_enter();
    /* fields may read state tables; extraction gives no writer */
    FP_TABLES_CALL("extract_fields", in->owner, in->get_owner_last_error, in->table_reader_ext, NULL);
    fp_release_values(x);
    if (fp_use_event(st, evt) != 0) {
        fp_fail(st, "extract_fields");
        rc = SS_PLUGIN_FAILURE;
        goto out;
    }
    fp_slots n = {0, 0, 0, 0};
    for (uint32_t i = 0; i < nf; i++) {
        ss_plugin_extract_field *f = &in->fields[i];
        if (FP_IS_JSON(st, f->field_id)) {
            continue;
        }
        f->res_len = 0;
        if (fp_extract_one(st, f, &n, &first[i], &x->off_start[i], &x->off_len[i]) != 0) {
            char ctx[256];
            const fp_field_info *fi = &fp_fields[f->field_id];
            if (f->arg_present && fi->arg == FP_ARG_INDEX) {
                snprintf(ctx, sizeof ctx, "extracting %s[%llu]", fi->name, (unsigned long long)f->arg_index);
            } else if (f->arg_present && f->arg_key) {
                snprintf(ctx, sizeof ctx, "extracting %s[%s]", fi->name, f->arg_key);
            } else {
                snprintf(ctx, sizeof ctx, "extracting %s", fi->name);
            }
            fp_fail(st, ctx);
            rc = SS_PLUGIN_FAILURE;
            break;
        }
    }
    if (rc == SS_PLUGIN_SUCCESS) {
        /* The typed arrays may have moved while growing: point at them last. */
        for (uint32_t i = 0; i < nf; i++) {
            ss_plugin_extract_field *f = &in->fields[i];
            if (FP_IS_JSON(st, f->field_id)) {
                continue;
            }
            switch (fp_fields[f->field_id].type) {
            case FTYPE_BOOL:
                f->res.boolean = x->b32 + first[i];
                break;
            case FTYPE_STRING:
                f->res.str = x->str + first[i];
                break;
            case FTYPE_IPADDR:
            case FTYPE_IPNET:
                f->res.buf = x->buf + first[i];
                break;
            default:
                f->res.u64 = x->u64 + first[i];
            }
        }
#if FP_API_MINOR >= 12 /* value offsets */
        if (in->value_offsets) {
            in->value_offsets->start = x->off_start;
            in->value_offsets->length = x->off_len;
        }
#endif
    }
out:
    FP_TABLES_END();
    fp_gil_leave(g);
    if (first != firsts) {
        free(first);
    }
    return rc;
}
