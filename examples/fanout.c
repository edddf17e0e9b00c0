/*
 * fanout.c - many waiting jobs at once, with timeouts and retries.
 *
 * Each job "calls a flaky service": it waits a while and sometimes fails
 * or hangs.  Every job gets a 50 ms timeout per attempt and up to three
 * retries with exponential backoff and jitter; a hung attempt is reported
 * at its deadline while its worker is replaced.  One job is scheduled to
 * start late, and one is cancelled before it starts.
 */
#include <crew.h>

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#define JOBS 40
#define MS (1000 * 1000LL)

static atomic_int attempts;

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* Job i fails on its first attempt when i % 3 == 0, hangs on its first
 * attempt when i % 7 == 0, and otherwise answers after a few ms. */
static int call_service(crew_ctx_t *ctx, void *arg, void **result)
{
    long i = (long)(intptr_t)arg;
    unsigned attempt = crew_ctx_attempt(ctx);

    (void)result;
    atomic_fetch_add(&attempts, 1);
    if (attempt == 1 && i % 7 == 0) {
        /* Hung: keep checking the deadline, as a well-behaved task does. */
        while (!crew_ctx_timed_out(ctx) && !crew_ctx_cancelled(ctx))
            sleep_ms(5);
        return CREW_ETIMEDOUT;
    }
    sleep_ms(2 + i % 5);
    if (attempt == 1 && i % 3 == 0)
        return EIO;                     /* a transient failure */
    return 0;
}

static bool transient(int err, void *user)
{
    (void)user;
    return err == EIO || err == CREW_ETIMEDOUT;
}

int main(void)
{
    crew_opts_t po = { .max_workers = 8 };
    crew_task_opts_t opts = {
        .timeout_ns = 50 * MS,
        .retries = 3,
        .backoff = { .kind = CREW_BACKOFF_EXPONENTIAL, .base_ns = 5 * MS,
                     .cap_ns = 40 * MS, .jitter_pct = 25 },
        .retry_if = transient,
    };
    crew_task_t *jobs[JOBS + 2];
    crew_stats_t st;
    int ok = 0, failed = 0, cancelled = 0;
    crew_t *pool;

    if (crew_create(&pool, &po) != 0)
        return 1;
    for (long i = 0; i < JOBS; i++)
        if (crew_spawn(pool, call_service, (void *)(intptr_t)(i + 1), &opts,
                       &jobs[i]) != 0)
            return 1;
    /* A job that starts 100 ms from now, and one we cancel before that. */
    opts.delay_ns = 100 * MS;
    crew_spawn(pool, call_service, (void *)(intptr_t)1, &opts, &jobs[JOBS]);
    crew_spawn(pool, call_service, (void *)(intptr_t)2, &opts,
               &jobs[JOBS + 1]);
    crew_task_cancel(jobs[JOBS + 1]);

    for (int i = 0; i < JOBS + 2; i++) {
        int rc = crew_task_wait(jobs[i], NULL);

        if (rc == 0)
            ok++;
        else if (rc == CREW_ECANCELED)
            cancelled++;
        else
            failed++;
        crew_task_release(jobs[i]);
    }
    crew_stats(pool, &st);
    printf("%d ok, %d failed, %d cancelled; %d attempts, %llu retries, "
           "%llu timed out\n", ok, failed, cancelled, atomic_load(&attempts),
           (unsigned long long)st.retries, (unsigned long long)st.timed_out);
    crew_free(pool);
    return ok == JOBS + 1 && cancelled == 1 ? 0 : 1;
}
