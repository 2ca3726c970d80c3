/*
 * The C half of every plugin library built by the SDK.
 *
 * The builder prepends a block of FP_* definitions describing one plugin
 * (name, capabilities, fields...) and compiles this file with cffi's
 * embedding mode. Everything the host can read without running plugin code
 * (metadata, fields, schema) is a C constant, so listing a plugin never
 * starts Python. The first init() starts Python (or joins the interpreter of
 * a Python host), imports the plugin and creates its runtime Binding.
 *
 * Hot paths (next_batch, extract_fields) call plugin methods directly with
 * vectorcall and convert results in C: one GIL round trip per call and no
 * intermediate Python objects. Every pointer returned to the host is owned
 * here and stays valid until the next call of the same function.
 *
 * Any Python exception becomes SS_PLUGIN_FAILURE plus a get_last_error
 * message; nothing is ever printed to the host's stderr.
 */
#include <Python.h>
#include <structmember.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FP_EXPORT __attribute__((visibility("default")))
#define FP_EVT_HEADER 26u
#define FP_PLUGIN_EVENT 322u
#define FP_PAYLOAD_OFFSET 38u

enum { FP_ARG_NONE = 0, FP_ARG_INDEX = 1, FP_ARG_KEY = 2 };

/* ---- Python start-up ------------------------------------------------------ */

static pthread_once_t fp_once = PTHREAD_ONCE_INIT;
static char fp_start_error[PLUGIN_ERRLEN];
static int fp_started;
static char fp_site_dir[PATH_MAX];
static PyObject *fp_binding;         /* runtime.Binding */
static PyObject *fp_end_of_stream;   /* falco_plugin.EndOfStream */
static PyObject *fp_timeout;         /* falco_plugin.Timeout */
static PyObject *fp_located;         /* falco_plugin.Located */
static PyObject *fp_empty_bytes;
/* Slots of falco_plugin.Event the glue writes directly on each new event. */
static PyMemberDef *fp_m_num, *fp_m_payload, *fp_m_cache;

/* What Event._cur points at: the event being extracted (see event.py). */
typedef struct fp_event_ref {
    const ss_plugin_event *evt;
    uintptr_t addr;
    uintptr_t src;
} fp_event_ref;

static void fp_start_failed(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fp_start_error, sizeof fp_start_error, fmt, ap);
    va_end(ap);
}

/* Text of the pending Python exception (cleared), without printing it. */
static void fp_exception_text(char *out, size_t n) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *s = value ? PyObject_Str(value) : NULL;
    const char *name = type ? ((PyTypeObject *)type)->tp_name : "error";
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    snprintf(out, n, "%s: %s", name, msg ? msg : "(no message)");
    PyErr_Clear();
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* Where the plugin's Python packages live: lib<name>.so -> lib<name>.site */
static int fp_locate_site(void) {
    Dl_info info;
    char path[PATH_MAX];
    if (!dladdr((void *)&fp_locate_site, &info) || !info.dli_fname) {
        fp_start_failed("cannot find the path of the plugin library");
        return -1;
    }
    if (!realpath(info.dli_fname, path)) {
        snprintf(path, sizeof path, "%s", info.dli_fname);
    }
    size_t len = strlen(path);
    if (len > 3 && strcmp(path + len - 3, ".so") == 0) {
        path[len - 3] = '\0';
    }
    if ((size_t)snprintf(fp_site_dir, sizeof fp_site_dir, "%s.site", path) >= sizeof fp_site_dir) {
        fp_start_failed("plugin library path too long");
        return -1;
    }
    if (access(fp_site_dir, R_OK | X_OK) != 0) {
        const char *base = strrchr(path, '/');
        fp_start_failed("the plugin's Python packages are missing: %s must sit next to %s.so", fp_site_dir,
                        base ? base + 1 : path);
        return -1;
    }
    return 0;
}

static int fp_we_started_python;

static int fp_init_interpreter(void) {
    /* Falco dlopens plugins RTLD_LOCAL, which hides libpython's symbols from
     * the extension modules Python imports later: make them global. */
    Dl_info info;
    if (dladdr((void *)&Py_IsInitialized, &info) && info.dli_fname) {
        dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    }
    if (Py_IsInitialized()) {
        return 0; /* a Python host, or another Python plugin, got here first */
    }
    const char *home = getenv("FALCO_PLUGIN_PYTHONHOME");
    if (!home || !*home) {
        home = FP_PYTHON_HOME;
    }
    /* Check the standard library is there first: Python's own failure
     * path dumps its path configuration on the host's stderr. */
    char landmark[PATH_MAX];
    snprintf(landmark, sizeof landmark, "%s/lib/python3.%d/os.py", home, PY_MINOR_VERSION);
    if (access(landmark, R_OK) != 0) {
        fp_start_failed("the Python 3.%d standard library is not under %s (set FALCO_PLUGIN_PYTHONHOME to the "
                        "prefix of a Python 3.%d installation)", PY_MINOR_VERSION, home, PY_MINOR_VERSION);
        return -1;
    }
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0; /* the host owns its signals */
    config.site_import = 0;             /* only the plugin's own site directory */
    config.write_bytecode = 0;
    config.pathconfig_warnings = 0;
    PyStatus status = PyConfig_SetBytesString(&config, &config.home, home);
    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        fp_start_failed("cannot initialise Python 3.%d from %s: %s", PY_MINOR_VERSION, home,
                        status.err_msg ? status.err_msg : "unknown error");
        return -1;
    }
    PyEval_SaveThread();
    fp_we_started_python = 1;
    return 0;
}

static int fp_add_site_dir(int first) {
    /* When this library started Python its packages come first; inside an
     * existing interpreter (a Python host, or another plugin) they only fill
     * gaps, so the host's own imports are never redirected to our copies. */
    static const char code[] =
        "import sys, site\n"
        "if site_dir not in sys.path:\n"
        "    before = list(sys.path)\n"
        "    site.addsitedir(site_dir)\n"
        "    added = [p for p in sys.path if p not in before]\n"
        "    sys.path[:] = added + before if first else before + added\n"
        "import _cffi_backend\n";
    int rc = -1;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *globals = PyDict_New();
    PyObject *dir = PyUnicode_DecodeFSDefault(fp_site_dir);
    if (globals && dir && PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0 &&
        PyDict_SetItemString(globals, "site_dir", dir) == 0 &&
        PyDict_SetItemString(globals, "first", first ? Py_True : Py_False) == 0) {
        PyObject *r = PyRun_String(code, Py_file_input, globals, globals);
        if (r) {
            rc = 0;
            Py_DECREF(r);
        }
    }
    if (rc != 0) {
        char text[512];
        fp_exception_text(text, sizeof text);
        fp_start_failed("cannot set up the plugin's Python path %s: %s", fp_site_dir, text);
    }
    Py_XDECREF(globals);
    Py_XDECREF(dir);
    PyGILState_Release(g);
    return rc;
}

static PyMemberDef *fp_member(PyObject *type, const char *name) {
    PyObject *d = type ? PyObject_GetAttrString(type, name) : NULL;
    PyMemberDef *m = NULL;
    if (d && Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        m = ((PyMemberDescrObject *)d)->d_member;
    } else if (d) {
        PyErr_Format(PyExc_TypeError, "Event.%s is not a slot", name);
    }
    Py_XDECREF(d); /* the type keeps the descriptor alive */
    return m;
}

static int fp_bind(void) {
    int rc = -1;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *rt = PyImport_ImportModule("falco_plugin._internal.runtime");
    if (rt) {
        fp_binding = PyObject_CallMethod(rt, "Binding", "sssi", FP_MODULE, FP_TARGET, FP_FIELDS_JSON,
                                         fp_we_started_python);
        if (fp_binding) { /* only now: the lookups below would swallow a pending error */
            fp_end_of_stream = PyObject_GetAttrString(rt, "END_OF_STREAM");
            fp_timeout = PyObject_GetAttrString(rt, "TIMEOUT");
            fp_located = PyObject_GetAttrString(rt, "LOCATED");
            fp_empty_bytes = PyBytes_FromStringAndSize("", 0);
            PyObject *event_type = PyObject_GetAttrString(rt, "Event");
            fp_m_num = fp_member(event_type, "num");
            fp_m_payload = fp_m_num ? fp_member(event_type, "payload") : NULL;
            fp_m_cache = fp_m_payload ? fp_member(event_type, "_cache") : NULL;
            Py_XDECREF(event_type);
            if (fp_end_of_stream && fp_timeout && fp_located && fp_empty_bytes && fp_m_cache) {
                rc = 0;
            }
        }
        Py_DECREF(rt);
    }
    if (rc != 0) {
        char text[PLUGIN_ERRLEN - 64];
        fp_exception_text(text, sizeof text);
        fp_start_failed("cannot load %s: %s", FP_TARGET, text);
    }
    PyGILState_Release(g);
    return rc;
}

static void fp_start(void) {
    if (fp_locate_site() || fp_init_interpreter() || fp_add_site_dir(fp_we_started_python)) {
        return;
    }
    if (cffi_start_python() != 0) {
        fp_start_failed("cffi could not initialise the embedded module %s", FP_MODULE);
        return;
    }
    if (fp_bind() == 0) {
        fp_started = 1;
    }
}

static int fp_python_ready(void) {
    pthread_once(&fp_once, fp_start);
    return fp_started;
}

/* ---- plugin state ------------------------------------------------------- */

typedef struct fp_state {
    PyObject *py;     /* runtime.State */
    PyObject *event;  /* the Event object extractors receive */
    fp_event_ref ref; /* what that Event's lazy properties read */
    PyObject *fields; /* tuple of bound extractor methods, by field id */
    char *err;
    PyObject *ret_str; /* keeps the last string returned by list_open_params */
    PyObject *ret_str2; /* ... and by event_to_string */
#if FP_CAP_EXTRACTION
    int has_evt;
    uint64_t evtnum;
    const void *evtptr;
    PyObject **keep; /* references backing the values returned by the last call */
    size_t nkeep, capkeep;
    uint64_t *u64;
    size_t capu64;
    ss_plugin_bool *b32;
    size_t capb32;
    const char **str;
    size_t capstr;
    ss_plugin_byte_buffer *buf;
    size_t capbuf;
    uint32_t *off_start, *off_len;
    size_t cap_off_start, cap_off_len;
#endif
} fp_state;

static void fp_set_error(fp_state *st, const char *fmt, ...) {
    char tmp[PLUGIN_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    char *copy = strdup(tmp);
    if (copy) {
        free(st->err);
        st->err = copy;
    }
}

/* Turn the pending Python exception into st->err (GIL held). */
static void fp_fail(fp_state *st, const char *context) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb) {
        PyException_SetTraceback(value, tb);
    }
    PyObject *msg = NULL;
    if (value && fp_binding) {
        msg = PyObject_CallMethod(fp_binding, "describe_error", "sOO", context, value, st->py ? st->py : Py_None);
    }
    const char *text = msg ? PyUnicode_AsUTF8(msg) : NULL;
    if (text) {
        fp_set_error(st, "%s", text);
    } else {
        PyErr_Clear();
        fp_set_error(st, "%s: %s", context, type ? ((PyTypeObject *)type)->tp_name : "unknown error");
    }
    Py_XDECREF(msg);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

static int fp_grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        n *= 2;
    }
    void *p = realloc(*arr, n * elem);
    if (!p) {
        return -1;
    }
    *arr = p;
    *cap = n;
    return 0;
}

/* ---- metadata (no Python involved) ------------------------------------------ */

FP_EXPORT const char *plugin_get_required_api_version(void) { return FP_REQUIRED_API_VERSION; }
FP_EXPORT const char *plugin_get_version(void) { return FP_VERSION; }
FP_EXPORT const char *plugin_get_name(void) { return FP_NAME; }
FP_EXPORT const char *plugin_get_description(void) { return FP_DESCRIPTION; }
FP_EXPORT const char *plugin_get_contact(void) { return FP_CONTACT; }

#ifdef FP_INIT_SCHEMA
FP_EXPORT const char *plugin_get_init_schema(ss_plugin_schema_type *schema_type) {
    *schema_type = SS_PLUGIN_SCHEMA_JSON;
    return FP_INIT_SCHEMA;
}
#endif

#ifdef FP_EVENT_SCHEMA_VERSION
FP_EXPORT const char *plugin_get_required_event_schema_version(ss_plugin_t *s) {
    (void)s;
    return FP_EVENT_SCHEMA_VERSION;
}
#endif

FP_EXPORT const char *plugin_get_last_error(ss_plugin_t *s) {
    fp_state *st = (fp_state *)s;
    return st && st->err ? st->err : "";
}

/* ---- lifetime ------------------------------------------------------------ */

FP_EXPORT ss_plugin_t *plugin_init(const ss_plugin_init_input *input, ss_plugin_rc *rc) {
    fp_state *st = (fp_state *)calloc(1, sizeof *st);
    if (!st) {
        *rc = SS_PLUGIN_FAILURE;
        return NULL;
    }
    if (!fp_python_ready()) {
        fp_set_error(st, "init: %s", fp_start_error);
        *rc = SS_PLUGIN_FAILURE;
        return st;
    }
    PyGILState_STATE g = PyGILState_Ensure();
    *rc = SS_PLUGIN_FAILURE;
    st->py = PyObject_CallMethod(fp_binding, "init", "KK", (unsigned long long)(uintptr_t)input,
                                 (unsigned long long)(uintptr_t)&st->ref);
    if (!st->py) {
        fp_fail(st, "init");
    } else {
        st->event = PyObject_GetAttrString(st->py, "event");
        st->fields = PyObject_GetAttrString(st->py, "fields");
        if (!st->event || !st->fields || !PyTuple_Check(st->fields)) {
            fp_fail(st, "init");
        } else {
            PyObject *r = PyObject_CallMethod(st->py, "start", NULL);
            if (!r) {
                fp_fail(st, "init");
            } else {
                Py_DECREF(r);
                *rc = SS_PLUGIN_SUCCESS;
            }
        }
    }
    if (*rc != SS_PLUGIN_SUCCESS && st->py) {
        /* A failed init leaves nothing to use: only get_last_error and destroy
         * may follow, and destroy must not run the plugin's own destroy. */
        PyObject *r = PyObject_CallMethod(st->py, "destroy", NULL);
        if (!r) {
            PyErr_Clear();
        }
        Py_XDECREF(r);
        Py_CLEAR(st->event);
        Py_CLEAR(st->fields);
        Py_CLEAR(st->py);
    }
    PyGILState_Release(g);
    return st;
}

#if FP_CAP_EXTRACTION
static void fp_release_values(fp_state *st) {
    for (size_t i = 0; i < st->nkeep; i++) {
        Py_DECREF(st->keep[i]);
    }
    st->nkeep = 0;
}
#endif

FP_EXPORT void plugin_destroy(ss_plugin_t *s) {
    fp_state *st = (fp_state *)s;
    if (!st) {
        return;
    }
    if (st->py) {
        PyGILState_STATE g = PyGILState_Ensure();
        PyObject *r = PyObject_CallMethod(st->py, "destroy", NULL);
        if (!r) {
            fp_fail(st, "destroy"); /* nobody can read it any more, but it is logged */
        }
        Py_XDECREF(r);
#if FP_CAP_EXTRACTION
        fp_release_values(st);
#endif
        Py_XDECREF(st->event);
        Py_XDECREF(st->fields);
        Py_XDECREF(st->ret_str);
        Py_XDECREF(st->ret_str2);
        Py_CLEAR(st->py);
        PyGILState_Release(g);
    }
#if FP_CAP_EXTRACTION
    free(st->keep);
    free(st->u64);
    free(st->b32);
    free(st->str);
    free(st->buf);
    free(st->off_start);
    free(st->off_len);
#endif
    free(st->err);
    free(st);
}

#if FP_HAS_SET_CONFIG
FP_EXPORT ss_plugin_rc plugin_set_config(ss_plugin_t *s, const ss_plugin_set_config_input *i) {
    fp_state *st = (fp_state *)s;
    if (!st->py) {
        fp_set_error(st, "set_config: the plugin is not initialised");
        return SS_PLUGIN_FAILURE;
    }
    PyGILState_STATE g = PyGILState_Ensure();
    ss_plugin_rc rc = SS_PLUGIN_SUCCESS;
    PyObject *r = PyObject_CallMethod(st->py, "set_config", "s", i && i->config ? i->config : "");
    if (!r) {
        fp_fail(st, "set_config");
        rc = SS_PLUGIN_FAILURE;
    }
    Py_XDECREF(r);
    PyGILState_Release(g);
    return rc;
}
#endif

/* Decode a plugin event's payload (param 2 of event 322), checking every length. */
static int fp_payload(const ss_plugin_event *evt, const uint8_t **data, uint32_t *len) {
    const uint8_t *raw = (const uint8_t *)evt;
    uint32_t total = evt->len, l0, l1;
    if (evt->type != FP_PLUGIN_EVENT) {
        *data = NULL;
        *len = 0;
        return 0;
    }
    if (evt->nparams != 2 || total < FP_PAYLOAD_OFFSET) {
        return -1;
    }
    memcpy(&l0, raw + FP_EVT_HEADER, 4);
    memcpy(&l1, raw + FP_EVT_HEADER + 4, 4);
    if (l0 != 4 || (uint64_t)FP_PAYLOAD_OFFSET + l1 > total) {
        return -1;
    }
    *data = raw + FP_PAYLOAD_OFFSET;
    *len = l1;
    return 0;
}

/* Point the shared Event object at a new event (GIL held). */
static int fp_retarget(fp_state *st, const ss_plugin_event_input *evt) {
    const uint8_t *data;
    uint32_t len;
    if (!evt || !evt->evt) {
        PyErr_SetString(PyExc_ValueError, "no event given");
        return -1;
    }
    if (fp_payload(evt->evt, &data, &len) != 0) {
        PyErr_Format(PyExc_ValueError, "malformed plugin event (type %u, %u bytes, %u params)",
                     (unsigned)evt->evt->type, (unsigned)evt->evt->len, (unsigned)evt->evt->nparams);
        return -1;
    }
    PyObject *payload = data ? PyBytes_FromStringAndSize((const char *)data, len) : Py_NewRef(fp_empty_bytes);
    PyObject *num = PyLong_FromUnsignedLongLong(evt->evtnum);
    int rc = -1;
    if (payload && num) {
        st->ref.evt = evt->evt;
        st->ref.addr = (uintptr_t)evt->evt;
        st->ref.src = (uintptr_t)evt->evtsrc;
        char *obj = (char *)st->event;
        if (PyMember_SetOne(obj, fp_m_num, num) == 0 && PyMember_SetOne(obj, fp_m_payload, payload) == 0 &&
            PyMember_SetOne(obj, fp_m_cache, Py_None) == 0) {
            rc = 0;
        }
    }
    Py_XDECREF(payload);
    Py_XDECREF(num);
    return rc;
}

/* ---- sourcing --------------------------------------------------------------- */

#if FP_CAP_SOURCING
typedef struct fp_instance {
    PyObject *py;         /* the SourceInstance */
    PyObject *next_batch; /* its bound next_batch */
    uint8_t *arena;       /* the events of the last batch */
    size_t cap;
    ss_plugin_event **evts;
    size_t capevts;
    size_t *offsets;
    size_t capoffsets;
    int eof;
    PyObject *progress; /* keeps the last progress text alive */
} fp_instance;

FP_EXPORT uint32_t plugin_get_id(void) { return FP_ID; }
FP_EXPORT const char *plugin_get_event_source(void) { return FP_EVENT_SOURCE; }

FP_EXPORT ss_instance_t *plugin_open(ss_plugin_t *s, const char *params, ss_plugin_rc *rc) {
    fp_state *st = (fp_state *)s;
    *rc = SS_PLUGIN_FAILURE;
    if (!st->py) {
        fp_set_error(st, "open: the plugin is not initialised");
        return NULL;
    }
    fp_instance *in = (fp_instance *)calloc(1, sizeof *in);
    if (!in) {
        fp_set_error(st, "open: out of memory");
        return NULL;
    }
    PyGILState_STATE g = PyGILState_Ensure();
    in->py = PyObject_CallMethod(st->py, "open", "s", params ? params : "");
    if (in->py) {
        in->next_batch = PyObject_GetAttrString(in->py, "next_batch");
    }
    if (!in->py || !in->next_batch) {
        fp_fail(st, "open");
        Py_XDECREF(in->py);
        free(in);
        in = NULL;
    } else {
        *rc = SS_PLUGIN_SUCCESS;
    }
    PyGILState_Release(g);
    return in;
}

FP_EXPORT void plugin_close(ss_plugin_t *s, ss_instance_t *h) {
    fp_state *st = (fp_state *)s;
    fp_instance *in = (fp_instance *)h;
    if (!in) {
        return;
    }
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(in->py, "close", NULL);
    if (!r) {
        fp_fail(st, "close");
    }
    Py_XDECREF(r);
    Py_XDECREF(in->next_batch);
    Py_XDECREF(in->progress);
    Py_XDECREF(in->py);
    PyGILState_Release(g);
    free(in->arena);
    free(in->evts);
    free(in->offsets);
    free(in);
}

/* Append one plugin event to the instance arena; returns -1 with a Python error set. */
static int fp_append_event(fp_instance *in, size_t *used, size_t idx, PyObject *item) {
    PyObject *payload = item;
    uint64_t ts = UINT64_MAX;
    if (PyTuple_Check(item)) {
        if (PyTuple_GET_SIZE(item) != 2) {
            PyErr_Format(PyExc_TypeError, "event %zu: expected (payload, timestamp), got a %zd-tuple", idx,
                         PyTuple_GET_SIZE(item));
            return -1;
        }
        payload = PyTuple_GET_ITEM(item, 0);
        ts = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(item, 1));
        if (ts == (uint64_t)-1 && PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "event %zu: the timestamp must be a non-negative int (nanoseconds)", idx);
            return -1;
        }
    }
    Py_buffer view;
    const char *data;
    Py_ssize_t len;
    int release = 0;
    if (PyBytes_Check(payload)) {
        data = PyBytes_AS_STRING(payload);
        len = PyBytes_GET_SIZE(payload);
    } else if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) == 0) {
        data = (const char *)view.buf;
        len = view.len;
        release = 1;
    } else {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "event %zu: payload must be bytes-like, not %s", idx, Py_TYPE(payload)->tp_name);
        return -1;
    }
    if ((uint64_t)len > UINT32_MAX - FP_PAYLOAD_OFFSET) {
        if (release) {
            PyBuffer_Release(&view);
        }
        PyErr_Format(PyExc_ValueError, "event %zu: payload of %zd bytes is too large", idx, len);
        return -1;
    }
    size_t evlen = FP_PAYLOAD_OFFSET + (size_t)len;
    size_t start = (*used + 7u) & ~(size_t)7u; /* keep headers 8-byte aligned */
    if (fp_grow((void **)&in->arena, &in->cap, start + evlen, 1) ||
        fp_grow((void **)&in->offsets, &in->capoffsets, idx + 1, sizeof(size_t))) {
        if (release) {
            PyBuffer_Release(&view);
        }
        PyErr_NoMemory();
        return -1;
    }
    uint8_t *p = in->arena + start;
    ss_plugin_event hdr = {ts, UINT64_MAX, (uint32_t)evlen, FP_PLUGIN_EVENT, 2};
    uint32_t lens_and_id[3] = {4, (uint32_t)len, FP_ID};
    memcpy(p, &hdr, FP_EVT_HEADER);
    memcpy(p + FP_EVT_HEADER, lens_and_id, sizeof lens_and_id);
    memcpy(p + FP_PAYLOAD_OFFSET, data, (size_t)len);
    if (release) {
        PyBuffer_Release(&view);
    }
    in->offsets[idx] = start;
    *used = start + evlen;
    return 0;
}

FP_EXPORT ss_plugin_rc plugin_next_batch(ss_plugin_t *s, ss_instance_t *h, uint32_t *nevts, ss_plugin_event ***evts) {
    fp_state *st = (fp_state *)s;
    fp_instance *in = (fp_instance *)h;
    *nevts = 0;
    *evts = NULL;
    if (in->eof) {
        return SS_PLUGIN_EOF;
    }
    PyGILState_STATE g = PyGILState_Ensure();
    ss_plugin_rc rc = SS_PLUGIN_FAILURE;
    PyObject *batch = PyObject_CallNoArgs(in->next_batch);
    if (!batch) {
        if (PyErr_ExceptionMatches(fp_end_of_stream)) {
            PyErr_Clear();
            in->eof = 1;
            rc = SS_PLUGIN_EOF;
        } else if (PyErr_ExceptionMatches(fp_timeout)) {
            PyErr_Clear();
            rc = SS_PLUGIN_TIMEOUT;
        } else {
            fp_fail(st, "next_batch");
        }
        goto out;
    }
    PyObject *seq = PySequence_Fast(batch, "next_batch must return a sequence of payloads");
    Py_DECREF(batch);
    if (!seq) {
        fp_fail(st, "next_batch");
        goto out;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n == 0) {
        rc = SS_PLUGIN_TIMEOUT;
    } else if ((uint64_t)n > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many events in one batch");
        fp_fail(st, "next_batch");
    } else {
        PyObject **items = PySequence_Fast_ITEMS(seq);
        size_t used = 0;
        Py_ssize_t i;
        for (i = 0; i < n; i++) {
            if (fp_append_event(in, &used, (size_t)i, items[i]) != 0) {
                break;
            }
        }
        if (i < n) {
            fp_fail(st, "next_batch");
        } else if (fp_grow((void **)&in->evts, &in->capevts, (size_t)n, sizeof(ss_plugin_event *))) {
            fp_set_error(st, "next_batch: out of memory");
        } else {
            for (i = 0; i < n; i++) {
                in->evts[i] = (ss_plugin_event *)(in->arena + in->offsets[i]);
            }
            *evts = in->evts;
            *nevts = (uint32_t)n;
            rc = SS_PLUGIN_SUCCESS;
        }
    }
    Py_DECREF(seq);
out:
    PyGILState_Release(g);
    return rc;
}

#if FP_HAS_PROGRESS
FP_EXPORT const char *plugin_get_progress(ss_plugin_t *s, ss_instance_t *h, uint32_t *progress_pct) {
    fp_state *st = (fp_state *)s;
    fp_instance *in = (fp_instance *)h;
    const char *text = "";
    *progress_pct = 0;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(st->py, "progress", "O", in->py);
    unsigned int pct = 0;
    PyObject *str = NULL;
    if (r && PyArg_ParseTuple(r, "IU", &pct, &str)) {
        Py_INCREF(str);
        Py_XSETREF(in->progress, str);
        text = PyUnicode_AsUTF8(str);
        *progress_pct = pct;
    } else {
        fp_fail(st, "get_progress");
    }
    Py_XDECREF(r);
    PyGILState_Release(g);
    return text ? text : "";
}
#endif

#if FP_HAS_LIST_OPEN_PARAMS
FP_EXPORT const char *plugin_list_open_params(ss_plugin_t *s, ss_plugin_rc *rc) {
    fp_state *st = (fp_state *)s;
    const char *text = NULL;
    *rc = SS_PLUGIN_FAILURE;
    if (!st->py) {
        fp_set_error(st, "list_open_params: the plugin is not initialised");
        return NULL;
    }
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(st->py, "list_open_params", NULL);
    if (r && PyUnicode_Check(r)) {
        Py_XSETREF(st->ret_str, r);
        text = PyUnicode_AsUTF8(r);
        *rc = SS_PLUGIN_SUCCESS;
    } else {
        Py_XDECREF(r);
        fp_fail(st, "list_open_params");
    }
    PyGILState_Release(g);
    return text;
}
#endif

#if FP_HAS_EVENT_TO_STRING
FP_EXPORT const char *plugin_event_to_string(ss_plugin_t *s, const ss_plugin_event_input *evt) {
    fp_state *st = (fp_state *)s;
    const char *text = NULL;
    const uint8_t *data;
    uint32_t len;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = NULL;
    if (!evt || !evt->evt || fp_payload(evt->evt, &data, &len) != 0) {
        PyErr_SetString(PyExc_ValueError, "malformed plugin event");
    } else {
        PyObject *payload = data ? PyBytes_FromStringAndSize((const char *)data, len) : Py_NewRef(fp_empty_bytes);
        if (payload) {
            r = PyObject_CallMethod(st->py, "event_to_string", "KKOKK", (unsigned long long)evt->evtnum,
                                    (unsigned long long)evt->evt->ts, payload,
                                    (unsigned long long)(uintptr_t)evt->evt,
                                    (unsigned long long)(uintptr_t)evt->evtsrc);
            Py_DECREF(payload);
        }
    }
    if (r && PyUnicode_Check(r)) {
        Py_XSETREF(st->ret_str2, r);
        text = PyUnicode_AsUTF8(r);
    } else {
        Py_XDECREF(r);
        fp_fail(st, "event_to_string");
    }
    PyGILState_Release(g);
    return text ? text : "";
}
#endif
#endif /* FP_CAP_SOURCING */

/* ---- extraction --------------------------------------------------------- */

#if FP_CAP_EXTRACTION
FP_EXPORT const char *plugin_get_fields(void) { return FP_FIELDS_JSON; }

#ifdef FP_EXTRACT_SOURCES_JSON
FP_EXPORT const char *plugin_get_extract_event_sources(void) { return FP_EXTRACT_SOURCES_JSON; }
#endif

#ifdef FP_EXTRACT_TYPES
static uint16_t fp_extract_types[] = {FP_EXTRACT_TYPES};
FP_EXPORT uint16_t *plugin_get_extract_event_types(uint32_t *numtypes, ss_plugin_t *s) {
    (void)s;
    *numtypes = (uint32_t)(sizeof fp_extract_types / sizeof fp_extract_types[0]);
    return fp_extract_types;
}
#endif

static int fp_keep(fp_state *st, PyObject *o) {
    if (fp_grow((void **)&st->keep, &st->capkeep, st->nkeep + 1, sizeof(PyObject *))) {
        PyErr_NoMemory();
        return -1;
    }
    Py_INCREF(o);
    st->keep[st->nkeep++] = o;
    return 0;
}

/* Store one value of a field; *slot is the index of the value in its typed array. */
static int fp_store(fp_state *st, const fp_field_info *fi, PyObject *v, size_t slot) {
    switch (fi->type) {
    case FTYPE_UINT64:
    case FTYPE_RELTIME:
    case FTYPE_ABSTIME: {
        if (fp_grow((void **)&st->u64, &st->capu64, slot + 1, sizeof(uint64_t))) {
            PyErr_NoMemory();
            return -1;
        }
        unsigned long long x = PyLong_AsUnsignedLongLong(v);
        if (x == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "expected an int between 0 and 2**64-1, got %R", v);
            return -1;
        }
        st->u64[slot] = x;
        return 0;
    }
    case FTYPE_BOOL: {
        if (fp_grow((void **)&st->b32, &st->capb32, slot + 1, sizeof(ss_plugin_bool))) {
            PyErr_NoMemory();
            return -1;
        }
        int t = PyObject_IsTrue(v);
        if (t < 0) {
            return -1;
        }
        st->b32[slot] = (ss_plugin_bool)t;
        return 0;
    }
    case FTYPE_STRING: {
        if (fp_grow((void **)&st->str, &st->capstr, slot + 1, sizeof(const char *))) {
            PyErr_NoMemory();
            return -1;
        }
        const char *c;
        if (PyUnicode_Check(v)) {
            c = PyUnicode_AsUTF8(v); /* cached in the str object, which we keep */
            if (!c) {
                return -1;
            }
        } else if (PyBytes_Check(v)) {
            c = PyBytes_AS_STRING(v);
        } else {
            PyErr_Format(PyExc_TypeError, "expected str, got %s", Py_TYPE(v)->tp_name);
            return -1;
        }
        st->str[slot] = c;
        return fp_keep(st, v);
    }
    case FTYPE_IPADDR:
    case FTYPE_IPNET: {
        if (fp_grow((void **)&st->buf, &st->capbuf, slot + 1, sizeof(ss_plugin_byte_buffer))) {
            PyErr_NoMemory();
            return -1;
        }
        PyObject *packed;
        if (PyBytes_Check(v)) {
            packed = Py_NewRef(v);
        } else {
            PyObject *addr = fi->type == FTYPE_IPNET ? PyObject_GetAttrString(v, "network_address") : Py_NewRef(v);
            packed = addr ? PyObject_GetAttrString(addr, "packed") : NULL;
            Py_XDECREF(addr);
            if (!packed) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "expected an ipaddress object or packed bytes, got %s",
                             Py_TYPE(v)->tp_name);
                return -1;
            }
        }
        if (!PyBytes_Check(packed) || (PyBytes_GET_SIZE(packed) != 4 && PyBytes_GET_SIZE(packed) != 16)) {
            Py_DECREF(packed);
            PyErr_SetString(PyExc_ValueError, "an IP value must be 4 or 16 bytes");
            return -1;
        }
        st->buf[slot].len = (uint32_t)PyBytes_GET_SIZE(packed);
        st->buf[slot].ptr = PyBytes_AS_STRING(packed);
        int rc = fp_keep(st, packed);
        Py_DECREF(packed);
        return rc;
    }
    default:
        PyErr_Format(PyExc_TypeError, "unsupported field type %u", fi->type);
        return -1;
    }
}

/* Counters of the typed value arrays used by one extract call. */
typedef struct {
    size_t u64, b32, str, buf;
} fp_slots;

static size_t *fp_slot_for(fp_slots *n, uint32_t type) {
    switch (type) {
    case FTYPE_BOOL:
        return &n->b32;
    case FTYPE_STRING:
        return &n->str;
    case FTYPE_IPADDR:
    case FTYPE_IPNET:
        return &n->buf;
    default:
        return &n->u64;
    }
}

/* Extract one field of the current event into f; returns -1 with a Python error set. */
static int fp_extract_one(fp_state *st, ss_plugin_extract_field *f, fp_slots *n, size_t *first,
                          uint32_t *off_start, uint32_t *off_len) {
    const fp_field_info *fi = &fp_fields[f->field_id];
    PyObject *args[3] = {NULL, st->event, NULL};
    size_t nargs = 1;
    if (f->arg_present) {
        if (fi->arg == FP_ARG_INDEX) {
            args[2] = PyLong_FromUnsignedLongLong(f->arg_index);
        } else if (fi->arg == FP_ARG_KEY) {
            args[2] = f->arg_key ? PyUnicode_DecodeUTF8(f->arg_key, strlen(f->arg_key), "replace") : NULL;
            if (!f->arg_key) {
                PyErr_SetString(PyExc_ValueError, "the host passed no key argument");
            }
        } else {
            PyErr_SetString(PyExc_ValueError, "this field takes no argument");
        }
        if (!args[2]) {
            return -1;
        }
        nargs = 2;
    } else if (fi->arg_required) {
        PyErr_Format(PyExc_ValueError, "this field requires an argument: %s[%s]", fi->name,
                     fi->arg == FP_ARG_INDEX ? "<index>" : "<key>");
        return -1;
    }
    PyObject *fn = PyTuple_GET_ITEM(st->fields, f->field_id);
    PyObject *r = PyObject_Vectorcall(fn, args + 1, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_XDECREF(args[2]);
    if (!r) {
        return -1;
    }
    *off_start = 0;
    *off_len = 0;
    if (Py_TYPE(r) == (PyTypeObject *)fp_located) {
        PyObject *value = PyTuple_GET_ITEM(r, 0);
        unsigned long start = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(r, 1));
        unsigned long length = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(r, 2));
        if (PyErr_Occurred()) {
            Py_DECREF(r);
            return -1;
        }
        *off_start = (uint32_t)(FP_PAYLOAD_OFFSET + start);
        *off_len = (uint32_t)length;
        Py_INCREF(value);
        Py_SETREF(r, value);
    }
    size_t *slot = fp_slot_for(n, fi->type);
    *first = *slot;
    int rc = 0;
    if (r == Py_None) {
        f->res_len = 0;
    } else if (fi->is_list) {
        PyObject *seq = PySequence_Fast(r, "a list field must return a sequence");
        if (!seq) {
            rc = -1;
        } else {
            Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
            for (Py_ssize_t j = 0; j < k && rc == 0; j++) {
                rc = fp_store(st, fi, PySequence_Fast_GET_ITEM(seq, j), (*slot)++);
            }
            f->res_len = (uint64_t)k;
            if (rc == 0) {
                rc = fp_keep(st, seq); /* strings inside stay alive with it */
            }
            Py_DECREF(seq);
        }
    } else {
        rc = fp_store(st, fi, r, (*slot)++);
        f->res_len = 1;
    }
    Py_DECREF(r);
    return rc;
}

FP_EXPORT ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *evt,
                                             const ss_plugin_field_extract_input *in) {
    fp_state *st = (fp_state *)s;
    if (!st->py) {
        fp_set_error(st, "extract_fields: the plugin is not initialised");
        return SS_PLUGIN_FAILURE;
    }
    uint32_t nf = in->num_fields;
    for (uint32_t i = 0; i < nf; i++) {
        if (in->fields[i].field_id >= FP_NFIELDS) {
            fp_set_error(st, "extract_fields: unknown field id %u", (unsigned)in->fields[i].field_id);
            return SS_PLUGIN_FAILURE;
        }
    }
    if (fp_grow((void **)&st->off_start, &st->cap_off_start, nf, sizeof(uint32_t)) ||
        fp_grow((void **)&st->off_len, &st->cap_off_len, nf, sizeof(uint32_t))) {
        fp_set_error(st, "extract_fields: out of memory");
        return SS_PLUGIN_FAILURE;
    }
    PyGILState_STATE g = PyGILState_Ensure();
    ss_plugin_rc rc = SS_PLUGIN_SUCCESS;
    fp_release_values(st);
    if (!st->has_evt || evt == NULL || evt->evtnum != st->evtnum || (const void *)evt->evt != st->evtptr) {
        st->has_evt = 0;
        if (fp_retarget(st, evt) != 0) {
            fp_fail(st, "extract_fields");
            rc = SS_PLUGIN_FAILURE;
            goto out;
        }
        st->has_evt = 1;
        st->evtnum = evt->evtnum;
        st->evtptr = evt->evt;
    }
    fp_slots n = {0, 0, 0, 0};
    size_t firsts[16];
    size_t *first = nf <= 16 ? firsts : (size_t *)malloc(nf * sizeof(size_t));
    if (!first) {
        fp_set_error(st, "extract_fields: out of memory");
        rc = SS_PLUGIN_FAILURE;
        goto out;
    }
    for (uint32_t i = 0; i < nf; i++) {
        ss_plugin_extract_field *f = &in->fields[i];
        f->res_len = 0;
        if (fp_extract_one(st, f, &n, &first[i], &st->off_start[i], &st->off_len[i]) != 0) {
            char ctx[256];
            const fp_field_info *fi = &fp_fields[f->field_id];
            if (f->arg_present && fi->arg == FP_ARG_INDEX) {
                snprintf(ctx, sizeof ctx, "extracting %s[%llu]", fi->name, (unsigned long long)f->arg_index);
            } else if (f->arg_present && f->arg_key) {
                snprintf(ctx, sizeof ctx, "extracting %s[%s]", fi->name, f->arg_key);
            } else {
                snprintf(ctx, sizeof ctx, "extracting %s", fi->name);
            }
            fp_fail(st, ctx);
            rc = SS_PLUGIN_FAILURE;
            break;
        }
    }
    if (rc == SS_PLUGIN_SUCCESS) {
        /* The typed arrays may have moved while growing: point at them last. */
        for (uint32_t i = 0; i < nf; i++) {
            ss_plugin_extract_field *f = &in->fields[i];
            switch (fp_fields[f->field_id].type) {
            case FTYPE_BOOL:
                f->res.boolean = st->b32 + first[i];
                break;
            case FTYPE_STRING:
                f->res.str = st->str + first[i];
                break;
            case FTYPE_IPADDR:
            case FTYPE_IPNET:
                f->res.buf = st->buf + first[i];
                break;
            default:
                f->res.u64 = st->u64 + first[i];
            }
        }
#if FP_READ_VALUE_OFFSETS
        if (in->value_offsets) {
            in->value_offsets->start = st->off_start;
            in->value_offsets->length = st->off_len;
        }
#endif
    }
    if (first != firsts) {
        free(first);
    }
out:
    PyGILState_Release(g);
    return rc;
}
#endif /* FP_CAP_EXTRACTION */
