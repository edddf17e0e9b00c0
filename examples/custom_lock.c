/*
 * custom_lock.c - bring your own lock for the task queue: here a pthread
 * spin lock that also counts how often it was taken, handed to crew as a
 * pair of functions and a context (crew_opts_t.lock = CREW_LOCK_CUSTOM).
 */
#include <crew.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

struct counting_lock {
    pthread_spinlock_t spin;
    atomic_long taken;
};

static void take(void *ctx)
{
    struct counting_lock *l = ctx;

    pthread_spin_lock(&l->spin);
    atomic_fetch_add_explicit(&l->taken, 1, memory_order_relaxed);
}

static void release(void *ctx)
{
    struct counting_lock *l = ctx;

    pthread_spin_unlock(&l->spin);
}

static int work(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    atomic_fetch_add((atomic_long *)arg, 1);
    return 0;
}

int main(void)
{
    struct counting_lock l;
    crew_lock_ops_t ops = { take, release, &l };
    crew_opts_t o = { .max_workers = 2, .lock = CREW_LOCK_CUSTOM,
                      .lock_ops = &ops };
    atomic_long done = 0;
    crew_t *pool;

    pthread_spin_init(&l.spin, PTHREAD_PROCESS_PRIVATE);
    atomic_init(&l.taken, 0);
    if (crew_create(&pool, &o) != 0)
        return 1;
    for (int i = 0; i < 10000; i++)
        crew_submit(pool, work, &done);
    crew_wait(pool);
    crew_free(pool);
    printf("%ld tasks, queue lock taken %ld times\n", atomic_load(&done),
           atomic_load(&l.taken));
    pthread_spin_destroy(&l.spin);
    /* A worker takes up to 8 tasks per lock when many wait. */
    return atomic_load(&done) == 10000 && atomic_load(&l.taken) >= 10000 / 8
               ? 0
               : 1;
}
