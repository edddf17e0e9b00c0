/*
 * test_resize.c - crew_resize(): growing starts workers for queued work and
 * wakes blocked submitters, shrinking returns once the new bound holds and
 * the live count never exceeds the maximum shown.
 */
#include "harness.h"

#include "helpers.h"

START_TEST(resize__grow_starts_workers_for_queued_work)
{
    /* threads: in a fiber run (harness.h), the 4 tasks that block at
     * once after the growth need a thread each. */
    crew_opts_t o = { .max_workers = 1, .threads = 4 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    t_gate_t gate;
    t_count_t started;
    t_gate_init(&gate);
    t_count_init(&started);
    t_blocker_t b = { &started, &gate };
    for (int i = 0; i < 4; i++)
        ck_assert((crew_submit(pool, t_blocker_fn, &b)) == (0));
    ck_assert(t_count_wait(&started, 1, T_LONG));
    crew_stats_t s = t_stats(pool);
    ck_assert((s.running) == (1));
    ck_assert((s.queued) == (3));
    ck_assert((crew_resize(pool, 0, 4)) == (0));
    ck_assert_msg(t_count_wait(&started, 4, T_LONG),
                  "growing did not start workers for the queued tasks");
    s = t_stats(pool);
    ck_assert((s.max_workers) == (4));
    ck_assert((s.running) == (4));
    ck_assert((s.workers) == (4));
    t_gate_open(&gate);
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((t_stats(pool).completed) == (4));
    ck_assert((crew_free(pool)) == (0));
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

START_TEST(resize__grow_min_starts_workers)
{
    crew_opts_t o = { .max_workers = 4 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    ck_assert((t_stats(pool).workers) == (0));
    ck_assert((crew_resize(pool, 3, 6)) == (0));
    crew_stats_t s = t_stats(pool);
    ck_assert((s.min_workers) == (3));
    ck_assert((s.max_workers) == (6));
    ck_assert_msg((s.workers) >= (3), "resize returned with %u workers, min 3",
                  s.workers);
    ck_assert((s.workers) <= (6));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

typedef struct blocked_submit {
    crew_t *pool;
    atomic_long ran;
    atomic_int rc;
    t_count_t done;
    pthread_t th;
} blocked_submit_t;

static void *blocked_submit_main(void *arg)
{
    blocked_submit_t *b = arg;
    atomic_store(&b->rc, crew_submit(b->pool, t_inc_fn, &b->ran));
    t_count_add(&b->done, 1);
    return NULL;
}

START_TEST(resize__grow_wakes_blocked_submitter)
{
    crew_opts_t o = { .max_workers = 1, .queue_capacity = 1 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    t_gate_t gate;
    t_count_t started;
    t_gate_init(&gate);
    t_count_init(&started);
    t_blocker_t b = { &started, &gate };
    atomic_long filler = 0;
    ck_assert((crew_submit(pool, t_blocker_fn, &b)) == (0));
    ck_assert(t_count_wait(&started, 1, T_LONG));
    ck_assert((crew_try_submit(pool, t_inc_fn, &filler)) == (0));
    ck_assert((crew_try_submit(pool, t_inc_fn, &filler)) == (CREW_EAGAIN));
    blocked_submit_t bs = { .pool = pool };
    atomic_store(&bs.rc, 99999);
    t_count_init(&bs.done);
    ck_assert((pthread_create(&bs.th, NULL, blocked_submit_main, &bs)) == (0));
    ck_assert_msg(!t_count_wait(&bs.done, 1, 30 * T_MS),
                  "submit did not block on a full queue");
    ck_assert((crew_resize(pool, 0, 3)) == (0));
    /* The blocker still holds its worker: only the growth makes room. */
    ck_assert_msg(t_count_wait(&bs.done, 1, T_LONG),
                  "growing the pool did not wake the blocked submitter");
    ck_assert((atomic_load(&bs.rc)) == (0));
    pthread_join(bs.th, NULL);
    t_gate_open(&gate);
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((atomic_load(&filler)) == (1));
    ck_assert((atomic_load(&bs.ran)) == (1));
    ck_assert((crew_free(pool)) == (0));
    t_count_destroy(&bs.done);
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

START_TEST(resize__shrink_idle_pool)
{
    crew_opts_t o = { .min_workers = 4,
                      .max_workers = 4,
                      .idle_timeout_ns = -1 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    ck_assert((t_stats(pool).workers) == (4));
    ck_assert((crew_resize(pool, 0, 1)) == (0));
    crew_stats_t s = t_stats(pool);
    ck_assert((s.max_workers) == (1));
    ck_assert((s.min_workers) == (0));
    ck_assert_msg((s.workers) <= (1), "resize returned with %u live workers",
                  s.workers);
    atomic_long n = 0;
    for (int i = 0; i < 20; i++)
        ck_assert((crew_submit(pool, t_inc_fn, &n)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((atomic_load(&n)) == (20));
    ck_assert((t_stats(pool).peak_workers) <= (4));
    ck_assert((t_stats(pool).workers) <= (1));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

/* Samples the stats until told to stop; counts snapshots with more live
 * workers (or running tasks) than the maximum shown. */
typedef struct sampler {
    crew_t *pool;
    atomic_int stop;
    atomic_long samples, violations;
    pthread_t th;
} sampler_t;

static void *sampler_main(void *arg)
{
    sampler_t *s = arg;
    while (!atomic_load(&s->stop)) {
        crew_stats_t st = t_stats(s->pool);
        if (t_above_max(&st) || st.min_workers > st.max_workers)
            atomic_fetch_add(&s->violations, 1);
        atomic_fetch_add(&s->samples, 1);
        sched_yield();
    }
    return NULL;
}

static void sampler_start(sampler_t *s, crew_t *pool)
{
    s->pool = pool;
    atomic_store(&s->stop, 0);
    atomic_store(&s->samples, 0);
    atomic_store(&s->violations, 0);
    ck_assert((pthread_create(&s->th, NULL, sampler_main, s)) == (0));
}

static void sampler_stop(sampler_t *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
}

typedef struct resizer {
    crew_t *pool;
    unsigned min, max;
    atomic_int rc;
    t_count_t done;
    pthread_t th;
} resizer_t;

static void *resizer_main(void *arg)
{
    resizer_t *r = arg;
    atomic_store(&r->rc, crew_resize(r->pool, r->min, r->max));
    t_count_add(&r->done, 1);
    return NULL;
}

START_TEST(resize__shrink_busy_pool_waits_for_tasks)
{
    crew_opts_t o = { .max_workers = 4, .idle_timeout_ns = -1 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    sampler_t smp;
    sampler_start(&smp, pool);
    t_gate_t gate;
    t_count_t started;
    t_gate_init(&gate);
    t_count_init(&started);
    t_blocker_t b = { &started, &gate };
    for (int i = 0; i < 8; i++)
        ck_assert((crew_submit(pool, t_blocker_fn, &b)) == (0));
    ck_assert(t_count_wait(&started, 4, T_LONG));
    resizer_t r = { .pool = pool, .min = 0, .max = 1 };
    t_count_init(&r.done);
    atomic_store(&r.rc, 99999);
    ck_assert((pthread_create(&r.th, NULL, resizer_main, &r)) == (0));
    /* Four tasks hold four workers: the bound cannot hold yet. */
    ck_assert_msg(!t_count_wait(&r.done, 1, 50 * T_MS),
                  "shrink returned with 4 busy workers");
    crew_stats_t s = t_stats(pool);
    ck_assert((s.workers) <= (s.max_workers));
    t_gate_open(&gate);
    ck_assert_msg(t_count_wait(&r.done, 1, T_LONG), "shrink never returned");
    ck_assert((atomic_load(&r.rc)) == (0));
    s = t_stats(pool);
    ck_assert((s.max_workers) == (1));
    ck_assert_msg((s.workers) <= (1), "shrink returned with %u workers",
                  s.workers);
    ck_assert((s.running) <= (1));
    pthread_join(r.th, NULL);
    ck_assert((crew_wait(pool)) == (0));
    s = t_stats(pool);
    ck_assert((s.completed) == (8));
    sampler_stop(&smp);
    ck_assert((atomic_load(&smp.samples)) > (0));
    ck_assert_msg((atomic_load(&smp.violations)) == (0),
                  "%ld snapshots showed more workers than max_workers",
                  atomic_load(&smp.violations));
    ck_assert((crew_free(pool)) == (0));
    t_count_destroy(&r.done);
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

/* A task that shrinks its own pool: must not wait for itself. */
static int self_shrink_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)result;
    return crew_resize(crew_ctx_pool(ctx), 0, *(unsigned *)arg);
}

START_TEST(resize__shrink_from_task_does_not_wait_for_itself)
{
    crew_opts_t o = { .max_workers = 3 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    unsigned to = 1;
    crew_task_t *t = NULL;
    ck_assert((crew_spawn(pool, self_shrink_fn, &to, NULL, &t)) == (0));
    ck_assert_msg((crew_task_wait(t, NULL)) == (0),
                  "resize from a task failed");
    crew_task_release(t);
    crew_stats_t s = t_stats(pool);
    ck_assert((s.max_workers) == (1));
    ck_assert((s.workers) <= (1));
    atomic_long n = 0;
    for (int i = 0; i < 10; i++)
        ck_assert((crew_submit(pool, t_inc_fn, &n)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((atomic_load(&n)) == (10));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

/* Tasks record the most that ran at once. */
typedef struct peak {
    atomic_int now, max;
} peak_t;

static int peak_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    peak_t *p = arg;
    int n = atomic_fetch_add(&p->now, 1) + 1;
    int m = atomic_load(&p->max);
    while (n > m && !atomic_compare_exchange_weak(&p->max, &m, n)) {
    }
    t_sleep(T_MS / 5);
    atomic_fetch_sub(&p->now, 1);
    return 0;
}

START_TEST(resize__shrunk_bound_limits_concurrency)
{
    crew_opts_t o = { .max_workers = 6, .prespawn = true };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    ck_assert((crew_resize(pool, 0, 2)) == (0));
    peak_t p = { 0 };
    for (int i = 0; i < 60; i++)
        ck_assert((crew_submit(pool, peak_fn, &p)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert_msg((atomic_load(&p.max)) <= (2),
                  "%d ran at once after shrink to 2", atomic_load(&p.max));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("resize");

    crew_add_test(s, resize__grow_starts_workers_for_queued_work);
    crew_add_test(s, resize__grow_min_starts_workers);
    crew_add_test(s, resize__grow_wakes_blocked_submitter);
    crew_add_test(s, resize__shrink_idle_pool);
    crew_add_test(s, resize__shrink_busy_pool_waits_for_tasks);
    crew_add_test(s, resize__shrink_from_task_does_not_wait_for_itself);
    crew_add_test(s, resize__shrunk_bound_limits_concurrency);
    return crew_run_suite(s);
}
