/*
 * p_crew.c - crew on every workload, used as its README shows: a pool of
 * `workers` pre-spawned workers (min = max), crew_submit() and crew_wait();
 * fork-join with crew_spawn() and crew_task_wait(), which runs queued
 * tasks while it waits.
 */
#include "common.h"

#include <crew.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* inline_after for the pools made (pool_crew_inline_run). */
static unsigned g_inline_after;

static crew_t *make(const struct wl *w, struct res *r, size_t cap,
                    size_t stack)
{
    crew_opts_t o = {
        .min_workers = w->workers,
        .max_workers = w->workers,
        .prespawn = true,
        .queue_capacity = cap,
        .stack_size = stack,
        .inline_after = g_inline_after,
    };
    crew_t *pool = NULL;
    int rc = crew_create(&pool, &o);
    if (rc != 0) {
        res_fail(r, "crew_create: %s", crew_strerror(rc));
        return NULL;
    }
    return pool;
}

static int t_sleep(crew_ctx_t *ctx, void *arg, void **result)
{
    sleep_work();
    return 0;
}

static int t_tiny(crew_ctx_t *ctx, void *arg, void **result)
{
    tiny_work((uintptr_t)arg);
    return 0;
}

static int t_inside(crew_ctx_t *ctx, void *arg, void **result)
{
    uint64_t n = (uint64_t)(uintptr_t)arg - 1;
    uint64_t a = n / 2, b = n - a;
    crew_t *pool = crew_ctx_pool(ctx);

    tiny_work((uintptr_t)arg);
    if (a > 0)
        crew_submit(pool, t_inside, (void *)(uintptr_t)a);
    if (b > 0)
        crew_submit(pool, t_inside, (void *)(uintptr_t)b);
    return 0;
}

static int g_cutoff;

static long pfib(crew_t *pool, int n);

static int t_fib(crew_ctx_t *ctx, void *arg, void **result)
{
    *result = (void *)(intptr_t)pfib(crew_ctx_pool(ctx), (int)(intptr_t)arg);
    return 0;
}

static long pfib(crew_t *pool, int n)
{
    if (n < g_cutoff || n < 2)
        return fib_serial(n);
    crew_task_t *t;
    void *x = NULL;
    if (crew_spawn(pool, t_fib, (void *)(intptr_t)(n - 1), NULL, &t) != 0)
        abort();
    long y = pfib(pool, n - 2);
    if (crew_task_wait(t, &x) != 0)
        abort();
    crew_task_release(t);
    return (long)(intptr_t)x + y;
}

static int t_lat(crew_ctx_t *ctx, void *arg, void **result)
{
    lat_hit();
    return 0;
}

static int t_gate(crew_ctx_t *ctx, void *arg, void **result)
{
    gate_pass(arg);
    return 0;
}

struct sub {
    crew_t *pool;
    uint64_t from, to;
};

static void *submitter(void *arg)
{
    struct sub *s = arg;
    for (uint64_t i = s->from; i < s->to; i++)
        if (crew_submit(s->pool, t_tiny, (void *)(uintptr_t)i) != 0)
            abort();
    return NULL;
}

void pool_crew_run(const struct wl *w, struct res *r)
{
    crew_t *pool;
    int64_t t0;

    switch (w->kind) {
    case WL_SLEEP:
        pool = make(w, r, (size_t)w->workers * 5, 65536);
        if (pool == NULL)
            return;
        heap_start();
        t0 = now_ns();
        for (uint64_t i = 0; i < w->tasks; i++)
            crew_submit(pool, t_sleep, NULL);
        crew_wait(pool);
        r->v = (double)(now_ns() - t0) / 1e9;
        heap_stop(r);
        r->threads_seen = sleep_threads();
        break;
    case WL_TINY: {
        pool = make(w, r, 0, 0);
        if (pool == NULL)
            return;
        pthread_t tid[64];
        struct sub subs[64];
        unsigned ns = w->submitters;
        heap_start();
        t0 = now_ns();
        for (unsigned s = 0; s < ns; s++) {
            subs[s].pool = pool;
            subs[s].from = w->tasks * s / ns;
            subs[s].to = w->tasks * (s + 1) / ns;
            if (ns == 1)
                submitter(&subs[s]);
            else
                pthread_create(&tid[s], NULL, submitter, &subs[s]);
        }
        for (unsigned s = 0; ns > 1 && s < ns; s++)
            pthread_join(tid[s], NULL);
        crew_wait(pool);
        r->v = (double)(now_ns() - t0) / (double)w->tasks;
        heap_stop(r);
        if (tiny_count() != w->tasks)
            res_fail(r, "ran %llu of %llu", (unsigned long long)tiny_count(),
                     (unsigned long long)w->tasks);
        break;
    }
    case WL_INSIDE:
        pool = make(w, r, 0, 0);
        if (pool == NULL)
            return;
        heap_start();
        t0 = now_ns();
        crew_submit(pool, t_inside, (void *)(uintptr_t)w->tasks);
        crew_wait(pool);
        r->v = (double)(now_ns() - t0) / (double)w->tasks;
        heap_stop(r);
        if (tiny_count() != w->tasks)
            res_fail(r, "ran %llu of %llu", (unsigned long long)tiny_count(),
                     (unsigned long long)w->tasks);
        break;
    case WL_FIB: {
        pool = make(w, r, 0, 0);
        if (pool == NULL)
            return;
        g_cutoff = w->fib_cutoff;
        crew_task_t *t;
        void *x = NULL;
        heap_start();
        t0 = now_ns();
        crew_spawn(pool, t_fib, (void *)(intptr_t)w->fib_n, NULL, &t);
        crew_task_wait(t, &x);
        r->v = (double)(now_ns() - t0) / 1e6;
        heap_stop(r);
        crew_task_release(t);
        if ((long)(intptr_t)x != fib_serial(w->fib_n))
            res_fail(r, "wrong fib result %ld", (long)(intptr_t)x);
        break;
    }
    case WL_LATENCY:
        pool = make(w, r, 0, 0);
        if (pool == NULL || lat_begin(w->tasks) != 0)
            return;
        heap_start();
        for (uint64_t i = 0; i < w->tasks; i++) {
            sleep_us(w->gap_us);
            lat_arm();
            crew_submit(pool, t_lat, NULL);
            lat_wait();
        }
        heap_stop(r);
        lat_end(r);
        break;
    case WL_MEMORY: {
        pool = make(w, r, 0, 0);
        struct gate *g = gate_new();
        if (pool == NULL || g == NULL)
            return;
        crew_submit(pool, t_gate, g);
        gate_wait_started(g);
        long rss0 = rss_now_kib();
        heap_start();
        for (uint64_t i = 0; i < w->tasks; i++)
            crew_submit(pool, t_tiny, (void *)(uintptr_t)i);
        heap_stop(r);
        long rss1 = rss_now_kib();
        gate_open(g);
        crew_wait(pool);
        r->v = (double)(rss1 - rss0) * 1024.0 / (double)w->tasks;
        r->v2 = (double)(rss_now_kib() - rss0);
        if (tiny_count() != w->tasks)
            res_fail(r, "ran %llu of %llu", (unsigned long long)tiny_count(),
                     (unsigned long long)w->tasks);
        break;
    }
    default:
        res_skip(r, "unknown workload");
        return;
    }
    crew_free(pool);
}

/* W2b as a program of fine-grained divide and conquer would run it (the
 * README's advice): a task's submits run at once while its worker holds
 * CREW_INLINE_AFTER of its own queued, as OpenMP runs a task undeferred
 * once 64 per thread wait. */
void pool_crew_inline_run(const struct wl *w, struct res *r)
{
    g_inline_after = CREW_INLINE_AFTER;
    pool_crew_run(w, r);
    res_note(r, "opts.inline_after = %d (README: Tasks that submit and "
             "wait)", CREW_INLINE_AFTER);
}
