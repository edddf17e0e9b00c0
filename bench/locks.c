/*
 * locks.c - the queue lock choices (crew_opts_t.lock) on a contended
 * workload: TASKS tiny tasks submitted from one thread to WORKERS workers
 * (more workers than cores, so takes collide and holders get preempted),
 * then crew_wait().  Runs are interleaved across the choices; prints the
 * median ns per task of RUNS runs and the ratio to the default lock.
 *
 * Usage: locks [--tasks N] [--workers N] [--runs N]
 */
#include <crew.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KINDS 4
#define MAX_RUNS 21

static const char *names[KINDS] = {
    "default (spin, then yield)", "pthread mutex", "spin only",
    "custom (pthread_spinlock via ops)"
};

static pthread_spinlock_t user_lock;

static void ul_lock(void *ctx)
{
    pthread_spin_lock(ctx);
}

static void ul_unlock(void *ctx)
{
    pthread_spin_unlock(ctx);
}

static int tiny(crew_ctx_t *ctx, void *arg, void **result)
{
    volatile unsigned x = (unsigned)(uintptr_t)arg;

    (void)ctx;
    (void)result;
    for (int i = 0; i < 20; i++)
        x = x * 31 + 7;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double run(int kind, unsigned workers, long tasks)
{
    crew_lock_ops_t ops = { ul_lock, ul_unlock, (void *)&user_lock };
    crew_opts_t o = { .min_workers = workers, .max_workers = workers,
                      .prespawn = true, .lock = kind };
    crew_t *pool;
    double t0;
    int rc;

    if (kind == CREW_LOCK_CUSTOM)
        o.lock_ops = &ops;
    rc = crew_create(&pool, &o);
    if (rc != 0) {
        fprintf(stderr, "locks: crew_create: %s\n", crew_strerror(rc));
        exit(1);
    }
    t0 = now_s();
    for (long i = 0; i < tasks; i++) {
        rc = crew_submit(pool, tiny, (void *)(uintptr_t)i);
        if (rc != 0) {
            fprintf(stderr, "locks: crew_submit: %s\n", crew_strerror(rc));
            exit(1);
        }
    }
    crew_wait(pool);
    t0 = now_s() - t0;
    crew_free(pool);
    return t0 * 1e9 / (double)tasks;
}

int main(int argc, char **argv)
{
    long tasks = 1000000;
    unsigned workers = 8;
    int runs = 5;
    double ns[KINDS][MAX_RUNS], med[KINDS];

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--tasks") == 0)
            tasks = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--workers") == 0)
            workers = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
    }
    if (tasks < 1 || workers < 1 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: locks [--tasks N] [--workers N] "
                        "[--runs 1..%d]\n", MAX_RUNS);
        return 2;
    }
    pthread_spin_init(&user_lock, PTHREAD_PROCESS_PRIVATE);
    for (int r = 0; r < runs; r++)
        for (int k = 0; k < KINDS; k++)
            ns[k][r] = run(k, workers, tasks);
    printf("### queue lock choices: %ld tiny tasks, %u workers on %ld "
           "cores, %d runs\n\n", tasks, workers, sysconf(_SC_NPROCESSORS_ONLN),
           runs);
    printf("| lock | median ns/task | min | max | ratio vs default |\n");
    printf("|---|---:|---:|---:|---:|\n");
    for (int k = 0; k < KINDS; k++) {
        qsort(ns[k], (size_t)runs, sizeof(double), cmp);
        med[k] = ns[k][runs / 2];
    }
    for (int k = 0; k < KINDS; k++)
        printf("| %s | %.0f | %.0f | %.0f | %.2f |\n", names[k], med[k],
               ns[k][0], ns[k][runs - 1], med[k] / med[0]);
    pthread_spin_destroy(&user_lock);
    return 0;
}
