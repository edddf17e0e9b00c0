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
#include <stdio.h>
#include <stdlib.h>

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

#define crew_test_log(...)            \
    do {                              \
        fprintf(stderr, __VA_ARGS__); \
        fputc('\n', stderr);          \
    } while (0)

#endif /* CREW_TEST_HARNESS_H */
