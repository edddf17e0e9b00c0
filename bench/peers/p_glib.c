/*
 * p_glib.c - GLib's GThreadPool as its documentation shows it: a pool made
 * with g_thread_pool_new() (exclusive threads, started at once, `workers`
 * of them), tasks handed over with g_thread_pool_push(), and
 * g_thread_pool_free(pool, FALSE, TRUE) to wait until every queued task
 * has run.  GLib refuses NULL task data, so tasks carry index + 1.
 */
#include "common.h"

#include <glib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

static GThreadPool *make(GFunc fn, gpointer user, unsigned workers,
                         struct res *r)
{
    GError *err = NULL;
    GThreadPool *p = g_thread_pool_new(fn, user, (gint)workers, TRUE, &err);
    if (p == NULL) {
        res_fail(r, "g_thread_pool_new: %s", err ? err->message : "?");
        if (err)
            g_error_free(err);
    }
    return p;
}

static void f_sleep(gpointer data, gpointer user)
{
    sleep_work();
}

static void f_tiny(gpointer data, gpointer user)
{
    tiny_work((uintptr_t)data);
}

static GThreadPool *inside_pool;
static atomic_uint_fast64_t remaining;
static struct latch *done;

static void f_inside(gpointer data, gpointer user)
{
    uint64_t n = (uint64_t)(uintptr_t)data - 1, a = n / 2, b = n - a;

    tiny_work((uintptr_t)data);
    if (a > 0)
        g_thread_pool_push(inside_pool, (gpointer)(uintptr_t)a, NULL);
    if (b > 0)
        g_thread_pool_push(inside_pool, (gpointer)(uintptr_t)b, NULL);
    if (atomic_fetch_sub_explicit(&remaining, 1, memory_order_acq_rel) == 1)
        latch_post(done);
}

static void f_lat(gpointer data, gpointer user)
{
    lat_hit();
}

static void f_mem(gpointer data, gpointer user)
{
    if (user != NULL && data == user)
        gate_pass(user);
    else
        tiny_work((uintptr_t)data);
}

struct sub {
    GThreadPool *pool;
    uint64_t from, to;
};

static void *submitter(void *arg)
{
    struct sub *s = arg;
    for (uint64_t i = s->from; i < s->to; i++)
        g_thread_pool_push(s->pool, (gpointer)(uintptr_t)(i + 1), NULL);
    return NULL;
}

void pool_glib_run(const struct wl *w, struct res *r)
{
    GThreadPool *p;
    int64_t t0;

    switch (w->kind) {
    case WL_SLEEP:
        if ((p = make(f_sleep, NULL, w->workers, r)) == NULL)
            return;
        heap_start();
        t0 = now_ns();
        for (uint64_t i = 0; i < w->tasks; i++)
            g_thread_pool_push(p, GINT_TO_POINTER(1), NULL);
        g_thread_pool_free(p, FALSE, TRUE);
        r->v = (double)(now_ns() - t0) / 1e9;
        heap_stop(r);
        r->threads_seen = sleep_threads();
        return;
    case WL_TINY: {
        if ((p = make(f_tiny, NULL, w->workers, r)) == NULL)
            return;
        pthread_t tid[64];
        struct sub subs[64];
        unsigned ns = w->submitters;
        heap_start();
        t0 = now_ns();
        for (unsigned s = 0; s < ns; s++) {
            subs[s] = (struct sub){ p, w->tasks * s / ns,
                                    w->tasks * (s + 1) / ns };
            if (ns == 1)
                submitter(&subs[s]);
            else
                pthread_create(&tid[s], NULL, submitter, &subs[s]);
        }
        for (unsigned s = 0; ns > 1 && s < ns; s++)
            pthread_join(tid[s], NULL);
        g_thread_pool_free(p, FALSE, TRUE);
        r->v = (double)(now_ns() - t0) / (double)w->tasks;
        heap_stop(r);
        break;
    }
    case WL_INSIDE:
        if ((p = make(f_inside, NULL, w->workers, r)) == NULL)
            return;
        inside_pool = p;
        done = latch_new();
        atomic_store(&remaining, w->tasks);
        heap_start();
        t0 = now_ns();
        g_thread_pool_push(p, (gpointer)(uintptr_t)w->tasks, NULL);
        latch_wait(done);
        r->v = (double)(now_ns() - t0) / (double)w->tasks;
        heap_stop(r);
        res_note(r, "waits on a counter the last task signals: freeing "
                 "the pool to wait is not allowed while tasks still push");
        g_thread_pool_free(p, FALSE, TRUE);
        break;
    case WL_FIB:
        res_skip(r, "no helping wait: a task blocked on a child holds its "
                 "thread; with a fixed pool the recursion deadlocks");
        return;
    case WL_LATENCY:
        if ((p = make(f_lat, NULL, w->workers, r)) == NULL ||
            lat_begin(w->tasks) != 0)
            return;
        heap_start();
        for (uint64_t i = 0; i < w->tasks; i++) {
            sleep_us(w->gap_us);
            lat_arm();
            g_thread_pool_push(p, GINT_TO_POINTER(1), NULL);
            lat_wait();
        }
        heap_stop(r);
        lat_end(r);
        g_thread_pool_free(p, FALSE, TRUE);
        return;
    case WL_MEMORY: {
        struct gate *g = gate_new();
        if ((p = make(f_mem, g, w->workers, r)) == NULL)
            return;
        g_thread_pool_push(p, g, NULL);
        gate_wait_started(g);
        long rss0 = rss_now_kib();
        heap_start();
        for (uint64_t i = 0; i < w->tasks; i++)
            g_thread_pool_push(p, (gpointer)(uintptr_t)(i + 1), NULL);
        heap_stop(r);
        long rss1 = rss_now_kib();
        gate_open(g);
        g_thread_pool_free(p, FALSE, TRUE);
        r->v = (double)(rss1 - rss0) * 1024.0 / (double)w->tasks;
        r->v2 = (double)(rss_now_kib() - rss0);
        res_note(r, "RSS after is after g_thread_pool_free (the wait)");
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
