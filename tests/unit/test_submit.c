/*
 * test_submit.c - the submit functions: tasks run with their argument,
 * bounded queue behaviour (EAGAIN, ETIMEDOUT, blocking), shutdown
 * releasing blocked submitters, and the task context.
 */
#include "harness.h"

#include "helpers.h"

/* A pool of one worker and queue capacity 1, with the worker held by a
 * blocker and the single queue slot taken: the queue is full. */
typedef struct full_pool {
    crew_t *pool;
    t_gate_t gate;
    t_count_t started;
    t_blocker_t blocker;
    atomic_long filler_ran;
} full_pool_t;

static void full_pool_setup(full_pool_t *f)
{
    crew_opts_t o = { .max_workers = 1, .queue_capacity = 1 };
    ck_assert((crew_create(&f->pool, &o)) == (0));
    t_gate_init(&f->gate);
    t_count_init(&f->started);
    f->blocker.started = &f->started;
    f->blocker.gate = &f->gate;
    atomic_store(&f->filler_ran, 0);
    ck_assert((crew_submit(f->pool, t_blocker_fn, &f->blocker)) == (0));
    ck_assert_msg(t_count_wait(&f->started, 1, T_LONG), "blocker never ran");
    ck_assert_msg((crew_try_submit(f->pool, t_inc_fn, &f->filler_ran)) == (0),
                  "capacity 1 must take one waiting task");
    crew_stats_t s = t_stats(f->pool);
    ck_assert((s.queued) == (1));
    ck_assert((s.running) == (1));
}

static void full_pool_teardown(full_pool_t *f)
{
    ck_assert((crew_free(f->pool)) == (0));
    t_gate_destroy(&f->gate);
    t_count_destroy(&f->started);
}

START_TEST(submit__runs_every_task_once_with_its_arg)
{
    enum { N = 500 };
    static atomic_long hits[N];
    crew_opts_t o = { .max_workers = 4 };
    crew_t *pool = crew_new(&o);
    ck_assert((pool) != NULL);
    for (int i = 0; i < N; i++) {
        atomic_store(&hits[i], 0);
        int rc;
        switch (i % 4) {
        case 0:
            rc = crew_submit(pool, t_inc_fn, &hits[i]);
            break;
        case 1:
            rc = crew_try_submit(pool, t_inc_fn, &hits[i]);
            break;
        case 2:
            rc = crew_submit_timeout(pool, t_inc_fn, &hits[i], 0);
            break;
        default:
            rc = crew_submit_timeout(pool, t_inc_fn, &hits[i], -1);
        }
        ck_assert_msg((rc) == (0), "submit %d returned %d", i, rc);
    }
    ck_assert((crew_wait(pool)) == (0));
    for (int i = 0; i < N; i++)
        ck_assert_msg((atomic_load(&hits[i])) == (1), "task %d ran %ld times",
                      i, atomic_load(&hits[i]));
    crew_stats_t s = t_stats(pool);
    ck_assert((s.submitted) == (N));
    ck_assert((s.completed) == (N));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

START_TEST(submit__try_submit_eagain_when_full)
{
    full_pool_t f;
    full_pool_setup(&f);
    atomic_long n = 0;
    ck_assert((crew_try_submit(f.pool, t_inc_fn, &n)) == (CREW_EAGAIN));
    ck_assert((crew_try_submit(f.pool, t_inc_fn, &n)) == (CREW_EAGAIN));
    crew_stats_t s = t_stats(f.pool);
    ck_assert((s.rejected) == (2));
    ck_assert((s.submitted) == (2));
    t_gate_open(&f.gate);
    ck_assert((crew_wait(f.pool)) == (0));
    ck_assert_msg((atomic_load(&n)) == (0), "a refused task ran");
    ck_assert((atomic_load(&f.filler_ran)) == (1));
    ck_assert_msg((crew_try_submit(f.pool, t_inc_fn, &n)) == (0),
                  "room again after the queue drained");
    ck_assert((crew_wait(f.pool)) == (0));
    ck_assert((atomic_load(&n)) == (1));
    full_pool_teardown(&f);
}
END_TEST

START_TEST(submit__submit_timeout_etimedout_when_full)
{
    full_pool_t f;
    full_pool_setup(&f);
    atomic_long n = 0;
    ck_assert((crew_submit_timeout(f.pool, t_inc_fn, &n, 0)) ==
              (CREW_ETIMEDOUT));
    int64_t t0 = t_now();
    ck_assert((crew_submit_timeout(f.pool, t_inc_fn, &n, 30 * T_MS)) ==
              (CREW_ETIMEDOUT));
    ck_assert_msg((t_now() - t0) >= (29 * T_MS), "gave up before its timeout");
    crew_stats_t s = t_stats(f.pool);
    ck_assert((s.rejected) == (2));
    t_gate_open(&f.gate);
    ck_assert((crew_submit_timeout(f.pool, t_inc_fn, &n, T_LONG)) == (0));
    ck_assert((crew_wait(f.pool)) == (0));
    ck_assert_msg((atomic_load(&n)) == (1), "only the accepted task may run");
    full_pool_teardown(&f);
}
END_TEST

/* A thread that submits with one of the blocking calls. */
typedef struct submitter {
    full_pool_t *f;
    int kind; /* 0: crew_submit, 1: submit_timeout(-1), 2: spawn */
    atomic_long ran;
    t_count_t done;
    atomic_int rc;
    pthread_t th;
} submitter_t;

static void *submitter_main(void *arg)
{
    submitter_t *s = arg;
    int rc;
    crew_task_t *t = NULL;
    switch (s->kind) {
    case 0:
        rc = crew_submit(s->f->pool, t_inc_fn, &s->ran);
        break;
    case 1:
        rc = crew_submit_timeout(s->f->pool, t_inc_fn, &s->ran, -1);
        break;
    default:
        rc = crew_spawn(s->f->pool, t_inc_fn, &s->ran, NULL, &t);
    }
    if (rc != 0 && t != NULL)
        rc = 12345; /* spawn must clear *task on error */
    crew_task_release(t);
    atomic_store(&s->rc, rc);
    t_count_add(&s->done, 1);
    return NULL;
}

static void submitter_start(submitter_t *s, full_pool_t *f, int kind)
{
    s->f = f;
    s->kind = kind;
    atomic_store(&s->ran, 0);
    atomic_store(&s->rc, 99999);
    t_count_init(&s->done);
    ck_assert((pthread_create(&s->th, NULL, submitter_main, s)) == (0));
}

static void submitter_join(submitter_t *s)
{
    pthread_join(s->th, NULL);
    t_count_destroy(&s->done);
}

START_TEST(submit__blocking_submit_waits_for_room)
{
    for (int kind = 0; kind < 3; kind++) {
        full_pool_t f;
        full_pool_setup(&f);
        submitter_t s;
        submitter_start(&s, &f, kind);
        /* The queue stays full while the gate is shut: it must block. */
        ck_assert_msg(!t_count_wait(&s.done, 1, 50 * T_MS),
                      "kind %d: submit returned %d with the queue full", kind,
                      atomic_load(&s.rc));
        t_gate_open(&f.gate);
        ck_assert_msg(t_count_wait(&s.done, 1, T_LONG),
                      "kind %d: submitter not woken when room came", kind);
        ck_assert((atomic_load(&s.rc)) == (0));
        submitter_join(&s);
        ck_assert((crew_wait(f.pool)) == (0));
        ck_assert((atomic_load(&s.ran)) == (1));
        full_pool_teardown(&f);
    }
}
END_TEST

/* Calls crew_shutdown() from its own thread. */
typedef struct shutter {
    crew_t *pool;
    int how;
    atomic_int rc;
    pthread_t th;
} shutter_t;

static void *shutter_main(void *arg)
{
    shutter_t *s = arg;
    atomic_store(&s->rc, crew_shutdown(s->pool, s->how));
    return NULL;
}

START_TEST(submit__shutdown_releases_blocked_submitters)
{
    full_pool_t f;
    full_pool_setup(&f);
    submitter_t s[3];
    for (int k = 0; k < 3; k++)
        submitter_start(&s[k], &f, k);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(!t_count_wait(&s[k].done, 1, 20 * T_MS),
                      "submitter %d did not block", k);
    shutter_t sh = { .pool = f.pool, .how = CREW_SHUTDOWN_DRAIN };
    ck_assert((pthread_create(&sh.th, NULL, shutter_main, &sh)) == (0));
    /* The gate is still shut: only the shutdown can release them. */
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(t_count_wait(&s[k].done, 1, T_LONG),
                      "shutdown did not release submitter %d", k);
        ck_assert_msg((atomic_load(&s[k].rc)) == (CREW_ESHUTDOWN),
                      "submitter %d got %d", k, atomic_load(&s[k].rc));
    }
    t_gate_open(&f.gate);
    pthread_join(sh.th, NULL);
    ck_assert((atomic_load(&sh.rc)) == (0));
    for (int k = 0; k < 3; k++) {
        submitter_join(&s[k]);
        ck_assert_msg((atomic_load(&s[k].ran)) == (0), "refused task %d ran",
                      k);
    }
    ck_assert_msg((atomic_load(&f.filler_ran)) == (1),
                  "drain lost a queued task");
    crew_stats_t st = t_stats(f.pool);
    ck_assert((st.submitted) == (2));
    ck_assert((st.completed) == (2));
    ck_assert((st.rejected) == (3));
    full_pool_teardown(&f);
}
END_TEST

START_TEST(submit__submit_after_shutdown_refused)
{
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, NULL)) == (0));
    ck_assert((crew_shutdown(pool, CREW_SHUTDOWN_DRAIN)) == (0));
    atomic_long n = 0;
    ck_assert((crew_submit(pool, t_inc_fn, &n)) == (CREW_ESHUTDOWN));
    ck_assert((crew_try_submit(pool, t_inc_fn, &n)) == (CREW_ESHUTDOWN));
    ck_assert((crew_submit_timeout(pool, t_inc_fn, &n, 0)) == (CREW_ESHUTDOWN));
    ck_assert((crew_submit_timeout(pool, t_inc_fn, &n, -1)) ==
              (CREW_ESHUTDOWN));
    crew_task_t *t = (crew_task_t *)&n;
    ck_assert((crew_spawn(pool, t_inc_fn, &n, NULL, &t)) == (CREW_ESHUTDOWN));
    ck_assert((t) == NULL);
    ck_assert((crew_resize(pool, 0, 2)) == (CREW_ESHUTDOWN));
    crew_stats_t s = t_stats(pool);
    ck_assert((s.rejected) == (5));
    ck_assert((s.submitted) == (0));
    ck_assert_msg((crew_wait(pool)) == (0),
                  "wait on a shut pool must not hang");
    ck_assert((crew_free(pool)) == (0));
    ck_assert((atomic_load(&n)) == (0));
}
END_TEST

/* Checks what a task can learn from its context. */
typedef struct ctx_probe {
    crew_t *pool;
    atomic_int bad;
    atomic_int ran;
} ctx_probe_t;

static _Thread_local unsigned tl_worker_id = 0xffffffffu;
static _Thread_local int tl_is_worker;

static void note_worker(crew_t *pool, unsigned id, void *user)
{
    (void)pool;
    (void)user;
    tl_worker_id = id;
    tl_is_worker = 1;
}

static int ctx_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)result;
    ctx_probe_t *p = arg;
    if (crew_ctx_pool(ctx) != p->pool)
        atomic_fetch_add(&p->bad, 1);
    if (!tl_is_worker || crew_ctx_worker_id(ctx) != tl_worker_id)
        atomic_fetch_add(&p->bad, 100);
    if (crew_ctx_cancelled(ctx))
        atomic_fetch_add(&p->bad, 10000);
    atomic_fetch_add(&p->ran, 1);
    return 0;
}

START_TEST(submit__task_context)
{
    crew_opts_t o = { .max_workers = 3, .on_thread_start = note_worker };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    ctx_probe_t p = { .pool = pool };
    for (int i = 0; i < 100; i++)
        ck_assert((crew_submit(pool, ctx_fn, &p)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((atomic_load(&p.ran)) == (100));
    ck_assert_msg((atomic_load(&p.bad)) == (0),
                  "context wrong (1: pool, 100: worker id, 10000: cancel)"
                  " sum %d",
                  atomic_load(&p.bad));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

START_TEST(submit__stack_size_option_used)
{
    crew_opts_t o = { .max_workers = 2, .stack_size = 256 * 1024 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    atomic_long n = 0;
    for (int i = 0; i < 20; i++)
        ck_assert((crew_submit(pool, t_inc_fn, &n)) == (0));
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((atomic_load(&n)) == (20));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

START_TEST(submit__cancelled_task_frees_queue_room)
{
    crew_opts_t o = { .max_workers = 1, .queue_capacity = 1 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    t_gate_t gate;
    t_count_t started;
    t_gate_init(&gate);
    t_count_init(&started);
    t_blocker_t b = { &started, &gate };
    ck_assert((crew_submit(pool, t_blocker_fn, &b)) == (0));
    ck_assert(t_count_wait(&started, 1, T_LONG));
    atomic_long n = 0;
    crew_task_t *t = NULL;
    ck_assert((crew_spawn(pool, t_inc_fn, &n, NULL, &t)) == (0));
    ck_assert((crew_try_submit(pool, t_inc_fn, &n)) == (CREW_EAGAIN));
    ck_assert((crew_task_cancel(t)) == (0));
    /* The cancelled task no longer waits to start: its slot is free. */
    ck_assert_msg((t_stats(pool).queued) == (0),
                  "cancelled task still counted");
    ck_assert_msg((crew_try_submit(pool, t_inc_fn, &n)) == (0),
                  "cancelled task still holds its queue slot");
    t_gate_open(&gate);
    ck_assert((crew_wait(pool)) == (0));
    ck_assert((atomic_load(&n)) == (1));
    crew_task_release(t);
    ck_assert((crew_free(pool)) == (0));
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("submit");

    crew_add_test(s, submit__runs_every_task_once_with_its_arg);
    crew_add_test(s, submit__try_submit_eagain_when_full);
    crew_add_test(s, submit__submit_timeout_etimedout_when_full);
    crew_add_test(s, submit__blocking_submit_waits_for_room);
    crew_add_test(s, submit__shutdown_releases_blocked_submitters);
    crew_add_test(s, submit__submit_after_shutdown_refused);
    crew_add_test(s, submit__task_context);
    crew_add_test(s, submit__stack_size_option_used);
    crew_add_test(s, submit__cancelled_task_frees_queue_room);
    return crew_run_suite(s);
}
