/*
 * helpers.h - small synchronisation helpers shared by the unit tests.
 *
 * Everything here is static inline so that each test executable gets its
 * own copy and no prototype is missing.  Tests never sleep to let threads
 * settle: they wait on a gate, a counter or a bounded loop with a deadline.
 */
#ifndef CREW_TEST_HELPERS_H
#define CREW_TEST_HELPERS_H

#include <check.h>
#include <crew.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define T_MS ((int64_t)1000000)
#define T_SEC ((int64_t)1000000000)

/* Generous deadline for "this must happen": only a hang reaches it. */
#define T_LONG (20 * T_SEC)

/* Sanitizer builds run fewer repetitions of the costly loops. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define T_SANITIZED 1
#endif
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#ifndef T_SANITIZED
#define T_SANITIZED 1
#endif
#endif
#endif

/* A pool in fiber mode: `fibers` in flight on `threads` OS threads. */
static inline crew_t *t_fiber_pool(unsigned threads, unsigned fibers)
{
    crew_opts_t o = { .fibers = true,
                      .threads = threads,
                      .max_workers = fibers };
    crew_t *pool = NULL;

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    return pool;
}

static inline int64_t t_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * T_SEC + ts.tv_nsec;
}

static inline void t_sleep(int64_t ns)
{
    struct timespec ts = { (time_t)(ns / T_SEC), (long)(ns % T_SEC) };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static inline void t_abstime(struct timespec *ts, int64_t ns_from_now)
{
    clock_gettime(CLOCK_REALTIME, ts);
    int64_t nsec = ts->tv_nsec + ns_from_now % T_SEC;
    ts->tv_sec += (time_t)(ns_from_now / T_SEC + nsec / T_SEC);
    ts->tv_nsec = (long)(nsec % T_SEC);
}

/*
 * A counter that threads can wait on: t_count_wait() returns true once the
 * value reaches `target`, false if `timeout_ns` passed first.
 */
typedef struct t_count {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long value;
} t_count_t;

static inline void t_count_init(t_count_t *c)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->value = 0;
}

static inline void t_count_destroy(t_count_t *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static inline void t_count_add(t_count_t *c, long n)
{
    pthread_mutex_lock(&c->mu);
    c->value += n;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static inline long t_count_get(t_count_t *c)
{
    pthread_mutex_lock(&c->mu);
    long v = c->value;
    pthread_mutex_unlock(&c->mu);
    return v;
}

static inline bool t_count_wait(t_count_t *c, long target, int64_t timeout_ns)
{
    struct timespec ts;
    t_abstime(&ts, timeout_ns);
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    while (c->value < target && rc == 0)
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    bool ok = c->value >= target;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/* A gate: tasks block in t_gate_pass() until the test opens it. */
typedef t_count_t t_gate_t;

static inline void t_gate_init(t_gate_t *g)
{
    t_count_init(g);
}
static inline void t_gate_destroy(t_gate_t *g)
{
    t_count_destroy(g);
}
static inline void t_gate_open(t_gate_t *g)
{
    t_count_add(g, 1);
}

/* Returns false only if the gate stayed shut for T_LONG (a hung test). */
static inline bool t_gate_pass(t_gate_t *g)
{
    return t_count_wait(g, 1, T_LONG);
}

/*
 * A task that announces it has started (adds 1 to `started`), then waits
 * for `gate`.  Returns 0, or 1 if the gate never opened.
 */
typedef struct t_blocker {
    t_count_t *started;
    t_gate_t *gate;
} t_blocker_t;

static inline int t_blocker_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    t_blocker_t *b = arg;
    if (b->started != NULL)
        t_count_add(b->started, 1);
    return t_gate_pass(b->gate) ? 0 : 1;
}

/* A task that adds one to an atomic counter (arg: atomic_long *). */
static inline int t_inc_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    atomic_fetch_add_explicit((atomic_long *)arg, 1, memory_order_relaxed);
    return 0;
}

/* A task that does nothing. */
static inline int t_nop_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    return 0;
}

/*
 * Repeatedly evaluates `cond` (an expression) until it holds or `ns`
 * passes, and stores its final truth value in the bool `ok`.  For
 * conditions that only a library snapshot can show (crew_stats()).
 */
#define T_EVENTUALLY(ok, cond, ns)                   \
    do {                                             \
        int64_t t_end_ = t_now() + (ns);             \
        while (!((ok) = (cond)) && t_now() < t_end_) \
            t_sleep(T_MS / 2);                       \
    } while (0)

/*
 * What crew_stats() shows as min_workers for a pool created (or resized)
 * with min_workers `n`: n, or 0 in a fiber run (harness.h), since fiber
 * mode starts all its threads at creation and keeps them, and has no
 * minimum of fibers.
 */
static inline unsigned t_min_shown(unsigned n)
{
    return crew_test_fibers() ? 0 : n;
}

/*
 * Does a snapshot show more at once than its max_workers allows: more live
 * workers, or more tasks running?  In a fiber run (harness.h) only
 * `workers` (tasks holding a place in the budget) is bounded: crew.h says
 * that in fiber mode `running` also counts tasks waiting on a future, a
 * group or an event, which max_workers does not bound.
 */
static inline bool t_above_max(const crew_stats_t *s)
{
    return s->workers > s->max_workers ||
           (!crew_test_fibers() && s->running > s->max_workers);
}

static inline crew_stats_t t_stats(crew_t *pool)
{
    crew_stats_t s = { 0 };
    crew_stats(pool, &s);
    return s;
}

/* Small deterministic PRNG (xorshift64*), for fixed-seed randomness. */
static inline uint64_t t_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(2685821657736338717);
}

#endif /* CREW_TEST_HELPERS_H */
