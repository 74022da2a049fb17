/*
 * fork_ipc.c -- a user interrupt from one process to another through an inherited fd.
 *
 * The parent becomes a receiver (handler, vector fd for vector 7, STUI) and forks.  The child
 * inherits the fd, connects to it with uintr_register_sender, sends once and exits 0.  The
 * parent polls with usleep(1) until its handler has run, then reaps the child.
 *
 * Expected output (both ABIs):
 *     Parent: receiver ready on vector 7
 *     Child: sending IPI to parent
 *     Parent: user interrupt received, vector 7
 *     Parent: child exited with status 0
 *     Success
 */
#include "uintr.h"

#include <sys/wait.h>

#define VECTOR 7

static volatile unsigned long handled;
static volatile unsigned long long handled_vector = ~0ULL;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    handled_vector = vector;
    handled++;
}

static void child(int fd)
{
    int index = uintr_sender_register(fd);
    if (index < 0) {
        uintr_printf("Child: uintr_register_sender failed: %s\n", uintr_errno_name(errno));
        _exit(2);
    }
    uintr_printf("Child: sending IPI to parent\n");
    _senduipi((unsigned long long)index);
    if (uintr_sender_unregister(fd, index) < 0) {
        uintr_printf("Child: uintr_unregister_sender failed: %s\n", uintr_errno_name(errno));
        _exit(3);
    }
    _exit(0);
}

int main(void)
{
    int status = 0;

    uintr_require_handler(ui_handler, 0);
    int fd = uintr_vec_fd(VECTOR);
    if (fd < 0)
        uintr_fail_errno("uintr_vector_fd");
    _stui();
    uintr_printf("Parent: receiver ready on vector %d\n", VECTOR);

    pid_t pid = fork();
    if (pid < 0)
        uintr_fail_errno("fork");
    if (pid == 0)
        child(fd);

    /* Poll for the interrupt; if the child is gone and nothing came, give up soon. */
    int reaped = 0;
    for (unsigned long polls = 0; !handled; polls++) {
        if (!reaped) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid)
                reaped = 1;
            else if (w < 0)
                uintr_fail_errno("waitpid");
        } else if (polls > 10000) {
            break;
        }
        if (!handled)
            usleep(1);
    }
    if (!reaped && waitpid(pid, &status, 0) != pid)
        uintr_fail_errno("waitpid");
    if (!handled)
        uintr_fail("the child exited (status 0x%x) without interrupting the parent", status);

    uintr_printf("Parent: user interrupt received, vector %llu\n", handled_vector);
    if (!WIFEXITED(status))
        uintr_fail("child terminated by signal %d", WTERMSIG(status));
    uintr_printf("Parent: child exited with status %d\n", WEXITSTATUS(status));
    if (WEXITSTATUS(status) != 0 || handled != 1 || handled_vector != VECTOR)
        uintr_fail("expected one interrupt on vector %d and child status 0", VECTOR);

    _clui();
    close(fd);
    if (uintr_handler_unregister() < 0)
        uintr_fail_errno("uintr_unregister_handler");
    uintr_printf("Success\n");
    return 0;
}
