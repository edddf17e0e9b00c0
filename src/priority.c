/*
 * priority.c - the priority queue beside the FIFO queue.
 *
 * Tasks spawned with a non-zero priority (or every task, when the pool
 * ages priorities) wait in a binary max-heap under pool->plock instead of
 * the lock-free FIFO queue, so a pool that never uses priorities pays one
 * relaxed load per take (prio_n == 0) and nothing else.
 *
 * Order: higher key first, equal keys in submission order (a sequence
 * number).  Without aging the key is the priority, and the FIFO queue holds
 * the priority-0 tasks: a worker takes a positive-priority task first,
 * then the FIFO, then negative priorities.  With aging (priority_aging_ns
 * = A), a task's effective priority grows by one every A nanoseconds it
 * waits: prio + (now - enq) / A.  Comparing two tasks, `now` cancels out,
 * so the static key prio * A - enq orders them the same at every moment,
 * and a heap keyed on it needs no re-sorting.  Then every task goes
 * through the heap, so priority-0 tasks age too and a stream of high
 * priorities cannot starve anyone: a task that has waited W outranks any
 * newcomer whose priority is below its own plus W / A.
 *
 * plock is a leaf: nothing is called with it held.
 */
#include "crew_internal.h"

#include <stdlib.h>

bool crew__uses_heap(const crew_t *pool, const crew_task_opts_t *opts)
{
    return pool->opts.priority_aging_ns > 0 ||
           (opts != NULL && opts->priority != 0);
}

static bool above(const struct crew__pent *a, const struct crew__pent *b)
{
    return a->key > b->key || (a->key == b->key && a->seq < b->seq);
}

static int64_t key_of(const crew_t *pool, int priority)
{
    int64_t a = pool->opts.priority_aging_ns;
    int64_t k;

    if (a <= 0)
        return priority;
    /* Clamp so that priority * A cannot overflow. */
    if (a > INT64_MAX / 4 / ((int64_t)INT32_MAX + 1))
        a = INT64_MAX / 4 / ((int64_t)INT32_MAX + 1);
    k = (int64_t)priority * a - crew__now_ns();
    return k;
}

/* Insert into the heap.  Returns CREW_ENOMEM if it cannot grow. */
int crew__prio_push(crew_t *pool, struct crew__rec *t, int priority)
{
    struct crew__pent e;
    size_t i;

    e.key = key_of(pool, priority);
    e.rec = t;
    pthread_mutex_lock(&pool->plock);
    if (pool->plen == pool->pcap) {
        size_t cap = pool->pcap ? pool->pcap * 2 : 64;
        struct crew__pent *h = crew__malloc(cap * sizeof(*h));

        if (h == NULL) {
            pthread_mutex_unlock(&pool->plock);
            return CREW_ENOMEM;
        }
        for (i = 0; i < pool->plen; i++)
            h[i] = pool->pheap[i];
        free(pool->pheap);
        pool->pheap = h;
        pool->pcap = cap;
    }
    e.seq = pool->pseq++;
    i = pool->plen++;
    while (i > 0 && above(&e, &pool->pheap[(i - 1) / 2])) {
        pool->pheap[i] = pool->pheap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    pool->pheap[i] = e;
    /* Relaxed: a hint for take(); the entry itself is read under plock. */
    atomic_store_explicit(&pool->prio_n, pool->plen, memory_order_relaxed);
    pthread_mutex_unlock(&pool->plock);
    return 0;
}

static struct crew__rec *pop_locked(crew_t *pool)
{
    struct crew__rec *t = pool->pheap[0].rec;
    struct crew__pent last = pool->pheap[--pool->plen];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= pool->plen)
            break;
        if (c + 1 < pool->plen && above(&pool->pheap[c + 1],
                                        &pool->pheap[c]))
            c++;
        if (!above(&pool->pheap[c], &last))
            break;
        pool->pheap[i] = pool->pheap[c];
        i = c;
    }
    if (pool->plen > 0)
        pool->pheap[i] = last;
    atomic_store_explicit(&pool->prio_n, pool->plen, memory_order_relaxed);
    return t;
}

/*
 * Take from the heap if its top should run before the FIFO queue's head:
 * always with aging (the FIFO is then unused), else when its priority is
 * positive, or when `fifo_empty`.  NULL otherwise.
 */
struct crew__rec *crew__prio_take(crew_t *pool, bool fifo_empty)
{
    struct crew__rec *t = NULL;

    pthread_mutex_lock(&pool->plock);
    if (pool->plen > 0 &&
        (fifo_empty || pool->opts.priority_aging_ns > 0 ||
         pool->pheap[0].key > 0))
        t = pop_locked(pool);
    pthread_mutex_unlock(&pool->plock);
    return t;
}
