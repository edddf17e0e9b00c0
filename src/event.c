/*
 * event.c - crew_event_t: a flag that tasks and threads wait for.
 *
 * A waiting thread sleeps on the event's condition variable; a waiting
 * fiber parks on the event's list of fibers (crew__fiber_wait_on), so its
 * thread runs other fibers meanwhile.  crew_event_set() wakes both.  Like
 * crew_sleep(), a wait inside a task ends early when the task is asked to
 * stop or its attempt's deadline passes.
 */
#include "crew_internal.h"

#include <errno.h>
#include <stdlib.h>

struct crew_event {
    pthread_mutex_t mu;         /* guards the fields below; a leaf */
    pthread_cond_t cv;
    bool set;
    unsigned waiters;           /* threads on cv */
    unsigned users;             /* waits under way, from their first lock
                                  to their last unlock: while any is,
                                  crew_event_free() says CREW_EBUSY (a
                                  wait drops the lock to park or to lend
                                  its worker's place, and comes back) */
    struct crew__waiter *fwaiters; /* fibers */
};

int crew_event_create(crew_event_t **event)
{
    crew_event_t *ev;

    if (event == NULL)
        return CREW_EINVAL;
    *event = NULL;
    ev = crew__calloc(1, sizeof(*ev));
    if (ev == NULL)
        return CREW_ENOMEM;
    if (pthread_mutex_init(&ev->mu, NULL) != 0) {
        free(ev);
        return CREW_ENOMEM;
    }
    if (crew__cond_init(&ev->cv) != 0) {
        pthread_mutex_destroy(&ev->mu);
        free(ev);
        return CREW_ENOMEM;
    }
    *event = ev;
    return 0;
}

int crew_event_free(crew_event_t *event)
{
    bool busy;

    if (event == NULL)
        return 0;
    pthread_mutex_lock(&event->mu);
    busy = event->users > 0;
    pthread_mutex_unlock(&event->mu);
    if (busy)
        return CREW_EBUSY;
    pthread_cond_destroy(&event->cv);
    pthread_mutex_destroy(&event->mu);
    free(event);
    return 0;
}

int crew_event_set(crew_event_t *event)
{
    struct crew__fiber *woken;

    if (event == NULL)
        return CREW_EINVAL;
    pthread_mutex_lock(&event->mu);
    event->set = true;
    if (event->waiters > 0)
        pthread_cond_broadcast(&event->cv);
    woken = crew__waiters_take(&event->fwaiters);
    pthread_mutex_unlock(&event->mu);
    crew__fiber_deliver(woken);
    return 0;
}

int crew_event_reset(crew_event_t *event)
{
    if (event == NULL)
        return CREW_EINVAL;
    pthread_mutex_lock(&event->mu);
    event->set = false;
    pthread_mutex_unlock(&event->mu);
    return 0;
}

bool crew_event_is_set(crew_event_t *event)
{
    bool set;

    if (event == NULL)
        return false;
    pthread_mutex_lock(&event->mu);
    set = event->set;
    pthread_mutex_unlock(&event->mu);
    return set;
}

/* The longest a wait inside a task on a thread goes without looking at
 * its cancel flag and deadline (as crew_sleep). */
#define SLICE_NS (10LL * 1000 * 1000)

/*
 * Wait with event->mu held until set, `until` (0: none), or an early end
 * (see crew__wait_interrupted).  Returns 0 if set, else why not.
 */
static int wait_locked(crew_event_t *ev, int64_t until, bool fiber,
                       struct crew__lend *lend)
{
    int64_t deadline, end;
    int rc;

    while (!ev->set) {
        if ((rc = crew__wait_interrupted(&deadline)) != 0)
            return rc;
        end = until;
        if (deadline != 0 && (end == 0 || deadline < end))
            end = deadline;
        if (until != 0 && crew__now_ns() >= until)
            return CREW_ETIMEDOUT;
        if (fiber) {
            crew__fiber_wait_on_held(&ev->fwaiters, &ev->mu, end, true,
                                     &ev->users);
        } else {
            struct timespec ts;

            if (crew__running != NULL) {
                int64_t slice = crew__after_ns(SLICE_NS);

                if (end == 0 || slice < end)
                    end = slice;
            }
            if (crew__lend_due(lend, &end)) {
                /* Blocked for long inside a task: lend the worker's
                 * place (worker.c), without this lock held. */
                pthread_mutex_unlock(&ev->mu);
                crew__lend(lend);
                pthread_mutex_lock(&ev->mu);
                continue;
            }
            ev->waiters++;
            if (end == 0) {
                pthread_cond_wait(&ev->cv, &ev->mu);
            } else {
                ts.tv_sec = (time_t)(end / 1000000000);
                ts.tv_nsec = (long)(end % 1000000000);
                pthread_cond_timedwait(&ev->cv, &ev->mu, &ts);
            }
            ev->waiters--;
        }
    }
    return 0;
}

static int event_wait(crew_event_t *ev, int64_t timeout_ns)
{
    int64_t until = timeout_ns >= 0 ? crew__after_ns(timeout_ns) : 0;
    bool fiber = crew__in_fiber();
    struct crew__lend lend;
    int rc;

    if (ev == NULL)
        return CREW_EINVAL;
    /* A fiber waiting gives its place in the budget back meanwhile (what
     * sets the event may be a task still queued), and lets a cancel of
     * its task wake it. */
    if (fiber) {
        crew__fiber_wait_begin();
        crew__fiber_cancelable(true);
    }
    crew__lend_init(&lend);
    pthread_mutex_lock(&ev->mu);
    ev->users++;
    rc = wait_locked(ev, until, fiber, &lend);
    ev->users--;
    pthread_mutex_unlock(&ev->mu);
    crew__reclaim(&lend);
    if (fiber) {
        crew__fiber_cancelable(false);
        crew__fiber_wait_end();
    }
    return rc;
}

int crew_event_wait(crew_event_t *event)
{
    return event_wait(event, -1);
}

int crew_event_wait_timeout(crew_event_t *event, int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return CREW_EINVAL;
    return event_wait(event, timeout_ns);
}
