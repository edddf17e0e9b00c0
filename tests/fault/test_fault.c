/*
 * test_fault.c - fail each allocation and each thread start inside crew in
 * turn, through a scenario that creates a pool, submits plain tasks and
 * futures, grows it, and shuts it down.  Every call must return 0 or a
 * clear error, every accepted task must run (or be cancelled) exactly once,
 * and nothing may leak (LeakSanitizer checks at exit in the asan build).
 */
#include "harness.h"

#include <crew.h>
#include "fault.h"

#include <stdatomic.h>
#include <stdlib.h>

#define N_PLAIN 16
#define N_FUT 8

static atomic_int ran;

static int count(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    atomic_fetch_add(&ran, 1);
    *result = malloc(8); /* freed by free_result or the waiter */
    return *result != NULL ? 0 : ENOMEM;
}

static bool acceptable(int rc)
{
    return rc == 0 || rc == CREW_ENOMEM || rc == CREW_ETHREAD;
}

/*
 * One pass.  Returns how many tasks crew accepted; checks along the way.
 * `min` workers at creation; growth beyond them happens on submit and in
 * crew_resize.
 */
static void scenario(unsigned min, unsigned cap)
{
    crew_opts_t o = { .min_workers = min,
                      .max_workers = 4,
                      .queue_capacity = cap,
                      .free_result = free };
    crew_task_t *fut[N_FUT];
    int accepted = 0, futures = 0, done = 0;
    crew_stats_t st;
    crew_t *pool;
    int rc;

    atomic_store(&ran, 0);
    rc = crew_create(&pool, &o);
    ck_assert_msg(acceptable(rc), "crew_create: %s", crew_strerror(rc));
    if (rc != 0) {
        ck_assert((pool) == NULL);
        return;
    }
    for (int i = 0; i < N_PLAIN; i++) {
        rc = crew_submit(pool, count, NULL);
        ck_assert_msg(acceptable(rc), "crew_submit: %s", crew_strerror(rc));
        accepted += rc == 0;
    }
    for (int i = 0; i < N_FUT; i++) {
        rc = crew_spawn(pool, count, NULL, NULL, &fut[futures]);
        ck_assert_msg(acceptable(rc), "crew_spawn: %s", crew_strerror(rc));
        if (rc == 0)
            futures++;
        else
            ck_assert((fut[futures]) == NULL);
    }
    rc = crew_resize(pool, 2, 6);
    ck_assert_msg(rc == 0 || rc == CREW_ETHREAD, "resize: %s",
                  crew_strerror(rc));
    for (int i = 0; i < futures; i++) {
        void *res = NULL;

        rc = crew_task_wait(fut[i], &res);
        ck_assert_msg(rc == 0 || rc == ENOMEM, "wait: %d", rc);
        free(res);
        crew_task_release(fut[i]);
        done++;
    }
    ck_assert((crew_wait(pool)) == (0));
    crew_stats(pool, &st);
    ck_assert((st.submitted) == ((uint64_t)(accepted + futures)));
    ck_assert((st.completed + st.failed + st.cancelled) == (st.submitted));
    ck_assert_msg((atomic_load(&ran)) == (accepted + futures),
                  "ran %d, accepted %d", atomic_load(&ran), accepted + futures);
    ck_assert((crew_shutdown(pool, CREW_SHUTDOWN_DRAIN)) == (0));
    ck_assert((crew_free(pool)) == (0));
    ck_assert((done) == (futures));
}

/* Fail the nth call of `kind`, for n = 1, 2, ... until a pass hits none. */
static void sweep(int kind, bool sticky, unsigned min, unsigned cap)
{
    long n;

    for (n = 1; n < 1000; n++) {
        crew_fault_arm(kind, n, sticky);
        scenario(min, cap);
        if (crew_fault_hits(kind) == 0)
            break;
    }
    crew_fault_arm(kind, 0, false);
    crew_test_log("%s: %ld failing calls injected before a clean pass",
                  kind == CREW_FAULT_ALLOC ? "alloc" : "thread", n - 1);
    ck_assert_msg((n) < (1000), "the sweep never ran clean");
    ck_assert_msg((n) > (1), "no call site was reached");
}

START_TEST(fault__each_allocation_fails_once)
{
    sweep(CREW_FAULT_ALLOC, false, 1, 0);
}
END_TEST

START_TEST(fault__allocations_fail_from_nth_on)
{
    sweep(CREW_FAULT_ALLOC, true, 1, 0);
}
END_TEST

START_TEST(fault__each_allocation_fails_once_bounded)
{
    sweep(CREW_FAULT_ALLOC, false, 0, 4);
}
END_TEST

START_TEST(fault__each_thread_start_fails_once)
{
    sweep(CREW_FAULT_THREAD, false, 2, 0);
}
END_TEST

START_TEST(fault__thread_starts_fail_from_nth_on)
{
    sweep(CREW_FAULT_THREAD, true, 0, 0);
}
END_TEST

START_TEST(fault__thread_starts_fail_from_nth_on_bounded)
{
    sweep(CREW_FAULT_THREAD, true, 0, 4);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault");

    crew_add_test(s, fault__each_allocation_fails_once);
    crew_add_test(s, fault__allocations_fail_from_nth_on);
    crew_add_test(s, fault__each_allocation_fails_once_bounded);
    crew_add_test(s, fault__each_thread_start_fails_once);
    crew_add_test(s, fault__thread_starts_fail_from_nth_on);
    crew_add_test(s, fault__thread_starts_fail_from_nth_on_bounded);
    return crew_run_suite(s);
}
