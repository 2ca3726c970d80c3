/*
 * The floor for k8s_parse's fields in the real Falco: a C plugin whose pod
 * fields are one read of a string column of the `threads` table each.
 *
 * On every execve exit it looks the thread up and writes two string columns
 * of its own (the pod name and namespace; constants here, where k8s_parse
 * derives them from the cgroups and its pod table), and its fields
 * k8sref.pod.name and k8sref.pod.namespace read them back. bench/falco_k8s.py
 * times it next to k8s_parse on the same capture and rule.
 */
#include <stdint.h>
#include <string.h>

#include "plugin_abi.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct {
    ss_plugin_table_t *threads;
    ss_plugin_table_field_t *name;
    ss_plugin_table_field_t *ns;
    const char *value;
    char err[256];
} state_t;

static state_t g_state;

EXPORT const char *plugin_get_required_api_version(void) { return "3.6.0"; }
EXPORT const char *plugin_get_version(void) { return "0.1.0"; }
EXPORT const char *plugin_get_name(void) { return "k8s_columns_c"; }
EXPORT const char *plugin_get_description(void) { return "Pod fields as threads columns (C reference)"; }
EXPORT const char *plugin_get_contact(void) { return "sdk bench"; }
EXPORT const char *plugin_get_last_error(ss_plugin_t *s) { return ((state_t *)s)->err; }
EXPORT const char *plugin_get_required_event_schema_version(ss_plugin_t *s) { return "4.0.0"; }
EXPORT const char *plugin_get_parse_event_sources(void) { return "[\"syscall\"]"; }
EXPORT const char *plugin_get_extract_event_sources(void) { return "[\"syscall\"]"; }

static uint16_t g_types[] = {293}; /* PPME_SYSCALL_EXECVE_19_X */
EXPORT uint16_t *plugin_get_parse_event_types(uint32_t *n, ss_plugin_t *s) {
    *n = 1;
    return g_types;
}

EXPORT const char *plugin_get_fields(void) {
    return "[{\"name\":\"k8sref.pod.name\",\"type\":\"string\",\"desc\":\"Pod name column\"},"
           "{\"name\":\"k8sref.pod.namespace\",\"type\":\"string\",\"desc\":\"Pod namespace column\"}]";
}

EXPORT ss_plugin_t *plugin_init(const ss_plugin_init_input *in, ss_plugin_rc *rc) {
    state_t *st = &g_state;
    *rc = SS_PLUGIN_FAILURE;
    if (!in->tables) {
        strcpy(st->err, "no tables");
        return st;
    }
    st->threads = in->tables->get_table(in->owner, "threads", SS_PLUGIN_ST_INT64);
    if (st->threads) {
        st->name = in->tables->fields_ext->add_table_field(st->threads, "k8sref.pod_name", SS_PLUGIN_ST_STRING);
        st->ns = in->tables->fields_ext->add_table_field(st->threads, "k8sref.pod_ns", SS_PLUGIN_ST_STRING);
    }
    if (!st->name || !st->ns) {
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
    v.str = "web-1";
    ss_plugin_rc rc = in->table_writer_ext->write_entry_field(st->threads, e, st->name, &v);
    if (rc == SS_PLUGIN_SUCCESS) {
        v.str = "payments";
        rc = in->table_writer_ext->write_entry_field(st->threads, e, st->ns, &v);
    }
    in->table_reader_ext->release_table_entry(st->threads, e);
    return rc;
}

EXPORT ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *ev,
                                          const ss_plugin_field_extract_input *in) {
    state_t *st = (state_t *)s;
    ss_plugin_state_data key, v;
    key.s64 = (int64_t)ev->evt->tid;
    for (uint32_t i = 0; i < in->num_fields; i++) {
        in->fields[i].res_len = 0;
        ss_plugin_table_entry_t *e = in->table_reader_ext->get_table_entry(st->threads, &key);
        if (!e) {
            continue;
        }
        ss_plugin_table_field_t *col = in->fields[i].field_id == 0 ? st->name : st->ns;
        if (in->table_reader_ext->read_entry_field(st->threads, e, col, &v) == SS_PLUGIN_SUCCESS && v.str[0]) {
            st->value = v.str;
            in->fields[i].res.str = &st->value;
            in->fields[i].res_len = 1;
        }
        in->table_reader_ext->release_table_entry(st->threads, e);
    }
    return SS_PLUGIN_SUCCESS;
}
