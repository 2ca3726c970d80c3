/*
 * What every capability's glue (<capability>.c) may use.
 *
 * A plugin library is one translation unit: the builder writes the plugin's
 * FP_* definitions, then includes common.c and the C file of each capability
 * the plugin has. FP_CAPABILITIES(X) lists those capabilities; each file
 * <name>.c defines its per-state data `struct fp_<name>_state` and two hooks:
 *
 *   static int fp_<name>_attach(fp_state *st);   after the runtime State exists
 *                                                 (GIL held; -1 with a Python
 *                                                 error set on failure)
 *   static void fp_<name>_release(fp_state *st); at destroy or failed init (GIL
 *                                                 held); frees what attach made
 *
 * Entry points follow the same rules everywhere: a pointer returned to the
 * host stays valid until the next call of that function on the same state or
 * instance, and a Python exception becomes SS_PLUGIN_FAILURE plus a
 * get_last_error message (fp_fail), never output on the host's stderr.
 */
#ifndef FP_COMMON_H
#define FP_COMMON_H

#include <Python.h>
#include <structmember.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FP_EXPORT __attribute__((visibility("default")))
#define FP_EVT_HEADER 26u
#define FP_PLUGIN_EVENT 322u
#define FP_PAYLOAD_OFFSET 38u
#define FP_ASYNC_EVENT 402u
#define FP_ASYNC_NAME_OFFSET 42u /* header, 3 u32 lengths, the u32 plugin id */

#include "event_ref.h"

#ifndef FP_HAS_TABLES
#define FP_HAS_TABLES 0
#endif

#define FP_DECLARE_CAP_STATE(name) struct fp_##name##_state;
FP_CAPABILITIES(FP_DECLARE_CAP_STATE)

typedef struct fp_state {
    PyObject *py;     /* runtime.State */
    PyObject *event;  /* the Event object plugin code receives */
    fp_event_ref ref; /* what that Event's lazy properties read */
    /* get_last_error: `err` is written by each failure, `err_out` is what the
     * host was last handed, so a kept pointer stays valid (and unchanged)
     * until the host's next get_last_error on this state. */
    char err[PLUGIN_ERRLEN];
    char err_out[PLUGIN_ERRLEN];
    /* Failed calls into the plugin (fp_fail): the sdk.errors metric every plugin reports. */
    _Atomic uint64_t errors;
    ss_plugin_metric errors_out; /* what get_metrics hands out, for a plugin without metrics of its own */
    /* The event `event` points at (extraction and parsing share it). */
    int has_evt;
    uint64_t evtnum;
    const void *evtptr;
#define FP_CAP_STATE_MEMBER(name) struct fp_##name##_state *name;
    FP_CAPABILITIES(FP_CAP_STATE_MEMBER)
#if FP_HAS_TABLES
    struct fp_tables_state *tables;
#endif
} fp_state;

#if FP_HAS_TABLES
/* State tables (tables.c): compiled in when the plugin uses them. An entry
 * point that hands the plugin table vtables brackets its work with
 * FP_TABLES_CALL / FP_TABLES_END (GIL held), so that the plugin's table
 * operations use those vtables and the entries it got are released. */
struct fp_tables_state;
#define FP_MAX_HELD 16
/* The table context of the current host call (per thread). */
typedef struct fp_tctx {
    const ss_plugin_table_reader_vtable_ext *r;
    const ss_plugin_table_writer_vtable_ext *w;
    const ss_plugin_init_tables_input *init; /* during init only */
    ss_plugin_owner_t *owner;
    const char *(*owner_err)(ss_plugin_owner_t *o);
    const char *phase;
    uint64_t gen;
    PyObject *held[FP_MAX_HELD]; /* entries to give back when the call returns */
    int nheld;
    PyObject *more; /* a list, past FP_MAX_HELD */
    struct fp_tctx *saved;
} fp_tctx;

static int fp_tables_attach(fp_state *st);
static void fp_tables_release(fp_state *st);
static void fp_tables_enter(fp_tctx *c, const char *phase, ss_plugin_owner_t *owner,
                            const char *(*owner_err)(ss_plugin_owner_t *),
                            const ss_plugin_table_reader_vtable_ext *r, const ss_plugin_table_writer_vtable_ext *w);
static void fp_tables_enter_init(fp_tctx *c, const ss_plugin_init_input *in);
static void fp_tables_leave(fp_tctx *c);
#define FP_TABLES_CALL(phase, owner, err, r, w)                                                                        \
    struct fp_tctx fp_tcall_;                                                                                          \
    fp_tables_enter(&fp_tcall_, phase, owner, err, r, w)
#define FP_TABLES_END() fp_tables_leave(&fp_tcall_)
#else
#define FP_TABLES_CALL(phase, owner, err, r, w)
#define FP_TABLES_END()
#endif

#define FP_DECLARE_CAP_HOOKS(name)                                                                                     \
    static int fp_##name##_attach(fp_state *st);                                                                       \
    static void fp_##name##_release(fp_state *st);
FP_CAPABILITIES(FP_DECLARE_CAP_HOOKS)

/* The GIL on the hot entry points (extract_fields, next_batch, parse_event), cheaper than
 * PyGILState_Ensure/Release on every call (common.c): fp_gil_enter takes it unless this thread
 * holds it already (a nested call) and says which; fp_gil_leave(how) undoes exactly that. The
 * GIL is never kept between two host calls. */
typedef enum { FP_GIL_NESTED, FP_GIL_TAKEN, FP_GIL_ENSURED } fp_gil_how;
typedef struct {
    fp_gil_how how;
    PyGILState_STATE g; /* FP_GIL_ENSURED only */
} fp_gil;
static void fp_gil_setup(void); /* once Python runs */
static inline fp_gil fp_gil_enter(void);
static inline void fp_gil_leave(fp_gil g);

/* Error reporting (GIL held for fp_fail). */
static void fp_set_error(fp_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fp_fail(fp_state *st, const char *context);

/* Grow *arr to hold `need` elements of `elem` bytes; -1 when out of memory. */
static int fp_grow(void **arr, size_t *cap, size_t need, size_t elem);

/* The payload of a plugin event (type 322), lengths checked; NULL/0 for
 * other event types. -1 when the event is malformed. */
static int fp_payload(const ss_plugin_event *evt, const uint8_t **data, uint32_t *len);

/* Point st->event at `evt` unless it already is (GIL held); -1 with a
 * Python error set. */
static int fp_use_event(fp_state *st, const ss_plugin_event_input *evt);

/* Objects of the runtime the glue uses, fetched once at start-up. */
static PyObject *fp_end_of_stream; /* falco_plugin.EndOfStream */
static PyObject *fp_timeout;       /* falco_plugin.Timeout */
static PyObject *fp_located;       /* falco_plugin.Located */
static PyObject *fp_empty_bytes;
static PyObject *fp_no_thread; /* the int 2**64-1: the tid of an event without a thread */

#endif
