/*
 * Event sourcing: open/next_batch/close, and progress, open params and
 * event_to_string when the plugin has them.
 *
 * next_batch calls the instance's bound next_batch directly and writes each
 * payload into one arena per instance, headers and all (type 322, the
 * plugin id filled in), so the host gets a batch with one Python call and
 * no Python objects of its own.
 *
 * An event the plugin gives no timestamp gets the time of its batch, read
 * once per batch: left at all ones, the host would read the clock for each
 * event (libsinsp does, about 20 ns apiece), which was most of what Falco
 * spent on a Python source beyond a C one. Every host stamps such events
 * with "now" anyway; the events of one batch are made at one moment.
 */
#include <time.h>

struct fp_sourcing_state {
    PyObject *open_params; /* keeps the last list_open_params text alive */
    PyObject *to_string;   /* ... and the last event_to_string text */
};

static int fp_sourcing_attach(fp_state *st) {
    st->sourcing = (struct fp_sourcing_state *)calloc(1, sizeof *st->sourcing);
    if (!st->sourcing) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void fp_sourcing_release(fp_state *st) {
    if (st->sourcing) {
        Py_CLEAR(st->sourcing->open_params);
        Py_CLEAR(st->sourcing->to_string);
        free(st->sourcing);
        st->sourcing = NULL;
    }
}

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
static int fp_append_event(fp_instance *in, size_t *used, size_t idx, PyObject *item, uint64_t *now) {
    PyObject *payload = item;
    uint64_t ts;
    if (!PyTuple_Check(item)) {
        if (*now == UINT64_MAX) {
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            *now = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
        }
        ts = *now;
    } else {
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
    fp_gil g = fp_gil_enter();
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
        uint64_t now = UINT64_MAX; /* the batch's time, read when an event first needs it */
        Py_ssize_t i;
        for (i = 0; i < n; i++) {
            if (fp_append_event(in, &used, (size_t)i, items[i], &now) != 0) {
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
    fp_gil_leave(g);
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
        Py_XSETREF(st->sourcing->open_params, r);
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
        Py_XSETREF(st->sourcing->to_string, r);
        text = PyUnicode_AsUTF8(r);
    } else {
        Py_XDECREF(r);
        fp_fail(st, "event_to_string");
    }
    PyGILState_Release(g);
    return text ? text : "";
}
#endif
