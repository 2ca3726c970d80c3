/*
 * A minimal libsinsp-like host for the state table benchmark: one `threads`
 * table (int64 tid keys 1..NTHREADS, fields tid and comm, plus the fields
 * plugins add), offered through the plugin API's vtables, and timing loops
 * around plugin_parse_event and plugin_extract_fields.
 *
 *   tables_host LIB --parse N        ->  "bench parse_ns_per_call X"
 *   tables_host LIB --extract N      ->  "bench extract_ns_per_call X" (field id 0, one per call)
 *   tables_host LIB --check N        ->  "count tid=T value=V" for each thread after N parsed events
 *
 * The table is as cheap as a table can be (an array; entries need no
 * release), so the numbers are the plugin's own cost plus the vtable calls.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin_abi.h"

#define NTHREADS 64
#define NFIELDS 16

typedef struct {
    int64_t tid;
    uint64_t u[NFIELDS];
    const char *s[NFIELDS];
} entry_t;

static entry_t g_entries[NTHREADS];
static ss_plugin_table_fieldinfo g_fields[NFIELDS];
static char g_names[NFIELDS][64];
static uint32_t g_nfields;
static int g_table; /* its address is the table pointer */
static ss_plugin_table_info g_info = {"threads", SS_PLUGIN_ST_INT64};

static const char *owner_err(ss_plugin_owner_t *o) { return ""; }

static ss_plugin_table_info *list_tables(ss_plugin_owner_t *o, uint32_t *n) {
    *n = 1;
    return &g_info;
}

static ss_plugin_table_t *get_table(ss_plugin_owner_t *o, const char *name, ss_plugin_state_type k) {
    return strcmp(name, "threads") == 0 && k == SS_PLUGIN_ST_INT64 ? &g_table : NULL;
}

static ss_plugin_rc add_table(ss_plugin_owner_t *o, const ss_plugin_table_input *in) { return SS_PLUGIN_FAILURE; }

static const ss_plugin_table_fieldinfo *list_fields(ss_plugin_table_t *t, uint32_t *n) {
    *n = g_nfields;
    return g_fields;
}

static ss_plugin_table_field_t *field_of(ss_plugin_table_t *t, const char *name, ss_plugin_state_type type, int add) {
    for (uint32_t i = 0; i < g_nfields; i++) {
        if (strcmp(g_fields[i].name, name) == 0) {
            return g_fields[i].field_type == type ? (ss_plugin_table_field_t *)(uintptr_t)(i + 1) : NULL;
        }
    }
    if (!add || g_nfields == NFIELDS) {
        return NULL;
    }
    snprintf(g_names[g_nfields], sizeof g_names[0], "%s", name);
    g_fields[g_nfields] = (ss_plugin_table_fieldinfo){g_names[g_nfields], type, 0};
    return (ss_plugin_table_field_t *)(uintptr_t)(++g_nfields);
}

static ss_plugin_table_field_t *get_field(ss_plugin_table_t *t, const char *n, ss_plugin_state_type ty) {
    return field_of(t, n, ty, 0);
}

static ss_plugin_table_field_t *add_field(ss_plugin_table_t *t, const char *n, ss_plugin_state_type ty) {
    return field_of(t, n, ty, 1);
}

static const char *table_name(ss_plugin_table_t *t) { return "threads"; }
static uint64_t table_size(ss_plugin_table_t *t) { return NTHREADS; }

static ss_plugin_table_entry_t *get_entry(ss_plugin_table_t *t, const ss_plugin_state_data *key) {
    return key->s64 >= 1 && key->s64 <= NTHREADS ? &g_entries[key->s64 - 1] : NULL;
}

static ss_plugin_rc read_field(ss_plugin_table_t *t, ss_plugin_table_entry_t *e, const ss_plugin_table_field_t *f,
                               ss_plugin_state_data *out) {
    entry_t *en = (entry_t *)e;
    uint32_t i = (uint32_t)(uintptr_t)f - 1;
    switch (g_fields[i].field_type) {
    case SS_PLUGIN_ST_STRING: out->str = en->s[i] ? en->s[i] : ""; break;
    case SS_PLUGIN_ST_INT64: out->s64 = i == 0 ? en->tid : (int64_t)en->u[i]; break;
    default: out->u64 = en->u[i];
    }
    return SS_PLUGIN_SUCCESS;
}

static void release_entry(ss_plugin_table_t *t, ss_plugin_table_entry_t *e) {}

static ss_plugin_bool iterate(ss_plugin_table_t *t, ss_plugin_table_iterator_func_t it,
                              ss_plugin_table_iterator_state_t *s) {
    for (int i = 0; i < NTHREADS; i++) {
        if (!it(s, &g_entries[i])) {
            return 0;
        }
    }
    return 1;
}

static ss_plugin_rc clear_table(ss_plugin_table_t *t) { return SS_PLUGIN_FAILURE; }
static ss_plugin_rc erase_entry(ss_plugin_table_t *t, const ss_plugin_state_data *k) { return SS_PLUGIN_FAILURE; }
static ss_plugin_table_entry_t *create_entry(ss_plugin_table_t *t) { return NULL; }
static void destroy_entry(ss_plugin_table_t *t, ss_plugin_table_entry_t *e) {}
static ss_plugin_table_entry_t *add_entry(ss_plugin_table_t *t, const ss_plugin_state_data *k,
                                          ss_plugin_table_entry_t *e) {
    return NULL;
}

static ss_plugin_rc write_field(ss_plugin_table_t *t, ss_plugin_table_entry_t *e, const ss_plugin_table_field_t *f,
                                const ss_plugin_state_data *in) {
    entry_t *en = (entry_t *)e;
    uint32_t i = (uint32_t)(uintptr_t)f - 1;
    if (g_fields[i].field_type == SS_PLUGIN_ST_STRING) {
        return SS_PLUGIN_FAILURE; /* not needed by the benchmark */
    }
    en->u[i] = in->u64;
    return SS_PLUGIN_SUCCESS;
}

static ss_plugin_table_reader_vtable_ext g_reader = {table_name, table_size, get_entry, read_field, release_entry,
                                                     iterate};
static ss_plugin_table_writer_vtable_ext g_writer = {clear_table, erase_entry, create_entry,
                                                     destroy_entry, add_entry, write_field};
static ss_plugin_table_fields_vtable_ext g_fields_vt = {list_fields, get_field, add_field};

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *sym(void *h, const char *name) {
    void *p = dlsym(h, name);
    if (!p) {
        fprintf(stderr, "missing %s\n", name);
        exit(2);
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s LIB --parse|--extract|--check N\n", argv[0]);
        return 2;
    }
    long n = atol(argv[3]);
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    g_fields[0] = (ss_plugin_table_fieldinfo){"tid", SS_PLUGIN_ST_INT64, 1};
    g_fields[1] = (ss_plugin_table_fieldinfo){"comm", SS_PLUGIN_ST_STRING, 0};
    g_nfields = 2;
    for (int i = 0; i < NTHREADS; i++) {
        g_entries[i].tid = i + 1;
        g_entries[i].s[1] = "bench";
    }
    ss_plugin_init_tables_input tables = {0};
    tables.list_tables = list_tables;
    tables.get_table = get_table;
    tables.add_table = add_table;
    tables.fields_ext = &g_fields_vt;
    tables.reader_ext = &g_reader;
    tables.writer_ext = &g_writer;
    ss_plugin_init_input in = {"", (ss_plugin_owner_t *)&g_table, owner_err, &tables, NULL};
    ss_plugin_rc rc;
    ss_plugin_t *(*init)(const ss_plugin_init_input *, ss_plugin_rc *) = sym(h, "plugin_init");
    const char *(*last_error)(ss_plugin_t *) = sym(h, "plugin_get_last_error");
    ss_plugin_t *s = init(&in, &rc);
    if (rc != SS_PLUGIN_SUCCESS) {
        fprintf(stderr, "init failed: %s\n", s ? last_error(s) : "?");
        return 1;
    }
    ss_plugin_rc (*parse)(ss_plugin_t *, const ss_plugin_event_input *, const ss_plugin_event_parse_input *) =
        sym(h, "plugin_parse_event");
    ss_plugin_rc (*extract)(ss_plugin_t *, const ss_plugin_event_input *, const ss_plugin_field_extract_input *) =
        sym(h, "plugin_extract_fields");
    ss_plugin_event evt = {1, 1, sizeof(ss_plugin_event), 3, 0};
    ss_plugin_event_input ein = {&evt, 0, "syscall"};
    ss_plugin_event_parse_input pin = {0};
    pin.owner = in.owner;
    pin.get_owner_last_error = owner_err;
    pin.table_reader_ext = &g_reader;
    pin.table_writer_ext = &g_writer;
    ss_plugin_extract_field f = {0};
    f.field_id = 0;
    f.field = "bench.count";
    f.ftype = FTYPE_UINT64;
    ss_plugin_field_extract_input xin = {0};
    xin.owner = in.owner;
    xin.get_owner_last_error = owner_err;
    xin.num_fields = 1;
    xin.fields = &f;
    xin.table_reader_ext = &g_reader;
    int extracting = strcmp(argv[2], "--extract") == 0;
    double total = 0;
    for (long i = 0; i < n; i++) {
        evt.tid = (uint64_t)(i % NTHREADS) + 1;
        ein.evtnum = (uint64_t)i + 1;
        double t0 = now_ns();
        rc = extracting ? extract(s, &ein, &xin) : parse(s, &ein, &pin);
        total += now_ns() - t0;
        if (rc != SS_PLUGIN_SUCCESS) {
            fprintf(stderr, "call %ld failed: %s\n", i, last_error(s));
            return 1;
        }
    }
    if (strcmp(argv[2], "--check") == 0) {
        for (int i = 0; i < NTHREADS; i += 16) {
            printf("count tid=%d value=%llu\n", i + 1, (unsigned long long)g_entries[i].u[2]);
        }
    } else {
        printf("bench %s_ns_per_call %.1f\n", extracting ? "extract" : "parse", total / (double)n);
    }
    printf("done calls=%ld\n", n);
    return 0;
}
