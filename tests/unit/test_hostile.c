/*
 * test_hostile.c - tasks that misbehave (issue 6): a task that calls
 * pthread_exit(), one that never returns, ones that change their worker's
 * signal mask, and tasks and callbacks that keep submitting while the pool
 * shuts down.  The pool itself must never hang: every case here either
 * uses crew's own timeouts or ends by itself, and ctest's timeout is the
 * watchdog.
 *
 * What crew does (measured by these tests):
 *
 *  - pthread_exit() in a task: the worker thread ends inside the task.  A
 *    cleanup handler of the worker reports the task at once as failed with
 *    CREW_EEXIT (future, error callback, statistics), takes the worker out
 *    of the pool and starts a replacement if work waits; crew_wait(),
 *    crew_shutdown() and crew_free() return, with or without a timeout,
 *    and nothing leaks.
 *  - A task that never returns: with a timeout it is reported
 *    CREW_ETIMEDOUT, shutdown leaves its worker behind (detached) and
 *    returns, crew_free() returns; if it returns after all, its late result
 *    goes to free_result even after crew_free().  Without a timeout,
 *    shutdown waits for it (documented; not tested).
 *  - Signal masks: workers start with every signal blocked, and crew's
 *    calls leave the caller's mask as it was.  crew does not restore a
 *    worker's mask after a task: a task that unblocks signals leaves its
 *    worker able to take process-directed signals.  A task that blocks
 *    every signal changes nothing for crew (its timer and wake-ups use no
 *    signals).
 *  - Submitting from tasks and callbacks during shutdown: accepted until
 *    the shutdown begins, CREW_ESHUTDOWN after (a blocking submit on a full
 *    queue too); every accepted task runs once or is cancelled once, and
 *    shutdown returns.
 */
#include "harness.h"

#include "helpers.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif

#ifdef T_ASAN
/* LeakSanitizer: allocations made between these calls, on this thread,
 * are not reported (nor what they point to). */
void __lsan_disable(void);
void __lsan_enable(void);
#define T_LEAK_ALLOWED_BEGIN() __lsan_disable()
#define T_LEAK_ALLOWED_END() __lsan_enable()
#else
#define T_LEAK_ALLOWED_BEGIN() ((void)0)
#define T_LEAK_ALLOWED_END() ((void)0)
#endif

/* ---- pthread_exit ---------------------------------------------------- */

#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif

/* ThreadSanitizer stops the process when pthread_exit() is called on a
 * fiber's stack (a check of its own; docs/design.md): in a fiber run
 * (harness.h) under it, the pthread_exit tests print a note and pass. */
static bool skip_pthread_exit_on_fibers(void)
{
#ifdef T_TSAN
    if (crew_test_fibers()) {
        crew_test_log("skipped: fiber run under ThreadSanitizer");
        return true;
    }
#endif
    return false;
}

static int exit_thread_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    t_count_add(arg, 1);
    pthread_exit(NULL);
}

static void count_error(void *arg, int err, void *user)
{
    (void)arg;
    if (err == CREW_EEXIT)
        atomic_fetch_add((atomic_int *)user, 1);
}

static void pthread_exit_case(int64_t task_timeout_ns)
{
    atomic_int exits = 0;
    crew_opts_t o = { .max_workers = 1,
                      .task_timeout_ns = task_timeout_ns,
                      .on_error = count_error,
                      .user = &exits };
    crew_t *pool = NULL;
    crew_task_t *t = NULL;
    t_count_t entered;

    if (skip_pthread_exit_on_fibers())
        return;
    t_count_init(&entered);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, exit_thread_fn, &entered, NULL, &t), 0);
    ck_assert_msg(t_count_wait(&entered, 1, T_LONG), "task never ran");

    /* Reported as the thread ends, not at a deadline. */
    int rc = crew_task_wait_timeout(t, T_LONG, NULL);
    ck_assert_msg(rc == CREW_EEXIT, "pthread_exit task: %d", rc);
    ck_assert_int_eq(crew_task_state(t), CREW_TASK_FAILED);
    crew_task_release(t);
    ck_assert_int_eq(atomic_load(&exits), 1);

    /* The dead worker was replaced: the rest of the work runs. */
    atomic_long n = 0;
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(crew_submit(pool, t_inc_fn, &n), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&n), 20);

    crew_stats_t s = t_stats(pool);
    ck_assert_msg(s.submitted == s.completed + s.failed + s.cancelled,
                  "stats do not add up");
    ck_assert_int_eq(s.failed, 1);
    ck_assert_int_eq(s.timed_out, 0);
    ck_assert_int_eq(s.running, 0);

    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_DRAIN), 0);
    ck_assert_int_eq(crew_free(pool), 0);
    t_count_destroy(&entered);
}

START_TEST(hostile__pthread_exit_with_timeout)
{
    /* Long enough that the exit, not the deadline, ends it on a loaded
     * machine too (50 ms lost that race once under parallel builds). */
    pthread_exit_case(5 * T_SEC);
}
END_TEST

START_TEST(hostile__pthread_exit_without_timeout)
{
    pthread_exit_case(0);
}
END_TEST

/* Per-task timeout, several pthread_exit tasks among ordinary ones. */
START_TEST(hostile__pthread_exit_per_task_timeout_many)
{
    crew_opts_t o = { .max_workers = 2 };
    crew_t *pool = NULL;
    crew_task_t *t[3] = { NULL };
    crew_task_opts_t to = { .timeout_ns = 30 * T_MS };
    t_count_t entered;
    atomic_long n = 0;

    if (skip_pthread_exit_on_fibers())
        return;
    t_count_init(&entered);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(crew_spawn(pool, exit_thread_fn, &entered, &to, &t[i]),
                         0);
        for (int k = 0; k < 10; k++)
            ck_assert_int_eq(crew_submit(pool, t_inc_fn, &n), 0);
    }
    /* Each ends its worker and is reported CREW_EEXIT; replacements run
     * the rest. */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(crew_task_wait(t[i], NULL), CREW_EEXIT);
        crew_task_release(t[i]);
    }
    long ran = t_count_get(&entered);
    ck_assert_msg(ran == 3, "%ld ran", ran);
    crew_test_log("%ld of the 3 pthread_exit tasks started", ran);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&n), 30);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_NOW), 0);
    ck_assert_int_eq(crew_free(pool), 0);
    t_count_destroy(&entered);
}
END_TEST

/* ---- never returns --------------------------------------------------- */

static t_gate_t stuck_gate;
static atomic_int late_results;
static char late_token;

static int stuck_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    t_count_add(arg, 1);
    /* Blocks until the test opens the gate, long after the pool is gone
     * (T_LONG at most, so a failed test cannot hang). */
    t_gate_pass(&stuck_gate);
    *result = &late_token;
    return 0;
}

static void free_late(void *result)
{
    if (result == &late_token)
        atomic_fetch_add(&late_results, 1);
}

START_TEST(hostile__stuck_task_with_timeout_shutdown_returns)
{
    crew_opts_t o = { .max_workers = 2,
                      .task_timeout_ns = 30 * T_MS,
                      .free_result = free_late };
    crew_t *pool = NULL;
    crew_task_t *t = NULL;
    t_count_t entered;
    t_count_init(&entered);
    t_gate_init(&stuck_gate);
    atomic_store(&late_results, 0);

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, stuck_fn, &entered, NULL, &t), 0);
    ck_assert(t_count_wait(&entered, 1, T_LONG));
    ck_assert_int_eq(crew_task_wait(t, NULL), CREW_ETIMEDOUT);
    crew_task_release(t); /* uncollected: the late result is freed */

    atomic_long n = 0;
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(crew_submit(pool, t_inc_fn, &n), 0);
    int64_t t0 = t_now();
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_DRAIN), 0);
    ck_assert_msg(t_now() - t0 < 10 * T_SEC, "shutdown waited for it");
    ck_assert_int_eq(atomic_load(&n), 50);
    crew_stats_t s = t_stats(pool);
    ck_assert_int_eq(s.workers, 0);
    ck_assert_int_eq(s.timed_out, 1);
    ck_assert_int_eq(s.overtime_workers, 1);
    ck_assert_int_eq(crew_free(pool), 0);

    /* The straggler returns after the pool was freed: its result still
     * goes to free_result, once. */
    ck_assert_int_eq(atomic_load(&late_results), 0);
    t_gate_open(&stuck_gate);
    bool ok;
    T_EVENTUALLY(ok, atomic_load(&late_results) == 1, T_LONG);
    ck_assert_msg(ok, "late result never reached free_result");
    /* Let the detached worker drop the last reference and exit. */
    t_sleep(20 * T_MS);
    ck_assert_int_eq(atomic_load(&late_results), 1);
    t_count_destroy(&entered);
}
END_TEST

/* A task left behind by shutdown submits, after crew_free, a task with a
 * timeout (which needs the pool's timer thread): refused, and no timer
 * starts that would outlive the pool (the fuzzer found one doing so). */
static atomic_int late_rc, late_done;

static int late_submitter(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_task_opts_t to = { .timeout_ns = T_SEC };

    (void)result;
    t_count_add(arg, 1);
    t_gate_pass(&stuck_gate);
    atomic_store(&late_rc,
                 crew_spawn(crew_ctx_pool(ctx), t_inc_fn, NULL, &to, NULL));
    atomic_store(&late_done, 1);
    return 0;
}

START_TEST(hostile__left_behind_task_submits_with_timeout_after_free)
{
    crew_opts_t o = { .max_workers = 1, .task_timeout_ns = 30 * T_MS };
    crew_t *pool = NULL;
    t_count_t entered;
    bool ok;

    t_count_init(&entered);
    t_gate_init(&stuck_gate);
    atomic_store(&late_done, 0);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_submit(pool, late_submitter, &entered), 0);
    ck_assert(t_count_wait(&entered, 1, T_LONG));
    ck_assert_int_eq(crew_wait(pool), 0); /* reported timed out */
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_DRAIN), 0);
    ck_assert_int_eq(crew_free(pool), 0);
    t_gate_open(&stuck_gate);
    T_EVENTUALLY(ok, atomic_load(&late_done) == 1, T_LONG);
    ck_assert(ok);
    ck_assert_int_eq(atomic_load(&late_rc), CREW_ESHUTDOWN);
    /* Let the detached worker drop the last reference and exit. */
    t_sleep(20 * T_MS);
    t_count_destroy(&entered);
}
END_TEST

static int forever_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    t_count_add(arg, 1);
    for (;;)
        t_sleep(T_SEC); /* never returns, for the life of the process */
    return 0;
}

START_TEST(hostile__forever_task_with_timeout_shutdown_now_and_free)
{
    crew_opts_t o = { .max_workers = 1, .max_overtime = 1 };
    crew_task_opts_t to = { .timeout_ns = 20 * T_MS };
    crew_t *pool = NULL;
    crew_task_t *t = NULL;
    t_count_t entered;
    t_count_init(&entered);

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, forever_fn, &entered, &to, &t), 0);
    ck_assert(t_count_wait(&entered, 1, T_LONG));
    atomic_long n = 0;
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(crew_submit(pool, t_inc_fn, &n), 0);
    /* The queued ones run on a replacement once the deadline passes. */
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&n), 10);
    ck_assert_int_eq(crew_task_poll(t, NULL), CREW_ETIMEDOUT);
    crew_task_release(t);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_NOW), 0);
    ck_assert_int_eq(crew_free(pool), 0);
    t_count_destroy(&entered);
}
END_TEST

/* ---- signal masks ---------------------------------------------------- */

/* Catchable signals that a worker should have blocked. */
static const int probe_signals[] = { SIGINT,  SIGTERM, SIGUSR1, SIGUSR2,
                                     SIGHUP,  SIGALRM, SIGCHLD, SIGPIPE,
                                     SIGQUIT, SIGWINCH };
#define N_PROBES (int)(sizeof(probe_signals) / sizeof(probe_signals[0]))

/* Returns how many probe signals the calling thread has blocked. */
static int blocked_probes(void)
{
    sigset_t cur;
    int n = 0;

    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    for (int i = 0; i < N_PROBES; i++)
        n += sigismember(&cur, probe_signals[i]) == 1;
    return n;
}

static int report_mask_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    atomic_store((atomic_int *)arg, blocked_probes());
    return 0;
}

static int block_all_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    sigset_t all;
    sigfillset(&all);
    return pthread_sigmask(SIG_SETMASK, &all, NULL);
}

static int unblock_all_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    sigset_t none;
    sigemptyset(&none);
    return pthread_sigmask(SIG_SETMASK, &none, NULL);
}

/* A task that runs until its deadline, watching crew_ctx_timed_out. */
static int until_deadline_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)arg;
    (void)result;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    int64_t end = t_now() + T_LONG;
    while (!crew_ctx_timed_out(ctx) && t_now() < end)
        t_sleep(T_MS / 2);
    return crew_ctx_timed_out(ctx) ? ETIMEDOUT : 0;
}

START_TEST(hostile__signals_blocked_by_task)
{
    /* The caller's mask: SIGUSR2 blocked, the others not. */
    sigset_t mine, before, after;
    sigemptyset(&mine);
    sigaddset(&mine, SIGUSR2);
    pthread_sigmask(SIG_SETMASK, &mine, &before);

    crew_opts_t o = { .max_workers = 1 };
    crew_t *pool = NULL;
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    atomic_int probes = -1;
    ck_assert_int_eq(crew_submit(pool, report_mask_fn, &probes), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_msg(atomic_load(&probes) == N_PROBES,
                  "a new worker blocks %d of %d signals", atomic_load(&probes),
                  N_PROBES);

    /* A task that blocks everything: the pool, its timer included, goes
     * on (timeouts and wake-ups use no signals). */
    crew_task_t *t = NULL;
    ck_assert_int_eq(crew_spawn(pool, block_all_fn, NULL, NULL, &t), 0);
    ck_assert_int_eq(crew_task_wait(t, NULL), 0);
    crew_task_release(t);
    crew_task_opts_t to = { .timeout_ns = 20 * T_MS };
    ck_assert_int_eq(crew_spawn(pool, until_deadline_fn, NULL, &to, &t), 0);
    ck_assert_int_eq(crew_task_wait(t, NULL), CREW_ETIMEDOUT);
    crew_task_release(t);
    atomic_long n = 0;
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(crew_submit(pool, t_inc_fn, &n), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&n), 100);

    /* crew's calls (which start threads) left our mask alone. */
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    ck_assert(sigismember(&after, SIGUSR2) == 1);
    ck_assert(sigismember(&after, SIGUSR1) == 0);
    ck_assert(sigismember(&after, SIGINT) == 0);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_DRAIN), 0);
    ck_assert_int_eq(crew_free(pool), 0);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
}
END_TEST

START_TEST(hostile__signal_mask_left_by_task_is_not_restored)
{
    /* One worker that never retires: every task runs on it (in a fiber
     * run, harness.h, on fibers of one thread). */
    crew_opts_t o = {
        .min_workers = 1, .max_workers = 1, .prespawn = true, .threads = 1
    };
    crew_t *pool = NULL;
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    atomic_int probes = -1;
    ck_assert_int_eq(crew_submit(pool, unblock_all_fn, NULL), 0);
    ck_assert_int_eq(crew_submit(pool, report_mask_fn, &probes), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    crew_test_log("after a task unblocked every signal, the next task on "
                  "its worker sees %d of %d probe signals blocked",
                  atomic_load(&probes), N_PROBES);
    ck_assert_msg(atomic_load(&probes) == 0,
                  "crew now restores the mask: update the documentation");
    /* Block them again, so the rest of the process is as it was. */
    ck_assert_int_eq(crew_submit(pool, block_all_fn, NULL), 0);
    ck_assert_int_eq(crew_submit(pool, report_mask_fn, &probes), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&probes), N_PROBES);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

static atomic_int sig_hits;
static atomic_int sig_on_main;
static pthread_t main_thread;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&sig_hits, 1);
    if (pthread_equal(pthread_self(), main_thread))
        atomic_fetch_add(&sig_on_main, 1);
}

START_TEST(hostile__process_signal_goes_to_application_thread)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
    sigset_t usr1, before;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &usr1, &before);
    main_thread = pthread_self();
    atomic_store(&sig_hits, 0);
    atomic_store(&sig_on_main, 0);

    crew_opts_t o = { .max_workers = 4, .prespawn = true };
    crew_t *pool = NULL;
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    t_count_t started;
    t_gate_t gate;
    t_count_init(&started);
    t_gate_init(&gate);
    t_blocker_t b = { &started, &gate };
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(crew_submit(pool, t_blocker_fn, &b), 0);
    ck_assert(t_count_wait(&started, 4, T_LONG));
    /* Workers block every signal: a signal sent to the process can only
     * be taken by this thread. */
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
        bool ok;
        T_EVENTUALLY(ok, atomic_load(&sig_hits) == i + 1, T_LONG);
        ck_assert(ok);
    }
    ck_assert_int_eq(atomic_load(&sig_on_main), 20);
    t_gate_open(&gate);
    ck_assert_int_eq(crew_free(pool), 0);
    sigaction(SIGUSR1, &old, NULL);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    t_count_destroy(&started);
    t_gate_destroy(&gate);
}
END_TEST

/* ---- submitting while the pool shuts down ---------------------------- */

#define MAX_IDS 400000

/*
 * Chains: every task submits its successor (by crew_submit, crew_try_submit
 * or crew_spawn in turn), and the callbacks of one task in four submit a
 * leaf task (which submits nothing), so the pool is busy with submissions
 * from workers and callbacks at the moment the shutdown comes.
 */
static struct {
    atomic_int next_id;
    atomic_int accepted;
    atomic_int rejected_shutdown;
    atomic_int other_rc;
    atomic_uchar leaf[MAX_IDS];
    atomic_uchar ran[MAX_IDS];
    atomic_uchar cancelled[MAX_IDS];
} sub;

static int chain_fn(crew_ctx_t *ctx, void *arg, void **result);

/* Submits one task the way `how` says; 1 if it was accepted. */
static int submit_one(crew_t *pool, int how, bool leaf)
{
    int id = atomic_fetch_add(&sub.next_id, 1);
    if (id >= MAX_IDS)
        return 0;
    atomic_store(&sub.leaf[id], leaf);
    void *arg = (void *)(intptr_t)id;
    int rc;
    switch (how % 3) {
    case 0:
        rc = crew_submit(pool, chain_fn, arg);
        break;
    case 1:
        rc = crew_try_submit(pool, chain_fn, arg);
        break;
    default:
        rc = crew_spawn(pool, chain_fn, arg, NULL, NULL);
    }
    if (rc == 0)
        atomic_fetch_add(&sub.accepted, 1);
    else if (rc == CREW_ESHUTDOWN)
        atomic_fetch_add(&sub.rejected_shutdown, 1);
    else if (rc != CREW_EAGAIN)
        atomic_fetch_add(&sub.other_rc, 1);
    return rc == 0;
}

/* How deep "caller runs" (a submit into a full queue from a worker) has
 * nested chain tasks on this thread's stack. */
static _Thread_local int chain_depth;

static int chain_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)result;
    int id = (int)(intptr_t)arg;
    atomic_fetch_add(&sub.ran[id], 1);
    if (!atomic_load(&sub.leaf[id])) {
        /* Past 50,000 the chains slow down, so that a test thread starved
         * of CPU (sanitizers, a loaded machine) still shuts the pool down
         * long before the ids run out. */
        if (atomic_load(&sub.accepted) > 50000)
            t_sleep(T_MS / 10);
        /* Deep in caller-runs, only try, so the stack stays small (the
         * feeder thread starts new chains). */
        chain_depth++;
        submit_one(crew_ctx_pool(ctx), chain_depth < 16 ? id : 1, false);
        chain_depth--;
    }
    return id % 5 == 0 ? EIO : 0;
}

/* Starts chains from outside the pool until the shutdown refuses one;
 * blocking submits included (they must be woken by the shutdown). */
static void *feeder_main(void *arg)
{
    crew_t *pool = arg;
    for (int i = 0; atomic_load(&sub.next_id) < MAX_IDS; i++) {
        int before = atomic_load(&sub.rejected_shutdown);
        submit_one(pool, i, false);
        if (atomic_load(&sub.rejected_shutdown) != before)
            break;
        if (i % 64 == 63)
            t_sleep(T_MS / 4);
    }
    return NULL;
}

static void chain_result(void *arg, void *result, void *user)
{
    (void)result;
    int id = (int)(intptr_t)arg;
    if (id % 4 == 0)
        submit_one(user, id / 4, true);
}

static void chain_error(void *arg, int err, void *user)
{
    int id = (int)(intptr_t)arg;
    if (err == CREW_ECANCELED)
        atomic_fetch_add(&sub.cancelled[id], 1);
    /* Even a cancelled task's callback, on the cancelling thread, tries
     * to submit more. */
    if (id % 4 == 0 || err == CREW_ECANCELED)
        submit_one(user, id / 4, true);
}

static _Atomic(crew_t *) race_pool;

static void race_result(void *arg, void *result, void *user)
{
    (void)user;
    chain_result(arg, result, atomic_load(&race_pool));
}

static void race_error(void *arg, int err, void *user)
{
    (void)user;
    chain_error(arg, err, atomic_load(&race_pool));
}

static void shutdown_race(int how, size_t capacity)
{
    memset(&sub, 0, sizeof(sub));
    /* The callbacks need the pool, which exists only once created: they
     * reach it through race_pool. */
    crew_opts_t o = { .max_workers = 3,
                      .queue_capacity = capacity,
                      .on_result = race_result,
                      .on_error = race_error };
    crew_t *pool = NULL;
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    atomic_store(&race_pool, pool);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(submit_one(pool, 0, false), 1);
    pthread_t feeder;
    ck_assert_int_eq(pthread_create(&feeder, NULL, feeder_main, pool), 0);
    /* Let the chains run a little, then shut down under them. */
    bool ok;
    T_EVENTUALLY(ok, atomic_load(&sub.accepted) > 2000, T_LONG);
    ck_assert_msg(ok, "chains stalled at %d", atomic_load(&sub.accepted));
    ck_assert_int_eq(crew_shutdown(pool, how), 0);
    pthread_join(feeder, NULL);
    int after = atomic_load(&sub.accepted);
    /* Nothing is accepted once shutdown has returned, from anywhere. */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(submit_one(pool, i, true), 0);
    ck_assert_int_eq(atomic_load(&sub.accepted), after);

    crew_stats_t s = t_stats(pool);
    ck_assert_int_eq(crew_free(pool), 0);
    int n = atomic_load(&sub.next_id);
    ck_assert_msg(n < MAX_IDS, "ran out of ids: raise MAX_IDS");
    int ran = 0, cancelled = 0;
    for (int id = 0; id < n; id++) {
        int r = atomic_load(&sub.ran[id]), c = atomic_load(&sub.cancelled[id]);
        ck_assert_msg(r + c <= 1, "task %d ran %d times, cancelled %d", id, r,
                      c);
        ran += r;
        cancelled += c;
    }
    crew_test_log("shutdown %s, capacity %zu: %d accepted (%d ran, %d "
                  "cancelled), %d refused by the shutdown",
                  how == CREW_SHUTDOWN_NOW ? "NOW" : "DRAIN", capacity,
                  atomic_load(&sub.accepted), ran, cancelled,
                  atomic_load(&sub.rejected_shutdown));
    ck_assert_int_eq(atomic_load(&sub.other_rc), 0);
    ck_assert_int_eq(ran + cancelled, atomic_load(&sub.accepted));
    ck_assert_int_eq(s.submitted, (uint64_t)atomic_load(&sub.accepted));
    ck_assert_int_eq(s.submitted, s.completed + s.failed + s.cancelled);
    ck_assert_int_eq(s.cancelled, (uint64_t)cancelled);
    ck_assert(atomic_load(&sub.rejected_shutdown) > 0);
    if (how == CREW_SHUTDOWN_DRAIN)
        ck_assert_int_eq(cancelled, 0);
}

START_TEST(hostile__submit_from_tasks_and_callbacks_during_drain)
{
    shutdown_race(CREW_SHUTDOWN_DRAIN, 0);
}
END_TEST

START_TEST(hostile__submit_from_tasks_and_callbacks_during_now)
{
    shutdown_race(CREW_SHUTDOWN_NOW, 0);
}
END_TEST

START_TEST(hostile__submit_into_full_queue_during_shutdown)
{
    /* A small queue: blocking submits from outside wait for room, and
     * from inside the pool run the task at once. */
    shutdown_race(CREW_SHUTDOWN_DRAIN, 4);
    shutdown_race(CREW_SHUTDOWN_NOW, 4);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hostile");

    crew_add_test(s, hostile__pthread_exit_with_timeout);
    crew_add_test(s, hostile__pthread_exit_without_timeout);
    crew_add_test(s, hostile__pthread_exit_per_task_timeout_many);
    crew_add_test(s, hostile__stuck_task_with_timeout_shutdown_returns);
    crew_add_test(s, hostile__forever_task_with_timeout_shutdown_now_and_free);
    crew_add_test(s, hostile__left_behind_task_submits_with_timeout_after_free);
    crew_add_test(s, hostile__signals_blocked_by_task);
    crew_add_test(s, hostile__signal_mask_left_by_task_is_not_restored);
    crew_add_test(s, hostile__process_signal_goes_to_application_thread);
    crew_add_test(s, hostile__submit_from_tasks_and_callbacks_during_drain);
    crew_add_test(s, hostile__submit_from_tasks_and_callbacks_during_now);
    crew_add_test(s, hostile__submit_into_full_queue_during_shutdown);
    return crew_run_suite(s);
}
