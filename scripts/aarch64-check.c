/*
 * aarch64-check.c - fiber mode on the CPU it runs on, checked hard: that
 * a fiber switch keeps every callee-saved register, and that the waits
 * and endings of fiber mode work there.  scripts/aarch64.sh builds it for
 * AArch64 and runs it under qemu-aarch64; it builds and runs on x86-64
 * too (all but the register probe, which is AArch64 assembly).
 *
 * Each check prints "ok" or "FAIL" and why; the last line says
 * "checks: N passed, N failed".  Exits 0 only if none failed.
 *
 *   asm_switch    (AArch64) the library has the assembly switch: this
 *                 program links against crew__fiber_switch, which the
 *                 ucontext build does not have
 *   switch        (AArch64) x19-x28, d8-d15, the frame pointer and sp
 *                 survive crew__fiber_switch between two contexts, each
 *                 with its own values in them (a probe in assembly loads
 *                 them, switches, compares)
 *   regs          (AArch64) x19-x28, d8-d15, the frame pointer and sp
 *                 hold known values (a different set in every fiber and
 *                 round) across crew_yield, crew_sleep, crew_blocking and
 *                 waits for a future, an event and a group; a probe in
 *                 assembly loads them, calls the wait, compares
 *   live_values   2,000 fibers each keep 12 doubles and 12 integers live
 *                 across 40 waits of every kind, and end with the same
 *                 bits as the same function run serially
 *   many          10,000 fibers on 2 threads sleep and yield; each checks
 *                 its errno and frame alignment across the switches and
 *                 formats a double (the varargs save area)
 *   forkjoin      fib(14) as a tree of tasks waiting on futures, with a
 *                 budget of 4 fibers (waits park and give places back)
 *   groups_events 100 parents each wait for a group of 8 children; 1,000
 *                 fibers wait for one event that the main thread sets
 *   blocking      300 crew_blocking calls: result and errno come back to
 *                 the fiber, which parked meanwhile
 *   shutdown_now  400 fibers in crew_event_wait, 400 in crew_sleep(60 s)
 *                 (a full budget) and 300 queued: shutdown NOW ends the
 *                 waits at once (CREW_ECANCELED) and cancels the queued
 *                 tasks
 *   deadline      a fiber that blocks its thread past its deadline is
 *                 reported CREW_ETIMEDOUT at the deadline while another
 *                 thread runs the other tasks; a fiber parked in a long
 *                 sleep is woken at its deadline
 *   pthread_exit  a fiber's task that calls pthread_exit is reported
 *                 CREW_EEXIT (glibc unwinds the fiber's stack: its walk
 *                 must end at the fiber's first frame) and the pool goes on
 */
#define _GNU_SOURCE
#include <crew.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS (1000 * 1000LL)
#define SEC (1000 * MS)

static int passed, failed;
static crew_t *g_pool;          /* the pool the current check uses */

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            printf("  %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            printf(__VA_ARGS__);                                          \
            printf("\n");                                                 \
            return false;                                                 \
        }                                                                 \
    } while (0)

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

/* Wait (polling, with a deadline) until *n reaches want. */
static bool reach(atomic_long *n, long want, int64_t within)
{
    int64_t end = now_ns() + within;
    struct timespec ts = { 0, 1 * MS };

    while (atomic_load(n) < want) {
        if (now_ns() > end)
            return false;
        nanosleep(&ts, NULL);
    }
    return true;
}

static crew_t *fiber_pool(unsigned threads, unsigned budget)
{
    crew_opts_t o = { .fibers = true, .threads = threads,
                      .max_workers = budget };
    crew_t *pool = NULL;

    return crew_create(&pool, &o) == 0 ? pool : NULL;
}

/* --- Waits of every kind, for the probe and the live values ---------- */

static int yield_task(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    crew_yield();
    *result = arg;
    return 0;
}

static void *blocking_fn(void *arg)
{
    struct timespec ts = { 0, 200 * 1000 };

    nanosleep(&ts, NULL);       /* blocks a blocking thread, not ours */
    return arg;
}

static int set_task(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)result;
    crew_sleep(100 * 1000);
    return crew_event_set(arg);
}

static void wait_yield(void)
{
    crew_yield();
}

static void wait_sleep0(void)
{
    crew_sleep(0);
}

static void wait_sleep(void)
{
    crew_sleep(300 * 1000);
}

static void wait_blocking(void)
{
    crew_blocking(blocking_fn, NULL);
}

static void wait_future(void)
{
    crew_task_t *t;

    if (crew_spawn(g_pool, yield_task, NULL, NULL, &t) == 0) {
        crew_task_wait(t, NULL);
        crew_task_release(t);
    }
}

static void wait_event(void)
{
    crew_event_t *e;
    crew_task_t *t;

    if (crew_event_create(&e) != 0)
        return;
    if (crew_spawn(g_pool, set_task, e, NULL, &t) == 0) {
        crew_event_wait(e);
        crew_task_wait(t, NULL);    /* the setter is done with e */
        crew_task_release(t);
    }
    crew_event_free(e);
}

static void wait_group(void)
{
    crew_group_t *g;
    crew_task_opts_t in = { 0 };

    if (crew_group_create(g_pool, NULL, &g) != 0)
        return;
    in.group = g;
    for (int i = 0; i < 3; i++)
        crew_spawn(g_pool, yield_task, NULL, &in, NULL);
    crew_group_wait(g);
    crew_group_free(g);
}

static void (*const waits[])(void) = {
    wait_yield, wait_sleep0, wait_yield, wait_sleep, wait_yield,
    wait_blocking, wait_future, wait_event, wait_group,
};
#define NWAITS (sizeof(waits) / sizeof(waits[0]))

static void wait_none(void)
{
}

/* --- The register probe (AArch64) ------------------------------------ */

#if defined(__aarch64__)
/*
 * uint64_t regs_probe(uint64_t seed, void (*fn)(void)): save what the ABI
 * says we must, load x19-x28 with seed+1..seed+10 and d8-d15 with the bits
 * seed+11..seed+18, set the frame pointer to sp, call fn, and return a
 * mask of what changed: bit k for x(19+k), bit 10+k for d(8+k), bit 18
 * for sp != fp.  Only the low 64 bits of v8-v15 are callee-saved.
 *
 * uint64_t regs_switch(uint64_t seed, void **save, void *to): the same
 * around crew__fiber_switch(save, to) itself, with no compiled code in
 * between whose own saves could hide a register the switch forgot.
 */
#define PROBE_ENTER                                                      \
    ".cfi_startproc\n"                                                   \
    "    stp x29, x30, [sp, #-176]!\n"                                   \
    ".cfi_def_cfa_offset 176\n"                                          \
    ".cfi_offset x29, -176\n"                                            \
    ".cfi_offset x30, -168\n"                                            \
    "    mov x29, sp\n"                                                  \
    "    stp x19, x20, [sp, #16]\n"                                      \
    "    stp x21, x22, [sp, #32]\n"                                      \
    "    stp x23, x24, [sp, #48]\n"                                      \
    "    stp x25, x26, [sp, #64]\n"                                      \
    "    stp x27, x28, [sp, #80]\n"                                      \
    "    stp d8, d9, [sp, #96]\n"                                        \
    "    stp d10, d11, [sp, #112]\n"                                     \
    "    stp d12, d13, [sp, #128]\n"                                     \
    "    stp d14, d15, [sp, #144]\n"                                     \
    "    str x0, [sp, #160]\n"                                           \
    "    add x19, x0, #1\n"                                              \
    "    add x20, x0, #2\n"                                              \
    "    add x21, x0, #3\n"                                              \
    "    add x22, x0, #4\n"                                              \
    "    add x23, x0, #5\n"                                              \
    "    add x24, x0, #6\n"                                              \
    "    add x25, x0, #7\n"                                              \
    "    add x26, x0, #8\n"                                              \
    "    add x27, x0, #9\n"                                              \
    "    add x28, x0, #10\n"                                             \
    "    add x9, x0, #11\n    fmov d8, x9\n"                             \
    "    add x9, x0, #12\n    fmov d9, x9\n"                             \
    "    add x9, x0, #13\n    fmov d10, x9\n"                            \
    "    add x9, x0, #14\n    fmov d11, x9\n"                            \
    "    add x9, x0, #15\n    fmov d12, x9\n"                            \
    "    add x9, x0, #16\n    fmov d13, x9\n"                            \
    "    add x9, x0, #17\n    fmov d14, x9\n"                            \
    "    add x9, x0, #18\n    fmov d15, x9\n"
#define PROBE_X(n, reg)                                                  \
    "    add x10, x9, #" #n "\n    cmp " reg ", x10\n"                    \
    "    cset x11, ne\n    orr x0, x0, x11, lsl #" #n "-1\n"
#define PROBE_D(n, reg)                                                  \
    "    add x10, x9, #" #n "\n    fmov x12, " reg "\n"                   \
    "    cmp x12, x10\n    cset x11, ne\n"                                \
    "    orr x0, x0, x11, lsl #" #n "-1\n"
#define PROBE_LEAVE                                                      \
    "    mov x0, #0\n"                                                   \
    "    mov x12, sp\n"                                                  \
    "    cmp x12, x29\n"                                                 \
    "    cset x11, ne\n"                                                 \
    "    orr x0, x0, x11, lsl #18\n"                                     \
    "    ldr x9, [sp, #160]\n"                                           \
    PROBE_X(1, "x19") PROBE_X(2, "x20") PROBE_X(3, "x21")                \
    PROBE_X(4, "x22") PROBE_X(5, "x23") PROBE_X(6, "x24")                \
    PROBE_X(7, "x25") PROBE_X(8, "x26") PROBE_X(9, "x27")                \
    PROBE_X(10, "x28")                                                   \
    PROBE_D(11, "d8") PROBE_D(12, "d9") PROBE_D(13, "d10")               \
    PROBE_D(14, "d11") PROBE_D(15, "d12") PROBE_D(16, "d13")             \
    PROBE_D(17, "d14") PROBE_D(18, "d15")                                \
    "    ldp x19, x20, [sp, #16]\n"                                      \
    "    ldp x21, x22, [sp, #32]\n"                                      \
    "    ldp x23, x24, [sp, #48]\n"                                      \
    "    ldp x25, x26, [sp, #64]\n"                                      \
    "    ldp x27, x28, [sp, #80]\n"                                      \
    "    ldp d8, d9, [sp, #96]\n"                                        \
    "    ldp d10, d11, [sp, #112]\n"                                     \
    "    ldp d12, d13, [sp, #128]\n"                                     \
    "    ldp d14, d15, [sp, #144]\n"                                     \
    "    ldp x29, x30, [sp], #176\n"                                     \
    ".cfi_def_cfa_offset 0\n"                                            \
    "    ret\n"                                                          \
    ".cfi_endproc\n"
__asm__(".text\n"
        ".p2align 2\n"
        ".globl regs_probe\n"
        ".hidden regs_probe\n"
        ".type regs_probe,%function\n"
        "regs_probe:\n"
        PROBE_ENTER
        "    blr x1\n"
        PROBE_LEAVE
        ".size regs_probe, .-regs_probe\n"
        ".p2align 2\n"
        ".globl regs_switch\n"
        ".hidden regs_switch\n"
        ".type regs_switch,%function\n"
        "regs_switch:\n"
        PROBE_ENTER
        "    mov x0, x1\n"
        "    mov x1, x2\n"
        "    bl crew__fiber_switch\n"
        PROBE_LEAVE
        ".size regs_switch, .-regs_switch\n");
uint64_t regs_probe(uint64_t seed, void (*fn)(void));
uint64_t regs_switch(uint64_t seed, void **save, void *to);

/* Only the assembly path defines it (src/fiber.c): linking proves it. */
void crew__fiber_switch(void **save, void *to);

static const char *const reg_names[] = {
    "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28",
    "d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15", "sp/fp",
};

static atomic_ulong probe_bad;  /* union of the masks */
static atomic_long probe_calls;

enum { PROBE_FIBERS = 64, PROBE_ROUNDS = 60 };

static int probe_task(crew_ctx_t *ctx, void *arg, void **result)
{
    uint64_t me = (uint64_t)(uintptr_t)arg;

    (void)ctx;
    (void)result;
    for (uint64_t r = 0; r < PROBE_ROUNDS; r++) {
        /* Seeds differ in every fiber and round; +1..+18 stays in the
         * low byte. */
        uint64_t seed = (me + 1) << 40 | r << 8;
        uint64_t bad = regs_probe(seed, waits[(me + r) % NWAITS]);

        if (bad != 0)
            atomic_fetch_or(&probe_bad, bad);
        atomic_fetch_add(&probe_calls, 1);
    }
    return 0;
}

static bool check_asm_switch(void)
{
    void (*volatile sw)(void **, void *) = crew__fiber_switch;

    CHECK(sw != NULL, "no crew__fiber_switch");
    return true;
}

/*
 * The switch alone: the main context and a side context on a stack of
 * our own switch back and forth, each with its own values in every
 * register.  The side stack is laid out as fiber_init (src/fiber.c) lays
 * out a fiber's: 176 bytes of saved registers, x30 (slot 11) the address
 * the first switch returns to.
 */
enum { DIRECT_ROUNDS = 2000 };
static void *main_sp, *side_sp;
static uint64_t side_bad;

static void side_entry(void)
{
    for (uint64_t r = 0;; r++)
        side_bad |= regs_switch(0x5e00000000ull | r << 8, &side_sp, main_sp);
}

static bool check_switch(void)
{
    size_t size = 64 * 1024;
    char *stack = aligned_alloc(16, size);
    void **sp;
    uint64_t bad = 0;

    CHECK(stack != NULL, "no memory");
    sp = (void **)(stack + size) - 176 / sizeof(void *);
    memset(sp, 0, 176);
    sp[11] = (void *)(uintptr_t)side_entry;
    side_sp = sp;
    for (uint64_t r = 0; r < DIRECT_ROUNDS; r++)
        bad |= regs_switch(0xa100000000ull | r << 8, &main_sp, side_sp);
    free(stack);                /* the side context is never resumed */
    for (int k = 0; k < 19; k++)
        if ((bad | side_bad) & 1ul << k)
            printf("  %s changed across crew__fiber_switch\n",
                   reg_names[k]);
    CHECK(bad == 0 && side_bad == 0, "main %#lx, side %#lx",
          (unsigned long)bad, (unsigned long)side_bad);
    return true;
}

static bool check_regs(void)
{
    unsigned long bad;

    /* The probe itself, outside any fiber (a plain call). */
    CHECK(regs_probe(0x1234500, wait_none) == 0, "probe broken");
    g_pool = fiber_pool(2, PROBE_FIBERS * 8);
    CHECK(g_pool != NULL, "no pool");
    for (long i = 0; i < PROBE_FIBERS; i++)
        CHECK(crew_submit(g_pool, probe_task, (void *)(intptr_t)i) == 0,
              "submit");
    CHECK(crew_wait(g_pool) == 0, "wait");
    CHECK(crew_free(g_pool) == 0, "free");
    bad = atomic_load(&probe_bad);
    for (int k = 0; k < 19; k++)
        if (bad & 1ul << k)
            printf("  %s changed across a switch\n", reg_names[k]);
    CHECK(bad == 0, "mask %#lx", bad);
    CHECK(atomic_load(&probe_calls) == PROBE_FIBERS * PROBE_ROUNDS,
          "%ld probes", atomic_load(&probe_calls));
    return true;
}
#endif

/* --- Live values across waits ---------------------------------------- */

typedef void (*wait_fn)(void);

/* Twelve doubles and twelve integers, all live across every wait. */
static uint64_t live_work(uint64_t seed, unsigned rounds, unsigned kinds,
                          wait_fn const *w)
{
    double a = (double)(seed % 97) + 0.5, b = a * 1.25, c = a - 3.0,
           d = a / 7.0, e = 1.0 / (a + 1.0), f = a * a, g = 2.0 - a,
           h = a * 0.001, i = a + 100.0, j = -a, k = a * 3.0, l = 0.125;
    uint64_t m = seed, n = seed * 3 + 1, o = seed ^ 0x5555, p = ~seed,
             q = seed << 7, r = seed >> 3, s = seed * seed, t = seed + 99,
             u = seed | 0xf0f0, v = seed * 17, x = seed ^ 0xabcdef, y = 7;

    for (unsigned z = 0; z < rounds; z++) {
        a = a * 0.75 + b * 0.25;
        b = b * 0.5 + c * 0.5 + 1e-3;
        c = c * 0.9 + d * 0.1;
        d = d * 0.8 + e * 0.2 + (double)z;
        e = e * 0.6 + f * 1e-4;
        f = f * 0.5 + g * 0.5;
        g = g * 0.7 + h * 0.3;
        h = h * 0.95 + i * 0.05;
        i = i * 0.99 + j * 0.01;
        j = j * 0.85 + k * 0.15;
        k = k * 0.65 + l * 0.35;
        l = l * 0.55 + a * 0.45;
        m = m * 6364136223846793005ull + n;
        n = n * 2862933555777941757ull + o;
        o ^= p >> 5;
        p += q * 3;
        q ^= r << 11;
        r += s >> 13;
        s = s * 31 + t;
        t ^= u * 7;
        u += v >> 2;
        v = v * 5 + x;
        x ^= y << 3;
        y = y * 9 + m;
        w[(seed + z) % kinds]();
    }
    {
        double dv[12] = { a, b, c, d, e, f, g, h, i, j, k, l };
        uint64_t hsh = m ^ n ^ o ^ p ^ q ^ r ^ s ^ t ^ u ^ v ^ x ^ y;

        for (int z = 0; z < 12; z++) {
            uint64_t bits;

            memcpy(&bits, &dv[z], sizeof(bits));
            hsh = hsh * 1099511628211ull ^ bits;
        }
        return hsh;
    }
}

enum { LIVE_TASKS = 2000, LIVE_ROUNDS = 40 };
static uint64_t live_want[LIVE_TASKS];
static atomic_long live_bad;

static int live_task(crew_ctx_t *ctx, void *arg, void **result)
{
    long i = (long)(intptr_t)arg;

    (void)ctx;
    (void)result;
    if (live_work((uint64_t)i, LIVE_ROUNDS, NWAITS, waits) != live_want[i])
        atomic_fetch_add(&live_bad, 1);
    return 0;
}

static bool check_live_values(void)
{
    static wait_fn const none[] = { wait_none };

    for (long i = 0; i < LIVE_TASKS; i++)
        live_want[i] = live_work((uint64_t)i, LIVE_ROUNDS, 1, none);
    g_pool = fiber_pool(2, LIVE_TASKS);
    CHECK(g_pool != NULL, "no pool");
    for (long i = 0; i < LIVE_TASKS; i++)
        CHECK(crew_submit(g_pool, live_task, (void *)(intptr_t)i) == 0,
              "submit");
    CHECK(crew_wait(g_pool) == 0, "wait");
    CHECK(crew_free(g_pool) == 0, "free");
    CHECK(atomic_load(&live_bad) == 0, "%ld of %d tasks differ",
          atomic_load(&live_bad), LIVE_TASKS);
    return true;
}

/* --- Many fibers ------------------------------------------------------ */

enum { MANY = 10000 };
static atomic_long many_done, many_bad;

static int many_task(crew_ctx_t *ctx, void *arg, void **result)
{
    long i = (long)(intptr_t)arg;
    char buf[32];

    (void)ctx;
    (void)result;
    for (int r = 0; r < 3; r++) {
        errno = (int)(i % 1000) + r + 1;
        if (crew_sleep(2 * MS) != 0)
            atomic_fetch_add(&many_bad, 1);
        crew_yield();
        if (errno != (int)(i % 1000) + r + 1)
            atomic_fetch_add(&many_bad, 1);
#if defined(__aarch64__) || defined(__x86_64__)
        /* The frame pointer is 16-aligned on both ABIs. */
        if ((uintptr_t)__builtin_frame_address(0) % 16 != 0)
            atomic_fetch_add(&many_bad, 1);
#endif
    }
    snprintf(buf, sizeof(buf), "%.3f", (double)i / 8.0);
    if (strtod(buf, NULL) != (double)i / 8.0)
        atomic_fetch_add(&many_bad, 1);
    atomic_fetch_add(&many_done, 1);
    return 0;
}

static bool check_many(void)
{
    crew_opts_t o = { .fibers = true, .threads = 2, .max_workers = MANY,
                      .fiber_stack_size = 32 * 1024 };
    crew_t *pool;
    crew_stats_t st;

    CHECK(crew_create(&pool, &o) == 0, "create");
    for (long i = 0; i < MANY; i++)
        CHECK(crew_submit(pool, many_task, (void *)(intptr_t)i) == 0,
              "submit");
    CHECK(crew_wait(pool) == 0, "wait");
    crew_stats(pool, &st);
    CHECK(crew_free(pool) == 0, "free");
    CHECK(atomic_load(&many_done) == MANY, "%ld done",
          atomic_load(&many_done));
    CHECK(atomic_load(&many_bad) == 0, "%ld bad", atomic_load(&many_bad));
    CHECK(st.completed == MANY && st.threads <= 2,
          "completed %llu, threads %u", (unsigned long long)st.completed,
          st.threads);
    return true;
}

/* --- Fork-join on futures ---------------------------------------------- */

static int fib_task(crew_ctx_t *ctx, void *arg, void **result)
{
    long n = (long)(intptr_t)arg;
    crew_task_t *a, *b;
    void *ra = NULL, *rb = NULL;
    int rc;

    if (n < 2) {
        *result = (void *)(intptr_t)n;
        return 0;
    }
    if ((rc = crew_spawn(crew_ctx_pool(ctx), fib_task,
                         (void *)(intptr_t)(n - 1), NULL, &a)) != 0)
        return rc;
    if ((rc = crew_spawn(crew_ctx_pool(ctx), fib_task,
                         (void *)(intptr_t)(n - 2), NULL, &b)) != 0) {
        crew_task_wait(a, NULL);
        crew_task_release(a);
        return rc;
    }
    rc = crew_task_wait(b, &rb);
    if (crew_task_wait(a, &ra) != 0 && rc == 0)
        rc = -1;
    crew_task_release(a);
    crew_task_release(b);
    *result = (void *)((intptr_t)ra + (intptr_t)rb);
    return rc;
}

static bool check_forkjoin(void)
{
    crew_opts_t o = { .fibers = true, .threads = 2, .max_workers = 4,
                      .fiber_stack_size = 256 * 1024 };
    crew_t *pool;
    crew_task_t *t;
    void *res = NULL;

    CHECK(crew_create(&pool, &o) == 0, "create");
    CHECK(crew_spawn(pool, fib_task, (void *)(intptr_t)14, NULL, &t) == 0,
          "spawn");
    CHECK(crew_task_wait(t, &res) == 0, "wait");
    crew_task_release(t);
    CHECK(crew_free(pool) == 0, "free");
    CHECK((intptr_t)res == 377, "fib(14) = %ld", (long)(intptr_t)res);
    return true;
}

/* --- Groups and events ------------------------------------------------- */

static atomic_long child_runs, parents_ok, event_ok, event_in;
static crew_event_t *gate;

static int child_task(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    crew_sleep(100 * 1000);
    atomic_fetch_add(&child_runs, 1);
    return 0;
}

static int parent_task(crew_ctx_t *ctx, void *arg, void **result)
{
    crew_group_t *g;
    crew_task_opts_t in = { 0 };
    int rc;

    (void)arg;
    (void)result;
    if ((rc = crew_group_create(crew_ctx_pool(ctx), NULL, &g)) != 0)
        return rc;
    in.group = g;
    for (int i = 0; i < 8; i++)
        crew_spawn(crew_ctx_pool(ctx), child_task, NULL, &in, NULL);
    rc = crew_group_wait(g);
    crew_group_free(g);
    if (rc == 0)
        atomic_fetch_add(&parents_ok, 1);
    return rc;
}

static int event_task(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&event_in, 1);
    if (crew_event_wait(gate) == 0)
        atomic_fetch_add(&event_ok, 1);
    return 0;
}

static bool check_groups_events(void)
{
    crew_t *pool = fiber_pool(2, 2000);

    CHECK(pool != NULL, "no pool");
    CHECK(crew_event_create(&gate) == 0, "event");
    for (int i = 0; i < 100; i++)
        CHECK(crew_submit(pool, parent_task, NULL) == 0, "submit");
    for (int i = 0; i < 1000; i++)
        CHECK(crew_submit(pool, event_task, NULL) == 0, "submit");
    CHECK(reach(&event_in, 1000, 60 * SEC), "%ld waiting",
          atomic_load(&event_in));
    CHECK(crew_event_set(gate) == 0, "set");
    CHECK(crew_wait(pool) == 0, "wait");
    CHECK(crew_free(pool) == 0, "free");
    CHECK(crew_event_free(gate) == 0, "event free");
    CHECK(atomic_load(&child_runs) == 800, "%ld children",
          atomic_load(&child_runs));
    CHECK(atomic_load(&parents_ok) == 100, "%ld parents",
          atomic_load(&parents_ok));
    CHECK(atomic_load(&event_ok) == 1000, "%ld woken",
          atomic_load(&event_ok));
    return true;
}

/* --- crew_blocking ---------------------------------------------------- */

static atomic_long blocking_bad;

static void *blocking_errno(void *arg)
{
    struct timespec ts = { 0, 500 * 1000 };

    nanosleep(&ts, NULL);
    errno = (int)(intptr_t)arg;
    return (void *)((intptr_t)arg * 2);
}

static int blocking_task(crew_ctx_t *ctx, void *arg, void **result)
{
    intptr_t i = (intptr_t)arg + 1;

    (void)ctx;
    (void)result;
    errno = 0;
    if (crew_blocking(blocking_errno, (void *)i) != (void *)(i * 2) ||
        errno != (int)i)
        atomic_fetch_add(&blocking_bad, 1);
    return 0;
}

static bool check_blocking(void)
{
    crew_t *pool = fiber_pool(2, 300);

    CHECK(pool != NULL, "no pool");
    for (long i = 0; i < 300; i++)
        CHECK(crew_submit(pool, blocking_task, (void *)(intptr_t)i) == 0,
              "submit");
    CHECK(crew_wait(pool) == 0, "wait");
    CHECK(crew_free(pool) == 0, "free");
    CHECK(atomic_load(&blocking_bad) == 0, "%ld bad",
          atomic_load(&blocking_bad));
    return true;
}

/* --- Shutdown NOW ----------------------------------------------------- */

static atomic_long sd_in, sd_sleep_cancelled, sd_wait_cancelled, sd_other;
static crew_event_t *never;

static int sd_sleeper(crew_ctx_t *ctx, void *arg, void **result)
{
    int rc;

    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&sd_in, 1);
    rc = crew_sleep(60 * SEC);
    atomic_fetch_add(rc == CREW_ECANCELED ? &sd_sleep_cancelled : &sd_other,
                     1);
    return rc;
}

static int sd_waiter(crew_ctx_t *ctx, void *arg, void **result)
{
    int rc;

    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&sd_in, 1);
    rc = crew_event_wait(never);
    atomic_fetch_add(rc == CREW_ECANCELED ? &sd_wait_cancelled : &sd_other,
                     1);
    return rc;
}

static int sd_never_runs(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_fetch_add(&sd_other, 1);
    return 0;
}

static bool check_shutdown_now(void)
{
    crew_t *pool = fiber_pool(2, 400);
    crew_stats_t st;
    int64_t t0, took;

    CHECK(pool != NULL, "no pool");
    CHECK(crew_event_create(&never) == 0, "event");
    /* Waiters give their places in the budget back while they wait;
     * sleepers keep theirs. */
    for (int i = 0; i < 400; i++)
        CHECK(crew_submit(pool, sd_waiter, NULL) == 0, "submit");
    CHECK(reach(&sd_in, 400, 60 * SEC), "%ld in", atomic_load(&sd_in));
    for (int i = 0; i < 400; i++)
        CHECK(crew_submit(pool, sd_sleeper, NULL) == 0, "submit");
    CHECK(reach(&sd_in, 800, 60 * SEC), "%ld in", atomic_load(&sd_in));
    /* The budget is full of sleepers: these stay queued. */
    for (int i = 0; i < 300; i++)
        CHECK(crew_submit(pool, sd_never_runs, NULL) == 0, "submit");
    t0 = now_ns();
    CHECK(crew_shutdown(pool, CREW_SHUTDOWN_NOW) == 0, "shutdown");
    took = now_ns() - t0;
    crew_stats(pool, &st);
    CHECK(crew_free(pool) == 0, "free");
    CHECK(crew_event_free(never) == 0, "event free");
    CHECK(took < 10 * SEC, "shutdown took %lld ms", (long long)(took / MS));
    CHECK(atomic_load(&sd_sleep_cancelled) == 400 &&
              atomic_load(&sd_wait_cancelled) == 400 &&
              atomic_load(&sd_other) == 0,
          "sleeps %ld, waits %ld cancelled, %ld other",
          atomic_load(&sd_sleep_cancelled), atomic_load(&sd_wait_cancelled),
          atomic_load(&sd_other));
    CHECK(st.cancelled == 300 && st.failed == 800 &&
              st.submitted == st.completed + st.failed + st.cancelled,
          "submitted %llu, completed %llu, failed %llu, cancelled %llu",
          (unsigned long long)st.submitted,
          (unsigned long long)st.completed, (unsigned long long)st.failed,
          (unsigned long long)st.cancelled);
    return true;
}

/* --- A deadline passing on a stuck fiber ------------------------------ */

static atomic_long stuck_in, stuck_out, quick_done, quick_at_stuck_out;
static atomic_long nap_out;
static atomic_int nap_rc;

static int stuck_task(crew_ctx_t *ctx, void *arg, void **result)
{
    struct timespec ts = { 0, 800 * MS };

    (void)ctx;
    (void)arg;
    (void)result;
    atomic_store(&stuck_in, 1);
    nanosleep(&ts, NULL);       /* blocks its thread: no crew_blocking */
    atomic_store(&quick_at_stuck_out, atomic_load(&quick_done));
    atomic_store(&stuck_out, 1);
    return 0;
}

static int quick_task(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    crew_sleep(1 * MS);
    atomic_fetch_add(&quick_done, 1);
    return 0;
}

static int nap_task(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    atomic_store(&nap_rc, crew_sleep(30 * SEC));
    atomic_store(&nap_out, 1);
    return 0;
}

static bool check_deadline(void)
{
    crew_t *pool = fiber_pool(2, 8);
    crew_task_opts_t to = { .timeout_ns = 100 * MS };
    crew_task_t *stuck, *nap;
    int64_t t0, took;
    int rc;

    CHECK(pool != NULL, "no pool");
    t0 = now_ns();
    CHECK(crew_spawn(pool, stuck_task, NULL, &to, &stuck) == 0, "spawn");
    CHECK(reach(&stuck_in, 1, 60 * SEC), "stuck task never ran");
    for (int i = 0; i < 100; i++)
        CHECK(crew_submit(pool, quick_task, NULL) == 0, "submit");
    rc = crew_task_wait(stuck, NULL);
    took = now_ns() - t0;
    CHECK(rc == CREW_ETIMEDOUT, "stuck task: %s", crew_strerror(rc));
    CHECK(took < 700 * MS, "reported after %lld ms",
          (long long)(took / MS));
    CHECK(reach(&quick_done, 100, 60 * SEC), "%ld quick tasks",
          atomic_load(&quick_done));
    CHECK(reach(&stuck_out, 1, 60 * SEC), "stuck task never returned");
    CHECK(atomic_load(&quick_at_stuck_out) == 100,
          "only %ld quick tasks ran while the thread was stuck",
          atomic_load(&quick_at_stuck_out));
    crew_task_release(stuck);
    /* A fiber parked in a long sleep is woken at its deadline. */
    t0 = now_ns();
    CHECK(crew_spawn(pool, nap_task, NULL, &to, &nap) == 0, "spawn");
    rc = crew_task_wait(nap, NULL);
    CHECK(rc == CREW_ETIMEDOUT, "napping task: %s", crew_strerror(rc));
    crew_task_release(nap);
    /* Reported at the deadline; the task itself returns just after. */
    CHECK(reach(&nap_out, 1, 60 * SEC), "napping task never returned");
    took = now_ns() - t0;
    CHECK(atomic_load(&nap_rc) == CREW_ETIMEDOUT, "crew_sleep gave %s",
          crew_strerror(atomic_load(&nap_rc)));
    CHECK(took < 10 * SEC, "nap ended after %lld ms",
          (long long)(took / MS));
    CHECK(crew_free(pool) == 0, "free");
    return true;
}

/* --- pthread_exit on a fiber ------------------------------------------ */

static int exit_task(crew_ctx_t *ctx, void *arg, void **result)
{
    (void)ctx;
    (void)arg;
    (void)result;
    crew_yield();
    pthread_exit(NULL);
}

static bool check_pthread_exit(void)
{
    crew_t *pool = fiber_pool(2, 8);
    crew_task_t *t;
    void *res = NULL;
    int rc;

    CHECK(pool != NULL, "no pool");
    for (int i = 0; i < 3; i++) {
        CHECK(crew_spawn(pool, exit_task, NULL, NULL, &t) == 0, "spawn");
        rc = crew_task_wait(t, NULL);
        crew_task_release(t);
        CHECK(rc == CREW_EEXIT, "exit %d: %s", i, crew_strerror(rc));
    }
    CHECK(crew_spawn(pool, yield_task, (void *)(intptr_t)42, NULL, &t) == 0,
          "spawn");
    CHECK(crew_task_wait(t, &res) == 0 && (intptr_t)res == 42, "after");
    crew_task_release(t);
    CHECK(crew_free(pool) == 0, "free");
    return true;
}

/* --- Driver ------------------------------------------------------------ */

static void run(const char *name, bool (*fn)(void))
{
    int64_t t0 = now_ns();
    bool ok = fn();

    printf("%s %s (%lld ms)\n", ok ? "ok  " : "FAIL", name,
           (long long)((now_ns() - t0) / MS));
    fflush(stdout);
    if (ok)
        passed++;
    else
        failed++;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
#if defined(__aarch64__)
    run("asm_switch", check_asm_switch);
    run("switch", check_switch);
    run("regs", check_regs);
#else
    printf("skip regs: the register probe is AArch64 only\n");
#endif
    run("live_values", check_live_values);
    run("many", check_many);
    run("forkjoin", check_forkjoin);
    run("groups_events", check_groups_events);
    run("blocking", check_blocking);
    run("shutdown_now", check_shutdown_now);
    run("deadline", check_deadline);
    run("pthread_exit", check_pthread_exit);
    printf("checks: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
