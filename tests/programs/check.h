/*
 * check.h -- the assertion macros of the guest test programs in tests/programs.
 *
 * CHECK(cond)        if cond is false: print "FAIL <file>:<line>: <cond>" on stdout and
 *                    exit(1).  The file and line are those of the CHECK, not of this header.
 * CHECK_ERRNO(cond)  the same, with " (errno=<n>)" at the end of the line, for checks of
 *                    system calls whose failure sets errno.
 *
 * stdout is flushed before the exit so that the FAIL line follows everything printed
 * before it, natively and under the emulator.  Nothing here is printed while the checks
 * pass, so a program's output (which the tests compare with a native run or a golden
 * file) does not depend on this header.
 */
#ifndef UEMU_TEST_CHECK_H
#define UEMU_TEST_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
            fflush(stdout);                                                    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define CHECK_ERRNO(cond)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("FAIL %s:%d: %s (errno=%d)\n", __FILE__, __LINE__, #cond,   \
                   errno);                                                     \
            fflush(stdout);                                                    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#endif
