/*
 * task.c - submitting tasks, running them, and futures.
 *
 * Threads: submit functions run on any thread, crew__run() on workers (or
 * inline on a worker for "caller runs"), future calls on any thread.
 *
 * Exactly once: a record's `state` leaves CREW__QUEUED by one successful
 * compare-and-swap, to RUNNING (a worker), CANCELED (a canceller) or
 * WITHDRAWN (its own submit, when no worker could start).  Whoever wins
 * reports the outcome; everyone else only frees the record.  The record
 * itself is freed by whoever pops it off the queue (or runs it inline),
 * after the outcome is reported; a future's record is shared with the
 * caller through a reference count.
 *
 * `outstanding` counts accepted, unfinished tasks.  A submit adds itself
 * before it reads the pool state and backs out if the pool has stopped
 * accepting; crew_shutdown() stores the state before it waits for
 * `outstanding` to reach zero.  Both are seq_cst, so either the submit sees
 * the shutdown and backs out, or the shutdown waits for the task.
 */
#define _DEFAULT_SOURCE         /* MAP_ANONYMOUS (task records' slabs) */
#include "crew_internal.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ASan builds allocate every record and future with malloc, so that its
 * use-after-free checks cover them. */
#if defined(__SANITIZE_ADDRESS__)
#define CREW__NO_RECORD_POOL 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CREW__NO_RECORD_POOL 1
#endif
#endif


#define SUBMIT_SPINS 8          /* yields before a full-queue submit sleeps */

/* Try to take a queue slot.  Bounded pools only. */
static bool try_reserve(crew_t *pool)
{
    size_t cap = pool->opts.queue_capacity;
    /* seq_cst: a blocked submitter's load half of the room hand-off with
     * crew__slot_freed (see there). */
    size_t r = atomic_load_explicit(&pool->reserved, memory_order_seq_cst);

    while (r < cap) {
        if (atomic_compare_exchange_weak_explicit(&pool->reserved, &r, r + 1,
                                                  memory_order_seq_cst,
                                                  memory_order_seq_cst))
            return true;
    }
    return false;
}

/*
 * A slot was freed.  Blocked submitters are woken in batches: when a
 * batch of slots is free (half the capacity, at most 4096: the low-water
 * mark), not at each freed slot, so a fast producer pays one sleep and
 * wake per batch instead of one per task.  The batch is capped so that
 * the producer's refill bursts stay short: a long one takes a core from
 * the workers for milliseconds at a time.  A submitter sleeps only after
 * seeing the queue full with itself counted in space_waiters (both
 * seq_cst); the queue must then drain through the mark, and the crossing
 * reads space_waiters after its own store, so one side always sees the
 * other.
 */
void crew__slot_freed(crew_t *pool)
{
    size_t prev = atomic_fetch_sub_explicit(&pool->reserved, 1,
                                            memory_order_seq_cst);

    if (prev == pool->low_water + 1 &&
        atomic_load_explicit(&pool->space_waiters,
                             memory_order_seq_cst) > 0) {
        /* Taking the lock orders us after a waiter's last check; the
         * broadcast itself need not hold it. */
        pthread_mutex_lock(&pool->lock);
        pthread_mutex_unlock(&pool->lock);
        pthread_cond_broadcast(&pool->space_cv);
    }
}

/*
 * Wait for a queue slot.  timeout_ns: negative waits forever, 0 not at all.
 * Sets *inline_run instead of blocking when called from a worker of this
 * pool, which might otherwise wait for itself.
 */
static int reserve(crew_t *pool, int64_t timeout_ns, int full_rc,
                   bool *inline_run)
{
    struct timespec deadline;
    bool timed_out = false;
    int rc = 0;

    if (try_reserve(pool))
        return 0;
    if (timeout_ns == 0)
        return full_rc;
    if (crew__inside(pool)) {
        *inline_run = true;
        return 0;
    }
    for (int i = 0; i < SUBMIT_SPINS; i++) {
        sched_yield();
        if (try_reserve(pool))
            return 0;
    }
    if (timeout_ns > 0)
        crew__deadline(&deadline, timeout_ns);
    pthread_mutex_lock(&pool->lock);
    /* seq_cst: the store half of the room hand-off. */
    atomic_fetch_add_explicit(&pool->space_waiters, 1, memory_order_seq_cst);
    for (;;) {
        if (atomic_load_explicit(&pool->state, memory_order_relaxed) !=
            CREW__RUNNING_STATE) {
            rc = CREW_ESHUTDOWN;
            break;
        }
        if (try_reserve(pool))
            break;
        if (timed_out) {
            rc = CREW_ETIMEDOUT;
            break;
        }
        if (timeout_ns < 0)
            pthread_cond_wait(&pool->space_cv, &pool->lock);
        else if (pthread_cond_timedwait(&pool->space_cv, &pool->lock,
                                        &deadline) == ETIMEDOUT)
            timed_out = true;   /* one more try above, then give up */
    }
    atomic_fetch_sub_explicit(&pool->space_waiters, 1, memory_order_relaxed);
    pthread_mutex_unlock(&pool->lock);
    return rc;
}

/* Nothing is outstanding: wake crew_wait() callers, and the workers
 * waiting to exit during shutdown.  Call with pool->lock held. */
static void wake_done_locked(crew_t *pool)
{
    pthread_cond_broadcast(&pool->done_cv);
    crew__wake_all_locked(pool);
}

/* The same, if anyone waits or the pool is stopping. */
static void wake_done(crew_t *pool)
{
    if (atomic_load_explicit(&pool->wait_waiters, memory_order_seq_cst) > 0 ||
        atomic_load_explicit(&pool->state, memory_order_seq_cst) !=
            CREW__RUNNING_STATE) {
        pthread_mutex_lock(&pool->lock);
        wake_done_locked(pool);
        pthread_mutex_unlock(&pool->lock);
    }
}

/*
 * A worker of a thread-mode pool without a progress callback drops
 * `outstanding` once per FIN_BATCH tasks rather than once per task: the
 * count is written by every submit too, and a drop per task moved its
 * line between the submitter's core and the worker's twice a task (perf,
 * W2).  An owed drop can only delay crew_wait() and shutdown, never end
 * them early (outstanding stays at or above the true count), and it is
 * paid:
 *  - at once while anyone waits or the pool stops: the worker adds to
 *    its fin_owed, then loads wait_waiters and state; a waiter stores
 *    wait_waiters (or shutdown the state), then takes every worker's
 *    fin_owed (crew__finish_drain_locked).  All seq_cst, so either the
 *    worker sees the waiter and pays, or the waiter's exchange sees the
 *    worker's addition and pays it;
 *  - when the worker runs out of work (before it spins or sleeps), and
 *    when it leaves or its thread ends in pthread_exit().
 * A worker that owes drops and then hangs in a task is thus paid for by
 * the first waiter.
 */
#define FIN_BATCH 64

/* Pay what w owes; true if that brought outstanding to zero.  seq_cst:
 * the store half of the last-task-out hand-off, as the drop in
 * crew__finish_one (and, for a waiter, after its own store). */
static bool pay_owed(crew_t *pool, struct crew__worker *w)
{
    size_t n = atomic_exchange_explicit(&w->fin_owed, 0,
                                        memory_order_seq_cst);

    return n != 0 && atomic_fetch_sub_explicit(&pool->outstanding, n,
                                               memory_order_seq_cst) == n;
}

void crew__finish_pay(crew_t *pool, struct crew__worker *w)
{
    if (pay_owed(pool, w))
        wake_done(pool);
}

static void drain_list_locked(crew_t *pool, struct crew__worker *w)
{
    for (; w != NULL; w = w->next)
        if (pay_owed(pool, w))
            wake_done_locked(pool);
}

/* A waiter (crew_wait, shutdown) takes the drops workers owe.  Call with
 * pool->lock held, after the waiter's seq_cst store. */
void crew__finish_drain_locked(crew_t *pool)
{
    drain_list_locked(pool, pool->workers);
    drain_list_locked(pool, pool->left_behind);
}

/*
 * One fewer task outstanding.  The last one out wakes crew_wait() callers
 * and, during shutdown, the workers waiting to exit.  The store-then-load
 * pairs with crew_wait()'s increment of wait_waiters and with
 * crew_shutdown()'s store of the state.
 */
void crew__finish_one(crew_t *pool)
{
    bool prog = pool->opts.on_progress != NULL;
    struct crew__worker *w = crew__self;
    size_t left;

    if (!prog && w != NULL && w->pool == pool && !pool->opts.fibers) {
        /* seq_cst: the store half, as above; then the loads. */
        if (atomic_fetch_add_explicit(&w->fin_owed, 1,
                                      memory_order_seq_cst) + 1 >=
                FIN_BATCH ||
            atomic_load_explicit(&pool->wait_waiters, memory_order_seq_cst) >
                0 ||
            atomic_load_explicit(&pool->state, memory_order_seq_cst) !=
                CREW__RUNNING_STATE)
            crew__finish_pay(pool, w);
        return;
    }

    /*
     * With a progress callback, crew_wait() must not return before the
     * final report: the task counts in `reporting` until its report is
     * done, and whoever ends the last report with nothing outstanding
     * wakes the waiters.  seq_cst: as for outstanding (see crew_wait).
     */
    if (prog)
        atomic_fetch_add_explicit(&pool->reporting, 1, memory_order_seq_cst);
    left = atomic_fetch_sub_explicit(&pool->outstanding, 1,
                                     memory_order_seq_cst) - 1;
    if (prog) {
        crew__pool_progress(pool);
        if (atomic_fetch_sub_explicit(&pool->reporting, 1,
                                      memory_order_seq_cst) != 1)
            return;             /* another report is still running */
        left = atomic_load_explicit(&pool->outstanding,
                                    memory_order_seq_cst);
    }
    if (left == 0)
        wake_done(pool);
}

/*
 * Drop a count in outstanding that is no task's end (a worker's cover, a
 * thief's claim it did not need: deque.c): as crew__finish_one, without a
 * progress report.  If a report runs, it ends with the look at the count
 * that wakes the waiters (seq_cst: we lower the count, then load
 * reporting; it lowers reporting, then loads the count).
 */
void crew__uncount(crew_t *pool)
{
    if (atomic_fetch_sub_explicit(&pool->outstanding, 1,
                                  memory_order_seq_cst) == 1 &&
        atomic_load_explicit(&pool->reporting, memory_order_seq_cst) == 0)
        wake_done(pool);
}

/*
 * crew__finish_one for threads that are not workers (a canceller, the
 * timer): crew_shutdown() does not join them, so the pool must outlive
 * our last touch of it.  Our last touch is under pool->lock, where
 * crew_shutdown() reads the counts, and until then either outstanding or
 * (with a progress callback) reporting holds it back.  As in
 * crew__finish_one, the report comes after the count drops, so the last
 * task's is the final "nothing left" report, whichever thread ends it.
 */
void crew__finish_one_locked(crew_t *pool)
{
    bool last;

    if (pool->opts.on_progress != NULL) {
        /* seq_cst: as in crew__finish_one. */
        atomic_fetch_add_explicit(&pool->reporting, 1, memory_order_seq_cst);
        atomic_fetch_sub_explicit(&pool->outstanding, 1,
                                  memory_order_seq_cst);
        crew__pool_progress(pool);
        pthread_mutex_lock(&pool->lock);
        last = atomic_fetch_sub_explicit(&pool->reporting, 1,
                                         memory_order_seq_cst) == 1 &&
               atomic_load_explicit(&pool->outstanding,
                                    memory_order_seq_cst) == 0;
    } else {
        pthread_mutex_lock(&pool->lock);
        last = atomic_fetch_sub_explicit(&pool->outstanding, 1,
                                         memory_order_seq_cst) == 1;
    }
    if (last) {
        pthread_cond_broadcast(&pool->done_cv);
        crew__wake_all_locked(pool);
    }
    pthread_mutex_unlock(&pool->lock);
}

/*
 * Futures a thread keeps for reuse, their mutex and condition variable
 * still initialised: making and destroying those is much of what a
 * future costs (fork-join spawns one per split).  At most FUTURES_KEPT
 * per thread; a thread's are destroyed when it exits (a key destructor).
 * Not under ASan, which then checks every future's lifetime.
 */
#define FUTURES_KEPT 64

static void future_destroy(struct crew_task *f)
{
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

#ifndef CREW__NO_RECORD_POOL
static _Thread_local struct {
    struct crew_task *list;    /* linked through gnext */
    unsigned n;
    bool keyed;                /* fcache_key set for this thread */
} fcache;

static pthread_key_t fcache_key;
static pthread_once_t fcache_once = PTHREAD_ONCE_INIT;
static bool fcache_usable;

static void fcache_drain(void *unused)
{
    struct crew_task *f;

    (void)unused;
    while ((f = fcache.list) != NULL) {
        fcache.list = f->gnext;
        future_destroy(f);
    }
    fcache.n = 0;
}

static void fcache_key_make(void)
{
    fcache_usable = pthread_key_create(&fcache_key, fcache_drain) == 0;
}
#endif

/* A future from the thread's cache, cleared, or a new one. */
static struct crew_task *future_alloc(void)
{
    struct crew_task *f;

#ifndef CREW__NO_RECORD_POOL
    if ((f = fcache.list) != NULL) {
        fcache.list = f->gnext;
        fcache.n--;
        memset(&f->rec, 0, sizeof(f->rec));
        memset(&f->pool, 0, sizeof(*f) - offsetof(struct crew_task, pool));
        return f;
    }
#endif
    f = crew__calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    if (pthread_mutex_init(&f->mu, NULL) != 0) {
        free(f);
        return NULL;
    }
    if (crew__cond_init(&f->cv) != 0) {
        pthread_mutex_destroy(&f->mu);
        free(f);
        return NULL;
    }
    return f;
}

static void future_free(struct crew_task *f)
{
    if (f->result != NULL && !f->result_taken && f->free_result != NULL)
        f->free_result(f->result);
    if (f->group != NULL)
        crew__group_unref(f->group);
#ifndef CREW__NO_RECORD_POOL
    if (fcache.n < FUTURES_KEPT) {
        if (!fcache.keyed) {
            pthread_once(&fcache_once, fcache_key_make);
            /* Without the key nothing would free them at thread exit. */
            fcache.keyed = fcache_usable &&
                           pthread_setspecific(fcache_key, &fcache) == 0;
        }
        if (fcache.keyed) {
            f->gnext = fcache.list;
            fcache.list = f;
            fcache.n++;
            return;
        }
    }
#endif
    future_destroy(f);
}

void crew__future_unref(struct crew_task *f)
{
    /* acq_rel: the last owner must see every write the others made to the
     * record before it frees it. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        future_free(f);
}

/*
 * Plain task records without malloc per task.  They come from slabs of
 * SLAB_BYTES, aligned to their size, shared by every pool in the process.
 * A thread takes records from its own slab by bumping an index (no shared
 * write); a record knows its slab by its address.  Freed records are not
 * reused one by one: a slab counts them (`freed`), and the one count that
 * reaches SLAB_DONE ends it, when every record was handed out and freed
 * and its owner has moved on (the owner adds the records it never handed
 * out, and one, when it leaves the slab).  Ended slabs go to a small
 * spare list for the next thread that needs one, and past SLAB_SPARES
 * back to the system, so a burst (10M tasks queued) gives its memory back
 * after.  A worker counts its frees per slab and adds them up in one
 * atomic add when it moves to another slab, goes to sleep or exits, so
 * that frees in queue order touch the shared count once per run of
 * records.  Under ASan records always come from malloc, to keep its
 * use-after-free checks.
 */
#define SLAB_BYTES ((size_t)64 * 1024)
#define SLAB_SPARES 16

struct crew__slab {
    _Atomic unsigned freed;    /* records freed or never to be; SLAB_DONE
                                  ends the slab */
    struct crew__slab *next;   /* on the spare list */
};

/* Records in a slab, after its header (a cache line). */
#define SLAB_RECS ((SLAB_BYTES - CREW__CACHELINE) / sizeof(struct crew__rec))
#define SLAB_DONE ((unsigned)SLAB_RECS + 1)

#ifndef CREW__NO_RECORD_POOL
static struct crew__slab *slab_of(const struct crew__rec *t)
{
    return (struct crew__slab *)((uintptr_t)t & ~(uintptr_t)(SLAB_BYTES - 1));
}

static struct crew__rec *slab_rec(struct crew__slab *s, unsigned i)
{
    return (struct crew__rec *)((char *)s + CREW__CACHELINE) + i;
}

static pthread_mutex_t spares_lock = PTHREAD_MUTEX_INITIALIZER;
static struct crew__slab *spares;  /* under spares_lock */
static unsigned nspares;

/* This thread's slab, and the frees it has not yet added up. */
static _Thread_local struct {
    struct crew__slab *slab;   /* handing out records from */
    unsigned used;             /* handed out of it */
    struct crew__slab *pend_slab;
    unsigned pend;             /* frees of pend_slab not yet counted */
    bool keyed;                /* slab_key set: its destructor runs */
} rl;

static pthread_key_t slab_key;
static pthread_once_t slab_once = PTHREAD_ONCE_INIT;
static bool slab_usable;

/*
 * A slab from the system, aligned to its size: map twice the size and
 * unmap what lies outside the aligned part.  Through posix_memalign each
 * slab came with the allocator's header on a page of its own, and W5
 * (tasks queued at once) paid 35.9 bytes a task for 32-byte records.
 */
static struct crew__slab *slab_map(void)
{
    char *p, *a;
    size_t head;

    if (crew__fault(CREW_FAULT_ALLOC))
        return NULL;
    p = mmap(NULL, 2 * SLAB_BYTES, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    a = (char *)(((uintptr_t)p + SLAB_BYTES - 1) &
                 ~(uintptr_t)(SLAB_BYTES - 1));
    head = (size_t)(a - p);
    if (head > 0)
        (void)munmap(p, head);
    (void)munmap(a + SLAB_BYTES, SLAB_BYTES - head);
    return (struct crew__slab *)(void *)a;
}

/* Count n more records of slab s as done; the count that ends it gives
 * the slab to the spare list or back.  acq_rel: whoever ends the slab
 * sees every other thread's last writes to its records first. */
static void slab_done(struct crew__slab *s, unsigned n)
{
    if (atomic_fetch_add_explicit(&s->freed, n, memory_order_acq_rel) + n !=
        SLAB_DONE)
        return;
    pthread_mutex_lock(&spares_lock);
    if (nspares < SLAB_SPARES) {
        s->next = spares;
        spares = s;
        nspares++;
        s = NULL;
    }
    pthread_mutex_unlock(&spares_lock);
    if (s != NULL)
        (void)munmap(s, SLAB_BYTES);
}

static void pend_flush(void)
{
    if (rl.pend > 0)
        slab_done(rl.pend_slab, rl.pend);
    rl.pend = 0;
    rl.pend_slab = NULL;
}

/* The thread stops handing out records of its slab: those it never will
 * count as done, and one for its leaving. */
static void slab_leave(void)
{
    if (rl.slab != NULL)
        slab_done(rl.slab, (unsigned)SLAB_RECS - rl.used + 1);
    rl.slab = NULL;
}

/* At thread exit (a key destructor): nothing of this thread's stays. */
static void slab_thread_end(void *unused)
{
    (void)unused;
    pend_flush();
    slab_leave();
}

/* In the child of a fork(): the spare list's lock may have been held by
 * a thread that the child does not have. */
void crew__records_atfork_child(void)
{
    pthread_mutex_init(&spares_lock, NULL);
}

static void slab_key_make(void)
{
    slab_usable = pthread_key_create(&slab_key, slab_thread_end) == 0;
}

/* A fresh slab for this thread: a spare one, or a new one.  Without the
 * key destructor a thread's last slab would never end: use malloc then. */
static bool slab_next(void)
{
    struct crew__slab *s;

    if (!rl.keyed) {
        pthread_once(&slab_once, slab_key_make);
        if (!slab_usable || pthread_setspecific(slab_key, &rl) != 0)
            return false;
        rl.keyed = true;
    }
    slab_leave();
    pthread_mutex_lock(&spares_lock);
    if ((s = spares) != NULL) {
        spares = s->next;
        nspares--;
    }
    pthread_mutex_unlock(&spares_lock);
    if (s == NULL && (s = slab_map()) == NULL)
        return false;
    /* Relaxed: nobody else knows the slab until its records are
     * published through the queue. */
    atomic_store_explicit(&s->freed, 0, memory_order_relaxed);
    rl.slab = s;
    rl.used = 0;
    return true;
}
#endif /* CREW__NO_RECORD_POOL */

static struct crew__rec *record_alloc(crew_t *pool)
{
    struct crew__rec *t;

    (void)pool;
#ifndef CREW__NO_RECORD_POOL
    if ((rl.slab != NULL && rl.used < SLAB_RECS) || slab_next()) {
        t = slab_rec(rl.slab, rl.used++);
        t->flags = CREW__F_POOLED;
        return t;
    }
#endif
    t = crew__malloc(sizeof(*t));
    if (t != NULL)
        t->flags = 0;
    return t;
}

static void record_free(crew_t *pool, struct crew__rec *t)
{
    (void)pool;
    if (!(t->flags & CREW__F_POOLED)) {
        free(t);
        return;
    }
#ifndef CREW__NO_RECORD_POOL
    {
        struct crew__slab *s = slab_of(t);

        /* A worker (which flushes when it sleeps or exits) adds its frees
         * up per run of one slab; any other thread (a canceller, the
         * timer) at once, since it may never come back to flush. */
        if (crew__self == NULL) {
            slab_done(s, 1);
            return;
        }
        if (s != rl.pend_slab)
            pend_flush();
        rl.pend_slab = s;
        rl.pend++;
    }
#endif
}

#ifdef CREW__NO_RECORD_POOL
void crew__records_atfork_child(void)
{
}
#endif

/* A worker goes to sleep or leaves: add up the frees it holds, so that
 * slabs done with end now. */
void crew__records_flush(crew_t *pool)
{
    (void)pool;
#ifndef CREW__NO_RECORD_POOL
    pend_flush();
#endif
}

/* The pool is done with a record it popped or ran. */
void crew__dispose(crew_t *pool, struct crew__rec *t)
{
    if (crew__is_future(t)) {
        crew__future_unref(crew__future(t));
    } else if (t->flags & CREW__F_PROXY) {
        crew__future_unref(t->arg);     /* left over at crew_free */
        free(t);
    } else {
        record_free(pool, t);
    }
}

/*
 * Report a finished task: callbacks first, then the future, so that anyone
 * woken by either sees the callbacks done.  For a plain task nobody can
 * collect the result, so after the callbacks it goes to free_result.
 */
void crew__report(crew_t *pool, struct crew__rec *t, int err, void *result)
{
    struct crew_task *f;
    struct crew__fiber *woken;
    crew_result_cb on_result = pool->opts.on_result;
    crew_error_cb on_error = pool->opts.on_error;
    void (*free_result)(void *) = pool->opts.free_result;
    void *result_user = pool->opts.user, *error_user = pool->opts.user;

    /* A task's own callback replaces the pool's, each on its own, and is
     * given the task's user pointer. */
    if (crew__is_future(t)) {
        f = crew__future(t);
        if (f->on_result != NULL) {
            on_result = f->on_result;
            result_user = f->user;
        }
        if (f->on_error != NULL) {
            on_error = f->on_error;
            error_user = f->user;
        }
    }
    if ((err == 0 && on_result != NULL) || (err != 0 && on_error != NULL)) {
        const crew_t *outer = crew__callback_pool;

        /* So that crew_wait() and friends called from the callback on a
         * thread that is not a worker (a canceller, the timer) see that
         * they would wait for themselves. */
        crew__callback_pool = pool;
        if (err == 0)
            on_result(t->arg, result, result_user);
        else
            on_error(t->arg, err, error_user);
        crew__callback_pool = outer;
    }

    /* Nobody can collect the result of a task without a future. */
    if (!crew__is_future(t) || !crew__future(t)->has_owner) {
        if (crew__is_future(t))
            free_result = crew__future(t)->free_result;
        if (result != NULL && free_result != NULL)
            free_result(result);
        result = NULL;
        if (!crew__is_future(t))
            return;
    }
    f = crew__future(t);
    pthread_mutex_lock(&f->mu);
    f->err = err;
    f->result = result;
    /* A cancelled task's state is CANCELED already (the canceller put it
     * there); one that ran is DONE or FAILED, whatever it returned, even
     * CREW_ECANCELED.  Release: pairs with the acquire loads in the
     * future calls, which then see err and result. */
    if (atomic_load_explicit(&t->state, memory_order_relaxed) !=
        CREW__CANCELED)
        atomic_store_explicit(&t->state, err == 0 ? CREW__DONE : CREW__FAILED,
                              memory_order_release);
    f->done = true;
    if (f->waiters > 0)
        pthread_cond_broadcast(&f->cv);
    woken = crew__waiters_take(&f->fwaiters);
    pthread_mutex_unlock(&f->mu);
    crew__fiber_deliver(woken);
    crew__group_done(f, err);
}

/*
 * Move a record that has not started (QUEUED or QUEUED_LOCAL) to `to`.
 * True if this call did, with *was_local saying which it left: a
 * QUEUED_LOCAL record has no count of its own in outstanding (deque.c).
 * acq_rel: the winner reads the record's fields written by the submitter
 * and is the one that runs or reports it; a loser only frees.
 */
bool crew__claim(struct crew__rec *t, int to, bool *was_local)
{
    int s = atomic_load_explicit(&t->state, memory_order_acquire);

    while (s == CREW__QUEUED || s == CREW__QUEUED_LOCAL)
        if (atomic_compare_exchange_weak_explicit(&t->state, &s, to,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            *was_local = s == CREW__QUEUED_LOCAL;
            return true;
        }
    return false;
}

/*
 * Record t, which this thread holds (popped, stolen or spilled), was
 * claimed by someone else.  If that was a canceller from outside the pool
 * claiming a QUEUED_LOCAL task, it is still reporting (callbacks, the
 * future) with no count of its own in outstanding, and the record was
 * covered only while in its deque: give it a count, so that crew_wait()
 * and shutdown wait for the report.  The caller holds a count itself
 * (a cover or its own), so the pool is alive and this cannot be the
 * increment from zero.  seq_cst: the canceller stores 1 before its claim
 * and we load it after our failed one.
 */
void crew__cover_canceller(crew_t *pool, struct crew__rec *t)
{
    struct crew_task *f;
    int reporting = 1;

    if (!crew__is_future(t))
        return;
    f = crew__future(t);
    if (atomic_load_explicit(&f->cancel_cover, memory_order_seq_cst) != 1)
        return;
    atomic_fetch_add_explicit(&pool->outstanding, 1, memory_order_seq_cst);
    if (!atomic_compare_exchange_strong_explicit(
            &f->cancel_cover, &reporting, 2, memory_order_seq_cst,
            memory_order_seq_cst))
        crew__uncount(pool);    /* it is done already */
}

/* A QUEUED_LOCAL record left that state (crew_stats' queued). */
void crew__local_left(crew_t *pool)
{
    struct crew__worker *w = crew__self;

    if (w != NULL && w->pool == pool)
        crew__local_add(-1);
    else                        /* relaxed: reporting only */
        atomic_fetch_sub_explicit(&pool->n_local, 1, memory_order_relaxed);
}

/*
 * Cancel a record that has not started.  Returns 0 if another thread got
 * to it first; else this call reported it, and returns 1 if the caller
 * now owes crew__finish_one(), 2 if not (a QUEUED_LOCAL record, which has
 * no count of its own).
 */
int crew__cancel_record(crew_t *pool, struct crew__rec *t)
{
    bool local;

    if (!crew__claim(t, CREW__CANCELED, &local))
        return 0;
    if (local)
        crew__local_left(pool);
    else
        crew__unqueue(pool, t);
    atomic_fetch_add_explicit(&pool->n_cancelled, 1, memory_order_relaxed);
    crew__report(pool, t, CREW_ECANCELED, NULL);
    return local ? 2 : 1;
}

/*
 * Counts in outstanding that the innermost run on this thread drops when
 * it ends: its record's own (not a QUEUED_LOCAL one's), and the one a
 * thief or a helper took for it (deque.c).  For crew__abandon.
 */
static _Thread_local unsigned owed;

/* Drop `n` such counts: the first as a task's end (progress, wake-ups),
 * the other as a plain count. */
static void drop_owed(crew_t *pool, unsigned n)
{
    if (n >= 1)
        crew__finish_one(pool);
    if (n >= 2)
        crew__uncount(pool);
}

_Thread_local const crew_t *crew__callback_pool;
_Thread_local const struct crew__rec *crew__running;
_Thread_local struct crew__rec *crew__proxy;

/* Run a record this thread has just moved to RUNNING, and report it. */
static void run_claimed(crew_t *pool, struct crew__rec *t,
                        unsigned worker_id)
{
    struct crew_ctx ctx = { pool, t, worker_id, 1, 0 };
    const struct crew__rec *outer;
    void *result = NULL;
    int err;

    crew__stat_running(pool, 1);
    if (crew__is_future(t))
        crew__group_running(t, 1);
    outer = crew__running;
    crew__running = t;
    err = t->fn(&ctx, t->arg, &result);
    crew__running = outer;
    if (crew__is_future(t))
        crew__group_running(t, -1);
    crew__stat_running(pool, -1);
    crew__stat_done(pool, err);
    crew__report(pool, t, err, result);
}

/*
 * Run a queued future now, out of turn, if nobody has started it: a worker
 * waiting for it does the work itself rather than some other queued task.
 * Its node stays in the queue; whoever pops it finds it started and only
 * drops the pool's reference.  Not under shutdown NOW (queued tasks are
 * being cancelled), nor for a task with a policy (its attempts are
 * scheduled through the timer).
 */
static bool run_out_of_turn(crew_t *pool, struct crew__rec *t,
                            unsigned worker_id)
{
    struct crew__worker *w = crew__self;
    int s = atomic_load_explicit(&t->state, memory_order_acquire);
    bool local, cover, mine;
    unsigned n, outer_owed = owed;

    if ((t->flags & CREW__F_POLICY) ||
        atomic_load_explicit(&pool->state, memory_order_relaxed) ==
            CREW__CANCELLING ||
        (s != CREW__QUEUED && s != CREW__QUEUED_LOCAL))
        return false;
    /*
     * A QUEUED_LOCAL record in this worker's deque runs under our cover;
     * one in another's deque needs a count of ours first, before the
     * claim (seq_cst): its owner may pop the started record, find its
     * deque empty and drop its cover while we run it.
     */
    cover = s == CREW__QUEUED_LOCAL && w != NULL && w->cover &&
            crew__future(t)->local_owner == w;
    mine = s == CREW__QUEUED_LOCAL && !cover;
    if (mine)
        atomic_fetch_add_explicit(&pool->outstanding, 1,
                                  memory_order_seq_cst);
    if (!crew__claim(t, CREW__RUNNING, &local)) {
        if (mine)
            crew__uncount(pool);
        return false;
    }
    if (local)
        crew__local_left(pool);
    else
        crew__unqueue(pool, t);
    /* Moved out of the deque meanwhile (only its owner does that, and
     * then it was ours): counted now, and no cover to run under. */
    cover = cover && local;
    n = (local ? 0u : 1u) + (mine ? 1u : 0u);
    owed = n;                   /* for crew__abandon (thread mode) */
    crew__local_depth += cover;
    run_claimed(pool, t, worker_id);
    crew__local_depth -= cover;
    owed = outer_owed;
    drop_owed(pool, n);
    return true;
}

/*
 * Fork-join's usual case: a worker waits for the task it submitted last,
 * still the newest on its own deque.  Pop and run it as a worker would:
 * then the record leaves the deque now, not when the worker next takes
 * from it (a long recursion never does: its records piled up, and the
 * futures with them).  False if t is not there or a thief took it.
 */
static bool run_newest(crew_t *pool, struct crew__rec *t)
{
    struct crew__worker *w = crew__self;
    struct crew__rec *r;

    if (w->pool != pool || w->deq == NULL ||
        !crew__deque_newest_is(w->deq, t) ||
        (r = crew__deque_pop(w->deq)) == NULL)
        return false;
    /* r is t: only this worker pushes or pops at that end.  (Were it not,
     * it would still be run, never dropped.) */
    crew__unqueue(pool, r);
    crew__run(pool, r, w->id);
    return r == t;
}

/*
 * The thread running t is ending in the middle of it (pthread_exit), and
 * `proxy` is the innermost attempt record it is in (crew__proxy; attempts
 * nest through helping waits, chained by outer_run): report t as failed
 * with CREW_EEXIT, once, as if it had returned that, and so every attempt
 * of a task with a policy it was nested in, and free their records.  A
 * plain task that a helping wait was nested in is not known here: it is
 * not reported (README, Limitations).
 */
void crew__abandon(crew_t *pool, struct crew__rec *t, struct crew__rec *proxy)
{
    /* Before the loop, which may free t (a task with a policy). */
    bool plain = t != NULL && !(t->flags & CREW__F_POLICY);

    while (proxy != NULL) {
        struct crew__attempt *a = (struct crew__attempt *)proxy;

        proxy = a->outer_run != NULL ? &a->outer_run->rec : NULL;
        /* It uncounts the attempt if the deadline has not already. */
        crew__policy_abandon(pool, a->rec.arg,
                             (unsigned)atomic_load_explicit(
                                 &a->rec.state, memory_order_relaxed));
        free(a);
    }
    if (!plain)
        return;                 /* none, or done with its attempt above */
    crew__stat_running(pool, -1);
    if (crew__is_future(t))
        crew__group_running(t, -1);
    crew__stat_done(pool, CREW_EEXIT);
    crew__report(pool, t, CREW_EEXIT, NULL);
    crew__dispose(pool, t);
    /* Its counts (fiber mode: a counted record, and `owed` is the
     * thread's, not the fiber's); a cover goes as the worker leaves. */
    drop_owed(pool, pool->opts.fibers ? 1u : owed);
}

_Thread_local unsigned crew__local_depth;
_Thread_local bool crew__stolen;

/*
 * Run record t, taken off a queue by this thread (or cancel it under
 * shutdown NOW), and drop what it owes.  `held`: the taker holds a count
 * of its own for it (a thief: deque.c).
 */
static void run_taken(crew_t *pool, struct crew__rec *t, unsigned worker_id,
                      bool held)
{
    unsigned n, outer_owed = owed;
    bool local, cover;

    if (t->flags & CREW__F_PROXY) {
        struct crew__rec *outer_proxy = crew__proxy;

        /* A proxy keeps its own count, which its deadline may end while
         * the attempt is stuck: a thief's count must go now, or it would
         * hold crew_wait() and shutdown until the attempt returns (a
         * tester found them hanging). */
        if (held)
            crew__uncount(pool);
        /* Known to a cleanup if the thread ends inside (pthread_exit),
         * with the ones it runs nested in. */
        ((struct crew__attempt *)t)->outer_run =
            (struct crew__attempt *)outer_proxy;
        crew__proxy = t;
        crew__run_proxy(pool, t, worker_id);
        crew__proxy = outer_proxy;
        free(t);
        return;
    }
    if (atomic_load_explicit(&pool->state, memory_order_relaxed) >=
        CREW__CANCELLING) {
        int won = crew__cancel_record(pool, t);

        if (won == 0)
            crew__cover_canceller(pool, t);
        crew__dispose(pool, t);
        drop_owed(pool, (won == 1 ? 1u : 0u) + (held ? 1u : 0u));
        return;
    }
    if (!crew__is_future(t) &&
        atomic_load_explicit(&t->state, memory_order_relaxed) ==
            CREW__QUEUED_LOCAL) {
        /* Plain and QUEUED_LOCAL: nobody else can claim it (no handle to
         * cancel or help with it, never withdrawn), so no CAS.  Relaxed:
         * the record came to us through the deque's release/acquire. */
        atomic_store_explicit(&t->state, CREW__RUNNING, memory_order_relaxed);
        local = true;
    } else if (!crew__claim(t, CREW__RUNNING, &local)) {
        /* Cancelled, withdrawn, or run out of turn earlier: whoever did
         * that dropped the record's own count. */
        crew__cover_canceller(pool, t);
        crew__dispose(pool, t);
        if (held)
            crew__uncount(pool);
        return;
    }
    if (local)
        crew__local_left(pool);
    /* A QUEUED_LOCAL record taken by its owner runs under the cover
     * (only its owner pops it from the deque; a thief holds a count). */
    cover = local && !held;
    n = (local ? 0u : 1u) + (held ? 1u : 0u);
    owed = n;                   /* for crew__abandon (thread mode) */
    crew__local_depth += cover;
    run_claimed(pool, t, worker_id);
    crew__local_depth -= cover;
    owed = outer_owed;
    crew__dispose(pool, t);
    drop_owed(pool, n);
}

void crew__run(crew_t *pool, struct crew__rec *t, unsigned worker_id)
{
    run_taken(pool, t, worker_id, false);
}

/* The record crew__take() returned: with its count if it was stolen. */
void crew__run_taken(crew_t *pool, struct crew__rec *t, unsigned worker_id)
{
    bool held = crew__stolen;

    crew__stolen = false;
    run_taken(pool, t, worker_id, held);
}

static struct crew__rec *new_record(crew_t *pool, crew_fn fn, void *arg,
                                   const crew_task_opts_t *opts, bool future,
                                   bool policy)
{
    struct crew__rec *t;

    bool heap = crew__uses_heap(pool, opts);

    /* A plain record only without options: their callbacks, user and
     * free_result live in the full struct. */
    if (!future && !policy && !heap && opts == NULL) {
        t = record_alloc(pool);
        if (t == NULL)
            return NULL;
    } else {
        struct crew_task *f = future_alloc();

        if (f == NULL)
            return NULL;
        f->pool = pool;
        /* The caller's reference (if it wants the future) and the pool's,
         * which it drops once the task has been reported. */
        atomic_init(&f->refs, future ? 2 : 1);
        f->has_owner = future;
        atomic_init(&f->cancel_requested, false);
        f->free_result = pool->opts.free_result;
        if (opts != NULL) {
            f->on_result = opts->on_result;
            f->on_error = opts->on_error;
            f->user = opts->user;
            if (opts->free_result != NULL)
                f->free_result = opts->free_result;
        }
        t = &f->rec;
        t->flags = CREW__F_FUTURE;
        f->use_heap = heap;
        f->priority = opts != NULL ? opts->priority : 0;
        if (policy) {
            t->flags |= CREW__F_POLICY;
            crew__policy_init(f, pool, opts);
        }
    }
    t->fn = fn;
    t->arg = arg;
    atomic_init(&t->state, CREW__QUEUED);
    atomic_init(&t->waiting, CREW__UNCOUNTED);
    return t;
}

/*
 * Push a record and make sure a worker will take it: wake a sleeper or
 * start a worker if needed.  `count` says how the record is counted (see
 * crew__unqueue).  Returns CREW_ETHREAD when no worker is alive and none
 * could start; the record is queued all the same.
 */
int crew__enqueue(crew_t *pool, struct crew__rec *t, unsigned char count,
                  const struct crew_task *f)
{
    /* Relaxed: published to the popper by the push's release (or by
     * plock, for the priority heap). */
    atomic_store_explicit(&t->waiting, count, memory_order_relaxed);
    if (f != NULL && f->use_heap) {
        if (crew__prio_push(pool, t, f->priority) != 0)
            return CREW_ENOMEM;
    } else if (crew__self == NULL || crew__self->pool != pool ||
               crew__self->deq == NULL ||
               /* Relaxed: a pool of one worker runs tasks in submission
                * order, which a deque (newest first) would not. */
               atomic_load_explicit(&pool->max_target,
                                    memory_order_relaxed) < 2 ||
               !crew__deque_push(crew__self->deq, t)) {
        crew__queue_push(&pool->q, t);
    }
    /* seq_cst: the store half of the submitter's side of the wake-up
     * hand-off (worker.c). */
    atomic_fetch_add_explicit(&pool->enqueued, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&pool->idle_avail, memory_order_seq_cst) == 0) {
        /* seq_cst: pairs with a retiring worker (retire_locked). */
        if (atomic_load_explicit(&pool->live, memory_order_seq_cst) >=
            atomic_load_explicit(&pool->max_target, memory_order_relaxed))
            return 0;           /* every worker busy and none to add */
    } else if (atomic_load_explicit(&pool->waking,
                                    memory_order_seq_cst) != 0) {
        return 0;               /* the worker being woken passes it on */
    }
    return crew__wake_for_work(pool);
}

/*
 * Can this submit go on the calling worker's deque as a QUEUED_LOCAL
 * record (deque.c)?  A task without options (a future is fine) from a
 * worker of the pool, outside any attempt with a policy, into an unbounded
 * pool without a progress callback (a report per task goes with the count
 * per task) or priorities, of more than one worker (one keeps submission
 * order).
 */
static bool local_ok(crew_t *pool, const crew_task_opts_t *opts,
                     bool policy)
{
    const struct crew__worker *w = crew__self;

    return pool->locals && w != NULL && w->pool == pool && w->deq != NULL &&
           opts == NULL && !policy && crew__proxy == NULL &&
           /* Relaxed: as in crew__enqueue. */
           atomic_load_explicit(&pool->max_target, memory_order_relaxed) >= 2;
}

/*
 * opts.inline_after: run a plain task at once, inside its submit, on the
 * worker's stack, when the worker holds that many tasks of its own queued
 * (relaxed loads: only the owner moves `bottom`; a stale `top` overstates
 * the count, which only makes a run here a little likelier).  No record
 * and no count: the submitting task is running, counted, and ends after
 * this one.  The pool's callbacks see it as any plain task.
 */
#define INLINE_DEPTH_MAX 32

static _Thread_local unsigned inline_depth;

static bool inline_wanted(const crew_t *pool, const struct crew__worker *w)
{
    /* Only from a task (crew__running): a callback on a worker is none,
     * and a task run in it would be counted nowhere as running. */
    return pool->opts.inline_after != 0 && inline_depth < INLINE_DEPTH_MAX &&
           crew__running != NULL &&
           atomic_load_explicit(&w->deq->bottom, memory_order_relaxed) -
                   atomic_load_explicit(&w->deq->top, memory_order_relaxed) >=
               (int64_t)pool->opts.inline_after;
}

static int run_inline(crew_t *pool, struct crew__worker *w, crew_fn fn,
                      void *arg)
{
    struct crew__rec r = { .fn = fn, .arg = arg, .flags = 0 };
    struct crew_ctx ctx = { pool, &r, w->id, 1, 0 };
    void *result = NULL;
    int err;

    /* Not counted running: its submitter, which is, waits for it. */
    crew__stat_submitted(pool, 1);
    inline_depth++;
    err = fn(&ctx, arg, &result);
    inline_depth--;
    crew__stat_done(pool, err);
    crew__report(pool, &r, err, result);
    return 0;
}

/* The submit of a QUEUED_LOCAL record: no shared counter on the way. */
static int submit_local(crew_t *pool, crew_fn fn, void *arg,
                        crew_task_t **out)
{
    struct crew__worker *w = crew__self;
    struct crew__rec *t;

    if (out == NULL && inline_wanted(pool, w))
        return run_inline(pool, w, fn, arg);
    if (!w->cover && !crew__cover_take(pool, w))
        return CREW_ESHUTDOWN;
    t = new_record(pool, fn, arg, NULL, out != NULL, false);
    if (t == NULL)
        return CREW_ENOMEM;     /* the cover goes between tasks */
    crew__stat_submitted(pool, 1);
    if (out != NULL) {
        crew__future(t)->local_owner = w;
        *out = crew__future(t);
    }
    /* Relaxed: published by the push's release. */
    atomic_store_explicit(&t->state, CREW__QUEUED_LOCAL,
                          memory_order_relaxed);
    crew__local_add(1);
    if (!crew__deque_push_seq(w->deq, t)) {
        /* A full deque: the shared queue, counted as any other.  Relaxed:
         * the cover keeps outstanding above zero meanwhile. */
        crew__local_add(-1);
        atomic_store_explicit(&t->state, CREW__QUEUED, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool->outstanding, 1,
                                  memory_order_relaxed);
        /* We are a live worker: it will run, whatever this returns. */
        (void)crew__enqueue(pool, t, CREW__COUNTED,
                            out != NULL ? crew__future(t) : NULL);
        return 0;
    }
    /*
     * seq_cst: our half of the hand-off for a record no counter shows
     * (deque.c): the push stored bottom (seq_cst) before these loads, as
     * a sleeper stores idle_avail (or a retiring worker live) before its
     * look at the deques.  Then as in crew__enqueue.
     */
    if (atomic_load_explicit(&pool->idle_avail, memory_order_seq_cst) == 0) {
        if (atomic_load_explicit(&pool->live, memory_order_seq_cst) <
            atomic_load_explicit(&pool->max_target, memory_order_relaxed))
            (void)crew__wake_for_work(pool);
    } else if (atomic_load_explicit(&pool->waking, memory_order_seq_cst) ==
               0) {
        (void)crew__wake_for_work(pool);
    }
    return 0;
}

/*
 * The one submit path.  timeout_ns: negative blocks, 0 never waits (and
 * returns full_rc when the queue is full), positive waits that long.
 */
static int submit(crew_t *pool, crew_fn fn, void *arg,
                  const crew_task_opts_t *opts, crew_task_t **out,
                  int64_t timeout_ns, int full_rc)
{
    bool bounded, inline_run = false, policy;
    struct crew__rec *t;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (pool == NULL || fn == NULL)
        return CREW_EINVAL;
    rc = crew__policy_check(opts);
    if (rc != 0)
        return rc;
    /* A bad argument, not a refusal: not counted as rejected.  (A group's
     * pool never changes.) */
    if (opts != NULL && opts->group != NULL && opts->group->pool != pool)
        return CREW_EINVAL;
    policy = crew__uses_policy(pool, opts);
    if (atomic_load_explicit(&pool->state, memory_order_relaxed) !=
        CREW__RUNNING_STATE) {
        rc = CREW_ESHUTDOWN;
        goto rejected;
    }
    if (local_ok(pool, opts, policy)) {
        rc = submit_local(pool, fn, arg, out);
        if (rc != 0)
            goto rejected;
        return 0;
    }
    /* After the state check, and refused once the timer was stopped: a
     * timer started by a task left behind by shutdown would outlive the
     * pool. */
    if (policy) {
        rc = crew__timer_ensure(pool);
        if (rc != 0)
            goto rejected;
    }
    bounded = pool->opts.queue_capacity != 0;
    if (bounded) {
        rc = reserve(pool, timeout_ns, full_rc, &inline_run);
        if (rc != 0)
            goto rejected;
        if (inline_run)
            bounded = false;    /* runs here, holds no slot */
    }
    /* seq_cst: see the top of this file. */
    atomic_fetch_add_explicit(&pool->outstanding, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&pool->state, memory_order_seq_cst) !=
        CREW__RUNNING_STATE) {
        rc = CREW_ESHUTDOWN;
        goto back_out;
    }
    t = new_record(pool, fn, arg, opts, out != NULL, policy);
    if (t == NULL) {
        rc = CREW_ENOMEM;
        goto back_out;
    }
    if (opts != NULL && opts->group != NULL) {
        rc = crew__group_add(opts->group, crew__future(t));
        if (rc != 0) {
            /* Nobody else has seen it: drop every reference at once. */
            atomic_store_explicit(&crew__future(t)->refs, 1,
                                  memory_order_relaxed);
            crew__future_unref(crew__future(t));
            goto back_out;
        }
    }
    crew__stat_submitted(pool, 1);
    if (out != NULL)
        *out = crew__future(t);
    if (policy) {
        rc = crew__policy_start(pool, crew__future(t), bounded, inline_run);
        if (rc == 0)
            return 0;
        /* Withdrawn (no worker could start): policy_start undid it. */
        crew__group_withdraw(crew__future(t));
        crew__stat_submitted(pool, -1);
        if (out != NULL) {
            *out = NULL;
            crew__future_unref(crew__future(t));
        }
        crew__future_unref(crew__future(t)); /* the pool's reference */
        atomic_fetch_add_explicit(&pool->n_rejected, 1,
                                  memory_order_relaxed);
        crew__finish_one(pool);
        return rc;
    }
    if (inline_run) {
        crew__run(pool, t, crew__self->id);
        return 0;
    }
    rc = crew__enqueue(pool, t, bounded ? CREW__HOLDS_SLOT : CREW__COUNTED,
                       crew__is_future(t) ? crew__future(t) : NULL);
    if (rc == 0)
        return 0;
    if (rc == CREW_ENOMEM) {
        /* Never queued: nobody else can have seen it. */
        atomic_store_explicit(&t->waiting, CREW__UNCOUNTED,
                              memory_order_relaxed);
        crew__group_withdraw(crew__future(t));
        atomic_store_explicit(&crew__future(t)->refs, 1,
                              memory_order_relaxed);
        crew__future_unref(crew__future(t));
        crew__stat_submitted(pool, -1);
        if (out != NULL)
            *out = NULL;
        goto back_out;
    }
    /* No worker at all, and none could start: take the task back if no
     * one has touched it yet.  The record stays queued and is freed by
     * whoever pops it. */
    {
        int expect = CREW__QUEUED;

        if (!atomic_compare_exchange_strong_explicit(
                &t->state, &expect, CREW__WITHDRAWN, memory_order_acq_rel,
                memory_order_acquire))
            return 0;           /* a worker got to it after all */
    }
    crew__unqueue(pool, t);
    if (crew__is_future(t))
        crew__group_withdraw(crew__future(t));
    crew__stat_submitted(pool, -1);
    if (out != NULL) {
        *out = NULL;
        crew__future_unref(crew__future(t)); /* the caller's reference */
    }
    atomic_fetch_add_explicit(&pool->n_rejected, 1, memory_order_relaxed);
    crew__finish_one(pool);
    return rc;

back_out:
    if (bounded)
        crew__slot_freed(pool);
    crew__finish_one(pool);
rejected:
    atomic_fetch_add_explicit(&pool->n_rejected, 1, memory_order_relaxed);
    return rc;
}

int crew_submit(crew_t *pool, crew_fn fn, void *arg)
{
    return submit(pool, fn, arg, NULL, NULL, -1, CREW_EAGAIN);
}

int crew_try_submit(crew_t *pool, crew_fn fn, void *arg)
{
    return submit(pool, fn, arg, NULL, NULL, 0, CREW_EAGAIN);
}

int crew_submit_timeout(crew_t *pool, crew_fn fn, void *arg,
                        int64_t timeout_ns)
{
    return submit(pool, fn, arg, NULL, NULL, timeout_ns, CREW_ETIMEDOUT);
}

int crew_spawn(crew_t *pool, crew_fn fn, void *arg,
               const crew_task_opts_t *opts, crew_task_t **task)
{
    return submit(pool, fn, arg, opts, task, -1, CREW_EAGAIN);
}

/* --- Futures ---------------------------------------------------------- */

static bool future_done(crew_task_t *t)
{
    /* Acquire: pairs with report()'s release of the final state; done is
     * then read under the mutex for err and result. */
    return atomic_load_explicit(&t->rec.state, memory_order_acquire) >=
           CREW__DONE;
}

/* Hand out the outcome.  Call with t->mu held and t->done true. */
static int outcome_locked(crew_task_t *t, void **result)
{
    if (result != NULL) {
        *result = t->result;
        if (t->result != NULL)
            t->result_taken = true;
    }
    return t->err;
}

/*
 * Wait on the future's own condition variable until done or the deadline
 * (NULL: none).  Returns the outcome or CREW_ETIMEDOUT.
 */
static int block_on(crew_task_t *t, const struct timespec *deadline,
                    void **result)
{
    struct crew__lend lend;
    int64_t until = deadline != NULL ? (int64_t)deadline->tv_sec *
                                               1000000000 +
                                           deadline->tv_nsec
                                     : 0;
    int rc = 0;

    crew__lend_init(&lend);
    pthread_mutex_lock(&t->mu);
    t->waiters++;
    while (!t->done && rc == 0)
        if (crew__wait_step(&t->cv, &t->mu, until, &lend) == ETIMEDOUT)
            rc = t->done ? 0 : CREW_ETIMEDOUT;
    t->waiters--;
    if (rc == 0)
        rc = outcome_locked(t, result);
    pthread_mutex_unlock(&t->mu);
    crew__reclaim(&lend);
    return rc;
}

/* Has the CLOCK_MONOTONIC time `ts` passed? */
static bool past(const struct timespec *ts)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > ts->tv_sec ||
           (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

static int wait_common(crew_task_t *t, int64_t timeout_ns, void **result)
{
    struct timespec deadline;
    crew_t *pool;

    if (t == NULL || !crew__is_future(&t->rec))
        return CREW_EINVAL;
    if (crew__running == &t->rec)
        return CREW_EDEADLK;    /* a task waiting for itself */
    if (timeout_ns >= 0)
        crew__deadline(&deadline, timeout_ns);
    pool = t->pool;
    /* On a fiber, park it until the task is done (or the timeout); the
     * thread runs other fibers meanwhile. */
    if (crew__in_fiber()) {
        int64_t until = timeout_ns >= 0 ? crew__after_ns(timeout_ns) : 0;

        /* The task itself, if nobody has started it (on this fiber's
         * stack, as a waiting worker does in thread mode). */
        if (crew__inside(pool) &&
            run_out_of_turn(pool, &t->rec, crew__self->id))
            goto done;
        crew__fiber_wait_begin();
        pthread_mutex_lock(&t->mu);
        while (!t->done && (until == 0 || crew__now_ns() < until))
            crew__fiber_wait_on(&t->fwaiters, &t->mu, until, false);
        pthread_mutex_unlock(&t->mu);
        crew__fiber_wait_end();
    } else if (crew__inside(pool)) {
        /*
         * A worker of the task's own pool helps instead of just waiting:
         * first by running the task itself if nobody has started it (so
         * fork-join nests only as deep as its own recursion), then by
         * running other queued tasks, but only so many deep (each nests
         * on this stack, and waits inside them help in turn).
         */
        if (run_newest(pool, &t->rec) ||
            run_out_of_turn(pool, &t->rec, crew__self->id))
            goto done;
        while (!future_done(t) && crew__help_depth < CREW__HELP_DEPTH) {
            if (timeout_ns >= 0 && past(&deadline))
                break;
            if (!crew__help_one(pool))
                break;
        }
    }
done:
    return block_on(t, timeout_ns >= 0 ? &deadline : NULL, result);
}

int crew_task_wait(crew_task_t *task, void **result)
{
    return wait_common(task, -1, result);
}

int crew_task_wait_timeout(crew_task_t *task, int64_t timeout_ns,
                           void **result)
{
    if (timeout_ns < 0)
        return CREW_EINVAL;
    return wait_common(task, timeout_ns, result);
}

int crew_task_poll(crew_task_t *task, void **result)
{
    int rc = CREW_EBUSY;

    if (task == NULL || !crew__is_future(&task->rec))
        return CREW_EINVAL;
    pthread_mutex_lock(&task->mu);
    if (task->done)
        rc = outcome_locked(task, result);
    pthread_mutex_unlock(&task->mu);
    return rc;
}

int crew_task_state(const crew_task_t *task)
{
    int s;

    if (task == NULL || !crew__is_future(&task->rec))
        return CREW_EINVAL;
    /* Acquire: pairs with the state's release stores and CASes. */
    s = atomic_load_explicit(&task->rec.state, memory_order_acquire);
    if (s == CREW__CANCELED || s == CREW__WITHDRAWN) {
        bool done;

        /*
         * A canceller moves the state before it reports (callbacks first,
         * then the future): until the future is done, the task still
         * reads as queued, so that this agrees with crew_task_poll().
         * (DONE and FAILED are stored with `done`, under the mutex.)
         */
        pthread_mutex_lock((pthread_mutex_t *)&task->mu);
        done = task->done;
        pthread_mutex_unlock((pthread_mutex_t *)&task->mu);
        return done ? CREW_TASK_CANCELED : CREW_TASK_QUEUED;
    }
    return s == CREW__QUEUED_LOCAL ? CREW_TASK_QUEUED : s;
}

int crew_task_cancel(crew_task_t *task)
{
    crew_t *pool;
    int s, rc = 0;
    bool cover;

    if (task == NULL || !crew__is_future(&task->rec))
        return CREW_EINVAL;
    /* seq_cst: a flag the running task polls, and one side of the race
     * with a fiber going to sleep (see crew__fiber_park()). */
    atomic_store_explicit(&task->cancel_requested, true,
                          memory_order_seq_cst);
    crew__fiber_cancel(task);   /* if it waits on a fiber, end that now */
    /* seq_cst: see schedule_retry() in policy.c. */
    s = atomic_load_explicit(&task->rec.state, memory_order_seq_cst);
    if (s != CREW__QUEUED && s != CREW__QUEUED_LOCAL)
        return CREW_EBUSY;
    /* The pool is alive: the task is accepted and unfinished, so
     * crew_shutdown() is still waiting for it. */
    pool = task->pool;
    if (task->rec.flags & CREW__F_POLICY)
        return crew__policy_cancel(task);
    /*
     * A QUEUED_LOCAL task has no count of its own: its worker's cover
     * holds one only while it is in the deque, and the worker may drop it
     * as soon as it finds the task claimed.  So say we report it, before
     * the claim (seq_cst), for whoever holds the record then to give us a
     * count (crew__cover_canceller); one canceller at a time (another
     * one would lose the claim anyway).
     */
    cover = s == CREW__QUEUED_LOCAL;
    if (cover) {
        int none = 0;

        if (!atomic_compare_exchange_strong_explicit(
                &task->cancel_cover, &none, 1, memory_order_seq_cst,
                memory_order_seq_cst))
            return CREW_EBUSY;
    }
    switch (crew__cancel_record(pool, &task->rec)) {
    case 0:
        rc = CREW_EBUSY;
        break;
    case 1:
        crew__finish_one_locked(pool);
        break;
    default:
        break;                  /* QUEUED_LOCAL: no count of its own */
    }
    if (cover) {
        int reporting = 1;

        /* Done; a count a holder gave us (2) goes now, under the lock as
         * any count a thread outside the pool drops. */
        if (!atomic_compare_exchange_strong_explicit(
                &task->cancel_cover, &reporting, rc == 0 ? 3 : 0,
                memory_order_seq_cst, memory_order_seq_cst)) {
            atomic_store_explicit(&task->cancel_cover, rc == 0 ? 3 : 0,
                                  memory_order_seq_cst);
            crew__finish_one_locked(pool);
        }
    }
    return rc;
}

void crew_task_release(crew_task_t *task)
{
    bool again;

    if (task == NULL || !crew__is_future(&task->rec))
        return;
    /* A second release of an unfinished future would drop the pool's
     * reference and free it under the running task: ignore it.  (After
     * completion the first release may have freed it; nothing can tell.) */
    pthread_mutex_lock(&task->mu);
    again = task->released;
    task->released = true;
    pthread_mutex_unlock(&task->mu);
    if (!again)
        crew__future_unref(task);
}

/* --- What a running task can ask -------------------------------------- */

crew_t *crew_ctx_pool(const crew_ctx_t *ctx)
{
    return ctx != NULL ? ctx->pool : NULL;
}

unsigned crew_ctx_worker_id(const crew_ctx_t *ctx)
{
    return ctx != NULL ? ctx->worker_id : 0;
}

unsigned crew_ctx_attempt(const crew_ctx_t *ctx)
{
    return ctx != NULL ? ctx->attempt : 0;
}

int64_t crew_ctx_deadline(const crew_ctx_t *ctx)
{
    return ctx != NULL ? ctx->deadline : 0;
}

bool crew_ctx_timed_out(const crew_ctx_t *ctx)
{
    if (ctx == NULL || ctx->deadline == 0)
        return false;
    return crew__now_ns() >= ctx->deadline;
}

bool crew_ctx_cancelled(const crew_ctx_t *ctx)
{
    if (ctx == NULL)
        return false;
    if (atomic_load_explicit(&ctx->pool->state, memory_order_relaxed) ==
        CREW__CANCELLING)
        return true;
    return crew__is_future(ctx->task) &&
           atomic_load_explicit(&crew__future(ctx->task)->cancel_requested,
                                memory_order_relaxed);
}
