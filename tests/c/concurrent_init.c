/*
 * concurrent_init: the first plugin_init of two different SDK-built
 * libraries, at the same moment, on two threads of a plain C process.
 *
 *   concurrent_init LIB1 CONFIG1 LIB2 CONFIG2
 *
 * Falco may initialise plugins from several threads, and each SDK-built
 * library carries its own start-up code: whichever gets there first must
 * start the one interpreter and the other must join it, whatever the timing.
 * Both libraries are dlopened RTLD_LAZY | RTLD_LOCAL (as libsinsp does),
 * both threads wait at a barrier, then each calls its own library's init.
 * Then both states are destroyed and both libraries dlclosed.
 *
 * Output (stdout only, so that anything on stderr came from a plugin):
 * "init <lib> rc=<rc>" per library, with "error=<last error>" on failure,
 * then "done". Exit status: 0 when both inits succeed, 1 otherwise, 2 on
 * bad usage or a library that cannot be loaded.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "plugin_abi.h"

typedef struct {
    const char *path;
    const char *config;
    void *dl;
    ss_plugin_t *(*init)(const ss_plugin_init_input *, ss_plugin_rc *);
    void (*destroy)(ss_plugin_t *);
    const char *(*get_last_error)(ss_plugin_t *);
    ss_plugin_t *state;
    ss_plugin_rc rc;
} lib_t;

static pthread_barrier_t barrier;

static const char *no_owner_error(ss_plugin_owner_t *o) {
    (void)o;
    return NULL;
}

static void no_log(ss_plugin_owner_t *o, const char *component, const char *msg, ss_plugin_log_severity sev) {
    (void)o, (void)component, (void)msg, (void)sev;
}

static void *run_init(void *arg) {
    lib_t *l = arg;
    ss_plugin_init_input in;
    memset(&in, 0, sizeof in);
    in.config = l->config;
    in.owner = (ss_plugin_owner_t *)l;
    in.get_owner_last_error = no_owner_error;
    in.log_fn = no_log;
    l->rc = SS_PLUGIN_FAILURE;
    pthread_barrier_wait(&barrier);
    l->state = l->init(&in, &l->rc);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        printf("usage: %s LIB1 CONFIG1 LIB2 CONFIG2\n", argv[0]);
        return 2;
    }
    lib_t libs[2] = {{.path = argv[1], .config = argv[2]}, {.path = argv[3], .config = argv[4]}};
    for (int i = 0; i < 2; i++) {
        lib_t *l = &libs[i];
        l->dl = dlopen(l->path, RTLD_LAZY | RTLD_LOCAL);
        if (!l->dl) {
            printf("cannot load %s: %s\n", l->path, dlerror());
            return 2;
        }
        *(void **)&l->init = dlsym(l->dl, "plugin_init");
        *(void **)&l->destroy = dlsym(l->dl, "plugin_destroy");
        *(void **)&l->get_last_error = dlsym(l->dl, "plugin_get_last_error");
        if (!l->init || !l->destroy || !l->get_last_error) {
            printf("%s lacks plugin_init, plugin_destroy or plugin_get_last_error\n", l->path);
            return 2;
        }
    }
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        pthread_create(&threads[i], NULL, run_init, &libs[i]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
    }
    int status = 0;
    for (int i = 0; i < 2; i++) {
        lib_t *l = &libs[i];
        printf("init %s rc=%d", l->path, (int)l->rc);
        if (l->rc != SS_PLUGIN_SUCCESS) {
            printf(" error=%s", l->state ? l->get_last_error(l->state) : "(no state)");
            status = 1;
        }
        putchar('\n');
    }
    fflush(stdout);
    for (int i = 0; i < 2; i++) {
        if (libs[i].state) {
            libs[i].destroy(libs[i].state);
        }
    }
    for (int i = 0; i < 2; i++) {
        dlclose(libs[i].dl);
    }
    printf("done\n");
    return status;
}
