/*
 * forkjoin.c - a fork-join computation: a parallel sum over an array by
 * recursive halving.  Each task spawns a task for one half, computes the
 * other half itself, then waits for the spawned one; while it waits, its
 * worker runs other queued tasks, so a pool of two workers never starves.
 */
#include <crew.h>

#include <stdio.h>
#include <stdlib.h>

#define CUTOFF 4096

struct range {
    const long *v;
    size_t lo, hi;
    long sum;
};

static int sum_range(crew_ctx_t *ctx, void *arg, void **result)
{
    struct range *r = arg;
    struct range left, right;
    crew_task_t *t;
    int rc;

    (void)result;
    if (r->hi - r->lo <= CUTOFF) {
        r->sum = 0;
        for (size_t i = r->lo; i < r->hi; i++)
            r->sum += r->v[i];
        return 0;
    }
    left = (struct range){ r->v, r->lo, (r->lo + r->hi) / 2, 0 };
    right = (struct range){ r->v, left.hi, r->hi, 0 };
    rc = crew_spawn(crew_ctx_pool(ctx), sum_range, &right, NULL, &t);
    if (rc != 0)
        return rc;
    sum_range(ctx, &left, NULL);
    rc = crew_task_wait(t, NULL);       /* helps while it waits */
    crew_task_release(t);
    r->sum = left.sum + right.sum;
    return rc;
}

int main(void)
{
    size_t n = 1 << 20;
    long *v = malloc(n * sizeof(*v));
    struct range all;
    crew_opts_t o = { .max_workers = 2, .stack_size = 256 * 1024 };
    crew_task_t *t;
    crew_t *pool;
    long want = 0;

    if (v == NULL || crew_create(&pool, &o) != 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        v[i] = (long)(i % 1000);
        want += v[i];
    }
    all = (struct range){ v, 0, n, 0 };
    if (crew_spawn(pool, sum_range, &all, NULL, &t) != 0 ||
        crew_task_wait(t, NULL) != 0)
        return 1;
    crew_task_release(t);
    printf("sum %ld (expected %ld)\n", all.sum, want);
    crew_free(pool);
    free(v);
    return all.sum == want ? 0 : 1;
}
