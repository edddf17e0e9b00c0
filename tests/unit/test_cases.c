/*
 * test_cases.c - the cases from real users (/work/shared/cases/README.md).
 * Each one is a fault some other pool had; each test fails if crew has it.
 *
 * The repetition counts are the same in every build: even under
 * ThreadSanitizer the whole file runs in seconds.  (helpers.h defines
 * T_SANITIZED should a count ever need lowering there.)
 */
#include "harness.h"

#include <stdio.h>

#include "helpers.h"

/* ------------------------------------------------------------------ */
/* C1. Waiting returns before the work is done.                        */

#define C1_REPS 10000

static int c1_inc_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    /* A short nap before the increment (every few tasks of a worker)
     * keeps a task out of the queue but unfinished for a while: the
     * window this case is about. */
    static _Thread_local unsigned k;
    if (++k % 4 == 0)
        t_sleep(1000);
    atomic_fetch_add_explicit((atomic_long *)arg, 1, memory_order_relaxed);
    return 0;
}

START_TEST(cases__c1_wait_after_bounded_submit)
{
    crew_opts_t o = { .max_workers = 10, .queue_capacity = 5 };
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, &o)) == (0));
    atomic_long n;
    for (int rep = 0; rep < C1_REPS; rep++) {
        atomic_store(&n, 0);
        for (int i = 0; i < 20; i++) {
            int rc = crew_submit(pool, c1_inc_fn, &n);
            if (rc != 0)
                ck_abort_msg("rep %d: submit returned %d", rep, rc);
        }
        ck_assert((crew_wait(pool)) == (0));
        long v = atomic_load(&n);
        if (v != 20)
            ck_abort_msg("rep %d: counter %ld right after crew_wait", rep, v);
    }
    crew_stats_t s = t_stats(pool);
    ck_assert((s.completed) == ((uint64_t)C1_REPS * 20));
    ck_assert((s.running) == (0));
    ck_assert((crew_free(pool)) == (0));
}
END_TEST

/* ------------------------------------------------------------------ */
/* C4. A task (or callback) that submits into its own full pool.       */
/*                                                                     */
/* Documented behaviour (crew.h, crew_submit): a blocking or timed     */
/* submit from a worker of the same pool with the queue full runs the  */
/* task at once on the calling thread ("caller runs"); crew_spawn does */
/* the same; crew_try_submit returns CREW_EAGAIN.                      */

typedef struct c4_inner {
    atomic_int ran;
    pthread_t thread;
} c4_inner_t;

static int c4_inner_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    c4_inner_t *in = arg;
    in->thread = pthread_self(); /* read by the same thread afterwards */
    atomic_fetch_add(&in->ran, 1);
    return 0;
}

enum { C4_KINDS = 4 };

/* Runs the nested submits on the current (worker) thread; returns a
 * bitmask of what went wrong, 0 if all is as documented. */
static int c4_nested(crew_t *pool)
{
    int bad = 0;
    for (int k = 0; k < C4_KINDS; k++) {
        c4_inner_t in = { 0 };
        crew_task_t *t = NULL;
        int rc;
        switch (k) {
        case 0:
            rc = crew_submit(pool, c4_inner_fn, &in);
            break;
        case 1:
            rc = crew_submit_timeout(pool, c4_inner_fn, &in, -1);
            break;
        case 2:
            rc = crew_submit_timeout(pool, c4_inner_fn, &in, T_SEC);
            break;
        default:
            rc = crew_spawn(pool, c4_inner_fn, &in, NULL, &t);
        }
        if (rc != 0)
            bad |= 1 << (4 * k);
        else if (atomic_load(&in.ran) != 1)
            bad |= 2 << (4 * k); /* not run before submit returned */
        else if (!pthread_equal(in.thread, pthread_self()))
            bad |= 4 << (4 * k); /* not run on the calling thread */
        if (t != NULL) {
            if (crew_task_poll(t, NULL) != 0)
                bad |= 8 << (4 * k); /* future not complete */
            crew_task_release(t);
        }
    }
    c4_inner_t in = { 0 };
    if (crew_try_submit(pool, c4_inner_fn, &in) != CREW_EAGAIN)
        bad |= 1 << 16;
    if (atomic_load(&in.ran) != 0)
        bad |= 1 << 17;
    return bad;
}

typedef struct c4_outer {
    t_gate_t gate;
    t_count_t started;
    atomic_int bad;
    atomic_int done;
} c4_outer_t;

static int c4_outer_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)result;
    c4_outer_t *o = arg;
    t_count_add(&o->started, 1);
    if (!t_gate_pass(&o->gate))
        return 1;
    atomic_store(&o->bad, c4_nested(crew_ctx_pool(ctx)));
    atomic_store(&o->done, 1);
    return 0;
}

/* Builds the scene: 1 worker, capacity 1, the worker busy with `fn`
 * (arg `o`, waiting on o->gate) and the queue slot taken by a plain task
 * counted in *queued_ran; then lets the worker go and waits. */
static void c4_scene(crew_opts_t *opts, crew_fn fn, c4_outer_t *o,
                     atomic_long *queued_ran)
{
    crew_t *pool = NULL;
    ck_assert((crew_create(&pool, opts)) == (0));
    ck_assert((crew_submit(pool, fn, o)) == (0));
    ck_assert(t_count_wait(&o->started, 1, T_LONG));
    ck_assert((crew_try_submit(pool, t_inc_fn, queued_ran)) == (0));
    ck_assert_msg((crew_try_submit(pool, t_inc_fn, queued_ran)) ==
                      (CREW_EAGAIN),
                  "the queue should be full now");
    t_gate_open(&o->gate);
    ck_assert_msg((crew_wait(pool)) == (0), "nested submit deadlocked?");
    crew_stats_t s = t_stats(pool);
    /* outer + queued + 4 inline */
    ck_assert_msg((s.submitted) == (2 + C4_KINDS), "submitted %llu",
                  (unsigned long long)s.submitted);
    ck_assert((s.submitted) == (s.completed + s.failed + s.cancelled));
    ck_assert((crew_free(pool)) == (0));
}

static void c4_outer_init(c4_outer_t *o)
{
    t_gate_init(&o->gate);
    t_count_init(&o->started);
    atomic_store(&o->bad, -1);
    atomic_store(&o->done, 0);
}

static void c4_outer_destroy(c4_outer_t *o)
{
    t_gate_destroy(&o->gate);
    t_count_destroy(&o->started);
}

START_TEST(cases__c4_task_submits_into_own_full_pool)
{
    for (int rep = 0; rep < 20; rep++) {
        crew_opts_t opts = { .max_workers = 1, .queue_capacity = 1 };
        c4_outer_t o;
        c4_outer_init(&o);
        atomic_long queued_ran = 0;
        c4_scene(&opts, c4_outer_fn, &o, &queued_ran);
        ck_assert_msg((atomic_load(&o.done)) == (1),
                      "outer task did not finish");
        ck_assert_msg((atomic_load(&o.bad)) == (0),
                      "rep %d: nested submit not run inline (mask %#x)", rep,
                      atomic_load(&o.bad));
        ck_assert((atomic_load(&queued_ran)) == (1));
        c4_outer_destroy(&o);
    }
}
END_TEST

/* For the callback variant: the outer task only waits at the gate, and
 * the pool's callbacks do the nested submits for it. */
typedef struct c4_cb_state {
    crew_t *_Atomic pool;
    c4_outer_t *outer;
    atomic_int calls;
} c4_cb_state_t;

static int c4_gate_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    c4_outer_t *o = arg;
    t_count_add(&o->started, 1);
    return t_gate_pass(&o->gate) ? 0 : 1;
}

static int c4_gate_fail_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    return c4_gate_fn(ctx, arg, result) == 0 ? 42 : 1;
}

static c4_cb_state_t c4_cb;

static void c4_result_cb(void *arg, void *result, void *user)
{
    (void)result;
    (void)user;
    if (arg != c4_cb.outer)
        return;
    atomic_fetch_add(&c4_cb.calls, 1);
    atomic_store(&c4_cb.outer->bad, c4_nested(atomic_load(&c4_cb.pool)));
    atomic_store(&c4_cb.outer->done, 1);
}

static void c4_error_cb(void *arg, int err, void *user)
{
    (void)user;
    if (arg != c4_cb.outer || err != 42)
        return;
    atomic_fetch_add(&c4_cb.calls, 1);
    atomic_store(&c4_cb.outer->bad, c4_nested(atomic_load(&c4_cb.pool)));
    atomic_store(&c4_cb.outer->done, 1);
}

/* The pool pointer for the callbacks: recorded by the start hook, which
 * runs on the worker before any task. */
static void c4_note_pool(crew_t *pool, unsigned id, void *user)
{
    (void)id;
    (void)user;
    atomic_store(&c4_cb.pool, pool);
}

START_TEST(cases__c4_callback_submits_into_own_full_pool)
{
    for (int rep = 0; rep < 20; rep++) {
        bool fail = rep % 2;
        crew_opts_t opts = { .max_workers = 1,
                             .queue_capacity = 1,
                             .on_result = c4_result_cb,
                             .on_error = c4_error_cb,
                             .on_thread_start = c4_note_pool };
        c4_outer_t o;
        c4_outer_init(&o);
        c4_cb.outer = &o;
        atomic_store(&c4_cb.calls, 0);
        atomic_store(&c4_cb.pool, NULL);
        atomic_long queued_ran = 0;
        c4_scene(&opts, fail ? c4_gate_fail_fn : c4_gate_fn, &o, &queued_ran);
        ck_assert_msg((atomic_load(&c4_cb.calls)) == (1),
                      "%s callback fired %d times", fail ? "error" : "result",
                      atomic_load(&c4_cb.calls));
        ck_assert_msg((atomic_load(&o.bad)) == (0),
                      "rep %d (%s callback): nested submit not run inline "
                      "(mask %#x)",
                      rep, fail ? "error" : "result", atomic_load(&o.bad));
        ck_assert((atomic_load(&queued_ran)) == (1));
        c4_outer_destroy(&o);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* C6. Never more running than allowed.                                */

enum { C6_THREADS = 32 };

#define C6_PER_THREAD 100

typedef struct c6 {
    crew_t *pool;
    pthread_barrier_t go;
    atomic_int now, max;
    atomic_long ran;
    atomic_int bad_rc;
} c6_t;

static int c6_task(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    c6_t *c = arg;
    int n = atomic_fetch_add(&c->now, 1) + 1;
    int m = atomic_load(&c->max);
    while (n > m && !atomic_compare_exchange_weak(&c->max, &m, n)) {
    }
    t_sleep(T_MS / 20);
    atomic_fetch_add(&c->ran, 1);
    atomic_fetch_sub(&c->now, 1);
    return 0;
}

static void *c6_submitter(void *arg)
{
    c6_t *c = arg;
    pthread_barrier_wait(&c->go);
    for (int i = 0; i < C6_PER_THREAD; i++) {
        int rc = i % 2 ? crew_submit(c->pool, c6_task, c)
                       : crew_submit_timeout(c->pool, c6_task, c, -1);
        if (rc != 0)
            atomic_fetch_add(&c->bad_rc, 1);
    }
    return NULL;
}

START_TEST(cases__c6_never_more_running_than_max)
{
    size_t caps[] = { 0, 8 };
    for (int round = 0; round < 2; round++) {
        crew_opts_t o = { .max_workers = 10, .queue_capacity = caps[round] };
        c6_t c = { 0 };
        ck_assert((crew_create(&c.pool, &o)) == (0));
        pthread_barrier_init(&c.go, NULL, C6_THREADS);
        pthread_t th[C6_THREADS];
        for (int i = 0; i < C6_THREADS; i++)
            ck_assert((pthread_create(&th[i], NULL, c6_submitter, &c)) == (0));
        for (int i = 0; i < C6_THREADS; i++)
            pthread_join(th[i], NULL);
        ck_assert((crew_wait(c.pool)) == (0));
        ck_assert((atomic_load(&c.bad_rc)) == (0));
        ck_assert((atomic_load(&c.ran)) == (C6_THREADS * C6_PER_THREAD));
        ck_assert_msg((atomic_load(&c.max)) <= (10),
                      "capacity %zu: %d tasks ran at once with max 10",
                      caps[round], atomic_load(&c.max));
        ck_assert((atomic_load(&c.max)) >= (1));
        crew_stats_t s = t_stats(c.pool);
        ck_assert_msg((s.running) == (0), "stats.running stuck at %llu",
                      (unsigned long long)s.running);
        ck_assert((s.queued) == (0));
        ck_assert((s.peak_workers) <= (10));
        ck_assert((s.completed) == (C6_THREADS * C6_PER_THREAD));
        ck_assert((crew_free(c.pool)) == (0));
        pthread_barrier_destroy(&c.go);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* C9. Submitting while the pool shuts down.                           */

enum { C9_THREADS = 8, C9_MAX_PER_THREAD = 20000 };

#define C9_REPS 10
#define C9_START_SHUTDOWN_AFTER 2000

typedef struct c9_rec {
    int mode; /* 0 submit, 1 submit_timeout, 2 spawn+opts,
                 3 spawn */
    int index;
    atomic_int ran;
    atomic_int pool_cb, task_cb;
    atomic_int err; /* what the error callback saw */
    crew_task_t *fut;
} c9_rec_t;

typedef struct c9_thread {
    struct c9 *c;
    c9_rec_t *recs;
    int accepted;
    int last_rc; /* the rc that ended its loop */
    pthread_t th;
} c9_thread_t;

typedef struct c9 {
    crew_t *pool;
    atomic_long accepted;
    c9_thread_t t[C9_THREADS];
} c9_t;

static int c9_task(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    c9_rec_t *r = arg;
    atomic_fetch_add(&r->ran, 1);
    return r->index % 2 ? 5 : 0;
}

static void c9_pool_result(void *arg, void *result, void *user)
{
    (void)result;
    (void)user;
    atomic_fetch_add(&((c9_rec_t *)arg)->pool_cb, 1);
}

static void c9_pool_error(void *arg, int err, void *user)
{
    (void)user;
    c9_rec_t *r = arg;
    atomic_store(&r->err, err);
    atomic_fetch_add(&r->pool_cb, 1);
}

static void c9_task_result(void *arg, void *result, void *user)
{
    (void)result;
    if (arg == user)
        atomic_fetch_add(&((c9_rec_t *)arg)->task_cb, 1);
}

static void c9_task_error(void *arg, int err, void *user)
{
    c9_rec_t *r = arg;
    if (arg == user) {
        atomic_store(&r->err, err);
        atomic_fetch_add(&r->task_cb, 1);
    }
}

static void *c9_submitter(void *arg)
{
    c9_thread_t *me = arg;
    me->last_rc = 0;
    for (int i = 0; i < C9_MAX_PER_THREAD; i++) {
        c9_rec_t *r = &me->recs[i];
        r->index = i;
        r->mode = i % 4;
        crew_task_opts_t to = { .on_result = c9_task_result,
                                .on_error = c9_task_error,
                                .user = r };
        int rc;
        switch (r->mode) {
        case 0:
            rc = crew_submit(me->c->pool, c9_task, r);
            break;
        case 1:
            rc = crew_submit_timeout(me->c->pool, c9_task, r, -1);
            break;
        case 2:
            rc = crew_spawn(me->c->pool, c9_task, r, &to, &r->fut);
            break;
        default:
            rc = crew_spawn(me->c->pool, c9_task, r, NULL, &r->fut);
        }
        if (rc != 0) {
            me->last_rc = rc;
            break;
        }
        me->accepted++;
        atomic_fetch_add(&me->c->accepted, 1);
    }
    return NULL;
}

/* Checks one record after the pool has shut down; returns a message or
 * NULL. */
static const char *c9_check(c9_rec_t *r, bool accepted)
{
    int ran = atomic_load(&r->ran);
    int cbs = atomic_load(&r->pool_cb) + atomic_load(&r->task_cb);
    if (!accepted)
        return ran || cbs || r->fut ? "refused task ran or reported" : NULL;
    if (ran > 1)
        return "task ran twice";
    if (cbs != 1)
        return cbs ? "callbacks fired more than once" : "no callback fired";
    if (r->mode == 2 && atomic_load(&r->task_cb) != 1)
        return "task callbacks not used";
    if (r->mode != 2 && atomic_load(&r->pool_cb) != 1)
        return "pool callbacks not used";
    int want = ran ? (r->index % 2 ? 5 : 0) : CREW_ECANCELED;
    if (want != 0 && atomic_load(&r->err) != want)
        return "error callback got the wrong code";
    if (r->fut != NULL) {
        if (crew_task_wait(r->fut, NULL) != want)
            return "future outcome wrong";
        crew_task_release(r->fut);
        r->fut = NULL;
    } else if (r->mode >= 2) {
        return "spawn accepted without a future";
    }
    return NULL;
}

START_TEST(cases__c9_submit_during_graceful_shutdown)
{
    for (int rep = 0; rep < C9_REPS; rep++) {
        crew_opts_t o = { .max_workers = 4,
                          .queue_capacity = 64,
                          .on_result = c9_pool_result,
                          .on_error = c9_pool_error };
        c9_t *c = calloc(1, sizeof *c);
        ck_assert((c) != NULL);
        ck_assert((crew_create(&c->pool, &o)) == (0));
        for (int i = 0; i < C9_THREADS; i++) {
            c->t[i].c = c;
            c->t[i].recs = calloc(C9_MAX_PER_THREAD, sizeof(c9_rec_t));
            ck_assert((c->t[i].recs) != NULL);
        }
        for (int i = 0; i < C9_THREADS; i++)
            ck_assert((pthread_create(&c->t[i].th, NULL, c9_submitter,
                                      &c->t[i])) == (0));
        bool ok;
        T_EVENTUALLY(ok, atomic_load(&c->accepted) >= C9_START_SHUTDOWN_AFTER,
                     T_LONG);
        ck_assert_msg(ok, "submitters made no progress");
        ck_assert((crew_shutdown(c->pool, CREW_SHUTDOWN_DRAIN)) == (0));
        long accepted = 0;
        for (int i = 0; i < C9_THREADS; i++) {
            pthread_join(c->t[i].th, NULL);
            c9_thread_t *t = &c->t[i];
            ck_assert_msg(
                t->last_rc == CREW_ESHUTDOWN ||
                    (t->last_rc == 0 && t->accepted == C9_MAX_PER_THREAD),
                "rep %d thread %d: submit returned %d", rep, i, t->last_rc);
            accepted += t->accepted;
        }
        crew_stats_t s = t_stats(c->pool);
        ck_assert_msg((s.submitted) == ((uint64_t)accepted),
                      "stats.submitted %llu, accepted %ld",
                      (unsigned long long)s.submitted, accepted);
        ck_assert_msg(
            (s.completed + s.failed + s.cancelled) == ((uint64_t)accepted),
            "accepted %ld != completed %llu + failed %llu + "
            "cancelled %llu",
            accepted, (unsigned long long)s.completed,
            (unsigned long long)s.failed, (unsigned long long)s.cancelled);
        ck_assert_msg((s.cancelled) == (0),
                      "graceful shutdown cancelled tasks");
        ck_assert((s.running) == (0));
        ck_assert((s.workers) == (0));
        for (int i = 0; i < C9_THREADS; i++) {
            c9_thread_t *t = &c->t[i];
            int end =
                t->accepted < C9_MAX_PER_THREAD ? t->accepted + 1 : t->accepted;
            for (int k = 0; k < end; k++) {
                const char *msg = c9_check(&t->recs[k], k < t->accepted);
                if (msg != NULL)
                    ck_abort_msg("rep %d thread %d task %d (mode %d): %s", rep,
                                 i, k, t->recs[k].mode, msg);
            }
            free(t->recs);
        }
        ck_assert((crew_free(c->pool)) == (0));
        free(c);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* C12. Two pools are independent.                                     */

START_TEST(cases__c12_destroying_one_pool_leaves_other_working)
{
    crew_opts_t o = { .max_workers = 2 };
    crew_t *a = NULL, *b = NULL;
    ck_assert((crew_create(&a, &o)) == (0));
    ck_assert((crew_create(&b, &o)) == (0));
    /* B has work queued behind a blocker while A is shut down NOW. */
    t_gate_t gate;
    t_count_t started;
    t_gate_init(&gate);
    t_count_init(&started);
    t_blocker_t bl = { &started, &gate };
    atomic_long na = 0, nb = 0;
    for (int i = 0; i < 2; i++)
        ck_assert((crew_submit(b, t_blocker_fn, &bl)) == (0));
    ck_assert(t_count_wait(&started, 2, T_LONG));
    for (int i = 0; i < 10; i++)
        ck_assert((crew_submit(b, t_inc_fn, &nb)) == (0));
    for (int i = 0; i < 10; i++)
        ck_assert((crew_submit(a, t_inc_fn, &na)) == (0));
    ck_assert((crew_shutdown(a, CREW_SHUTDOWN_NOW)) == (0));
    ck_assert((crew_free(a)) == (0));
    ck_assert_msg((crew_submit(b, t_inc_fn, &nb)) == (0),
                  "B refused work after A was destroyed");
    t_gate_open(&gate);
    ck_assert((crew_wait(b)) == (0));
    ck_assert_msg((atomic_load(&nb)) == (11), "B lost tasks when A shut down");
    crew_stats_t s = t_stats(b);
    ck_assert((s.cancelled) == (0));
    ck_assert((s.completed) == (13));
    ck_assert((crew_free(b)) == (0));
    t_gate_destroy(&gate);
    t_count_destroy(&started);
}
END_TEST

#define C12_CHURN 150

typedef struct c12_churn {
    atomic_int done;
    atomic_int bad;
    pthread_t th;
} c12_churn_t;

static void *c12_churner(void *arg)
{
    c12_churn_t *c = arg;
    for (int i = 0; i < C12_CHURN; i++) {
        crew_opts_t o = { .min_workers = (unsigned)(i % 2),
                          .max_workers = 1 + (unsigned)(i % 3),
                          .prespawn = i % 4 == 0,
                          .idle_timeout_ns = i % 5 == 0 ? T_MS : 0 };
        crew_t *p = NULL;
        if (crew_create(&p, &o) != 0) {
            atomic_fetch_add(&c->bad, 1);
            continue;
        }
        atomic_long n = 0;
        for (int k = 0; k < 5; k++)
            if (crew_submit(p, t_inc_fn, &n) != 0)
                atomic_fetch_add(&c->bad, 1);
        int how = i % 3;
        if (how == 1)
            crew_shutdown(p, CREW_SHUTDOWN_NOW);
        else if (how == 2)
            crew_shutdown(p, CREW_SHUTDOWN_DRAIN);
        if (crew_free(p) != 0)
            atomic_fetch_add(&c->bad, 1);
        if (how != 1 && atomic_load(&n) != 5)
            atomic_fetch_add(&c->bad, 1);
    }
    atomic_store(&c->done, 1);
    return NULL;
}

START_TEST(cases__c12_pool_churn_does_not_disturb_other_pool)
{
    crew_opts_t o = { .min_workers = 1, .max_workers = 3 };
    crew_t *b = NULL;
    ck_assert((crew_create(&b, &o)) == (0));
    c12_churn_t churn = { 0 };
    ck_assert((pthread_create(&churn.th, NULL, c12_churner, &churn)) == (0));
    atomic_long nb = 0;
    long expect = 0;
    int rounds = 0;
    while (!atomic_load(&churn.done) || rounds < 5) {
        for (int i = 0; i < 20; i++)
            ck_assert_msg((crew_submit(b, t_inc_fn, &nb)) == (0),
                          "round %d: B refused work", rounds);
        expect += 20;
        ck_assert((crew_wait(b)) == (0));
        ck_assert_msg((atomic_load(&nb)) == (expect), "round %d: B lost tasks",
                      rounds);
        rounds++;
    }
    pthread_join(churn.th, NULL);
    ck_assert_msg((atomic_load(&churn.bad)) == (0),
                  "the churned pools misbehaved");
    crew_stats_t s = t_stats(b);
    ck_assert((s.submitted) == ((uint64_t)expect));
    ck_assert((s.completed) == ((uint64_t)expect));
    ck_assert((s.cancelled) == (0));
    ck_assert((s.rejected) == (0));
    ck_assert((s.min_workers) == (t_min_shown(1)));
    ck_assert((s.max_workers) == (3));
    ck_assert((s.workers) >= (t_min_shown(1)));
    ck_assert((crew_free(b)) == (0));
}
END_TEST

/* ------------------------------------------------------------------ */
/* C15. Tasks that wait for tasks.                                     */

#define C15_REPS 50

enum { C15_OUTER = 4, C15_INNER = 8 };

static int c15_inner(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    *result = arg;
    return 0;
}

static int c15_outer(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)arg;
    crew_t *pool = crew_ctx_pool(ctx);
    crew_task_t *t[C15_INNER];
    int spawned = 0, bad = 0;
    for (int i = 0; i < C15_INNER; i++) {
        if (crew_spawn(pool, c15_inner, (void *)(intptr_t)(i + 1), NULL,
                       &t[spawned]) == 0)
            spawned++;
        else
            bad++;
    }
    intptr_t sum = 0;
    for (int i = 0; i < spawned; i++) {
        void *r = NULL;
        if (crew_task_wait(t[i], &r) != 0)
            bad++;
        sum += (intptr_t)r;
        crew_task_release(t[i]);
    }
    *result = (void *)sum;
    return bad;
}

START_TEST(cases__c15_tasks_waiting_for_tasks_complete)
{
    size_t caps[] = { 0, 2 };
    for (int round = 0; round < 2; round++) {
        crew_opts_t o = { .max_workers = 4, .queue_capacity = caps[round] };
        crew_t *pool = NULL;
        ck_assert((crew_create(&pool, &o)) == (0));
        for (int rep = 0; rep < C15_REPS; rep++) {
            crew_task_t *t[C15_OUTER];
            for (int i = 0; i < C15_OUTER; i++)
                ck_assert((crew_spawn(pool, c15_outer, NULL, NULL, &t[i])) ==
                          (0));
            for (int i = 0; i < C15_OUTER; i++) {
                void *r = NULL;
                int rc = crew_task_wait(t[i], &r);
                ck_assert_msg((rc) == (0),
                              "capacity %zu rep %d: outer task: %d "
                              "inner failures",
                              caps[round], rep, rc);
                ck_assert_msg(((intptr_t)r) == (36),
                              "inner results summed to %ld", (long)(intptr_t)r);
                crew_task_release(t[i]);
            }
        }
        ck_assert((crew_wait(pool)) == (0));
        crew_stats_t s = t_stats(pool);
        ck_assert((s.completed) ==
                  ((uint64_t)C15_REPS * C15_OUTER * (1 + C15_INNER)));
        ck_assert((crew_free(pool)) == (0));
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* C3. Resizing under load.                                            */

#define C3_TASKS 5000 /* as the case asks */

typedef struct c3 {
    crew_t *pool;
    atomic_int stop;
    atomic_long samples, violations, resizes, bad_resize;
    atomic_int runs[C3_TASKS];
    int64_t dur[C3_TASKS];
} c3_t;

typedef struct c3_arg {
    c3_t *c;
    int i;
} c3_arg_t;

static int c3_task(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    c3_arg_t *a = arg;
    atomic_fetch_add(&a->c->runs[a->i], 1);
    t_sleep(a->c->dur[a->i]);
    return 0;
}

static void *c3_sampler(void *arg)
{
    c3_t *c = arg;
    while (!atomic_load(&c->stop)) {
        crew_stats_t s = t_stats(c->pool);
        if (t_above_max(&s))
            atomic_fetch_add(&c->violations, 1);
        atomic_fetch_add(&c->samples, 1);
        sched_yield();
    }
    return NULL;
}

static void *c3_resizer(void *arg)
{
    c3_t *c = arg;
    uint64_t seed = 0x5eed0003;
    while (!atomic_load(&c->stop)) {
        unsigned mn = (unsigned)(t_rand(&seed) % 6);
        unsigned mx = mn + 1 + (unsigned)(t_rand(&seed) % (20 - mn));
        int rc = crew_resize(c->pool, mn, mx);
        if (rc != 0)
            atomic_fetch_add(&c->bad_resize, 1);
        atomic_fetch_add(&c->resizes, 1);
        t_sleep(5 * T_MS);
    }
    return NULL;
}

START_TEST(cases__c3_resize_under_load)
{
    c3_t *c = calloc(1, sizeof *c);
    c3_arg_t *args = calloc(C3_TASKS, sizeof *args);
    ck_assert(c && args);
    uint64_t seed = 0xc3c3c3;
    for (int i = 0; i < C3_TASKS; i++) {
        c->dur[i] = (int64_t)(t_rand(&seed) % 51) * T_MS;
        args[i].c = c;
        args[i].i = i;
    }
    crew_opts_t o = { .min_workers = 3,
                      .max_workers = 20,
                      .idle_timeout_ns = 10 * T_MS };
    ck_assert((crew_create(&c->pool, &o)) == (0));
    pthread_t sampler, resizer;
    ck_assert((pthread_create(&sampler, NULL, c3_sampler, c)) == (0));
    ck_assert((pthread_create(&resizer, NULL, c3_resizer, c)) == (0));
    for (int i = 0; i < C3_TASKS; i++)
        ck_assert((crew_submit(c->pool, c3_task, &args[i])) == (0));
    ck_assert((crew_wait(c->pool)) == (0));
    atomic_store(&c->stop, 1);
    pthread_join(resizer, NULL);
    pthread_join(sampler, NULL);
    for (int i = 0; i < C3_TASKS; i++)
        ck_assert_msg((atomic_load(&c->runs[i])) == (1), "task %d ran %d times",
                      i, atomic_load(&c->runs[i]));
    ck_assert_msg((atomic_load(&c->bad_resize)) == (0), "a resize failed");
    ck_assert((atomic_load(&c->resizes)) > (1));
    ck_assert((atomic_load(&c->samples)) > (0));
    ck_assert_msg((atomic_load(&c->violations)) == (0),
                  "%ld snapshots showed workers or running above max",
                  atomic_load(&c->violations));
    crew_stats_t s = t_stats(c->pool);
    ck_assert((s.completed) == (C3_TASKS));
    ck_assert((s.running) == (0));
    ck_assert((s.peak_workers) <= (20));
    ck_assert((crew_free(c->pool)) == (0));
    free(args);
    free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cases");

    crew_add_test(s, cases__c1_wait_after_bounded_submit);
    crew_add_test(s, cases__c4_task_submits_into_own_full_pool);
    crew_add_test(s, cases__c4_callback_submits_into_own_full_pool);
    crew_add_test(s, cases__c6_never_more_running_than_max);
    crew_add_test(s, cases__c9_submit_during_graceful_shutdown);
    crew_add_test(s, cases__c12_destroying_one_pool_leaves_other_working);
    crew_add_test(s, cases__c12_pool_churn_does_not_disturb_other_pool);
    crew_add_test(s, cases__c15_tasks_waiting_for_tasks_complete);
    crew_add_test(s, cases__c3_resize_under_load);
    return crew_run_suite(s);
}
