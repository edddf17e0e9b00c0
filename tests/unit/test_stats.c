/*
 * test_stats.c - crew_stats(): counters at quiet moments and live values
 * while tasks run and wait.
 */
#include "harness.h"

#include "helpers.h"

static int ret_arg_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    return (int)(intptr_t)arg;
}

START_TEST(stats__quiet_counts_add_up)
{
    crew_opts_t o = { .max_workers = 1 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    t_gate_t gate;
    t_count_t started;
    t_gate_init(&gate);
    t_count_init(&started);
    t_blocker_t b = { &started, &gate };
    ck_assert((crew_submit(pool, t_blocker_fn, &b)) == (0));
    ck_assert(t_count_wait(&started, 1, T_LONG));
    crew_task_t *c[3];
    for (int i = 0; i < 3; i++) /* to be cancelled */
        ck_assert((crew_spawn(pool, t_nop_fn, NULL, NULL, &c[i])) == (0));
    for (int i = 0; i < 7; i++) /* will fail */
        ck_assert((crew_submit(pool, ret_arg_fn, (void *)(intptr_t)3)) == (0));
    for (int i = 0; i < 11; i++) /* will succeed */
        ck_assert((crew_submit(pool, ret_arg_fn, (void *)(intptr_t)0)) == (0));
    crew_stats_t s = t_stats(pool);
    ck_assert((s.submitted) == (22));
    ck_assert((s.queued) == (21));
    ck_assert((s.running) == (1));
    for (int i = 0; i < 3; i++) {
        ck_assert((crew_task_cancel(c[i])) == (0));
        crew_task_release(c[i]);
    }
    s = t_stats(pool);
    ck_assert((s.queued) == (18));
    ck_assert((s.cancelled) == (3));
    t_gate_open(&gate);
    ck_assert((crew_wait(pool)) == (0));
    s = t_stats(pool);
    ck_assert((s.submitted) == (22));
    ck_assert((s.completed) == (12));
    ck_assert((s.failed) == (7));
    ck_assert((s.cancelled) == (3));
    ck_assert((s.submitted) == (s.completed + s.failed + s.cancelled));
    ck_assert((s.running) == (0));
    ck_assert((s.queued) == (0));
    ck_assert((s.rejected) == (0));
    ck_assert((crew_free(pool)) == (0));
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

START_TEST(stats__live_running_queued_and_idle)
{
    crew_opts_t o = { .min_workers = 3,
                      .max_workers = 3,
                      .idle_timeout_ns = -1 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    bool ok;
    T_EVENTUALLY(ok, t_stats(pool).idle_workers == 3, T_LONG);
    ck_assert_msg(ok, "3 idle workers never showed as idle");
    t_gate_t gate;
    t_count_t started;
    t_gate_init(&gate);
    t_count_init(&started);
    t_blocker_t b = { &started, &gate };
    for (int i = 0; i < 2; i++)
        ck_assert((crew_submit(pool, t_blocker_fn, &b)) == (0));
    ck_assert(t_count_wait(&started, 2, T_LONG));
    crew_stats_t s = t_stats(pool);
    ck_assert((s.running) == (2));
    /* Live workers: all 3 threads; in a fiber run (harness.h) workers
     * are fibers, so the 2 tasks in flight. */
    ck_assert((s.workers) == (crew_test_fibers() ? 2u : 3u));
    /* The third worker may have been woken for the second task (a
     * wake-up passed on) and not be back asleep yet. */
    T_EVENTUALLY(ok, t_stats(pool).idle_workers == 1, T_LONG);
    ck_assert(ok);
    ck_assert((s.queued) == (0));
    ck_assert((crew_submit(pool, t_blocker_fn, &b)) == (0));
    ck_assert(t_count_wait(&started, 3, T_LONG));
    for (int i = 0; i < 4; i++)
        ck_assert((crew_submit(pool, t_blocker_fn, &b)) == (0));
    s = t_stats(pool);
    ck_assert((s.running) == (3));
    ck_assert((s.idle_workers) == (0));
    ck_assert((s.queued) == (4));
    ck_assert((s.peak_workers) == (3));
    ck_assert((s.workers) <= (s.max_workers));
    t_gate_open(&gate);
    ck_assert((crew_wait(pool)) == (0));
    s = t_stats(pool);
    ck_assert((s.running) == (0));
    ck_assert((s.queued) == (0));
    ck_assert((s.completed) == (7));
    T_EVENTUALLY(ok, t_stats(pool).idle_workers == 3, T_LONG);
    ck_assert_msg(ok, "workers did not go back to idle");
    ck_assert((crew_free(pool)) == (0));
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

START_TEST(stats__peak_workers_kept)
{
    crew_opts_t o = { .max_workers = 4, .prespawn = true };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    ck_assert((crew_resize(pool, 0, 1)) == (0));
    crew_stats_t s = t_stats(pool);
    ck_assert_msg((s.peak_workers) == (4),
                  "peak forgot the prespawned workers");
    ck_assert((s.workers) <= (1));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stats");

    crew_add_test(s, stats__quiet_counts_add_up);
    crew_add_test(s, stats__live_running_queued_and_idle);
    crew_add_test(s, stats__peak_workers_kept);
    return crew_run_suite(s);
}
