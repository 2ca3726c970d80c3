/*
 * Metrics (an optional feature): plugin_get_metrics, and the cells plugin
 * code updates.
 *
 * Each state has one atomic 64-bit cell per declared metric (a u64, an s64
 * or the bits of a double). Python reaches a cell through a small object
 * (self.<metric>) whose inc/dec/set are one atomic operation each, with no
 * lock, from any thread. get_metrics copies the cells into an array of the
 * state (valid until the next call) without taking the GIL, so a busy Python
 * thread never delays the host's metrics collection.
 *
 * The cells live in a capsule that every cell object references: a thread
 * updating a metric after destroy writes to memory nobody reads, never to
 * freed memory.
 */
#include <stdatomic.h>

#define FP_METRIC_U64 2
#define FP_METRIC_S64 3
#define FP_METRIC_D 4

typedef struct {
    const char *name;
    int type;       /* ss_plugin_metric_type */
    int value_type; /* ss_plugin_metric_value_type */
    int source;     /* 0: the row's cell; 1..3: the async gate's delivered, dropped, refused counts; 4: errors */
} fp_metric_row;

static const fp_metric_row fp_metric_rows[] = {FP_METRIC_ROWS};

struct fp_metrics_state {
    PyObject *cells_obj; /* capsule owning the cells */
    _Atomic uint64_t *cells;
    ss_plugin_metric out[FP_NMETRICS];
};

typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the cells' capsule */
    _Atomic uint64_t *cell;
    const fp_metric_row *row;
} fp_cell;

static PyObject *fp_cell_type;

static void fp_cells_free(PyObject *cap) { free(PyCapsule_GetPointer(cap, "fp_metric_cells")); }

static double fp_bits_to_d(uint64_t bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static uint64_t fp_d_to_bits(double d) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return bits;
}

/* The 64 bits `v` stands for in the cell's type; -1 with an error set. */
static int fp_cell_bits(fp_cell *c, PyObject *v, int negate, uint64_t *out) {
    if (PyBool_Check(v)) {
        PyErr_Format(PyExc_TypeError, "metric %s: expected a number, got bool", c->row->name);
        return -1;
    }
    if (c->row->value_type == FP_METRIC_D) {
        double d = PyFloat_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "metric %s: expected a number, got %s", c->row->name, Py_TYPE(v)->tp_name);
            return -1;
        }
        *out = fp_d_to_bits(negate ? -d : d);
        return 0;
    }
    if (!PyLong_Check(v)) {
        PyErr_Format(PyExc_TypeError, "metric %s: expected an int, got %s", c->row->name, Py_TYPE(v)->tp_name);
        return -1;
    }
    if (c->row->value_type == FP_METRIC_U64) {
        uint64_t u = PyLong_AsUnsignedLongLong(v);
        if (u == (uint64_t)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "metric %s: %R is not between 0 and 2**64-1", c->row->name, v);
            return -1;
        }
        *out = negate ? (uint64_t)0 - u : u;
        return 0;
    }
    long long s = PyLong_AsLongLong(v);
    if (s == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "metric %s: %R is not between -2**63 and 2**63-1", c->row->name, v);
        return -1;
    }
    *out = negate ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    return 0;
}

static PyObject *fp_cell_add(fp_cell *c, PyObject *const *args, Py_ssize_t nargs, int negate, const char *what) {
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument (%zd given)", what, nargs);
        return NULL;
    }
    int monotonic = c->row->type == 0;
    if (monotonic && negate) {
        PyErr_Format(PyExc_TypeError, "counter %s only goes up: dec() is for gauges", c->row->name);
        return NULL;
    }
    uint64_t delta = 1;
    if (nargs == 1) {
        if (fp_cell_bits(c, args[0], negate, &delta) != 0) {
            return NULL;
        }
    } else if (c->row->value_type == FP_METRIC_D) {
        delta = fp_d_to_bits(negate ? -1.0 : 1.0);
    } else if (negate) {
        delta = (uint64_t)-1;
    }
    if (c->row->value_type == FP_METRIC_D) {
        double d = fp_bits_to_d(delta);
        if (monotonic && d < 0) {
            PyErr_Format(PyExc_ValueError, "counter %s only goes up, got inc(%R)", c->row->name, args[0]);
            return NULL;
        }
        uint64_t old = atomic_load(c->cell);
        while (!atomic_compare_exchange_weak(c->cell, &old, fp_d_to_bits(fp_bits_to_d(old) + d))) {
        }
    } else {
        if (monotonic && c->row->value_type == FP_METRIC_S64 && (int64_t)delta < 0) {
            PyErr_Format(PyExc_ValueError, "counter %s only goes up", c->row->name);
            return NULL;
        }
        atomic_fetch_add(c->cell, delta); /* wraps modulo 2**64, like the host's own counters */
    }
    Py_RETURN_NONE;
}

static PyObject *fp_cell_inc(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return fp_cell_add((fp_cell *)self, args, nargs, 0, "inc");
}

static PyObject *fp_cell_dec(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return fp_cell_add((fp_cell *)self, args, nargs, 1, "dec");
}

static PyObject *fp_cell_set(PyObject *self, PyObject *v) {
    fp_cell *c = (fp_cell *)self;
    if (c->row->type == 0) {
        PyErr_Format(PyExc_TypeError, "counter %s only goes up: set() is for gauges", c->row->name);
        return NULL;
    }
    uint64_t bits;
    if (fp_cell_bits(c, v, 0, &bits) != 0) {
        return NULL;
    }
    atomic_store(c->cell, bits);
    Py_RETURN_NONE;
}

static PyObject *fp_cell_value(PyObject *self, void *closure) {
    (void)closure;
    fp_cell *c = (fp_cell *)self;
    uint64_t bits = atomic_load(c->cell);
    switch (c->row->value_type) {
    case FP_METRIC_D:
        return PyFloat_FromDouble(fp_bits_to_d(bits));
    case FP_METRIC_S64:
        return PyLong_FromLongLong((long long)(int64_t)bits);
    default:
        return PyLong_FromUnsignedLongLong(bits);
    }
}

static PyObject *fp_cell_repr(PyObject *self) {
    fp_cell *c = (fp_cell *)self;
    PyObject *v = fp_cell_value(self, NULL);
    PyObject *r = v ? PyUnicode_FromFormat("<metric %s = %R>", c->row->name, v) : NULL;
    Py_XDECREF(v);
    return r;
}

static void fp_cell_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    Py_XDECREF(((fp_cell *)self)->owner);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef fp_cell_methods[] = {
    {"inc", (PyCFunction)(void (*)(void))fp_cell_inc, METH_FASTCALL, "inc(n=1): add n"},
    {"dec", (PyCFunction)(void (*)(void))fp_cell_dec, METH_FASTCALL, "dec(n=1): subtract n (gauges)"},
    {"set", fp_cell_set, METH_O, "set(v): set the value (gauges)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef fp_cell_getset[] = {
    {"value", fp_cell_value, NULL, "the current value", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot fp_cell_slots[] = {
    {Py_tp_dealloc, (void *)fp_cell_dealloc}, {Py_tp_methods, fp_cell_methods}, {Py_tp_getset, fp_cell_getset},
    {Py_tp_repr, (void *)fp_cell_repr},       {0, NULL},
};

static PyType_Spec fp_cell_spec = {"falco_plugin.MetricCell", sizeof(fp_cell), 0, Py_TPFLAGS_DEFAULT, fp_cell_slots};

static int fp_metrics_attach(fp_state *st) {
    if (!fp_cell_type && !(fp_cell_type = PyType_FromSpec(&fp_cell_spec))) {
        return -1;
    }
    st->metrics = (struct fp_metrics_state *)calloc(1, sizeof *st->metrics);
    if (!st->metrics) {
        PyErr_NoMemory();
        return -1;
    }
    _Atomic uint64_t *cells = (_Atomic uint64_t *)calloc(FP_NMETRICS, sizeof *cells);
    if (!cells) {
        PyErr_NoMemory();
        return -1;
    }
    st->metrics->cells_obj = PyCapsule_New((void *)cells, "fp_metric_cells", fp_cells_free);
    if (!st->metrics->cells_obj) {
        free(cells);
        return -1;
    }
    st->metrics->cells = cells;
    PyObject *tuple = PyTuple_New(FP_NMETRICS);
    for (Py_ssize_t i = 0; tuple && i < (Py_ssize_t)FP_NMETRICS; i++) {
        fp_cell *c = PyObject_New(fp_cell, (PyTypeObject *)fp_cell_type);
        if (!c) {
            Py_CLEAR(tuple);
            break;
        }
        c->owner = Py_NewRef(st->metrics->cells_obj);
        c->cell = &cells[i];
        c->row = &fp_metric_rows[i];
        PyTuple_SET_ITEM(tuple, i, (PyObject *)c);
    }
    PyObject *r = tuple ? PyObject_CallMethod(st->py, "metrics_attach", "(O)", tuple) : NULL;
    Py_XDECREF(tuple);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static void fp_metrics_release(fp_state *st) {
    if (st->metrics) {
        Py_CLEAR(st->metrics->cells_obj);
        free(st->metrics);
        st->metrics = NULL;
    }
}

FP_EXPORT ss_plugin_metric *plugin_get_metrics(ss_plugin_t *s, uint32_t *num_metrics) {
    fp_state *st = (fp_state *)s;
    *num_metrics = 0;
    if (!st || !st->metrics || !st->metrics->cells) {
        return NULL;
    }
    struct fp_metrics_state *m = st->metrics;
    for (uint32_t i = 0; i < FP_NMETRICS; i++) {
        ss_plugin_metric *out = &m->out[i];
        out->name = fp_metric_rows[i].name;
        out->type = (ss_plugin_metric_type)fp_metric_rows[i].type;
        out->value_type = (ss_plugin_metric_value_type)fp_metric_rows[i].value_type;
        uint64_t bits = fp_metric_rows[i].source == 4 ? atomic_load(&st->errors) : atomic_load(&m->cells[i]);
#ifdef FP_ASYNC_NNAMES
        if (fp_metric_rows[i].source && st->async && st->async->gate) {
            fp_gate *g = st->async->gate;
            int src = fp_metric_rows[i].source;
            bits = atomic_load(src == 1 ? &g->delivered : src == 2 ? &g->dropped : &g->refused);
        }
#endif
        if (fp_metric_rows[i].value_type == FP_METRIC_D) {
            out->value.d = fp_bits_to_d(bits);
        } else if (fp_metric_rows[i].value_type == FP_METRIC_S64) {
            out->value.s64 = (int64_t)bits;
        } else {
            out->value.u64 = bits;
        }
    }
    *num_metrics = FP_NMETRICS;
    return m->out;
}
