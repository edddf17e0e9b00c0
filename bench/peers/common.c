/*
 * common.c - shared by every program of the peer benchmark: heap counts
 * into a result (bench/heapcount.c does the counting), the trivial task
 * body with a per-thread tally, timing, and small synchronisation helpers
 * for the workloads.
 */
#include "common.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Per-thread slots: tallies without shared cache lines.               */
/* ------------------------------------------------------------------ */

#define SLOTS 1024

struct slot {
    alignas(64) atomic_uint_fast64_t tiny; /* tiny_work() calls */
};

static struct slot slots[SLOTS];
static atomic_uint next_slot;
static _Thread_local struct slot *tls_slot;

/* A thread's own slot (shared only when more than SLOTS threads ran). */
static inline struct slot *my_slot(void)
{
    struct slot *s = tls_slot;
    if (s == NULL) {
        unsigned i = atomic_fetch_add_explicit(&next_slot, 1,
                                               memory_order_relaxed);
        s = &slots[i % SLOTS];
        tls_slot = s;
    }
    return s;
}


/* ------------------------------------------------------------------ */
/* Heap accounting: bench/heapcount.c, read into a result.             */
/* ------------------------------------------------------------------ */

void heap_stop(struct res *r)
{
    heap_read(&r->heap_bytes, &r->heap_calls);
}

/* ------------------------------------------------------------------ */
/* Task bodies.                                                        */
/* ------------------------------------------------------------------ */

void tiny_work(uintptr_t x)
{
    volatile unsigned v = (unsigned)x;

    for (int i = 0; i < 20; i++)
        v = v * 31 + 7;
    struct slot *s = my_slot();
    /* The slot is this thread's own: a plain increment, made atomic only
     * so that the final read is well defined. */
    atomic_store_explicit(&s->tiny,
                          atomic_load_explicit(&s->tiny, memory_order_relaxed)
                              + 1, memory_order_relaxed);
}

uint64_t tiny_count(void)
{
    uint64_t n = 0;
    for (int i = 0; i < SLOTS; i++)
        n += atomic_load_explicit(&slots[i].tiny, memory_order_relaxed);
    return n;
}

void tiny_reset(void)
{
    for (int i = 0; i < SLOTS; i++)
        atomic_store_explicit(&slots[i].tiny, 0, memory_order_relaxed);
}

static atomic_uint_fast64_t sleepers;
static _Thread_local bool slept;

void sleep_work(void)
{
    struct timespec ts = { 0, 10000000L };

    if (!slept) {
        slept = true;
        atomic_fetch_add_explicit(&sleepers, 1, memory_order_relaxed);
    }
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

uint64_t sleep_threads(void)
{
    return atomic_load_explicit(&sleepers, memory_order_relaxed);
}

int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

long fib_serial(int n)
{
    return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

uint64_t fib_tasks(int n, int cutoff)
{
    if (n < cutoff || n < 2)
        return 0;
    return 1 + fib_tasks(n - 1, cutoff) + fib_tasks(n - 2, cutoff);
}

long rss_now_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void vset(char *buf, size_t size, const char *fmt, va_list ap)
{
    vsnprintf(buf, size, fmt, ap);
}

void res_skip(struct res *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    r->status = RES_SKIP;
}

void res_fail(struct res *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    r->status = RES_FAIL;
}

void res_note(struct res *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(r->note, sizeof r->note, fmt, ap);
    va_end(ap);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double percentile(double *v, uint64_t n, double pct)
{
    if (n == 0)
        return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    uint64_t i = (uint64_t)(pct / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* ------------------------------------------------------------------ */
/* Gate and latch.                                                     */
/* ------------------------------------------------------------------ */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, open;
};

struct gate *gate_new(void)
{
    struct gate *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    return g;
}

void gate_pass(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->started = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

void gate_wait_started(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->started)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void gate_free(struct gate *g)
{
    if (g == NULL)
        return;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

struct latch {
    sem_t sem;
};

struct latch *latch_new(void)
{
    struct latch *l = calloc(1, sizeof *l);
    if (l != NULL)
        sem_init(&l->sem, 0, 0);
    return l;
}

void latch_post(struct latch *l)
{
    sem_post(&l->sem);
}

void latch_wait(struct latch *l)
{
    while (sem_wait(&l->sem) != 0 && errno == EINTR)
        ;
}

void latch_free(struct latch *l)
{
    if (l == NULL)
        return;
    sem_destroy(&l->sem);
    free(l);
}

/* ------------------------------------------------------------------ */
/* W4: submit-to-start latency samples.                                */
/* ------------------------------------------------------------------ */

static atomic_int_fast64_t lat_t0;
static double *lat_v;
static uint64_t lat_n, lat_i;
static struct latch *lat_l;

int lat_begin(uint64_t samples)
{
    lat_v = calloc(samples ? samples : 1, sizeof *lat_v);
    lat_l = latch_new();
    lat_n = samples;
    lat_i = 0;
    return lat_v != NULL && lat_l != NULL ? 0 : -1;
}

void lat_arm(void)
{
    atomic_store_explicit(&lat_t0, now_ns(), memory_order_release);
}

void lat_hit(void)
{
    int64_t t = now_ns();
    int64_t t0 = atomic_load_explicit(&lat_t0, memory_order_acquire);
    if (lat_i < lat_n)
        lat_v[lat_i++] = (double)(t - t0) / 1000.0;
    latch_post(lat_l);
}

void lat_wait(void)
{
    latch_wait(lat_l);
}

void lat_end(struct res *r)
{
    if (lat_i != lat_n) {
        res_fail(r, "%llu of %llu latency samples",
                 (unsigned long long)lat_i, (unsigned long long)lat_n);
        return;
    }
    r->v = percentile(lat_v, lat_n, 50.0);
    r->v2 = percentile(lat_v, lat_n, 99.0);
}
