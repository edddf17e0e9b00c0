/*
 * test_deque.c - tasks that a worker submits to its own pool go on its
 * deque: other workers steal them when the owner is busy, a leaving
 * worker hands them on, and counts, waits and shutdown see them as any
 * other queued task.
 */
#include "harness.h"
#include "helpers.h"

#include <crew.h>

#include <pthread.h>

#define CHILDREN 200

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

static atomic_int ran;
static crew_event_t *all_ran;

static int child(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    if (atomic_fetch_add(&ran, 1) + 1 == CHILDREN)
        crew_event_set(all_ran);
    return 0;
}

/* Submits its children (onto its own deque), then blocks until they all
 * ran: only other workers, stealing, can run them. */
static int blocking_parent(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_t *pool = crew_ctx_pool(ctx);

    (void)arg;
    (void)result;
    for (int i = 0; i < CHILDREN; i++)
        if (crew_submit(pool, child, NULL) != 0)
            return -1;
    return crew_event_wait_timeout(all_ran, T_LONG);
}

START_TEST(deque__busy_owner_children_are_stolen)
{
    crew_opts_t o = { .min_workers = 3, .max_workers = 3, .prespawn = true };
    crew_task_t *p;
    crew_stats_t s;
    crew_t *pool;

    atomic_store(&ran, 0);
    ck_assert_int_eq(crew_event_create(&all_ran), 0);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, blocking_parent, NULL, NULL, &p), 0);
    ck_assert_int_eq(crew_task_wait(p, NULL), 0);
    ck_assert_int_eq(atomic_load(&ran), CHILDREN);
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_stats(pool, &s);
    ck_assert_uint_eq(s.submitted, CHILDREN + 1);
    ck_assert_uint_eq(s.completed, CHILDREN + 1);
    ck_assert_uint_eq(s.queued, 0);
    crew_task_release(p);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_event_free(all_ran), 0);
}
END_TEST

/* More children than a deque holds: the rest go to the shared queue;
 * crew_wait sees every one of them. */
static atomic_long tree_ran;

static int tree(crew_ctx_t *ctx, void *arg, void **result)
{
    long n = (long)(intptr_t)arg;

    (void)result;
    atomic_fetch_add(&tree_ran, 1);
    if (n > 1) {
        long a = (n - 1) / 2, b = n - 1 - a;

        if (a > 0)
            crew_submit(crew_ctx_pool(ctx), tree, (void *)(intptr_t)a);
        if (b > 0)
            crew_submit(crew_ctx_pool(ctx), tree, (void *)(intptr_t)b);
    }
    return 0;
}

static int wide(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)arg;
    (void)result;
    for (int i = 0; i < 3000; i++)
        crew_submit(crew_ctx_pool(ctx), tree, (void *)(intptr_t)1);
    return 0;
}

START_TEST(deque__trees_and_overflow_all_run)
{
    crew_opts_t o = { .max_workers = 4 };
    long n = 20000;
    crew_t *pool;

    atomic_store(&tree_ran, 0);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_submit(pool, tree, (void *)(intptr_t)n), 0);
    ck_assert_int_eq(crew_submit(pool, wide, NULL), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&tree_ran), n + 3000);
    ck_assert_uint_eq(t_stats(pool).completed, (uint64_t)n + 3001);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

/* A worker that ends in pthread_exit leaves children on its deque: they
 * move to the shared queue and run. */
static int exit_after_children(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)arg;
    (void)result;
    for (int i = 0; i < CHILDREN; i++)
        crew_submit(crew_ctx_pool(ctx), child, NULL);
    pthread_exit(NULL);
}

START_TEST(deque__leaving_worker_hands_children_on)
{
#ifdef UNDER_TSAN
    /* In the fiber run, ThreadSanitizer stops the process when
     * pthread_exit is called on a fiber's stack (a check of its own). */
    if (getenv("CREW_TEST_FIBERS") != NULL) {
        crew_test_log("skipped: fiber run under ThreadSanitizer");
        return;
    }
#endif
    crew_opts_t o = { .max_workers = 1 };
    crew_task_t *p;
    crew_t *pool;

    atomic_store(&ran, 0);
    ck_assert_int_eq(crew_event_create(&all_ran), 0);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, exit_after_children, NULL, NULL, &p), 0);
    ck_assert_int_eq(crew_task_wait(p, NULL), CREW_EEXIT);
    ck_assert_int_eq(crew_event_wait_timeout(all_ran, T_LONG), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&ran), CHILDREN);
    crew_task_release(p);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_event_free(all_ran), 0);
}
END_TEST

/* Shutdown NOW cancels children still on a deque, and says so. */
static atomic_int cancelled;

static void on_error(void *arg, int err, void *user)
{
    (void)arg;
    (void)user;
    if (err == CREW_ECANCELED)
        atomic_fetch_add(&cancelled, 1);
}

static crew_event_t *go;

static int parent_then_wait(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)arg;
    (void)result;
    for (int i = 0; i < CHILDREN; i++)
        crew_submit(crew_ctx_pool(ctx), child, NULL);
    crew_event_set(go);
    crew_sleep(T_LONG); /* ends with CREW_ECANCELED at NOW */
    return 0;
}

START_TEST(deque__shutdown_now_cancels_deque_records)
{
    crew_opts_t o = { .max_workers = 1, .on_error = on_error };
    crew_stats_t s;
    crew_t *pool;

    atomic_store(&ran, 0);
    atomic_store(&cancelled, 0);
    ck_assert_int_eq(crew_event_create(&all_ran), 0);
    ck_assert_int_eq(crew_event_create(&go), 0);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_submit(pool, parent_then_wait, NULL), 0);
    ck_assert_int_eq(crew_event_wait_timeout(go, T_LONG), 0);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_NOW), 0);
    crew_stats(pool, &s);
    ck_assert_int_eq(atomic_load(&ran) + atomic_load(&cancelled), CHILDREN);
    ck_assert_uint_eq(s.cancelled, (uint64_t)atomic_load(&cancelled));
    ck_assert_uint_eq(s.submitted, s.completed + s.failed + s.cancelled);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_event_free(all_ran), 0);
    ck_assert_int_eq(crew_event_free(go), 0);
}
END_TEST

/* A pool of one worker runs tasks in submission order, from outside and
 * from inside (no deque, no batches: they would run newest first). */
#define ORDERED 2000

static int order_log[2 * ORDERED];
static atomic_int order_n;

static int log_me(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    order_log[atomic_fetch_add(&order_n, 1)] = (int)(intptr_t)arg;
    return 0;
}

static int submit_in_order(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)arg;
    (void)result;
    for (int i = 0; i < ORDERED; i++)
        if (crew_submit(crew_ctx_pool(ctx), log_me,
                        (void *)(intptr_t)(ORDERED + i)) != 0)
            return -1;
    return 0;
}

START_TEST(deque__one_worker_keeps_submission_order)
{
    crew_opts_t o = { .max_workers = 1 };
    crew_t *pool;

    atomic_store(&order_n, 0);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    for (int i = 0; i < ORDERED; i++)
        ck_assert_int_eq(crew_submit(pool, log_me, (void *)(intptr_t)i), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(crew_submit(pool, submit_in_order, NULL), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&order_n), 2 * ORDERED);
    for (int i = 0; i < 2 * ORDERED; i++)
        ck_assert_int_eq(order_log[i], i);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("deque");

    crew_add_test(s, deque__busy_owner_children_are_stolen);
    crew_add_test(s, deque__trees_and_overflow_all_run);
    crew_add_test(s, deque__leaving_worker_hands_children_on);
    crew_add_test(s, deque__shutdown_now_cancels_deque_records);
    crew_add_test(s, deque__one_worker_keeps_submission_order);
    return crew_run_suite(s);
}
