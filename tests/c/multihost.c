/*
 * multihost: two plugin libraries in one non-Python process, the way Falco
 * loads them (dlopen RTLD_LAZY, every symbol looked up by name).
 *
 *   multihost [--threads] LIB1 OPEN1 FIELD1 LIB2 OPEN2 FIELD2
 *
 * Inits both plugins, opens both sources, then takes one batch from each in
 * turn until both reach EOF, extracting FIELDn (a string field) from every
 * event with the plugin that produced it. With --threads each source is read
 * on its own thread, concurrently, as Falco does with several event sources.
 * Finally closes, destroys and dlcloses both and exits 0.
 *
 * Output: "<plugin> evt <n> <field>=<value>" per event, then
 * "done <plugin1>=<n1> <plugin2>=<n2>". Any failure: message on stderr, exit 1.
 *
 * Field ids are found by counting the `{"name":` entries of the compact
 * get_fields JSON the SDK produces; enough for SDK-built libraries.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_abi.h"

typedef struct {
    const char *label;
    void *dl;
    const char *(*get_name)(void);
    const char *(*get_init_schema)(ss_plugin_schema_type *);
    ss_plugin_t *(*init)(const ss_plugin_init_input *, ss_plugin_rc *);
    void (*destroy)(ss_plugin_t *);
    const char *(*get_last_error)(ss_plugin_t *);
    ss_instance_t *(*open)(ss_plugin_t *, const char *, ss_plugin_rc *);
    void (*close)(ss_plugin_t *, ss_instance_t *);
    ss_plugin_rc (*next_batch)(ss_plugin_t *, ss_instance_t *, uint32_t *, ss_plugin_event ***);
    const char *(*get_fields)(void);
    const char *(*event_source)(void);
    ss_plugin_rc (*extract_fields)(ss_plugin_t *, const ss_plugin_event_input *, const ss_plugin_field_extract_input *);
    ss_plugin_t *state;
    ss_instance_t *inst;
    const char *field;
    int field_id;
    int eof;
    uint64_t events;
} plugin_t;

static int fail(plugin_t *p, const char *what) {
    fprintf(stderr, "error: %s: %s: %s\n", p->label, what, p->state ? p->get_last_error(p->state) : dlerror());
    return 1;
}

static int field_id(const char *json, const char *name) {
    char needle[256];
    snprintf(needle, sizeof needle, "{\"name\":\"%s\"", name);
    const char *hit = strstr(json, needle);
    if (!hit) {
        return -1;
    }
    int id = 0;
    for (const char *p = strstr(json, "{\"name\":"); p && p < hit; p = strstr(p + 1, "{\"name\":")) {
        id++;
    }
    return id;
}

static int load(plugin_t *p, const char *lib, const char *params, const char *field) {
    p->label = lib;
    p->field = field;
    p->dl = dlopen(lib, RTLD_LAZY);
    if (!p->dl) {
        fprintf(stderr, "error: can't load plugin dynamic library: %s\n", dlerror());
        return 1;
    }
#define SYM(member, name) *(void **)(&p->member) = dlsym(p->dl, "plugin_" name)
    SYM(get_name, "get_name");
    SYM(get_init_schema, "get_init_schema");
    SYM(init, "init");
    SYM(destroy, "destroy");
    SYM(get_last_error, "get_last_error");
    SYM(open, "open");
    SYM(close, "close");
    SYM(next_batch, "next_batch");
    SYM(get_fields, "get_fields");
    SYM(event_source, "get_event_source");
    SYM(extract_fields, "extract_fields");
#undef SYM
    if (!p->get_name || !p->init || !p->open || !p->next_batch || !p->get_fields || !p->extract_fields) {
        fprintf(stderr, "error: %s: not a source + extraction plugin\n", lib);
        return 1;
    }
    p->label = p->get_name();
    p->field_id = field_id(p->get_fields(), field);
    if (p->field_id < 0) {
        fprintf(stderr, "error: %s: no field %s\n", p->label, field);
        return 1;
    }
    ss_plugin_schema_type stype = SS_PLUGIN_SCHEMA_NONE;
    const char *schema = p->get_init_schema ? p->get_init_schema(&stype) : NULL;
    ss_plugin_init_input in;
    memset(&in, 0, sizeof in);
    in.config = schema && *schema ? "{}" : "";
    ss_plugin_rc rc = SS_PLUGIN_FAILURE;
    p->state = p->init(&in, &rc);
    if (rc != SS_PLUGIN_SUCCESS) {
        return fail(p, "init");
    }
    p->inst = p->open(p->state, params, &rc);
    if (rc != SS_PLUGIN_SUCCESS) {
        return fail(p, "open");
    }
    return 0;
}

/* One batch from p, each event's field printed; returns 1 on failure. */
static int step(plugin_t *p) {
    uint32_t n = 0;
    ss_plugin_event **evts = NULL;
    ss_plugin_rc rc = p->next_batch(p->state, p->inst, &n, &evts);
    if (rc == SS_PLUGIN_EOF) {
        p->eof = 1;
    } else if (rc != SS_PLUGIN_SUCCESS && rc != SS_PLUGIN_TIMEOUT) {
        return fail(p, "next_batch");
    }
    for (uint32_t i = 0; i < n; i++) {
        ss_plugin_event_input ev = {evts[i], ++p->events, p->event_source()};
        ss_plugin_extract_field f;
        memset(&f, 0, sizeof f);
        f.field_id = (uint32_t)p->field_id;
        f.field = p->field;
        f.ftype = FTYPE_STRING;
        ss_plugin_field_extract_input xi;
        memset(&xi, 0, sizeof xi);
        xi.num_fields = 1;
        xi.fields = &f;
        if (p->extract_fields(p->state, &ev, &xi) != SS_PLUGIN_SUCCESS) {
            return fail(p, "extract_fields");
        }
        printf("%s evt %llu %s=%s\n", p->label, (unsigned long long)p->events, p->field,
               f.res_len ? f.res.str[0] : "<none>");
    }
    return 0;
}

static void *run_source(void *arg) {
    plugin_t *p = (plugin_t *)arg;
    while (!p->eof) {
        if (step(p)) {
            return p;
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 && strcmp(argv[1], "--threads") == 0;
    if (argc != 7 + threads) {
        fprintf(stderr, "usage: %s [--threads] LIB1 OPEN1 FIELD1 LIB2 OPEN2 FIELD2\n", argv[0]);
        return 2;
    }
    char **args = argv + threads;
    plugin_t p[2];
    memset(p, 0, sizeof p);
    for (int k = 0; k < 2; k++) {
        if (load(&p[k], args[1 + 3 * k], args[2 + 3 * k], args[3 + 3 * k])) {
            return 1;
        }
    }
    if (threads) {
        pthread_t tid[2];
        void *failed[2] = {NULL, NULL};
        for (int k = 0; k < 2; k++) {
            if (pthread_create(&tid[k], NULL, run_source, &p[k]) != 0) {
                fprintf(stderr, "error: cannot start a thread\n");
                return 1;
            }
        }
        for (int k = 0; k < 2; k++) {
            pthread_join(tid[k], &failed[k]);
        }
        if (failed[0] || failed[1]) {
            return 1;
        }
    }
    while (!p[0].eof || !p[1].eof) {
        for (int k = 0; k < 2; k++) {
            if (!p[k].eof && step(&p[k])) {
                return 1;
            }
        }
    }
    printf("done %s=%llu %s=%llu\n", p[0].label, (unsigned long long)p[0].events, p[1].label,
           (unsigned long long)p[1].events);
    fflush(stdout);
    for (int k = 0; k < 2; k++) {
        p[k].close(p[k].state, p[k].inst);
        p[k].destroy(p[k].state);
    }
    for (int k = 0; k < 2; k++) {
        dlclose(p[k].dl);
    }
    return 0;
}
