/*
 * seed.c - the seed benchmark: many short sleeping tasks on many threads.
 *
 * Measures how long crew takes to run TASKS tasks that each sleep 10 ms
 * (nanosleep) on a pool of WORKERS pre-spawned threads with 64 KiB stacks,
 * all submitted with crew_submit() from one thread into a bounded queue,
 * from the first submit until crew_wait() returns (pool creation and
 * crew_free() are timed apart).  The baseline is the best a plain thread
 * program can do: WORKERS raw pthreads (64 KiB stacks) that each sleep
 * 10 ms TASKS/WORKERS times, timed from the first pthread_create() to the
 * last pthread_join().
 *
 * Every run happens in a fresh forked child, so that its peak RSS (from
 * wait4()) is its own; the child sends its figures back through a pipe.
 * Runs are interleaved (crew, raw, crew, raw, ...) so that drift on a
 * shared machine hits both alike.  Heap use is counted by interposing the
 * malloc family in this executable (heapcount.c), only during the timed
 * section.  Prints the machine and a Markdown table
 * to stdout and writes one CSV row per pool.
 *
 * Usage: seed [--quick] [--runs N] [--tasks N] [--workers N]
 *             [--capacity N] [--out FILE]
 */
#include <crew.h>

#include "heapcount.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLEEP_NS     10000000L      /* each task sleeps 10 ms */
#define STACK_BYTES  65536          /* worker and raw thread stacks */
#define MAX_RUNS     1000

/* ------------------------------------------------------------------ */
/* Heap accounting: the malloc family, interposed.                     */
/* ------------------------------------------------------------------ */
/* The workloads, each run in a child process.                         */
/* ------------------------------------------------------------------ */

struct config {
    uint64_t tasks;
    unsigned workers;
    size_t capacity;
    int runs;
    bool quick;
    const char *out;
};

/* What a child sends back through its pipe. */
struct figures {
    int status;                 /* 0, or the failing call's error code */
    char what[96];              /* the failing call, for the message */
    double wall_s;              /* the timed section */
    double create_s;            /* crew_create (crew only) */
    double free_s;              /* crew_free (crew only) */
    uint64_t heap_bytes;
    uint64_t heap_calls;
};

enum pool_kind { POOL_CREW, POOL_FIBER, POOL_RAW, POOL_COUNT };

static const char *const pool_name[POOL_COUNT] = {
    /* No commas: the names go into the CSV unquoted. */
    "crew (threads; nanosleep)",
    "crew (fibers; crew_sleep)",
    "raw pthreads (nanosleep)",
};

/* Fiber stacks: the task needs little, and each fiber keeps one page. */
#define FIBER_STACK_BYTES 16384

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_10ms(void)
{
    struct timespec ts = { 0, SLEEP_NS };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int sleep_task(crew_ctx_t *ctx, void *arg, void **result)
{
    sleep_10ms();
    return 0;
}

/* The same wait, through crew: on a fiber it parks the fiber. */
static int crew_sleep_task(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_sleep(SLEEP_NS);
    return 0;
}

static void run_crew(const struct config *cfg, struct figures *fig,
                     bool fibers)
{
    crew_opts_t opts = {
        .min_workers = cfg->workers,
        .max_workers = cfg->workers,
        .queue_capacity = cfg->capacity,
        .stack_size = STACK_BYTES,
        .prespawn = true,
    };
    crew_fn task = fibers ? crew_sleep_task : sleep_task;
    crew_t *pool = NULL;

    if (fibers) {
        /* max_workers fibers in flight on one thread per core. */
        opts.fibers = true;
        opts.min_workers = 0;
        opts.prespawn = false;
        opts.fiber_stack_size = FIBER_STACK_BYTES;
    }

    double t0 = now_s();
    int rc = crew_create(&pool, &opts);
    fig->create_s = now_s() - t0;
    if (rc != 0) {
        fig->status = rc;
        snprintf(fig->what, sizeof fig->what, "crew_create: %s",
                 crew_strerror(rc));
        return;
    }

    heap_start();
    double t1 = now_s();
    for (uint64_t i = 0; i < cfg->tasks; i++) {
        rc = crew_submit(pool, task, NULL);
        if (rc != 0) {
            heap_read(&fig->heap_bytes, &fig->heap_calls);
            fig->status = rc;
            snprintf(fig->what, sizeof fig->what,
                     "crew_submit (task %" PRIu64 "): %s", i,
                     crew_strerror(rc));
            return;             /* the child exits without freeing */
        }
    }
    rc = crew_wait(pool);
    fig->wall_s = now_s() - t1;
    heap_read(&fig->heap_bytes, &fig->heap_calls);
    if (rc != 0) {
        fig->status = rc;
        snprintf(fig->what, sizeof fig->what, "crew_wait: %s",
                 crew_strerror(rc));
        return;
    }

    crew_stats_t st;
    crew_stats(pool, &st);
    if (st.completed != cfg->tasks) {
        fig->status = -1;
        snprintf(fig->what, sizeof fig->what,
                 "crew_stats: %" PRIu64 " completed of %" PRIu64,
                 st.completed, cfg->tasks);
        return;
    }

    double t2 = now_s();
    rc = crew_free(pool);
    fig->free_s = now_s() - t2;
    if (rc != 0) {
        fig->status = rc;
        snprintf(fig->what, sizeof fig->what, "crew_free: %s",
                 crew_strerror(rc));
    }
}

static void *raw_thread(void *arg)
{
    uint64_t n = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < n; i++)
        sleep_10ms();
    return NULL;
}

static void run_raw(const struct config *cfg, struct figures *fig)
{
    pthread_t *tids = calloc(cfg->workers, sizeof *tids);
    pthread_attr_t attr;
    int rc;

    if (tids == NULL) {
        fig->status = ENOMEM;
        snprintf(fig->what, sizeof fig->what, "calloc: %s",
                 strerror(ENOMEM));
        return;
    }
    if ((rc = pthread_attr_init(&attr)) != 0 ||
        (rc = pthread_attr_setstacksize(&attr, STACK_BYTES)) != 0) {
        fig->status = rc;
        snprintf(fig->what, sizeof fig->what, "pthread_attr: %s",
                 strerror(rc));
        return;
    }

    /* Spread the sleeps: the first tasks % workers threads do one more. */
    uint64_t each = cfg->tasks / cfg->workers;
    uint64_t extra = cfg->tasks % cfg->workers;

    heap_start();
    double t0 = now_s();
    unsigned started = 0;
    for (; started < cfg->workers; started++) {
        uint64_t n = each + (started < extra ? 1 : 0);
        rc = pthread_create(&tids[started], &attr, raw_thread,
                            (void *)(uintptr_t)n);
        if (rc != 0) {
            fig->status = rc;
            snprintf(fig->what, sizeof fig->what,
                     "pthread_create (thread %u): %s", started,
                     strerror(rc));
            break;
        }
    }
    for (unsigned i = 0; i < started; i++) {
        rc = pthread_join(tids[i], NULL);
        if (rc != 0 && fig->status == 0) {
            fig->status = rc;
            snprintf(fig->what, sizeof fig->what, "pthread_join: %s",
                     strerror(rc));
        }
    }
    fig->wall_s = now_s() - t0;
    heap_read(&fig->heap_bytes, &fig->heap_calls);
    pthread_attr_destroy(&attr);
    free(tids);
}

/* One result per run, as the parent sees it. */
struct sample {
    struct figures fig;
    long maxrss_kib;
};

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(71);
        p += n;
        len -= (size_t)n;
    }
}

/* Returns false (after saying why) if the run failed. */
static bool run_child(const struct config *cfg, enum pool_kind kind,
                      struct sample *out)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("seed: pipe");
        return false;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("seed: fork");
        return false;
    }
    if (pid == 0) {
        close(fds[0]);
        /* A watchdog, should a pool under development hang. */
        double ideal = (double)cfg->tasks * (SLEEP_NS * 1e-9) /
                       cfg->workers;
        unsigned limit = (unsigned)(ideal * 50.0) + 120;
        alarm(limit);

        struct figures fig;
        memset(&fig, 0, sizeof fig);
        if (kind == POOL_RAW)
            run_raw(cfg, &fig);
        else
            run_crew(cfg, &fig, kind == POOL_FIBER);
        write_all(fds[1], &fig, sizeof fig);
        close(fds[1]);
        _exit(fig.status == 0 ? 0 : 1);
    }

    close(fds[1]);
    memset(out, 0, sizeof *out);
    size_t got = 0;
    char *buf = (char *)&out->fig;
    while (got < sizeof out->fig) {
        ssize_t n = read(fds[0], buf + got, sizeof out->fig - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fds[0]);

    int wstatus;
    struct rusage ru;
    while (wait4(pid, &wstatus, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("seed: wait4");
            return false;
        }
    }
    out->maxrss_kib = ru.ru_maxrss;

    if (got == sizeof out->fig && out->fig.status != 0) {
        fprintf(stderr, "seed: %s run failed: %s\n", pool_name[kind],
                out->fig.what);
        return false;
    }
    if (WIFSIGNALED(wstatus)) {
        int sig = WTERMSIG(wstatus);
        fprintf(stderr, "seed: %s run killed by signal %d (%s)%s\n",
                pool_name[kind], sig, strsignal(sig),
                sig == SIGALRM ? ": watchdog timeout" : "");
        return false;
    }
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0 ||
        got != sizeof out->fig) {
        fprintf(stderr, "seed: %s run exited with status %d\n",
                pool_name[kind],
                WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Statistics, reporting, options.                                     */
/* ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

struct summary {
    double median_s, min_s, max_s;
    double rss_kib;
    double heap_per_task, calls_per_task;
    double create_s, free_s;
};

static void summarise(const struct sample *s, int n, uint64_t tasks,
                      struct summary *sum)
{
    double v[MAX_RUNS];

    for (int i = 0; i < n; i++)
        v[i] = s[i].fig.wall_s;
    sum->median_s = median(v, n);
    sum->min_s = v[0];
    sum->max_s = v[n - 1];
    for (int i = 0; i < n; i++)
        v[i] = (double)s[i].maxrss_kib;
    sum->rss_kib = median(v, n);
    for (int i = 0; i < n; i++)
        v[i] = (double)s[i].fig.heap_bytes / (double)tasks;
    sum->heap_per_task = median(v, n);
    for (int i = 0; i < n; i++)
        v[i] = (double)s[i].fig.heap_calls / (double)tasks;
    sum->calls_per_task = median(v, n);
    for (int i = 0; i < n; i++)
        v[i] = s[i].fig.create_s;
    sum->create_s = median(v, n);
    for (int i = 0; i < n; i++)
        v[i] = s[i].fig.free_s;
    sum->free_s = median(v, n);
}

static void print_machine(void)
{
    struct utsname u;
    char model[256] = "unknown";

    if (uname(&u) == 0)
        printf("Machine: %s %s %s", u.sysname, u.release, u.machine);
    else
        printf("Machine: unknown");

    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f != NULL) {
        char line[512];
        while (fgets(line, sizeof line, f) != NULL) {
            if (strncmp(line, "model name", 10) != 0)
                continue;
            char *colon = strchr(line, ':');
            if (colon == NULL)
                continue;
            colon++;
            while (*colon == ' ' || *colon == '\t')
                colon++;
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(model, sizeof model, "%s", colon);
            break;
        }
        fclose(f);
    }
    printf(", CPU: %s, nproc: %ld\n\n", model,
           sysconf(_SC_NPROCESSORS_ONLN));
}

/* mkdir -p of the directory part of path. */
static int make_parent_dirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

static int write_csv(const struct config *cfg,
                     const struct summary sum[POOL_COUNT])
{
    if (make_parent_dirs(cfg->out) != 0) {
        fprintf(stderr, "seed: cannot create the directory of %s: %s\n",
                cfg->out, strerror(errno));
        return -1;
    }
    FILE *f = fopen(cfg->out, "w");
    if (f == NULL) {
        fprintf(stderr, "seed: %s: %s\n", cfg->out, strerror(errno));
        return -1;
    }
    fprintf(f, "workload,pool,tasks,workers,runs,median_s,min_s,max_s,"
               "peak_rss_kib,heap_bytes_per_task\n");
    for (int k = 0; k < POOL_COUNT; k++) {
        char heap[32] = "";         /* empty when not counted */
        if (heap_counted())
            snprintf(heap, sizeof heap, "%.2f", sum[k].heap_per_task);
        fprintf(f, "%s,%s,%" PRIu64 ",%u,%d,%.4f,%.4f,%.4f,%.0f,%s\n",
                cfg->quick ? "seed-quick" : "seed", pool_name[k],
                cfg->tasks, cfg->workers, cfg->runs, sum[k].median_s,
                sum[k].min_s, sum[k].max_s, sum[k].rss_kib, heap);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "seed: %s: %s\n", cfg->out, strerror(errno));
        return -1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: seed [--quick] [--runs N] [--tasks N] [--workers N]\n"
        "            [--capacity N] [--out FILE]\n"
        "  --quick       100000 tasks on 1000 workers (default: 1000000\n"
        "                tasks on 10000 workers)\n"
        "  --runs N      runs per pool, interleaved (default 5)\n"
        "  --tasks N     tasks, i.e. 10 ms sleeps (overrides --quick)\n"
        "  --workers N   crew workers and raw threads (overrides --quick)\n"
        "  --capacity N  crew queue capacity, 0 for unbounded "
        "(default 5 x workers)\n"
        "  --out FILE    CSV output (default bench/results/seed.csv)\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
    uint64_t tasks = 0, workers = 0, v;
    bool have_tasks = false, have_workers = false, have_capacity = false;

    cfg->capacity = 0;
    cfg->runs = 5;
    cfg->quick = false;
    cfg->out = "bench/results/seed.csv";

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            cfg->quick = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--out") == 0 && val != NULL) {
            cfg->out = val;
            i++;
            continue;
        }
        bool known = strcmp(a, "--runs") == 0 || strcmp(a, "--tasks") == 0 ||
                     strcmp(a, "--workers") == 0 ||
                     strcmp(a, "--capacity") == 0;
        if (!known) {
            fprintf(stderr, "seed: unknown option %s\n", a);
            usage(stderr);
            exit(2);
        }
        if (!parse_u64(val, &v)) {
            fprintf(stderr, "seed: %s needs a number\n", a);
            exit(2);
        }
        i++;
        if (strcmp(a, "--runs") == 0) {
            if (v < 1 || v > MAX_RUNS) {
                fprintf(stderr, "seed: --runs must be 1..%d\n", MAX_RUNS);
                exit(2);
            }
            cfg->runs = (int)v;
        } else if (strcmp(a, "--tasks") == 0) {
            tasks = v;
            have_tasks = true;
        } else if (strcmp(a, "--workers") == 0) {
            workers = v;
            have_workers = true;
        } else {
            cfg->capacity = (size_t)v;
            have_capacity = true;
        }
    }

    cfg->tasks = have_tasks ? tasks : cfg->quick ? 100000 : 1000000;
    if (!have_workers)
        workers = cfg->quick ? 1000 : 10000;
    if (cfg->tasks < 1 || workers < 1 || workers > CREW_MAX_WORKERS) {
        fprintf(stderr, "seed: need tasks >= 1 and 1 <= workers <= %u\n",
                CREW_MAX_WORKERS);
        exit(2);
    }
    cfg->workers = (unsigned)workers;
    /* Five queued tasks per worker: 50 ms of work at the ideal rate, so
     * the one feeding thread can fall behind a while without starving
     * the workers, at 32 bytes a task. */
    if (!have_capacity)
        cfg->capacity = (size_t)cfg->workers * 5;
}

/* --- What a fiber switch and a sleep-and-wake cost --------------------- */

#define COST_ROUNDS 200000

static int pingpong(crew_ctx_t *ctx, void *arg, void **result)
{
    for (int i = 0; i < COST_ROUNDS; i++)
        crew_yield();
    return 0;
}

static int nap(crew_ctx_t *ctx, void *arg, void **result)
{
    for (int i = 0; i < COST_ROUNDS; i++)
        crew_sleep(0);
    return 0;
}

/* ns per operation: two fibers yielding to each other on one thread (two
 * switches a yield: to the scheduler and on to the other fiber), and one
 * fiber sleeping 0 ns (park in the timer heap, fire, resume). */
static double fiber_cost(crew_fn fn, int fibers, double per_round)
{
    crew_opts_t o = { .fibers = true, .threads = 1, .max_workers = 8 };
    crew_t *pool;
    double t0, t;

    if (crew_create(&pool, &o) != 0)
        return -1.0;
    t0 = now_s();
    for (int i = 0; i < fibers; i++)
        crew_submit(pool, fn, NULL);
    crew_wait(pool);
    t = now_s() - t0;
    crew_free(pool);
    return t * 1e9 / (COST_ROUNDS * per_round);
}

static void fiber_costs(void)
{
    double sw[5], sl[5];

    for (int i = 0; i < 5; i++) {
        sw[i] = fiber_cost(pingpong, 2, 2.0 * 2.0);
        sl[i] = fiber_cost(nap, 1, 1.0);
    }
    printf("Fiber costs (one thread, medians of 5): a switch %.0f ns "
           "(half a yield round trip); a crew_sleep(0) park-and-wake "
           "%.0f ns.\n", median(sw, 5), median(sl, 5));
}

int main(int argc, char **argv)
{
    struct config cfg;
    parse_args(argc, argv, &cfg);

    static struct sample samples[POOL_COUNT][MAX_RUNS];
    struct summary sum[POOL_COUNT];

    struct rusage self;
    getrusage(RUSAGE_SELF, &self);

    for (int r = 0; r < cfg.runs; r++) {
        for (int k = 0; k < POOL_COUNT; k++) {
            struct sample *s = &samples[k][r];
            if (!run_child(&cfg, (enum pool_kind)k, s))
                return 1;
            fprintf(stderr,
                    "run %d/%d %-26s %8.3f s  rss %7.1f MiB  "
                    "heap %8.1f B/task\n",
                    r + 1, cfg.runs, pool_name[k], s->fig.wall_s,
                    (double)s->maxrss_kib / 1024.0,
                    (double)s->fig.heap_bytes / (double)cfg.tasks);
        }
    }
    for (int k = 0; k < POOL_COUNT; k++)
        summarise(samples[k], cfg.runs, cfg.tasks, &sum[k]);

    char cap[32];
    if (cfg.capacity == 0)
        snprintf(cap, sizeof cap, "unbounded");
    else
        snprintf(cap, sizeof cap, "%zu", cfg.capacity);

    print_machine();
    printf("### %s: %" PRIu64 " tasks of one 10 ms nanosleep, %u workers, "
           "%d runs, crew queue capacity %s, %d KiB stacks\n\n",
           cfg.quick ? "seed-quick" : "seed", cfg.tasks, cfg.workers,
           cfg.runs, cap, STACK_BYTES / 1024);
    printf("| pool | tasks | workers | runs | median s | min s | max s "
           "| peak RSS MiB | heap B/task | mallocs/task | ratio vs raw |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < POOL_COUNT; k++) {
        char heap[32] = "n/a", calls[32] = "n/a";
        if (heap_counted()) {
            snprintf(heap, sizeof heap, "%.2f", sum[k].heap_per_task);
            snprintf(calls, sizeof calls, "%.3f", sum[k].calls_per_task);
        }
        printf("| %s | %" PRIu64 " | %u | %d | %.3f | %.3f | %.3f "
               "| %.1f | %s | %s | %.2f |\n",
               pool_name[k], cfg.tasks, cfg.workers, cfg.runs,
               sum[k].median_s, sum[k].min_s, sum[k].max_s,
               sum[k].rss_kib / 1024.0, heap, calls,
               sum[k].median_s / sum[POOL_RAW].median_s);
    }
    printf("\nTimed: crew from the first crew_submit() to crew_wait() "
           "returning; raw from the first pthread_create() to the last "
           "pthread_join().\n");
    printf("crew_create (%u prespawned workers): median %.3f s; "
           "crew_free: median %.3f s (both untimed above).\n",
           cfg.workers, sum[POOL_CREW].create_s, sum[POOL_CREW].free_s);
    printf("Ideal time (tasks x 10 ms / workers): %.3f s.  Peak RSS is "
           "per child; the parent it forks from is %.1f MiB.\n",
           (double)cfg.tasks * (SLEEP_NS * 1e-9) / cfg.workers,
           (double)self.ru_maxrss / 1024.0);

    fiber_costs();
    if (write_csv(&cfg, sum) != 0)
        return 1;
    printf("\nWrote %s\n", cfg.out);
    return 0;
}
