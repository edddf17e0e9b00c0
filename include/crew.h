/*
 * crew.h - a worker pool (thread pool) for C11 on POSIX threads.
 *
 * A program hands crew tasks: a function and its argument.  crew runs them
 * on worker threads and reports what came of each one, through a future,
 * through callbacks, and through statistics.
 *
 * Conventions used by every function below:
 *
 *  - Functions that can fail return 0 on success or a negative CREW_E* code
 *    (crew_strerror() names it).  crew never prints, never calls exit() or
 *    abort() on a run-time failure, and keeps no global state: two pools
 *    never affect each other.
 *  - Every function is thread-safe unless its comment says otherwise.
 *  - Option structs treat zero as "default", so designated initialisers
 *    read well and a NULL options pointer means "all defaults".
 *  - Exactly once: every task the pool accepts (a submit function returned
 *    0) either runs once or is reported cancelled once; its future completes
 *    once and its result or error callback fires once.
 */
#ifndef CREW_H
#define CREW_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the public functions: the only symbols the shared library
 * exports (it is built with hidden visibility). */
#if defined(__GNUC__) && !defined(CREW_STATIC_ONLY)
#define CREW_API __attribute__((visibility("default")))
#else
#define CREW_API
#endif

#define CREW_VERSION_MAJOR 0
#define CREW_VERSION_MINOR 1
#define CREW_VERSION_PATCH 0

/*
 * Error codes.  They are negated errno values, so they read like the
 * familiar names; a task may return any int of its own (see crew_fn).
 */
#define CREW_OK         0
#define CREW_EINVAL     (-EINVAL)     /* bad argument or option */
#define CREW_ENOMEM     (-ENOMEM)     /* out of memory */
#define CREW_EAGAIN     (-EAGAIN)     /* queue full, non-blocking submit */
#define CREW_ETIMEDOUT  (-ETIMEDOUT)  /* a timed call ran out of time */
#define CREW_ESHUTDOWN  (-ESHUTDOWN)  /* the pool no longer accepts tasks */
#define CREW_ECANCELED  (-ECANCELED)  /* the task was cancelled */
#define CREW_ETHREAD    (-1001)       /* a worker thread failed to start
                                         (crew's own code, no errno) */
#define CREW_EEXIT      (-1002)       /* the task ended its thread
                                         (pthread_exit) */
#define CREW_EBUSY      (-EBUSY)      /* not finished yet (poll) */
#define CREW_EDEADLK    (-EDEADLK)    /* the call would wait for itself */

/* Upper bounds above which a value is refused as absurd (CREW_EINVAL). */
#define CREW_MAX_WORKERS   (1u << 20)
#define CREW_MAX_CAPACITY  ((size_t)1 << 40)

typedef struct crew crew_t;           /* a pool */
typedef struct crew_task crew_task_t; /* a future: one spawned task */
typedef struct crew_ctx crew_ctx_t;   /* what a running task can ask */
typedef struct crew_group crew_group_t; /* tasks waited for together */

/*
 * A task.  It runs on a worker thread with the argument given at submit
 * time, returns 0 on success or any other value as its error, and may store
 * a result through `result` (initially NULL).  The value it returns is what
 * its future and error callback report; to keep it apart from crew's own
 * codes, prefer positive values (errno values, say) for task errors.
 */
typedef int (*crew_fn)(crew_ctx_t *ctx, void *arg, void **result);

/*
 * Callbacks for outcomes.  `on_result` fires for a task that returned 0,
 * with its result; `on_error` fires for a task that returned non-zero (err
 * is its return value) or was cancelled (err is CREW_ECANCELED, result
 * NULL).  They run on the worker thread that ran the task, right after it,
 * or, for a cancelled task, on the thread that cancelled it (the caller of
 * crew_task_cancel() or crew_shutdown(), or a worker draining the queue
 * after crew_shutdown(CREW_SHUTDOWN_NOW)).  crew holds no lock while they
 * run.  They may submit (see crew_submit() for what happens when the queue
 * is full) and read statistics; crew_wait(), crew_shutdown() and
 * crew_free() on their own pool return CREW_EDEADLK from a callback, on
 * whatever thread it runs.
 * crew_wait() returns only after the callbacks of the tasks it waited for
 * have returned.
 *
 * Results: a callback only borrows the result.  A task's result belongs to
 * whoever collects it from the future (crew_task_wait() and friends); a
 * result nobody can collect any more (a task without a future, or whose
 * future was released uncollected) is passed to free_result, if set, after
 * the callbacks.
 */
typedef void (*crew_result_cb)(void *arg, void *result, void *user);
typedef void (*crew_error_cb)(void *arg, int err, void *user);

/* Counts for progress reports, of a pool or of a group. */
typedef struct crew_progress {
    uint64_t total;           /* tasks accepted */
    uint64_t done;            /* finished and returned 0 */
    uint64_t failed;          /* finished with an error or timed out */
    uint64_t cancelled;       /* never ran */
    uint64_t running;         /* running now */
    uint64_t queued;          /* accepted, not running and not finished */
} crew_progress_t;

/*
 * A progress report.  Called after a task finishes, at most once per
 * progress interval, plus once whenever nothing is left unfinished; on the
 * thread that finished the task (a worker, the timer thread, or a
 * canceller), with no crew lock held.  Two reports may run at once on
 * different threads; `p` is valid only during the call.
 */
typedef void (*crew_progress_cb)(const crew_progress_t *p, void *user);

/* Per-thread hooks: run on each worker thread as it starts and stops. */
typedef void (*crew_thread_hook)(crew_t *pool, unsigned worker_id,
                                 void *user);

/*
 * The lock that guards the task queue's consumer side, taken once by every
 * take of a task (see crew_opts_t.lock).  The rest of the pool's state is
 * guarded by a pthread mutex that only slow paths take (sleeping, waking,
 * growing, waiting), with condition variables, which need a mutex.
 */
enum crew_lock_kind {
    CREW_LOCK_DEFAULT = 0,    /* spins briefly, then yields the CPU */
    CREW_LOCK_MUTEX,          /* a pthread mutex */
    CREW_LOCK_SPIN,           /* spins only (for pools no bigger than the
                                 number of cores) */
    CREW_LOCK_CUSTOM          /* the user's, through crew_lock_ops_t */
};

/* A lock the user supplies: lock and unlock its `ctx`.  Both must be
 * safe to call from any thread; they must not call into crew. */
typedef struct crew_lock_ops {
    void (*lock)(void *ctx);
    void (*unlock)(void *ctx);
    void *ctx;
} crew_lock_ops_t;

/* Pool options.  Zero means the default given beside each field. */
typedef struct crew_opts {
    unsigned min_workers;     /* workers kept alive when idle; default 0 */
    unsigned max_workers;     /* most workers, and so most tasks running
                                 at once; default: online CPUs */
    size_t queue_capacity;    /* most tasks waiting to start; 0: no bound */
    int64_t idle_timeout_ns;  /* an idle worker above min_workers retires
                                 after this long; default 10 s; negative:
                                 never */
    size_t stack_size;        /* worker stack bytes; default: the system's;
                                 16 KiB to 1 GiB */
    bool prespawn;            /* start max_workers threads at creation
                                 instead of min_workers */
    crew_thread_hook on_thread_start; /* optional, see crew_thread_hook */
    crew_thread_hook on_thread_stop;  /* optional */
    crew_result_cb on_result; /* optional, see crew_result_cb */
    crew_error_cb on_error;   /* optional, see crew_error_cb */
    void (*free_result)(void *result); /* optional: frees a result nobody
                                 will collect (future released first) */
    void *user;               /* passed to every hook and callback */
    int64_t task_timeout_ns;  /* default per-attempt timeout of every
                                 task, plain submits included (see
                                 crew_spawn()); 0: none */
    unsigned max_overtime;    /* workers stuck in timed-out tasks that may
                                 be replaced (threads in all stay within
                                 max_workers + max_overtime, plus one per
                                 task blocked in a wait: see
                                 crew_task_wait()); default max_workers.
                                 Fiber mode: threads stuck so, within
                                 threads + max_overtime; default
                                 threads */
    crew_progress_cb on_progress; /* optional: the pool's progress */
    int64_t progress_interval_ns; /* default 100 ms */
    int64_t priority_aging_ns; /* 0: no aging; else a waiting task gains
                                 one priority level per this many ns, so
                                 none starves (every task then goes
                                 through the priority queue) */
    int lock;                 /* enum crew_lock_kind */
    const crew_lock_ops_t *lock_ops; /* for CREW_LOCK_CUSTOM; copied */
    bool fibers;              /* run tasks on fibers: max_workers then
                                 bounds tasks in flight (default 1024),
                                 `threads` bounds OS threads; see
                                 crew_sleep() */
    unsigned threads;         /* fiber mode: OS threads; default: online
                                 CPUs */
    size_t fiber_stack_size;  /* fiber mode: bytes per fiber stack, plus a
                                 guard page; default 64 KiB; 16 KiB to
                                 1 GiB */
    unsigned blocking_threads; /* fiber mode: most threads running
                                 crew_blocking() calls at once; default
                                 64 */
    unsigned inline_after;    /* thread mode: a task's plain submit into
                                 its own pool runs the new task at once,
                                 inside the call, while its worker holds
                                 this many tasks queued (see
                                 crew_submit()); 0 (default): never */
} crew_opts_t;

/* How long a retried task waits before its next attempt. */
enum crew_backoff_kind {
    CREW_BACKOFF_NONE = 0,    /* retry at once */
    CREW_BACKOFF_FIXED,       /* base_ns every time */
    CREW_BACKOFF_EXPONENTIAL  /* base_ns, 2 x base_ns, 4 x ..., up to cap */
};

typedef struct crew_backoff {
    int kind;                 /* enum crew_backoff_kind */
    int64_t base_ns;
    int64_t cap_ns;           /* exponential only; 0: no cap */
    unsigned jitter_pct;      /* each wait is shortened by a random 0 to
                                 jitter_pct percent (0..100) */
} crew_backoff_t;

/* Decides whether an attempt that ended with `err` is retried; `user` is
 * the task's crew_task_opts_t.user. */
typedef bool (*crew_retry_fn)(int err, void *user);

/* Per-task options for crew_spawn().  Zero means "as the pool says". */
typedef struct crew_task_opts {
    crew_result_cb on_result; /* replaces the pool's result callback */
    crew_error_cb on_error;   /* replaces the pool's error callback */
    void (*free_result)(void *result); /* replaces the pool's */
    void *user;               /* passed to this task's own callbacks (the
                                 pool's callbacks still get the pool's) */
    /* Policies.  A task that uses any of them is scheduled through the
     * pool's timer (see "Policies" in README.md). */
    int64_t delay_ns;         /* start no sooner than this after submit */
    int64_t timeout_ns;       /* per attempt, counted from when the attempt
                                 is queued; 0: the pool's task_timeout_ns;
                                 negative: none */
    unsigned retries;         /* extra attempts after a failure or timeout
                                 (never after cancellation) */
    crew_backoff_t backoff;   /* wait before each retry */
    crew_retry_fn retry_if;   /* optional: retry only when it says so */
    crew_group_t *group;      /* optional: the group the task belongs to;
                                 it must belong to the same pool */
    int priority;             /* higher runs first; equal ones in
                                 submission order; default 0 */
} crew_task_opts_t;

/* Options of a group; zero means default. */
typedef struct crew_group_opts {
    crew_progress_cb on_progress; /* optional: the group's progress */
    int64_t progress_interval_ns; /* default 100 ms */
    void *user;               /* passed to on_progress */
} crew_group_opts_t;

/* How crew_shutdown() treats tasks that have not started. */
enum crew_shutdown_how {
    CREW_SHUTDOWN_DRAIN = 0,  /* run every accepted task, then stop */
    CREW_SHUTDOWN_NOW = 1     /* cancel queued tasks; running ones finish */
};

/* What a future's task has come to; see crew_task_state(). */
enum crew_task_state {
    CREW_TASK_QUEUED = 0,
    CREW_TASK_RUNNING,
    CREW_TASK_DONE,           /* ran and returned 0 */
    CREW_TASK_FAILED,         /* ran and returned non-zero, or timed
                                 out (queued or running) */
    CREW_TASK_CANCELED        /* never ran */
};

/* A snapshot of a pool's counters; see crew_stats(). */
typedef struct crew_stats {
    uint64_t submitted;       /* tasks accepted */
    uint64_t completed;       /* ran and returned 0 */
    uint64_t failed;          /* ran and returned non-zero */
    uint64_t cancelled;       /* ended by cancellation: never ran, or
                                 cancelled while waiting for a retry */
    uint64_t rejected;        /* submits refused: full, timed out, shut
                                 down, out of memory or threads, or into
                                 a cancelled group */
    uint64_t retries;         /* attempts after the first */
    uint64_t timed_out;       /* attempts whose deadline passed */
    unsigned overtime_workers; /* stuck in a timed-out task (fiber mode:
                                 threads stuck so, or back from it with
                                 no room, finishing the fibers they hold
                                 before they leave) */
    unsigned threads;         /* OS threads of the pool: thread mode,
                                 workers plus those stuck in timed-out
                                 tasks or blocked in waits (see
                                 crew_task_wait()); fiber mode, scheduler
                                 threads in the live count */
    uint64_t queued;          /* accepted, waiting to start */
    uint64_t running;         /* running now, not counting an attempt
                                 that timed out and has not returned
                                 (its task counts as failed, or queued
                                 for a retry); also tasks waiting on a
                                 future, group or event (in thread mode
                                 blocked there for over 2 ms), which
                                 max_workers does not bound */
    unsigned workers;         /* live worker threads (fiber mode: tasks
                                 holding a place in the budget, which a
                                 fiber gives back just after its task is
                                 reported, and while it waits on a
                                 future, group or event; back from the
                                 wait it waits for a free place, before
                                 new tasks get one) */
    unsigned idle_workers;    /* live workers waiting for work (fiber
                                 mode: OS threads) */
    unsigned peak_workers;    /* most live workers ever */
    unsigned min_workers;     /* bounds in force (see crew_resize()) */
    unsigned max_workers;
} crew_stats_t;

/*
 * Create a pool.  `opts` may be NULL for all defaults; it is copied.
 * Starts min_workers threads (max_workers with `prespawn`) before
 * returning.  Returns 0 and stores the pool in *pool, or CREW_EINVAL (NULL
 * `pool`, min_workers > max_workers, a bound above CREW_MAX_WORKERS or
 * CREW_MAX_CAPACITY, a max_overtime above CREW_MAX_WORKERS, in fiber mode
 * `threads` or `blocking_threads` above CREW_MAX_WORKERS, a stack size
 * outside 16 KiB..1 GiB, a negative task_timeout_ns, progress_interval_ns
 * or priority_aging_ns, an unknown `lock`), CREW_ENOMEM or CREW_ETHREAD;
 * on failure nothing is left allocated or running.  Fiber-only options
 * (`threads`, `fiber_stack_size`, `blocking_threads`) are ignored in
 * thread mode.
 */
CREW_API int crew_create(crew_t **pool, const crew_opts_t *opts);

/* crew_create() for those who prefer a pointer: NULL on any failure. */
CREW_API crew_t *crew_new(const crew_opts_t *opts);

/*
 * Submit a task that nobody will wait for individually; its outcome goes to
 * the pool's callbacks and statistics.  When the queue is full, blocks
 * until a batch of slots is free: half the capacity, or 4096 slots if
 * that is less (a low-water mark, so that a fast producer is woken once
 * per batch rather than once per task).  Called from a worker of the same
 * pool (a task or a callback) with the queue full, it does not block,
 * since that could wait for itself: it runs the task at once on the
 * calling thread instead ("caller runs").  With opts.inline_after set
 * (thread mode), a task's submit into its own pool (not a callback's)
 * also runs the new task at once, when the calling worker already holds
 * that many tasks of its own queued (for fine-grained divide and conquer,
 * as OpenMP runs a task undeferred): the work is then done in the
 * caller's order, so a task must not submit a task that waits for
 * something its submitter does after the call.  Runs nest at most 32
 * deep; deeper ones are queued.  Returns 0 once the task is accepted,
 * or CREW_EINVAL (NULL pool or fn), CREW_ESHUTDOWN (after
 * crew_shutdown(), including for submitters blocked when it was called),
 * CREW_ENOMEM or CREW_ETHREAD (no worker could be started for it).
 */
CREW_API int crew_submit(crew_t *pool, crew_fn fn, void *arg);

/* As crew_submit(), but never blocks: CREW_EAGAIN when the queue is full. */
CREW_API int crew_try_submit(crew_t *pool, crew_fn fn, void *arg);

/*
 * As crew_submit(), but waits at most `timeout_ns` nanoseconds for room
 * (0: do not wait): CREW_ETIMEDOUT when none came.  A negative timeout
 * waits forever.
 */
CREW_API int crew_submit_timeout(crew_t *pool, crew_fn fn, void *arg,
                                 int64_t timeout_ns);

/*
 * Submit a task with options, and get a future for it in *task, which the
 * caller owns and must give back with crew_task_release(); `task` may be
 * NULL when no future is wanted.  `opts` may be NULL.  Blocks when the
 * queue is full, as crew_submit() does (a delayed task or a retry enters
 * the queue when due without waiting for room).  Same errors as
 * crew_submit(), and CREW_EINVAL for a negative delay, a backoff kind out
 * of range, a negative base_ns or cap_ns, jitter above 100 or a group of
 * another pool, and CREW_ECANCELED for a group that was cancelled; on
 * error *task is set to NULL.
 *
 * Timeouts: when an attempt's deadline passes while it is queued, it never
 * starts; while it runs, its future and error callback report
 * CREW_ETIMEDOUT at the deadline (on the pool's timer thread), the task
 * sees crew_ctx_timed_out() turn true, its result when it returns late goes
 * to free_result, and its worker stops counting against max_workers (up to
 * max_overtime such workers), so a replacement may start.  In fiber mode
 * its fiber gives its place in the budget back at once, and if it keeps
 * its thread (it never parks), that thread is replaced the same way (up
 * to max_overtime threads); fibers parked on that thread wait for it, as
 * fibers never change threads.  C cannot stop a thread: the task has to
 * notice and return.  With retries, an attempt that fails (or times out)
 * is tried again after the backoff, unless retry_if says no or the task
 * was cancelled; callbacks and the future see only the final outcome.
 */
CREW_API int crew_spawn(crew_t *pool, crew_fn fn, void *arg,
                        const crew_task_opts_t *opts, crew_task_t **task);

/*
 * Wait for a future's task to finish and return its outcome: 0, the task's
 * own non-zero return value, or CREW_ECANCELED.  If `result` is not NULL,
 * the task's result is stored there and becomes the caller's (it will not
 * be given to free_result); with `result` NULL, an uncollected result goes
 * to free_result when the future is released.  Called from a worker of the
 * task's own pool, the worker runs other queued tasks of that pool while it
 * waits, so that tasks waiting for tasks cannot starve the pool; those run
 * on the waiting task's stack.  A task (thread mode) still blocked here
 * after 2 ms stops counting against max_workers until the wait ends, so
 * that another worker can run what it waits for (a task queued later,
 * after a delay or a backoff), so a pool has up to one thread more per
 * task blocked so; then it waits for a place to be free again, so a timed
 * wait may return that much later than its timeout.  CREW_EINVAL for
 * NULL, CREW_EDEADLK when a task waits for its own future.
 */
CREW_API int crew_task_wait(crew_task_t *task, void **result);

/*
 * As crew_task_wait(), but gives up after `timeout_ns` nanoseconds (0: do
 * not wait): CREW_ETIMEDOUT.  A negative timeout is CREW_EINVAL.  From a
 * worker of the task's pool, a task it runs while helping is not cut
 * short, so the call may return that much later than the timeout.
 */
CREW_API int crew_task_wait_timeout(crew_task_t *task, int64_t timeout_ns,
                                    void **result);

/* Never blocks: the outcome if finished, else CREW_EBUSY. */
CREW_API int crew_task_poll(crew_task_t *task, void **result);

/*
 * What the task has come to now; CREW_EINVAL for NULL.  A task being
 * cancelled reads CREW_TASK_QUEUED until its cancellation is reported
 * (callbacks run, future completed), so this agrees with crew_task_poll().
 */
CREW_API int crew_task_state(const crew_task_t *task);

/*
 * Cancel a task that has not started: it will never run, its future
 * completes with CREW_ECANCELED and its error callback fires on this
 * thread.  Returns 0 if this call cancelled it, CREW_EBUSY if it is running
 * or finished already.  A running task is not interrupted; it sees the
 * request through crew_ctx_cancelled(), and it is not retried after the
 * attempt that runs (it ends with that attempt's outcome).
 */
CREW_API int crew_task_cancel(crew_task_t *task);

/*
 * Give a future back.  Allowed at any time, before or after completion: an
 * unfinished task still runs, and its result, if nobody collected it, goes
 * to free_result.  The pointer must not be used afterwards (releasing an
 * unfinished future twice is caught and ignored; a finished one may be
 * gone already).  NULL is a no-op.
 */
CREW_API void crew_task_release(crew_task_t *task);

/*
 * Block until every task accepted so far (and any accepted while waiting)
 * has finished, including its callbacks.  No polling: the caller sleeps
 * until the last one finishes.  A task whose attempt timed out counts as
 * finished when the timeout is reported, though its code may still be
 * running (see crew_spawn()): do not free what such a task uses.  The pool
 * stays usable.  Returns 0, CREW_EINVAL, or CREW_EDEADLK when called from
 * a worker of the same pool.
 */
CREW_API int crew_wait(crew_t *pool);

/*
 * Stop accepting tasks; blocked submitters return CREW_ESHUTDOWN.  With
 * CREW_SHUTDOWN_DRAIN every accepted task still runs; with
 * CREW_SHUTDOWN_NOW queued tasks are cancelled (reported with
 * CREW_ECANCELED) and running ones are asked to stop
 * (crew_ctx_cancelled()) and finish.  Returns when every accepted task has
 * finished and every worker thread has exited, except workers still stuck
 * in an attempt that timed out (already reported; see crew_spawn()), and
 * in fiber mode threads still holding fibers of such attempts: C
 * cannot stop them, so they are left behind, detached, and the pool's
 * memory lives on until the last of them returns.  Calling it again is
 * harmless (it waits as the first call does).  Returns 0, CREW_EINVAL, or
 * CREW_EDEADLK from a worker or a callback of the same pool (nothing is
 * done then).
 */
CREW_API int crew_shutdown(crew_t *pool, int how);

/*
 * Shut the pool down (gracefully, if crew_shutdown() was not called) and
 * free it.  No other thread may be inside or enter any call on this pool
 * from now on (crew_shutdown() is the call that may race with submitters).
 * Futures may outlive the pool and are released separately.
 * Returns 0, or CREW_EDEADLK from a worker of the same pool (nothing is
 * done then).  NULL is a no-op returning 0.
 */
CREW_API int crew_free(crew_t *pool);

/*
 * Change the worker bounds at run time.  Growing starts workers at once for
 * queued work (and to reach the new minimum), which frees queue room and so
 * wakes blocked submitters.  Shrinking retires idle workers at once and busy
 * ones as their task ends; the call returns when the new bounds hold (from
 * a worker of the same pool, it does not wait for itself).  Until then
 * crew_stats() shows the old maximum, which still bounds the live count.
 * Returns 0, CREW_EINVAL (max 0, min > max, above CREW_MAX_WORKERS),
 * CREW_ESHUTDOWN, or CREW_ETHREAD if a worker needed for the new minimum
 * could not start (the bounds are changed all the same).
 */
CREW_API int crew_resize(crew_t *pool, unsigned min_workers,
                         unsigned max_workers);

/*
 * Fill *stats with a consistent snapshot of the counters: completed +
 * failed + cancelled + running never exceeds submitted.  Under load the
 * numbers move on at once.  At a quiet moment submitted == completed +
 * failed + cancelled.  Does nothing if either pointer is NULL.
 */
CREW_API void crew_stats(crew_t *pool, crew_stats_t *stats);

/* Inside a task: the pool running it. */
CREW_API crew_t *crew_ctx_pool(const crew_ctx_t *ctx);

/* Inside a task: the id of the worker running it (0, 1, ...). */
CREW_API unsigned crew_ctx_worker_id(const crew_ctx_t *ctx);

/*
 * Inside a task: true once the task has been asked to stop, through
 * crew_task_cancel() or crew_shutdown(CREW_SHUTDOWN_NOW).  Tasks that run
 * long should check it and return early (with CREW_ECANCELED, say): C has
 * no safe way to stop a thread from outside.
 */
CREW_API bool crew_ctx_cancelled(const crew_ctx_t *ctx);

/*
 * Create a group of tasks in `pool`; `opts` may be NULL.  Tasks join it
 * through crew_task_opts_t.group when spawned.  Returns 0, CREW_EINVAL
 * (NULL pool or group, a negative progress_interval_ns) or CREW_ENOMEM.
 * Groups may be created and used from inside tasks.
 */
CREW_API int crew_group_create(crew_t *pool, const crew_group_opts_t *opts,
                               crew_group_t **group);

/*
 * Block until every task spawned into the group so far (and while
 * waiting) has finished, callbacks included, while the pool and other
 * groups go on.  Returns the group's first error (see crew_group_error()),
 * 0 if none.  From a worker of the group's pool, the worker runs queued
 * tasks while it waits, and gives up its place in max_workers while it is
 * blocked, as crew_task_wait() does.  CREW_EINVAL for NULL.
 */
CREW_API int crew_group_wait(crew_group_t *group);

/* As crew_group_wait(), but gives up after `timeout_ns`: CREW_ETIMEDOUT
 * (CREW_EINVAL for a negative timeout). */
CREW_API int crew_group_wait_timeout(crew_group_t *group, int64_t timeout_ns);

/*
 * Cancel the group: its tasks that have not started never run (reported
 * CREW_ECANCELED, retries included), running ones see crew_ctx_cancelled(),
 * and spawning into the group fails with CREW_ECANCELED from now on.
 * Returns 0 or CREW_EINVAL.
 */
CREW_API int crew_group_cancel(crew_group_t *group);

/*
 * The error of the first task of the group that did not succeed: its
 * return value, CREW_ETIMEDOUT, or CREW_ECANCELED for one that a cancel
 * (of the task or the group) stopped; 0 if none has, so also for a
 * cancelled group whose tasks had all finished (or that had none).
 * CREW_EINVAL for NULL.
 */
CREW_API int crew_group_error(const crew_group_t *group);

/* Fill *p with the group's counts now.  Does nothing if either is NULL. */
CREW_API void crew_group_progress(crew_group_t *group, crew_progress_t *p);

/*
 * Give the group back.  Unfinished tasks still run and are reported; the
 * group's memory goes when the last of them finishes.  The pointer must
 * not be used afterwards.  NULL is a no-op.
 */
CREW_API void crew_group_free(crew_group_t *group);

/*
 * Wait `ns` nanoseconds.  On a fiber (crew_opts_t.fibers) the fiber parks
 * in its thread's timer and the thread runs other tasks meanwhile; on any
 * other thread it sleeps (nanosleep).  So task code runs unchanged in both
 * modes.  Inside a task the sleep ends early, and says why, when the
 * attempt's deadline passes (CREW_ETIMEDOUT) or the task is asked to stop
 * by crew_task_cancel() or crew_shutdown(CREW_SHUTDOWN_NOW)
 * (CREW_ECANCELED): a parked fiber is woken at once, a thread notices
 * within 10 ms.
 * Returns 0, those, or CREW_EINVAL for a negative time.
 */
CREW_API int crew_sleep(int64_t ns);

/*
 * Let others run: on a fiber, the fiber goes to the back of its thread's
 * ready list; on any other thread, sched_yield().
 */
CREW_API void crew_yield(void);

/*
 * Run fn(arg) and return what it returns, for a call that may block its
 * thread (a read from a pipe, a lock held elsewhere, a slow system call).
 * On a fiber the call runs on one of the pool's blocking threads (started
 * when needed, at most crew_opts_t.blocking_threads, retired after a
 * second idle; more calls than that wait their turn) while the fiber
 * parks, so its thread keeps running the other fibers; errno after fn is
 * the caller's errno after this returns.  If no blocking thread can be
 * started, fn runs on the fiber's own thread.  Anywhere else it simply
 * calls fn.  The call is not interrupted by a cancel or a timeout; fn
 * runs on another thread, so it must not rely on the task's thread-local
 * state or call crew_sleep() expecting to park.  fn NULL: returns NULL
 * with errno EINVAL.
 */
CREW_API void *crew_blocking(void *(*fn)(void *arg), void *arg);

/*
 * An event: a flag that tasks and other threads wait for, set and reset
 * by anyone.  Waiting parks a fiber (its thread runs other fibers) and
 * blocks a thread, so the same code works in both modes.  While set,
 * every wait returns at once; crew_event_set() wakes every waiter.
 */
typedef struct crew_event crew_event_t;

/* Make an event, not set, in *event.  Returns 0, CREW_EINVAL (event NULL)
 * or CREW_ENOMEM. */
CREW_API int crew_event_create(crew_event_t **event);

/*
 * Free an event.  Returns 0 (NULL is a no-op), or CREW_EBUSY, freeing
 * nothing, while anyone waits on it.
 */
CREW_API int crew_event_free(crew_event_t *event);

/* Set the event and wake every waiter.  Returns 0 or CREW_EINVAL. */
CREW_API int crew_event_set(crew_event_t *event);

/* Clear the event; later waits wait again.  Returns 0 or CREW_EINVAL. */
CREW_API int crew_event_reset(crew_event_t *event);

/* Is the event set now?  false for NULL. */
CREW_API bool crew_event_is_set(crew_event_t *event);

/*
 * Wait until the event is set.  Returns 0 once it is.  Inside a task the
 * wait ends early, as crew_sleep() does: CREW_ECANCELED when the task is
 * cancelled or the pool shuts down NOW, CREW_ETIMEDOUT when the attempt's
 * deadline passes.  A task blocked here gives up its place in max_workers
 * as in crew_task_wait().  CREW_EINVAL for NULL.
 */
CREW_API int crew_event_wait(crew_event_t *event);

/*
 * crew_event_wait() for at most timeout_ns: CREW_ETIMEDOUT if the event
 * is still not set then (0 only tests it).  CREW_EINVAL for a negative
 * timeout.
 */
CREW_API int crew_event_wait_timeout(crew_event_t *event,
                                     int64_t timeout_ns);

/* Inside a task: which attempt this is (1 for the first). */
CREW_API unsigned crew_ctx_attempt(const crew_ctx_t *ctx);

/*
 * Inside a task: the deadline of this attempt on CLOCK_MONOTONIC, in
 * nanoseconds, or 0 if it has none.
 */
CREW_API int64_t crew_ctx_deadline(const crew_ctx_t *ctx);

/* Inside a task: true once this attempt's deadline has passed. */
CREW_API bool crew_ctx_timed_out(const crew_ctx_t *ctx);

/* A static string naming a CREW_E* code (or "unknown error"). */
CREW_API const char *crew_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* CREW_H */
