/*
 * pool.c - a pool's life: creation, waiting, resizing, statistics,
 * shutdown and freeing.
 *
 * The pool's states (pool->state) only move forward:
 *
 *   RUNNING --shutdown(DRAIN)--> DRAINING --+
 *      |                            |       +--(outstanding == 0)--> STOPPED
 *      +------shutdown(NOW)-----> CANCELLING+
 *
 * Invariants (checked by the tests and the stress harness):
 *  1. Only RUNNING accepts tasks.  A submit that raced with the change
 *     either was counted in `outstanding` before the state changed, and is
 *     run (or cancelled, under NOW), or backs out with CREW_ESHUTDOWN.
 *  2. Workers leave DRAINING/CANCELLING only once outstanding == 0, so an
 *     accepted task always has a worker to run or cancel it.
 *  3. live <= max_shown at every moment (what crew_stats() reports).
 *  4. tokens <= sleepers, and idle_avail == sleepers - tokens whenever
 *     pool->lock is free.
 *  5. At a quiet moment: submitted == completed + failed + cancelled.
 */
#include "crew_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_IDLE_NS   (10LL * 1000 * 1000 * 1000)
#define MIN_STACK         ((size_t)16 * 1024)
#define MAX_STACK         ((size_t)1 << 30)

/* Pool ids (crew_t.id): unique in the process. */
static _Atomic uint64_t next_pool_id = 1;

void crew__deadline(struct timespec *ts, int64_t ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    if (ns > INT64_MAX / 2)
        ns = INT64_MAX / 2;     /* far enough, and no overflow below */
    ts->tv_sec += (time_t)(ns / 1000000000);
    ts->tv_nsec += (long)(ns % 1000000000);
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static int check_opts(crew_opts_t *o)
{
    if (o->fibers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        if (o->threads == 0)
            o->threads = n > 0 ? (unsigned)n : 1;
        if (o->max_workers == 0)
            o->max_workers = 1024;
        if (o->fiber_stack_size == 0)
            o->fiber_stack_size = (size_t)64 * 1024;
        if (o->blocking_threads == 0)
            o->blocking_threads = 64;
        if (o->threads > CREW_MAX_WORKERS ||
            o->blocking_threads > CREW_MAX_WORKERS ||
            o->fiber_stack_size < MIN_STACK ||
            o->fiber_stack_size > MAX_STACK)
            return CREW_EINVAL;
    }
    if (o->max_workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        o->max_workers = n > 0 ? (unsigned)n : 1;
        if (o->max_workers < o->min_workers)
            o->max_workers = o->min_workers;
    }
    if (o->min_workers > o->max_workers ||
        o->max_workers > CREW_MAX_WORKERS ||
        o->queue_capacity > CREW_MAX_CAPACITY)
        return CREW_EINVAL;
    if (o->stack_size != 0 &&
        (o->stack_size < MIN_STACK || o->stack_size > MAX_STACK))
        return CREW_EINVAL;
    if (o->idle_timeout_ns == 0)
        o->idle_timeout_ns = DEFAULT_IDLE_NS;
    if (o->task_timeout_ns < 0 || o->priority_aging_ns < 0 ||
        o->progress_interval_ns < 0)
        return CREW_EINVAL;
    if (o->progress_interval_ns == 0)
        o->progress_interval_ns = 100LL * 1000 * 1000;
    if (o->max_overtime == 0)
        o->max_overtime = o->fibers ? o->threads : o->max_workers;
    if (o->max_overtime > CREW_MAX_WORKERS)
        return CREW_EINVAL;
    if (o->lock < CREW_LOCK_DEFAULT || o->lock > CREW_LOCK_CUSTOM)
        return CREW_EINVAL;
    if (o->lock == CREW_LOCK_CUSTOM &&
        (o->lock_ops == NULL || o->lock_ops->lock == NULL ||
         o->lock_ops->unlock == NULL))
        return CREW_EINVAL;
    return 0;
}

int crew__cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    int rc;

    if (pthread_condattr_init(&attr) != 0)
        return -1;
    /* Timed waits use CLOCK_MONOTONIC, immune to clock changes. */
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

static void destroy_sync(crew_t *pool)
{
    pthread_cond_destroy(&pool->block_gone_cv);
    pthread_cond_destroy(&pool->block_cv);
    pthread_mutex_destroy(&pool->block_lock);
    pthread_cond_destroy(&pool->tcv);
    pthread_mutex_destroy(&pool->tlock);
    pthread_mutex_destroy(&pool->plock);
    pthread_mutex_destroy(&pool->fiber_lock);
    pthread_cond_destroy(&pool->done_cv);
    pthread_cond_destroy(&pool->space_cv);
    pthread_cond_destroy(&pool->work_cv);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->qmutex);
}

static int init_sync(crew_t *pool)
{
    atomic_init(&pool->qlock, false);
    if (pthread_mutex_init(&pool->qmutex, NULL) != 0)
        return -1;
    if (pthread_mutex_init(&pool->lock, NULL) != 0) {
        pthread_mutex_destroy(&pool->qmutex);
        return -1;
    }
    if (crew__cond_init(&pool->work_cv) != 0)
        goto no_work;
    if (crew__cond_init(&pool->space_cv) != 0)
        goto no_space;
    if (crew__cond_init(&pool->done_cv) != 0)
        goto no_done;
    if (pthread_mutex_init(&pool->fiber_lock, NULL) != 0)
        goto no_flock;
    if (pthread_mutex_init(&pool->plock, NULL) != 0)
        goto no_plock;
    if (pthread_mutex_init(&pool->tlock, NULL) != 0)
        goto no_tlock;
    if (crew__cond_init(&pool->tcv) != 0)
        goto no_tcv;
    if (pthread_mutex_init(&pool->block_lock, NULL) != 0)
        goto no_block;
    if (crew__cond_init(&pool->block_cv) != 0)
        goto no_block_cv;
    if (crew__cond_init(&pool->block_gone_cv) != 0)
        goto no_block_gone;
    return 0;

no_block_gone:
    pthread_cond_destroy(&pool->block_cv);
no_block_cv:
    pthread_mutex_destroy(&pool->block_lock);
no_block:
    pthread_cond_destroy(&pool->tcv);
no_tcv:
    pthread_mutex_destroy(&pool->tlock);
no_tlock:
    pthread_mutex_destroy(&pool->plock);
no_plock:
    pthread_mutex_destroy(&pool->fiber_lock);
no_flock:
    pthread_cond_destroy(&pool->done_cv);
no_done:
    pthread_cond_destroy(&pool->space_cv);
no_space:
    pthread_cond_destroy(&pool->work_cv);
no_work:
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->qmutex);
    return -1;
}

/*
 * Join every worker.  Call after the state is STOPPED and live is 0, with
 * pool->lock held; drops it while joining.  Concurrent callers each join
 * the workers they took off the list, and all return once none is left.
 */
static void join_all_locked(crew_t *pool)
{
    struct crew__worker *list = pool->workers;

    pool->workers = NULL;
    pool->exited = 0;
    pool->joiners++;
    pthread_mutex_unlock(&pool->lock);
    while (list != NULL) {
        struct crew__worker *w = list;

        list = w->next;
        pthread_join(w->tid, NULL);
        crew__worker_free(w);
    }
    pthread_mutex_lock(&pool->lock);
    pool->joiners--;
    pthread_cond_broadcast(&pool->done_cv);
    while (pool->joiners > 0)
        pthread_cond_wait(&pool->done_cv, &pool->lock);
}

/*
 * Workers still stuck in timed-out tasks cannot be waited for: C cannot
 * stop them.  Leave them behind, detached, on pool->left_behind: each
 * holds a reference to the pool, so the pool's memory lives until the
 * last of them returns, and each folds its own share of the statistics
 * in when it goes (crew_stats() sums them meanwhile).
 */
static void detach_overtime_locked(crew_t *pool)
{
    struct crew__worker **pp = &pool->workers;

    while (*pp != NULL) {
        struct crew__worker *w = *pp;

        if (w->overtime && !w->exited) {
            *pp = w->next;
            w->detached = true;
            w->next = pool->left_behind;
            pool->left_behind = w;
            /* Relaxed: the count is read by the last decrement, which is
             * acq_rel. */
            atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed);
            pthread_detach(w->tid);
        } else {
            pp = &w->next;
        }
    }
}

/*
 * Pop every queued record: under shutdown NOW crew__run cancels it; once
 * stopped, what is left is stale (a task cancelled, or an attempt timed
 * out, while queued: see Limitations) and crew__run only frees it, so
 * crew_stats() no longer counts it as queued.
 */
static void clear_queue(crew_t *pool)
{
    while (crew__try_run_one(pool, 0))
        ;
}

static int stop(crew_t *pool, int how)
{
    int state;

    pthread_mutex_lock(&pool->lock);
    state = atomic_load_explicit(&pool->state, memory_order_relaxed);
    /* seq_cst: pairs with the submitter's increment of outstanding before
     * its state check (task.c), and with crew__finish_one's load. */
    if (how == CREW_SHUTDOWN_NOW && state < CREW__CANCELLING)
        atomic_store_explicit(&pool->state, CREW__CANCELLING,
                              memory_order_seq_cst);
    else if (state == CREW__RUNNING_STATE)
        atomic_store_explicit(&pool->state, CREW__DRAINING,
                              memory_order_seq_cst);
    pthread_cond_broadcast(&pool->space_cv);
    crew__wake_all_locked(pool);
    pthread_mutex_unlock(&pool->lock);

    if (how == CREW_SHUTDOWN_NOW) {
        crew__timer_cancel_all(pool);
        clear_queue(pool);
    }

    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add_explicit(&pool->wait_waiters, 1, memory_order_seq_cst);
    crew__finish_drain_locked(pool);
    while (atomic_load_explicit(&pool->outstanding,
                                memory_order_seq_cst) > 0 ||
           atomic_load_explicit(&pool->reporting, memory_order_seq_cst) >
               0)
        pthread_cond_wait(&pool->done_cv, &pool->lock);
    atomic_fetch_sub_explicit(&pool->wait_waiters, 1, memory_order_relaxed);
    atomic_store_explicit(&pool->state, CREW__STOPPED, memory_order_seq_cst);
    crew__wake_all_locked(pool);
    pthread_mutex_unlock(&pool->lock);
    /* Nothing is outstanding, so the timer holds no entry that matters. */
    crew__timer_stop(pool);
    pthread_mutex_lock(&pool->lock);
    while (atomic_load_explicit(&pool->live, memory_order_relaxed) > 0)
        pthread_cond_wait(&pool->done_cv, &pool->lock);
    detach_overtime_locked(pool);
    join_all_locked(pool);
    pthread_mutex_unlock(&pool->lock);
    clear_queue(pool);
    return 0;
}

/*
 * The child of a fork() has only the thread that called it.  If that was
 * a worker, or a fiber, the child must not believe it still is: it would
 * wait by helping or parking in the parent's (copied, ownerless) pool.
 * So the child forgets which pool, task and scheduler its thread was in.
 */
static void atfork_child(void)
{
    crew__self = NULL;
    crew__running = NULL;
    crew__proxy = NULL;
    crew__callback_pool = NULL;
    crew__help_depth = 0;
    crew__fiber_forget();
    crew__records_atfork_child();
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_register(void)
{
    /* Failure (ENOMEM) leaves fork() inside tasks as it was: the child
     * must then not wait on pools. */
    (void)pthread_atfork(NULL, NULL, atfork_child);
}

int crew_create(crew_t **out, const crew_opts_t *opts)
{
    crew_opts_t o;
    crew_t *pool;
    unsigned start;
    int rc;

    if (out == NULL)
        return CREW_EINVAL;
    *out = NULL;
    pthread_once(&atfork_once, atfork_register);
    if (opts != NULL)
        o = *opts;
    else
        memset(&o, 0, sizeof(o));
    rc = check_opts(&o);
    if (rc != 0)
        return rc;
    /* The struct asks for cache-line alignment, which malloc does not
     * promise. */
    if (crew__memalign((void **)&pool, CREW__CACHELINE, sizeof(*pool)) != 0)
        return CREW_ENOMEM;
    memset(pool, 0, sizeof(*pool));
    pool->opts = o;
    if (o.lock == CREW_LOCK_CUSTOM) {
        pool->qops = *o.lock_ops;
        pool->opts.lock_ops = NULL;     /* not ours to keep */
    }
    if (init_sync(pool) != 0) {
        free(pool);
        return CREW_ENOMEM;
    }
    crew__queue_init(&pool->q);
    atomic_init(&pool->reserved, 0);
    {
        /* A batch: half the queue, at least 1, at most 4096 slots. */
        size_t batch = o.queue_capacity / 2;

        batch = batch < 1 ? 1 : batch > 4096 ? 4096 : batch;
        pool->low_water = o.queue_capacity > batch ? o.queue_capacity - batch
                                                   : 0;
    }
    atomic_init(&pool->enqueued, 0);
    atomic_init(&pool->taken, 0);
    atomic_init(&pool->n_local, 0);
    pool->locals = !o.fibers && o.queue_capacity == 0 &&
                   o.on_progress == NULL && o.priority_aging_ns == 0;
    atomic_init(&pool->outstanding, 0);
    atomic_init(&pool->state, CREW__RUNNING_STATE);
    atomic_init(&pool->idle_avail, 0);
    atomic_init(&pool->waking, 0);
    atomic_init(&pool->live, 0);
    atomic_init(&pool->max_target, o.fibers ? o.threads : o.max_workers);
    atomic_init(&pool->fibers_live, 0);
    atomic_init(&pool->sched_sleepers, 0);
    atomic_init(&pool->resize_waiters, 0);
    atomic_init(&pool->reporting, 0);
    /* Relaxed: ids need only be unique. */
    pool->id = atomic_fetch_add_explicit(&next_pool_id, 1,
                                         memory_order_relaxed);
    for (unsigned i = 0; i < CREW__NDEQ; i++)
        atomic_init(&pool->deqs[i], NULL);
    atomic_init(&pool->ndeqs, 0);
    atomic_init(&pool->spinning, 0);
    {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        pool->max_spinning = n > 1 ? (unsigned)n / 2 : 1;
    }
    atomic_init(&pool->fiber_max, o.max_workers);
    atomic_init(&pool->returners, 0);
    pool->place_head = NULL;
    pool->place_tail = &pool->place_head;
    atomic_init(&pool->space_waiters, 0);
    atomic_init(&pool->wait_waiters, 0);
    atomic_init(&pool->refs, 1);
    pool->rng = (uint64_t)(uintptr_t)pool ^ 0x9e3779b97f4a7c15ull;
    pool->min_workers = o.min_workers;
    pool->max_shown = o.max_workers;

    start = o.prespawn ? o.max_workers : o.min_workers;
    if (o.fibers) {
        /* The threads are fixed: all started now, none retires. */
        pool->min_workers = o.threads;
        pool->max_shown = o.threads;
        start = o.threads;
    }
    pthread_mutex_lock(&pool->lock);
    for (unsigned i = 0; i < start && rc == 0; i++)
        rc = crew__spawn_locked(pool);
    pthread_mutex_unlock(&pool->lock);
    if (rc != 0) {
        stop(pool, CREW_SHUTDOWN_NOW);
        crew__pool_unref(pool);     /* the only reference: frees it all */
        return rc;
    }
    *out = pool;
    return 0;
}

crew_t *crew_new(const crew_opts_t *opts)
{
    crew_t *pool;

    return crew_create(&pool, opts) == 0 ? pool : NULL;
}

int crew_wait(crew_t *pool)
{
    if (pool == NULL)
        return CREW_EINVAL;
    if (crew__would_deadlock(pool))
        return CREW_EDEADLK;    /* its own task would never finish */
    pthread_mutex_lock(&pool->lock);
    /* seq_cst: the store half; crew__finish_one stores outstanding and
     * then loads wait_waiters, so one of us sees the other. */
    atomic_fetch_add_explicit(&pool->wait_waiters, 1, memory_order_seq_cst);
    /* The drops workers owe (see crew__finish_one), then the count; and
     * the report of the last task (likewise). */
    crew__finish_drain_locked(pool);
    while (atomic_load_explicit(&pool->outstanding,
                                memory_order_seq_cst) > 0 ||
           atomic_load_explicit(&pool->reporting, memory_order_seq_cst) > 0)
        pthread_cond_wait(&pool->done_cv, &pool->lock);
    atomic_fetch_sub_explicit(&pool->wait_waiters, 1, memory_order_relaxed);
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

int crew_shutdown(crew_t *pool, int how)
{
    if (pool == NULL ||
        (how != CREW_SHUTDOWN_DRAIN && how != CREW_SHUTDOWN_NOW))
        return CREW_EINVAL;
    if (crew__would_deadlock(pool))
        return CREW_EDEADLK;
    return stop(pool, how);
}

int crew_free(crew_t *pool)
{
    struct crew__rec *t;
    int rc;

    if (pool == NULL)
        return 0;
    if (crew__would_deadlock(pool))
        return CREW_EDEADLK;
    stop(pool, CREW_SHUTDOWN_DRAIN);
    crew__blocking_stop(pool);
    /* Records left in the queue were cancelled or withdrawn before they
     * were popped; only their memory remains. */
    while ((rc = crew__queue_pop(&pool->q, &t)) != CREW__POP_EMPTY) {
        if (rc == CREW__POP_OK)
            crew__dispose(pool, t);
    }
    while ((t = crew__prio_take(pool, true)) != NULL)
        crew__dispose(pool, t);
    crew__pool_unref(pool);
    return 0;
}

/* Drop a reference; the last one frees the pool. */
void crew__pool_unref(crew_t *pool)
{
    /* acq_rel: the last owner sees every other owner's writes. */
    if (atomic_fetch_sub_explicit(&pool->refs, 1, memory_order_acq_rel) != 1)
        return;
    crew__fiber_cache_free(pool);
    crew__deques_free(pool);
    free(pool->heap);
    free(pool->pheap);
    destroy_sync(pool);
    free(pool);
}

int crew_resize(crew_t *pool, unsigned min_workers, unsigned max_workers)
{
    int rc = 0;

    if (pool == NULL || max_workers == 0 || min_workers > max_workers ||
        max_workers > CREW_MAX_WORKERS)
        return CREW_EINVAL;
    pthread_mutex_lock(&pool->lock);
    if (atomic_load_explicit(&pool->state, memory_order_relaxed) !=
        CREW__RUNNING_STATE) {
        pthread_mutex_unlock(&pool->lock);
        return CREW_ESHUTDOWN;
    }
    if (pool->opts.fibers) {
        /*
         * Fiber mode: the bounds are the fiber budget; the threads stay.
         * Fibers above a lowered budget finish their tasks; no new ones
         * start until the count is below it, and we return then (from
         * outside the pool).  seq_cst on resize_waiters and fibers_live:
         * budget_give_n lowers the count and then looks for waiters, we
         * count ourselves and then look at the count, so one sees the
         * other and the wake-up cannot be lost.
         */
        atomic_store_explicit(&pool->fiber_max, max_workers,
                              memory_order_relaxed);
        crew__wake_all_locked(pool);
        if (!crew__inside(pool)) {
            atomic_fetch_add_explicit(&pool->resize_waiters, 1,
                                      memory_order_seq_cst);
            while (atomic_load_explicit(&pool->fibers_live,
                                        memory_order_seq_cst) >
                       atomic_load_explicit(&pool->fiber_max,
                                            memory_order_relaxed) &&
                   atomic_load_explicit(&pool->state,
                                        memory_order_relaxed) ==
                       CREW__RUNNING_STATE)
                pthread_cond_wait(&pool->done_cv, &pool->lock);
            atomic_fetch_sub_explicit(&pool->resize_waiters, 1,
                                      memory_order_relaxed);
        }
        pthread_mutex_unlock(&pool->lock);
        crew__fiber_budget_grown(pool);
        return 0;
    }
    pool->min_workers = min_workers;
    /* Relaxed: max_target changes only under pool->lock; lock-free
     * readers use it to skip wake-ups (see crew__wake_for_work). */
    atomic_store_explicit(&pool->max_target, max_workers,
                          memory_order_relaxed);
    /* Grow: up to the minimum, then one worker per queued task that no
     * sleeper will take, up to the maximum. */
    while (rc == 0 &&
           atomic_load_explicit(&pool->live, memory_order_relaxed) <
               min_workers)
        rc = crew__spawn_locked(pool);
    /* Bounded (places held for lenders, max_overtime): no thread failed;
     * the minimum is reached as those come back or go. */
    if (rc == CREW_EAGAIN)
        rc = 0;
    while (atomic_load_explicit(&pool->live, memory_order_relaxed) <
               max_workers &&
           crew__queued_hint(pool) + crew__deques_held(pool) >
               pool->sleepers - pool->tokens) {
        if (crew__spawn_locked(pool) != 0)
            break;
    }
    if (atomic_load_explicit(&pool->live, memory_order_relaxed) <=
        max_workers)
        pool->max_shown = max_workers;
    /* Sleepers re-check the bounds; blocked submitters re-check room;
     * an earlier resize waiting for a shrink re-checks against the new
     * target, which may already hold. */
    crew__wake_all_locked(pool);
    pthread_cond_broadcast(&pool->space_cv);
    pthread_cond_broadcast(&pool->done_cv);
    /* Shrink: wait for busy workers to finish and retire, unless we are
     * one of them.  A later resize may raise the target meanwhile. */
    if (!crew__inside(pool)) {
        while (atomic_load_explicit(&pool->live, memory_order_relaxed) >
               atomic_load_explicit(&pool->max_target,
                                    memory_order_relaxed))
            pthread_cond_wait(&pool->done_cv, &pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return rc == 0 ? 0 : CREW_ETHREAD;
}

/* The workers' own shares of the counters (exited ones were folded into
 * the pool's totals, and zeroed, under pool->lock). */
struct shares {
    int64_t running, completed, failed, submitted;
};

static void sum_shares(struct shares *sh, const struct crew__worker *w,
                       bool submitted)
{
    /* Relaxed: reporting only; see crew_stats(). */
    for (; w != NULL; w = w->next) {
        if (submitted) {
            sh->submitted += atomic_load_explicit(&w->s_submitted,
                                                  memory_order_relaxed);
            continue;
        }
        sh->running += atomic_load_explicit(&w->s_running,
                                            memory_order_relaxed);
        sh->completed += atomic_load_explicit(&w->s_completed,
                                              memory_order_relaxed);
        sh->failed += atomic_load_explicit(&w->s_failed,
                                           memory_order_relaxed);
    }
}

void crew_stats(crew_t *pool, crew_stats_t *st)
{
    struct shares sh = { 0, 0, 0, 0 };
    uint64_t ended;

    if (pool == NULL || st == NULL)
        return;
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&pool->lock);
    /*
     * The counters move while we read them, so read the ends before the
     * starts: a task counts as submitted before it can run or end.  Then
     * make the snapshot add up whatever the interleaving: running is at
     * most what was submitted and has not ended (an attempt's +1 and -1
     * may come in either order, so a share may be briefly negative).
     * Relaxed: the counters order nothing; the order of the reads makes
     * the clamps below rare, the clamps make the sums hold.
     */
    st->completed = atomic_load_explicit(&pool->n_completed,
                                         memory_order_relaxed);
    st->failed = atomic_load_explicit(&pool->n_failed, memory_order_relaxed);
    st->cancelled = atomic_load_explicit(&pool->n_cancelled,
                                         memory_order_relaxed);
    sh.running = (int64_t)atomic_load_explicit(&pool->n_running,
                                               memory_order_relaxed);
    sum_shares(&sh, pool->workers, false);
    sum_shares(&sh, pool->left_behind, false);
    st->completed += (uint64_t)sh.completed;
    st->failed += (uint64_t)sh.failed;
    st->submitted = atomic_load_explicit(&pool->n_submitted,
                                         memory_order_relaxed);
    sum_shares(&sh, pool->workers, true);
    sum_shares(&sh, pool->left_behind, true);
    st->submitted += (uint64_t)sh.submitted;
    ended = st->completed + st->failed + st->cancelled;
    if (st->submitted < ended)
        st->submitted = ended;
    st->running = sh.running < 0 ? 0 : (uint64_t)sh.running;
    if (st->running > st->submitted - ended)
        st->running = st->submitted - ended;
    st->rejected = atomic_load_explicit(&pool->n_rejected,
                                        memory_order_relaxed);
    st->retries = atomic_load_explicit(&pool->n_retries,
                                       memory_order_relaxed);
    st->timed_out = atomic_load_explicit(&pool->n_timed_out,
                                         memory_order_relaxed);
    st->overtime_workers = pool->overtime;
    st->queued = crew__queued_hint(pool);
    {
        /* And the QUEUED_LOCAL records in deques, which no shared counter
         * shows (deque.c): each worker's s_local, summed.  A thief's
         * share may be negative, and the sum briefly off: clamped. */
        int64_t local = atomic_load_explicit(&pool->n_local,
                                             memory_order_relaxed);
        const struct crew__worker *lists[2] = { pool->workers,
                                                pool->left_behind };

        for (int i = 0; i < 2; i++)
            for (const struct crew__worker *w = lists[i]; w != NULL;
                 w = w->next)
                local += atomic_load_explicit(&w->s_local,
                                              memory_order_relaxed);
        if (local > 0)
            st->queued += (uint64_t)local;
        if (st->queued > st->submitted - ended - st->running)
            st->queued = st->submitted - ended - st->running;
    }
    st->workers = atomic_load_explicit(&pool->live, memory_order_relaxed);
    st->idle_workers = pool->sleepers;
    st->peak_workers = pool->peak;
    st->min_workers = pool->min_workers;
    st->max_workers = pool->max_shown;
    /* Thread mode: every worker thread, live, stuck in a timed-out task,
     * or blocked in a wait with its place lent. */
    st->threads = st->workers + pool->overtime + pool->lent;
    if (pool->opts.fibers) {
        /* Scheduler threads in the live count (a stuck one is in
         * overtime_workers). */
        st->threads = st->workers;
        /* Workers are fibers here: tasks in flight, within the budget. */
        st->workers = atomic_load_explicit(&pool->fibers_live,
                                           memory_order_relaxed);
        st->max_workers = atomic_load_explicit(&pool->fiber_max,
                                               memory_order_relaxed);
        /* After a lowered budget, fibers above it are still finishing:
         * until then the old bound is the one in force. */
        if (st->workers > st->max_workers)
            st->max_workers = st->workers;
        st->min_workers = 0;
        st->peak_workers = atomic_load_explicit(&pool->fibers_peak,
                                                memory_order_relaxed);
    }
    pthread_mutex_unlock(&pool->lock);
}
