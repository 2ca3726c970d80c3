/*
 * The part of the C glue every plugin library has: Python start-up, the
 * plugin state, errors, metadata, and the shared Event object.
 *
 * The builder prepends the plugin's FP_* definitions and includes this file,
 * then the C file of each capability the plugin has (see common.h). What the
 * host can read without running plugin code (metadata, fields, schema) is a
 * C constant, so listing a plugin never starts Python. The first init()
 * starts Python (or joins the interpreter of a Python host or of another
 * Python plugin), checks that the runtime it finds speaks this glue's
 * contract, imports the plugin and creates its runtime Binding.
 */
#include "common.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

/* ---- Python start-up ------------------------------------------------------ */

static pthread_once_t fp_once = PTHREAD_ONCE_INIT;
static char fp_start_error[PLUGIN_ERRLEN];
static int fp_started;
static char fp_site_dir[PATH_MAX];
static PyObject *fp_binding; /* runtime.Binding */
/* Slots of falco_plugin.Event the glue writes directly on each new event. */
static PyMemberDef *fp_m_payload, *fp_m_tid, *fp_m_key, *fp_m_value, *fp_m_cache;

#define FP_SLOT(obj, m) ((PyObject **)((char *)(obj) + (m)->offset))

/* Replace a slot of the Event (v is stolen): what PyMember_SetOne does for an
 * object slot, without its checks, which fp_member made once. */
static inline void fp_set_slot(PyObject *obj, const PyMemberDef *m, PyObject *v) {
    PyObject *old = *FP_SLOT(obj, m);
    *FP_SLOT(obj, m) = v;
    Py_XDECREF(old);
}

static inline void fp_clear_slot(PyObject *obj, const PyMemberDef *m) {
    if (*FP_SLOT(obj, m) != Py_None) {
        fp_set_slot(obj, m, Py_NewRef(Py_None));
    }
}

#include "per_event.c"

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

#ifdef FP_STATIC_API
#include "static_site.c" /* linked into a program: no library path to start from */
#else
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
#endif

static int fp_we_started_python;

/* Every SDK-built library in a process links the same libpython, but each has
 * its own once-guard: two of them starting Python at the same time would both
 * initialise it. An exclusive flock on the libpython file serialises that
 * across all of them (and briefly across processes starting at the same
 * moment, which costs nothing): flock conflicts between open file
 * descriptions, even within one process. -1 when the file cannot be opened,
 * e.g. Python linked into the executable, where a Python host started it. */
static int fp_lock_python_start(const char *libpython) {
    int fd = libpython ? open(libpython, O_RDONLY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        while (flock(fd, LOCK_EX) != 0 && errno == EINTR) {
        }
    }
    return fd;
}

static void fp_unlock_python_start(int fd) {
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

static int fp_start_interpreter(const char *home);

#ifdef FP_PYTHON_HOME_RELATIVE
/* A standalone library carries its interpreter: the home is FP_PYTHON_HOME_RELATIVE
 * in the library's own directory (shared by every standalone plugin there). */
static int fp_start_bundled_interpreter(void) {
    Dl_info info;
    char path[PATH_MAX], home[PATH_MAX];
    if (!dladdr((void *)&fp_start_bundled_interpreter, &info) || !info.dli_fname) {
        fp_start_failed("cannot find the path of the plugin library");
        return -1;
    }
    if (!realpath(info.dli_fname, path)) {
        snprintf(path, sizeof path, "%s", info.dli_fname);
    }
    char *slash = strrchr(path, '/');
    if (slash) {
        *slash = '\0';
    }
    if ((size_t)snprintf(home, sizeof home, "%s/%s", slash ? path : ".", FP_PYTHON_HOME_RELATIVE) >= sizeof home) {
        fp_start_failed("plugin library path too long");
        return -1;
    }
    return fp_start_interpreter(home);
}
#endif

/* One process runs one Python, and a plugin's compiled glue and extension
 * modules fit one minor version only. The first Python plugin to start makes
 * its libpython global (below), so a plugin built with another minor would
 * bind its calls to that interpreter and crash: refuse, naming both. Found
 * through the global scope (a Python host's own interpreter included: from
 * 3.11 on Py_Version says which it is), or by the sonames of older ones. */
static int fp_check_no_other_python(void) {
    int other = -1;
    const unsigned long *version = (const unsigned long *)dlsym(RTLD_DEFAULT, "Py_Version");
    int (*running)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    if (version && running && running()) {
        int minor = (int)((*version >> 16) & 0xff);
        if (minor != PY_MINOR_VERSION) {
            other = minor;
        }
    }
    for (int minor = 6; other < 0 && minor < 11; minor++) {
        char name[32];
        snprintf(name, sizeof name, "libpython3.%d.so.1.0", minor);
        void *lib = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
        if (lib) {
            running = (int (*)(void))dlsym(lib, "Py_IsInitialized");
            if (running && running()) {
                other = minor;
            }
            dlclose(lib);
        }
    }
    if (other >= 0) {
        fp_start_failed("Python 3.%d already runs in this process (started by another plugin, or the host), and this "
                        "plugin was built with Python 3.%d: one process cannot run both. Build every Python plugin of "
                        "one Falco with the same Python minor version", other, PY_MINOR_VERSION);
        return -1;
    }
    return 0;
}

/* Start Python unless it runs already; *lock receives the start-up lock,
 * which the caller releases once the plugin's site directory is on the path
 * (sys.path is rebuilt from a copy, so two libraries doing that at once
 * could drop each other's directory). Never called with the GIL held, so
 * waiting for the lock cannot deadlock with its holder. */
static int fp_init_interpreter(int *lock) {
    *lock = -1;
    if (fp_check_no_other_python() != 0) {
        return -1;
    }
    /* Falco dlopens plugins RTLD_LOCAL, which hides libpython's symbols from
     * the extension modules Python imports later: make them global. */
    Dl_info info;
    const char *libpython = NULL;
    if (dladdr((void *)&Py_IsInitialized, &info) && info.dli_fname) {
        dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
        libpython = info.dli_fname;
    }
    *lock = fp_lock_python_start(libpython);
    int rc = 0;
    if (!Py_IsInitialized()) { /* else a Python host, or another Python plugin, got here first */
        const char *home = getenv("FALCO_PLUGIN_PYTHONHOME");
#ifdef FP_PYTHON_HOME_RELATIVE
        rc = home && *home ? fp_start_interpreter(home) : fp_start_bundled_interpreter();
#else
        rc = fp_start_interpreter(home && *home ? home : FP_PYTHON_HOME);
#endif
    }
    return rc;
}

static int fp_start_interpreter(const char *home) {
    /* Check the standard library is there first: Python's own failure
     * path dumps its path configuration on the host's stderr. */
    char landmark[PATH_MAX];
    snprintf(landmark, sizeof landmark, "%s/lib/python3.%d/os.py", home, PY_MINOR_VERSION);
    int found = access(landmark, R_OK) == 0;
#ifdef FP_PYTHON_HOME_RELATIVE
    if (!found) { /* a bundled standard library is bytecode, zipped or not */
        snprintf(landmark, sizeof landmark, "%s/lib/python3%d.zip", home, PY_MINOR_VERSION);
        found = access(landmark, R_OK) == 0;
    }
    if (!found) {
        snprintf(landmark, sizeof landmark, "%s/lib/python3.%d/os.pyc", home, PY_MINOR_VERSION);
        found = access(landmark, R_OK) == 0;
    }
    if (!found) {
        fp_start_failed("the Python 3.%d standard library this standalone plugin bundles is missing: %s/ must sit "
                        "next to the plugin library (unpack the whole plugin archive), or set "
                        "FALCO_PLUGIN_PYTHONHOME to the prefix of a Python 3.%d installation",
                        PY_MINOR_VERSION, home, PY_MINOR_VERSION);
        return -1;
    }
#endif
    if (!found) {
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
    if (d && Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX) {
        m = ((PyMemberDescrObject *)d)->d_member; /* fp_set_slot writes it directly */
    } else if (d) {
        PyErr_Format(PyExc_TypeError, "Event.%s is not a slot", name);
    }
    Py_XDECREF(d); /* the type keeps the descriptor alive */
    return m;
}

/* Whether the falco_plugin runtime this interpreter imports speaks our
 * contract. When another Python plugin started the interpreter, its runtime
 * is the one imported, whatever our site directory holds. */
static int fp_check_contract(void) {
    PyObject *version = PyImport_ImportModule("falco_plugin._internal.version");
    long contract = 0;
    const char *theirs = "an older release";
    PyObject *sdk = NULL;
    if (version) {
        PyObject *c = PyObject_GetAttrString(version, "GLUE_CONTRACT");
        sdk = PyObject_GetAttrString(version, "SDK_VERSION");
        contract = c ? PyLong_AsLong(c) : 0;
        Py_XDECREF(c);
        if (sdk && PyUnicode_Check(sdk)) {
            theirs = PyUnicode_AsUTF8(sdk);
        }
    }
    PyErr_Clear();
    int rc = 0;
    if (contract != FP_GLUE_CONTRACT) {
        const char *where = "?";
        PyObject *pkg = PyImport_ImportModule("falco_plugin");
        PyObject *file = pkg ? PyObject_GetAttrString(pkg, "__file__") : NULL;
        if (file && PyUnicode_Check(file)) {
            where = PyUnicode_AsUTF8(file);
        }
        PyErr_Clear();
        fp_start_failed("this library was built with falco-plugin-sdk %s (glue contract %d), but the Python "
                        "interpreter it joins already runs falco_plugin %s (glue contract %ld, from %s), loaded by "
                        "another Python plugin; Python plugins sharing one process need SDKs with the same glue "
                        "contract: rebuild them with one SDK release",
                        FP_SDK_VERSION, FP_GLUE_CONTRACT, theirs ? theirs : "?", contract, where ? where : "?");
        Py_XDECREF(file);
        Py_XDECREF(pkg);
        rc = -1;
    }
    Py_XDECREF(sdk);
    Py_XDECREF(version);
    return rc;
}

static int fp_bind(void) {
    int rc = -1;
    PyGILState_STATE g = PyGILState_Ensure();
    if (fp_check_contract() != 0) {
        PyGILState_Release(g);
        return -1;
    }
    PyObject *rt = PyImport_ImportModule("falco_plugin._internal.runtime");
    PyObject *event_type = rt ? PyObject_GetAttrString(rt, "Event") : NULL;
    if (event_type) {
        fp_m_payload = fp_member(event_type, "payload");
        fp_m_tid = fp_m_payload ? fp_member(event_type, "tid") : NULL;
        fp_m_key = fp_m_tid ? fp_member(event_type, "_key") : NULL;
        fp_m_value = fp_m_key ? fp_member(event_type, "_value") : NULL;
        fp_m_cache = fp_m_value ? fp_member(event_type, "_cache") : NULL;
    }
    /* Before the plugin module is imported: its @per_event methods are made then. */
    if (fp_m_cache && fp_per_event_install(event_type) == 0) {
        fp_binding = PyObject_CallMethod(rt, "Binding", "sssi", FP_MODULE, FP_TARGET, FP_BAKED, fp_we_started_python);
        if (fp_binding) { /* only now: the lookups below would swallow a pending error */
            fp_end_of_stream = PyObject_GetAttrString(rt, "END_OF_STREAM");
            fp_timeout = PyObject_GetAttrString(rt, "TIMEOUT");
            fp_located = PyObject_GetAttrString(rt, "LOCATED");
            fp_empty_bytes = PyBytes_FromStringAndSize("", 0);
            fp_no_thread = PyLong_FromUnsignedLongLong(UINT64_MAX);
            if (fp_end_of_stream && fp_timeout && fp_located && fp_empty_bytes && fp_no_thread) {
                rc = 0;
            }
        }
    }
    Py_XDECREF(event_type);
    Py_XDECREF(rt);
    if (rc != 0) {
        char text[PLUGIN_ERRLEN - 64];
        fp_exception_text(text, sizeof text);
        fp_start_failed("cannot load %s: %s", FP_TARGET, text);
    }
    PyGILState_Release(g);
    return rc;
}

static void fp_start(void) {
    if (fp_locate_site()) {
        return;
    }
    int lock = -1;
    int failed = fp_init_interpreter(&lock) || fp_add_site_dir(fp_we_started_python);
    fp_unlock_python_start(lock);
    if (failed) {
        return;
    }
    if (cffi_start_python() != 0) {
        fp_start_failed("cffi could not initialise the embedded module %s", FP_MODULE);
        return;
    }
    if (fp_bind() == 0) {
        fp_gil_setup();
        fp_started = 1;
    }
}

static int fp_python_ready(void) {
    pthread_once(&fp_once, fp_start);
    return fp_started;
}

/* ---- the GIL on hot paths -------------------------------------------------------
 *
 * PyGILState_Ensure/Release look the thread's state up and count on every call,
 * and on a thread Python did not start, Release deletes the state Ensure made,
 * so every call there also created and destroyed one. Instead each host thread
 * gets its Python thread state once, from PyGILState_Ensure (so that it is the
 * one PyGILState and cffi find for this thread, and nesting with them works),
 * whose count we keep, so no Release deletes it; each call then only switches
 * to it (PyEval_RestoreThread) and back (PyEval_SaveThread). The GIL is held
 * during the call only, never between calls.
 *
 * Nesting: a plugin's Python calling the host, which calls a Python plugin's
 * glue on the same thread, finds the GIL held by this thread's own state (the
 * one every library and PyGILState use here), and neither takes nor drops it.
 *
 * A thread that ends: the library's thread-exit destructor deletes the state
 * it kept. By then glibc may have cleared Python's own per-thread key (keys
 * are cleared in the order they were made, Python's first), so the destructor
 * then takes the GIL with a state of its own, looks for the kept one among the
 * interpreter's states of this thread (Python deletes the states of its own
 * threads itself; another library's destructor may have got there first) and
 * deletes it if it is still there. */

static pthread_key_t fp_thread_key;
static int fp_thread_key_ok;
static __thread PyThreadState *fp_thread_state;

static inline PyThreadState *fp_current_state(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked();
#else
    return _PyThreadState_UncheckedGet(); /* 3.11: the state holding the GIL, whatever its thread */
#endif
}

static int fp_python_finalizing(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

static void fp_thread_exit(void *kept) {
    PyThreadState *ts = (PyThreadState *)kept;
    fp_thread_state = NULL;
    if (!ts || !Py_IsInitialized() || fp_python_finalizing()) {
        return; /* finalizing deletes every state; a thread must not wait for the GIL then */
    }
    if (PyGILState_GetThisThreadState() == ts) {
        /* Python's key still names it: give our count back; the last count deletes it
         * (another library on this thread may still hold one). */
        PyEval_RestoreThread(ts);
        PyGILState_Release(PyGILState_UNLOCKED);
        return;
    }
    /* A state of our own to hold the GIL while looking, made by hand: deleting the kept one
     * clears Python's key (3.12 on), which PyGILState_Release would then miss. */
    PyInterpreterState *interp = PyInterpreterState_Main();
    PyThreadState *tmp = PyThreadState_New(interp);
    if (!tmp) {
        return;
    }
    PyEval_RestoreThread(tmp);
    unsigned long me = PyThread_get_thread_ident();
    for (PyThreadState *t = PyInterpreterState_ThreadHead(interp); t; t = PyThreadState_Next(t)) {
        if (t == ts && t != tmp && t->thread_id == me) {
            PyThreadState_Clear(t);
            PyThreadState_Delete(t);
            break;
        }
    }
    PyThreadState_Clear(tmp);
    PyThreadState_DeleteCurrent();
}

/* Once per library, after Python started: without the key, hot paths use PyGILState. */
static void fp_gil_setup(void) {
    fp_thread_key_ok = pthread_key_create(&fp_thread_key, fp_thread_exit) == 0;
}

static fp_gil fp_gil_enter_first(void) {
    fp_gil r;
    r.g = PyGILState_Ensure();
    if (!fp_thread_key_ok || pthread_setspecific(fp_thread_key, PyThreadState_Get()) != 0) {
        r.how = FP_GIL_ENSURED;
        return r;
    }
    fp_thread_state = PyThreadState_Get();
    /* The Ensure's count stays: it keeps the state alive until this thread ends. */
    r.how = r.g == PyGILState_UNLOCKED ? FP_GIL_TAKEN : FP_GIL_NESTED;
    return r;
}

static inline fp_gil fp_gil_enter(void) {
    PyThreadState *ts = fp_thread_state;
    fp_gil r;
    r.g = PyGILState_LOCKED;
    if (!ts) {
        return fp_gil_enter_first();
    }
    if (fp_current_state() == ts) {
        r.how = FP_GIL_NESTED;
        return r;
    }
    PyEval_RestoreThread(ts);
    r.how = FP_GIL_TAKEN;
    return r;
}

static inline void fp_gil_leave(fp_gil g) {
    if (g.how == FP_GIL_TAKEN) {
        PyEval_SaveThread();
    } else if (g.how == FP_GIL_ENSURED) {
        PyGILState_Release(g.g);
    }
}

/* ---- errors ----------------------------------------------------------------- */

static void fp_set_error(fp_state *st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
}

/* Turn the pending Python exception into st->err (GIL held). */
static void fp_fail(fp_state *st, const char *context) {
    atomic_fetch_add(&st->errors, 1);
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
    if (!st) {
        return "";
    }
    memcpy(st->err_out, st->err, sizeof st->err_out);
    return st->err_out;
}

/* ---- lifetime ------------------------------------------------------------ */

/* Undo what init made of the state (GIL held); only get_last_error may follow. */
static void fp_release(fp_state *st) {
#define FP_RELEASE_CAP(name) fp_##name##_release(st);
    FP_CAPABILITIES(FP_RELEASE_CAP)
#if FP_HAS_TABLES
    fp_tables_release(st);
#endif
    Py_CLEAR(st->event);
    Py_CLEAR(st->py);
}

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
    int ok = st->py != NULL;
    if (ok) {
        st->event = PyObject_GetAttrString(st->py, "event");
        ok = st->event != NULL;
    }
#define FP_ATTACH_CAP(name) ok = ok && fp_##name##_attach(st) == 0;
    FP_CAPABILITIES(FP_ATTACH_CAP)
#if FP_HAS_TABLES
    ok = ok && fp_tables_attach(st) == 0;
#endif
    if (ok) {
#if FP_HAS_TABLES
        struct fp_tctx tc; /* the plugin's init may use the tables the host offers */
        fp_tables_enter_init(&tc, input);
#endif
        PyObject *r = PyObject_CallMethod(st->py, "start", NULL);
        ok = r != NULL;
        Py_XDECREF(r);
#if FP_HAS_TABLES
        fp_tables_leave(&tc); /* gives back what init held; keeps a pending error */
#endif
    }
    if (ok) {
        *rc = SS_PLUGIN_SUCCESS;
    } else {
        fp_fail(st, "init");
        if (st->py) {
            /* A failed init leaves nothing to use: only get_last_error and
             * destroy may follow, and destroy must not run the plugin's own. */
            PyObject *r = PyObject_CallMethod(st->py, "destroy", NULL);
            if (!r) {
                PyErr_Clear();
            }
            Py_XDECREF(r);
        }
        fp_release(st);
    }
    PyGILState_Release(g);
    return st;
}

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
        fp_release(st);
        PyGILState_Release(g);
    }
    free(st);
}

#ifndef FP_NMETRICS
/* A plugin without metrics of its own still reports its failures (metrics.c does for the others).
 * Hosts older than plugin API 3.5 never look this symbol up. */
FP_EXPORT ss_plugin_metric *plugin_get_metrics(ss_plugin_t *s, uint32_t *num_metrics) {
    fp_state *st = (fp_state *)s;
    *num_metrics = 0;
    if (!st) {
        return NULL;
    }
    st->errors_out.name = "sdk.errors";
    st->errors_out.type = SS_PLUGIN_METRIC_TYPE_MONOTONIC;
    st->errors_out.value_type = SS_PLUGIN_METRIC_VALUE_TYPE_U64;
    st->errors_out.value.u64 = atomic_load(&st->errors);
    *num_metrics = 1;
    return &st->errors_out;
}
#endif

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
    if (evt->type == FP_ASYNC_EVENT) {
        /* plugin id (u32), NUL-terminated name, payload: the payload is what plugins read */
        uint32_t l[3];
        if (evt->nparams != 3 || total < FP_ASYNC_NAME_OFFSET) {
            return -1;
        }
        memcpy(l, raw + FP_EVT_HEADER, sizeof l);
        if (l[0] != 4 || l[1] == 0 || (uint64_t)FP_ASYNC_NAME_OFFSET + l[1] + l[2] > total) {
            return -1;
        }
        *data = raw + FP_ASYNC_NAME_OFFSET + l[1];
        *len = l[2];
        return 0;
    }
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
static int fp_use_event(fp_state *st, const ss_plugin_event_input *evt) {
    if (st->has_evt && evt && evt->evtnum == st->evtnum && (const void *)evt->evt == st->evtptr) {
        return 0;
    }
    st->has_evt = 0;
    const uint8_t *data;
    uint32_t len;
    if (!evt || !evt->evt) {
        PyErr_SetString(PyExc_ValueError, "no event given");
        return -1;
    }
    if (fp_payload(evt->evt, &data, &len) != 0) {
        PyErr_Format(PyExc_ValueError, "malformed %s event (type %u, %u bytes, %u params)",
                     evt->evt->type == FP_ASYNC_EVENT ? "async" : "plugin",
                     (unsigned)evt->evt->type, (unsigned)evt->evt->len, (unsigned)evt->evt->nparams);
        return -1;
    }
    PyObject *payload = data ? PyBytes_FromStringAndSize((const char *)data, len) : Py_NewRef(fp_empty_bytes);
    /* Plugin events mostly carry no thread: one shared int, not one per event. */
    PyObject *tid = evt->evt->tid == UINT64_MAX ? Py_NewRef(fp_no_thread) : PyLong_FromUnsignedLongLong(evt->evt->tid);
    if (!payload || !tid) {
        Py_XDECREF(payload);
        Py_XDECREF(tid);
        return -1;
    }
    st->ref.evt = evt->evt;
    st->ref.addr = (uintptr_t)evt->evt;
    st->ref.src = (uintptr_t)evt->evtsrc;
    st->ref.num = evt->evtnum; /* no int object until a field reads it */
    PyObject *obj = st->event;
    fp_set_slot(obj, fp_m_payload, payload);
    fp_set_slot(obj, fp_m_tid, tid);
    fp_clear_slot(obj, fp_m_key); /* the @per_event values of the last event */
    fp_clear_slot(obj, fp_m_value);
    fp_clear_slot(obj, fp_m_cache);
    st->has_evt = 1;
    st->evtnum = evt->evtnum;
    st->evtptr = evt->evt;
    return 0;
}

#if FP_HAS_TABLES
#include "tables.c"
#endif
