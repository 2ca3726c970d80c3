/*
 * Async events: get_async_events (a C constant), set_async_event_handler,
 * and get_async_event_sources and dump_state when the plugin has them.
 *
 * Every event goes through a gate: the host's handler and owner plus the
 * generation of the session they belong to. Python code emits through small
 * builtins bound to a gate (and, for a session, to its generation): the
 * builtin checks the name, writes the 402 event, then releases the GIL and
 * calls the handler, so host handlers that take time (or take the GIL, as a
 * Python host's do) never stall other Python threads. Closing the gate waits
 * until no call to the handler is in flight; after that no event reaches that
 * handler, whatever threads are still running.
 *
 * Gates live in capsules, and each builtin holds a reference: a thread that
 * emits after destroy finds a closed gate (its event is dropped and counted),
 * never freed memory.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define FP_ASYNC_HEADER FP_ASYNC_NAME_OFFSET

static const char *const fp_async_names[] = {FP_ASYNC_NAMES};
static PyObject *fp_plugin_error; /* falco_plugin.PluginError */

typedef struct fp_gate {
    ss_plugin_async_event_handler_t handler;
    ss_plugin_owner_t *owner;
    _Atomic uint64_t open_gen; /* 0: closed */
    _Atomic uint64_t inflight; /* handler calls under way */
    _Atomic uint64_t delivered, dropped, refused;
    uint64_t last_gen;
    /* Pacing (AsyncPlugin.async_emit_rate): a token bucket of pace_burst events refilled at pace_rate
     * per second; 0: unpaced. Set while the gate is closed, read by emitters after it opens. */
    double pace_rate, pace_burst, pace_tokens;
    uint64_t pace_ns;
    pthread_mutex_t pace_lock;
} fp_gate;

typedef struct fp_emitter {
    PyObject *gate_obj; /* the gate's capsule, kept alive */
    fp_gate *gate;
    uint64_t gen;       /* 0: whichever session is open */
    PyObject *refused;  /* the state's async_refused(name, reason), which logs a refusal; it holds no
                         * reference to the state (the plugin holds this emitter) */
} fp_emitter;

#ifndef FP_ASYNC_EMIT_DEADLINE_NS
#define FP_ASYNC_EMIT_DEADLINE_NS 1000000000ull
#endif

struct fp_async_state {
    PyObject *gate_obj;
    fp_gate *gate; /* gate_obj's, for readers without the GIL (get_metrics) */
    int active; /* a handler is set and its session started */
};

static void fp_gate_free(PyObject *cap) {
    fp_gate *g = (fp_gate *)PyCapsule_GetPointer(cap, "fp_gate");
    if (g) {
        pthread_mutex_destroy(&g->pace_lock);
    }
    free(g);
}

static PyObject *fp_gate_new(fp_gate **out) {
    fp_gate *g = (fp_gate *)calloc(1, sizeof *g);
    if (!g) {
        return PyErr_NoMemory();
    }
    pthread_mutex_init(&g->pace_lock, NULL);
    PyObject *cap = PyCapsule_New(g, "fp_gate", fp_gate_free);
    if (!cap) {
        free(g);
        return NULL;
    }
    *out = g;
    return cap;
}

static uint64_t fp_gate_open(fp_gate *g, ss_plugin_async_event_handler_t handler, ss_plugin_owner_t *owner) {
    uint64_t gen = ++g->last_gen;
    g->handler = handler;
    g->owner = owner;
    atomic_store(&g->open_gen, gen); /* publishes handler and owner */
    return gen;
}

/* The gate whose handler this thread is inside, if any: a host may clear its
 * handler from within it, and must not wait for itself. */
static __thread fp_gate *fp_in_handler;

/* No GIL needed (callers release it): a handler call in flight may need it. */
static void fp_gate_close(fp_gate *g) {
    atomic_store(&g->open_gen, 0);
    /* An emitter counts itself in before it reads open_gen, and we read
     * inflight after closing (both sequentially consistent): either it sees
     * the gate closed or we see it in flight. */
    uint64_t mine = fp_in_handler == g ? 1u : 0u;
    while (atomic_load(&g->inflight) > mine) {
        struct timespec pause = {0, 50000};
        nanosleep(&pause, NULL);
    }
    g->handler = NULL;
    g->owner = NULL;
}

static void fp_gate_close_nogil(fp_gate *g) {
    Py_BEGIN_ALLOW_THREADS
    fp_gate_close(g);
    Py_END_ALLOW_THREADS
}

static uint64_t fp_mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* One handler call: 1 delivered, 0 dropped (closed, or another session's), -1 refused (err set). */
static int fp_gate_try(fp_gate *g, uint64_t gen, const ss_plugin_event *evt, char *err) {
    atomic_fetch_add(&g->inflight, 1);
    uint64_t open = atomic_load(&g->open_gen);
    if (open == 0 || (gen != 0 && open != gen)) {
        atomic_fetch_sub(&g->inflight, 1);
        return 0;
    }
    fp_gate *outer = fp_in_handler;
    fp_in_handler = g;
    ss_plugin_rc rc = g->handler(g->owner, evt, err);
    fp_in_handler = outer;
    atomic_fetch_sub(&g->inflight, 1);
    return rc == SS_PLUGIN_SUCCESS ? 1 : -1;
}

/* Pacing: wait for a token of the bucket (GIL released). 1: go, 0: the gate closed meanwhile
 * (dropped), -1: no token before `until` (err set). */
static int fp_gate_pace(fp_gate *g, uint64_t gen, uint64_t until, char *err) {
    for (;;) {
        pthread_mutex_lock(&g->pace_lock);
        uint64_t t = fp_mono_ns();
        double tokens = g->pace_tokens + (double)(t - g->pace_ns) / 1e9 * g->pace_rate;
        g->pace_tokens = tokens < g->pace_burst ? tokens : g->pace_burst;
        g->pace_ns = t;
        if (g->pace_tokens >= 1.0) {
            g->pace_tokens -= 1.0;
            pthread_mutex_unlock(&g->pace_lock);
            return 1;
        }
        uint64_t wait = (uint64_t)((1.0 - g->pace_tokens) / g->pace_rate * 1e9) + 1;
        pthread_mutex_unlock(&g->pace_lock);
        uint64_t open = atomic_load(&g->open_gen);
        if (open == 0 || (gen != 0 && open != gen)) {
            return 0;
        }
        if (t + wait > until) {
            snprintf(err, PLUGIN_ERRLEN, "the plugin's async_emit_rate (%g events/s) left no room for it", g->pace_rate);
            return -1;
        }
        struct timespec pause = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
        nanosleep(&pause, NULL);
    }
}

/* Back-pressure: a host refuses an event when it cannot take it now (a full
 * queue); the SDK has already checked everything else about it. The event is
 * offered again, with pauses doubling from 50 us to 10 ms, until `deadline_ns`
 * has passed since the first refusal or the gate closes; the emitting thread
 * waits (without the GIL) meanwhile. A paced gate first waits for its turn,
 * up to the same deadline. 1: delivered, 0: dropped, -1: refused, or no turn,
 * at the deadline (err set). An emit from inside the host's handler neither
 * waits nor retries: the host's thread must never wait on itself. */
static int fp_gate_send(fp_gate *g, uint64_t gen, const ss_plugin_event *evt, char *err, uint64_t deadline_ns) {
    int inside = fp_in_handler == g;
    int r = 1;
    if (g->pace_rate > 0 && !inside) {
        r = fp_gate_pace(g, gen, fp_mono_ns() + (deadline_ns ? deadline_ns : UINT64_MAX / 2), err);
    }
    if (r > 0) {
        r = fp_gate_try(g, gen, evt, err);
        if (r < 0 && !inside && deadline_ns > 0) {
            uint64_t until = fp_mono_ns() + deadline_ns;
            long pause_ns = 50000;
            while (r < 0 && fp_mono_ns() < until) {
                struct timespec pause = {0, pause_ns};
                nanosleep(&pause, NULL);
                pause_ns = pause_ns < 10000000 ? pause_ns * 2 : 10000000;
                r = fp_gate_try(g, gen, evt, err);
            }
        }
    }
    atomic_fetch_add(r > 0 ? &g->delivered : r == 0 ? &g->dropped : &g->refused, 1);
    return r;
}

static int fp_u64_arg(PyObject *o, const char *what, uint64_t *out) {
    if (!o || o == Py_None) {
        *out = UINT64_MAX; /* the host fills it in */
        return 0;
    }
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "emit: %s must be an int or None, not %s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = PyLong_AsUnsignedLongLong(o);
    if (*out == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_Format(PyExc_ValueError, "emit: %s must be between 0 and 2**64-1", what);
        return -1;
    }
    return 0;
}

/* emit(name, payload=b"", *, ts=None, tid=None) -> bool */
static PyObject *fp_async_emit(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    fp_emitter *e = (fp_emitter *)PyCapsule_GetPointer(self, "fp_emitter");
    if (!e) {
        return NULL;
    }
    PyObject *name = nargs > 0 ? args[0] : NULL, *payload = nargs > 1 ? args[1] : NULL, *ts_o = NULL, *tid_o = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "emit() takes at most 2 positional arguments (%zd given)", nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i), *val = args[nargs + i];
        if (PyUnicode_CompareWithASCIIString(key, "ts") == 0) {
            ts_o = val;
        } else if (PyUnicode_CompareWithASCIIString(key, "tid") == 0) {
            tid_o = val;
        } else if (PyUnicode_CompareWithASCIIString(key, "payload") == 0 && !payload) {
            payload = val;
        } else if (PyUnicode_CompareWithASCIIString(key, "name") == 0 && !name) {
            name = val;
        } else {
            PyErr_Format(PyExc_TypeError, "emit() got an unexpected keyword argument '%U'", key);
            return NULL;
        }
    }
    if (!name || !PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "emit: the event name must be a str");
        return NULL;
    }
    Py_ssize_t nlen;
    const char *cname = PyUnicode_AsUTF8AndSize(name, &nlen);
    if (!cname) {
        return NULL;
    }
    unsigned idx = 0;
    while (idx < FP_ASYNC_NNAMES && strcmp(fp_async_names[idx], cname) != 0) {
        idx++;
    }
    if (idx == FP_ASYNC_NNAMES || (size_t)nlen != strlen(cname)) {
        PyErr_Format(PyExc_ValueError, "emit: %R is not one of the plugin's async_events %s", name,
                     FP_ASYNC_EVENTS_JSON);
        return NULL;
    }
    uint64_t ts, tid;
    if (fp_u64_arg(ts_o, "ts", &ts) || fp_u64_arg(tid_o, "tid", &tid)) {
        return NULL;
    }
    uint64_t open = atomic_load(&e->gate->open_gen);
    if (open == 0 || (e->gen != 0 && open != e->gen)) { /* cheap early drop, no event written */
        atomic_fetch_add(&e->gate->dropped, 1);
        Py_RETURN_FALSE;
    }
    Py_buffer view;
    const char *data = "";
    Py_ssize_t plen = 0;
    int release = 0;
    if (!payload) {
    } else if (PyBytes_Check(payload)) {
        data = PyBytes_AS_STRING(payload);
        plen = PyBytes_GET_SIZE(payload);
    } else if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) == 0) {
        data = (const char *)view.buf;
        plen = view.len;
        release = 1;
    } else {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "emit: the payload must be bytes-like, not %s", Py_TYPE(payload)->tp_name);
        return NULL;
    }
    uint64_t total = (uint64_t)FP_ASYNC_HEADER + (uint64_t)nlen + 1u + (uint64_t)plen;
    if (total > UINT32_MAX) {
        if (release) {
            PyBuffer_Release(&view);
        }
        PyErr_Format(PyExc_ValueError, "emit: a payload of %zd bytes is too large for an event", plen);
        return NULL;
    }
    uint64_t small[512]; /* 4 KiB, 8-byte aligned: most events need no allocation */
    uint8_t *buf = total <= sizeof small ? (uint8_t *)small : (uint8_t *)malloc((size_t)total);
    if (!buf) {
        if (release) {
            PyBuffer_Release(&view);
        }
        return PyErr_NoMemory();
    }
    ss_plugin_event hdr = {ts, tid, (uint32_t)total, FP_ASYNC_EVENT, 3};
    uint32_t lens_and_id[4] = {4, (uint32_t)nlen + 1u, (uint32_t)plen, 0}; /* the host sets the plugin id */
    memcpy(buf, &hdr, FP_EVT_HEADER);
    memcpy(buf + FP_EVT_HEADER, lens_and_id, sizeof lens_and_id);
    memcpy(buf + FP_ASYNC_HEADER, cname, (size_t)nlen + 1u);
    memcpy(buf + FP_ASYNC_HEADER + nlen + 1, data, (size_t)plen);
    if (release) {
        PyBuffer_Release(&view);
    }
    char err[PLUGIN_ERRLEN];
    err[0] = '\0';
    int sent;
    Py_BEGIN_ALLOW_THREADS
    sent = fp_gate_send(e->gate, e->gen, (const ss_plugin_event *)buf, err, FP_ASYNC_EMIT_DEADLINE_NS);
    Py_END_ALLOW_THREADS
    if (buf != (uint8_t *)small) {
        free(buf);
    }
    if (sent > 0) {
        Py_RETURN_TRUE;
    }
    if (sent < 0 && e->refused) {
        /* Not delivered: False, like a drop; the refusal is counted and logged (not raised: a worker
         * that meets a full host queue must not die of it). */
        err[sizeof err - 1] = '\0';
        PyObject *r = PyObject_CallFunction(e->refused, "ss", cname, err[0] ? err : "(no reason given)");
        if (!r) {
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_RETURN_FALSE;
}

static PyObject *fp_async_close(PyObject *self, PyObject *unused) {
    (void)unused;
    fp_gate *g = (fp_gate *)PyCapsule_GetPointer(self, "fp_gate");
    if (!g) {
        return NULL;
    }
    fp_gate_close_nogil(g);
    Py_RETURN_NONE;
}

static PyObject *fp_async_stats(PyObject *self, PyObject *unused) {
    (void)unused;
    fp_gate *g = (fp_gate *)PyCapsule_GetPointer(self, "fp_gate");
    if (!g) {
        return NULL;
    }
    return Py_BuildValue("KKK", (unsigned long long)atomic_load(&g->delivered),
                         (unsigned long long)atomic_load(&g->dropped), (unsigned long long)atomic_load(&g->refused));
}

static PyMethodDef fp_emit_def = {"emit", (PyCFunction)(void (*)(void))fp_async_emit, METH_FASTCALL | METH_KEYWORDS,
                                  "emit(name, payload=b'', *, ts=None, tid=None) -> bool: send one async event"};
static PyMethodDef fp_close_def = {"close", fp_async_close, METH_NOARGS, "close the gate, waiting for handler calls"};
static PyMethodDef fp_stats_def = {"stats", fp_async_stats, METH_NOARGS, "(delivered, dropped, refused)"};

static void fp_emitter_free(PyObject *cap) {
    fp_emitter *e = (fp_emitter *)PyCapsule_GetPointer(cap, "fp_emitter");
    if (e) {
        Py_XDECREF(e->gate_obj);
        Py_XDECREF(e->refused);
        free(e);
    }
}

/* An emit builtin for `gate_obj`, bound to session `gen` (0: any); `st` (or NULL) hears of refusals. */
static PyObject *fp_emitter_new(PyObject *gate_obj, uint64_t gen, fp_state *st) {
    fp_emitter *e = (fp_emitter *)calloc(1, sizeof *e);
    if (!e) {
        return PyErr_NoMemory();
    }
    e->gate = (fp_gate *)PyCapsule_GetPointer(gate_obj, "fp_gate");
    e->gen = gen;
    e->gate_obj = Py_NewRef(gate_obj);
    if (st && st->py && !(e->refused = PyObject_GetAttrString(st->py, "async_refused"))) {
        Py_DECREF(gate_obj);
        free(e);
        return NULL;
    }
    PyObject *cap = PyCapsule_New(e, "fp_emitter", fp_emitter_free);
    if (!cap) {
        Py_DECREF(gate_obj);
        Py_XDECREF(e->refused);
        free(e);
        return NULL;
    }
    PyObject *fn = PyCFunction_NewEx(&fp_emit_def, cap, NULL);
    Py_DECREF(cap);
    return fn;
}

static fp_gate *fp_state_gate(fp_state *st) { return (fp_gate *)PyCapsule_GetPointer(st->async->gate_obj, "fp_gate"); }

static int fp_async_attach(fp_state *st) {
    if (!fp_plugin_error) {
        PyObject *errors = PyImport_ImportModule("falco_plugin.errors");
        fp_plugin_error = errors ? PyObject_GetAttrString(errors, "PluginError") : NULL;
        Py_XDECREF(errors);
        if (!fp_plugin_error) {
            return -1;
        }
    }
    st->async = (struct fp_async_state *)calloc(1, sizeof *st->async);
    if (!st->async) {
        PyErr_NoMemory();
        return -1;
    }
    fp_gate *g;
    st->async->gate_obj = fp_gate_new(&g);
    if (!st->async->gate_obj) {
        return -1;
    }
    st->async->gate = g;
    PyObject *emit_any = fp_emitter_new(st->async->gate_obj, 0, st);
    PyObject *close = PyCFunction_NewEx(&fp_close_def, st->async->gate_obj, NULL);
    PyObject *stats = PyCFunction_NewEx(&fp_stats_def, st->async->gate_obj, NULL);
    PyObject *r = emit_any && close && stats ? PyObject_CallMethod(st->py, "async_attach", "OOO", emit_any, close, stats)
                                             : NULL;
    Py_XDECREF(emit_any);
    Py_XDECREF(close);
    Py_XDECREF(stats);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static void fp_async_release(fp_state *st) {
    if (st->async) {
        if (st->async->gate_obj) {
            fp_gate_close_nogil(fp_state_gate(st));
            st->async->gate = NULL;
            Py_CLEAR(st->async->gate_obj);
        }
        free(st->async);
        st->async = NULL;
    }
}

FP_EXPORT const char *plugin_get_async_events(void) { return FP_ASYNC_EVENTS_JSON; }

#ifdef FP_ASYNC_SOURCES_JSON
FP_EXPORT const char *plugin_get_async_event_sources(void) { return FP_ASYNC_SOURCES_JSON; }
#endif

/* End the running session (GIL held); -1 with st->err set when the plugin's
 * stop failed. The gate is closed either way. */
static int fp_async_stop(fp_state *st) {
    int rc = 0;
    if (st->async->active) {
        st->async->active = 0;
        PyObject *r = PyObject_CallMethod(st->py, "async_stop", NULL);
        if (!r) {
            fp_fail(st, "set_async_event_handler");
            rc = -1;
        }
        Py_XDECREF(r);
    }
    fp_gate_close_nogil(fp_state_gate(st));
    return rc;
}

FP_EXPORT ss_plugin_rc plugin_set_async_event_handler(ss_plugin_t *s, ss_plugin_owner_t *owner,
                                                      const ss_plugin_async_event_handler_t handler) {
    fp_state *st = (fp_state *)s;
    if (!st) {
        return SS_PLUGIN_FAILURE;
    }
    if (!st->py || !st->async) {
        fp_set_error(st, "set_async_event_handler: the plugin is not initialised");
        return SS_PLUGIN_FAILURE;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    /* The host clears a handler before it sets another; if it does not, the
     * old session still ends before the new one starts. */
    ss_plugin_rc rc = fp_async_stop(st) == 0 ? SS_PLUGIN_SUCCESS : SS_PLUGIN_FAILURE;
    if (handler && rc == SS_PLUGIN_SUCCESS) {
        /* The pacing of this session, as the plugin says now (it may set it in init). */
        double rate = 0, burst = 0;
        PyObject *pacing = PyObject_CallMethod(st->py, "async_pacing", NULL);
        if (!pacing || !PyArg_ParseTuple(pacing, "dd", &rate, &burst)) {
            Py_XDECREF(pacing);
            fp_fail(st, "set_async_event_handler");
            PyGILState_Release(gil);
            return SS_PLUGIN_FAILURE;
        }
        Py_DECREF(pacing);
        fp_gate *pg = fp_state_gate(st);
        pthread_mutex_lock(&pg->pace_lock);
        pg->pace_rate = rate;
        pg->pace_burst = burst;
        pg->pace_tokens = burst;
        pg->pace_ns = fp_mono_ns();
        pthread_mutex_unlock(&pg->pace_lock);
        /* Open before the plugin starts: its workers may emit at once. */
        uint64_t gen = fp_gate_open(fp_state_gate(st), handler, owner);
        PyObject *emit = fp_emitter_new(st->async->gate_obj, gen, st);
        PyObject *r = emit ? PyObject_CallMethod(st->py, "async_start", "O", emit) : NULL;
        if (r) {
            st->async->active = 1;
        } else {
            fp_fail(st, "set_async_event_handler");
            fp_gate_close_nogil(fp_state_gate(st)); /* async_start stopped what it had started */
            rc = SS_PLUGIN_FAILURE;
        }
        Py_XDECREF(r);
        Py_XDECREF(emit);
    }
    PyGILState_Release(gil);
    return rc;
}

#if FP_HAS_DUMP_STATE
FP_EXPORT ss_plugin_rc plugin_dump_state(ss_plugin_t *s, ss_plugin_owner_t *owner,
                                         const ss_plugin_async_event_handler_t handler) {
    fp_state *st = (fp_state *)s;
    if (!st) {
        return SS_PLUGIN_FAILURE;
    }
    if (!st->py || !st->async) {
        fp_set_error(st, "dump_state: the plugin is not initialised");
        return SS_PLUGIN_FAILURE;
    }
    if (!handler) {
        fp_set_error(st, "dump_state: the host passed no handler");
        return SS_PLUGIN_FAILURE;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    ss_plugin_rc rc = SS_PLUGIN_FAILURE;
    /* A gate of its own, open only while the plugin's dump_state runs. */
    fp_gate *g = NULL;
    PyObject *gate_obj = fp_gate_new(&g);
    PyObject *emit = NULL, *r = NULL;
    if (gate_obj) {
        emit = fp_emitter_new(gate_obj, fp_gate_open(g, handler, owner), st);
    }
    if (emit) {
        r = PyObject_CallMethod(st->py, "dump_state", "O", emit);
    }
    if (g) {
        fp_gate_close_nogil(g);
    }
    if (r) {
        rc = SS_PLUGIN_SUCCESS;
    } else {
        fp_fail(st, "dump_state");
    }
    Py_XDECREF(r);
    Py_XDECREF(emit);
    Py_XDECREF(gate_obj);
    PyGILState_Release(gil);
    return rc;
}
#endif
