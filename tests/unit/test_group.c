/*
 * test_group.c - task groups and progress reports: a group's wait covers
 * its own tasks and returns the first error, its counts add up, spawning
 * into a cancelled group or a group of another pool is refused, waits
 * time out, groups work from inside tasks, and progress reports come at a
 * bounded rate with a last one when nothing is left.
 */
#include "harness.h"
#include "helpers.h"

#include <crew.h>

#define MS T_MS

static int returns(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    return (int)(intptr_t)arg;
}

static int hold(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    return t_gate_pass(arg) ? 0 : 1;
}

START_TEST(group__wait_returns_first_error_and_counts)
{
    crew_opts_t o = { .max_workers = 1 };
    crew_task_opts_t to = { 0 };
    crew_progress_t p;
    crew_group_t *g;
    crew_t *pool;

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_group_create(pool, NULL, &g), 0);
    to.group = g;
    /* One worker: they run in order, so 7 is the first error. */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(crew_spawn(pool, returns,
                                    (void *)(intptr_t)(i == 3   ? 7
                                                       : i == 6 ? 9
                                                                : 0),
                                    &to, NULL),
                         0);
    ck_assert_int_eq(crew_group_wait(g), 7);
    ck_assert_int_eq(crew_group_error(g), 7);
    crew_group_progress(g, &p);
    ck_assert_uint_eq(p.total, 10);
    ck_assert_uint_eq(p.done, 8);
    ck_assert_uint_eq(p.failed, 2);
    ck_assert_uint_eq(p.cancelled, 0);
    ck_assert_uint_eq(p.running, 0);
    ck_assert_uint_eq(p.queued, 0);
    crew_group_free(g);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

/* A group's wait is its own: other work of the pool may still run. */
START_TEST(group__wait_ignores_other_work)
{
    crew_opts_t o = { .max_workers = 2 };
    crew_task_opts_t to = { 0 };
    t_gate_t gate;
    crew_group_t *g;
    crew_t *pool;

    t_gate_init(&gate);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_group_create(pool, NULL, &g), 0);
    ck_assert_int_eq(crew_submit(pool, hold, &gate), 0); /* not in g */
    to.group = g;
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(crew_spawn(pool, returns, NULL, &to, NULL), 0);
    ck_assert_int_eq(crew_group_wait(g), 0);
    ck_assert_int_eq(crew_group_wait_timeout(g, 0), 0);
    t_gate_open(&gate);
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_group_free(g);
    ck_assert_int_eq(crew_free(pool), 0);
    t_gate_destroy(&gate);
}
END_TEST

START_TEST(group__timeout_cancel_and_refusals)
{
    crew_opts_t o = { .max_workers = 1 };
    crew_task_opts_t to = { 0 };
    t_gate_t gate;
    crew_group_t *g, *other_g;
    crew_t *pool, *other;

    t_gate_init(&gate);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_create(&other, &o), 0);
    ck_assert_int_eq(crew_group_create(pool, NULL, &g), 0);
    ck_assert_int_eq(crew_group_create(other, NULL, &other_g), 0);
    to.group = g;
    ck_assert_int_eq(crew_spawn(pool, hold, &gate, &to, NULL), 0);
    ck_assert_int_eq(crew_spawn(pool, returns, NULL, &to, NULL), 0);
    ck_assert_int_eq(crew_group_wait_timeout(g, 10 * MS), CREW_ETIMEDOUT);
    /* A group of another pool is refused. */
    to.group = other_g;
    ck_assert_int_eq(crew_spawn(pool, returns, NULL, &to, NULL), CREW_EINVAL);
    /* Cancel: the queued one never runs; spawning in is refused. */
    ck_assert_int_eq(crew_group_cancel(g), 0);
    to.group = g;
    ck_assert_int_eq(crew_spawn(pool, returns, NULL, &to, NULL),
                     CREW_ECANCELED);
    t_gate_open(&gate);
    ck_assert_int_eq(crew_group_wait(g), CREW_ECANCELED);
    crew_progress_t p;
    crew_group_progress(g, &p);
    ck_assert_uint_eq(p.total, 2);
    ck_assert_uint_eq(p.cancelled, 1);
    ck_assert_uint_eq(p.done, 1);
    crew_stats_t st;
    crew_stats(pool, &st);
    ck_assert_uint_eq(st.submitted, st.completed + st.failed + st.cancelled);
    crew_group_free(g);
    crew_group_free(other_g);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_free(other), 0);
    t_gate_destroy(&gate);
    ck_assert_int_eq(crew_group_wait(NULL), CREW_EINVAL);
    ck_assert_int_eq(crew_group_cancel(NULL), CREW_EINVAL);
    ck_assert_int_eq(crew_group_error(NULL), CREW_EINVAL);
    crew_group_free(NULL);
}
END_TEST

static int parent(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_task_opts_t to = { 0 };
    crew_group_t *g;
    int rc;

    (void)arg;
    (void)result;
    if (crew_group_create(crew_ctx_pool(ctx), NULL, &g) != 0)
        return 1;
    to.group = g;
    for (int i = 0; i < 16; i++)
        crew_spawn(crew_ctx_pool(ctx), returns, (void *)(intptr_t)(i == 5), &to,
                   NULL);
    rc = crew_group_wait(g);
    crew_group_free(g);
    return rc == 1 ? 0 : 2;
}

/* Groups inside tasks, on a pool of two: the waiters help. */
START_TEST(group__used_from_inside_tasks)
{
    crew_opts_t o = { .max_workers = 2 };
    crew_task_t *t[4];
    crew_t *pool;

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(crew_spawn(pool, parent, NULL, NULL, &t[i]), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(crew_task_wait(t[i], NULL), 0);
        crew_task_release(t[i]);
    }
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

struct seen {
    pthread_mutex_t mu;
    int calls;
    crew_progress_t last;
    int bad;
};

static void on_progress(const crew_progress_t *p, void *user)
{
    struct seen *s = user;

    pthread_mutex_lock(&s->mu);
    s->calls++;
    if (p->done + p->failed + p->cancelled + p->running + p->queued != p->total)
        s->bad++;
    if (p->done + p->failed + p->cancelled >=
        s->last.done + s->last.failed + s->last.cancelled)
        s->last = *p;
    pthread_mutex_unlock(&s->mu);
}

static int short_nap(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    t_sleep(MS / 4);
    return 0;
}

/* Progress of a group and of a pool: counts that add up, a final report
 * with everything done, and a rate bound (a long interval gives few). */
START_TEST(group__progress_reports_bounded_and_final)
{
    struct seen gs = { .mu = PTHREAD_MUTEX_INITIALIZER };
    struct seen ps = { .mu = PTHREAD_MUTEX_INITIALIZER };
    crew_opts_t o = { .max_workers = 2,
                      .on_progress = on_progress,
                      .user = &ps,
                      .progress_interval_ns = 60 * T_SEC };
    crew_group_opts_t go = { .on_progress = on_progress,
                             .user = &gs,
                             .progress_interval_ns = 60 * T_SEC };
    crew_task_opts_t to = { 0 };
    crew_group_t *g;
    crew_t *pool;

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_group_create(pool, &go, &g), 0);
    to.group = g;
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(crew_spawn(pool, short_nap, NULL, &to, NULL), 0);
    ck_assert_int_eq(crew_group_wait(g), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    pthread_mutex_lock(&gs.mu);
    /* The first report (the interval has passed since time 0), and those
     * when nothing was left unfinished: a handful, not a hundred. */
    ck_assert_int_ge(gs.calls, 1);
    ck_assert_int_le(gs.calls, 10);
    ck_assert_int_eq(gs.bad, 0);
    ck_assert_uint_eq(gs.last.total, 100);
    ck_assert_uint_eq(gs.last.done, 100);
    pthread_mutex_unlock(&gs.mu);
    pthread_mutex_lock(&ps.mu);
    ck_assert_int_ge(ps.calls, 1);
    ck_assert_int_le(ps.calls, 10);
    ck_assert_int_eq(ps.bad, 0);
    ck_assert_uint_eq(ps.last.done, 100);
    pthread_mutex_unlock(&ps.mu);
    crew_group_free(g);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

static atomic_int final_reports;

static void count_final(const crew_progress_t *p, void *user)
{
    (void)user;
    if (p->done == p->total)
        atomic_fetch_add(&final_reports, 1);
}

/* crew_group_wait() returns only after the report made when nothing was
 * left has run (the callback may use what the waiter frees next). */
START_TEST(group__wait_covers_the_final_report)
{
    crew_opts_t o = { .max_workers = 2 };
    crew_group_opts_t go = { .on_progress = count_final,
                             .progress_interval_ns = 60 * T_SEC };
    crew_t *pool;

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    for (int round = 0; round < 300; round++) {
        crew_task_opts_t to = { 0 };
        crew_group_t *g;

        atomic_store(&final_reports, 0);
        ck_assert_int_eq(crew_group_create(pool, &go, &g), 0);
        to.group = g;
        for (int i = 0; i < 4; i++)
            ck_assert_int_eq(crew_spawn(pool, returns, NULL, &to, NULL), 0);
        ck_assert_int_eq(crew_group_wait(g), 0);
        ck_assert_msg(atomic_load(&final_reports) >= 1,
                      "round %d: wait returned before the final report", round);
        crew_group_free(g);
    }
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("group");

    crew_add_test(s, group__wait_returns_first_error_and_counts);
    crew_add_test(s, group__wait_ignores_other_work);
    crew_add_test(s, group__timeout_cancel_and_refusals);
    crew_add_test(s, group__used_from_inside_tasks);
    crew_add_test(s, group__progress_reports_bounded_and_final);
    crew_add_test(s, group__wait_covers_the_final_report);
    return crew_run_suite(s);
}
