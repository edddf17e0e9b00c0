/*
 * crew_internal.h - the pool's private state, shared by the files in src/.
 * Never installed.
 *
 * Who touches what (see docs/design.md for the full state machine):
 *  - The task queue (queue.c) is pushed by any thread without a lock and
 *    popped only under `pool->qlock`.
 *  - Worker bookkeeping (sleepers, wake tokens, the worker list, bounds,
 *    state transitions) changes only under `pool->lock`; the few fields
 *    that submitters read without the lock are atomics, published under it.
 *  - Counters for statistics are relaxed atomics: they are read for
 *    reporting only, never to decide anything.
 *
 * Lock order: pool->lock may be taken while holding nothing, or before
 * pool->qlock; never the other way round.  A future's own mutex is a leaf.
 * No user code (task, callback, hook) ever runs under a crew lock.
 */
#ifndef CREW_INTERNAL_H
#define CREW_INTERNAL_H

#include "crew.h"
#include "fault.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define CREW__CACHELINE 64

#if defined(__x86_64__) || defined(__i386__)
#define crew__cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define crew__cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define crew__cpu_relax() ((void)0)
#endif

/* --- Task records and futures (task.c) ------------------------------- */

/* A task's life; moves only forward, by compare-and-swap from QUEUED. */
enum {
    CREW__QUEUED = CREW_TASK_QUEUED,
    CREW__RUNNING = CREW_TASK_RUNNING,
    CREW__DONE = CREW_TASK_DONE,
    CREW__FAILED = CREW_TASK_FAILED,
    CREW__CANCELED = CREW_TASK_CANCELED,
    CREW__WITHDRAWN            /* never accepted: submit failed after push */
};

#define CREW__F_FUTURE 1u      /* record is a whole struct crew_task */

/*
 * One record per submitted task: what the queue and a worker need.  Plain
 * submits allocate just this; crew_spawn() allocates a struct crew_task,
 * which starts with one, and sets CREW__F_FUTURE.
 */
struct crew__rec {
    struct crew__rec *_Atomic next; /* queue link (queue.c) */
    crew_fn fn;
    void *arg;
    _Atomic int state;
    unsigned char flags;
    _Atomic bool waiting;      /* still counted in queued and reserved */
};

/* A future: a record plus what its caller and waiters need. */
struct crew_task {
    struct crew__rec rec;      /* first: a record pointer is the future */
    crew_t *pool;
    _Atomic int refs;          /* one for the caller, one for the pool */
    _Atomic bool cancel_requested;
    int err;                   /* under mu: outcome, once done */
    void *result;
    bool result_taken;
    bool done;                 /* under mu: err and result are set */
    crew_result_cb on_result;
    crew_error_cb on_error;
    void (*free_result)(void *);
    void *user;
    pthread_mutex_t mu;        /* leaf lock: guards the fields above it */
    pthread_cond_t cv;
    unsigned waiters;
};

static inline bool crew__is_future(const struct crew__rec *r)
{
    return (r->flags & CREW__F_FUTURE) != 0;
}

static inline struct crew_task *crew__future(struct crew__rec *r)
{
    return (struct crew_task *)r;
}

/* --- The queue (queue.c): intrusive MPSC list, lock-free push -------- */

struct crew__queue {
    /* Producers swing `tail`; the consumer walks `head`.  They sit on
     * separate cache lines because different threads hammer them. */
    _Alignas(CREW__CACHELINE) struct crew__rec *_Atomic tail;
    _Alignas(CREW__CACHELINE) struct crew__rec *head;
    struct crew__rec stub;
};

enum { CREW__POP_OK, CREW__POP_EMPTY, CREW__POP_RETRY };

void crew__queue_init(struct crew__queue *q);
void crew__queue_push(struct crew__queue *q, struct crew__rec *t);
int crew__queue_pop(struct crew__queue *q, struct crew__rec **out);

/* --- Workers (worker.c) ---------------------------------------------- */

struct crew__worker {
    crew_t *pool;
    pthread_t tid;
    unsigned id;
    bool exited;               /* under pool->lock: thread is leaving */
    struct crew__worker *next; /* pool->workers list, under pool->lock */
};

/* What a task sees through crew_ctx_t; lives on the running stack. */
struct crew_ctx {
    crew_t *pool;
    struct crew__rec *task;
    unsigned worker_id;
};

/* --- The pool -------------------------------------------------------- */

/* Pool life; see docs/design.md.  Moves only forward. */
enum {
    CREW__RUNNING_STATE = 0,   /* accepting */
    CREW__DRAINING,            /* shutdown(DRAIN): not accepting */
    CREW__CANCELLING,          /* shutdown(NOW): not accepting, cancel */
    CREW__STOPPED              /* every worker joined */
};

struct crew {
    crew_opts_t opts;          /* copy, read-only after create */

    /* Submit side: touched by every submit. */
    _Alignas(CREW__CACHELINE) struct crew__queue q;
    _Alignas(CREW__CACHELINE) _Atomic size_t reserved; /* queue slots
                                  taken (bounded pools only) */
    _Atomic size_t queued;     /* records visible in the queue */
    _Atomic size_t outstanding; /* accepted, not finished */
    _Atomic int state;         /* CREW__* pool state */

    /* Published under `lock`, read without it by submitters. */
    _Alignas(CREW__CACHELINE) _Atomic unsigned idle_avail; /* sleepers
                                  not yet handed a wake token */
    _Atomic unsigned waking;   /* wake tokens in flight (== tokens) */
    _Atomic unsigned live;     /* worker threads counted as alive */
    _Atomic unsigned max_target; /* bound every decision uses */
    _Atomic unsigned space_waiters; /* submitters blocked on a full queue */
    _Atomic unsigned wait_waiters;  /* crew_wait()/shutdown callers */

    /* Statistics: relaxed, reporting only. */
    _Alignas(CREW__CACHELINE) _Atomic uint64_t n_submitted;
    _Atomic uint64_t n_rejected;
    _Alignas(CREW__CACHELINE) _Atomic uint64_t n_completed;
    _Atomic uint64_t n_failed;
    _Atomic uint64_t n_cancelled;
    _Atomic uint64_t n_running;

    _Alignas(CREW__CACHELINE) atomic_bool qlock; /* serialises queue pops
                                  (single consumer); a spin lock */

    pthread_mutex_t lock;      /* guards everything below */
    pthread_cond_t work_cv;    /* sleeping workers */
    pthread_cond_t space_cv;   /* submitters blocked on a full queue */
    pthread_cond_t done_cv;    /* crew_wait(), shutdown, resize */
    unsigned sleepers;         /* workers waiting on work_cv */
    unsigned tokens;           /* wake-ups handed out, not yet taken */
    unsigned min_workers;
    unsigned max_shown;        /* max reported by crew_stats() */
    unsigned peak;
    unsigned next_id;
    unsigned joiners;          /* threads inside crew_shutdown() */
    unsigned exited;           /* workers on the list waiting for a join */
    struct crew__worker *workers; /* every thread not yet joined */
};

/*
 * The queue's consumer lock.  Its critical section is a handful of loads
 * and stores, so a waiter spins a little, then yields; it never sleeps in
 * the kernel, which under many threads on few cores turned every brief
 * overlap into a futex sleep and wake.
 */
static inline void crew__spin_lock(atomic_bool *l)
{
    unsigned spins = 0;

    /* Acquire: pairs with the release in crew__spin_unlock, so the queue
     * state the last holder wrote is visible. */
    while (atomic_exchange_explicit(l, true, memory_order_acquire)) {
        /* Relaxed: only a hint to retry the exchange. */
        while (atomic_load_explicit(l, memory_order_relaxed)) {
            if (++spins < 32)
                crew__cpu_relax();
            else
                sched_yield();
        }
    }
}

static inline void crew__spin_unlock(atomic_bool *l)
{
    atomic_store_explicit(l, false, memory_order_release);
}

/* The worker this thread is, if any (NULL outside every pool). */
extern _Thread_local struct crew__worker *crew__self;

static inline bool crew__inside(const crew_t *pool)
{
    return crew__self != NULL && crew__self->pool == pool;
}

/* worker.c */
int crew__spawn_locked(crew_t *pool);
void crew__reap_locked(crew_t *pool);
void crew__publish_idle_locked(crew_t *pool);
bool crew__try_run_one(crew_t *pool, unsigned worker_id);
int crew__wake_for_work(crew_t *pool);
void crew__pass_on(crew_t *pool);
void crew__unqueue(crew_t *pool, struct crew__rec *t);
int crew__cond_init(pthread_cond_t *cv);

/* task.c */
void crew__run(crew_t *pool, struct crew__rec *t, unsigned worker_id);
void crew__dispose(crew_t *pool, struct crew__rec *t);
void crew__finish_one(crew_t *pool);
bool crew__cancel_record(crew_t *pool, struct crew__rec *t);

/* pool.c */
void crew__deadline(struct timespec *ts, int64_t ns);
void crew__slot_freed(crew_t *pool);

#endif /* CREW_INTERNAL_H */
