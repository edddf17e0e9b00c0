/*
 * test_local.c - plain tasks that workers submit to their own pool: they
 * wait in the worker's deque counted by its cover, not in the shared
 * counters (deque.c).  Every one runs, crew_wait() waits for all of them,
 * a blocked worker's tasks are stolen, shutdown NOW cancels what has not
 * run, and a worker stuck past a deadline does not hold crew_wait() up.
 */
#include "harness.h"

#include "helpers.h"

static atomic_long ran, fans;

static crew_t *two_workers(void)
{
    crew_opts_t o = { .min_workers = 2, .max_workers = 2, .prespawn = true };
    crew_t *pool = NULL;

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    return pool;
}

/* A submit from a task: refused only once the pool shuts down. */
static bool submitted_ok(crew_ctx_t *ctx, crew_fn fn, long arg)
{
    int rc = crew_submit(crew_ctx_pool(ctx), fn, (void *)(intptr_t)arg);

    return rc == 0 || rc == CREW_ESHUTDOWN;
}

/* Splits n into two halves, each a task of its own, down to 1. */
static int split(crew_ctx_t *ctx, void *arg, void **result)
{
    long n = (long)(intptr_t)arg;

    (void)result;
    atomic_fetch_add(&ran, 1);
    if (n > 1) {
        long a = (n - 1) / 2, b = n - 1 - a;

        if ((a > 0 && !submitted_ok(ctx, split, a)) ||
            (b > 0 && !submitted_ok(ctx, split, b)))
            return 1;
    }
    return 0;
}

static int count_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&ran, 1);
    return 0;
}

/* Submits `arg` tasks at once: more than a deque holds (1,024). */
static int fan_out(crew_ctx_t *ctx, void *arg, void **result)
{
    long n = (long)(intptr_t)arg;

    (void)result;
    atomic_fetch_add(&fans, 1);
    for (long i = 0; i < n; i++)
        if (!submitted_ok(ctx, count_fn, 0))
            return 1;
    return 0;
}

/* A tree of tasks from inside, and a fan-out past the deque's size: all
 * run, crew_wait() returns after the last, and the counts add up. */
START_TEST(local__every_task_runs_and_is_waited_for)
{
    crew_t *pool = two_workers();
#ifdef T_SANITIZED
    const long tree = 20000, fan = 3000;
#else
    const long tree = 200000, fan = 5000;
#endif

    for (int round = 0; round < 5; round++) {
        crew_stats_t st;

        atomic_store(&ran, 0);
        ck_assert_int_eq(crew_submit(pool, split, (void *)(intptr_t)tree), 0);
        ck_assert_int_eq(crew_wait(pool), 0);
        ck_assert_int_eq(atomic_load(&ran), tree);
        atomic_store(&ran, 0);
        ck_assert_int_eq(crew_submit(pool, fan_out, (void *)(intptr_t)fan), 0);
        ck_assert_int_eq(crew_wait(pool), 0);
        ck_assert_int_eq(atomic_load(&ran), fan);
        st = t_stats(pool);
        ck_assert_uint_eq(st.queued, 0);
        ck_assert_uint_eq(st.running, 0);
        ck_assert_uint_eq(st.failed, 0);
        ck_assert_uint_eq(st.submitted, st.completed);
        ck_assert_uint_eq(st.submitted,
                          (uint64_t)(round + 1) * (uint64_t)(tree + fan + 1));
    }
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

static t_count_t child_ran;

static int child_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    t_count_add(&child_ran, 1);
    return 0;
}

/* Submits a child, then blocks its thread (no crew wait, so no helping
 * and no lending) until the child has run: only the other worker can run
 * it, taking it from this worker's deque. */
static int blocked_parent(crew_ctx_t *ctx, void *arg, void **result)
{
    long before = t_count_get(&child_ran);

    (void)arg;
    (void)result;
    if (crew_submit(crew_ctx_pool(ctx), child_fn, NULL) != 0)
        return 1;
    return t_count_wait(&child_ran, before + 1, T_LONG) ? 0 : 2;
}

START_TEST(local__a_blocked_workers_task_is_stolen)
{
    crew_t *pool = two_workers();

    t_count_init(&child_ran);
    for (int i = 0; i < 200; i++) {
        crew_task_t *t;

        /* Let both workers fall asleep (a spinning one would find the
         * child on its own): the push must wake the other one (the
         * hand-off in deque.c), or this wait times out. */
        t_sleep(2 * T_MS);
        ck_assert_int_eq(crew_spawn(pool, blocked_parent, NULL, NULL, &t), 0);
        ck_assert_int_eq(crew_task_wait_timeout(t, T_LONG, NULL), 0);
        crew_task_release(t);
        ck_assert_int_eq(crew_wait(pool), 0);
    }
    ck_assert_int_eq(t_count_get(&child_ran), 200);
    ck_assert_int_eq(crew_free(pool), 0);
    t_count_destroy(&child_ran);
}
END_TEST

/* Shutdown NOW while workers' deques hold tasks: each is run or counted
 * as cancelled, and the counts add up. */
START_TEST(local__shutdown_now_cancels_what_waits)
{
    for (int round = 0; round < 20; round++) {
        crew_t *pool = two_workers();
        crew_stats_t st;

        atomic_store(&ran, 0);
        atomic_store(&fans, 0);
        ck_assert_int_eq(crew_submit(pool, split, (void *)(intptr_t)100000), 0);
        ck_assert_int_eq(crew_submit(pool, fan_out, (void *)(intptr_t)3000), 0);
        /* Somewhere in the middle, or after, depending on the round. */
        for (int i = 0; i < round * 50 && atomic_load(&ran) < 100000; i++)
            sched_yield();
        ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_NOW), 0);
        st = t_stats(pool);
        ck_assert_uint_eq(st.queued, 0);
        ck_assert_uint_eq(st.running, 0);
        ck_assert_uint_eq(st.failed, 0);
        ck_assert_uint_eq(st.submitted, st.completed + st.cancelled);
        ck_assert_uint_eq(st.completed,
                          (uint64_t)(atomic_load(&ran) + atomic_load(&fans)));
        ck_assert_int_eq(crew_free(pool), 0);
    }
}
END_TEST

static atomic_bool stuck_started, stuck_release, stuck_saw_release;

/* Loops without returning until released (or 10 s): past its deadline. */
static int stuck_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_store(&stuck_started, true);
    for (int i = 0; i < 10000 && !atomic_load(&stuck_release); i++)
        t_sleep(T_MS);
    atomic_store(&stuck_saw_release, atomic_load(&stuck_release));
    return 0;
}

/* Pushes plain children, then a task with a timeout that gets stuck: its
 * worker pops that one first (newest first) while the children wait. */
static int push_then_stuck(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_task_opts_t o = { .timeout_ns = 30 * T_MS };
    crew_t *pool = crew_ctx_pool(ctx);

    (void)arg;
    (void)result;
    for (int i = 0; i < 10; i++)
        if (crew_submit(pool, count_fn, NULL) != 0)
            return 1;
    return crew_spawn(pool, stuck_fn, NULL, &o, NULL);
}

/* A worker stuck past a deadline holds no count for the tasks it had
 * queued: they run elsewhere and crew_wait() returns while it is stuck. */
START_TEST(local__stuck_worker_does_not_hold_up_crew_wait)
{
    crew_t *pool = two_workers();
    t_gate_t gate;
    t_count_t started;
    t_blocker_t blocker = { .started = &started, .gate = &gate };

    t_gate_init(&gate);
    t_count_init(&started);
    atomic_store(&ran, 0);
    atomic_store(&stuck_started, false);
    atomic_store(&stuck_release, false);
    atomic_store(&stuck_saw_release, false);
    /* One worker held, so the other runs the pusher and then the stuck
     * task, with the children still in its deque. */
    ck_assert_int_eq(crew_submit(pool, t_blocker_fn, &blocker), 0);
    ck_assert(t_count_wait(&started, 1, T_LONG));
    ck_assert_int_eq(crew_submit(pool, push_then_stuck, NULL), 0);
    for (int i = 0; i < 20000 && !atomic_load(&stuck_started); i++)
        t_sleep(T_MS / 4);
    ck_assert(atomic_load(&stuck_started));
    t_gate_open(&gate);
    ck_assert_int_eq(crew_wait(pool), 0);
    /* Returned while the stuck task still runs, after the children. */
    ck_assert(!atomic_load(&stuck_saw_release));
    ck_assert_int_eq(atomic_load(&ran), 10);
    ck_assert_uint_ge(t_stats(pool).timed_out, 1);
    atomic_store(&stuck_release, true);
    ck_assert_int_eq(crew_free(pool), 0);
    /* crew_free() leaves a worker stuck past a deadline behind. */
    for (int i = 0; i < 20000 && !atomic_load(&stuck_saw_release); i++)
        t_sleep(T_MS / 4);
    ck_assert(atomic_load(&stuck_saw_release));
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

static long fib_serial(int n)
{
    return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

/* Fork-join with futures: each split spawns a child and waits for it. */
static int fib_task(crew_ctx_t *ctx, void *arg, void **result)
{
    int n = (int)(intptr_t)arg;
    crew_task_t *t;
    void *x = NULL;
    int rc;

    if (n < 10) {
        *result = (void *)(intptr_t)fib_serial(n);
        return 0;
    }
    rc = crew_spawn(crew_ctx_pool(ctx), fib_task, (void *)(intptr_t)(n - 1),
                    NULL, &t);
    if (rc != 0)
        return rc;
    if (fib_task(ctx, (void *)(intptr_t)(n - 2), result) != 0)
        return 1;
    rc = crew_task_wait(t, &x);
    crew_task_release(t);
    *result = (void *)((intptr_t)*result + (intptr_t)x);
    return rc;
}

START_TEST(local__fork_join_with_futures)
{
    crew_t *pool = two_workers();

    for (int round = 0; round < 5; round++) {
        crew_task_t *t;
        void *x = NULL;
        crew_stats_t st;

        ck_assert_int_eq(
            crew_spawn(pool, fib_task, (void *)(intptr_t)24, NULL, &t), 0);
        ck_assert_int_eq(crew_task_wait(t, &x), 0);
        ck_assert_int_eq((intptr_t)x, fib_serial(24));
        crew_task_release(t);
        ck_assert_int_eq(crew_wait(pool), 0);
        st = t_stats(pool);
        ck_assert_uint_eq(st.queued, 0);
        ck_assert_uint_eq(st.running, 0);
        ck_assert_uint_eq(st.failed, 0);
        ck_assert_uint_eq(st.submitted, st.completed);
    }
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

static crew_task_t *_Atomic shared_child;
static t_gate_t parent_gate;
static t_count_t parent_ready;

/* Spawns a child (it waits in this worker's deque), hands it out, and
 * blocks its thread until the test lets it go. */
static int spawn_and_block(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_task_t *t;

    (void)arg;
    (void)result;
    if (crew_spawn(crew_ctx_pool(ctx), count_fn, NULL, NULL, &t) != 0)
        return 1;
    atomic_store(&shared_child, t);
    t_count_add(&parent_ready, 1);
    t_gate_pass(&parent_gate);
    return 0;
}

/* Waits, from the other worker, for the child in the first one's deque:
 * it helps by running it (with a count of its own). */
static int wait_for_shared(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    return crew_task_wait(atomic_load(&shared_child), NULL);
}

/* Hold a worker of `pool` in a blocker until `gate` opens, so that it
 * steals nothing meanwhile; returns once the blocker runs. */
static void hold_other_worker(crew_t *pool, t_blocker_t *b, t_count_t *started,
                              t_gate_t *gate)
{
    t_gate_init(gate);
    t_count_init(started);
    b->started = started;
    b->gate = gate;
    ck_assert_int_eq(crew_submit(pool, t_blocker_fn, b), 0);
    ck_assert(t_count_wait(started, 1, T_LONG));
}

/* A child still queued in its worker's deque: cancelled from outside, or
 * run by the other worker that waits for it; the counts add up and
 * crew_wait() returns either way. */
START_TEST(local__a_queued_child_cancelled_or_run_by_another)
{
    for (int cancel = 0; cancel < 2; cancel++) {
        crew_t *pool = two_workers();
        crew_task_t *child, *waiter = NULL;
        crew_stats_t st;

        t_gate_t other_gate;
        t_count_t other_started;
        t_blocker_t other;

        atomic_store(&ran, 0);
        t_gate_init(&parent_gate);
        t_count_init(&parent_ready);
        /* The other worker busy first, so that it cannot steal the
         * child; the parent then runs on the first one. */
        hold_other_worker(pool, &other, &other_started, &other_gate);
        ck_assert_int_eq(crew_submit(pool, spawn_and_block, NULL), 0);
        ck_assert(t_count_wait(&parent_ready, 1, T_LONG));
        child = atomic_load(&shared_child);
        ck_assert_int_eq(crew_task_state(child), CREW_TASK_QUEUED);
        if (cancel) {
            ck_assert_int_eq(crew_task_cancel(child), 0);
            ck_assert_int_eq(crew_task_wait(child, NULL), CREW_ECANCELED);
            t_gate_open(&other_gate);
        } else {
            /* Queued before the other worker is let go: it takes this
             * (the shared queue) before it would steal the child. */
            ck_assert_int_eq(
                crew_spawn(pool, wait_for_shared, NULL, NULL, &waiter), 0);
            t_gate_open(&other_gate);
            ck_assert_int_eq(crew_task_wait_timeout(waiter, T_LONG, NULL), 0);
            ck_assert_int_eq(crew_task_wait(child, NULL), 0);
            crew_task_release(waiter);
        }
        t_gate_open(&parent_gate);
        ck_assert_int_eq(crew_wait(pool), 0);
        ck_assert_int_eq(atomic_load(&ran), cancel ? 0 : 1);
        ck_assert_int_eq(crew_task_state(child),
                         cancel ? CREW_TASK_CANCELED : CREW_TASK_DONE);
        crew_task_release(child);
        st = t_stats(pool);
        ck_assert_uint_eq(st.queued, 0);
        ck_assert_uint_eq(st.running, 0);
        ck_assert_uint_eq(st.cancelled, (uint64_t)cancel);
        ck_assert_uint_eq(st.submitted, st.completed + st.cancelled);
        ck_assert_int_eq(crew_free(pool), 0);
        t_gate_destroy(&parent_gate);
        t_count_destroy(&parent_ready);
        t_gate_destroy(&other_gate);
        t_count_destroy(&other_started);
    }
}
END_TEST

static atomic_bool in_cb, cb_done;

/* The pool's error callback: slow, so that a wait that returns early is
 * seen. */
static void slow_on_error(void *arg, int err, void *user)
{
    (void)arg;
    (void)err;
    (void)user;
    atomic_store(&in_cb, true);
    t_sleep(50 * T_MS);
    atomic_store(&cb_done, true);
}

static void *cancel_shared(void *unused)
{
    (void)unused;
    return (void *)(intptr_t)crew_task_cancel(atomic_load(&shared_child));
}

/* A queued child cancelled from a thread outside the pool: crew_wait()
 * waits for its report (the error callback) to end, although the task
 * itself had no count of its own and its worker moves on at once. */
START_TEST(local__wait_covers_an_outside_cancels_report)
{
    crew_opts_t o = { .min_workers = 2,
                      .max_workers = 2,
                      .prespawn = true,
                      .on_error = slow_on_error };
    crew_t *pool;
    t_gate_t other_gate;
    t_count_t other_started;
    t_blocker_t other;
    pthread_t canceller;
    void *rc;
    bool ok;

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    atomic_store(&in_cb, false);
    atomic_store(&cb_done, false);
    t_gate_init(&parent_gate);
    t_count_init(&parent_ready);
    hold_other_worker(pool, &other, &other_started, &other_gate);
    ck_assert_int_eq(crew_submit(pool, spawn_and_block, NULL), 0);
    ck_assert(t_count_wait(&parent_ready, 1, T_LONG));
    ck_assert_int_eq(pthread_create(&canceller, NULL, cancel_shared, NULL), 0);
    T_EVENTUALLY(ok, atomic_load(&in_cb), T_LONG);
    ck_assert(ok);
    t_gate_open(&parent_gate);
    t_gate_open(&other_gate);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert(atomic_load(&cb_done));
    ck_assert_int_eq(pthread_join(canceller, &rc), 0);
    ck_assert_int_eq((intptr_t)rc, 0);
    ck_assert_int_eq(crew_task_state(atomic_load(&shared_child)),
                     CREW_TASK_CANCELED);
    crew_task_release(atomic_load(&shared_child));
    ck_assert_int_eq(crew_free(pool), 0);
    t_gate_destroy(&parent_gate);
    t_count_destroy(&parent_ready);
    t_gate_destroy(&other_gate);
    t_count_destroy(&other_started);
}
END_TEST

/* --- opts.inline_after ------------------------------------------------- */

static atomic_long inl_errors, inl_freed, inl_nest_max, inl_chain;
static _Thread_local long inl_nest;
static _Atomic(pthread_t *) inl_marked;
static _Thread_local pthread_t inl_self;

static void inl_on_error(void *arg, int err, void *user)
{
    (void)arg;
    (void)user;
    if (err == 7)
        atomic_fetch_add(&inl_errors, 1);
}

static void inl_free(void *result)
{
    atomic_fetch_add(&inl_freed, 1);
    free(result);
}

/* Says which thread it ran on, and leaves a result for free_result. */
static int inl_mark_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    inl_self = pthread_self();
    atomic_store(&inl_marked, &inl_self);
    *result = malloc(16);
    return 0;
}

static int inl_fail_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    return 7;
}

/* A pool of two workers whose second worker is held by a blocker, so
 * that nothing is stolen from the first one's queue. */
static crew_t *inline_pool(t_blocker_t *b, t_count_t *started, t_gate_t *gate)
{
    crew_opts_t o = { .min_workers = 2,
                      .max_workers = 2,
                      .prespawn = true,
                      .inline_after = 1,
                      .on_error = inl_on_error,
                      .free_result = inl_free };
    crew_t *pool = NULL;

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    hold_other_worker(pool, b, started, gate);
    return pool;
}

/* Once `runs` queued tasks have run (the blocker holds the other worker
 * until then, so nothing is stolen from the tested worker meanwhile),
 * lets the blocker go, waits for all, and returns the pool's counts. */
static crew_stats_t inline_pool_free(crew_t *pool, t_count_t *started,
                                     t_gate_t *gate, long runs)
{
    crew_stats_t s;
    bool ok;

    T_EVENTUALLY(ok, atomic_load(&ran) == runs, T_LONG);
    ck_assert(ok);
    t_gate_open(gate);
    ck_assert_int_eq(crew_wait(pool), 0);
    s = t_stats(pool);
    ck_assert_int_eq(crew_free(pool), 0);
    t_gate_destroy(gate);
    t_count_destroy(started);
    return s;
}

/* With one task of its own queued, the next submit runs in the call. */
static int inl_parent_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    atomic_long *seen = arg;
    crew_t *pool = crew_ctx_pool(ctx);
    crew_task_t *f = NULL;
    long before;

    (void)result;
    /* Queued: the worker holds nothing yet. */
    if (crew_submit(pool, count_fn, NULL) != 0 ||
        atomic_load(&inl_marked) != NULL)
        return 1;
    if (crew_submit(pool, inl_mark_fn, NULL) != 0)
        return 2;
    /* Ran inside the call, on this thread, its result already freed. */
    if (atomic_load(&inl_marked) == NULL ||
        !pthread_equal(*atomic_load(&inl_marked), pthread_self()) ||
        atomic_load(&inl_freed) != 1)
        return 3;
    if (crew_submit(pool, inl_fail_fn, NULL) != 0 ||
        atomic_load(&inl_errors) != 1)
        return 4;
    /* A task with a future is never run in the call. */
    before = atomic_load(&ran);
    if (crew_spawn(pool, count_fn, NULL, NULL, &f) != 0)
        return 5;
    if (atomic_load(&ran) != before) {
        crew_task_release(f);
        return 6;
    }
    crew_task_release(f);
    atomic_store(seen, 1);
    return 0;
}

START_TEST(local__inline_after_runs_a_task_in_its_submit)
{
    t_blocker_t b;
    t_count_t started;
    t_gate_t gate;
    crew_t *pool = inline_pool(&b, &started, &gate);
    atomic_long seen = 0;
    crew_stats_t s;

    atomic_store(&ran, 0);
    atomic_store(&inl_errors, 0);
    atomic_store(&inl_freed, 0);
    atomic_store(&inl_marked, NULL);
    ck_assert_int_eq(crew_submit(pool, inl_parent_fn, &seen), 0);
    s = inline_pool_free(pool, &started, &gate, 2);
    ck_assert_int_eq(atomic_load(&seen), 1);
    ck_assert_int_eq(atomic_load(&ran), 2);
    ck_assert_int_eq(atomic_load(&inl_errors), 1);
    ck_assert_int_eq(atomic_load(&inl_freed), 1);
    /* blocker, parent, two queued, two run in the call */
    ck_assert_uint_eq(s.submitted, 6);
    ck_assert_uint_eq(s.completed, 5);
    ck_assert_uint_eq(s.failed, 1);
}
END_TEST

/* Each link queues a filler, then submits the next link: with fillers
 * queued, links run inside their parents' submits, up to the cap. */
static int inl_link_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    long depth = (long)(intptr_t)arg;
    long nest = ++inl_nest, max = atomic_load(&inl_nest_max);
    int rc = 0;

    (void)result;
    while (nest > max &&
           !atomic_compare_exchange_weak(&inl_nest_max, &max, nest))
        ;
    atomic_fetch_add(&inl_chain, 1);
    if (crew_submit(crew_ctx_pool(ctx), count_fn, NULL) != 0 ||
        (depth < 100 && crew_submit(crew_ctx_pool(ctx), inl_link_fn,
                                    (void *)(intptr_t)(depth + 1)) != 0))
        rc = 1;
    inl_nest--;
    return rc;
}

/*
 * A callback on a worker is no task: a submit from it is queued even when
 * inline_after would run it in a task's submit (found by the stress
 * harness: run there, the new task was counted nowhere as running, and
 * crew_stats from inside it said running 0).
 */
static char cb_parent_tag;
static crew_t *_Atomic cb_pool;
static _Thread_local bool in_callback;
static atomic_int cb_child_inside, cb_child_running;

static int cb_child_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_stats_t st;

    (void)arg;
    (void)result;
    crew_stats(crew_ctx_pool(ctx), &st);
    atomic_store(&cb_child_inside, in_callback ? 1 : 0);
    atomic_store(&cb_child_running, (int)st.running);
    atomic_fetch_add(&ran, 1);
    return 0;
}

static void cb_submits(void *arg, void *result, void *user)
{
    (void)result;
    (void)user;
    if (arg != &cb_parent_tag)
        return;
    in_callback = true;
    if (crew_submit(atomic_load(&cb_pool), cb_child_fn, NULL) != 0)
        atomic_store(&cb_child_inside, -1);
    in_callback = false;
}

/* Leaves a task of its own queued, so that the callback's submit would
 * run in the call if callbacks could. */
static int cb_parent_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)arg;
    (void)result;
    return crew_submit(crew_ctx_pool(ctx), count_fn, NULL) != 0;
}

START_TEST(local__inline_never_runs_in_a_callback)
{
    crew_opts_t o = { .min_workers = 2,
                      .max_workers = 2,
                      .prespawn = true,
                      .inline_after = 1,
                      .on_result = cb_submits };
    crew_t *pool = NULL;
    t_blocker_t b;
    t_count_t started;
    t_gate_t gate;

    atomic_store(&ran, 0);
    atomic_store(&cb_child_inside, 0);
    atomic_store(&cb_child_running, 0);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    atomic_store(&cb_pool, pool);
    hold_other_worker(pool, &b, &started, &gate);
    ck_assert_int_eq(crew_submit(pool, cb_parent_fn, &cb_parent_tag), 0);
    (void)inline_pool_free(pool, &started, &gate, 2);
    ck_assert_int_eq(atomic_load(&cb_child_inside), 0);
    ck_assert_int_ge(atomic_load(&cb_child_running), 1);
}
END_TEST

START_TEST(local__inline_runs_nest_at_most_32_deep)
{
    t_blocker_t b;
    t_count_t started;
    t_gate_t gate;
    crew_t *pool = inline_pool(&b, &started, &gate);
    crew_stats_t s;

    atomic_store(&ran, 0);
    atomic_store(&inl_chain, 0);
    atomic_store(&inl_nest_max, 0);
    ck_assert_int_eq(crew_submit(pool, inl_link_fn, (void *)(intptr_t)1), 0);
    s = inline_pool_free(pool, &started, &gate, 100);
    ck_assert_int_eq(atomic_load(&inl_chain), 100);
    ck_assert_int_eq(atomic_load(&ran), 100);
    /* Links ran inside their parents' submits, never more than 32 deep
     * over a queued one (33 when nothing is taken from the worker's
     * queue meanwhile, as the blocker now ensures). */
    ck_assert_int_gt(atomic_load(&inl_nest_max), 1);
    ck_assert_int_le(atomic_load(&inl_nest_max), 33);
    ck_assert_uint_eq(s.submitted, 201);
    ck_assert_uint_eq(s.completed, 201);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("local");

    crew_add_test(s, local__every_task_runs_and_is_waited_for);
    crew_add_test(s, local__a_blocked_workers_task_is_stolen);
    crew_add_test(s, local__shutdown_now_cancels_what_waits);
    crew_add_test(s, local__stuck_worker_does_not_hold_up_crew_wait);
    crew_add_test(s, local__fork_join_with_futures);
    crew_add_test(s, local__a_queued_child_cancelled_or_run_by_another);
    crew_add_test(s, local__wait_covers_an_outside_cancels_report);
    crew_add_test(s, local__inline_after_runs_a_task_in_its_submit);
    crew_add_test(s, local__inline_runs_nest_at_most_32_deep);
    crew_add_test(s, local__inline_never_runs_in_a_callback);
    return crew_run_suite(s);
}
