/*
 * p_omp.c - OpenMP tasks (gcc's libgomp) as the OpenMP examples use them:
 * a parallel region, task creation in a single (or masked) part of it,
 * `#pragma omp task`, and the region's closing barrier to wait for them
 * all; fork-join with `taskwait`.  The team has `workers` threads plus the
 * submitting ones, which run tasks too once they reach the barrier.
 */
#include "common.h"

#include <omp.h>
#include <stdio.h>

static void warm_up(int threads)
{
#pragma omp parallel num_threads(threads)
    {
        (void)0;
    }
}

static void inside(uint64_t count)
{
    uint64_t n = count - 1, a = n / 2, b = n - a;

    tiny_work((uintptr_t)count);
    if (a > 0) {
#pragma omp task firstprivate(a)
        inside(a);
    }
    if (b > 0) {
#pragma omp task firstprivate(b)
        inside(b);
    }
}

static int cutoff;

static long pfib(int n)
{
    long x, y;

    if (n < cutoff || n < 2)
        return fib_serial(n);
#pragma omp task shared(x) firstprivate(n)
    x = pfib(n - 1);
    y = pfib(n - 2);
#pragma omp taskwait
    return x + y;
}

void pool_omp_run(const struct wl *w, struct res *r)
{
    int64_t t0;
    int team;

    switch (w->kind) {
    case WL_SLEEP:
        team = (int)w->workers + 1;
        warm_up(team);
        heap_start();
        t0 = now_ns();
#pragma omp parallel num_threads(team)
#pragma omp single
        for (uint64_t i = 0; i < w->tasks; i++) {
#pragma omp task
            sleep_work();
        }
        r->v = (double)(now_ns() - t0) / 1e9;
        heap_stop(r);
        r->threads_seen = sleep_threads();
        if (omp_get_max_threads() > 0)
            res_note(r, "team of %d", team);
        return;
    case WL_TINY: {
        unsigned ns = w->submitters;
        team = (int)(w->workers + ns);
        warm_up(team);
        heap_start();
        t0 = now_ns();
#pragma omp parallel num_threads(team)
        {
            unsigned me = (unsigned)omp_get_thread_num();
            if (me < ns) {
                uint64_t from = w->tasks * me / ns;
                uint64_t to = w->tasks * (me + 1) / ns;
                for (uint64_t i = from; i < to; i++) {
#pragma omp task firstprivate(i)
                    tiny_work((uintptr_t)i);
                }
            }
        }
        r->v = (double)(now_ns() - t0) / (double)w->tasks;
        heap_stop(r);
        if (omp_get_thread_limit() < team)
            res_note(r, "thread limit %d", omp_get_thread_limit());
        break;
    }
    case WL_INSIDE:
        team = (int)w->workers + 1;
        warm_up(team);
        heap_start();
        t0 = now_ns();
#pragma omp parallel num_threads(team)
#pragma omp single
        inside(w->tasks);
        r->v = (double)(now_ns() - t0) / (double)w->tasks;
        heap_stop(r);
        break;
    case WL_FIB: {
        long x = 0;
        team = (int)w->workers;
        cutoff = w->fib_cutoff;
        warm_up(team);
        heap_start();
        t0 = now_ns();
#pragma omp parallel num_threads(team)
#pragma omp single
        x = pfib(w->fib_n);
        r->v = (double)(now_ns() - t0) / 1e6;
        heap_stop(r);
        if (x != fib_serial(w->fib_n))
            res_fail(r, "wrong fib result %ld", x);
        res_note(r, "team of %d, the creating thread included", team);
        return;
    }
    case WL_LATENCY:
        team = (int)w->workers + 1;
        warm_up(team);
        if (lat_begin(w->tasks) != 0)
            return;
        heap_start();
#pragma omp parallel num_threads(team)
#pragma omp single
        for (uint64_t i = 0; i < w->tasks; i++) {
            sleep_us(w->gap_us);
            lat_arm();
#pragma omp task
            lat_hit();
            lat_wait();
        }
        heap_stop(r);
        lat_end(r);
        res_note(r, "the submitter waits outside OpenMP; the other %u "
                 "threads wait at the barrier", w->workers);
        return;
    case WL_MEMORY:
        res_skip(r, "libgomp runs a new task at once on the creating "
                 "thread when more than 64 x team-size tasks wait, so the "
                 "tasks cannot all be queued");
        return;
    default:
        res_skip(r, "unknown workload");
        return;
    }
    if (r->status == RES_OK && tiny_count() != w->tasks)
        res_fail(r, "ran %llu of %llu", (unsigned long long)tiny_count(),
                 (unsigned long long)w->tasks);
}
