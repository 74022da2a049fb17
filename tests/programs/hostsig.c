/*
 * hostsig.c -- a signal from outside the program (the emulator's host signals, forwarded:
 * docs/linux.md "Host signals"; natively a kill(2) by the test). Each mode prints "ready",
 * then waits for the test's signal SIG (a number) in one way and prints what it saw; the
 * test compares stdout and the exit status with the same program run natively under the
 * same schedule (tests/test_hostsig.py).
 *
 *   hostsig spin SIG [restart]   a handler (SA_RESTART or not); one thread spins without
 *                                system calls until the handler has run
 *   hostsig read SIG [restart]   a handler; read(0) blocks (the test writes a byte after
 *                                the handler's line): EINTR, or restarted under SA_RESTART
 *   hostsig pipe SIG [restart]   a handler that writes a byte into a pipe whose reader it
 *                                interrupted: EINTR, or the restarted read gets the byte
 *   hostsig pause SIG            a handler; pause() returns -1 EINTR (never restarted)
 *   hostsig sigwait SIG          SIG blocked; sigwaitinfo takes it: no handler runs
 *   hostsig ignore SIG           SIG_IGN; then read(0): the signal changes nothing
 *   hostsig thread SIG           the main thread blocks SIG and joins a second thread that
 *                                spins: the process-directed signal goes to the thread that
 *                                does not block it (complete_signal)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static volatile sig_atomic_t seen_signo, seen_code;
static volatile pthread_t handler_thread;
static int wake_pipe = -1; /* pipe mode: the handler writes here */

static void say(const char *s)
{
    if (write(1, s, strlen(s)) < 0)
        _exit(3);
}

static void handler(int sig, siginfo_t *info, void *uc)
{
    (void)uc;
    seen_signo = sig;
    seen_code = info->si_code;
    handler_thread = pthread_self();
    say("handler\n"); /* async-signal-safe; the test waits for it */
    if (wake_pipe >= 0 && write(wake_pipe, "x", 1) != 1)
        _exit(4);
}

static void install(int sig, int restart)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | (restart ? SA_RESTART : 0);
    sigemptyset(&sa.sa_mask);
    CHECK_ERRNO(sigaction(sig, &sa, NULL) == 0);
}

static void report(void)
{
    printf("handler ran: signal %d, si_code %s\n", (int)seen_signo,
           seen_code == SI_USER ? "SI_USER" : "other");
}

static void result(const char *what, long r, char c)
{
    if (r < 0)
        printf("%s = -1 %s\n", what, errno == EINTR ? "EINTR" : strerror(errno));
    else
        printf("%s = %ld '%c'\n", what, r, r > 0 ? c : '-');
}

static volatile int spinning;

static void *spinner(void *arg)
{
    sigset_t *set = arg;
    CHECK(pthread_sigmask(SIG_UNBLOCK, set, NULL) == 0); /* the creator's mask was inherited */
    spinning = 1;
    while (!seen_signo)
        ;
    return NULL;
}

int main(int argc, char **argv)
{
    CHECK(argc >= 3);
    const char *mode = argv[1];
    int sig = atoi(argv[2]);
    int restart = argc > 3 && strcmp(argv[3], "restart") == 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    char c = 0;

    if (strcmp(mode, "spin") == 0) {
        install(sig, restart);
        say("ready\n");
        while (!seen_signo) /* no system call: the emulator runs this thread unsliced */
            ;
        report();
    } else if (strcmp(mode, "read") == 0) {
        install(sig, restart);
        say("ready\n");
        long r = read(0, &c, 1);
        result("read", r, c);
        report();
    } else if (strcmp(mode, "pipe") == 0) {
        int p[2];
        CHECK_ERRNO(pipe(p) == 0);
        wake_pipe = p[1];
        install(sig, restart);
        say("ready\n");
        long r = read(p[0], &c, 1);
        result("read", r, c);
        report();
    } else if (strcmp(mode, "pause") == 0) {
        install(sig, 1); /* pause is never restarted, SA_RESTART or not */
        say("ready\n");
        long r = pause();
        result("pause", r, c);
        report();
    } else if (strcmp(mode, "sigwait") == 0) {
        install(sig, 0); /* must not run: sigwaitinfo takes the signal */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        CHECK_ERRNO(sigprocmask(SIG_BLOCK, &set, NULL) == 0);
        say("ready\n");
        siginfo_t info;
        int got = sigwaitinfo(&set, &info);
        CHECK_ERRNO(got == sig);
        printf("sigwaitinfo = %d, si_code %s, handler %s\n", got,
               info.si_code == SI_USER ? "SI_USER" : "other", seen_signo ? "ran" : "did not run");
    } else if (strcmp(mode, "ignore") == 0) {
        CHECK(signal(sig, SIG_IGN) != SIG_ERR);
        say("ready\n");
        long r = read(0, &c, 1); /* the test writes after the signal */
        result("read", r, c);
    } else if (strcmp(mode, "thread") == 0) {
        install(sig, 0);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, spinner, &set) == 0);
        while (!spinning)
            ;
        say("ready\n");
        CHECK(pthread_join(t, NULL) == 0);
        report();
        printf("in the second thread: %s\n",
               pthread_equal(handler_thread, t) ? "yes" : "no");
    } else {
        CHECK(!"unknown mode");
    }
    printf("OK\n");
    return 0;
}
