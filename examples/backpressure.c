/*
 * backpressure.c - a bounded queue: a fast producer is slowed to the pace
 * of the workers instead of growing memory without end.  Shows blocking,
 * non-blocking and timed submits.
 */
#include <crew.h>

#include <stdio.h>
#include <time.h>

static int work(crew_ctx_t *ctx, void *arg, void **result)
{
    struct timespec ms = { 0, 1000000 };

    (void)ctx;
    (void)arg;
    (void)result;
    nanosleep(&ms, NULL);
    return 0;
}

int main(void)
{
    crew_opts_t opts = { .max_workers = 4, .queue_capacity = 8 };
    int accepted = 0, full = 0, timed_out = 0;
    crew_stats_t st;
    crew_t *pool;

    if (crew_create(&pool, &opts) != 0)
        return 1;
    /* Non-blocking: refused at once when 8 tasks already wait. */
    for (int i = 0; i < 100; i++) {
        int rc = crew_try_submit(pool, work, NULL);

        if (rc == 0)
            accepted++;
        else if (rc == CREW_EAGAIN)
            full++;
    }
    /* Timed: waits up to 50 us for room. */
    for (int i = 0; i < 100; i++) {
        int rc = crew_submit_timeout(pool, work, NULL, 50000);

        if (rc == 0)
            accepted++;
        else if (rc == CREW_ETIMEDOUT)
            timed_out++;
    }
    /* Blocking: always accepted, at the workers' pace. */
    for (int i = 0; i < 100; i++)
        if (crew_submit(pool, work, NULL) == 0)
            accepted++;
    crew_wait(pool);
    crew_stats(pool, &st);
    printf("accepted %d, refused (full) %d, timed out %d, ran %llu\n",
           accepted, full, timed_out, (unsigned long long)st.completed);
    crew_free(pool);
    return st.completed == (unsigned long long)accepted ? 0 : 1;
}
