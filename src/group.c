/*
 * group.c - task groups (wait, cancel, first error, progress) and the
 * rate-limited progress reports of pools and groups.
 *
 * Threads: a group is touched by the threads that spawn into it, the
 * workers that run its tasks, the timer and cancellers that report them,
 * and its waiters.  Everything about the group is under group->mu, a leaf
 * lock: nothing else is taken while it is held, and no user code runs
 * under it.  A member task is linked into group->members from its spawn
 * until it is reported, and holds a reference on the group until the task
 * itself is freed (a timed-out attempt may still be running after the task
 * was reported, and it touches the group when it returns).
 */
#include "crew_internal.h"

#include <errno.h>
#include <stdlib.h>

#define DEFAULT_PROGRESS_NS (100LL * 1000 * 1000)

int crew_group_create(crew_t *pool, const crew_group_opts_t *opts,
                      crew_group_t **out)
{
    crew_group_t *g;

    if (out == NULL)
        return CREW_EINVAL;
    *out = NULL;
    if (pool == NULL || (opts != NULL && opts->progress_interval_ns < 0))
        return CREW_EINVAL;
    g = crew__calloc(1, sizeof(*g));
    if (g == NULL)
        return CREW_ENOMEM;
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        free(g);
        return CREW_ENOMEM;
    }
    if (crew__cond_init(&g->cv) != 0) {
        pthread_mutex_destroy(&g->mu);
        free(g);
        return CREW_ENOMEM;
    }
    g->pool = pool;
    if (opts != NULL)
        g->opts = *opts;
    if (g->opts.progress_interval_ns == 0)
        g->opts.progress_interval_ns = DEFAULT_PROGRESS_NS;
    atomic_init(&g->refs, 1);
    atomic_init(&g->last_progress, 0);
    *out = g;
    return 0;
}

void crew__group_unref(crew_group_t *g)
{
    /* acq_rel: the last owner sees every other owner's writes. */
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

void crew_group_free(crew_group_t *g)
{
    if (g != NULL)
        crew__group_unref(g);
}

static void link_locked(crew_group_t *g, struct crew_task *f)
{
    f->gprev = NULL;
    f->gnext = g->members;
    if (g->members != NULL)
        g->members->gprev = f;
    g->members = f;
}

static void unlink_locked(crew_group_t *g, struct crew_task *f)
{
    if (f->gprev != NULL)
        f->gprev->gnext = f->gnext;
    else
        g->members = f->gnext;
    if (f->gnext != NULL)
        f->gnext->gprev = f->gprev;
    f->gprev = f->gnext = NULL;
}

/* A task joins at spawn, before any thread can see it. */
int crew__group_add(crew_group_t *g, struct crew_task *f)
{
    int rc = 0;

    if (g->pool != f->pool)
        return CREW_EINVAL;
    pthread_mutex_lock(&g->mu);
    if (g->cancelled_flag) {
        rc = CREW_ECANCELED;
    } else {
        link_locked(g, f);
        g->total++;
        g->unfinished++;
        f->group = g;
        /* Relaxed: ordered by g->mu and the final acq_rel decrement. */
        atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* When nothing is left to wait for, wake the waiters: threads now, the
 * fibers returned are for crew__fiber_deliver() after unlocking. */
static struct crew__fiber *wake_if_idle_locked(crew_group_t *g)
{
    if (g->unfinished > 0 || g->reporting > 0)
        return NULL;
    pthread_cond_broadcast(&g->cv);
    return crew__waiters_take(&g->fwaiters);
}

/* Its spawn failed after it joined: it never was a member. */
void crew__group_withdraw(struct crew_task *f)
{
    crew_group_t *g = f->group;
    struct crew__fiber *woken;

    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    unlink_locked(g, f);
    g->total--;
    g->unfinished--;
    woken = wake_if_idle_locked(g);
    pthread_mutex_unlock(&g->mu);
    crew__fiber_deliver(woken);
    f->group = NULL;
    crew__group_unref(g);
}

/*
 * A member starts or stops running an attempt.  `g_running` says whether
 * it is counted in group->running, so that it counts once at most: an
 * attempt's start and its end (policy.c's uncount()) may come in either
 * order when the deadline ends it, and a member whose flag is left set
 * that way is uncounted when the next attempt ends or when it is
 * reported.
 */
void crew__group_running(struct crew__rec *t, int delta)
{
    struct crew_task *f;
    crew_group_t *g;

    if (!crew__is_future(t) || (g = crew__future(t)->group) == NULL)
        return;
    f = crew__future(t);
    pthread_mutex_lock(&g->mu);
    if (delta > 0 && !f->g_reported && !f->g_running) {
        f->g_running = true;
        g->running++;
    } else if (delta < 0 && f->g_running) {
        f->g_running = false;
        g->running--;
    }
    pthread_mutex_unlock(&g->mu);
}

/*
 * Call `cb` if the interval since the last report has passed, or `idle`
 * says nothing is left; one thread wins each interval by CAS.
 */
static bool progress_due(_Atomic int64_t *last, int64_t interval, bool idle)
{
    int64_t now = crew__now_ns();
    /* Relaxed: only picks which thread reports; the counts it reports
     * are read under a lock. */
    int64_t prev = atomic_load_explicit(last, memory_order_relaxed);

    if (!idle && now - prev < interval)
        return false;
    return atomic_compare_exchange_strong_explicit(
               last, &prev, now, memory_order_relaxed,
               memory_order_relaxed) ||
           idle;
}

static void group_counts_locked(crew_group_t *g, crew_progress_t *p)
{
    p->total = g->total;
    p->done = g->done;
    p->failed = g->failed;
    p->cancelled = g->cancelled;
    p->running = g->running;
    p->queued = g->unfinished - g->running;
}

/* A member was reported: count it, wake waiters, maybe report progress. */
void crew__group_done(struct crew_task *f, int err)
{
    crew_group_t *g = f->group;
    struct crew__fiber *woken;
    crew_progress_t p;
    bool idle;

    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    unlink_locked(g, f);
    f->g_reported = true;
    if (f->g_running) {
        f->g_running = false;
        g->running--;
    }
    /* As the pool counts: cancelled means it never ran. */
    if (atomic_load_explicit(&f->rec.state, memory_order_acquire) ==
        CREW__CANCELED)
        g->cancelled++;
    else if (err == 0)
        g->done++;
    else
        g->failed++;
    if (err != 0 && g->first_err == 0)
        g->first_err = err;
    g->unfinished--;
    idle = g->unfinished == 0;
    /* Waiters wait for this report too (it may use their data). */
    g->reporting++;
    group_counts_locked(g, &p);
    pthread_mutex_unlock(&g->mu);
    if (g->opts.on_progress != NULL &&
        progress_due(&g->last_progress, g->opts.progress_interval_ns,
                     idle)) {
        const crew_t *outer = crew__callback_pool;

        crew__callback_pool = g->pool;
        g->opts.on_progress(&p, g->opts.user);
        crew__callback_pool = outer;
    }
    pthread_mutex_lock(&g->mu);
    g->reporting--;
    woken = wake_if_idle_locked(g);
    pthread_mutex_unlock(&g->mu);
    crew__fiber_deliver(woken);
    /* The reference on the group goes with the task (future_free). */
}

void crew__pool_progress(crew_t *pool)
{
    crew_progress_t p;
    crew_stats_t st;
    bool idle;

    if (pool->opts.on_progress == NULL)
        return;
    idle = atomic_load_explicit(&pool->outstanding,
                                memory_order_relaxed) == 0;
    if (!progress_due(&pool->last_progress, pool->opts.progress_interval_ns,
                      idle))
        return;
    crew_stats(pool, &st);
    p.total = st.submitted;
    p.done = st.completed;
    p.failed = st.failed;
    p.cancelled = st.cancelled;
    p.running = st.running;
    p.queued = st.submitted - st.completed - st.failed - st.cancelled -
               st.running;
    {
        const crew_t *outer = crew__callback_pool;

        crew__callback_pool = pool;
        pool->opts.on_progress(&p, pool->opts.user);
        crew__callback_pool = outer;
    }
}

static bool group_idle(crew_group_t *g)
{
    bool idle;

    pthread_mutex_lock(&g->mu);
    idle = g->unfinished == 0 && g->reporting == 0;
    pthread_mutex_unlock(&g->mu);
    return idle;
}

static int wait_common(crew_group_t *g, int64_t timeout_ns)
{
    struct timespec deadline;
    struct crew__lend lend;
    int64_t until_ns = 0;
    int rc = 0;

    if (g == NULL)
        return CREW_EINVAL;
    if (timeout_ns >= 0) {
        crew__deadline(&deadline, timeout_ns);
        until_ns = (int64_t)deadline.tv_sec * 1000000000 +
                   deadline.tv_nsec;
    }
    /* On a fiber, park until the group is idle (or the timeout); other
     * fibers run meanwhile.  A worker of the group's pool helps. */
    if (crew__in_fiber()) {
        int64_t until = timeout_ns >= 0 ? crew__after_ns(timeout_ns) : 0;

        crew__fiber_wait_begin();
        pthread_mutex_lock(&g->mu);
        while ((g->unfinished > 0 || g->reporting > 0) &&
               (until == 0 || crew__now_ns() < until))
            crew__fiber_wait_on(&g->fwaiters, &g->mu, until, false);
        pthread_mutex_unlock(&g->mu);
        crew__fiber_wait_end();
    } else if (crew__inside(g->pool)) {
        while (!group_idle(g) && crew__help_depth < CREW__HELP_DEPTH) {
            if (timeout_ns >= 0 && crew__now_ns() >=
                (int64_t)deadline.tv_sec * 1000000000 + deadline.tv_nsec)
                break;
            if (!crew__help_one(g->pool))
                break;
        }
    }
    crew__lend_init(&lend);
    pthread_mutex_lock(&g->mu);
    while ((g->unfinished > 0 || g->reporting > 0) && rc == 0)
        if (crew__wait_step(&g->cv, &g->mu, until_ns, &lend) == ETIMEDOUT &&
            (g->unfinished > 0 || g->reporting > 0))
            rc = CREW_ETIMEDOUT;
    if (rc == 0)
        rc = g->first_err;
    pthread_mutex_unlock(&g->mu);
    crew__reclaim(&lend);
    return rc;
}

int crew_group_wait(crew_group_t *g)
{
    return wait_common(g, -1);
}

int crew_group_wait_timeout(crew_group_t *g, int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return CREW_EINVAL;
    return wait_common(g, timeout_ns);
}

int crew_group_cancel(crew_group_t *g)
{
    struct crew_task **v = NULL;
    size_t n = 0, i = 0;

    if (g == NULL)
        return CREW_EINVAL;
    /*
     * Take a reference on every member under the lock, then cancel them
     * without it: cancelling runs error callbacks, which must not run
     * under a crew lock.  If the array cannot be had, members are still
     * flagged and, when they run, see crew_ctx_cancelled().
     */
    pthread_mutex_lock(&g->mu);
    g->cancelled_flag = true;
    if (g->first_err == 0 && g->unfinished > 0)
        g->first_err = CREW_ECANCELED;
    for (struct crew_task *f = g->members; f != NULL; f = f->gnext)
        n++;
    if (n > 0)
        v = crew__malloc(n * sizeof(*v));
    for (struct crew_task *f = g->members; f != NULL; f = f->gnext) {
        /* Relaxed: a flag the task polls. */
        atomic_store_explicit(&f->cancel_requested, true,
                              memory_order_relaxed);
        if (v != NULL) {
            atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
            v[i++] = f;
        }
    }
    pthread_mutex_unlock(&g->mu);
    for (size_t j = 0; j < i; j++) {
        (void)crew_task_cancel(v[j]);
        crew__future_unref(v[j]);
    }
    free(v);
    return 0;
}

int crew_group_error(const crew_group_t *g)
{
    int err;

    if (g == NULL)
        return CREW_EINVAL;
    pthread_mutex_lock((pthread_mutex_t *)&g->mu);
    err = g->first_err;
    pthread_mutex_unlock((pthread_mutex_t *)&g->mu);
    return err;
}

void crew_group_progress(crew_group_t *g, crew_progress_t *p)
{
    if (g == NULL || p == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    group_counts_locked(g, p);
    pthread_mutex_unlock(&g->mu);
}
