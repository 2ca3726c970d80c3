/*
 * ctest: a small plugin written in plain C, for the Python host's tests.
 *
 * It proves the host drives plugins that are not ours, and -D flags turn it
 * into the broken variants the loader must reject:
 *   -DOMIT_<SYMBOL>          leave plugin_<symbol> out (e.g. -DOMIT_INIT)
 *   -DAPI_VERSION='"4.0.0"'  required API version (default "3.0.0")
 *   -DFIELDS_JSON='"[...]"'  get_fields result (-DFIELDS_NULL: return NULL)
 *   -DPLUGIN_ID=0 -DEVENT_SOURCE='"x"'   sourcing identity (default 999 / "ctest")
 *   -DEXTRACT_SOURCES='"[\"x\"]"'        export get_extract_event_sources
 *   -DEVENT_SCHEMA='"4.0.0"'               export get_required_event_schema_version
 *   -DWITH_ASYNC_HANDLER / -DWITH_CAPTURE_OPEN   half of a capability pair
 *   -DNO_SCHEMA              no init schema
 *
 * Open params: "<count> [zeroid|otherid|badtype|maxts|fail|timeout|idle]": count
 * events in batches of 2, built in ONE static buffer that the next call
 * overwrites (so a host that keeps pointers instead of copying shows it).
 * Init config "fail" (or {"fail": true}) makes init fail; every field value is
 * derived from the event or the arguments so tests can predict it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_abi.h"

#ifndef API_VERSION
#define API_VERSION "3.0.0"
#endif
#ifndef PLUGIN_NAME
#define PLUGIN_NAME "ctest"
#endif
#ifndef PLUGIN_VERSION
#define PLUGIN_VERSION "0.2.0"
#endif
#ifndef PLUGIN_ID
#define PLUGIN_ID 999
#endif
#ifndef EVENT_SOURCE
#define EVENT_SOURCE "ctest"
#endif
#ifndef FIELDS_JSON
#define FIELDS_JSON                                                                                   \
    "[{\"name\":\"ctest.payload\",\"type\":\"string\",\"desc\":\"The payload\"},"                       \
    "{\"name\":\"ctest.num\",\"type\":\"uint64\",\"desc\":\"The event number seen by the plugin\"},"  \
    "{\"name\":\"ctest.source\",\"type\":\"string\",\"desc\":\"The event source seen by the plugin\"},"  \
    "{\"name\":\"ctest.config\",\"type\":\"string\",\"desc\":\"The init config received\"},"         \
    "{\"name\":\"ctest.idx\",\"type\":\"uint64\",\"desc\":\"Ten times the index\","                   \
    "\"arg\":{\"isRequired\":true,\"isIndex\":true}},"                                              \
    "{\"name\":\"ctest.key\",\"type\":\"string\",\"desc\":\"The key, or <none>\",\"arg\":{\"isKey\":true}}," \
    "{\"name\":\"ctest.both\",\"type\":\"string\",\"desc\":\"Index and key as received\","           \
    "\"arg\":{\"isIndex\":true,\"isKey\":true}},"                                                   \
    "{\"name\":\"ctest.meta\",\"type\":\"uint64\",\"isList\":true,"                                   \
    "\"desc\":\"field_id, ftype, flist, arg_present as received\"},"                                  \
    "{\"name\":\"ctest.even\",\"type\":\"bool\",\"desc\":\"The event number is even\"},"              \
    "{\"name\":\"ctest.ip\",\"type\":\"ipaddr\",\"desc\":\"192.168.0.1\"},"                           \
    "{\"name\":\"ctest.ip6\",\"type\":\"ipaddr\",\"desc\":\"::1\"},"                                  \
    "{\"name\":\"ctest.net\",\"type\":\"ipnet\",\"desc\":\"10.0.0.0\"},"                              \
    "{\"name\":\"ctest.elapsed\",\"type\":\"reltime\",\"desc\":\"1500 ns\"},"                         \
    "{\"name\":\"ctest.none\",\"type\":\"string\",\"desc\":\"Never has a value\"},"                   \
    "{\"name\":\"ctest.fail\",\"type\":\"string\",\"desc\":\"Always fails\"}]"
#endif

#define ERRLEN 1024
#define BATCH 2
#define MAX_PAYLOAD 64

typedef struct {
    char err[ERRLEN];
    char *config;
    char str[256];
    uint64_t u64[4];
    ss_plugin_bool b;
    ss_plugin_byte_buffer buf;
    const char *strp;
} state_t;

typedef struct {
    int count, produced, calls;
    char mode[16];
    /* One buffer for a whole batch, rewritten by every next_batch call. */
    uint8_t storage[BATCH][38 + MAX_PAYLOAD];
    ss_plugin_event *evts[BATCH];
} instance_t;

static const uint8_t ip4[4] = {192, 168, 0, 1};
static const uint8_t ip6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t net4[4] = {10, 0, 0, 0};

#ifndef OMIT_GET_REQUIRED_API_VERSION
const char *plugin_get_required_api_version(void) { return API_VERSION; }
#endif
#ifndef OMIT_GET_VERSION
const char *plugin_get_version(void) { return PLUGIN_VERSION; }
#endif
#ifndef OMIT_GET_NAME
const char *plugin_get_name(void) { return PLUGIN_NAME; }
#endif
#ifndef OMIT_GET_DESCRIPTION
const char *plugin_get_description(void) { return "A test plugin written in C"; }
#endif
#ifndef OMIT_GET_CONTACT
const char *plugin_get_contact(void) { return "nobody@example.com"; }
#endif
#ifndef OMIT_GET_LAST_ERROR
const char *plugin_get_last_error(ss_plugin_t *s) { return ((state_t *)s)->err; }
#endif

#ifndef NO_SCHEMA
const char *plugin_get_init_schema(ss_plugin_schema_type *t) {
    *t = SS_PLUGIN_SCHEMA_JSON;
    return "{\"type\":\"object\",\"properties\":{"
           "\"greeting\":{\"type\":\"string\"},"
           "\"level\":{\"type\":\"integer\",\"minimum\":0},"
           "\"fail\":{\"type\":\"boolean\"}},"
           "\"additionalProperties\":false}";
}
#endif

#ifndef OMIT_INIT
ss_plugin_t *plugin_init(const ss_plugin_init_input *in, ss_plugin_rc *rc) {
    state_t *s = calloc(1, sizeof *s);
    s->config = strdup(in->config ? in->config : "(null)");
    if (in->log_fn) {
        char msg[300];
        snprintf(msg, sizeof msg, "config is '%.250s'", s->config);
        in->log_fn(in->owner, NULL, msg, SS_PLUGIN_LOG_SEV_INFO);
        in->log_fn(in->owner, "ctest-sub", "a warning", SS_PLUGIN_LOG_SEV_WARNING);
    }
    if (strcmp(s->config, "fail") == 0 || strstr(s->config, "\"fail\":true") || strstr(s->config, "\"fail\": true")) {
        snprintf(s->err, ERRLEN, "init: you asked me to fail");
        *rc = SS_PLUGIN_FAILURE;
        return s;
    }
    *rc = SS_PLUGIN_SUCCESS;
    return s;
}
#endif

#ifndef OMIT_DESTROY
void plugin_destroy(ss_plugin_t *s) {
    if (s) {
        free(((state_t *)s)->config);
        free(s);
    }
}
#endif

/* ---- event sourcing ------------------------------------------------------ */

#ifndef OMIT_GET_ID
uint32_t plugin_get_id(void) { return PLUGIN_ID; }
#endif
#ifndef OMIT_GET_EVENT_SOURCE
const char *plugin_get_event_source(void) { return EVENT_SOURCE; }
#endif

#ifndef OMIT_OPEN
ss_instance_t *plugin_open(ss_plugin_t *s, const char *params, ss_plugin_rc *rc) {
    state_t *st = s;
    instance_t *in = calloc(1, sizeof *in);
    char *end = NULL;
    in->count = params && *params ? (int)strtol(params, &end, 10) : 3;
    if (end == params) {
        snprintf(st->err, ERRLEN, "open: bad params '%s'", params);
        free(in);
        *rc = SS_PLUGIN_FAILURE;
        return NULL;
    }
    if (end) {
        while (*end == ' ') {
            end++;
        }
        snprintf(in->mode, sizeof in->mode, "%s", end);
    }
    for (int i = 0; i < BATCH; i++) {
        in->evts[i] = (ss_plugin_event *)in->storage[i];
    }
    *rc = SS_PLUGIN_SUCCESS;
    return in;
}
#endif

#ifndef OMIT_CLOSE
void plugin_close(ss_plugin_t *s, ss_instance_t *h) {
    (void)s;
    free(h);
}
#endif

static void write_event(instance_t *in, int slot, int n) {
    uint8_t *p = in->storage[slot];
    char payload[MAX_PAYLOAD];
    int len = snprintf(payload, sizeof payload, "event-%d", n);
    uint32_t lens[2] = {4, (uint32_t)len};
    uint32_t id = PLUGIN_ID;
    ss_plugin_event h = {1000 + (uint64_t)n, 42, (uint32_t)(38 + len), 322, 2};
    if (!strcmp(in->mode, "zeroid")) {
        id = 0;
    } else if (!strcmp(in->mode, "otherid")) {
        id = 7;
    } else if (!strcmp(in->mode, "badtype")) {
        h.type = 1;
    } else if (!strcmp(in->mode, "maxts")) {
        h.ts = UINT64_MAX;
    }
    memcpy(p, &h, 26);
    memcpy(p + 26, lens, 8);
    memcpy(p + 34, &id, 4);
    memcpy(p + 38, payload, (size_t)len);
}

#ifndef OMIT_NEXT_BATCH
ss_plugin_rc plugin_next_batch(ss_plugin_t *s, ss_instance_t *h, uint32_t *nevts, ss_plugin_event ***evts) {
    state_t *st = s;
    instance_t *in = h;
    in->calls++;
    *nevts = 0;
    *evts = in->evts;
    if (!strcmp(in->mode, "idle") || (!strcmp(in->mode, "timeout") && in->calls == 1)) {
        return SS_PLUGIN_TIMEOUT;
    }
    if (!strcmp(in->mode, "fail") && in->calls == 2) {
        snprintf(st->err, ERRLEN, "next_batch: the source broke");
        return SS_PLUGIN_FAILURE;
    }
    int n = 0;
    while (n < BATCH && in->produced < in->count) {
        write_event(in, n, ++in->produced);
        n++;
    }
    *nevts = (uint32_t)n;
    return in->produced >= in->count ? SS_PLUGIN_EOF : SS_PLUGIN_SUCCESS;
}
#endif

const char *plugin_get_progress(ss_plugin_t *s, ss_instance_t *h, uint32_t *pct) {
    state_t *st = s;
    instance_t *in = h;
    *pct = in->count ? (uint32_t)(10000 * in->produced / in->count) : 10000;
    snprintf(st->str, sizeof st->str, "%d/%d", in->produced, in->count);
    return st->str;
}

const char *plugin_list_open_params(ss_plugin_t *s, ss_plugin_rc *rc) {
    (void)s;
    *rc = SS_PLUGIN_SUCCESS;
    return "[{\"value\":\"3\",\"desc\":\"three events\"},{\"value\":\"5 zeroid\",\"separator\":\";\"}]";
}

#ifndef OMIT_EVENT_TO_STRING
const char *plugin_event_to_string(ss_plugin_t *s, const ss_plugin_event_input *evt) {
    state_t *st = s;
    const uint8_t *p = (const uint8_t *)evt->evt;
    uint32_t len;
    memcpy(&len, p + 30, 4);
    snprintf(st->str, sizeof st->str, "ctest #%llu %.*s", (unsigned long long)evt->evtnum, (int)len, p + 38);
    return st->str;
}
#endif

/* ---- field extraction ------------------------------------------------------ */

#ifdef EXTRACT_SOURCES
const char *plugin_get_extract_event_sources(void) { return EXTRACT_SOURCES; }
#endif

#ifdef EVENT_SCHEMA
const char *plugin_get_required_event_schema_version(ss_plugin_t *s) {
    (void)s;
    return EVENT_SCHEMA;
}
#endif

#ifndef OMIT_GET_FIELDS
const char *plugin_get_fields(void) {
#ifdef FIELDS_NULL
    return NULL;
#else
    return FIELDS_JSON;
#endif
}
#endif

#ifndef OMIT_EXTRACT_FIELDS
ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *evt,
                                   const ss_plugin_field_extract_input *in) {
    state_t *st = s;
    const uint8_t *p = (const uint8_t *)evt->evt;
    for (uint32_t i = 0; i < in->num_fields; i++) {
        ss_plugin_extract_field *f = &in->fields[i];
        const char *n = f->field;
        f->res_len = 1;
        if (!strcmp(n, "ctest.payload")) {
            uint32_t len;
            memcpy(&len, p + 30, 4);
            snprintf(st->str, sizeof st->str, "%.*s", (int)len, p + 38);
            st->strp = st->str;
            f->res.str = &st->strp;
        } else if (!strcmp(n, "ctest.num")) {
            st->u64[0] = evt->evtnum;
            f->res.u64 = st->u64;
        } else if (!strcmp(n, "ctest.source")) {
            st->strp = evt->evtsrc;
            f->res.str = &st->strp;
        } else if (!strcmp(n, "ctest.config")) {
            st->strp = st->config;
            f->res.str = &st->strp;
        } else if (!strcmp(n, "ctest.idx")) {
            st->u64[0] = f->arg_index * 10;
            f->res.u64 = st->u64;
        } else if (!strcmp(n, "ctest.key")) {
            st->strp = f->arg_present ? (f->arg_key ? f->arg_key : "(null)") : "<none>";
            f->res.str = &st->strp;
        } else if (!strcmp(n, "ctest.both")) {
            snprintf(st->str, sizeof st->str, "index=%llu key=%s", (unsigned long long)f->arg_index,
                     f->arg_key ? f->arg_key : "(null)");
            st->strp = st->str;
            f->res.str = &st->strp;
        } else if (!strcmp(n, "ctest.meta")) {
            st->u64[0] = f->field_id;
            st->u64[1] = f->ftype;
            st->u64[2] = f->flist;
            st->u64[3] = f->arg_present;
            f->res.u64 = st->u64;
            f->res_len = 4;
        } else if (!strcmp(n, "ctest.even")) {
            st->b = evt->evtnum % 2 == 0;
            f->res.boolean = &st->b;
        } else if (!strcmp(n, "ctest.ip") || !strcmp(n, "ctest.ip6") || !strcmp(n, "ctest.net")) {
            int v6 = !strcmp(n, "ctest.ip6");
            st->buf.ptr = v6 ? ip6 : !strcmp(n, "ctest.net") ? net4 : ip4;
            st->buf.len = v6 ? 16 : 4;
            f->res.buf = &st->buf;
        } else if (!strcmp(n, "ctest.elapsed")) {
            st->u64[0] = 1500;
            f->res.u64 = st->u64;
        } else if (!strcmp(n, "ctest.none")) {
            f->res_len = 0;
        } else {
            snprintf(st->err, ERRLEN, "extraction of %s failed on purpose", n);
            return SS_PLUGIN_FAILURE;
        }
    }
    return SS_PLUGIN_SUCCESS;
}
#endif

/* ---- half capabilities, for the loader's checks ------------------------------- */

#ifdef WITH_ASYNC_HANDLER
ss_plugin_rc plugin_set_async_event_handler(ss_plugin_t *s, ss_plugin_owner_t *o, const ss_plugin_async_event_handler_t h) {
    (void)s, (void)o, (void)h;
    return SS_PLUGIN_SUCCESS;
}
#endif
#ifdef WITH_CAPTURE_OPEN
ss_plugin_rc plugin_capture_open(ss_plugin_t *s, const ss_plugin_capture_listen_input *i) {
    (void)s, (void)i;
    return SS_PLUGIN_SUCCESS;
}
#endif
