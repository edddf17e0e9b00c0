/*
 * test_future.c - futures from crew_spawn(): outcome and result, timed
 * wait, poll, states, cancellation and release with free_result.
 */
#include "harness.h"

#include "helpers.h"

/* free_result that counts its calls and remembers the last pointer. */
static atomic_int g_freed;
static void *_Atomic g_freed_ptr;

static void count_free(void *result)
{
    atomic_fetch_add(&g_freed, 1);
    atomic_store(&g_freed_ptr, result);
    free(result);
}

static atomic_int g_task_freed;

static void count_task_free(void *result)
{
    atomic_fetch_add(&g_task_freed, 1);
    free(result);
}

/* A task that waits for a gate (arg: t_blocker_t), then returns a heap
 * int holding 1234 as its result. */
static int gated_result_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    int rc = t_blocker_fn(ctx, arg, NULL);
    int *v = malloc(sizeof *v);
    *v = 1234;
    *result = v;
    return rc;
}

static int result_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    int *v = malloc(sizeof *v);
    *v = *(int *)arg;
    *result = v;
    return 0;
}

static int errno_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    return *(int *)arg;
}

static crew_t *make_pool(unsigned workers)
{
    crew_opts_t o = { .max_workers = workers, .free_result = count_free };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    atomic_store(&g_freed, 0);
    atomic_store(&g_task_freed, 0);
    atomic_store(&g_freed_ptr, NULL);
    return pool;
}

START_TEST(future__wait_returns_outcome_and_result)
{
    crew_t *pool = make_pool(2);
    int in = 77;
    crew_task_t *t = NULL;
    ck_assert((crew_spawn(pool, result_fn, &in, NULL, &t)) == (0));
    ck_assert((t) != NULL);
    void *r = NULL;
    ck_assert((crew_task_wait(t, &r)) == (0));
    ck_assert((r) != NULL);
    ck_assert((*(int *)r) == (77));
    ck_assert((crew_task_state(t)) == (CREW_TASK_DONE));
    crew_task_release(t);
    ck_assert((crew_free(pool)) == (0));
    ck_assert_msg((atomic_load(&g_freed)) == (0),
                  "a collected result was given to free_result");
    free(r);
}
END_TEST

START_TEST(future__task_error_code_returned)
{
    crew_t *pool = make_pool(2);
    int codes[] = { 1, 42, -7, 1 << 20 };
    for (int i = 0; i < 4; i++) {
        crew_task_t *t = NULL;
        ck_assert((crew_spawn(pool, errno_fn, &codes[i], NULL, &t)) == (0));
        ck_assert((crew_task_wait(t, NULL)) == (codes[i]));
        ck_assert((crew_task_state(t)) == (CREW_TASK_FAILED));
        ck_assert((crew_task_poll(t, NULL)) == (codes[i]));
        crew_task_release(t);
    }
    crew_stats_t s = t_stats(pool);
    ck_assert((s.failed) == (4));
    ck_assert((s.completed) == (0));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

START_TEST(future__wait_timeout_etimedout)
{
    crew_t *pool = make_pool(1);
    t_gate_t gate;
    t_gate_init(&gate);
    t_blocker_t b = { NULL, &gate };
    crew_task_t *t = NULL;
    ck_assert((crew_spawn(pool, t_blocker_fn, &b, NULL, &t)) == (0));
    int64_t t0 = t_now();
    ck_assert((crew_task_wait_timeout(t, 20 * T_MS, NULL)) == (CREW_ETIMEDOUT));
    ck_assert_msg((t_now() - t0) >= (19 * T_MS), "timed wait returned early");
    ck_assert((crew_task_wait_timeout(t, 0, NULL)) == (CREW_ETIMEDOUT));
    int st = crew_task_state(t);
    ck_assert_msg(st == CREW_TASK_QUEUED || st == CREW_TASK_RUNNING,
                  "state %d for an unfinished task", st);
    t_gate_open(&gate);
    ck_assert((crew_task_wait_timeout(t, T_LONG, NULL)) == (0));
    ck_assert((crew_task_state(t)) == (CREW_TASK_DONE));
    crew_task_release(t);
    ck_assert((crew_free(pool)) == (0));
    t_gate_destroy(&gate);
}
END_TEST

START_TEST(future__poll_busy_then_outcome)
{
    crew_t *pool = make_pool(1);
    t_gate_t gate;
    t_gate_init(&gate);
    t_blocker_t b = { NULL, &gate };
    crew_task_t *t = NULL;
    ck_assert((crew_spawn(pool, gated_result_fn, &b, NULL, &t)) == (0));
    void *r = NULL;
    ck_assert((crew_task_poll(t, &r)) == (CREW_EBUSY));
    ck_assert_msg((r) == NULL, "poll of an unfinished task stored a result");
    t_gate_open(&gate);
    int rc;
    bool ok;
    T_EVENTUALLY(ok, (rc = crew_task_poll(t, &r)) != CREW_EBUSY, T_LONG);
    ck_assert_msg(ok, "poll never saw the task finish");
    ck_assert((rc) == (0));
    ck_assert((r) != NULL);
    ck_assert((*(int *)r) == (1234));
    crew_task_release(t);
    ck_assert((crew_free(pool)) == (0));
    ck_assert_msg((atomic_load(&g_freed)) == (0), "collected result was freed");
    free(r);
    t_gate_destroy(&gate);
}
END_TEST

START_TEST(future__state_transitions)
{
    crew_t *pool = make_pool(1);
    t_gate_t gate;
    t_count_t started;
    t_gate_init(&gate);
    t_count_init(&started);
    t_blocker_t b1 = { &started, &gate }, b2 = { &started, &gate };
    crew_task_t *t1 = NULL, *t2 = NULL;
    ck_assert((crew_spawn(pool, t_blocker_fn, &b1, NULL, &t1)) == (0));
    ck_assert_msg(t_count_wait(&started, 1, T_LONG), "first task never ran");
    ck_assert((crew_spawn(pool, t_blocker_fn, &b2, NULL, &t2)) == (0));
    ck_assert((crew_task_state(t1)) == (CREW_TASK_RUNNING));
    ck_assert_msg((crew_task_state(t2)) == (CREW_TASK_QUEUED),
                  "second task should wait for the only worker");
    t_gate_open(&gate);
    ck_assert((crew_task_wait(t1, NULL)) == (0));
    ck_assert((crew_task_wait(t2, NULL)) == (0));
    ck_assert((crew_task_state(t1)) == (CREW_TASK_DONE));
    ck_assert((crew_task_state(t2)) == (CREW_TASK_DONE));
    crew_task_release(t1);
    crew_task_release(t2);
    ck_assert((crew_free(pool)) == (0));
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

/* Error callback recording what it saw. */
typedef struct err_seen {
    atomic_int calls;
    atomic_int err;
    void *_Atomic arg;
    atomic_int on_caller;
    pthread_t caller;
} err_seen_t;

static void record_error(void *arg, int err, void *user)
{
    err_seen_t *e = user;
    atomic_fetch_add(&e->calls, 1);
    atomic_store(&e->err, err);
    atomic_store(&e->arg, arg);
    atomic_store(&e->on_caller, pthread_equal(pthread_self(), e->caller));
}

static void must_not_result(void *arg, void *result, void *user)
{
    (void)arg;
    (void)result;
    atomic_fetch_add((atomic_int *)user, 1);
}

START_TEST(future__cancel_queued_task)
{
    crew_t *pool = make_pool(1);
    t_gate_t gate;
    t_count_t started;
    t_gate_init(&gate);
    t_count_init(&started);
    t_blocker_t b = { &started, &gate };
    crew_task_t *blocker = NULL, *t = NULL;
    ck_assert((crew_spawn(pool, t_blocker_fn, &b, NULL, &blocker)) == (0));
    ck_assert(t_count_wait(&started, 1, T_LONG));
    err_seen_t seen = { .caller = pthread_self() };
    atomic_long ran = 0;
    crew_task_opts_t to = { .on_error = record_error, .user = &seen };
    ck_assert((crew_spawn(pool, t_inc_fn, &ran, &to, &t)) == (0));
    ck_assert((crew_task_cancel(t)) == (0));
    ck_assert_msg((atomic_load(&seen.calls)) == (1),
                  "error callback must fire on the cancelling thread");
    ck_assert((atomic_load(&seen.err)) == (CREW_ECANCELED));
    ck_assert((atomic_load(&seen.arg)) == ((void *)&ran));
    ck_assert(atomic_load(&seen.on_caller));
    ck_assert((crew_task_state(t)) == (CREW_TASK_CANCELED));
    ck_assert((crew_task_poll(t, NULL)) == (CREW_ECANCELED));
    ck_assert((crew_task_wait(t, NULL)) == (CREW_ECANCELED));
    ck_assert_msg((crew_task_cancel(t)) == (CREW_EBUSY), "cancelled twice");
    t_gate_open(&gate);
    ck_assert((crew_wait(pool)) == (0));
    ck_assert_msg((atomic_load(&ran)) == (0), "a cancelled task ran");
    ck_assert((atomic_load(&seen.calls)) == (1));
    crew_stats_t s = t_stats(pool);
    ck_assert((s.cancelled) == (1));
    ck_assert((s.completed) == (1));
    ck_assert((s.submitted) == (2));
    crew_task_release(blocker);
    crew_task_release(t);
    ck_assert((crew_free(pool)) == (0));
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

/* Runs until asked to stop; returns 7 if it saw the request, else 1. */
static int until_cancelled_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)result;
    t_count_add(arg, 1);
    int64_t end = t_now() + T_LONG;
    while (t_now() < end) {
        if (crew_ctx_cancelled(ctx))
            return 7;
        t_sleep(T_MS / 10);
    }
    return 1;
}

START_TEST(future__cancel_running_task_sets_flag)
{
    crew_t *pool = make_pool(1);
    t_count_t started;
    t_count_init(&started);
    atomic_int results = 0;
    crew_task_opts_t to = { .on_result = must_not_result, .user = &results };
    crew_task_t *t = NULL;
    ck_assert((crew_spawn(pool, until_cancelled_fn, &started, &to, &t)) == (0));
    ck_assert(t_count_wait(&started, 1, T_LONG));
    ck_assert((crew_task_cancel(t)) == (CREW_EBUSY));
    ck_assert_msg((crew_task_wait(t, NULL)) == (7),
                  "running task did not see crew_ctx_cancelled()");
    ck_assert((crew_task_state(t)) == (CREW_TASK_FAILED));
    crew_task_release(t);
    ck_assert((crew_free(pool)) == (0));
    ck_assert((atomic_load(&results)) == (0));
    t_count_destroy(&started);
}
END_TEST

START_TEST(future__cancel_finished_task_busy)
{
    crew_t *pool = make_pool(1);
    int in = 5;
    crew_task_t *t = NULL;
    ck_assert((crew_spawn(pool, result_fn, &in, NULL, &t)) == (0));
    void *r = NULL;
    ck_assert((crew_task_wait(t, &r)) == (0));
    ck_assert((crew_task_cancel(t)) == (CREW_EBUSY));
    ck_assert((crew_task_state(t)) == (CREW_TASK_DONE));
    crew_task_release(t);
    ck_assert((crew_free(pool)) == (0));
    free(r);
}
END_TEST

START_TEST(future__release_before_completion_frees_result_once)
{
    crew_t *pool = make_pool(1);
    t_gate_t gate;
    t_count_t started;
    t_gate_init(&gate);
    t_count_init(&started);
    t_blocker_t b = { &started, &gate };
    crew_task_t *t = NULL;
    ck_assert((crew_spawn(pool, gated_result_fn, &b, NULL, &t)) == (0));
    ck_assert(t_count_wait(&started, 1, T_LONG));
    crew_task_release(t); /* while running */
    t_gate_open(&gate);
    ck_assert((crew_wait(pool)) == (0));
    bool ok;
    T_EVENTUALLY(ok, atomic_load(&g_freed) >= 1, T_LONG);
    ck_assert_msg(ok, "uncollected result never given to free_result");
    ck_assert((crew_free(pool)) == (0));
    ck_assert_msg((atomic_load(&g_freed)) == (1), "free_result called %d times",
                  atomic_load(&g_freed));
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

START_TEST(future__release_queued_task_still_runs)
{
    crew_t *pool = make_pool(1);
    t_gate_t gate;
    t_count_t started;
    t_gate_init(&gate);
    t_count_init(&started);
    t_blocker_t b = { &started, &gate };
    ck_assert((crew_submit(pool, t_blocker_fn, &b)) == (0));
    ck_assert(t_count_wait(&started, 1, T_LONG));
    int in = 9;
    crew_task_t *t = NULL;
    crew_task_opts_t to = { .free_result = count_task_free };
    ck_assert((crew_spawn(pool, result_fn, &in, &to, &t)) == (0));
    crew_task_release(t); /* while queued */
    t_gate_open(&gate);
    ck_assert((crew_free(pool)) == (0));
    ck_assert_msg((atomic_load(&g_task_freed)) == (1),
                  "task free_result called %d times",
                  atomic_load(&g_task_freed));
    ck_assert_msg((atomic_load(&g_freed)) == (0),
                  "pool free_result used despite the task's own");
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

START_TEST(future__release_after_completion_uncollected)
{
    crew_t *pool = make_pool(1);
    int in = 3;
    crew_task_t *t = NULL;
    ck_assert((crew_spawn(pool, result_fn, &in, NULL, &t)) == (0));
    ck_assert((crew_task_wait(t, NULL)) == (0)); /* result not collected */
    crew_task_release(t);
    bool ok;
    T_EVENTUALLY(ok, atomic_load(&g_freed) >= 1, T_LONG);
    ck_assert_msg(ok, "uncollected result never freed");
    ck_assert((crew_free(pool)) == (0));
    ck_assert((atomic_load(&g_freed)) == (1));
}
END_TEST

START_TEST(future__release_after_collect_keeps_result)
{
    crew_t *pool = make_pool(1);
    int in = 4;
    crew_task_t *t = NULL;
    ck_assert((crew_spawn(pool, result_fn, &in, NULL, &t)) == (0));
    void *r = NULL;
    ck_assert((crew_task_wait(t, &r)) == (0));
    crew_task_release(t);
    ck_assert((crew_free(pool)) == (0));
    ck_assert_msg((atomic_load(&g_freed)) == (0), "collected result was freed");
    ck_assert((*(int *)r) == (4)); /* still valid: ASan would object */
    free(r);
}
END_TEST

START_TEST(future__future_outlives_pool)
{
    crew_t *pool = make_pool(2);
    int in = 11;
    crew_task_t *t = NULL;
    ck_assert((crew_spawn(pool, result_fn, &in, NULL, &t)) == (0));
    ck_assert((crew_free(pool)) == (0)); /* drains */
    ck_assert((crew_task_state(t)) == (CREW_TASK_DONE));
    void *r = NULL;
    ck_assert((crew_task_wait(t, &r)) == (0));
    ck_assert((r) != NULL);
    ck_assert((*(int *)r) == (11));
    crew_task_release(t);
    free(r);
    ck_assert((atomic_load(&g_freed)) == (0));
}
END_TEST

START_TEST(future__many_futures_each_own_result)
{
    crew_t *pool = make_pool(4);
    enum { N = 200 };
    static int in[N];
    crew_task_t *t[N];
    for (int i = 0; i < N; i++) {
        in[i] = i * 3;
        ck_assert((crew_spawn(pool, result_fn, &in[i], NULL, &t[i])) == (0));
    }
    for (int i = N - 1; i >= 0; i--) {
        void *r = NULL;
        ck_assert((crew_task_wait(t[i], &r)) == (0));
        ck_assert((*(int *)r) == (i * 3));
        free(r);
        crew_task_release(t[i]);
    }
    ck_assert((crew_free(pool)) == (0));
    ck_assert((atomic_load(&g_freed)) == (0));
}
END_TEST

/* Releasing an unfinished future twice is a caller's bug; crew ignores
 * the second release instead of freeing the future under its task (which
 * made crew_free wait for ever; found by a new user). */
static crew_event_t *dbl_gate;
static atomic_int dbl_ran;

static int dbl_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    crew_event_wait(dbl_gate);
    atomic_fetch_add(&dbl_ran, 1);
    return 0;
}

START_TEST(future__double_release_of_unfinished_is_ignored)
{
    crew_t *pool = NULL;
    crew_task_t *t = NULL;

    atomic_store(&dbl_ran, 0);
    ck_assert_int_eq(crew_event_create(&dbl_gate), 0);
    ck_assert_int_eq(crew_create(&pool, NULL), 0);
    ck_assert_int_eq(crew_spawn(pool, dbl_fn, NULL, NULL, &t), 0);
    crew_task_release(t);
    crew_task_release(t);
    ck_assert_int_eq(crew_event_set(dbl_gate), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&dbl_ran), 1);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_event_free(dbl_gate), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("future");

    crew_add_test(s, future__wait_returns_outcome_and_result);
    crew_add_test(s, future__task_error_code_returned);
    crew_add_test(s, future__wait_timeout_etimedout);
    crew_add_test(s, future__poll_busy_then_outcome);
    crew_add_test(s, future__state_transitions);
    crew_add_test(s, future__cancel_queued_task);
    crew_add_test(s, future__cancel_running_task_sets_flag);
    crew_add_test(s, future__cancel_finished_task_busy);
    crew_add_test(s, future__release_before_completion_frees_result_once);
    crew_add_test(s, future__release_queued_task_still_runs);
    crew_add_test(s, future__release_after_completion_uncollected);
    crew_add_test(s, future__release_after_collect_keeps_result);
    crew_add_test(s, future__future_outlives_pool);
    crew_add_test(s, future__many_futures_each_own_result);
    crew_add_test(s, future__double_release_of_unfinished_is_ignored);
    return crew_run_suite(s);
}
