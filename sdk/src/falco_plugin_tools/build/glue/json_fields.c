/*
 * Fields by JSON pointer (falco_plugin.json_field), answered in C without
 * the GIL. extraction.c hands each requested JSON field to fp_json_extract
 * before it takes the GIL for the others (and does not take it at all when
 * every requested field is a JSON field).
 *
 * The payload of an event is parsed once (yyjson, strict RFC 8259, UTF-8
 * validated, non-recursive so nesting depth cannot exhaust the stack) and
 * the document is kept until another event comes, shared by all JSON fields
 * of the event and across extract_fields calls on it. The values handed to
 * the host point into that document, or into strings this file made (JSON
 * text of non-string values), freed at the next extract_fields call.
 *
 * Conversion rules (documented in falco_plugin/jsonfields.py, one place for
 * every host since every host runs this code):
 *   string:  a string as is; any other value but null as compact JSON text
 *            (numbers as spelled in the payload)
 *   uint64:  an integer in 0..2**64-1 (digits only); anything else: no value
 *   bool:    true/false; anything else: no value
 *   list:    an array's elements by the string rule, nulls left out;
 *            another value: a list of that one value
 *   missing key, index past the end, null: no value.
 *   a lone surrogate escape in a string: its six characters as text.
 */

/* yyjson's functions stay inside the library (the version script hides them
 * too); its non-standard extensions (comments, NaN, ...) are not compiled. */
#define yyjson_api __attribute__((visibility("hidden")))
#define YYJSON_DISABLE_NON_STANDARD 1
#define YYJSON_DISABLE_INCR_READER 1
#include "yyjson.c"

enum { FP_JSON_STRING = 0, FP_JSON_UINT64 = 1, FP_JSON_BOOL = 2, FP_JSON_STRING_LIST = 3 };

typedef struct {
    uint32_t field_id;
    int mode;
    const char *base;    /* pointer to the part of the payload the field reads */
    const char *pointer; /* relative to base */
    int pointer_is_arg;  /* the field's key argument is the pointer */
} fp_json_field;

static const fp_json_field fp_json_fields[] = {FP_JSON_FIELD_ROWS};

struct fp_json_fields_state {
    int16_t row_of[FP_NFIELDS]; /* field id -> index in fp_json_fields, -1 for Python fields */
    /* the event whose payload `doc` is (or failed to be) */
    int have_evt;
    uint64_t evtnum;
    const void *evtptr;
    uint32_t evtlen;
    yyjson_doc *doc; /* NULL: no payload, or parse_error says why */
    yyjson_alc *alc; /* keeps the memory of one event's document for the next: no malloc per event */
    char parse_error[200];
    /* values of the current extract_fields call */
    uint64_t *u64;
    size_t capu64, nu64;
    ss_plugin_bool *b32;
    size_t capb32, nb32;
    const char **str;
    size_t capstr, nstr;
    char **made; /* JSON texts written for this call */
    size_t capmade, nmade;
};

static int fp_jr_install(void);

static int fp_json_fields_attach(fp_state *st) {
    struct fp_json_fields_state *j = (struct fp_json_fields_state *)calloc(1, sizeof *j);
    if (!j) {
        PyErr_NoMemory();
        return -1;
    }
    j->alc = yyjson_alc_dyn_new();
    if (!j->alc) {
        free(j);
        PyErr_NoMemory();
        return -1;
    }
    for (uint32_t i = 0; i < FP_NFIELDS; i++) {
        j->row_of[i] = -1;
    }
    for (uint32_t r = 0; r < FP_NJSON_FIELDS; r++) {
        j->row_of[fp_json_fields[r].field_id] = (int16_t)r;
    }
    st->json_fields = j;
    return fp_jr_install(); /* the parser is here: json_records may use it too */
}

static void fp_json_free_made(struct fp_json_fields_state *j) {
    for (size_t i = 0; i < j->nmade; i++) {
        free(j->made[i]);
    }
    j->nmade = 0;
}

static void fp_json_fields_release(fp_state *st) {
    struct fp_json_fields_state *j = st->json_fields;
    if (!j) {
        return;
    }
    fp_json_free_made(j);
    if (j->doc) {
        yyjson_doc_free(j->doc);
    }
    yyjson_alc_dyn_free(j->alc);
    free(j->u64);
    free(j->b32);
    free(j->str);
    free(j->made);
    free(j);
    st->json_fields = NULL;
}

static int fp_json_is(fp_state *st, uint32_t field_id) { return st->json_fields->row_of[field_id] >= 0; }

/* Start of an extract_fields call: the previous call's values are no longer needed. */
static void fp_json_begin(fp_state *st) {
    struct fp_json_fields_state *j = st->json_fields;
    fp_json_free_made(j);
    j->nu64 = j->nb32 = j->nstr = 0;
}

/* Numbers are kept as spelled in the payload: written back as they came (no float
 * reformatting, integers of any size exact) and never out of range. */
#define FP_JSON_READ_FLAGS YYJSON_READ_NUMBER_AS_RAW

static int fp_json_hex4(const uint8_t *p, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned)(c - '0');
        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            v |= (unsigned)((c | 0x20) - 'a' + 10);
        } else {
            return 0;
        }
    }
    *out = v;
    return 1;
}

/* A JSON string may escape a lone UTF-16 surrogate ("\ud800"): valid JSON grammar, but no
 * UTF-8 text holds it, and yyjson refuses it. Such a payload is read again with each lone
 * surrogate escape written as an escaped backslash, so that the string holds the escape's six
 * characters as text, as the escape came (the rule of falco_plugin/jsonfields.py). NULL when
 * the payload has no such escape or is not JSON for another reason. */
static yyjson_doc *fp_json_read_escaping_surrogates(const uint8_t *d, uint32_t n) {
    if (!memmem(d, n, "\\u", 2)) {
        return NULL;
    }
    uint8_t *out = (uint8_t *)malloc((size_t)n + n / 6 + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0, changed = 0;
    int in_str = 0;
    for (uint32_t i = 0; i < n;) {
        uint8_t c = d[i];
        if (c == '"') {
            in_str = !in_str;
        } else if (in_str && c == '\\' && i + 1 < n) {
            unsigned u, lo;
            if (d[i + 1] == 'u' && i + 6 <= n && fp_json_hex4(d + i + 2, &u) && u >= 0xD800 && u <= 0xDFFF) {
                if (u <= 0xDBFF && i + 12 <= n && d[i + 6] == '\\' && d[i + 7] == 'u' && fp_json_hex4(d + i + 8, &lo) &&
                    lo >= 0xDC00 && lo <= 0xDFFF) {
                    memcpy(out + o, d + i, 12); /* a pair: one character */
                    o += 12;
                    i += 12;
                    continue;
                }
                out[o++] = '\\';
                memcpy(out + o, d + i, 6);
                o += 6;
                i += 6;
                changed++;
                continue;
            }
            memcpy(out + o, d + i, 2); /* any other escape, \\ and \" included */
            o += 2;
            i += 2;
            continue;
        }
        out[o++] = c;
        i++;
    }
    yyjson_doc *doc = changed ? yyjson_read_opts((char *)out, o, FP_JSON_READ_FLAGS, NULL, NULL) : NULL;
    free(out);
    return doc;
}

/* A raw number that is an integer in 0..2**64-1 (digits only, no sign, fraction or exponent). */
static int fp_json_raw_u64(yyjson_val *v, uint64_t *out) {
    const char *p = yyjson_get_raw(v);
    size_t len = yyjson_get_len(v);
    if (!p || len == 0 || len > 20) {
        return 0;
    }
    uint64_t x = 0;
    for (size_t k = 0; k < len; k++) {
        if (p[k] < '0' || p[k] > '9') {
            return 0;
        }
        uint64_t d = (uint64_t)(p[k] - '0');
        if (x > (UINT64_MAX - d) / 10) {
            return 0;
        }
        x = x * 10 + d;
    }
    *out = x;
    return 1;
}

/* The parsed payload of `evt` (parsing it if it is a new event); NULL with
 * *why set when it has none (*why NULL: not a plugin event, no value). */
static yyjson_doc *fp_json_doc(fp_state *st, const ss_plugin_event_input *evt, const char **why) {
    struct fp_json_fields_state *j = st->json_fields;
    *why = NULL;
    if (!evt || !evt->evt) {
        *why = "no event given";
        return NULL;
    }
    if (!(j->have_evt && j->evtnum == evt->evtnum && j->evtptr == (const void *)evt->evt &&
          j->evtlen == evt->evt->len)) {
        if (j->doc) {
            yyjson_doc_free(j->doc);
            j->doc = NULL;
        }
        j->parse_error[0] = '\0';
        j->have_evt = 1;
        j->evtnum = evt->evtnum;
        j->evtptr = (const void *)evt->evt;
        j->evtlen = evt->evt->len;
        const uint8_t *data = NULL;
        uint32_t len = 0;
        if (fp_payload(evt->evt, &data, &len) != 0) {
            snprintf(j->parse_error, sizeof j->parse_error, "the event is malformed (its lengths do not add up)");
        } else if (data) {
            yyjson_read_err err;
            j->doc = yyjson_read_opts((char *)data, len, FP_JSON_READ_FLAGS, j->alc, &err);
            if (!j->doc) {
                j->doc = fp_json_read_escaping_surrogates(data, len);
            }
            if (!j->doc) {
                snprintf(j->parse_error, sizeof j->parse_error,
                         "the event payload is not valid JSON: %s at byte %zu of %u", err.msg, err.pos,
                         (unsigned)len);
            }
        }
    }
    if (!j->doc && j->parse_error[0]) {
        *why = j->parse_error;
    }
    return j->doc;
}

static int fp_json_keep_made(struct fp_json_fields_state *j, char *text) {
    if (fp_grow((void **)&j->made, &j->capmade, j->nmade + 1, sizeof(char *))) {
        free(text);
        return -1;
    }
    j->made[j->nmade++] = text;
    return 0;
}

/* One value by the string rule into the next string slot; 1 stored, 0 none (null), -1 error. */
/* The field's name in messages, with its argument: "%s%s%s%s" (made only when a message is). */
#define FP_JSON_LABEL(f, arg) fp_fields[(f)->field_id].name, (arg) ? "[" : "", (arg) ? (arg) : "", (arg) ? "]" : ""

static int fp_json_store_string(fp_state *st, const ss_plugin_extract_field *f, const char *arg, yyjson_val *v) {
    struct fp_json_fields_state *j = st->json_fields;
    const char *s;
    if (yyjson_is_null(v)) {
        return 0;
    }
    if (yyjson_is_str(v)) {
        s = yyjson_get_str(v);
        size_t len = yyjson_get_len(v);
        if (strlen(s) != len) {
            fp_set_error(st,
                         "extracting %s%s%s%s: the JSON string holds a NUL character (\\u0000) at offset %zu, which "
                         "a Falco string field cannot carry",
                         FP_JSON_LABEL(f, arg), strlen(s));
            return -1;
        }
    } else {
        size_t len = 0;
        char *text = yyjson_val_write(v, YYJSON_WRITE_NOFLAG, &len);
        if (!text || fp_json_keep_made(j, text) != 0) {
            fp_set_error(st, "extracting %s%s%s%s: out of memory writing the JSON value", FP_JSON_LABEL(f, arg));
            return -1;
        }
        s = text;
    }
    if (fp_grow((void **)&j->str, &j->capstr, j->nstr + 1, sizeof(const char *))) {
        fp_set_error(st, "extracting %s%s%s%s: out of memory", FP_JSON_LABEL(f, arg));
        return -1;
    }
    j->str[j->nstr++] = s;
    return 1;
}

/* NULL when `p` is an RFC 6901 pointer, else why not (checked before the document is read, so that
 * a bad argument is an error whatever the event holds). */
static const char *fp_json_pointer_error(const char *p) {
    if (p[0] && p[0] != '/') {
        return "it must be empty or start with '/'";
    }
    for (const char *c = p; *c; c++) {
        if (*c == '~' && c[1] != '0' && c[1] != '1') {
            return "'~' must be followed by 0 or 1";
        }
    }
    return NULL;
}

/* Answer JSON field f of event evt; *first is the index of its first value in
 * its typed array (fp_json_finish points f at it). -1 with the error set. */
static int fp_json_extract(fp_state *st, const ss_plugin_event_input *evt, ss_plugin_extract_field *f,
                           size_t *first) {
    struct fp_json_fields_state *j = st->json_fields;
    const fp_json_field *jf = &fp_json_fields[j->row_of[f->field_id]];
    const char *name = fp_fields[f->field_id].name;
    const char *arg = NULL; /* the pointer argument, once known */
    f->res_len = 0;
    *first = jf->mode == FP_JSON_UINT64 ? j->nu64 : jf->mode == FP_JSON_BOOL ? j->nb32 : j->nstr;
    const char *pointer = jf->pointer;
    if (jf->pointer_is_arg) {
        if (!f->arg_present || !f->arg_key) {
            fp_set_error(st, "extracting %s: this field requires a JSON pointer argument: %s[/a/b]", name, name);
            return -1;
        }
        pointer = arg = f->arg_key;
        const char *bad = fp_json_pointer_error(pointer);
        if (bad) {
            fp_set_error(st, "extracting %s%s%s%s: invalid JSON pointer '%s': %s", FP_JSON_LABEL(f, arg), pointer,
                         bad);
            return -1;
        }
    } else if (f->arg_present) {
        fp_set_error(st, "extracting %s: this field takes no argument", name);
        return -1;
    }
    const char *why;
    yyjson_doc *doc = fp_json_doc(st, evt, &why);
    if (!doc) {
        if (why) {
            fp_set_error(st, "extracting %s%s%s%s: %s", FP_JSON_LABEL(f, arg), why);
            return -1;
        }
        return 0; /* not a plugin event: no value */
    }
    yyjson_val *v = yyjson_doc_get_root(doc);
    yyjson_ptr_err perr;
    if (jf->base[0]) {
        v = yyjson_ptr_getx(v, jf->base, strlen(jf->base), &perr);
        if (!v) {
            return 0; /* the base is checked when the plugin is built: only a missing part here */
        }
    }
    if (pointer[0]) {
        memset(&perr, 0, sizeof perr);
        v = yyjson_ptr_getx(v, pointer, strlen(pointer), &perr);
        if (!v) {
            if (perr.code == YYJSON_PTR_ERR_RESOLVE || perr.code == YYJSON_PTR_ERR_NULL_ROOT) {
                return 0; /* missing key, index past the end, or a path through a scalar */
            }
            fp_set_error(st, "extracting %s%s%s%s: invalid JSON pointer '%s': %s (at character %zu)", FP_JSON_LABEL(f, arg), pointer,
                         perr.msg ? perr.msg : "invalid", perr.pos);
            return -1;
        }
    }
    if (yyjson_is_null(v)) {
        return 0;
    }
    switch (jf->mode) {
    case FP_JSON_UINT64:
        uint64_t number;
        if (yyjson_is_raw(v) && fp_json_raw_u64(v, &number)) {
            if (fp_grow((void **)&j->u64, &j->capu64, j->nu64 + 1, sizeof(uint64_t))) {
                fp_set_error(st, "extracting %s%s%s%s: out of memory", FP_JSON_LABEL(f, arg));
                return -1;
            }
            j->u64[j->nu64++] = number;
            f->res_len = 1;
        }
        return 0;
    case FP_JSON_BOOL:
        if (yyjson_is_bool(v)) {
            if (fp_grow((void **)&j->b32, &j->capb32, j->nb32 + 1, sizeof(ss_plugin_bool))) {
                fp_set_error(st, "extracting %s%s%s%s: out of memory", FP_JSON_LABEL(f, arg));
                return -1;
            }
            j->b32[j->nb32++] = yyjson_get_bool(v) ? 1 : 0;
            f->res_len = 1;
        }
        return 0;
    case FP_JSON_STRING_LIST:
        if (yyjson_is_arr(v)) {
            size_t idx, max;
            yyjson_val *item;
            uint64_t n = 0;
            yyjson_arr_foreach(v, idx, max, item) {
                int r = fp_json_store_string(st, f, arg, item);
                if (r < 0) {
                    return -1;
                }
                n += (uint64_t)r;
            }
            f->res_len = n;
            return 0;
        }
        /* fall through: a lone value is a list of one */
    default: {
        int r = fp_json_store_string(st, f, arg, v);
        if (r < 0) {
            return -1;
        }
        f->res_len = (uint64_t)r;
        return 0;
    }
    }
}

/* After every JSON field of the call is answered (the arrays no longer move). */
static void fp_json_finish(fp_state *st, ss_plugin_extract_field *f, size_t first) {
    struct fp_json_fields_state *j = st->json_fields;
    switch (fp_json_fields[j->row_of[f->field_id]].mode) {
    case FP_JSON_UINT64:
        f->res.u64 = j->u64 ? j->u64 + first : NULL;
        break;
    case FP_JSON_BOOL:
        f->res.boolean = j->b32 ? j->b32 + first : NULL;
        break;
    default:
        f->res.str = j->str ? j->str + first : NULL;
    }
}

#include "json_records.c"
