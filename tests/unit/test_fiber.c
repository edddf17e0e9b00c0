/*
 * test_fiber.c - fiber mode: tasks park in crew_sleep() instead of holding
 * their thread, yield to each other, wait for futures and groups of their
 * own pool on one thread, keep their own errno, and the pool's rules
 * (budget, shutdown, policies) hold as in thread mode.
 */
#include "harness.h"
#include "helpers.h"

#include <crew.h>

#include <errno.h>

#define MS T_MS

static atomic_int entered, left, max_entered_before_left, bad_sleeps;

static int sleeper(crew_ctx_t *ctx, void *arg, void **result)
{
    int rc;

    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&entered, 1);
    /* 0, or CREW_ECANCELED under shutdown NOW; checked by the test. */
    rc = crew_sleep(20 * MS);
    if (rc != 0 && rc != CREW_ECANCELED)
        atomic_fetch_add(&bad_sleeps, 1);
    if (atomic_fetch_add(&left, 1) == 0)
        atomic_store(&max_entered_before_left, atomic_load(&entered));
    return 0;
}

/* Sleeps until all `want` tasks have entered (or ~5 s passed). */
static int gatherer(crew_ctx_t *ctx, void *arg, void **result)
{
    int want = (int)(intptr_t)arg;

    (void)ctx;
    (void)result;
    atomic_fetch_add(&entered, 1);
    for (int i = 0; i < 5000 && atomic_load(&entered) < want; i++)
        crew_sleep(MS);
    if (atomic_fetch_add(&left, 1) == 0)
        atomic_store(&max_entered_before_left, atomic_load(&entered));
    return 0;
}

/* On one thread, 200 sleeping tasks all start before the first one ends:
 * a sleep parks the fiber, it does not hold the thread (if it did, the
 * first task would sleep out its whole loop alone). */
START_TEST(fiber__sleep_parks_the_fiber)
{
    crew_t *pool = t_fiber_pool(1, 1000);
    crew_stats_t st;

    atomic_store(&entered, 0);
    atomic_store(&left, 0);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(crew_submit(pool, gatherer, (void *)200), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&left), 200);
    ck_assert_int_eq(atomic_load(&max_entered_before_left), 200);
    crew_stats(pool, &st);
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(st.completed, 200);
    ck_assert_uint_le(st.peak_workers, 1000);
    ck_assert_uint_ge(st.peak_workers, 200);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

/* The budget (max_workers) bounds tasks in flight. */
START_TEST(fiber__budget_bounds_tasks_in_flight)
{
    crew_t *pool = t_fiber_pool(2, 16);
    crew_stats_t st;

    atomic_store(&entered, 0);
    atomic_store(&left, 0);
    for (int i = 0; i < 64; i++)
        ck_assert_int_eq(crew_submit(pool, sleeper, NULL), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_stats(pool, &st);
    ck_assert_uint_le(st.peak_workers, 16);
    ck_assert_int_le(atomic_load(&max_entered_before_left), 16);
    ck_assert_uint_eq(st.completed, 64);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

static char trace[64];
static atomic_int trace_len;

static atomic_int yielders;

static int yielder(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    /* Both start before either yields (a slow submitter under a sanitizer
     * could let the first finish alone). */
    atomic_fetch_add(&yielders, 1);
    for (long i = 0; i < 100000000 && atomic_load(&yielders) < 2; i++)
        crew_yield();
    for (int i = 0; i < 3; i++) {
        trace[atomic_fetch_add(&trace_len, 1)] = *(const char *)arg;
        crew_yield();
    }
    return 0;
}

/* Two fibers on one thread that yield take turns. */
START_TEST(fiber__yield_takes_turns)
{
    crew_t *pool = t_fiber_pool(1, 8);

    atomic_store(&trace_len, 0);
    atomic_store(&yielders, 0);
    ck_assert_int_eq(crew_submit(pool, yielder, "a"), 0);
    ck_assert_int_eq(crew_submit(pool, yielder, "b"), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    trace[atomic_load(&trace_len)] = '\0';
    ck_assert_int_eq(atomic_load(&trace_len), 6);
    for (int i = 1; i < 6; i++)
        ck_assert_msg(trace[i] != trace[i - 1], "no turns taken: %s", trace);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

static int leaf(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    crew_sleep(MS);
    *result = arg;
    return 0;
}

static int outer(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_task_t *t[8];
    intptr_t sum = 0;

    (void)arg;
    for (intptr_t i = 0; i < 8; i++)
        if (crew_spawn(crew_ctx_pool(ctx), leaf, (void *)(i + 1), NULL,
                       &t[i]) != 0)
            return 1;
    for (int i = 0; i < 8; i++) {
        void *r = NULL;

        if (crew_task_wait(t[i], &r) != 0)
            return 2;
        sum += (intptr_t)r;
        crew_task_release(t[i]);
    }
    *result = (void *)sum;
    return 0;
}

/* C15 on fibers: outer tasks wait for inner tasks on one thread. */
START_TEST(fiber__tasks_wait_for_tasks_on_one_thread)
{
    crew_t *pool = t_fiber_pool(1, 64);
    crew_task_t *t[4];

    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(crew_spawn(pool, outer, NULL, NULL, &t[i]), 0);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;

        ck_assert_int_eq(crew_task_wait(t[i], &r), 0);
        ck_assert_int_eq((intptr_t)r, 36);
        crew_task_release(t[i]);
    }
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

/* Fork-join with a budget of one: the waiting parent gives its place
 * back, or runs the child itself, so the child is not locked out. */
START_TEST(fiber__fork_join_with_a_budget_of_one)
{
    crew_t *pool = t_fiber_pool(1, 1);
    crew_task_t *t[2];

    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(crew_spawn(pool, outer, NULL, NULL, &t[i]), 0);
    for (int i = 0; i < 2; i++) {
        void *r = NULL;

        ck_assert_int_eq(crew_task_wait(t[i], &r), 0);
        ck_assert_int_eq((intptr_t)r, 36);
        crew_task_release(t[i]);
    }
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

static int group_parent(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_group_t *g;
    crew_task_opts_t o = { 0 };
    int rc;

    (void)arg;
    (void)result;
    if (crew_group_create(crew_ctx_pool(ctx), NULL, &g) != 0)
        return 1;
    o.group = g;
    for (int i = 0; i < 10; i++)
        crew_spawn(crew_ctx_pool(ctx), leaf, NULL, &o, NULL);
    rc = crew_group_wait(g);
    crew_group_free(g);
    return rc;
}

START_TEST(fiber__group_wait_inside_a_fiber)
{
    crew_t *pool = t_fiber_pool(1, 64);
    crew_task_t *t;

    ck_assert_int_eq(crew_spawn(pool, group_parent, NULL, NULL, &t), 0);
    ck_assert_int_eq(crew_task_wait(t, NULL), 0);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

/* Tasks in their own code (not waiting) at once, and the most seen. */
static atomic_int in_code, most_in_code, waiters_ready, waiters_done;
static atomic_bool holder_in, holder_saw_all;
static crew_event_t *wake_ev;

static void code_in(void)
{
    int n = atomic_fetch_add(&in_code, 1) + 1;
    int m = atomic_load(&most_in_code);

    while (n > m && !atomic_compare_exchange_weak(&most_in_code, &m, n))
        ;
}

static void code_out(void)
{
    atomic_fetch_sub(&in_code, 1);
}

static void code_reset(void)
{
    atomic_store(&in_code, 0);
    atomic_store(&most_in_code, 0);
    atomic_store(&waiters_ready, 0);
    atomic_store(&waiters_done, 0);
    atomic_store(&holder_in, false);
    atomic_store(&holder_saw_all, false);
}

/* Waits for wake_ev, then works a little (a sleep keeps its place). */
static int event_waiter(crew_ctx_t *ctx, void *arg, void **result)
{
    int rc;

    (void)ctx;
    (void)arg;
    (void)result;
    code_in();
    atomic_fetch_add(&waiters_ready, 1);
    code_out();
    rc = crew_event_wait(wake_ev);
    code_in();
    crew_sleep(MS / 2);
    code_out();
    atomic_fetch_add(&waiters_done, 1);
    return rc;
}

/* Every waiter woken at once: back from the wait, each needs a place,
 * so no more than the budget run their own code together. */
START_TEST(fiber__woken_waiters_keep_to_the_budget)
{
    crew_t *pool = t_fiber_pool(2, 4);
    crew_stats_t st;

    code_reset();
    ck_assert_int_eq(crew_event_create(&wake_ev), 0);
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(crew_submit(pool, event_waiter, NULL), 0);
    /* Waiters give their places back, so all 40 get in. */
    for (int i = 0; i < 20000 && atomic_load(&waiters_ready) < 40; i++)
        t_sleep(MS / 4);
    ck_assert_int_eq(atomic_load(&waiters_ready), 40);
    ck_assert_int_eq(crew_event_set(wake_ev), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&waiters_done), 40);
    ck_assert_int_le(atomic_load(&most_in_code), 4);
    crew_stats(pool, &st);
    ck_assert_uint_le(st.peak_workers, 4);
    ck_assert_uint_eq(st.completed, 40);
    ck_assert_uint_eq(st.failed, 0);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_event_free(wake_ev), 0);
}
END_TEST

/* Holds the only place (a sleep keeps it) until the woken waiters are
 * done, or 10 s. */
static int place_holder(crew_ctx_t *ctx, void *arg, void **result)
{
    int want = (int)(intptr_t)arg;

    (void)ctx;
    (void)result;
    atomic_store(&holder_in, true);
    for (int i = 0; i < 10000 && atomic_load(&waiters_done) < want; i++)
        crew_sleep(MS);
    atomic_store(&holder_saw_all, atomic_load(&waiters_done) == want);
    return 0;
}

/* Waiters woken while the budget is full wait for places; a larger
 * budget (crew_resize) hands them places at once. */
START_TEST(fiber__resize_up_lets_woken_waiters_go_on)
{
    crew_t *pool = t_fiber_pool(1, 1);

    code_reset();
    ck_assert_int_eq(crew_event_create(&wake_ev), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(crew_submit(pool, event_waiter, NULL), 0);
    for (int i = 0; i < 20000 && atomic_load(&waiters_ready) < 10; i++)
        t_sleep(MS / 4);
    ck_assert_int_eq(atomic_load(&waiters_ready), 10);
    ck_assert_int_eq(crew_submit(pool, place_holder, (void *)10), 0);
    for (int i = 0; i < 20000 && !atomic_load(&holder_in); i++)
        t_sleep(MS / 4);
    ck_assert(atomic_load(&holder_in));
    /* The holder has the only place: the woken waiters cannot go on. */
    ck_assert_int_eq(crew_event_set(wake_ev), 0);
    t_sleep(5 * MS);
    ck_assert_int_eq(atomic_load(&waiters_done), 0);
    ck_assert_int_eq(crew_resize(pool, 0, 11), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert(atomic_load(&holder_saw_all));
    ck_assert_int_le(atomic_load(&most_in_code), 11);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_event_free(wake_ev), 0);
}
END_TEST

static int keeps_errno(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    errno = (int)(intptr_t)arg;
    crew_sleep(2 * MS);
    return errno == (int)(intptr_t)arg ? 0 : 1;
}

/* Each fiber keeps its errno across a switch. */
START_TEST(fiber__errno_is_per_fiber)
{
    crew_t *pool = t_fiber_pool(1, 64);
    crew_stats_t st;

    for (int i = 1; i <= 40; i++)
        ck_assert_int_eq(crew_submit(pool, keeps_errno, (void *)(intptr_t)i),
                         0);
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_stats(pool, &st);
    ck_assert_uint_eq(st.completed, 40);
    ck_assert_uint_eq(st.failed, 0);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

static int patient(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)arg;
    (void)result;
    while (!crew_ctx_timed_out(ctx) && !crew_ctx_cancelled(ctx))
        crew_sleep(2 * MS);
    return crew_ctx_timed_out(ctx) ? CREW_ETIMEDOUT : 0;
}

/* A timed-out fiber is reported at its deadline; others go on. */
START_TEST(fiber__timeout_on_a_fiber)
{
    crew_t *pool = t_fiber_pool(1, 8);
    crew_task_opts_t o = { .timeout_ns = 30 * MS };
    crew_task_t *t;

    ck_assert_int_eq(crew_spawn(pool, patient, NULL, &o, &t), 0);
    ck_assert_int_eq(crew_task_wait(t, NULL), CREW_ETIMEDOUT);
    crew_task_release(t);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

START_TEST(fiber__shutdown_now_and_drain)
{
    crew_t *pool = t_fiber_pool(2, 4);
    crew_stats_t st;

    atomic_store(&entered, 0);
    atomic_store(&left, 0);
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(crew_submit(pool, sleeper, NULL), 0);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_NOW), 0);
    crew_stats(pool, &st);
    ck_assert_uint_eq(st.completed + st.cancelled, 40);
    ck_assert_uint_eq(st.submitted, 40);
    ck_assert_int_eq(crew_free(pool), 0);

    pool = t_fiber_pool(2, 4);
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(crew_submit(pool, sleeper, NULL), 0);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_DRAIN), 0);
    crew_stats(pool, &st);
    ck_assert_uint_eq(st.completed, 40);
    ck_assert_int_eq(atomic_load(&bad_sleeps), 0);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

START_TEST(fiber__sleep_outside_a_fiber_and_bad_options)
{
    crew_opts_t o = { .fibers = true, .fiber_stack_size = 1024 };
    crew_t *pool = NULL;

    ck_assert_int_eq(crew_sleep(MS), 0);
    ck_assert_int_eq(crew_sleep(-1), CREW_EINVAL);
    crew_yield();
    ck_assert_int_eq(crew_create(&pool, &o), CREW_EINVAL);
    ck_assert_ptr_null(pool);
}
END_TEST

static atomic_int sleep_rc_ecanceled, sleep_rc_etimedout, sleep_started;

static int long_sleeper(crew_ctx_t *ctx, void *arg, void **result)
{
    int rc;

    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&sleep_started, 1);
    rc =
        crew_sleep(300 * T_SEC); /* past ctest's timeout: ends early or fails */
    if (rc == CREW_ECANCELED)
        atomic_fetch_add(&sleep_rc_ecanceled, 1);
    else if (rc == CREW_ETIMEDOUT)
        atomic_fetch_add(&sleep_rc_etimedout, 1);
    return rc;
}

static void reset_sleep_counts(void)
{
    atomic_store(&sleep_rc_ecanceled, 0);
    atomic_store(&sleep_rc_etimedout, 0);
    atomic_store(&sleep_started, 0);
}

/* A sleep ends at the attempt's deadline, in both modes. */
static void sleep_ends_at_deadline(bool fibers)
{
    crew_opts_t o = { .fibers = fibers, .threads = 1, .max_workers = 4 };
    crew_task_opts_t to = { .timeout_ns = 30 * MS };
    crew_task_t *t;
    crew_t *pool;
    bool ok;

    reset_sleep_counts();
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, long_sleeper, NULL, &to, &t), 0);
    ck_assert_int_eq(crew_task_wait(t, NULL), CREW_ETIMEDOUT);
    crew_task_release(t);
    /* The task itself comes back from its long sleep with the reason. */
    T_EVENTUALLY(ok, atomic_load(&sleep_rc_etimedout) == 1, 10 * T_SEC);
    ck_assert(ok);
    ck_assert_int_eq(crew_free(pool), 0);
}

START_TEST(fiber__sleep_ends_at_deadline_on_a_fiber)
{
    sleep_ends_at_deadline(true);
}
END_TEST

START_TEST(fiber__sleep_ends_at_deadline_on_a_thread)
{
    sleep_ends_at_deadline(false);
}
END_TEST

/* Shutdown NOW wakes parked fibers (their sleeps say why). */
START_TEST(fiber__shutdown_now_wakes_sleepers)
{
    crew_t *pool = t_fiber_pool(1, 16);
    bool ok;

    reset_sleep_counts();
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(crew_submit(pool, long_sleeper, NULL), 0);
    T_EVENTUALLY(ok, atomic_load(&sleep_started) == 5, 10 * T_SEC);
    ck_assert(ok);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_NOW), 0);
    ck_assert_int_eq(atomic_load(&sleep_rc_ecanceled), 5);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

/* crew_task_cancel on a running, sleeping task ends its sleep (thread). */
START_TEST(fiber__cancel_wakes_a_sleeping_thread_task)
{
    crew_opts_t o = { .max_workers = 1 };
    crew_task_t *t;
    crew_t *pool;
    bool ok;

    reset_sleep_counts();
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, long_sleeper, NULL, NULL, &t), 0);
    T_EVENTUALLY(ok, atomic_load(&sleep_started) == 1, 10 * T_SEC);
    ck_assert(ok);
    ck_assert_int_eq(crew_task_cancel(t), CREW_EBUSY); /* running */
    ck_assert_int_eq(crew_task_wait(t, NULL), CREW_ECANCELED);
    ck_assert_int_eq(atomic_load(&sleep_rc_ecanceled), 1);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fiber");

    crew_add_test(s, fiber__sleep_parks_the_fiber);
    crew_add_test(s, fiber__budget_bounds_tasks_in_flight);
    crew_add_test(s, fiber__woken_waiters_keep_to_the_budget);
    crew_add_test(s, fiber__resize_up_lets_woken_waiters_go_on);
    crew_add_test(s, fiber__yield_takes_turns);
    crew_add_test(s, fiber__tasks_wait_for_tasks_on_one_thread);
    crew_add_test(s, fiber__group_wait_inside_a_fiber);
    crew_add_test(s, fiber__fork_join_with_a_budget_of_one);
    crew_add_test(s, fiber__sleep_ends_at_deadline_on_a_fiber);
    crew_add_test(s, fiber__sleep_ends_at_deadline_on_a_thread);
    crew_add_test(s, fiber__shutdown_now_wakes_sleepers);
    crew_add_test(s, fiber__cancel_wakes_a_sleeping_thread_task);
    crew_add_test(s, fiber__errno_is_per_fiber);
    crew_add_test(s, fiber__timeout_on_a_fiber);
    crew_add_test(s, fiber__shutdown_now_and_drain);
    crew_add_test(s, fiber__sleep_outside_a_fiber_and_bad_options);
    return crew_run_suite(s);
}
