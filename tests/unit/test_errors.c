/*
 * test_errors.c - bad input is refused with CREW_EINVAL (never a crash),
 * calls that would wait for themselves return CREW_EDEADLK, and
 * crew_strerror() names every code.
 */
#include "harness.h"

#include <string.h>

#include "helpers.h"

static void expect_create_einval(const crew_opts_t *opts, const char *what)
{
    crew_t *pool = NULL;
    int rc = crew_create(&pool, opts);
    ck_assert_msg((rc) == (CREW_EINVAL), "%s: crew_create returned %d", what,
                  rc);
    ck_assert_msg((crew_new(opts)) == NULL, "%s: crew_new did not return NULL",
                  what);
}

START_TEST(errors__create_null_pool_pointer)
{
    ck_assert((crew_create(NULL, NULL)) == (CREW_EINVAL));
    crew_opts_t o = { .max_workers = 2 };
    ck_assert((crew_create(NULL, &o)) == (CREW_EINVAL));
}
END_TEST

START_TEST(errors__create_min_above_max)
{
    crew_opts_t o = { .min_workers = 5, .max_workers = 4 };
    expect_create_einval(&o, "min 5 max 4");
}
END_TEST

START_TEST(errors__create_max_workers_too_big)
{
    crew_opts_t o = { .max_workers = CREW_MAX_WORKERS + 1 };
    expect_create_einval(&o, "max_workers above CREW_MAX_WORKERS");
    crew_opts_t o2 = { .min_workers = CREW_MAX_WORKERS + 1,
                       .max_workers = CREW_MAX_WORKERS + 1 };
    expect_create_einval(&o2, "min and max above CREW_MAX_WORKERS");
}
END_TEST

START_TEST(errors__create_capacity_too_big)
{
    crew_opts_t o = { .max_workers = 1,
                      .queue_capacity = CREW_MAX_CAPACITY + 1 };
    expect_create_einval(&o, "queue_capacity above CREW_MAX_CAPACITY");
    crew_opts_t o2 = { .max_workers = 1, .queue_capacity = SIZE_MAX };
    expect_create_einval(&o2, "queue_capacity SIZE_MAX");
}
END_TEST

START_TEST(errors__create_capacity_at_limit_accepted)
{
    /* The bound is inclusive: a huge bound must not be preallocated. */
    crew_opts_t o = { .max_workers = 1, .queue_capacity = CREW_MAX_CAPACITY };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    atomic_long n = 0;
    ck_assert((crew_submit(pool, t_inc_fn, &n)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((atomic_load(&n)) == (1));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

START_TEST(errors__create_stack_size_out_of_range)
{
    crew_opts_t o = { .max_workers = 1, .stack_size = 16 * 1024 - 1 };
    expect_create_einval(&o, "stack_size 16 KiB - 1");
    o.stack_size = 1;
    expect_create_einval(&o, "stack_size 1");
    o.stack_size = ((size_t)1 << 30) + 1;
    expect_create_einval(&o, "stack_size 1 GiB + 1");
    o.stack_size = SIZE_MAX;
    expect_create_einval(&o, "stack_size SIZE_MAX");
}
END_TEST

START_TEST(errors__create_stack_size_limits_accepted)
{
    /* No worker is started (min 0), so only the check itself is tested. */
    size_t sizes[] = { 16 * 1024, (size_t)1 << 30 };
    for (size_t i = 0; i < 2; i++) {
        crew_opts_t o = { .max_workers = 1, .stack_size = sizes[i] };
        crew_t *pool = NULL;
        ck_assert_msg((crew_create(&pool, &o)) == (0), "stack_size %zu",
                      sizes[i]);
        ck_assert((crew_free(pool)) == (0));
    }
}
END_TEST

START_TEST(errors__submit_null_arguments)
{
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, NULL)) == (0));
    atomic_long n = 0;
    ck_assert((crew_submit(NULL, t_inc_fn, &n)) == (CREW_EINVAL));
    ck_assert((crew_submit(pool, NULL, &n)) == (CREW_EINVAL));
    ck_assert((crew_try_submit(NULL, t_inc_fn, &n)) == (CREW_EINVAL));
    ck_assert((crew_try_submit(pool, NULL, &n)) == (CREW_EINVAL));
    ck_assert((crew_submit_timeout(NULL, t_inc_fn, &n, 0)) == (CREW_EINVAL));
    ck_assert((crew_submit_timeout(pool, NULL, &n, -1)) == (CREW_EINVAL));
    crew_task_t *t = (crew_task_t *)&t;
    ck_assert((crew_spawn(NULL, t_inc_fn, &n, NULL, &t)) == (CREW_EINVAL));
    ck_assert_msg((t) == NULL, "crew_spawn must clear *task on error");
    t = (crew_task_t *)&t;
    ck_assert((crew_spawn(pool, NULL, &n, NULL, &t)) == (CREW_EINVAL));
    ck_assert_msg((t) == NULL, "crew_spawn must clear *task on error");
    ck_assert((crew_wait(pool)) == (0));
    ck_assert_msg((atomic_load(&n)) == (0), "a refused task ran");
    crew_stats_t s = t_stats(pool);
    ck_assert((s.submitted) == (0));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

START_TEST(errors__pool_calls_null)
{
    ck_assert((crew_wait(NULL)) == (CREW_EINVAL));
    ck_assert((crew_shutdown(NULL, CREW_SHUTDOWN_DRAIN)) == (CREW_EINVAL));
    ck_assert((crew_resize(NULL, 0, 1)) == (CREW_EINVAL));
    ck_assert((crew_free(NULL)) == (0));
    crew_stats_t s;
    memset(&s, 0xab, sizeof s);
    crew_stats(NULL, &s); /* does nothing */
    ck_assert((s.submitted) == ((uint64_t)0xabababababababab));
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, NULL)) == (0));
    crew_stats(pool, NULL); /* does nothing, no crash */
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

START_TEST(errors__future_calls_null)
{
    void *r = NULL;
    ck_assert((crew_task_wait(NULL, &r)) == (CREW_EINVAL));
    ck_assert((crew_task_wait_timeout(NULL, 0, &r)) == (CREW_EINVAL));
    ck_assert((crew_task_state(NULL)) == (CREW_EINVAL));
    crew_task_release(NULL); /* no-op */
}
END_TEST

START_TEST(errors__resize_bad_bounds)
{
    crew_opts_t o = { .min_workers = 1, .max_workers = 3 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    ck_assert((crew_resize(pool, 0, 0)) == (CREW_EINVAL));
    ck_assert((crew_resize(pool, 4, 2)) == (CREW_EINVAL));
    ck_assert((crew_resize(pool, 0, CREW_MAX_WORKERS + 1)) == (CREW_EINVAL));
    ck_assert((crew_resize(pool, CREW_MAX_WORKERS + 1, CREW_MAX_WORKERS + 1)) ==
              (CREW_EINVAL));
    crew_stats_t s = t_stats(pool);
    ck_assert_msg((s.min_workers) == (t_min_shown(1)),
                  "refused resize changed min");
    ck_assert_msg((s.max_workers) == (3), "refused resize changed max");
    atomic_long n = 0;
    ck_assert((crew_submit(pool, t_inc_fn, &n)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((atomic_load(&n)) == (1));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

/* A task that calls the forbidden functions on its own pool. */
typedef struct deadlk_probe {
    atomic_int wait_rc, shutdown_now_rc, shutdown_drain_rc, free_rc;
    atomic_int done;
} deadlk_probe_t;

static void probe_own_pool(crew_t *pool, deadlk_probe_t *p)
{
    atomic_store(&p->wait_rc, crew_wait(pool));
    atomic_store(&p->shutdown_now_rc, crew_shutdown(pool, CREW_SHUTDOWN_NOW));
    atomic_store(&p->shutdown_drain_rc,
                 crew_shutdown(pool, CREW_SHUTDOWN_DRAIN));
    atomic_store(&p->free_rc, crew_free(pool));
    atomic_store(&p->done, 1);
}

static int probe_task(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)result;
    probe_own_pool(crew_ctx_pool(ctx), arg);
    return 0;
}

static void check_probe(deadlk_probe_t *p)
{
    ck_assert_msg((atomic_load(&p->done)) == (1), "probe did not run");
    ck_assert((atomic_load(&p->wait_rc)) == (CREW_EDEADLK));
    ck_assert((atomic_load(&p->shutdown_now_rc)) == (CREW_EDEADLK));
    ck_assert((atomic_load(&p->shutdown_drain_rc)) == (CREW_EDEADLK));
    ck_assert((atomic_load(&p->free_rc)) == (CREW_EDEADLK));
}

static void check_pool_still_works(crew_t *pool)
{
    atomic_long n = 0;
    for (int i = 0; i < 10; i++)
        ck_assert_msg((crew_submit(pool, t_inc_fn, &n)) == (0),
                      "pool refused work after the EDEADLK calls");
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((atomic_load(&n)) == (10));
}

START_TEST(errors__edeadlk_from_task)
{
    crew_opts_t o = { .max_workers = 2 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    deadlk_probe_t p = { 0 };
    ck_assert((crew_submit(pool, probe_task, &p)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    check_probe(&p);
    check_pool_still_works(pool);
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

static void probe_result_cb(void *arg, void *result, void *user)
{
    (void)result;
    probe_own_pool(user, arg);
}

static void probe_error_cb(void *arg, int err, void *user)
{
    (void)err;
    probe_own_pool(user, arg);
}

static int fail_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    return 5;
}

START_TEST(errors__edeadlk_from_callbacks)
{
    crew_opts_t o = { .max_workers = 2 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    deadlk_probe_t pr = { 0 }, pe = { 0 };
    crew_task_opts_t to = { .on_result = probe_result_cb,
                            .on_error = probe_error_cb,
                            .user = pool };
    crew_task_t *t1 = NULL, *t2 = NULL;
    ck_assert((crew_spawn(pool, t_nop_fn, &pr, &to, &t1)) == (0));
    ck_assert((crew_spawn(pool, fail_fn, &pe, &to, &t2)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    check_probe(&pr);
    check_probe(&pe);
    ck_assert((crew_task_wait(t1, NULL)) == (0));
    ck_assert((crew_task_wait(t2, NULL)) == (5));
    crew_task_release(t1);
    crew_task_release(t2);
    check_pool_still_works(pool);
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

START_TEST(errors__strerror_names_every_code)
{
    const int codes[] = { CREW_EINVAL,    CREW_ENOMEM,    CREW_EAGAIN,
                          CREW_ETIMEDOUT, CREW_ESHUTDOWN, CREW_ECANCELED,
                          CREW_ETHREAD,   CREW_EBUSY,     CREW_EDEADLK,
                          CREW_EEXIT };
    const size_t n = sizeof codes / sizeof codes[0];
    const char *unknown = crew_strerror(-123456);
    ck_assert((unknown) != NULL);
    ck_assert_msg((strstr(unknown, "unknown")) != NULL,
                  "unknown code gave \"%s\"", unknown);
    ck_assert((crew_strerror(CREW_OK)) != NULL);
    for (size_t i = 0; i < n; i++) {
        const char *s = crew_strerror(codes[i]);
        ck_assert_msg((s) != NULL, "code %d", codes[i]);
        ck_assert_msg((strlen(s)) > (0), "code %d", codes[i]);
        ck_assert_msg((strstr(s, "unknown")) == NULL, "code %d named \"%s\"",
                      codes[i], s);
        ck_assert_msg((strcmp(s, crew_strerror(CREW_OK))) != (0),
                      "code %d named like success", codes[i]);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg((strcmp(s, crew_strerror(codes[j]))) != (0),
                          "codes %d and %d share \"%s\"", codes[i], codes[j],
                          s);
    }
    const int others[] = { 1, 42, -1, -1000, -1003, -99999, 12345 };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        const char *s = crew_strerror(others[i]);
        ck_assert((s) != NULL);
        ck_assert_msg((strstr(s, "unknown")) != NULL, "%d gave \"%s\"",
                      others[i], s);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("errors");

    crew_add_test(s, errors__create_null_pool_pointer);
    crew_add_test(s, errors__create_min_above_max);
    crew_add_test(s, errors__create_max_workers_too_big);
    crew_add_test(s, errors__create_capacity_too_big);
    crew_add_test(s, errors__create_capacity_at_limit_accepted);
    crew_add_test(s, errors__create_stack_size_out_of_range);
    crew_add_test(s, errors__create_stack_size_limits_accepted);
    crew_add_test(s, errors__submit_null_arguments);
    crew_add_test(s, errors__pool_calls_null);
    crew_add_test(s, errors__future_calls_null);
    crew_add_test(s, errors__resize_bad_bounds);
    crew_add_test(s, errors__edeadlk_from_task);
    crew_add_test(s, errors__edeadlk_from_callbacks);
    crew_add_test(s, errors__strerror_names_every_code);
    return crew_run_suite(s);
}
