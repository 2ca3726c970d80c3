/*
 * last_error: does the text get_last_error returned survive the next failure?
 *
 *   last_error LIB CONFIG STEP1 STEP2
 *
 * A STEP is a call that is expected to fail on the one plugin state:
 * "open:<params>" (plugin_open) or "extract:<field id>" (plugin_extract_fields
 * on a plugin event whose payload is "faulty 1"). After STEP1 the host keeps
 * the pointer get_last_error gave it, as a host that logs the message later
 * would; after STEP2 it reads that pointer again, before it asks for the new
 * message. The contract is that the
 * text stays valid until the next call on the same state, so it must still
 * be readable memory holding a string: the first message, or the newest one.
 * Run under valgrind, a read of freed memory is reported as an error.
 *
 * Output (stdout): "first=<text>", "kept=<text>", "second=<text>" (up to 300
 * bytes, escaped), then "ok" or "stale". Exit status: 0 ok, 1 stale, 2 a step
 * did not fail or bad usage.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_abi.h"

/* Longer than any message the SDK writes: a longer "string" is not one. */
#define MAX_ERROR 65536

typedef struct {
    ss_plugin_t *(*init)(const ss_plugin_init_input *, ss_plugin_rc *);
    void (*destroy)(ss_plugin_t *);
    const char *(*get_last_error)(ss_plugin_t *);
    ss_instance_t *(*open)(ss_plugin_t *, const char *, ss_plugin_rc *);
    ss_plugin_rc (*extract_fields)(ss_plugin_t *, const ss_plugin_event_input *, const ss_plugin_field_extract_input *);
} api_t;

static const char *no_owner_error(ss_plugin_owner_t *o) {
    (void)o;
    return NULL;
}

static void no_log(ss_plugin_owner_t *o, const char *component, const char *msg, ss_plugin_log_severity sev) {
    (void)o, (void)component, (void)msg, (void)sev;
}

/* A plugin event (type 322, two params: plugin id, payload) in an 8-byte aligned buffer. */
static uint64_t event_words[16];

static ss_plugin_event *plugin_event(const char *payload) {
    uint8_t *p = (uint8_t *)event_words;
    uint32_t plen = (uint32_t)strlen(payload), total = 38 + plen;
    ss_plugin_event hdr = {0, UINT64_MAX, total, 322, 2};
    uint32_t lens_and_id[3] = {4, plen, 0};
    memcpy(p, &hdr, 26);
    memcpy(p + 26, lens_and_id, sizeof lens_and_id);
    memcpy(p + 38, payload, plen);
    return (ss_plugin_event *)p;
}

/* Run one step; returns 1 if it failed as expected. */
static int fail_once(const api_t *api, ss_plugin_t *s, const char *step) {
    ss_plugin_rc rc = SS_PLUGIN_SUCCESS;
    if (strncmp(step, "open:", 5) == 0) {
        ss_instance_t *inst = api->open(s, step + 5, &rc);
        return rc != SS_PLUGIN_SUCCESS && inst == NULL;
    }
    if (strncmp(step, "extract:", 8) == 0 && api->extract_fields) {
        ss_plugin_event_input ev = {plugin_event("faulty 1"), 1, "plugin"};
        ss_plugin_extract_field f;
        memset(&f, 0, sizeof f);
        f.field_id = (uint32_t)atoi(step + 8);
        ss_plugin_field_extract_input xi;
        memset(&xi, 0, sizeof xi);
        xi.get_owner_last_error = no_owner_error;
        xi.num_fields = 1;
        xi.fields = &f;
        return api->extract_fields(s, &ev, &xi) != SS_PLUGIN_SUCCESS;
    }
    return 0;
}

static void show(const char *label, const char *text) {
    printf("%s=", label);
    for (int i = 0; i < 300 && text[i]; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c >= 0x7f) {
            printf("\\x%02x", c);
        } else {
            putchar(c);
        }
    }
    putchar('\n');
}

int main(int argc, char **argv) {
    if (argc != 5) {
        printf("usage: %s LIB CONFIG STEP1 STEP2\n", argv[0]);
        return 2;
    }
    void *dl = dlopen(argv[1], RTLD_LAZY | RTLD_LOCAL);
    if (!dl) {
        printf("cannot load %s: %s\n", argv[1], dlerror());
        return 2;
    }
    api_t api;
    *(void **)&api.init = dlsym(dl, "plugin_init");
    *(void **)&api.destroy = dlsym(dl, "plugin_destroy");
    *(void **)&api.get_last_error = dlsym(dl, "plugin_get_last_error");
    *(void **)&api.open = dlsym(dl, "plugin_open");
    *(void **)&api.extract_fields = dlsym(dl, "plugin_extract_fields");
    if (!api.init || !api.destroy || !api.get_last_error || !api.open) {
        printf("%s is not a source plugin library\n", argv[1]);
        return 2;
    }
    ss_plugin_init_input in;
    memset(&in, 0, sizeof in);
    in.config = argv[2];
    in.get_owner_last_error = no_owner_error;
    in.log_fn = no_log;
    ss_plugin_rc rc = SS_PLUGIN_FAILURE;
    ss_plugin_t *s = api.init(&in, &rc);
    if (rc != SS_PLUGIN_SUCCESS) {
        printf("init failed: %s\n", s ? api.get_last_error(s) : "(no state)");
        return 2;
    }
    int status = 2;
    if (!fail_once(&api, s, argv[3])) {
        printf("%s did not fail\n", argv[3]);
    } else {
        const char *first = api.get_last_error(s);
        char *copy = strdup(first); /* what the host saw at the time */
        show("first", copy);
        if (!fail_once(&api, s, argv[4])) {
            printf("%s did not fail\n", argv[4]);
        } else {
            /* The read that matters: through the pointer kept from the first failure, after the
             * second one, before asking for the new message (which may reuse the same buffer). */
            size_t n = strnlen(first, MAX_ERROR);
            char *kept = n < MAX_ERROR ? strdup(first) : NULL;
            show("kept", kept ? kept : "(no string within the limit)");
            const char *second = api.get_last_error(s);
            show("second", second);
            /* The first message, or the newest one if the buffer was rewritten in place. */
            int ok = kept && (strcmp(kept, copy) == 0 || strcmp(kept, second) == 0);
            printf("%s\n", ok ? "ok" : "stale");
            status = ok ? 0 : 1;
            free(kept);
        }
        free(copy);
    }
    fflush(stdout);
    api.destroy(s);
    dlclose(dl);
    return status;
}
