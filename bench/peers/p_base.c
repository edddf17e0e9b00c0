/*
 * p_base.c - the plain baselines: what a program does without a pool.
 * W1: raw pthreads (64 KiB stacks), each sleeping tasks/workers times;
 * W2, W2b, W6: a loop calling the task body on one thread; W3: serial fib;
 * W4: one raw thread woken through a semaphore; W5: a plain array of
 * (function, argument) pairs, run in order.
 */
#include "common.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *raw_sleeper(void *arg)
{
    uint64_t n = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < n; i++)
        sleep_work();
    return NULL;
}

static void run_raw(const struct wl *w, struct res *r)
{
    pthread_t *tids = calloc(w->workers, sizeof *tids);
    pthread_attr_t attr;
    uint64_t each = w->tasks / w->workers, extra = w->tasks % w->workers;
    unsigned started = 0;

    if (tids == NULL) {
        res_fail(r, "calloc");
        return;
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 65536);
    heap_start();
    int64_t t0 = now_ns();
    for (; started < w->workers; started++) {
        uint64_t n = each + (started < extra ? 1 : 0);
        int rc = pthread_create(&tids[started], &attr, raw_sleeper,
                                (void *)(uintptr_t)n);
        if (rc != 0) {
            res_fail(r, "pthread_create (thread %u): %s", started,
                     strerror(rc));
            break;
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    r->v = (double)(now_ns() - t0) / 1e9;
    heap_stop(r);
    r->threads_seen = sleep_threads();
}

static sem_t go;

static void *lat_thread(void *arg)
{
    uint64_t n = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < n; i++) {
        while (sem_wait(&go) != 0)
            ;
        lat_hit();
    }
    return NULL;
}

struct item {
    void (*fn)(uintptr_t);
    uintptr_t arg;
};

void pool_base_run(const struct wl *w, struct res *r)
{
    int64_t t0;

    switch (w->kind) {
    case WL_SLEEP:
        run_raw(w, r);
        return;
    case WL_TINY:
    case WL_INSIDE:
        heap_start();
        t0 = now_ns();
        for (uint64_t i = 0; i < w->tasks; i++)
            tiny_work((uintptr_t)i);
        r->v = (double)(now_ns() - t0) / (double)w->tasks;
        heap_stop(r);
        res_note(r, "one thread, no pool");
        return;
    case WL_FIB: {
        heap_start();
        t0 = now_ns();
        long x = fib_serial(w->fib_n);
        r->v = (double)(now_ns() - t0) / 1e6;
        heap_stop(r);
        if (x <= 0)
            res_fail(r, "fib");
        res_note(r, "one thread");
        return;
    }
    case WL_LATENCY: {
        pthread_t t;
        if (lat_begin(w->tasks) != 0 || sem_init(&go, 0, 0) != 0) {
            res_fail(r, "set-up");
            return;
        }
        pthread_create(&t, NULL, lat_thread, (void *)(uintptr_t)w->tasks);
        heap_start();
        for (uint64_t i = 0; i < w->tasks; i++) {
            sleep_us(w->gap_us);
            lat_arm();
            sem_post(&go);
            lat_wait();
        }
        heap_stop(r);
        pthread_join(t, NULL);
        lat_end(r);
        return;
    }
    case WL_MEMORY: {
        long rss0 = rss_now_kib();
        heap_start();
        struct item *a = malloc(w->tasks * sizeof *a);
        if (a == NULL) {
            heap_stop(r);
            res_fail(r, "malloc");
            return;
        }
        for (uint64_t i = 0; i < w->tasks; i++) {
            a[i].fn = tiny_work;
            a[i].arg = (uintptr_t)i;
        }
        heap_stop(r);
        long rss1 = rss_now_kib();
        for (uint64_t i = 0; i < w->tasks; i++)
            a[i].fn(a[i].arg);
        r->v = (double)(rss1 - rss0) * 1024.0 / (double)w->tasks;
        r->v2 = (double)(rss_now_kib() - rss0);
        if (tiny_count() != w->tasks)
            res_fail(r, "ran %llu", (unsigned long long)tiny_count());
        free(a);
        return;
    }
    default:
        res_skip(r, "unknown workload");
    }
}
