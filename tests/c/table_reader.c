/*
 * A plugin written directly in C that reads a table exported by a Python
 * plugin (tests/plugins/tables_export: `fxt_procs`, int64 keys, columns
 * `count` uint64 and `name` string), the way any C plugin would: the table
 * and its fields looked up at init, entries read during extraction.
 *
 * Field `creader.row[KEY]` (string): "<name>/<count>" of row KEY, no value
 * when the row does not exist.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_abi.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct {
    ss_plugin_table_t *procs;
    ss_plugin_table_field_t *count, *name;
    char value[256];
    const char *out;
    char err[256];
} state_t;

EXPORT const char *plugin_get_required_api_version(void) { return "3.6.0"; }
EXPORT const char *plugin_get_version(void) { return "0.1.0"; }
EXPORT const char *plugin_get_name(void) { return "c_table_reader"; }
EXPORT const char *plugin_get_description(void) { return "Test plugin: reads a table a Python plugin exports"; }
EXPORT const char *plugin_get_contact(void) { return "sdk tests"; }
EXPORT const char *plugin_get_last_error(ss_plugin_t *s) { return ((state_t *)s)->err; }
EXPORT const char *plugin_get_extract_event_sources(void) { return "[\"fxt\"]"; }

EXPORT const char *plugin_get_fields(void) {
    return "[{\"name\":\"creader.row\",\"type\":\"string\",\"desc\":\"name/count of a row of fxt_procs\","
           "\"arg\":{\"isRequired\":true,\"isIndex\":true}}]";
}

EXPORT ss_plugin_t *plugin_init(const ss_plugin_init_input *in, ss_plugin_rc *rc) {
    state_t *st = calloc(1, sizeof *st);
    *rc = SS_PLUGIN_FAILURE;
    if (!st) {
        return NULL;
    }
    if (!in->tables) {
        snprintf(st->err, sizeof st->err, "the host offers no tables");
        return st;
    }
    st->procs = in->tables->get_table(in->owner, "fxt_procs", SS_PLUGIN_ST_INT64);
    if (!st->procs) {
        snprintf(st->err, sizeof st->err, "no table fxt_procs: %s", in->get_owner_last_error(in->owner));
        return st;
    }
    st->count = in->tables->fields_ext->get_table_field(st->procs, "count", SS_PLUGIN_ST_UINT64);
    st->name = in->tables->fields_ext->get_table_field(st->procs, "name", SS_PLUGIN_ST_STRING);
    if (!st->count || !st->name) {
        snprintf(st->err, sizeof st->err, "fxt_procs lacks count or name: %s", in->get_owner_last_error(in->owner));
        return st;
    }
    *rc = SS_PLUGIN_SUCCESS;
    return st;
}

EXPORT void plugin_destroy(ss_plugin_t *s) { free(s); }

EXPORT ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *ev,
                                          const ss_plugin_field_extract_input *in) {
    state_t *st = (state_t *)s;
    const ss_plugin_table_reader_vtable_ext *r = in->table_reader_ext;
    for (uint32_t i = 0; i < in->num_fields; i++) {
        ss_plugin_state_data key, count, name;
        key.s64 = (int64_t)in->fields[i].arg_index;
        in->fields[i].res_len = 0;
        ss_plugin_table_entry_t *e = r->get_table_entry(st->procs, &key);
        if (!e) {
            continue;
        }
        ss_plugin_rc rc = r->read_entry_field(st->procs, e, st->count, &count);
        if (rc == SS_PLUGIN_SUCCESS) {
            rc = r->read_entry_field(st->procs, e, st->name, &name);
        }
        if (rc == SS_PLUGIN_SUCCESS) {
            snprintf(st->value, sizeof st->value, "%s/%llu", name.str, (unsigned long long)count.u64);
            st->out = st->value;
            in->fields[i].res.str = &st->out;
            in->fields[i].res_len = 1;
        }
        r->release_table_entry(st->procs, e);
        if (rc != SS_PLUGIN_SUCCESS) {
            snprintf(st->err, sizeof st->err, "reading row %lld of fxt_procs failed", (long long)key.s64);
            return rc;
        }
    }
    (void)ev;
    return SS_PLUGIN_SUCCESS;
}
