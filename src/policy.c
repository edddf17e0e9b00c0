/*
 * policy.c - task policies that need a clock: delayed starts, per-attempt
 * timeouts, and retries with backoff, all driven by one timer thread per
 * pool (started on first use).
 *
 * A task with a policy is a struct crew_task that is never queued itself.
 * Each attempt queues a small proxy record (flags CREW__F_PROXY, arg the
 * task, state the attempt number), so a stale proxy of an attempt that
 * timed out while queued can sit in the queue while the next attempt is
 * already waiting out its backoff; when popped, it is simply dropped.
 *
 * The task's `phase` (attempt << 8 | CREW__PH_*) moves only by
 * compare-and-swap, and whoever wins a move does what it implies:
 *
 *   (k, WAIT)    --timer, due-->          (k, QUEUED)   proxy k queued
 *   (k, QUEUED)  --worker pops proxy k--> (k, RUNNING)
 *   (k, RUNNING) --fn returns-->          (k+1, WAIT) retry | (k, FINAL)
 *   (k, QUEUED | RUNNING) --deadline-->   (k+1, WAIT) retry | (k, FINAL)
 *   (k, WAIT | QUEUED) --cancel-->        (k, FINAL)
 *
 * So an attempt ends exactly once: by returning, or by its deadline, never
 * both; and the task is reported exactly once, by whoever moves it to
 * FINAL.  An attempt whose deadline won returns "late": its result goes to
 * free_result, and its worker has meanwhile stopped counting against
 * max_workers (it is "overtime") so that a replacement could start.
 *
 * References to a policy task: the caller's future (if any), the pool's
 * (dropped when the task is reported), one per queued proxy (taken over
 * by the attempt that runs it), and one per timer entry.
 *
 * Locks: pool->tlock guards the timer heap and is never held while calling
 * out; pool->lock may be taken under it (to wake the timer thread is the
 * other way round: tlock alone).  The timer thread runs callbacks of tasks
 * reported at their deadline, with no lock held.
 */
#include "crew_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#define PH_BITS 8
#define PH(p) ((unsigned)((p) & 0xff))
#define ATTEMPT(p) ((unsigned)((p) >> PH_BITS))
#define PHASE(k, ph) (((uint64_t)(k) << PH_BITS) | (uint64_t)(ph))

int64_t crew__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* now + ns on CLOCK_MONOTONIC, saturating instead of overflowing. */
int64_t crew__after_ns(int64_t ns)
{
    int64_t now = crew__now_ns();

    return ns > INT64_MAX - now ? INT64_MAX : now + ns;
}

bool crew__uses_policy(const crew_t *pool, const crew_task_opts_t *opts)
{
    if (pool->opts.task_timeout_ns > 0 &&
        (opts == NULL || opts->timeout_ns >= 0))
        return true;
    return opts != NULL && (opts->delay_ns != 0 || opts->timeout_ns > 0 ||
                            opts->retries != 0);
}

int crew__policy_check(const crew_task_opts_t *opts)
{
    if (opts == NULL)
        return 0;
    if (opts->delay_ns < 0 || opts->backoff.kind < CREW_BACKOFF_NONE ||
        opts->backoff.kind > CREW_BACKOFF_EXPONENTIAL ||
        opts->backoff.base_ns < 0 || opts->backoff.cap_ns < 0 ||
        opts->backoff.jitter_pct > 100)
        return CREW_EINVAL;
    return 0;
}

void crew__policy_init(struct crew_task *f, const crew_t *pool,
                       const crew_task_opts_t *opts)
{
    f->timeout_ns = pool->opts.task_timeout_ns;
    if (opts != NULL) {
        if (opts->timeout_ns != 0)
            f->timeout_ns = opts->timeout_ns;
        atomic_init(&f->retries_left, opts->retries);
        f->backoff = opts->backoff;
        f->retry_if = opts->retry_if;
        f->delay_ns = opts->delay_ns;
    }
    if (f->timeout_ns < 0)
        f->timeout_ns = 0;
    f->heap_idx = CREW__NO_TIMER;
    atomic_init(&f->phase, PHASE(1, CREW__PH_WAIT));
    f->runner = NULL;
}

/* --- The timer heap: a binary min-heap on (when, tseq) ----------------- */

static bool before(const struct crew_task *a, const struct crew_task *b)
{
    return a->when < b->when || (a->when == b->when && a->tseq < b->tseq);
}

static void heap_set(crew_t *pool, size_t i, struct crew_task *f)
{
    pool->heap[i] = f;
    f->heap_idx = i;
}

static void sift_up(crew_t *pool, size_t i)
{
    struct crew_task *f = pool->heap[i];

    while (i > 0 && before(f, pool->heap[(i - 1) / 2])) {
        heap_set(pool, i, pool->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(pool, i, f);
}

static void sift_down(crew_t *pool, size_t i)
{
    struct crew_task *f = pool->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= pool->heap_len)
            break;
        if (c + 1 < pool->heap_len && before(pool->heap[c + 1],
                                             pool->heap[c]))
            c++;
        if (!before(pool->heap[c], f))
            break;
        heap_set(pool, i, pool->heap[c]);
        i = c;
    }
    heap_set(pool, i, f);
}

/* Remove f from the heap.  Call with tlock held and f in the heap. */
static void heap_remove(crew_t *pool, struct crew_task *f)
{
    size_t i = f->heap_idx;
    struct crew_task *last = pool->heap[--pool->heap_len];

    f->heap_idx = CREW__NO_TIMER;
    if (last == f)
        return;
    heap_set(pool, i, last);
    sift_up(pool, i);
    sift_down(pool, last->heap_idx);
}

/*
 * Arm f's timer entry (replacing none: a task has at most one).  Takes a
 * reference for the entry.  Returns CREW_ENOMEM if the heap cannot grow.
 */
static int timer_add(crew_t *pool, struct crew_task *f, unsigned char kind,
                     unsigned attempt, int64_t when)
{
    pthread_mutex_lock(&pool->tlock);
    if (pool->heap_len == pool->heap_cap) {
        size_t cap = pool->heap_cap ? pool->heap_cap * 2 : 64;
        struct crew_task **h = crew__malloc(cap * sizeof(*h));

        if (h == NULL) {
            pthread_mutex_unlock(&pool->tlock);
            return CREW_ENOMEM;
        }
        for (size_t i = 0; i < pool->heap_len; i++)
            h[i] = pool->heap[i];
        free(pool->heap);
        pool->heap = h;
        pool->heap_cap = cap;
    }
    /* Relaxed: the entry's reference; the count is ordered by tlock and,
     * at the end, by the acq_rel decrement that frees. */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    f->when = when;
    f->tseq = pool->tseq++;
    f->tkind = kind;
    f->tattempt = attempt;
    pool->heap_len++;
    heap_set(pool, pool->heap_len - 1, f);
    sift_up(pool, pool->heap_len - 1);
    if (f->heap_idx == 0)
        pthread_cond_signal(&pool->tcv);    /* a new earliest deadline */
    pthread_mutex_unlock(&pool->tlock);
    return 0;
}

/* Disarm f's timer entry if it has one, dropping the entry's reference. */
static void timer_del(crew_t *pool, struct crew_task *f)
{
    bool had;

    pthread_mutex_lock(&pool->tlock);
    had = f->heap_idx != CREW__NO_TIMER;
    if (had)
        heap_remove(pool, f);
    pthread_mutex_unlock(&pool->tlock);
    if (had)
        crew__future_unref(f);
}

/* --- Attempts ---------------------------------------------------------- */

static int64_t backoff_ns(crew_t *pool, struct crew_task *f, unsigned failed)
{
    const crew_backoff_t *b = &f->backoff;
    int64_t wait = 0;
    uint64_t r;

    if (b->kind == CREW_BACKOFF_FIXED) {
        wait = b->base_ns;
    } else if (b->kind == CREW_BACKOFF_EXPONENTIAL) {
        wait = b->base_ns;
        for (unsigned i = 1; i < failed && wait < INT64_MAX / 2; i++)
            wait *= 2;
        if (b->cap_ns > 0 && wait > b->cap_ns)
            wait = b->cap_ns;
    }
    if (wait > 0 && b->jitter_pct > 0) {
        pthread_mutex_lock(&pool->tlock);
        /* xorshift64: jitter only needs to spread retries apart. */
        r = pool->rng;
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        pool->rng = r;
        pthread_mutex_unlock(&pool->tlock);
        wait -= (int64_t)((double)wait * b->jitter_pct / 100.0 *
                          (double)(r % 1000001) / 1000000.0);
    }
    return wait;
}

/* Should an attempt that ended with err be followed by another? */
static bool want_retry(struct crew_task *f, int err)
{
    /*
     * Relaxed: the attempt that may act on this read is ordered after the
     * last decrement by the chain of phase CASes (acq_rel) that led to
     * it; a late attempt reads it too, but its CAS then fails and the
     * value is not used.
     */
    if (err == 0 || err == CREW_ECANCELED ||
        atomic_load_explicit(&f->retries_left, memory_order_relaxed) == 0)
        return false;
    /* Relaxed: a request flag; a retry that races with it is harmless. */
    if (atomic_load_explicit(&f->cancel_requested, memory_order_relaxed))
        return false;
    return f->retry_if == NULL || f->retry_if(err, f->user);
}

/*
 * The task's state for crew_task_state() (its final DONE or FAILED is
 * stored by crew__report()).  Every store of a policy task's state is made
 * under f->mu, so that run_proxy() can store RUNNING only while its
 * attempt still runs: without that, a worker that won the phase could
 * store RUNNING after the timer had ended the attempt and stored what
 * came next (found by the stress harness).  seq_cst: readers that see
 * the state see what led to it, and schedule_retry() pairs its store with
 * crew_task_cancel().
 */
static void set_state(struct crew_task *f, int state)
{
    pthread_mutex_lock(&f->mu);
    atomic_store_explicit(&f->rec.state, state, memory_order_seq_cst);
    pthread_mutex_unlock(&f->mu);
}

/* The same, only while the phase is still `phase` (an attempt that runs,
 * a retry that waits): a later move has stored what came next.  Acquire
 * on the phase: only to read the latest. */
static void set_state_if(struct crew_task *f, uint64_t phase, int state)
{
    pthread_mutex_lock(&f->mu);
    if (atomic_load_explicit(&f->phase, memory_order_acquire) == phase)
        atomic_store_explicit(&f->rec.state, state, memory_order_seq_cst);
    pthread_mutex_unlock(&f->mu);
}

/*
 * An attempt stops running: whoever moves its phase out of RUNNING (its
 * worker when fn returns, the timer at the deadline, the thread's cleanup
 * at pthread_exit) takes it out of the running counts, once.  So an
 * attempt that timed out and still runs no longer counts as running: its
 * task already counts as failed or waits for its next attempt.
 */
static void uncount(crew_t *pool, struct crew_task *f)
{
    crew__group_running(&f->rec, -1);
    crew__stat_running(pool, -1);
}

/* The task's reported end: callbacks, future, counts, pool's reference. */
static void finish(crew_t *pool, struct crew_task *f, int err, void *result,
                   bool on_worker)
{
    timer_del(pool, f);
    crew__stat_done(pool, err);
    crew__report(pool, &f->rec, err, result);
    if (on_worker)
        crew__finish_one(pool);
    else
        crew__finish_one_locked(pool);
    crew__future_unref(f);
}

/*
 * The task's end by cancellation, once this thread has moved its phase to
 * FINAL from WAIT or QUEUED: disarm its timer, report CREW_ECANCELED,
 * drop the pool's reference.  `on_worker`: see finish().
 */
static void report_cancelled(crew_t *pool, struct crew_task *f,
                             bool on_worker)
{
    timer_del(pool, f);
    set_state(f, CREW__CANCELED);
    atomic_fetch_add_explicit(&pool->n_cancelled, 1, memory_order_relaxed);
    crew__report(pool, &f->rec, CREW_ECANCELED, NULL);
    if (on_worker)
        crew__finish_one(pool);
    else
        crew__finish_one_locked(pool);
    crew__future_unref(f);
}

/*
 * Queue attempt k, whose phase this thread just set to (k, QUEUED): arm
 * its deadline, push a proxy.  Returns CREW_ETHREAD if no worker could
 * start for it, CREW_ENOMEM if no proxy could be made.
 */
static int queue_attempt(crew_t *pool, struct crew_task *f, unsigned k,
                         unsigned char count)
{
    struct crew__attempt *a = crew__malloc(sizeof(*a));
    struct crew__rec *p = &a->rec;
    int64_t deadline = 0;
    int rc;

    if (a == NULL)
        return CREW_ENOMEM;
    /*
     * Everything about the attempt is in place before its timer is armed:
     * the deadline may pass at once, and the timer (or a worker) may then
     * end the task while we are still here.  The proxy's reference keeps
     * the task alive meanwhile.  Relaxed: the reference is ordered by the
     * queue's release, which also publishes the proxy's deadline.
     */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    p->fn = NULL;
    p->arg = f;
    p->flags = CREW__F_PROXY;
    atomic_init(&p->state, (int)k);
    if (f->timeout_ns > 0)
        deadline = crew__after_ns(f->timeout_ns);
    a->deadline = deadline;
    if (deadline != 0 &&
        timer_add(pool, f, CREW__T_EXPIRE, k, deadline) != 0) {
        free(p);
        crew__future_unref(f);
        return CREW_ENOMEM;
    }
    rc = crew__enqueue(pool, p, count, f);
    if (rc == CREW_ENOMEM) {
        free(p);                /* never queued */
        crew__future_unref(f);
    }
    return rc;
}

/*
 * Attempt k has ended (failed or timed out) and the phase was moved to
 * (k + 1, WAIT) by this thread: schedule the next attempt after the
 * backoff, and give its result (NULL for a timeout) to free_result.  But
 * if a cancel request came in since want_retry(), end the task with this
 * attempt's outcome, its result included, as if it had not been allowed
 * a retry.  If the retry cannot be armed (no memory), report the error.
 */
static void schedule_retry(crew_t *pool, struct crew_task *f, unsigned k,
                           int err, void *result, bool on_worker)
{
    int64_t wait = backoff_ns(pool, f, k);

    /* QUEUED only while the retry is still waiting: a cancel may have
     * ended the task since our CAS and stored CANCELED (the fuzzer met
     * this: an attempt timed out queued, cancelled at once). */
    set_state_if(f, PHASE(k + 1, CREW__PH_WAIT), CREW__QUEUED);
    /*
     * seq_cst, with the store above: crew_task_cancel() stores its
     * request and then loads the state.  Either it sees QUEUED and
     * cancels the waiting retry itself, or we see its request here and
     * end the task with this attempt's error: a task is never retried
     * after a cancel request (one that said CREW_EBUSY included).
     */
    if (!atomic_load_explicit(&f->cancel_requested, memory_order_seq_cst)) {
        if (result != NULL && f->free_result != NULL)
            f->free_result(result);
        result = NULL;
        /* Relaxed: see want_retry(). */
        atomic_fetch_sub_explicit(&f->retries_left, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool->n_retries, 1, memory_order_relaxed);
        if (timer_add(pool, f, CREW__T_START, k + 1,
                      crew__after_ns(wait)) == 0) {
            /* A cancel (or shutdown NOW) that came in since our CAS has
             * ended the task and cleared its timer entries already: the
             * one just added would hold the timer thread (and a shutdown
             * waiting for it) until the backoff ends. */
            if (atomic_load_explicit(&f->phase, memory_order_acquire) ==
                PHASE(k + 1, CREW__PH_FINAL))
                timer_del(pool, f);
            return;
        }
    }
    {
        uint64_t p = PHASE(k + 1, CREW__PH_WAIT);

        if (atomic_compare_exchange_strong_explicit(
                &f->phase, &p, PHASE(k + 1, CREW__PH_FINAL),
                memory_order_acq_rel, memory_order_acquire)) {
            finish(pool, f, err, result, on_worker);
            return;
        }
    }
    /* A canceller ended it (CREW_ECANCELED, no result).  If that was
     * after our look at its request, no retry was counted: none was
     * scheduled. */
    if (result != NULL && f->free_result != NULL)
        f->free_result(result);
}

int crew__policy_start(crew_t *pool, struct crew_task *f, bool holds_slot,
                       bool inline_run)
{
    int rc;

    if (f->delay_ns > 0) {
        if (holds_slot)
            crew__slot_freed(pool);     /* it waits in the timer instead */
        return timer_add(pool, f, CREW__T_START, 1,
                         crew__after_ns(f->delay_ns));
    }
    atomic_store_explicit(&f->phase, PHASE(1, CREW__PH_QUEUED),
                          memory_order_relaxed);
    if (inline_run) {
        struct crew__attempt *a = crew__malloc(sizeof(*a));

        /* Run attempt 1 here, as crew_submit() does when the queue is
         * full on a worker of this pool. */
        if (a == NULL)
            return CREW_ENOMEM;
        a->rec.fn = NULL;
        a->rec.arg = f;
        a->rec.flags = CREW__F_PROXY;
        atomic_init(&a->rec.state, 1);
        atomic_init(&a->rec.waiting, CREW__UNCOUNTED);
        a->deadline = 0;
        /* As in queue_attempt: all in place before the timer is armed. */
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
        if (f->timeout_ns > 0) {
            a->deadline = crew__after_ns(f->timeout_ns);
            rc = timer_add(pool, f, CREW__T_EXPIRE, 1, a->deadline);
            if (rc != 0) {
                free(a);
                crew__future_unref(f);
                return rc;
            }
        }
        crew__run(pool, &a->rec, crew__self->id);   /* frees it */
        return 0;
    }
    rc = queue_attempt(pool, f, 1,
                       holds_slot ? CREW__HOLDS_SLOT : CREW__COUNTED);
    if (rc == 0)
        return 0;
    if (rc == CREW_ENOMEM && holds_slot)
        crew__slot_freed(pool);
    /* Take it back: nothing has run, and no worker may ever come. */
    {
        uint64_t p = PHASE(1, CREW__PH_QUEUED);

        if (!atomic_compare_exchange_strong_explicit(
                &f->phase, &p, PHASE(1, CREW__PH_FINAL),
                memory_order_acq_rel, memory_order_acquire))
            return 0;           /* a worker got to it after all */
    }
    timer_del(pool, f);
    return rc;
}

/*
 * The worker running an attempt whose deadline passed stops counting
 * against max_workers (up to max_overtime of them), and a replacement
 * starts if work is queued that no sleeper will take.
 */
static void mark_overtime(crew_t *pool, struct crew_task *f)
{
    struct crew__worker *w;

    if (pool->opts.fibers) {
        crew__fiber_overtime(pool, f);  /* its fiber, and maybe thread */
        return;
    }
    pthread_mutex_lock(&pool->lock);
    /*
     * runner is set and cleared under this lock by the worker itself
     * (enter(), leave()), so a worker found here has not left the attempt
     * and cannot have retired or been freed.  Only while it is still
     * inside that attempt itself, not nested in a helping wait (see
     * run_proxy).  (Fiber mode, where a thread runs many tasks, marks
     * the fiber and maybe its thread instead: crew__fiber_overtime.)
     * Every stuck worker is marked, so shutdown never waits for one;
     * max_overtime bounds the replacements (see crew__spawn_locked).
     */
    w = f->runner;
    if (w != NULL && w->current != NULL && w->current->rec.arg == f &&
        !w->overtime) {
        w->overtime = true;
        pool->overtime++;
        if (w->lent) {
            /* Out of the live count already, waiting inside the task: it
             * is overtime now, and comes back as such (crew__reclaim). */
            w->lent = false;
            pool->lent--;
        } else {
            atomic_fetch_sub_explicit(&pool->live, 1, memory_order_relaxed);
            /* A place is free: a lender waiting for one takes it. */
            pthread_cond_broadcast(&pool->done_cv);
        }
        if (atomic_load_explicit(&pool->live, memory_order_relaxed) <=
            atomic_load_explicit(&pool->max_target, memory_order_relaxed))
            pool->max_shown = atomic_load_explicit(&pool->max_target,
                                                   memory_order_relaxed);
        /* A replacement for queued work nobody sleeps for, within the
         * bound (crew__spawn_locked checks it). */
        if (crew__queued_hint(pool) + crew__deques_held(pool) >
                pool->sleepers - pool->tokens &&
            atomic_load_explicit(&pool->state, memory_order_relaxed) !=
                CREW__STOPPED)
            (void)crew__spawn_locked(pool);
    }
    pthread_mutex_unlock(&pool->lock);
}

/*
 * Enter or leave an attempt that has a deadline, under pool->lock, so that
 * mark_overtime() marks this worker only while it is inside the attempt.
 * Leaving, a worker marked overtime counts itself back in if there is
 * room; if not, it stays overtime and leaves the pool when back in its
 * loop.  Attempts nest (a wait that helps runs others on the same
 * stack): w->current is the innermost, chained through `outer`.
 */
static void enter(crew_t *pool, struct crew__attempt *a)
{
    struct crew__worker *w = crew__self;

    pthread_mutex_lock(&pool->lock);
    a->outer = w->current;
    w->current = a;
    ((struct crew_task *)a->rec.arg)->runner = w;
    pthread_mutex_unlock(&pool->lock);
}

/* The worker no longer runs attempt a's task: forget it as its runner
 * (a later attempt of the same task may run elsewhere by now). */
static void unrun_locked(struct crew__worker *w, struct crew__attempt *a)
{
    struct crew_task *f = a->rec.arg;

    if (f->runner == w)
        f->runner = NULL;
}

/*
 * A worker thread ends inside attempts (pthread_exit in a task, maybe
 * nested in a helping wait): none of their tasks may name it as runner
 * once it is freed.  With pool->lock held.
 */
void crew__policy_thread_gone_locked(struct crew__worker *w)
{
    for (struct crew__attempt *a = w->current; a != NULL; a = a->outer)
        unrun_locked(w, a);
    w->current = NULL;
}

static void leave(crew_t *pool, struct crew__attempt *a)
{
    struct crew__worker *w = crew__self;
    unsigned live;

    pthread_mutex_lock(&pool->lock);
    unrun_locked(w, a);
    w->current = a->outer;
    live = atomic_load_explicit(&pool->live, memory_order_relaxed);
    /*
     * Room again: count it back in, also while the pool drains (then it
     * takes the work still queued, which may have no other worker left).
     * Not once stopped: shutdown left it behind or is about to.
     */
    if (w->overtime && !w->detached &&
        atomic_load_explicit(&pool->state, memory_order_relaxed) !=
            CREW__STOPPED &&
        live < atomic_load_explicit(&pool->max_target,
                                    memory_order_relaxed)) {
        w->overtime = false;
        pool->overtime--;
        atomic_fetch_add_explicit(&pool->live, 1, memory_order_relaxed);
        if (live + 1 > pool->peak)
            pool->peak = live + 1;
    }
    pthread_mutex_unlock(&pool->lock);
}

void crew__run_proxy(crew_t *pool, struct crew__rec *proxy,
                     unsigned worker_id)
{
    struct crew_task *f = proxy->arg;
    unsigned k = (unsigned)atomic_load_explicit(&proxy->state,
                                                memory_order_relaxed);
    uint64_t p = PHASE(k, CREW__PH_QUEUED);
    struct crew_ctx ctx = { pool, &f->rec, worker_id, k, 0 };
    struct crew__attempt *a = (struct crew__attempt *)proxy;
    const struct crew__rec *outer;
    bool timed = f->timeout_ns > 0, late;
    /* Only thread mode tracks which worker is inside an attempt: in
     * fiber mode a thread interleaves many (see mark_overtime). */
    bool tracked = timed && !pool->opts.fibers;
    void *result = NULL;
    int err;

    /* No cover held while in an attempt that may stick (deque.c). */
    if (tracked && crew__self != NULL && crew__self->pool == pool)
        crew__cover_settle(pool, crew__self);

    /* Also after the stop: what is still queued then is stale (nothing
     * is outstanding), and this may be a thread outside the pool clearing
     * the queue (crew_shutdown), which must not enter(). */
    if (atomic_load_explicit(&pool->state, memory_order_relaxed) >=
        CREW__CANCELLING) {
        if (atomic_compare_exchange_strong_explicit(
                &f->phase, &p, PHASE(k, CREW__PH_FINAL),
                memory_order_acq_rel, memory_order_acquire)) {
            report_cancelled(pool, f, true);
        }
        goto drop;
    }
    if (tracked)
        enter(pool, a);
    /* Counted once each way: this +1, before the phase says RUNNING, and
     * the -1 by whoever moves the phase on (uncount()), which may be the
     * timer at once: counted after ours, so that the running counts never
     * dip below the attempts in their code (found by the stress harness:
     * a task saw running 0 in crew_stats). */
    crew__stat_running(pool, 1);
    crew__group_running(&f->rec, 1);
    if (!atomic_compare_exchange_strong_explicit(
            &f->phase, &p, PHASE(k, CREW__PH_RUNNING), memory_order_acq_rel,
            memory_order_acquire)) {
        uncount(pool, f);
        if (tracked)
            leave(pool, a);
        goto drop;              /* stale: timed out or cancelled queued */
    }
    /* RUNNING only while the attempt runs: see set_state(). */
    set_state_if(f, PHASE(k, CREW__PH_RUNNING), CREW__RUNNING);
    /* Its own deadline, not the task's latest (a retry may be queued by
     * now if this one is already late). */
    ctx.deadline = a->deadline;
    outer = crew__running;
    crew__running = &f->rec;
    err = f->rec.fn(&ctx, f->rec.arg, &result);
    crew__running = outer;
    if (tracked)
        leave(pool, a);
    /*
     * Past its deadline, an attempt is late even if the timer thread has
     * not got round to it yet: the outcome must not depend on how busy
     * that thread is.  Its result goes to free_result below.
     */
    late = timed && crew__now_ns() >= ctx.deadline;
    if (late)
        err = CREW_ETIMEDOUT;

    p = PHASE(k, CREW__PH_RUNNING);
    /* Acquire: a cheap look first, so that the deadline having won is
     * usually noticed before retry_if is asked in vain. */
    if (atomic_load_explicit(&f->phase, memory_order_acquire) != p) {
        /* the deadline won; fall through to the late path below */
    } else if (want_retry(f, err)) {
        if (atomic_compare_exchange_strong_explicit(
                &f->phase, &p, PHASE(k + 1, CREW__PH_WAIT),
                memory_order_acq_rel, memory_order_acquire)) {
            uncount(pool, f);
            timer_del(pool, f);
            if (late) {
                atomic_fetch_add_explicit(&pool->n_timed_out, 1,
                                          memory_order_relaxed);
                if (result != NULL && f->free_result != NULL)
                    f->free_result(result);
                result = NULL;
            }
            schedule_retry(pool, f, k, err, result, true);
            goto drop;
        }
    } else if (atomic_compare_exchange_strong_explicit(
                   &f->phase, &p, PHASE(k, CREW__PH_FINAL),
                   memory_order_acq_rel, memory_order_acquire)) {
        uncount(pool, f);
        if (late) {
            atomic_fetch_add_explicit(&pool->n_timed_out, 1,
                                      memory_order_relaxed);
            if (result != NULL && f->free_result != NULL)
                f->free_result(result);
            result = NULL;
        }
        finish(pool, f, err, result, true);
        goto drop;
    }
    /* The deadline won: this attempt was reported or retried already. */
    if (result != NULL && f->free_result != NULL)
        f->free_result(result);
drop:
    crew__future_unref(f);      /* the proxy's (now the attempt's) ref */
}

/* Attempt k's thread is ending (pthread_exit): end the task if the
 * attempt still runs, and drop the attempt's reference. */
void crew__policy_abandon(crew_t *pool, struct crew_task *f, unsigned k)
{
    /* Only attempt k: a later one may be running elsewhere by now. */
    uint64_t p = PHASE(k, CREW__PH_RUNNING);

    if (atomic_compare_exchange_strong_explicit(
            &f->phase, &p, PHASE(k, CREW__PH_FINAL), memory_order_acq_rel,
            memory_order_acquire)) {
        uncount(pool, f);
        finish(pool, f, CREW_EEXIT, NULL, true);
    }
    crew__future_unref(f);      /* the attempt's reference */
}

/* --- The timer thread -------------------------------------------------- */

/* A deadline passed: attempt k, if still queued or running, is over. */
static void expire(crew_t *pool, struct crew_task *f, unsigned k)
{
    uint64_t p = atomic_load_explicit(&f->phase, memory_order_acquire);

    for (;;) {
        uint64_t next;
        bool retry;

        if (ATTEMPT(p) != k ||
            (PH(p) != CREW__PH_QUEUED && PH(p) != CREW__PH_RUNNING))
            return;
        retry = want_retry(f, CREW_ETIMEDOUT);
        next = retry ? PHASE(k + 1, CREW__PH_WAIT)
                     : PHASE(k, CREW__PH_FINAL);
        if (atomic_compare_exchange_weak_explicit(&f->phase, &p, next,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            atomic_fetch_add_explicit(&pool->n_timed_out, 1,
                                      memory_order_relaxed);
            if (PH(p) == CREW__PH_RUNNING) {
                uncount(pool, f);
                mark_overtime(pool, f);
            }
            if (retry)
                schedule_retry(pool, f, k, CREW_ETIMEDOUT, NULL, false);
            else
                finish(pool, f, CREW_ETIMEDOUT, NULL, false);
            return;
        }
    }
}

/* A delay or backoff is over: queue attempt k. */
static void start(crew_t *pool, struct crew_task *f, unsigned k)
{
    uint64_t p = PHASE(k, CREW__PH_WAIT);
    int rc;

    if (atomic_load_explicit(&pool->state, memory_order_relaxed) ==
        CREW__CANCELLING) {
        if (atomic_compare_exchange_strong_explicit(
                &f->phase, &p, PHASE(k, CREW__PH_FINAL),
                memory_order_acq_rel, memory_order_acquire)) {
            report_cancelled(pool, f, false);
        }
        return;
    }
    if (!atomic_compare_exchange_strong_explicit(
            &f->phase, &p, PHASE(k, CREW__PH_QUEUED), memory_order_acq_rel,
            memory_order_acquire))
        return;                 /* cancelled meanwhile */
    rc = queue_attempt(pool, f, k, CREW__COUNTED);
    if (rc == 0 || rc == CREW_ETHREAD)
        return;                 /* queued; a worker will come (or not, if
                                   none can start: see Limitations) */
    p = PHASE(k, CREW__PH_QUEUED);
    if (atomic_compare_exchange_strong_explicit(
            &f->phase, &p, PHASE(k, CREW__PH_FINAL), memory_order_acq_rel,
            memory_order_acquire))
        finish(pool, f, rc, NULL, false);
}

static void *timer_main(void *arg)
{
    crew_t *pool = arg;

    pthread_mutex_lock(&pool->tlock);
    for (;;) {
        struct crew_task *f;
        unsigned char kind;
        unsigned k;
        struct timespec ts;

        if (pool->heap_len == 0) {
            if (pool->timer_stop)
                break;
            pthread_cond_wait(&pool->tcv, &pool->tlock);
            continue;
        }
        f = pool->heap[0];
        if (f->when > crew__now_ns()) {
            ts.tv_sec = (time_t)(f->when / 1000000000);
            ts.tv_nsec = (long)(f->when % 1000000000);
            pthread_cond_timedwait(&pool->tcv, &pool->tlock, &ts);
            continue;
        }
        heap_remove(pool, f);
        kind = f->tkind;
        k = f->tattempt;
        pthread_mutex_unlock(&pool->tlock);
        if (kind == CREW__T_START)
            start(pool, f, k);
        else
            expire(pool, f, k);
        crew__future_unref(f);  /* the entry's reference */
        pthread_mutex_lock(&pool->tlock);
    }
    pthread_mutex_unlock(&pool->tlock);
    return NULL;
}

int crew__timer_ensure(crew_t *pool)
{
    int rc = 0;

    pthread_mutex_lock(&pool->tlock);
    if (pool->timer_stop) {
        /* Shut down (crew__timer_stop ran): a timer started now would
         * outlive the pool.  A task left behind by shutdown may still
         * try (its submit is refused anyway). */
        rc = CREW_ESHUTDOWN;
    } else if (!pool->timer_started) {
        sigset_t all, old;

        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        if (crew__thread_create(&pool->timer_tid, NULL, timer_main,
                                pool) != 0)
            rc = CREW_ETHREAD;
        else
            pool->timer_started = true;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_mutex_unlock(&pool->tlock);
    return rc;
}

/* Shutdown NOW: tasks waiting out a delay or backoff are due at once, and
 * start() cancels them under CANCELLING. */
void crew__timer_cancel_all(crew_t *pool)
{
    pthread_mutex_lock(&pool->tlock);
    for (size_t i = 0; i < pool->heap_len; i++)
        if (pool->heap[i]->tkind == CREW__T_START)
            pool->heap[i]->when = 0;
    for (size_t i = pool->heap_len; i-- > 0;)
        sift_down(pool, i);
    pthread_cond_signal(&pool->tcv);
    pthread_mutex_unlock(&pool->tlock);
}

/*
 * Shutdown, once nothing is outstanding: stop and join the timer.  Two
 * shutdowns at once both come here; one joins, the other waits for that
 * join to end (a thread can be joined only once).
 */
void crew__timer_stop(crew_t *pool)
{
    pthread_mutex_lock(&pool->tlock);
    pool->timer_stop = true;
    pthread_cond_broadcast(&pool->tcv);
    if (pool->timer_started && !pool->timer_joining) {
        pool->timer_joining = true;
        pthread_mutex_unlock(&pool->tlock);
        pthread_join(pool->timer_tid, NULL);
        pthread_mutex_lock(&pool->tlock);
        pool->timer_started = false;
        pool->timer_joining = false;
        pthread_cond_broadcast(&pool->tcv);
    }
    while (pool->timer_joining)
        pthread_cond_wait(&pool->tcv, &pool->tlock);
    pthread_mutex_unlock(&pool->tlock);
}

int crew__policy_cancel(struct crew_task *f)
{
    crew_t *pool = f->pool;
    uint64_t p = atomic_load_explicit(&f->phase, memory_order_acquire);

    for (;;) {
        if (PH(p) != CREW__PH_WAIT && PH(p) != CREW__PH_QUEUED)
            return CREW_EBUSY;
        if (atomic_compare_exchange_weak_explicit(
                &f->phase, &p, PHASE(ATTEMPT(p), CREW__PH_FINAL),
                memory_order_acq_rel, memory_order_acquire))
            break;
    }
    report_cancelled(pool, f, false);
    return 0;
}
