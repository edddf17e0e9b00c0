/*
 * worker.c - worker threads: their loop, how they sleep, wake, grow and
 * retire.
 *
 * Threads: each worker runs worker_main(); submitters call
 * crew__wake_for_work(); spawning and joining happen under pool->lock.
 *
 * The hand-off between a submitter and a sleeping worker is the one place a
 * wake-up could be lost.  It is a store-then-load on each side, all
 * seq_cst, so at least one side sees the other:
 *
 *   submitter: push; enqueued += 1;       then read idle_avail
 *   worker:    idle_avail = sleepers - tokens (under lock); then read queued
 *              (crew__queued: taken, then enqueued)
 *
 * If the submitter reads idle_avail == 0 and skips the wake-up, the worker
 * published its sleep later and so reads queued > 0 and does not sleep.
 * If the submitter sees a sleeper, it takes pool->lock, which the worker
 * holds from its check until it is inside pthread_cond_wait, so the signal
 * cannot fall between the check and the wait.
 *
 * Wake tokens: a submitter that wakes a sleeper hands it a token (tokens++
 * and idle_avail--), so that a burst of submits wakes one worker per task
 * rather than signalling the same sleeper again and again.  Any worker
 * that leaves the sleep loop takes a token if one is out, which keeps
 * tokens <= sleepers.
 *
 * Passing wake-ups on: while a wake-up is in flight (waking > 0), a
 * submitter does not wake anyone; the worker that takes the token wakes the
 * next sleeper if work is still queued (crew__pass_on), and so on.  The
 * submitter thus pays for at most one wake-up per burst, and the cost of
 * waking many sleepers falls on the workers, not on the one thread that
 * feeds the pool.  Nothing is stranded: the submitter stores queued, then
 * reads waking; the woken worker stores waking (taking its token), then
 * reads queued; so if the submitter saw the token in flight, the worker
 * sees the task (all seq_cst).
 */
#include "crew_internal.h"

#include <errno.h>
#include <unistd.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>

_Thread_local struct crew__worker *crew__self;

/* Call with pool->lock held after changing sleepers or tokens. */
void crew__publish_idle_locked(crew_t *pool)
{
    /* seq_cst: the store half of the worker's side of the hand-off. */
    atomic_store_explicit(&pool->idle_avail, pool->sleepers - pool->tokens,
                          memory_order_seq_cst);
    /* seq_cst: the worker's store half of passing wake-ups on. */
    atomic_store_explicit(&pool->waking, pool->tokens, memory_order_seq_cst);
}

/* Keep the maximum shown by crew_stats() at or above the live count. */
static void update_shown_locked(crew_t *pool)
{
    unsigned live = atomic_load_explicit(&pool->live, memory_order_relaxed);
    unsigned max = atomic_load_explicit(&pool->max_target,
                                        memory_order_relaxed);

    /* live and max_target change only under pool->lock: relaxed. */
    if (live <= max)
        pool->max_shown = max;
}

/*
 * With the queue's lock held and a record taken: when much more waits,
 * move a few more to the worker's own deque, so that the lock is taken
 * once per batch instead of once per task.  They stay counted as queued
 * and others can still steal them.  Relaxed: `queued` only sizes the
 * batch.
 */
#define TAKE_BATCH 8

static void take_batch_locked(crew_t *pool, struct crew__deque *own)
{
    size_t queued = crew__queued_hint(pool);
    unsigned live = atomic_load_explicit(&pool->live, memory_order_relaxed);
    struct crew__rec *t;

    /* One worker keeps submission order: no batches (they would run
     * newest first). */
    if (live < 2 || queued < (size_t)2 * TAKE_BATCH * (live + 1))
        return;
    for (int i = 1; i < TAKE_BATCH; i++) {
        if (crew__queue_pop(&pool->q, &t) != CREW__POP_OK)
            return;
        if (!crew__deque_push(own, t)) {
            /* Cannot happen while a batch is smaller than the deque and
             * this worker pops before it takes more; put it back. */
            crew__queue_push(&pool->q, t);
            return;
        }
    }
}

/*
 * Take one record off the queue, or NULL if it is empty.  A record that is
 * taken leaves the counts at once, which frees its slot.
 */
struct crew__rec *crew__take(crew_t *pool)
{
    struct crew__rec *t = NULL;
    struct crew__worker *w = crew__self;
    struct crew__deque *own = w != NULL && w->pool == pool ? w->deq : NULL;
    /* Relaxed: a hint; the heap is read under its lock. */
    bool heap = atomic_load_explicit(&pool->prio_n, memory_order_relaxed) > 0;
    int rc;

    /*
     * In order: a positive-priority task (or any, with aging); its own
     * newest task, except every 32nd time, when the shared queue comes
     * first (a worker busy with its own tasks does not starve the
     * others'); the shared queue; its own deque; a task stolen from
     * another worker; a negative-priority task.
     */
    if (heap && (t = crew__prio_take(pool, false)) != NULL)
        goto taken;
    if (own != NULL && (++w->takes & 31) != 0 &&
        (t = crew__deque_pop(own)) != NULL)
        goto taken;
    for (;;) {
        crew__qlock(pool);
        rc = crew__queue_pop(&pool->q, &t);
        if (rc == CREW__POP_OK && own != NULL)
            take_batch_locked(pool, own);
        crew__qunlock(pool);
        if (rc == CREW__POP_OK)
            break;
        if (rc == CREW__POP_EMPTY) {
            if (own != NULL && (t = crew__deque_pop(own)) != NULL)
                goto taken;
            if (w != NULL && w->pool == pool &&
                (t = crew__deque_steal(pool, w)) != NULL)
                goto taken;
            if (atomic_load_explicit(&pool->prio_n,
                                     memory_order_relaxed) > 0 &&
                (t = crew__prio_take(pool, true)) != NULL)
                goto taken;
            return NULL;
        }
        sched_yield();          /* a producer is between its two steps */
    }
taken:
    crew__unqueue(pool, t);
    return t;
}

/*
 * A record stops waiting: it was taken, cancelled or withdrawn.  Whichever
 * comes first takes it out of the counts, once; a cancelled record may
 * stay in the list until popped, but no longer counts or holds a slot.
 */
void crew__unqueue(crew_t *pool, struct crew__rec *t)
{
    unsigned char was;

    /* Not counted (any more, or ever: QUEUED_LOCAL): nothing to do, and
     * no locked write.  It only goes from counted to not, so a load that
     * sees it so is right; one that sees it counted goes on to the
     * exchange, which decides. */
    if (atomic_load_explicit(&t->waiting, memory_order_relaxed) ==
        CREW__UNCOUNTED)
        return;
    /* Relaxed: the exchange only has to pick one winner; the record's
     * fields are ordered by the queue links and the state CAS. */
    was = atomic_exchange_explicit(&t->waiting, CREW__UNCOUNTED,
                                   memory_order_relaxed);
    if (was == CREW__UNCOUNTED)
        return;
    /* Relaxed: only the increments take part in the hand-off; a stale
     * high count costs a sleeper one empty pop, never a lost task. */
    atomic_fetch_add_explicit(&pool->taken, 1, memory_order_relaxed);
    if (was == CREW__HOLDS_SLOT)
        crew__slot_freed(pool);
}

_Thread_local unsigned crew__help_depth;

/* Run one queued task while waiting, one level deeper. */
bool crew__help_one(crew_t *pool)
{
    bool ran;

    crew__help_depth++;
    ran = crew__try_run_one(pool, crew__self->id);
    crew__help_depth--;
    return ran;
}

bool crew__try_run_one(crew_t *pool, unsigned worker_id)
{
    struct crew__rec *t = crew__take(pool);

    if (t == NULL)
        return false;
    crew__pass_on(pool);
    crew__run_taken(pool, t, worker_id);
    return true;
}

/*
 * A worker that has just taken a task: if more work waits, a worker
 * sleeps and no wake-up is in flight, wake one (see the top of the file).
 * Costs a load or two when there is nothing to do.
 */
void crew__pass_on(crew_t *pool)
{
    const struct crew__worker *w = crew__self;

    /* seq_cst: the load half of passing wake-ups on; the worker's own
     * deque holds what no counter shows (deque.c).  Sleepers first: with
     * none, as in a busy pool, the counters' lines are not read. */
    if (atomic_load_explicit(&pool->idle_avail, memory_order_seq_cst) == 0 ||
        atomic_load_explicit(&pool->waking, memory_order_seq_cst) != 0 ||
        (crew__queued(pool) == 0 &&
         (w == NULL || w->pool != pool || w->deq == NULL ||
          !crew__deque_busy(w->deq))))
        return;
    crew__wake_for_work(pool);
}

/* A worker leaves the sleep loop: give up its place, take a token. */
static bool leave_locked(crew_t *pool, struct crew__fiber *_Atomic *inbox)
{
    bool had_token = pool->tokens > 0;

    if (inbox != NULL)
        atomic_fetch_sub_explicit(&pool->sched_sleepers, 1,
                                  memory_order_relaxed);
    pool->sleepers--;
    if (had_token)
        pool->tokens--;
    crew__publish_idle_locked(pool);
    return had_token;
}

/*
 * The newest sleepers (at most HOT_MAX) each wait on a condition variable
 * of their own, and a wake-up goes to the newest of them: the worker that
 * slept last, whose caches are warmest, and the same one again and again
 * when tasks come one at a time (W4's p99 of submit-to-start halved, 21
 * to 31 us against 44 to 59, when a wake-up stopped going to whichever
 * sleeper had waited longest, as work_cv picks).  Older sleepers wait on
 * work_cv.  The list and the `hot` flags are under pool->lock.
 */
#define HOT_MAX 4

/* Where w is to wait now: its own hot_cv if there is room on the list. */
static pthread_cond_t *hot_push_locked(crew_t *pool, struct crew__worker *w)
{
    if (w == NULL || pool->opts.fibers || pool->nhot >= HOT_MAX)
        return &pool->work_cv;
    w->hot = true;
    w->hot_next = pool->hot;
    pool->hot = w;
    pool->nhot++;
    return &w->hot_cv;
}

/* w stopped waiting: off the list, unless a waker took it off already. */
static void hot_drop_locked(crew_t *pool, struct crew__worker *w)
{
    struct crew__worker **pp = &pool->hot;

    if (w == NULL || !w->hot)
        return;
    while (*pp != w)
        pp = &(*pp)->hot_next;
    *pp = w->hot_next;
    w->hot = false;
    pool->nhot--;
}

/*
 * Wake one sleeper (its token handed out already).  Returns the worker
 * whose hot_cv the caller signals after dropping the lock (so that the
 * sleeper does not wake only to block on it), or NULL if the caller is to
 * signal work_cv.  hot_signals keeps the worker from being freed until
 * that signal is done (worker_leave waits for it).  Relaxed: the count is
 * only read by the worker itself, after it took the lock we held.
 */
static struct crew__worker *hot_pop_locked(crew_t *pool)
{
    struct crew__worker *w = pool->hot;

    if (w == NULL)
        return NULL;
    pool->hot = w->hot_next;
    w->hot = false;
    pool->nhot--;
    atomic_fetch_add_explicit(&w->hot_signals, 1, memory_order_relaxed);
    return w;
}

/* Signal what hot_pop_locked() chose, without the lock. */
static void signal_one(crew_t *pool, struct crew__worker *w)
{
    if (w == NULL) {
        pthread_cond_signal(&pool->work_cv);
        return;
    }
    pthread_cond_signal(&w->hot_cv);
    /* Release: our use of hot_cv comes before the worker's free of it,
     * which follows its acquire load of zero. */
    atomic_fetch_sub_explicit(&w->hot_signals, 1, memory_order_release);
}

/* Wake every sleeper (they re-check what they wait for).  Call with
 * pool->lock held. */
void crew__wake_all_locked(crew_t *pool)
{
    pthread_cond_broadcast(&pool->work_cv);
    for (struct crew__worker *w = pool->hot; w != NULL; w = w->hot_next)
        pthread_cond_signal(&w->hot_cv);
}

/* Free a worker that has left (joined, or detached and done). */
void crew__worker_free(struct crew__worker *w)
{
    pthread_cond_destroy(&w->hot_cv);
    free(w);
}

/*
 * A worker that stops being one.  Called with pool->lock held, after
 * leave_locked().  If it had been handed a wake-up it cannot honour, it
 * passes the wake-up on so queued work is not stranded.
 */
static void retire_locked(crew_t *pool, bool had_token)
{
    /*
     * seq_cst, with the load of queued below: a submitter stores queued,
     * then loads live (crew__enqueue).  Either it sees us gone and starts
     * a worker itself, or we see its task here and start one for it, so a
     * task submitted as the last idle worker retires is not stranded
     * (found by the stress harness).  Not when shrinking below the live
     * count: the workers that stay take it.
     */
    atomic_fetch_sub_explicit(&pool->live, 1, memory_order_seq_cst);
    if ((crew__queued(pool) > 0 || crew__deques_busy(pool)) &&
        pool->sleepers == pool->tokens &&
        atomic_load_explicit(&pool->state, memory_order_relaxed) ==
            CREW__RUNNING_STATE &&
        atomic_load_explicit(&pool->live, memory_order_relaxed) <
            atomic_load_explicit(&pool->max_target, memory_order_relaxed))
        (void)crew__spawn_locked(pool);
    update_shown_locked(pool);
    if (had_token && pool->sleepers > pool->tokens) {
        pool->tokens++;
        crew__publish_idle_locked(pool);
        signal_one(pool, hot_pop_locked(pool));
    }
    /* crew_resize() and crew_shutdown() wait for live to drop. */
    pthread_cond_broadcast(&pool->done_cv);
}

/*
 * Should a worker between tasks (live workers: `live`) leave rather than
 * take more work?  When the pool is above its maximum (a shrink), and
 * when a lender waits to take its place back and no place is free.
 * Relaxed: a peek outside the lock says only whether to look under it.
 */
static bool place_wanted(crew_t *pool, unsigned live)
{
    unsigned max = atomic_load_explicit(&pool->max_target,
                                        memory_order_relaxed);

    return live > max ||
           (live == max && atomic_load_explicit(&pool->reclaiming,
                                                memory_order_relaxed) > 0);
}

/*
 * Sleep until there is work.  Returns true to go back to work, false when
 * this worker has retired (pool->live already lowered).  In fiber mode,
 * `until_ns` (CLOCK_MONOTONIC, 0: none) is when the thread's nearest
 * parked fiber is due, and `stay` says it has fibers and must not leave;
 * queued work counts only while the fiber budget has room; `inbox` is the
 * scheduler's list of fibers woken from other threads (NULL in thread
 * mode), and a fiber there ends the sleep.
 */
bool crew__idle(crew_t *pool, int64_t until_ns, bool stay,
                struct crew__fiber *_Atomic *inbox)
{
    struct timespec deadline;
    bool fibers = pool->opts.fibers;
    bool timed = !fibers && pool->opts.idle_timeout_ns > 0;
    bool timed_out = false;
    bool had_token;

    /* The records it freed, added up before a sleep that may be long. */
    crew__records_flush(pool);
    if (timed)
        crew__deadline(&deadline, pool->opts.idle_timeout_ns);
    if (until_ns > 0) {
        deadline.tv_sec = (time_t)(until_ns / 1000000000);
        deadline.tv_nsec = (long)(until_ns % 1000000000);
    }
    pthread_mutex_lock(&pool->lock);
    pool->sleepers++;
    crew__publish_idle_locked(pool);
    /* seq_cst: a waker pushes to the inbox, then loads this count; we
     * count ourselves, then load the inbox (below, under the lock we
     * wait with).  One side sees the other: either we find the fiber, or
     * the waker takes the lock and wakes us. */
    if (inbox != NULL)
        atomic_fetch_add_explicit(&pool->sched_sleepers, 1,
                                  memory_order_seq_cst);
    for (;;) {
        unsigned live = atomic_load_explicit(&pool->live,
                                             memory_order_relaxed);
        int state = atomic_load_explicit(&pool->state, memory_order_seq_cst);

        if (inbox != NULL &&
            atomic_load_explicit(inbox, memory_order_seq_cst) != NULL)
            goto back;

        /* Shrunk below us, or a lender wants its place back and none is
         * free: retire even if work waits (others remain). */
        if (!stay && place_wanted(pool, live))
            break;
        /* seq_cst: the load half of the hand-off (see the top; and
         * deque.c for tasks in deques that no counter shows). */
        if ((crew__queued(pool) > 0 ||
             (!fibers && crew__deques_busy(pool))) &&
            (!fibers || crew__fiber_budget_left(pool)))
            goto back;
        /*
         * Shutting down and nothing outstanding: no task can come any more,
         * since submits count themselves in `outstanding` before they read
         * the state (see submit() in task.c).
         */
        if (!stay && state != CREW__RUNNING_STATE &&
            atomic_load_explicit(&pool->outstanding,
                                 memory_order_seq_cst) == 0)
            break;
        /* Fiber mode, shutdown NOW: back to the scheduler, which wakes
         * its parked fibers so their sleeps end; once stopped, back to
         * it too, which leaves the pool's count with the fibers left
         * (timed-out tasks still running) and never comes here again. */
        if (stay && state >= CREW__CANCELLING)
            goto back;
        if (timed_out && state == CREW__RUNNING_STATE &&
            live > pool->min_workers)
            break;
        if (until_ns > 0) {
            /* A parked fiber is due then: back to the scheduler. */
            if (timed_out || pthread_cond_timedwait(&pool->work_cv,
                                                    &pool->lock,
                                                    &deadline) == ETIMEDOUT)
                goto back;
        } else {
            pthread_cond_t *cv = hot_push_locked(pool, crew__self);

            /* An idle timeout counts only above the minimum. */
            if (timed && live > pool->min_workers && !timed_out) {
                if (pthread_cond_timedwait(cv, &pool->lock, &deadline) ==
                    ETIMEDOUT)
                    timed_out = true;
            } else {
                pthread_cond_wait(cv, &pool->lock);
            }
            hot_drop_locked(pool, crew__self);
        }
        if (pool->tokens > 0)
            goto back;
    }
    had_token = leave_locked(pool, inbox);
    retire_locked(pool, had_token);
    pthread_mutex_unlock(&pool->lock);
    return false;
back:
    leave_locked(pool, inbox);
    pthread_mutex_unlock(&pool->lock);
    return true;
}

/* The end of a worker: the stop hook, then out of the pool's books. */
static void worker_leave(struct crew__worker *w)
{
    crew_t *pool = w->pool;

    crew__finish_pay(pool, w);
    crew__deque_release(pool, w);
    crew__records_flush(pool);
    if (pool->opts.on_thread_stop)
        pool->opts.on_thread_stop(pool, w->id, pool->opts.user);
    crew__self = NULL;
    pthread_mutex_lock(&pool->lock);
    if (w->overtime)
        pool->overtime--;
    /* A waker that chose us may still be signalling hot_cv (it dropped
     * the lock first): let it finish before we can be freed.  Acquire:
     * pairs with its release. */
    while (atomic_load_explicit(&w->hot_signals, memory_order_acquire) != 0)
        sched_yield();
    if (w->detached) {
        struct crew__worker **pp = &pool->left_behind;

        /* Left behind by a shutdown that could not wait for us: nobody
         * joins us, and we may be the last user of the pool. */
        while (*pp != w)
            pp = &(*pp)->next;
        *pp = w->next;
        crew__stat_fold_locked(pool, w);
        pthread_mutex_unlock(&pool->lock);
        crew__worker_free(w);
        crew__pool_unref(pool);
        return;
    }
    crew__stat_fold_locked(pool, w);
    w->exited = true;           /* the last touch: now it may be joined */
    pool->exited++;
    pthread_cond_broadcast(&pool->done_cv);
    pthread_mutex_unlock(&pool->lock);
}

/*
 * A task (or a callback) called pthread_exit() on a worker: the thread is
 * going, in the middle of the task.  Report the task that was running as
 * failed (CREW_EEXIT) so nobody waits for it, take the worker out of the
 * live count, and start a replacement if work waits.  In fiber mode the
 * thread's other fibers are lost with it: their tasks are reported
 * CREW_EEXIT too, and so are the tasks with a policy it ran nested in
 * (helping waits).  Known limitation: plain tasks it ran nested in are
 * not reported.
 */
static void worker_exit_early(void *arg)
{
    struct crew__worker *w = arg;
    crew_t *pool = w->pool;
    const struct crew__rec *t = crew__running;

    /* First: no task may name this worker as its runner once it goes,
     * and abandoning may free the tasks. */
    pthread_mutex_lock(&pool->lock);
    crew__policy_thread_gone_locked(w);
    pthread_mutex_unlock(&pool->lock);
    crew__abandon(pool, (struct crew__rec *)t, crew__proxy);
    crew__proxy = NULL;
    if (pool->opts.fibers)
        crew__fiber_thread_lost(pool);  /* and the thread's other fibers */
    pthread_mutex_lock(&pool->lock);
    if (!w->overtime)
        atomic_fetch_sub_explicit(&pool->live, 1, memory_order_relaxed);
    if (w->overtime) {
        w->overtime = false;
        pool->overtime--;
    }
    if (crew__queued_hint(pool) + crew__deques_held(pool) >
            pool->sleepers - pool->tokens &&
        atomic_load_explicit(&pool->state, memory_order_relaxed) !=
            CREW__STOPPED)
        (void)crew__spawn_locked(pool);
    pthread_cond_broadcast(&pool->done_cv);
    pthread_mutex_unlock(&pool->lock);
    worker_leave(w);
}

/*
 * Before going to sleep, a worker looks for work a little longer: in
 * fork-join and task chains, new work usually comes within microseconds,
 * and a sleep costs a futex wait here plus a lock, a signal and a kernel
 * wake-up for whoever brings the work.  At most max_spinning workers
 * (half the CPUs) spin at once, so idle pools do not eat the machine.
 * Returns true if work showed up.
 */
#define SPIN_ROUNDS 64

static bool spin_for_work(crew_t *pool)
{
    bool found = false;
    /* Relaxed: a cap on how many spin, not a hand-off. */
    unsigned n = atomic_load_explicit(&pool->spinning, memory_order_relaxed);

    do {
        if (n >= pool->max_spinning)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(
        &pool->spinning, &n, n + 1, memory_order_relaxed,
        memory_order_relaxed));
    for (int i = 0; i < SPIN_ROUNDS && !found; i++) {
        for (int k = 0; k < 32; k++)
            crew__cpu_relax();
        /* Relaxed: a hint; the take that follows synchronises. */
        found = crew__queued_hint(pool) > 0 || crew__deques_busy(pool);
        if (!found && (i & 7) == 7)
            sched_yield();
    }
    atomic_fetch_sub_explicit(&pool->spinning, 1, memory_order_relaxed);
    return found;
}

static void *worker_main(void *p)
{
    struct crew__worker *w = p;
    crew_t *pool = w->pool;

    crew__self = w;
    crew__deque_claim(pool, w);
    pthread_cleanup_push(worker_exit_early, w);
    if (pool->opts.on_thread_start)
        pool->opts.on_thread_start(pool, w->id, pool->opts.user);
    if (pool->opts.fibers)
        crew__sched_loop(pool, w);
    for (; !pool->opts.fibers;) {
        bool wanted;

        /* Under the lock, it was set: stuck in a timed-out task, this
         * worker was replaced and no room was left when it came back. */
        if (w->overtime)
            break;
        /* Relaxed peek; idle() re-checks under the lock before retiring. */
        wanted = place_wanted(pool, atomic_load_explicit(
                                        &pool->live, memory_order_relaxed));
        if (!wanted && crew__try_run_one(pool, w->id))
            continue;
        /* Nothing to run, or it may leave: no cover while it spins or
         * sleeps (its deque, if it still holds tasks, spills). */
        crew__cover_settle(pool, w);
        /* And the drops of outstanding it owes (task.c).  Relaxed peek:
         * only this worker adds to fin_owed. */
        if (atomic_load_explicit(&w->fin_owed, memory_order_relaxed) != 0)
            crew__finish_pay(pool, w);
        if (!wanted &&
            atomic_load_explicit(&pool->state, memory_order_relaxed) ==
                CREW__RUNNING_STATE &&
            spin_for_work(pool))
            continue;
        if (!crew__idle(pool, 0, false, NULL))
            break;
    }
    pthread_cleanup_pop(0);
    worker_leave(w);
    return NULL;
}

/* Move a worker's share of the statistics into the pool's totals.  Call
 * on the worker itself as it exits, with pool->lock held: only it writes
 * its share, so nothing is lost between the read and the zeroing. */
void crew__stat_fold_locked(crew_t *pool, struct crew__worker *w)
{
    /* Relaxed: reporting only; the lock orders this with crew_stats(). */
    atomic_fetch_add_explicit(&pool->n_running,
        (uint64_t)atomic_exchange_explicit(&w->s_running, 0,
                                           memory_order_relaxed),
        memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->n_completed,
        (uint64_t)atomic_exchange_explicit(&w->s_completed, 0,
                                           memory_order_relaxed),
        memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->n_failed,
        (uint64_t)atomic_exchange_explicit(&w->s_failed, 0,
                                           memory_order_relaxed),
        memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->n_submitted,
        (uint64_t)atomic_exchange_explicit(&w->s_submitted, 0,
                                           memory_order_relaxed),
        memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->n_local,
        atomic_exchange_explicit(&w->s_local, 0, memory_order_relaxed),
        memory_order_relaxed);
}

/* Join and free workers that have left.  Call with pool->lock held. */
void crew__reap_locked(crew_t *pool)
{
    struct crew__worker **pp = &pool->workers;

    while (pool->exited > 0 && *pp != NULL) {
        struct crew__worker *w = *pp;

        if (w->exited) {
            *pp = w->next;
            pool->exited--;
            /* It only has to return from pthread_mutex_unlock: quick. */
            pthread_join(w->tid, NULL);
            crew__worker_free(w);
        } else {
            pp = &w->next;
        }
    }
}

/*
 * Start one worker.  Call with pool->lock held.  Worker threads block every
 * signal, so signals go to the application's own threads.
 */
int crew__spawn_locked(crew_t *pool)
{
    struct crew__worker *w;
    pthread_attr_t attr;
    sigset_t all, old;
    int rc;
    /* Workers stuck in timed-out tasks do not count against max_workers,
     * but only max_overtime of them may be replaced: a pool of hung tasks
     * does not grow without end. */
    unsigned live = atomic_load_explicit(&pool->live, memory_order_relaxed);
    unsigned max = atomic_load_explicit(&pool->max_target,
                                        memory_order_relaxed);

    /* Never above the maximum in force (a replacement for a stuck worker
     * during a shrink waits for the shrink to finish), counting places
     * that lenders are waiting to take back (see crew__reclaim). */
    live += atomic_load_explicit(&pool->reclaiming, memory_order_relaxed);
    /* Workers whose place is lent (blocked in waits) are not bounded
     * here: a bound would bring back the deadlock lending is for (a
     * chain of waits deeper than the bound on a small pool; the stress
     * harness met it).  There is one per task blocked in such a wait. */
    if (live >= max || live + pool->overtime >= max + pool->opts.max_overtime)
        return CREW_EAGAIN;
    crew__reap_locked(pool);
    w = crew__calloc(1, sizeof(*w));
    if (w == NULL)
        return CREW_ENOMEM;
    w->pool = pool;
    w->id = pool->next_id;
    if (crew__cond_init(&w->hot_cv) != 0) {
        free(w);
        return CREW_ENOMEM;
    }
    if (pthread_attr_init(&attr) != 0) {
        crew__worker_free(w);
        return CREW_ENOMEM;
    }
    if (pool->opts.stack_size != 0 &&
        pthread_attr_setstacksize(&attr,
                                  crew__stack_size(pool->opts.stack_size)) !=
            0) {
        pthread_attr_destroy(&attr);
        crew__worker_free(w);
        return CREW_EINVAL;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = crew__thread_create(&w->tid, &attr, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        crew__worker_free(w);
        return CREW_ETHREAD;
    }
    pool->next_id++;
    w->next = pool->workers;
    pool->workers = w;
    /* Relaxed: live changes only under pool->lock; submitters that read it
     * without the lock only use it to skip a wake-up they would not need
     * (see crew__wake_for_work). */
    atomic_fetch_add_explicit(&pool->live, 1, memory_order_relaxed);
    if (atomic_load_explicit(&pool->live, memory_order_relaxed) >
        pool->peak)
        pool->peak = atomic_load_explicit(&pool->live,
                                          memory_order_relaxed);
    update_shown_locked(pool);
    return 0;
}

/*
 * A submitter has queued work and found a sleeper or room to grow: wake a
 * sleeper, or start a worker.  Returns CREW_ETHREAD only when no worker is
 * alive and none could start, so nothing would ever run the task.
 */
int crew__wake_for_work(crew_t *pool)
{
    struct crew__worker *hot = NULL;
    bool signal = false;
    int rc = 0;

    pthread_mutex_lock(&pool->lock);
    if (pool->sleepers > pool->tokens) {
        pool->tokens++;
        crew__publish_idle_locked(pool);
        hot = hot_pop_locked(pool);
        signal = true;
    } else if (atomic_load_explicit(&pool->state, memory_order_relaxed) !=
                   CREW__STOPPED &&
               atomic_load_explicit(&pool->live, memory_order_relaxed) <
                   atomic_load_explicit(&pool->max_target,
                                        memory_order_relaxed)) {
        /* With no worker at all the task would never run; unless stuck
         * workers may come back (they rejoin when they return). */
        if (crew__spawn_locked(pool) != 0 &&
            atomic_load_explicit(&pool->live, memory_order_relaxed) == 0 &&
            pool->overtime == 0 && pool->lent == 0)
            rc = CREW_ETHREAD;
    }
    pthread_mutex_unlock(&pool->lock);
    /*
     * Signal after unlocking, so the sleeper does not wake only to block on
     * the lock we hold.  The token was handed out under the lock, so a
     * sleeper that wakes for another reason takes it and nothing is lost.
     */
    if (signal)
        signal_one(pool, hot);
    return rc;
}

/* --- Waits inside tasks (thread mode) -------------------------------- */

/*
 * A task that waits (crew_task_wait, crew_group_wait, crew_event_wait) for
 * work of its own pool may wait for tasks that are not even queued yet (a
 * delay, a backoff) or that its worker could not help with; on a small
 * pool nothing would be left to run them.  So a worker that has blocked in
 * such a wait for LEND_AFTER_NS lends its place: it leaves the live count
 * and a worker starts for queued work no sleeper takes.  When the wait
 * ends it takes its place back, waiting if need be until a worker between
 * tasks gives one up (place_wanted), so that max_workers still bounds the
 * workers that run.  The delay keeps short waits (fork-join, where the
 * awaited task is usually running already) from starting threads.
 */
#define LEND_AFTER_NS (2LL * 1000 * 1000)

void crew__lend_init(struct crew__lend *l)
{
    struct crew__worker *w = crew__self;

    l->pool = NULL;
    l->lent = false;
    /* Only a task's wait: not a start or stop hook's, which run on a
     * worker that does not hold a place (yet, or any more). */
    if (w != NULL && crew__running != NULL && !w->pool->opts.fibers &&
        !crew__in_fiber()) {
        l->pool = w->pool;
        l->at = 0;              /* set at the first step that blocks: a
                                   wait that never blocks reads no clock */
    }
}

/* Is it time to lend?  If not yet, lowers *until (0: none) to that time,
 * for the caller's timed wait. */
bool crew__lend_due(struct crew__lend *l, int64_t *until)
{
    if (l->pool == NULL || l->lent)
        return false;
    if (l->at == 0)
        l->at = crew__after_ns(LEND_AFTER_NS);
    else if (crew__now_ns() >= l->at)
        return true;
    if (*until == 0 || l->at < *until)
        *until = l->at;
    return false;
}

/* Lend the place (once per wait).  Call with no crew lock held. */
void crew__lend(struct crew__lend *l)
{
    crew_t *pool = l->pool;
    struct crew__worker *w = crew__self;

    l->lent = true;
    pthread_mutex_lock(&pool->lock);
    if (w->overtime || w->lent ||
        atomic_load_explicit(&pool->state, memory_order_relaxed) ==
            CREW__STOPPED) {
        l->pool = NULL;         /* not counted now: nothing to take back */
        pthread_mutex_unlock(&pool->lock);
        return;
    }
    w->lent = true;
    pool->lent++;
    /* seq_cst, with the load of queued: as in retire_locked(), a task
     * submitted meanwhile is either seen here or sees us gone. */
    atomic_fetch_sub_explicit(&pool->live, 1, memory_order_seq_cst);
    if (crew__queued(pool) + crew__deques_held(pool) >
        pool->sleepers - pool->tokens)
        (void)crew__spawn_locked(pool);
    update_shown_locked(pool);
    /* crew_resize() waits for live to drop. */
    pthread_cond_broadcast(&pool->done_cv);
    pthread_mutex_unlock(&pool->lock);
}

/*
 * The wait is over: take the place back, when there is one.  A worker
 * whose attempt timed out meanwhile is overtime instead (mark_overtime)
 * and comes back as such (see leave() in policy.c).
 */
void crew__reclaim(struct crew__lend *l)
{
    crew_t *pool = l->pool;
    struct crew__worker *w = crew__self;
    unsigned live;

    if (pool == NULL || !l->lent)
        return;
    pthread_mutex_lock(&pool->lock);
    while (w->lent &&
           atomic_load_explicit(&pool->live, memory_order_relaxed) >=
               atomic_load_explicit(&pool->max_target,
                                    memory_order_relaxed) &&
           atomic_load_explicit(&pool->state, memory_order_relaxed) !=
               CREW__STOPPED) {
        /* Relaxed: written under the lock; workers peek at it. */
        atomic_fetch_add_explicit(&pool->reclaiming, 1,
                                  memory_order_relaxed);
        crew__wake_all_locked(pool);    /* a sleeper gives */
        pthread_cond_wait(&pool->done_cv, &pool->lock);
        atomic_fetch_sub_explicit(&pool->reclaiming, 1,
                                  memory_order_relaxed);
    }
    if (w->lent) {
        w->lent = false;
        pool->lent--;
        live = atomic_fetch_add_explicit(&pool->live, 1,
                                         memory_order_relaxed) + 1;
        if (live > pool->peak)
            pool->peak = live;
    }
    pthread_mutex_unlock(&pool->lock);
}

/*
 * One wait on `cv` (with `mu` held) of a loop that waits for something
 * inside a task, or anywhere: at the lending time (crew__lend_due) it
 * lends the worker's place instead, with `mu` dropped meanwhile (the
 * waiters' locks are leaves, pool->lock must not be taken under them).
 * Returns ETIMEDOUT once `until` (ns on CLOCK_MONOTONIC, 0: none) has
 * passed, else 0 (woken, lent, or spurious: the caller re-checks).
 */
int crew__wait_step(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until,
                    struct crew__lend *l)
{
    int64_t end = until;
    struct timespec ts;

    if (crew__lend_due(l, &end)) {
        pthread_mutex_unlock(mu);
        crew__lend(l);
        pthread_mutex_lock(mu);
        return 0;
    }
    if (end == 0) {
        pthread_cond_wait(cv, mu);
        return 0;
    }
    ts.tv_sec = (time_t)(end / 1000000000);
    ts.tv_nsec = (long)(end % 1000000000);
    if (pthread_cond_timedwait(cv, mu, &ts) == ETIMEDOUT && end == until)
        return ETIMEDOUT;
    return 0;
}

/* A thread's stack size: what the options ask, but never below what the
 * system accepts (PTHREAD_STACK_MIN is 128 KiB on AArch64 glibc, more
 * than the 16 KiB crew allows asking for). */
size_t crew__stack_size(size_t asked)
{
    long min = sysconf(_SC_THREAD_STACK_MIN);

    return min > 0 && asked < (size_t)min ? (size_t)min : asked;
}
