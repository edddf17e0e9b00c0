/*
 * test_callbacks.c - result and error callbacks fire exactly once with the
 * right arguments, on a worker, before crew_wait() returns; per-task
 * options replace the pool's.
 */
#include "harness.h"

#include "helpers.h"

enum { N = 300 };

/* One record per task: how often each callback saw it. */
typedef struct slot {
    int index;
    atomic_int results, errors, bad;
} slot_t;

typedef struct book {
    slot_t slots[N];
    atomic_int pool_results, pool_errors;
    atomic_int task_results, task_errors;
    atomic_int on_main;
    pthread_t main_thread;
} book_t;

static book_t *book_new(void)
{
    book_t *b = calloc(1, sizeof *b);
    ck_assert((b) != NULL);
    for (int i = 0; i < N; i++)
        b->slots[i].index = i;
    b->main_thread = pthread_self();
    return b;
}

/* Task: even slots succeed with result index+1, odd ones fail with
 * error index+1. */
static int parity_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    slot_t *s = arg;
    if (s->index % 2 == 0) {
        *result = (void *)(intptr_t)(s->index + 1);
        return 0;
    }
    return s->index + 1;
}

static void check_thread(book_t *b)
{
    if (pthread_equal(pthread_self(), b->main_thread))
        atomic_fetch_add(&b->on_main, 1);
}

static void pool_result_cb(void *arg, void *result, void *user)
{
    book_t *b = user;
    slot_t *s = arg;
    check_thread(b);
    atomic_fetch_add(&b->pool_results, 1);
    atomic_fetch_add(&s->results, 1);
    if (s->index % 2 != 0 || result != (void *)(intptr_t)(s->index + 1))
        atomic_fetch_add(&s->bad, 1);
}

static void pool_error_cb(void *arg, int err, void *user)
{
    book_t *b = user;
    slot_t *s = arg;
    check_thread(b);
    atomic_fetch_add(&b->pool_errors, 1);
    atomic_fetch_add(&s->errors, 1);
    if (s->index % 2 != 1 || err != s->index + 1)
        atomic_fetch_add(&s->bad, 1);
}

static void task_result_cb(void *arg, void *result, void *user)
{
    book_t *b = user;
    slot_t *s = arg;
    check_thread(b);
    atomic_fetch_add(&b->task_results, 1);
    atomic_fetch_add(&s->results, 1);
    if (s->index % 2 != 0 || result != (void *)(intptr_t)(s->index + 1))
        atomic_fetch_add(&s->bad, 1);
}

static void task_error_cb(void *arg, int err, void *user)
{
    book_t *b = user;
    slot_t *s = arg;
    check_thread(b);
    atomic_fetch_add(&b->task_errors, 1);
    atomic_fetch_add(&s->errors, 1);
    if (s->index % 2 != 1 || err != s->index + 1)
        atomic_fetch_add(&s->bad, 1);
}

static crew_t *make_pool(book_t *b)
{
    crew_opts_t o = { .max_workers = 4,
                      .on_result = pool_result_cb,
                      .on_error = pool_error_cb,
                      .user = b };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    return pool;
}

static void check_each_once(book_t *b)
{
    for (int i = 0; i < N; i++) {
        slot_t *s = &b->slots[i];
        int want_r = i % 2 == 0, want_e = i % 2 == 1;
        ck_assert_msg((atomic_load(&s->results)) == (want_r),
                      "task %d: result callback fired %d times", i,
                      atomic_load(&s->results));
        ck_assert_msg((atomic_load(&s->errors)) == (want_e),
                      "task %d: error callback fired %d times", i,
                      atomic_load(&s->errors));
        ck_assert_msg((atomic_load(&s->bad)) == (0), "task %d: wrong arguments",
                      i);
    }
    ck_assert_msg((atomic_load(&b->on_main)) == (0),
                  "a callback ran on the submitting thread");
}

START_TEST(callbacks__pool_callbacks_once_with_right_args)
{
    book_t *b = book_new();
    crew_t *pool = make_pool(b);
    for (int i = 0; i < N; i++)
        ck_assert((crew_submit(pool, parity_fn, &b->slots[i])) == (0));
    ck_assert((crew_wait(pool)) == (0));
    /* crew_wait() returns only after the callbacks have returned */
    check_each_once(b);
    ck_assert((atomic_load(&b->pool_results)) == (N / 2));
    ck_assert((atomic_load(&b->pool_errors)) == (N / 2));
    crew_stats_t s = t_stats(pool);
    ck_assert((s.completed) == (N / 2));
    ck_assert((s.failed) == (N / 2));
    ck_assert((crew_free(pool)) == (0));
    free(b);
}
END_TEST

START_TEST(callbacks__spawn_uses_pool_callbacks_without_opts)
{
    book_t *b = book_new();
    crew_t *pool = make_pool(b);
    static crew_task_t *t[N];
    crew_task_opts_t empty = { 0 };
    for (int i = 0; i < N; i++)
        ck_assert((crew_spawn(pool, parity_fn, &b->slots[i],
                              i % 3 ? NULL : &empty, &t[i])) == (0));
    for (int i = 0; i < N; i++) {
        void *r = NULL;
        int rc = crew_task_wait(t[i], &r);
        ck_assert((rc) == (i % 2 ? i + 1 : 0));
        ck_assert((r) == (i % 2 ? NULL : (void *)(intptr_t)(i + 1)));
        crew_task_release(t[i]);
    }
    ck_assert((crew_wait(pool)) == (0));
    check_each_once(b);
    ck_assert((atomic_load(&b->pool_results)) == (N / 2));
    ck_assert((atomic_load(&b->pool_errors)) == (N / 2));
    ck_assert((crew_free(pool)) == (0));
    free(b);
}
END_TEST

START_TEST(callbacks__task_opts_replace_pool_callbacks)
{
    book_t *b = book_new();
    crew_t *pool = make_pool(b);
    /* Task callbacks get their own user pointer: the same book here, but
     * counted apart from the pool's. */
    crew_task_opts_t both = { .on_result = task_result_cb,
                              .on_error = task_error_cb,
                              .user = b };
    crew_task_opts_t only_result = { .on_result = task_result_cb, .user = b };
    crew_task_opts_t only_error = { .on_error = task_error_cb, .user = b };
    int expect_pr = 0, expect_pe = 0, expect_tr = 0, expect_te = 0;
    for (int i = 0; i < N; i++) {
        const crew_task_opts_t *o = i % 6 < 2   ? &both
                                    : i % 6 < 4 ? &only_result
                                                : &only_error;
        bool ok = i % 2 == 0;
        bool task_cb = ok ? o->on_result != NULL : o->on_error != NULL;
        if (ok && task_cb)
            expect_tr++;
        else if (ok)
            expect_pr++;
        else if (task_cb)
            expect_te++;
        else
            expect_pe++;
        crew_task_t *t = NULL;
        ck_assert((crew_spawn(pool, parity_fn, &b->slots[i], o, &t)) == (0));
        crew_task_release(t);
    }
    ck_assert((crew_wait(pool)) == (0));
    check_each_once(b);
    ck_assert((atomic_load(&b->task_results)) == (expect_tr));
    ck_assert((atomic_load(&b->task_errors)) == (expect_te));
    ck_assert((atomic_load(&b->pool_results)) == (expect_pr));
    ck_assert((atomic_load(&b->pool_errors)) == (expect_pe));
    ck_assert((crew_free(pool)) == (0));
    free(b);
}
END_TEST

/* A callback that takes its time: crew_wait() must wait for it. */
static void slow_result_cb(void *arg, void *result, void *user)
{
    (void)result;
    (void)user;
    t_sleep(2 * T_MS);
    atomic_fetch_add((atomic_long *)arg, 1);
}

START_TEST(callbacks__wait_covers_slow_callbacks)
{
    crew_opts_t o = { .max_workers = 4, .on_result = slow_result_cb };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    atomic_long n = 0;
    for (int round = 1; round <= 10; round++) {
        for (int i = 0; i < 8; i++)
            ck_assert((crew_submit(pool, t_nop_fn, &n)) == (0));
        ck_assert((crew_wait(pool)) == (0));
        ck_assert_msg((atomic_load(&n)) == (8 * round),
                      "crew_wait returned before callbacks finished");
    }
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

START_TEST(callbacks__free_and_shutdown_cover_callbacks)
{
    for (int how = 0; how < 2; how++) {
        crew_opts_t o = { .max_workers = 2, .on_result = slow_result_cb };
        crew_t *pool = NULL;
        ck_assert((crew_create(&pool, &o)) == (0));
        atomic_long n = 0;
        for (int i = 0; i < 8; i++)
            ck_assert((crew_submit(pool, t_nop_fn, &n)) == (0));
        if (how == 0)
            ck_assert((crew_shutdown(pool, CREW_SHUTDOWN_DRAIN)) == (0));
        ck_assert((crew_free(pool)) == (0));
        ck_assert_msg((atomic_load(&n)) == (8), "callbacks outlived the pool");
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("callbacks");

    crew_add_test(s, callbacks__pool_callbacks_once_with_right_args);
    crew_add_test(s, callbacks__spawn_uses_pool_callbacks_without_opts);
    crew_add_test(s, callbacks__task_opts_replace_pool_callbacks);
    crew_add_test(s, callbacks__wait_covers_slow_callbacks);
    crew_add_test(s, callbacks__free_and_shutdown_cover_callbacks);
    return crew_run_suite(s);
}
