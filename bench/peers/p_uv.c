/*
 * p_uv.c - libuv's thread pool as its documentation shows it:
 * uv_queue_work() on a loop, called on the loop's thread, with the
 * after-work callback back on that thread; uv_run() returns when no work
 * is left.  The pool is process-wide and sized by UV_THREADPOOL_SIZE
 * (at most 1024), set here before libuv's first use in this child.
 * Requests belong to the caller: a window of them is kept in flight and
 * each is queued again from its after-work callback while tasks remain.
 */
#include "common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

struct feed {
    uv_loop_t loop;
    uint64_t next, to;
    uv_work_cb work;
    uv_work_t *reqs;
};

static void w_noop(uv_work_t *req)
{
}

static void w_sleep(uv_work_t *req)
{
    sleep_work();
}

static void w_tiny(uv_work_t *req)
{
    tiny_work((uintptr_t)req->data);
}

static void w_lat(uv_work_t *req)
{
    lat_hit();
}

static void after_none(uv_work_t *req, int status)
{
}

static void after_feed(uv_work_t *req, int status)
{
    struct feed *f = req->loop->data;
    if (f->next < f->to) {
        req->data = (void *)(uintptr_t)f->next++;
        uv_queue_work(&f->loop, req, f->work, after_feed);
    }
}

/* Runs `from`..`to` through the pool from a loop of this thread. */
static int feed(uint64_t from, uint64_t to, unsigned window, uv_work_cb fn)
{
    struct feed f;
    uint64_t n = to - from, k = n < window ? n : window;

    if (uv_loop_init(&f.loop) != 0)
        return -1;
    f.loop.data = &f;
    f.next = from;
    f.to = to;
    f.work = fn;
    f.reqs = calloc(k ? k : 1, sizeof *f.reqs);
    if (f.reqs == NULL)
        return -1;
    for (uint64_t i = 0; i < k; i++) {
        f.reqs[i].data = (void *)(uintptr_t)f.next++;
        if (uv_queue_work(&f.loop, &f.reqs[i], fn, after_feed) != 0)
            return -1;
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    uv_loop_close(&f.loop);
    free(f.reqs);
    return 0;
}

struct sub {
    uint64_t from, to;
    unsigned window;
};

static void *submitter(void *arg)
{
    struct sub *s = arg;
    feed(s->from, s->to, s->window, w_tiny);
    return NULL;
}

/* W2b: the children of a task are queued from its after-work callback. */
struct node {
    uv_work_t req;
    struct node *free_next;
};

static struct node *free_nodes;
static uv_loop_t tree_loop;

static void w_inside(uv_work_t *req)
{
    tiny_work((uintptr_t)req->data);
}

static void after_inside(uv_work_t *req, int status);

static void queue_node(uint64_t count)
{
    struct node *nd = free_nodes;
    if (nd != NULL)
        free_nodes = nd->free_next;
    else if ((nd = malloc(sizeof *nd)) == NULL)
        abort();
    nd->req.data = (void *)(uintptr_t)count;
    if (uv_queue_work(&tree_loop, &nd->req, w_inside, after_inside) != 0)
        abort();
}

static void after_inside(uv_work_t *req, int status)
{
    struct node *nd = (struct node *)req;
    uint64_t n = (uint64_t)(uintptr_t)req->data - 1, a = n / 2, b = n - a;

    nd->free_next = free_nodes;
    free_nodes = nd;
    if (a > 0)
        queue_node(a);
    if (b > 0)
        queue_node(b);
}

static struct gate *gate;

static void w_gate(uv_work_t *req)
{
    gate_pass(gate);
}

/* Starts the pool's threads (untimed), as the other pools start theirs. */
static void warm_up(void)
{
    uv_loop_t loop;
    uv_work_t req;
    uv_loop_init(&loop);
    uv_queue_work(&loop, &req, w_noop, after_none);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

void pool_uv_run(const struct wl *w, struct res *r)
{
    char size[16];
    int64_t t0;

    if (w->kind == WL_FIB) {
        res_skip(r, "work callbacks cannot wait for other work (no helping "
                 "wait; results come back only on the loop thread)");
        return;
    }
    if (w->workers > 1024) {
        res_skip(r, "libuv's pool has at most 1024 threads "
                 "(UV_THREADPOOL_SIZE)");
        return;
    }
    snprintf(size, sizeof size, "%u", w->workers);
    setenv("UV_THREADPOOL_SIZE", size, 1);
    warm_up();

    switch (w->kind) {
    case WL_SLEEP:
        heap_start();
        t0 = now_ns();
        if (feed(0, w->tasks, w->uv_window, w_sleep) != 0)
            res_fail(r, "uv_queue_work");
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
                                    w->tasks * (s + 1) / ns, w->uv_window };
            if (ns == 1)
                submitter(&subs[s]);
            else
                pthread_create(&tid[s], NULL, submitter, &subs[s]);
        }
        for (unsigned s = 0; ns > 1 && s < ns; s++)
            pthread_join(tid[s], NULL);
        r->v = (double)(now_ns() - t0) / (double)w->tasks;
        heap_stop(r);
        if (ns > 1)
            res_note(r, "one loop per submitting thread, one shared pool");
        break;
    }
    case WL_INSIDE:
        uv_loop_init(&tree_loop);
        heap_start();
        t0 = now_ns();
        queue_node(w->tasks);
        uv_run(&tree_loop, UV_RUN_DEFAULT);
        r->v = (double)(now_ns() - t0) / (double)w->tasks;
        heap_stop(r);
        res_note(r, "children queued from the after-work callback on the "
                 "loop thread");
        break;
    case WL_LATENCY: {
        uv_loop_t loop;
        uv_work_t req;
        if (lat_begin(w->tasks) != 0 || uv_loop_init(&loop) != 0)
            return;
        heap_start();
        for (uint64_t i = 0; i < w->tasks; i++) {
            sleep_us(w->gap_us);
            lat_arm();
            uv_queue_work(&loop, &req, w_lat, after_none);
            uv_run(&loop, UV_RUN_DEFAULT);
            lat_wait();
        }
        heap_stop(r);
        lat_end(r);
        return;
    }
    case WL_MEMORY: {
        uv_loop_t loop;
        uv_work_t greq;
        gate = gate_new();
        uv_loop_init(&loop);
        uv_queue_work(&loop, &greq, w_gate, after_none);
        gate_wait_started(gate);
        long rss0 = rss_now_kib();
        heap_start();
        uv_work_t *reqs = calloc(w->tasks, sizeof *reqs);
        if (reqs == NULL) {
            heap_stop(r);
            res_fail(r, "calloc of %llu requests",
                     (unsigned long long)w->tasks);
            return;
        }
        for (uint64_t i = 0; i < w->tasks; i++) {
            reqs[i].data = (void *)(uintptr_t)i;
            uv_queue_work(&loop, &reqs[i], w_tiny, after_none);
        }
        heap_stop(r);
        long rss1 = rss_now_kib();
        gate_open(gate);
        uv_run(&loop, UV_RUN_DEFAULT);
        r->v = (double)(rss1 - rss0) * 1024.0 / (double)w->tasks;
        r->v2 = (double)(rss_now_kib() - rss0);
        res_note(r, "the caller owns a uv_work_t (%zu B) per queued task",
                 sizeof(uv_work_t));
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
