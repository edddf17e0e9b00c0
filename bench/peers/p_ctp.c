/*
 * p_ctp.c - C-Thread-Pool (Debian's cthreadpool-dev, which ships the
 * source, thpool.c, to be compiled in) as its README shows it:
 * thpool_init(workers), thpool_add_work(), thpool_wait().
 */
#include "common.h"

#include <pthread.h>
#include <stdio.h>
#include <thpool.h>

static threadpool pool;

static void f_sleep(void *arg)
{
    sleep_work();
}

static void f_tiny(void *arg)
{
    tiny_work((uintptr_t)arg);
}

static void f_inside(void *arg)
{
    uint64_t n = (uint64_t)(uintptr_t)arg - 1, a = n / 2, b = n - a;

    tiny_work((uintptr_t)arg);
    if (a > 0)
        thpool_add_work(pool, f_inside, (void *)(uintptr_t)a);
    if (b > 0)
        thpool_add_work(pool, f_inside, (void *)(uintptr_t)b);
}

static void f_lat(void *arg)
{
    lat_hit();
}

static void f_gate(void *arg)
{
    gate_pass(arg);
}

struct sub {
    uint64_t from, to;
};

static void *submitter(void *arg)
{
    struct sub *s = arg;
    for (uint64_t i = s->from; i < s->to; i++)
        thpool_add_work(pool, f_tiny, (void *)(uintptr_t)i);
    return NULL;
}

void pool_ctp_run(const struct wl *w, struct res *r)
{
    int64_t t0;

    if (w->kind == WL_FIB) {
        res_skip(r, "no helping wait (thpool_wait waits for the whole "
                 "pool and a job blocked on a child holds its thread)");
        return;
    }
    pool = thpool_init((int)w->workers);
    if (pool == NULL) {
        res_fail(r, "thpool_init(%u) failed", w->workers);
        return;
    }
    switch (w->kind) {
    case WL_SLEEP:
        heap_start();
        t0 = now_ns();
        for (uint64_t i = 0; i < w->tasks; i++)
            thpool_add_work(pool, f_sleep, NULL);
        thpool_wait(pool);
        r->v = (double)(now_ns() - t0) / 1e9;
        heap_stop(r);
        r->threads_seen = sleep_threads();
        return;
    case WL_TINY: {
        pthread_t tid[64];
        struct sub subs[64];
        unsigned ns = w->submitters;
        heap_start();
        t0 = now_ns();
        for (unsigned s = 0; s < ns; s++) {
            subs[s] = (struct sub){ w->tasks * s / ns,
                                    w->tasks * (s + 1) / ns };
            if (ns == 1)
                submitter(&subs[s]);
            else
                pthread_create(&tid[s], NULL, submitter, &subs[s]);
        }
        for (unsigned s = 0; ns > 1 && s < ns; s++)
            pthread_join(tid[s], NULL);
        thpool_wait(pool);
        r->v = (double)(now_ns() - t0) / (double)w->tasks;
        heap_stop(r);
        break;
    }
    case WL_INSIDE:
        heap_start();
        t0 = now_ns();
        thpool_add_work(pool, f_inside, (void *)(uintptr_t)w->tasks);
        thpool_wait(pool);
        r->v = (double)(now_ns() - t0) / (double)w->tasks;
        heap_stop(r);
        break;
    case WL_LATENCY:
        if (lat_begin(w->tasks) != 0)
            return;
        heap_start();
        for (uint64_t i = 0; i < w->tasks; i++) {
            sleep_us(w->gap_us);
            lat_arm();
            thpool_add_work(pool, f_lat, NULL);
            lat_wait();
        }
        heap_stop(r);
        lat_end(r);
        return;
    case WL_MEMORY: {
        struct gate *g = gate_new();
        thpool_add_work(pool, f_gate, g);
        gate_wait_started(g);
        long rss0 = rss_now_kib();
        heap_start();
        for (uint64_t i = 0; i < w->tasks; i++)
            thpool_add_work(pool, f_tiny, (void *)(uintptr_t)i);
        heap_stop(r);
        long rss1 = rss_now_kib();
        gate_open(g);
        thpool_wait(pool);
        r->v = (double)(rss1 - rss0) * 1024.0 / (double)w->tasks;
        r->v2 = (double)(rss_now_kib() - rss0);
        break;
    }
    default:
        res_skip(r, "unknown workload");
        return;
    }
    if (r->status == RES_OK && tiny_count() != w->tasks)
        res_fail(r, "ran %llu of %llu", (unsigned long long)tiny_count(),
                 (unsigned long long)w->tasks);
}
