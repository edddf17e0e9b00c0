/*
 * queue.c - the pool's task queue: an intrusive multi-producer,
 * single-consumer linked list.
 *
 * Any thread may push without a lock: a push is one atomic exchange on the
 * tail and one store linking the old tail to the new record.  Pops happen
 * only under pool->qlock, so there is one consumer at a time.  Records come
 * out in the order their exchanges happened (FIFO).
 *
 * Why it is correct: the exchange on `tail` gives every pushed record a
 * unique predecessor, so each link is written exactly once.  The list from
 * `head` is complete up to a record whose `next` is not yet written; such a
 * gap belongs to a producer between its exchange and its link store, and
 * closes as soon as that producer runs one more store.  The consumer reports
 * that as CREW__POP_RETRY instead of reading on, so it never skips or
 * repeats a record.  A sentinel record keeps the list non-empty, so the
 * consumer never has to race a producer for the last element: when it
 * would take the last one, it first pushes the sentinel behind it.
 *
 * Known limitation: a producer preempted between its two steps holds up the
 * consumer (which retries) until it runs again; pushes never wait.
 */
#include "crew_internal.h"

void crew__queue_init(struct crew__queue *q)
{
    atomic_init(&q->sentinel.next, NULL);
    q->head = &q->sentinel;
    atomic_init(&q->tail, &q->sentinel);
}

void crew__queue_push(struct crew__queue *q, struct crew__rec *t)
{
    struct crew__rec *prev;

    /* Relaxed: published by the release half of the exchange below. */
    atomic_store_explicit(&t->next, NULL, memory_order_relaxed);
    /*
     * acq_rel: release publishes t (its fields and NULL link) to the next
     * producer, which will write t->next; acquire makes prev's NULL link
     * store happen before our store to it below.
     */
    prev = atomic_exchange_explicit(&q->tail, t, memory_order_acq_rel);
    /* Release: pairs with the consumer's acquire load of prev->next, so
     * the consumer that reaches t sees everything written to it. */
    atomic_store_explicit(&prev->next, t, memory_order_release);
}

int crew__queue_pop(struct crew__queue *q, struct crew__rec **out)
{
    struct crew__rec *head = q->head;
    /* Acquire: pairs with the release link store in crew__queue_push. */
    struct crew__rec *next =
        atomic_load_explicit(&head->next, memory_order_acquire);

    if (head == &q->sentinel) {
        if (next == NULL) {
            /* Acquire: pairs with the exchange; only compared here. */
            if (atomic_load_explicit(&q->tail, memory_order_acquire) ==
                &q->sentinel)
                return CREW__POP_EMPTY;
            return CREW__POP_RETRY;
        }
        q->head = next;
        head = next;
        next = atomic_load_explicit(&head->next, memory_order_acquire);
    }
    if (next != NULL) {
        q->head = next;
        *out = head;
        return CREW__POP_OK;
    }
    if (atomic_load_explicit(&q->tail, memory_order_acquire) != head)
        return CREW__POP_RETRY;     /* a producer is mid-push behind head */
    crew__queue_push(q, &q->sentinel);
    next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (next != NULL) {
        q->head = next;
        *out = head;
        return CREW__POP_OK;
    }
    return CREW__POP_RETRY;
}
