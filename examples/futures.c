/*
 * futures.c - results through futures: spawn tasks that compute a value,
 * wait for each one, and handle a task that fails.
 */
#include <crew.h>

#include <stdio.h>
#include <stdlib.h>

/* Sum of squares 1..n, returned as a heap-allocated result. */
static int squares(crew_ctx_t *ctx, void *arg, void **result)
{
    long n = (long)(intptr_t)arg;
    long *sum;

    (void)ctx;
    if (n < 0)
        return EDOM;                    /* a task's own error code */
    sum = malloc(sizeof(*sum));
    if (sum == NULL)
        return ENOMEM;
    *sum = 0;
    for (long i = 1; i <= n; i++)
        *sum += i * i;
    *result = sum;
    return 0;
}

int main(void)
{
    long inputs[] = { 10, 100, -1, 1000 };
    crew_task_t *tasks[4];
    crew_opts_t opts = { .max_workers = 2, .free_result = free };
    crew_t *pool = crew_new(&opts);
    int failures = 0;

    if (pool == NULL)
        return 1;
    for (int i = 0; i < 4; i++) {
        int rc = crew_spawn(pool, squares, (void *)(intptr_t)inputs[i],
                            NULL, &tasks[i]);
        if (rc != 0) {
            fprintf(stderr, "crew_spawn: %s\n", crew_strerror(rc));
            return 1;
        }
    }
    for (int i = 0; i < 4; i++) {
        void *result = NULL;
        int rc = crew_task_wait(tasks[i], &result);

        if (rc == 0) {
            printf("squares(%ld) = %ld\n", inputs[i], *(long *)result);
            free(result);               /* collected: ours to free */
        } else {
            printf("squares(%ld) failed: %s\n", inputs[i],
                   rc == EDOM ? "negative input" : crew_strerror(rc));
            failures++;
        }
        crew_task_release(tasks[i]);
    }
    crew_free(pool);
    return failures == 1 ? 0 : 1;
}
