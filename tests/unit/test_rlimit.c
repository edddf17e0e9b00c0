/*
 * test_rlimit.c - crew under a low resource limit (issue 6).
 *
 * In a forked child (so the limit cannot harm the test process), the soft
 * RLIMIT_AS is lowered to a little above what the process maps already:
 * thread stacks no longer fit, and soon neither do allocations.  crew must
 * then fail cleanly, with CREW_ETHREAD or CREW_ENOMEM, never crash, keep
 * every task it accepted, and work again once the limit is raised.
 * (RLIMIT_NPROC does not bind root, so the address space is the limit.)
 *
 * ASan and TSan reserve terabytes of address space, so under them the
 * tests print "skipped under sanitizer" and pass.
 *
 * The child exits 0 when every check held, else the line of the one that
 * failed (mod 256, never 0).
 */
#include "harness.h"

#include "helpers.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_CHECK(cond)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "child %d: %s:%d: %s\n", (int)getpid(), __FILE__, \
                    __LINE__, #cond);                                         \
            _exit(__LINE__ % 256 != 0 ? __LINE__ % 256 : 1);                  \
        }                                                                     \
    } while (0)

static int run_in_child(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int64_t end = t_now() + T_LONG;
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) != pid) {
        if (t_now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            crew_test_log("child hung: killed");
            return -1;
        }
        t_sleep(T_MS);
    }
    if (WIFSIGNALED(st))
        crew_test_log("child died of signal %d", WTERMSIG(st));
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Bytes of address space the process maps now. */
static size_t mapped_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f != NULL) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

static struct rlimit saved;

/* Lowers the soft limit to what is mapped now plus `slack` bytes. */
static void limit_as(size_t slack)
{
    struct rlimit rl = saved;
    rl.rlim_cur = mapped_now() + slack;
    CHILD_CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
}

static void unlimit_as(void)
{
    CHILD_CHECK(setrlimit(RLIMIT_AS, &saved) == 0);
}

/* Threads: default stacks (8 MiB) cannot be mapped any more. */
static void threads_child(void)
{
    CHILD_CHECK(getrlimit(RLIMIT_AS, &saved) == 0);
    /* Warm up stdio and the allocator before the limit. */
    crew_t *pool = NULL;
    crew_opts_t grow = { .min_workers = 0, .max_workers = 4 };
    CHILD_CHECK(crew_create(&pool, &grow) == 0);

    limit_as(2 << 20);
    /* Creation that must start threads fails, and leaves nothing. */
    crew_opts_t pre = { .max_workers = 4, .prespawn = true };
    crew_t *p2 = (crew_t *)&saved;
    int rc = crew_create(&p2, &pre);
    CHILD_CHECK(rc == CREW_ETHREAD || rc == CREW_ENOMEM);
    CHILD_CHECK(p2 == NULL);
    crew_opts_t mins = { .min_workers = 2, .max_workers = 2 };
    rc = crew_create(&p2, &mins);
    CHILD_CHECK(rc == CREW_ETHREAD || rc == CREW_ENOMEM);
    CHILD_CHECK(crew_new(&pre) == NULL);

    /* A pool with no worker yet: no worker can start for a task, so the
     * submit takes it back and says so; nothing runs, nothing is lost. */
    atomic_long n = 0;
    int accepted = 0;
    for (int i = 0; i < 20; i++) {
        rc = crew_submit(pool, t_inc_fn, &n);
        CHILD_CHECK(rc == 0 || rc == CREW_ETHREAD || rc == CREW_ENOMEM);
        accepted += rc == 0;
    }
    crew_task_t *t = (crew_task_t *)&saved;
    rc = crew_spawn(pool, t_inc_fn, &n, NULL, &t);
    CHILD_CHECK(rc == CREW_ETHREAD || rc == CREW_ENOMEM);
    CHILD_CHECK(t == NULL);
    crew_task_opts_t timed = { .timeout_ns = T_SEC, .delay_ns = T_MS };
    rc = crew_spawn(pool, t_inc_fn, &n, &timed, &t); /* needs the timer */
    CHILD_CHECK(rc == 0 || rc == CREW_ETHREAD || rc == CREW_ENOMEM);
    if (rc == 0) {
        accepted++;
        crew_task_release(t);
    }
    rc = crew_resize(pool, 2, 4);
    CHILD_CHECK(rc == CREW_ETHREAD);
    crew_stats_t s = t_stats(pool);
    CHILD_CHECK(s.workers == 0);
    CHILD_CHECK(s.rejected >= 1);
    fprintf(stderr,
            "under the limit: %d of 21 submits accepted, %llu "
            "rejected\n",
            accepted, (unsigned long long)s.rejected);

    /* Raised again: the same pool works, and what it accepted runs. */
    unlimit_as();
    CHILD_CHECK(crew_resize(pool, 0, 4) == 0);
    for (int i = 0; i < 100; i++)
        CHILD_CHECK(crew_submit(pool, t_inc_fn, &n) == 0);
    CHILD_CHECK(crew_wait(pool) == 0);
    CHILD_CHECK(atomic_load(&n) == 100 + accepted);
    s = t_stats(pool);
    CHILD_CHECK(s.submitted == s.completed + s.failed + s.cancelled);
    CHILD_CHECK(crew_free(pool) == 0);
    CHILD_CHECK(crew_create(&p2, &pre) == 0);
    CHILD_CHECK(crew_free(p2) == 0);
}

/* Memory: fill the address space with queued tasks until submit fails. */
static void memory_child(void)
{
    CHILD_CHECK(getrlimit(RLIMIT_AS, &saved) == 0);
    crew_opts_t o = { .max_workers = 1, .stack_size = 64 * 1024 };
    crew_t *pool = NULL;
    CHILD_CHECK(crew_create(&pool, &o) == 0);
    t_gate_t gate;
    t_count_t started;
    t_gate_init(&gate);
    t_count_init(&started);
    t_blocker_t b = { &started, &gate };
    CHILD_CHECK(crew_submit(pool, t_blocker_fn, &b) == 0);
    CHILD_CHECK(t_count_wait(&started, 1, T_LONG));

    limit_as(8 << 20);
    atomic_long n = 0;
    long accepted = 0;
    int rc = 0;
    /* Plain submits, then futures, then groups, until each fails. */
    for (long i = 0; i < 50L * 1000 * 1000; i++) {
        rc = crew_submit(pool, t_inc_fn, &n);
        if (rc != 0)
            break;
        accepted++;
    }
    CHILD_CHECK(rc == CREW_ENOMEM);
    crew_task_t *t = (crew_task_t *)&saved;
    rc = crew_spawn(pool, t_inc_fn, &n, NULL, &t);
    CHILD_CHECK(rc == CREW_ENOMEM && t == NULL);
    crew_group_t *g = (crew_group_t *)&saved;
    rc = crew_group_create(pool, NULL, &g);
    CHILD_CHECK(rc == 0 || (rc == CREW_ENOMEM && g == NULL));
    if (rc == 0)
        crew_group_free(g);
    crew_t *p2 = (crew_t *)&saved;
    rc = crew_create(&p2, NULL); /* starts no thread: may fit */
    CHILD_CHECK(rc == 0 ||
                ((rc == CREW_ENOMEM || rc == CREW_ETHREAD) && p2 == NULL));
    if (rc == 0)
        CHILD_CHECK(crew_free(p2) == 0);
    crew_stats_t s = t_stats(pool);
    CHILD_CHECK(s.submitted == (uint64_t)accepted + 1);
    CHILD_CHECK(s.rejected >= 2);
    fprintf(stderr, "under the limit: %ld tasks queued before ENOMEM\n",
            accepted);

    /* Raised again: everything accepted runs, and more can come. */
    unlimit_as();
    for (int i = 0; i < 100; i++)
        CHILD_CHECK(crew_submit(pool, t_inc_fn, &n) == 0);
    t_gate_open(&gate);
    CHILD_CHECK(crew_wait(pool) == 0);
    CHILD_CHECK(atomic_load(&n) == accepted + 100);
    CHILD_CHECK(crew_free(pool) == 0);
}

START_TEST(rlimit__threads_fail_cleanly_then_recover)
{
#ifdef T_SANITIZED
    crew_test_log("skipped under sanitizer");
    return;
#endif
    int st = run_in_child(threads_child);
    ck_assert_msg(st == 0, "child failed: %d (a line number)", st);
}
END_TEST

START_TEST(rlimit__allocations_fail_cleanly_then_recover)
{
#ifdef T_SANITIZED
    crew_test_log("skipped under sanitizer");
    return;
#endif
    int st = run_in_child(memory_child);
    ck_assert_msg(st == 0, "child failed: %d (a line number)", st);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rlimit");

    crew_add_test(s, rlimit__threads_fail_cleanly_then_recover);
    crew_add_test(s, rlimit__allocations_fail_cleanly_then_recover);
    return crew_run_suite(s);
}
