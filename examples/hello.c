/*
 * hello.c - the smallest use of crew: submit tasks, wait for all of them,
 * read the statistics.
 */
#include <crew.h>

#include <stdatomic.h>
#include <stdio.h>

static atomic_long total;

static int add(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    atomic_fetch_add(&total, (long)(intptr_t)arg);
    return 0;
}

int main(void)
{
    crew_t *pool;
    crew_stats_t st;
    int rc;

    rc = crew_create(&pool, NULL);      /* one worker per CPU */
    if (rc != 0) {
        fprintf(stderr, "crew_create: %s\n", crew_strerror(rc));
        return 1;
    }
    for (long i = 1; i <= 1000; i++) {
        rc = crew_submit(pool, add, (void *)(intptr_t)i);
        if (rc != 0) {
            fprintf(stderr, "crew_submit: %s\n", crew_strerror(rc));
            return 1;
        }
    }
    crew_wait(pool);                    /* no polling, no sleeping */
    crew_stats(pool, &st);
    printf("sum %ld, %llu tasks done on %u workers\n", atomic_load(&total),
           (unsigned long long)st.completed, st.peak_workers);
    crew_free(pool);
    return atomic_load(&total) == 500500 ? 0 : 1;
}
