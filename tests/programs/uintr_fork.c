/*
 * uintr_fork.c -- fork with an inherited vector fd.
 *
 * The parent is a receiver with two vector fds (vector 3: the parent's own sender
 * connection, registered BEFORE the fork; vector 5: for the child) and UIF = 1.  The child:
 *   - has UIF = 0 (_testui() == 0) and is not a receiver (uintr_wait -> EOPNOTSUPP);
 *   - uintr-next: the process UITT was copied, so SENDUIPI with the parent's index works
 *     (no SIGILL) and reaches the parent on vector 3;
 *     RFC v1: the UITT is the parent thread's, so the same SENDUIPI raises SIGILL;
 *   - registers as a sender through the inherited fd of vector 5 and sends once.
 * The parent blocks in waitpid (no WAITING flag: not interrupted), then finds each vector
 * delivered exactly once (RFC: vector 3 never) and the child's exit status 0.
 * Child lines come before the parent's (the parent prints after waitpid).  Then OK.
 */
#include "uintr.h"

#include <setjmp.h>
#include <signal.h>
#include <string.h>
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

static int child(int fd5, int parent_index)
{
    volatile int bad = 0; /* survives the siglongjmp below */
    unsigned int uif = _testui();
    uintr_printf("child: UIF %u\n", uif);
    bad |= uif != 0;

    errno = 0;
    int r = uintr_block(1000);
    uintr_printf("child: uintr_wait: %s\n", r == -1 ? uintr_errno_name(errno) : "returned");
    bad |= !(r == -1 && errno == EOPNOTSUPP);

    signal(SIGILL, on_sigill);
    got_sig = 0;
    if (sigsetjmp(env, 1) == 0)
        _senduipi((unsigned long long)parent_index);
    uintr_printf("child: SENDUIPI with the parent's index %d: %s\n", parent_index,
                 got_sig == SIGILL ? "SIGILL" : got_sig ? "other signal" : "no signal");
#ifdef UINTR_ABI_RFC
    bad |= got_sig != SIGILL;
#else
    bad |= got_sig != 0;
#endif
    signal(SIGILL, SIG_DFL);

    int idx = uintr_sender_register(fd5);
    if (idx < 0) {
        uintr_printf("child: register_sender: %s\n", uintr_errno_name(errno));
        return 2;
    }
    uintr_printf("child: registered through the inherited fd, index %d\n", idx);
    _senduipi((unsigned long long)idx);
    if (uintr_sender_unregister(fd5, idx) < 0)
        bad = 1;
    return bad;
}

int main(void)
{
    uintr_require_handler(ui_handler, 0);
    int fd3 = uintr_vec_fd(3), fd5 = uintr_vec_fd(5);
    if (fd3 < 0 || fd5 < 0)
        uintr_fail_errno("vector fd");
    int own = uintr_sender_register(fd3);
    if (own != 0)
        uintr_fail("parent register_sender: %d", own);
    _stui();

    pid_t pid = fork();
    if (pid < 0)
        uintr_fail_errno("fork");
    if (pid == 0)
        _exit(child(fd5, own));

    int status;
    if (waitpid(pid, &status, 0) != pid)
        uintr_fail_errno("waitpid");
    /* Interrupts posted while the parent slept in waitpid arrive as it returns. */
    unsigned long v3 = handled[3], v5 = handled[5];
    uintr_printf("parent: UIF %u\n", (unsigned)_testui());
    if (WIFEXITED(status))
        uintr_printf("parent: child exit status %d\n", WEXITSTATUS(status));
    else
        uintr_printf("parent: child killed by signal %d\n", WTERMSIG(status));
    uintr_printf("parent: vector 3 delivered %lu, vector 5 delivered %lu\n", v3, v5);

#ifdef UINTR_ABI_RFC
    unsigned long want3 = 0;
#else
    unsigned long want3 = 1;
#endif
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && v3 == want3 && v5 == 1;

    /* The parent's own connection is untouched by the child's use of the copy. */
    _senduipi((unsigned long long)own);
    for (int i = 0; i < 100000 && handled[3] == v3; i++)
        uintr_cpu_relax();
    uintr_printf("parent: own index %d still delivers: %lu\n", own, handled[3] - v3);
    ok &= handled[3] == v3 + 1;

    _clui();
    uintr_sender_unregister(fd3, own);
    close(fd3);
    close(fd5);
    if (!ok) {
        uintr_printf("FAILED\n");
        return 1;
    }
    uintr_printf("OK\n");
    return 0;
}
