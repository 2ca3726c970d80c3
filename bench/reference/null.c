/*
 * null_c: a plugin that does no work of its own, the C half of the null pair
 * (bench/null_py is the same plugin in Python with the SDK).
 *
 * Source `null`: every next_batch hands out 128 ready-made events whose
 * payload is one byte, until `maxEvents` (open params, JSON) have been
 * produced. Each batch is stamped with one read of the clock: a ts of all
 * ones would have libsinsp read the clock for every event, and libsinsp
 * writes the time it reads into the plugin's event, so headers written
 * once and left at all ones would carry the first batch's times forever
 * (cheaper, and wrong). The SDK stamps its batches the same way. Field `null.one` (uint64) is always 1. What the pair measures is
 * therefore what the SDK itself costs per event and per field call, the
 * plugin code being next to nothing in both.
 *
 *   cc -O2 -shared -fPIC -fvisibility=hidden -I sdk/src/falco_plugin_tools/abi \
 *      bench/reference/null.c -o libnull_c.so
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin_abi.h"

#define NULL_EXPORT __attribute__((visibility("default")))

#define NULL_ID 999u /* the id the plugin registry reserves for development */
#define NULL_ERRLEN 256
#define EVT_HEADER 26u     /* packed ss_plugin_event */
#define PLUGIN_EVENT 322u  /* type of events produced by source plugins */
#define PAYLOAD_OFFSET 38u /* header, two u32 lengths, the u32 plugin id */
#define EVENT_LEN (PAYLOAD_OFFSET + 1u)
#define SLOT_SIZE 40u /* one event, rounded up to keep 8-byte alignment */
#define BATCH_MAX 128u

typedef struct null_state {
    char err[NULL_ERRLEN];
    uint64_t *one; /* values handed out by the last extract_fields, one per requested field */
    uint32_t cap;
} null_state;

typedef struct null_instance {
    uint64_t remaining;
    uint8_t *arena; /* BATCH_MAX events, written once at open */
    ss_plugin_event *evts[BATCH_MAX];
} null_instance;

__attribute__((format(printf, 2, 3))) static void set_error(null_state *st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
}

/* maxEvents from the open params: 1 found, 0 absent, -1 not a non-negative integer. */
static int max_events_of(const char *params, uint64_t *out) {
    static const char key[] = "\"maxEvents\"";
    const char *p = params ? strstr(params, key) : NULL;
    if (!p) {
        return 0;
    }
    p += sizeof key - 1;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
        p++;
    }
    if (*p++ != ':') {
        return -1;
    }
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
        p++;
    }
    if (*p < '0' || *p > '9') {
        return -1;
    }
    uint64_t x = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (x > (UINT64_MAX - d) / 10) {
            return -1;
        }
        x = x * 10 + d;
    }
    *out = x;
    return 1;
}

NULL_EXPORT const char *plugin_get_required_api_version(void) { return "3.0.0"; }
NULL_EXPORT const char *plugin_get_version(void) { return "0.1.0"; }
NULL_EXPORT const char *plugin_get_name(void) { return "null_c"; }
NULL_EXPORT const char *plugin_get_description(void) {
    return "A plugin that does no work of its own, in C: the benchmark reference for null_py";
}
NULL_EXPORT const char *plugin_get_contact(void) { return "falco-plugin-sdk bench"; }
NULL_EXPORT uint32_t plugin_get_id(void) { return NULL_ID; }
NULL_EXPORT const char *plugin_get_event_source(void) { return "null"; }
NULL_EXPORT const char *plugin_get_fields(void) {
    return "[{\"type\":\"uint64\",\"name\":\"null.one\",\"desc\":\"Always 1\"}]";
}
NULL_EXPORT const char *plugin_get_last_error(ss_plugin_t *s) { return s ? ((null_state *)s)->err : ""; }

NULL_EXPORT ss_plugin_t *plugin_init(const ss_plugin_init_input *input, ss_plugin_rc *rc) {
    (void)input;
    null_state *st = (null_state *)calloc(1, sizeof *st);
    *rc = st ? SS_PLUGIN_SUCCESS : SS_PLUGIN_FAILURE;
    return st;
}

NULL_EXPORT void plugin_destroy(ss_plugin_t *s) {
    null_state *st = (null_state *)s;
    if (st) {
        free(st->one);
        free(st);
    }
}

NULL_EXPORT ss_instance_t *plugin_open(ss_plugin_t *s, const char *params, ss_plugin_rc *rc) {
    null_state *st = (null_state *)s;
    uint64_t max_events = 20;
    *rc = SS_PLUGIN_FAILURE;
    if (max_events_of(params, &max_events) < 0) {
        set_error(st, "open: invalid open params: maxEvents must be an integer >= 0");
        return NULL;
    }
    null_instance *in = (null_instance *)calloc(1, sizeof *in);
    uint8_t *arena = (uint8_t *)aligned_alloc(8, (size_t)BATCH_MAX * SLOT_SIZE);
    if (!in || !arena) {
        free(in);
        free(arena);
        set_error(st, "open: out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < BATCH_MAX; i++) {
        uint8_t *p = arena + (size_t)i * SLOT_SIZE;
        ss_plugin_event hdr = {UINT64_MAX, UINT64_MAX, EVENT_LEN, PLUGIN_EVENT, 2};
        uint32_t lens_and_id[3] = {4, 1, NULL_ID};
        memcpy(p, &hdr, EVT_HEADER);
        memcpy(p + EVT_HEADER, lens_and_id, sizeof lens_and_id);
        p[PAYLOAD_OFFSET] = 'x';
        in->evts[i] = (ss_plugin_event *)p;
    }
    in->remaining = max_events;
    in->arena = arena;
    *rc = SS_PLUGIN_SUCCESS;
    return in;
}

NULL_EXPORT void plugin_close(ss_plugin_t *s, ss_instance_t *h) {
    (void)s;
    null_instance *in = (null_instance *)h;
    if (in) {
        free(in->arena);
        free(in);
    }
}

NULL_EXPORT ss_plugin_rc plugin_next_batch(ss_plugin_t *s, ss_instance_t *h, uint32_t *nevts,
                                           ss_plugin_event ***evts) {
    (void)s;
    null_instance *in = (null_instance *)h;
    *nevts = 0;
    *evts = NULL;
    if (in->remaining == 0) {
        return SS_PLUGIN_EOF;
    }
    uint32_t n = in->remaining < BATCH_MAX ? (uint32_t)in->remaining : BATCH_MAX;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t ts = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(in->evts[i], &ts, sizeof ts); /* ss_plugin_event.ts */
    }
    in->remaining -= n;
    *nevts = n;
    *evts = in->evts;
    return SS_PLUGIN_SUCCESS;
}

NULL_EXPORT ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *evt,
                                               const ss_plugin_field_extract_input *in) {
    (void)evt;
    null_state *st = (null_state *)s;
    uint32_t nf = in->num_fields;
    if (nf > st->cap) {
        uint64_t *one = (uint64_t *)realloc(st->one, nf * sizeof *one);
        if (!one) {
            set_error(st, "extract_fields: out of memory");
            return SS_PLUGIN_FAILURE;
        }
        st->one = one;
        st->cap = nf;
    }
    for (uint32_t i = 0; i < nf; i++) {
        ss_plugin_extract_field *f = &in->fields[i];
        if (f->field_id != 0) {
            set_error(st, "extract_fields: unknown field id %u", (unsigned)f->field_id);
            return SS_PLUGIN_FAILURE;
        }
        st->one[i] = 1;
        f->res.u64 = &st->one[i];
        f->res_len = 1;
    }
    return SS_PLUGIN_SUCCESS;
}
