/*
 * test_shutdown.c - graceful (DRAIN) and immediate (NOW) shutdown, repeated
 * and concurrent shutdown, crew_free() without shutdown.
 */
#include "harness.h"

#include "helpers.h"

/* Counts worker threads alive according to the hooks. */
static void hook_start(crew_t *pool, unsigned id, void *user)
{
    (void)pool;
    (void)id;
    atomic_fetch_add((atomic_int *)user, 1);
}

static void hook_stop(crew_t *pool, unsigned id, void *user)
{
    (void)pool;
    (void)id;
    atomic_fetch_sub((atomic_int *)user, 1);
}

static int slow_inc_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    t_sleep(T_MS / 2);
    atomic_fetch_add((atomic_long *)arg, 1);
    return 0;
}

START_TEST(shutdown__drain_runs_every_task)
{
    atomic_int live = 0;
    crew_opts_t o = { .max_workers = 2,
                      .on_thread_start = hook_start,
                      .on_thread_stop = hook_stop,
                      .user = &live };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    atomic_long n = 0;
    for (int i = 0; i < 60; i++)
        ck_assert((crew_submit(pool, slow_inc_fn, &n)) == (0));
    ck_assert((crew_shutdown(pool, CREW_SHUTDOWN_DRAIN)) == (0));
    ck_assert_msg((atomic_load(&n)) == (60), "drain dropped tasks");
    crew_stats_t s = t_stats(pool);
    ck_assert((s.completed) == (60));
    ck_assert((s.cancelled) == (0));
    ck_assert_msg((s.workers) == (0), "workers left after shutdown");
    ck_assert_msg((atomic_load(&live)) == (0), "stop hooks missing at return");
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

/* Error callback counting cancellations of its tasks. */
static void count_cancel(void *arg, int err, void *user)
{
    (void)arg;
    if (err == CREW_ECANCELED)
        atomic_fetch_add((atomic_int *)user, 1);
}

/* Runs until asked to stop: returns 0 if it saw the request, else 1. */
static int until_cancelled_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)result;
    t_count_add(arg, 1);
    int64_t end = t_now() + T_LONG;
    while (t_now() < end) {
        if (crew_ctx_cancelled(ctx))
            return 0;
        t_sleep(T_MS / 10);
    }
    return 1;
}

START_TEST(shutdown__now_cancels_queued_and_flags_running)
{
    atomic_int cancels = 0;
    crew_opts_t o = { .max_workers = 2,
                      .on_error = count_cancel,
                      .user = &cancels };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    t_count_t started;
    t_count_init(&started);
    crew_task_t *running[2], *queued[10];
    for (int i = 0; i < 2; i++)
        ck_assert((crew_spawn(pool, until_cancelled_fn, &started, NULL,
                              &running[i])) == (0));
    ck_assert_msg(t_count_wait(&started, 2, T_LONG), "workers never started");
    atomic_long ran = 0;
    for (int i = 0; i < 10; i++)
        ck_assert((crew_spawn(pool, t_inc_fn, &ran, NULL, &queued[i])) == (0));
    for (int i = 0; i < 5; i++) /* futureless ones too */
        ck_assert((crew_submit(pool, t_inc_fn, &ran)) == (0));
    ck_assert((crew_shutdown(pool, CREW_SHUTDOWN_NOW)) == (0));
    ck_assert_msg((atomic_load(&ran)) == (0), "a queued task ran after NOW");
    for (int i = 0; i < 2; i++) {
        ck_assert_msg((crew_task_poll(running[i], NULL)) == (0),
                      "running task did not see the stop request");
        crew_task_release(running[i]);
    }
    for (int i = 0; i < 10; i++) {
        ck_assert((crew_task_state(queued[i])) == (CREW_TASK_CANCELED));
        ck_assert((crew_task_wait(queued[i], NULL)) == (CREW_ECANCELED));
        crew_task_release(queued[i]);
    }
    ck_assert_msg((atomic_load(&cancels)) == (15),
                  "error callback saw %d cancellations", atomic_load(&cancels));
    crew_stats_t s = t_stats(pool);
    ck_assert((s.cancelled) == (15));
    ck_assert((s.completed) == (2));
    ck_assert((s.submitted) == (s.completed + s.failed + s.cancelled));
    ck_assert((s.running) == (0));
    ck_assert((s.queued) == (0));
    ck_assert((s.workers) == (0));
    ck_assert((crew_free(pool)) == (0));
    t_count_destroy(&started);
}
END_TEST

START_TEST(shutdown__twice_is_harmless)
{
    for (int how = 0; how < 2; how++) {
        crew_opts_t o = { .max_workers = 2 };
        crew_t *pool = NULL;
        ck_assert((crew_create(&pool, &o)) == (0));
        atomic_long n = 0;
        for (int i = 0; i < 10; i++)
            ck_assert((crew_submit(pool, t_inc_fn, &n)) == (0));
        ck_assert((crew_shutdown(pool, CREW_SHUTDOWN_DRAIN)) == (0));
        ck_assert((atomic_load(&n)) == (10));
        ck_assert((crew_shutdown(pool, how)) == (0));
        ck_assert((crew_shutdown(pool, CREW_SHUTDOWN_NOW)) == (0));
        ck_assert((crew_wait(pool)) == (0));
        crew_stats_t s = t_stats(pool);
        ck_assert((s.completed) == (10));
        ck_assert((s.cancelled) == (0));
        ck_assert((crew_free(pool)) == (0));
    }
}
END_TEST

/* Two threads shut the pool down at once; each must return only after
 * every task has finished. */
typedef struct closer {
    crew_t *pool;
    int how;
    atomic_long *done_tasks;
    atomic_long seen_at_return;
    atomic_int rc;
    t_count_t *returned;
    pthread_t th;
} closer_t;

static void *closer_main(void *arg)
{
    closer_t *c = arg;
    atomic_store(&c->rc, crew_shutdown(c->pool, c->how));
    atomic_store(&c->seen_at_return, atomic_load(c->done_tasks));
    t_count_add(c->returned, 1);
    return NULL;
}

static int gated_inc_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    void **pair = arg;
    int rc = t_blocker_fn(ctx, pair[0], NULL);
    atomic_fetch_add((atomic_long *)pair[1], 1);
    return rc;
}

START_TEST(shutdown__concurrent_callers_all_wait)
{
    crew_opts_t o = { .max_workers = 2 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    t_gate_t gate;
    t_count_t started, returned;
    t_gate_init(&gate);
    t_count_init(&started);
    t_count_init(&returned);
    t_blocker_t b = { &started, &gate };
    atomic_long done = 0;
    void *pair[2] = { &b, &done };
    for (int i = 0; i < 6; i++)
        ck_assert((crew_submit(pool, gated_inc_fn, pair)) == (0));
    ck_assert(t_count_wait(&started, 2, T_LONG));
    closer_t c[3];
    for (int i = 0; i < 3; i++) {
        c[i].pool = pool;
        c[i].how = CREW_SHUTDOWN_DRAIN;
        c[i].done_tasks = &done;
        c[i].returned = &returned;
        atomic_store(&c[i].rc, 99999);
        atomic_store(&c[i].seen_at_return, -1);
        ck_assert((pthread_create(&c[i].th, NULL, closer_main, &c[i])) == (0));
    }
    ck_assert_msg(!t_count_wait(&returned, 1, 50 * T_MS),
                  "a shutdown returned while tasks were still running");
    t_gate_open(&gate);
    for (int i = 0; i < 3; i++) {
        pthread_join(c[i].th, NULL);
        ck_assert((atomic_load(&c[i].rc)) == (0));
        ck_assert_msg((atomic_load(&c[i].seen_at_return)) == (6),
                      "shutdown %d returned with %ld of 6 tasks done", i,
                      atomic_load(&c[i].seen_at_return));
    }
    ck_assert((t_stats(pool).workers) == (0));
    ck_assert((crew_free(pool)) == (0));
    t_gate_destroy(&gate);
    t_count_destroy(&started);
    t_count_destroy(&returned);
}
END_TEST

START_TEST(shutdown__free_without_shutdown_drains)
{
    atomic_int live = 0;
    crew_opts_t o = { .max_workers = 3,
                      .on_thread_start = hook_start,
                      .on_thread_stop = hook_stop,
                      .user = &live };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    atomic_long n = 0;
    for (int i = 0; i < 40; i++)
        ck_assert((crew_submit(pool, slow_inc_fn, &n)) == (0));
    ck_assert((crew_free(pool)) == (0));
    ck_assert_msg((atomic_load(&n)) == (40), "crew_free dropped queued tasks");
    ck_assert_msg((atomic_load(&live)) == (0), "crew_free left threads behind");
}
END_TEST

START_TEST(shutdown__free_after_now_shutdown)
{
    crew_opts_t o = { .max_workers = 1 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    atomic_long n = 0;
    for (int i = 0; i < 100; i++)
        ck_assert((crew_submit(pool, slow_inc_fn, &n)) == (0));
    ck_assert((crew_shutdown(pool, CREW_SHUTDOWN_NOW)) == (0));
    long ran = atomic_load(&n);
    crew_stats_t s = t_stats(pool);
    ck_assert((s.completed) == ((uint64_t)ran));
    ck_assert((s.completed + s.cancelled) == (100));
    ck_assert((crew_free(pool)) == (0));
    ck_assert_msg((atomic_load(&n)) == (ran),
                  "a task ran after shutdown returned");
}
END_TEST

START_TEST(shutdown__free_null_is_zero)
{
    ck_assert((crew_free(NULL)) == (0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shutdown");

    crew_add_test(s, shutdown__drain_runs_every_task);
    crew_add_test(s, shutdown__now_cancels_queued_and_flags_running);
    crew_add_test(s, shutdown__twice_is_harmless);
    crew_add_test(s, shutdown__concurrent_callers_all_wait);
    crew_add_test(s, shutdown__free_without_shutdown_drains);
    crew_add_test(s, shutdown__free_after_now_shutdown);
    crew_add_test(s, shutdown__free_null_is_zero);
    return crew_run_suite(s);
}
