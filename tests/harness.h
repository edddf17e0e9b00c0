/*
 * harness.h - how our tests run on Check (libcheck): one executable per
 * test file, each test its own TCase, run in the test process itself
 * (CK_NOFORK) so that the sanitizers watch the test directly.  ctest runs
 * each test alone by naming it in CK_RUN_CASE (see tests/CMakeLists.txt).
 *
 * In a test file:
 *
 *     START_TEST(suite__name)
 *     {
 *         ck_assert_msg(x == 1, "x is %d", x);
 *     }
 *     END_TEST
 *
 *     int main(void)
 *     {
 *         Suite *s = suite_create("suite");
 *
 *         crew_add_test(s, suite__name);
 *         return crew_run_suite(s);
 *     }
 */
#ifndef CREW_TEST_HARNESS_H
#define CREW_TEST_HARNESS_H

#include <check.h>
#include <crew.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Add one test as a TCase named after its function.  ctest's timeout is
 * the watchdog; Check's own timeout needs fork mode. */
#define crew_add_test(s, fn)            \
    do {                                \
        TCase *tc_ = tcase_create(#fn); \
        tcase_add_test(tc_, fn);        \
        suite_add_tcase((s), tc_);      \
    } while (0)

/* Run the suite in this process; 0 when every test that ran passed. */
static inline int crew_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * Fiber runs (issue 5).  ctest runs every test a second time, as
 * "fiber.<suite>.<name>", with CREW_TEST_FIBERS=1 in its environment (see
 * tests/CMakeLists.txt).  Then every pool the test creates with
 * crew_create() or crew_new() gets `fibers` on, so the same scenarios and
 * the same assertions run with tasks on fibers.  The switch lives here, in
 * the test programs (the macros below stand in for the two calls), and
 * not in the library, which never reads the variable.
 *
 * A pool that asks for fibers itself is left as it is.  Otherwise:
 *
 *  - max_workers keeps the meaning the test gave it, the most tasks in
 *    flight (the fiber budget); left 0, it is what thread mode would
 *    choose (online CPUs, at least min_workers), not fiber mode's 1024, as
 *    the test's expectations were written for that.
 *  - threads: one per budget place, at least 2, at most 64.  A task that
 *    blocks its OS thread (a gate, nanosleep, a spin on another task)
 *    blocks every fiber of that thread, and many tests hold up to
 *    max_workers tasks on gates while others must go on: with fewer
 *    threads than that they would hang for a reason that is the test's,
 *    not the library's.  With a thread per place a blocked task holds one
 *    thread, as in thread mode, while tasks that do not block still share
 *    threads (a thread takes new tasks only between its fibers' runs).
 *    The cap of 64 keeps pools with a large budget cheap; no test blocks
 *    that many tasks at once.  A test whose pool grows its budget while
 *    tasks block says how many threads that takes, in `threads` (which
 *    thread mode ignores).  CREW_TEST_FIBER_THREADS=n, if set, overrides
 *    both (to try a test on fewer threads by hand).
 *
 * crew_test_fibers() tells a test which run it is in, for the few
 * assertions on what fiber mode defines differently (crew_stats() counts
 * fibers as workers, and the threads are fixed): see the comment at each
 * use.
 */
static inline bool crew_test_fibers(void)
{
    const char *v = getenv("CREW_TEST_FIBERS");

    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

/* The options a pool of the test gets: `opts` itself, or a copy in *buf
 * with fibers on (see above). */
static inline const crew_opts_t *crew_test_opts(const crew_opts_t *opts,
                                                crew_opts_t *buf)
{
    const char *v = getenv("CREW_TEST_FIBER_THREADS");
    unsigned places;

    if (!crew_test_fibers() || (opts != NULL && opts->fibers))
        return opts;
    if (opts != NULL)
        *buf = *opts;
    else
        memset(buf, 0, sizeof(*buf));
    if (buf->max_workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        buf->max_workers = n > 0 ? (unsigned)n : 1;
        if (buf->max_workers < buf->min_workers)
            buf->max_workers = buf->min_workers;
    }
    places = buf->max_workers;
    buf->fibers = true;
    if (buf->threads == 0)
        buf->threads = places < 2 ? 2 : places > 64 ? 64 : places;
    if (v != NULL && atoi(v) > 0)
        buf->threads = (unsigned)atoi(v);
    return buf;
}

static inline int crew_test_create(crew_t **pool, const crew_opts_t *opts)
{
    crew_opts_t buf;

    return crew_create(pool, crew_test_opts(opts, &buf));
}

static inline crew_t *crew_test_new(const crew_opts_t *opts)
{
    crew_opts_t buf;

    return crew_new(crew_test_opts(opts, &buf));
}

#define crew_create crew_test_create
#define crew_new crew_test_new

#define crew_test_log(...)            \
    do {                              \
        fprintf(stderr, __VA_ARGS__); \
        fputc('\n', stderr);          \
    } while (0)

#endif /* CREW_TEST_HARNESS_H */
