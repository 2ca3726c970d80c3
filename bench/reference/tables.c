/*
 * The state table benchmark plugin written directly in C: the same plugin
 * as bench/tables_py (parse_event reads and writes one field of the
 * thread's entry in `threads`; the field bench.count reads it back), as a C
 * plugin author would write it against the plugin API.
 */
#include <stdint.h>
#include <string.h>

#include "plugin_abi.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct {
    ss_plugin_table_t *threads;
    ss_plugin_table_field_t *count;
    uint64_t value;
    char err[256];
} state_t;

static state_t g_state;

EXPORT const char *plugin_get_required_api_version(void) { return "3.6.0"; }
EXPORT const char *plugin_get_version(void) { return "0.1.0"; }
EXPORT const char *plugin_get_name(void) { return "bench_tables_c"; }
EXPORT const char *plugin_get_description(void) { return "State table benchmark (C reference)"; }
EXPORT const char *plugin_get_contact(void) { return "sdk bench"; }
EXPORT const char *plugin_get_last_error(ss_plugin_t *s) { return ((state_t *)s)->err; }
EXPORT const char *plugin_get_required_event_schema_version(ss_plugin_t *s) { return "4.0.0"; }
EXPORT const char *plugin_get_parse_event_sources(void) { return "[\"syscall\"]"; }
EXPORT const char *plugin_get_extract_event_sources(void) { return "[\"syscall\"]"; }

static uint16_t g_types[] = {3};
EXPORT uint16_t *plugin_get_parse_event_types(uint32_t *n, ss_plugin_t *s) {
    *n = 1;
    return g_types;
}

EXPORT const char *plugin_get_fields(void) {
    return "[{\"name\":\"bench.count\",\"type\":\"uint64\",\"desc\":\"Events parsed for this thread\"}]";
}

EXPORT ss_plugin_t *plugin_init(const ss_plugin_init_input *in, ss_plugin_rc *rc) {
    state_t *st = &g_state;
    *rc = SS_PLUGIN_FAILURE;
    if (!in->tables) {
        strcpy(st->err, "no tables");
        return st;
    }
    st->threads = in->tables->get_table(in->owner, "threads", SS_PLUGIN_ST_INT64);
    st->count = st->threads ? in->tables->fields_ext->add_table_field(st->threads, "bench.count", SS_PLUGIN_ST_UINT64)
                            : NULL;
    if (!st->count) {
        strcpy(st->err, "no threads table");
        return st;
    }
    *rc = SS_PLUGIN_SUCCESS;
    return st;
}

EXPORT void plugin_destroy(ss_plugin_t *s) {}

EXPORT ss_plugin_rc plugin_parse_event(ss_plugin_t *s, const ss_plugin_event_input *ev,
                                       const ss_plugin_event_parse_input *in) {
    state_t *st = (state_t *)s;
    ss_plugin_state_data key, v;
    key.s64 = (int64_t)ev->evt->tid;
    ss_plugin_table_entry_t *e = in->table_reader_ext->get_table_entry(st->threads, &key);
    if (!e) {
        return SS_PLUGIN_SUCCESS;
    }
    ss_plugin_rc rc = in->table_reader_ext->read_entry_field(st->threads, e, st->count, &v);
    if (rc == SS_PLUGIN_SUCCESS) {
        v.u64++;
        rc = in->table_writer_ext->write_entry_field(st->threads, e, st->count, &v);
    }
    in->table_reader_ext->release_table_entry(st->threads, e);
    return rc;
}

EXPORT ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *ev,
                                          const ss_plugin_field_extract_input *in) {
    state_t *st = (state_t *)s;
    ss_plugin_state_data key, v;
    key.s64 = (int64_t)ev->evt->tid;
    st->value = 0;
    ss_plugin_table_entry_t *e = in->table_reader_ext->get_table_entry(st->threads, &key);
    if (e) {
        if (in->table_reader_ext->read_entry_field(st->threads, e, st->count, &v) == SS_PLUGIN_SUCCESS) {
            st->value = v.u64;
        }
        in->table_reader_ext->release_table_entry(st->threads, e);
    }
    for (uint32_t i = 0; i < in->num_fields; i++) {
        in->fields[i].res.u64 = &st->value;
        in->fields[i].res_len = 1;
    }
    return SS_PLUGIN_SUCCESS;
}
