/*
 * shutdown.c - the two ways to stop: drain (every accepted task runs) and
 * now (queued tasks are cancelled, and say so through the error callback;
 * running tasks see the request and return early).
 */
#include <crew.h>

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static atomic_int ran, cancelled;

static int patient(crew_ctx_t *ctx, void *arg, void **result)
{
    struct timespec ms = { 0, 1000000 };

    (void)arg;
    (void)result;
    /* A long task checks for cancellation between steps. */
    for (int step = 0; step < 20; step++) {
        if (crew_ctx_cancelled(ctx))
            return CREW_ECANCELED;
        nanosleep(&ms, NULL);
    }
    atomic_fetch_add(&ran, 1);
    return 0;
}

static void on_error(void *arg, int err, void *user)
{
    (void)arg;
    (void)user;
    if (err == CREW_ECANCELED)
        atomic_fetch_add(&cancelled, 1);
}

static int run(int how)
{
    crew_opts_t opts = { .max_workers = 2, .on_error = on_error };
    crew_stats_t st;
    crew_t *pool;

    atomic_store(&ran, 0);
    atomic_store(&cancelled, 0);
    if (crew_create(&pool, &opts) != 0)
        return -1;
    for (int i = 0; i < 20; i++)
        crew_submit(pool, patient, NULL);
    crew_shutdown(pool, how);
    crew_stats(pool, &st);
    printf("%-5s: %d finished, %d cancelled, %llu accepted\n",
           how == CREW_SHUTDOWN_NOW ? "now" : "drain", atomic_load(&ran),
           atomic_load(&cancelled), (unsigned long long)st.submitted);
    printf("       submit after shutdown: %s\n",
           crew_strerror(crew_submit(pool, patient, NULL)));
    crew_free(pool);
    return atomic_load(&ran) + atomic_load(&cancelled);
}

int main(void)
{
    if (run(CREW_SHUTDOWN_DRAIN) != 20)
        return 1;
    if (run(CREW_SHUTDOWN_NOW) != 20)
        return 1;
    return 0;
}
