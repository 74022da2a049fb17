/*
 * workdir.h -- paths under the scratch directory of a program that creates files.
 *
 * The program sets `base` (e.g. to "<argv[1]>/uemu_<name>") and creates that directory
 * itself; at("x") is then "<base>/x".  at() returns one of four static buffers in turn, so
 * up to four of its results may be used at once (e.g. as the arguments of one call).
 */
#ifndef UEMU_TEST_WORKDIR_H
#define UEMU_TEST_WORKDIR_H

#include <stdio.h>

static char base[3000];

static const char *at(const char *name)
{
    static char buf[4][4096];
    static int n;
    char *p = buf[n++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", base, name);
    return p;
}

#endif
