/*
 * Event parsing: parse_event calls the plugin's bound parse_event directly
 * (vectorcall) with the shared Event, inside a table context that carries
 * the call's reader and writer vtables (tables.c), so the parser's table
 * reads and writes are C calls through them and the entries it obtained are
 * released when it returns.
 */

struct fp_parsing_state {
    PyObject *parse; /* the plugin's bound parse_event */
};

static int fp_parsing_attach(fp_state *st) {
    st->parsing = (struct fp_parsing_state *)calloc(1, sizeof *st->parsing);
    if (!st->parsing) {
        PyErr_NoMemory();
        return -1;
    }
    st->parsing->parse = PyObject_GetAttrString(st->py, "parse");
    return st->parsing->parse ? 0 : -1;
}

static void fp_parsing_release(fp_state *st) {
    if (st->parsing) {
        Py_CLEAR(st->parsing->parse);
        free(st->parsing);
        st->parsing = NULL;
    }
}

#ifdef FP_PARSE_TYPES
static uint16_t fp_parse_types[] = {FP_PARSE_TYPES};
FP_EXPORT uint16_t *plugin_get_parse_event_types(uint32_t *numtypes, ss_plugin_t *s) {
    (void)s;
    *numtypes = (uint32_t)(sizeof fp_parse_types / sizeof fp_parse_types[0]);
    return fp_parse_types;
}
#endif

#ifdef FP_PARSE_SOURCES_JSON
FP_EXPORT const char *plugin_get_parse_event_sources(void) { return FP_PARSE_SOURCES_JSON; }
#endif

FP_EXPORT ss_plugin_rc plugin_parse_event(ss_plugin_t *s, const ss_plugin_event_input *evt,
                                          const ss_plugin_event_parse_input *in) {
    fp_state *st = (fp_state *)s;
    if (!st || !st->py) {
        if (st) {
            fp_set_error(st, "parse_event: the plugin is not initialised");
        }
        return SS_PLUGIN_FAILURE;
    }
    fp_gil g = fp_gil_enter();
    ss_plugin_rc rc = SS_PLUGIN_SUCCESS;
    FP_TABLES_CALL("parse_event", in ? in->owner : NULL, in ? in->get_owner_last_error : NULL,
                   in ? in->table_reader_ext : NULL, in ? in->table_writer_ext : NULL);
    PyObject *r = NULL;
    if (fp_use_event(st, evt) == 0) {
        PyObject *args[2] = {NULL, st->event};
        r = PyObject_Vectorcall(st->parsing->parse, args + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    FP_TABLES_END();
    if (!r) {
        fp_fail(st, "parse_event");
        rc = SS_PLUGIN_FAILURE;
    }
    Py_XDECREF(r);
    fp_gil_leave(g);
    return rc;
}
