/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check.h — the tiny harness every C test program uses: CHECK* macros that report file:line and,
 * for library calls, the pdckpt_error of the call; RUN() to run one test function; and a closing
 * "N passed, N failed" line that CI recognises.
 */
#ifndef PDCKPT_CHECK_H
#define PDCKPT_CHECK_H

#include <pdckpt.h>
#include <stdio.h>
#include <string.h>

static int check_failures_;
static int check_passed_tests_, check_failed_tests_;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            check_failures_++;                                                                     \
        }                                                                                          \
    } while (0)

/* Expects `expr` (a pdckpt call) to return `want`; prints the error record otherwise. */
#define CHECK_STATUS(expr, want, errp)                                                             \
    do {                                                                                           \
        pdckpt_status got_ = (expr);                                                               \
        if (got_ != (want)) {                                                                      \
            char line_[1200];                                                                      \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s: %s\n", __FILE__, __LINE__, #expr, \
                    pdckpt_status_name(got_), pdckpt_status_name(want),                            \
                    pdckpt_error_format((errp), line_, sizeof line_));                             \
            check_failures_++;                                                                     \
        }                                                                                          \
    } while (0)
#define CHECK_OK(expr, errp) CHECK_STATUS(expr, PDCKPT_OK, errp)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a,    \
                    a_, #b, b_);                                                                   \
            check_failures_++;                                                                     \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                   \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,      \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                       \
            check_failures_++;                                                                     \
        }                                                                                          \
    } while (0)

#define RUN(test_fn)                                                                               \
    do {                                                                                           \
        int before_ = check_failures_;                                                             \
        test_fn();                                                                                 \
        if (check_failures_ == before_)                                                            \
            check_passed_tests_++;                                                                 \
        else {                                                                                     \
            check_failed_tests_++;                                                                 \
            fprintf(stderr, "FAILED: %s\n", #test_fn);                                             \
        }                                                                                          \
    } while (0)

#define CHECK_SUMMARY()                                                                            \
    (printf("%d passed, %d failed\n", check_passed_tests_, check_failed_tests_),                   \
     check_failed_tests_ ? 1 : 0)

#endif /* PDCKPT_CHECK_H */
