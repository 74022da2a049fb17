/*
 * spin.c -- a runaway program for the --max-insns and --timeout tests: prints one
 * line, then loops forever without any system call.
 */
#include <stdio.h>

int main(void)
{
    volatile unsigned long n = 0;
    printf("spinning\n");
    fflush(stdout);
    for (;;)
        n++;
}
