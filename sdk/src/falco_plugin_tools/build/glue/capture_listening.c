/*
 * Capture listening: capture_open/capture_close run the plugin's methods
 * inside a table context (reader and writer), and the routine pool: the
 * host's threads call fp_routine, which runs one Python routine call.
 *
 * libsinsp hands the routine vtable on its stack, but its functions and the
 * owner live as long as the plugin: the glue keeps copies from capture_open
 * until capture_close returns, so routines may be (un)subscribed from any of
 * the plugin's calls in between.
 */

struct fp_capture_listening_state {
    ss_plugin_owner_t *owner;
    ss_plugin_routine_t *(*subscribe)(ss_plugin_owner_t *o, ss_plugin_routine_fn_t f, ss_plugin_routine_state_t *i);
    ss_plugin_rc (*unsubscribe)(ss_plugin_owner_t *o, ss_plugin_routine_t *r);
    const char *(*owner_err)(ss_plugin_owner_t *o);
    pthread_mutex_t lock;
};

static PyObject *fp_routines_mod;

/* Called by the host's threads: one call of a routine (GIL taken here). */
static ss_plugin_bool fp_routine(ss_plugin_t *s, ss_plugin_routine_state_t *i) {
    fp_state *st = (fp_state *)s;
    if (!st || !st->py || !i) {
        return 0;
    }
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(st->py, "run_routine", "O", (PyObject *)i);
    int again = r == Py_True;
    if (!r) {
        PyErr_Clear(); /* run_routine logs the plugin's errors itself */
    }
    Py_XDECREF(r);
    PyGILState_Release(g);
    return again;
}

static fp_state *fp_routine_state(PyObject *addr) {
    fp_state *st = (fp_state *)PyLong_AsVoidPtr(addr);
    return st && st->capture_listening ? st : NULL;
}

/* subscribe(state_addr, routine) -> handle */
static PyObject *fp_r_subscribe(PyObject *m, PyObject *const *args, Py_ssize_t n) {
    fp_state *st = n == 2 ? fp_routine_state(args[0]) : NULL;
    if (!st) {
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_TypeError, "subscribe(state, routine)");
    }
    struct fp_capture_listening_state *c = st->capture_listening;
    pthread_mutex_lock(&c->lock);
    void *sub = (void *)c->subscribe;
    ss_plugin_owner_t *owner = c->owner;
    pthread_mutex_unlock(&c->lock);
    if (!sub) {
        PyErr_SetString(PyExc_RuntimeError,
                        "routines.subscribe: routines can be subscribed only while the capture is open (from "
                        "capture_open until capture_close returns)");
        return NULL;
    }
    ss_plugin_routine_t *h = c->subscribe(owner, fp_routine, (ss_plugin_routine_state_t *)args[1]);
    if (!h) {
        const char *e = c->owner_err ? c->owner_err(owner) : NULL;
        PyErr_Format(PyExc_RuntimeError, "routines.subscribe: the host refused the routine (%s)",
                     e && *e ? e : "it may have no thread pool");
        return NULL;
    }
    return PyLong_FromVoidPtr(h);
}

static PyObject *fp_r_unsubscribe(PyObject *m, PyObject *const *args, Py_ssize_t n) {
    fp_state *st = n == 2 ? fp_routine_state(args[0]) : NULL;
    if (!st) {
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_TypeError, "unsubscribe(state, handle)");
    }
    struct fp_capture_listening_state *c = st->capture_listening;
    void *h = PyLong_AsVoidPtr(args[1]);
    if (!h && PyErr_Occurred()) {
        return NULL;
    }
    if (!c->unsubscribe) {
        PyErr_SetString(PyExc_RuntimeError, "routines.unsubscribe: the capture is not open");
        return NULL;
    }
    ss_plugin_rc rc;
    Py_BEGIN_ALLOW_THREADS /* the host may wait for a running call of the routine */
    rc = c->unsubscribe(c->owner, (ss_plugin_routine_t *)h);
    Py_END_ALLOW_THREADS
    if (rc != SS_PLUGIN_SUCCESS) {
        const char *e = c->owner_err ? c->owner_err(c->owner) : NULL;
        PyErr_Format(PyExc_RuntimeError, "routines.unsubscribe: the host refused (%s)", e && *e ? e : "no reason given");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef fp_routines_functions[] = {
    {"subscribe", (PyCFunction)(void (*)(void))fp_r_subscribe, METH_FASTCALL, NULL},
    {"unsubscribe", (PyCFunction)(void (*)(void))fp_r_unsubscribe, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef fp_routines_moddef = {PyModuleDef_HEAD_INIT, "falco_plugin._glue_routines", NULL, -1,
                                                fp_routines_functions};

static int fp_capture_listening_attach(fp_state *st) {
    st->capture_listening = (struct fp_capture_listening_state *)calloc(1, sizeof *st->capture_listening);
    if (!st->capture_listening) {
        PyErr_NoMemory();
        return -1;
    }
    pthread_mutex_init(&st->capture_listening->lock, NULL);
    if (!fp_routines_mod && !(fp_routines_mod = PyModule_Create(&fp_routines_moddef))) {
        return -1;
    }
    PyObject *r = PyObject_CallMethod(st->py, "attach_routines", "OK", fp_routines_mod,
                                      (unsigned long long)(uintptr_t)st);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static void fp_capture_listening_release(fp_state *st) {
    if (st->capture_listening) {
        pthread_mutex_destroy(&st->capture_listening->lock);
        free(st->capture_listening);
        st->capture_listening = NULL;
    }
}

static ss_plugin_rc fp_capture_call(fp_state *st, const ss_plugin_capture_listen_input *in, const char *what,
                                    int opening) {
    if (!st || !st->py) {
        if (st) {
            fp_set_error(st, "%s: the plugin is not initialised", what);
        }
        return SS_PLUGIN_FAILURE;
    }
    struct fp_capture_listening_state *c = st->capture_listening;
    if (opening && in && in->routine) {
        pthread_mutex_lock(&c->lock);
        c->owner = in->owner;
        c->subscribe = in->routine->subscribe;
        c->unsubscribe = in->routine->unsubscribe;
        c->owner_err = in->get_owner_last_error;
        pthread_mutex_unlock(&c->lock);
    }
    PyGILState_STATE g = PyGILState_Ensure();
    ss_plugin_rc rc = SS_PLUGIN_SUCCESS;
    FP_TABLES_CALL(what, in ? in->owner : NULL, in ? in->get_owner_last_error : NULL,
                   in ? in->table_reader_ext : NULL, in ? in->table_writer_ext : NULL);
    PyObject *r = PyObject_CallMethod(st->py, what, NULL);
    FP_TABLES_END();
    if (!r) {
        fp_fail(st, what);
        rc = SS_PLUGIN_FAILURE;
    }
    Py_XDECREF(r);
    PyGILState_Release(g);
    if (!opening) {
        pthread_mutex_lock(&c->lock);
        c->subscribe = NULL; /* the host's pool may be gone after the capture */
        pthread_mutex_unlock(&c->lock);
    }
    return rc;
}

FP_EXPORT ss_plugin_rc plugin_capture_open(ss_plugin_t *s, const ss_plugin_capture_listen_input *in) {
    return fp_capture_call((fp_state *)s, in, "capture_open", 1);
}

FP_EXPORT ss_plugin_rc plugin_capture_close(ss_plugin_t *s, const ss_plugin_capture_listen_input *in) {
    return fp_capture_call((fp_state *)s, in, "capture_close", 0);
}
