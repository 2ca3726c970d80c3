/*
 * http_poll_c: http_poll written in C the way a C plugin author would, as the
 * yardstick for plugins/http_poll in the real Falco (bench/falco_http_poll.py).
 *
 * Same event source (`http_poll`), same payload and same field names as
 * plugins/http_poll for what the benchmark exercises, so the same rules run on
 * both; only its name (http_poll_c) and id (999, the registry's id for
 * development) differ. Falco loads one of the two per run.
 *
 * Open params: the JSON object http_poll takes; this plugin reads `url`,
 * `records`, `id`, `timestamp`, `timestamp_unit`, `interval` and `max_polls`
 * and ignores the rest (no cursor, checkpoint, de-duplication across polls,
 * retries or custom headers: what the benchmark needs, and no more).
 *
 * Sourcing: when the host has consumed the previous page, next_batch GETs the
 * next one with libcurl (one easy handle per open stream, so the connection
 * is kept alive), follows `Link: <...>; rel="next"` headers to the end of the
 * listing, which ends one poll, and polls again `interval` seconds after the
 * previous poll started until `max_polls` polls are done (0: forever). Each
 * page is parsed once with yyjson; every element of the array at the
 * `records` pointer becomes one event whose payload is http_poll's envelope:
 *
 *   {"url":"<page URL>","status":200,"id":"<id as text>"|null,"record":<record as compact JSON>}
 *
 * Numbers are read as raw text (YYJSON_READ_NUMBER_AS_RAW), so a record keeps
 * them as the API spelled them. A page that cannot be fetched, an HTTP status
 * other than 2xx, a body that is not JSON or has no array at `records` fail
 * next_batch with a message (plugin_get_last_error); a bad open param fails
 * the open.
 *
 * Fields: http_poll.value[/pointer] is the value at /record + pointer of the
 * payload: a string as is, any other non-null value as compact JSON, no value
 * for null or a missing key. The payload is parsed once per event number and
 * the document shared by all the fields of that event.
 *
 *   cc -O2 -shared -fPIC -fvisibility=hidden -I sdk/src/falco_plugin_tools/abi -I <yyjson dir> \
 *      bench/reference/http_poll.c <yyjson dir>/yyjson.c -lcurl -o libhttp_poll_c.so
 *
 * (<yyjson dir>: python -m falco_plugin_tools.build.yyjson prints it.)
 */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "plugin_abi.h"
#include "yyjson.h"

#define EXPORT __attribute__((visibility("default")))

#define PLUGIN_ID 999u /* the id the plugin registry reserves for development */
#define PLUGIN_NAME "http_poll_c"
#define EVENT_SOURCE "http_poll"
#define ERRLEN 1024

#define EVT_HEADER 26u    /* packed ss_plugin_event */
#define PLUGIN_EVENT 322u /* type of events produced by source plugins */
#define PAYLOAD_OFFSET 38u
#define BATCH_MAX 128u
#define IDLE_WAIT_NS 30000000ull /* longest sleep in next_batch while waiting for the next poll */

typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

typedef struct {
    char err[ERRLEN];
    /* Extraction: the parsed payload of the last event, and the values handed out. */
    int cached;
    uint64_t cached_evtnum;
    yyjson_doc *doc;
    yyjson_val *record;
    const char **str_out;
    char **owned; /* values written as JSON for the last extract_fields call, freed at the next */
    uint32_t cap_out;
} state_t;

typedef struct {
    CURL *curl;
    char curl_err[CURL_ERROR_SIZE];
    char *url;      /* the first page of every poll */
    char *page;     /* the page to fetch next; NULL between two polls */
    char *next;     /* the rel="next" link of the response being received */
    char *records;  /* JSON pointers */
    char *id;
    char *ts;
    uint64_t unit_ns;
    uint32_t unit_digits; /* log10(unit_ns): digits of a fraction that count */
    uint64_t interval_ns;
    uint64_t max_polls;
    uint64_t polls_started;
    uint64_t poll_start_ns; /* CLOCK_MONOTONIC */
    buf_t body;
    buf_t arena; /* the events of the current page, 8-byte aligned */
    size_t *offsets;
    ss_plugin_event **evts;
    uint32_t nevts, pos, evts_cap;
} instance_t;

__attribute__((format(printf, 2, 3))) static void set_error(state_t *st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* ---- growing buffers --------------------------------------------------------- */

static int buf_reserve(buf_t *b, size_t extra) {
    if (b->len + extra <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) {
        cap *= 2;
    }
    char *p = (char *)realloc(b->data, cap);
    if (!p) {
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static int buf_add(buf_t *b, const void *p, size_t n) {
    if (buf_reserve(b, n) != 0) {
        return -1;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int buf_str(buf_t *b, const char *s) { return buf_add(b, s, strlen(s)); }

/* s as a JSON string: quotes, backslashes and control characters escaped, UTF-8 as is. */
static int buf_json_string(buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    if (buf_reserve(b, n * 6 + 2) != 0) {
        return -1;
    }
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

/* ---- open params ------------------------------------------------------------- */

/* A copy of the string member `key` (NULL when absent or null); -1 when it is of another type. */
static int param_string(state_t *st, yyjson_val *obj, const char *key, char **out) {
    yyjson_val *v = yyjson_obj_get(obj, key);
    *out = NULL;
    if (!v || yyjson_is_null(v)) {
        return 0;
    }
    if (!yyjson_is_str(v)) {
        set_error(st, "invalid open params: %s: must be a string", key);
        return -1;
    }
    *out = strdup(yyjson_get_str(v));
    return 0;
}

static int check_pointer(state_t *st, const char *key, const char *ptr) {
    if (!ptr || !*ptr) {
        return 0;
    }
    if (*ptr != '/') {
        set_error(st, "invalid open params: %s: %s is not a JSON pointer (it must start with '/')", key, ptr);
        return -1;
    }
    for (const char *p = strchr(ptr, '~'); p; p = strchr(p + 1, '~')) {
        if (p[1] != '0' && p[1] != '1') {
            set_error(st, "invalid open params: %s: %s: '~' must be followed by 0 or 1", key, ptr);
            return -1;
        }
    }
    return 0;
}

static void instance_free(instance_t *in) {
    if (!in) {
        return;
    }
    if (in->curl) {
        curl_easy_cleanup(in->curl);
    }
    free(in->url);
    free(in->page);
    free(in->next);
    free(in->records);
    free(in->id);
    free(in->ts);
    free(in->body.data);
    free(in->arena.data);
    free(in->offsets);
    free(in->evts);
    free(in);
}

static int read_params(state_t *st, instance_t *in, const char *params) {
    yyjson_read_err rerr;
    yyjson_doc *doc = yyjson_read_opts((char *)params, params ? strlen(params) : 0, 0, NULL, &rerr);
    yyjson_val *root = yyjson_doc_get_root(doc);
    int rc = -1;
    if (!yyjson_is_obj(root)) {
        set_error(st, "invalid open params: %s", doc ? "must be a JSON object" : rerr.msg);
        goto out;
    }
    if (param_string(st, root, "url", &in->url) || param_string(st, root, "records", &in->records) ||
        param_string(st, root, "id", &in->id) || param_string(st, root, "timestamp", &in->ts)) {
        goto out;
    }
    if (!in->url || (strncmp(in->url, "http://", 7) != 0 && strncmp(in->url, "https://", 8) != 0)) {
        set_error(st, "invalid open params: url: an http:// or https:// URL is required");
        goto out;
    }
    if (check_pointer(st, "records", in->records) || check_pointer(st, "id", in->id) ||
        check_pointer(st, "timestamp", in->ts)) {
        goto out;
    }
    in->unit_ns = 1000000000ull;
    in->unit_digits = 9;
    yyjson_val *unit = yyjson_obj_get(root, "timestamp_unit");
    if (unit) {
        static const char *units[] = {"ns", "us", "ms", "s"};
        int found = -1;
        for (int i = 0; i < 4 && yyjson_is_str(unit); i++) {
            if (strcmp(yyjson_get_str(unit), units[i]) == 0) {
                found = i;
            }
        }
        if (found < 0) {
            set_error(st, "invalid open params: timestamp_unit: must be one of s, ms, us, ns");
            goto out;
        }
        in->unit_digits = (uint32_t)found * 3;
        in->unit_ns = 1;
        for (uint32_t i = 0; i < in->unit_digits; i++) {
            in->unit_ns *= 10;
        }
    }
    yyjson_val *polls = yyjson_obj_get(root, "max_polls");
    if (polls && !yyjson_is_uint(polls)) {
        set_error(st, "invalid open params: max_polls: must be an integer >= 0");
        goto out;
    }
    in->max_polls = polls ? yyjson_get_uint(polls) : 0;
    yyjson_val *interval = yyjson_obj_get(root, "interval");
    double seconds = 60.0;
    if (interval) {
        if (!yyjson_is_num(interval) || yyjson_get_num(interval) < 0.001 || yyjson_get_num(interval) > 1e9) {
            set_error(st, "invalid open params: interval: must be a number of seconds >= 0.001");
            goto out;
        }
        seconds = yyjson_get_num(interval);
    }
    in->interval_ns = (uint64_t)(seconds * 1e9);
    rc = 0;
out:
    yyjson_doc_free(doc);
    return rc;
}

/* ---- HTTP -------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *user) {
    instance_t *in = (instance_t *)user;
    return buf_add(&in->body, data, size * n) == 0 ? size * n : 0;
}

/* The target of the rel="next" entry of a Link header line, resolved against the page URL. */
static void parse_link(instance_t *in, const char *line, size_t n) {
    const char *end = line + n;
    const char *p = line + 5; /* after "link:" */
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        const char *gt = lt ? memchr(lt, '>', (size_t)(end - lt)) : NULL;
        if (!gt) {
            return;
        }
        const char *stop = memchr(gt, ',', (size_t)(end - gt)); /* the entry's parameters end here */
        if (!stop) {
            stop = end;
        }
        for (const char *q = gt; q + 3 <= stop; q++) {
            if (strncasecmp(q, "rel", 3) != 0) {
                continue;
            }
            const char *v = q + 3;
            while (v < stop && (*v == ' ' || *v == '=' || *v == '"')) {
                v++;
            }
            if (stop - v >= 4 && strncasecmp(v, "next", 4) == 0 &&
                (v + 4 == stop || v[4] == '"' || v[4] == ' ' || v[4] == ';' || v[4] == '\r' || v[4] == '\n')) {
                char *target = strndup(lt + 1, (size_t)(gt - lt - 1));
                CURLU *u = curl_url();
                char *resolved = NULL;
                if (target && u && curl_url_set(u, CURLUPART_URL, in->page, 0) == CURLUE_OK &&
                    curl_url_set(u, CURLUPART_URL, target, 0) == CURLUE_OK &&
                    curl_url_get(u, CURLUPART_URL, &resolved, 0) == CURLUE_OK) {
                    free(in->next);
                    in->next = strdup(resolved);
                }
                curl_free(resolved);
                curl_url_cleanup(u);
                free(target);
                return;
            }
        }
        p = stop + 1;
    }
}

static size_t on_header(char *data, size_t size, size_t n, void *user) {
    size_t len = size * n;
    if (len > 5 && strncasecmp(data, "link:", 5) == 0) {
        parse_link((instance_t *)user, data, len);
    }
    return len;
}

/* GET in->page into in->body; the HTTP status in *status. */
static int fetch(state_t *st, instance_t *in, long *status) {
    in->body.len = 0;
    free(in->next);
    in->next = NULL;
    in->curl_err[0] = '\0';
    curl_easy_setopt(in->curl, CURLOPT_URL, in->page);
    CURLcode res = curl_easy_perform(in->curl);
    if (res != CURLE_OK) {
        set_error(st, "GET %s: %s", in->page, in->curl_err[0] ? in->curl_err : curl_easy_strerror(res));
        return -1;
    }
    curl_easy_getinfo(in->curl, CURLINFO_RESPONSE_CODE, status);
    if (*status < 200 || *status > 299) {
        set_error(st, "GET %s: HTTP status %ld", in->page, *status);
        return -1;
    }
    return 0;
}

/* ---- records to events ------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Nanoseconds since the epoch of an RFC 3339 time (no zone: UTC); UINT64_MAX if it is not one. */
static uint64_t rfc3339_ns(const char *s, size_t n) {
    int y, mo, d, h, mi, sec;
    if (n < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
        s[16] != ':' || digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
        digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &sec) || mo < 1 || mo > 12 ||
        d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) {
        return UINT64_MAX;
    }
    size_t i = 19;
    uint64_t frac = 0;
    if (i < n && s[i] == '.') {
        int k = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, k++) {
            if (k < 9) {
                frac = frac * 10 + (uint64_t)(s[i] - '0');
            }
        }
        if (k == 0) {
            return UINT64_MAX;
        }
        for (; k < 9; k++) {
            frac *= 10;
        }
    }
    int64_t offset = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (n - i < 6 || s[i + 3] != ':' || digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om)) {
            return UINT64_MAX;
        }
        offset = (s[i] == '-' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60);
        i += 6;
    }
    if (i != n) {
        return UINT64_MAX;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    if (secs < 0 || secs > (int64_t)(UINT64_MAX / 1000000000ull) - 1) {
        return UINT64_MAX;
    }
    return (uint64_t)secs * 1000000000ull + frac;
}

/* A non-negative number (as spelled in JSON) in the stream's unit, in ns; UINT64_MAX if not one. */
static uint64_t number_ns(const instance_t *in, const char *s) {
    uint64_t whole = 0, frac = 0;
    uint32_t k = 0;
    if (*s < '0' || *s > '9') {
        return UINT64_MAX;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        if (whole > (UINT64_MAX / in->unit_ns - 10) / 10) {
            return UINT64_MAX;
        }
        whole = whole * 10 + (uint64_t)(*s - '0');
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, k++) {
            if (k < in->unit_digits) {
                frac = frac * 10 + (uint64_t)(*s - '0');
            }
        }
    }
    if (*s) {
        return UINT64_MAX; /* an exponent */
    }
    for (; k < in->unit_digits; k++) {
        frac *= 10;
    }
    return whole * in->unit_ns + frac;
}

static uint64_t record_ts(const instance_t *in, yyjson_val *rec) {
    yyjson_val *v = in->ts ? yyjson_ptr_get(rec, in->ts) : NULL;
    if (yyjson_is_str(v)) {
        const char *s = yyjson_get_str(v);
        size_t n = yyjson_get_len(v);
        uint64_t ns = rfc3339_ns(s, n);
        return ns != UINT64_MAX || strlen(s) != n ? ns : number_ns(in, s);
    }
    if (yyjson_is_raw(v)) {
        return number_ns(in, yyjson_get_raw(v));
    }
    return UINT64_MAX; /* the host stamps the event */
}

/* Append one event with the envelope of rec to the page's arena. */
static int add_event(instance_t *in, yyjson_val *rec, long status) {
    buf_t *a = &in->arena;
    size_t start = a->len;
    char head[PAYLOAD_OFFSET] = {0};
    if (buf_add(a, head, sizeof head) != 0 || buf_str(a, "{\"url\":") != 0 ||
        buf_json_string(a, in->page, strlen(in->page)) != 0) {
        return -1;
    }
    char status_text[40];
    snprintf(status_text, sizeof status_text, ",\"status\":%ld,\"id\":", status);
    if (buf_str(a, status_text) != 0) {
        return -1;
    }
    yyjson_val *id = in->id ? yyjson_ptr_get(rec, in->id) : NULL;
    int rc;
    if (!id || yyjson_is_null(id)) {
        rc = buf_str(a, "null");
    } else if (yyjson_is_str(id)) {
        rc = buf_json_string(a, yyjson_get_str(id), yyjson_get_len(id));
    } else {
        size_t n;
        char *text = yyjson_val_write(id, 0, &n);
        rc = text ? buf_json_string(a, text, n) : -1;
        free(text);
    }
    size_t n;
    char *text = yyjson_val_write(rec, 0, &n);
    if (rc != 0 || !text || buf_str(a, ",\"record\":") != 0 || buf_add(a, text, n) != 0 || buf_str(a, "}") != 0) {
        free(text);
        return -1;
    }
    free(text);
    /* The header, now that the payload's length is known. */
    uint32_t payload = (uint32_t)(a->len - start - PAYLOAD_OFFSET);
    ss_plugin_event hdr = {record_ts(in, rec), UINT64_MAX, PAYLOAD_OFFSET + payload, PLUGIN_EVENT, 2};
    uint32_t lens_and_id[3] = {4, payload, PLUGIN_ID};
    memcpy(a->data + start, &hdr, EVT_HEADER);
    memcpy(a->data + start + EVT_HEADER, lens_and_id, sizeof lens_and_id);
    static const char pad[8] = {0};
    if (buf_add(a, pad, (8 - a->len % 8) % 8) != 0) {
        return -1;
    }
    if (in->nevts == in->evts_cap) {
        uint32_t cap = in->evts_cap ? in->evts_cap * 2 : 1024;
        size_t *o = (size_t *)realloc(in->offsets, cap * sizeof *o);
        if (o) {
            in->offsets = o;
        }
        ss_plugin_event **e = (ss_plugin_event **)realloc(in->evts, cap * sizeof *e);
        if (e) {
            in->evts = e;
        }
        if (!o || !e) {
            return -1;
        }
        in->evts_cap = cap;
    }
    in->offsets[in->nevts++] = start;
    return 0;
}

/* Fetch in->page and turn its records into events. */
static int load_page(state_t *st, instance_t *in) {
    long status = 0;
    if (fetch(st, in, &status) != 0) {
        return -1;
    }
    yyjson_read_err rerr;
    yyjson_doc *doc = yyjson_read_opts(in->body.data, in->body.len, YYJSON_READ_NUMBER_AS_RAW, NULL, &rerr);
    if (!doc) {
        set_error(st, "GET %s: the body is not JSON: %s at byte %zu", in->page, rerr.msg, rerr.pos);
        return -1;
    }
    yyjson_val *records = yyjson_doc_ptr_get(doc, in->records ? in->records : "");
    if (!yyjson_is_arr(records)) {
        set_error(st, "GET %s: no array of records at '%s'", in->page, in->records ? in->records : "");
        yyjson_doc_free(doc);
        return -1;
    }
    in->arena.len = 0;
    in->nevts = in->pos = 0;
    size_t i, max;
    yyjson_val *rec;
    yyjson_arr_foreach(records, i, max, rec) {
        if (add_event(in, rec, status) != 0) {
            set_error(st, "GET %s: out of memory", in->page);
            yyjson_doc_free(doc);
            return -1;
        }
    }
    yyjson_doc_free(doc);
    for (uint32_t k = 0; k < in->nevts; k++) {
        in->evts[k] = (ss_plugin_event *)(in->arena.data + in->offsets[k]);
    }
    /* The next page of this poll, or the poll is over. */
    free(in->page);
    in->page = in->next;
    in->next = NULL;
    return 0;
}

/* ---- metadata ---------------------------------------------------------------- */

EXPORT const char *plugin_get_required_api_version(void) { return "3.0.0"; }
EXPORT const char *plugin_get_version(void) { return "0.1.0"; }
EXPORT const char *plugin_get_name(void) { return PLUGIN_NAME; }
EXPORT const char *plugin_get_description(void) {
    return "http_poll written in C: the benchmark reference for plugins/http_poll";
}
EXPORT const char *plugin_get_contact(void) { return "github.com/falcosecurity/plugins"; }
EXPORT uint32_t plugin_get_id(void) { return PLUGIN_ID; }
EXPORT const char *plugin_get_event_source(void) { return EVENT_SOURCE; }
EXPORT const char *plugin_get_last_error(ss_plugin_t *s) { return s ? ((state_t *)s)->err : ""; }

EXPORT const char *plugin_get_fields(void) {
    return "[{\"type\":\"string\",\"name\":\"http_poll.value\",\"arg\":{\"isRequired\":true,\"isKey\":true},"
           "\"desc\":\"Value in the record at a JSON pointer, e.g. http_poll.value[/actor/login]\"}]";
}

/* ---- lifetime ---------------------------------------------------------------- */

EXPORT ss_plugin_t *plugin_init(const ss_plugin_init_input *input, ss_plugin_rc *rc) {
    (void)input; /* no init config */
    state_t *st = (state_t *)calloc(1, sizeof *st);
    *rc = SS_PLUGIN_FAILURE;
    if (!st) {
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        set_error(st, "init: curl_global_init failed");
        return st;
    }
    *rc = SS_PLUGIN_SUCCESS;
    return st;
}

static void free_owned(state_t *st) {
    for (uint32_t i = 0; i < st->cap_out; i++) {
        free(st->owned[i]);
        st->owned[i] = NULL;
    }
}

EXPORT void plugin_destroy(ss_plugin_t *s) {
    state_t *st = (state_t *)s;
    if (!st) {
        return;
    }
    free_owned(st);
    free(st->owned);
    free(st->str_out);
    yyjson_doc_free(st->doc);
    curl_global_cleanup();
    free(st);
}

EXPORT ss_instance_t *plugin_open(ss_plugin_t *s, const char *params, ss_plugin_rc *rc) {
    state_t *st = (state_t *)s;
    *rc = SS_PLUGIN_FAILURE;
    instance_t *in = (instance_t *)calloc(1, sizeof *in);
    if (!in) {
        set_error(st, "open: out of memory");
        return NULL;
    }
    if (read_params(st, in, params) != 0) {
        instance_free(in);
        return NULL;
    }
    in->curl = curl_easy_init();
    if (!in->curl) {
        set_error(st, "open: curl_easy_init failed");
        instance_free(in);
        return NULL;
    }
    curl_easy_setopt(in->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(in->curl, CURLOPT_WRITEDATA, in);
    curl_easy_setopt(in->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(in->curl, CURLOPT_HEADERDATA, in);
    curl_easy_setopt(in->curl, CURLOPT_ERRORBUFFER, in->curl_err);
    curl_easy_setopt(in->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(in->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(in->curl, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(in->curl, CURLOPT_USERAGENT, PLUGIN_NAME "/0.1.0");
    curl_easy_setopt(in->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    *rc = SS_PLUGIN_SUCCESS;
    return in;
}

EXPORT void plugin_close(ss_plugin_t *s, ss_instance_t *h) {
    (void)s;
    instance_free((instance_t *)h);
}

EXPORT ss_plugin_rc plugin_next_batch(ss_plugin_t *s, ss_instance_t *h, uint32_t *nevts,
                                      ss_plugin_event ***evts) {
    state_t *st = (state_t *)s;
    instance_t *in = (instance_t *)h;
    *nevts = 0;
    *evts = NULL;
    if (in->pos == in->nevts) {
        /* The host is done with the previous page: fetch the next one. */
        if (!in->page) {
            if (in->max_polls && in->polls_started >= in->max_polls) {
                return SS_PLUGIN_EOF;
            }
            uint64_t now = now_ns();
            if (in->polls_started && now - in->poll_start_ns < in->interval_ns) {
                uint64_t wait = in->interval_ns - (now - in->poll_start_ns);
                wait = wait < IDLE_WAIT_NS ? wait : IDLE_WAIT_NS;
                struct timespec t = {(time_t)(wait / 1000000000ull), (long)(wait % 1000000000ull)};
                nanosleep(&t, NULL);
                return SS_PLUGIN_TIMEOUT;
            }
            in->page = strdup(in->url);
            in->polls_started++;
            in->poll_start_ns = now;
        }
        if (load_page(st, in) != 0) {
            return SS_PLUGIN_FAILURE;
        }
        if (in->nevts == 0) {
            return SS_PLUGIN_TIMEOUT; /* an empty page: ask again */
        }
    }
    uint32_t n = in->nevts - in->pos < BATCH_MAX ? in->nevts - in->pos : BATCH_MAX;
    *evts = in->evts + in->pos;
    *nevts = n;
    in->pos += n;
    return SS_PLUGIN_SUCCESS;
}

/* ---- extraction -------------------------------------------------------------- */

/* Parse the payload of the event once per event number; the record in st->record. */
static int load_event(state_t *st, const ss_plugin_event_input *ev) {
    if (st->cached && st->cached_evtnum == ev->evtnum) {
        return 0;
    }
    const ss_plugin_event *e = ev->evt;
    const uint8_t *raw = (const uint8_t *)e;
    uint32_t l0, l1;
    yyjson_doc_free(st->doc);
    st->doc = NULL;
    st->record = NULL;
    st->cached = 0;
    if (e->type != PLUGIN_EVENT || e->nparams != 2 || e->len < PAYLOAD_OFFSET) {
        set_error(st, "event %llu is not a plugin event", (unsigned long long)ev->evtnum);
        return -1;
    }
    memcpy(&l0, raw + EVT_HEADER, 4);
    memcpy(&l1, raw + EVT_HEADER + 4, 4);
    if (l0 != 4 || (uint64_t)PAYLOAD_OFFSET + l1 > e->len) {
        set_error(st, "event %llu: malformed plugin event", (unsigned long long)ev->evtnum);
        return -1;
    }
    yyjson_read_err rerr;
    st->doc = yyjson_read_opts((char *)raw + PAYLOAD_OFFSET, l1, YYJSON_READ_NUMBER_AS_RAW, NULL, &rerr);
    if (!st->doc) {
        set_error(st, "event %llu: the payload is not JSON: %s at byte %zu", (unsigned long long)ev->evtnum,
                  rerr.msg, rerr.pos);
        return -1;
    }
    st->record = yyjson_obj_get(yyjson_doc_get_root(st->doc), "record");
    if (!st->record) {
        set_error(st, "event %llu: the payload is not an http_poll record", (unsigned long long)ev->evtnum);
        return -1;
    }
    st->cached = 1;
    st->cached_evtnum = ev->evtnum;
    return 0;
}

static int reserve_results(state_t *st, uint32_t n) {
    if (n <= st->cap_out) {
        return 0;
    }
    const char **s = (const char **)realloc(st->str_out, n * sizeof *s);
    if (s) {
        st->str_out = s;
    }
    char **o = (char **)realloc(st->owned, n * sizeof *o);
    if (o) {
        memset(o + st->cap_out, 0, (n - st->cap_out) * sizeof *o);
        st->owned = o;
    }
    if (!s || !o) {
        return -1;
    }
    st->cap_out = n;
    return 0;
}

EXPORT ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *ev,
                                          const ss_plugin_field_extract_input *in) {
    state_t *st = (state_t *)s;
    free_owned(st);
    if (in->num_fields == 0) {
        return SS_PLUGIN_SUCCESS;
    }
    if (reserve_results(st, in->num_fields) != 0) {
        set_error(st, "extract_fields: out of memory");
        return SS_PLUGIN_FAILURE;
    }
    if (load_event(st, ev) != 0) {
        return SS_PLUGIN_FAILURE;
    }
    for (uint32_t i = 0; i < in->num_fields; i++) {
        ss_plugin_extract_field *f = &in->fields[i];
        const char *ptr = f->arg_present && f->arg_key ? f->arg_key : NULL;
        f->res_len = 0;
        if (!ptr) {
            set_error(st, "http_poll.value requires a JSON pointer argument: http_poll.value[/a/b]");
            return SS_PLUGIN_FAILURE;
        }
        yyjson_ptr_err perr;
        yyjson_val *v = yyjson_ptr_getx(st->record, ptr, strlen(ptr), &perr);
        if (!v && perr.code != YYJSON_PTR_ERR_RESOLVE) {
            set_error(st, "http_poll.value[%s]: invalid JSON pointer: %s", ptr, perr.msg);
            return SS_PLUGIN_FAILURE;
        }
        if (!v || yyjson_is_null(v)) {
            continue; /* missing or null: no value */
        }
        if (yyjson_is_str(v)) {
            st->str_out[i] = yyjson_get_str(v);
            if (strlen(st->str_out[i]) != yyjson_get_len(v)) {
                set_error(st, "http_poll.value[%s]: the string holds a NUL character", ptr);
                return SS_PLUGIN_FAILURE;
            }
        } else {
            st->owned[i] = yyjson_val_write(v, 0, NULL);
            if (!st->owned[i]) {
                set_error(st, "http_poll.value[%s]: out of memory", ptr);
                return SS_PLUGIN_FAILURE;
            }
            st->str_out[i] = st->owned[i];
        }
        f->res.str = &st->str_out[i];
        f->res_len = 1;
    }
    return SS_PLUGIN_SUCCESS;
}
