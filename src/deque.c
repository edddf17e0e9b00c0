/*
 * deque.c - per-worker task deques (thread mode).
 *
 * A task that a worker submits to its own pool goes on that worker's
 * deque instead of the shared queue: no contention with submitters from
 * outside, and the worker takes its own newest task first (what it just
 * made is likely still in its cache, and fork-join stays depth-first).
 * Idle workers steal the oldest task from the other end of someone's
 * deque once the shared queue is empty.
 *
 * Counting.  A record that goes through the shared counters (`queued` up
 * when pushed and down when taken, `outstanding` up when submitted and
 * down when done) costs four read-modify-writes on lines every worker
 * writes; with tiny tasks submitted from inside, that was most of a
 * task's cost.  So a task without options (plain, or with a future) that
 * a worker submits outside any attempt with a policy goes on its deque in
 * state QUEUED_LOCAL, counted in neither.  Instead the worker holds a
 * *cover*: one count in `outstanding`, taken with its first such push and
 * dropped between tasks when it has nothing to run (crew__cover_settle),
 * so `outstanding` cannot reach zero while any is queued in its deque or
 * running on it.  Whoever moves a record out of QUEUED_LOCAL (by CAS, as
 * out of QUEUED: crew__claim) knows it has no count of its own:
 *  - its owner, popping it (or helping with it while it still holds its
 *    cover), runs it under the cover, touching no shared counter;
 *  - a thief counts it in `outstanding` before its CAS on `top`, since
 *    the owner, seeing its deque empty, may drop its cover right after;
 *    the count goes when the task is done (or at once, if the record was
 *    claimed by someone else or counted already);
 *  - a worker helping with one in another's deque counts it the same way
 *    before its claim (run_out_of_turn in task.c);
 *  - a canceller owes nothing (crew__cancel_record returns 2).
 * A worker that leaves, or may sleep, or is about to run an attempt with a
 * deadline (which may stick it for good while the attempt's own count is
 * dropped) moves what its deque holds to the shared queue: each
 * QUEUED_LOCAL record gets a count and becomes QUEUED by CAS, unless
 * someone claimed it first (spill).  No counter shows such records, so
 * the hand-off with sleepers looks at the deques themselves: a pusher
 * stores `bottom`, then loads idle_avail (crew__deque_push_seq and
 * submit_local; seq_cst); a sleeper publishes idle_avail, then loads
 * every deque's ends (crew__deques_busy, seq_cst).  Other records
 * (batches moved from the shared queue, tasks with options) are counted
 * the same wherever they wait.
 *
 * The deque is the bounded array version of the Chase-Lev deque (as made
 * correct for C11 by Lê, Pop, Cohen and Zappa Nardelli): the owner pushes
 * and pops at `bottom`, thieves take at `top` by CAS; a full deque makes
 * the submit use the shared queue.  The one race is owner and thief both
 * going for the last task; both then CAS `top`, and one wins.
 *
 * Slots: a pool has CREW__NDEQ deques, made on demand and kept until the
 * pool goes (a thief may still be reading one whose owner left).  A worker
 * owns one for its life if one is free; more workers than that just use
 * the shared queue.  A worker that leaves moves whatever its deque holds
 * to the shared queue first.  Fiber mode does not use deques: fibers take
 * work from the shared queue only.
 */
#include "crew_internal.h"

#include <stdlib.h>

#define MASK (CREW__DEQ_SIZE - 1)

/* Take a deque for worker w, if the pool has one free. */
void crew__deque_claim(crew_t *pool, struct crew__worker *w)
{
    w->deq = NULL;
    if (pool->opts.fibers)
        return;
    for (unsigned i = 0; i < CREW__NDEQ; i++) {
        /* Acquire: pairs with the release CAS that published it. */
        struct crew__deque *d = atomic_load_explicit(&pool->deqs[i],
                                                     memory_order_acquire);
        bool no = false;

        if (d == NULL) {
            void *p;

            if (crew__memalign(&p, CREW__CACHELINE, sizeof(*d)) != 0)
                return;         /* no memory: the shared queue will do */
            d = p;
            atomic_init(&d->top, 0);
            atomic_init(&d->bottom, 0);
            atomic_init(&d->owned, true);
            for (unsigned k = 0; k < CREW__DEQ_SIZE; k++)
                atomic_init(&d->buf[k], NULL);
            {
                struct crew__deque *expect = NULL;

                /* Release: thieves that load it see it initialised. */
                if (!atomic_compare_exchange_strong_explicit(
                        &pool->deqs[i], &expect, d, memory_order_release,
                        memory_order_relaxed)) {
                    free(d);
                    i--;        /* someone filled it: look at it again */
                    continue;
                }
            }
            {
                unsigned n = atomic_load_explicit(&pool->ndeqs,
                                                  memory_order_relaxed);

                /* Relaxed: a bound for thieves' scans; a thief that reads
                 * an old value misses a deque that holds nothing yet. */
                while (n < i + 1 &&
                       !atomic_compare_exchange_weak_explicit(
                           &pool->ndeqs, &n, i + 1, memory_order_relaxed,
                           memory_order_relaxed))
                    ;
            }
            w->deq = d;
            return;
        }
        /* Acquire: pairs with the release in crew__deque_release, so the
         * last owner's pushes and pops are behind us. */
        if (atomic_compare_exchange_strong_explicit(
                &d->owned, &no, true, memory_order_acquire,
                memory_order_relaxed)) {
            w->deq = d;
            return;
        }
    }
}

/* w's deque is empty and it runs no QUEUED_LOCAL record: drop the
 * cover. */
static void cover_drop(crew_t *pool, struct crew__worker *w)
{
    if (!w->cover)
        return;
    w->cover = false;
    crew__uncount(pool);
}

/*
 * Move what w's deque holds to the shared queue, QUEUED_LOCAL records
 * made plain QUEUED and counted there as any other, and drop w's cover.
 * Only w calls it.
 */
static void spill(crew_t *pool, struct crew__worker *w)
{
    struct crew__rec *t;
    bool moved = false;

    while ((t = crew__deque_pop(w->deq)) != NULL) {
        int s = CREW__QUEUED_LOCAL;

        if (atomic_load_explicit(&t->state, memory_order_relaxed) == s) {
            /* Its count first (relaxed: the cover keeps outstanding above
             * zero until the seq_cst drop below), then the state, against
             * a canceller or a helper claiming it meanwhile (acq_rel, as
             * crew__claim: whoever moves it first decides). */
            atomic_fetch_add_explicit(&pool->outstanding, 1,
                                      memory_order_relaxed);
            if (!atomic_compare_exchange_strong_explicit(
                    &t->state, &s, CREW__QUEUED, memory_order_acq_rel,
                    memory_order_acquire)) {
                /* Claimed: its claimer ran or reported it and needed no
                 * count of ours (but see crew__cover_canceller); the
                 * record is ours to free. */
                crew__cover_canceller(pool, t);
                crew__uncount(pool);
                crew__dispose(pool, t);
                continue;
            }
            crew__local_add(-1);
            atomic_store_explicit(&t->waiting, CREW__COUNTED,
                                  memory_order_relaxed);
            crew__queue_push(&pool->q, t);
            /* seq_cst: after the push, as in crew__enqueue (the hand-off). */
            atomic_fetch_add_explicit(&pool->enqueued, 1, memory_order_seq_cst);
        } else {
            crew__queue_push(&pool->q, t);
        }
        moved = true;
    }
    cover_drop(pool, w);
    if (moved)
        crew__pass_on(pool);
}

/* Worker w leaves: what its deque holds goes to the shared queue. */
void crew__deque_release(crew_t *pool, struct crew__worker *w)
{
    struct crew__deque *d = w->deq;

    if (d == NULL)
        return;
    spill(pool, w);
    w->deq = NULL;
    atomic_store_explicit(&d->owned, false, memory_order_release);
}

/* Before w's first QUEUED_LOCAL push: a count in outstanding for them.
 * False (and none) if the pool no longer accepts work. */
bool crew__cover_take(crew_t *pool, struct crew__worker *w)
{
    /* seq_cst, then the state: as any submit (see submit() in task.c). */
    atomic_fetch_add_explicit(&pool->outstanding, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&pool->state, memory_order_seq_cst) !=
        CREW__RUNNING_STATE) {
        crew__uncount(pool);
        return false;
    }
    w->cover = true;
    return true;
}

/*
 * No cover for w from here on, outside any QUEUED_LOCAL record: what its
 * deque holds goes to the shared queue, counted.  Between tasks, before
 * it spins or sleeps (a sleeper's cover would hold crew_wait() up), and
 * before an attempt with a deadline: if w got stuck there, the attempt's
 * count would go at the deadline but the cover would stay for good.
 * (Nested in a QUEUED_LOCAL record the cover stays: that record is stuck
 * too, and counted by it, as in a drain.)
 */
void crew__cover_settle(crew_t *pool, struct crew__worker *w)
{
    if (w->cover && crew__local_depth == 0 && w->deq != NULL)
        spill(pool, w);
}

/* Does any deque hold a task?  seq_cst: the sleeper's half of the
 * hand-off for QUEUED_LOCAL records (see the top of the file). */
bool crew__deques_busy(crew_t *pool)
{
    unsigned n = atomic_load_explicit(&pool->ndeqs, memory_order_seq_cst);

    for (unsigned i = 0; i < n; i++) {
        struct crew__deque *d = atomic_load_explicit(&pool->deqs[i],
                                                     memory_order_acquire);

        if (d != NULL &&
            atomic_load_explicit(&d->top, memory_order_seq_cst) <
                atomic_load_explicit(&d->bottom, memory_order_seq_cst))
            return true;
    }
    return false;
}

/* About how many tasks the deques hold (for sizing decisions). */
size_t crew__deques_held(crew_t *pool)
{
    unsigned n = atomic_load_explicit(&pool->ndeqs, memory_order_seq_cst);
    size_t held = 0;

    for (unsigned i = 0; i < n; i++) {
        struct crew__deque *d = atomic_load_explicit(&pool->deqs[i],
                                                     memory_order_acquire);

        if (d != NULL) {
            int64_t k =
                atomic_load_explicit(&d->bottom, memory_order_seq_cst) -
                atomic_load_explicit(&d->top, memory_order_seq_cst);

            if (k > 0)
                held += (size_t)k;
        }
    }
    return held;
}

/* Tasks in w's own deque (its owner's view). */
bool crew__deque_busy(const struct crew__deque *d)
{
    /* seq_cst: as in crew__deques_busy, for crew__pass_on. */
    return atomic_load_explicit(&d->top, memory_order_seq_cst) <
           atomic_load_explicit(&d->bottom, memory_order_seq_cst);
}

/* Push t at the owner's end; `mo` orders the store of bottom. */
static bool push(struct crew__deque *d, struct crew__rec *t, memory_order mo)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    /* Acquire: a thief's CAS freed the slot we are about to reuse. */
    int64_t top = atomic_load_explicit(&d->top, memory_order_acquire);

    if (b - top >= CREW__DEQ_SIZE)
        return false;
    atomic_store_explicit(&d->buf[b & MASK], t, memory_order_relaxed);
    atomic_store_explicit(&d->bottom, b + 1, mo);
    return true;
}

bool crew__deque_push(struct crew__deque *d, struct crew__rec *t)
{
    /* Release: a thief that sees the new bottom sees the slot and the
     * record's fields. */
    return push(d, t, memory_order_release);
}

/* The same, with a seq_cst store of bottom (a release too): for a
 * QUEUED_LOCAL record, whose push the hand-off with sleepers orders by
 * this store (see the top of the file). */
bool crew__deque_push_seq(struct crew__deque *d, struct crew__rec *t)
{
    return push(d, t, memory_order_seq_cst);
}

struct crew__rec *crew__deque_pop(struct crew__deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    int64_t top;
    struct crew__rec *t = NULL;

    /*
     * seq_cst store, then seq_cst load of top: a thief loads top, then
     * bottom (both seq_cst), so either we see its advanced top or it sees
     * our lowered bottom; they cannot both take the last task unseen.
     */
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    top = atomic_load_explicit(&d->top, memory_order_seq_cst);
    if (top <= b) {
        t = atomic_load_explicit(&d->buf[b & MASK], memory_order_relaxed);
        if (top == b) {
            /* The last one: race the thieves for it. */
            if (!atomic_compare_exchange_strong_explicit(
                    &d->top, &top, top + 1, memory_order_seq_cst,
                    memory_order_relaxed))
                t = NULL;
            atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        }
    } else {
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return t;
}

/* Is t the newest record of d (the owner's view)? */
bool crew__deque_newest_is(struct crew__deque *d, const struct crew__rec *t)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    /* Relaxed: a hint; the pop that follows decides. */
    int64_t top = atomic_load_explicit(&d->top, memory_order_relaxed);

    return b > top && atomic_load_explicit(&d->buf[(b - 1) & MASK],
                                           memory_order_relaxed) == t;
}

/* Take the oldest task of d, or NULL if it is empty or a race was lost. */
static struct crew__rec *steal_one(crew_t *pool, struct crew__deque *d)
{
    int64_t top = atomic_load_explicit(&d->top, memory_order_seq_cst);
    /* seq_cst (an acquire): see crew__deque_pop; and it pairs with the
     * push's release, so the slot and the record are visible. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    struct crew__rec *t;

    if (top >= b)
        return NULL;
    /* Counted before the CAS (see the top of the file), in a pool that
     * may have QUEUED_LOCAL records.  seq_cst: it must come before the
     * owner's look at an empty deque and its drop. */
    if (pool->locals)
        atomic_fetch_add_explicit(&pool->outstanding, 1,
                                  memory_order_seq_cst);
    t = atomic_load_explicit(&d->buf[top & MASK], memory_order_relaxed);
    /* A failed CAS means someone else took it (and a slot read may have
     * been overwritten since: then it is not ours to use). */
    if (!atomic_compare_exchange_strong_explicit(&d->top, &top, top + 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        if (pool->locals)
            crew__uncount(pool);
        return NULL;
    }
    /* Ours, with our count: crew__run_taken drops it when done. */
    crew__stolen = pool->locals;
    return t;
}

/* Steal a task from some other worker's deque, or NULL. */
struct crew__rec *crew__deque_steal(crew_t *pool, struct crew__worker *w)
{
    unsigned n, start;

    n = atomic_load_explicit(&pool->ndeqs, memory_order_relaxed);
    if (n == 0)
        return NULL;
    start = w != NULL ? w->steal_seed++ % n : 0;
    for (unsigned k = 0; k < n; k++) {
        struct crew__deque *d = atomic_load_explicit(
            &pool->deqs[(start + k) % n], memory_order_acquire);
        struct crew__rec *t;

        if (d == NULL || (w != NULL && d == w->deq))
            continue;
        for (int tries = 0; tries < 4; tries++)
            if ((t = steal_one(pool, d)) != NULL)
                return t;
    }
    return NULL;
}

/* With the pool: the deques (empty by then: their owners have left). */
void crew__deques_free(crew_t *pool)
{
    for (unsigned i = 0; i < CREW__NDEQ; i++)
        free(atomic_load_explicit(&pool->deqs[i], memory_order_relaxed));
}
