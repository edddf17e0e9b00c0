/*
 * test_policy.c - task policies from crew_spawn(): delayed starts,
 * per-attempt timeouts (pool default and per task, case C2), retries with
 * backoff (none, fixed, exponential with cap, jitter), retry_if, and how
 * they meet cancellation and shutdown.
 *
 * Timing: nothing here asserts that crew is fast.  Waits for something that
 * must happen are bounded by a generous watchdog (only a hang reaches it);
 * "reported at the deadline, not when the task returns" is checked by
 * ordering (the task is still blocked on a gate when its future reports);
 * backoffs and delays are checked by lower bounds only, from CLOCK_MONOTONIC
 * timestamps the task records itself.
 */
#include "harness.h"

#include "helpers.h"

#include <limits.h>

/* Watchdog for anything that must happen: only a hang reaches it. */
#define T_WATCH (10 * T_SEC)
/* A wait long enough that a test would hang (visibly) if crew waited it
 * out: used for delays and backoffs that must be cut short. */
#define T_FOREVER (60 * T_SEC)

/* A timeout for attempts that must start running before it passes (the
 * pools have their workers started already): generous, so that sanitizer
 * builds under load start them in time. */
#define T_RUN (200 * T_MS)

/* wait_task() returns this when the watchdog fired (the task never
 * finished), so that it cannot be confused with CREW_ETIMEDOUT. */
#define T_HUNG INT_MIN

/* Wait for a future with a watchdog.  crew_task_wait_timeout() answers
 * CREW_ETIMEDOUT both for a task that timed out and for a wait that gave
 * up; crew_task_poll() tells them apart. */
static int wait_task(crew_task_t *t, int64_t ns, void **result)
{
    int rc = crew_task_wait_timeout(t, ns, result);
    if (rc == CREW_ETIMEDOUT && crew_task_poll(t, NULL) == CREW_EBUSY)
        return T_HUNG;
    return rc;
}

/* Exactly-once accounting at a quiet moment. */
#define CHECK_ACCOUNTING(pool)                                                 \
    do {                                                                       \
        crew_stats_t s_ = t_stats(pool);                                       \
        ck_assert_msg(s_.submitted == s_.completed + s_.failed + s_.cancelled, \
                      "submitted %llu != completed %llu + failed %llu + "      \
                      "cancelled %llu",                                        \
                      (unsigned long long)s_.submitted,                        \
                      (unsigned long long)s_.completed,                        \
                      (unsigned long long)s_.failed,                           \
                      (unsigned long long)s_.cancelled);                       \
    } while (0)

/* --- free_result: counts its calls, remembers the last pointer -------- */

static t_count_t g_freed = { PTHREAD_MUTEX_INITIALIZER,
                             PTHREAD_COND_INITIALIZER, 0 };
static void *_Atomic g_freed_ptr;

static void count_free(void *result)
{
    atomic_store(&g_freed_ptr, result);
    free(result);
    t_count_add(&g_freed, 1);
}

static void reset_freed(void)
{
    pthread_mutex_lock(&g_freed.mu);
    g_freed.value = 0;
    pthread_mutex_unlock(&g_freed.mu);
    atomic_store(&g_freed_ptr, NULL);
}

/* Worker threads started and stopped (static: a detached worker may
 * still be inside its stop hook when the test returns). */
static t_count_t g_started = { PTHREAD_MUTEX_INITIALIZER,
                               PTHREAD_COND_INITIALIZER, 0 };
static t_count_t g_stopped = { PTHREAD_MUTEX_INITIALIZER,
                               PTHREAD_COND_INITIALIZER, 0 };

static void count_start(crew_t *pool, unsigned id, void *user)
{
    (void)pool;
    (void)id;
    (void)user;
    t_count_add(&g_started, 1);
}

static void count_stop(crew_t *pool, unsigned id, void *user)
{
    (void)pool;
    (void)id;
    (void)user;
    t_count_add(&g_stopped, 1);
}

/* After crew_free(): wait until every worker thread of pools made with
 * these hooks has stopped, including ones left behind in a timed-out
 * task (so every task has returned). */
static bool all_threads_stopped(void)
{
    return t_count_wait(&g_stopped, t_count_get(&g_started), T_WATCH);
}

/* --- A configurable task and its callbacks ----------------------------- */

enum { MAXA = 8 };

typedef struct pt {
    /* Set before spawning. */
    int fail_first;     /* attempts 1..fail_first fail ... */
    int err_base;       /* ... with err_base + attempt */
    unsigned gate_upto; /* attempts 1..gate_upto block on gate */
    t_gate_t *gate;
    bool wait_cancelled; /* attempt 1 waits for crew_ctx_cancelled() */
    bool make_result;    /* a successful attempt returns a heap int */
    int retry_stop_err;  /* retry_if says no to this error */

    /* Recorded by the task. */
    atomic_int calls;
    atomic_uint attempt[MAXA];
    atomic_llong start[MAXA], end[MAXA], deadline[MAXA];
    atomic_bool timed_out_at_end[MAXA];
    void *_Atomic result_ptr;
    t_count_t started, ended;

    /* Recorded by callbacks and retry_if. */
    atomic_int n_result, n_error, last_err, n_retry_if;
    void *_Atomic retry_if_user;
    t_count_t reported;
} pt_t;

static pt_t *pt_new(void)
{
    pt_t *p = calloc(1, sizeof *p);
    ck_assert(p != NULL);
    t_count_init(&p->started);
    t_count_init(&p->ended);
    t_count_init(&p->reported);
    return p;
}

static void pt_free(pt_t *p)
{
    t_count_destroy(&p->started);
    t_count_destroy(&p->ended);
    t_count_destroy(&p->reported);
    free(p);
}

static int pt_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    pt_t *p = arg;
    int i = atomic_fetch_add(&p->calls, 1);
    unsigned k = crew_ctx_attempt(ctx);
    int rc;

    if (i < MAXA) {
        atomic_store(&p->attempt[i], k);
        atomic_store(&p->start[i], t_now());
        atomic_store(&p->deadline[i], crew_ctx_deadline(ctx));
    }
    t_count_add(&p->started, 1);
    if (p->gate != NULL && k <= p->gate_upto)
        (void)t_gate_pass(p->gate);
    if (p->wait_cancelled && k == 1) {
        int64_t end = t_now() + T_WATCH;
        while (!crew_ctx_cancelled(ctx) && t_now() < end)
            t_sleep(T_MS);
    }
    rc = (int)k <= p->fail_first ? p->err_base + (int)k : 0;
    if (rc == 0 && p->make_result) {
        int *v = malloc(sizeof *v);
        ck_assert(v != NULL);
        *v = (int)k;
        atomic_store(&p->result_ptr, v);
        *result = v;
    }
    if (i < MAXA) {
        atomic_store(&p->timed_out_at_end[i], crew_ctx_timed_out(ctx));
        atomic_store(&p->end[i], t_now());
    }
    t_count_add(&p->ended, 1);
    return rc;
}

static void pt_on_result(void *arg, void *result, void *user)
{
    (void)arg;
    (void)result;
    pt_t *p = user;
    atomic_fetch_add(&p->n_result, 1);
    t_count_add(&p->reported, 1);
}

static void pt_on_error(void *arg, int err, void *user)
{
    (void)arg;
    pt_t *p = user;
    atomic_store(&p->last_err, err);
    atomic_fetch_add(&p->n_error, 1);
    t_count_add(&p->reported, 1);
}

static bool pt_retry_if(int err, void *user)
{
    pt_t *p = user;
    atomic_fetch_add(&p->n_retry_if, 1);
    atomic_store(&p->retry_if_user, user);
    return err != p->retry_stop_err;
}

/* Task options with the pt callbacks. */
static crew_task_opts_t pt_opts(pt_t *p)
{
    crew_task_opts_t o = { .on_result = pt_on_result,
                           .on_error = pt_on_error,
                           .user = p };
    return o;
}

static crew_t *make_pool(unsigned workers, int64_t task_timeout_ns)
{
    crew_opts_t o = { .max_workers = workers,
                      .prespawn = true,
                      .free_result = count_free,
                      .task_timeout_ns = task_timeout_ns };
    crew_t *pool = NULL;
    reset_freed();
    ck_assert(crew_create(&pool, &o) == 0);
    return pool;
}

/* Wait until a future's task has run attempt `calls` and is waiting out
 * its backoff (its state is QUEUED again). */
static bool wait_backoff(crew_task_t *t, pt_t *p, int calls)
{
    bool ok;
    T_EVENTUALLY(ok,
                 atomic_load(&p->calls) == calls &&
                     t_count_get(&p->ended) == calls &&
                     crew_task_state(t) == CREW_TASK_QUEUED,
                 T_WATCH);
    return ok;
}

/* --- C2: a timeout setting must not hurt tasks that finish in time ----- */

typedef struct c2 {
    atomic_int n_result, n_error, n_timedout, bad_err;
    t_count_t errors, results;
} c2_t;

static void c2_on_result(void *arg, void *result, void *user)
{
    (void)arg;
    (void)result;
    c2_t *c = user;
    atomic_fetch_add(&c->n_result, 1);
    t_count_add(&c->results, 1);
}

static void c2_on_error(void *arg, int err, void *user)
{
    (void)arg;
    c2_t *c = user;
    atomic_fetch_add(&c->n_error, 1);
    if (err == CREW_ETIMEDOUT)
        atomic_fetch_add(&c->n_timedout, 1);
    else
        atomic_store(&c->bad_err, err);
    t_count_add(&c->errors, 1);
}

START_TEST(policy__c2_timeout_spares_quick_tasks)
{
    c2_t c = { 0 };
    t_count_init(&c.errors);
    t_count_init(&c.results);
    reset_freed();
    crew_opts_t o = { .max_workers = 1,
                      .task_timeout_ns = 1 * T_SEC,
                      .on_result = c2_on_result,
                      .on_error = c2_on_error,
                      .free_result = count_free,
                      .user = &c };
    crew_t *pool = NULL;
    ck_assert(crew_create(&pool, &o) == 0);

    /* The slow task: blocks until the test opens the gate, which it does
     * only after the future has reported, then returns a result late. */
    t_gate_t gate;
    t_gate_init(&gate);
    pt_t *slow = pt_new();
    slow->gate = &gate;
    slow->gate_upto = 1;
    slow->make_result = true;

    atomic_long quick = 0;
    crew_task_t *q[4] = { NULL }, *s = NULL;
    int64_t t0 = t_now();
    for (int i = 0; i < 3; i++)
        ck_assert(crew_spawn(pool, t_inc_fn, &quick, NULL, &q[i]) == 0);
    ck_assert(crew_spawn(pool, pt_fn, slow, NULL, &s) == 0);

    for (int i = 0; i < 3; i++)
        ck_assert_msg(wait_task(q[i], 5 * T_SEC, NULL) == 0,
                      "quick task %d did not complete successfully", i);
    ck_assert_msg(t_count_wait(&slow->started, 1, 5 * T_SEC),
                  "slow task never started");

    /* Reported at the deadline: the task is still blocked on the gate. */
    ck_assert_msg(t_count_wait(&c.errors, 1, 5 * T_SEC),
                  "slow task not reported within the 5 s watchdog");
    int64_t elapsed = t_now() - t0;
    crew_test_log("c2: slow task reported after %.3f s (case: within 1.2 s)",
                  (double)elapsed / (double)T_SEC);
    ck_assert_int_eq(wait_task(s, 5 * T_SEC, NULL), CREW_ETIMEDOUT);
    ck_assert_msg(t_count_get(&slow->ended) == 0,
                  "slow task returned before it was reported");
    ck_assert_int_eq(atomic_load(&c.n_timedout), 1);
    ck_assert_int_eq(atomic_load(&c.bad_err), 0);
    ck_assert_int_eq(atomic_load(&c.n_result), 3);
    ck_assert_int_eq(atomic_load(&quick), 3);

    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.timed_out, 1);
    ck_assert_uint_eq(st.overtime_workers, 1);

    /* The worker slot is not lost: a fourth quick task runs while the
     * slow one is still stuck. */
    ck_assert(crew_spawn(pool, t_inc_fn, &quick, NULL, &q[3]) == 0);
    ck_assert_msg(wait_task(q[3], 5 * T_SEC, NULL) == 0,
                  "fourth quick task did not run while the slow one is "
                  "stuck (overtime_workers %u)",
                  t_stats(pool).overtime_workers);
    ck_assert_msg(t_count_get(&slow->ended) == 0,
                  "slow task returned before the gate opened");
    ck_assert_uint_eq(t_stats(pool).overtime_workers, 1);

    /* Let the slow task return: it sees its deadline passed; its late
     * result goes to free_result, once. */
    t_gate_open(&gate);
    ck_assert(t_count_wait(&slow->ended, 1, T_WATCH));
    ck_assert(atomic_load(&slow->timed_out_at_end[0]));
    ck_assert_msg(t_count_wait(&g_freed, 1, T_WATCH),
                  "late result never reached free_result");
    ck_assert_int_eq(crew_wait(pool), 0);

    void *r = (void *)&r;
    ck_assert_int_eq(crew_task_wait(s, &r), CREW_ETIMEDOUT);
    ck_assert_ptr_null(r);
    for (int i = 0; i < 4; i++)
        crew_task_release(q[i]);
    crew_task_release(s);

    st = t_stats(pool);
    ck_assert_uint_eq(st.submitted, 5);
    ck_assert_uint_eq(st.completed, 4);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(st.cancelled, 0);
    ck_assert_uint_eq(st.timed_out, 1);
    ck_assert_uint_eq(st.retries, 0);
    CHECK_ACCOUNTING(pool);
    ck_assert_int_eq(crew_free(pool), 0);

    /* Exactly once, also after everything has wound down. */
    ck_assert_int_eq(atomic_load(&c.n_error), 1);
    ck_assert_int_eq(atomic_load(&c.n_result), 4);
    ck_assert_int_eq(atomic_load(&quick), 4);
    ck_assert_int_eq(t_count_get(&g_freed), 1);
    ck_assert_ptr_eq(atomic_load(&g_freed_ptr), atomic_load(&slow->result_ptr));
    ck_assert_int_eq(atomic_load(&slow->calls), 1);
    pt_free(slow);
    t_gate_destroy(&gate);
    t_count_destroy(&c.errors);
    t_count_destroy(&c.results);
}
END_TEST

/* crew_wait() or a draining crew_shutdown() on a thread of its own;
 * `done` counts its return. */
typedef struct waiter {
    crew_t *pool;
    bool shutdown;
    int rc;
    t_count_t done;
} waiter_t;

static void *waiter_main(void *arg)
{
    waiter_t *w = arg;

    w->rc = w->shutdown ? crew_shutdown(w->pool, CREW_SHUTDOWN_DRAIN)
                        : crew_wait(w->pool);
    t_count_add(&w->done, 1);
    return NULL;
}

/* Run w (crew_wait or a draining shutdown) on a thread of its own; give
 * it T_WATCH to return while tasks are stuck on `gate`, then open the
 * gate either way and join it.  True if it returned in time, rc 0. */
static bool waits_while_stuck(waiter_t *w, crew_t *pool, bool shutdown,
                              t_gate_t *gate)
{
    pthread_t th;
    bool ended;

    w->pool = pool;
    w->shutdown = shutdown;
    ck_assert(pthread_create(&th, NULL, waiter_main, w) == 0);
    ended = t_count_wait(&w->done, 1, T_WATCH);
    t_gate_open(gate);
    pthread_join(th, NULL);
    return ended && w->rc == 0;
}

/* A blocker that also counts its return, which a shutdown that left it
 * behind does not wait for. */
typedef struct stuck {
    t_blocker_t b;
    t_count_t returned;
} stuck_t;

static int stuck_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    stuck_t *st = arg;
    int rc = t_blocker_fn(ctx, &st->b, result);

    t_count_add(&st->returned, 1);
    return rc;
}

/*
 * One worker runs plain tasks back to back, then gets stuck in a task
 * that times out.  crew_wait() (or a draining shutdown) ends once that
 * task is reported, while the worker is still stuck: the tasks it ran
 * before must not still count as outstanding (a worker drops that count
 * in batches, and a waiter takes what it owes).
 */
static void wait_while_stuck(bool shutdown)
{
    crew_opts_t o = { .min_workers = 1, .max_workers = 1 };
    crew_t *pool = NULL;
    t_count_t started;
    t_gate_t first, stuck;
    atomic_long quick = 0;
    crew_task_opts_t to = { .timeout_ns = T_RUN };
    crew_task_t *s = NULL;
    waiter_t w = { 0 };

    t_count_init(&started);
    t_gate_init(&first);
    t_gate_init(&stuck);
    t_count_init(&w.done);
    ck_assert(crew_create(&pool, &o) == 0);
    t_blocker_t b1 = { &started, &first };
    stuck_t b2 = { .b = { &started, &stuck } };
    t_count_init(&b2.returned);

    /* Queue the tasks behind a blocker, so the worker runs them in one go. */
    ck_assert(crew_submit(pool, t_blocker_fn, &b1) == 0);
    ck_assert(t_count_wait(&started, 1, T_WATCH));
    for (int i = 0; i < 20; i++)
        ck_assert(crew_submit(pool, t_inc_fn, &quick) == 0);
    ck_assert(crew_spawn(pool, stuck_fn, &b2, &to, &s) == 0);
    t_gate_open(&first);
    ck_assert_msg(t_count_wait(&started, 2, T_WATCH),
                  "the task meant to get stuck never started");
    ck_assert_int_eq(wait_task(s, T_WATCH, NULL), CREW_ETIMEDOUT);
    ck_assert_int_eq(atomic_load(&quick), 20);

    ck_assert_msg(waits_while_stuck(&w, pool, shutdown, &stuck),
                  "%s waited for the stuck worker",
                  shutdown ? "crew_shutdown()" : "crew_wait()");

    crew_task_release(s);
    ck_assert_int_eq(crew_free(pool), 0);
    /* Left behind by the shutdown: it may still be on its way out. */
    ck_assert(t_count_wait(&b2.returned, 1, T_WATCH));
    t_count_destroy(&b2.returned);
    t_count_destroy(&w.done);
    t_gate_destroy(&stuck);
    t_gate_destroy(&first);
    t_count_destroy(&started);
}

START_TEST(policy__wait_ends_while_worker_that_ran_tasks_is_stuck)
{
    wait_while_stuck(false);
}
END_TEST

START_TEST(policy__shutdown_ends_while_worker_that_ran_tasks_is_stuck)
{
    wait_while_stuck(true);
}
END_TEST

/*
 * Tasks with a deadline that get stuck, behind a backlog of tiny tasks: a
 * worker taking from the backlog moves a batch to its own queue, the
 * other worker may steal a stuck task from there, and the thief's count
 * must not outlive the deadline.  crew_wait() (or a draining shutdown)
 * ends once the stuck tasks are reported, while they are still stuck
 * (found by a tester: it hung in most runs).
 */
static void stolen_stuck(bool shutdown)
{
    crew_opts_t o = { .min_workers = 2, .max_workers = 2, .prespawn = true };
    crew_t *pool = NULL;
    t_count_t started, held_started;
    t_gate_t gate, hold;
    stuck_t st = { .b = { &started, &gate } };
    t_blocker_t holder = { &held_started, &hold };
    crew_task_opts_t to = { .timeout_ns = T_RUN };
    atomic_long quick = 0;
    waiter_t w = { 0 };

    t_count_init(&started);
    t_count_init(&held_started);
    t_gate_init(&gate);
    t_gate_init(&hold);
    t_count_init(&st.returned);
    t_count_init(&w.done);
    ck_assert(crew_create(&pool, &o) == 0);
    /* Both workers held while the queue fills, so that the first take
     * moves a batch, stuck tasks included, to a worker's own queue, and
     * the other worker steals from there once the rest is done. */
    ck_assert(crew_submit(pool, t_blocker_fn, &holder) == 0);
    ck_assert(crew_submit(pool, t_blocker_fn, &holder) == 0);
    ck_assert(t_count_wait(&held_started, 2, T_WATCH));
    for (int k = 0; k < 3; k++)
        ck_assert(crew_spawn(pool, stuck_fn, &st, &to, NULL) == 0);
    for (int i = 0; i < 2000; i++)
        ck_assert(crew_submit(pool, t_inc_fn, &quick) == 0);
    t_gate_open(&hold);

    ck_assert_msg(waits_while_stuck(&w, pool, shutdown, &gate),
                  "%s waited for stuck tasks already reported",
                  shutdown ? "crew_shutdown()" : "crew_wait()");
    ck_assert_int_eq(atomic_load(&quick), 2000);
    ck_assert_uint_eq(t_stats(pool).failed, 3);
    ck_assert_int_eq(crew_free(pool), 0);
    /* Those that started may still be on their way out. */
    ck_assert(t_count_wait(&st.returned, t_count_get(&started), T_WATCH));
    t_count_destroy(&w.done);
    t_count_destroy(&st.returned);
    t_gate_destroy(&hold);
    t_gate_destroy(&gate);
    t_count_destroy(&held_started);
    t_count_destroy(&started);
}

START_TEST(policy__wait_ends_after_stolen_task_times_out)
{
    stolen_stuck(false);
}
END_TEST

START_TEST(policy__shutdown_ends_after_stolen_task_times_out)
{
    stolen_stuck(true);
}
END_TEST

/* --- Timeouts ---------------------------------------------------------- */

START_TEST(policy__queued_task_past_deadline_never_runs)
{
    crew_t *pool = make_pool(1, 0);
    t_count_t started;
    t_gate_t gate;
    t_count_init(&started);
    t_gate_init(&gate);
    t_blocker_t b = { &started, &gate };
    crew_task_t *bt = NULL, *t = NULL;

    /* The only worker is busy (no timeout of its own)... */
    ck_assert(crew_spawn(pool, t_blocker_fn, &b, NULL, &bt) == 0);
    ck_assert(t_count_wait(&started, 1, T_WATCH));

    /* ... so this one waits in the queue past its deadline. */
    pt_t *p = pt_new();
    crew_task_opts_t o = pt_opts(p);
    o.timeout_ns = 50 * T_MS;
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_int_eq(wait_task(t, T_WATCH, NULL), CREW_ETIMEDOUT);
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    ck_assert_int_eq(atomic_load(&p->last_err), CREW_ETIMEDOUT);

    t_gate_open(&gate);
    ck_assert_int_eq(wait_task(bt, T_WATCH, NULL), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_msg(atomic_load(&p->calls) == 0,
                  "a task whose deadline passed in the queue ran");
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    ck_assert_int_eq(atomic_load(&p->n_result), 0);
    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.timed_out, 1);
    ck_assert_uint_eq(st.submitted, 2);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.overtime_workers, 0);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    crew_task_release(bt);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(atomic_load(&p->calls), 0);
    pt_free(p);
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

START_TEST(policy__late_result_goes_to_free_result_once)
{
    crew_t *pool = make_pool(2, 0);
    t_gate_t gate;
    t_gate_init(&gate);
    pt_t *p = pt_new();
    p->gate = &gate;
    p->gate_upto = 1;
    p->make_result = true;
    crew_task_opts_t o = pt_opts(p);
    o.timeout_ns = T_RUN;
    crew_task_t *t = NULL;

    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert(t_count_wait(&p->started, 1, T_WATCH));
    /* Reported while the task still blocks. */
    ck_assert_int_eq(wait_task(t, T_WATCH, NULL), CREW_ETIMEDOUT);
    ck_assert_int_eq(t_count_get(&p->ended), 0);
    ck_assert_int_eq(t_count_get(&g_freed), 0);

    t_gate_open(&gate);
    ck_assert_msg(t_count_wait(&g_freed, 1, T_WATCH),
                  "late result never reached free_result");
    ck_assert_int_eq(crew_wait(pool), 0);
    void *r = (void *)&r;
    ck_assert_int_eq(crew_task_wait(t, &r), CREW_ETIMEDOUT);
    ck_assert_msg(r == NULL, "the future handed out the late result");
    crew_task_release(t);
    CHECK_ACCOUNTING(pool);
    ck_assert_int_eq(crew_free(pool), 0);

    ck_assert_int_eq(t_count_get(&g_freed), 1);
    ck_assert_ptr_eq(atomic_load(&g_freed_ptr), atomic_load(&p->result_ptr));
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    ck_assert_int_eq(atomic_load(&p->n_result), 0);
    ck_assert_int_eq(atomic_load(&p->last_err), CREW_ETIMEDOUT);
    pt_free(p);
    t_gate_destroy(&gate);
}
END_TEST

/* A task that records what its context says about time, then waits for
 * crew_ctx_timed_out() to turn true. */
typedef struct dl {
    atomic_llong deadline, now_start, now_end;
    atomic_bool flag_start, flag_end;
    t_count_t *ended; /* optional: +1 as the task returns */
} dl_t;

static int deadline_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)result;
    dl_t *d = arg;
    atomic_store(&d->deadline, crew_ctx_deadline(ctx));
    /* Flag first, then clock: if the flag is true, the clock read after
     * it must be past the deadline. */
    atomic_store(&d->flag_start, crew_ctx_timed_out(ctx));
    atomic_store(&d->now_start, t_now());
    int64_t end = t_now() + T_WATCH;
    bool f = false;
    while (!(f = crew_ctx_timed_out(ctx)) && t_now() < end)
        t_sleep(T_MS);
    atomic_store(&d->flag_end, f);
    atomic_store(&d->now_end, t_now());
    if (d->ended != NULL)
        t_count_add(d->ended, 1);
    return 0;
}

START_TEST(policy__ctx_deadline_and_timed_out)
{
    crew_t *pool = make_pool(1, 0);
    t_count_t ended;
    t_count_init(&ended);
    dl_t d = { .ended = &ended };
    crew_task_opts_t o = { .timeout_ns = T_RUN };
    crew_task_t *t = NULL;

    int64_t before = t_now();
    ck_assert(crew_spawn(pool, deadline_fn, &d, &o, &t) == 0);
    int64_t after = t_now();
    /* The task returns as soon as it notices; whether that return can
     * beat the timer's report is policy__return_after_deadline_is_late's
     * business, not this test's. */
    int rc = wait_task(t, T_WATCH, NULL);
    ck_assert_msg(rc == CREW_ETIMEDOUT || rc == 0, "outcome %d", rc);
    ck_assert(t_count_wait(&ended, 1, T_WATCH));
    ck_assert_int_eq(crew_wait(pool), 0);
    CHECK_ACCOUNTING(pool);
    ck_assert_int_eq(crew_free(pool), 0);
    t_count_destroy(&ended);

    int64_t dl = atomic_load(&d.deadline);
    ck_assert_msg(dl != 0, "crew_ctx_deadline() is 0 for a timed task");
    /* Counted from when the attempt was queued, i.e. during the spawn. */
    ck_assert_msg(dl >= before + T_RUN && dl <= after + T_RUN,
                  "deadline %lld not within [%lld, %lld]", (long long)dl,
                  (long long)(before + T_RUN), (long long)(after + T_RUN));
    ck_assert_msg(
        !(atomic_load(&d.flag_start) && atomic_load(&d.now_start) < dl),
        "crew_ctx_timed_out() true before the deadline");
    ck_assert_msg(atomic_load(&d.flag_end),
                  "crew_ctx_timed_out() never turned true");
    ck_assert(atomic_load(&d.now_end) >= dl);
    crew_task_release(t);
}
END_TEST

typedef struct spin {
    atomic_int ran;  /* tasks that started */
    atomic_int seen; /* tasks that saw crew_ctx_timed_out() */
    t_count_t ended; /* tasks about to return */
} spin_t;

/* Spins (no sleep) until crew_ctx_timed_out(), then returns 0 with a
 * heap result. */
static int spin_until_timed_out_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    spin_t *sp = arg;
    atomic_fetch_add(&sp->ran, 1);
    int64_t end = t_now() + T_WATCH;
    bool seen = false;
    while (!(seen = crew_ctx_timed_out(ctx)) && t_now() < end) {
    }
    if (seen)
        atomic_fetch_add(&sp->seen, 1);
    int *v = malloc(sizeof *v);
    ck_assert(v != NULL);
    *v = 1;
    *result = v;
    t_count_add(&sp->ended, 1);
    return 0;
}

/*
 * A task that returns after crew_ctx_timed_out() told it its deadline had
 * passed has returned late: crew_spawn() promises CREW_ETIMEDOUT to its
 * future and callbacks, and its late result to free_result.  Such a task
 * must not be reported as a success just because its return beat the
 * timer thread to the deadline.
 */
START_TEST(policy__return_after_deadline_is_late)
{
    enum { N = 4 };
    reset_freed();
    crew_opts_t po = { .max_workers = N,
                       .prespawn = true,
                       .free_result = count_free,
                       .on_thread_start = count_start,
                       .on_thread_stop = count_stop };
    crew_t *pool = NULL;
    ck_assert(crew_create(&pool, &po) == 0);
    spin_t sp = { 0 };
    t_count_init(&sp.ended);
    crew_task_opts_t o = { .timeout_ns = 20 * T_MS };
    crew_task_t *t[N];
    int wrong = 0, example = 0;

    for (int i = 0; i < N; i++)
        ck_assert(crew_spawn(pool, spin_until_timed_out_fn, &sp, &o, &t[i]) ==
                  0);
    for (int i = 0; i < N; i++) {
        void *r = NULL;
        int rc = wait_task(t[i], T_WATCH, &r);
        ck_assert(rc != T_HUNG);
        free(r); /* a result handed out by mistake */
        if (rc != CREW_ETIMEDOUT) {
            wrong++;
            example = rc;
        }
        crew_task_release(t[i]);
    }
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_stats_t st = t_stats(pool);
    CHECK_ACCOUNTING(pool);
    ck_assert_int_eq(crew_free(pool), 0);
    /* Every task that ran has returned (a timed-out one may outlive
     * crew_free()); one whose deadline passed in the queue never ran. */
    ck_assert(all_threads_stopped());
    int ran = atomic_load(&sp.ran);
    ck_assert_int_eq(t_count_get(&sp.ended), ran);
    ck_assert_int_eq(atomic_load(&sp.seen), ran);
    t_count_destroy(&sp.ended);
    ck_assert_msg(wrong == 0,
                  "%d of %d tasks that returned after crew_ctx_timed_out() "
                  "was true were reported with their own outcome (%d), "
                  "not CREW_ETIMEDOUT; stats: timed_out %llu completed %llu",
                  wrong, ran, example, (unsigned long long)st.timed_out,
                  (unsigned long long)st.completed);
    ck_assert_uint_eq(st.timed_out, N);
    /* Every late result went to free_result, once. */
    ck_assert_int_eq(t_count_get(&g_freed), ran);
}
END_TEST

/* A task that records crew_ctx_deadline() and crew_ctx_timed_out(). */
static int no_deadline_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)result;
    dl_t *d = arg;
    atomic_store(&d->deadline, crew_ctx_deadline(ctx));
    atomic_store(&d->flag_end, crew_ctx_timed_out(ctx));
    return 0;
}

START_TEST(policy__ctx_no_deadline_without_timeout)
{
    crew_t *pool = make_pool(1, 0);
    dl_t plain = { .deadline = -1 }, spawned = { .deadline = -1 },
         optout = { .deadline = -1 };
    crew_task_opts_t o = { .retries = 1 }; /* a policy task, no timeout */
    crew_task_t *t = NULL;

    ck_assert_int_eq(crew_submit(pool, no_deadline_fn, &plain), 0);
    ck_assert_int_eq(crew_spawn(pool, no_deadline_fn, &spawned, &o, NULL), 0);
    o.timeout_ns = -1;
    ck_assert_int_eq(crew_spawn(pool, no_deadline_fn, &optout, &o, &t), 0);
    ck_assert_int_eq(wait_task(t, T_WATCH, NULL), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&plain.deadline), 0);
    ck_assert_int_eq(atomic_load(&spawned.deadline), 0);
    ck_assert_int_eq(atomic_load(&optout.deadline), 0);
    ck_assert(!atomic_load(&plain.flag_end));
    ck_assert(!atomic_load(&spawned.flag_end));
    ck_assert(!atomic_load(&optout.flag_end));
    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.timed_out, 0);
    ck_assert_uint_eq(st.completed, 3);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

static int sleep_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)result;
    atomic_llong *dl = arg;
    atomic_store(dl, crew_ctx_deadline(ctx));
    t_sleep(60 * T_MS);
    return crew_ctx_timed_out(ctx) ? 1 : 0;
}

START_TEST(policy__negative_task_timeout_overrides_pool_default)
{
    crew_t *pool = make_pool(1, 20 * T_MS);
    atomic_llong dl = -1;
    crew_task_opts_t o = { .timeout_ns = -1 };
    crew_task_t *t = NULL;
    ck_assert(crew_spawn(pool, sleep_fn, &dl, &o, &t) == 0);
    ck_assert_int_eq(wait_task(t, T_WATCH, NULL), 0);
    ck_assert_int_eq(atomic_load(&dl), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.timed_out, 0);
    ck_assert_uint_eq(st.completed, 1);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

START_TEST(policy__task_timeout_overrides_pool_default)
{
    /* Pool default 60 s; the task's own 50 ms applies (a wait for the
     * default would reach the watchdog). */
    crew_t *pool = make_pool(1, T_FOREVER);
    t_gate_t gate;
    t_gate_init(&gate);
    pt_t *p = pt_new();
    p->gate = &gate;
    p->gate_upto = 1;
    crew_task_opts_t o = pt_opts(p);
    o.timeout_ns = T_RUN;
    crew_task_t *t = NULL;
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_int_eq(wait_task(t, T_WATCH, NULL), CREW_ETIMEDOUT);
    t_gate_open(&gate);
    ck_assert(t_count_wait(&p->ended, 1, T_WATCH));
    ck_assert_int_eq(crew_wait(pool), 0);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    pt_free(p);
    t_gate_destroy(&gate);
}
END_TEST

/*
 * At most max_overtime stuck workers are replaced.  In a fiber run
 * (harness.h) the replacements are of threads: threads in all stay within
 * `threads` + max_overtime, so the pool gets one thread (thread mode
 * ignores the option), and A and B, each stuck on its thread, are the
 * two that bound allows; the budget (max_workers) bounds fibers, and
 * each timed-out one gave its place back.
 */
START_TEST(policy__max_overtime_bounds_replacements)
{
    crew_opts_t po = { .max_workers = 1,
                       .max_overtime = 1,
                       .prespawn = true,
                       .threads = 1,
                       .free_result = count_free };
    crew_t *pool = NULL;
    reset_freed();
    ck_assert(crew_create(&pool, &po) == 0);
    t_gate_t gate;
    t_gate_init(&gate);
    pt_t *a = pt_new(), *b = pt_new(), *c = pt_new();
    a->gate = b->gate = &gate;
    a->gate_upto = b->gate_upto = 1;
    crew_task_opts_t oa = pt_opts(a), ob = pt_opts(b), oc = pt_opts(c);
    oa.timeout_ns = ob.timeout_ns = T_RUN;
    crew_task_t *ta = NULL, *tb = NULL, *tc = NULL;

    /* A times out running: its worker goes overtime, one replacement. */
    ck_assert(crew_spawn(pool, pt_fn, a, &oa, &ta) == 0);
    ck_assert(t_count_wait(&a->started, 1, T_WATCH));
    ck_assert_int_eq(wait_task(ta, T_WATCH, NULL), CREW_ETIMEDOUT);
    ck_assert_uint_eq(t_stats(pool).overtime_workers, 1);
    /* B runs on the replacement and times out too: no more overtime. */
    ck_assert(crew_spawn(pool, pt_fn, b, &ob, &tb) == 0);
    ck_assert_msg(t_count_wait(&b->started, 1, T_WATCH),
                  "no replacement worker for B");
    ck_assert_int_eq(wait_task(tb, T_WATCH, NULL), CREW_ETIMEDOUT);
    crew_stats_t st = t_stats(pool);
    /* Both stuck workers are overtime (so shutdown would not wait for
     * either), but only one could be replaced: threads in all are at most
     * max_workers + max_overtime. */
    ck_assert_msg(st.overtime_workers == 2, "overtime_workers %u, want 2",
                  st.overtime_workers);
    ck_assert_uint_eq(st.workers, 0);
    /* C must wait for a worker: both are stuck, and only one may be
     * replaced.  (A bounded wait that is expected to give up.) */
    ck_assert(crew_spawn(pool, pt_fn, c, &oc, &tc) == 0);
    ck_assert_int_eq(wait_task(tc, 100 * T_MS, NULL), T_HUNG);
    ck_assert_int_eq(atomic_load(&c->calls), 0);

    t_gate_open(&gate);
    ck_assert_int_eq(wait_task(tc, T_WATCH, NULL), 0);
    ck_assert(t_count_wait(&a->ended, 1, T_WATCH));
    ck_assert(t_count_wait(&b->ended, 1, T_WATCH));
    ck_assert_int_eq(crew_wait(pool), 0);
    CHECK_ACCOUNTING(pool);
    crew_task_release(ta);
    crew_task_release(tb);
    crew_task_release(tc);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(atomic_load(&a->n_error), 1);
    ck_assert_int_eq(atomic_load(&b->n_error), 1);
    ck_assert_int_eq(atomic_load(&c->n_result), 1);
    pt_free(a);
    pt_free(b);
    pt_free(c);
    t_gate_destroy(&gate);
}
END_TEST

/*
 * README ("Limitations"): crew_shutdown() leaves a worker stuck in a
 * timed-out task behind, detached, and the pool's memory lives until it
 * returns.  Freeing the pool while such a task runs must be safe: the
 * late result still reaches free_result, once, and nothing is touched
 * after it is freed (ASan).  If crew_free() waited for the task instead,
 * the opener thread below opens the gate after the watchdog and the test
 * fails on the ordering check rather than hanging.
 */
typedef struct opener {
    t_gate_t *gate;
    t_count_t *freed_pool;
} opener_t;

static void *opener_main(void *arg)
{
    opener_t *o = arg;
    (void)t_count_wait(o->freed_pool, 1, T_WATCH);
    t_gate_open(o->gate);
    return NULL;
}

START_TEST(policy__free_leaves_stuck_task_behind_safely)
{
    reset_freed();
    crew_opts_t po = { .max_workers = 1,
                       .free_result = count_free,
                       .on_thread_start = count_start,
                       .on_thread_stop = count_stop };
    crew_t *pool = NULL;
    ck_assert(crew_create(&pool, &po) == 0);
    t_gate_t gate;
    t_count_t freed_pool;
    t_gate_init(&gate);
    t_count_init(&freed_pool);
    opener_t op = { &gate, &freed_pool };
    pthread_t opener;
    ck_assert(pthread_create(&opener, NULL, opener_main, &op) == 0);

    pt_t *p = pt_new();
    p->gate = &gate;
    p->gate_upto = 1;
    p->make_result = true;
    crew_task_opts_t o = pt_opts(p);
    o.timeout_ns = T_RUN;
    crew_task_t *t = NULL;
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_int_eq(wait_task(t, T_WATCH, NULL), CREW_ETIMEDOUT);
    ck_assert_int_eq(crew_wait(pool), 0);
    CHECK_ACCOUNTING(pool);
    ck_assert_uint_eq(t_stats(pool).overtime_workers, 1);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    bool early = t_count_get(&p->ended) == 0;
    t_count_add(&freed_pool, 1);
    ck_assert_msg(early, "crew_free() waited for the stuck task");

    /* The stuck task returns after the pool is gone: its late result
     * still goes to free_result, once, and its thread winds down. */
    ck_assert(t_count_wait(&p->ended, 1, T_WATCH));
    ck_assert_msg(t_count_wait(&g_freed, 1, T_WATCH),
                  "late result lost after crew_free()");
    ck_assert(all_threads_stopped());
    ck_assert_int_eq(t_count_get(&g_freed), 1);
    ck_assert_ptr_eq(atomic_load(&g_freed_ptr), atomic_load(&p->result_ptr));
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    ck_assert_int_eq(atomic_load(&p->n_result), 0);
    pthread_join(opener, NULL);
    pt_free(p);
    t_gate_destroy(&gate);
    t_count_destroy(&freed_pool);
}
END_TEST

/* --- Retries ----------------------------------------------------------- */

START_TEST(policy__retry_succeeds_after_two_failures)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    p->fail_first = 2;
    p->err_base = 100;
    p->make_result = true;
    crew_task_opts_t o = pt_opts(p);
    o.retries = 2;
    crew_task_t *t = NULL;
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    void *r = NULL;
    ck_assert_int_eq(wait_task(t, T_WATCH, &r), 0);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(*(int *)r, 3);
    free(r);
    ck_assert_int_eq(crew_wait(pool), 0);

    ck_assert_int_eq(atomic_load(&p->calls), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(atomic_load(&p->attempt[i]), (unsigned)i + 1);
    ck_assert_int_eq(atomic_load(&p->n_result), 1);
    ck_assert_int_eq(atomic_load(&p->n_error), 0);
    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.retries, 2);
    ck_assert_uint_eq(st.submitted, 1);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.failed, 0);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(t_count_get(&g_freed), 0);
    pt_free(p);
}
END_TEST

START_TEST(policy__retries_exhausted_report_last_error)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    p->fail_first = 100;
    p->err_base = 100;
    crew_task_opts_t o = pt_opts(p);
    o.retries = 2;
    crew_task_t *t = NULL;
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_int_eq(wait_task(t, T_WATCH, NULL), 103);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(crew_task_state(t), CREW_TASK_FAILED);
    ck_assert_int_eq(atomic_load(&p->calls), 3);
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    ck_assert_int_eq(atomic_load(&p->last_err), 103);
    ck_assert_int_eq(atomic_load(&p->n_result), 0);
    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.retries, 2);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(st.completed, 0);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(atomic_load(&p->calls), 3);
    pt_free(p);
}
END_TEST

START_TEST(policy__retry_if_false_stops_retries)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    p->fail_first = 100;
    p->err_base = 100;
    p->retry_stop_err = 102; /* attempt 2's error is not retried */
    crew_task_opts_t o = pt_opts(p);
    o.retries = 5;
    o.retry_if = pt_retry_if;
    crew_task_t *t = NULL;
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_int_eq(wait_task(t, T_WATCH, NULL), 102);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&p->calls), 2);
    ck_assert_int_eq(atomic_load(&p->n_retry_if), 2);
    ck_assert_ptr_eq(atomic_load(&p->retry_if_user), p);
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    ck_assert_int_eq(atomic_load(&p->last_err), 102);
    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.retries, 1);
    ck_assert_uint_eq(st.failed, 1);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    pt_free(p);
}
END_TEST

START_TEST(policy__retry_after_timeout)
{
    crew_t *pool = make_pool(1, 0);
    t_gate_t gate;
    t_gate_init(&gate);
    pt_t *p = pt_new();
    p->gate = &gate; /* attempt 1 is stuck until attempt 2 ... */
    p->gate_upto = 1;
    p->make_result = true;
    crew_task_opts_t o = pt_opts(p);
    o.timeout_ns = T_RUN;
    o.retries = 1;
    crew_task_t *t = NULL;
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    void *r = NULL;
    ck_assert_int_eq(wait_task(t, T_WATCH, &r), 0);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(*(int *)r, 2); /* attempt 2's result */
    free(r);
    ck_assert_int_eq(t_count_get(&p->ended), 1);
    t_gate_open(&gate); /* ... has succeeded (on a replacement) */
    ck_assert(t_count_wait(&p->ended, 2, T_WATCH));
    ck_assert(t_count_wait(&g_freed, 1, T_WATCH));
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.retries, 1);
    ck_assert_uint_eq(st.timed_out, 1);
    ck_assert_uint_eq(st.submitted, 1);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.failed, 0);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);

    ck_assert_int_eq(atomic_load(&p->calls), 2);
    ck_assert_uint_eq(atomic_load(&p->attempt[0]), 1);
    ck_assert_uint_eq(atomic_load(&p->attempt[1]), 2);
    ck_assert(atomic_load(&p->timed_out_at_end[0]));
    /* Each attempt has its own deadline. */
    ck_assert(atomic_load(&p->deadline[0]) != 0);
    ck_assert(atomic_load(&p->deadline[1]) > atomic_load(&p->deadline[0]));
    ck_assert_int_eq(atomic_load(&p->n_result), 1);
    ck_assert_int_eq(atomic_load(&p->n_error), 0);
    /* Attempt 1 returned a result late (after its deadline): that one
     * went to free_result, exactly once; attempt 2's was collected. */
    ck_assert_int_eq(t_count_get(&g_freed), 1);
    pt_free(p);
    t_gate_destroy(&gate);
}
END_TEST

START_TEST(policy__cancel_during_backoff_stops_retries)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    p->fail_first = 100;
    p->err_base = 100;
    crew_task_opts_t o = pt_opts(p);
    o.retries = 3;
    o.backoff.kind = CREW_BACKOFF_FIXED;
    o.backoff.base_ns = T_FOREVER;
    crew_task_t *t = NULL;
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_msg(wait_backoff(t, p, 1), "never saw the task waiting out "
                                         "its backoff");
    ck_assert_uint_eq(t_stats(pool).retries, 1);

    int64_t t0 = t_now();
    ck_assert_int_eq(crew_task_cancel(t), 0);
    ck_assert_int_eq(wait_task(t, T_WATCH, NULL), CREW_ECANCELED);
    ck_assert_int_eq(crew_task_state(t), CREW_TASK_CANCELED);
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    ck_assert_int_eq(atomic_load(&p->last_err), CREW_ECANCELED);
    ck_assert_int_eq(crew_wait(pool), 0);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_msg(t_now() - t0 < T_FOREVER / 2,
                  "cancel or free waited out the backoff");
    ck_assert_int_eq(atomic_load(&p->calls), 1);
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    ck_assert_int_eq(atomic_load(&p->n_result), 0);
    pt_free(p);
}
END_TEST

START_TEST(policy__no_retry_after_cancel_request_while_running)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    p->wait_cancelled = true; /* attempt 1 waits for the request ... */
    p->fail_first = 100;      /* ... then fails */
    p->err_base = 100;
    crew_task_opts_t o = pt_opts(p);
    o.retries = 3;
    crew_task_t *t = NULL;
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert(t_count_wait(&p->started, 1, T_WATCH));
    ck_assert_int_eq(crew_task_cancel(t), CREW_EBUSY);
    ck_assert_int_eq(wait_task(t, T_WATCH, NULL), 101);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_msg(atomic_load(&p->calls) == 1,
                  "retried after cancellation was requested (%d attempts)",
                  atomic_load(&p->calls));
    ck_assert_uint_eq(t_stats(pool).retries, 0);
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    pt_free(p);
}
END_TEST

/*
 * A cancel request that comes after the retry was decided on (here from
 * retry_if itself, the last look before the retry) ends the task with the
 * failed attempt's outcome, its result included, as a request that comes
 * before it does (found by the stress harness: the result had gone to
 * free_result already, and the future gave NULL).
 */
typedef struct cancel_in_retry_if {
    t_gate_t go; /* the attempt starts once `task` is set */
    crew_task_t *_Atomic task;
    atomic_int cancel_rc;
} cancel_in_retry_if_t;

static char cir_token;

static int cir_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    cancel_in_retry_if_t *c = arg;

    (void)ctx;
    if (!t_gate_pass(&c->go))
        return 1;
    *result = &cir_token;
    return 42;
}

static bool cir_retry_if(int err, void *user)
{
    cancel_in_retry_if_t *c = user;

    (void)err;
    atomic_store(&c->cancel_rc, crew_task_cancel(atomic_load(&c->task)));
    return true;
}

START_TEST(policy__cancel_after_retry_decided_keeps_result)
{
    crew_t *pool = make_pool(2, 0);
    cancel_in_retry_if_t c = { 0 };
    crew_task_opts_t o = { .retries = 3,
                           .retry_if = cir_retry_if,
                           .user = &c,
                           .free_result = count_free };
    crew_task_t *t = NULL;
    void *r = NULL;

    reset_freed();
    t_gate_init(&c.go);
    ck_assert(crew_spawn(pool, cir_fn, &c, &o, &t) == 0);
    atomic_store(&c.task, t);
    t_gate_open(&c.go);
    ck_assert_int_eq(wait_task(t, T_WATCH, &r), 42);
    ck_assert_int_eq(atomic_load(&c.cancel_rc), CREW_EBUSY);
    ck_assert_ptr_eq(r, &cir_token);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_uint_eq(t_stats(pool).retries, 0);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(t_count_get(&g_freed), 0);
    t_gate_destroy(&c.go);
}
END_TEST

/* --- Backoff ----------------------------------------------------------- */

/* Run a task failing `fails` times with these backoff settings; check
 * that attempt i+1 started no earlier than want[i] after attempt i
 * ended. */
static void check_backoff(crew_backoff_t b, int fails, const int64_t *want)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    p->fail_first = fails;
    p->err_base = 100;
    crew_task_opts_t o = pt_opts(p);
    o.retries = (unsigned)fails;
    o.backoff = b;
    crew_task_t *t = NULL;
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_int_eq(wait_task(t, T_WATCH, NULL), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&p->calls), fails + 1);
    for (int i = 0; i < fails; i++) {
        int64_t gap = atomic_load(&p->start[i + 1]) - atomic_load(&p->end[i]);
        crew_test_log("backoff kind %d: wait %d %.1f ms (at least %.1f ms)",
                      b.kind, i + 1, (double)gap / (double)T_MS,
                      (double)want[i] / (double)T_MS);
        ck_assert_msg(gap >= want[i],
                      "attempt %d started %lld ns after attempt %d ended, "
                      "want at least %lld",
                      i + 2, (long long)gap, i + 1, (long long)want[i]);
    }
    ck_assert_uint_eq(t_stats(pool).retries, (uint64_t)fails);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(atomic_load(&p->n_result), 1);
    ck_assert_int_eq(atomic_load(&p->n_error), 0);
    pt_free(p);
}

START_TEST(policy__backoff_fixed_waits_base)
{
    crew_backoff_t b = { .kind = CREW_BACKOFF_FIXED, .base_ns = 30 * T_MS };
    const int64_t want[] = { 30 * T_MS, 30 * T_MS };
    check_backoff(b, 2, want);
}
END_TEST

START_TEST(policy__backoff_exponential_doubles_to_cap)
{
    crew_backoff_t b = { .kind = CREW_BACKOFF_EXPONENTIAL,
                         .base_ns = 20 * T_MS,
                         .cap_ns = 50 * T_MS };
    const int64_t want[] = { 20 * T_MS, 40 * T_MS, 50 * T_MS };
    check_backoff(b, 3, want);
}
END_TEST

START_TEST(policy__backoff_jitter_stays_above_floor)
{
    /* 50 % jitter: each wait within [wait / 2, wait]; the lower bound is
     * what can be checked without timing assertions. */
    crew_backoff_t f = { .kind = CREW_BACKOFF_FIXED,
                         .base_ns = 40 * T_MS,
                         .jitter_pct = 50 };
    const int64_t wf[] = { 20 * T_MS, 20 * T_MS, 20 * T_MS };
    check_backoff(f, 3, wf);
    crew_backoff_t e = { .kind = CREW_BACKOFF_EXPONENTIAL,
                         .base_ns = 20 * T_MS,
                         .cap_ns = 60 * T_MS,
                         .jitter_pct = 50 };
    const int64_t we[] = { 10 * T_MS, 20 * T_MS, 30 * T_MS };
    check_backoff(e, 3, we);
}
END_TEST

/* --- Delayed tasks ----------------------------------------------------- */

START_TEST(policy__delay_starts_no_earlier)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    crew_task_opts_t o = pt_opts(p);
    o.delay_ns = 50 * T_MS;
    crew_task_t *t = NULL;
    int64_t t0 = t_now();
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_int_eq(wait_task(t, T_WATCH, NULL), 0);
    int64_t gap = atomic_load(&p->start[0]) - t0;
    ck_assert_msg(gap >= 50 * T_MS, "delayed task started after %lld ns",
                  (long long)gap);
    ck_assert_uint_eq(atomic_load(&p->attempt[0]), 1);
    ck_assert_int_eq(crew_wait(pool), 0);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(atomic_load(&p->calls), 1);
    ck_assert_int_eq(atomic_load(&p->n_result), 1);
    pt_free(p);
}
END_TEST

START_TEST(policy__delayed_task_cancelled_never_runs)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    crew_task_opts_t o = pt_opts(p);
    o.delay_ns = T_FOREVER;
    crew_task_t *t = NULL;
    int64_t t0 = t_now();
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_int_eq(crew_task_state(t), CREW_TASK_QUEUED);
    ck_assert_int_eq(crew_task_cancel(t), 0);
    ck_assert_int_eq(crew_task_poll(t, NULL), CREW_ECANCELED);
    ck_assert_int_eq(crew_task_state(t), CREW_TASK_CANCELED);
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    ck_assert_int_eq(atomic_load(&p->last_err), CREW_ECANCELED);
    ck_assert_int_eq(crew_task_cancel(t), CREW_EBUSY);
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.cancelled, 1);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_msg(t_now() - t0 < T_FOREVER / 2, "waited out the delay");
    ck_assert_int_eq(atomic_load(&p->calls), 0);
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    pt_free(p);
}
END_TEST

START_TEST(policy__shutdown_now_cancels_delayed)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    crew_task_opts_t o = pt_opts(p);
    o.delay_ns = T_FOREVER;
    crew_task_t *t = NULL;
    int64_t t0 = t_now();
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_NOW), 0);
    ck_assert_msg(t_now() - t0 < T_FOREVER / 2, "shutdown waited out the "
                                                "delay");
    ck_assert_int_eq(crew_task_poll(t, NULL), CREW_ECANCELED);
    ck_assert_int_eq(atomic_load(&p->calls), 0);
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    ck_assert_int_eq(atomic_load(&p->last_err), CREW_ECANCELED);
    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.cancelled, 1);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    pt_free(p);
}
END_TEST

START_TEST(policy__shutdown_now_cancels_pending_retry)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    p->fail_first = 100;
    p->err_base = 100;
    crew_task_opts_t o = pt_opts(p);
    o.retries = 2;
    o.backoff.kind = CREW_BACKOFF_FIXED;
    o.backoff.base_ns = T_FOREVER;
    crew_task_t *t = NULL;
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_msg(wait_backoff(t, p, 1), "never saw the task waiting out "
                                         "its backoff");
    int64_t t0 = t_now();
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_NOW), 0);
    ck_assert_msg(t_now() - t0 < T_FOREVER / 2, "shutdown waited out the "
                                                "backoff");
    ck_assert_int_eq(crew_task_poll(t, NULL), CREW_ECANCELED);
    ck_assert_int_eq(atomic_load(&p->calls), 1);
    ck_assert_int_eq(atomic_load(&p->n_error), 1);
    ck_assert_int_eq(atomic_load(&p->last_err), CREW_ECANCELED);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(atomic_load(&p->calls), 1);
    pt_free(p);
}
END_TEST

START_TEST(policy__shutdown_drain_runs_delayed)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    crew_task_opts_t o = pt_opts(p);
    o.delay_ns = 100 * T_MS;
    crew_task_t *t = NULL;
    int64_t t0 = t_now();
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_DRAIN), 0);
    ck_assert_msg(atomic_load(&p->calls) == 1,
                  "DRAIN returned without running the delayed task");
    ck_assert(atomic_load(&p->start[0]) - t0 >= 100 * T_MS);
    ck_assert_int_eq(crew_task_poll(t, NULL), 0);
    ck_assert_int_eq(atomic_load(&p->n_result), 1);
    ck_assert_int_eq(atomic_load(&p->n_error), 0);
    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.completed, 1);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    pt_free(p);
}
END_TEST

START_TEST(policy__shutdown_drain_runs_pending_retry)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    p->fail_first = 1;
    p->err_base = 100;
    crew_task_opts_t o = pt_opts(p);
    o.retries = 1;
    o.backoff.kind = CREW_BACKOFF_FIXED;
    o.backoff.base_ns = 100 * T_MS;
    crew_task_t *t = NULL;
    ck_assert(crew_spawn(pool, pt_fn, p, &o, &t) == 0);
    ck_assert_msg(wait_backoff(t, p, 1), "never saw the task waiting out "
                                         "its backoff");
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_DRAIN), 0);
    ck_assert_msg(atomic_load(&p->calls) == 2,
                  "DRAIN returned without running the retry (%d attempts)",
                  atomic_load(&p->calls));
    ck_assert_int_eq(crew_task_poll(t, NULL), 0);
    ck_assert_int_eq(atomic_load(&p->n_result), 1);
    ck_assert_int_eq(atomic_load(&p->n_error), 0);
    CHECK_ACCOUNTING(pool);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    pt_free(p);
}
END_TEST

/* --- Without a future, and invalid options ----------------------------- */

START_TEST(policy__spawn_without_future_with_options)
{
    crew_t *pool = make_pool(2, 0);
    pt_t *p = pt_new();
    p->fail_first = 1;
    p->err_base = 100;
    p->make_result = true;
    crew_task_opts_t o = pt_opts(p);
    o.delay_ns = 20 * T_MS;
    o.timeout_ns = T_FOREVER;
    o.retries = 1;
    o.backoff.kind = CREW_BACKOFF_FIXED;
    o.backoff.base_ns = 10 * T_MS;
    ck_assert_int_eq(crew_spawn(pool, pt_fn, p, &o, NULL), 0);
    ck_assert_msg(t_count_wait(&p->reported, 1, T_WATCH),
                  "task without a future never reported");
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&p->calls), 2);
    ck_assert_int_eq(atomic_load(&p->n_result), 1);
    ck_assert_int_eq(atomic_load(&p->n_error), 0);
    /* Nobody can collect the result: it goes to free_result (after the
     * callbacks; crew_wait() does not promise to wait for that). */
    ck_assert_msg(t_count_wait(&g_freed, 1, T_WATCH),
                  "result of a task without a future never freed");
    ck_assert_ptr_eq(atomic_load(&g_freed_ptr), atomic_load(&p->result_ptr));
    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.submitted, 1);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.retries, 1);
    CHECK_ACCOUNTING(pool);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(t_count_get(&g_freed), 1);
    pt_free(p);
}
END_TEST

static int g_dummy;

/* Spawn with options that must be refused; *task must come back NULL. */
static void expect_einval(crew_t *pool, const crew_task_opts_t *o,
                          const char *what)
{
    crew_task_t *t = (crew_task_t *)(void *)&g_dummy;
    atomic_long ran = 0;
    int rc = crew_spawn(pool, t_inc_fn, &ran, o, &t);
    if (rc == 0 && t != NULL && t != (crew_task_t *)(void *)&g_dummy) {
        /* Accepted by mistake: let it finish so nothing leaks. */
        (void)crew_task_wait(t, NULL);
        crew_task_release(t);
        t = NULL;
        ck_assert_int_eq(crew_wait(pool), 0);
        ck_assert_int_eq(crew_free(pool), 0);
    }
    ck_assert_msg(rc == CREW_EINVAL, "%s: crew_spawn returned %d (%s)", what,
                  rc, crew_strerror(rc));
    ck_assert_msg(t == NULL, "%s: *task not set to NULL", what);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_msg(atomic_load(&ran) == 0, "%s: task ran", what);
}

START_TEST(policy__invalid_options_einval)
{
    crew_t *pool = make_pool(2, 0);
    crew_task_opts_t o;

    o = (crew_task_opts_t){ .delay_ns = -1 };
    expect_einval(pool, &o, "negative delay");
    o = (crew_task_opts_t){ .delay_ns = -T_SEC, .retries = 1 };
    expect_einval(pool, &o, "negative delay with retries");
    o = (crew_task_opts_t){ .retries = 1,
                            .backoff = { .kind = CREW_BACKOFF_FIXED,
                                         .base_ns = T_MS,
                                         .jitter_pct = 101 } };
    expect_einval(pool, &o, "jitter 101");
    o = (crew_task_opts_t){ .retries = 1,
                            .backoff = { .kind = CREW_BACKOFF_EXPONENTIAL + 1,
                                         .base_ns = T_MS } };
    expect_einval(pool, &o, "backoff kind above range");
    o = (crew_task_opts_t){ .retries = 1, .backoff = { .kind = -1 } };
    expect_einval(pool, &o, "backoff kind below range");

    crew_stats_t st = t_stats(pool);
    ck_assert_uint_eq(st.submitted, 0);
    CHECK_ACCOUNTING(pool);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

/* The header's EINVAL list for crew_spawn() has no "only when another
 * policy is used": bad backoff settings are refused on their own too. */
START_TEST(policy__invalid_backoff_einval_without_retries)
{
    crew_t *pool = make_pool(2, 0);
    crew_task_opts_t o;

    o = (crew_task_opts_t){ .backoff = { .kind = CREW_BACKOFF_FIXED,
                                         .base_ns = T_MS,
                                         .jitter_pct = 101 } };
    expect_einval(pool, &o, "jitter 101, no retries");
    o = (crew_task_opts_t){ .backoff = { .kind = 7 } };
    expect_einval(pool, &o, "backoff kind 7, no retries");
    CHECK_ACCOUNTING(pool);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

START_TEST(policy__negative_pool_task_timeout_einval)
{
    crew_opts_t o = { .max_workers = 1, .task_timeout_ns = -1 };
    crew_t *pool = NULL;
    ck_assert_int_eq(crew_create(&pool, &o), CREW_EINVAL);
    ck_assert_ptr_null(crew_new(&o));
    o.task_timeout_ns = -T_SEC;
    ck_assert_int_eq(crew_create(&pool, &o), CREW_EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy");

    crew_add_test(s, policy__c2_timeout_spares_quick_tasks);
    crew_add_test(s, policy__wait_ends_while_worker_that_ran_tasks_is_stuck);
    crew_add_test(s,
                  policy__shutdown_ends_while_worker_that_ran_tasks_is_stuck);
    crew_add_test(s, policy__wait_ends_after_stolen_task_times_out);
    crew_add_test(s, policy__shutdown_ends_after_stolen_task_times_out);
    crew_add_test(s, policy__queued_task_past_deadline_never_runs);
    crew_add_test(s, policy__late_result_goes_to_free_result_once);
    crew_add_test(s, policy__ctx_deadline_and_timed_out);
    crew_add_test(s, policy__return_after_deadline_is_late);
    crew_add_test(s, policy__ctx_no_deadline_without_timeout);
    crew_add_test(s, policy__negative_task_timeout_overrides_pool_default);
    crew_add_test(s, policy__task_timeout_overrides_pool_default);
    crew_add_test(s, policy__max_overtime_bounds_replacements);
    crew_add_test(s, policy__free_leaves_stuck_task_behind_safely);
    crew_add_test(s, policy__retry_succeeds_after_two_failures);
    crew_add_test(s, policy__retries_exhausted_report_last_error);
    crew_add_test(s, policy__retry_if_false_stops_retries);
    crew_add_test(s, policy__retry_after_timeout);
    crew_add_test(s, policy__cancel_during_backoff_stops_retries);
    crew_add_test(s, policy__no_retry_after_cancel_request_while_running);
    crew_add_test(s, policy__cancel_after_retry_decided_keeps_result);
    crew_add_test(s, policy__backoff_fixed_waits_base);
    crew_add_test(s, policy__backoff_exponential_doubles_to_cap);
    crew_add_test(s, policy__backoff_jitter_stays_above_floor);
    crew_add_test(s, policy__delay_starts_no_earlier);
    crew_add_test(s, policy__delayed_task_cancelled_never_runs);
    crew_add_test(s, policy__shutdown_now_cancels_delayed);
    crew_add_test(s, policy__shutdown_now_cancels_pending_retry);
    crew_add_test(s, policy__shutdown_drain_runs_delayed);
    crew_add_test(s, policy__shutdown_drain_runs_pending_retry);
    crew_add_test(s, policy__spawn_without_future_with_options);
    crew_add_test(s, policy__invalid_options_einval);
    crew_add_test(s, policy__invalid_backoff_einval_without_retries);
    crew_add_test(s, policy__negative_pool_task_timeout_einval);
    return crew_run_suite(s);
}
