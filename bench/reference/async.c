/*
 * async_c_ref: the yardstick for async events and metrics, written in C.
 *
 * It does what the SDK's async fixture plugin (tests/plugins/async_events)
 * does with {"workers": 1}: when the host sets a handler, one thread emits
 * "sample" events (payload "w0 <i>") as fast as it can until the handler is
 * cleared, which stops and joins it. It also exports five metrics like
 * tests/plugins/metrics, so get_metrics costs can be compared.
 *
 *   cc -O2 -shared -fPIC -fvisibility=hidden -pthread -I sdk/src/falco_plugin_tools/build/glue \
 *      bench/reference/async.c -o libasync_c_ref.so
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_abi.h"

#define REF_EXPORT __attribute__((visibility("default")))
#define ASYNC_EVENT 402u
#define NAME "sample"
#define NAME_LEN 7u /* with the NUL */
#define NAME_OFFSET 42u

typedef struct ref_state {
    char err[1024];
    pthread_t worker;
    int running;
    volatile int stop;
    ss_plugin_owner_t *owner;
    ss_plugin_async_event_handler_t handler;
    uint64_t sent;
    ss_plugin_metric metrics[5];
} ref_state;

REF_EXPORT const char *plugin_get_required_api_version(void) { return "3.6.0"; }
REF_EXPORT const char *plugin_get_version(void) { return "0.1.0"; }
REF_EXPORT const char *plugin_get_name(void) { return "async_c_ref"; }
REF_EXPORT const char *plugin_get_description(void) { return "Reference async events plugin in C"; }
REF_EXPORT const char *plugin_get_contact(void) { return "sdk bench"; }
REF_EXPORT const char *plugin_get_last_error(ss_plugin_t *s) { return ((ref_state *)s)->err; }
REF_EXPORT const char *plugin_get_async_events(void) { return "[\"sample\"]"; }

REF_EXPORT ss_plugin_t *plugin_init(const ss_plugin_init_input *in, ss_plugin_rc *rc) {
    (void)in;
    ref_state *st = calloc(1, sizeof *st);
    *rc = st ? SS_PLUGIN_SUCCESS : SS_PLUGIN_FAILURE;
    return st;
}

static void *work(void *arg) {
    ref_state *st = arg;
    uint8_t buf[128];
    char err[1024];
    for (uint64_t i = 0; !__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE); i++) {
        int plen = snprintf((char *)buf + NAME_OFFSET + NAME_LEN, 32, "w0 %llu", (unsigned long long)i);
        ss_plugin_event hdr = {UINT64_MAX, UINT64_MAX, NAME_OFFSET + NAME_LEN + (uint32_t)plen, ASYNC_EVENT, 3};
        uint32_t lens[4] = {4, NAME_LEN, (uint32_t)plen, 0};
        memcpy(buf, &hdr, 26);
        memcpy(buf + 26, lens, sizeof lens);
        memcpy(buf + NAME_OFFSET, NAME, NAME_LEN);
        st->handler(st->owner, (const ss_plugin_event *)buf, err);
        __atomic_fetch_add(&st->sent, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void stop_worker(ref_state *st) {
    if (st->running) {
        __atomic_store_n(&st->stop, 1, __ATOMIC_RELEASE);
        pthread_join(st->worker, NULL);
        st->running = 0;
    }
}

REF_EXPORT void plugin_destroy(ss_plugin_t *s) {
    stop_worker(s);
    free(s);
}

REF_EXPORT ss_plugin_rc plugin_set_async_event_handler(ss_plugin_t *s, ss_plugin_owner_t *owner,
                                                       const ss_plugin_async_event_handler_t handler) {
    ref_state *st = s;
    stop_worker(st);
    if (!handler) {
        return SS_PLUGIN_SUCCESS;
    }
    st->owner = owner;
    st->handler = handler;
    st->stop = 0;
    if (pthread_create(&st->worker, NULL, work, st) != 0) {
        snprintf(st->err, sizeof st->err, "cannot start the worker");
        return SS_PLUGIN_FAILURE;
    }
    st->running = 1;
    return SS_PLUGIN_SUCCESS;
}

REF_EXPORT ss_plugin_metric *plugin_get_metrics(ss_plugin_t *s, uint32_t *n) {
    ref_state *st = s;
    static const char *const names[5] = {"seen", "total_seconds", "depth", "size", "lag"};
    static const int types[5] = {0, 0, 1, 1, 1};
    static const int vtypes[5] = {2, 4, 3, 2, 4};
    for (int i = 0; i < 5; i++) {
        st->metrics[i].name = names[i];
        st->metrics[i].type = (ss_plugin_metric_type)types[i];
        st->metrics[i].value_type = (ss_plugin_metric_value_type)vtypes[i];
        st->metrics[i].value.u64 = __atomic_load_n(&st->sent, __ATOMIC_RELAXED);
    }
    *n = 5;
    return st->metrics;
}
