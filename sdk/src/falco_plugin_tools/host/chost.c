/*
 * falco-plugin-chost: a plain C program that loads plugin libraries the way
 * libsinsp does (dlopen RTLD_LAZY, symbols by name, numeric API version
 * check), runs their sources and extracts fields, then unloads them and exits.
 *
 * It exists to prove what only a non-Python process can: that a library built
 * by the SDK starts Python by itself, leaves the host's signal handlers alone,
 * survives dlclose + exit, shares one process (and one interpreter) with other
 * plugin libraries, read on several threads at once as Falco reads several
 * event sources, and how fast it is when called from C.
 *
 *   falco-plugin-chost LIB [OPTIONS] [--lib LIB [OPTIONS]]... [--threads] [--thread-per-batch] [--quiet]
 *
 * OPTIONS belong to the library named last (before any, to the first one):
 *   --config S  --open S  --fields f1,f2  -n N  --bench-source N  --bench-extract N
 *   --async-seconds S  --async-cycles N  --async-queue CAP:RATE  --dump-state  --metrics  --bench-metrics N  --events FILE
 * --threads reads each source on its own thread; otherwise one batch is taken
 * from each source in turn until all have ended, and with --thread-per-batch
 * each of those batches (next_batch and the extraction of its events) on a
 * thread of its own that ends before the next starts, as hosts whose threads
 * come and go call plugins. --quiet prints no events.
 * --engine-work LINES touches LINES cache lines of a large buffer before each
 * event and LINES/4 before each field call, as Falco's own work would (see
 * engine_work), --engine-spin INSTR runs about INSTR instructions before each
 * event; bench runs also print "bench loop_ns_per_event <ns>", and with
 * either option stop timing each call (the loop is what counts).
 *
 * Output: "plugin <name> <version>" per library, "signals: unchanged|CHANGED"
 * (SIGINT's handler and SIGPIPE's disposition) once all are initialised (and
 * "signals: CHANGED by the end of the run" last if a plugin changed them
 * later), one line per event "evt <num> <field>=<value> ...",
 * then "done events=<n> rc=<last rc>" per library; bench mode prints
 * "bench <what> <ns>". With several libraries every event, done and bench line
 * starts with "<plugin name> " ("<plugin name>#<position>" for a library named
 * twice) and errors read "error: <plugin name>: ...".
 * Async events (--async-seconds S): the handler is set once the plugins are
 * initialised (as Falco does when a live capture opens), events are checked
 * as libsinsp checks them, counted (and printed as "async <name> <payload>"
 * unless --quiet) for S seconds, then a NULL handler is set and "async
 * events=<n> late=<calls after the clear> per_s=<rate> stop_ms=<time the
 * clear took>" follows; without -n, that library's source is not read.
 * --async-cycles N repeats the set/wait/clear N times (a live capture opened
 * and closed N times) and adds " cycles=N" to that line. --async-queue CAP:RATE
 * puts a queue of CAP events drained at RATE per second (0: never) in front of
 * the count, as libsinsp has one: a full queue refuses the event with "async
 * event queue is full", and " queue_full=<refusals>" joins that line.
 * With --fields, the fields of every async event received are extracted once the
 * handler is cleared, in order, and printed as "evt <num> <field>=<value>..." lines.
 * --dump-state prints "dump <name> <payload>" per event of plugin_dump_state;
 * --metrics prints "metric <name> <type> <value_type> <value>" per metric
 * after the run, --bench-metrics N also "bench metrics_ns_per_call <ns>".
 *
 * --events FILE skips the library's source: after init, the raw events in FILE
 * go to extract_fields one by one (numbered from 1), as libsinsp does with the
 * events of a capture. FILE is a sequence of records, each a little-endian u32
 * size then that many bytes of one event; each event gets its own buffer of
 * exactly that size, so a plugin reading past it shows under valgrind. The
 * host's promise holds: a record shorter than an event header, or whose header
 * len is not its size, is refused (exit 2). In this mode string values and
 * errors are printed with \\, \n, \t and \xNN escapes, so that any value is
 * one unambiguous line, and the library's last line is "done events=<n>".
 *
 * Exit status: 0 on success, 1 on a plugin failure, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin_abi.h"

#define HOST_MAJOR 3
#define HOST_MINOR 12
#define HOST_PATCH 0
#define MAX_FIELDS 64
#define MAX_LIBS 8
/* libsinsp's flag for list fields (what it puts in ss_plugin_extract_field.flist). */
#define EPF_IS_LIST (1u << 6)

typedef struct {
    const char *(*get_required_api_version)(void);
    const char *(*get_name)(void);
    const char *(*get_version)(void);
    const char *(*get_init_schema)(ss_plugin_schema_type *);
    ss_plugin_t *(*init)(const ss_plugin_init_input *, ss_plugin_rc *);
    void (*destroy)(ss_plugin_t *);
    const char *(*get_last_error)(ss_plugin_t *);
    uint32_t (*get_id)(void);
    const char *(*get_event_source)(void);
    ss_instance_t *(*open)(ss_plugin_t *, const char *, ss_plugin_rc *);
    void (*close)(ss_plugin_t *, ss_instance_t *);
    ss_plugin_rc (*next_batch)(ss_plugin_t *, ss_instance_t *, uint32_t *, ss_plugin_event ***);
    const char *(*get_fields)(void);
    ss_plugin_rc (*extract_fields)(ss_plugin_t *, const ss_plugin_event_input *, const ss_plugin_field_extract_input *);
} api_t;

typedef struct {
    char name[128];
    char type[16];
    int is_index, is_key, is_list;
} field_t;

typedef struct {
    int id;
    char arg[128];
    int has_arg;
    const char *label;
} request_t;

/* One library: what the command line says about it, and its run. */
typedef struct {
    const char *path, *config, *params, *fields_arg;
    const char *events_path; /* --events: raw events from this file instead of the source */
    long max_events, bench_source, bench_extract;
    double async_seconds;
    long async_cycles; /* --async-cycles: how many set/clear rounds (default 1) */
    /* --async-queue CAP:RATE: a bounded queue in front of the count, drained at RATE events/s (0: never),
     * as libsinsp's; a full queue refuses the event ("async event queue is full"). Guarded by async_lock. */
    double queue_cap, queue_rate, queue_pending, queue_t;
    unsigned long async_refused;
    int dump, metrics;
    long bench_metrics;
    const char *async_names; /* the get_async_events JSON */
    unsigned long async_count, async_late;
    pthread_mutex_t async_lock; /* guards the async events kept for --fields */
    ss_plugin_event **async_evts;
    size_t nasync, capasync;
    int async_cleared, skip_source;
    const char *label; /* the path until the plugin names itself */
    char label_buf[160];
    void *dl;
    api_t api;
    field_t fields[MAX_FIELDS];
    int nfields;
    request_t req[MAX_FIELDS];
    int nreq;
    char *spec;
    ss_plugin_t *s;
    ss_instance_t *inst;
    const char *evtsrc;
    uint64_t num;
    ss_plugin_rc rc;
    int done, failed;
    double src_ns, ext_ns;
    uint64_t ext_calls, sink;
    FILE *line; /* an event's output line is built here, then written to stdout at once */
    char *line_buf;
    size_t line_len;
} plugin_t;

static int quiet, multi;
static int escape_strings; /* --events: print strings and errors escaped */

/* --engine-work LINES: stand-in for the rest of Falco between plugin calls.
 * libsinsp and the rule engine run a lot of their own code between two
 * calls into a plugin, which pushes the plugin's (and Python's) data out of
 * the CPU caches; a tight host loop keeps it hot and flatters an interpreted
 * plugin. Before each event, and before each field call, the host reads and
 * writes LINES (LINES/4 per field) cache lines of a buffer much larger than
 * the caches, walking it so that every line is far from the last. */
#define ENGINE_BYTES (32u << 20)
#define ENGINE_STRIDE 4160u /* 65 cache lines: defeats the prefetcher */
static unsigned engine_lines;
static unsigned char *engine_buf;
static size_t engine_pos;

static void engine_work(unsigned lines) {
    for (unsigned i = 0; i < lines; i++) {
        engine_buf[engine_pos] += 1;
        engine_pos = (engine_pos + ENGINE_STRIDE) % ENGINE_BYTES;
    }
}

/* --engine-spin INSTR: the other half of that stand-in, Falco's own
 * instructions per event (bench/falco_profile.py measures them for each rule):
 * about INSTR instructions of integer work before each event. */
static unsigned engine_spin;
static volatile uint64_t engine_acc;
static int engine_on; /* --engine-work or --engine-spin given */

static void engine_compute(unsigned instructions) {
    /* four independent chains, as ordinary code has: about 6 instructions an iteration */
    uint64_t a = engine_acc, b = a ^ 1, c = a ^ 2, d = a ^ 3;
    for (unsigned i = 0; i < instructions / 6; i++) {
        a += i;
        b ^= a;
        c += b;
        d ^= c;
    }
    engine_acc = a + b + c + d;
}

static void print_escaped(FILE *out, const char *s) {
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '\\') {
            fputs("\\\\", out);
        } else if (*c == '\n') {
            fputs("\\n", out);
        } else if (*c == '\t') {
            fputs("\\t", out);
        } else if (*c < 0x20 || *c == 0x7f) {
            fprintf(out, "\\x%02x", *c);
        } else {
            fputc(*c, out);
        }
    }
}

static void host_log(ss_plugin_owner_t *o, const char *component, const char *msg, ss_plugin_log_severity sev) {
    (void)o;
    if (getenv("CHOST_LOG")) {
        fprintf(stderr, "log[%d] %s: %s\n", (int)sev, component ? component : "plugin", msg);
    }
}

static const char *owner_error(ss_plugin_owner_t *o) {
    (void)o;
    return NULL;
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* "error: [<plugin>: ]<message>" on stderr, in one write (threads may report at once). */
static void error(const plugin_t *p, const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (multi && p) {
        fprintf(stderr, "error: %s: %s\n", p->label, msg);
    } else {
        fprintf(stderr, "error: %s\n", msg);
    }
}

/* The prefix of a per-library output line. */
static void line_start(const plugin_t *p, FILE *out) {
    if (multi) {
        fprintf(out, "%s ", p->label);
    }
}

/* Minimal scan of the get_fields JSON: the name, type, list and arg flags of each entry. */
static int parse_fields(const char *json, field_t *out, int max) {
    int n = -1, depth = 0;
    const char *p = json;
    char key[32] = "";
    int want_value = 0;
    while (*p) {
        if (*p == '{') {
            depth++;
            if (depth == 1) {
                if (++n >= max) {
                    return -1;
                }
                memset(&out[n], 0, sizeof out[n]);
            }
            want_value = 0;
            p++;
        } else if (*p == '}') {
            depth--;
            p++;
        } else if (*p == '"') {
            const char *s = ++p;
            while (*p && *p != '"') {
                p += (*p == '\\' && p[1]) ? 2 : 1;
            }
            size_t len = (size_t)(p - s);
            if (*p) {
                p++;
            }
            if (want_value && n >= 0 && depth == 1) {
                if (strcmp(key, "name") == 0 && len < sizeof out[n].name) {
                    memcpy(out[n].name, s, len);
                    out[n].name[len] = 0;
                } else if (strcmp(key, "type") == 0 && len < sizeof out[n].type) {
                    memcpy(out[n].type, s, len);
                    out[n].type[len] = 0;
                }
                want_value = 0;
            } else if (len < sizeof key) {
                memcpy(key, s, len);
                key[len] = 0;
                want_value = 0;
            }
        } else if (*p == ':') {
            want_value = 1;
            p++;
        } else if (strncmp(p, "true", 4) == 0) {
            if (n >= 0 && depth == 2 && strcmp(key, "isIndex") == 0) {
                out[n].is_index = 1;
            }
            if (n >= 0 && depth == 2 && strcmp(key, "isKey") == 0) {
                out[n].is_key = 1;
            }
            if (n >= 0 && depth == 1 && strcmp(key, "isList") == 0) {
                out[n].is_list = 1;
            }
            want_value = 0;
            p += 4;
        } else {
            if (*p == ',') {
                want_value = 0;
            }
            p++;
        }
    }
    return n + 1;
}

static uint32_t ftype_of(const char *type) {
    static const struct {
        const char *name;
        uint32_t code;
    } types[] = {{"uint64", FTYPE_UINT64}, {"string", FTYPE_STRING}, {"reltime", FTYPE_RELTIME},
                 {"abstime", FTYPE_ABSTIME}, {"bool", FTYPE_BOOL},     {"ipaddr", FTYPE_IPADDR},
                 {"ipnet", FTYPE_IPNET}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(type, types[i].name) == 0) {
            return types[i].code;
        }
    }
    return 0;
}

static int version_ok(const char *v, char *why, size_t n) {
    unsigned maj, min, pat;
    if (!v || sscanf(v, "%u.%u.%u", &maj, &min, &pat) != 3) {
        snprintf(why, n, "invalid required API version '%s'", v ? v : "(null)");
        return 0;
    }
    if (maj != HOST_MAJOR || min > HOST_MINOR || (min == HOST_MINOR && pat > HOST_PATCH)) {
        snprintf(why, n, "required API version %s not compatible with %d.%d.%d", v, HOST_MAJOR, HOST_MINOR,
                 HOST_PATCH);
        return 0;
    }
    return 1;
}

static void print_value(FILE *out, const field_t *f, const ss_plugin_extract_field *x) {
    for (uint64_t i = 0; i < x->res_len; i++) {
        if (i) {
            fputc(',', out);
        }
        if (strcmp(f->type, "string") == 0 && escape_strings) {
            print_escaped(out, x->res.str[i]);
        } else if (strcmp(f->type, "string") == 0) {
            fputs(x->res.str[i], out);
        } else if (strcmp(f->type, "bool") == 0) {
            fputs(x->res.boolean[i] ? "true" : "false", out);
        } else if (strcmp(f->type, "ipaddr") == 0 || strcmp(f->type, "ipnet") == 0) {
            fprintf(out, "<%u bytes>", x->res.buf[i].len);
        } else {
            fprintf(out, "%llu", (unsigned long long)x->res.u64[i]);
        }
    }
    if (x->res_len == 0) {
        fputs("<none>", out);
    }
}

static void sigint_handler(int sig) { (void)sig; }

/* ---- async events and metrics ---------------------------------------------- */

#define ASYNC_EVENT 402u
#define ASYNC_NAME_OFFSET 42u /* header, three u32 lengths, the u32 plugin id */
#define HOST_ERRLEN 1024

/* What libsinsp checks of an async event (type, params, a declared name), then count it. */
static ss_plugin_rc async_handler(ss_plugin_owner_t *o, const ss_plugin_event *evt, char *err) {
    plugin_t *p = (plugin_t *)o;
    if (__atomic_load_n(&p->async_cleared, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_add(&p->async_late, 1, __ATOMIC_SEQ_CST);
        snprintf(err, HOST_ERRLEN, "async event sent with NULL handler");
        return SS_PLUGIN_FAILURE;
    }
    const uint8_t *raw = (const uint8_t *)evt;
    uint32_t lens[3];
    if (evt->type != ASYNC_EVENT || evt->nparams != 3 || evt->len < ASYNC_NAME_OFFSET) {
        snprintf(err, HOST_ERRLEN, "malformed async event");
        return SS_PLUGIN_FAILURE;
    }
    memcpy(lens, raw + 26, sizeof lens);
    const char *name = (const char *)raw + ASYNC_NAME_OFFSET;
    char quoted[128];
    snprintf(quoted, sizeof quoted, "\"%s\"", name);
    if (lens[0] != 4 || (uint64_t)ASYNC_NAME_OFFSET + lens[1] + lens[2] != evt->len || !strstr(p->async_names, quoted)) {
        snprintf(err, HOST_ERRLEN, "incompatible async event '%s'", name);
        return SS_PLUGIN_FAILURE;
    }
    if (p->queue_cap > 0) {
        pthread_mutex_lock(&p->async_lock);
        double t = now_ns();
        p->queue_pending -= p->queue_t > 0 ? (t - p->queue_t) / 1e9 * p->queue_rate : 0;
        p->queue_pending = p->queue_pending < 0 ? 0 : p->queue_pending;
        p->queue_t = t;
        int full = p->queue_pending + 1 > p->queue_cap;
        p->queue_pending += full ? 0 : 1;
        p->async_refused += full ? 1 : 0;
        pthread_mutex_unlock(&p->async_lock);
        if (full) {
            snprintf(err, HOST_ERRLEN, "async event queue is full");
            return SS_PLUGIN_FAILURE;
        }
    }
    __atomic_fetch_add(&p->async_count, 1, __ATOMIC_SEQ_CST);
    if (p->nreq && p->api.extract_fields) { /* --fields: extracted from once the handler is cleared */
        ss_plugin_event *copy = malloc(evt->len);
        pthread_mutex_lock(&p->async_lock);
        if (copy && p->nasync == p->capasync) {
            size_t cap = p->capasync ? 2 * p->capasync : 64;
            ss_plugin_event **grown = realloc(p->async_evts, cap * sizeof *grown);
            if (grown) {
                p->async_evts = grown;
                p->capasync = cap;
            }
        }
        if (copy && p->nasync < p->capasync) {
            memcpy(copy, evt, evt->len);
            p->async_evts[p->nasync++] = copy;
            copy = NULL;
        }
        pthread_mutex_unlock(&p->async_lock);
        free(copy);
    }
    if (!quiet) {
        flockfile(stdout);
        line_start(p, stdout);
        printf("async %s %.*s\n", name, (int)lens[2], (const char *)raw + ASYNC_NAME_OFFSET + lens[1]);
        funlockfile(stdout);
    }
    return SS_PLUGIN_SUCCESS;
}

static ss_plugin_rc dump_handler(ss_plugin_owner_t *o, const ss_plugin_event *evt, char *err) {
    (void)err;
    const uint8_t *raw = (const uint8_t *)evt;
    uint32_t lens[3];
    memcpy(lens, raw + 26, sizeof lens);
    line_start((plugin_t *)o, stdout);
    printf("dump %s %.*s\n", (const char *)raw + ASYNC_NAME_OFFSET, (int)lens[2],
           (const char *)raw + ASYNC_NAME_OFFSET + lens[1]);
    return SS_PLUGIN_SUCCESS;
}

static void extract_event(plugin_t *p, ss_plugin_event *evt);

/* --dump-state, then --async-seconds: 0, or 1 on a plugin failure. */
static int run_async(plugin_t *p) {
    const char *(*get_async_events)(void);
    ss_plugin_rc (*set_handler)(ss_plugin_t *, ss_plugin_owner_t *, ss_plugin_async_event_handler_t);
    ss_plugin_rc (*dump_state)(ss_plugin_t *, ss_plugin_owner_t *, ss_plugin_async_event_handler_t);
    *(void **)(&get_async_events) = dlsym(p->dl, "plugin_get_async_events");
    *(void **)(&set_handler) = dlsym(p->dl, "plugin_set_async_event_handler");
    *(void **)(&dump_state) = dlsym(p->dl, "plugin_dump_state");
    if (!get_async_events || !set_handler) {
        error(p, "the plugin has no async events capability");
        return 1;
    }
    p->async_names = get_async_events();
    if (p->dump) {
        if (!dump_state || dump_state(p->s, (ss_plugin_owner_t *)p, dump_handler) != SS_PLUGIN_SUCCESS) {
            error(p, "dump_state: %s", dump_state ? p->api.get_last_error(p->s) : "not exported");
            return 1;
        }
    }
    if (p->async_seconds <= 0) {
        return 0;
    }
    pthread_mutex_init(&p->async_lock, NULL);
    /* Each cycle is a live capture opening and closing (Falco's start/stop): the handler is set, the
     * plugin runs for async_seconds, the handler is cleared. The figures are those of the last cycle. */
    long cycles = p->async_cycles > 0 ? p->async_cycles : 1;
    unsigned long n = 0;
    double t0 = 0, t1 = 0, t2 = 0;
    ss_plugin_rc rc = SS_PLUGIN_SUCCESS;
    for (long c = 0; c < cycles && rc == SS_PLUGIN_SUCCESS; c++) {
        __atomic_store_n(&p->async_cleared, 0, __ATOMIC_SEQ_CST);
        if (set_handler(p->s, (ss_plugin_owner_t *)p, async_handler) != SS_PLUGIN_SUCCESS) {
            error(p, "set_async_event_handler: %s", p->api.get_last_error(p->s));
            return 1;
        }
        unsigned long before = __atomic_load_n(&p->async_count, __ATOMIC_SEQ_CST);
        t0 = now_ns();
        struct timespec pause = {(time_t)p->async_seconds,
                                 (long)((p->async_seconds - (double)(time_t)p->async_seconds) * 1e9)};
        while (nanosleep(&pause, &pause) != 0) {
        }
        n = __atomic_load_n(&p->async_count, __ATOMIC_SEQ_CST) - before;
        t1 = now_ns();
        rc = set_handler(p->s, (ss_plugin_owner_t *)p, NULL);
        t2 = now_ns();
        __atomic_store_n(&p->async_cleared, 1, __ATOMIC_SEQ_CST);
    }
    line_start(p, stdout);
    printf("async events=%lu late=%lu per_s=%.0f stop_ms=%.1f", __atomic_load_n(&p->async_count, __ATOMIC_SEQ_CST),
           __atomic_load_n(&p->async_late, __ATOMIC_SEQ_CST), (double)n / ((t1 - t0) / 1e9), (t2 - t1) / 1e6);
    if (p->queue_cap > 0) {
        printf(" queue_full=%lu", p->async_refused);
    }
    printf(cycles > 1 ? " cycles=%ld\n" : "\n", cycles);
    if (rc != SS_PLUGIN_SUCCESS) {
        error(p, "set_async_event_handler(NULL): %s", p->api.get_last_error(p->s));
        return 1;
    }
    /* The requested fields of every async event, as libsinsp extracts them once an event is taken
     * from its queue: on the host's thread, in order. */
    if (p->nasync && !p->line) {
        p->line = open_memstream(&p->line_buf, &p->line_len);
    }
    if (!p->evtsrc) {
        p->evtsrc = "syscall"; /* the source async events enter (get_async_event_sources aside) */
    }
    for (size_t i = 0; i < p->nasync; i++) {
        if (p->line) {
            extract_event(p, p->async_evts[i]);
        }
        free(p->async_evts[i]);
    }
    free(p->async_evts);
    p->async_evts = NULL;
    p->nasync = 0;
    return 0;
}

static const char *const metric_types[] = {"monotonic", "non_monotonic"};

static void print_metrics(const plugin_t *p) {
    ss_plugin_metric *(*get_metrics)(ss_plugin_t *, uint32_t *);
    *(void **)(&get_metrics) = dlsym(p->dl, "plugin_get_metrics");
    line_start(p, stdout);
    if (!get_metrics) {
        printf("metrics none\n");
        return;
    }
    uint32_t n = 0;
    ss_plugin_metric *m = get_metrics(p->s, &n);
    printf("metrics %u\n", n);
    for (uint32_t i = 0; i < n; i++) {
        const char *type = m[i].type <= 1 ? metric_types[m[i].type] : "?";
        line_start(p, stdout);
        printf("metric %s %s ", m[i].name, type);
        switch (m[i].value_type) {
        case SS_PLUGIN_METRIC_VALUE_TYPE_U32: printf("u32 %u\n", m[i].value.u32); break;
        case SS_PLUGIN_METRIC_VALUE_TYPE_S32: printf("s32 %d\n", m[i].value.s32); break;
        case SS_PLUGIN_METRIC_VALUE_TYPE_U64: printf("u64 %llu\n", (unsigned long long)m[i].value.u64); break;
        case SS_PLUGIN_METRIC_VALUE_TYPE_S64: printf("s64 %lld\n", (long long)m[i].value.s64); break;
        case SS_PLUGIN_METRIC_VALUE_TYPE_D: printf("d %.17g\n", m[i].value.d); break;
        case SS_PLUGIN_METRIC_VALUE_TYPE_F: printf("f %.9g\n", (double)m[i].value.f); break;
        default: printf("i %d\n", m[i].value.i); break;
        }
    }
    if (p->bench_metrics > 0) {
        double t0 = now_ns();
        for (long i = 0; i < p->bench_metrics; i++) {
            m = get_metrics(p->s, &n);
        }
        line_start(p, stdout);
        printf("bench metrics_ns_per_call %.1f\n", (now_ns() - t0) / (double)p->bench_metrics);
    }
}

/* dlopen, symbols, API version, then the field requests. 0, or the exit status. */
static int load(plugin_t *p) {
    p->label = p->path;
    p->dl = dlopen(p->path, RTLD_LAZY);
    if (!p->dl) {
        error(p, "can't load plugin dynamic library: %s", dlerror());
        return 1;
    }
    api_t *api = &p->api;
#define SYM(n) *(void **)(&api->n) = dlsym(p->dl, "plugin_" #n)
    SYM(get_required_api_version);
    SYM(get_name);
    SYM(get_version);
    SYM(get_init_schema);
    SYM(init);
    SYM(destroy);
    SYM(get_last_error);
    SYM(get_id);
    SYM(get_event_source);
    SYM(open);
    SYM(close);
    SYM(next_batch);
    SYM(get_fields);
    SYM(extract_fields);
#undef SYM
    if (!api->get_required_api_version || !api->get_name || !api->get_version || !api->init || !api->destroy ||
        !api->get_last_error) {
        error(p, "required symbol not implemented");
        return 1;
    }
    char why[256];
    if (!version_ok(api->get_required_api_version(), why, sizeof why)) {
        error(p, "%s", why);
        return 1;
    }
    p->label = api->get_name();
    printf("plugin %s %s\n", p->label, api->get_version());
    /* Like libsinsp, events carry the source's name; "plugin" for a plugin that has none. */
    const char *src = api->get_event_source ? api->get_event_source() : NULL;
    p->evtsrc = src && *src ? src : "plugin";

    p->nfields = api->get_fields && api->extract_fields ? parse_fields(api->get_fields(), p->fields, MAX_FIELDS) : 0;
    p->spec = p->fields_arg ? strdup(p->fields_arg) : NULL;
    char *save = NULL;
    for (char *tok = p->spec ? strtok_r(p->spec, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
        char *br = strchr(tok, '[');
        request_t *r = &p->req[p->nreq];
        memset(r, 0, sizeof *r);
        r->label = tok;
        r->id = -1;
        size_t nlen = br ? (size_t)(br - tok) : strlen(tok);
        if (br) {
            char *end = strchr(br, ']');
            if (!end) {
                error(p, "%s has unbalanced argument brackets", tok);
                return 2;
            }
            snprintf(r->arg, sizeof r->arg, "%.*s", (int)(end - br - 1), br + 1);
            r->has_arg = 1;
        }
        for (int i = 0; i < p->nfields; i++) {
            if (strlen(p->fields[i].name) == nlen && strncmp(p->fields[i].name, tok, nlen) == 0) {
                r->id = i;
            }
        }
        if (r->id < 0) {
            error(p, "unknown field %s", tok);
            return 2;
        }
        if (++p->nreq == MAX_FIELDS) {
            break;
        }
    }
    return 0;
}

static int init(plugin_t *p) {
    ss_plugin_schema_type stype = SS_PLUGIN_SCHEMA_NONE;
    const char *schema = p->api.get_init_schema ? p->api.get_init_schema(&stype) : NULL;
    const char *config = p->config;
    if (schema && *schema && stype == SS_PLUGIN_SCHEMA_JSON && !*config) {
        config = "{}"; /* as libsinsp does */
    }
    ss_plugin_init_input in = {config, (ss_plugin_owner_t *)p, owner_error, NULL, host_log};
    ss_plugin_rc rc = SS_PLUGIN_FAILURE;
    p->s = p->api.init(&in, &rc);
    if (rc != SS_PLUGIN_SUCCESS) {
        error(p, "could not initialize plugin: %s", p->s ? p->api.get_last_error(p->s) : "(no state)");
        return 1;
    }
    return 0;
}

static int has_source(const plugin_t *p) { return p->api.open && p->api.next_batch && p->api.close; }

static int open_source(plugin_t *p) {
    ss_plugin_rc rc = SS_PLUGIN_FAILURE;
    ss_instance_t *inst = p->api.open(p->s, p->params, &rc);
    if (rc != SS_PLUGIN_SUCCESS) {
        error(p, "open: %s", p->api.get_last_error(p->s));
        return 1;
    }
    p->inst = inst;
    p->line = open_memstream(&p->line_buf, &p->line_len);
    if (!p->line) {
        error(p, "cannot allocate an output buffer");
        return 1;
    }
    return 0;
}

static long limit_of(const plugin_t *p) {
    return p->bench_source ? p->bench_source : (p->bench_extract ? p->bench_extract : p->max_events);
}

/* One event: every requested field, one extract_fields call each (as libsinsp does), one output line. */
static void extract_event(plugin_t *p, ss_plugin_event *evt) {
    int print = !quiet && !p->bench_source && !p->bench_extract;
    p->num++;
    engine_work(engine_lines);
    engine_compute(engine_spin);
    ss_plugin_event_input ev = {evt, p->num, p->evtsrc};
    FILE *out = p->line;
    if (print) {
        fseeko(out, 0, SEEK_SET);
        line_start(p, out);
        fprintf(out, "evt %llu", (unsigned long long)p->num);
    }
    for (int k = 0; k < p->nreq; k++) {
        const request_t *r = &p->req[k];
        const field_t *fi = &p->fields[r->id];
        ss_plugin_extract_field f;
        memset(&f, 0, sizeof f);
        f.field_id = (uint32_t)r->id;
        f.field = fi->name;
        f.ftype = ftype_of(fi->type);
        f.flist = fi->is_list ? EPF_IS_LIST : 0;
        if (r->has_arg) {
            f.arg_present = 1;
            if (fi->is_index) {
                f.arg_index = strtoull(r->arg, NULL, 10);
            } else {
                f.arg_key = r->arg;
            }
        }
        ss_plugin_field_extract_input xi;
        memset(&xi, 0, sizeof xi);
        xi.owner = (ss_plugin_owner_t *)p;
        xi.get_owner_last_error = owner_error;
        xi.num_fields = 1;
        xi.fields = &f;
        engine_work(engine_lines / 4);
        /* In a Falco-like run only the whole loop is timed: a clock read per
         * call would be host work libsinsp does not do. */
        double t1 = engine_on ? 0 : now_ns();
        ss_plugin_rc xr = p->api.extract_fields(p->s, &ev, &xi);
        if (!engine_on) {
            p->ext_ns += now_ns() - t1;
        }
        p->ext_calls++;
        if (xr == SS_PLUGIN_SUCCESS && f.res_len) {
            p->sink += f.res.u64 ? 1 : 0;
        }
        if (print) {
            fprintf(out, " %s=", r->label);
            if (xr != SS_PLUGIN_SUCCESS && escape_strings) {
                fputs("<error: ", out);
                print_escaped(out, p->api.get_last_error(p->s));
                fputc('>', out);
            } else if (xr != SS_PLUGIN_SUCCESS) {
                fprintf(out, "<error: %s>", p->api.get_last_error(p->s));
            } else {
                print_value(out, fi, &f);
            }
        }
    }
    if (print) {
        /* One write per line: sources on other threads print their own lines meanwhile. */
        fputc('\n', out);
        fflush(out);
        fwrite(p->line_buf, 1, p->line_len, stdout);
    }
}

/* One next_batch call and its events; sets done at EOF, on failure, or at the event limit. */
static void step(plugin_t *p) {
    long limit = limit_of(p);
    if (limit >= 0 && (long)p->num >= limit) {
        p->done = 1;
        return;
    }
    uint32_t n = 0;
    ss_plugin_event **evts = NULL;
    double t0 = now_ns();
    p->rc = p->api.next_batch(p->s, p->inst, &n, &evts);
    p->src_ns += now_ns() - t0;
    if (p->rc == SS_PLUGIN_TIMEOUT) {
        return;
    }
    if (p->rc != SS_PLUGIN_SUCCESS && p->rc != SS_PLUGIN_EOF) {
        error(p, "next_batch: %s", p->api.get_last_error(p->s));
        p->failed = 1;
        p->done = 1;
        return;
    }
    for (uint32_t i = 0; i < n && (limit < 0 || (long)p->num < limit); i++) {
        extract_event(p, evts[i]);
    }
    if (p->rc == SS_PLUGIN_EOF) {
        p->done = 1;
    }
}

/* --events: every event of the file through extract_event. 0, or the exit status. */
static int run_event_file(plugin_t *p) {
    if (!p->api.extract_fields) {
        error(p, "--events needs a plugin with field extraction");
        return 2;
    }
    FILE *fp = fopen(p->events_path, "rb");
    p->line = open_memstream(&p->line_buf, &p->line_len);
    if (!fp || !p->line) {
        error(p, "cannot read %s", p->events_path);
        if (fp) {
            fclose(fp);
        }
        return 2;
    }
    int status = 0;
    unsigned char size_le[4];
    while (fread(size_le, 1, 4, fp) == 4) {
        uint32_t size = (uint32_t)size_le[0] | (uint32_t)size_le[1] << 8 | (uint32_t)size_le[2] << 16 |
                        (uint32_t)size_le[3] << 24;
        ss_plugin_event *evt = size >= 26 ? malloc(size) : NULL;
        if (!evt || fread(evt, 1, size, fp) != size || evt->len != size) {
            error(p, "%s: event %llu is not a whole event of %u bytes", p->events_path,
                  (unsigned long long)p->num + 1, size);
            free(evt);
            status = 2;
            break;
        }
        extract_event(p, evt);
        free(evt);
    }
    fclose(fp);
    p->done = 1;
    return status;
}

static void *run_step(void *arg) {
    step((plugin_t *)arg);
    return NULL;
}

static void *run_source(void *arg) {
    plugin_t *p = (plugin_t *)arg;
    while (!p->done) {
        step(p);
    }
    return NULL;
}

static void report(const plugin_t *p) {
    if (p->metrics) {
        print_metrics(p);
    }
    if (p->events_path) {
        line_start(p, stdout);
        printf("done events=%llu\n", (unsigned long long)p->num);
        return;
    }
    if (!has_source(p) || p->skip_source) {
        line_start(p, stdout);
        printf("done events=0 rc=no-source\n");
        return;
    }
    if (p->bench_source) {
        line_start(p, stdout);
        printf("bench source_ns_per_event %.1f\n", p->num ? p->src_ns / (double)p->num : 0.0);
    }
    if (p->bench_extract && !engine_on) { /* calls are not timed one by one with host work */
        line_start(p, stdout);
        printf("bench extract_ns_per_call %.1f\n", p->ext_calls ? p->ext_ns / (double)p->ext_calls : 0.0);
    }
    line_start(p, stdout);
    printf("done events=%llu rc=%d\n", (unsigned long long)p->num, (int)p->rc);
}

/* What Falco does at teardown: close the sources, destroy the states, then unload the libraries. */
static void unload(plugin_t *ps, int n) {
    for (int k = 0; k < n; k++) {
        if (ps[k].inst) {
            ps[k].api.close(ps[k].s, ps[k].inst);
            ps[k].inst = NULL;
        }
        if (ps[k].s) {
            ps[k].api.destroy(ps[k].s);
            ps[k].s = NULL;
        }
    }
    for (int k = 0; k < n; k++) {
        if (ps[k].dl) {
            dlclose(ps[k].dl);
            ps[k].dl = NULL;
        }
        free(ps[k].spec);
        ps[k].spec = NULL;
        if (ps[k].line) {
            fclose(ps[k].line);
            free(ps[k].line_buf);
            ps[k].line = NULL;
        }
    }
}

static int usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s LIB [--config S] [--open S] [--fields a,b] [-n N] [--bench-source N] [--bench-extract N]\n"
            "       [--async-seconds S] [--async-cycles N] [--async-queue CAP:RATE] [--dump-state] [--metrics] [--bench-metrics N] [--events FILE]\n"
            "       [--lib LIB [same options]]... [--threads] [--thread-per-batch] [--quiet] [--engine-work LINES] [--engine-spin INSTR]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv) {
    static plugin_t ps[MAX_LIBS];
    int nlibs = 0, cur = 0, threads = 0, thread_per_batch = 0;
    for (int k = 0; k < MAX_LIBS; k++) {
        ps[k].config = "";
        ps[k].params = "";
        ps[k].max_events = -1;
    }
    for (int i = 1; i < argc; i++) {
        plugin_t *p = &ps[cur];
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            p->config = argv[++i];
        } else if (!strcmp(argv[i], "--open") && i + 1 < argc) {
            p->params = argv[++i];
        } else if (!strcmp(argv[i], "--fields") && i + 1 < argc) {
            p->fields_arg = argv[++i];
        } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            p->max_events = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--bench-source") && i + 1 < argc) {
            p->bench_source = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--bench-extract") && i + 1 < argc) {
            p->bench_extract = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--async-seconds") && i + 1 < argc) {
            p->async_seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--async-queue") && i + 1 < argc) {
            char *rest;
            p->queue_cap = strtod(argv[++i], &rest);
            p->queue_rate = *rest == ':' ? strtod(rest + 1, NULL) : 0;
        } else if (!strcmp(argv[i], "--async-cycles") && i + 1 < argc) {
            p->async_cycles = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--dump-state")) {
            p->dump = 1;
        } else if (!strcmp(argv[i], "--metrics")) {
            p->metrics = 1;
        } else if (!strcmp(argv[i], "--bench-metrics") && i + 1 < argc) {
            p->metrics = 1;
            p->bench_metrics = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--events") && i + 1 < argc) {
            p->events_path = argv[++i];
            escape_strings = 1;
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (!strcmp(argv[i], "--engine-work") && i + 1 < argc) {
            engine_lines = (unsigned)strtoul(argv[++i], NULL, 10);
            engine_on = 1;
        } else if (!strcmp(argv[i], "--engine-spin") && i + 1 < argc) {
            engine_spin = (unsigned)strtoul(argv[++i], NULL, 10);
            engine_on = 1;
        } else if (!strcmp(argv[i], "--threads")) {
            threads = 1;
        } else if (!strcmp(argv[i], "--thread-per-batch")) {
            thread_per_batch = 1;
        } else if (((!strcmp(argv[i], "--lib") && i + 1 < argc) || (!nlibs && argv[i][0] != '-')) &&
                   nlibs < MAX_LIBS) {
            cur = nlibs++;
            ps[cur].path = argv[i][0] == '-' ? argv[++i] : argv[i];
        } else {
            return usage(argv[0]);
        }
    }
    if (!nlibs) {
        fprintf(stderr, "missing plugin library\n");
        return 2;
    }
    multi = nlibs > 1;
    if (engine_lines && !(engine_buf = calloc(1, ENGINE_BYTES))) {
        fprintf(stderr, "out of memory for --engine-work\n");
        return 2;
    }

    /* A host-installed handler that the plugins must leave alone. */
    struct sigaction sa, before, after, pipe_before, pipe_after;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sigint_handler;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGINT, NULL, &before);
    /* SIGPIPE stays at its default action, as Falco leaves it: a write to a closed socket on a
     * thread that has not blocked SIGPIPE ends the process. */
    sigaction(SIGPIPE, NULL, &pipe_before);

    int status = 0;
    for (int k = 0; k < nlibs && !status; k++) {
        status = load(&ps[k]);
        for (int j = 0; j < k && !status; j++) {
            if (strcmp(ps[j].label, ps[k].label) == 0) { /* the same plugin twice: "<name>#<position>" */
                snprintf(ps[k].label_buf, sizeof ps[k].label_buf, "%s#%d", ps[k].api.get_name(), k + 1);
                ps[k].label = ps[k].label_buf;
                break;
            }
        }
    }
    for (int k = 0; k < nlibs && !status; k++) {
        status = init(&ps[k]);
    }
    if (!status) {
        sigaction(SIGINT, NULL, &after);
        sigaction(SIGPIPE, NULL, &pipe_after);
        int same = after.sa_handler == before.sa_handler && pipe_after.sa_handler == pipe_before.sa_handler;
        printf("signals: %s\n", same ? "unchanged" : "CHANGED");
    }
    for (int k = 0; k < nlibs && !status; k++) {
        if (ps[k].async_seconds > 0 || ps[k].dump) {
            status = run_async(&ps[k]);
            ps[k].skip_source = ps[k].async_seconds > 0 && ps[k].max_events < 0; /* the async run was the point */
        }
    }
    for (int k = 0; k < nlibs && !status; k++) {
        if (ps[k].events_path) {
            status = run_event_file(&ps[k]);
        } else if (has_source(&ps[k]) && !ps[k].skip_source) {
            status = open_source(&ps[k]);
        } else {
            ps[k].done = 1;
        }
    }
    if (status) {
        unload(ps, nlibs);
        return status;
    }

    if (threads) {
        pthread_t tid[MAX_LIBS];
        int started[MAX_LIBS] = {0};
        for (int k = 0; k < nlibs; k++) {
            started[k] = !ps[k].done && pthread_create(&tid[k], NULL, run_source, &ps[k]) == 0;
            if (!ps[k].done && !started[k]) {
                error(&ps[k], "cannot start a thread");
                ps[k].failed = 1;
            }
        }
        for (int k = 0; k < nlibs; k++) {
            if (started[k]) {
                pthread_join(tid[k], NULL);
            }
        }
    } else {
        double loop0 = now_ns();
        for (int active = 1; active;) {
            active = 0;
            for (int k = 0; k < nlibs; k++) {
                if (!ps[k].done && !ps[k].failed) {
                    pthread_t once;
                    if (!thread_per_batch) {
                        step(&ps[k]);
                    } else if (pthread_create(&once, NULL, run_step, &ps[k]) == 0) {
                        pthread_join(once, NULL);
                    } else {
                        error(&ps[k], "cannot start a thread");
                        ps[k].failed = 1;
                    }
                    active |= !ps[k].done;
                }
            }
        }
        if (!multi && (ps[0].bench_source || ps[0].bench_extract) && ps[0].num) {
            /* The whole loop, host work included: what a ratio inside Falco compares. */
            printf("bench loop_ns_per_event %.1f\n", (now_ns() - loop0) / (double)ps[0].num);
        }
    }
    for (int k = 0; k < nlibs; k++) {
        report(&ps[k]);
        status |= ps[k].failed;
    }
    /* A plugin may also change a disposition later (when its workers start, say). */
    sigaction(SIGINT, NULL, &after);
    sigaction(SIGPIPE, NULL, &pipe_after);
    if (after.sa_handler != before.sa_handler || pipe_after.sa_handler != pipe_before.sa_handler) {
        printf("signals: CHANGED by the end of the run\n");
    }
    fflush(stdout);
    unload(ps, nlibs);
    return status;
}
