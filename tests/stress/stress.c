/*
 * stress.c - the crew stress harness (issue 6).
 *
 * For each fixed seed it creates pools with random options (bounds, queue
 * capacity, idle timeouts down to 1 ns, prespawn, stack size, hooks,
 * callbacks, free_result) and lets several threads run random mixes of
 * every operation on them: all three submits, spawn and every future call
 * (from the spawning thread and from others, including release before
 * completion), resize with random bounds, crew_wait, statistics, invalid
 * arguments, and at the end crew_shutdown (DRAIN or NOW, by the seed, or
 * none) racing with the others, then crew_free.  Tasks do tiny random work,
 * sleep, fail with their own codes, submit and spawn into their own pool,
 * wait for those futures, resize, and call what must give CREW_EDEADLK.
 *
 * Every task has its own record, and the harness checks:
 *  - each accepted task ran exactly once or was reported cancelled exactly
 *    once; a rejected one never ran; its callback fired once, the right
 *    one, with the right argument, user, error and result, before its
 *    future completed; a cancel that returned 0 fired it on its own thread;
 *  - futures report the task's real outcome and result, every time;
 *  - every result is freed exactly once (free_result or its collector);
 *  - every return code is one the header documents for that call;
 *  - each statistics snapshot has workers <= max_workers, and at quiet
 *    moments (after crew_wait, no submitters) and after shutdown
 *    submitted == completed + failed + cancelled, queued == running == 0,
 *    and the counts match the records;
 *  - never more tasks run at once than the largest max_workers set;
 *  - nothing hangs: a watchdog aborts after a generous deadline.
 * Leaks are left to LeakSanitizer in the ASan build; data races to TSan.
 * On a violation it prints the seed, the operation and the invariant and
 * exits with status 1.
 *
 * Usage: stress [--seconds S] [--seeds N] [--first-seed K] [--threads T]
 *               [--deadline S]
 */
#include "crew.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 32 /* harness threads per pool */
#define MAX_DEPTH 2    /* tasks spawned by tasks, this deep */
#define N_SLOTS 16     /* futures shared between threads */
#define N_MINE 8       /* futures a thread keeps to itself */
#define RES_MAGIC 0x5eed1e55u
#define SAW_CANCEL 4242 /* a long task's code when asked to stop */

enum { CB_NONE, CB_POOL, CB_TASK };    /* which callback applies */
enum { RES_NONE, RES_MARK, RES_HEAP }; /* what result a task makes */
enum { K_SUBMIT, K_TRY, K_TIMEOUT, K_SPAWN };
enum { HOW_DRAIN, HOW_NOW, HOW_NONE };

/* ---- options, totals, failing ------------------------------------- */

static double opt_seconds;
static long opt_seeds = -1;
static unsigned long long opt_first = 1;
static int opt_threads = 4;
static double opt_deadline = 120;

static atomic_ullong tot_seeds, tot_pools, tot_ops, tot_accepted, tot_runs,
    tot_cancelled, tot_rejected, tot_resource, tot_checks;
static atomic_int tot_violations;
static atomic_ullong cur_seed;
static atomic_int cur_pool_idx;

/* Is this thread one of ours (not a crew worker)? */
static _Thread_local bool tl_harness;
/* Its address names this thread in the records. */
static _Thread_local char tl_token;

static void print_totals(FILE *f)
{
    fprintf(f,
            "stress: seeds run %llu, pools created %llu, operations %llu, "
            "tasks accepted %llu, tasks run %llu, cancelled %llu, "
            "rejected %llu, resource errors %llu, checks %llu, "
            "violations %d\n",
            (unsigned long long)atomic_load(&tot_seeds),
            (unsigned long long)atomic_load(&tot_pools),
            (unsigned long long)atomic_load(&tot_ops),
            (unsigned long long)atomic_load(&tot_accepted),
            (unsigned long long)atomic_load(&tot_runs),
            (unsigned long long)atomic_load(&tot_cancelled),
            (unsigned long long)atomic_load(&tot_rejected),
            (unsigned long long)atomic_load(&tot_resource),
            (unsigned long long)atomic_load(&tot_checks),
            atomic_load(&tot_violations));
}

static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;

/* Report a broken invariant and stop the process: later checks could not
 * be trusted. */
static void violation(const char *op, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&fail_mu);
    atomic_fetch_add(&tot_violations, 1);
    fprintf(stderr, "stress: VIOLATION seed %llu pool %d, op %s: ",
            (unsigned long long)atomic_load(&cur_seed),
            atomic_load(&cur_pool_idx), op);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    print_totals(stderr);
    fflush(stderr);
    fflush(stdout);
    _exit(1);
}

#define CHECK(cond, op, ...)                                             \
    do {                                                                 \
        atomic_fetch_add_explicit(&tot_checks, 1, memory_order_relaxed); \
        if (!(cond))                                                     \
            violation(op, __VA_ARGS__);                                  \
    } while (0)

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (p == NULL) {
        fprintf(stderr, "stress: out of memory\n");
        abort();
    }
    return p;
}

/* ---- random numbers (splitmix64) ------------------------------------ */

struct rng {
    uint64_t s;
};

static uint64_t rnext(struct rng *g)
{
    uint64_t z = (g->s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned rbelow(struct rng *g, unsigned n)
{
    return n == 0 ? 0 : (unsigned)(rnext(g) % n);
}

static bool rchance(struct rng *g, unsigned percent)
{
    return rbelow(g, 100) < percent;
}

/* ---- time ---------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = { (time_t)(us / 1000000),
                           (long)(us % 1000000) * 1000 };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/*
 * Some flags are set by the harness before a crew call whose effect
 * another thread may observe through a relaxed load inside crew; give the
 * store a moment to show before calling it missing.
 */
static bool eventually(atomic_int *flag)
{
    for (int i = 0; i < 1000; i++) {
        if (atomic_load(flag) != 0)
            return true;
        sleep_us(100);
    }
    return atomic_load(flag) != 0;
}

/* ---- records --------------------------------------------------------- */

struct pstate;

/* One per task the harness tried to submit. */
struct rec {
    struct rec *next; /* all records of the pool */
    struct pstate *ps;
    unsigned long long id;
    uint64_t rseed;
    int depth;
    bool future;
    /* The plan, fixed before submitting. */
    int plan_ret;
    unsigned plan_work, plan_sleep_us, plan_long_ms, plan_children;
    int plan_result;
    int exp_res_cb, exp_err_cb, eff_free;
    /* What happened. */
    atomic_int accepted;
    atomic_int runs, finished, ret;
    _Atomic(void *) result;
    atomic_int heap_made;
    atomic_int cb_res_pool, cb_res_task, cb_err_pool, cb_err_task;
    atomic_int cb_err;
    _Atomic(void *) cancel_cb_thread;
    atomic_int cancel_req, cancel_ok;
    atomic_int freed_pool, freed_task, freed_harness, collected;
};

struct heap_result {
    unsigned magic;
    int which; /* CB_POOL or CB_TASK free_result */
    struct rec *r;
};

/* A future shared between harness threads. */
struct slot {
    pthread_mutex_t mu;
    crew_task_t *t;
    struct rec *r;
    int users;
    bool doomed;
};

/* The harness's view of one pool. */
struct pstate {
    crew_t *pool;
    int idx;
    crew_opts_t opts;
    bool bounded, allow_wait;
    _Atomic(struct rec *) recs;
    atomic_ullong id_next;
    atomic_uint max_ever; /* the largest max_workers set */
    atomic_int active;    /* tasks executing their own code */
    atomic_int shut_started, shut_done, now_flag;
    atomic_ullong rejected_seen;
    atomic_uint hook_start, hook_stop;
    _Atomic(crew_t *) hook_pool;
    struct slot slots[N_SLOTS];
    /* Barrier for the harness threads. */
    pthread_mutex_t bmu;
    pthread_cond_t bcv;
    int bcount, bgen, nthreads;
};

struct hthread {
    struct pstate *ps;
    int idx;
    pthread_t tid;
    struct rng g;
    crew_task_t *mine_t[N_MINE];
    struct rec *mine_r[N_MINE];
    int rounds, ops_per_round;
    int shut_round, shut_op, shut_how;
    unsigned long long ops;
};

/* What the watchdog prints about each harness thread. */
static _Atomic(const char *) wd_op[MAX_THREADS + 1];
static atomic_llong wd_deadline; /* ns; 0: not armed */
static atomic_int wd_quit;

static void set_op(int idx, const char *op)
{
    atomic_store_explicit(&wd_op[idx], op, memory_order_relaxed);
}

static void push_rec(struct pstate *ps, struct rec *r)
{
    struct rec *head = atomic_load_explicit(&ps->recs, memory_order_relaxed);

    do {
        r->next = head;
    } while (!atomic_compare_exchange_weak_explicit(
        &ps->recs, &head, r, memory_order_release, memory_order_relaxed));
}

static void raise_max_ever(struct pstate *ps, unsigned max)
{
    unsigned m = atomic_load(&ps->max_ever);

    while (m < max && !atomic_compare_exchange_weak(&ps->max_ever, &m, max))
        ;
}

/* ---- callbacks and free_result -------------------------------------- */

static int task_fn(crew_ctx_t *ctx, void *arg, void **result);
static int submit_rec(struct pstate *ps, struct rng *g, struct rec *r, int kind,
                      crew_task_t **fut, const char *who);
static struct rec *new_rec(struct pstate *ps, struct rng *g, int depth,
                           bool future, crew_task_opts_t *topts);
static void check_stats(struct pstate *ps, const char *op, bool inside);

static int cb_total(struct rec *r)
{
    return atomic_load(&r->cb_res_pool) + atomic_load(&r->cb_res_task) +
           atomic_load(&r->cb_err_pool) + atomic_load(&r->cb_err_task);
}

static void check_result_cb(struct rec *r, void *result, const char *op)
{
    CHECK(cb_total(r) == 0, op, "task %llu: a second outcome callback", r->id);
    CHECK(atomic_load(&r->runs) == 1 && atomic_load(&r->finished) == 1, op,
          "task %llu: result callback but the task ran %d times "
          "(finished %d)",
          r->id, atomic_load(&r->runs), atomic_load(&r->finished));
    CHECK(atomic_load(&r->ret) == 0, op,
          "task %llu: result callback for a task that returned %d", r->id,
          atomic_load(&r->ret));
    CHECK(result == atomic_load(&r->result), op,
          "task %llu: result callback got %p, the task stored %p", r->id,
          result, atomic_load(&r->result));
}

static void check_error_cb(struct rec *r, int err, const char *op)
{
    CHECK(cb_total(r) == 0, op, "task %llu: a second outcome callback", r->id);
    if (err == CREW_ECANCELED) {
        CHECK(atomic_load(&r->runs) == 0, op,
              "task %llu: reported cancelled but it ran", r->id);
        CHECK(atomic_load(&r->cancel_req) || eventually(&r->ps->now_flag), op,
              "task %llu: cancelled, but nobody cancelled it and no "
              "shutdown NOW was asked for",
              r->id);
        atomic_store(&r->cancel_cb_thread, (void *)&tl_token);
    } else {
        CHECK(atomic_load(&r->runs) == 1 && atomic_load(&r->finished) == 1, op,
              "task %llu: error callback (%d) but the task ran %d "
              "times (finished %d)",
              r->id, err, atomic_load(&r->runs), atomic_load(&r->finished));
        CHECK(err == atomic_load(&r->ret), op,
              "task %llu: error callback got %d, the task returned %d", r->id,
              err, atomic_load(&r->ret));
    }
    atomic_store(&r->cb_err, err);
}

/* What a callback may do besides checking: submit, read statistics, and,
 * on a worker, find crew_wait refused. */
static void cb_extra(struct rec *r, const char *op)
{
    struct pstate *ps = r->ps;
    struct rng g = { r->rseed ^ 0xcbcbcbcbull };

    if (rchance(&g, 5))
        check_stats(ps, op, false);
    if (!tl_harness && rchance(&g, 3)) {
        int rc = crew_wait(ps->pool);

        CHECK(rc == CREW_EDEADLK, op,
              "crew_wait from a callback on a "
              "worker returned %d, not CREW_EDEADLK",
              rc);
    }
    if (r->depth < MAX_DEPTH && rchance(&g, 6)) {
        struct rec *c = new_rec(ps, &g, r->depth + 1, false, NULL);

        submit_rec(ps, &g, c, rchance(&g, 50) ? K_SUBMIT : K_TRY, NULL, op);
    }
}

static void pool_on_result(void *arg, void *result, void *user)
{
    struct rec *r = arg;

    CHECK(user == r->ps, "pool on_result", "task %llu: user %p, not %p", r->id,
          user, (void *)r->ps);
    CHECK(r->exp_res_cb == CB_POOL, "pool on_result",
          "task %llu: the pool's result callback fired, expected %d", r->id,
          r->exp_res_cb);
    check_result_cb(r, result, "pool on_result");
    atomic_fetch_add(&r->cb_res_pool, 1);
    cb_extra(r, "pool on_result");
}

static void pool_on_error(void *arg, int err, void *user)
{
    struct rec *r = arg;

    CHECK(user == r->ps, "pool on_error", "task %llu: user %p, not %p", r->id,
          user, (void *)r->ps);
    CHECK(r->exp_err_cb == CB_POOL, "pool on_error",
          "task %llu: the pool's error callback fired, expected %d", r->id,
          r->exp_err_cb);
    check_error_cb(r, err, "pool on_error");
    atomic_fetch_add(&r->cb_err_pool, 1);
    cb_extra(r, "pool on_error");
}

static void task_on_result(void *arg, void *result, void *user)
{
    struct rec *r = arg;

    CHECK(user == r, "task on_result", "task %llu: user %p, not %p", r->id,
          user, (void *)r);
    CHECK(r->exp_res_cb == CB_TASK, "task on_result",
          "task %llu: the task's result callback fired, expected %d", r->id,
          r->exp_res_cb);
    check_result_cb(r, result, "task on_result");
    atomic_fetch_add(&r->cb_res_task, 1);
    cb_extra(r, "task on_result");
}

static void task_on_error(void *arg, int err, void *user)
{
    struct rec *r = arg;

    CHECK(user == r, "task on_error", "task %llu: user %p, not %p", r->id, user,
          (void *)r);
    CHECK(r->exp_err_cb == CB_TASK, "task on_error",
          "task %llu: the task's error callback fired, expected %d", r->id,
          r->exp_err_cb);
    check_error_cb(r, err, "task on_error");
    atomic_fetch_add(&r->cb_err_task, 1);
    cb_extra(r, "task on_error");
}

static void free_heap_result(void *p, int which, const char *op)
{
    struct heap_result *h = p;

    CHECK(h != NULL && h->magic == RES_MAGIC, op,
          "freeing %p, which is not a live result", p);
    CHECK(h->which == which || which == CB_NONE, op,
          "task %llu: result freed by free_result %d, expected %d", h->r->id,
          which, h->which);
    if (which == CB_POOL)
        atomic_fetch_add(&h->r->freed_pool, 1);
    else if (which == CB_TASK)
        atomic_fetch_add(&h->r->freed_task, 1);
    else
        atomic_fetch_add(&h->r->freed_harness, 1);
    h->magic = 0;
    free(h);
}

static void pool_free_result(void *p)
{
    free_heap_result(p, CB_POOL, "pool free_result");
}

static void task_free_result(void *p)
{
    free_heap_result(p, CB_TASK, "task free_result");
}

static void hook_start(crew_t *pool, unsigned id, void *user)
{
    struct pstate *ps = user;
    crew_t *expect = NULL;
    sigset_t mask;

    CHECK(!tl_harness, "on_thread_start", "ran on a harness thread");
    CHECK(pool != NULL, "on_thread_start", "NULL pool");
    if (!atomic_compare_exchange_strong(&ps->hook_pool, &expect, pool))
        CHECK(expect == pool, "on_thread_start",
              "pool %p, earlier hooks had %p", (void *)pool, (void *)expect);
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    CHECK(sigismember(&mask, SIGINT) == 1 && sigismember(&mask, SIGTERM) == 1 &&
              sigismember(&mask, SIGUSR1) == 1,
          "on_thread_start", "worker %u does not block signals", id);
    atomic_fetch_add(&ps->hook_start, 1);
}

static void hook_stop(crew_t *pool, unsigned id, void *user)
{
    struct pstate *ps = user;

    CHECK(pool == atomic_load(&ps->hook_pool), "on_thread_stop",
          "worker %u: pool %p, not %p", id, (void *)pool,
          (void *)atomic_load(&ps->hook_pool));
    CHECK(atomic_fetch_add(&ps->hook_stop, 1) < atomic_load(&ps->hook_start),
          "on_thread_stop", "more stops than starts");
}

/* ---- return codes ------------------------------------------------------ */

static bool is_resource(int rc)
{
    return rc == CREW_ENOMEM || rc == CREW_ETHREAD;
}

/* ---- statistics -------------------------------------------------------- */

static void check_stats(struct pstate *ps, const char *op, bool inside)
{
    crew_stats_t st;

    crew_stats(ps->pool, &st);
    CHECK(st.workers <= st.max_workers, op, "stats: %u workers, max_workers %u",
          st.workers, st.max_workers);
    CHECK(st.min_workers <= st.max_workers, op,
          "stats: min_workers %u > max_workers %u", st.min_workers,
          st.max_workers);
    CHECK(st.max_workers <= atomic_load(&ps->max_ever), op,
          "stats: max_workers %u was never set (largest %u)", st.max_workers,
          atomic_load(&ps->max_ever));
    CHECK(st.idle_workers <= st.workers, op, "stats: %u idle of %u workers",
          st.idle_workers, st.workers);
    CHECK(st.peak_workers >= st.workers, op, "stats: peak %u < %u workers",
          st.peak_workers, st.workers);
    if (inside) {
        CHECK(st.running >= 1 && st.workers >= 1, op,
              "stats from inside a task: running %llu, workers %u",
              (unsigned long long)st.running, st.workers);
    }
}

/* ---- tasks ------------------------------------------------------------- */

static void active_enter(struct pstate *ps, const char *op)
{
    int a = atomic_fetch_add(&ps->active, 1) + 1;

    CHECK((unsigned)a <= atomic_load(&ps->max_ever), op,
          "%d tasks running at once, max_workers never above %u", a,
          atomic_load(&ps->max_ever));
}

static void active_leave(struct pstate *ps)
{
    atomic_fetch_sub(&ps->active, 1);
}

static int state_of_outcome(int rc)
{
    if (rc == CREW_ECANCELED)
        return CREW_TASK_CANCELED;
    return rc == 0 ? CREW_TASK_DONE : CREW_TASK_FAILED;
}

/* The callback that applies to an outcome must have fired once, and no
 * other. */
static void check_cbs_done(struct rec *r, int outcome, const char *op)
{
    int want = outcome == 0 ? r->exp_res_cb : r->exp_err_cb;
    int rp = atomic_load(&r->cb_res_pool), rt = atomic_load(&r->cb_res_task);
    int ep = atomic_load(&r->cb_err_pool), et = atomic_load(&r->cb_err_task);
    int got_pool = outcome == 0 ? rp : ep, got_task = outcome == 0 ? rt : et;

    CHECK(rp + rt + ep + et == (want == CB_NONE ? 0 : 1) &&
              got_pool == (want == CB_POOL) && got_task == (want == CB_TASK),
          op,
          "task %llu (outcome %d): callbacks result %d/%d error %d/%d "
          "(pool/task), expected %s",
          r->id, outcome, rp, rt, ep, et,
          want == CB_NONE   ? "none"
          : want == CB_POOL ? "the pool's"
                            : "the task's");
    if (outcome != 0 && want != CB_NONE)
        CHECK(atomic_load(&r->cb_err) == outcome, op,
              "task %llu: error callback got %d, outcome %d", r->id,
              atomic_load(&r->cb_err), outcome);
}

/* A future reported `rc` (and `res` if took): is it the real outcome? */
static void check_outcome(struct rec *r, int rc, void *res, bool took,
                          const char *op)
{
    if (rc == CREW_ECANCELED) {
        CHECK(atomic_load(&r->runs) == 0, op,
              "task %llu: future says cancelled but the task ran", r->id);
        CHECK(atomic_load(&r->cancel_req) || eventually(&r->ps->now_flag), op,
              "task %llu: future says cancelled, nobody cancelled it", r->id);
        CHECK(!took || res == NULL, op, "task %llu: cancelled, but result %p",
              r->id, res);
    } else {
        CHECK(atomic_load(&r->finished) == 1, op,
              "task %llu: future completed (%d) before the task returned",
              r->id, rc);
        CHECK(rc == atomic_load(&r->ret), op,
              "task %llu: future says %d, the task returned %d", r->id, rc,
              atomic_load(&r->ret));
        CHECK(!took || res == atomic_load(&r->result), op,
              "task %llu: future gave result %p, the task stored %p", r->id,
              res, atomic_load(&r->result));
    }
    /* Callbacks run before the future completes. */
    check_cbs_done(r, rc, op);
    if (took && res != NULL && atomic_load(&r->heap_made) &&
        atomic_exchange(&r->collected, 1) == 0)
        free_heap_result(res, CB_NONE, op);
}

/*
 * One call on a future.  op: 0 wait, 1 timed wait, 2 poll, 3 state,
 * 4 cancel.  may_block: a blocking wait is allowed.
 */
static void fut_op(struct pstate *ps, struct rng *g, crew_task_t *t,
                   struct rec *r, int op, bool may_block, bool inside)
{
    void *res = NULL;
    bool take = rchance(g, 50);
    int rc, s1, s2;
    int64_t to;

    if (op == 0 && !may_block)
        op = 1;
    switch (op) {
    case 0:
        if (inside)
            active_leave(ps);
        rc = crew_task_wait(t, take ? &res : NULL);
        if (inside)
            active_enter(ps, "crew_task_wait");
        CHECK(rc != CREW_EBUSY && rc != CREW_ETIMEDOUT && rc != CREW_EINVAL,
              "crew_task_wait", "task %llu: returned %d", r->id, rc);
        check_outcome(r, rc, res, take, "crew_task_wait");
        s1 = crew_task_state(t);
        CHECK(s1 == state_of_outcome(rc), "crew_task_wait",
              "task %llu: outcome %d but state %d", r->id, rc, s1);
        break;
    case 1:
        to = rchance(g, 40) ? 0 : (int64_t)rbelow(g, 200000);
        if (!may_block)
            to = rchance(g, 50) ? 0 : (int64_t)rbelow(g, 20000);
        if (inside)
            active_leave(ps);
        rc = crew_task_wait_timeout(t, to, take ? &res : NULL);
        if (inside)
            active_enter(ps, "crew_task_wait_timeout");
        CHECK(rc != CREW_EBUSY && rc != CREW_EINVAL, "crew_task_wait_timeout",
              "task %llu: returned %d", r->id, rc);
        if (rc != CREW_ETIMEDOUT)
            check_outcome(r, rc, res, take, "crew_task_wait_timeout");
        break;
    case 2:
        rc = crew_task_poll(t, take ? &res : NULL);
        CHECK(rc != CREW_ETIMEDOUT && rc != CREW_EINVAL, "crew_task_poll",
              "task %llu: returned %d", r->id, rc);
        if (rc != CREW_EBUSY)
            check_outcome(r, rc, res, take, "crew_task_poll");
        break;
    case 3:
        s1 = crew_task_state(t);
        s2 = crew_task_state(t);
        CHECK(s1 >= CREW_TASK_QUEUED && s1 <= CREW_TASK_CANCELED &&
                  s2 >= CREW_TASK_QUEUED && s2 <= CREW_TASK_CANCELED,
              "crew_task_state", "task %llu: state %d, %d", r->id, s1, s2);
        CHECK(s1 == s2 || s1 == CREW_TASK_QUEUED ||
                  (s1 == CREW_TASK_RUNNING && s2 != CREW_TASK_CANCELED &&
                   s2 != CREW_TASK_QUEUED),
              "crew_task_state", "task %llu: state went from %d to %d", r->id,
              s1, s2);
        if (s2 >= CREW_TASK_DONE) {
            rc = crew_task_poll(t, NULL);
            CHECK(state_of_outcome(rc) == s2 && rc != CREW_EBUSY,
                  "crew_task_state", "task %llu: state %d, poll %d", r->id, s2,
                  rc);
        }
        break;
    default:
        atomic_store(&r->cancel_req, 1);
        rc = crew_task_cancel(t);
        if (rc == 0) {
            atomic_store(&r->cancel_ok, 1);
            CHECK(atomic_load(&r->runs) == 0, "crew_task_cancel",
                  "task %llu: cancel returned 0 but the task ran", r->id);
            if (r->exp_err_cb != CB_NONE)
                CHECK(atomic_load(&r->cancel_cb_thread) == (void *)&tl_token,
                      "crew_task_cancel",
                      "task %llu: the error callback of a cancel did not "
                      "fire on the cancelling thread before it returned",
                      r->id);
            s1 = crew_task_state(t);
            CHECK(s1 == CREW_TASK_CANCELED, "crew_task_cancel",
                  "task %llu: cancelled, state %d", r->id, s1);
            rc = crew_task_poll(t, take ? &res : NULL);
            CHECK(rc == CREW_ECANCELED, "crew_task_cancel",
                  "task %llu: cancelled, poll says %d", r->id, rc);
            check_outcome(r, rc, res, take, "crew_task_cancel");
        } else {
            CHECK(rc == CREW_EBUSY, "crew_task_cancel",
                  "task %llu: returned %d", r->id, rc);
            s1 = crew_task_state(t);
            CHECK(s1 != CREW_TASK_QUEUED, "crew_task_cancel",
                  "task %llu: EBUSY but the task is still queued", r->id);
        }
        break;
    }
}

static int task_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    struct rec *r = arg;
    struct pstate *ps = r->ps;
    struct rng g = { r->rseed };
    int ret = r->plan_ret;
    volatile uint64_t sink = 0;
    void *res = NULL;

    CHECK(atomic_fetch_add(&r->runs, 1) == 0, "task", "task %llu ran twice",
          r->id);
    CHECK(atomic_load(&r->cancel_ok) == 0, "task",
          "task %llu ran after crew_task_cancel returned 0", r->id);
    CHECK(!tl_harness, "task", "task %llu ran on a harness thread", r->id);
    CHECK(crew_ctx_pool(ctx) == ps->pool, "task",
          "task %llu: crew_ctx_pool is %p, not %p", r->id,
          (void *)crew_ctx_pool(ctx), (void *)ps->pool);
    CHECK(result != NULL && *result == NULL, "task",
          "task %llu: result slot not NULL", r->id);
    atomic_fetch_add_explicit(&tot_runs, 1, memory_order_relaxed);
    active_enter(ps, "task");

    for (unsigned i = 0; i < r->plan_work; i++)
        sink = sink * 6364136223846793005ull + i;
    if (r->plan_sleep_us)
        sleep_us(r->plan_sleep_us);
    if (rchance(&g, 4))
        check_stats(ps, "crew_stats in a task", true);
    if (rchance(&g, 2)) {
        int rc = crew_wait(ps->pool);

        CHECK(rc == CREW_EDEADLK, "crew_wait in a task", "returned %d", rc);
        rc = crew_shutdown(ps->pool, (int)rbelow(&g, 2));
        CHECK(rc == CREW_EDEADLK, "crew_shutdown in a task", "returned %d", rc);
        rc = crew_free(ps->pool);
        CHECK(rc == CREW_EDEADLK, "crew_free in a task", "returned %d", rc);
    }
    if (rchance(&g, 1)) {
        unsigned max = 1 + rbelow(&g, 8), min = rbelow(&g, 3);
        int rc;

        if (min > max)
            min = max;
        raise_max_ever(ps, max);
        rc = crew_resize(ps->pool, min, max);
        CHECK(rc == 0 || rc == CREW_ETHREAD ||
                  (rc == CREW_ESHUTDOWN && eventually(&ps->shut_started)),
              "crew_resize in a task", "returned %d", rc);
        if (rc == CREW_ETHREAD)
            atomic_fetch_add(&tot_resource, 1);
    }
    for (unsigned c = 0; c < r->plan_children; c++) {
        unsigned how = rbelow(&g, 100);
        bool spawn = how < 45, nofut = how >= 45 && how < 55;
        crew_task_opts_t topts;
        crew_task_t *t = NULL;
        struct rec *child;
        int rc;

        child = new_rec(ps, &g, r->depth + 1, spawn,
                        spawn || nofut ? &topts : NULL);
        active_leave(ps);
        rc = submit_rec(ps, &g, child,
                        spawn || nofut ? K_SPAWN : (int)rbelow(&g, 3),
                        spawn ? &t : NULL, "submit in a task");
        active_enter(ps, "task after submit");
        if (rc != 0 || !spawn)
            continue;
        if (rchance(&g, 70))
            fut_op(ps, &g, t, child,
                   ps->allow_wait && rchance(&g, 50) ? 0 : (int)rbelow(&g, 5),
                   ps->allow_wait, true);
        if (rchance(&g, 30))
            fut_op(ps, &g, t, child, (int)rbelow(&g, 5), ps->allow_wait, true);
        crew_task_release(t);
    }
    for (unsigned ms = 0; ms < r->plan_long_ms; ms++) {
        if (crew_ctx_cancelled(ctx)) {
            CHECK(atomic_load(&r->cancel_req) || eventually(&ps->now_flag),
                  "crew_ctx_cancelled",
                  "task %llu: told to stop, but "
                  "nobody cancelled it and no shutdown NOW began",
                  r->id);
            ret = SAW_CANCEL;
            break;
        }
        sleep_us(1000);
    }
    active_leave(ps);

    if (r->plan_result == RES_MARK) {
        res = (void *)&r->id;
    } else if (r->plan_result == RES_HEAP) {
        struct heap_result *h = xcalloc(1, sizeof(*h));

        h->magic = RES_MAGIC;
        h->which = r->eff_free;
        h->r = r;
        res = h;
        atomic_store(&r->heap_made, 1);
    }
    atomic_store(&r->result, res);
    atomic_store(&r->ret, ret);
    atomic_store(&r->finished, 1);
    *result = res;
    (void)sink;
    return ret;
}

/* ---- making and submitting records ------------------------------------ */

static struct rec *new_rec(struct pstate *ps, struct rng *g, int depth,
                           bool future, crew_task_opts_t *topts)
{
    struct rec *r = xcalloc(1, sizeof(*r));
    unsigned x;

    r->ps = ps;
    r->depth = depth;
    r->future = future;
    r->id = atomic_fetch_add(&ps->id_next, 1);
    r->rseed = rnext(g);
    x = rbelow(g, 100);
    r->plan_ret = x < 70 ? 0 : x < 98 ? 1 + (int)rbelow(g, 300) : INT_MAX;
    r->plan_work = rbelow(g, 300);
    if (rchance(g, 8))
        r->plan_sleep_us = 10 + rbelow(g, 200);
    else if (rchance(g, 1))
        r->plan_sleep_us = 500 + rbelow(g, 2500);
    if (rchance(g, 1))
        r->plan_long_ms = 2 + rbelow(g, 20);
    if (depth < MAX_DEPTH && rchance(g, depth == 0 ? 12 : 6))
        r->plan_children = 1 + rbelow(g, 3);
    if (topts != NULL) {
        memset(topts, 0, sizeof(*topts));
        if (rchance(g, 50)) {
            if (rchance(g, 50))
                topts->on_result = task_on_result;
            if (rchance(g, 50))
                topts->on_error = task_on_error;
            if (rchance(g, 40))
                topts->free_result = task_free_result;
            topts->user = r;
        }
    }
    r->exp_res_cb = topts != NULL && topts->on_result ? CB_TASK
                    : ps->opts.on_result              ? CB_POOL
                                                      : CB_NONE;
    r->exp_err_cb = topts != NULL && topts->on_error ? CB_TASK
                    : ps->opts.on_error              ? CB_POOL
                                                     : CB_NONE;
    r->eff_free = topts != NULL && topts->free_result ? CB_TASK
                  : ps->opts.free_result              ? CB_POOL
                                                      : CB_NONE;
    r->plan_result = (int)rbelow(g, 3);
    /* Without a free_result, a result nobody collects would leak; with
     * one, every result nobody collects goes to it. */
    if (r->plan_result != RES_NONE)
        r->plan_result = r->eff_free == CB_NONE ? RES_MARK : RES_HEAP;
    atomic_init(&r->ret, INT_MIN);
    push_rec(ps, r);
    return r;
}

static const char *kind_name(int kind)
{
    switch (kind) {
    case K_SUBMIT:
        return "crew_submit";
    case K_TRY:
        return "crew_try_submit";
    case K_TIMEOUT:
        return "crew_submit_timeout";
    default:
        return "crew_spawn";
    }
}

/*
 * Submit a record with one of the four calls and check the return code
 * against the header.  Returns it.
 */
static int submit_rec(struct pstate *ps, struct rng *g, struct rec *r, int kind,
                      crew_task_t **fut, const char *who)
{
    const char *op = kind_name(kind);
    int done_before = atomic_load(&ps->shut_done);
    int64_t to = 0;
    crew_task_opts_t topts;
    int rc;

    (void)who;
    switch (kind) {
    case K_SUBMIT:
        rc = crew_submit(ps->pool, task_fn, r);
        break;
    case K_TRY:
        rc = crew_try_submit(ps->pool, task_fn, r);
        break;
    case K_TIMEOUT:
        switch (rbelow(g, 4)) {
        case 0:
            to = 0;
            break;
        case 1:
            to = -1;
            break;
        case 2:
            to = 1 + (int64_t)rbelow(g, 1000);
            break;
        default:
            to = 1000 + (int64_t)rbelow(g, 5000000);
            break;
        }
        rc = crew_submit_timeout(ps->pool, task_fn, r, to);
        break;
    default:
        /* The record's plan assumed these task options. */
        memset(&topts, 0, sizeof(topts));
        if (r->exp_res_cb == CB_TASK)
            topts.on_result = task_on_result;
        if (r->exp_err_cb == CB_TASK)
            topts.on_error = task_on_error;
        if (r->eff_free == CB_TASK)
            topts.free_result = task_free_result;
        topts.user = r;
        if (fut != NULL)
            *fut = (crew_task_t *)&topts; /* must be overwritten */
        rc = crew_spawn(ps->pool, task_fn, r,
                        rchance(g, 20) && r->exp_res_cb != CB_TASK &&
                                r->exp_err_cb != CB_TASK &&
                                r->eff_free != CB_TASK
                            ? NULL
                            : &topts,
                        fut);
        break;
    }
    if (rc == 0) {
        CHECK(!done_before, op,
              "task %llu accepted after crew_shutdown "
              "returned",
              r->id);
        if (kind == K_SPAWN && fut != NULL)
            CHECK(*fut != NULL && *fut != (crew_task_t *)&topts, op,
                  "task %llu: accepted but no future", r->id);
        atomic_store(&r->accepted, 1);
        atomic_fetch_add_explicit(&tot_accepted, 1, memory_order_relaxed);
        return 0;
    }
    CHECK(rc == CREW_ESHUTDOWN || is_resource(rc) ||
              (rc == CREW_EAGAIN && kind == K_TRY && ps->bounded) ||
              (rc == CREW_ETIMEDOUT && kind == K_TIMEOUT && ps->bounded &&
               to >= 0),
          op,
          "task %llu: returned %d (%s), not one the header "
          "documents here (queue %s, timeout %lld)",
          r->id, rc, crew_strerror(rc), ps->bounded ? "bounded" : "unbounded",
          (long long)to);
    CHECK(rc != CREW_ESHUTDOWN || eventually(&ps->shut_started), op,
          "task %llu: CREW_ESHUTDOWN before any shutdown", r->id);
    if (kind == K_SPAWN && fut != NULL)
        CHECK(*fut == NULL, op,
              "task %llu: refused (%d) but *task not "
              "NULL",
              r->id, rc);
    CHECK(atomic_load(&r->runs) == 0, op,
          "task %llu: refused (%d) but it "
          "ran",
          r->id, rc);
    atomic_fetch_add(&ps->rejected_seen, 1);
    atomic_fetch_add_explicit(&tot_rejected, 1, memory_order_relaxed);
    if (is_resource(rc))
        atomic_fetch_add(&tot_resource, 1);
    return rc;
}

/* ---- shared futures ---------------------------------------------------- */

/* Publish a future to the shared slots; false if all are taken. */
static bool slot_put(struct pstate *ps, struct rng *g, crew_task_t *t,
                     struct rec *r)
{
    unsigned start = rbelow(g, N_SLOTS);

    for (unsigned i = 0; i < N_SLOTS; i++) {
        struct slot *s = &ps->slots[(start + i) % N_SLOTS];
        bool ok = false;

        pthread_mutex_lock(&s->mu);
        if (s->t == NULL) {
            s->t = t;
            s->r = r;
            s->users = 0;
            s->doomed = false;
            ok = true;
        }
        pthread_mutex_unlock(&s->mu);
        if (ok)
            return true;
    }
    return false;
}

/* Run one future call, or a release, on a shared future. */
static void slot_op(struct pstate *ps, struct rng *g, bool may_block)
{
    struct slot *s = &ps->slots[rbelow(g, N_SLOTS)];
    crew_task_t *t = NULL;
    struct rec *r = NULL;
    bool release = rchance(g, 15);

    pthread_mutex_lock(&s->mu);
    if (s->t != NULL && !s->doomed) {
        t = s->t;
        r = s->r;
        if (release) {
            s->doomed = true;
            if (s->users == 0) {
                crew_task_release(t);
                s->t = NULL;
                s->r = NULL;
            }
        } else {
            s->users++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (t == NULL || release)
        return;
    fut_op(ps, g, t, r, (int)rbelow(g, 5), may_block, false);
    pthread_mutex_lock(&s->mu);
    if (--s->users == 0 && s->doomed) {
        crew_task_release(s->t);
        s->t = NULL;
        s->r = NULL;
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- whole-pool checks ------------------------------------------------- */

struct tally {
    unsigned long long accepted, ok, failed, cancelled;
};

/*
 * Walk every record.  final: the pool has shut down (or been waited for
 * the last time).  Every accepted task has finished or was cancelled, with
 * its callbacks; a refused one never ran.
 */
static struct tally scan_recs(struct pstate *ps, const char *op)
{
    struct tally t = { 0, 0, 0, 0 };
    struct rec *r = atomic_load_explicit(&ps->recs, memory_order_acquire);
    bool now = atomic_load(&ps->now_flag) != 0;

    for (; r != NULL; r = r->next) {
        int runs = atomic_load(&r->runs);

        if (!atomic_load(&r->accepted)) {
            CHECK(runs == 0 && cb_total(r) == 0, op,
                  "task %llu: refused, yet ran %d times, %d callbacks", r->id,
                  runs, cb_total(r));
            continue;
        }
        t.accepted++;
        CHECK(runs <= 1, op, "task %llu ran %d times", r->id, runs);
        if (runs == 1) {
            int ret = atomic_load(&r->ret);

            CHECK(atomic_load(&r->finished) == 1, op,
                  "task %llu: still running at a quiet moment", r->id);
            CHECK(atomic_load(&r->cancel_ok) == 0, op,
                  "task %llu: ran and was cancelled", r->id);
            check_cbs_done(r, ret, op);
            if (ret == 0)
                t.ok++;
            else
                t.failed++;
        } else {
            CHECK(atomic_load(&r->cancel_ok) || now, op,
                  "task %llu: accepted, never ran, not cancelled (lost)",
                  r->id);
            check_cbs_done(r, CREW_ECANCELED, op);
            t.cancelled++;
        }
    }
    return t;
}

/* At a quiet moment: statistics add up and match the records. */
static void check_quiet(struct pstate *ps, const char *op, bool stopped)
{
    crew_stats_t st;
    struct tally t = scan_recs(ps, op);

    check_stats(ps, op, false);
    crew_stats(ps->pool, &st);
    CHECK(st.submitted == st.completed + st.failed + st.cancelled, op,
          "submitted %llu != completed %llu + failed %llu + cancelled %llu",
          (unsigned long long)st.submitted, (unsigned long long)st.completed,
          (unsigned long long)st.failed, (unsigned long long)st.cancelled);
    CHECK(st.queued == 0 && st.running == 0, op,
          "quiet, yet queued %llu running %llu", (unsigned long long)st.queued,
          (unsigned long long)st.running);
    CHECK(st.submitted == t.accepted && st.completed == t.ok &&
              st.failed == t.failed && st.cancelled == t.cancelled,
          op,
          "stats submitted/completed/failed/cancelled %llu/%llu/%llu/%llu, "
          "records %llu/%llu/%llu/%llu",
          (unsigned long long)st.submitted, (unsigned long long)st.completed,
          (unsigned long long)st.failed, (unsigned long long)st.cancelled,
          t.accepted, t.ok, t.failed, t.cancelled);
    CHECK(st.rejected == atomic_load(&ps->rejected_seen), op,
          "stats rejected %llu, the harness saw %llu refused",
          (unsigned long long)st.rejected,
          (unsigned long long)atomic_load(&ps->rejected_seen));
    if (stopped)
        CHECK(st.workers == 0 && st.idle_workers == 0, op,
              "after shutdown %u workers (%u idle)", st.workers,
              st.idle_workers);
}

/* ---- harness threads --------------------------------------------------- */

static void barrier(struct pstate *ps)
{
    int gen;

    pthread_mutex_lock(&ps->bmu);
    gen = ps->bgen;
    if (++ps->bcount == ps->nthreads) {
        ps->bcount = 0;
        ps->bgen++;
        pthread_cond_broadcast(&ps->bcv);
    } else {
        while (gen == ps->bgen)
            pthread_cond_wait(&ps->bcv, &ps->bmu);
    }
    pthread_mutex_unlock(&ps->bmu);
}

static void do_shutdown(struct pstate *ps, int how, const char *op)
{
    crew_stats_t st;
    int rc;

    if (how == HOW_NOW)
        atomic_store(&ps->now_flag, 1);
    atomic_store(&ps->shut_started, 1);
    rc = crew_shutdown(ps->pool, how == HOW_NOW ? CREW_SHUTDOWN_NOW
                                                : CREW_SHUTDOWN_DRAIN);
    CHECK(rc == 0, op, "crew_shutdown returned %d", rc);
    atomic_store(&ps->shut_done, 1);
    /* It returned when every accepted task had finished and every worker
     * had exited: later submits are refused, so the counts are final. */
    crew_stats(ps->pool, &st);
    CHECK(st.submitted == st.completed + st.failed + st.cancelled, op,
          "after shutdown: submitted %llu != %llu + %llu + %llu",
          (unsigned long long)st.submitted, (unsigned long long)st.completed,
          (unsigned long long)st.failed, (unsigned long long)st.cancelled);
    CHECK(st.queued == 0 && st.running == 0 && st.workers == 0, op,
          "after shutdown: queued %llu running %llu workers %u",
          (unsigned long long)st.queued, (unsigned long long)st.running,
          st.workers);
    check_stats(ps, op, false);
}

static void keep_future(struct hthread *h, crew_task_t *t, struct rec *r)
{
    struct pstate *ps = h->ps;

    if (rchance(&h->g, 40) && slot_put(ps, &h->g, t, r))
        return;
    for (int i = 0; i < N_MINE; i++) {
        if (h->mine_t[i] == NULL) {
            h->mine_t[i] = t;
            h->mine_r[i] = r;
            return;
        }
    }
    /* No room: wait for it or not, and give it back. */
    fut_op(ps, &h->g, t, r, (int)rbelow(&h->g, 5), true, false);
    crew_task_release(t);
}

static void op_invalid(struct hthread *h)
{
    struct pstate *ps = h->ps;
    crew_t *pool = ps->pool;
    crew_task_t *t = (crew_task_t *)&h->g;
    crew_opts_t o;
    crew_t *np;
    int rc;

    switch (rbelow(&h->g, 10)) {
    case 0:
        rc = crew_submit(NULL, task_fn, NULL);
        CHECK(rc == CREW_EINVAL, "crew_submit(NULL)", "returned %d", rc);
        rc = crew_try_submit(pool, NULL, NULL);
        CHECK(rc == CREW_EINVAL, "crew_try_submit(fn NULL)", "returned %d", rc);
        rc = crew_submit_timeout(pool, NULL, NULL, 10);
        CHECK(rc == CREW_EINVAL, "crew_submit_timeout(fn NULL)", "returned %d",
              rc);
        break;
    case 1:
        rc = crew_spawn(pool, NULL, NULL, NULL, NULL);
        CHECK(rc == CREW_EINVAL, "crew_spawn(fn NULL, task NULL)",
              "returned %d", rc);
        rc = crew_spawn(pool, NULL, NULL, NULL, &t);
        CHECK(rc == CREW_EINVAL && t == NULL, "crew_spawn(fn NULL)",
              "returned %d, task %p", rc, (void *)t);
        break;
    case 2:
        rc = crew_task_wait(NULL, NULL);
        CHECK(rc == CREW_EINVAL, "crew_task_wait(NULL)", "returned %d", rc);
        rc = crew_task_wait_timeout(NULL, 0, NULL);
        CHECK(rc == CREW_EINVAL, "crew_task_wait_timeout(NULL)", "returned %d",
              rc);
        rc = crew_task_poll(NULL, NULL);
        CHECK(rc == CREW_EINVAL, "crew_task_poll(NULL)", "returned %d", rc);
        rc = crew_task_state(NULL);
        CHECK(rc == CREW_EINVAL, "crew_task_state(NULL)", "returned %d", rc);
        rc = crew_task_cancel(NULL);
        CHECK(rc == CREW_EINVAL, "crew_task_cancel(NULL)", "returned %d", rc);
        crew_task_release(NULL);
        break;
    case 3:
        for (int i = 0; i < N_MINE; i++) {
            if (h->mine_t[i] != NULL) {
                rc = crew_task_wait_timeout(h->mine_t[i], -1, NULL);
                CHECK(rc == CREW_EINVAL, "crew_task_wait_timeout(-1)",
                      "returned %d", rc);
                break;
            }
        }
        break;
    case 4:
        rc = crew_wait(NULL);
        CHECK(rc == CREW_EINVAL, "crew_wait(NULL)", "returned %d", rc);
        rc = crew_shutdown(NULL, CREW_SHUTDOWN_DRAIN);
        CHECK(rc == CREW_EINVAL, "crew_shutdown(NULL)", "returned %d", rc);
        rc = crew_shutdown(pool, rchance(&h->g, 50) ? 2 : -1);
        CHECK(rc == CREW_EINVAL, "crew_shutdown(bad how)", "returned %d", rc);
        break;
    case 5:
        rc = crew_resize(pool, 0, 0);
        CHECK(rc == CREW_EINVAL, "crew_resize(0, 0)", "returned %d", rc);
        rc = crew_resize(pool, 3, 2);
        CHECK(rc == CREW_EINVAL, "crew_resize(3, 2)", "returned %d", rc);
        rc = crew_resize(pool, 0, CREW_MAX_WORKERS + 1);
        CHECK(rc == CREW_EINVAL, "crew_resize(0, too many)", "returned %d", rc);
        rc = crew_resize(NULL, 0, 1);
        CHECK(rc == CREW_EINVAL, "crew_resize(NULL)", "returned %d", rc);
        break;
    case 6:
        crew_stats(NULL, NULL);
        crew_stats(pool, NULL);
        rc = crew_free(NULL);
        CHECK(rc == 0, "crew_free(NULL)", "returned %d", rc);
        break;
    case 7: {
        static const int codes[] = {
            CREW_OK,        CREW_EINVAL,    CREW_ENOMEM,    CREW_EAGAIN,
            CREW_ETIMEDOUT, CREW_ESHUTDOWN, CREW_ECANCELED, CREW_ETHREAD,
            CREW_EBUSY,     CREW_EDEADLK,   12345,          -99999
        };

        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
            CHECK(crew_strerror(codes[i]) != NULL, "crew_strerror",
                  "NULL for %d", codes[i]);
        break;
    }
    default:
        memset(&o, 0, sizeof(o));
        switch (rbelow(&h->g, 6)) {
        case 0:
            o.min_workers = 3;
            o.max_workers = 2;
            break;
        case 1:
            o.max_workers = CREW_MAX_WORKERS + 1;
            break;
        case 2:
            o.stack_size = 1000;
            break;
        case 3:
            o.stack_size = ((size_t)1 << 30) + 1;
            break;
        case 4:
            o.queue_capacity = CREW_MAX_CAPACITY + 1;
            break;
        default:
            o.min_workers = CREW_MAX_WORKERS + 1;
            break;
        }
        rc = crew_create(&np, &o);
        CHECK(rc == CREW_EINVAL, "crew_create(bad options)", "returned %d", rc);
        CHECK(crew_new(&o) == NULL, "crew_new(bad options)", "made a pool");
        rc = crew_create(NULL, NULL);
        CHECK(rc == CREW_EINVAL, "crew_create(NULL)", "returned %d", rc);
        break;
    }
}

static void op_resize(struct hthread *h)
{
    struct pstate *ps = h->ps;
    unsigned max = 1 + rbelow(&h->g, rchance(&h->g, 20) ? 24 : 8);
    unsigned min = rbelow(&h->g, 4);
    int started = atomic_load(&ps->shut_started);
    int rc;

    if (min > max)
        min = max;
    raise_max_ever(ps, max);
    rc = crew_resize(ps->pool, min, max);
    CHECK(rc == 0 || rc == CREW_ETHREAD ||
              (rc == CREW_ESHUTDOWN && eventually(&ps->shut_started)),
          "crew_resize", "(%u, %u) returned %d", min, max, rc);
    CHECK(rc != 0 || !atomic_load(&ps->shut_done) || !started, "crew_resize",
          "accepted after shutdown returned");
    if (rc == CREW_ETHREAD)
        atomic_fetch_add(&tot_resource, 1);
}

/* One random operation. */
static void one_op(struct hthread *h)
{
    struct pstate *ps = h->ps;
    struct rng *g = &h->g;
    unsigned x = rbelow(g, 100);
    crew_task_opts_t topts;
    crew_task_t *t;
    struct rec *r;
    int rc;

    h->ops++;
    if (x < 28) {
        bool nofut = rchance(g, 15);

        set_op(h->idx, "submit");
        r = new_rec(ps, g, 0, false, nofut ? &topts : NULL);
        submit_rec(ps, g, r, nofut ? K_SPAWN : (int)rbelow(g, 3), NULL,
                   "harness");
    } else if (x < 34) {
        unsigned n =
            1 + rbelow(g, ps->bounded
                              ? (unsigned)ps->opts.queue_capacity * 2 + 2
                              : 40);
        int kind = (int)rbelow(g, 3);

        set_op(h->idx, "burst");
        if (n > 200)
            n = 200;
        for (unsigned i = 0; i < n; i++) {
            r = new_rec(ps, g, 0, false, NULL);
            if (submit_rec(ps, g, r, kind, NULL, "burst") == CREW_ESHUTDOWN)
                break;
        }
    } else if (x < 48) {
        set_op(h->idx, "crew_spawn");
        r = new_rec(ps, g, 0, true, &topts);
        rc = submit_rec(ps, g, r, K_SPAWN, &t, "harness");
        if (rc == 0)
            keep_future(h, t, r);
    } else if (x < 64) {
        int i = (int)rbelow(g, N_MINE);

        set_op(h->idx, "own future");
        if (h->mine_t[i] == NULL)
            return;
        if (rchance(g, 20)) {
            crew_task_release(h->mine_t[i]);
            h->mine_t[i] = NULL;
            return;
        }
        fut_op(ps, g, h->mine_t[i], h->mine_r[i], (int)rbelow(g, 5), true,
               false);
        if (rchance(g, 30)) {
            crew_task_release(h->mine_t[i]);
            h->mine_t[i] = NULL;
        }
    } else if (x < 78) {
        set_op(h->idx, "shared future");
        slot_op(ps, g, true);
    } else if (x < 84) {
        set_op(h->idx, "crew_stats");
        check_stats(ps, "crew_stats", false);
    } else if (x < 87) {
        set_op(h->idx, "crew_resize");
        op_resize(h);
    } else if (x < 89) {
        set_op(h->idx, "crew_wait");
        rc = crew_wait(ps->pool);
        CHECK(rc == 0, "crew_wait", "returned %d", rc);
    } else if (x < 94) {
        set_op(h->idx, "invalid arguments");
        op_invalid(h);
    } else {
        set_op(h->idx, "pause");
        if (rchance(g, 50))
            sched_yield();
        else
            sleep_us(rbelow(g, 300));
    }
}

static void *harness_main(void *p)
{
    struct hthread *h = p;
    struct pstate *ps = h->ps;

    tl_harness = true;
    for (int round = 0; round < h->rounds; round++) {
        for (int i = 0; i < h->ops_per_round; i++) {
            if (round == h->shut_round && i == h->shut_op) {
                set_op(h->idx, "crew_shutdown");
                do_shutdown(ps, h->shut_how, "crew_shutdown");
            }
            one_op(h);
        }
        if (round == h->rounds - 1)
            break;
        set_op(h->idx, "barrier");
        barrier(ps);
        if (h->idx == 0) {
            int rc;

            set_op(h->idx, "quiet crew_wait");
            rc = crew_wait(ps->pool);
            CHECK(rc == 0, "crew_wait", "returned %d", rc);
            check_quiet(ps, "quiet moment", false);
            if (rchance(&h->g, 50)) {
                unsigned max = 1 + rbelow(&h->g, 8);
                unsigned min = rbelow(&h->g, max + 1);
                crew_stats_t st;

                set_op(h->idx, "quiet crew_resize");
                raise_max_ever(ps, max);
                rc = crew_resize(ps->pool, min, max);
                CHECK(rc == 0 || rc == CREW_ETHREAD, "quiet crew_resize",
                      "(%u, %u) returned %d", min, max, rc);
                crew_stats(ps->pool, &st);
                CHECK(st.min_workers == min && st.max_workers == max,
                      "quiet crew_resize",
                      "asked (%u, %u), stats show "
                      "(%u, %u)",
                      min, max, st.min_workers, st.max_workers);
                CHECK(st.workers <= max && (rc != 0 || st.workers >= min),
                      "quiet crew_resize",
                      "(%u, %u) returned %d, %u "
                      "workers",
                      min, max, rc, st.workers);
            }
        }
        barrier(ps);
    }
    /* Give back this thread's futures, some after waiting for them. */
    set_op(h->idx, "own futures at the end");
    for (int i = 0; i < N_MINE; i++) {
        if (h->mine_t[i] == NULL)
            continue;
        if (rchance(&h->g, 60))
            fut_op(ps, &h->g, h->mine_t[i], h->mine_r[i], (int)rbelow(&h->g, 5),
                   true, false);
        crew_task_release(h->mine_t[i]);
        h->mine_t[i] = NULL;
    }
    set_op(h->idx, "done");
    atomic_fetch_add(&tot_ops, h->ops);
    return NULL;
}

/* ---- one pool's life --------------------------------------------------- */

static void random_opts(struct rng *g, crew_opts_t *o, struct pstate *ps)
{
    static const unsigned maxes[] = { 0, 1, 1, 2, 2, 3, 4, 4, 8, 16 };
    static const size_t caps[] = { 1, 2, 3, 4, 16, 64, 1024 };
    static const int64_t idles[] = { 0, -1, 1, 1000, 50000, 1000000, 20000000 };

    memset(o, 0, sizeof(*o));
    o->max_workers = maxes[rbelow(g, sizeof(maxes) / sizeof(maxes[0]))];
    o->min_workers = rbelow(g, (o->max_workers ? o->max_workers : 2) + 1);
    if (o->min_workers > 4)
        o->min_workers = rbelow(g, 5);
    if (rchance(g, 55))
        o->queue_capacity = caps[rbelow(g, sizeof(caps) / sizeof(caps[0]))];
    o->idle_timeout_ns = idles[rbelow(g, sizeof(idles) / sizeof(idles[0]))];
    switch (rbelow(g, 6)) {
    case 0:
        o->stack_size = (size_t)1 << 20;
        break;
    case 1:
        o->stack_size = (size_t)256 << 10;
        break;
    default:
        o->stack_size = 0;
        break;
    }
    o->prespawn = rchance(g, 25);
    if (rchance(g, 60)) {
        o->on_thread_start = hook_start;
        o->on_thread_stop = hook_stop;
    }
    if (rchance(g, 60))
        o->on_result = pool_on_result;
    if (rchance(g, 60))
        o->on_error = pool_on_error;
    if (rchance(g, 50))
        o->free_result = pool_free_result;
    o->user = ps;
}

static void run_pool(unsigned long long seed, int idx, struct rng *sg)
{
    struct pstate *ps = xcalloc(1, sizeof(*ps));
    struct hthread *hs;
    crew_stats_t st;
    int nthreads, rounds, ops, how, rc;

    atomic_store(&cur_pool_idx, idx);
    for (int i = 0; i <= MAX_THREADS; i++)
        set_op(i, NULL);
    ps->idx = idx;
    random_opts(sg, &ps->opts, ps);
    ps->bounded = ps->opts.queue_capacity != 0;
    /* A small stack holds no chains of tasks waiting for tasks (see the
     * README's limitations); they get their own checks elsewhere. */
    ps->allow_wait = ps->opts.stack_size == 0 && rchance(sg, 80);
    for (int i = 0; i < N_SLOTS; i++)
        pthread_mutex_init(&ps->slots[i].mu, NULL);
    pthread_mutex_init(&ps->bmu, NULL);
    pthread_cond_init(&ps->bcv, NULL);

    rc = crew_create(&ps->pool, &ps->opts);
    CHECK(rc == 0 || is_resource(rc), "crew_create",
          "returned %d for valid options", rc);
    atomic_fetch_add(&tot_pools, 1);
    if (rc != 0) {
        atomic_fetch_add(&tot_resource, 1);
        goto out;
    }
    crew_stats(ps->pool, &st);
    atomic_store(&ps->max_ever, st.max_workers);
    CHECK(ps->opts.max_workers == 0 || st.max_workers == ps->opts.max_workers,
          "crew_create", "max_workers %u, asked for %u", st.max_workers,
          ps->opts.max_workers);
    CHECK(st.min_workers == ps->opts.min_workers &&
              st.workers >= st.min_workers &&
              st.peak_workers >=
                  (ps->opts.prespawn ? st.max_workers : st.min_workers),
          "crew_create", "bounds (%u, %u), %u workers, peak %u, prespawn %d",
          st.min_workers, st.max_workers, st.workers, st.peak_workers,
          (int)ps->opts.prespawn);
    check_stats(ps, "crew_create", false);

    nthreads = 1 + (int)rbelow(sg, (unsigned)opt_threads);
    if (rchance(sg, 50))
        nthreads = opt_threads;
    rounds = 2 + (int)rbelow(sg, 3);
    ops = 30 + (int)rbelow(sg, 120);
    how = (int)rbelow(sg, 3);
    ps->nthreads = nthreads;
    hs = xcalloc((size_t)nthreads, sizeof(*hs));
    for (int i = 0; i < nthreads; i++) {
        hs[i].ps = ps;
        hs[i].idx = i;
        hs[i].g.s = seed * 0x100000001b3ull + (uint64_t)idx * 7919 +
                    (uint64_t)i * 104729 + 1;
        hs[i].rounds = rounds;
        hs[i].ops_per_round = ops;
        hs[i].shut_round = -1;
        hs[i].shut_op = -1;
    }
    if (how != HOW_NONE) {
        int who = (int)rbelow(sg, (unsigned)nthreads);

        hs[who].shut_round = rounds - 1;
        hs[who].shut_op = (int)rbelow(sg, (unsigned)ops);
        hs[who].shut_how = how;
        if (nthreads > 1 && rchance(sg, 30)) {
            /* A second, concurrent shutdown, either way. */
            who = (who + 1) % nthreads;
            hs[who].shut_round = rounds - 1;
            hs[who].shut_op = (int)rbelow(sg, (unsigned)ops);
            hs[who].shut_how = (int)rbelow(sg, 2);
        }
    }
    for (int i = 0; i < nthreads; i++) {
        rc = pthread_create(&hs[i].tid, NULL, harness_main, &hs[i]);
        if (rc != 0) {
            fprintf(stderr, "stress: pthread_create: %s\n", strerror(rc));
            abort();
        }
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(hs[i].tid, NULL);
    free(hs);
    set_op(0, "main: final checks");

    /* Every harness thread is done.  Quiesce and check the totals. */
    if (how == HOW_NONE) {
        rc = crew_wait(ps->pool);
        CHECK(rc == 0, "crew_wait", "returned %d", rc);
        check_quiet(ps, "final crew_wait", false);
    } else {
        check_quiet(ps, "after shutdown", true);
        rc = crew_shutdown(ps->pool, (int)rbelow(sg, 2));
        CHECK(rc == 0, "crew_shutdown again", "returned %d", rc);
        rc = submit_rec(ps, sg, new_rec(ps, sg, 0, false, NULL),
                        (int)rbelow(sg, 3), NULL, "after shutdown");
        CHECK(rc == CREW_ESHUTDOWN, "crew_submit after shutdown", "returned %d",
              rc);
        rc = crew_resize(ps->pool, 0, 2);
        CHECK(rc == CREW_ESHUTDOWN, "crew_resize after shutdown", "returned %d",
              rc);
        rc = crew_wait(ps->pool);
        CHECK(rc == 0, "crew_wait after shutdown", "returned %d", rc);
        check_quiet(ps, "after shutdown", true);
        CHECK(atomic_load(&ps->hook_start) == atomic_load(&ps->hook_stop),
              "after shutdown", "%u threads started, %u stopped",
              atomic_load(&ps->hook_start), atomic_load(&ps->hook_stop));
    }
    if (ps->opts.on_thread_start != NULL)
        CHECK(atomic_load(&ps->hook_start) >= st.peak_workers,
              "on_thread_start", "%u starts, peak was %u workers",
              atomic_load(&ps->hook_start), st.peak_workers);

    /* Shared futures: some given back before crew_free, some after. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            set_op(0, "main: crew_free");
            rc = crew_free(ps->pool);
            CHECK(rc == 0, "crew_free", "returned %d", rc);
            CHECK(atomic_load(&ps->hook_start) == atomic_load(&ps->hook_stop),
                  "crew_free", "%u threads started, %u stopped",
                  atomic_load(&ps->hook_start), atomic_load(&ps->hook_stop));
        }
        for (int i = 0; i < N_SLOTS; i++) {
            struct slot *s = &ps->slots[i];

            if (s->t == NULL || (pass == 0 && rchance(sg, 50)))
                continue;
            fut_op(ps, sg, s->t, s->r, (int)rbelow(sg, 5), true, false);
            fut_op(ps, sg, s->t, s->r, 0, true, false);
            crew_task_release(s->t);
            s->t = NULL;
        }
    }

    /* Every result was freed exactly once, by free_result or by whoever
     * collected it. */
    for (struct rec *r = atomic_load(&ps->recs); r != NULL; r = r->next) {
        int freed = atomic_load(&r->freed_pool) + atomic_load(&r->freed_task) +
                    atomic_load(&r->freed_harness);

        CHECK(freed == atomic_load(&r->heap_made), "results",
              "task %llu: result made %d, freed %d times (pool %d, task %d, "
              "collector %d)",
              r->id, atomic_load(&r->heap_made), freed,
              atomic_load(&r->freed_pool), atomic_load(&r->freed_task),
              atomic_load(&r->freed_harness));
        if (atomic_load(&r->accepted) && atomic_load(&r->runs) == 0)
            atomic_fetch_add(&tot_cancelled, 1);
    }
out:
    while (ps->recs != NULL) {
        struct rec *r = ps->recs;

        ps->recs = r->next;
        free(r);
    }
    for (int i = 0; i < N_SLOTS; i++)
        pthread_mutex_destroy(&ps->slots[i].mu);
    pthread_mutex_destroy(&ps->bmu);
    pthread_cond_destroy(&ps->bcv);
    free(ps);
}

/* ---- watchdog, main ----------------------------------------------------- */

static void *watchdog_main(void *p)
{
    (void)p;
    while (!atomic_load(&wd_quit)) {
        long long d = atomic_load(&wd_deadline);

        if (d != 0 && now_ns() > d) {
            pthread_mutex_lock(&fail_mu);
            fprintf(stderr,
                    "stress: HANG seed %llu pool %d: no progress "
                    "within %.0f s; harness threads are at:\n",
                    (unsigned long long)atomic_load(&cur_seed),
                    atomic_load(&cur_pool_idx), opt_deadline);
            for (int i = 0; i <= MAX_THREADS; i++) {
                const char *op = atomic_load(&wd_op[i]);

                if (op != NULL)
                    fprintf(stderr, "  thread %d: %s\n", i, op);
            }
            print_totals(stderr);
            fflush(stderr);
            abort();
        }
        sleep_us(100000);
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: stress [--seconds S] [--seeds N] "
                    "[--first-seed K] [--threads T] [--deadline S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    pthread_t wd;
    int64_t start, stop = 0;
    unsigned long long seed;

    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        const char *a = argv[i];

        if (i + 1 >= argc)
            usage();
        if (strcmp(a, "--seconds") == 0)
            opt_seconds = strtod(argv[++i], &end);
        else if (strcmp(a, "--seeds") == 0)
            opt_seeds = strtol(argv[++i], &end, 10);
        else if (strcmp(a, "--first-seed") == 0)
            opt_first = strtoull(argv[++i], &end, 10);
        else if (strcmp(a, "--threads") == 0)
            opt_threads = (int)strtol(argv[++i], &end, 10);
        else if (strcmp(a, "--deadline") == 0)
            opt_deadline = strtod(argv[++i], &end);
        else
            usage();
        if (end == NULL || *end != '\0')
            usage();
    }
    if (opt_threads < 1 || opt_threads > MAX_THREADS || opt_seconds < 0 ||
        opt_deadline <= 0)
        usage();
    if (opt_seeds < 0 && opt_seconds == 0)
        opt_seeds = 20;
    tl_harness = true;
    start = now_ns();
    if (opt_seconds > 0)
        stop = start + (int64_t)(opt_seconds * 1e9);
    pthread_create(&wd, NULL, watchdog_main, NULL);

    for (seed = opt_first;; seed++) {
        struct rng sg = { seed ^ 0xc0ffee0ddf00dull };
        int npools;

        if (opt_seeds >= 0 && seed - opt_first >= (unsigned long long)opt_seeds)
            break;
        if (stop != 0 && now_ns() >= stop)
            break;
        atomic_store(&cur_seed, seed);
        atomic_store(&wd_deadline, now_ns() + (long long)(opt_deadline * 1e9));
        npools = 1 + (int)rbelow(&sg, 2);
        for (int p = 0; p < npools; p++)
            run_pool(seed, p, &sg);
        atomic_fetch_add(&tot_seeds, 1);
    }
    atomic_store(&wd_deadline, 0);
    atomic_store(&wd_quit, 1);
    pthread_join(wd, NULL);
    printf("stress: first seed %llu, %.1f s\n", opt_first,
           (double)(now_ns() - start) / 1e9);
    print_totals(stdout);
    return atomic_load(&tot_violations) == 0 ? 0 : 1;
}
