/*
 * test_regress.c - faults a new user's attack on crew found, each kept as
 * a test: a task that returns CREW_ECANCELED itself, callbacks on threads
 * that are not workers calling back into their pool, a task waiting for
 * its own future.
 */
#include "harness.h"
#include "helpers.h"

#include <crew.h>

static int return_cancelled(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    return CREW_ECANCELED;
}

static int nop(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    return 0;
}

/* A task that returns CREW_ECANCELED ran: its future is FAILED, not stuck
 * in RUNNING, and counts as failed. */
START_TEST(regress__task_returning_ecanceled_is_failed)
{
    crew_opts_t o = { .max_workers = 1 };
    crew_task_t *t = NULL;
    crew_stats_t st;
    crew_t *pool;

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, return_cancelled, NULL, NULL, &t), 0);
    ck_assert_int_eq(crew_task_wait(t, NULL), CREW_ECANCELED);
    ck_assert_int_eq(crew_task_state(t), CREW_TASK_FAILED);
    crew_task_release(t);
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_stats(pool, &st);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(st.cancelled, 0);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

struct reentry {
    crew_t *pool;
    int wait_rc, shutdown_rc, free_rc;
    int calls;
};

static void on_error_reenter(void *arg, int err, void *user)
{
    struct reentry *r = user;

    (void)arg;
    (void)err;
    r->calls++;
    r->wait_rc = crew_wait(r->pool);
    r->shutdown_rc = crew_shutdown(r->pool, CREW_SHUTDOWN_DRAIN);
    r->free_rc = crew_free(r->pool);
}

static int blocker(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    t_gate_pass(arg);
    return 0;
}

/* The error callback of a task cancelled from the main thread runs on the
 * main thread; calls that would wait for its own pool return EDEADLK. */
START_TEST(regress__callback_on_canceller_thread_gets_edeadlk)
{
    struct reentry r = { 0 };
    crew_opts_t o = { .max_workers = 1,
                      .on_error = on_error_reenter,
                      .user = &r };
    crew_task_t *t = NULL;
    t_gate_t gate;

    t_gate_init(&gate);
    ck_assert_int_eq(crew_create(&r.pool, &o), 0);
    ck_assert_int_eq(crew_submit(r.pool, blocker, &gate), 0);
    ck_assert_int_eq(crew_spawn(r.pool, nop, NULL, NULL, &t), 0);
    ck_assert_int_eq(crew_task_cancel(t), 0);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.wait_rc, CREW_EDEADLK);
    ck_assert_int_eq(r.shutdown_rc, CREW_EDEADLK);
    ck_assert_int_eq(r.free_rc, CREW_EDEADLK);
    crew_task_release(t);
    t_gate_open(&gate);
    /* Outside the callback the same calls work. */
    ck_assert_int_eq(crew_wait(r.pool), 0);
    ck_assert_int_eq(crew_free(r.pool), 0);
    t_gate_destroy(&gate);
}
END_TEST

static int wait_self(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_task_t **self = arg;

    (void)ctx;
    (void)result;
    /* The spawner published *self before opening the gate. */
    return crew_task_wait(*self, NULL);
}

struct self_arg {
    crew_task_t *t;
    t_gate_t gate;
};

static int wait_self_gated(crew_ctx_t *ctx, void *arg, void **result)
{
    struct self_arg *s = arg;

    t_gate_pass(&s->gate);
    return wait_self(ctx, &s->t, result);
}

/* A task waiting for its own future gets EDEADLK instead of hanging. */
START_TEST(regress__task_waiting_for_itself_gets_edeadlk)
{
    crew_opts_t o = { .max_workers = 2 };
    struct self_arg s;
    crew_t *pool;
    crew_task_t *t = NULL;

    t_gate_init(&s.gate);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, wait_self_gated, &s, NULL, &t), 0);
    s.t = t;
    t_gate_open(&s.gate);
    ck_assert_int_eq(crew_task_wait(t, NULL), CREW_EDEADLK);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    t_gate_destroy(&s.gate);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("regress");

    crew_add_test(s, regress__task_returning_ecanceled_is_failed);
    crew_add_test(s, regress__callback_on_canceller_thread_gets_edeadlk);
    crew_add_test(s, regress__task_waiting_for_itself_gets_edeadlk);
    return crew_run_suite(s);
}
