/*
 * waitmany.c - ten thousand tasks that wait on many things at once, on
 * two threads.
 *
 * A pretend crawler in fiber mode.  Every "request" waits for the start
 * signal (an event), then for the shared configuration (a future of a
 * task that loads it), then "downloads" (crew_sleep for a few ms), with a
 * 2 s timeout per attempt.  Some requests also read a line from a pipe,
 * a blocking call that goes through crew_blocking so the thread's other
 * fibers keep running.  A coordinator fiber waits for the whole group and
 * then sets a "done" event that the main thread waits on.  Every wait
 * parks the fiber, so the 10,000 requests share two OS threads.
 */
#include <crew.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#define REQUESTS 10000
#define READERS 8
#define MS (1000 * 1000LL)

static crew_event_t *start, *done;
static crew_task_t *config;
static crew_group_t *requests;
static int pipefd[2];
static atomic_long bytes, lines, config_waits;

static int load_config(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    crew_sleep(20 * MS);        /* reading it takes a while */
    *result = (void *)(intptr_t)1024;   /* the "page size" it holds */
    return 0;
}

static void *read_line(void *arg)
{
    char c;
    long n = 0;

    (void)arg;
    /* A plain blocking read: it runs on a blocking thread, not on ours. */
    while (read(pipefd[0], &c, 1) == 1 && c != '\n')
        n++;
    return (void *)(intptr_t)n;
}

static int request(crew_ctx_t *ctx, void *arg, void **result)
{
    long i = (long)(intptr_t)arg;
    void *page_size;
    int rc;

    (void)ctx;
    (void)result;
    if ((rc = crew_event_wait(start)) != 0)
        return rc;
    atomic_fetch_add(&config_waits, 1);
    if ((rc = crew_task_wait(config, &page_size)) != 0)
        return rc;
    if ((rc = crew_sleep((1 + i % 10) * MS)) != 0)
        return rc;              /* CREW_ETIMEDOUT past the deadline */
    atomic_fetch_add(&bytes, (long)(intptr_t)page_size);
    if (i < READERS) {
        long n = (long)(intptr_t)crew_blocking(read_line, NULL);

        atomic_fetch_add(&lines, n > 0);
    }
    return 0;
}

static int coordinator(crew_ctx_t *ctx, void *arg, void **result)
{
    int rc;

    (void)ctx;
    (void)arg;
    (void)result;
    rc = crew_group_wait(requests);
    crew_event_set(done);
    return rc;
}

int main(void)
{
    crew_opts_t opts = { .fibers = true,
                         .threads = 2,
                         .max_workers = REQUESTS + 2,
                         .fiber_stack_size = 32 * 1024,
                         .task_timeout_ns = 2000 * MS };
    crew_task_opts_t member = { 0 };
    /* The pool's 2 s timeout is for the requests: a coordinator still
     * queued at its deadline would never run, and never set `done`. */
    crew_task_opts_t untimed = { .timeout_ns = -1 };
    crew_progress_t p;
    crew_t *pool;
    int rc;

    if (pipe(pipefd) != 0 || crew_event_create(&start) != 0 ||
        crew_event_create(&done) != 0 || crew_create(&pool, &opts) != 0) {
        fprintf(stderr, "waitmany: set-up failed\n");
        return 1;
    }
    if (crew_group_create(pool, NULL, &requests) != 0 ||
        crew_spawn(pool, load_config, NULL, NULL, &config) != 0)
        return 1;
    member.group = requests;
    for (long i = 0; i < REQUESTS; i++)
        if ((rc = crew_spawn(pool, request, (void *)(intptr_t)i, &member,
                             NULL)) != 0) {
            fprintf(stderr, "waitmany: spawn: %s\n", crew_strerror(rc));
            return 1;
        }
    if (crew_spawn(pool, coordinator, NULL, &untimed, NULL) != 0)
        return 1;

    crew_event_set(start);      /* every request goes at once */
    for (int i = 0; i < READERS; i++)
        if (write(pipefd[1], "hello\n", 6) != 6)
            return 1;
    crew_event_wait(done);      /* on this thread: it simply blocks */

    crew_group_progress(requests, &p);
    printf("requests: %llu done, %llu failed; %ld bytes; %ld lines read "
           "through crew_blocking; %ld waits for the config\n",
           (unsigned long long)p.done, (unsigned long long)p.failed,
           atomic_load(&bytes), atomic_load(&lines),
           atomic_load(&config_waits));
    rc = p.done == REQUESTS && atomic_load(&lines) == READERS ? 0 : 1;
    crew_task_release(config);
    crew_group_free(requests);
    crew_free(pool);
    crew_event_free(start);
    crew_event_free(done);
    close(pipefd[0]);
    close(pipefd[1]);
    return rc;
}
