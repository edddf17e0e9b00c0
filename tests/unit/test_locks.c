/*
 * test_locks.c - every choice of the queue's lock runs every task once,
 * keeps concurrency within max_workers, and a user's lock is used and
 * balanced; bad choices are refused.
 */
#include "harness.h"
#include "helpers.h"

#include <crew.h>

#define TASKS 20000

static atomic_int running, peak;

static int track(crew_ctx_t *ctx, void *arg, void **result)
{
    int now = atomic_fetch_add(&running, 1) + 1;
    int seen = atomic_load(&peak);

    (void)ctx;
    (void)result;
    while (now > seen && !atomic_compare_exchange_weak(&peak, &seen, now))
        ;
    atomic_fetch_add((atomic_long *)arg, 1);
    atomic_fetch_sub(&running, 1);
    return 0;
}

static void run_with(crew_opts_t *o)
{
    atomic_long n = 0;
    crew_stats_t st;
    crew_t *pool;

    atomic_store(&running, 0);
    atomic_store(&peak, 0);
    ck_assert_int_eq(crew_create(&pool, o), 0);
    for (int i = 0; i < TASKS; i++)
        ck_assert_int_eq(crew_submit(pool, track, &n), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&n), TASKS);
    ck_assert_int_le(atomic_load(&peak), (int)o->max_workers);
    crew_stats(pool, &st);
    ck_assert_uint_eq(st.completed, TASKS);
    ck_assert_int_eq(crew_free(pool), 0);
}

START_TEST(locks__default_lock)
{
    crew_opts_t o = { .max_workers = 4 };

    run_with(&o);
}
END_TEST

START_TEST(locks__mutex_lock)
{
    crew_opts_t o = { .max_workers = 4, .lock = CREW_LOCK_MUTEX };

    run_with(&o);
}
END_TEST

START_TEST(locks__spin_lock)
{
    crew_opts_t o = { .max_workers = 2, .lock = CREW_LOCK_SPIN };

    run_with(&o);
}
END_TEST

struct counted_lock {
    pthread_mutex_t mu;
    atomic_long locks, unlocks;
    atomic_int held;
    atomic_int overlap;
};

static void cl_lock(void *ctx)
{
    struct counted_lock *l = ctx;

    pthread_mutex_lock(&l->mu);
    if (atomic_fetch_add(&l->held, 1) != 0)
        atomic_store(&l->overlap, 1);
    atomic_fetch_add(&l->locks, 1);
}

static void cl_unlock(void *ctx)
{
    struct counted_lock *l = ctx;

    atomic_fetch_sub(&l->held, 1);
    atomic_fetch_add(&l->unlocks, 1);
    pthread_mutex_unlock(&l->mu);
}

START_TEST(locks__custom_lock_used_and_balanced)
{
    struct counted_lock l = { .mu = PTHREAD_MUTEX_INITIALIZER };
    crew_lock_ops_t ops = { cl_lock, cl_unlock, &l };
    crew_opts_t o = { .max_workers = 4,
                      .lock = CREW_LOCK_CUSTOM,
                      .lock_ops = &ops };

    run_with(&o);
    /* Every take went through it: at least one lock per batch (a worker
     * takes at most 8 tasks under one lock when many wait). */
    ck_assert_int_ge(atomic_load(&l.locks), TASKS / 8);
    ck_assert_int_eq(atomic_load(&l.locks), atomic_load(&l.unlocks));
    ck_assert_int_eq(atomic_load(&l.overlap), 0);
    pthread_mutex_destroy(&l.mu);
}
END_TEST

START_TEST(locks__bad_choices_refused)
{
    crew_lock_ops_t half = { cl_lock, NULL, NULL };
    crew_opts_t o = { .lock = CREW_LOCK_CUSTOM };
    crew_t *pool = NULL;

    ck_assert_int_eq(crew_create(&pool, &o), CREW_EINVAL);
    o.lock_ops = &half;
    ck_assert_int_eq(crew_create(&pool, &o), CREW_EINVAL);
    o.lock = CREW_LOCK_CUSTOM + 1;
    ck_assert_int_eq(crew_create(&pool, &o), CREW_EINVAL);
    o.lock = -1;
    ck_assert_int_eq(crew_create(&pool, &o), CREW_EINVAL);
    ck_assert_ptr_null(pool);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("locks");

    crew_add_test(s, locks__default_lock);
    crew_add_test(s, locks__mutex_lock);
    crew_add_test(s, locks__spin_lock);
    crew_add_test(s, locks__custom_lock_used_and_balanced);
    crew_add_test(s, locks__bad_choices_refused);
    return crew_run_suite(s);
}
