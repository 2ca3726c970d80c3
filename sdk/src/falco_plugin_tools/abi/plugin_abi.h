/*
 * The Falco plugin API 3.x as the SDK uses it: our own declarations, written
 * from the ABI facts (layouts must match libsinsp's, names follow its API so
 * that the C reads the same as the specification).
 *
 * This file is compiled into every plugin library and also fed to cffi
 * (preprocessor lines are stripped for cffi; the packed event header is
 * declared separately, see abi.py).
 */
#ifndef FALCO_PLUGIN_SDK_ABI_H
#define FALCO_PLUGIN_SDK_ABI_H
#include <stdint.h>

typedef uint32_t ss_plugin_bool;

typedef enum ss_plugin_rc {
    SS_PLUGIN_SUCCESS = 0,
    SS_PLUGIN_FAILURE = 1,
    SS_PLUGIN_TIMEOUT = -1,
    SS_PLUGIN_EOF = 2,
    SS_PLUGIN_NOT_SUPPORTED = 3
} ss_plugin_rc;

typedef enum ss_plugin_field_type {
    FTYPE_UINT64 = 8,
    FTYPE_STRING = 9,
    FTYPE_RELTIME = 20,
    FTYPE_ABSTIME = 21,
    FTYPE_BOOL = 25,
    FTYPE_IPADDR = 40,
    FTYPE_IPNET = 41
} ss_plugin_field_type;

typedef enum ss_plugin_schema_type {
    SS_PLUGIN_SCHEMA_NONE = 0,
    SS_PLUGIN_SCHEMA_JSON = 1
} ss_plugin_schema_type;

/* @packed-begin */
#pragma pack(push, 1)
typedef struct ss_plugin_event {
    uint64_t ts;
    uint64_t tid;
    uint32_t len;
    uint16_t type;
    uint32_t nparams;
} ss_plugin_event;
#pragma pack(pop)
/* @packed-end */

typedef struct ss_plugin_event_input {
    const ss_plugin_event *evt;
    uint64_t evtnum;
    const char *evtsrc;
} ss_plugin_event_input;

typedef struct ss_plugin_byte_buffer {
    uint32_t len;
    const void *ptr;
} ss_plugin_byte_buffer;

typedef struct ss_plugin_extract_field {
    union {
        const char **str;
        uint64_t *u64;
        uint32_t *u32;
        ss_plugin_bool *boolean;
        ss_plugin_byte_buffer *buf;
    } res;
    uint64_t res_len;
    uint32_t field_id;
    const char *field;
    const char *arg_key;
    uint64_t arg_index;
    ss_plugin_bool arg_present;
    uint32_t ftype;
    ss_plugin_bool flist;
} ss_plugin_extract_field;

typedef struct ss_plugin_extract_value_offsets {
    uint32_t *start;
    uint32_t *length;
} ss_plugin_extract_value_offsets;

typedef void ss_plugin_t;
typedef void ss_instance_t;
typedef void ss_plugin_owner_t;
typedef void ss_plugin_table_t;
typedef void ss_plugin_table_entry_t;
typedef void ss_plugin_table_field_t;

typedef enum ss_plugin_log_severity {
    SS_PLUGIN_LOG_SEV_FATAL = 1,
    SS_PLUGIN_LOG_SEV_CRITICAL = 2,
    SS_PLUGIN_LOG_SEV_ERROR = 3,
    SS_PLUGIN_LOG_SEV_WARNING = 4,
    SS_PLUGIN_LOG_SEV_NOTICE = 5,
    SS_PLUGIN_LOG_SEV_INFO = 6,
    SS_PLUGIN_LOG_SEV_DEBUG = 7,
    SS_PLUGIN_LOG_SEV_TRACE = 8
} ss_plugin_log_severity;

typedef void (*ss_plugin_log_fn_t)(ss_plugin_owner_t *o, const char *component, const char *msg,
                                   ss_plugin_log_severity sev);

/* ---- state tables -------------------------------------------------------- */

typedef enum ss_plugin_state_type {
    SS_PLUGIN_ST_INT8 = 1,
    SS_PLUGIN_ST_INT16 = 2,
    SS_PLUGIN_ST_INT32 = 3,
    SS_PLUGIN_ST_INT64 = 4,
    SS_PLUGIN_ST_UINT8 = 5,
    SS_PLUGIN_ST_UINT16 = 6,
    SS_PLUGIN_ST_UINT32 = 7,
    SS_PLUGIN_ST_UINT64 = 8,
    SS_PLUGIN_ST_STRING = 9,
    SS_PLUGIN_ST_TABLE = 10,
    SS_PLUGIN_ST_BOOL = 25
} ss_plugin_state_type;

typedef union ss_plugin_state_data {
    int8_t s8;
    int16_t s16;
    int32_t s32;
    int64_t s64;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    const char *str;
    ss_plugin_bool b;
    ss_plugin_table_t *table;
} ss_plugin_state_data;

typedef struct ss_plugin_table_info {
    const char *name;
    ss_plugin_state_type key_type;
} ss_plugin_table_info;

typedef struct ss_plugin_table_fieldinfo {
    const char *name;
    ss_plugin_state_type field_type;
    ss_plugin_bool read_only;
} ss_plugin_table_fieldinfo;

/* The 3.0 vtables are still embedded by value in several inputs; the SDK only
 * calls the *_ext ones, but the old ones must be declared for the layout. */
typedef struct ss_plugin_table_fields_vtable {
    const ss_plugin_table_fieldinfo *(*list_table_fields)(ss_plugin_table_t *t, uint32_t *nfields);
    ss_plugin_table_field_t *(*get_table_field)(ss_plugin_table_t *t, const char *name, ss_plugin_state_type data_type);
    ss_plugin_table_field_t *(*add_table_field)(ss_plugin_table_t *t, const char *name, ss_plugin_state_type data_type);
} ss_plugin_table_fields_vtable;

typedef struct ss_plugin_table_fields_vtable_ext {
    const ss_plugin_table_fieldinfo *(*list_table_fields)(ss_plugin_table_t *t, uint32_t *nfields);
    ss_plugin_table_field_t *(*get_table_field)(ss_plugin_table_t *t, const char *name, ss_plugin_state_type data_type);
    ss_plugin_table_field_t *(*add_table_field)(ss_plugin_table_t *t, const char *name, ss_plugin_state_type data_type);
} ss_plugin_table_fields_vtable_ext;

typedef struct ss_plugin_table_reader_vtable {
    const char *(*get_table_name)(ss_plugin_table_t *t);
    uint64_t (*get_table_size)(ss_plugin_table_t *t);
    ss_plugin_table_entry_t *(*get_table_entry)(ss_plugin_table_t *t, const ss_plugin_state_data *key);
    ss_plugin_rc (*read_entry_field)(ss_plugin_table_t *t, ss_plugin_table_entry_t *e, const ss_plugin_table_field_t *f,
                                     ss_plugin_state_data *out);
} ss_plugin_table_reader_vtable;

typedef void ss_plugin_table_iterator_state_t;
typedef ss_plugin_bool (*ss_plugin_table_iterator_func_t)(ss_plugin_table_iterator_state_t *s, ss_plugin_table_entry_t *e);

typedef struct ss_plugin_table_reader_vtable_ext {
    const char *(*get_table_name)(ss_plugin_table_t *t);
    uint64_t (*get_table_size)(ss_plugin_table_t *t);
    ss_plugin_table_entry_t *(*get_table_entry)(ss_plugin_table_t *t, const ss_plugin_state_data *key);
    ss_plugin_rc (*read_entry_field)(ss_plugin_table_t *t, ss_plugin_table_entry_t *e, const ss_plugin_table_field_t *f,
                                     ss_plugin_state_data *out);
    void (*release_table_entry)(ss_plugin_table_t *t, ss_plugin_table_entry_t *e);
    ss_plugin_bool (*iterate_entries)(ss_plugin_table_t *t, ss_plugin_table_iterator_func_t it,
                                      ss_plugin_table_iterator_state_t *s);
} ss_plugin_table_reader_vtable_ext;

typedef struct ss_plugin_table_writer_vtable {
    ss_plugin_rc (*clear_table)(ss_plugin_table_t *t);
    ss_plugin_rc (*erase_table_entry)(ss_plugin_table_t *t, const ss_plugin_state_data *key);
    ss_plugin_table_entry_t *(*create_table_entry)(ss_plugin_table_t *t);
    void (*destroy_table_entry)(ss_plugin_table_t *t, ss_plugin_table_entry_t *e);
    ss_plugin_table_entry_t *(*add_table_entry)(ss_plugin_table_t *t, const ss_plugin_state_data *key,
                                               ss_plugin_table_entry_t *entry);
    ss_plugin_rc (*write_entry_field)(ss_plugin_table_t *t, ss_plugin_table_entry_t *e, const ss_plugin_table_field_t *f,
                                      const ss_plugin_state_data *in);
} ss_plugin_table_writer_vtable;

typedef struct ss_plugin_table_writer_vtable_ext {
    ss_plugin_rc (*clear_table)(ss_plugin_table_t *t);
    ss_plugin_rc (*erase_table_entry)(ss_plugin_table_t *t, const ss_plugin_state_data *key);
    ss_plugin_table_entry_t *(*create_table_entry)(ss_plugin_table_t *t);
    void (*destroy_table_entry)(ss_plugin_table_t *t, ss_plugin_table_entry_t *e);
    ss_plugin_table_entry_t *(*add_table_entry)(ss_plugin_table_t *t, const ss_plugin_state_data *key,
                                               ss_plugin_table_entry_t *entry);
    ss_plugin_rc (*write_entry_field)(ss_plugin_table_t *t, ss_plugin_table_entry_t *e, const ss_plugin_table_field_t *f,
                                      const ss_plugin_state_data *in);
} ss_plugin_table_writer_vtable_ext;

typedef struct ss_plugin_table_input {
    const char *name;
    ss_plugin_state_type key_type;
    ss_plugin_table_t *table;
    ss_plugin_table_reader_vtable reader;
    ss_plugin_table_writer_vtable writer;
    ss_plugin_table_fields_vtable fields;
    ss_plugin_table_reader_vtable_ext *reader_ext;
    ss_plugin_table_writer_vtable_ext *writer_ext;
    ss_plugin_table_fields_vtable_ext *fields_ext;
} ss_plugin_table_input;

typedef struct ss_plugin_init_tables_input {
    ss_plugin_table_info *(*list_tables)(ss_plugin_owner_t *o, uint32_t *ntables);
    ss_plugin_table_t *(*get_table)(ss_plugin_owner_t *o, const char *name, ss_plugin_state_type key_type);
    ss_plugin_rc (*add_table)(ss_plugin_owner_t *o, const ss_plugin_table_input *in);
    ss_plugin_table_fields_vtable fields;
    ss_plugin_table_fields_vtable_ext *fields_ext;
    ss_plugin_table_reader_vtable_ext *reader_ext;
    ss_plugin_table_writer_vtable_ext *writer_ext;
} ss_plugin_init_tables_input;

/* ---- per-call inputs --------------------------------------------------- */

typedef struct ss_plugin_init_input {
    const char *config;
    ss_plugin_owner_t *owner;
    const char *(*get_owner_last_error)(ss_plugin_owner_t *o);
    const ss_plugin_init_tables_input *tables;
    ss_plugin_log_fn_t log_fn;
} ss_plugin_init_input;

typedef struct ss_plugin_field_extract_input {
    ss_plugin_owner_t *owner;
    const char *(*get_owner_last_error)(ss_plugin_owner_t *o);
    uint32_t num_fields;
    ss_plugin_extract_field *fields;
    ss_plugin_table_reader_vtable table_reader;
    ss_plugin_table_reader_vtable_ext *table_reader_ext;
    ss_plugin_extract_value_offsets *value_offsets; /* 3.12; NULL when not wanted */
} ss_plugin_field_extract_input;

typedef struct ss_plugin_event_parse_input {
    ss_plugin_owner_t *owner;
    const char *(*get_owner_last_error)(ss_plugin_owner_t *o);
    ss_plugin_table_reader_vtable table_reader;
    ss_plugin_table_writer_vtable table_writer;
    ss_plugin_table_reader_vtable_ext *table_reader_ext;
    ss_plugin_table_writer_vtable_ext *table_writer_ext;
} ss_plugin_event_parse_input;

typedef struct ss_plugin_set_config_input {
    const char *config;
} ss_plugin_set_config_input;

/* ---- async events, capture listening, metrics ----------------------------- */

typedef ss_plugin_rc (*ss_plugin_async_event_handler_t)(ss_plugin_owner_t *o, const ss_plugin_event *evt, char *err);

typedef void ss_plugin_routine_t;
typedef void ss_plugin_routine_state_t;
typedef ss_plugin_bool (*ss_plugin_routine_fn_t)(ss_plugin_t *s, ss_plugin_routine_state_t *i);

typedef struct ss_plugin_routine_vtable {
    ss_plugin_routine_t *(*subscribe)(ss_plugin_owner_t *o, ss_plugin_routine_fn_t f, ss_plugin_routine_state_t *i);
    ss_plugin_rc (*unsubscribe)(ss_plugin_owner_t *o, ss_plugin_routine_t *r);
} ss_plugin_routine_vtable;

/* Note the order: here the owner's last-error getter comes last. */
typedef struct ss_plugin_capture_listen_input {
    ss_plugin_owner_t *owner;
    ss_plugin_routine_vtable *routine;
    ss_plugin_table_reader_vtable_ext *table_reader_ext;
    ss_plugin_table_writer_vtable_ext *table_writer_ext;
    const char *(*get_owner_last_error)(ss_plugin_owner_t *o);
} ss_plugin_capture_listen_input;

typedef enum ss_plugin_metric_value_type {
    SS_PLUGIN_METRIC_VALUE_TYPE_U32 = 0,
    SS_PLUGIN_METRIC_VALUE_TYPE_S32 = 1,
    SS_PLUGIN_METRIC_VALUE_TYPE_U64 = 2,
    SS_PLUGIN_METRIC_VALUE_TYPE_S64 = 3,
    SS_PLUGIN_METRIC_VALUE_TYPE_D = 4,
    SS_PLUGIN_METRIC_VALUE_TYPE_F = 5,
    SS_PLUGIN_METRIC_VALUE_TYPE_I = 6
} ss_plugin_metric_value_type;

typedef union ss_plugin_metric_value {
    uint32_t u32;
    int32_t s32;
    uint64_t u64;
    int64_t s64;
    double d;
    float f;
    int i;
} ss_plugin_metric_value;

typedef enum ss_plugin_metric_type {
    SS_PLUGIN_METRIC_TYPE_MONOTONIC = 0,
    SS_PLUGIN_METRIC_TYPE_NON_MONOTONIC = 1
} ss_plugin_metric_type;

typedef struct ss_plugin_metric {
    const char *name;
    ss_plugin_metric_type type;
    ss_plugin_metric_value value;
    ss_plugin_metric_value_type value_type;
} ss_plugin_metric;

#endif
