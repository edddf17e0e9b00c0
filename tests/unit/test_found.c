/*
 * test_found.c - faults the stress harness (tests/stress) found, each kept
 * as a small test that forces the interleaving it needed: shutdowns at
 * once, a drain with every worker stuck, counts after a shutdown that left
 * a worker behind, a late attempt's deadline, the final progress report.
 */
#include "harness.h"
#include "helpers.h"

#include <crew.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

struct shut_arg {
    crew_t *pool;
    int how;
    int rc;
};

static void *shutdown_thread(void *p)
{
    struct shut_arg *a = p;

    a->rc = crew_shutdown(a->pool, a->how);
    return NULL;
}

/* Two crew_shutdown calls at once on a pool whose timer thread runs: both
 * return (the timer is joined once), in every pairing of the two ways. */
START_TEST(found__concurrent_shutdowns_with_timer)
{
    for (int round = 0; round < 40; round++) {
        crew_opts_t o = { .max_workers = 2 };
        crew_task_opts_t to = { .delay_ns = T_MS / 10 };
        struct shut_arg a[2];
        pthread_t tid[2];
        crew_task_t *t;
        crew_t *pool;

        ck_assert_int_eq(crew_create(&pool, &o), 0);
        /* A delayed task starts the timer thread. */
        ck_assert_int_eq(crew_spawn(pool, t_nop_fn, NULL, &to, &t), 0);
        ck_assert_int_eq(crew_task_wait(t, NULL), 0);
        crew_task_release(t);
        for (int i = 0; i < 2; i++) {
            a[i].pool = pool;
            a[i].how =
                (round >> i) & 1 ? CREW_SHUTDOWN_NOW : CREW_SHUTDOWN_DRAIN;
            a[i].rc = -1;
            ck_assert_int_eq(
                pthread_create(&tid[i], NULL, shutdown_thread, &a[i]), 0);
        }
        for (int i = 0; i < 2; i++) {
            pthread_join(tid[i], NULL);
            ck_assert_int_eq(a[i].rc, 0);
        }
        ck_assert_int_eq(crew_free(pool), 0);
    }
}
END_TEST

static int wait_gate_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    return t_gate_pass(arg) ? 0 : 1;
}

/* A task that waits at the gate past the pool's timeout, one at a time:
 * each takes a worker (the first, then a replacement) and leaves it
 * stuck.  Returns its future, reported CREW_ETIMEDOUT. */
static crew_task_t *spawn_stuck(crew_t *pool, t_gate_t *gate)
{
    crew_task_t *t = NULL;

    ck_assert_int_eq(crew_spawn(pool, wait_gate_fn, gate, NULL, &t), 0);
    ck_assert_int_eq(crew_task_wait(t, NULL), CREW_ETIMEDOUT);
    return t;
}

/*
 * An attempt that timed out while queued leaves a stale entry behind, and
 * with every worker stuck (left behind by the shutdown) no worker pops
 * it.  After the shutdown nothing counts as queued any more, and a second
 * shutdown, of either kind, returns at once.  (In a fiber run the
 * replacements are threads, within `threads` + max_overtime: one thread,
 * so that the two stuck ones use up the bound.)
 */
START_TEST(found__no_stale_queued_after_shutdown)
{
    for (int how = 0; how < 2; how++) {
        crew_opts_t o = { .max_workers = 1,
                          .max_overtime = 1,
                          .threads = 1, /* fiber run: see above */
                          .task_timeout_ns = 100 * T_MS };
        crew_task_opts_t to = { .timeout_ns = 2 * T_MS };
        crew_task_t *late;
        crew_stats_t st;
        t_gate_t gate;
        crew_t *pool;
        bool ok;

        t_gate_init(&gate);
        ck_assert_int_eq(crew_create(&pool, &o), 0);
        /* Two stuck tasks take the worker and its one replacement (the
         * timeout gives the replacement time to start and take the
         * second before it times out queued, on a loaded machine). */
        for (int i = 0; i < 2; i++)
            crew_task_release(spawn_stuck(pool, &gate));
        T_EVENTUALLY(ok, t_stats(pool).overtime_workers == 2, T_LONG);
        ck_assert(ok);
        ck_assert_int_eq(crew_spawn(pool, t_nop_fn, NULL, &to, &late), 0);
        ck_assert_int_eq(crew_task_wait(late, NULL), CREW_ETIMEDOUT);
        crew_task_release(late);
        ck_assert_int_eq(
            crew_shutdown(pool, how ? CREW_SHUTDOWN_NOW : CREW_SHUTDOWN_DRAIN),
            0);
        st = t_stats(pool);
        ck_assert_uint_eq(st.queued, 0);
        ck_assert_uint_eq(st.running, 0);
        ck_assert_uint_eq(st.submitted,
                          st.completed + st.failed + st.cancelled);
        ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_NOW), 0);
        ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_DRAIN), 0);
        t_gate_open(&gate);
        /* The workers left behind are out of the gate before it goes. */
        T_EVENTUALLY(ok, t_stats(pool).overtime_workers == 0, T_LONG);
        ck_assert(ok);
        ck_assert_int_eq(crew_free(pool), 0);
        t_gate_destroy(&gate);
    }
}
END_TEST

/*
 * Every worker stuck in a timed-out task and no replacement allowed
 * (max_overtime used up): a drain still runs the queued task once a stuck
 * one returns, instead of waiting for a worker that never comes.
 */
START_TEST(found__drain_with_every_worker_stuck)
{
    crew_opts_t o = { .max_workers = 1,
                      .max_overtime = 1,
                      .task_timeout_ns = 100 * T_MS };
    struct shut_arg sa = { NULL, CREW_SHUTDOWN_DRAIN, -1 };
    crew_task_opts_t quick = { .timeout_ns = 0 };
    atomic_long ran = 0;
    crew_task_t *stuck[2], *last;
    t_gate_t gate;
    pthread_t tid;
    crew_t *pool;
    bool ok;

    t_gate_init(&gate);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    for (int i = 0; i < 2; i++)
        stuck[i] = spawn_stuck(pool, &gate);
    /* Both workers are stuck, and max_overtime allows no third: the
     * quick task (no timeout) waits in the queue. */
    T_EVENTUALLY(ok, t_stats(pool).overtime_workers == 2, T_LONG);
    ck_assert(ok);
    quick.timeout_ns = -1;
    ck_assert_int_eq(crew_spawn(pool, t_inc_fn, &ran, &quick, &last), 0);
    sa.pool = pool;
    ck_assert_int_eq(pthread_create(&tid, NULL, shutdown_thread, &sa), 0);
    /* Draining: new submits are refused. */
    T_EVENTUALLY(ok, crew_try_submit(pool, t_nop_fn, NULL) == CREW_ESHUTDOWN,
                 T_LONG);
    ck_assert(ok);
    t_gate_open(&gate);
    pthread_join(tid, NULL);
    ck_assert_int_eq(sa.rc, 0);
    ck_assert_int_eq(crew_task_wait(last, NULL), 0);
    ck_assert_int_eq(atomic_load(&ran), 1);
    for (int i = 0; i < 2; i++)
        crew_task_release(stuck[i]);
    crew_task_release(last);
    /* A worker left behind is out of the gate before it goes. */
    T_EVENTUALLY(ok, t_stats(pool).overtime_workers == 0, T_LONG);
    ck_assert(ok);
    ck_assert_int_eq(crew_free(pool), 0);
    t_gate_destroy(&gate);
}
END_TEST

/*
 * A task that timed out and still runs is failed, not running, and a
 * shutdown that leaves its worker behind leaves the counts adding up,
 * before and after the task returns.
 */
START_TEST(found__counts_after_worker_left_behind)
{
    crew_opts_t o = { .max_workers = 2, .task_timeout_ns = 100 * T_MS };
    crew_stats_t st;
    t_gate_t gate;
    crew_t *pool;
    bool ok;

    t_gate_init(&gate);
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_submit(pool, wait_gate_fn, &gate), 0);
    ck_assert_int_eq(crew_wait(pool), 0); /* it timed out */
    st = t_stats(pool);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(st.running, 0);
    ck_assert_uint_eq(st.overtime_workers, 1);
    ck_assert_uint_ge(st.peak_workers, st.workers);
    ck_assert_int_eq(crew_shutdown(pool, CREW_SHUTDOWN_DRAIN), 0);
    st = t_stats(pool);
    ck_assert_uint_eq(st.running, 0);
    ck_assert_uint_eq(st.workers, 0);
    ck_assert_uint_eq(st.submitted, 1);
    ck_assert_uint_eq(st.failed, 1);
    t_gate_open(&gate);
    /* The worker left behind returns and goes; the counts stay. */
    T_EVENTUALLY(ok, t_stats(pool).overtime_workers == 0, T_LONG);
    ck_assert(ok);
    st = t_stats(pool);
    ck_assert_uint_eq(st.running, 0);
    ck_assert_uint_eq(st.submitted, 1);
    ck_assert_uint_eq(st.completed + st.failed, 1);
    ck_assert_int_eq(crew_free(pool), 0);
    t_gate_destroy(&gate);
}
END_TEST

/* A spawn into another pool's group is a bad argument, not a refusal. */
START_TEST(found__wrong_group_is_not_rejected)
{
    crew_t *a, *b;
    crew_group_t *g;
    crew_task_opts_t to;
    crew_task_t *t = (crew_task_t *)&to; /* not NULL: must be cleared */
    crew_stats_t st;

    ck_assert_int_eq(crew_create(&a, NULL), 0);
    ck_assert_int_eq(crew_create(&b, NULL), 0);
    ck_assert_int_eq(crew_group_create(b, NULL, &g), 0);
    memset(&to, 0, sizeof(to));
    to.group = g;
    ck_assert_int_eq(crew_spawn(a, t_nop_fn, NULL, &to, &t), CREW_EINVAL);
    ck_assert_ptr_null(t);
    st = t_stats(a);
    ck_assert_uint_eq(st.rejected, 0);
    ck_assert_uint_eq(st.submitted, 0);
    crew_group_free(g);
    ck_assert_int_eq(crew_free(a), 0);
    ck_assert_int_eq(crew_free(b), 0);
}
END_TEST

struct late {
    atomic_int second_started;
    atomic_int first_checked;
    int sleep_rc;
    bool timed_out;
    int64_t deadline;
};

/*
 * Attempt 1 runs past its deadline until attempt 2 has started, then
 * sleeps: the sleep must end at once with CREW_ETIMEDOUT, and its context
 * must keep its own deadline, not take attempt 2's.
 */
static int late_attempt_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    struct late *l = arg;
    int64_t end = t_now() + T_LONG;

    (void)result;
    if (crew_ctx_attempt(ctx) > 1) {
        atomic_store(&l->second_started, 1);
        while (!atomic_load(&l->first_checked) && t_now() < end)
            crew_yield(); /* on a fiber, attempt 1 may share the
                             thread */
        return 0;
    }
    l->deadline = crew_ctx_deadline(ctx);
    while (!atomic_load(&l->second_started) && t_now() < end)
        crew_yield();
    l->sleep_rc = crew_sleep(T_LONG);
    l->timed_out =
        crew_ctx_timed_out(ctx) && crew_ctx_deadline(ctx) == l->deadline;
    atomic_store(&l->first_checked, 1);
    return 0;
}

START_TEST(found__late_attempt_keeps_its_deadline)
{
    crew_opts_t o = { .max_workers = 2 };
    crew_task_opts_t to = { .timeout_ns = 50 * T_MS, .retries = 1 };
    struct late l = { 0 };
    int64_t t0 = t_now();
    crew_task_t *t;
    crew_t *pool;
    bool ok;
    int rc;

    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, late_attempt_fn, &l, &to, &t), 0);
    /* Attempt 2's outcome (which a slow machine may time out too). */
    rc = crew_task_wait(t, NULL);
    ck_assert(rc == 0 || rc == CREW_ETIMEDOUT);
    T_EVENTUALLY(ok, atomic_load(&l.first_checked) == 1, T_LONG);
    ck_assert(ok);
    ck_assert_int_eq(l.sleep_rc, CREW_ETIMEDOUT);
    ck_assert(l.timed_out);
    ck_assert(l.deadline > t0);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

struct prog_log {
    pthread_mutex_t mu;
    crew_progress_t last;
    int reports;
};

static void log_progress(const crew_progress_t *p, void *user)
{
    struct prog_log *l = user;

    pthread_mutex_lock(&l->mu);
    l->last = *p;
    l->reports++;
    pthread_mutex_unlock(&l->mu);
}

static int reports_of(struct prog_log *l)
{
    int n;

    pthread_mutex_lock(&l->mu);
    n = l->reports;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/*
 * The last task to end is cancelled by the application (not on a
 * worker), right after another report: the "nothing left" report still
 * comes, with the final counts, before crew_wait() returns.
 */
START_TEST(found__final_progress_after_cancel_off_worker)
{
    struct prog_log l = { .reports = 0 };
    crew_opts_t o = { .max_workers = 1,
                      .on_progress = log_progress,
                      .progress_interval_ns = 3600 * T_SEC };
    crew_task_opts_t later = { .delay_ns = 3600 * T_SEC };
    crew_task_t *a, *b;
    crew_t *pool;
    bool ok;

    pthread_mutex_init(&l.mu, NULL);
    o.user = &l;
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, t_nop_fn, NULL, &later, &b), 0);
    ck_assert_int_eq(crew_spawn(pool, t_nop_fn, NULL, NULL, &a), 0);
    ck_assert_int_eq(crew_task_wait(a, NULL), 0);
    /* The first report (due: none before) comes with a's end, so the
     * interval then holds back any report but the final one. */
    T_EVENTUALLY(ok, reports_of(&l) >= 1, T_LONG);
    ck_assert(ok);
    ck_assert_int_eq(crew_task_cancel(b), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    pthread_mutex_lock(&l.mu);
    ck_assert_int_ge(l.reports, 1);
    ck_assert_uint_eq(l.last.total, 2);
    ck_assert_uint_eq(l.last.done, 1);
    ck_assert_uint_eq(l.last.cancelled, 1);
    ck_assert_uint_eq(l.last.queued, 0);
    ck_assert_uint_eq(l.last.running, 0);
    pthread_mutex_unlock(&l.mu);
    crew_task_release(a);
    crew_task_release(b);
    ck_assert_int_eq(crew_free(pool), 0);
    pthread_mutex_destroy(&l.mu);
}
END_TEST

/*
 * Tasks that wait for work queued only later (a delayed child, a group
 * member, a task that sets an event) on a pool of one worker: the waiting
 * worker lends its place, another runs the work, and the waiter takes its
 * place back; never more than one task runs its own code at once.
 */
struct lender {
    crew_t *pool;
    crew_event_t *ev;
    atomic_int active, most;
    int rc[3];
};

static void active_in(struct lender *l)
{
    int a = atomic_fetch_add(&l->active, 1) + 1;
    int m = atomic_load(&l->most);

    while (a > m && !atomic_compare_exchange_weak(&l->most, &m, a))
        ;
}

static void active_out(struct lender *l)
{
    atomic_fetch_sub(&l->active, 1);
}

static int child_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    active_in(arg);
    active_out(arg);
    return 0;
}

static int set_event_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    struct lender *l = arg;

    (void)ctx;
    (void)result;
    active_in(l);
    crew_event_set(l->ev);
    active_out(l);
    return 0;
}

static int waiting_parent_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    struct lender *l = arg;
    crew_task_opts_t later = { .delay_ns = 20 * T_MS };
    crew_group_t *g = NULL;
    crew_task_t *c = NULL;

    (void)ctx;
    (void)result;
    active_in(l);
    /* A child that is queued only after its delay. */
    l->rc[0] = crew_spawn(l->pool, child_fn, l, &later, &c);
    if (l->rc[0] == 0) {
        active_out(l);
        l->rc[0] = crew_task_wait(c, NULL);
        active_in(l);
        crew_task_release(c);
    }
    /* A group whose member is queued only after its delay. */
    l->rc[1] = crew_group_create(l->pool, NULL, &g);
    if (l->rc[1] == 0) {
        later.group = g;
        l->rc[1] = crew_spawn(l->pool, child_fn, l, &later, NULL);
        active_out(l);
        if (l->rc[1] == 0)
            l->rc[1] = crew_group_wait(g);
        active_in(l);
        crew_group_free(g);
    }
    /* An event set by a task queued behind this one. */
    l->rc[2] = crew_submit(l->pool, set_event_fn, l);
    active_out(l);
    if (l->rc[2] == 0)
        l->rc[2] = crew_event_wait(l->ev);
    active_in(l);
    active_out(l);
    return 0;
}

START_TEST(found__waits_in_tasks_on_one_worker)
{
    crew_opts_t o = { .max_workers = 1 };
    struct lender l = { .rc = { -1, -1, -1 } };
    crew_task_t *t;

    ck_assert_int_eq(crew_create(&l.pool, &o), 0);
    ck_assert_int_eq(crew_event_create(&l.ev), 0);
    ck_assert_int_eq(crew_spawn(l.pool, waiting_parent_fn, &l, NULL, &t), 0);
    ck_assert_int_eq(crew_task_wait_timeout(t, T_LONG, NULL), 0);
    ck_assert_int_eq(crew_wait(l.pool), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(l.rc[i], 0);
    /* A task back from a wait waits for a place: never two in their own
     * code at once (in fiber mode too, where the parent's fiber may be
     * woken while the task that set the event still runs). */
    ck_assert_int_eq(atomic_load(&l.most), 1);
    ck_assert_uint_le(t_stats(l.pool).peak_workers, 1);
    crew_task_release(t);
    ck_assert_int_eq(crew_free(l.pool), 0);
    crew_event_free(l.ev);
}
END_TEST

/*
 * Faults a fresh tester found (issue 6's attack, this session).
 */

#if defined(__SANITIZE_THREAD__)
#define FOUND_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FOUND_TSAN 1
#endif
#endif

/* B, run nested by A's helping wait, ends its thread; A has a deadline. */
static int exit_thread_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    pthread_exit(NULL);
}

static int wait_for_exiting_child_fn(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_task_t *b = NULL;

    (void)arg;
    (void)result;
    if (crew_spawn(crew_ctx_pool(ctx), exit_thread_fn, NULL, NULL, &b) == 0) {
        (void)crew_task_wait(b, NULL); /* runs B here, nested */
        crew_task_release(b);
    }
    return 0;
}

/*
 * A worker that ends (pthread_exit) nested inside an attempt with a
 * deadline is not left named as that attempt's runner: when the deadline
 * passes, nothing reads the freed worker, and the pool's counts stay
 * sane (the live count used to wrap and the pool to die).
 */
START_TEST(found__thread_exit_nested_in_timed_attempt)
{
    crew_opts_t o = { .max_workers = 1, .idle_timeout_ns = T_MS };
    crew_task_opts_t to = { .timeout_ns = 100 * T_MS };
    atomic_long ran = 0;
    crew_task_t *a;
    crew_stats_t st;
    crew_t *pool;

#ifdef FOUND_TSAN
    /* TSan stops the process at pthread_exit on a fiber's stack (as in
     * test_hostile.c). */
    if (crew_test_fibers()) {
        crew_test_log("skipped: fiber run under ThreadSanitizer");
        return;
    }
#endif
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    ck_assert_int_eq(crew_spawn(pool, wait_for_exiting_child_fn, NULL, &to, &a),
                     0);
    /* New workers start, and the one that exited is reaped (freed). */
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(crew_submit(pool, t_inc_fn, &ran), 0);
        ck_assert_int_eq(crew_wait(pool), 0);
        t_sleep(10 * T_MS);
    }
    (void)crew_task_wait_timeout(a, T_LONG, NULL);
    crew_task_release(a);
    t_sleep(150 * T_MS); /* past A's deadline */
    st = t_stats(pool);
    ck_assert_uint_le(st.workers, st.max_workers);
    ck_assert_int_eq(crew_submit(pool, t_inc_fn, &ran), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&ran), 6);
    ck_assert_int_eq(crew_free(pool), 0);
}
END_TEST

static atomic_int hook_calls;

static void slow_stop_hook(crew_t *pool, unsigned id, void *user)
{
    crew_event_t *ev = user;

    (void)pool;
    (void)id;
    atomic_fetch_add(&hook_calls, 1);
    /* A wait longer than the lending delay, outside any task. */
    (void)crew_event_wait_timeout(ev, 20 * T_MS);
}

/*
 * A wait in a thread hook (not in a task) lends nothing: the worker
 * holds no place there.  The live count used to be taken down twice and
 * wrap, and the pool to stop running tasks.
 */
START_TEST(found__wait_in_stop_hook_lends_nothing)
{
    crew_opts_t o = { .max_workers = 2,
                      .idle_timeout_ns = T_MS,
                      .on_thread_stop = slow_stop_hook };
    atomic_long ran = 0;
    crew_event_t *ev;
    crew_stats_t st;
    crew_t *pool;
    bool ok;

    atomic_store(&hook_calls, 0);
    ck_assert_int_eq(crew_event_create(&ev), 0);
    o.user = ev;
    ck_assert_int_eq(crew_create(&pool, &o), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(crew_submit(pool, t_inc_fn, &ran), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    /* The idle workers retire, through the slow hook. */
    T_EVENTUALLY(ok, atomic_load(&hook_calls) >= 1, T_LONG);
    ck_assert(ok);
    t_sleep(50 * T_MS);
    st = t_stats(pool);
    ck_assert_uint_le(st.workers, st.max_workers);
    ck_assert_uint_le(st.threads, st.max_workers);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(crew_submit(pool, t_inc_fn, &ran), 0);
    ck_assert_int_eq(crew_wait(pool), 0);
    ck_assert_int_eq(atomic_load(&ran), 8);
    ck_assert_int_eq(crew_free(pool), 0);
    ck_assert_int_eq(crew_event_free(ev), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("found");

    crew_add_test(s, found__concurrent_shutdowns_with_timer);
    crew_add_test(s, found__no_stale_queued_after_shutdown);
    crew_add_test(s, found__drain_with_every_worker_stuck);
    crew_add_test(s, found__counts_after_worker_left_behind);
    crew_add_test(s, found__wrong_group_is_not_rejected);
    crew_add_test(s, found__late_attempt_keeps_its_deadline);
    crew_add_test(s, found__final_progress_after_cancel_off_worker);
    crew_add_test(s, found__waits_in_tasks_on_one_worker);
    crew_add_test(s, found__thread_exit_nested_in_timed_attempt);
    crew_add_test(s, found__wait_in_stop_hook_lends_nothing);
    return crew_run_suite(s);
}
