// p_tbb.cpp - oneTBB as its documentation shows it: a tbb::task_group
// whose run() spawns tasks and whose wait() waits for them (and runs
// tasks meanwhile), inside a tbb::task_arena sized to the pool: `workers`
// worker threads plus one slot per submitting thread (reserved for
// masters), with tbb::global_control raising the process's thread limit
// to match.  Fire-and-forget from outside (W4) uses task_arena::enqueue.
#include "common.h"

#include <dlfcn.h>
#include <thread>
#include <vector>

#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

namespace {

void inside(tbb::task_group &tg, uint64_t count)
{
    uint64_t n = count - 1, a = n / 2, b = n - a;

    tiny_work(static_cast<uintptr_t>(count));
    if (a > 0)
        tg.run([&tg, a] { inside(tg, a); });
    if (b > 0)
        tg.run([&tg, b] { inside(tg, b); });
}

int cutoff;

long pfib(int n)
{
    if (n < cutoff || n < 2)
        return fib_serial(n);
    long x = 0, y;
    tbb::task_group g;
    g.run([&x, n] { x = pfib(n - 1); });
    y = pfib(n - 2);
    g.wait();
    return x + y;
}

void warm_up(tbb::task_arena &arena, unsigned workers)
{
    arena.execute([&] {
        tbb::task_group tg;
        for (unsigned i = 0; i < workers * 64; i++)
            tg.run([] {});
        tg.wait();
    });
}

void note_allocator(struct res *r)
{
    void *h = dlopen("libtbbmalloc.so.2", RTLD_LAZY | RTLD_NOLOAD);
    if (h != nullptr) {
        res_note(r, "allocates through tbbmalloc, which mallocs/task "
                    "does not see");
        dlclose(h);
    }
}

void count_check(const struct wl *w, struct res *r)
{
    if (r->status == RES_OK && tiny_count() != w->tasks)
        res_fail(r, "ran %llu of %llu", (unsigned long long)tiny_count(),
                 (unsigned long long)w->tasks);
}

} // namespace

extern "C" void pool_tbb_run(const struct wl *w, struct res *r)
{
    int64_t t0;
    unsigned ns = w->submitters ? w->submitters : 1;

    switch (w->kind) {
    case WL_SLEEP: {
        tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                               w->workers + 1);
        tbb::task_arena arena(static_cast<int>(w->workers + 1), 1);
        arena.initialize();
        heap_start();
        t0 = now_ns();
        arena.execute([&] {
            tbb::task_group tg;
            for (uint64_t i = 0; i < w->tasks; i++)
                tg.run([] { sleep_work(); });
            tg.wait();
        });
        r->v = static_cast<double>(now_ns() - t0) / 1e9;
        heap_stop(r);
        r->threads_seen = sleep_threads();
        note_allocator(r);
        return;
    }
    case WL_TINY: {
        tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                               w->workers + ns);
        tbb::task_arena arena(static_cast<int>(w->workers + ns), ns);
        warm_up(arena, w->workers);
        tiny_reset();
        auto submit = [&](uint64_t from, uint64_t to) {
            arena.execute([&] {
                tbb::task_group tg;
                for (uint64_t i = from; i < to; i++)
                    tg.run([i] { tiny_work(static_cast<uintptr_t>(i)); });
                tg.wait();
            });
        };
        heap_start();
        t0 = now_ns();
        if (ns == 1) {
            submit(0, w->tasks);
        } else {
            std::vector<std::thread> th;
            for (unsigned s = 0; s < ns; s++)
                th.emplace_back(submit, w->tasks * s / ns,
                                w->tasks * (s + 1) / ns);
            for (auto &t : th)
                t.join();
        }
        r->v = static_cast<double>(now_ns() - t0) /
               static_cast<double>(w->tasks);
        heap_stop(r);
        note_allocator(r);
        if (ns > 1)
            res_note(r, "one task_group per submitting thread");
        count_check(w, r);
        return;
    }
    case WL_INSIDE: {
        tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                               w->workers + 1);
        tbb::task_arena arena(static_cast<int>(w->workers + 1), 1);
        warm_up(arena, w->workers);
        tiny_reset();
        heap_start();
        t0 = now_ns();
        arena.execute([&] {
            tbb::task_group tg;
            tg.run([&tg, w] { inside(tg, w->tasks); });
            tg.wait();
        });
        r->v = static_cast<double>(now_ns() - t0) /
               static_cast<double>(w->tasks);
        heap_stop(r);
        note_allocator(r);
        count_check(w, r);
        return;
    }
    case WL_FIB: {
        tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                               w->workers);
        tbb::task_arena arena(static_cast<int>(w->workers), 1);
        warm_up(arena, w->workers);
        cutoff = w->fib_cutoff;
        long x = 0;
        heap_start();
        t0 = now_ns();
        arena.execute([&] { x = pfib(w->fib_n); });
        r->v = static_cast<double>(now_ns() - t0) / 1e6;
        heap_stop(r);
        if (x != fib_serial(w->fib_n))
            res_fail(r, "wrong fib result %ld", x);
        res_note(r, "arena of %u, the calling thread included", w->workers);
        return;
    }
    case WL_LATENCY: {
        tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                               w->workers + 1);
        tbb::task_arena arena(static_cast<int>(w->workers), 0);
        warm_up(arena, w->workers);
        if (lat_begin(w->tasks) != 0)
            return;
        heap_start();
        for (uint64_t i = 0; i < w->tasks; i++) {
            sleep_us(w->gap_us);
            lat_arm();
            arena.enqueue([] { lat_hit(); });
            lat_wait();
        }
        heap_stop(r);
        lat_end(r);
        res_note(r, "task_arena::enqueue");
        return;
    }
    case WL_MEMORY: {
        tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                               w->workers + 1);
        tbb::task_arena arena(static_cast<int>(w->workers + 1), 1);
        warm_up(arena, w->workers);
        tiny_reset();
        struct gate *g = gate_new();
        long rss0 = 0, rss1 = 0;
        arena.execute([&] {
            tbb::task_group tg;
            tg.run([g] { gate_pass(g); });
            gate_wait_started(g);
            rss0 = rss_now_kib();
            heap_start();
            for (uint64_t i = 0; i < w->tasks; i++)
                tg.run([i] { tiny_work(static_cast<uintptr_t>(i)); });
            heap_stop(r);
            rss1 = rss_now_kib();
            gate_open(g);
            tg.wait();
        });
        r->v = static_cast<double>(rss1 - rss0) * 1024.0 /
               static_cast<double>(w->tasks);
        r->v2 = static_cast<double>(rss_now_kib() - rss0);
        note_allocator(r);
        count_check(w, r);
        return;
    }
    default:
        res_skip(r, "unknown workload");
    }
}
