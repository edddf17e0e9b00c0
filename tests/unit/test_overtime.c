/*
 * test_overtime.c - fiber mode past a deadline (issue 5).  A task on a
 * fiber whose attempt times out gives its place in the budget back at
 * once; if it keeps its thread (a loop that never parks), the thread is
 * taken out of the count and a spare thread runs the other work, so a
 * stuck fiber does not stop a stream of quick tasks even on one thread.
 * The stuck thread's own parked fibers wait for it (fibers never move),
 * and shutdown and crew_free() leave a thread that is stuck, or holds
 * only fibers of timed-out tasks, behind instead of waiting for it.
 *
 * Every pool here asks for fibers itself, so the fiber run of these tests
 * (harness.h) is the same as the plain one.  Nothing here measures speed:
 * waits for what must happen are bounded by generous watchdogs, and what
 * must not happen yet is checked while the stuck task is still held.
 */
#include "harness.h"
#include "helpers.h"

#include <sched.h>

/* Watchdog for anything that must happen: only a hang reaches it. */
#define T_WATCH (10 * T_SEC)
/* Timeout of the attempts that get stuck: long enough that sanitizer
 * builds under load start them before it passes. */
#define T_RUN (200 * T_MS)

static atomic_int freed_late;
static char late_token;

static void free_late(void *result)
{
    if (result == &late_token)
        atomic_fetch_add(&freed_late, 1);
}

static atomic_int threads_started, threads_stopped;

static void count_start(crew_t *pool, unsigned id, void *user)
{
    (void)pool;
    (void)id;
    (void)user;
    atomic_fetch_add(&threads_started, 1);
}

static void count_stop(crew_t *pool, unsigned id, void *user)
{
    (void)pool;
    (void)id;
    (void)user;
    atomic_fetch_add(&threads_stopped, 1);
}

/* A pool of `threads` threads and `budget` fibers in flight. */
static crew_t *fiber_pool(unsigned threads, unsigned budget)
{
    crew_opts_t o = { .fibers = true,
                      .threads = threads,
                      .max_workers = budget,
                      .free_result = free_late,
                      .on_thread_start = count_start,
                      .on_thread_stop = count_stop };
    crew_t *pool = NULL;

    atomic_store(&freed_late, 0);
    atomic_store(&threads_started, 0);
    atomic_store(&threads_stopped, 0);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    return pool;
}

/* Wait for a future with a watchdog: T_HUNG if it never finished. */
#define T_HUNG (-999999)

static int wait_task(crew_task_t *t, int64_t ns)
{
    int rc = crew_task_wait_timeout(t, ns, NULL);

    if (rc == CREW_ETIMEDOUT && crew_task_poll(t, NULL) == CREW_EBUSY)
        return T_HUNG;
    return rc;
}

/* A task that keeps its thread: spins (never parks, never crew_yield)
 * until the test releases it, noting whether it saw its deadline pass,
 * then returns a result (late, so it goes to free_result). */
typedef struct spinner {
    atomic_bool release;
    atomic_bool saw_timeout;
    t_count_t started, ended;
} spinner_t;

static int spin_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    spinner_t *sp = arg;
    int64_t end = t_now() + T_LONG;

    t_count_add(&sp->started, 1);
    while (!atomic_load(&sp->release) && t_now() < end) {
        if (crew_ctx_timed_out(ctx))
            atomic_store(&sp->saw_timeout, true);
        sched_yield(); /* the OS thread's, not crew's */
    }
    /* Released after its deadline passed: it must see that now, even if
     * its thread got no turn in between (a loaded machine). */
    if (crew_ctx_timed_out(ctx))
        atomic_store(&sp->saw_timeout, true);
    *result = &late_token;
    t_count_add(&sp->ended, 1);
    return 0;
}

static void spinner_init(spinner_t *sp)
{
    atomic_init(&sp->release, false);
    atomic_init(&sp->saw_timeout, false);
    t_count_init(&sp->started);
    t_count_init(&sp->ended);
}

static void spinner_destroy(spinner_t *sp)
{
    t_count_destroy(&sp->started);
    t_count_destroy(&sp->ended);
}

/* What tasks touch lives here, not on a test's stack: a failed check
 * leaves the test function while they may still run. */
static spinner_t spin1, spin2;
static atomic_long quick;

static crew_task_t *spawn_spinner(crew_t *pool, spinner_t *sp)
{
    crew_task_opts_t o = { .timeout_ns = T_RUN };
    crew_task_t *t = NULL;

    ck_assert_int_eq(crew_spawn(pool, spin_fn, sp, &o, &t), 0);
    ck_assert_msg(t_count_wait(&sp->started, 1, T_WATCH),
                  "the spinner never started");
    return t;
}

/*
 * The case of the issue: one thread, a fiber stuck in a loop past its
 * deadline, and a stream of quick tasks, queued before the deadline and
 * submitted after it.  All of them complete while the loop still runs; the
 * statistics show the stuck thread as overtime and the spare as the one
 * live thread; once released, the stuck thread leaves (the spare keeps its
 * place) and the pool is back to one thread.
 */
START_TEST(overtime__stuck_fiber_spares_quick_tasks)
{
    crew_t *pool = fiber_pool(1, 2);
    crew_stats_t st;
    bool ok;

    atomic_store(&quick, 0);
    spinner_init(&spin1);
    crew_task_t *t = spawn_spinner(pool, &spin1);
    /* Queued behind the loop, on the only thread. */
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(crew_submit(pool, t_inc_fn, &quick), 0);
    ck_assert_int_eq(wait_task(t, T_WATCH), CREW_ETIMEDOUT);
    T_EVENTUALLY(ok, atomic_load(&quick) == 50, T_WATCH);
    ck_assert_msg(ok,
                  "%ld of 50 queued quick tasks ran past the stuck "
                  "fiber",
                  atomic_load(&quick));
    /* Submitted after the deadline: a stream, each waited for. */
    for (int i = 0; i < 50; i++) {
        crew_task_t *q = NULL;

        ck_assert_int_eq(crew_spawn(pool, t_inc_fn, &quick, NULL, &q), 0);
        ck_assert_int_eq(wait_task(q, T_WATCH), 0);
        crew_task_release(q);
    }
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&quick), 100);
    ck_assert_msg(t_count_get(&spin1.ended) == 0,
                  "the spinner returned before it was released");
    /* The stuck thread is out of the count, the spare in; the stuck
     * fiber holds no place in the budget (the others gave theirs back
     * just after their report). */
    T_EVENTUALLY(ok, t_stats(pool).workers == 0, T_WATCH);
    st = t_stats(pool);
    ck_assert_msg(ok, "%u budget places held", st.workers);
    ck_assert_uint_eq(st.overtime_workers, 1);
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(st.timed_out, 1);
    ck_assert_int_eq(atomic_load(&threads_started), 2);

    atomic_store(&spin1.release, true);
    ck_assert(t_count_wait(&spin1.ended, 1, T_WATCH));
    ck_assert(atomic_load(&spin1.saw_timeout));
    T_EVENTUALLY(ok, atomic_load(&freed_late) == 1, T_WATCH);
    ck_assert_msg(ok, "the late result never reached free_result");
    /* Back to one thread: the one that was stuck left. */
    T_EVENTUALLY(ok,
                 t_stats(pool).overtime_workers == 0 &&
                     atomic_load(&threads_stopped) == 1,
                 T_WATCH);
    st = t_stats(pool);
    ck_assert_msg(ok, "overtime %u, threads stopped %d", st.overtime_workers,
                  atomic_load(&threads_stopped));
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(st.submitted, st.completed + st.failed + st.cancelled);
    ck_assert_uint_eq(st.failed, 1);

    /* And the pool goes on as before. */
    ck_assert_int_eq(crew_submit(pool, t_inc_fn, &quick), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&quick), 101);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(atomic_load(&threads_started),
                     atomic_load(&threads_stopped));
    ck_assert_int_eq(atomic_load(&freed_late), 1);
    spinner_destroy(&spin1);
}
END_TEST

/* crew_blocking() on a gate: the fiber parks, its thread goes on. */
static void *gate_call(void *arg)
{
    (void)t_gate_pass(arg);
    return NULL;
}

typedef struct blocked {
    t_gate_t gate;
    t_count_t started, ended;
} blocked_t;

static int blocked_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    blocked_t *b = arg;

    (void)ctx;
    t_count_add(&b->started, 1);
    (void)crew_blocking(gate_call, &b->gate);
    *result = &late_token;
    t_count_add(&b->ended, 1);
    return 0;
}

static void blocked_init(blocked_t *b)
{
    t_gate_init(&b->gate);
    t_count_init(&b->started);
    t_count_init(&b->ended);
}

static void blocked_destroy(blocked_t *b)
{
    t_gate_destroy(&b->gate);
    t_count_destroy(&b->started);
    t_count_destroy(&b->ended);
}

static blocked_t blk;

static crew_task_t *spawn_blocked(crew_t *pool, blocked_t *b)
{
    crew_task_opts_t o = { .timeout_ns = T_RUN };
    crew_task_t *t = NULL;

    ck_assert_int_eq(crew_spawn(pool, blocked_fn, b, &o, &t), 0);
    ck_assert_msg(t_count_wait(&b->started, 1, T_WATCH),
                  "the blocked task never started");
    return t;
}

/*
 * A fiber parked past its deadline (in a blocking call that does not
 * return) keeps no thread, but held a place in a budget of one: at the
 * deadline it gives it back, so the next task runs while the call still
 * blocks, and no thread counts as stuck.
 */
START_TEST(overtime__parked_fiber_gives_its_place_back)
{
    crew_t *pool = fiber_pool(2, 1);
    blocked_t *b = &blk;
    crew_task_t *q = NULL;
    bool ok;

    atomic_store(&quick, 0);
    blocked_init(b);
    crew_task_t *t = spawn_blocked(pool, b);
    ck_assert_int_eq(crew_spawn(pool, t_inc_fn, &quick, NULL, &q), 0);
    ck_assert_int_eq(wait_task(t, T_WATCH), CREW_ETIMEDOUT);
    ck_assert_msg(wait_task(q, T_WATCH) == 0,
                  "the next task waited for the timed-out one's place");
    ck_assert_int_eq(atomic_load(&quick), 1);
    ck_assert_msg(t_count_get(&b->ended) == 0,
                  "the blocked task returned before the gate opened");
    ck_assert_uint_eq(t_stats(pool).overtime_workers, 0);
    ck_assert_uint_eq(t_stats(pool).threads, 2);

    t_gate_open(&b->gate);
    ck_assert(t_count_wait(&b->ended, 1, T_WATCH));
    /* Its late result goes to free_result just after it returns. */
    T_EVENTUALLY(ok, atomic_load(&freed_late) == 1, T_WATCH);
    ck_assert_msg(ok, "the late result never reached free_result");
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_task_release(t);
    crew_task_release(q);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(atomic_load(&freed_late), 1);
    blocked_destroy(b);
}
END_TEST

/*
 * Shutdown (DRAIN) with a fiber parked past its deadline in a call that
 * does not return: the task was reported, so nothing waits for it; its
 * thread is left behind holding it, and crew_free() returns too.  When
 * the call returns after all, the late result still reaches free_result,
 * once, and the thread winds down.  (Were the thread waited for, the
 * test would hang until ctest's timeout.)
 */
START_TEST(overtime__shutdown_leaves_parked_overtime_fiber_behind)
{
    crew_t *pool = fiber_pool(1, 4);
    blocked_t *b = &blk;
    bool ok;

    atomic_store(&quick, 0);
    blocked_init(b);
    crew_task_t *t = spawn_blocked(pool, b);
    ck_assert_int_eq(wait_task(t, T_WATCH), CREW_ETIMEDOUT);
    crew_task_release(t);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(crew_submit(pool, t_inc_fn, &quick), 0);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_DRAIN), 0);
    ck_assert_int_eq(atomic_load(&quick), 20);
    ck_assert_msg(t_count_get(&b->ended) == 0,
                  "the blocked task returned before the gate opened");
    ck_assert_uint_eq(t_stats(pool).overtime_workers, 1);
    ck_assert_uint_eq(t_stats(pool).threads, 0);
    ck_assert_int_eq(crew_free(pool), 0);

    t_gate_open(&b->gate);
    ck_assert(t_count_wait(&b->ended, 1, T_WATCH));
    T_EVENTUALLY(ok,
                 atomic_load(&freed_late) == 1 &&
                     atomic_load(&threads_stopped) ==
                         atomic_load(&threads_started),
                 T_WATCH);
    ck_assert_msg(ok, "late results %d, threads %d started, %d stopped",
                  atomic_load(&freed_late), atomic_load(&threads_started),
                  atomic_load(&threads_stopped));
    blocked_destroy(b);
}
END_TEST

static t_count_t nap;

/* Sleeps 10 ms and notes when it is back; fails if the sleep did. */
static int napper_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    int rc;

    (void)ctx;
    (void)result;
    t_count_add(arg, 1); /* 1: started */
    rc = crew_sleep(10 * T_MS);
    t_count_add(arg, 1); /* 2: back */
    return rc;
}

/*
 * Fibers never change threads: one parked on the thread that a fiber
 * then keeps stuck is not resumed elsewhere, though its sleep ended long
 * before; it goes on when the stuck one returns.  New work meanwhile runs
 * on the spare.  Then shutdown NOW and crew_free() with the thread stuck
 * again (a second spinner, never released before the pool is gone).
 */
START_TEST(overtime__stuck_thread_keeps_its_parked_fibers)
{
    crew_t *pool = fiber_pool(1, 4);
    bool ok;

    atomic_store(&quick, 0);
    spinner_init(&spin1);
    spinner_init(&spin2);
    t_count_init(&nap);
    crew_task_t *n = NULL;

    ck_assert_int_eq(crew_spawn(pool, napper_fn, &nap, NULL, &n), 0);
    ck_assert(t_count_wait(&nap, 1, T_WATCH));
    crew_task_t *t = spawn_spinner(pool, &spin1);
    ck_assert_int_eq(wait_task(t, T_WATCH), CREW_ETIMEDOUT);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(crew_submit(pool, t_inc_fn, &quick), 0);
    T_EVENTUALLY(ok, atomic_load(&quick) == 20, T_WATCH);
    ck_assert_msg(ok, "%ld of 20 quick tasks ran", atomic_load(&quick));
    ck_assert_msg(t_count_get(&nap) == 1,
                  "the parked fiber moved off its stuck thread");

    atomic_store(&spin1.release, true);
    ck_assert(t_count_wait(&nap, 2, T_WATCH));
    ck_assert_int_eq(wait_task(n, T_WATCH), 0);
    crew_task_release(n);
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_task_release(t);

    /* Stuck again, and the pool goes away under it. */
    t = spawn_spinner(pool, &spin2);
    ck_assert_int_eq(wait_task(t, T_WATCH), CREW_ETIMEDOUT);
    crew_task_release(t);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_NOW), 0);
    ck_assert_uint_eq(t_stats(pool).overtime_workers, 1);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(t_count_get(&spin2.ended), 0);
    atomic_store(&spin2.release, true);
    ck_assert(t_count_wait(&spin2.ended, 1, T_WATCH));
    T_EVENTUALLY(ok,
                 atomic_load(&freed_late) == 2 &&
                     atomic_load(&threads_stopped) ==
                         atomic_load(&threads_started),
                 T_WATCH);
    ck_assert_msg(ok, "late results %d, threads %d started, %d stopped",
                  atomic_load(&freed_late), atomic_load(&threads_started),
                  atomic_load(&threads_stopped));
    spinner_destroy(&spin1);
    spinner_destroy(&spin2);
    t_count_destroy(&nap);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("overtime");

    crew_add_test(s, overtime__stuck_fiber_spares_quick_tasks);
    crew_add_test(s, overtime__parked_fiber_gives_its_place_back);
    crew_add_test(s, overtime__shutdown_leaves_parked_overtime_fiber_behind);
    crew_add_test(s, overtime__stuck_thread_keeps_its_parked_fibers);
    return crew_run_suite(s);
}
