/*
 * test_combos.c - policies used together: a retried task keeps its
 * priority, cancelling a group cancels its tasks' retries, a group sees a
 * member's timeout at the deadline, a delayed task keeps its priority,
 * and shutdown NOW ends a group's pending members.
 */
#include "harness.h"
#include "helpers.h"

#include <crew.h>

#include <string.h>

#define MS T_MS

/* An order book: tasks append their tag when they run. */
static pthread_mutex_t book_mu = PTHREAD_MUTEX_INITIALIZER;
static char book[64];
static int book_len;

static void note(char tag)
{
    pthread_mutex_lock(&book_mu);
    if (book_len < (int)sizeof(book) - 1)
        book[book_len++] = tag;
    book[book_len] = '\0';
    pthread_mutex_unlock(&book_mu);
}

static void book_reset(void)
{
    pthread_mutex_lock(&book_mu);
    book_len = 0;
    book[0] = '\0';
    pthread_mutex_unlock(&book_mu);
}

/* arg: the tag.  'A' fails its first attempt; 'B' tasks take a while. */
static int tagged(crew_ctx_t *ctx, void *arg, void **result)
{
    char tag = (char)(intptr_t)arg;

    (void)result;
    note(tag);
    if (tag == 'A' && crew_ctx_attempt(ctx) == 1)
        return 5;
    if (tag == 'B')
        t_sleep(30 * MS);
    return 0;
}

static int hold(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    return t_gate_pass(arg) ? 0 : 1;
}

START_TEST(combos__retry_keeps_priority)
{
    crew_opts_t o = { .min_workers = 1, .max_workers = 1 };
    crew_task_opts_t hi = { .priority = 10, .retries = 1 };
    t_gate_t gate;
    crew_t *pool;

    book_reset();
    t_gate_init(&gate);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_submit(pool, hold, &gate), 0);
    ck_assert_int_eq(crew_spawn(pool, tagged, (void *)'A', &hi, NULL), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(crew_submit(pool, tagged, (void *)'B'), 0);
    t_gate_open(&gate);
    ck_assert_int_eq(crew_wait(pool), 0);
    /* A first (priority 10); its second attempt is queued while a B runs
     * (30 ms) and then goes ahead of the B's still queued: with FIFO
     * order it would come last. */
    ck_assert_int_eq(book_len, 5);
    ck_assert_int_eq(book[0], 'A');
    ck_assert_msg(strchr(book + 1, 'A') != NULL &&
                      strchr(book + 1, 'A') - book < 4,
                  "retry lost its priority: %s", book);
    ck_assert_int_eq(crew_free(pool), 0);
    t_gate_destroy(&gate);
}
END_TEST

static atomic_int flaky_runs;
static t_count_t flaky_failed;

static int flaky(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&flaky_runs, 1);
    t_count_add(&flaky_failed, 1);
    return 7;
}

START_TEST(combos__group_cancel_cancels_retries)
{
    crew_opts_t o = { .max_workers = 2 };
    crew_task_opts_t to = { .retries = 5,
                            .backoff = { .kind = CREW_BACKOFF_FIXED,
                                         .base_ns = 60 * T_SEC } };
    crew_task_t *t = NULL;
    crew_group_t *g;
    crew_progress_t p;
    crew_t *pool;

    atomic_store(&flaky_runs, 0);
    t_count_init(&flaky_failed);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_group_create(pool, NULL, &g), 0);
    to.group = g;
    ck_assert_int_eq(crew_spawn(pool, flaky, NULL, &to, &t), 0);
    ck_assert(t_count_wait(&flaky_failed, 1, T_LONG));
    /* Once its retry is scheduled, it waits a minute in the timer;
     * cancelling the group then ends it. */
    bool ok;
    T_EVENTUALLY(ok, t_stats(pool).retries == 1, T_LONG);
    ck_assert(ok);
    ck_assert_int_eq(crew_group_cancel(g), 0);
    ck_assert_int_eq(crew_group_wait(g), CREW_ECANCELED);
    ck_assert_int_eq(crew_task_wait(t, NULL), CREW_ECANCELED);
    ck_assert_int_eq(atomic_load(&flaky_runs), 1);
    crew_group_progress(g, &p);
    ck_assert_uint_eq(p.total, 1);
    ck_assert_uint_eq(p.cancelled, 1);
    crew_task_release(t);
    crew_group_free(g);
    ck_assert_int_eq(crew_free(pool), 0);
    t_count_destroy(&flaky_failed);
}
END_TEST

static atomic_int held_returned;

/* As hold(), then says it is done with the gate, as its last act. */
static int hold_and_tell(crew_ctx_t *ctx, void *arg, void **result)
{
    int rc = hold(ctx, arg, result);

    atomic_store(&held_returned, 1);
    return rc;
}

START_TEST(combos__group_sees_timeout_at_deadline)
{
    crew_opts_t o = { .max_workers = 2 };
    crew_task_opts_t to = { .timeout_ns = 50 * MS };
    t_gate_t gate;
    crew_group_t *g;
    crew_t *pool;

    t_gate_init(&gate);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_group_create(pool, NULL, &g), 0);
    to.group = g;
    atomic_store(&held_returned, 0);
    ck_assert_int_eq(crew_spawn(pool, hold_and_tell, &gate, &to, NULL), 0);
    /* The task is still held at the gate: the group ends at the deadline,
     * with the timeout as its first error. */
    ck_assert_int_eq(crew_group_wait(g), CREW_ETIMEDOUT);
    ck_assert_int_eq(crew_group_error(g), CREW_ETIMEDOUT);
    t_gate_open(&gate);
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_group_free(g);
    ck_assert_int_eq(crew_free(pool), 0);
    /* The timed-out task's worker was left behind by crew_free(): wait
     * until it is done with the gate before the gate goes. */
    bool ok;
    T_EVENTUALLY(ok, atomic_load(&held_returned) == 1, T_LONG);
    ck_assert(ok);
    t_gate_destroy(&gate);
}
END_TEST

START_TEST(combos__delayed_task_keeps_priority)
{
    crew_opts_t o = { .min_workers = 1, .max_workers = 1 };
    crew_task_opts_t late_hi = { .priority = 5, .delay_ns = 10 * MS };
    crew_t *pool;

    book_reset();
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, tagged, (void *)'D', &late_hi, NULL), 0);
    /* Each B takes 30 ms, so D comes due while the first B runs. */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(crew_submit(pool, tagged, (void *)'B'), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    /* D comes due while a B runs and goes ahead of the B's still queued;
     * in FIFO order it would be first or last, never in between, and
     * late it would be last. */
    ck_assert_int_eq(book_len, 4);
    ck_assert_msg(strchr(book, 'D') - book < 3,
                  "delayed task lost its priority: %s", book);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

START_TEST(combos__shutdown_now_ends_group_members)
{
    crew_opts_t o = { .min_workers = 1, .max_workers = 1 };
    crew_task_opts_t to = { 0 };
    crew_progress_t p;
    t_gate_t gate;
    crew_group_t *g;
    crew_t *pool;

    t_gate_init(&gate);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_group_create(pool, NULL, &g), 0);
    to.group = g;
    ck_assert_int_eq(crew_spawn(pool, hold, &gate, &to, NULL), 0);
    to.delay_ns = 60 * T_SEC;
    ck_assert_int_eq(crew_spawn(pool, hold, &gate, &to, NULL), 0);
    to.delay_ns = 0;
    to.priority = 3;
    ck_assert_int_eq(crew_spawn(pool, hold, &gate, &to, NULL), 0);
    t_gate_open(&gate);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_NOW), 0);
    crew_group_wait(g);
    crew_group_progress(g, &p);
    ck_assert_uint_eq(p.total, 3);
    ck_assert_uint_eq(p.done + p.cancelled, 3);
    ck_assert_uint_ge(p.cancelled, 1); /* the delayed one at least */
    crew_group_free(g);
    ck_assert_int_eq(crew_free(pool), 0);
    t_gate_destroy(&gate);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("combos");

    crew_add_test(s, combos__retry_keeps_priority);
    crew_add_test(s, combos__group_cancel_cancels_retries);
    crew_add_test(s, combos__group_sees_timeout_at_deadline);
    crew_add_test(s, combos__delayed_task_keeps_priority);
    crew_add_test(s, combos__shutdown_now_ends_group_members);
    return crew_run_suite(s);
}
