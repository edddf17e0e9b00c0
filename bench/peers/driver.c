/*
 * driver.c - one program per workload (compiled once per workload with
 * -DWORKLOAD="W2" and so on): runs crew, a plain baseline and every peer
 * side by side, interleaved (run 1 of each pool, then run 2 of each, ...),
 * each run in a fresh forked child so that its peak RSS (wait4) is its
 * own; prints a Markdown table per case with a ratio against the best
 * peer, and writes bench/results/<W>.md and <W>.csv.
 *
 * Usage: <prog> [--runs N] [--scale] [--full-peers] [--pools a,b,...]
 *               [--out-dir DIR]
 */
#include "common.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef WORKLOAD
#define WORKLOAD "W2"
#endif

#define MAX_RUNS 25
#define MAX_CASES 16

enum role { ROLE_CREW, ROLE_BASE, ROLE_PEER };

struct pool {
    const char *name;       /* no commas: goes into the CSV */
    enum role role;
    void (*run)(const struct wl *, struct res *);
};

static const struct pool pools[] = {
    { "crew", ROLE_CREW, pool_crew_run },
    { "crew with inline_after 8", ROLE_CREW, pool_crew_inline_run },
    { "baseline", ROLE_BASE, pool_base_run },
    { "GLib GThreadPool", ROLE_PEER, pool_glib_run },
    { "libuv uv_queue_work", ROLE_PEER, pool_uv_run },
    { "oneTBB task_group", ROLE_PEER, pool_tbb_run },
    { "OpenMP tasks (libgomp)", ROLE_PEER, pool_omp_run },
    { "Boost.Asio thread_pool", ROLE_PEER, pool_asio_run },
    { "C-Thread-Pool", ROLE_PEER, pool_ctp_run },
};
#define NPOOLS (int)(sizeof pools / sizeof pools[0])

/* Pool k has a row for workload w: crew's inline_after only changes
 * tasks submitted from inside (W2b). */
static bool applies(int k, const struct wl *w)
{
    return pools[k].run != pool_crew_inline_run || w->kind == WL_INSIDE;
}

struct sample {
    struct res r;
    long maxrss_kib;
    double child_s;         /* the whole child's wall time */
};

/* A pool whose run takes longer than this is not run again in the case. */
#define SLOW_RUN_S 20.0

struct config {
    int runs;
    bool scale, full_peers;
    const char *out_dir;
    bool enabled[NPOOLS];
};

static struct sample samples[MAX_CASES][NPOOLS][MAX_RUNS];
static double slow[MAX_CASES][NPOOLS];  /* cut to fewer runs: its time */
static int nsamples[MAX_CASES][NPOOLS];

static const char *base_name(enum wl_kind k)
{
    switch (k) {
    case WL_SLEEP: return "baseline: raw pthreads";
    case WL_TINY: return "baseline: serial loop (one thread)";
    case WL_INSIDE: return "baseline: serial loop (one thread)";
    case WL_FIB: return "baseline: serial fib (one thread)";
    case WL_LATENCY: return "baseline: raw thread + semaphore";
    case WL_MEMORY: return "baseline: plain array of (fn; arg)";
    default: return "baseline";
    }
}

static const char *pool_label(int k, const struct wl *w)
{
    return pools[k].role == ROLE_BASE ? base_name(w->kind) : pools[k].name;
}

static const char *unit_of(enum wl_kind k)
{
    switch (k) {
    case WL_SLEEP: return "s";
    case WL_FIB: return "ms";
    case WL_LATENCY: return "us";
    case WL_MEMORY: return "B/task";
    default: return "ns/task";
    }
}

/* What mallocs are counted per: tasks, spawned tasks, samples. */
static double units_of(const struct wl *w)
{
    if (w->kind == WL_FIB) {
        uint64_t t = fib_tasks(w->fib_n, w->fib_cutoff);
        return t ? (double)t : 1.0;
    }
    return (double)w->tasks;
}

static void params_of(const struct wl *w, char *buf, size_t size)
{
    switch (w->kind) {
    case WL_SLEEP:
        snprintf(buf, size, "tasks=%" PRIu64 " workers=%u", w->tasks,
                 w->workers);
        break;
    case WL_TINY:
        snprintf(buf, size, "tasks=%" PRIu64 " workers=%u submitters=%u",
                 w->tasks, w->workers, w->submitters);
        break;
    case WL_INSIDE:
        snprintf(buf, size, "tasks=%" PRIu64 " workers=%u", w->tasks,
                 w->workers);
        break;
    case WL_FIB:
        snprintf(buf, size, "fib(%d) cutoff=%d workers=%u spawns=%" PRIu64,
                 w->fib_n, w->fib_cutoff, w->workers,
                 fib_tasks(w->fib_n, w->fib_cutoff));
        break;
    case WL_LATENCY:
        snprintf(buf, size, "samples=%" PRIu64 " workers=%u gap_us=%ld",
                 w->tasks, w->workers, w->gap_us);
        break;
    case WL_MEMORY:
        snprintf(buf, size, "tasks=%" PRIu64 " workers=%u", w->tasks,
                 w->workers);
        break;
    default:
        buf[0] = '\0';
    }
}

/* ---- running one sample in a child ---- */

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

static void run_child(const struct wl *w, int k, struct sample *out)
{
    int fds[2];

    memset(out, 0, sizeof *out);
    if (pipe(fds) != 0) {
        res_fail(&out->r, "pipe: %s", strerror(errno));
        return;
    }
    fflush(NULL);
    int64_t started = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        res_fail(&out->r, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        alarm(w->kind == WL_SLEEP ? 900 : 300);     /* a watchdog */
        struct res r;
        memset(&r, 0, sizeof r);
        pools[k].run(w, &r);
        write_all(fds[1], &r, sizeof r);
        close(fds[1]);
        fflush(NULL);
        /* No exit handlers or destructors: some peers' teardown is slow
         * or needs its threads idle, and none of it is measured. */
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    char *buf = (char *)&out->r;
    while (got < sizeof out->r) {
        ssize_t n = read(fds[0], buf + got, sizeof out->r - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fds[0]);
    int ws;
    struct rusage ru;
    while (wait4(pid, &ws, 0, &ru) < 0) {
        if (errno != EINTR) {
            res_fail(&out->r, "wait4: %s", strerror(errno));
            return;
        }
    }
    out->maxrss_kib = ru.ru_maxrss;
    out->child_s = (double)(now_ns() - started) / 1e9;
    if (WIFSIGNALED(ws)) {
        int sig = WTERMSIG(ws);
        memset(&out->r, 0, sizeof out->r);
        res_fail(&out->r, "killed by signal %d (%s)%s", sig, strsignal(sig),
                 sig == SIGALRM ? ": watchdog" : "");
    } else if (got != sizeof out->r) {
        memset(&out->r, 0, sizeof out->r);
        res_fail(&out->r, "child exited with status %d without figures",
                 WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
    }
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

struct summary {
    int status;             /* RES_OK, RES_SKIP, RES_FAIL */
    const char *why;
    const char *note;
    int runs;
    double med, min, max, med2, min2, max2;
    double rss_kib, mallocs;
    uint64_t threads_seen;
};

static void summarise(int c, int k, const struct wl *w, struct summary *s)
{
    struct sample *sm = samples[c][k];
    int n = nsamples[c][k];
    double v[MAX_RUNS];

    memset(s, 0, sizeof *s);
    s->status = RES_SKIP;
    s->why = "not run";
    s->note = "";
    for (int i = 0; i < n; i++) {
        if (sm[i].r.status != RES_OK) {
            s->status = sm[i].r.status;
            s->why = sm[i].r.why;
            return;
        }
    }
    if (n == 0)
        return;
    s->status = RES_OK;
    s->runs = n;
    s->note = sm[0].r.note;
    for (int i = 0; i < n; i++)
        v[i] = sm[i].r.v;
    s->med = median(v, n);
    s->min = v[0];
    s->max = v[n - 1];
    for (int i = 0; i < n; i++)
        v[i] = sm[i].r.v2;
    s->med2 = median(v, n);
    s->min2 = v[0];
    s->max2 = v[n - 1];
    for (int i = 0; i < n; i++)
        v[i] = (double)sm[i].maxrss_kib;
    s->rss_kib = median(v, n);
    for (int i = 0; i < n; i++)
        v[i] = (double)sm[i].r.heap_calls / units_of(w);
    s->mallocs = median(v, n);
    s->threads_seen = sm[0].r.threads_seen;
    if (slow[c][k] > 0) {
        static char notes[MAX_CASES][NPOOLS][320];
        snprintf(notes[c][k], sizeof notes[c][k], "%d run%s only (a run "
                 "took %.0f s)%s%s", n, n == 1 ? "" : "s", slow[c][k],
                 s->note[0] ? "; " : "", s->note);
        s->note = notes[c][k];
    }
}

/* ---- output ---- */

static FILE *md, *csv;

/* Prints to stdout and to the Markdown file. */
static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (md != NULL) {
        va_start(ap, fmt);
        vfprintf(md, fmt, ap);
        va_end(ap);
    }
}

/* A CSV field, quoted when it has a comma or a quote. */
static void csv_field(const char *s, bool last)
{
    if (strpbrk(s, ",\"\n") != NULL) {
        fputc('"', csv);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', csv);
            fputc(*s == '\n' ? ' ' : *s, csv);
        }
        fputc('"', csv);
    } else {
        fputs(s, csv);
    }
    fputc(last ? '\n' : ',', csv);
}

static void csv_row(const struct wl *w, int k, const char *params,
                    const struct summary *s, bool second, const char *unit)
{
    char buf[512], num[5][48];

    csv_field(w->name, false);
    csv_field(pool_label(k, w), false);
    if (s->status == RES_OK)
        snprintf(buf, sizeof buf, "%s", params);
    else
        snprintf(buf, sizeof buf, "%s; not run: %s", params, s->why);
    csv_field(buf, false);
    if (s->status == RES_OK) {
        snprintf(num[0], sizeof num[0], "%d", s->runs);
        const char *fmt = w->kind == WL_SLEEP ? "%.4f" : "%.2f";
        snprintf(num[1], sizeof num[1], fmt, second ? s->med2 : s->med);
        snprintf(num[2], sizeof num[2], fmt, second ? s->min2 : s->min);
        snprintf(num[3], sizeof num[3], fmt, second ? s->max2 : s->max);
        snprintf(num[4], sizeof num[4], "%.0f", s->rss_kib);
    } else {
        snprintf(num[0], sizeof num[0], "0");
        num[1][0] = num[2][0] = num[3][0] = num[4][0] = '\0';
    }
    for (int i = 0; i < 4; i++)
        csv_field(num[i], false);
    csv_field(unit, false);
    csv_field(num[4], false);
    if (s->status == RES_OK && heap_counted())
        snprintf(buf, sizeof buf, "%.3f", s->mallocs);
    else
        buf[0] = '\0';
    csv_field(buf, true);
}

static double best_peer(const struct summary *s, bool second)
{
    double best = -1;
    for (int k = 0; k < NPOOLS; k++) {
        if (pools[k].role != ROLE_PEER || s[k].status != RES_OK)
            continue;
        double v = second ? s[k].med2 : s[k].med;
        if (best < 0 || v < best)
            best = v;
    }
    return best;
}

static void ratio(char *buf, size_t size, double v, double best)
{
    if (best > 0)
        snprintf(buf, size, "%.2f", v / best);
    else
        snprintf(buf, size, "n/a");
}

static void fmt_val(char *buf, size_t size, const struct wl *w, double v)
{
    snprintf(buf, size, w->kind == WL_SLEEP ? "%.3f" : v < 10 ? "%.2f"
             : "%.1f", v);
}

static void print_case(const struct wl *w, struct summary *s)
{
    char params[256];
    double best = best_peer(s, false), best2 = best_peer(s, true);

    params_of(w, params, sizeof params);
    if (w->kind == WL_LATENCY) {
        out("| pool | runs | p50 us (median) | min | max | p99 us (median) "
            "| min | max | peak RSS MiB | mallocs/task | p50 vs best peer "
            "| p99 vs best peer | notes |\n");
        out("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
            "|---|\n");
    } else {
        out("| pool | runs | median %s | min | max | peak RSS MiB "
            "| mallocs/task | ratio vs best peer |%s notes |\n",
            unit_of(w->kind),
            w->kind == WL_MEMORY ? " RSS after all ran, MiB over start |"
                                 : "");
        out("|---|---:|---:|---:|---:|---:|---:|---:|%s---|\n",
            w->kind == WL_MEMORY ? "---:|" : "");
    }
    for (int k = 0; k < NPOOLS; k++) {
        const struct summary *x = &s[k];
        const char *label = pool_label(k, w);
        if (!applies(k, w))
            continue;
        if (x->status != RES_OK) {
            const char *tag = x->status == RES_FAIL ? "FAILED: " : "";
            if (w->kind == WL_LATENCY)
                out("| %s | 0 | | | | | | | | | | | %s%s |\n", label, tag,
                    x->why);
            else
                out("| %s | 0 | | | | | | |%s %s%s |\n", label,
                    w->kind == WL_MEMORY ? " |" : "", tag, x->why);
            continue;
        }
        char a[32], b[32], c[32], d[32], e[32], f[32], r1[16], r2[16];
        char mal[32], note[256];
        fmt_val(a, sizeof a, w, x->med);
        fmt_val(b, sizeof b, w, x->min);
        fmt_val(c, sizeof c, w, x->max);
        fmt_val(d, sizeof d, w, x->med2);
        fmt_val(e, sizeof e, w, x->min2);
        fmt_val(f, sizeof f, w, x->max2);
        ratio(r1, sizeof r1, x->med, best);
        ratio(r2, sizeof r2, x->med2, best2);
        if (heap_counted())
            snprintf(mal, sizeof mal, "%.3f", x->mallocs);
        else
            snprintf(mal, sizeof mal, "n/a");
        snprintf(note, sizeof note, "%s", x->note);
        if (w->kind == WL_SLEEP && x->threads_seen > 0) {
            size_t len = strlen(note);
            snprintf(note + len, sizeof note - len, "%s%" PRIu64
                     " threads ran tasks", len ? "; " : "", x->threads_seen);
        }
        if (w->kind == WL_LATENCY)
            out("| %s | %d | %s | %s | %s | %s | %s | %s | %.1f | %s | %s "
                "| %s | %s |\n", label, x->runs, a, b, c, d, e, f,
                x->rss_kib / 1024.0, mal, r1, r2, note);
        else if (w->kind == WL_MEMORY)
            out("| %s | %d | %s | %s | %s | %.1f | %s | %s | %.1f | %s |\n",
                label, x->runs, a, b, c, x->rss_kib / 1024.0, mal, r1,
                x->med2 / 1024.0, note);
        else
            out("| %s | %d | %s | %s | %s | %.1f | %s | %s | %s |\n", label,
                x->runs, a, b, c, x->rss_kib / 1024.0, mal, r1, note);
    }
    for (int k = 0; k < NPOOLS; k++) {
        if (!applies(k, w))
            continue;
        if (w->kind == WL_LATENCY) {
            char p[300];
            snprintf(p, sizeof p, "%s stat=p50", params);
            csv_row(w, k, p, &s[k], false, unit_of(w->kind));
            snprintf(p, sizeof p, "%s stat=p99", params);
            csv_row(w, k, p, &s[k], true, unit_of(w->kind));
        } else if (w->kind == WL_MEMORY) {
            char p[300];
            snprintf(p, sizeof p, "%s stat=bytes_per_queued_task", params);
            csv_row(w, k, p, &s[k], false, unit_of(w->kind));
            snprintf(p, sizeof p, "%s stat=rss_after_all_ran_over_start",
                     params);
            csv_row(w, k, p, &s[k], true, "KiB");
        } else {
            csv_row(w, k, params, &s[k], false, unit_of(w->kind));
        }
    }
}

static void print_machine(void)
{
    struct utsname u;
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");

    if (f != NULL) {
        char line[512];
        while (fgets(line, sizeof line, f) != NULL) {
            char *colon = strchr(line, ':');
            if (strncmp(line, "model name", 10) != 0 || colon == NULL)
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
    if (uname(&u) != 0)
        snprintf(u.release, sizeof u.release, "unknown");
    out("Machine: %s %s %s, CPU: %s, nproc: %ld.\n\n", u.sysname,
        u.release, u.machine, model, sysconf(_SC_NPROCESSORS_ONLN));
}

/* ---- the workloads' cases ---- */

static int make_cases(const struct config *cfg, struct wl *c)
{
    unsigned ncpu = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    int n = 0;
    struct wl base;

    if (ncpu < 1)
        ncpu = 1;
    memset(&base, 0, sizeof base);
    base.uv_window = 16384;
    base.workers = ncpu;
    base.submitters = 1;
    base.gap_us = 2000;

    if (strcmp(WORKLOAD, "W1") == 0) {
        c[n] = base;
        c[n].kind = WL_SLEEP;
        snprintf(c[n].name, sizeof c[n].name, "W1");
        c[n].tasks = 1000000;
        c[n].workers = 10000;
        n++;
        c[n] = base;
        c[n].kind = WL_SLEEP;
        snprintf(c[n].name, sizeof c[n].name, "W1s");
        c[n].tasks = 100000;
        c[n].workers = 1000;
        n++;
        if (cfg->scale)
            c[0] = c[--n];      /* --scale: W1s only */
    } else if (strcmp(WORKLOAD, "W2") == 0 ||
               strcmp(WORKLOAD, "W2b") == 0) {
        c[n] = base;
        c[n].kind = strcmp(WORKLOAD, "W2") == 0 ? WL_TINY : WL_INSIDE;
        snprintf(c[n].name, sizeof c[n].name, "%s", WORKLOAD);
        c[n].tasks = cfg->scale ? 1000000 : 10000000;
        n++;
    } else if (strcmp(WORKLOAD, "W3") == 0) {
        c[n] = base;
        c[n].kind = WL_FIB;
        snprintf(c[n].name, sizeof c[n].name, "W3");
        c[n].fib_n = cfg->scale ? 32 : 36;
        c[n].fib_cutoff = 12;
        n++;
    } else if (strcmp(WORKLOAD, "W4") == 0) {
        c[n] = base;
        c[n].kind = WL_LATENCY;
        snprintf(c[n].name, sizeof c[n].name, "W4");
        c[n].tasks = cfg->scale ? 300 : 1000;
        n++;
    } else if (strcmp(WORKLOAD, "W5") == 0) {
        c[n] = base;
        c[n].kind = WL_MEMORY;
        snprintf(c[n].name, sizeof c[n].name, "W5");
        c[n].tasks = cfg->scale ? 1000000 : 10000000;
        c[n].workers = 1;
        n++;
    } else if (strcmp(WORKLOAD, "W6") == 0) {
        static const unsigned ws[] = { 1, 2, 4, 8 }, ss[] = { 1, 2, 4 };
        for (int i = 0; i < 4; i++) {
            for (int j = 0; j < 3; j++) {
                c[n] = base;
                c[n].kind = WL_TINY;
                snprintf(c[n].name, sizeof c[n].name, "W6");
                c[n].tasks = cfg->scale ? 200000 : 1000000;
                c[n].workers = ws[i];
                c[n].submitters = ss[j];
                n++;
            }
        }
    }
    return n;
}

static const char *describe(const struct wl *w, bool scale)
{
    switch (w->kind) {
    case WL_SLEEP:
        return "tasks of one 10 ms nanosleep submitted from one thread, "
               "timed from the first submit until all have run; crew and "
               "raw threads use 64 KiB stacks (bench/seed.c's set-up, crew "
               "queue capacity 5 x workers), peers their default stacks";
    case WL_TINY:
        return "tiny tasks (20 multiply-adds) submitted from outside the "
               "pool by `submitters` threads, timed from the first submit "
               "until the pool's wait-for-all returns; oneTBB and OpenMP "
               "get `workers` + `submitters` threads, as their submitting "
               "threads run tasks while they wait; libuv submits on its "
               "loop thread(s) with a window of 16384 requests in flight";
    case WL_INSIDE:
        return "the same tiny tasks, but the first task is submitted from "
               "outside and each task submits up to two more (a binary "
               "tree of exactly `tasks` tasks); libuv submits the children "
               "from the after-work callback on its loop thread, since "
               "uv_queue_work() may only be called there";
    case WL_FIB:
        return "fork-join fib: at n >= cutoff a task spawns fib(n-1) as a "
               "child, computes fib(n-2) itself and waits for the child; "
               "below the cutoff it recurses serially; timed from the root "
               "submit until its result is back";
    case WL_LATENCY:
        return "an idle pool (2 ms between samples), one task at a time: "
               "time from just before the submit call to the first line "
               "of the task (CLOCK_MONOTONIC)";
    case WL_MEMORY:
        return "one worker blocked by a gate task while `tasks` tiny tasks "
               "are queued behind it; figure: RSS growth while they are "
               "queued per task; then the gate opens, all must run, and "
               "RSS after they ran is measured (before the pool is freed)";
    default:
        (void)scale;
        return "";
    }
}

/* ---- options and main ---- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: %s [--runs N] [--scale] [--full-peers] [--pools a,b,...]\n"
        "          [--out-dir DIR]\n"
        "  --runs N       runs per pool, interleaved (default %d)\n"
        "  --scale        smaller sizes for a quick run\n"
        "  --full-peers   W1: run the peers at full size too (slow)\n"
        "  --pools LIST   only these pools (crew, crew-inline, baseline,\n"
        "                 glib, uv, tbb, omp, asio, ctp)\n"
        "  --out-dir DIR  where W*.md and W*.csv go (bench/results)\n",
        WORKLOAD, strcmp(WORKLOAD, "W2") == 0 ? 5 : 3);
}

static const char *const short_names[NPOOLS] = {
    "crew", "crew-inline", "baseline", "glib", "uv", "tbb", "omp", "asio",
    "ctp"
};


static void parse_args(int argc, char **argv, struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->runs = strcmp(WORKLOAD, "W2") == 0 ? 5 : 3;
    cfg->out_dir = "bench/results";
    for (int k = 0; k < NPOOLS; k++)
        cfg->enabled[k] = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--scale") == 0) {
            cfg->scale = true;
        } else if (strcmp(a, "--full-peers") == 0) {
            cfg->full_peers = true;
        } else if (strcmp(a, "--runs") == 0 && v != NULL) {
            cfg->runs = atoi(v);
            i++;
            if (cfg->runs < 1 || cfg->runs > MAX_RUNS) {
                fprintf(stderr, "--runs must be 1..%d\n", MAX_RUNS);
                exit(2);
            }
        } else if (strcmp(a, "--out-dir") == 0 && v != NULL) {
            cfg->out_dir = v;
            i++;
        } else if (strcmp(a, "--pools") == 0 && v != NULL) {
            i++;
            for (int k = 0; k < NPOOLS; k++) {
                char pat[32];
                snprintf(pat, sizeof pat, ",%s,", short_names[k]);
                char list[512];
                snprintf(list, sizeof list, ",%s,", v);
                cfg->enabled[k] = strstr(list, pat) != NULL;
            }
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "%s: unknown option %s\n", WORKLOAD, a);
            usage(stderr);
            exit(2);
        }
    }
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct wl cases[MAX_CASES];
    char path[4096];

    parse_args(argc, argv, &cfg);
    int ncases = make_cases(&cfg, cases);
    if (ncases == 0) {
        fprintf(stderr, "unknown workload %s\n", WORKLOAD);
        return 2;
    }
    mkdir(cfg.out_dir, 0777);
    snprintf(path, sizeof path, "%s/%s.md", cfg.out_dir, WORKLOAD);
    md = fopen(path, "w");
    snprintf(path, sizeof path, "%s/%s.csv", cfg.out_dir, WORKLOAD);
    csv = fopen(path, "w");
    if (md == NULL || csv == NULL) {
        fprintf(stderr, "%s: cannot write %s: %s\n", WORKLOAD, path,
                strerror(errno));
        return 1;
    }
    fprintf(csv, "workload,pool,params,runs,median,min,max,unit,"
                 "peak_rss_kib,mallocs_per_task\n");

    for (int c = 0; c < ncases; c++) {
        const struct wl *w = &cases[c];
        bool skipped[NPOOLS] = { false };
        char params[256];
        params_of(w, params, sizeof params);
        for (int r = 0; r < cfg.runs; r++) {
            for (int k = 0; k < NPOOLS; k++) {
                struct sample *s = &samples[c][k][nsamples[c][k]];
                if (skipped[k] || !applies(k, w))
                    continue;
                if (!cfg.enabled[k]) {
                    memset(s, 0, sizeof *s);
                    res_skip(&s->r, "left out (--pools)");
                } else if (w->kind == WL_SLEEP && w->workers > 1000 &&
                           pools[k].role == ROLE_PEER && !cfg.full_peers) {
                    memset(s, 0, sizeof *s);
                    res_skip(&s->r, "peers run only the scaled W1s by "
                             "default (a full run takes 20-40 s or more "
                             "each); --full-peers runs them");
                } else {
                    run_child(w, k, s);
                }
                nsamples[c][k]++;
                if (s->r.status == RES_OK && s->child_s > SLOW_RUN_S &&
                    r + 1 < cfg.runs) {
                    skipped[k] = true;
                    slow[c][k] = s->child_s;
                }
                if (s->r.status != RES_OK) {
                    skipped[k] = true;
                    fprintf(stderr, "%s %s [%s]: %s: %s\n", w->name, params,
                            pool_label(k, w),
                            s->r.status == RES_SKIP ? "not run" : "FAILED",
                            s->r.why);
                    continue;
                }
                fprintf(stderr, "%s %s run %d/%d %-36s %12.3f %s%s  "
                        "rss %.1f MiB\n", w->name, params, r + 1, cfg.runs,
                        pool_label(k, w), s->r.v, unit_of(w->kind),
                        w->kind == WL_LATENCY ? " (p50)" : "",
                        (double)s->maxrss_kib / 1024.0);
            }
        }
    }

    print_machine();
    for (int c = 0; c < ncases; c++) {
        const struct wl *w = &cases[c];
        struct summary s[NPOOLS];
        char params[256];
        params_of(w, params, sizeof params);
        if (c == 0)
            out("### %s: %s%s\n\n%s.\n\n", w->name, params,
                cfg.scale ? ", scaled down (--scale)" : "",
                describe(w, cfg.scale));
        else
            out("### %s: %s%s\n\n", w->name, params,
                cfg.scale ? ", scaled down (--scale)" : "");
        for (int k = 0; k < NPOOLS; k++)
            summarise(c, k, w, &s[k]);
        print_case(w, s);
        out("\nMedians of up to %d interleaved runs, each in its own "
            "process; ratio = median / the best peer's median (lower is "
            "better; crew and the baseline are not peers).\n\n", cfg.runs);
    }
    if (ncases > 1 && cases[0].kind == WL_TINY) {
        out("### %s summary: crew's median ns/task, and the best peer's, "
            "by workers (rows) and submitters (columns)\n\n", WORKLOAD);
        out("| workers |");
        for (int c = 0; c < ncases && cases[c].workers == cases[0].workers;
             c++)
            out(" %u submitter%s |", cases[c].submitters,
                cases[c].submitters == 1 ? "" : "s");
        out("\n|---:|");
        for (int c = 0; c < ncases && cases[c].workers == cases[0].workers;
             c++)
            out("---|");
        for (int c = 0; c < ncases; c++) {
            struct summary s[NPOOLS];
            if (c == 0 || cases[c].workers != cases[c - 1].workers)
                out("\n| %u |", cases[c].workers);
            for (int k = 0; k < NPOOLS; k++)
                summarise(c, k, &cases[c], &s[k]);
            int bk = -1;
            for (int k = 0; k < NPOOLS; k++)
                if (pools[k].role == ROLE_PEER && s[k].status == RES_OK &&
                    (bk < 0 || s[k].med < s[bk].med))
                    bk = k;
            if (s[0].status == RES_OK && bk >= 0)
                out(" crew %.0f; %s %.0f (%.2fx) |", s[0].med,
                    pools[bk].name, s[bk].med, s[0].med / s[bk].med);
            else
                out(" n/a |");
        }
        out("\n\n");
    }
    fclose(md);
    fclose(csv);
    fprintf(stderr, "wrote %s/%s.md and .csv\n", cfg.out_dir, WORKLOAD);
    return 0;
}
