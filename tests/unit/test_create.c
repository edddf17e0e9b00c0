/*
 * test_create.c - pool creation and defaults, workers started at create,
 * thread hooks, idle retirement, crew_wait on an idle pool.
 */
#include "harness.h"

#include <string.h>
#include <unistd.h>

#include "helpers.h"

START_TEST(create__defaults_with_null_opts)
{
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, NULL)) == (0));
    ck_assert((pool) != NULL);
    crew_stats_t s = t_stats(pool);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert((s.min_workers) == (0));
    ck_assert_msg(((long)s.max_workers) == (cpus), "default max %u, cpus %ld",
                  s.max_workers, cpus);
    ck_assert_msg((s.workers) == (0), "min_workers 0 must start no thread");
    ck_assert((s.submitted) == (0));
    atomic_long n = 0;
    for (int i = 0; i < 50; i++)
        ck_assert((crew_submit(pool, t_inc_fn, &n)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((atomic_load(&n)) == (50));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

START_TEST(create__crew_new_works)
{
    crew_t *pool = crew_new(NULL);
    ck_assert((pool) != NULL);
    atomic_long n = 0;
    ck_assert((crew_submit(pool, t_inc_fn, &n)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((atomic_load(&n)) == (1));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

/* Hook bookkeeping: one slot per thread, found by pthread_self(). */
enum { MAX_THREADS = 64 };

typedef struct hooks {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t main_thread;
    crew_t *_Atomic pool; /* set once create returned */
    pthread_t th[MAX_THREADS];
    int starts[MAX_THREADS];
    int stops[MAX_THREADS];
    int nthreads;
    int total_starts, total_stops;
    int errors; /* wrong thread, user, or pool */
    crew_t *seen_pool[2 * MAX_THREADS];
    int nseen;
} hooks_t;

static void hooks_init(hooks_t *h)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->main_thread = pthread_self();
}

static void hooks_destroy(hooks_t *h)
{
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
}

static int hooks_slot(hooks_t *h)
{
    for (int i = 0; i < h->nthreads; i++)
        if (pthread_equal(h->th[i], pthread_self()))
            return i;
    if (h->nthreads == MAX_THREADS)
        return -1;
    h->th[h->nthreads] = pthread_self();
    return h->nthreads++;
}

static void hook_common(hooks_t *h, crew_t *pool, bool start)
{
    pthread_mutex_lock(&h->mu);
    if (pthread_equal(pthread_self(), h->main_thread))
        h->errors++;
    if (h->nseen < 2 * MAX_THREADS)
        h->seen_pool[h->nseen++] = pool;
    int i = hooks_slot(h);
    if (i < 0) {
        h->errors++;
    } else if (start) {
        h->starts[i]++;
        h->total_starts++;
    } else {
        if (h->starts[i] != 1)
            h->errors++; /* stop hook without start on this thread */
        h->stops[i]++;
        h->total_stops++;
    }
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void on_start(crew_t *pool, unsigned id, void *user)
{
    (void)id;
    hook_common(user, pool, true);
}

static void on_stop(crew_t *pool, unsigned id, void *user)
{
    (void)id;
    hook_common(user, pool, false);
}

/* Wait until total_stops reaches n; false on timeout. */
static bool hooks_wait_stops(hooks_t *h, int n, int64_t timeout_ns)
{
    struct timespec ts;
    t_abstime(&ts, timeout_ns);
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    while (h->total_stops < n && rc == 0)
        rc = pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    bool ok = h->total_stops >= n;
    pthread_mutex_unlock(&h->mu);
    return ok;
}

static bool hooks_wait_starts(hooks_t *h, int n, int64_t timeout_ns)
{
    struct timespec ts;
    t_abstime(&ts, timeout_ns);
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    while (h->total_starts < n && rc == 0)
        rc = pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    bool ok = h->total_starts >= n;
    pthread_mutex_unlock(&h->mu);
    return ok;
}

static void hooks_check_balanced(hooks_t *h, crew_t *pool, int threads)
{
    pthread_mutex_lock(&h->mu);
    ck_assert_msg((h->errors) == (0), "hook ran on the wrong thread or twice");
    ck_assert((h->nthreads) == (threads));
    ck_assert((h->total_starts) == (threads));
    ck_assert((h->total_stops) == (threads));
    for (int i = 0; i < h->nthreads; i++) {
        ck_assert_msg((h->starts[i]) == (1), "thread %d started %d times", i,
                      h->starts[i]);
        ck_assert_msg((h->stops[i]) == (1), "thread %d stopped %d times", i,
                      h->stops[i]);
    }
    for (int i = 0; i < h->nseen; i++)
        ck_assert_msg((h->seen_pool[i]) == (pool), "hook got the wrong pool");
    pthread_mutex_unlock(&h->mu);
}

START_TEST(create__min_workers_started_at_create)
{
    hooks_t h;
    hooks_init(&h);
    crew_opts_t o = { .min_workers = 3,
                      .max_workers = 6,
                      .on_thread_start = on_start,
                      .on_thread_stop = on_stop,
                      .user = &h };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    crew_stats_t s = t_stats(pool);
    ck_assert_msg((s.workers) == (3), "create returned with %u workers",
                  s.workers);
    ck_assert((s.min_workers) == (3));
    ck_assert((s.max_workers) == (6));
    ck_assert_msg(hooks_wait_starts(&h, 3, T_LONG), "start hooks missing");
    ck_assert((crew_shutdown(pool, CREW_SHUTDOWN_DRAIN)) == (0));
    /* shutdown returns after every worker has exited */
    s = t_stats(pool);
    ck_assert((s.workers) == (0));
    hooks_check_balanced(&h, pool, 3);
    ck_assert((crew_free(pool)) == (0));
    hooks_destroy(&h);
}
END_TEST

START_TEST(create__prespawn_starts_max_workers)
{
    hooks_t h;
    hooks_init(&h);
    crew_opts_t o = { .min_workers = 1,
                      .max_workers = 5,
                      .prespawn = true,
                      .on_thread_start = on_start,
                      .on_thread_stop = on_stop,
                      .user = &h };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    crew_stats_t s = t_stats(pool);
    ck_assert_msg((s.workers) == (5), "prespawn started %u workers", s.workers);
    ck_assert((s.peak_workers) == (5));
    ck_assert(hooks_wait_starts(&h, 5, T_LONG));
    ck_assert((crew_free(pool)) == (0));
    hooks_check_balanced(&h, pool, 5);
    hooks_destroy(&h);
}
END_TEST

/* Each task waits until `need` tasks are running at once, so that the
 * pool must start that many threads. */
typedef struct rendezvous {
    t_count_t arrived;
    long need;
} rendezvous_t;

static int rendezvous_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    rendezvous_t *r = arg;
    t_count_add(&r->arrived, 1);
    return t_count_wait(&r->arrived, r->need, T_LONG) ? 0 : 1;
}

START_TEST(create__hooks_once_per_thread)
{
    hooks_t h;
    hooks_init(&h);
    crew_opts_t o = { .max_workers = 4,
                      .idle_timeout_ns = -1,
                      .on_thread_start = on_start,
                      .on_thread_stop = on_stop,
                      .user = &h };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    rendezvous_t r = { .need = 4 };
    t_count_init(&r.arrived);
    for (int i = 0; i < 4; i++)
        ck_assert((crew_submit(pool, rendezvous_fn, &r)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    crew_stats_t s = t_stats(pool);
    ck_assert_msg((s.completed) == (4), "the 4 tasks did not meet");
    ck_assert((s.peak_workers) == (4));
    for (int i = 0; i < 40; i++) /* more work: no new threads needed */
        ck_assert((crew_submit(pool, t_nop_fn, NULL)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((crew_free(pool)) == (0));
    hooks_check_balanced(&h, pool, 4);
    hooks_destroy(&h);
    t_count_destroy(&r.arrived);
}
END_TEST

START_TEST(create__idle_workers_retire_to_min)
{
    hooks_t h;
    hooks_init(&h);
    crew_opts_t o = { .min_workers = 1,
                      .max_workers = 4,
                      .idle_timeout_ns = 10 * T_MS,
                      .on_thread_start = on_start,
                      .on_thread_stop = on_stop,
                      .user = &h };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    rendezvous_t r = { .need = 4 };
    t_count_init(&r.arrived);
    for (int i = 0; i < 4; i++)
        ck_assert((crew_submit(pool, rendezvous_fn, &r)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((t_stats(pool).completed) == (4));
    ck_assert_msg(hooks_wait_stops(&h, 3, T_LONG),
                  "idle workers above min never retired");
    bool ok;
    T_EVENTUALLY(ok, t_stats(pool).workers == 1, T_LONG);
    ck_assert_msg(ok, "live workers %u, expected min 1", t_stats(pool).workers);
    /* The last one is the minimum: it must stay (many idle timeouts). */
    ck_assert_msg(!hooks_wait_stops(&h, 4, 100 * T_MS),
                  "a worker retired below min_workers");
    ck_assert((t_stats(pool).workers) == (1));
    /* and it still works */
    atomic_long n = 0;
    ck_assert((crew_submit(pool, t_inc_fn, &n)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((atomic_load(&n)) == (1));
    ck_assert((crew_free(pool)) == (0));
    pthread_mutex_lock(&h.mu);
    ck_assert((h.total_starts) == (h.total_stops));
    ck_assert((h.errors) == (0));
    pthread_mutex_unlock(&h.mu);
    hooks_destroy(&h);
    t_count_destroy(&r.arrived);
}
END_TEST

START_TEST(create__negative_idle_timeout_never_retires)
{
    hooks_t h;
    hooks_init(&h);
    crew_opts_t o = { .max_workers = 2,
                      .idle_timeout_ns = -1,
                      .prespawn = true,
                      .on_thread_stop = on_stop,
                      .user = &h };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    ck_assert_msg(!hooks_wait_stops(&h, 1, 100 * T_MS),
                  "a worker retired with a negative idle timeout");
    ck_assert((t_stats(pool).workers) == (2));
    ck_assert((crew_free(pool)) == (0));
    hooks_destroy(&h);
}
END_TEST

START_TEST(create__wait_on_idle_pool_returns_and_pool_reusable)
{
    crew_opts_t o = { .max_workers = 3 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    atomic_long n = 0;
    for (int round = 1; round <= 5; round++) {
        for (int i = 0; i < 10; i++)
            ck_assert((crew_submit(pool, t_inc_fn, &n)) == (0));
        ck_assert((crew_wait(pool)) == (0));
        ck_assert((atomic_load(&n)) == (10 * round));
        ck_assert((crew_wait(pool)) == (0));
    }
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("create");

    crew_add_test(s, create__defaults_with_null_opts);
    crew_add_test(s, create__crew_new_works);
    crew_add_test(s, create__min_workers_started_at_create);
    crew_add_test(s, create__prespawn_starts_max_workers);
    crew_add_test(s, create__hooks_once_per_thread);
    crew_add_test(s, create__idle_workers_retire_to_min);
    crew_add_test(s, create__negative_idle_timeout_never_retires);
    crew_add_test(s, create__wait_on_idle_pool_returns_and_pool_reusable);
    return crew_run_suite(s);
}
