/*
 * fpu_init.c -- the FPU and SSE state a program starts with, and in a new thread and a forked
 * child: Linux starts every program with the x87 control word 0x37F (double extended
 * precision, round to nearest, all exceptions masked) and MXCSR 0x1F80; threads and children
 * inherit the parent's.  A program that saves and restores the control word around a
 * computation (as gcc's conversions and sqlite do) must then still compute in full precision.
 */
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static unsigned short fcw(void)
{
    unsigned short cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return cw;
}

static unsigned int mxcsr(void)
{
    unsigned int v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}

static void *thread(void *arg)
{
    unsigned int *out = arg;
    out[0] = fcw();
    out[1] = mxcsr();
    return NULL;
}

int main(void)
{
    printf("start: fcw %#x mxcsr %#x\n", fcw(), mxcsr());

    unsigned short saved = fcw();
    __asm__ volatile("fldcw %0" : : "m"(saved)); /* a save and restore changes nothing */
    printf("after fldcw of the saved word: fcw %#x\n", fcw());

    unsigned int seen[2];
    pthread_t t;
    CHECK(pthread_create(&t, NULL, thread, seen) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    printf("new thread: fcw %#x mxcsr %#x\n", seen[0], seen[1]);

    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        printf("child: fcw %#x mxcsr %#x\n", fcw(), mxcsr());
        fflush(stdout);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("OK\n");
    return 0;
}
