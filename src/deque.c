/*
 * deque.c - per-worker task deques (thread mode).
 *
 * A task that a worker submits to its own pool goes on that worker's
 * deque instead of the shared queue: no contention with submitters from
 * outside, and the worker takes its own newest task first (what it just
 * made is likely still in its cache, and fork-join stays depth-first).
 * Idle workers steal the oldest task from the other end of someone's
 * deque once the shared queue is empty.  Counts (queued, outstanding,
 * slots) are the same wherever a record waits, so the wake-up hand-off of
 * worker.c covers the deques unchanged: a sleeper woken because queued > 0
 * finds the task by stealing it.
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

/* Worker w leaves: what its deque holds goes to the shared queue. */
void crew__deque_release(crew_t *pool, struct crew__worker *w)
{
    struct crew__deque *d = w->deq;
    struct crew__rec *t;
    bool moved = false;

    if (d == NULL)
        return;
    while ((t = crew__deque_pop(d)) != NULL) {
        crew__queue_push(&pool->q, t);
        moved = true;
    }
    w->deq = NULL;
    atomic_store_explicit(&d->owned, false, memory_order_release);
    if (moved)
        crew__pass_on(pool);
}

bool crew__deque_push(struct crew__deque *d, struct crew__rec *t)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    /* Acquire: a thief's CAS freed the slot we are about to reuse. */
    int64_t top = atomic_load_explicit(&d->top, memory_order_acquire);

    if (b - top >= CREW__DEQ_SIZE)
        return false;
    atomic_store_explicit(&d->buf[b & MASK], t, memory_order_relaxed);
    /* Release: a thief that sees the new bottom sees the slot and the
     * record's fields. */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return true;
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

/* Take the oldest task of d, or NULL if it is empty or a race was lost. */
static struct crew__rec *steal_one(struct crew__deque *d)
{
    int64_t top = atomic_load_explicit(&d->top, memory_order_seq_cst);
    /* seq_cst (an acquire): see crew__deque_pop; and it pairs with the
     * push's release, so the slot and the record are visible. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    struct crew__rec *t;

    if (top >= b)
        return NULL;
    t = atomic_load_explicit(&d->buf[top & MASK], memory_order_relaxed);
    /* A failed CAS means someone else took it (and a slot read may have
     * been overwritten since: then it is not ours to use). */
    if (!atomic_compare_exchange_strong_explicit(&d->top, &top, top + 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed))
        return NULL;
    return t;
}

/* Steal a task from some other worker's deque, or NULL. */
struct crew__rec *crew__deque_steal(crew_t *pool, struct crew__worker *w)
{
    unsigned n, start;

    /* Relaxed: a hint (queued counts the deques' records too); a stale
     * zero is made up for by the hand-off, which brings an idle worker
     * back while queued > 0.  No counter of its own: a shared one would
     * cost every push and pop a contended write. */
    if (atomic_load_explicit(&pool->queued, memory_order_relaxed) == 0)
        return NULL;
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
            if ((t = steal_one(d)) != NULL)
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
