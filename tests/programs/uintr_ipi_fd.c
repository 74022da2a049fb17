/*
 * uintr_ipi_fd.c -- a UITT carried to another program by uintr_ipi_fd (uintr-next only).
 *
 * The parent is a receiver (vectors 7 and 9) with sender connections to itself in its UITT.
 * It makes an ipi fd for that table, keeps it open across exec and runs itself again as the
 * child, which starts with no UITT (execve resets UINTR state):
 *   - SENDUIPI before the ioctl raises SIGILL (TT is clear: #UD);
 *   - ioctl(UIPI_SET_TARGET_TABLE) returns 0, and the SENDUIPI right after it works: the
 *     change of the thread's UINTR state reaches its CPU before the ioctl returns to user;
 *   - a thread created afterwards sends (vector 9) through the same (per-process) table;
 *   - UIPI_CLEAR_TARGET_TABLE is EOPNOTSUPP, an unknown request ENOTTY.
 * The parent, after waitpid, finds vectors 7 and 9 delivered once each.  Then OK.
 */
#include "uintr.h"

#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

static volatile unsigned long handled[64];

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    handled[vector & 63]++;
}

static sigjmp_buf env;
static volatile int got_sig;

static void on_sigill(int sig)
{
    got_sig = sig;
    siglongjmp(env, 1);
}

static void *sender_thread(void *arg)
{
    _senduipi((unsigned long long)(long)arg);
    return NULL;
}

static int child(int fd, int idx, int idx9)
{
    volatile int bad = 0;
    signal(SIGILL, on_sigill);
    got_sig = 0;
    if (sigsetjmp(env, 1) == 0)
        _senduipi((unsigned long long)idx);
    uintr_printf("child: SENDUIPI before the ioctl: %s\n", got_sig == SIGILL ? "SIGILL" : "no signal");
    bad |= got_sig != SIGILL;

    int r = ioctl(fd, UIPI_SET_TARGET_TABLE);
    uintr_printf("child: UIPI_SET_TARGET_TABLE: %d\n", r);
    bad |= r != 0;
    got_sig = 0;
    if (sigsetjmp(env, 1) == 0)
        _senduipi((unsigned long long)idx);
    uintr_printf("child: SENDUIPI right after it: %s\n", got_sig ? "signal" : "sent");
    bad |= got_sig != 0;
    signal(SIGILL, SIG_DFL);

    pthread_t th;
    if (pthread_create(&th, NULL, sender_thread, (void *)(long)idx9) != 0 || pthread_join(th, NULL))
        return 2;
    uintr_printf("child: a new thread sent too\n");

    errno = 0;
    r = ioctl(fd, UIPI_CLEAR_TARGET_TABLE);
    uintr_printf("child: UIPI_CLEAR_TARGET_TABLE: %s\n", r == -1 ? uintr_errno_name(errno) : "0");
    bad |= !(r == -1 && errno == EOPNOTSUPP);
    errno = 0;
    r = ioctl(fd, 0x7599);
    uintr_printf("child: unknown request: %s\n", r == -1 ? uintr_errno_name(errno) : "0");
    bad |= !(r == -1 && errno == ENOTTY);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "child") == 0)
        return child(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));

    uintr_require_handler(ui_handler, 0);
    int vfd = uintr_vec_fd(7);
    int idx = uintr_sender_register(vfd);
    int vfd9 = uintr_vec_fd(9);
    int idx9 = uintr_sender_register(vfd9);
    int ipfd = uintr_ipi_fd(0);
    if (vfd < 0 || idx < 0 || vfd9 < 0 || idx9 < 0 || ipfd < 0) {
        uintr_printf("setup failed: %s\n", uintr_errno_name(errno));
        return 1;
    }
    if (fcntl(ipfd, F_SETFD, 0) != 0)
        return 1;
    _stui();

    pid_t pid = fork();
    if (pid == 0) {
        char a[16], b[16], c[16];
        snprintf(a, sizeof a, "%d", ipfd);
        snprintf(b, sizeof b, "%d", idx);
        snprintf(c, sizeof c, "%d", idx9);
        execl("/proc/self/exe", argv[0], "child", a, b, c, (char *)NULL);
        _exit(9);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return 1;
    for (volatile long i = 0; i < 1000000 && !(handled[7] && handled[9]); i++)
        ;
    uintr_printf("parent: child exit status %d, vector 7 delivered %lu, vector 9 %lu\n",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1, handled[7], handled[9]);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0 && handled[7] == 1 && handled[9] == 1))
        return 1;
    uintr_printf("OK\n");
    return 0;
}
