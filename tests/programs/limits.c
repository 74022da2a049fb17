/*
 * limits.c -- create threads or processes until the kernel refuses one with EAGAIN (Linux:
 * threads-max and RLIMIT_NPROC in copy_process; uintr-emu: --max-threads, --max-procs), then
 * show that the program goes on.
 *
 *   limits threads   pthread_create until it fails (the threads wait on a pipe), and once
 *                    more: "threads: N created, then EAGAIN, again EAGAIN; all joined"
 *   limits procs     fork until it fails (the children wait on a pipe):
 *                    "procs: N forked, then EAGAIN; all reaped"
 *   limits zombies   fork children that exit at once and are not reaped until fork fails
 *                    (a zombie still counts), then reap them and fork once more:
 *                    "zombies: N forked, then EAGAIN; after reaping, fork ok"
 *   limits nproc     "nproc: soft S hard H" from getrlimit(RLIMIT_NPROC)
 *
 * At most 100000 of anything, so that a native run cannot take the machine down.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX 100000

static int gate[2]; /* every thread or child blocks reading one byte from it */

static const char *name(int e)
{
    return e == EAGAIN ? "EAGAIN" : strerror(e);
}

static void *wait_at_gate(void *arg)
{
    char c;
    (void)arg;
    while (read(gate[0], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

/* Let `n` waiters through: one byte each. */
static void open_gate(int n)
{
    static const char bytes[256];
    while (n > 0) {
        ssize_t w = write(gate[1], bytes, n < 256 ? n : 256);
        if (w < 0 && errno != EINTR)
            exit(1);
        n -= w > 0 ? (int)w : 0;
    }
}

static int threads(void)
{
    static pthread_t th[MAX];
    pthread_attr_t attr;
    int n = 0, err = 0, again = 0;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    while (n < MAX && (err = pthread_create(&th[n], &attr, wait_at_gate, NULL)) == 0)
        n++;
    if (err && (again = pthread_create(&th[n], &attr, wait_at_gate, NULL)) == 0)
        n++;
    open_gate(n);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    printf("threads: %d created, then %s, again %s; all joined\n", n, name(err),
           again ? name(again) : "created");
    return 0;
}

static int procs(void)
{
    int n = 0, err = 0;
    for (; n < MAX; n++) {
        pid_t pid = fork();
        if (pid == 0) {
            wait_at_gate(NULL);
            _exit(0);
        }
        if (pid < 0) {
            err = errno;
            break;
        }
    }
    open_gate(n);
    int reaped = 0;
    while (wait(NULL) > 0)
        reaped++;
    printf("procs: %d forked, then %s; %s reaped\n", n, name(err), reaped == n ? "all" : "not all");
    return 0;
}

static int zombies(void)
{
    int n = 0, err = 0;
    for (; n < MAX; n++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0) {
            err = errno;
            break;
        }
    }
    while (wait(NULL) > 0)
        ;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    int status = -1;
    if (pid > 0)
        waitpid(pid, &status, 0);
    printf("zombies: %d forked, then %s; after reaping, fork %s\n", n, name(err),
           pid > 0 && status == 0 ? "ok" : "failed");
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (pipe(gate) != 0)
        return 1;
    if (!strcmp(mode, "threads"))
        return threads();
    if (!strcmp(mode, "procs"))
        return procs();
    if (!strcmp(mode, "zombies"))
        return zombies();
    if (!strcmp(mode, "nproc")) {
        struct rlimit r;
        if (getrlimit(RLIMIT_NPROC, &r) != 0)
            return 1;
        printf("nproc: soft %llu hard %llu\n", (unsigned long long)r.rlim_cur,
               (unsigned long long)r.rlim_max);
        return 0;
    }
    fprintf(stderr, "usage: limits threads|procs|zombies|nproc\n");
    return 2;
}
