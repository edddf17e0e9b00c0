/*
 * blocking.c - crew_blocking(): a blocking call made from a fiber runs on
 * one of the pool's blocking threads while the fiber parks, so the
 * fiber's thread keeps running its other fibers.
 *
 * Why not hand the fiber's thread over instead (its queue and parked
 * fibers going to a new thread while this one blocks, as Go does)?  The
 * other fibers would then resume on another OS thread, and fibers never
 * move (their thread-local storage and errno stay theirs).  Moving the one
 * call is the only way that keeps that promise; its errno comes back with
 * it.
 *
 * Blocking threads start on demand, up to opts.blocking_threads, and
 * retire after BLOCK_IDLE_NS without a call.  Each holds a reference on
 * the pool (crew__pool_unref), so its last unlock never races with the
 * pool's destruction; crew_free waits until they are gone.
 */
#include "crew_internal.h"

#include <errno.h>

#define BLOCK_IDLE_NS (1000LL * 1000 * 1000)

struct crew__bcall {
    struct crew__bcall *next;
    void *(*fn)(void *);
    void *arg;
    void *result;
    int err;                    /* errno after fn */
    bool done;                  /* under block_lock */
    struct crew__waiter *waiter; /* the fiber, under block_lock */
};

static void *blocking_main(void *p)
{
    crew_t *pool = p;
    struct crew__bcall *c;
    struct timespec deadline;

    pthread_mutex_lock(&pool->block_lock);
    for (;;) {
        if ((c = pool->bhead) != NULL) {
            struct crew__fiber *woken;

            pool->bhead = c->next;
            if (pool->bhead == NULL)
                pool->btail = NULL;
            pool->bbusy++;
            if (pool->bthreads == pool->bbusy)
                pthread_cond_broadcast(&pool->block_gone_cv);
            pthread_mutex_unlock(&pool->block_lock);
            errno = 0;
            c->result = c->fn(c->arg);
            c->err = errno;
            pthread_mutex_lock(&pool->block_lock);
            pool->bbusy--;
            c->done = true;
            woken = crew__waiters_take(&c->waiter);
            pthread_mutex_unlock(&pool->block_lock);
            crew__fiber_deliver(woken);
            pthread_mutex_lock(&pool->block_lock);
            continue;
        }
        if (pool->bstop)
            break;
        crew__deadline(&deadline, BLOCK_IDLE_NS);
        pool->bidle++;
        int rc = pthread_cond_timedwait(&pool->block_cv, &pool->block_lock,
                                        &deadline);
        pool->bidle--;
        if (rc == ETIMEDOUT && pool->bhead == NULL)
            break;
    }
    pool->bthreads--;
    if (pool->bthreads == pool->bbusy)
        pthread_cond_broadcast(&pool->block_gone_cv);
    pthread_mutex_unlock(&pool->block_lock);
    crew__pool_unref(pool);
    return NULL;
}

/* Start a blocking thread.  Call with block_lock held. */
static bool start_locked(crew_t *pool)
{
    pthread_attr_t attr;
    pthread_t tid;
    int rc;

    if (pthread_attr_init(&attr) != 0)
        return false;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pool->opts.stack_size > 0)
        pthread_attr_setstacksize(&attr,
                                  crew__stack_size(pool->opts.stack_size));
    /* Relaxed: a count; the thread's own unref is acq_rel. */
    atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed);
    rc = crew__thread_create(&tid, &attr, blocking_main, pool);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        atomic_fetch_sub_explicit(&pool->refs, 1, memory_order_relaxed);
        return false;
    }
    pool->bthreads++;
    return true;
}

void *crew_blocking(void *(*fn)(void *), void *arg)
{
    struct crew__bcall c = { NULL, fn, arg, NULL, 0, false, NULL };
    crew_t *pool;

    if (fn == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if (!crew__in_fiber())
        return fn(arg);         /* a thread may block: nothing to do */
    pool = crew__self->pool;
    pthread_mutex_lock(&pool->block_lock);
    if (pool->bstop ||
        (pool->bidle == 0 && pool->bthreads < pool->opts.blocking_threads &&
         !start_locked(pool) && pool->bthreads == 0)) {
        /* No thread to run it on: block this one (the call still runs;
         * only the thread's other fibers wait). */
        pthread_mutex_unlock(&pool->block_lock);
        return fn(arg);
    }
    if (pool->btail != NULL)
        pool->btail->next = &c;
    else
        pool->bhead = &c;
    pool->btail = &c;
    if (pool->bidle > 0)
        pthread_cond_signal(&pool->block_cv);
    /* Park until a blocking thread has run it (threads past the bound
     * queue behind the others). */
    while (!c.done)
        crew__fiber_wait_on(&c.waiter, &pool->block_lock, 0, false);
    pthread_mutex_unlock(&pool->block_lock);
    errno = c.err;
    return c.result;
}

/* At crew_free: stop the blocking threads and wait until they are gone,
 * except those still inside a call: every task has been reported, so
 * such a call is one of a task that timed out, whose fiber shutdown left
 * behind; the thread holds a reference on the pool and goes after it. */
void crew__blocking_stop(crew_t *pool)
{
    pthread_mutex_lock(&pool->block_lock);
    pool->bstop = true;
    pthread_cond_broadcast(&pool->block_cv);
    while (pool->bthreads > pool->bbusy)
        pthread_cond_wait(&pool->block_gone_cv, &pool->block_lock);
    pthread_mutex_unlock(&pool->block_lock);
}
