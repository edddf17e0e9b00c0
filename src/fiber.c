/*
 * fiber.c - fiber workers: tasks run on user-space stacks, many on each of
 * a few OS threads, and waits park the fiber instead of the thread.
 *
 * In fiber mode (crew_opts_t.fibers) each OS thread of the pool runs a
 * scheduler (crew__sched_loop) instead of the plain worker loop.  It takes
 * tasks from the pool's queue while the pool's fiber budget (max_workers)
 * allows, gives each a fiber (a stack from the thread's pool of stacks),
 * and switches to it.  A fiber runs until its task returns, or until the
 * task parks it: crew_sleep() (into the thread's timer heap), crew_yield()
 * (to the back of the thread's ready list), or a wait for a future, a
 * group, an event or a crew_blocking() call (on the object's list of
 * waiting fibers).  Whoever ends a wait claims the fiber (crew__fiber_park
 * says how exactly one waker wins) and hands it back to its own thread:
 * directly if that is the waker's thread, else through the thread's inbox,
 * waking the thread if it sleeps.  Between fibers the scheduler takes its
 * inbox, fires due timers, admits new tasks, and when nothing is ready,
 * sleeps on the pool's work condition until the nearest timer, new work or
 * a fiber in its inbox.
 *
 * Threads: everything in a struct crew__sched belongs to its one thread,
 * so needs no lock, except what the timer thread reads or marks when an
 * attempt's deadline passes (see Overtime); fibers never move to another
 * thread once started (thread-local storage and errno stay theirs).  The
 * only other shared state is the pool's, as in thread mode, plus the
 * fiber count (an atomic).
 *
 * Switching: crew__fiber_switch saves the callee-saved registers and the
 * stack pointer on the current stack and restores the other side's; no
 * system call.  x86-64 and AArch64 have it in assembly below; other
 * targets use ucontext (slower: swapcontext saves the signal mask with a
 * system call).  AddressSanitizer and ThreadSanitizer are told about every
 * switch, so the sanitizer builds cover fiber mode.
 */
#define _DEFAULT_SOURCE         /* MAP_ANONYMOUS, MAP_NORESERVE */
#include "crew_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CREW__ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define CREW__TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CREW__ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define CREW__TSAN 1
#endif

#ifdef CREW__ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
void __sanitizer_start_switch_fiber(void **fake_stack_save,
                                    const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old,
                                     size_t *size_old);
#endif
#ifdef CREW__TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

#if defined(__x86_64__) || defined(__aarch64__)
#define CREW__ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

#define DEFAULT_FIBER_STACK ((size_t)64 * 1024)

/* One fiber: its saved context, its stack, what it runs. */
struct crew__fiber {
#ifdef CREW__ASM_SWITCH
    void *sp;                  /* saved stack pointer while switched out */
#else
    ucontext_t uc;
#endif
    struct crew__fiber *next;  /* ready list or free list */
    struct crew__sched *home;
    struct crew__rec *task;    /* the task it runs; NULL when free */
    unsigned worker_id;
    bool done;                 /* its task returned: recycle it */
    /* Parking.  A parked fiber is woken once: whoever turns `parked`
     * from the park's number to 0 (its timer, the object it waits on, a
     * cancel) puts it back on its thread's ready list, directly or
     * through the inbox.  Numbering the parks lets a wake meant for an
     * earlier one (a timer entry left behind) fail harmlessly. */
    _Atomic unsigned parked;   /* the park's number while parked, else 0 */
    unsigned park_gen;         /* the number of its latest park */
    bool timer_woke;           /* its timer ended the latest park */
    struct crew__fiber *wnext; /* in a woken list or the inbox */
    struct crew__fiber *pnext, **pprev; /* home->parked: interruptible */
    void *map;                 /* the mapping: guard page + stack */
    size_t map_size;
    void *tsan_fiber;
    void *asan_fake;
    struct crew__fiber *anext, **aprev; /* home's list of live fibers */
    struct crew__waiter *waiter; /* the wait it is parked in, if any */
    _Atomic bool holds_place;  /* counts in the budget (fibers_live);
                                  taken back by exchange (see Overtime) */
    struct crew_task *timed;   /* its task's attempt has a deadline: the
                                  task, named in its run_fiber, with a
                                  reference of ours; else NULL (own) */
    _Atomic bool overtime;     /* that attempt's deadline won: the fiber
                                  keeps no place in the budget */
    /* Per-thread state that is really per-task, kept across switches. */
    struct crew__rec *saved_proxy;
    const struct crew__rec *saved_running;
    const crew_t *saved_callback_pool;
    int saved_errno;
};

/* A timer entry: the key beside the pointer, so that sifting touches only
 * the heap's own memory, not ten thousand fibers' cache lines. */
struct crew__tent {
    int64_t wake_at;
    uint64_t seq;
    struct crew__fiber *f;
    unsigned gen;              /* the park it wakes (see claim()) */
};

/* Free fibers a thread keeps; more go to the pool's shared list, so that
 * a thread short of stacks reuses another's instead of touching new
 * memory (and nothing is unmapped while the pool runs: munmap in a
 * threaded process costs a TLB shootdown on every core). */
#define FREE_CAP 1024

/* A thread's scheduler. */
struct crew__sched {
    crew_t *pool;
    struct crew__worker *w;
#ifdef CREW__ASM_SWITCH
    void *sp;                  /* the scheduler's own saved context */
#else
    ucontext_t uc;
#endif
    struct crew__fiber *current;
    struct crew__fiber *ready_head, *ready_tail;
    /* Fibers woken by other threads: a lock-free stack they push and
     * this thread takes whole (crew__fiber_deliver). */
    struct crew__fiber *_Atomic inbox;
    struct crew__fiber *parked; /* parked until a cancel or shutdown NOW */
    struct crew__tent *heap;   /* min-heap on (wake_at, tseq) */
    size_t heap_len, heap_cap;
    size_t stale;              /* entries whose park ended otherwise */
    uint64_t tseq;
    struct crew__fiber *free_list;
    unsigned nfree;            /* on free_list */
    unsigned nfibers;          /* fibers of this thread, running or parked */
    struct crew__fiber *all;   /* those fibers (anext/aprev) */
    struct crew__sched *next_dead; /* pool->dead_scheds (thread lost) */
    bool on_heap;
    _Atomic uintptr_t on_cpu;  /* the fiber with a deadline that runs
                                  now (its address), or 0; | STUCK once
                                  marked (see Overtime) */
    bool out;                  /* written under pool->lock: the thread is
                                  out of the live count (w->overtime) */
    unsigned spare;            /* budget places held for the next admit:
                                  a fiber that ends leaves its place here
                                  for a new task, and what admit() does not
                                  use goes back at once */
    void *tsan_fiber;          /* the thread's own */
    struct crew__rec *saved_proxy;
    const struct crew__rec *saved_running;
    const crew_t *saved_callback_pool;
    int saved_errno;
    const void *stack_bottom;  /* of the thread's own stack, for ASan */
    size_t stack_size;
};

static _Thread_local struct crew__sched *self_sched;

static void timed_end(struct crew__fiber *f);
static int64_t next_timer(const struct crew__sched *s);

static size_t crew__page(void)
{
    /* Relaxed: every thread computes the same value. */
    static _Atomic size_t page;
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);

    if (p == 0) {
        long v = sysconf(_SC_PAGESIZE);

        p = v > 0 ? (size_t)v : 4096;
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

/* --- Switching ----------------------------------------------------------- */

#if defined(__x86_64__)
/*
 * crew__fiber_switch(void **save, void *to): push the callee-saved
 * registers, store the stack pointer in *save, load `to`, pop, return on
 * the other stack.  A new fiber's stack is laid out so that this returns
 * into fiber_entry (see fiber_init).
 */
__asm__(".text\n"
        ".globl crew__fiber_switch\n"
        ".hidden crew__fiber_switch\n"
        ".type crew__fiber_switch,@function\n"
        "crew__fiber_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size crew__fiber_switch, .-crew__fiber_switch\n");
#define SAVED_WORDS 6           /* rbp rbx r12-r15 */
#elif defined(__aarch64__)
/*
 * The same for AArch64: x19-x28, the frame pointer and link register, and
 * d8-d15 are saved on the stack (176 bytes, 16-aligned); `ret` goes to the
 * restored link register.
 *
 * A new fiber's first switch returns into crew__fiber_start, which clears
 * the link register and branches to fiber_entry (laid out in x19's slot):
 * fiber_entry then has a return address of 0, where a stack walk ends.
 * Returning into fiber_entry directly would leave its own address in the
 * link register as its caller, and pthread_exit's unwinding would go on
 * past it into whatever code comes before it, and crash.  The branch goes
 * through x16, which a `bti c` landing pad accepts.
 */
__asm__(".text\n"
        ".globl crew__fiber_switch\n"
        ".hidden crew__fiber_switch\n"
        ".type crew__fiber_switch,%function\n"
        "crew__fiber_switch:\n"
        "    sub sp, sp, #176\n"
        "    stp x19, x20, [sp, #0]\n"
        "    stp x21, x22, [sp, #16]\n"
        "    stp x23, x24, [sp, #32]\n"
        "    stp x25, x26, [sp, #48]\n"
        "    stp x27, x28, [sp, #64]\n"
        "    stp x29, x30, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    mov x9, sp\n"
        "    str x9, [x0]\n"
        "    mov sp, x1\n"
        "    ldp x19, x20, [sp, #0]\n"
        "    ldp x21, x22, [sp, #16]\n"
        "    ldp x23, x24, [sp, #32]\n"
        "    ldp x25, x26, [sp, #48]\n"
        "    ldp x27, x28, [sp, #64]\n"
        "    ldp x29, x30, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    add sp, sp, #176\n"
        "    ret\n"
        ".size crew__fiber_switch, .-crew__fiber_switch\n"
        ".globl crew__fiber_start\n"
        ".hidden crew__fiber_start\n"
        ".type crew__fiber_start,%function\n"
        "crew__fiber_start:\n"
        "    mov x16, x19\n"
        "    mov x30, xzr\n"
        "    br x16\n"
        ".size crew__fiber_start, .-crew__fiber_start\n");
void crew__fiber_start(void);
#endif

#ifdef CREW__ASM_SWITCH
void crew__fiber_switch(void **save, void *to);
#endif

/*
 * Switch from the running context to fiber `to` (or back to the
 * scheduler, `to` NULL).  `exiting` says the current fiber will never run
 * again (ASan may drop its fake stack).
 */
static void switch_to(struct crew__sched *s, struct crew__fiber *to,
                      bool exiting)
{
    struct crew__fiber *from = s->current;
#ifdef CREW__ASAN
    void *fake = NULL;
    const void *bottom = to ? (const char *)to->map + crew__page()
                            : s->stack_bottom;
    size_t size = to ? to->map_size - crew__page() : s->stack_size;

    __sanitizer_start_switch_fiber(exiting ? NULL
                                   : from ? &from->asan_fake : &fake,
                                   bottom, size);
#else
    (void)exiting;
#endif
#ifdef CREW__TSAN
    __tsan_switch_to_fiber(to ? to->tsan_fiber : s->tsan_fiber, 0);
#endif
    /* Thread-locals that belong to the task, not the thread. */
    if (from != NULL) {
        from->saved_proxy = crew__proxy;
        from->saved_running = crew__running;
        from->saved_callback_pool = crew__callback_pool;
        from->saved_errno = errno;
    } else {
        s->saved_proxy = crew__proxy;
        s->saved_running = crew__running;
        s->saved_callback_pool = crew__callback_pool;
        s->saved_errno = errno;
    }
    crew__proxy = to ? to->saved_proxy : s->saved_proxy;
    crew__running = to ? to->saved_running : s->saved_running;
    crew__callback_pool = to ? to->saved_callback_pool
                             : s->saved_callback_pool;
    errno = to ? to->saved_errno : s->saved_errno;
    s->current = to;
#ifdef CREW__ASM_SWITCH
    crew__fiber_switch(from ? &from->sp : &s->sp, to ? to->sp : s->sp);
#else
    swapcontext(from ? &from->uc : &s->uc, to ? &to->uc : &s->uc);
#endif
    /* Back here: someone switched to the context we left. */
#ifdef CREW__ASAN
    __sanitizer_finish_switch_fiber(from ? from->asan_fake : fake, NULL,
                                    NULL);
#endif
}

/* --- Fibers -------------------------------------------------------------- */

static void fiber_entry(void)
{
    struct crew__sched *s = self_sched;

#ifdef CREW__ASAN
    __sanitizer_finish_switch_fiber(NULL, &s->stack_bottom, &s->stack_size);
#endif
    for (;;) {
        struct crew__fiber *f = s->current;

        crew__run(s->pool, f->task, f->worker_id);
        timed_end(f);
        f->task = NULL;
        f->done = true;
        switch_to(s, NULL, false);  /* recycled: we come back with a task */
        s = self_sched;
    }
}

/* Lay out a fresh stack so that the first switch to it enters fiber_entry
 * as if called, with the stack aligned as the ABI wants. */
static void fiber_init(struct crew__fiber *f, size_t size)
{
#ifdef CREW__ASAN
    /* A reused stack may hold the poisoned redzones of frames that were
     * abandoned, not returned from: start clean. */
    __asan_unpoison_memory_region((char *)f->map + crew__page(), size);
#endif
#ifdef CREW__ASM_SWITCH
    uintptr_t top = ((uintptr_t)f->map + f->map_size) & ~(uintptr_t)15;
    void **sp = (void **)top;

    (void)size;
#if defined(__x86_64__)
    *--sp = NULL;                       /* fiber_entry's return address */
    *--sp = (void *)(uintptr_t)fiber_entry; /* where `ret` goes */
    for (int i = 0; i < SAVED_WORDS; i++)
        *--sp = NULL;
#else
    sp -= 176 / sizeof(void *);
    memset(sp, 0, 176);
    sp[0] = (void *)(uintptr_t)fiber_entry;     /* x19 */
    sp[11] = (void *)(uintptr_t)crew__fiber_start; /* x30: `ret` goes there */
#endif
    f->sp = sp;
#else
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = (char *)f->map + crew__page();
    f->uc.uc_stack.ss_size = size;
    f->uc.uc_link = NULL;
    makecontext(&f->uc, fiber_entry, 0);
#endif
}

/* A fiber from the thread's free list, or a new one: a mapping with a
 * guard page at the low end (stacks grow down), the struct on the heap. */
static struct crew__fiber *fiber_get(struct crew__sched *s)
{
    struct crew__fiber *f = s->free_list;
    size_t page = crew__page();
    size_t size;

    if (f != NULL) {
        s->free_list = f->next;
        s->nfree--;
        return f;
    }
    pthread_mutex_lock(&s->pool->fiber_lock);
    f = s->pool->fiber_cache;
    if (f != NULL)
        s->pool->fiber_cache = f->next;
    pthread_mutex_unlock(&s->pool->fiber_lock);
    if (f != NULL) {
        /* It last ran on another thread: start its stack afresh here. */
        f->home = s;
#ifdef CREW__TSAN
        __tsan_destroy_fiber(f->tsan_fiber);
        f->tsan_fiber = __tsan_create_fiber(0);
#endif
        fiber_init(f, f->map_size - crew__page());
        return f;
    }
    f = crew__calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    size = s->pool->opts.fiber_stack_size;
    size = (size + page - 1) & ~(page - 1);
    f->map_size = size + page;
    f->map = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (f->map == MAP_FAILED || crew__fault(CREW_FAULT_ALLOC)) {
        if (f->map != MAP_FAILED)
            munmap(f->map, f->map_size);
        free(f);
        return NULL;
    }
    if (mprotect(f->map, page, PROT_NONE) != 0) {
        munmap(f->map, f->map_size);
        free(f);
        return NULL;
    }
    f->home = s;
#ifdef CREW__TSAN
    f->tsan_fiber = __tsan_create_fiber(0);
#endif
    fiber_init(f, size);
    return f;
}

static void fiber_destroy(struct crew__fiber *f)
{
#ifdef CREW__TSAN
    __tsan_destroy_fiber(f->tsan_fiber);
#endif
    munmap(f->map, f->map_size);
    free(f);
}

/* --- Ready list and timers (one thread's own) ---------------------------- */

static void ready_push(struct crew__sched *s, struct crew__fiber *f)
{
    f->next = NULL;
    if (s->ready_tail != NULL)
        s->ready_tail->next = f;
    else
        s->ready_head = f;
    s->ready_tail = f;
}

static bool earlier(const struct crew__tent *a, const struct crew__tent *b)
{
    return a->wake_at < b->wake_at ||
           (a->wake_at == b->wake_at && a->seq < b->seq);
}

static int timer_push(struct crew__sched *s, struct crew__fiber *f,
                      int64_t when)
{
    struct crew__tent e = { when, s->tseq++, f, f->park_gen };
    size_t i;

    if (s->heap_len == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 256;
        struct crew__tent *h = crew__fault(CREW_FAULT_ALLOC)
                                   ? NULL
                                   : realloc(s->heap, cap * sizeof(*h));

        if (h == NULL)
            return CREW_ENOMEM;
        s->heap = h;
        s->heap_cap = cap;
    }
    i = s->heap_len++;
    while (i > 0 && earlier(&e, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
    return 0;
}

static struct crew__tent timer_pop(struct crew__sched *s)
{
    struct crew__tent top = s->heap[0];
    struct crew__tent last = s->heap[--s->heap_len];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= s->heap_len)
            break;
        if (c + 1 < s->heap_len && earlier(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!earlier(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->heap_len > 0)
        s->heap[i] = last;
    return top;
}

/*
 * Claim a parked fiber for waking: true for exactly one caller per park,
 * and false for a wake meant for another park (gen 0: whichever park it
 * is in).  seq_cst: the store in crew__fiber_park() and this exchange
 * order against the loads of the cancel flags each side makes after them
 * (see there).
 */
static bool claim(struct crew__fiber *f, unsigned gen)
{
    unsigned cur = atomic_load_explicit(&f->parked, memory_order_seq_cst);

    while (cur != 0 && (gen == 0 || cur == gen))
        if (atomic_compare_exchange_weak_explicit(&f->parked, &cur, 0,
                                                  memory_order_seq_cst,
                                                  memory_order_seq_cst))
            return true;
    return false;
}

/* Is the timer entry still for a park in progress?  Relaxed: a fiber
 * that moved to another thread has other numbers; one that is ours is
 * parked by this thread. */
static bool live_entry(const struct crew__tent *e)
{
    return atomic_load_explicit(&e->f->parked, memory_order_relaxed) ==
           e->gen;
}

/*
 * Entries whose park ended otherwise (a wake before the timeout) stay in
 * the heap until their time.  When they are most of it, drop them all at
 * once and rebuild the heap, so that many early wakes of long timeouts
 * cannot make it grow without bound.
 */
static void timer_compact(struct crew__sched *s)
{
    size_t n = 0;

    if (s->stale < 64 || s->stale < s->heap_len / 2)
        return;
    for (size_t i = 0; i < s->heap_len; i++)
        if (live_entry(&s->heap[i]))
            s->heap[n++] = s->heap[i];
    s->heap_len = n;
    s->stale = 0;
    for (size_t i = n / 2; i-- > 0;) {
        struct crew__tent e = s->heap[i];
        size_t j = i;

        for (;;) {
            size_t c = 2 * j + 1;

            if (c >= n)
                break;
            if (c + 1 < n && earlier(&s->heap[c + 1], &s->heap[c]))
                c++;
            if (!earlier(&s->heap[c], &e))
                break;
            s->heap[j] = s->heap[c];
            j = c;
        }
        s->heap[j] = e;
    }
}

/* Move every fiber whose time has come to the ready list.  An entry left
 * by an earlier park, or for a fiber something else woke, is dropped. */
static void fire_timers(struct crew__sched *s)
{
    int64_t now;

    if (s->heap_len == 0)
        return;
    now = crew__now_ns();
    while (s->heap_len > 0 && s->heap[0].wake_at <= now) {
        struct crew__tent e = timer_pop(s);

        if (claim(e.f, e.gen)) {
            e.f->timer_woke = true;
            ready_push(s, e.f);
        } else if (s->stale > 0) {
            s->stale--;
        }
    }
}

/* Take the fibers other threads woke, in the order they were woken. */
static bool take_inbox(struct crew__sched *s)
{
    struct crew__fiber *f, *rev = NULL;

    /* Relaxed first look: the exchange below is what synchronises. */
    if (atomic_load_explicit(&s->inbox, memory_order_relaxed) == NULL)
        return false;
    /* Acquire: pairs with the release in crew__fiber_deliver(), so what
     * the waker wrote before waking the fiber is visible to it. */
    f = atomic_exchange_explicit(&s->inbox, NULL, memory_order_acquire);
    while (f != NULL) {
        struct crew__fiber *next = f->wnext;

        f->wnext = rev;
        rev = f;
        f = next;
    }
    while (rev != NULL) {
        struct crew__fiber *next = rev->wnext;

        ready_push(s, rev);
        rev = next;
    }
    return true;
}

/* --- Parking and waking -------------------------------------------------- */

/* In the child of a fork(): this thread has no scheduler any more (the
 * parent's threads did not come along); whatever fiber it is on, it now
 * runs as a plain thread and never switches. */
void crew__fiber_forget(void)
{
    self_sched = NULL;
}

bool crew__in_fiber(void)
{
    return self_sched != NULL && self_sched->current != NULL;
}

void crew__fiber_yield(void)
{
    struct crew__sched *s = self_sched;

    ready_push(s, s->current);
    switch_to(s, NULL, false);
}

/*
 * Is the running task asked to stop: by crew_task_cancel() or by
 * crew_shutdown(NOW)?  seq_cst: see crew__fiber_park().
 */
static bool stop_asked(void)
{
    const struct crew__rec *t = crew__running;
    crew_t *pool = crew__self != NULL ? crew__self->pool : NULL;

    if (pool != NULL &&
        atomic_load_explicit(&pool->state, memory_order_seq_cst) ==
            CREW__CANCELLING)
        return true;
    return t != NULL && crew__is_future(t) &&
           atomic_load_explicit(
               &crew__future((struct crew__rec *)t)->cancel_requested,
               memory_order_seq_cst);
}

/*
 * Park the running fiber until something wakes it, or until `until`
 * (CLOCK_MONOTONIC ns; 0: no timer).  The caller has already made it
 * findable by whatever will wake it (a waiter list under `mu`, which is
 * held on entry and released here once the fiber counts as parked, so a
 * waker that takes `mu` next finds it parked; mu may be NULL).  With
 * `interruptible`, a cancel of the running task or shutdown NOW wakes it
 * too.  Returns with `mu` unlocked; the caller looks again at what it
 * waits for (a wake says only "look").
 *
 * The cancel race: the canceller stores its flag, then claims the fiber
 * (crew__fiber_cancel); the fiber stores parked = 1, then loads the flag.
 * All four are seq_cst, so one of them sees the other: either the
 * canceller's claim finds it parked, or the fiber sees the flag and
 * claims itself back.
 */
void crew__fiber_park(pthread_mutex_t *mu, int64_t until, bool interruptible)
{
    struct crew__sched *s = self_sched;
    struct crew__fiber *f = s->current;
    unsigned gen = crew__fiber_next_park();
    bool timed;

    f->park_gen = gen;
    f->timer_woke = false;
    atomic_store_explicit(&f->parked, gen, memory_order_seq_cst);
    if (mu != NULL)
        pthread_mutex_unlock(mu);
    timed = until > 0 && timer_push(s, f, until) == 0;
    if ((interruptible && stop_asked()) || (until > 0 && !timed)) {
        /* Asked to stop already, or no room for the timer: do not sleep,
         * just let the others run once (unless a waker claimed us first;
         * then its wake brings us back). */
        if (claim(f, gen))
            ready_push(s, f);
    } else if (interruptible) {
        f->pnext = s->parked;
        f->pprev = &s->parked;
        if (s->parked != NULL)
            s->parked->pprev = &f->pnext;
        s->parked = f;
    }
    switch_to(s, NULL, false);
    if (f->pprev != NULL) {
        *f->pprev = f->pnext;
        if (f->pnext != NULL)
            f->pnext->pprev = f->pprev;
        f->pprev = NULL;
    }
    if (timed && !f->timer_woke) {
        s->stale++;             /* its entry waits in the heap */
        timer_compact(s);
    }
}

/* The number the running fiber's next park will have (never 0). */
unsigned crew__fiber_next_park(void)
{
    unsigned gen = self_sched->current->park_gen + 1;

    return gen != 0 ? gen : 1;
}

/* Shutdown NOW: wake every fiber parked interruptibly (their waits end
 * with CREW_ECANCELED). */
static void wake_interruptible(struct crew__sched *s)
{
    for (struct crew__fiber *f = s->parked; f != NULL; f = f->pnext)
        if (claim(f, 0))
            ready_push(s, f);
}

/*
 * Put fibers that this thread claimed back on their threads' ready
 * lists: its own directly, others' through their inboxes, waking their
 * threads if they sleep.  `woken` is a list through wnext.
 */
void crew__fiber_deliver(struct crew__fiber *woken)
{
    while (woken != NULL) {
        struct crew__fiber *f = woken;
        struct crew__sched *home = f->home;
        crew_t *pool = home->pool;
        struct crew__fiber *old;

        woken = f->wnext;
        if (home == self_sched) {
            ready_push(home, f);
            continue;
        }
        /*
         * Once f is in the inbox it may run, finish, and its pool shut
         * down and go: hold a reference for the wake-up below.  The pool
         * is alive now, since f is parked in one of its tasks.  Relaxed:
         * a count, as for detached workers.
         */
        atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed);
        old = atomic_load_explicit(&home->inbox, memory_order_relaxed);
        do
            f->wnext = old;
        /* seq_cst: release for take_inbox(), and ordered before the load
         * of sched_sleepers below against crew__idle()'s increment and
         * inbox check (one side sees the other). */
        while (!atomic_compare_exchange_weak_explicit(
            &home->inbox, &old, f, memory_order_seq_cst,
            memory_order_relaxed));
        if (atomic_load_explicit(&pool->sched_sleepers,
                                 memory_order_seq_cst) > 0) {
            pthread_mutex_lock(&pool->lock);
            crew__wake_all_locked(pool);
            pthread_mutex_unlock(&pool->lock);
        }
        crew__pool_unref(pool);
    }
}

void crew__waiter_add(struct crew__waiter **q, struct crew__waiter *w)
{
    w->f = self_sched->current;
    w->gen = crew__fiber_next_park();
    w->next = *q;
    w->pprev = q;
    if (*q != NULL)
        (*q)->pprev = &w->next;
    *q = w;
}

void crew__waiter_remove(struct crew__waiter *w)
{
    if (w->pprev == NULL)
        return;                 /* a waker took it off already */
    *w->pprev = w->next;
    if (w->next != NULL)
        w->next->pprev = w->pprev;
    w->pprev = NULL;
}

/* Take every waiter off the list and claim its fiber; the caller delivers
 * the returned list after dropping the lock that guards q. */
struct crew__fiber *crew__waiters_take(struct crew__waiter **q)
{
    struct crew__fiber *woken = NULL;
    struct crew__waiter *w;

    while ((w = *q) != NULL) {
        *q = w->next;
        w->pprev = NULL;
        if (claim(w->f, w->gen)) {
            w->f->wnext = woken;
            woken = w->f;
        }
    }
    return woken;
}

/*
 * Wait on a list guarded by `mu` (held on entry and on return) until
 * woken or until `until` (0: none); see crew__fiber_park().
 */
void crew__fiber_wait_on(struct crew__waiter **q, pthread_mutex_t *mu,
                         int64_t until, bool interruptible)
{
    crew__fiber_wait_on_held(q, mu, until, interruptible, NULL);
}

/* The same, for a wait that holds a count under `mu` (`held`, counted by
 * the caller): if the fiber is lost, crew__fiber_thread_lost() drops it. */
void crew__fiber_wait_on_held(struct crew__waiter **q, pthread_mutex_t *mu,
                              int64_t until, bool interruptible,
                              unsigned *held)
{
    struct crew__fiber *f = self_sched->current;
    struct crew__waiter w;

    crew__waiter_add(q, &w);
    w.mu = mu;
    w.held = held;
    f->waiter = &w;
    crew__fiber_park(mu, until, interruptible);
    pthread_mutex_lock(mu);
    f->waiter = NULL;
    crew__waiter_remove(&w);
}

/*
 * The running task lets a cancel find its fiber while it waits
 * interruptibly (crew_sleep, crew_event_wait): `on` true before the
 * wait, false after.  Tasks without a future cannot be cancelled.
 */
void crew__fiber_cancelable(bool on)
{
    const struct crew__rec *r = crew__running;
    struct crew_task *t;

    if (r == NULL || !crew__is_future(r))
        return;
    t = crew__future((struct crew__rec *)r);
    pthread_mutex_lock(&t->mu);
    t->parked_fiber = on ? self_sched->current : NULL;
    pthread_mutex_unlock(&t->mu);
}

/* crew_task_cancel() of a running task: wake its fiber if it waits
 * interruptibly.  The cancel flag is stored (seq_cst) already. */
void crew__fiber_cancel(struct crew_task *t)
{
    struct crew__fiber *f;

    pthread_mutex_lock(&t->mu);
    f = t->parked_fiber;
    if (f != NULL && !claim(f, 0))
        f = NULL;
    pthread_mutex_unlock(&t->mu);
    /* Claimed, it stays parked (and alive) until delivered. */
    if (f != NULL) {
        f->wnext = NULL;
        crew__fiber_deliver(f);
    }
}

/*
 * Why a wait of the running task should end early: its attempt's
 * deadline has passed (CREW_ETIMEDOUT), or it was asked to stop, by
 * crew_task_cancel() or crew_shutdown(NOW) (CREW_ECANCELED).  Also sets
 * *deadline to the attempt's deadline (0: none).
 */
int crew__wait_interrupted(int64_t *deadline)
{
    const struct crew__rec *t = crew__running;

    *deadline = 0;
    if (t == NULL || crew__self == NULL)
        return 0;
    /* The running attempt's own deadline: its proxy's (a retry queued
     * meanwhile has its own).  Not for a task run inside it (helping). */
    if ((t->flags & CREW__F_POLICY) && crew__proxy != NULL &&
        crew__proxy->arg == (const void *)t)
        *deadline = ((const struct crew__attempt *)crew__proxy)->deadline;
    if (stop_asked())
        return CREW_ECANCELED;
    if (*deadline != 0 && crew__now_ns() >= *deadline)
        return CREW_ETIMEDOUT;
    return 0;
}

/* The longest a thread-mode wait goes without looking at the flags. */
#define SLEEP_SLICE_NS (10LL * 1000 * 1000)

int crew_sleep(int64_t ns)
{
    int64_t until, deadline;
    int rc;

    if (ns < 0)
        return CREW_EINVAL;
    until = crew__after_ns(ns);
    if ((rc = crew__wait_interrupted(&deadline)) != 0)
        return rc;
    if (deadline != 0 && deadline < until)
        until = deadline;       /* wake for the deadline, not after it */
    if (crew__in_fiber()) {
        crew__fiber_cancelable(true);
        /* A wake before `until` is a cancel or a shutdown (or, without
         * memory for the timer, a turn): look, and park again if not. */
        while (crew__now_ns() < until &&
               crew__wait_interrupted(&deadline) == 0)
            crew__fiber_park(NULL, until, true);
        crew__fiber_cancelable(false);
        return crew__wait_interrupted(&deadline);
    }
    /* On a thread: in slices, so a cancel or a shutdown ends it soon. */
    for (;;) {
        int64_t left = until - crew__now_ns();
        struct timespec ts;

        if (left <= 0 || (rc = crew__wait_interrupted(&deadline)) != 0)
            break;
        if (left > SLEEP_SLICE_NS && crew__running != NULL)
            left = SLEEP_SLICE_NS;
        ts.tv_sec = (time_t)(left / 1000000000);
        ts.tv_nsec = (long)(left % 1000000000);
        nanosleep(&ts, NULL);
    }
    return rc != 0 ? rc : crew__wait_interrupted(&deadline);
}

void crew_yield(void)
{
    if (crew__in_fiber())
        crew__fiber_yield();
    else
        sched_yield();
}

/* --- The scheduler ------------------------------------------------------ */

/* On a sched's on_cpu: the fiber running there is stuck (see Overtime). */
#define STUCK ((uintptr_t)1)

/* n places are held now: the most ever held (a statistic; relaxed). */
static void note_peak(crew_t *pool, unsigned n)
{
    unsigned peak = atomic_load_explicit(&pool->fibers_peak,
                                         memory_order_relaxed);

    while (n > peak && !atomic_compare_exchange_weak_explicit(
                           &pool->fibers_peak, &peak, n,
                           memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Reserve a place in the pool's fiber budget, if it has room. */
static bool budget_grab(crew_t *pool)
{
    /* seq_cst on the first load: see place_back().  Else relaxed: a
     * count; the task itself is handed over by the queue. */
    unsigned n = atomic_load_explicit(&pool->fibers_live,
                                      memory_order_seq_cst);

    while (n < atomic_load_explicit(&pool->fiber_max, memory_order_relaxed))
        if (atomic_compare_exchange_weak_explicit(&pool->fibers_live, &n,
                                                  n + 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            note_peak(pool, n + 1);
            return true;
        }
    return false;
}

/* A place for a new task: none while fibers back from waits wait for one
 * (they come first; relaxed, as a late look only delays one of them). */
static bool hand_places(crew_t *pool);

static bool budget_take(crew_t *pool)
{
    if (atomic_load_explicit(&pool->returners, memory_order_relaxed) > 0 &&
        hand_places(pool))
        return false;
    return budget_grab(pool);
}

/* Add w at the end of the place waiters.  Call with fiber_lock held. */
static void place_append(crew_t *pool, struct crew__waiter *w)
{
    w->next = NULL;
    w->pprev = pool->place_tail;
    *pool->place_tail = w;
    pool->place_tail = &w->next;
}

/* Take w off the place waiters.  Call with fiber_lock held. */
static void place_unlink(crew_t *pool, struct crew__waiter *w)
{
    if (w->pprev == NULL)
        return;                 /* taken off already */
    *w->pprev = w->next;
    if (w->next != NULL)
        w->next->pprev = w->pprev;
    else
        pool->place_tail = w->pprev;
    w->pprev = NULL;
    /* Relaxed: the increment is what place_back()'s pairing needs. */
    atomic_fetch_sub_explicit(&pool->returners, 1, memory_order_relaxed);
}

/*
 * Hand free places to the fibers waiting for one (place_back), oldest
 * first, while the budget has room; but not to one whose thread is stuck
 * in a timed-out task (it could not use the place until that returns: it
 * waits, and new tasks may have the place meanwhile).  Returns true if a
 * waiter that could run is left without a place.
 */
static bool hand_places(crew_t *pool)
{
    struct crew__fiber *woken = NULL;
    struct crew__waiter *w, *next;
    bool lost = false, left = false;

    pthread_mutex_lock(&pool->fiber_lock);
    for (w = pool->place_head; w != NULL; w = next) {
        next = w->next;
        /* Relaxed: a hint; the thread hands places out itself when it
         * is back (run_fiber). */
        if (atomic_load_explicit(&w->f->home->on_cpu, memory_order_relaxed) &
            STUCK)
            continue;
        if (!budget_grab(pool)) {
            left = true;
            break;
        }
        place_unlink(pool, w);
        if (claim(w->f, w->gen)) {
            w->placed = true;
            w->f->wnext = woken;
            woken = w->f;
        } else {
            /* Lost with its thread (crew__fiber_thread_lost claimed it):
             * the place is free again for the next.  Relaxed: a count. */
            atomic_fetch_sub_explicit(&pool->fibers_live, 1,
                                      memory_order_relaxed);
            lost = true;
        }
    }
    pthread_mutex_unlock(&pool->fiber_lock);
    crew__fiber_deliver(woken);
    if (lost)
        crew__pass_on(pool);
    return left;
}

/*
 * The running attempt of fiber f passed its deadline (overtime): if f
 * waits for a place, it need not any more (it takes none again): take it
 * off the list and return it claimed, for the caller to deliver, without
 * a place, so that its task's code can see the timeout and end.  Call
 * with the attempt's t->mu held, so that f is still running it.
 */
static struct crew__fiber *place_wait_end(crew_t *pool,
                                          struct crew__fiber *f)
{
    struct crew__waiter *w;
    bool woken = false;

    pthread_mutex_lock(&pool->fiber_lock);
    for (w = pool->place_head; w != NULL; w = w->next)
        if (w->f == f) {
            place_unlink(pool, w);
            woken = claim(f, w->gen);
            break;
        }
    pthread_mutex_unlock(&pool->fiber_lock);
    return woken ? f : NULL;
}

static void budget_give_n(crew_t *pool, unsigned k)
{
    unsigned n = atomic_fetch_sub_explicit(&pool->fibers_live, k,
                                           memory_order_seq_cst);
    unsigned max = atomic_load_explicit(&pool->fiber_max,
                                        memory_order_relaxed);

    /* A full budget may have left work queued that a sleeping thread
     * could not take: now one may (seq_cst pairs with idle's check). */
    if (n >= max && n - k < max)
        crew__pass_on(pool);
    /* A fiber back from a wait may wait for a place (seq_cst: see
     * place_back()). */
    if (atomic_load_explicit(&pool->returners, memory_order_seq_cst) > 0)
        (void)hand_places(pool);
    /* A crew_resize() may wait for the count to come down to a lowered
     * budget (seq_cst: see there). */
    if (atomic_load_explicit(&pool->resize_waiters, memory_order_seq_cst) >
            0 &&
        n - k <= max) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->done_cv);
        pthread_mutex_unlock(&pool->lock);
    }
}

static void budget_give(crew_t *pool)
{
    budget_give_n(pool, 1);
}

/* A place for a new task: a spare one, or one from the budget. */
static bool place_take(struct crew__sched *s)
{
    if (s->spare > 0 &&
        atomic_load_explicit(&s->pool->returners, memory_order_relaxed) >
            0) {
        /* Fibers back from waits come first: the places go to them. */
        budget_give_n(s->pool, s->spare);
        s->spare = 0;
        return false;
    }
    if (s->spare > 0) {
        /* Relaxed: after a lowered budget (crew_resize) a spare place
         * above it goes back instead of being used. */
        if (atomic_load_explicit(&s->pool->fibers_live,
                                 memory_order_relaxed) <=
            atomic_load_explicit(&s->pool->fiber_max, memory_order_relaxed)) {
            s->spare--;
            return true;
        }
        budget_give_n(s->pool, s->spare);
        s->spare = 0;
    }
    return budget_take(s->pool);
}

/*
 * A fiber that waits (for a future, a group or an event) gives its place
 * in the budget back meanwhile, so that what it waits for can be let in:
 * with every place held by waiters, their children would never start.
 * Back from the wait it needs a place again before its task goes on, and
 * waits for one if the budget is full (place_back), so max_workers bounds
 * the fibers running their tasks' code, as in thread mode (crew__reclaim).
 */
void crew__fiber_wait_begin(void)
{
    struct crew__fiber *f = self_sched->current;

    /* Relaxed where the timer cannot reach the fiber (no deadline: see
     * timed_end); else seq_cst, see crew__fiber_wait_end(). */
    if (f->timed == NULL) {
        if (atomic_load_explicit(&f->holds_place, memory_order_relaxed)) {
            atomic_store_explicit(&f->holds_place, false,
                                  memory_order_relaxed);
            budget_give(self_sched->pool);
        }
    } else if (atomic_exchange_explicit(&f->holds_place, false,
                                        memory_order_seq_cst)) {
        budget_give(self_sched->pool);
    }
}

/*
 * Take a place for the running fiber, back from a wait; if the budget is
 * full, park in the pool's list of place waiters until hand_places()
 * takes one for it.  Those waiters come before new tasks (budget_take),
 * so a stream of new tasks cannot keep a task that was already running
 * from going on.
 *
 * The lost wake-up: we count ourselves in `returners`, then look at
 * fibers_live; budget_give_n() lowers fibers_live, then looks at
 * `returners`.  All four are seq_cst, so either we see the place it gave
 * or it sees us and hands places out (and finds us on the list, which we
 * leave fiber_lock only once parked).
 */
static bool place_back(crew_t *pool, struct crew__fiber *f)
{
    struct crew__waiter w;
    bool placed;

    if (atomic_load_explicit(&pool->returners, memory_order_relaxed) == 0 &&
        budget_grab(pool))
        return true;
    pthread_mutex_lock(&pool->fiber_lock);
    atomic_fetch_add_explicit(&pool->returners, 1, memory_order_seq_cst);
    /* Past its deadline meanwhile: no place (seq_cst: the timer stores
     * overtime, then loads returners; we count ourselves, then load
     * overtime; so it finds us on the list, or we see it here). */
    placed = !atomic_load_explicit(&f->overtime, memory_order_seq_cst);
    if (!placed || budget_grab(pool)) {
        atomic_fetch_sub_explicit(&pool->returners, 1, memory_order_relaxed);
        pthread_mutex_unlock(&pool->fiber_lock);
        return placed;
    }
    w.f = f;
    w.gen = crew__fiber_next_park();
    w.mu = &pool->fiber_lock;
    w.held = NULL;
    w.placed = false;
    place_append(pool, &w);
    f->waiter = &w;
    /* Not interruptible, no timer: hand_places() wakes it with a place
     * taken for it, or its deadline without one (place_wait_end). */
    crew__fiber_park(&pool->fiber_lock, 0, false);
    f->waiter = NULL;
    pthread_mutex_lock(&pool->fiber_lock);
    placed = w.placed;
    pthread_mutex_unlock(&pool->fiber_lock);
    return placed;
}

/* The budget grew (crew_resize): places for the fibers waiting for one.
 * Under fiber_lock, which place_back() holds while it looks. */
void crew__fiber_budget_grown(crew_t *pool)
{
    (void)hand_places(pool);
}

void crew__fiber_wait_end(void)
{
    struct crew__fiber *f = self_sched->current;

    /* An overtime fiber takes no place again (see Overtime).  seq_cst:
     * we store holds_place and then load overtime; the timer stores
     * overtime and then exchanges holds_place; so either we see it and
     * give the place back, or its exchange takes the place. */
    if (atomic_load_explicit(&f->overtime, memory_order_seq_cst) ||
        !place_back(self_sched->pool, f))
        return;                 /* no place (see place_wait_end) */
    if (f->timed == NULL) {
        atomic_store_explicit(&f->holds_place, true, memory_order_relaxed);
        return;
    }
    atomic_store_explicit(&f->holds_place, true, memory_order_seq_cst);
    if (atomic_load_explicit(&f->overtime, memory_order_seq_cst) &&
        atomic_exchange_explicit(&f->holds_place, false,
                                 memory_order_seq_cst))
        budget_give(self_sched->pool);
}

bool crew__fiber_budget_left(crew_t *pool)
{
    return atomic_load_explicit(&pool->fibers_live, memory_order_seq_cst) <
           atomic_load_explicit(&pool->fiber_max, memory_order_relaxed);
}

/* --- Overtime ------------------------------------------------------------ */

/*
 * When the deadline of an attempt that runs on a fiber wins (the timer
 * calls crew__fiber_overtime through mark_overtime), the fiber is
 * overtime: it gives its place in the budget back at once, whatever it is
 * doing (running, parked, in a blocking call), and takes none again for
 * that task, so the budget admits another task.  If the fiber is running
 * on its thread at that moment, the thread is stuck (a loop that never
 * parks, a blocking call outside crew_blocking): it leaves the live count
 * (w->overtime, as a stuck worker in thread mode) and a spare thread
 * starts for queued work that no sleeping thread will take, within
 * max_overtime (crew__spawn_locked; submitters start one on demand too).
 * When the fiber switches out, the thread counts itself back in if there
 * is room; otherwise (a spare took its place) it is out: it admits no new
 * tasks, runs the fibers it has, which never move to another thread, and
 * leaves the pool when it has none (or comes back when room appears).
 * Fibers parked on a stuck thread wait for it.
 *
 * Which fiber runs an attempt: t->run_fiber, under t->mu, set by the
 * scheduler before a fresh fiber first runs the attempt and cleared when
 * crew__run returns (timed_begin, timed_end; the fiber holds a reference
 * on t meanwhile).  So the timer, holding t->mu, finds the fiber only
 * while it is inside the attempt.  Which fiber a thread runs: s->on_cpu,
 * the fiber's address while a fiber that has a deadline runs, else 0;
 * whoever marks the thread stuck ors STUCK into it by CAS.  A timer that
 * marks a fiber overtime as its thread switches to it: the timer stores
 * f->overtime, then CASes on_cpu from f; the thread stores on_cpu, then
 * loads f->overtime; all seq_cst, so one of them sees the other and marks
 * the thread (the CAS picks one).  Both mark under pool->lock, and the
 * thread, finding STUCK when it swaps on_cpu back to 0, takes pool->lock
 * to come back, so it always comes after the marking.  The timer holds
 * pool->lock from before it finds the fiber in t->run_fiber until it is
 * done with the scheduler: the thread cannot decide to leave meanwhile.
 *
 * Known limitations: only the attempt a fiber starts with is watched; an
 * attempt run inside it (a submit into a full queue runs the task at
 * once) is reported at its deadline but does not mark its thread, nor does
 * one that ran on a scheduler's own stack (no memory for a fiber).
 */

/* A fresh fiber is about to run task record r: if r is an attempt with a
 * deadline, and still the task's current one, name the fiber in it. */
static void timed_begin(struct crew__fiber *f, struct crew__rec *r)
{
    struct crew_task *t;
    uint64_t k, queued;

    if (!(r->flags & CREW__F_PROXY) ||
        ((const struct crew__attempt *)r)->deadline == 0)
        return;
    t = r->arg;
    /* The phase the attempt has while queued (attempt << 8 | PH); relaxed:
     * the proxy's fields came with it through the queue. */
    k = (uint64_t)atomic_load_explicit(&r->state, memory_order_relaxed);
    queued = k << 8 | CREW__PH_QUEUED;
    /* Relaxed: the proxy's reference keeps t alive until ours is taken;
     * the last decrement is acq_rel. */
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    pthread_mutex_lock(&t->mu);
    /* Not for a stale proxy (its attempt timed out or was cancelled while
     * queued): it must not hide the fiber of a later attempt.  Relaxed:
     * that attempt's fiber read the newer phase before it set run_fiber
     * under this lock. */
    if (atomic_load_explicit(&t->phase, memory_order_relaxed) == queued) {
        t->run_fiber = f;
        f->timed = t;
    }
    pthread_mutex_unlock(&t->mu);
    if (f->timed == NULL)
        crew__future_unref(t);
}

/* The fiber is done with its attempt: the timer no longer finds it.  So
 * while f->timed is NULL, the timer cannot touch the fiber. */
static void timed_end(struct crew__fiber *f)
{
    struct crew_task *t = f->timed;

    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    if (t->run_fiber == f)
        t->run_fiber = NULL;    /* else a later attempt's fiber */
    pthread_mutex_unlock(&t->mu);
    f->timed = NULL;
    crew__future_unref(t);
}

/*
 * Take the thread out of the live count: it is stuck in an overtime fiber
 * (spare: start a spare if work waits that no sleeper will take), or
 * shutdown found it with fibers left.  Call with pool->lock held.
 */
static void go_out_locked(crew_t *pool, struct crew__sched *s, bool spare)
{
    struct crew__worker *w = s->w;

    s->out = true;
    if (w->overtime)
        return;
    w->overtime = true;
    pool->overtime++;
    /* Relaxed: live changes only under pool->lock (see worker.c). */
    atomic_fetch_sub_explicit(&pool->live, 1, memory_order_relaxed);
    if (spare && crew__queued_hint(pool) > pool->sleepers - pool->tokens &&
        atomic_load_explicit(&pool->state, memory_order_relaxed) !=
            CREW__STOPPED)
        (void)crew__spawn_locked(pool);
    /* Shutdown waits for live to drop; threads that are out look for
     * room again (sleep_out). */
    pthread_cond_broadcast(&pool->done_cv);
    crew__wake_all_locked(pool);
}

/* Is there room for an out thread to count itself in again?  Not once
 * stopped: shutdown left it behind, or is about to.  Call with pool->lock
 * held. */
static bool room_locked(crew_t *pool, const struct crew__sched *s)
{
    return !s->w->detached &&
           atomic_load_explicit(&pool->state, memory_order_relaxed) !=
               CREW__STOPPED &&
           atomic_load_explicit(&pool->live, memory_order_relaxed) <
               atomic_load_explicit(&pool->max_target, memory_order_relaxed);
}

/* An out thread counts itself in again if there is room.  Returns true if
 * it is in the pool now. */
static bool come_back(struct crew__sched *s)
{
    crew_t *pool = s->pool;

    pthread_mutex_lock(&pool->lock);
    if (s->out && room_locked(pool, s)) {
        s->out = false;
        s->w->overtime = false;
        pool->overtime--;
        atomic_fetch_add_explicit(&pool->live, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&pool->lock);
    return !s->out;
}

/* Before switching to a fiber whose attempt has a deadline. */
static void timed_enter(struct crew__sched *s, struct crew__fiber *f)
{
    uintptr_t me = (uintptr_t)f;

    /* Places kept for the next admit would be held up if it got stuck. */
    if (s->spare > 0) {
        budget_give_n(s->pool, s->spare);
        s->spare = 0;
    }
    /* seq_cst: see the top of this section. */
    atomic_store_explicit(&s->on_cpu, me, memory_order_seq_cst);
    if (!atomic_load_explicit(&f->overtime, memory_order_seq_cst))
        return;
    /* Overtime already (the timer may have looked just before we stored
     * on_cpu): running it, this thread counts as stuck. */
    pthread_mutex_lock(&s->pool->lock);
    if (atomic_compare_exchange_strong_explicit(&s->on_cpu, &me, me | STUCK,
                                                memory_order_seq_cst,
                                                memory_order_seq_cst))
        go_out_locked(s->pool, s, true);
    pthread_mutex_unlock(&s->pool->lock);
}

void crew__fiber_overtime(crew_t *pool, struct crew_task *t)
{
    struct crew__fiber *f, *wake = NULL;
    struct crew__sched *s = NULL;
    bool give = false;

    pthread_mutex_lock(&pool->lock);
    pthread_mutex_lock(&t->mu);
    f = t->run_fiber;
    if (f != NULL) {
        uintptr_t me = (uintptr_t)f;

        /* seq_cst: see the top of this section and wait_end. */
        atomic_store_explicit(&f->overtime, true, memory_order_seq_cst);
        give = atomic_exchange_explicit(&f->holds_place, false,
                                        memory_order_seq_cst);
        if (atomic_compare_exchange_strong_explicit(
                &f->home->on_cpu, &me, me | STUCK, memory_order_seq_cst,
                memory_order_seq_cst))
            s = f->home;
        /* Parked for a place: not any more (see place_wait_end; seq_cst:
         * see place_back). */
        if (atomic_load_explicit(&pool->returners, memory_order_seq_cst) >
            0)
            wake = place_wait_end(pool, f);
    }
    pthread_mutex_unlock(&t->mu);
    if (s != NULL)
        go_out_locked(pool, s, true);
    pthread_mutex_unlock(&pool->lock);
    if (give)
        budget_give(pool);
    if (wake != NULL) {
        wake->wnext = NULL;
        crew__fiber_deliver(wake);
    }
}

/*
 * An out thread with nothing ready sleeps until a fiber of its own is due
 * or woken, the pool's state changes, or there is room to come back.  Not
 * in crew__idle: it is no worker waiting for work (and not counted live).
 * It waits on the same condition as the workers, though, where a
 * submitter signals one waiter for each wake token it hands out
 * (worker.c): a signal that woke us instead of a worker is passed on, by
 * a broadcast, to the workers still waiting, one of which takes the
 * token.
 */
static void sleep_out(struct crew__sched *s)
{
    crew_t *pool = s->pool;
    int64_t until = next_timer(s);
    struct timespec ts;
    int state;

    ts.tv_sec = (time_t)(until / 1000000000);
    ts.tv_nsec = (long)(until % 1000000000);
    pthread_mutex_lock(&pool->lock);
    state = atomic_load_explicit(&pool->state, memory_order_relaxed);
    /* seq_cst: as in crew__idle, against crew__fiber_deliver (it pushes,
     * then loads the count; we count, then load the inbox). */
    atomic_fetch_add_explicit(&pool->sched_sleepers, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&s->inbox, memory_order_seq_cst) == NULL &&
           atomic_load_explicit(&pool->state, memory_order_relaxed) ==
               state &&
           !room_locked(pool, s)) {
        int rc = until == 0
                     ? pthread_cond_wait(&pool->work_cv, &pool->lock)
                     : pthread_cond_timedwait(&pool->work_cv, &pool->lock,
                                              &ts);

        if (pool->tokens > 0)
            crew__wake_all_locked(pool);
        if (rc == ETIMEDOUT)
            break;
    }
    atomic_fetch_sub_explicit(&pool->sched_sleepers, 1, memory_order_relaxed);
    pthread_mutex_unlock(&pool->lock);
}

/* Run fiber f until it parks or its task returns. */
static void run_fiber(struct crew__sched *s, struct crew__fiber *f)
{
    bool timed = f->timed != NULL;

    if (timed)
        timed_enter(s, f);
    switch_to(s, f, false);
    /* seq_cst: see Overtime. */
    if (timed && (atomic_exchange_explicit(&s->on_cpu, 0,
                                           memory_order_seq_cst) &
                  STUCK)) {
        (void)come_back(s);
        /* Its fibers waiting for places were passed over meanwhile
         * (hand_places): they may have one now. */
        if (atomic_load_explicit(&s->pool->returners,
                                 memory_order_relaxed) > 0)
            (void)hand_places(s->pool);
    }
    if (f->done) {
        /* Relaxed: the timer no longer reaches the fiber (timed_end), and
         * what it did came before timed_end took t->mu. */
        bool had = atomic_load_explicit(&f->holds_place,
                                        memory_order_relaxed);

        atomic_store_explicit(&f->holds_place, false, memory_order_relaxed);
        f->done = false;
        atomic_store_explicit(&f->overtime, false, memory_order_relaxed);
        s->nfibers--;
        *f->aprev = f->anext;
        if (f->anext != NULL)
            f->anext->aprev = f->aprev;
        if (s->nfree < FREE_CAP) {
            f->next = s->free_list;
            s->free_list = f;
            s->nfree++;
        } else {
            pthread_mutex_lock(&s->pool->fiber_lock);
            f->next = s->pool->fiber_cache;
            s->pool->fiber_cache = f;
            pthread_mutex_unlock(&s->pool->fiber_lock);
        }
        if (had)
            s->spare++;         /* for admit(), or back after it */
    }
}

/* Take tasks while the budget allows; each runs on a fiber at once. */
static bool admit(struct crew__sched *s)
{
    bool any = false;

    /* At least 64, and as many as places fibers left this round. */
    for (int i = 0; i < 64 || s->spare > 0; i++) {
        struct crew__rec *t;
        struct crew__fiber *f;

        /* Relaxed peek: no place is taken (and shown in crew_stats) just
         * to look into an empty queue. */
        if (s->out || crew__queued_hint(s->pool) == 0 || !place_take(s))
            break;
        t = crew__take(s->pool);
        if (t == NULL || (f = fiber_get(s)) == NULL) {
            if (t != NULL) {
                /* No stack for it: run it on this thread's own stack. */
                crew__run(s->pool, t, s->w->id);
                any = true;
            }
            s->spare++;
            break;
        }
        f->task = t;
        f->worker_id = s->w->id;
        atomic_store_explicit(&f->holds_place, true, memory_order_relaxed);
        timed_begin(f, t);
        f->anext = s->all;
        f->aprev = &s->all;
        if (s->all != NULL)
            s->all->aprev = &f->anext;
        s->all = f;
        s->nfibers++;
        any = true;
        /* As a thread-mode worker does before it runs a task: if more
         * work waits and a thread sleeps, wake one now; this fiber may
         * keep the thread (a blocking call, a long computation), and the
         * wake-up this thread took must not end with it. */
        crew__pass_on(s->pool);
        run_fiber(s, f);
    }
    return any;
}

/*
 * The thread is ending inside a task on one of its fibers (pthread_exit in
 * the task or a callback; called from the worker's cleanup handler, after
 * the running task was reported CREW_EEXIT).  Every other fiber of the
 * thread is lost with it: each is taken off whatever it waits on, so that
 * nothing wakes it any more, and its task is reported CREW_EEXIT, so that
 * nobody waits for it forever.  Budget places go back.  The stacks are
 * never reused (a blocking call may still write to one; they are unmapped
 * with the pool), and the scheduler stays until the pool goes, as a waker
 * that claimed a fiber just before may still push it on the inbox.
 */
void crew__fiber_thread_lost(crew_t *pool)
{
    struct crew__sched *s = self_sched;
    struct crew__fiber *f, *cur;

    if (s == NULL)
        return;
    cur = s->current;
    self_sched = NULL;          /* callbacks below run as on a thread */
    /* Places kept for the next admit, which will never come. */
    if (s->spare > 0) {
        budget_give_n(pool, s->spare);
        s->spare = 0;
    }
    for (f = s->all; f != NULL; f = f->anext) {
        struct crew__waiter *w = f->waiter;
        const struct crew__rec *r = f == cur ? NULL : f->saved_running;

        (void)claim(f, 0);      /* no wake can take it any more */
        if (w != NULL) {
            bool give = false;

            pthread_mutex_lock(w->mu);
            if (w->mu == &pool->fiber_lock) {
                /* Waiting for a place, or handed one it never took up. */
                give = w->pprev == NULL && w->placed;
                place_unlink(pool, w);
            } else {
                crew__waiter_remove(w);
            }
            if (w->held != NULL)
                (*w->held)--;   /* its wait will never end */
            pthread_mutex_unlock(w->mu);
            if (give)
                budget_give(pool);
        }
        if (r != NULL && crew__is_future(r)) {
            struct crew_task *t = crew__future((struct crew__rec *)r);

            pthread_mutex_lock(&t->mu);
            if (t->parked_fiber == f)
                t->parked_fiber = NULL;
            pthread_mutex_unlock(&t->mu);
        }
        if (atomic_exchange_explicit(&f->holds_place, false,
                                     memory_order_relaxed))
            budget_give(pool);
        if (r != NULL) {
            crew__running = r;
            crew__proxy = f->saved_proxy;
            crew__abandon(pool, (struct crew__rec *)r, f->saved_proxy);
        }
        timed_end(f);           /* the timer must not find it any more */
    }
    crew__running = NULL;
    crew__proxy = NULL;
    pthread_mutex_lock(&pool->fiber_lock);
    while ((f = s->all) != NULL) {
        s->all = f->anext;
        f->next = pool->fiber_dead;
        pool->fiber_dead = f;
    }
    while ((f = s->free_list) != NULL) {
        s->free_list = f->next;
        f->next = pool->fiber_cache;
        pool->fiber_cache = f;
    }
    if (s->on_heap) {
        s->next_dead = pool->dead_scheds;
        pool->dead_scheds = s;
    }
    pthread_mutex_unlock(&pool->fiber_lock);
    free(s->heap);
    s->heap = NULL;
    /* The thread's exit goes on from here to its own stack (glibc jumps
     * back to where the thread began): tell the sanitizers, which still
     * think it is on this fiber. */
#ifdef CREW__ASAN
    __sanitizer_start_switch_fiber(NULL, s->stack_bottom, s->stack_size);
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
    /* The frames the jump abandons there keep their redzones. */
    __asan_unpoison_memory_region(s->stack_bottom, s->stack_size);
#endif
#ifdef CREW__TSAN
    __tsan_switch_to_fiber(s->tsan_fiber, 0);
#endif
}

/* The deadline of the nearest parked fiber, or 0. */
static int64_t next_timer(const struct crew__sched *s)
{
    return s->heap_len > 0 ? s->heap[0].wake_at : 0;
}

/* At crew_free: unmap the fibers threads left in the shared list, and
 * those of lost threads. */
void crew__fiber_cache_free(crew_t *pool)
{
    struct crew__fiber *f;
    struct crew__sched *s;

    while ((f = pool->fiber_cache) != NULL) {
        pool->fiber_cache = f->next;
        fiber_destroy(f);
    }
    while ((f = pool->fiber_dead) != NULL) {
        pool->fiber_dead = f->next;
        fiber_destroy(f);
    }
    while ((s = pool->dead_scheds) != NULL) {
        pool->dead_scheds = s->next_dead;
        free(s);
    }
}

void crew__sched_loop(crew_t *pool, struct crew__worker *w)
{
    /* On the heap, not this stack: if the thread is lost in a task
     * (pthread_exit), wakers may still reach its inbox, so it then stays
     * until the pool goes (crew__fiber_thread_lost). */
    struct crew__sched local, *sp = crew__calloc(1, sizeof(*sp));
    struct crew__fiber *f;

    if (sp == NULL) {
        /* No memory: this stack will do, but cannot outlive the thread
         * (a lost thread's late wakers are then a risk; see above). */
        memset(&local, 0, sizeof(local));
        sp = &local;
    } else {
        sp->on_heap = true;
    }
#define s (*sp)
    s.pool = pool;
    s.w = w;
    atomic_init(&s.inbox, NULL);
    atomic_init(&s.on_cpu, 0);
#ifdef CREW__TSAN
    s.tsan_fiber = __tsan_get_current_fiber();
#endif
    self_sched = &s;
    for (;;) {
        bool worked = false;

        take_inbox(&s);
        fire_timers(&s);
        if (atomic_load_explicit(&pool->state, memory_order_relaxed) ==
            CREW__CANCELLING)
            wake_interruptible(&s);
        /* One round over the fibers ready now; those that yield go to the
         * next round, after new tasks had their chance. */
        f = s.ready_head;
        s.ready_head = s.ready_tail = NULL;
        while (f != NULL) {
            struct crew__fiber *next = f->next;

            run_fiber(&s, f);
            worked = true;
            f = next;
        }
        if (admit(&s))
            worked = true;
        if (s.spare > 0) {
            budget_give_n(pool, s.spare);
            s.spare = 0;
        }
        if (worked || s.ready_head != NULL)
            continue;
        if (s.out) {
            /* Out of the live count (see Overtime): back in if there is
             * room; else finish the fibers it has, then leave. */
            if (come_back(&s))
                continue;
            if (s.nfibers == 0)
                break;
            sleep_out(&s);
            continue;
        }
        /* Stopped with fibers left: tasks that timed out while parked
         * and have not returned.  Nothing waits for them: out, and left
         * behind, as a stuck thread is. */
        if (s.nfibers > 0 &&
            atomic_load_explicit(&pool->state, memory_order_relaxed) ==
                CREW__STOPPED) {
            pthread_mutex_lock(&pool->lock);
            go_out_locked(pool, &s, false);
            pthread_mutex_unlock(&pool->lock);
            continue;
        }
        /* Nothing ready: sleep until the nearest timer, new work or a
         * fiber woken from elsewhere.  With fibers parked, never leave
         * the pool (they must be resumed). */
        if (!crew__idle(pool, next_timer(&s), s.nfibers > 0, &s.inbox) &&
            s.nfibers == 0)
            break;
    }
    /* The stacks go to the pool's list, not back to the system: another
     * thread's timer heap may still hold an entry naming one of them
     * (crew_free unmaps them all, once every thread is gone). */
    if (s.free_list != NULL) {
        struct crew__fiber *last = s.free_list;

        while (last->next != NULL)
            last = last->next;
        pthread_mutex_lock(&pool->fiber_lock);
        last->next = pool->fiber_cache;
        pool->fiber_cache = s.free_list;
        pthread_mutex_unlock(&pool->fiber_lock);
    }
    free(s.heap);
    self_sched = NULL;
#undef s
    if (sp->on_heap)
        free(sp);
}
