/*
 * @per_event in C: the cache of a decorated method's result for one event.
 *
 * The pure-Python wrapper (event.py) costs a Python frame and, for the first
 * cached value of each event, a dict: about a third of what a one-field rule
 * spends in the plugin. This callable does the same lookup on the Event's
 * slots without a frame. The glue hands its factory to event.py before the
 * plugin module is imported (fp_per_event_install); the first library in a
 * process installs it and the others' plugins use it too (a library is never
 * unloaded: it links with -z nodelete). Anything but the SDK's own Event goes
 * to the Python wrapper, which has the same protocol:
 *
 *   Event._key/_value  the first value cached for the current event (the
 *                      common case: one @per_event method per plugin)
 *   Event._cache       a dict for the others, or None
 *
 * and the glue resets all three to None when it points the Event at a new
 * event (fp_use_event).
 */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *method;   /* the author's method */
    PyObject *fallback; /* the Python wrapper, for anything but an Event */
    PyObject *key;      /* what marks this method's value in an Event */
    PyObject *dict;     /* functools.wraps writes __name__, __doc__, __wrapped__ here */
} fp_per_event;

static PyTypeObject *fp_per_event_type;
/* falco_plugin.Event; the slots are common.c's fp_m_key/_value/_cache, found by
 * the library that installed the factory, whose code this is. */
static PyTypeObject *fp_event_type;

static PyObject *fp_per_event_call(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    fp_per_event *pe = (fp_per_event *)callable;
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames || Py_TYPE(args[1]) != fp_event_type) {
        return PyObject_Vectorcall(pe->fallback, args, nargsf, kwnames);
    }
    PyObject *event = args[1];
    if (*FP_SLOT(event, fp_m_key) == pe->key) {
        PyObject *v = *FP_SLOT(event, fp_m_value);
        return Py_NewRef(v ? v : Py_None);
    }
    PyObject *cache = *FP_SLOT(event, fp_m_cache);
    if (cache && PyDict_CheckExact(cache)) {
        PyObject *hit = PyDict_GetItemWithError(cache, pe->key);
        if (hit) {
            return Py_NewRef(hit);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    PyObject *value = PyObject_Vectorcall(pe->method, args, nargsf, NULL);
    if (!value) {
        return NULL;
    }
    /* Read the slots again: the method may have cached values of its own. */
    PyObject *first = *FP_SLOT(event, fp_m_key);
    if (!first || first == Py_None) {
        fp_set_slot(event, fp_m_key, Py_NewRef(pe->key));
        fp_set_slot(event, fp_m_value, Py_NewRef(value));
        return value;
    }
    cache = *FP_SLOT(event, fp_m_cache);
    if (!cache || !PyDict_CheckExact(cache)) {
        if (!(cache = PyDict_New())) {
            Py_DECREF(value);
            return NULL;
        }
        fp_set_slot(event, fp_m_cache, cache); /* may run a __del__: read the slot again */
        cache = *FP_SLOT(event, fp_m_cache);
    }
    if (PyDict_SetItem(cache, pe->key, value) < 0) {
        Py_DECREF(value);
        return NULL;
    }
    return value;
}

static PyObject *fp_per_event_get(PyObject *self, PyObject *obj, PyObject *type) {
    (void)type;
    if (!obj || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static int fp_per_event_traverse(PyObject *self, visitproc visit, void *arg) {
    fp_per_event *pe = (fp_per_event *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(pe->method);
    Py_VISIT(pe->fallback);
    Py_VISIT(pe->key);
    Py_VISIT(pe->dict);
    return 0;
}

static int fp_per_event_clear(PyObject *self) {
    fp_per_event *pe = (fp_per_event *)self;
    Py_CLEAR(pe->method);
    Py_CLEAR(pe->fallback);
    Py_CLEAR(pe->key);
    Py_CLEAR(pe->dict);
    return 0;
}

static void fp_per_event_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    fp_per_event_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMemberDef fp_per_event_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(fp_per_event, vectorcall), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(fp_per_event, dict), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef fp_per_event_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot fp_per_event_slots[] = {
    {Py_tp_getset, (void *)fp_per_event_getset},
    {Py_tp_dealloc, (void *)fp_per_event_dealloc},
    {Py_tp_traverse, (void *)fp_per_event_traverse},
    {Py_tp_clear, (void *)fp_per_event_clear},
    {Py_tp_descr_get, (void *)fp_per_event_get},
    {Py_tp_call, (void *)PyVectorcall_Call},
    {Py_tp_members, (void *)fp_per_event_members},
    {0, NULL},
};

static PyType_Spec fp_per_event_spec = {
    "falco_plugin.event.per_event_method",
    sizeof(fp_per_event),
    0,
    /* METHOD_DESCRIPTOR: `self.sample(event)` calls it with self first, no bound method made */
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    fp_per_event_slots,
};

/* factory(method, fallback, key) -> the C wrapper (event.py calls it). */
static PyObject *fp_per_event_new(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3 || !PyCallable_Check(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "per_event factory: expected (method, fallback, key)");
        return NULL;
    }
    fp_per_event *pe = PyObject_GC_New(fp_per_event, fp_per_event_type);
    if (!pe) {
        return NULL;
    }
    pe->vectorcall = fp_per_event_call;
    pe->method = Py_NewRef(args[0]);
    pe->fallback = Py_NewRef(args[1]);
    pe->key = Py_NewRef(args[2]);
    pe->dict = NULL;
    PyObject_GC_Track((PyObject *)pe);
    return (PyObject *)pe;
}

static PyMethodDef fp_per_event_factory_def = {"per_event_factory", (PyCFunction)(void (*)(void))fp_per_event_new,
                                               METH_FASTCALL, "Make the C wrapper of a @per_event method."};

/* Offer the C wrapper to event.py unless a library got there first (GIL
 * held, before the plugin module is imported); -1 with a Python error set. */
static int fp_per_event_install(PyObject *event_type) {
    PyObject *mod = PyImport_ImportModule("falco_plugin.event");
    if (!mod) {
        return -1;
    }
    int rc = -1;
    PyObject *current = PyObject_GetAttrString(mod, "_per_event_factory");
    if (current && current != Py_None) {
        rc = 0; /* another library's: the same protocol (same glue contract) */
    } else if (current) {
        Py_XSETREF(fp_event_type, (PyTypeObject *)Py_NewRef(event_type));
        if (!fp_per_event_type) { /* once, even when a Python host has it installed again */
            fp_per_event_type = (PyTypeObject *)PyType_FromSpec(&fp_per_event_spec);
        }
        PyObject *factory = fp_per_event_type ? PyCFunction_New(&fp_per_event_factory_def, NULL) : NULL;
        if (factory) {
            rc = PyObject_SetAttrString(mod, "_per_event_factory", factory);
            Py_DECREF(factory);
        }
    }
    Py_XDECREF(current);
    Py_DECREF(mod);
    return rc;
}
