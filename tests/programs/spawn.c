/*
 * spawn.c -- starting and reaping child processes the ways libraries do:
 *   posix_spawn and popen (glibc: clone(CLONE_VM|CLONE_VFORK|SIGCHLD) on a stack of its own;
 *   the child shares the parent's memory until it execs, and reports an exec failure through
 *   it), fork, SIGCHLD to the parent when a child ends (clone's exit signal), and a child
 *   killed by a signal looking killed to waitpid.
 * The program runs itself as the child ("child CODE" exits with CODE, "print" writes a line).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

extern char **environ;
static volatile sig_atomic_t chld;

static void on_chld(int sig)
{
    (void)sig;
    chld++;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "child") == 0)
        return atoi(argv[2]);
    if (argc == 2 && strcmp(argv[1], "print") == 0) {
        printf("hello from the child\n");
        return 0;
    }

    struct sigaction sa = {.sa_handler = on_chld};
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);

    /* posix_spawn: the child's exit status comes back through waitpid. */
    pid_t pid;
    char *args[] = {argv[0], "child", "3", NULL};
    int err = posix_spawn(&pid, argv[0], NULL, NULL, args, environ);
    CHECK(err == 0);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    printf("posix_spawn: child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    /* posix_spawn of a program that does not exist: the error the child met in execve. */
    char *missing[] = {"/nonexistent/program", NULL};
    err = posix_spawn(&pid, missing[0], NULL, NULL, missing, environ);
    printf("posix_spawn of a missing program: %s\n", err == ENOENT ? "ENOENT" : strerror(err));

    /* popen: the child's output through a pipe. */
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s print", argv[0]);
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    char line[128] = "";
    CHECK(fgets(line, sizeof line, f) != NULL);
    printf("popen: %s", line);
    int pst = pclose(f);
    printf("pclose: exited %d\n", WIFEXITED(pst) ? WEXITSTATUS(pst) : -1);

    /* fork + _exit: SIGCHLD reaches the parent. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &block, &old) == 0);
    int before = chld;
    fflush(stdout);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(7);
    while (chld == before)
        sigsuspend(&old);
    CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);
    CHECK(waitpid(pid, &status, 0) == pid);
    printf("fork: SIGCHLD received, child exited %d\n", WEXITSTATUS(status));

    /* A child killed by a signal. */
    fflush(stdout);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        raise(SIGTERM);
        _exit(99);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    printf("killed child: WIFSIGNALED %d, WTERMSIG %d, WIFEXITED %d\n", WIFSIGNALED(status),
           WIFSIGNALED(status) ? WTERMSIG(status) : 0, WIFEXITED(status));
    printf("OK\n");
    return 0;
}
