/* What Event._cur points at: the event being handled (see event.py). Also
 * declared to cffi by the builder, from this file, so the runtime can read
 * it: one definition for C and Python. */
#ifndef FP_EVENT_REF_H
#define FP_EVENT_REF_H
typedef struct fp_event_ref {
    const ss_plugin_event *evt;
    uintptr_t addr;
    uintptr_t src;
    uint64_t num; /* the host's event number: Event.num reads it, few fields do */
} fp_event_ref;
#endif
