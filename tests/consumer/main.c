/*
 * A small program that uses crew as an outside project would: it includes
 * <crew.h> only, sums numbers with plain tasks, squares one with a future,
 * and checks the statistics.  Exits 0 when every result is right.
 */
#include <crew.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#define N 1000

static atomic_long total;

static int add(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    atomic_fetch_add(&total, (long)(intptr_t)arg);
    return 0;
}

static int square(crew_ctx_t *ctx, void *arg, void **result)
{
    intptr_t n = (intptr_t)arg;

    (void)ctx;
    *result = (void *)(n * n);
    return 0;
}

static int check(int rc, const char *what)
{
    if (rc != 0)
        fprintf(stderr, "consumer: %s: %s\n", what, crew_strerror(rc));
    return rc != 0;
}

int main(void)
{
    crew_opts_t opts = { .min_workers = 1,
                         .max_workers = 4,
                         .queue_capacity = 64 };
    crew_t *pool;
    crew_task_t *task;
    crew_stats_t st;
    void *result = NULL;
    int bad = 0;

    if (check(crew_create(&pool, &opts), "crew_create"))
        return 1;
    for (long i = 1; i <= N; i++)
        bad |=
            check(crew_submit(pool, add, (void *)(intptr_t)i), "crew_submit");
    if (check(crew_spawn(pool, square, (void *)(intptr_t)12, NULL, &task),
              "crew_spawn")) {
        bad = 1;
    } else {
        bad |= check(crew_task_wait(task, &result), "crew_task_wait");
        crew_task_release(task);
    }
    bad |= check(crew_wait(pool), "crew_wait");
    crew_stats(pool, &st);
    bad |= check(crew_free(pool), "crew_free");

    if (atomic_load(&total) != (long)N * (N + 1) / 2) {
        fprintf(stderr, "consumer: sum %ld\n", atomic_load(&total));
        bad = 1;
    }
    if ((intptr_t)result != 144) {
        fprintf(stderr, "consumer: square %ld\n", (long)(intptr_t)result);
        bad = 1;
    }
    if (st.submitted != N + 1 || st.completed != N + 1 || st.max_workers != 4) {
        fprintf(stderr, "consumer: stats %llu submitted, %llu completed\n",
                (unsigned long long)st.submitted,
                (unsigned long long)st.completed);
        bad = 1;
    }
    if (crew_submit(NULL, add, NULL) != CREW_EINVAL ||
        crew_strerror(CREW_EINVAL) == NULL) {
        fprintf(stderr, "consumer: crew_submit(NULL) was not CREW_EINVAL\n");
        bad = 1;
    }
    if (!bad)
        printf("consumer: crew %d.%d.%d works\n", CREW_VERSION_MAJOR,
               CREW_VERSION_MINOR, CREW_VERSION_PATCH);
    return bad;
}
