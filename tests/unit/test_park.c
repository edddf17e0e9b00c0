/*
 * test_park.c - waits that park a fiber instead of polling: futures,
 * groups and events wake their waiting fibers from other threads; a
 * cancel or shutdown NOW ends a parked sleep or event wait at once;
 * crew_blocking() keeps the other fibers of a thread running; events
 * behave the same on threads.
 */
#include "harness.h"
#include "helpers.h"

#include <crew.h>

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define MS T_MS

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

/* CPU time of the calling thread, in ns. */
static int64_t thread_cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * T_SEC + ts.tv_nsec;
}

/* --- a fiber waiting on a future of another pool ---------------------- */

static crew_event_t *gate;
static crew_task_t *awaited;
static atomic_int wait_rc = -1;
static atomic_llong waiter_cpu, waiter_wall;

static int open_later(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    *result = (void *)(intptr_t)42;
    return crew_event_wait(gate);
}

/*
 * Waits for `awaited` (a task of a thread pool, held on the gate), and
 * measures the CPU its thread spent meanwhile: a fiber that polled would
 * keep the thread busy for the whole wait (the thread has nothing else
 * to run), a parked one leaves it asleep.
 */
static int future_waiter(crew_ctx_t *ctx, void *arg, void **result)
{
    int64_t cpu = thread_cpu_ns(), wall = t_now();
    void *r = NULL;
    int rc;

    (void)ctx;
    (void)arg;
    (void)result;
    rc = crew_task_wait(awaited, &r);
    atomic_store(&waiter_cpu, thread_cpu_ns() - cpu);
    atomic_store(&waiter_wall, t_now() - wall);
    atomic_store(&wait_rc, rc == 0 && r == (void *)(intptr_t)42 ? 0 : -2);
    return 0;
}

START_TEST(park__future_wait_parks_the_fiber)
{
    crew_opts_t to = { .max_workers = 1 };
    crew_t *threads, *fibers = t_fiber_pool(1, 4);
    crew_task_t *w;

    ck_assert_int_eq(crew_event_create(&gate), 0);
    ck_assert_int_eq(crew_create(&threads, &to), 0);
    ck_assert_int_eq(crew_spawn(threads, open_later, NULL, NULL, &awaited), 0);
    ck_assert_int_eq(crew_spawn(fibers, future_waiter, NULL, NULL, &w), 0);
    /* Let the waiter park, then let the awaited task finish. */
    t_sleep(300 * MS);
    ck_assert_int_eq(crew_event_set(gate), 0);
    ck_assert_int_eq(crew_task_wait_timeout(w, T_LONG, NULL), 0);
    ck_assert_int_eq(atomic_load(&wait_rc), 0);
    ck_assert_int_ge(atomic_load(&waiter_wall), 250 * MS);
    /* Parked: its thread slept through most of the wait. */
    ck_assert_msg(atomic_load(&waiter_cpu) < atomic_load(&waiter_wall) / 2,
                  "cpu %lld ns during a wait of %lld ns",
                  (long long)atomic_load(&waiter_cpu),
                  (long long)atomic_load(&waiter_wall));
    crew_task_release(w);
    crew_task_release(awaited);
    ck_assert_int_eq(crew_free(fibers), 0);
    ck_assert_int_eq(crew_free(threads), 0);
    ck_assert_int_eq(crew_event_free(gate), 0);
}
END_TEST

/* --- groups ----------------------------------------------------------- */

static crew_group_t *group;

static int group_waiter(crew_ctx_t *ctx, void *arg, void **result)
{
    int64_t cpu = thread_cpu_ns(), wall = t_now();

    (void)ctx;
    (void)arg;
    (void)result;
    atomic_store(&wait_rc, crew_group_wait(group));
    atomic_store(&waiter_cpu, thread_cpu_ns() - cpu);
    atomic_store(&waiter_wall, t_now() - wall);
    return 0;
}

static int gated(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    return crew_event_wait(gate);
}

START_TEST(park__group_wait_parks_the_fiber)
{
    crew_opts_t to = { .max_workers = 3 };
    crew_t *threads, *fibers = t_fiber_pool(1, 4);
    crew_task_opts_t in_group = { 0 };
    crew_task_t *w;

    ck_assert_int_eq(crew_event_create(&gate), 0);
    ck_assert_int_eq(crew_create(&threads, &to), 0);
    ck_assert_int_eq(crew_group_create(threads, NULL, &group), 0);
    in_group.group = group;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(crew_spawn(threads, gated, NULL, &in_group, NULL), 0);
    atomic_store(&wait_rc, -1);
    ck_assert_int_eq(crew_spawn(fibers, group_waiter, NULL, NULL, &w), 0);
    t_sleep(300 * MS);
    ck_assert_int_eq(atomic_load(&wait_rc), -1); /* still waiting */
    ck_assert_int_eq(crew_event_set(gate), 0);
    ck_assert_int_eq(crew_task_wait_timeout(w, T_LONG, NULL), 0);
    ck_assert_int_eq(atomic_load(&wait_rc), 0);
    ck_assert_msg(atomic_load(&waiter_cpu) < atomic_load(&waiter_wall) / 2,
                  "cpu %lld ns during a wait of %lld ns",
                  (long long)atomic_load(&waiter_cpu),
                  (long long)atomic_load(&waiter_wall));
    crew_task_release(w);
    crew_group_free(group);
    ck_assert_int_eq(crew_free(fibers), 0);
    ck_assert_int_eq(crew_free(threads), 0);
    ck_assert_int_eq(crew_event_free(gate), 0);
}
END_TEST

/* --- cancel and shutdown end parked waits ----------------------------- */

static atomic_int started, rc_sleep, rc_event;

static int long_sleep(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&started, 1);
    atomic_store(&rc_sleep, crew_sleep(3600 * T_SEC));
    return 0;
}

static int long_event(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&started, 1);
    atomic_store(&rc_event, crew_event_wait(gate));
    return 0;
}

/* A cancel reaches a fiber parked in crew_sleep or crew_event_wait on
 * another thread (the sleep is an hour: only the wake can end it). */
START_TEST(park__cancel_wakes_a_parked_fiber)
{
    crew_t *pool = t_fiber_pool(2, 8);
    crew_task_t *a, *b;
    bool ok;

    atomic_store(&started, 0);
    atomic_store(&rc_sleep, 1);
    atomic_store(&rc_event, 1);
    ck_assert_int_eq(crew_event_create(&gate), 0);
    ck_assert_int_eq(crew_spawn(pool, long_sleep, NULL, NULL, &a), 0);
    ck_assert_int_eq(crew_spawn(pool, long_event, NULL, NULL, &b), 0);
    T_EVENTUALLY(ok, atomic_load(&started) == 2, T_LONG);
    ck_assert(ok);
    t_sleep(20 * MS); /* most likely parked by now; either way */
    ck_assert_int_eq(crew_task_cancel(a), CREW_EBUSY);
    ck_assert_int_eq(crew_task_wait_timeout(a, T_LONG, NULL), 0);
    ck_assert_int_eq(atomic_load(&rc_sleep), CREW_ECANCELED);
    ck_assert_int_eq(crew_task_cancel(b), CREW_EBUSY);
    ck_assert_int_eq(crew_task_wait_timeout(b, T_LONG, NULL), 0);
    ck_assert_int_eq(atomic_load(&rc_event), CREW_ECANCELED);
    ck_assert(!crew_event_is_set(gate));
    crew_task_release(a);
    crew_task_release(b);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_event_free(gate), 0);
}
END_TEST

START_TEST(park__shutdown_now_ends_event_waits)
{
    crew_t *pool = t_fiber_pool(2, 64);
    bool ok;

    atomic_store(&started, 0);
    atomic_store(&rc_event, 1);
    ck_assert_int_eq(crew_event_create(&gate), 0);
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(crew_submit(pool, long_event, NULL), 0);
    T_EVENTUALLY(ok, atomic_load(&started) == 40, T_LONG);
    ck_assert(ok);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_NOW), 0);
    ck_assert_int_eq(atomic_load(&rc_event), CREW_ECANCELED);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_event_free(gate), 0);
}
END_TEST

/* --- events: many waiters, both modes, timeouts ------------------------ */

static atomic_int woke;

static int wait_then_count(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&started, 1);
    if (crew_event_wait(gate) == 0)
        atomic_fetch_add(&woke, 1);
    return 0;
}

static void many_waiters(crew_t *pool, int n)
{
    bool ok;

    atomic_store(&started, 0);
    atomic_store(&woke, 0);
    ck_assert_int_eq(crew_event_create(&gate), 0);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(crew_submit(pool, wait_then_count, NULL), 0);
    T_EVENTUALLY(ok, atomic_load(&started) == n, T_LONG);
    ck_assert(ok);
    ck_assert_int_eq(atomic_load(&woke), 0);
    ck_assert_int_eq(crew_event_free(gate), CREW_EBUSY); /* waited on */
    ck_assert_int_eq(crew_event_set(gate), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&woke), n);
    /* Set: later waits return at once, until a reset. */
    ck_assert_int_eq(crew_event_wait(gate), 0);
    ck_assert_int_eq(crew_event_reset(gate), 0);
    ck_assert_int_eq(crew_event_wait_timeout(gate, 0), CREW_ETIMEDOUT);
    ck_assert_int_eq(crew_event_wait_timeout(gate, 5 * MS), CREW_ETIMEDOUT);
    ck_assert_int_eq(crew_event_free(gate), 0);
}

/* 1,000 fibers on two threads wait on one event; one set wakes them all
 * (the budget of 16 is given back while they wait). */
START_TEST(park__event_wakes_every_fiber)
{
    crew_t *pool = t_fiber_pool(2, 16);

    many_waiters(pool, 1000);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

START_TEST(park__event_wakes_every_thread)
{
    crew_opts_t o = { .max_workers = 6 };
    crew_t *pool;

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    many_waiters(pool, 6);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

static int timed_event(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    /* Long timeouts that the set ends early: each leaves a timer entry
     * behind, which the scheduler must drop, not pile up. */
    for (int i = 0; i < 2000; i++) {
        int rc = crew_event_wait_timeout(gate, 3600 * T_SEC);

        if (rc != 0)
            return rc;
    }
    return 0;
}

static int setter(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    for (int i = 0; i < 2000; i++) {
        crew_event_set(gate);
        crew_yield();
    }
    return 0;
}

START_TEST(park__early_wakes_of_long_timeouts)
{
    crew_t *pool = t_fiber_pool(1, 4);
    crew_task_t *w;

    ck_assert_int_eq(crew_event_create(&gate), 0);
    ck_assert_int_eq(crew_event_set(gate), 0);
    ck_assert_int_eq(crew_spawn(pool, timed_event, NULL, NULL, &w), 0);
    ck_assert_int_eq(crew_task_wait_timeout(w, T_LONG, NULL), 0);
    crew_task_release(w);
    /* Now unset: every wait parks until the setter's next set. */
    ck_assert_int_eq(crew_event_reset(gate), 0);
    ck_assert_int_eq(crew_spawn(pool, timed_event, NULL, NULL, &w), 0);
    ck_assert_int_eq(crew_submit(pool, setter, NULL), 0);
    t_sleep(50 * MS);
    /* Whatever is left after the setter's 2000 sets, end it. */
    for (int i = 0; i < 400 && crew_task_poll(w, NULL) == CREW_EBUSY; i++) {
        crew_event_set(gate);
        t_sleep(5 * MS);
    }
    ck_assert_int_eq(crew_task_wait_timeout(w, T_LONG, NULL), 0);
    crew_task_release(w);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_event_free(gate), 0);
}
END_TEST

START_TEST(park__event_bad_input)
{
    crew_event_t *ev;

    ck_assert_int_eq(crew_event_create(NULL), CREW_EINVAL);
    ck_assert_int_eq(crew_event_set(NULL), CREW_EINVAL);
    ck_assert_int_eq(crew_event_reset(NULL), CREW_EINVAL);
    ck_assert(!crew_event_is_set(NULL));
    ck_assert_int_eq(crew_event_wait(NULL), CREW_EINVAL);
    ck_assert_int_eq(crew_event_wait_timeout(NULL, 1), CREW_EINVAL);
    ck_assert_int_eq(crew_event_free(NULL), 0);
    ck_assert_int_eq(crew_event_create(&ev), 0);
    ck_assert_int_eq(crew_event_wait_timeout(ev, -1), CREW_EINVAL);
    ck_assert_int_eq(crew_event_wait_timeout(ev, 0), CREW_ETIMEDOUT);
    ck_assert_int_eq(crew_event_set(ev), 0);
    ck_assert(crew_event_is_set(ev));
    ck_assert_int_eq(crew_event_wait_timeout(ev, 0), 0);
    ck_assert_int_eq(crew_event_free(ev), 0);
}
END_TEST

/* --- crew_blocking ----------------------------------------------------- */

static int pipefd[2];
static atomic_int ticks;

static void *read_pipe(void *arg)
{
    char c;

    (void)arg;
    errno = 0;
    if (read(pipefd[0], &c, 1) != 1)
        return NULL;
    errno = 77; /* comes back to the caller */
    return (void *)(intptr_t)c;
}

static int blocked_reader(crew_ctx_t *ctx, void *arg, void **result)
{
    void *r;

    (void)ctx;
    (void)arg;
    errno = 0;
    r = crew_blocking(read_pipe, NULL);
    *result = r;
    return errno == 77 ? 0 : -1;
}

static int ticker(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    for (int i = 0; i < 20; i++) {
        atomic_fetch_add(&ticks, 1);
        crew_sleep(MS);
    }
    return 0;
}

/* On one thread, a fiber blocked in read() through crew_blocking does not
 * stop the other fiber: the ticker finishes while the read still waits. */
START_TEST(park__blocking_call_keeps_the_thread_going)
{
    crew_t *pool = t_fiber_pool(1, 4);
    crew_task_t *r, *t;
    void *res = NULL;

    atomic_store(&ticks, 0);
    ck_assert_int_eq(pipe(pipefd), 0);
    ck_assert_int_eq(crew_spawn(pool, blocked_reader, NULL, NULL, &r), 0);
    ck_assert_int_eq(crew_spawn(pool, ticker, NULL, NULL, &t), 0);
    ck_assert_int_eq(crew_task_wait_timeout(t, T_LONG, NULL), 0);
    ck_assert_int_eq(atomic_load(&ticks), 20);
    ck_assert_int_eq(crew_task_poll(r, NULL), CREW_EBUSY);
    ck_assert_int_eq(write(pipefd[1], "x", 1), 1);
    ck_assert_int_eq(crew_task_wait_timeout(r, T_LONG, &res), 0);
    ck_assert_ptr_eq(res, (void *)(intptr_t)'x');
    crew_task_release(r);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    close(pipefd[0]);
    close(pipefd[1]);
}
END_TEST

static void *add_one(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return arg;
}

static int many_blocking(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    for (int i = 0; i < 10; i++)
        if (crew_blocking(add_one, arg) != arg)
            return -1;
    return 0;
}

/* More calls at once than blocking threads: they queue, all run; and
 * outside a fiber crew_blocking just calls. */
START_TEST(park__blocking_calls_beyond_the_bound)
{
    crew_opts_t o = {
        .fibers = true, .threads = 2, .max_workers = 64, .blocking_threads = 2
    };
    static atomic_int n;
    crew_t *pool;

    atomic_store(&n, 0);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(crew_submit(pool, many_blocking, &n), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&n), 500);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_ptr_eq(crew_blocking(add_one, &n), &n);
    ck_assert_int_eq(atomic_load(&n), 501);
    errno = 0;
    ck_assert_ptr_null(crew_blocking(NULL, NULL));
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* --- a thread lost in a task ------------------------------------------ */

static crew_event_t *never;

static int wait_never(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&started, 1);
    return crew_event_wait(never);
}

static int sleep_long(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&started, 1);
    return crew_sleep(3600 * T_SEC);
}

static crew_task_t *never_done;

static int wait_future(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&started, 1);
    return crew_task_wait(never_done, NULL);
}

static int exit_thread(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    pthread_exit(NULL);
}

static int one(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    return 0;
}

/*
 * A task on a fiber calls pthread_exit: its thread ends, and with it the
 * other fibers parked there (in an event wait, a sleep, a future wait):
 * each of their tasks is reported CREW_EEXIT, nothing waits forever, and
 * the pool goes on with a new thread.
 */
START_TEST(park__pthread_exit_loses_the_thread_not_the_tasks)
{
#ifdef UNDER_TSAN
    /* ThreadSanitizer stops the process when pthread_exit is called on a
     * fiber's stack (a check of its own); it cannot follow this case. */
    crew_test_log("skipped under ThreadSanitizer");
    return;
#endif
    crew_t *pool = t_fiber_pool(1, 16);
    crew_opts_t other = { .max_workers = 1 };
    crew_t *threads;
    crew_task_t *t[3], *x, *y;
    crew_stats_t st;
    bool ok;

    atomic_store(&started, 0);
    ck_assert_int_eq(crew_event_create(&never), 0);
    ck_assert_int_eq(crew_create(&threads, &other), 0);
    ck_assert_int_eq(crew_spawn(threads, wait_never, NULL, NULL, &never_done),
                     0);
    ck_assert_int_eq(crew_spawn(pool, wait_never, NULL, NULL, &t[0]), 0);
    ck_assert_int_eq(crew_spawn(pool, sleep_long, NULL, NULL, &t[1]), 0);
    ck_assert_int_eq(crew_spawn(pool, wait_future, NULL, NULL, &t[2]), 0);
    T_EVENTUALLY(ok, atomic_load(&started) == 4, T_LONG);
    ck_assert(ok);
    ck_assert_int_eq(crew_spawn(pool, exit_thread, NULL, NULL, &x), 0);
    ck_assert_int_eq(crew_task_wait_timeout(x, T_LONG, NULL), CREW_EEXIT);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(crew_task_wait_timeout(t[i], T_LONG, NULL),
                         CREW_EEXIT);
    ck_assert_int_eq(crew_wait(pool), 0);
    /* A new thread runs what comes next. */
    ck_assert_int_eq(crew_spawn(pool, one, NULL, NULL, &y), 0);
    ck_assert_int_eq(crew_task_wait_timeout(y, T_LONG, NULL), 0);
    crew_stats(pool, &st);
    ck_assert_uint_eq(st.failed, 4);
    ck_assert_uint_eq(st.completed, 1);
    /* Every budget place came back (a fiber gives its own back just
     * after its task is reported). */
    T_EVENTUALLY(ok, t_stats(pool).workers == 0, T_LONG);
    ck_assert(ok);
    for (int i = 0; i < 3; i++)
        crew_task_release(t[i]);
    crew_task_release(x);
    crew_task_release(y);
    ck_assert_int_eq(crew_free(pool), 0);
    /* The lost future wait let go of never_done: it can finish. */
    ck_assert_int_eq(crew_event_set(never), 0);
    ck_assert_int_eq(crew_task_wait(never_done, NULL), 0);
    crew_task_release(never_done);
    ck_assert_int_eq(crew_free(threads), 0);
    ck_assert_int_eq(crew_event_free(never), 0);
}
END_TEST

/* --- Places in the budget, around waits ------------------------------- */

static crew_event_t *wake_all;
static atomic_int in_probe, most_in_probe;

/* Waits for wake_all, yields (the others run), and every 13th ends its
 * thread then. */
static int wait_yield_maybe_exit(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    if (crew_event_wait(wake_all) != 0)
        return 1;
    crew_yield();
    if ((intptr_t)arg % 13 == 12)
        pthread_exit(NULL);
    return 0;
}

static int probe(crew_ctx_t *ctx, void *arg, void **result)
{
    int n = atomic_fetch_add(&in_probe, 1) + 1;
    int m = atomic_load(&most_in_probe);

    (void)ctx;
    (void)arg;
    (void)result;
    while (n > m && !atomic_compare_exchange_weak(&most_in_probe, &m, n))
        ;
    crew_sleep(50 * T_MS);
    atomic_fetch_sub(&in_probe, 1);
    return 0;
}

/*
 * Threads that end (pthread_exit) while fibers around them hold, wait for
 * or were just handed budget places: every place comes back, and the
 * whole budget runs at once afterwards.
 */
START_TEST(park__pthread_exit_gives_every_place_back)
{
#ifdef UNDER_TSAN
    crew_test_log("skipped under ThreadSanitizer");
    return;
#endif
    crew_t *pool = t_fiber_pool(2, 3);
    bool ok;

    ck_assert_int_eq(crew_event_create(&wake_all), 0);
    for (int round = 0; round < 6; round++) {
        crew_event_reset(wake_all);
        for (intptr_t i = 0; i < 60; i++)
            ck_assert_int_eq(
                crew_submit(pool, wait_yield_maybe_exit, (void *)i), 0);
        t_sleep(2 * T_MS);
        ck_assert_int_eq(crew_event_set(wake_all), 0);
        ck_assert_int_eq(crew_wait(pool), 0);
    }
    T_EVENTUALLY(ok, t_stats(pool).workers == 0, T_LONG);
    ck_assert(ok);
    atomic_store(&in_probe, 0);
    atomic_store(&most_in_probe, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(crew_submit(pool, probe, NULL), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&most_in_probe), 3);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_event_free(wake_all), 0);
}
END_TEST

static atomic_llong resumed_at, stuck_until, late_started_at;

/* Waits for wake_all; notes when its code goes on. */
static int note_resume(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    crew_event_wait(wake_all);
    atomic_store(&resumed_at, t_now());
    return 0;
}

/* Sets wake_all, lets the waiter queue for the place, then blocks its
 * thread (a plain nanosleep) well past its own deadline. */
static int set_then_block(crew_ctx_t *ctx, void *arg, void **result)
{
    struct timespec ts = { 0, 600 * 1000 * 1000 };

    (void)ctx;
    (void)arg;
    (void)result;
    crew_event_set(wake_all);
    crew_yield();
    nanosleep(&ts, NULL);
    atomic_store(&stuck_until, t_now());
    return 0;
}

static int note_start(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_store(&late_started_at, t_now());
    return 0;
}

/*
 * A waiter queued for a place on a thread that is stuck in a timed-out
 * task cannot use one: the place the timeout frees goes to new work on a
 * spare thread, not to it (else the pool would stall with the stuck
 * call).
 */
START_TEST(park__stuck_threads_place_waiter_does_not_block_new_work)
{
    crew_t *pool = t_fiber_pool(1, 1);
    crew_task_opts_t o = { .timeout_ns = 100 * T_MS };
    crew_task_t *h;

    atomic_store(&resumed_at, 0);
    atomic_store(&stuck_until, 0);
    atomic_store(&late_started_at, 0);
    ck_assert_int_eq(crew_event_create(&wake_all), 0);
    ck_assert_int_eq(crew_submit(pool, note_resume, NULL), 0);
    t_sleep(10 * T_MS);
    ck_assert_int_eq(crew_spawn(pool, set_then_block, NULL, &o, &h), 0);
    t_sleep(250 * T_MS);
    ck_assert_int_eq(crew_submit(pool, note_start, NULL), 0);
    ck_assert_int_eq(crew_task_wait_timeout(h, T_LONG, NULL), CREW_ETIMEDOUT);
    ck_assert_int_eq(crew_wait(pool), 0);
    /* The new task ran while the thread was still stuck. */
    ck_assert(atomic_load(&late_started_at) != 0);
    ck_assert(atomic_load(&stuck_until) == 0 ||
              atomic_load(&late_started_at) < atomic_load(&stuck_until));
    crew_task_release(h);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert(atomic_load(&resumed_at) != 0);
    ck_assert_int_eq(crew_event_free(wake_all), 0);
}
END_TEST

/* Sets wake_all, then keeps the only place (a sleep keeps it). */
static int set_then_hold(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    crew_event_set(wake_all);
    crew_sleep(600 * T_MS);
    atomic_store(&stuck_until, t_now());
    return 0;
}

/* A task whose deadline passes while it waits for a place goes on
 * without one at once (it takes none again), so its code can see the
 * timeout, instead of waiting for the holder to finish. */
START_TEST(park__deadline_ends_a_wait_for_a_place)
{
    crew_t *pool = t_fiber_pool(1, 1);
    crew_task_opts_t o = { .timeout_ns = 150 * T_MS };
    crew_task_t *w;

    atomic_store(&resumed_at, 0);
    atomic_store(&stuck_until, 0);
    ck_assert_int_eq(crew_event_create(&wake_all), 0);
    ck_assert_int_eq(crew_spawn(pool, note_resume, NULL, &o, &w), 0);
    t_sleep(10 * T_MS);
    ck_assert_int_eq(crew_submit(pool, set_then_hold, NULL), 0);
    ck_assert_int_eq(crew_task_wait_timeout(w, T_LONG, NULL), CREW_ETIMEDOUT);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert(atomic_load(&resumed_at) != 0);
    ck_assert(atomic_load(&resumed_at) < atomic_load(&stuck_until));
    crew_task_release(w);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_event_free(wake_all), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("park");

    crew_add_test(s, park__future_wait_parks_the_fiber);
    crew_add_test(s, park__group_wait_parks_the_fiber);
    crew_add_test(s, park__cancel_wakes_a_parked_fiber);
    crew_add_test(s, park__shutdown_now_ends_event_waits);
    crew_add_test(s, park__event_wakes_every_fiber);
    crew_add_test(s, park__event_wakes_every_thread);
    crew_add_test(s, park__early_wakes_of_long_timeouts);
    crew_add_test(s, park__event_bad_input);
    crew_add_test(s, park__pthread_exit_gives_every_place_back);
    crew_add_test(s, park__stuck_threads_place_waiter_does_not_block_new_work);
    crew_add_test(s, park__deadline_ends_a_wait_for_a_place);
    crew_add_test(s, park__blocking_call_keeps_the_thread_going);
    crew_add_test(s, park__blocking_calls_beyond_the_bound);
    crew_add_test(s, park__pthread_exit_loses_the_thread_not_the_tasks);
    return crew_run_suite(s);
}
