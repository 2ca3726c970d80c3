/*
 * falco-plugin-chost: a plain C program that loads one plugin library the way
 * libsinsp does (dlopen RTLD_LAZY, symbols by name, numeric API version
 * check), runs its source and extracts fields, then unloads it and exits.
 *
 * It exists to prove what only a non-Python process can: that a library built
 * by the SDK starts Python by itself, leaves the host's signal handlers alone,
 * survives dlclose + exit, and how fast it is when called from C.
 *
 *   falco-plugin-chost LIB [--config S] [--open S] [--fields f1,f2] [-n N]
 *                          [--bench-source N] [--bench-extract N] [--quiet]
 *
 * Output: one line per event, "evt <num> <field>=<value> ...", then
 * "done events=<n> rc=<last rc>". Bench mode prints "bench <what> <ns>".
 * Exit status: 0 on success, 1 on a plugin failure, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
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

typedef struct {
    const char *(*get_required_api_version)(void);
    const char *(*get_name)(void);
    const char *(*get_version)(void);
    const char *(*get_init_schema)(ss_plugin_schema_type *);
    ss_plugin_t *(*init)(const ss_plugin_init_input *, ss_plugin_rc *);
    void (*destroy)(ss_plugin_t *);
    const char *(*get_last_error)(ss_plugin_t *);
    uint32_t (*get_id)(void);
    ss_instance_t *(*open)(ss_plugin_t *, const char *, ss_plugin_rc *);
    void (*close)(ss_plugin_t *, ss_instance_t *);
    ss_plugin_rc (*next_batch)(ss_plugin_t *, ss_instance_t *, uint32_t *, ss_plugin_event ***);
    const char *(*get_fields)(void);
    ss_plugin_rc (*extract_fields)(ss_plugin_t *, const ss_plugin_event_input *, const ss_plugin_field_extract_input *);
} api_t;

typedef struct {
    char name[128];
    char type[16];
    int is_index, is_key;
} field_t;

typedef struct {
    int id;
    char arg[128];
    int has_arg;
    const char *label;
} request_t;

static int quiet;

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

/* Minimal scan of the get_fields JSON: the name, type and arg flags of each entry. */
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

static void print_value(const field_t *f, const ss_plugin_extract_field *x) {
    for (uint64_t i = 0; i < x->res_len; i++) {
        if (i) {
            putchar(',');
        }
        if (strcmp(f->type, "string") == 0) {
            fputs(x->res.str[i], stdout);
        } else if (strcmp(f->type, "bool") == 0) {
            fputs(x->res.boolean[i] ? "true" : "false", stdout);
        } else if (strcmp(f->type, "ipaddr") == 0 || strcmp(f->type, "ipnet") == 0) {
            printf("<%u bytes>", x->res.buf[i].len);
        } else {
            printf("%llu", (unsigned long long)x->res.u64[i]);
        }
    }
    if (x->res_len == 0) {
        fputs("<none>", stdout);
    }
}

static void sigint_handler(int sig) { (void)sig; }

int main(int argc, char **argv) {
    const char *lib = NULL, *config = "", *params = "", *fields_arg = NULL;
    long max_events = -1, bench_source = 0, bench_extract = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config = argv[++i];
        } else if (!strcmp(argv[i], "--open") && i + 1 < argc) {
            params = argv[++i];
        } else if (!strcmp(argv[i], "--fields") && i + 1 < argc) {
            fields_arg = argv[++i];
        } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            max_events = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--bench-source") && i + 1 < argc) {
            bench_source = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--bench-extract") && i + 1 < argc) {
            bench_extract = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (!lib && argv[i][0] != '-') {
            lib = argv[i];
        } else {
            fprintf(stderr, "usage: %s LIB [--config S] [--open S] [--fields a,b] [-n N] "
                            "[--bench-source N] [--bench-extract N] [--quiet]\n", argv[0]);
            return 2;
        }
    }
    if (!lib) {
        fprintf(stderr, "missing plugin library\n");
        return 2;
    }

    /* A host-installed handler that the plugin must leave alone. */
    struct sigaction sa, before, after;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sigint_handler;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGINT, NULL, &before);

    void *h = dlopen(lib, RTLD_LAZY);
    if (!h) {
        fprintf(stderr, "error: can't load plugin dynamic library: %s\n", dlerror());
        return 1;
    }
    api_t api;
#define SYM(n) *(void **)(&api.n) = dlsym(h, "plugin_" #n)
    SYM(get_required_api_version);
    SYM(get_name);
    SYM(get_version);
    SYM(get_init_schema);
    SYM(init);
    SYM(destroy);
    SYM(get_last_error);
    SYM(get_id);
    SYM(open);
    SYM(close);
    SYM(next_batch);
    SYM(get_fields);
    SYM(extract_fields);
#undef SYM
    if (!api.get_required_api_version || !api.get_name || !api.get_version || !api.init || !api.destroy ||
        !api.get_last_error) {
        fprintf(stderr, "error: required symbol not implemented\n");
        return 1;
    }
    char why[256];
    if (!version_ok(api.get_required_api_version(), why, sizeof why)) {
        fprintf(stderr, "error: %s\n", why);
        return 1;
    }
    printf("plugin %s %s\n", api.get_name(), api.get_version());

    field_t fields[MAX_FIELDS];
    int nfields = api.get_fields ? parse_fields(api.get_fields(), fields, MAX_FIELDS) : 0;
    request_t req[MAX_FIELDS];
    int nreq = 0;
    char *spec = fields_arg ? strdup(fields_arg) : NULL;
    for (char *tok = spec ? strtok(spec, ",") : NULL; tok; tok = strtok(NULL, ",")) {
        char *br = strchr(tok, '[');
        request_t *r = &req[nreq];
        memset(r, 0, sizeof *r);
        r->label = tok;
        r->id = -1;
        size_t nlen = br ? (size_t)(br - tok) : strlen(tok);
        if (br) {
            char *end = strchr(br, ']');
            if (!end) {
                fprintf(stderr, "error: %s has unbalanced argument brackets\n", tok);
                return 2;
            }
            snprintf(r->arg, sizeof r->arg, "%.*s", (int)(end - br - 1), br + 1);
            r->has_arg = 1;
        }
        for (int i = 0; i < nfields; i++) {
            if (strlen(fields[i].name) == nlen && strncmp(fields[i].name, tok, nlen) == 0) {
                r->id = i;
            }
        }
        if (r->id < 0) {
            fprintf(stderr, "error: unknown field %s\n", tok);
            return 2;
        }
        if (++nreq == MAX_FIELDS) {
            break;
        }
    }

    ss_plugin_schema_type stype = SS_PLUGIN_SCHEMA_NONE;
    const char *schema = api.get_init_schema ? api.get_init_schema(&stype) : NULL;
    if (schema && *schema && stype == SS_PLUGIN_SCHEMA_JSON && !*config) {
        config = "{}"; /* as libsinsp does */
    }
    ss_plugin_init_input in = {config, (ss_plugin_owner_t *)&api, owner_error, NULL, host_log};
    ss_plugin_rc rc = SS_PLUGIN_FAILURE;
    ss_plugin_t *s = api.init(&in, &rc);
    if (rc != SS_PLUGIN_SUCCESS) {
        fprintf(stderr, "error: could not initialize plugin: %s\n", s ? api.get_last_error(s) : "(no state)");
        if (s) {
            api.destroy(s);
        }
        dlclose(h);
        return 1;
    }
    sigaction(SIGINT, NULL, &after);
    printf("signals: %s\n", after.sa_handler == before.sa_handler ? "unchanged" : "CHANGED");
    if (!api.open || !api.next_batch || !api.close) {
        printf("done events=0 rc=no-source\n");
        api.destroy(s);
        dlclose(h);
        return 0;
    }
    ss_instance_t *inst = api.open(s, params, &rc);
    if (rc != SS_PLUGIN_SUCCESS) {
        fprintf(stderr, "error: open: %s\n", api.get_last_error(s));
        api.destroy(s);
        dlclose(h);
        return 1;
    }

    uint64_t num = 0;
    int status = 0;
    double src_ns = 0, ext_ns = 0;
    uint64_t ext_calls = 0, sink = 0;
    long limit = bench_source ? bench_source : (bench_extract ? bench_extract : max_events);
    while (limit < 0 || (long)num < limit) {
        uint32_t n = 0;
        ss_plugin_event **evts = NULL;
        double t0 = now_ns();
        rc = api.next_batch(s, inst, &n, &evts);
        src_ns += now_ns() - t0;
        if (rc == SS_PLUGIN_TIMEOUT) {
            continue;
        }
        if (rc != SS_PLUGIN_SUCCESS && rc != SS_PLUGIN_EOF) {
            fprintf(stderr, "error: next_batch: %s\n", api.get_last_error(s));
            status = 1;
            break;
        }
        for (uint32_t i = 0; i < n && (limit < 0 || (long)num < limit); i++) {
            num++;
            ss_plugin_event_input ev = {evts[i], num, "plugin"};
            if (!quiet && !bench_source && !bench_extract) {
                printf("evt %llu", (unsigned long long)num);
            }
            for (int k = 0; k < nreq; k++) {
                ss_plugin_extract_field f;
                memset(&f, 0, sizeof f);
                f.field_id = (uint32_t)req[k].id;
                f.field = fields[req[k].id].name;
                if (req[k].has_arg) {
                    f.arg_present = 1;
                    if (fields[req[k].id].is_index) {
                        f.arg_index = strtoull(req[k].arg, NULL, 10);
                    } else {
                        f.arg_key = req[k].arg;
                    }
                }
                ss_plugin_field_extract_input xi;
                memset(&xi, 0, sizeof xi);
                xi.owner = &api;
                xi.get_owner_last_error = owner_error;
                xi.num_fields = 1;
                xi.fields = &f;
                double t1 = now_ns();
                ss_plugin_rc xr = api.extract_fields(s, &ev, &xi);
                ext_ns += now_ns() - t1;
                ext_calls++;
                if (xr == SS_PLUGIN_SUCCESS && f.res_len) {
                    sink += f.res.u64 ? 1 : 0;
                }
                if (!quiet && !bench_source && !bench_extract) {
                    printf(" %s=", req[k].label);
                    if (xr != SS_PLUGIN_SUCCESS) {
                        printf("<error: %s>", api.get_last_error(s));
                    } else {
                        print_value(&fields[req[k].id], &f);
                    }
                }
            }
            if (!quiet && !bench_source && !bench_extract) {
                putchar('\n');
            }
        }
        if (rc == SS_PLUGIN_EOF) {
            break;
        }
    }
    if (bench_source) {
        printf("bench source_ns_per_event %.1f\n", num ? src_ns / (double)num : 0.0);
    }
    if (bench_extract) {
        printf("bench extract_ns_per_call %.1f\n", ext_calls ? ext_ns / (double)ext_calls : 0.0);
    }
    printf("done events=%llu rc=%d\n", (unsigned long long)num, (int)rc);
    fflush(stdout);
    api.close(s, inst);
    api.destroy(s);
    dlclose(h);
    (void)sink;
    free(spec);
    return status;
}
