// p_asio.cpp - Boost.Asio's thread_pool as its documentation shows it:
// boost::asio::thread_pool pool(workers), boost::asio::post(pool, fn),
// and pool.join(), which waits until no work is left.
#include "common.h"

#include <thread>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

namespace {

boost::asio::thread_pool *tree_pool;

void inside(uint64_t count)
{
    uint64_t n = count - 1, a = n / 2, b = n - a;

    tiny_work(static_cast<uintptr_t>(count));
    if (a > 0)
        boost::asio::post(*tree_pool, [a] { inside(a); });
    if (b > 0)
        boost::asio::post(*tree_pool, [b] { inside(b); });
}

void count_check(const struct wl *w, struct res *r)
{
    if (r->status == RES_OK && tiny_count() != w->tasks)
        res_fail(r, "ran %llu of %llu", (unsigned long long)tiny_count(),
                 (unsigned long long)w->tasks);
}

} // namespace

extern "C" void pool_asio_run(const struct wl *w, struct res *r)
{
    int64_t t0;

    if (w->kind == WL_FIB) {
        res_skip(r, "no helping wait: a handler blocked on a child holds "
                    "its thread; with a fixed pool the recursion "
                    "deadlocks");
        return;
    }
    boost::asio::thread_pool pool(w->workers);
    switch (w->kind) {
    case WL_SLEEP:
        heap_start();
        t0 = now_ns();
        for (uint64_t i = 0; i < w->tasks; i++)
            boost::asio::post(pool, [] { sleep_work(); });
        pool.join();
        r->v = static_cast<double>(now_ns() - t0) / 1e9;
        heap_stop(r);
        r->threads_seen = sleep_threads();
        return;
    case WL_TINY: {
        unsigned ns = w->submitters;
        auto submit = [&pool](uint64_t from, uint64_t to) {
            for (uint64_t i = from; i < to; i++)
                boost::asio::post(pool, [i] {
                    tiny_work(static_cast<uintptr_t>(i));
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
        pool.join();
        r->v = static_cast<double>(now_ns() - t0) /
               static_cast<double>(w->tasks);
        heap_stop(r);
        count_check(w, r);
        return;
    }
    case WL_INSIDE:
        tree_pool = &pool;
        heap_start();
        t0 = now_ns();
        boost::asio::post(pool, [w] { inside(w->tasks); });
        pool.join();
        r->v = static_cast<double>(now_ns() - t0) /
               static_cast<double>(w->tasks);
        heap_stop(r);
        count_check(w, r);
        return;
    case WL_LATENCY:
        if (lat_begin(w->tasks) != 0)
            return;
        heap_start();
        for (uint64_t i = 0; i < w->tasks; i++) {
            sleep_us(w->gap_us);
            lat_arm();
            boost::asio::post(pool, [] { lat_hit(); });
            lat_wait();
        }
        heap_stop(r);
        lat_end(r);
        return;
    case WL_MEMORY: {
        struct gate *g = gate_new();
        boost::asio::post(pool, [g] { gate_pass(g); });
        gate_wait_started(g);
        long rss0 = rss_now_kib();
        heap_start();
        for (uint64_t i = 0; i < w->tasks; i++)
            boost::asio::post(pool, [i] {
                tiny_work(static_cast<uintptr_t>(i));
            });
        heap_stop(r);
        long rss1 = rss_now_kib();
        gate_open(g);
        pool.join();
        r->v = static_cast<double>(rss1 - rss0) * 1024.0 /
               static_cast<double>(w->tasks);
        r->v2 = static_cast<double>(rss_now_kib() - rss0);
        res_note(r, "RSS after is after join() (the wait)");
        count_check(w, r);
        return;
    }
    default:
        res_skip(r, "unknown workload");
    }
}
