/*
 * segfault.c -- a fatal SIGSEGV: prints a line, flushes it, then stores through a
 * NULL pointer in do_fault().  Natively the process dies of signal 11; under the
 * emulator the expected exit status is 139 with one line on stderr:
 *   uintr-emu: program terminated by SIGSEGV (rip=0x..., address 0x0)
 * The program is static and not position-independent, so the test can check that
 * rip lies inside do_fault() using the symbol table.
 */
#include <stdio.h>

__attribute__((noinline)) void do_fault(int *volatile *pp)
{
    **pp = 42;
}

int main(void)
{
    int *volatile p = NULL; /* volatile: gcc must not turn the store into a trap */
    printf("about to fault\n");
    fflush(stdout);
    do_fault(&p);
    printf("still alive?!\n");
    return 0;
}
