/*
 * priorities.c - urgent work first.  A single worker is kept busy while
 * tasks of mixed priorities queue up; they then run highest first, and in
 * submission order among equals.
 */
#include <crew.h>

#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go;

static int hold(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    pthread_mutex_lock(&mu);
    while (!go)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return 0;
}

static int show(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    printf("%s\n", (const char *)arg);
    return 0;
}

int main(void)
{
    crew_opts_t o = { .max_workers = 1 };
    static const struct { int prio; const char *what; } jobs[] = {
        { 0, "normal: rebuild index" }, { -5, "low: clean caches" },
        { 10, "urgent: answer user" },  { 0, "normal: send report" },
        { 10, "urgent: save document" },
    };
    crew_t *pool;

    if (crew_create(&pool, &o) != 0)
        return 1;
    crew_submit(pool, hold, NULL);      /* keeps the one worker busy */
    for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
        crew_task_opts_t to = { .priority = jobs[i].prio };

        crew_spawn(pool, show, (void *)jobs[i].what, &to, NULL);
    }
    pthread_mutex_lock(&mu);
    go = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    crew_wait(pool);
    crew_free(pool);
    return 0;
}
