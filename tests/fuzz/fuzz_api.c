/*
 * fuzz_api.c - the API fuzzer (issue 6): the input bytes are a program of
 * crew calls with their arguments, run against one small pool per input.
 *
 * The first bytes choose the pool's options (some of them invalid on
 * purpose: the model below says which, and crew_create() must agree).
 * The rest is a list of operations: submit, try, timed submit and spawn
 * with task options (delays, timeouts, retries and backoff, priorities,
 * groups, callbacks), future calls (wait, timed wait, poll, state, cancel,
 * release), group calls, resize, stats, wait, shutdown DRAIN or NOW (or a
 * bad value), and calls with NULL or absurd arguments.  Handles are
 * tracked: only live ones or NULL are passed, never one the API says is
 * gone.  Tasks are tiny and deterministic; some submit more work, wait for
 * a child future (helping), or call what a task must not (crew_wait on
 * their own pool: CREW_EDEADLK).
 *
 * Checked at once: each return code against the model (EINVAL exactly when
 * an argument is invalid, ESHUTDOWN after shutdown, EBUSY only from poll
 * and cancel, ...), and after crew_wait() that the statistics add up and
 * match the tasks accepted.  Checked at the end of each input, after
 * crew_free(): every accepted task was reported once (its callbacks fired
 * once, with the outcome its future gives), ran at most once per attempt
 * and exactly once when it had no policy and was not cancelled; every
 * rejected task never ran; each result went to at most one owner; every
 * worker thread that started stopped.  A violation prints what broke and
 * aborts, which libFuzzer records as a crash.
 *
 * Built with -DCREW_LIBFUZZER (clang, -fsanitize=fuzzer) this file is the
 * libFuzzer target; otherwise it has a main() that replays every file (or
 * every file of every directory) named on its command line: the fuzz.corpus
 * CTest entry, in every flavour of the test build.
 */
#include <crew.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MS ((int64_t)1000000)
#define US ((int64_t)1000)
#define MAX_JOBS 512
#define MAX_OPS 160
#define NFUT 8
#define NGRP 4
#define TASK_ERR 5 /* what a failing task returns (EIO) */

#define CHECK(cond, ...)                                                 \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "fuzz_api: VIOLATION %s:%d: %s: ", __FILE__, \
                    __LINE__, #cond);                                    \
            fprintf(stderr, __VA_ARGS__);                                \
            fputc('\n', stderr);                                         \
            abort();                                                     \
        }                                                                \
    } while (0)

enum kind {
    K_OK,     /* returns 0, maybe with a result */
    K_FAIL,   /* returns TASK_ERR */
    K_FLAKY,  /* fails its first attempt, then succeeds */
    K_SUBMIT, /* submits a child task to its own pool */
    K_NESTED, /* spawns a child and waits for it (helping) */
    K_DEADLK, /* calls what a task must not: CREW_EDEADLK */
    K_SLOW,   /* runs ~200 us, watching for cancellation */
    K_NKINDS
};

struct job {
    int kind;
    bool want_result; /* K_OK: returns &token as its result */
    bool observed;    /* callbacks in effect: outcomes are counted */
    bool policy;      /* may run several times or time out */
    bool no_timeout;  /* its timeout is too far to ever pass */
    bool cb_submit;   /* its callback submits a child */
    unsigned retries;
    unsigned child_how; /* K_SUBMIT: 0 try, 1 submit, 2 spawn and wait */
    atomic_bool accepted;
    atomic_int runs;
    atomic_int finals;
    atomic_int final_err;
    atomic_int freed;     /* results given to free_result */
    atomic_int collected; /* results taken from the future */
    char token;           /* its address is the job's result */
};

struct fut {
    crew_task_t *h;
    struct job *job;
    bool collected;
};

static struct {
    crew_t *pool;
    bool pool_cbs;     /* on_result and on_error set on the pool */
    bool pool_free;    /* free_result set on the pool */
    bool has_timeout;  /* pool-wide task timeout */
    bool huge_timeout; /* ... too far to ever pass */
    bool bounded;
    bool shut;
    struct job jobs[MAX_JOBS];
    atomic_int njobs;
    struct fut fut[NFUT];
    crew_group_t *grp[NGRP];
    bool grp_cancelled[NGRP];
    atomic_int thread_starts;
    atomic_int thread_stops;
    atomic_int in_task; /* tasks running now, stragglers included */
    atomic_long progress_calls;
    pthread_mutex_t lock_mu; /* for CREW_LOCK_CUSTOM */
    bool trace;              /* CREW_FUZZ_TRACE set: print each call */
} fz = { .lock_mu = PTHREAD_MUTEX_INITIALIZER };

#define TRACE(...)                        \
    do {                                  \
        if (fz.trace) {                   \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr);          \
        }                                 \
    } while (0)

/* --- input ------------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t n, i;
} rd_t;

static unsigned rd8(rd_t *r)
{
    return r->i < r->n ? r->p[r->i++] : 0;
}

static unsigned pick(rd_t *r, unsigned n)
{
    return rd8(r) % n;
}

static bool more(const rd_t *r)
{
    return r->i < r->n;
}

/* --- jobs and callbacks ----------------------------------------------- */

static struct job *new_job(int kind)
{
    int i = atomic_fetch_add(&fz.njobs, 1);

    if (i >= MAX_JOBS) {
        atomic_fetch_sub(&fz.njobs, 1);
        return NULL;
    }
    struct job *j = &fz.jobs[i];
    j->kind = kind;
    return j;
}

static struct job *job_of_result(void *result)
{
    char *p = result;
    CHECK(p >= (char *)fz.jobs && p < (char *)(fz.jobs + MAX_JOBS),
          "result %p is not a token", result);
    struct job *j = &fz.jobs[(p - (char *)fz.jobs) / sizeof(struct job)];
    CHECK(p == &j->token, "result %p is not a token", result);
    return j;
}

static void free_result(void *result)
{
    atomic_fetch_add(&job_of_result(result)->freed, 1);
}

static void child_submit(crew_t *pool, unsigned how);

static void outcome(struct job *j, int err)
{
    int n = atomic_fetch_add(&j->finals, 1);
    CHECK(n == 0, "job %td reported %d times (err %d)", j - fz.jobs, n + 1,
          err);
    atomic_store(&j->final_err, err);
    /* A callback must not wait for its own pool, on whatever thread. */
    if (j->kind == K_DEADLK) {
        int rc = crew_wait(fz.pool);
        CHECK(rc == CREW_EDEADLK, "crew_wait in a callback: %d", rc);
    }
    /* Only a try: a callback may run on the timer thread, which must not
     * block (a blocking submit or a wait could wait for the timer). */
    if (j->cb_submit)
        child_submit(fz.pool, 0);
}

static void on_result(void *arg, void *result, void *user)
{
    struct job *j = arg;
    CHECK(user == &fz || user == j, "on_result: wrong user");
    if (result != NULL)
        CHECK(job_of_result(result) == j, "on_result: another's result");
    outcome(j, 0);
}

static void on_error(void *arg, int err, void *user)
{
    struct job *j = arg;
    CHECK(user == &fz || user == j, "on_error: wrong user");
    CHECK(err == TASK_ERR || err == CREW_ECANCELED || err == CREW_ETIMEDOUT,
          "on_error: err %d", err);
    outcome(j, err);
}

static void on_progress(const crew_progress_t *p, void *user)
{
    (void)user;
    CHECK(p->done + p->failed + p->cancelled <= p->total,
          "progress: %llu + %llu + %llu > %llu total",
          (unsigned long long)p->done, (unsigned long long)p->failed,
          (unsigned long long)p->cancelled, (unsigned long long)p->total);
    atomic_fetch_add(&fz.progress_calls, 1);
}

static void thread_start(crew_t *pool, unsigned id, void *user)
{
    (void)pool;
    (void)id;
    CHECK(user == &fz, "thread hook: wrong user");
    atomic_fetch_add(&fz.thread_starts, 1);
}

static void thread_stop(crew_t *pool, unsigned id, void *user)
{
    (void)pool;
    (void)id;
    (void)user;
    atomic_fetch_add(&fz.thread_stops, 1);
}

static void custom_lock(void *ctx)
{
    pthread_mutex_lock(ctx);
}

static void custom_unlock(void *ctx)
{
    pthread_mutex_unlock(ctx);
}

static const crew_lock_ops_t lock_ops = { custom_lock, custom_unlock,
                                          &fz.lock_mu };
static const crew_lock_ops_t bad_lock_ops = { NULL, custom_unlock,
                                              &fz.lock_mu };

static bool retry_odd(int err, void *user)
{
    (void)user;
    return err == TASK_ERR || err == CREW_ETIMEDOUT;
}

/* --- tasks ------------------------------------------------------------ */

static int task(crew_ctx_t *ctx, void *arg, void **result);

/* A child: a K_OK job submitted from a task or a callback. */
static void child_submit(crew_t *pool, unsigned how)
{
    struct job *c = new_job(K_OK);
    int rc;

    if (c == NULL)
        return;
    c->observed = fz.pool_cbs;
    c->policy = fz.has_timeout;
    c->no_timeout = !fz.has_timeout || fz.huge_timeout;
    if (how == 0) {
        rc = crew_try_submit(pool, task, c);
        CHECK(rc == 0 || rc == CREW_EAGAIN || rc == CREW_ESHUTDOWN,
              "child try_submit: %d", rc);
    } else if (how == 1) {
        rc = crew_submit(pool, task, c);
        CHECK(rc == 0 || rc == CREW_ESHUTDOWN, "child submit: %d", rc);
    } else {
        crew_task_t *h = NULL;
        rc = crew_spawn(pool, task, c, NULL, &h);
        CHECK(rc == 0 || rc == CREW_ESHUTDOWN, "child spawn: %d", rc);
        CHECK((rc == 0) == (h != NULL), "child spawn: future %p", (void *)h);
        if (rc == 0) {
            atomic_store(&c->accepted, true);
            int w = crew_task_wait(h, NULL);
            CHECK(w == 0 || w == CREW_ECANCELED || w == CREW_ETIMEDOUT,
                  "child wait: %d", w);
            crew_task_release(h);
        }
    }
    if (rc == 0)
        atomic_store(&c->accepted, true);
}

static int task(crew_ctx_t *ctx, void *arg, void **result)
{
    struct job *j = arg;
    int rc = 0;

    atomic_fetch_add(&fz.in_task, 1);
    atomic_fetch_add(&j->runs, 1);
    CHECK(crew_ctx_pool(ctx) == fz.pool, "crew_ctx_pool");
    CHECK(crew_ctx_attempt(ctx) >= 1 && crew_ctx_attempt(ctx) <= 1 + j->retries,
          "attempt %u of %u", crew_ctx_attempt(ctx), 1 + j->retries);
    CHECK(*result == NULL, "result not NULL at start");
    switch (j->kind) {
    case K_OK:
        if (j->want_result)
            *result = &j->token;
        break;
    case K_FAIL:
        rc = TASK_ERR;
        break;
    case K_FLAKY:
        rc = crew_ctx_attempt(ctx) == 1 ? TASK_ERR : 0;
        break;
    case K_SUBMIT:
    case K_NESTED:
        child_submit(crew_ctx_pool(ctx),
                     j->kind == K_NESTED ? 2 : j->child_how);
        break;
    case K_DEADLK:
        rc = crew_wait(crew_ctx_pool(ctx));
        CHECK(rc == CREW_EDEADLK, "crew_wait in a task: %d", rc);
        rc = crew_shutdown(crew_ctx_pool(ctx), CREW_SHUTDOWN_DRAIN);
        CHECK(rc == CREW_EDEADLK, "crew_shutdown in a task: %d", rc);
        rc = crew_free(crew_ctx_pool(ctx));
        CHECK(rc == CREW_EDEADLK, "crew_free in a task: %d", rc);
        rc = 0;
        break;
    case K_SLOW: {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t end = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + 200 * US;
        for (;;) {
            if (crew_ctx_cancelled(ctx) || crew_ctx_timed_out(ctx))
                break;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            if ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec >= end)
                break;
            sched_yield();
        }
        break;
    }
    default:
        CHECK(0, "bad kind %d", j->kind);
    }
    atomic_fetch_sub(&fz.in_task, 1);
    return rc;
}

/* --- operations ------------------------------------------------------- */

static int64_t pick_delay(rd_t *r)
{
    static const int64_t v[] = { 0, 0, 0, 1 * US, 300 * US, 2 * MS, -1 };
    return v[pick(r, sizeof(v) / sizeof(v[0]))];
}

/*
 * Building with -DCREW_FUZZ_MASK_KNOWN avoids two known faults, to go on
 * fuzzing past them: timeouts near INT64_MAX become an hour (now + timeout
 * overflows: UB, and the task times out at once) and the 1 us timeout
 * becomes 1 ms (queue_attempt() may touch a freed task when its attempt
 * expires at once).  The replay build never masks them.
 */
#ifdef CREW_FUZZ_MASK_KNOWN
#define HUGE_NS (3600 * 1000 * MS)
#define TINY_NS (1 * MS) /* and 1 us: the queue_attempt use-after-free */
#else
#define HUGE_NS INT64_MAX
#define TINY_NS (1 * US)
#endif

static int64_t pick_task_timeout(rd_t *r)
{
    static const int64_t v[] = { 0,        0,      -1,      TINY_NS,
                                 100 * US, 5 * MS, HUGE_NS, INT64_MIN };
    return v[pick(r, sizeof(v) / sizeof(v[0]))];
}

static int64_t pick_backoff_ns(rd_t *r)
{
    static const int64_t v[] = { 0, 1 * US, 100 * US, 1 * MS, -1 };
    return v[pick(r, sizeof(v) / sizeof(v[0]))];
}

static int64_t pick_cap_ns(rd_t *r)
{
    static const int64_t v[] = { 0, 50 * US, 2 * MS, INT64_MAX, -7 };
    return v[pick(r, sizeof(v) / sizeof(v[0]))];
}

static int pick_priority(rd_t *r)
{
    static const int v[] = { 0, 0, 0, 1, -1, 5, INT_MAX, INT_MIN };
    return v[pick(r, sizeof(v) / sizeof(v[0]))];
}

/* A fresh job of a kind the input chooses. */
static struct job *input_job(rd_t *r)
{
    unsigned b = rd8(r);
    struct job *j = new_job((int)(b % K_NKINDS));

    if (j == NULL)
        return NULL;
    j->want_result = (b & 0x08) != 0;
    j->cb_submit = (b & 0x10) != 0 && (b & 0x20) != 0;
    j->child_how = (b >> 6) % 3;
    j->observed = fz.pool_cbs;
    j->policy = fz.has_timeout;
    j->no_timeout = !fz.has_timeout || fz.huge_timeout;
    return j;
}

static void record_submit(struct job *j, int rc)
{
    if (rc == 0)
        atomic_store(&j->accepted, true);
}

/* Return codes every submit may give a valid call on a running pool. */
static bool submit_rc_ok(int rc)
{
    return rc == 0 || rc == CREW_ENOMEM || rc == CREW_ETHREAD;
}

static void op_submit(rd_t *r, unsigned how)
{
    unsigned nulls = pick(r, 16); /* 0: NULL pool, 1: NULL fn */
    struct job *j = input_job(r);
    static const int64_t tmo[] = {
        0, 1 * US, 1 * MS, -1, INT64_MAX, INT64_MIN
    };
    int64_t timeout = tmo[pick(r, sizeof(tmo) / sizeof(tmo[0]))];
    crew_t *pool = nulls == 0 ? NULL : fz.pool;
    crew_fn fn = nulls == 1 ? NULL : task;
    int rc;

    if (j == NULL)
        return;
    TRACE("submit#%u job %td kind %d pool %p fn %p timeout %lld", how,
          j - fz.jobs, j->kind, (void *)pool, (void *)fn, (long long)timeout);
    if (how == 0)
        rc = crew_submit(pool, fn, j);
    else if (how == 1)
        rc = crew_try_submit(pool, fn, j);
    else
        rc = crew_submit_timeout(pool, fn, j, timeout);
    if (pool == NULL || fn == NULL) {
        CHECK(rc == CREW_EINVAL, "submit with NULL: %d", rc);
    } else if (fz.shut) {
        CHECK(rc == CREW_ESHUTDOWN, "submit after shutdown: %d", rc);
    } else if (how == 1) {
        CHECK(submit_rc_ok(rc) || (fz.bounded && rc == CREW_EAGAIN),
              "try_submit: %d", rc);
    } else if (how == 2) {
        CHECK(submit_rc_ok(rc) || (fz.bounded && rc == CREW_ETIMEDOUT),
              "submit_timeout(%lld): %d", (long long)timeout, rc);
    } else {
        CHECK(submit_rc_ok(rc), "submit: %d", rc);
    }
    TRACE("  -> %d", rc);
    record_submit(j, rc);
}

static void op_spawn(rd_t *r)
{
    struct job *j = input_job(r);
    crew_task_opts_t o = { 0 };
    unsigned flags = rd8(r);
    bool invalid = false;
    int g = -1;

    if (j == NULL)
        return;
    if (flags & 0x01) {
        o.on_result = on_result;
        o.on_error = on_error;
        o.user = j;
        j->observed = true;
    } else if (flags & 0x02) {
        o.on_error = on_error; /* on_result stays the pool's, if any */
        if (!fz.pool_cbs)
            o.on_result = on_result;
        o.user = j;
        j->observed = true;
    }
    if (flags & 0x04)
        o.free_result = free_result;
    if (flags & 0x08) {
        o.delay_ns = pick_delay(r);
        o.timeout_ns = pick_task_timeout(r);
        o.retries = pick(r, 4);
        o.backoff.kind = (int)pick(r, 5) - 1; /* -1 and 3 are invalid */
        o.backoff.base_ns = pick_backoff_ns(r);
        o.backoff.cap_ns = pick_cap_ns(r);
        o.backoff.jitter_pct = pick(r, 8) == 0 ? 101 : pick(r, 101);
        if (flags & 0x10)
            o.retry_if = retry_odd;
        invalid = o.delay_ns < 0 || o.backoff.kind < 0 ||
                  o.backoff.kind > CREW_BACKOFF_EXPONENTIAL ||
                  o.backoff.base_ns < 0 || o.backoff.cap_ns < 0 ||
                  o.backoff.jitter_pct > 100;
        j->retries = o.retries;
        j->policy = true;
        j->no_timeout =
            o.timeout_ns >= HUGE_NS || o.timeout_ns < 0 ||
            (o.timeout_ns == 0 && (!fz.has_timeout || fz.huge_timeout));
    }
    o.priority = pick_priority(r);
    if (flags & 0x20) {
        g = (int)pick(r, NGRP);
        o.group = fz.grp[g];
        if (o.group == NULL)
            g = -1;
    }
    bool want_future = (flags & 0x40) != 0;
    int slot = (int)pick(r, NFUT);
    if (want_future && fz.fut[slot].h != NULL)
        want_future = false; /* the slot is taken: no future this time */
    bool null_opts = (flags & 0x80) != 0 && !(flags & 0x08) && g < 0;
    if (null_opts)
        j->observed = fz.pool_cbs;
    crew_task_t *h = (crew_task_t *)&fz; /* must be overwritten */
    TRACE("spawn job %td kind %d flags %#x delay %lld timeout %lld "
          "retries %u backoff %d/%lld/%lld/%u prio %d group %d future %d "
          "(slot %d) null_opts %d",
          j - fz.jobs, j->kind, flags, (long long)o.delay_ns,
          (long long)o.timeout_ns, o.retries, o.backoff.kind,
          (long long)o.backoff.base_ns, (long long)o.backoff.cap_ns,
          o.backoff.jitter_pct, o.priority, g, want_future, slot, null_opts);
    int rc = crew_spawn(fz.pool, task, j, null_opts ? NULL : &o,
                        want_future ? &h : NULL);
    TRACE("  -> %d", rc);

    if (want_future)
        CHECK((rc == 0) == (h != NULL), "spawn rc %d with future %p", rc,
              (void *)h);
    if (invalid && !null_opts) {
        CHECK(rc == CREW_EINVAL, "spawn with invalid options: %d", rc);
    } else if (fz.shut) {
        CHECK(rc == CREW_ESHUTDOWN, "spawn after shutdown: %d", rc);
    } else if (g >= 0 && fz.grp_cancelled[g]) {
        CHECK(rc == CREW_ECANCELED, "spawn into a cancelled group: %d", rc);
    } else {
        CHECK(submit_rc_ok(rc), "spawn: %d", rc);
    }
    record_submit(j, rc);
    if (rc == 0 && want_future) {
        fz.fut[slot].h = h;
        fz.fut[slot].job = j;
        fz.fut[slot].collected = false;
    }
}

/* The outcome a finished future gives must be the one reported. */
static void check_outcome(struct fut *f, int rc, void *res)
{
    struct job *j = f->job;

    CHECK(rc == 0 || rc == TASK_ERR || rc == CREW_ECANCELED ||
              rc == CREW_ETIMEDOUT,
          "future outcome %d", rc);
    if (j->observed)
        CHECK(atomic_load(&j->finals) == 1 && atomic_load(&j->final_err) == rc,
              "future says %d, callbacks said %d (%d times)", rc,
              atomic_load(&j->final_err), atomic_load(&j->finals));
    int st = crew_task_state(f->h);
    if (rc == 0)
        CHECK(st == CREW_TASK_DONE, "outcome 0, state %d", st);
    else if (rc == CREW_ECANCELED)
        CHECK(st == CREW_TASK_CANCELED, "cancelled, state %d", st);
    else
        CHECK(st == CREW_TASK_FAILED, "outcome %d, state %d", rc, st);
    if (res != NULL) {
        CHECK(job_of_result(res) == j, "future: another's result");
        CHECK(!f->collected, "result collected twice");
        atomic_fetch_add(&j->collected, 1);
        f->collected = true;
    }
}

static void op_future(rd_t *r, unsigned what)
{
    int slot = (int)pick(r, NFUT);
    struct fut *f = &fz.fut[slot];
    bool want_res = (rd8(r) & 1) != 0;
    void *res = NULL;
    int rc;

    if (f->h == NULL) {
        /* No live handle here: the call gets NULL. */
        switch (what) {
        case 0:
            CHECK(crew_task_wait(NULL, &res) == CREW_EINVAL, "wait(NULL)");
            break;
        case 1:
            CHECK(crew_task_wait_timeout(NULL, 1, &res) == CREW_EINVAL,
                  "wait_timeout(NULL)");
            break;
        case 2:
            CHECK(crew_task_poll(NULL, &res) == CREW_EINVAL, "poll(NULL)");
            break;
        case 3:
            CHECK(crew_task_state(NULL) == CREW_EINVAL, "state(NULL)");
            break;
        case 4:
            CHECK(crew_task_cancel(NULL) == CREW_EINVAL, "cancel(NULL)");
            break;
        default:
            crew_task_release(NULL);
        }
        return;
    }
    void **resp = want_res && !f->collected ? &res : NULL;
    TRACE("future op %u slot %d (job %td)", what, slot, f->job - fz.jobs);
    switch (what) {
    case 0:
        rc = crew_task_wait(f->h, resp);
        check_outcome(f, rc, res);
        break;
    case 1: {
        static const int64_t tmo[] = { 0, 1, 50 * US, 2 * MS, -1, INT64_MAX };
        int64_t t = tmo[pick(r, sizeof(tmo) / sizeof(tmo[0]))];
        rc = crew_task_wait_timeout(f->h, t, resp);
        if (t < 0) {
            CHECK(rc == CREW_EINVAL, "wait_timeout(%lld): %d", (long long)t,
                  rc);
        } else if (rc == CREW_ETIMEDOUT &&
                   crew_task_poll(f->h, NULL) != CREW_ETIMEDOUT) {
            /* The wait ran out of time (the task may have finished
             * since): nothing was handed over. */
            CHECK(res == NULL, "timed-out wait gave a result");
        } else {
            check_outcome(f, rc, res);
        }
        break;
    }
    case 2:
        rc = crew_task_poll(f->h, resp);
        if (rc != CREW_EBUSY)
            check_outcome(f, rc, res);
        else
            CHECK(res == NULL, "busy poll gave a result");
        break;
    case 3:
        rc = crew_task_state(f->h);
        CHECK(rc >= CREW_TASK_QUEUED && rc <= CREW_TASK_CANCELED, "state %d",
              rc);
        break;
    case 4:
        rc = crew_task_cancel(f->h);
        CHECK(rc == 0 || rc == CREW_EBUSY, "cancel: %d", rc);
        if (rc == 0) {
            CHECK(crew_task_state(f->h) == CREW_TASK_CANCELED,
                  "cancelled, state %d", crew_task_state(f->h));
            CHECK(crew_task_poll(f->h, NULL) == CREW_ECANCELED,
                  "cancelled, poll %d", crew_task_poll(f->h, NULL));
            if (f->job->observed)
                CHECK(atomic_load(&f->job->finals) == 1 &&
                          atomic_load(&f->job->final_err) == CREW_ECANCELED,
                      "cancel: callback not fired on this thread");
        }
        break;
    default:
        crew_task_release(f->h);
        f->h = NULL;
    }
}

static void op_group(rd_t *r, unsigned what)
{
    int g = (int)pick(r, NGRP);
    crew_group_t *grp = fz.grp[g];
    int rc;

    TRACE("group op %u slot %d (%p)", what, g, (void *)grp);

    switch (what) {
    case 0: { /* create */
        crew_group_opts_t o = { 0 };
        unsigned b = rd8(r);
        bool invalid = false;
        if (b & 1) {
            o.on_progress = on_progress;
            o.progress_interval_ns = (b & 2) ? -1 : (int64_t)(b >> 2) * US;
            invalid = o.progress_interval_ns < 0;
        }
        if (grp != NULL)
            return; /* keep the live one */
        rc = crew_group_create((b & 0x80) && (b & 0x40) ? NULL : fz.pool,
                               (b & 0x20) ? NULL : &o, &fz.grp[g]);
        if ((b & 0x80) && (b & 0x40))
            CHECK(rc == CREW_EINVAL, "group_create(NULL pool): %d", rc);
        else if (invalid && !(b & 0x20))
            CHECK(rc == CREW_EINVAL, "group_create(bad interval): %d", rc);
        else
            CHECK(rc == 0 || rc == CREW_ENOMEM, "group_create: %d", rc);
        CHECK((rc == 0) == (fz.grp[g] != NULL), "group_create: handle");
        fz.grp_cancelled[g] = false;
        break;
    }
    case 1: /* wait */
        rc = crew_group_wait(grp);
        if (grp == NULL) {
            CHECK(rc == CREW_EINVAL, "group_wait(NULL): %d", rc);
        } else {
            crew_progress_t p;
            crew_group_progress(grp, &p);
            CHECK(p.done + p.failed + p.cancelled == p.total,
                  "after group_wait: %llu + %llu + %llu != %llu",
                  (unsigned long long)p.done, (unsigned long long)p.failed,
                  (unsigned long long)p.cancelled, (unsigned long long)p.total);
            CHECK(rc == crew_group_error(grp), "group_wait %d, error %d", rc,
                  crew_group_error(grp));
        }
        break;
    case 2: { /* wait with a timeout */
        static const int64_t tmo[] = { 0, 1 * US, 1 * MS, -1, INT64_MAX };
        int64_t t = tmo[pick(r, sizeof(tmo) / sizeof(tmo[0]))];
        rc = crew_group_wait_timeout(grp, t);
        if (grp == NULL)
            CHECK(rc == CREW_EINVAL, "group_wait_timeout(NULL): %d", rc);
        else
            CHECK(rc == 0 || rc == CREW_ETIMEDOUT || rc == CREW_EINVAL ||
                      rc == TASK_ERR || rc == CREW_ECANCELED,
                  "group_wait_timeout: %d", rc);
        break;
    }
    case 3: /* cancel */
        rc = crew_group_cancel(grp);
        CHECK(rc == (grp == NULL ? CREW_EINVAL : 0), "group_cancel: %d", rc);
        if (grp != NULL)
            fz.grp_cancelled[g] = true;
        break;
    case 4: { /* error and progress */
        crew_progress_t p;
        rc = crew_group_error(grp);
        if (grp == NULL) {
            CHECK(rc == CREW_EINVAL, "group_error(NULL): %d", rc);
            crew_group_progress(NULL, &p);
            break;
        }
        CHECK(rc == 0 || rc == TASK_ERR || rc == CREW_ECANCELED ||
                  rc == CREW_ETIMEDOUT,
              "group_error: %d", rc);
        crew_group_progress(grp, NULL);
        crew_group_progress(grp, &p);
        on_progress(&p, NULL);
        break;
    }
    default: /* free */
        crew_group_free(grp);
        fz.grp[g] = NULL;
    }
}

static void check_quiet_stats(void)
{
    crew_stats_t s;
    int accepted = 0, n = atomic_load(&fz.njobs);

    /* Not quiet while an attempt that timed out still runs: it may submit
     * more. */
    if (atomic_load(&fz.in_task) > 0)
        return;
    crew_stats(fz.pool, &s);
    if (s.overtime_workers > 0 || atomic_load(&fz.in_task) > 0)
        return;
    for (int i = 0; i < n; i++)
        accepted += atomic_load(&fz.jobs[i].accepted);
    CHECK(s.submitted == s.completed + s.failed + s.cancelled,
          "quiet: submitted %llu != %llu + %llu + %llu",
          (unsigned long long)s.submitted, (unsigned long long)s.completed,
          (unsigned long long)s.failed, (unsigned long long)s.cancelled);
    CHECK(s.submitted == (uint64_t)accepted,
          "quiet: submitted %llu, accepted %d", (unsigned long long)s.submitted,
          accepted);
    /* A stale proxy (an attempt that timed out while queued) may count
     * as queued until a worker pops it, which it does at once. */
    for (int i = 0; i < 20000 && s.queued != 0; i++) {
        struct timespec ts = { 0, 100000 };
        nanosleep(&ts, NULL);
        crew_stats(fz.pool, &s);
    }
    CHECK(s.queued == 0, "quiet: %llu queued for 2 s",
          (unsigned long long)s.queued);
}

static void op_pool(rd_t *r, unsigned what)
{
    int rc;

    TRACE("pool op %u", what);

    switch (what) {
    case 0: { /* resize */
        static const unsigned v[] = { 0, 1, 2, 3, 4, 64, CREW_MAX_WORKERS + 1 };
        unsigned mn = v[pick(r, 5)];
        unsigned mx = v[pick(r, sizeof(v) / sizeof(v[0]))];
        bool invalid = mx == 0 || mn > mx || mx > CREW_MAX_WORKERS;
        rc = crew_resize(fz.pool, mn, mx);
        if (invalid)
            CHECK(rc == CREW_EINVAL, "resize(%u, %u): %d", mn, mx, rc);
        else if (fz.shut)
            CHECK(rc == CREW_ESHUTDOWN, "resize after shutdown: %d", rc);
        else
            CHECK(rc == 0 || rc == CREW_ETHREAD, "resize(%u, %u): %d", mn, mx,
                  rc);
        if (!invalid && !fz.shut && rc == 0) {
            crew_stats_t s;
            crew_stats(fz.pool, &s);
            CHECK(s.min_workers == mn && s.max_workers == mx,
                  "after resize(%u, %u): bounds %u, %u", mn, mx, s.min_workers,
                  s.max_workers);
        }
        break;
    }
    case 1: { /* stats */
        crew_stats_t s;
        crew_stats(fz.pool, &s);
        crew_stats(fz.pool, NULL);
        crew_stats(NULL, &s);
        CHECK(s.workers <= s.max_workers, "%u workers, max %u", s.workers,
              s.max_workers);
        CHECK(s.completed + s.failed + s.cancelled <= s.submitted,
              "finished > submitted");
        CHECK(s.peak_workers >= s.workers, "peak below live");
        break;
    }
    case 2: /* wait */
        rc = crew_wait(fz.pool);
        CHECK(rc == 0, "crew_wait: %d", rc);
        check_quiet_stats();
        break;
    case 3: {                      /* shutdown */
        unsigned how = pick(r, 5); /* 2..4: bad values */
        int h = how < 2 ? (int)how : (how == 2 ? -1 : (int)how + 40);
        rc = crew_shutdown(fz.pool, h);
        if (how >= 2) {
            CHECK(rc == CREW_EINVAL, "shutdown(%d): %d", h, rc);
        } else {
            CHECK(rc == 0, "shutdown(%d): %d", h, rc);
            fz.shut = true;
            check_quiet_stats();
            crew_stats_t s;
            crew_stats(fz.pool, &s);
            CHECK(s.workers == 0, "%u workers after shutdown", s.workers);
        }
        break;
    }
    default: /* calls with NULL or absurd arguments */
        CHECK(crew_wait(NULL) == CREW_EINVAL, "crew_wait(NULL)");
        CHECK(crew_shutdown(NULL, 0) == CREW_EINVAL, "shutdown(NULL)");
        CHECK(crew_resize(NULL, 1, 1) == CREW_EINVAL, "resize(NULL)");
        CHECK(crew_create(NULL, NULL) == CREW_EINVAL, "create(NULL)");
        CHECK(crew_free(NULL) == 0, "free(NULL)");
        CHECK(crew_group_create(fz.pool, NULL, NULL) == CREW_EINVAL,
              "group_create(out NULL)");
        CHECK(crew_group_cancel(NULL) == CREW_EINVAL, "group_cancel(NULL)");
        crew_group_free(NULL);
        CHECK(crew_ctx_pool(NULL) == NULL, "ctx_pool(NULL)");
        (void)crew_ctx_worker_id(NULL);
        (void)crew_ctx_cancelled(NULL);
        (void)crew_ctx_attempt(NULL);
        (void)crew_ctx_deadline(NULL);
        (void)crew_ctx_timed_out(NULL);
        int e = (int)(rd8(r) | rd8(r) << 8) - 32768;
        CHECK(crew_strerror(e) != NULL, "strerror(%d)", e);
        CHECK(crew_strerror(INT_MIN) != NULL, "strerror(INT_MIN)");
    }
}

/* --- one input -------------------------------------------------------- */

static bool create_pool(rd_t *r)
{
    static const unsigned maxv[] = { 0, 1, 2, 3, 4, CREW_MAX_WORKERS + 1 };
    static const size_t capv[] = { 0, 0, 1, 2, 8, CREW_MAX_CAPACITY + 1 };
    static const int64_t idlev[] = { 0, 1 * MS, -1, 1 };
    static const size_t stackv[] = { 0, 0, 256 * 1024, 1, (size_t)3 << 30 };
    static const int64_t tmov[] = { 0, 0, 0, HUGE_NS - 1, 3 * MS, -1 };
    static const int64_t agev[] = { 0, INT64_MAX, 50 * US, -5 };
    crew_opts_t o = { 0 };
    unsigned b = rd8(r), b2 = rd8(r);
    bool invalid;

    o.min_workers = b % 4;
    o.max_workers = maxv[(b >> 2) % 6];
    o.queue_capacity = capv[rd8(r) % 6];
    o.idle_timeout_ns = idlev[(b >> 5) % 4];
    o.stack_size = stackv[b2 % 5];
    o.prespawn = (b2 & 0x08) != 0;
    o.task_timeout_ns = tmov[rd8(r) % 6];
    o.max_overtime = (b2 >> 4) % 3 == 2 ? CREW_MAX_WORKERS + 1 : (b2 >> 4) % 3;
    o.user = &fz;
    o.on_thread_start = thread_start;
    o.on_thread_stop = thread_stop;
    unsigned b3 = rd8(r);
    fz.pool_cbs = (b3 & 3) != 0;
    if (fz.pool_cbs) {
        o.on_result = on_result;
        o.on_error = on_error;
    }
    fz.pool_free = (b3 & 4) != 0;
    if (fz.pool_free)
        o.free_result = free_result;
    if (b3 & 8) {
        o.on_progress = on_progress;
        o.progress_interval_ns = (b3 & 0x10) ? -1 : 200 * US;
    }
    o.priority_aging_ns = agev[(b3 >> 5) % 4];
    unsigned lk = rd8(r) % 7; /* 4: custom without ops, 5: bad ops, 6: bad */
    o.lock = lk < 4 ? (int)lk : (lk == 6 ? 9 : CREW_LOCK_CUSTOM);
    if (lk == 3)
        o.lock_ops = &lock_ops;
    else if (lk == 5)
        o.lock_ops = &bad_lock_ops;

    unsigned mx = o.max_workers == 0 ? 0 : o.max_workers;
    invalid = (mx != 0 && o.min_workers > mx) || mx > CREW_MAX_WORKERS ||
              o.queue_capacity > CREW_MAX_CAPACITY ||
              (o.stack_size != 0 && (o.stack_size < 16 * 1024 ||
                                     o.stack_size > ((size_t)1 << 30))) ||
              o.task_timeout_ns < 0 || o.priority_aging_ns < 0 ||
              o.progress_interval_ns < 0 || o.max_overtime > CREW_MAX_WORKERS ||
              o.lock > CREW_LOCK_CUSTOM ||
              (o.lock == CREW_LOCK_CUSTOM &&
               (o.lock_ops == NULL || o.lock_ops->lock == NULL));
    crew_t *pool = (crew_t *)&fz;
    int rc = crew_create(&pool, &o);
    TRACE("create min %u max %u cap %zu idle %lld stack %zu prespawn %d "
          "timeout %lld overtime %u cbs %d free %d progress %lld aging %lld "
          "lock %d -> %d",
          o.min_workers, o.max_workers, o.queue_capacity,
          (long long)o.idle_timeout_ns, o.stack_size, o.prespawn,
          (long long)o.task_timeout_ns, o.max_overtime, fz.pool_cbs,
          fz.pool_free, (long long)o.progress_interval_ns,
          (long long)o.priority_aging_ns, o.lock, rc);
    if (invalid) {
        CHECK(rc == CREW_EINVAL, "create with invalid options: %d", rc);
    } else {
        CHECK(rc == 0 || rc == CREW_ENOMEM || rc == CREW_ETHREAD, "create: %d",
              rc);
    }
    CHECK((rc == 0) == (pool != NULL), "create rc %d, pool %p", rc,
          (void *)pool);
    fz.pool = pool;
    fz.has_timeout = o.task_timeout_ns > 0;
    fz.huge_timeout = o.task_timeout_ns >= HUGE_NS - 1;
    fz.bounded = o.queue_capacity != 0;
    return rc == 0;
}

static void reset(void)
{
    memset(fz.jobs, 0, sizeof(fz.jobs));
    atomic_store(&fz.njobs, 0);
    memset(fz.fut, 0, sizeof(fz.fut));
    memset(fz.grp, 0, sizeof(fz.grp));
    memset(fz.grp_cancelled, 0, sizeof(fz.grp_cancelled));
    fz.pool = NULL;
    fz.shut = false;
    atomic_store(&fz.thread_starts, 0);
    atomic_store(&fz.thread_stops, 0);
    atomic_store(&fz.in_task, 0);
}

/* Wait (bounded) for tasks left running by a timeout to return. */
static void wait_stragglers(void)
{
    struct timespec ts = { 0, 100000 };

    for (int i = 0; i < 200000 && (atomic_load(&fz.in_task) > 0 ||
                                   atomic_load(&fz.thread_stops) <
                                       atomic_load(&fz.thread_starts));
         i++)
        nanosleep(&ts, NULL);
    CHECK(atomic_load(&fz.in_task) == 0, "a task still running 20 s on");
    CHECK(atomic_load(&fz.thread_stops) == atomic_load(&fz.thread_starts),
          "%d worker threads started, %d stopped",
          atomic_load(&fz.thread_starts), atomic_load(&fz.thread_stops));
    nanosleep(&ts, NULL); /* let a detached straggler drop the pool */
}

static void check_jobs(void)
{
    int n = atomic_load(&fz.njobs);

    for (int i = 0; i < n; i++) {
        struct job *j = &fz.jobs[i];
        int runs = atomic_load(&j->runs), finals = atomic_load(&j->finals);
        int err = atomic_load(&j->final_err);
        if (!atomic_load(&j->accepted)) {
            CHECK(runs == 0 && finals == 0,
                  "job %d: rejected, yet ran %d times, reported %d", i, runs,
                  finals);
            continue;
        }
        CHECK(runs <= 1 + (int)j->retries, "job %d: ran %d times, retries %u",
              i, runs, j->retries);
        CHECK(atomic_load(&j->freed) + atomic_load(&j->collected) <=
                  (j->policy ? runs : 1),
              "job %d: result given %d + %d times", i, atomic_load(&j->freed),
              atomic_load(&j->collected));
        if (!j->observed) {
            CHECK(finals == 0, "job %d: unobserved but reported", i);
            continue;
        }
        CHECK(finals == 1, "job %d: reported %d times", i, finals);
        CHECK(!j->no_timeout || err != CREW_ETIMEDOUT,
              "job %d: timed out, with a timeout of ~INT64_MAX ns", i);
        if (err == CREW_ECANCELED && j->retries == 0)
            CHECK(runs == 0, "job %d: cancelled, yet ran", i);
        if (!j->policy && err != CREW_ECANCELED)
            CHECK(runs == 1, "job %d: outcome %d, ran %d times", i, err, runs);
    }
}

static void run_input(const uint8_t *data, size_t size)
{
    rd_t r = { data, size, 0 };

    reset();
    if (!create_pool(&r))
        return;
    for (int ops = 0; ops < MAX_OPS && more(&r); ops++) {
        unsigned op = rd8(&r) % 24;
        if (op < 3)
            op_submit(&r, op);
        else if (op < 7)
            op_spawn(&r);
        else if (op < 13)
            op_future(&r, op - 7);
        else if (op < 19)
            op_group(&r, op - 13);
        else
            op_pool(&r, op - 19);
    }
    for (int g = 0; g < NGRP; g++) {
        if (fz.grp[g] != NULL && (rd8(&r) & 1))
            crew_group_free(fz.grp[g]); /* before the pool, or after */
        else
            continue;
        fz.grp[g] = NULL;
    }
    int rc = crew_free(fz.pool);
    CHECK(rc == 0, "crew_free: %d", rc);
    wait_stragglers();
    /* Futures outlive the pool: each is finished now. */
    for (int i = 0; i < NFUT; i++) {
        struct fut *f = &fz.fut[i];
        void *res = NULL;
        if (f->h == NULL)
            continue;
        rc = crew_task_poll(f->h, f->collected ? NULL : &res);
        CHECK(rc != CREW_EBUSY, "future unfinished after crew_free");
        check_outcome(f, rc, res);
        crew_task_release(f->h);
        f->h = NULL;
    }
    for (int g = 0; g < NGRP; g++) {
        if (fz.grp[g] != NULL) {
            crew_progress_t p;
            crew_group_progress(fz.grp[g], &p);
            CHECK(p.done + p.failed + p.cancelled == p.total,
                  "group after free: %llu + %llu + %llu != %llu",
                  (unsigned long long)p.done, (unsigned long long)p.failed,
                  (unsigned long long)p.cancelled, (unsigned long long)p.total);
            crew_group_free(fz.grp[g]);
        }
    }
    check_jobs();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_input(data, size);
    return 0;
}

#ifndef CREW_LIBFUZZER
/* --- replay: run every input named on the command line --------------- */

static int replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (fp == NULL) {
        perror(path);
        return 1;
    }
    if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
        fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return 1;
    }
    buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(buf);
        fclose(fp);
        return 1;
    }
    fclose(fp);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays the files of a directory in name order; skips README files. */
static int replay_dir(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int bad = 0;

    if (d == NULL) {
        perror(dir);
        return 1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, "README", 6) == 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof(*names));
            if (nn == NULL)
                break;
            names = nn;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (names[n] == NULL)
            break;
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        bad |= replay_file(names[i]);
        free(names[i]);
        (*count)++;
    }
    free(names);
    return bad;
}

int main(int argc, char **argv)
{
    int bad = 0, count = 0;

    fz.trace = getenv("CREW_FUZZ_TRACE") != NULL;

    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            bad = 1;
        } else if (S_ISDIR(st.st_mode)) {
            bad |= replay_dir(argv[i], &count);
        } else {
            bad |= replay_file(argv[i]);
            count++;
        }
    }
    printf("fuzz_api: replayed %d inputs%s\n", count,
           bad ? ", some unread" : "");
    return bad ? EXIT_FAILURE : EXIT_SUCCESS;
}
#endif
