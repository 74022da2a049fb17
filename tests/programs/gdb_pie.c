/*
 * gdb_pie.c -- the guest of the gdb tests of position-independent programs
 * (tests/test_gdbstub.py): built as a dynamic PIE and as a static-pie, run with two
 * arguments; gdb breaks at `main` and at `twice`. Prints "twice 6" and exits 0.
 */
#include <stdio.h>

int __attribute__((noinline)) twice(int x) { return 2 * x; }

int main(int argc, char **argv)
{
    (void)argv;
    printf("twice %d\n", twice(argc));
    return twice(argc) == 2 * argc ? 0 : 1;
}
