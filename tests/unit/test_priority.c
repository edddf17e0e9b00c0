/*
 * test_priority.c - priorities: higher first, equal ones in submission
 * order, negative ones after the plain queue; with aging, a low-priority
 * task waits a bounded time behind a steady stream of higher ones.
 */
#include "harness.h"
#include "helpers.h"

#include <crew.h>

#define MS T_MS

static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
static int order[512];
static int order_len;

static int record(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    pthread_mutex_lock(&order_mu);
    order[order_len++] = (int)(intptr_t)arg;
    pthread_mutex_unlock(&order_mu);
    return 0;
}

static int record_slowly(crew_ctx_t *ctx, void *arg, void **result)
{
    record(ctx, arg, result);
    t_sleep(MS);
    return 0;
}

static crew_t *one_worker(int64_t aging_ns)
{
    crew_opts_t o = { .min_workers = 1,
                      .max_workers = 1,
                      .priority_aging_ns = aging_ns };
    crew_t *pool = NULL;

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    order_len = 0;
    return pool;
}

START_TEST(priority__higher_first_fifo_among_equals)
{
    static const int prio[] = { 0, 5, -3, 5, 10, 0, -3, 1 };
    static const int want[] = { 4, 1, 3, 7, 0, 5, 2, 6 };
    crew_t *pool = one_worker(0);
    t_gate_t gate;

    t_count_t started;
    t_blocker_t b = { &started, &gate };

    t_gate_init(&gate);
    t_count_init(&started);
    /* The only worker is held before anything else is queued. */
    ck_assert_int_eq(crew_submit(pool, t_blocker_fn, &b), 0);
    ck_assert(t_count_wait(&started, 1, T_LONG));
    for (int i = 0; i < 8; i++) {
        crew_task_opts_t o = { .priority = prio[i] };

        ck_assert_int_eq(
            crew_spawn(pool, record, (void *)(intptr_t)i, &o, NULL), 0);
    }
    t_gate_open(&gate);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(order_len, 8);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(order[i], want[i]);
    ck_assert_int_eq(crew_free(pool), 0);
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

/*
 * A steady stream of high-priority work: each high task (10) takes 1 ms
 * and, when it runs, submits the next one, up to STREAM in all; one
 * low-priority task (0) was queued before the stream began.  Without
 * aging it runs last.  With one level per 1 ms of waiting, it outranks
 * every high task queued more than about 10 ms after it, so it runs after
 * the few queued before that: the bound checked is generous (within the
 * first 100 of 301).
 */
#define STREAM 300

static atomic_int streamed;

static int stream_step(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_task_opts_t hi = { .priority = 10 };

    record_slowly(ctx, arg, result);
    if (atomic_fetch_add(&streamed, 1) < STREAM - 5)
        crew_spawn(crew_ctx_pool(ctx), stream_step, arg, &hi, NULL);
    return 0;
}

static int low_position(int64_t aging_ns)
{
    crew_t *pool = one_worker(aging_ns);
    crew_task_opts_t hi = { .priority = 10 };
    t_gate_t gate;
    t_count_t started;
    t_blocker_t b = { &started, &gate };
    int pos = -1;

    atomic_store(&streamed, 0);
    t_gate_init(&gate);
    t_count_init(&started);
    ck_assert_int_eq(crew_submit(pool, t_blocker_fn, &b), 0);
    ck_assert(t_count_wait(&started, 1, T_LONG));
    ck_assert_int_eq(crew_submit(pool, record, (void *)(intptr_t)-1), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(
            crew_spawn(pool, stream_step, (void *)(intptr_t)i, &hi, NULL), 0);
    t_gate_open(&gate);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(order_len, STREAM + 1);
    for (int i = 0; i < order_len; i++)
        if (order[i] == -1)
            pos = i;
    ck_assert_int_eq(crew_free(pool), 0);
    t_gate_destroy(&gate);
    t_count_destroy(&started);
    return pos;
}

START_TEST(priority__without_aging_low_waits_for_all)
{
    ck_assert_int_eq(low_position(0), STREAM);
}
END_TEST

START_TEST(priority__aging_bounds_the_wait)
{
    int pos = low_position(MS);

    crew_test_log("aged low-priority task ran at position %d of %d", pos,
                  STREAM + 1);
    ck_assert_msg(pos >= 0 && pos < 100,
                  "low-priority task ran at position %d of %d", pos,
                  STREAM + 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("priority");

    crew_add_test(s, priority__higher_first_fifo_among_equals);
    crew_add_test(s, priority__without_aging_low_waits_for_all);
    crew_add_test(s, priority__aging_bounds_the_wait);
    return crew_run_suite(s);
}
