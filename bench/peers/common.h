/*
 * common.h - what the peer benchmark's programs share: the workloads'
 * parameters, the figures a run sends back, the trivial task body, and the
 * adapters' entry points (one per pool, C or C++).
 *
 * Every adapter exports one function, pool_<name>_run(), that runs one
 * workload once in the calling (forked child) process and fills a result;
 * a workload the pool cannot run fills `why` and sets status RES_SKIP.
 */
#ifndef PEERS_COMMON_H
#define PEERS_COMMON_H

#include "../heapcount.h"
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The kinds of workload (W1 and W1s are both WL_SLEEP; W2 and W6 both
 * WL_TINY). */
enum wl_kind {
    WL_SLEEP,       /* W1, W1s: tasks of one 10 ms nanosleep */
    WL_TINY,        /* W2, W6: tiny tasks submitted from outside */
    WL_INSIDE,      /* W2b: tiny tasks submitted from inside tasks */
    WL_FIB,         /* W3: fork-join fib with a serial cutoff */
    WL_LATENCY,     /* W4: idle pool, one task at a time */
    WL_MEMORY,      /* W5: every task queued before any runs */
    WL_KINDS
};

struct wl {
    enum wl_kind kind;
    char name[8];           /* "W1", "W1s", "W2", ... for the CSV */
    uint64_t tasks;         /* tasks (W4: samples) */
    unsigned workers;       /* threads that run tasks */
    unsigned submitters;    /* threads that submit (WL_TINY) */
    int fib_n, fib_cutoff;  /* WL_FIB */
    long gap_us;            /* WL_LATENCY: idle time between samples */
    unsigned uv_window;     /* libuv: requests in flight per loop */
};

enum { RES_OK = 0, RES_SKIP = 1, RES_FAIL = 2 };

/* What one run sends back to the parent. */
struct res {
    int status;
    char why[240];          /* RES_SKIP: the reason; RES_FAIL: the error */
    char note[160];         /* optional remark for the table */
    double v;               /* the main figure (see the workload's unit) */
    double v2;              /* W4: p99; W5: RSS after all ran, KiB above
                               the start */
    uint64_t heap_bytes, heap_calls;
    uint64_t threads_seen;  /* WL_SLEEP: distinct threads that ran tasks */
};

/* ---- in common.c ---- */

/* The trivial work of a tiny task; counts itself in a per-thread slot. */
void tiny_work(uintptr_t x);
/* Tasks counted by tiny_work() since the last reset (read when quiet). */
uint64_t tiny_count(void);
void tiny_reset(void);

/* One 10 ms nanosleep, and a count of the distinct threads doing them. */
void sleep_work(void);
uint64_t sleep_threads(void);

int64_t now_ns(void);
void sleep_us(long us);
long fib_serial(int n);
/* Tasks a parallel fib spawns: one per call with n >= cutoff. */
uint64_t fib_tasks(int n, int cutoff);
/* Resident set now, KiB (from /proc/self/statm). */
long rss_now_kib(void);

/* Heap counting (the malloc family is interposed in common.c). */
void heap_stop(struct res *r);   /* heap_read() into r */

void res_skip(struct res *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void res_fail(struct res *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void res_note(struct res *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Percentile (0..100) of n values; sorts v. */
double percentile(double *v, uint64_t n, double pct);

/* A gate for W5: one task blocks on it until the submitter opens it. */
struct gate;
struct gate *gate_new(void);
void gate_pass(struct gate *g);       /* in the task: mark started, block */
void gate_wait_started(struct gate *g);
void gate_open(struct gate *g);
void gate_free(struct gate *g);

/* A counting semaphore-like latch for "the task has started" (W4). */
struct latch;
struct latch *latch_new(void);
void latch_post(struct latch *l);
void latch_wait(struct latch *l);
void latch_free(struct latch *l);

/* W4: lat_begin(samples) before the loop; per sample lat_arm() just
 * before submitting, lat_hit() first thing in the task, lat_wait() in the
 * submitter; lat_end() stores p50 (v) and p99 (v2) in microseconds. */
int lat_begin(uint64_t samples);
void lat_arm(void);
void lat_hit(void);
void lat_wait(void);
void lat_end(struct res *r);

/* ---- the adapters ---- */
void pool_crew_run(const struct wl *w, struct res *r);
/* The same with crew_opts_t.inline_after = CREW_INLINE_AFTER. */
#define CREW_INLINE_AFTER 8
void pool_crew_inline_run(const struct wl *w, struct res *r);
void pool_base_run(const struct wl *w, struct res *r);
void pool_glib_run(const struct wl *w, struct res *r);
void pool_uv_run(const struct wl *w, struct res *r);
void pool_tbb_run(const struct wl *w, struct res *r);
void pool_omp_run(const struct wl *w, struct res *r);
void pool_asio_run(const struct wl *w, struct res *r);
void pool_ctp_run(const struct wl *w, struct res *r);

#ifdef __cplusplus
}
#endif

#endif /* PEERS_COMMON_H */
