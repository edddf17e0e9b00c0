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

/* A task's life; moves only forward, by compare-and-swap from QUEUED (or
 * QUEUED_LOCAL: queued in its submitting worker's deque, counted in
 * neither `queued` nor `outstanding` but under that worker's cover; see
 * deque.c; it may also become plain QUEUED when moved out of the deque). */
enum {
    CREW__QUEUED_LOCAL = -1,
    CREW__QUEUED = CREW_TASK_QUEUED,
    CREW__RUNNING = CREW_TASK_RUNNING,
    CREW__DONE = CREW_TASK_DONE,
    CREW__FAILED = CREW_TASK_FAILED,
    CREW__CANCELED = CREW_TASK_CANCELED,
    CREW__WITHDRAWN            /* never accepted: submit failed after push */
};

#define CREW__F_FUTURE 1u      /* record is a whole struct crew_task */
#define CREW__F_POLICY 2u      /* ... scheduled through the timer
                                  (policy.c); it is never queued itself,
                                  each attempt queues a proxy record */
#define CREW__F_PROXY 4u       /* a proxy: arg is the task, state the
                                  attempt number */
#define CREW__F_POOLED 8u      /* from a record slab (task.c), not
                                  malloc */

/* What `waiting` holds: how a queued record is counted. */
enum { CREW__UNCOUNTED = 0, CREW__COUNTED = 1, CREW__HOLDS_SLOT = 2 };

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
    _Atomic unsigned char waiting; /* CREW__COUNTED: still counted in
                                  queued; CREW__HOLDS_SLOT: and holds a
                                  queue slot */
};

/* A proxy (policy.c): what one attempt of a task with a policy queues. */
struct crew__attempt {
    struct crew__rec rec;      /* first: flags CREW__F_PROXY, arg the
                                  task, state the attempt number */
    int64_t deadline;          /* this attempt's, set before it is queued
                                  and never changed; 0: none */
    struct crew__attempt *outer; /* under pool->lock, while it runs with a
                                  deadline in thread mode: the attempt
                                  its worker was in before (policy.c) */
    struct crew__attempt *outer_run; /* while it runs: the attempt its
                                  thread was running it in (crew__run),
                                  for crew__abandon() */
};

/* A future: a record plus what its caller and waiters need. */
struct crew_task {
    struct crew__rec rec;      /* first: a record pointer is the future */
    /* Next, so that a reused future (task.c) keeps them initialised while
     * everything from `pool` on is cleared. */
    pthread_mutex_t mu;        /* leaf lock: guards the fields marked so */
    pthread_cond_t cv;
    crew_t *pool;
    struct crew__worker *local_owner; /* QUEUED_LOCAL: whose deque */
    _Atomic int cancel_cover;  /* a canceller of a QUEUED_LOCAL task and
                                  the count it reports under (task.c,
                                  crew__cover_canceller): 0 none, 1
                                  reporting with none, 2 with one a
                                  holder of the record gave, 3 done */
    _Atomic int refs;          /* one for the caller, one for the pool */
    _Atomic bool cancel_requested;
    int err;                   /* under mu: outcome, once done */
    void *result;
    bool result_taken;
    bool done;                 /* under mu: err and result are set */
    bool has_owner;            /* a caller holds it as a future */
    bool released;             /* under mu: crew_task_release() ran */
    crew_result_cb on_result;
    crew_error_cb on_error;
    void (*free_result)(void *);
    void *user;                /* err..user above: under mu */
    unsigned waiters;
    struct crew__waiter *fwaiters; /* under mu: fibers waiting */
    struct crew__fiber *parked_fiber; /* under mu: the fiber running it,
                                  while it waits interruptibly */
    struct crew__fiber *run_fiber; /* under mu: fiber mode, the fiber
                                  running its current attempt, if that has
                                  a deadline (fiber.c) */

    int priority;              /* kept by every attempt */
    bool use_heap;             /* attempts go to the priority heap */

    /* --- group (group.c); gprev/gnext under group->mu --- */
    crew_group_t *group;
    struct crew_task *gprev, *gnext;
    bool g_running, g_reported;

    /* --- policies (rec.flags & CREW__F_POLICY; policy.c) --- */
    _Atomic uint64_t phase;    /* attempt << 8 | CREW__PH_* */
    struct crew__worker *runner; /* under pool->lock: the worker inside
                                  an attempt with a deadline (enter() to
                                  leave() in policy.c), or NULL */
    int64_t timeout_ns;        /* per attempt; 0: none */
    _Atomic unsigned retries_left; /* changed only by the phase CAS winner;
                                  a late attempt may read it meanwhile */
    crew_backoff_t backoff;
    crew_retry_fn retry_if;
    int64_t delay_ns;
    /* Timer entry, under pool->tlock. */
    int64_t when;
    uint64_t tseq;
    size_t heap_idx;           /* CREW__NO_TIMER when not in the heap */
    unsigned tattempt;
    unsigned char tkind;       /* CREW__T_START or CREW__T_EXPIRE */
};

/* A group of tasks (group.c). */
struct crew_group {
    crew_t *pool;
    crew_group_opts_t opts;
    _Atomic unsigned refs;     /* the user's, and one per unfinished task */
    _Atomic int64_t last_progress;
    pthread_mutex_t mu;        /* guards the fields below; a leaf */
    pthread_cond_t cv;
    struct crew__waiter *fwaiters; /* fibers waiting */
    struct crew_task *members; /* unfinished tasks */
    uint64_t total, done, failed, cancelled, running, unfinished;
    unsigned reporting;        /* members reported, progress not yet */
    int first_err;
    bool cancelled_flag;
};

/* An entry of the priority heap (priority.c). */
struct crew__pent {
    int64_t key;
    uint64_t seq;
    struct crew__rec *rec;
};

/* A policy task's phase; see policy.c. */
enum {
    CREW__PH_WAIT = 1,         /* in the timer: delay or backoff */
    CREW__PH_QUEUED,           /* its proxy is queued */
    CREW__PH_RUNNING,
    CREW__PH_FINAL             /* reported */
};
enum { CREW__T_START = 1, CREW__T_EXPIRE };
#define CREW__NO_TIMER ((size_t)-1)

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
    struct crew__rec sentinel;
};

enum { CREW__POP_OK, CREW__POP_EMPTY, CREW__POP_RETRY };

void crew__queue_init(struct crew__queue *q);
void crew__queue_push(struct crew__queue *q, struct crew__rec *t);
int crew__queue_pop(struct crew__queue *q, struct crew__rec **out);

/* --- Per-worker deques (deque.c) ------------------------------------ */

#define CREW__DEQ_SIZE 1024    /* records a deque holds; a power of two */
#define CREW__NDEQ 64          /* deques a pool has at most */

struct crew__deque {
    _Alignas(CREW__CACHELINE) _Atomic int64_t top; /* thieves take here */
    _Alignas(CREW__CACHELINE) _Atomic int64_t bottom; /* the owner's end */
    _Atomic bool owned;        /* a live worker holds it */
    struct crew__rec *_Atomic buf[CREW__DEQ_SIZE];
};

struct crew__worker;
void crew__deque_claim(crew_t *pool, struct crew__worker *w);
void crew__deque_release(crew_t *pool, struct crew__worker *w);
bool crew__deque_push(struct crew__deque *d, struct crew__rec *t);
bool crew__deque_push_seq(struct crew__deque *d, struct crew__rec *t);
struct crew__rec *crew__deque_pop(struct crew__deque *d);
struct crew__rec *crew__deque_steal(crew_t *pool, struct crew__worker *w);
void crew__deques_free(crew_t *pool);
bool crew__cover_take(crew_t *pool, struct crew__worker *w);
void crew__cover_settle(crew_t *pool, struct crew__worker *w);
bool crew__deques_busy(crew_t *pool);
size_t crew__deques_held(crew_t *pool);
bool crew__deque_busy(const struct crew__deque *d);
bool crew__deque_newest_is(struct crew__deque *d, const struct crew__rec *t);
/* Records run on this thread under its cover, one inside another. */
extern _Thread_local unsigned crew__local_depth;
/* crew__take stole the record it returned, with a count (deque.c). */
extern _Thread_local bool crew__stolen;
bool crew__claim(struct crew__rec *t, int to, bool *was_local);
void crew__cover_canceller(crew_t *pool, struct crew__rec *t);
void crew__local_left(crew_t *pool);

/* --- Workers (worker.c) ---------------------------------------------- */

struct crew__fiber;

struct crew__worker {
    crew_t *pool;
    pthread_t tid;
    unsigned id;
    bool exited;               /* under pool->lock: thread is leaving */
    bool overtime;             /* under pool->lock: stuck in a timed-out
                                  task, not counted in live */
    struct crew__attempt *current; /* under pool->lock: the innermost
                                  attempt with a deadline it is running,
                                  if any (chained through `outer`) */
    /* Its share of the statistics: written only by this worker (a load and
     * a store, no read-modify-write on a line others write), summed by
     * crew_stats() under pool->lock, folded into the pool's totals when
     * it exits.  Relaxed: reporting only. */
    _Alignas(CREW__CACHELINE) _Atomic int64_t s_running;
    _Atomic int64_t s_completed;
    _Atomic int64_t s_failed;
    _Atomic int64_t s_submitted; /* by its tasks, into their own pool */
    _Atomic int64_t s_local;   /* QUEUED_LOCAL records it pushed, less
                                  those that left that state on it (so a
                                  share may be negative): the sum over
                                  workers (and n_local) is what deques hold */
    _Atomic size_t fin_owed;   /* tasks it finished whose drop of
                                  `outstanding` is still owed (task.c) */
    pthread_cond_t hot_cv;     /* thread mode: it sleeps on this instead
                                  of work_cv while it is on pool->hot */
    struct crew__worker *hot_next; /* under pool->lock: the pool->hot list */
    bool hot;                  /* under pool->lock: on that list */
    _Atomic unsigned hot_signals; /* wakers about to signal hot_cv after
                                  dropping the lock (worker.c) */
    bool lent;                 /* under pool->lock: blocked in a wait
                                  inside a task, its place lent (see
                                  crew__lend), not counted in live */
    bool detached;             /* under pool->lock: left behind by
                                  shutdown; frees itself */
    struct crew__deque *deq;   /* its own deque, or NULL (deque.c) */
    bool cover;                /* holds one count in outstanding for the
                                  QUEUED_LOCAL records of its deque and
                                  those it runs (deque.c); its own only */
    unsigned takes;            /* tasks taken: every 32nd looks at the
                                  shared queue first (fairness) */
    unsigned steal_seed;       /* where its next steal starts looking */
    struct crew__worker *next; /* pool->workers list, under pool->lock */
};

/* What a task sees through crew_ctx_t; lives on the running stack. */
struct crew_ctx {
    crew_t *pool;
    struct crew__rec *task;
    unsigned worker_id;
    unsigned attempt;
    int64_t deadline;
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
    /* Read by every submit and run, written a few times in the pool's
     * life: kept off the lines of the counters that change per task. */
    _Atomic int state;         /* CREW__* pool state */
    uint64_t id;               /* unique in the process, never reused */

    /* Submit side: touched by every submit. */
    _Alignas(CREW__CACHELINE) struct crew__queue q;
    _Alignas(CREW__CACHELINE) _Atomic size_t reserved; /* queue slots
                                  taken (bounded pools only) */
    _Atomic size_t enqueued;   /* records counted into the queue, ever
                                  (see crew__queued) */
    size_t low_water;          /* bounded: wake blocked submitters when
                                  `reserved` drops to it */
    _Atomic size_t outstanding; /* accepted, not finished */
    _Atomic unsigned reporting; /* finished, progress report running */

    /* Take side: records counted out of the queue, ever; a line of its
     * own, so that a worker's take does not pull the submitters' line. */
    _Alignas(CREW__CACHELINE) _Atomic size_t taken;

    /* Published under `lock`, read without it by submitters. */
    _Alignas(CREW__CACHELINE) _Atomic unsigned idle_avail; /* sleepers
                                  not yet handed a wake token */
    _Atomic unsigned waking;   /* wake tokens in flight (== tokens) */
    _Atomic unsigned live;     /* worker threads counted as alive */
    _Atomic unsigned fibers_live; /* fiber mode: tasks on fibers */
    _Atomic unsigned fiber_max;   /* fiber mode: the budget (max_workers) */
    _Atomic unsigned fibers_peak; /* fiber mode: most fibers at once */
    pthread_mutex_t fiber_lock;   /* guards fiber_cache and the place
                                     waiters; a leaf */
    _Atomic unsigned returners;   /* fiber mode: fibers back from a wait,
                                     waiting for a budget place */
    struct crew__waiter *place_head, **place_tail; /* those fibers, first
                                  come first (fiber_lock) */
    struct crew__fiber *fiber_cache; /* free fibers any thread may take */
    struct crew__fiber *fiber_dead;  /* fibers of lost threads, with */
    struct crew__sched *dead_scheds; /* their schedulers (fiber_lock) */
    _Atomic unsigned sched_sleepers; /* fiber mode: schedulers asleep in
                                  crew__idle(), for crew__fiber_deliver */
    _Atomic unsigned resize_waiters; /* fiber mode: crew_resize() calls
                                  waiting for a lowered budget to hold */
    _Atomic unsigned max_target; /* bound every decision uses */
    _Atomic unsigned space_waiters; /* submitters blocked on a full queue */
    _Atomic unsigned wait_waiters;  /* crew_wait()/shutdown callers */

    /* Statistics: relaxed, reporting only. */
    _Atomic int64_t last_progress;
    _Atomic uint64_t n_retries;
    _Atomic uint64_t n_timed_out;
    _Alignas(CREW__CACHELINE) _Atomic uint64_t n_submitted;
    _Atomic uint64_t n_rejected;
    _Alignas(CREW__CACHELINE) _Atomic uint64_t n_completed;
    _Atomic uint64_t n_failed;
    _Atomic uint64_t n_cancelled;
    _Atomic uint64_t n_running;
    _Atomic int64_t n_local;   /* s_local of workers that left */
    bool locals;               /* QUEUED_LOCAL records may be made: thread
                                  mode, unbounded, no progress callback
                                  (whose "nothing left" report a thief's
                                  passing count would hide), no aging */

    _Alignas(CREW__CACHELINE) atomic_bool qlock; /* serialises queue pops
                                  (single consumer); a spin lock, unless
                                  opts.lock chose another (qmutex, or
                                  opts.lock_ops) */
    pthread_mutex_t qmutex;    /* CREW_LOCK_MUTEX */
    crew_lock_ops_t qops;      /* CREW_LOCK_CUSTOM */

    pthread_mutex_t lock;      /* guards everything below */
    pthread_cond_t work_cv;    /* sleeping workers not on `hot` */
    pthread_cond_t space_cv;   /* submitters blocked on a full queue */
    pthread_cond_t done_cv;    /* crew_wait(), shutdown, resize */
    unsigned sleepers;         /* threads asleep in crew__idle() */
    unsigned tokens;           /* wake-ups handed out, not yet taken */
    struct crew__worker *hot;  /* the newest sleepers, newest first,
                                  each on its own hot_cv (worker.c) */
    unsigned nhot;             /* how many (at most HOT_MAX) */
    unsigned min_workers;
    unsigned max_shown;        /* max reported by crew_stats() */
    unsigned peak;
    unsigned next_id;
    unsigned joiners;          /* threads inside crew_shutdown() */
    unsigned exited;           /* workers on the list waiting for a join */
    unsigned overtime;         /* workers stuck in timed-out tasks */
    unsigned lent;             /* workers whose place is lent (waits) */
    _Atomic unsigned reclaiming; /* written under lock: lenders waiting
                                  to take their place back */
    _Atomic unsigned refs;     /* the user's, and one per detached worker */

    /* The priority heap (priority.c). */
    _Atomic size_t prio_n;     /* entries; a hint read without plock */
    pthread_mutex_t plock;     /* guards the fields below; a leaf */
    struct crew__pent *pheap;
    size_t plen, pcap;
    uint64_t pseq;

    /* The timer (policy.c): delayed tasks, backoffs, deadlines. */
    pthread_mutex_t tlock;     /* guards the fields below; a leaf except
                                  that pool->lock may be taken under it */
    pthread_cond_t tcv;
    struct crew_task **heap;   /* min-heap on (when, tseq) */
    size_t heap_len, heap_cap;
    uint64_t tseq;
    uint64_t rng;              /* backoff jitter */
    bool timer_started, timer_stop, timer_joining;
    pthread_t timer_tid;
    struct crew__worker *workers; /* every thread not yet joined */
    struct crew__worker *left_behind; /* under lock: detached by a
                                  shutdown, still in a timed-out task */

    /* Per-worker deques (deque.c); made on demand, freed with the pool. */
    struct crew__deque *_Atomic deqs[CREW__NDEQ];
    _Atomic unsigned ndeqs;    /* slots ever filled: thieves scan these */
    _Atomic unsigned spinning; /* workers looking for work before sleeping */
    unsigned max_spinning;     /* at most this many (half the CPUs) */

    /* Blocking calls of fibers (blocking.c). */
    pthread_mutex_t block_lock; /* guards the fields below; a leaf */
    pthread_cond_t block_cv;    /* idle blocking threads */
    pthread_cond_t block_gone_cv; /* crew_free waits for them to go */
    struct crew__bcall *bhead, *btail; /* calls not yet taken */
    unsigned bthreads, bidle;
    unsigned bbusy;             /* threads inside a call */
    bool bstop;
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

/* Spin only, for pools no bigger than the machine. */
static inline void crew__pure_spin_lock(atomic_bool *l)
{
    /* Acquire/relaxed: as in crew__spin_lock. */
    while (atomic_exchange_explicit(l, true, memory_order_acquire))
        while (atomic_load_explicit(l, memory_order_relaxed))
            crew__cpu_relax();
}

/* Take and release the queue's consumer lock, whichever kind it is. */
#define crew__qlock(pool)                                                  \
    do {                                                                   \
        switch ((pool)->opts.lock) {                                       \
        case CREW_LOCK_MUTEX:                                              \
            pthread_mutex_lock(&(pool)->qmutex);                           \
            break;                                                         \
        case CREW_LOCK_SPIN:                                               \
            crew__pure_spin_lock(&(pool)->qlock);                          \
            break;                                                         \
        case CREW_LOCK_CUSTOM:                                             \
            (pool)->qops.lock((pool)->qops.ctx);                           \
            break;                                                         \
        default:                                                           \
            crew__spin_lock(&(pool)->qlock);                               \
        }                                                                  \
    } while (0)

#define crew__qunlock(pool)                                                \
    do {                                                                   \
        switch ((pool)->opts.lock) {                                       \
        case CREW_LOCK_MUTEX:                                              \
            pthread_mutex_unlock(&(pool)->qmutex);                         \
            break;                                                         \
        case CREW_LOCK_CUSTOM:                                             \
            (pool)->qops.unlock((pool)->qops.ctx);                         \
            break;                                                         \
        default:                                                           \
            crew__spin_unlock(&(pool)->qlock);                             \
        }                                                                  \
    } while (0)

/*
 * Records counted as waiting in the queue: enqueued - taken.  Each counter
 * only grows, so reading `taken` first gives at least the count there was
 * at that read (and at the later one): never less, which is the side the
 * wake-up hand-offs need.  A take counted before its submit's count makes
 * the difference wrap to a huge value for a moment, read as "work waits",
 * as the single counter it replaces did.  seq_cst: the load half of the
 * hand-offs (worker.c); taken's load is seq_cst too, so it stays before.
 */
static inline size_t crew__queued(crew_t *pool)
{
    size_t out = atomic_load_explicit(&pool->taken, memory_order_seq_cst);

    return atomic_load_explicit(&pool->enqueued, memory_order_seq_cst) - out;
}

/* The same as a hint, for sizing and reports (relaxed: may be stale). */
static inline size_t crew__queued_hint(crew_t *pool)
{
    size_t out = atomic_load_explicit(&pool->taken, memory_order_relaxed);

    return atomic_load_explicit(&pool->enqueued, memory_order_relaxed) - out;
}

/* The worker this thread is, if any (NULL outside every pool). */
extern _Thread_local struct crew__worker *crew__self;

/* The pool whose callback this thread is running, if any. */
extern _Thread_local const crew_t *crew__callback_pool;

/* The task this thread is running, if any (innermost), and the proxy
 * record it came from, for a task with a policy. */
extern _Thread_local const struct crew__rec *crew__running;
extern _Thread_local struct crew__rec *crew__proxy;

static inline bool crew__inside(const crew_t *pool)
{
    return crew__self != NULL && crew__self->pool == pool;
}

/* Add to a statistic: the calling worker's own share if it is one of the
 * pool's, else the pool's shared counter. */
static inline void crew__stat(crew_t *pool, _Atomic int64_t *(*mine)(
                                  struct crew__worker *),
                              _Atomic uint64_t *shared, int64_t delta)
{
    struct crew__worker *w = crew__self;

    if (w != NULL && w->pool == pool) {
        _Atomic int64_t *c = mine(w);

        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed)
                                     + delta, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(shared, (uint64_t)delta,
                                  memory_order_relaxed);
    }
}

static inline _Atomic int64_t *crew__s_running(struct crew__worker *w)
{
    return &w->s_running;
}

static inline _Atomic int64_t *crew__s_completed(struct crew__worker *w)
{
    return &w->s_completed;
}

static inline _Atomic int64_t *crew__s_failed(struct crew__worker *w)
{
    return &w->s_failed;
}

static inline _Atomic int64_t *crew__s_submitted(struct crew__worker *w)
{
    return &w->s_submitted;
}

/* The calling worker's count of QUEUED_LOCAL records (s_local). */
static inline void crew__local_add(int64_t d)
{
    _Atomic int64_t *c = &crew__self->s_local;

    /* Relaxed, a load and a store: only this worker writes it. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

#define crew__stat_submitted(pool, d)                                      \
    crew__stat((pool), crew__s_submitted, &(pool)->n_submitted, (d))

#define crew__stat_running(pool, d)                                        \
    crew__stat((pool), crew__s_running, &(pool)->n_running, (d))
#define crew__stat_done(pool, err)                                         \
    crew__stat((pool), (err) == 0 ? crew__s_completed : crew__s_failed,    \
               (err) == 0 ? &(pool)->n_completed : &(pool)->n_failed, 1)

/* Would a call that waits for the pool's work wait for itself? */
static inline bool crew__would_deadlock(const crew_t *pool)
{
    return crew__inside(pool) || crew__callback_pool == pool;
}

/* fiber.c */

/*
 * A fiber waiting on something (a future, a group, an event): linked in
 * the object's list under the object's mutex.  Lives on the fiber's
 * stack for the wait.  Wakers take it off the list, claim the fiber,
 * and deliver it after dropping the mutex.
 */
struct crew__waiter {
    struct crew__waiter *next, **pprev; /* pprev NULL: not on a list */
    struct crew__fiber *f;
    unsigned gen;              /* the park it waits in */
    pthread_mutex_t *mu;       /* the list's lock */
    unsigned *held;            /* optional: a count under mu that the
                                  wait holds; dropped for it if its fiber
                                  is lost (pthread_exit on its thread) */
    bool placed;               /* a place waiter (fiber.c), under mu:
                                  woken with a budget place taken for it */
};

struct crew__sched;

void crew__sched_loop(crew_t *pool, struct crew__worker *w);
void crew__fiber_cache_free(crew_t *pool);
bool crew__in_fiber(void);
void crew__fiber_forget(void);
void crew__fiber_thread_lost(crew_t *pool);
void crew__fiber_yield(void);
bool crew__fiber_budget_left(crew_t *pool);
void crew__fiber_budget_grown(crew_t *pool);
void crew__fiber_wait_begin(void);
void crew__fiber_wait_end(void);
void crew__fiber_park(pthread_mutex_t *mu, int64_t until, bool interruptible);
unsigned crew__fiber_next_park(void);
void crew__fiber_wait_on(struct crew__waiter **q, pthread_mutex_t *mu,
                         int64_t until, bool interruptible);
void crew__fiber_wait_on_held(struct crew__waiter **q, pthread_mutex_t *mu,
                              int64_t until, bool interruptible,
                              unsigned *held);
void crew__waiter_add(struct crew__waiter **q, struct crew__waiter *w);
void crew__waiter_remove(struct crew__waiter *w);
struct crew__fiber *crew__waiters_take(struct crew__waiter **q);
void crew__fiber_deliver(struct crew__fiber *woken);
void crew__fiber_cancelable(bool on);
void crew__fiber_cancel(struct crew_task *t);
void crew__fiber_overtime(crew_t *pool, struct crew_task *t);
int crew__wait_interrupted(int64_t *deadline);

/* blocking.c */
void crew__blocking_stop(crew_t *pool);

/* worker.c */
struct crew__rec *crew__take(crew_t *pool);
bool crew__idle(crew_t *pool, int64_t until_ns, bool stay,
                struct crew__fiber *_Atomic *inbox);
int crew__spawn_locked(crew_t *pool);
size_t crew__stack_size(size_t asked);

/*
 * A wait inside a task (thread mode) that blocks for long lends the
 * worker's place (worker.c).  Lives on the waiter's stack.
 */
struct crew__lend {
    crew_t *pool;              /* the worker's pool; NULL: never lends */
    int64_t at;                /* when to lend, if still waiting; 0:
                                  not blocked yet */
    bool lent;
};
void crew__lend_init(struct crew__lend *l);
bool crew__lend_due(struct crew__lend *l, int64_t *until);
void crew__lend(struct crew__lend *l);
void crew__reclaim(struct crew__lend *l);

/* policy.c: a worker thread ends inside attempts (pthread_exit). */
void crew__policy_thread_gone_locked(struct crew__worker *w);
int crew__wait_step(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until,
                    struct crew__lend *l);
void crew__reap_locked(crew_t *pool);
void crew__stat_fold_locked(crew_t *pool, struct crew__worker *w);
void crew__publish_idle_locked(crew_t *pool);
bool crew__try_run_one(crew_t *pool, unsigned worker_id);
bool crew__help_one(crew_t *pool);

/* How deep a waiting worker nests other queued tasks on its stack. */
#define CREW__HELP_DEPTH 8
extern _Thread_local unsigned crew__help_depth;
int crew__wake_for_work(crew_t *pool);
void crew__wake_all_locked(crew_t *pool);
void crew__worker_free(struct crew__worker *w);
void crew__pass_on(crew_t *pool);
void crew__unqueue(crew_t *pool, struct crew__rec *t);
int crew__cond_init(pthread_cond_t *cv);

/* priority.c */
bool crew__uses_heap(const crew_t *pool, const crew_task_opts_t *opts);
int crew__prio_push(crew_t *pool, struct crew__rec *t, int priority);
struct crew__rec *crew__prio_take(crew_t *pool, bool fifo_empty);

/* group.c */
int crew__group_add(crew_group_t *g, struct crew_task *f);
void crew__group_withdraw(struct crew_task *f);
void crew__group_running(struct crew__rec *t, int delta);
void crew__group_done(struct crew_task *f, int err);
void crew__group_unref(crew_group_t *g);
void crew__pool_progress(crew_t *pool);

/* task.c */
void crew__records_flush(crew_t *pool);
void crew__records_atfork_child(void);
void crew__run(crew_t *pool, struct crew__rec *t, unsigned worker_id);
void crew__run_taken(crew_t *pool, struct crew__rec *t, unsigned worker_id);
void crew__dispose(crew_t *pool, struct crew__rec *t);
void crew__finish_one(crew_t *pool);
void crew__finish_pay(crew_t *pool, struct crew__worker *w);
void crew__finish_drain_locked(crew_t *pool);
void crew__uncount(crew_t *pool);
int crew__cancel_record(crew_t *pool, struct crew__rec *t);

/* policy.c */
bool crew__uses_policy(const crew_t *pool, const crew_task_opts_t *opts);
int crew__policy_check(const crew_task_opts_t *opts);
int crew__timer_ensure(crew_t *pool);
void crew__policy_init(struct crew_task *f, const crew_t *pool,
                       const crew_task_opts_t *opts);
int crew__policy_start(crew_t *pool, struct crew_task *f, bool holds_slot,
                       bool inline_run);
void crew__run_proxy(crew_t *pool, struct crew__rec *proxy,
                     unsigned worker_id);
int crew__policy_cancel(struct crew_task *f);
void crew__timer_cancel_all(crew_t *pool);
void crew__timer_stop(crew_t *pool);
int64_t crew__now_ns(void);
int64_t crew__after_ns(int64_t ns);

/* task.c */
void crew__report(crew_t *pool, struct crew__rec *t, int err, void *result);
void crew__abandon(crew_t *pool, struct crew__rec *t, struct crew__rec *proxy);
void crew__policy_abandon(crew_t *pool, struct crew_task *f, unsigned k);
void crew__future_unref(struct crew_task *f);
int crew__enqueue(crew_t *pool, struct crew__rec *t, unsigned char count,
                  const struct crew_task *f);
void crew__finish_one_locked(crew_t *pool);

/* pool.c */
void crew__pool_unref(crew_t *pool);
void crew__deadline(struct timespec *ts, int64_t ns);
void crew__slot_freed(crew_t *pool);

#endif /* CREW_INTERNAL_H */
