/*
 * uintr_nofeature.c -- run with `--cpu-features -uintr`: a kernel on a CPU without user
 * interrupts.  CPUID.(EAX=7,ECX=0):EDX[5] (UINTR) reads 0; every UINTR syscall fails with
 * ENOSYS (uintr-next) or EOPNOTSUPP (RFC v1, -DUINTR_ABI_RFC) whatever its arguments (even
 * ones that would otherwise be EINVAL/EBADF); and the UINTR instructions raise #UD, i.e.
 * SIGILL with ILL_ILLOPN.  One line per check, then OK.
 */
#include "uintr.h"

#include <cpuid.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

#ifdef UINTR_ABI_RFC
#define WANT EOPNOTSUPP
#else
#define WANT ENOSYS
#endif

static int failures;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    (void)vector;
}

static void expect_unsupported(const char *name, long ret)
{
    int e = errno;
    if (ret == -1 && e == WANT) {
        uintr_printf("%s: errno %s\n", name, uintr_errno_name(e));
        return;
    }
    uintr_printf("FAIL %s: returned %ld errno %s, expected %s\n", name, ret,
                 ret == -1 ? uintr_errno_name(e) : "-", uintr_errno_name(WANT));
    failures++;
}

static sigjmp_buf env;
static volatile int got_sig, got_code;

static void on_sigill(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    got_sig = sig;
    got_code = si->si_code;
    siglongjmp(env, 1);
}

#define EXPECT_SIGILL(name, stmt)                                                                 \
    do {                                                                                          \
        got_sig = 0;                                                                              \
        if (sigsetjmp(env, 1) == 0) {                                                             \
            stmt;                                                                                 \
        }                                                                                         \
        if (got_sig == SIGILL && got_code == ILL_ILLOPN) {                                        \
            uintr_printf("%s: SIGILL ILL_ILLOPN\n", name);                                        \
        } else {                                                                                  \
            uintr_printf("FAIL %s: signal %d code %d\n", name, got_sig, got_code);               \
            failures++;                                                                           \
        }                                                                                         \
    } while (0)

int main(void)
{
    unsigned int a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    uintr_printf("cpuid.7.0 edx[5] uintr: %u\n", (d >> 5) & 1);
    if ((d >> 5) & 1)
        failures++;

    expect_unsupported("register_handler", uintr_register_handler(ui_handler, 0));
    expect_unsupported("register_handler bad flags", uintr_register_handler(ui_handler, 1));
    expect_unsupported("register_handler handler 0", uintr_register_handler(NULL, 0));
    expect_unsupported("unregister_handler", uintr_unregister_handler(0));
#ifdef UINTR_ABI_RFC
    expect_unsupported("create_fd", uintr_create_fd(0, 0));
    expect_unsupported("create_fd 64", uintr_create_fd(64, 0));
    expect_unsupported("register_sender", uintr_register_sender(0, 0));
    expect_unsupported("register_sender fd -1", uintr_register_sender(-1, 0));
    expect_unsupported("unregister_sender", uintr_unregister_sender(0, 0));
    expect_unsupported("wait", uintr_wait(0));
#else
    expect_unsupported("vector_fd", uintr_vector_fd(0, 0));
    expect_unsupported("vector_fd 64", uintr_vector_fd(64, 0));
    expect_unsupported("register_sender", uintr_register_sender(0, 0));
    expect_unsupported("register_sender fd -1", uintr_register_sender(-1, 0));
    expect_unsupported("unregister_sender", uintr_unregister_sender(0, 0));
    expect_unsupported("wait", uintr_wait(1000, 0));
    expect_unsupported("wait usec 2e9", uintr_wait(2000000000ULL, 0));
    expect_unsupported("register_self", uintr_register_self(0, 0));
    static char stack[4096];
    expect_unsupported("alt_stack", uintr_alt_stack(stack, sizeof stack, 0));
    expect_unsupported("ipi_fd", uintr_ipi_fd(0));
#endif

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigill;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGILL, &sa, NULL))
        uintr_fail_errno("sigaction");
    EXPECT_SIGILL("stui", _stui());
    EXPECT_SIGILL("clui", _clui());
    EXPECT_SIGILL("testui", (void)_testui());
    EXPECT_SIGILL("senduipi", _senduipi(0));
    EXPECT_SIGILL("uiret", __asm__ volatile("uiret" ::: "memory"));

    if (failures) {
        uintr_printf("FAILED: %d check(s)\n", failures);
        return 1;
    }
    uintr_printf("OK\n");
    return 0;
}
