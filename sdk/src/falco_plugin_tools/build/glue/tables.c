/*
 * State tables: the plugin's side of the table API, compiled into plugins
 * that use tables (FP_HAS_TABLES; included at the end of common.c).
 *
 * The host hands table vtables to the calls that may use them: init (all of
 * them, with the field vtable), parse_event and capture_open/close (reader and
 * writer), extract_fields (reader only). Each such entry point wraps its work
 * in fp_tables_enter/fp_tables_leave, which make those vtables the current
 * thread's table context: the C objects below (entries, table handles, field
 * accessors) use the context's vtables, so one use outside any call, or a
 * write where only reading is allowed, is a precise TableError rather than a
 * call through a stale pointer. Entries obtained during a call are released
 * when it returns.
 *
 * Tables the plugin exports are implemented at the end: C vtables that the
 * host (and through it other plugins) calls, backed by the Python rows of a
 * falco_plugin.tables.PluginTable.
 */

#define FP_ST_TABLE 10u


static __thread fp_tctx *fp_tc;
static uint64_t fp_tgen; /* incremented under the GIL */
static PyObject *fp_table_error; /* falco_plugin.tables.TableError */
static PyObject *fp_field_cls;   /* falco_plugin.tables.Field */
static Py_ssize_t fp_acc_offset; /* of the Field._acc slot */
static PyTypeObject *fp_entry_type, *fp_table_type, *fp_acc_type;

static const char *fp_type_name(uint32_t t) {
    switch (t) {
    case 1: return "int8";
    case 2: return "int16";
    case 3: return "int32";
    case 4: return "int64";
    case 5: return "uint8";
    case 6: return "uint16";
    case 7: return "uint32";
    case 8: return "uint64";
    case 9: return "string";
    case 10: return "table";
    case 25: return "bool";
    default: return "unknown";
    }
}

/* The owner's last error, or a fallback. */
static const char *fp_owner_error(void) {
    const char *e = fp_tc && fp_tc->owner_err ? fp_tc->owner_err(fp_tc->owner) : NULL;
    return e && *e ? e : "the host gave no reason";
}

/* ---- objects ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    ss_plugin_table_field_t *f;
    uint32_t type;
    uint32_t subkey; /* key type of the subtables a table-typed field holds */
    int read_only;
    PyObject *table; /* str: the table's name */
    PyObject *name;  /* str: the field's name */
} fp_Acc;

typedef struct {
    PyObject_HEAD
    ss_plugin_table_t *t;
    uint32_t keytype;
    PyObject *name; /* str */
    uint64_t gen;   /* 0: valid in any call (a top-level table); else the call a subtable was read in */
} fp_Table;

enum { FP_E_HELD = 0, FP_E_CREATED = 1, FP_E_BORROWED = 2, FP_E_DEAD = 3 };

typedef struct {
    PyObject_HEAD
    ss_plugin_table_t *t;
    ss_plugin_table_entry_t *e;
    fp_Table *table;
    uint64_t gen;
    int kind;
} fp_Entry;

static int fp_ctx_ok(const char *what, PyObject *table) {
    if (!fp_tc) {
        PyErr_Format(fp_table_error,
                     "%s table %U: tables can only be used during the host calls that carry them (init, parse_event, "
                     "extract_fields, capture_open/close), not from another thread or a routine",
                     what, table);
        return 0;
    }
    return 1;
}

static int fp_entry_ok(fp_Entry *e, const char *what) {
    if (!fp_ctx_ok(what, e->table->name)) {
        return 0;
    }
    if (e->gen != fp_tc->gen) {
        PyErr_Format(fp_table_error,
                     "%s table %U: the entry was obtained in an earlier host call; entries are valid only during the "
                     "call that obtained them",
                     what, e->table->name);
        return 0;
    }
    if (e->kind == FP_E_DEAD) {
        PyErr_Format(fp_table_error, "%s table %U: the entry was released", what, e->table->name);
        return 0;
    }
    return 1;
}

static int fp_hold(PyObject *o) {
    fp_tctx *c = fp_tc;
    if (c->nheld < FP_MAX_HELD) {
        c->held[c->nheld++] = Py_NewRef(o);
        return 0;
    }
    if (!c->more && !(c->more = PyList_New(0))) {
        return -1;
    }
    return PyList_Append(c->more, o);
}

static fp_Entry *fp_new_entry(fp_Table *tab, ss_plugin_table_entry_t *e, int kind) {
    fp_Entry *o = PyObject_New(fp_Entry, fp_entry_type);
    if (!o) {
        return NULL;
    }
    o->t = tab->t;
    o->e = e;
    o->table = (fp_Table *)Py_NewRef(tab);
    o->gen = fp_tc->gen;
    o->kind = kind;
    if (kind != FP_E_BORROWED && fp_hold((PyObject *)o) != 0) {
        Py_DECREF(o);
        return NULL;
    }
    return o;
}

static void fp_entry_drop(fp_Entry *o) {
    if (o->kind == FP_E_HELD || o->kind == FP_E_CREATED) {
        if (fp_tc && fp_tc->gen == o->gen && fp_tc->r) {
            if (o->kind == FP_E_HELD) {
                fp_tc->r->release_table_entry(o->t, o->e);
            } else if (fp_tc->w) {
                fp_tc->w->destroy_table_entry(o->t, o->e);
            }
        }
    }
    o->kind = FP_E_DEAD;
}

static void fp_entry_dealloc(PyObject *self) {
    fp_Entry *o = (fp_Entry *)self;
    fp_entry_drop(o);
    Py_XDECREF(o->table);
    PyObject_Free(self);
}

/* Key or value (Python) -> ss_plugin_state_data; strings borrow from `v`. */
static int fp_to_data(PyObject *v, uint32_t type, ss_plugin_state_data *d, const char *what, PyObject *table,
                      PyObject *field) {
    if (type == 9) {
        if (!PyUnicode_Check(v)) {
            goto bad;
        }
        Py_ssize_t n;
        d->str = PyUnicode_AsUTF8AndSize(v, &n);
        if (!d->str) {
            return -1;
        }
        if ((size_t)n != strlen(d->str)) {
            PyErr_Format(fp_table_error, "%s table %U: a string with a NUL character cannot be stored", what, table);
            return -1;
        }
        return 0;
    }
    if (type == 25) {
        if (!PyBool_Check(v)) {
            goto bad;
        }
        d->b = v == Py_True;
        return 0;
    }
    if (type == FP_ST_TABLE || type < 1 || type > 8) {
        PyErr_Format(fp_table_error, "%s table %U: %s values cannot be written", what, table, fp_type_name(type));
        return -1;
    }
    if (!PyLong_Check(v) || PyBool_Check(v)) {
        goto bad;
    }
    int overflow = 0;
    if (type <= 4) {
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        static const long long lim[] = {0, 127, 32767, 2147483647, 0};
        if (!overflow && type < 4 && (x > lim[type] || x < -lim[type] - 1)) {
            overflow = 1;
        }
        if (overflow) {
            goto range;
        }
        switch (type) {
        case 1: d->s8 = (int8_t)x; break;
        case 2: d->s16 = (int16_t)x; break;
        case 3: d->s32 = (int32_t)x; break;
        default: d->s64 = x;
        }
    } else {
        unsigned long long x = PyLong_AsUnsignedLongLong(v);
        if (x == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            goto range;
        }
        static const unsigned long long lim[] = {0, 0, 0, 0, 0, 255, 65535, 4294967295ull};
        if (type < 8 && x > lim[type]) {
            goto range;
        }
        switch (type) {
        case 5: d->u8 = (uint8_t)x; break;
        case 6: d->u16 = (uint16_t)x; break;
        case 7: d->u32 = (uint32_t)x; break;
        default: d->u64 = x;
        }
    }
    return 0;
range:
    if (field) {
        PyErr_Format(fp_table_error, "%s field %U of table %U: %R does not fit in %s", what, field, table, v,
                     fp_type_name(type));
    } else {
        PyErr_Format(fp_table_error, "%s table %U: key %R does not fit in %s", what, table, v, fp_type_name(type));
    }
    return -1;
bad:
    if (field) {
        PyErr_Format(fp_table_error, "%s field %U of table %U: expected %s, got %s", what, field, table,
                     fp_type_name(type), Py_TYPE(v)->tp_name);
    } else {
        PyErr_Format(fp_table_error, "%s table %U: the key is %s, not %s", what, table, fp_type_name(type),
                     Py_TYPE(v)->tp_name);
    }
    return -1;
}

static PyObject *fp_from_data(const ss_plugin_state_data *d, uint32_t type) {
    switch (type) {
    case 1: return PyLong_FromLong(d->s8);
    case 2: return PyLong_FromLong(d->s16);
    case 3: return PyLong_FromLong(d->s32);
    case 4: return PyLong_FromLongLong(d->s64);
    case 5: return PyLong_FromUnsignedLong(d->u8);
    case 6: return PyLong_FromUnsignedLong(d->u16);
    case 7: return PyLong_FromUnsignedLong(d->u32);
    case 8: return PyLong_FromUnsignedLongLong(d->u64);
    case 9: return PyUnicode_DecodeUTF8(d->str ? d->str : "", d->str ? (Py_ssize_t)strlen(d->str) : 0, "replace");
    case 25: return PyBool_FromLong(d->b != 0);
    default:
        PyErr_Format(PyExc_TypeError, "unsupported state type %u", type);
        return NULL;
    }
}

static fp_Table *fp_new_table(ss_plugin_table_t *t, uint32_t keytype, PyObject *name, uint64_t gen) {
    fp_Table *o = PyObject_New(fp_Table, fp_table_type);
    if (o) {
        o->t = t;
        o->keytype = keytype;
        o->name = Py_NewRef(name);
        o->gen = gen;
    }
    return o;
}

static void fp_table_dealloc(PyObject *self) {
    Py_XDECREF(((fp_Table *)self)->name);
    PyObject_Free(self);
}

static void fp_acc_dealloc(PyObject *self) {
    Py_XDECREF(((fp_Acc *)self)->table);
    Py_XDECREF(((fp_Acc *)self)->name);
    PyObject_Free(self);
}

/* The C accessor of a falco_plugin.tables.Field. */
static fp_Acc *fp_acc_of(PyObject *field) {
    if (!PyObject_TypeCheck(field, (PyTypeObject *)fp_field_cls)) {
        PyErr_Format(fp_table_error, "entries are indexed by the Field accessors obtained at init, not %s",
                     Py_TYPE(field)->tp_name);
        return NULL;
    }
    PyObject *acc = *(PyObject **)((char *)field + fp_acc_offset);
    if (!acc || !Py_IS_TYPE(acc, fp_acc_type)) {
        PyErr_SetString(fp_table_error, "this Field was not obtained from the host");
        return NULL;
    }
    return (fp_Acc *)acc;
}

static int fp_table_live(fp_Table *t, const char *what) {
    if (!fp_ctx_ok(what, t->name)) {
        return 0;
    }
    if (t->gen && t->gen != fp_tc->gen) {
        PyErr_Format(fp_table_error,
                     "%s table %U: this subtable was read in an earlier host call; read it from its entry again", what,
                     t->name);
        return 0;
    }
    return 1;
}

/* ---- entries ---------------------------------------------------------------- */

/* An accessor is only meaningful on entries of the table it was obtained from:
 * libsinsp reads the field at the accessor's offset in whatever entry it is
 * given, so an accessor of another table reads (or writes) garbage. Tables are
 * told apart by name: every subtable of one kind shares its accessors and is
 * named "<table>.<field>" whichever entry it was read from. */
static int fp_acc_fits(fp_Acc *a, fp_Entry *o, const char *what) {
    int cmp = PyUnicode_Compare(a->table, o->table->name);
    if (cmp == 0) {
        return 1;
    }
    if (!PyErr_Occurred()) {
        PyErr_Format(fp_table_error,
                     "%s field %U of table %U: the entry belongs to table %U; use an accessor obtained from table %U",
                     what, a->name, a->table, o->table->name, o->table->name);
    }
    return 0;
}

static PyObject *fp_entry_get(PyObject *self, PyObject *field) {
    fp_Entry *o = (fp_Entry *)self;
    fp_Acc *a = fp_acc_of(field);
    if (!a || !fp_entry_ok(o, "reading") || !fp_acc_fits(a, o, "reading")) {
        return NULL;
    }
    ss_plugin_state_data out;
    if (fp_tc->r->read_entry_field(o->t, o->e, a->f, &out) != SS_PLUGIN_SUCCESS) {
        PyErr_Format(fp_table_error, "reading field %U of table %U: %s", a->name, a->table, fp_owner_error());
        return NULL;
    }
    if (a->type == FP_ST_TABLE) {
        PyObject *name = PyUnicode_FromFormat("%U.%U", a->table, a->name);
        PyObject *t = name ? (PyObject *)fp_new_table(out.table, a->subkey, name, fp_tc->gen) : NULL;
        Py_XDECREF(name);
        return t;
    }
    return fp_from_data(&out, a->type);
}

static int fp_entry_set(PyObject *self, PyObject *field, PyObject *value) {
    fp_Entry *o = (fp_Entry *)self;
    fp_Acc *a = fp_acc_of(field);
    if (!a || !fp_entry_ok(o, "writing") || !fp_acc_fits(a, o, "writing")) {
        return -1;
    }
    if (!value) {
        PyErr_Format(fp_table_error, "table %U: fields cannot be deleted", a->table);
        return -1;
    }
    if (a->read_only) {
        PyErr_Format(fp_table_error, "writing field %U of table %U: the field is read-only", a->name, a->table);
        return -1;
    }
    if (!fp_tc->w) {
        PyErr_Format(fp_table_error,
                     "writing field %U of table %U: %s may only read tables (write in parse_event or "
                     "capture_open/close)",
                     a->name, a->table, fp_tc->phase);
        return -1;
    }
    ss_plugin_state_data in;
    if (fp_to_data(value, a->type, &in, "writing", a->table, a->name) != 0) {
        return -1;
    }
    if (fp_tc->w->write_entry_field(o->t, o->e, a->f, &in) != SS_PLUGIN_SUCCESS) {
        PyErr_Format(fp_table_error, "writing field %U of table %U: %s", a->name, a->table, fp_owner_error());
        return -1;
    }
    return 0;
}

static PyObject *fp_entry_release(PyObject *self, PyObject *unused) {
    fp_entry_drop((fp_Entry *)self);
    Py_RETURN_NONE;
}

static PyObject *fp_entry_enter(PyObject *self, PyObject *unused) { return Py_NewRef(self); }

static PyObject *fp_entry_exit(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    fp_entry_drop((fp_Entry *)self);
    Py_RETURN_NONE;
}

static PyObject *fp_entry_repr(PyObject *self) {
    fp_Entry *o = (fp_Entry *)self;
    return PyUnicode_FromFormat("<entry of table %U%s>", o->table->name, o->kind == FP_E_DEAD ? " (released)" : "");
}

static PyMethodDef fp_entry_methods[] = {
    {"release", fp_entry_release, METH_NOARGS, "Give the entry back to its table now."},
    {"__enter__", fp_entry_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))fp_entry_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot fp_entry_slots[] = {
    {Py_tp_dealloc, fp_entry_dealloc},
    {Py_mp_subscript, fp_entry_get},
    {Py_mp_ass_subscript, fp_entry_set},
    {Py_tp_methods, fp_entry_methods},
    {Py_tp_repr, fp_entry_repr},
    {0, NULL},
};
static PyType_Spec fp_entry_spec = {"falco_plugin.tables.HostEntry", sizeof(fp_Entry), 0, Py_TPFLAGS_DEFAULT,
                                    fp_entry_slots};

/* ---- table handles ---------------------------------------------------------- */

static fp_Entry *fp_table_lookup(fp_Table *t, PyObject *key, int must) {
    if (!fp_table_live(t, "reading")) {
        return NULL;
    }
    ss_plugin_state_data k;
    if (fp_to_data(key, t->keytype, &k, "reading", t->name, NULL) != 0) {
        return NULL;
    }
    ss_plugin_table_entry_t *e = fp_tc->r->get_table_entry(t->t, &k);
    if (!e) {
        if (must) {
            PyErr_Format(fp_table_error, "table %U has no entry %R", t->name, key);
        }
        return NULL;
    }
    return fp_new_entry(t, e, FP_E_HELD);
}

static PyObject *fp_table_get(PyObject *self, PyObject *key) {
    PyObject *e = (PyObject *)fp_table_lookup((fp_Table *)self, key, 0);
    return e || PyErr_Occurred() ? e : Py_NewRef(Py_None);
}

static PyObject *fp_table_getitem(PyObject *self, PyObject *key) {
    return (PyObject *)fp_table_lookup((fp_Table *)self, key, 1);
}

static Py_ssize_t fp_table_len(PyObject *self) {
    fp_Table *t = (fp_Table *)self;
    if (!fp_table_live(t, "reading")) {
        return -1;
    }
    return (Py_ssize_t)fp_tc->r->get_table_size(t->t);
}

static int fp_table_writable(fp_Table *t, const char *what) {
    if (!fp_table_live(t, what)) {
        return 0;
    }
    if (!fp_tc->w) {
        PyErr_Format(fp_table_error, "%s table %U: %s may only read tables", what, t->name, fp_tc->phase);
        return 0;
    }
    return 1;
}

static PyObject *fp_table_create(PyObject *self, PyObject *unused) {
    fp_Table *t = (fp_Table *)self;
    if (!fp_table_writable(t, "creating an entry of")) {
        return NULL;
    }
    ss_plugin_table_entry_t *e = fp_tc->w->create_table_entry(t->t);
    if (!e) {
        PyErr_Format(fp_table_error, "creating an entry of table %U: %s", t->name, fp_owner_error());
        return NULL;
    }
    return (PyObject *)fp_new_entry(t, e, FP_E_CREATED);
}

static int fp_not_iterating(fp_Table *t, const char *what);

static PyObject *fp_table_add(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    fp_Table *t = (fp_Table *)self;
    if (n != 2 || !Py_IS_TYPE(args[1], fp_entry_type)) {
        PyErr_SetString(PyExc_TypeError, "add(key, entry) takes a key and an entry made by create()");
        return NULL;
    }
    fp_Entry *e = (fp_Entry *)args[1];
    if (!fp_table_writable(t, "adding to") || !fp_not_iterating(t, "adding to") || !fp_entry_ok(e, "adding to")) {
        return NULL;
    }
    if (e->kind != FP_E_CREATED || e->t != t->t) {
        PyErr_Format(fp_table_error, "adding to table %U: the entry was not made by this table's create()", t->name);
        return NULL;
    }
    ss_plugin_state_data k;
    if (fp_to_data(args[0], t->keytype, &k, "adding to", t->name, NULL) != 0) {
        return NULL;
    }
    ss_plugin_table_entry_t *added = fp_tc->w->add_table_entry(t->t, &k, e->e);
    e->kind = FP_E_DEAD; /* the table owns it now, added or not */
    if (!added) {
        PyErr_Format(fp_table_error, "adding entry %R to table %U: %s", args[0], t->name, fp_owner_error());
        return NULL;
    }
    return (PyObject *)fp_new_entry(t, added, FP_E_HELD);
}

static PyObject *fp_table_erase(PyObject *self, PyObject *key) {
    fp_Table *t = (fp_Table *)self;
    if (!fp_table_writable(t, "erasing from") || !fp_not_iterating(t, "erasing from")) {
        return NULL;
    }
    ss_plugin_state_data k;
    if (fp_to_data(key, t->keytype, &k, "erasing from", t->name, NULL) != 0) {
        return NULL;
    }
    if (fp_tc->w->erase_table_entry(t->t, &k) != SS_PLUGIN_SUCCESS) {
        PyErr_Format(fp_table_error, "erasing entry %R of table %U: %s", key, t->name, fp_owner_error());
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *fp_table_clear(PyObject *self, PyObject *unused) {
    fp_Table *t = (fp_Table *)self;
    if (!fp_table_writable(t, "clearing") || !fp_not_iterating(t, "clearing")) {
        return NULL;
    }
    if (fp_tc->w->clear_table(t->t) != SS_PLUGIN_SUCCESS) {
        PyErr_Format(fp_table_error, "clearing table %U: %s", t->name, fp_owner_error());
        return NULL;
    }
    Py_RETURN_NONE;
}

typedef struct {
    fp_Table *table;
    PyObject *fn;
    int failed;
    PyObject *et, *ev, *tb; /* the callback's exception, kept out of the thread state while the host runs */
} fp_iter;

/* The tables this thread's for_each calls are iterating: adding, erasing or
 * clearing one of them would pull entries from under the host's iterator
 * (libsinsp iterates its containers in place). */
#define FP_MAX_ITER 8
static __thread ss_plugin_table_t *fp_iterating[FP_MAX_ITER];
static __thread int fp_niter;

static int fp_not_iterating(fp_Table *t, const char *what) {
    for (int i = 0; i < fp_niter && i < FP_MAX_ITER; i++) {
        if (fp_iterating[i] == t->t) {
            PyErr_Format(fp_table_error,
                         "%s table %U: not while for_each iterates it (collect the keys in the callback, then "
                         "change the table after for_each returns)",
                         what, t->name);
            return 0;
        }
    }
    return 1;
}

/* Called by the host inside iterate_entries, on this thread; a host may have
 * let the GIL go in between (a Python host does), so take it again. A Python
 * exception is fetched before returning to the host, which may run Python
 * (a Python host) and would otherwise lose it or trip over it. */
static ss_plugin_bool fp_iter_cb(ss_plugin_table_iterator_state_t *s, ss_plugin_table_entry_t *e) {
    fp_iter *it = (fp_iter *)s;
    if (it->failed) {
        return 0;
    }
    fp_gil g = fp_gil_enter();
    int stop = 1;
    fp_Entry *o = fp_new_entry(it->table, e, FP_E_BORROWED);
    PyObject *r = o ? PyObject_CallOneArg(it->fn, (PyObject *)o) : NULL;
    if (o) {
        o->kind = FP_E_DEAD; /* borrowed for the callback only */
        Py_DECREF(o);
    }
    if (!r) {
        it->failed = 1;
        PyErr_Fetch(&it->et, &it->ev, &it->tb);
    } else {
        stop = r == Py_False;
        Py_DECREF(r);
    }
    fp_gil_leave(g);
    return !stop;
}

static PyObject *fp_table_for_each(PyObject *self, PyObject *fn) {
    fp_Table *t = (fp_Table *)self;
    if (!fp_table_live(t, "iterating")) {
        return NULL;
    }
    fp_iter it = {t, fn, 0, NULL, NULL, NULL};
    if (fp_niter < FP_MAX_ITER) {
        fp_iterating[fp_niter] = t->t;
    }
    fp_niter++;
    ss_plugin_bool done = fp_tc->r->iterate_entries(t->t, fp_iter_cb, &it);
    fp_niter--;
    if (it.failed) {
        if (!it.et) {
            PyErr_Format(fp_table_error, "iterating table %U: the callback failed", t->name);
        } else {
            PyErr_Restore(it.et, it.ev, it.tb);
        }
        return NULL;
    }
    return PyBool_FromLong(done != 0);
}

static PyObject *fp_table_repr(PyObject *self) {
    return PyUnicode_FromFormat("<table %U>", ((fp_Table *)self)->name);
}

static PyObject *fp_table_name(PyObject *self, void *unused) { return Py_NewRef(((fp_Table *)self)->name); }

static PyObject *fp_table_ptr(PyObject *self, void *unused) {
    return PyLong_FromVoidPtr(((fp_Table *)self)->t);
}

static PyMethodDef fp_table_methods[] = {
    {"get", fp_table_get, METH_O, "The entry with this key, or None."},
    {"create", fp_table_create, METH_NOARGS, "A new detached entry."},
    {"add", (PyCFunction)(void (*)(void))fp_table_add, METH_FASTCALL, "Insert a created entry."},
    {"erase", fp_table_erase, METH_O, "Remove the entry with this key."},
    {"clear", fp_table_clear, METH_NOARGS, "Remove every entry."},
    {"for_each", fp_table_for_each, METH_O, "Call fn on each entry until it returns False."},
    {NULL, NULL, 0, NULL},
};
static PyGetSetDef fp_table_getset[] = {
    {"name", fp_table_name, NULL, NULL, NULL},
    {"ptr", fp_table_ptr, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
static PyType_Slot fp_table_slots[] = {
    {Py_tp_dealloc, fp_table_dealloc},  {Py_mp_subscript, fp_table_getitem}, {Py_mp_length, fp_table_len},
    {Py_tp_methods, fp_table_methods},  {Py_tp_getset, fp_table_getset},     {Py_tp_repr, fp_table_repr},
    {0, NULL},
};
static PyType_Spec fp_table_spec = {"falco_plugin.tables.TableHandle", sizeof(fp_Table), 0, Py_TPFLAGS_DEFAULT,
                                    fp_table_slots};

static PyType_Slot fp_acc_slots[] = {{Py_tp_dealloc, fp_acc_dealloc}, {0, NULL}};
static PyType_Spec fp_acc_spec = {"falco_plugin.tables.FieldAccessor", sizeof(fp_Acc), 0, Py_TPFLAGS_DEFAULT,
                                  fp_acc_slots};

/* ---- init-time functions (the runtime's _internal/tables.py calls these) ---- */

static __thread int fp_init_without_tables; /* inside an init whose host offered no tables */

static int fp_init_ok(const char *what) {
    if (fp_init_without_tables) {
        PyErr_Format(fp_table_error,
                     "%s: the host offers no state tables to this plugin (libsinsp offers them to plugins with "
                     "event parsing or field extraction)",
                     what);
        return 0;
    }
    if (!fp_tc || !fp_tc->init) {
        PyErr_Format(fp_table_error,
                     "%s: tables and field accessors can only be obtained during init (the host offers the table API "
                     "there only)",
                     what);
        return 0;
    }
    return 1;
}

static PyObject *fp_t_list_tables(PyObject *m, PyObject *unused) {
    if (!fp_init_ok("listing tables")) {
        return NULL;
    }
    uint32_t n = 0;
    ss_plugin_table_info *info = fp_tc->init->list_tables(fp_tc->owner, &n);
    if (!info && n) {
        PyErr_Format(fp_table_error, "listing tables: %s", fp_owner_error());
        return NULL;
    }
    PyObject *out = PyList_New(0);
    for (uint32_t i = 0; out && info && i < n; i++) {
        PyObject *row = Py_BuildValue("(sI)", info[i].name ? info[i].name : "", (unsigned)info[i].key_type);
        if (!row || PyList_Append(out, row) != 0) {
            Py_CLEAR(out);
        }
        Py_XDECREF(row);
    }
    return out;
}

/* Why get_table refused `name`, in the SDK's words: hosts differ (libsinsp gives no reason for a table it
 * does not have), and the host's list of tables says it all. */
static void fp_table_missing(const char *name, unsigned key) {
    uint32_t n = 0;
    ss_plugin_table_info *info = fp_tc->init->list_tables(fp_tc->owner, &n);
    char names[512] = "";
    size_t used = 0;
    for (uint32_t i = 0; info && i < n; i++) {
        const char *other = info[i].name ? info[i].name : "";
        if (strcmp(other, name) == 0) {
            if ((unsigned)info[i].key_type != key) {
                PyErr_Format(fp_table_error, "opening table %s with %s keys: the table's keys are %s", name,
                             fp_type_name(key), fp_type_name(info[i].key_type));
            } else {
                PyErr_Format(fp_table_error, "opening table %s with %s keys: %s", name, fp_type_name(key),
                             fp_owner_error());
            }
            return;
        }
        int w = snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", other);
        used = w > 0 && (size_t)w < sizeof names - used ? used + (size_t)w : used;
    }
    PyErr_Format(fp_table_error, "opening table %s with %s keys: the host has no table of that name (it has: %s)",
                 name, fp_type_name(key), used ? names : "none");
}

static PyObject *fp_t_get_table(PyObject *m, PyObject *args) {
    const char *name;
    unsigned key;
    if (!PyArg_ParseTuple(args, "sI", &name, &key) || !fp_init_ok("opening a table")) {
        return NULL;
    }
    ss_plugin_table_t *t = fp_tc->init->get_table(fp_tc->owner, name, (ss_plugin_state_type)key);
    if (!t) {
        fp_table_missing(name, key);
        return NULL;
    }
    PyObject *pyname = PyUnicode_FromString(name);
    PyObject *o = pyname ? (PyObject *)fp_new_table(t, key, pyname, 0) : NULL;
    Py_XDECREF(pyname);
    return o;
}

/* get_field(table_handle, field_name, type, add, subkey) -> accessor */
static PyObject *fp_t_get_field(PyObject *m, PyObject *args) {
    PyObject *th;
    const char *name;
    unsigned type, subkey;
    int add;
    if (!PyArg_ParseTuple(args, "O!sIpI", fp_table_type, &th, &name, &type, &add, &subkey)) {
        return NULL;
    }
    fp_Table *t = (fp_Table *)th;
    char what[256];
    snprintf(what, sizeof what, "%s field %s of table %s", add ? "adding" : "getting", name,
             PyUnicode_AsUTF8(t->name));
    if (!fp_init_ok(what)) {
        return NULL;
    }
    const ss_plugin_table_fields_vtable_ext *f = fp_tc->init->fields_ext;
    /* Look the field up first: its read-only flag, and a precise message for a type mismatch. */
    uint32_t n = 0;
    const ss_plugin_table_fieldinfo *info = f->list_table_fields(t->t, &n);
    int read_only = 0, found = 0;
    for (uint32_t i = 0; info && i < n; i++) {
        if (info[i].name && strcmp(info[i].name, name) == 0) {
            found = 1;
            read_only = info[i].read_only != 0;
            if ((unsigned)info[i].field_type != type) {
                PyErr_Format(fp_table_error, "%s: the field has type %s, not %s", what,
                             fp_type_name(info[i].field_type), fp_type_name(type));
                return NULL;
            }
        }
    }
    if (!found && !add) {
        PyErr_Format(fp_table_error, "%s: the table has no such field", what);
        return NULL;
    }
    ss_plugin_table_field_t *fp = add ? f->add_table_field(t->t, name, (ss_plugin_state_type)type)
                                      : f->get_table_field(t->t, name, (ss_plugin_state_type)type);
    if (!fp) {
        PyErr_Format(fp_table_error, "%s: %s", what, fp_owner_error());
        return NULL;
    }
    fp_Acc *a = PyObject_New(fp_Acc, fp_acc_type);
    if (!a) {
        return NULL;
    }
    a->f = fp;
    a->type = type;
    a->subkey = subkey;
    a->read_only = read_only;
    a->table = Py_NewRef(t->name);
    a->name = PyUnicode_FromString(name);
    if (!a->name) {
        Py_DECREF(a);
        return NULL;
    }
    return (PyObject *)a;
}

/* list_fields(table_handle) -> [(name, type, read_only)] */
static PyObject *fp_t_list_fields(PyObject *m, PyObject *th) {
    if (!Py_IS_TYPE(th, fp_table_type) || !fp_init_ok("listing fields")) {
        return NULL;
    }
    fp_Table *t = (fp_Table *)th;
    uint32_t n = 0;
    const ss_plugin_table_fieldinfo *info = fp_tc->init->fields_ext->list_table_fields(t->t, &n);
    if (!info && n) {
        PyErr_Format(fp_table_error, "listing the fields of table %U: %s", t->name, fp_owner_error());
        return NULL;
    }
    PyObject *out = PyList_New(0);
    for (uint32_t i = 0; out && info && i < n; i++) {
        PyObject *row = Py_BuildValue("(sIO)", info[i].name ? info[i].name : "", (unsigned)info[i].field_type,
                                      info[i].read_only ? Py_True : Py_False);
        if (!row || PyList_Append(out, row) != 0) {
            Py_CLEAR(out);
        }
        Py_XDECREF(row);
    }
    return out;
}

/* sample_subtable(table_handle, accessor) -> a subtable of a temporary entry,
 * to obtain the accessors of its fields; the entry is destroyed when init returns. */
static PyObject *fp_t_sample_subtable(PyObject *m, PyObject *args) {
    PyObject *th, *acc;
    if (!PyArg_ParseTuple(args, "O!O!", fp_table_type, &th, fp_acc_type, &acc)) {
        return NULL;
    }
    fp_Table *t = (fp_Table *)th;
    fp_Acc *a = (fp_Acc *)acc;
    if (!fp_init_ok("opening a subtable")) {
        return NULL;
    }
    ss_plugin_table_entry_t *e = fp_tc->init->writer_ext->create_table_entry(t->t);
    if (!e) {
        PyErr_Format(fp_table_error, "opening subtable %U of table %U: cannot create a temporary entry: %s", a->name,
                     t->name, fp_owner_error());
        return NULL;
    }
    fp_Entry *tmp = fp_new_entry(t, e, FP_E_CREATED);
    if (!tmp) {
        fp_tc->init->writer_ext->destroy_table_entry(t->t, e);
        return NULL;
    }
    Py_DECREF(tmp); /* held by the init context until init returns */
    ss_plugin_state_data out;
    if (fp_tc->init->reader_ext->read_entry_field(t->t, e, a->f, &out) != SS_PLUGIN_SUCCESS || !out.table) {
        PyErr_Format(fp_table_error, "opening subtable %U of table %U: %s", a->name, t->name, fp_owner_error());
        return NULL;
    }
    PyObject *name = PyUnicode_FromFormat("%U.%U", t->name, a->name);
    PyObject *o = name ? (PyObject *)fp_new_table(out.table, a->subkey, name, fp_tc->gen) : NULL;
    Py_XDECREF(name);
    return o;
}

static PyObject *fp_t_export(PyObject *m, PyObject *args);

static PyMethodDef fp_tables_functions[] = {
    {"list_tables", fp_t_list_tables, METH_NOARGS, NULL},
    {"get_table", fp_t_get_table, METH_VARARGS, NULL},
    {"get_field", fp_t_get_field, METH_VARARGS, NULL},
    {"list_fields", fp_t_list_fields, METH_O, NULL},
    {"sample_subtable", fp_t_sample_subtable, METH_VARARGS, NULL},
    {"export", fp_t_export, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef fp_tables_moddef = {PyModuleDef_HEAD_INIT, "falco_plugin._glue_tables", NULL, -1,
                                              fp_tables_functions};

/* ---- the per-call context --------------------------------------------------- */

static void fp_tables_enter(fp_tctx *c, const char *phase, ss_plugin_owner_t *owner,
                            const char *(*owner_err)(ss_plugin_owner_t *),
                            const ss_plugin_table_reader_vtable_ext *r, const ss_plugin_table_writer_vtable_ext *w) {
    c->r = r;
    c->w = w;
    c->init = NULL;
    c->owner = owner;
    c->owner_err = owner_err;
    c->phase = phase;
    c->gen = ++fp_tgen;
    c->nheld = 0;
    c->more = NULL;
    c->saved = fp_tc;
    fp_tc = r ? c : NULL; /* a host without tables: no context, so uses fail precisely */
}

/* Release what the call still holds and restore the previous context (GIL held). */
static void fp_tables_leave(fp_tctx *c) {
    /* Releasing calls into the host, which may run Python (a Python host):
     * the call's pending error, if any, must survive that. */
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    if (fp_tc == c) {
        for (int i = c->nheld - 1; i >= 0; i--) {
            fp_entry_drop((fp_Entry *)c->held[i]);
        }
        if (c->more) {
            for (Py_ssize_t i = PyList_GET_SIZE(c->more) - 1; i >= 0; i--) {
                fp_entry_drop((fp_Entry *)PyList_GET_ITEM(c->more, i));
            }
        }
    }
    fp_tc = c->saved;
    fp_init_without_tables = 0;
    for (int i = 0; i < c->nheld; i++) {
        Py_DECREF(c->held[i]);
    }
    Py_CLEAR(c->more);
    c->nheld = 0;
    PyErr_Restore(et, ev, tb);
}

static PyObject *fp_tables_mod;

/* Once per library: the C types and the runtime objects they need. */
static int fp_tables_setup(void) {
    if (fp_tables_mod) {
        return 0;
    }
    PyObject *pub = PyImport_ImportModule("falco_plugin.tables");
    if (!pub) {
        return -1;
    }
    fp_table_error = PyObject_GetAttrString(pub, "TableError");
    fp_field_cls = PyObject_GetAttrString(pub, "Field");
    Py_DECREF(pub);
    if (!fp_table_error || !fp_field_cls) {
        return -1;
    }
    PyObject *d = PyObject_GetAttrString(fp_field_cls, "_acc");
    if (!d || !Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        Py_XDECREF(d);
        PyErr_SetString(PyExc_TypeError, "falco_plugin.tables.Field._acc is not a slot");
        return -1;
    }
    fp_acc_offset = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_DECREF(d);
    fp_entry_type = (PyTypeObject *)PyType_FromSpec(&fp_entry_spec);
    fp_table_type = (PyTypeObject *)PyType_FromSpec(&fp_table_spec);
    fp_acc_type = (PyTypeObject *)PyType_FromSpec(&fp_acc_spec);
    if (!fp_entry_type || !fp_table_type || !fp_acc_type) {
        return -1;
    }
    fp_tables_mod = PyModule_Create(&fp_tables_moddef);
    if (!fp_tables_mod) {
        return -1;
    }
    PyModule_AddObjectRef(fp_tables_mod, "Entry", (PyObject *)fp_entry_type);
    PyModule_AddObjectRef(fp_tables_mod, "Table", (PyObject *)fp_table_type);
    return 0;
}

/* ---- tables the plugin exports ---------------------------------------------------
 * The host calls these from its threads (GIL taken here); `t` is our fp_owned,
 * an entry is a Row object (a new reference per entry handed out, dropped by
 * release/destroy), a field is an fp_ofield. The Python side
 * (_internal/tables.OwnedTable) keeps the rows and converts the values.
 */

typedef struct fp_ofield {
    uint32_t index;
    uint32_t type;
} fp_ofield;

struct fp_owned;
struct fp_tables_state {
    struct fp_owned *owned;
};

typedef struct fp_owned {
    PyObject *impl; /* _internal.tables.OwnedTable */
    char *name;
    uint32_t keytype;
    fp_state *st;
    fp_ofield *fields; /* by index, grown as fields are added */
    ss_plugin_table_fieldinfo *info;
    char **names;
    uint32_t nfields, cap;
    ss_plugin_table_input input;
    ss_plugin_table_reader_vtable_ext reader_ext;
    ss_plugin_table_writer_vtable_ext writer_ext;
    ss_plugin_table_fields_vtable_ext fields_ext;
    PyObject *str_name; /* the last string read keeps its bytes alive here when not kept by the row */
    struct fp_owned *next;
} fp_owned;

/* Report a Python error of an exported table to the plugin's log (the host has no way to ask). */
static void fp_owned_fail(fp_owned *o, const char *what) {
    fp_fail(o->st, what);
    PyObject *r = PyObject_CallMethod(o->impl, "log_error", "s", o->st->err);
    if (!r) {
        PyErr_Clear();
    }
    Py_XDECREF(r);
}

static PyObject *fp_owned_key(fp_owned *o, const ss_plugin_state_data *k) {
    return fp_from_data(k, o->keytype);
}

static int fp_owned_sync_fields(fp_owned *o) {
    PyObject *cols = PyObject_CallMethod(o->impl, "columns", NULL);
    if (!cols) {
        return -1;
    }
    Py_ssize_t n = PyList_Size(cols);
    if ((uint32_t)n > o->cap) {
        uint32_t cap = (uint32_t)n + 8;
        fp_ofield *f = (fp_ofield *)realloc(o->fields, cap * sizeof *f);
        if (f) o->fields = f;
        ss_plugin_table_fieldinfo *i = (ss_plugin_table_fieldinfo *)realloc(o->info, cap * sizeof *i);
        if (i) o->info = i;
        char **nm = (char **)realloc(o->names, cap * sizeof *nm);
        if (nm) o->names = nm;
        if (!f || !i || !nm) {
            Py_DECREF(cols);
            PyErr_NoMemory();
            return -1;
        }
        for (uint32_t j = o->cap; j < cap; j++) o->names[j] = NULL;
        o->cap = cap;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        const char *name;
        unsigned type;
        int ro;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(cols, j), "sIp", &name, &type, &ro)) {
            Py_DECREF(cols);
            return -1;
        }
        if ((uint32_t)j >= o->nfields) {
            o->names[j] = strdup(name);
        }
        o->fields[j].index = (uint32_t)j;
        o->fields[j].type = type;
        o->info[j].name = o->names[j];
        o->info[j].field_type = (ss_plugin_state_type)type;
        o->info[j].read_only = (ss_plugin_bool)ro;
    }
    o->nfields = (uint32_t)n;
    Py_DECREF(cols);
    return 0;
}

static const char *fp_o_get_name(ss_plugin_table_t *t) { return ((fp_owned *)t)->name; }

static uint64_t fp_o_size(ss_plugin_table_t *t) {
    fp_owned *o = (fp_owned *)t;
    fp_gil g = fp_gil_enter();
    Py_ssize_t n = PyObject_Length(o->impl);
    if (n < 0) {
        fp_owned_fail(o, "exported table size");
        n = 0;
    }
    fp_gil_leave(g);
    return (uint64_t)n;
}

static ss_plugin_table_entry_t *fp_o_get_entry(ss_plugin_table_t *t, const ss_plugin_state_data *key) {
    fp_owned *o = (fp_owned *)t;
    fp_gil g = fp_gil_enter();
    PyObject *k = fp_owned_key(o, key);
    PyObject *row = k ? PyObject_CallMethod(o->impl, "entry", "O", k) : NULL;
    Py_XDECREF(k);
    if (!row) {
        fp_owned_fail(o, "exported table get_table_entry");
    } else if (row == Py_None) {
        Py_CLEAR(row);
    }
    fp_gil_leave(g);
    return row; /* a new reference, dropped by release_table_entry */
}

static ss_plugin_rc fp_o_read(ss_plugin_table_t *t, ss_plugin_table_entry_t *e, const ss_plugin_table_field_t *f,
                              ss_plugin_state_data *out) {
    fp_owned *o = (fp_owned *)t;
    const fp_ofield *fd = (const fp_ofield *)f;
    ss_plugin_rc rc = SS_PLUGIN_FAILURE;
    fp_gil g = fp_gil_enter();
    /* Strings come back as bytes the row keeps, so the pointer outlives this call. */
    PyObject *v = PyObject_CallMethod(o->impl, "read", "OI", (PyObject *)e, fd->index);
    if (v) {
        if (fd->type == 9 && PyBytes_Check(v)) {
            out->str = PyBytes_AS_STRING(v);
            rc = SS_PLUGIN_SUCCESS;
        } else {
            PyObject *tn = PyUnicode_FromString(o->name);
            if (tn && fp_to_data(v, fd->type, out, "reading", tn, NULL) == 0) {
                rc = SS_PLUGIN_SUCCESS;
            }
            Py_XDECREF(tn);
        }
        Py_DECREF(v);
    }
    if (rc != SS_PLUGIN_SUCCESS) {
        fp_owned_fail(o, "exported table read_entry_field");
    }
    fp_gil_leave(g);
    return rc;
}

static void fp_o_release(ss_plugin_table_t *t, ss_plugin_table_entry_t *e) {
    fp_gil g = fp_gil_enter();
    Py_XDECREF((PyObject *)e);
    fp_gil_leave(g);
}

typedef struct {
    ss_plugin_table_iterator_func_t it;
    ss_plugin_table_iterator_state_t *s;
} fp_oiter;

static ss_plugin_bool fp_o_iterate(ss_plugin_table_t *t, ss_plugin_table_iterator_func_t it,
                                   ss_plugin_table_iterator_state_t *s) {
    fp_owned *o = (fp_owned *)t;
    ss_plugin_bool done = 1;
    fp_gil g = fp_gil_enter();
    PyObject *rows = PyObject_CallMethod(o->impl, "snapshot", NULL); /* a list: the callback may change the table */
    if (!rows) {
        fp_owned_fail(o, "exported table iterate_entries");
        done = 0;
    }
    for (Py_ssize_t i = 0; rows && i < PyList_GET_SIZE(rows); i++) {
        if (!it(s, (ss_plugin_table_entry_t *)PyList_GET_ITEM(rows, i))) {
            done = 0;
            break;
        }
    }
    Py_XDECREF(rows);
    fp_gil_leave(g);
    return done;
}

static ss_plugin_rc fp_o_simple(fp_owned *o, const char *method, const ss_plugin_state_data *key, const char *what) {
    ss_plugin_rc rc = SS_PLUGIN_FAILURE;
    fp_gil g = fp_gil_enter();
    PyObject *k = key ? fp_owned_key(o, key) : NULL;
    PyObject *r = (!key || k) ? (k ? PyObject_CallMethod(o->impl, method, "O", k) : PyObject_CallMethod(o->impl, method, NULL)) : NULL;
    Py_XDECREF(k);
    if (r && r != Py_False) {
        rc = SS_PLUGIN_SUCCESS;
    } else if (!r) {
        fp_owned_fail(o, what);
    }
    Py_XDECREF(r);
    fp_gil_leave(g);
    return rc;
}

static ss_plugin_rc fp_o_clear(ss_plugin_table_t *t) {
    return fp_o_simple((fp_owned *)t, "clear", NULL, "exported table clear_table");
}

static ss_plugin_rc fp_o_erase(ss_plugin_table_t *t, const ss_plugin_state_data *key) {
    return fp_o_simple((fp_owned *)t, "erase", key, "exported table erase_table_entry");
}

static ss_plugin_table_entry_t *fp_o_create(ss_plugin_table_t *t) {
    fp_owned *o = (fp_owned *)t;
    fp_gil g = fp_gil_enter();
    PyObject *row = PyObject_CallMethod(o->impl, "create", NULL);
    if (!row) {
        fp_owned_fail(o, "exported table create_table_entry");
    }
    fp_gil_leave(g);
    return row;
}

static void fp_o_destroy(ss_plugin_table_t *t, ss_plugin_table_entry_t *e) { fp_o_release(t, e); }

static ss_plugin_table_entry_t *fp_o_add(ss_plugin_table_t *t, const ss_plugin_state_data *key,
                                         ss_plugin_table_entry_t *e) {
    fp_owned *o = (fp_owned *)t;
    PyObject *out = NULL;
    fp_gil g = fp_gil_enter();
    PyObject *k = fp_owned_key(o, key);
    if (k) {
        out = PyObject_CallMethod(o->impl, "add", "OO", k, (PyObject *)e);
        Py_DECREF(k);
    }
    if (!out) {
        fp_owned_fail(o, "exported table add_table_entry");
    }
    Py_XDECREF((PyObject *)e); /* the created entry's reference: the table holds the row now */
    fp_gil_leave(g);
    return out;
}

static ss_plugin_rc fp_o_write(ss_plugin_table_t *t, ss_plugin_table_entry_t *e, const ss_plugin_table_field_t *f,
                               const ss_plugin_state_data *in) {
    fp_owned *o = (fp_owned *)t;
    const fp_ofield *fd = (const fp_ofield *)f;
    ss_plugin_rc rc = SS_PLUGIN_FAILURE;
    fp_gil g = fp_gil_enter();
    PyObject *v = fp_from_data(in, fd->type);
    PyObject *r = v ? PyObject_CallMethod(o->impl, "write", "OIO", (PyObject *)e, fd->index, v) : NULL;
    Py_XDECREF(v);
    if (r) {
        rc = SS_PLUGIN_SUCCESS;
        Py_DECREF(r);
    } else {
        fp_owned_fail(o, "exported table write_entry_field");
    }
    fp_gil_leave(g);
    return rc;
}

static const ss_plugin_table_fieldinfo *fp_o_list_fields(ss_plugin_table_t *t, uint32_t *n) {
    fp_owned *o = (fp_owned *)t;
    fp_gil g = fp_gil_enter();
    if (fp_owned_sync_fields(o) != 0) {
        fp_owned_fail(o, "exported table list_table_fields");
    }
    fp_gil_leave(g);
    *n = o->nfields;
    return o->info;
}

static ss_plugin_table_field_t *fp_o_field(fp_owned *o, const char *name, ss_plugin_state_type type, int add) {
    fp_ofield *out = NULL;
    fp_gil g = fp_gil_enter();
    PyObject *r = PyObject_CallMethod(o->impl, "field", "sIO", name, (unsigned)type, add ? Py_True : Py_False);
    if (r && fp_owned_sync_fields(o) == 0) {
        long i = PyLong_AsLong(r);
        if (i >= 0 && (uint32_t)i < o->nfields) {
            out = &o->fields[i];
        }
    }
    if (!out) {
        fp_owned_fail(o, add ? "exported table add_table_field" : "exported table get_table_field");
    }
    Py_XDECREF(r);
    fp_gil_leave(g);
    return out;
}

static ss_plugin_table_field_t *fp_o_get_field(ss_plugin_table_t *t, const char *name, ss_plugin_state_type type) {
    return fp_o_field((fp_owned *)t, name, type, 0);
}

static ss_plugin_table_field_t *fp_o_add_field(ss_plugin_table_t *t, const char *name, ss_plugin_state_type type) {
    return fp_o_field((fp_owned *)t, name, type, 1);
}

/* export(name, key_type, impl): register the table with the host (init only). */
static PyObject *fp_t_export(PyObject *m, PyObject *args) {
    const char *name;
    unsigned key;
    PyObject *impl;
    if (!PyArg_ParseTuple(args, "sIO", &name, &key, &impl)) {
        return NULL;
    }
    char what[256];
    snprintf(what, sizeof what, "exporting table %s", name);
    if (!fp_init_ok(what)) {
        return NULL;
    }
    fp_state *st = (fp_state *)PyLong_AsVoidPtr(PyObject_GetAttrString(impl, "state_addr"));
    if (!st) {
        return NULL;
    }
    fp_owned *o = (fp_owned *)calloc(1, sizeof *o);
    if (!o || !(o->name = strdup(name))) {
        free(o);
        return PyErr_NoMemory();
    }
    o->impl = Py_NewRef(impl);
    o->keytype = key;
    o->st = st;
    if (fp_owned_sync_fields(o) != 0) {
        Py_DECREF(o->impl);
        free(o->name);
        free(o);
        return NULL;
    }
    o->reader_ext = (ss_plugin_table_reader_vtable_ext){fp_o_get_name, fp_o_size,    fp_o_get_entry,
                                                        fp_o_read,     fp_o_release, fp_o_iterate};
    o->writer_ext = (ss_plugin_table_writer_vtable_ext){fp_o_clear,   fp_o_erase, fp_o_create,
                                                        fp_o_destroy, fp_o_add,   fp_o_write};
    o->fields_ext = (ss_plugin_table_fields_vtable_ext){fp_o_list_fields, fp_o_get_field, fp_o_add_field};
    o->input.name = o->name;
    o->input.key_type = (ss_plugin_state_type)key;
    o->input.table = o;
    /* Hosts still read the by-value 3.0 vtables of a table input: fill both. */
    o->input.reader = (ss_plugin_table_reader_vtable){fp_o_get_name, fp_o_size, fp_o_get_entry, fp_o_read};
    o->input.writer = (ss_plugin_table_writer_vtable){fp_o_clear, fp_o_erase, fp_o_create,
                                                      fp_o_destroy, fp_o_add, fp_o_write};
    o->input.fields = (ss_plugin_table_fields_vtable){fp_o_list_fields, fp_o_get_field, fp_o_add_field};
    o->input.reader_ext = &o->reader_ext;
    o->input.writer_ext = &o->writer_ext;
    o->input.fields_ext = &o->fields_ext;
    o->next = st->tables->owned;
    st->tables->owned = o; /* before add_table: the state frees it even if the host refuses */
    if (fp_tc->init->add_table(fp_tc->owner, &o->input) != SS_PLUGIN_SUCCESS) {
        PyErr_Format(fp_table_error, "%s: %s", what, fp_owner_error());
        return NULL;
    }
    return PyLong_FromVoidPtr(o);
}

/* ---- per-state hooks (called by common.c) ------------------------------------ */

static int fp_tables_attach(fp_state *st) {
    st->tables = (struct fp_tables_state *)calloc(1, sizeof *st->tables);
    if (!st->tables) {
        PyErr_NoMemory();
        return -1;
    }
    if (fp_tables_setup() != 0) {
        return -1;
    }
    PyObject *r = PyObject_CallMethod(st->py, "attach_tables", "OK", fp_tables_mod,
                                      (unsigned long long)(uintptr_t)st);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static void fp_tables_release(fp_state *st) {
    if (!st->tables) {
        return;
    }
    fp_owned *o = st->tables->owned;
    while (o) {
        fp_owned *next = o->next;
        Py_XDECREF(o->impl);
        for (uint32_t i = 0; i < o->nfields; i++) {
            free(o->names[i]);
        }
        free(o->names);
        free(o->info);
        free(o->fields);
        free(o->name);
        free(o);
        o = next;
    }
    free(st->tables);
    st->tables = NULL;
}

static void fp_tables_enter_init(fp_tctx *c, const ss_plugin_init_input *in) {
    const ss_plugin_init_tables_input *t = in ? in->tables : NULL;
    fp_tables_enter(c, "init", in ? in->owner : NULL, in ? in->get_owner_last_error : NULL, t ? t->reader_ext : NULL,
                    t ? t->writer_ext : NULL);
    if (fp_tc) {
        c->init = t->fields_ext ? t : NULL;
    }
    fp_init_without_tables = !c->init;
}
