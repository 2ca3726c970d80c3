/*
 * dummy_c_ref: the dummy plugin written directly in C, as the yardstick for
 * what the Python SDK costs on the hot paths.
 *
 * It behaves like plugins/dummy (dummy_py): every event carries a sample that
 * grows by 1 plus a random jitter (0..jitter), the payload is the sample in
 * decimal ASCII, and the fields decode it again. It is written the way an
 * efficient hand-made C plugin would be: events are built in a buffer the
 * instance owns (headers that never change are written once at open), numbers
 * are formatted and parsed without libc's generic routines, and the decoded
 * sample is cached per event number because hosts ask for one field per call.
 *
 * Only the plugin_* functions below are exported (-fvisibility=hidden plus
 * the FP_REF_EXPORT attribute).
 *
 *   cc -O2 -shared -fPIC -fvisibility=hidden -I sdk/src/falco_plugin_tools/build/glue \
 *      bench/reference/dummy.c -o libdummy_c_ref.so
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_abi.h"

#define FP_REF_EXPORT __attribute__((visibility("default")))

#define REF_ID 999u /* the id the plugin registry reserves for development */
#define REF_NAME "dummy_c_ref"
#define REF_SOURCE "dummy_c_ref"
#define REF_ERRLEN 1024

#define EVT_HEADER 26u        /* packed ss_plugin_event */
#define PLUGIN_EVENT 322u     /* type of events produced by source plugins */
#define PAYLOAD_OFFSET 38u    /* header, two u32 lengths, the u32 plugin id */
#define BATCH_MAX 128u
#define SLOT_SIZE 64u         /* 38 bytes of header + at most 20 digits, rounded up to keep 8-byte alignment */
#define MAX_DIGITS 20u        /* UINT64_MAX has 20 decimal digits */

#define DEFAULT_JITTER 10u
#define DEFAULT_START 1u
#define DEFAULT_MAX_EVENTS 20u

enum { FIELD_VALUE = 0, FIELD_STRVALUE = 1, FIELD_DIVISIBLE = 2, NUM_FIELDS = 3 };

typedef struct ref_state {
    uint64_t jitter;
    char err[REF_ERRLEN];
    char *to_string; /* backs the last event_to_string result */
    /* Extraction: the event whose sample is cached, and the values handed out. */
    int cached;
    uint64_t cached_evtnum;
    uint64_t sample;
    char sample_str[MAX_DIGITS + 1];
    uint64_t *u64_out; /* values handed out by the last extract_fields, by field position */
    const char **str_out;
    uint32_t cap_out;
    char progress_str[16];
} ref_state;

typedef struct ref_instance {
    uint64_t sample;
    uint64_t remaining;
    uint64_t total;
    uint64_t spread; /* jitter + 1 */
    uint8_t *arena;  /* BATCH_MAX slots of SLOT_SIZE bytes, valid until the next next_batch */
    ss_plugin_event *evts[BATCH_MAX];
} ref_instance;

__attribute__((format(printf, 2, 3))) static void set_error(ref_state *st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
}

/* Room for the values of n fields; one slot per requested field keeps indexing trivial. */
static int reserve_results(ref_state *st, uint32_t n) {
    if (n <= st->cap_out) {
        return 0;
    }
    uint64_t *u = (uint64_t *)realloc(st->u64_out, n * sizeof *u);
    if (u) {
        st->u64_out = u;
    }
    const char **c = (const char **)realloc(st->str_out, n * sizeof *c);
    if (c) {
        st->str_out = c;
    }
    if (!u || !c) {
        return -1;
    }
    st->cap_out = n;
    return 0;
}

/* ---- tiny JSON helpers: find one non-negative integer member --------------- */

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
        p++;
    }
    return p;
}

/* 1 if "key" is present (value in *out), 0 if absent, -1 if its value is not a non-negative integer. */
static int json_u64(const char *json, const char *key, uint64_t *out) {
    size_t klen = strlen(key);
    for (const char *p = json ? strchr(json, '"') : NULL; p; p = strchr(p + 1, '"')) {
        if (strncmp(p + 1, key, klen) != 0 || p[1 + klen] != '"') {
            continue;
        }
        const char *v = skip_ws(p + 2 + klen);
        if (*v != ':') {
            continue; /* the key text appeared as a value */
        }
        v = skip_ws(v + 1);
        if (*v < '0' || *v > '9') {
            return -1;
        }
        uint64_t x = 0;
        for (; *v >= '0' && *v <= '9'; v++) {
            uint64_t d = (uint64_t)(*v - '0');
            if (x > (UINT64_MAX - d) / 10) {
                return -1;
            }
            x = x * 10 + d;
        }
        v = skip_ws(v);
        if (*v != ',' && *v != '}') {
            return -1; /* a fraction, an exponent, or garbage */
        }
        *out = x;
        return 1;
    }
    return 0;
}

/* ---- decimal conversions ------------------------------------------------------ */

/* Write x in decimal at out (no terminator); returns the number of digits. */
static uint32_t format_u64(uint64_t x, char *out) {
    char tmp[MAX_DIGITS];
    uint32_t n = 0;
    do {
        tmp[MAX_DIGITS - 1 - n++] = (char)('0' + x % 10);
        x /= 10;
    } while (x);
    memcpy(out, tmp + MAX_DIGITS - n, n);
    return n;
}

static int parse_u64(const uint8_t *s, uint32_t len, uint64_t *out) {
    if (len == 0 || len > MAX_DIGITS) {
        return -1;
    }
    uint64_t x = 0;
    for (uint32_t i = 0; i < len; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (d > 9 || x > (UINT64_MAX - d) / 10) {
            return -1;
        }
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* ---- metadata ------------------------------------------------------------------ */

FP_REF_EXPORT const char *plugin_get_required_api_version(void) { return "3.0.0"; }
FP_REF_EXPORT const char *plugin_get_version(void) { return "0.1.0"; }
FP_REF_EXPORT const char *plugin_get_name(void) { return REF_NAME; }
FP_REF_EXPORT const char *plugin_get_description(void) {
    return "The dummy plugin written in C: the benchmark reference for dummy_py";
}
FP_REF_EXPORT const char *plugin_get_contact(void) { return "github.com/falcosecurity/plugins"; }
FP_REF_EXPORT uint32_t plugin_get_id(void) { return REF_ID; }
FP_REF_EXPORT const char *plugin_get_event_source(void) { return REF_SOURCE; }

FP_REF_EXPORT const char *plugin_get_init_schema(ss_plugin_schema_type *schema_type) {
    *schema_type = SS_PLUGIN_SCHEMA_JSON;
    return "{\"type\":\"object\",\"properties\":{\"jitter\":{\"type\":\"integer\",\"minimum\":0,\"default\":10,"
           "\"description\":\"A random amount (0 to jitter) added to the sample of each event\"}},"
           "\"additionalProperties\":false}";
}

FP_REF_EXPORT const char *plugin_get_fields(void) {
    return "["
           "{\"type\":\"uint64\",\"name\":\"dummy.value\",\"desc\":\"The sample value in the event\"},"
           "{\"type\":\"string\",\"name\":\"dummy.strvalue\",\"desc\":\"The sample value in the event, as a string\"},"
           "{\"type\":\"uint64\",\"name\":\"dummy.divisible\","
           "\"desc\":\"Return 1 if the value is divisible by the provided divisor, 0 otherwise\","
           "\"arg\":{\"isRequired\":true,\"isIndex\":true,\"isKey\":false}}"
           "]";
}

FP_REF_EXPORT const char *plugin_get_last_error(ss_plugin_t *s) { return s ? ((ref_state *)s)->err : ""; }

/* ---- lifetime ------------------------------------------------------------------ */

FP_REF_EXPORT ss_plugin_t *plugin_init(const ss_plugin_init_input *input, ss_plugin_rc *rc) {
    ref_state *st = (ref_state *)calloc(1, sizeof *st);
    if (!st) {
        *rc = SS_PLUGIN_FAILURE;
        return NULL;
    }
    st->jitter = DEFAULT_JITTER;
    const char *config = input ? input->config : NULL;
    if (config && (json_u64(config, "jitter", &st->jitter) < 0 || st->jitter == UINT64_MAX)) {
        set_error(st, "init: invalid init config: jitter: must be an integer >= 0");
        *rc = SS_PLUGIN_FAILURE;
        return st;
    }
    if (reserve_results(st, 1) != 0) {
        set_error(st, "init: out of memory");
        *rc = SS_PLUGIN_FAILURE;
        return st;
    }
    *rc = SS_PLUGIN_SUCCESS;
    return st;
}

FP_REF_EXPORT void plugin_destroy(ss_plugin_t *s) {
    ref_state *st = (ref_state *)s;
    if (st) {
        free(st->u64_out);
        free(st->str_out);
        free(st->to_string);
        free(st);
    }
}

/* ---- sourcing ------------------------------------------------------------------ */

FP_REF_EXPORT ss_instance_t *plugin_open(ss_plugin_t *s, const char *params, ss_plugin_rc *rc) {
    ref_state *st = (ref_state *)s;
    uint64_t start = DEFAULT_START, max_events = DEFAULT_MAX_EVENTS;
    *rc = SS_PLUGIN_FAILURE;
    if (json_u64(params, "start", &start) < 0) {
        set_error(st, "open: invalid open params: start: must be an integer >= 0");
        return NULL;
    }
    if (json_u64(params, "maxEvents", &max_events) < 0) {
        set_error(st, "open: invalid open params: maxEvents: must be an integer >= 0");
        return NULL;
    }
    ref_instance *in = (ref_instance *)calloc(1, sizeof *in);
    uint8_t *arena = (uint8_t *)aligned_alloc(8, (size_t)BATCH_MAX * SLOT_SIZE);
    if (!in || !arena) {
        free(in);
        free(arena);
        set_error(st, "open: out of memory");
        return NULL;
    }
    in->sample = start;
    in->remaining = in->total = max_events;
    in->spread = st->jitter + 1;
    in->arena = arena;
    /* What never changes from one event to the next is written once. */
    for (uint32_t i = 0; i < BATCH_MAX; i++) {
        uint8_t *p = arena + (size_t)i * SLOT_SIZE;
        ss_plugin_event hdr = {UINT64_MAX, UINT64_MAX, PAYLOAD_OFFSET, PLUGIN_EVENT, 2};
        uint32_t lens_and_id[3] = {4, 0, REF_ID};
        memcpy(p, &hdr, EVT_HEADER);
        memcpy(p + EVT_HEADER, lens_and_id, sizeof lens_and_id);
        in->evts[i] = (ss_plugin_event *)p;
    }
    *rc = SS_PLUGIN_SUCCESS;
    return in;
}

FP_REF_EXPORT void plugin_close(ss_plugin_t *s, ss_instance_t *h) {
    (void)s;
    ref_instance *in = (ref_instance *)h;
    if (in) {
        free(in->arena);
        free(in);
    }
}

FP_REF_EXPORT ss_plugin_rc plugin_next_batch(ss_plugin_t *s, ss_instance_t *h, uint32_t *nevts,
                                             ss_plugin_event ***evts) {
    (void)s;
    ref_instance *in = (ref_instance *)h;
    *nevts = 0;
    *evts = NULL;
    if (in->remaining == 0) {
        return SS_PLUGIN_EOF;
    }
    uint32_t n = in->remaining < BATCH_MAX ? (uint32_t)in->remaining : BATCH_MAX;
    uint64_t sample = in->sample, spread = in->spread;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *p = in->arena + (size_t)i * SLOT_SIZE;
        sample += 1 + (uint64_t)rand() % spread;
        uint32_t len = format_u64(sample, (char *)p + PAYLOAD_OFFSET);
        uint32_t total = PAYLOAD_OFFSET + len;
        memcpy(p + 16, &total, 4);              /* ss_plugin_event.len */
        memcpy(p + EVT_HEADER + 4, &len, 4);    /* length of the payload parameter */
    }
    in->sample = sample;
    in->remaining -= n;
    *nevts = n;
    *evts = in->evts;
    return SS_PLUGIN_SUCCESS;
}

FP_REF_EXPORT const char *plugin_get_progress(ss_plugin_t *s, ss_instance_t *h, uint32_t *progress_pct) {
    ref_state *st = (ref_state *)s;
    ref_instance *in = (ref_instance *)h;
    double pct = in->total == 0 ? 100.0 : 100.0 * (double)(in->total - in->remaining) / (double)in->total;
    *progress_pct = (uint32_t)(pct * 100.0 + 0.5);
    snprintf(st->progress_str, sizeof st->progress_str, "%.2f", pct);
    return st->progress_str;
}

/* ---- extraction ---------------------------------------------------------------- */

/* The payload of one of our events, or -1 when the event is not shaped like one. */
static int event_payload(const ss_plugin_event *evt, const uint8_t **data, uint32_t *len) {
    const uint8_t *raw = (const uint8_t *)evt;
    uint32_t l0, l1;
    if (evt->type != PLUGIN_EVENT || evt->nparams != 2 || evt->len < PAYLOAD_OFFSET) {
        return -1;
    }
    memcpy(&l0, raw + EVT_HEADER, 4);
    memcpy(&l1, raw + EVT_HEADER + 4, 4);
    if (l0 != 4 || (uint64_t)PAYLOAD_OFFSET + l1 > evt->len) {
        return -1;
    }
    *data = raw + PAYLOAD_OFFSET;
    *len = l1;
    return 0;
}

/* Decode the sample of evt once per event number. */
static int load_sample(ref_state *st, const ss_plugin_event_input *evt) {
    if (st->cached && st->cached_evtnum == evt->evtnum) {
        return 0;
    }
    const uint8_t *data;
    uint32_t len;
    st->cached = 0;
    if (event_payload(evt->evt, &data, &len) != 0) {
        set_error(st, "extract_fields: malformed plugin event (number %llu)", (unsigned long long)evt->evtnum);
        return -1;
    }
    if (parse_u64(data, len, &st->sample) != 0) {
        set_error(st, "extract_fields: payload is not a decimal sample (event %llu)", (unsigned long long)evt->evtnum);
        return -1;
    }
    memcpy(st->sample_str, data, len);
    st->sample_str[len] = '\0';
    st->cached = 1;
    st->cached_evtnum = evt->evtnum;
    return 0;
}

FP_REF_EXPORT ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *evt,
                                                 const ss_plugin_field_extract_input *in) {
    ref_state *st = (ref_state *)s;
    uint32_t nf = in->num_fields;
    if (nf == 0) {
        return SS_PLUGIN_SUCCESS;
    }
    if (!evt || !evt->evt) {
        set_error(st, "extract_fields: no event given");
        return SS_PLUGIN_FAILURE;
    }
    if (load_sample(st, evt) != 0) {
        return SS_PLUGIN_FAILURE;
    }
    if (reserve_results(st, nf) != 0) {
        set_error(st, "extract_fields: out of memory");
        return SS_PLUGIN_FAILURE;
    }
    for (uint32_t i = 0; i < nf; i++) {
        ss_plugin_extract_field *f = &in->fields[i];
        switch (f->field_id) {
        case FIELD_VALUE:
            st->u64_out[i] = st->sample;
            f->res.u64 = &st->u64_out[i];
            break;
        case FIELD_STRVALUE:
            st->str_out[i] = st->sample_str;
            f->res.str = &st->str_out[i];
            break;
        case FIELD_DIVISIBLE:
            if (!f->arg_present || f->arg_index == 0) {
                set_error(st, "extracting dummy.divisible[%llu]: the divisor must be a positive integer",
                          (unsigned long long)f->arg_index);
                return SS_PLUGIN_FAILURE;
            }
            st->u64_out[i] = st->sample % f->arg_index == 0 ? 1 : 0;
            f->res.u64 = &st->u64_out[i];
            break;
        default:
            set_error(st, "extract_fields: unknown field id %u", (unsigned)f->field_id);
            return SS_PLUGIN_FAILURE;
        }
        f->res_len = 1;
    }
    return SS_PLUGIN_SUCCESS;
}

FP_REF_EXPORT const char *plugin_event_to_string(ss_plugin_t *s, const ss_plugin_event_input *evt) {
    ref_state *st = (ref_state *)s;
    const uint8_t *data;
    uint32_t len;
    if (!evt || !evt->evt || event_payload(evt->evt, &data, &len) != 0) {
        return "";
    }
    char *text = (char *)malloc((size_t)len + 16);
    if (!text) {
        return "";
    }
    snprintf(text, (size_t)len + 16, "{\"sample\": \"%.*s\"}", (int)len, (const char *)data);
    free(st->to_string);
    st->to_string = text;
    return text;
}
