/*
 * strace_calls.c -- system calls whose --strace lines show strace's notation
 * (tests/test_programs.py, test_strace_decodes_*): constants and flags by name, signed fds,
 * errors with their text, and a read that blocks in a second thread until the main thread
 * writes (`<unfinished ...>`, then `<... read resumed> = 1`). Checks each result itself;
 * prints OK.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static int fds[2];
static volatile sig_atomic_t got;

static void on_usr2(int sig) { got = sig; }

static void *reader(void *arg)
{
    char c = 0;
    CHECK(read(fds[0], &c, 1) == 1 && c == 'x');
    return arg;
}

int main(void)
{
    CHECK(openat(AT_FDCWD, "/nonexistent-strace-calls", O_RDONLY | O_CLOEXEC) == -1 &&
          errno == ENOENT);
    int dir = openat(AT_FDCWD, "/", O_RDONLY | O_DIRECTORY);
    CHECK(dir >= 0);
    CHECK(close(dir) == 0);
    CHECK(close(-1) == -1 && errno == EBADF);
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    CHECK(mprotect(p, 4096, PROT_NONE) == 0);
    CHECK(munmap(p, 4096) == 0);
    CHECK(signal(SIGUSR2, on_usr2) != SIG_ERR);
    CHECK(kill(getpid(), SIGUSR2) == 0 && got == SIGUSR2);

    CHECK(pipe2(fds, O_CLOEXEC) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, reader, NULL) == 0);
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL); /* the reader blocks in read meanwhile */
    CHECK(write(fds[1], "x", 1) == 1);
    CHECK(pthread_join(t, NULL) == 0);
    puts("OK");
    return 0;
}
