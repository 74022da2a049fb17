/*
 * uintr_sigill_sigsegv.c -- the signals a faulting SENDUIPI (and a guest access to kernel
 * memory) raise, caught by a SA_SIGINFO handler that siglongjmps back.
 *
 *   no registration at all (IA32_UINTR_TT[0] = 0)      -> SIGILL  ILL_ILLOPN, si_addr = rip
 *   index 256 (> UITTSZ = 255), 255 (empty), 2^64 - 1  -> SIGSEGV SI_KERNEL, si_addr 0
 *   after the only sender unregistered (table empty)    -> SIGILL  ILL_ILLOPN
 *   a cleared entry of a table still in use             -> SIGSEGV SI_KERNEL
 *   a read of the kernel's UPID/UITT area                -> SIGSEGV SEGV_MAPERR at that address
 *   a thread that did not register (RFC: no UITT of its own -> SIGILL; uintr-next: the
 *   process's UITT -> delivered)
 *
 * Every faulting rip must point at the SENDUIPI (F3 [REX] 0F C7 /6).  Valid sends are
 * self-interrupts and must each be delivered once.  Prints one line per check, then OK.
 *
 * One behaviour per run, chosen by the argument:
 *   ud         the SIGILL cases (no registration, table emptied, RFC: a thread without a UITT)
 *   close-empty  closing the vector fd of the only sender empties the table: SIGILL
 *   close-entry  closing one of two senders' vector fd clears its entry: SIGSEGV SI_KERNEL
 *   gp         the SIGSEGV/SI_KERNEL cases (index > UITTSZ, empty or cleared entries)
 *   kmem       loads and stores at the kernel area: SIGSEGV SEGV_MAPERR
 *   kmem-addr  ... and si_addr is the exact (upper-half) address, as Linux reports it
 *   ud-child   a forked child without a handler is killed by SIGILL (no registration)
 *   gp-child   a forked child without a handler is killed by SIGSEGV (index 256)
 */
#include "uintr.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <ucontext.h>

#define KERNEL_AREA 0xffff888000000000ULL

static int failures;
static volatile unsigned long handled[64];

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    handled[vector & 63]++;
}

static __thread sigjmp_buf env;
static __thread volatile int got_sig, got_code;
static __thread volatile uintptr_t got_addr, got_rip;

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
    ucontext_t *uc = uctx;
    got_sig = sig;
    got_code = si->si_code;
    got_addr = (uintptr_t)si->si_addr;
    got_rip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    siglongjmp(env, 1);
}

static const char *sig_name(int s)
{
    return s == SIGILL ? "SIGILL" : s == SIGSEGV ? "SIGSEGV" : s ? "other signal" : "none";
}

static const char *code_name(int sig, int code)
{
    if (code == SI_KERNEL)
        return "SI_KERNEL";
    if (sig == SIGILL && code == ILL_ILLOPN)
        return "ILL_ILLOPN";
    if (sig == SIGSEGV && code == SEGV_MAPERR)
        return "SEGV_MAPERR";
    if (sig == SIGSEGV && code == SEGV_ACCERR)
        return "SEGV_ACCERR";
    return "other";
}

static void fail(const char *what)
{
    uintr_printf("FAIL %s\n", what);
    failures++;
}

/* Is `rip` a SENDUIPI: F3, an optional REX prefix, 0F C7, ModRM with reg = 6, mod = 3? */
static int at_senduipi(uintptr_t rip)
{
    const unsigned char *p = (const unsigned char *)rip;
    if (p[0] != 0xf3)
        return 0;
    p++;
    if ((p[0] & 0xf0) == 0x40)
        p++;
    return p[0] == 0x0f && p[1] == 0xc7 && (p[2] & 0xf8) == 0xf0;
}

__attribute__((noinline)) static void send(unsigned long long index) { _senduipi(index); }

/* SENDUIPI `index`, expecting signal `sig` with `code` (sig 0: no signal, and `vector`
 * must then be delivered exactly once). */
static void check_send(const char *name, unsigned long long index, int sig, int code, int vector)
{
    unsigned long before = vector >= 0 ? handled[vector] : 0;
    got_sig = 0;
    if (sigsetjmp(env, 1) == 0) {
        send(index);
        /* A self-interrupt arrives at an instruction boundary soon after the send. */
        for (int i = 0; i < 100000 && vector >= 0 && handled[vector] == before; i++)
            uintr_cpu_relax();
    }
    if (got_sig == 0) {
        if (sig != 0) {
            uintr_printf("FAIL %s: no signal, expected %s\n", name, sig_name(sig));
            failures++;
            return;
        }
        unsigned long n = handled[vector] - before;
        uintr_printf("%s: no signal, vector %d delivered %lu\n", name, vector, n);
        if (n != 1)
            fail(name);
        return;
    }
    uintr_printf("%s: %s %s", name, sig_name(got_sig), code_name(got_sig, got_code));
    if (got_sig == SIGSEGV && got_code == SI_KERNEL)
        uintr_printf(" si_addr %s", got_addr == 0 ? "0" : "nonzero");
    if (got_sig == SIGILL)
        uintr_printf(" si_addr %s", got_addr == got_rip ? "rip" : "not rip");
    uintr_printf(" rip %s\n", at_senduipi(got_rip) ? "at SENDUIPI" : "elsewhere");
    if (got_sig != sig || got_code != code || !at_senduipi(got_rip) ||
        (sig == SIGSEGV && got_addr != 0) || (sig == SIGILL && got_addr != got_rip))
        fail(name);
}

static int vec_fd(int vector)
{
    int fd = uintr_vec_fd((unsigned long long)vector);
    if (fd < 0)
        uintr_fail_errno("vector fd");
    return fd;
}

static int reg(int fd, int want)
{
    int idx = uintr_sender_register(fd);
    if (idx != want)
        uintr_fail("register_sender: %d (errno %s), expected %d", idx, uintr_errno_name(errno),
                   want);
    return idx;
}

static void unreg(int fd, int idx)
{
    if (uintr_sender_unregister(fd, idx) != 0)
        uintr_fail_errno("unregister_sender");
}

static void *other_thread(void *arg)
{
    (void)arg;
    /* RFC v1: this thread has no UITT, so TT[0] = 0.  uintr-next: index 1 is the process's. */
#ifdef UINTR_ABI_RFC
    check_send("other thread, index 1", 1, SIGILL, ILL_ILLOPN, -1);
#else
    got_sig = 0;
    if (sigsetjmp(env, 1) == 0)
        send(1);
    if (got_sig) {
        uintr_printf("FAIL other thread, index 1: %s\n", sig_name(got_sig));
        failures++;
    } else {
        uintr_printf("other thread, index 1: no signal\n");
    }
#endif
    return NULL;
}

static void setup(int *fd2, int *fd3)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGILL, &sa, NULL) || sigaction(SIGSEGV, &sa, NULL))
        uintr_fail_errno("sigaction");
    uintr_require_handler(ui_handler, 0);
    *fd2 = vec_fd(2);
    *fd3 = vec_fd(3);
    _stui();
}

static void mode_ud(int fd2, int fd3)
{
    check_send("no registration", 0, SIGILL, ILL_ILLOPN, -1);
    int i0 = reg(fd2, 0);
    check_send("registered index 0", 0, 0, 0, 2);
    unreg(fd2, i0);
    check_send("after unregister (table empty)", 0, SIGILL, ILL_ILLOPN, -1);

    i0 = reg(fd2, 0);
    int i1 = reg(fd3, 1);
    pthread_t th;
    unsigned long before = handled[3];
    if (pthread_create(&th, NULL, other_thread, NULL) != 0)
        uintr_fail("pthread_create");
    pthread_join(th, NULL);
    for (int i = 0; i < 100000 && handled[3] == before; i++)
        uintr_cpu_relax();
    uintr_printf("vector 3 from the other thread: %lu\n", handled[3] - before);
#ifdef UINTR_ABI_RFC
    if (handled[3] != before)
        fail("rfc: the other thread must not have sent");
#else
    if (handled[3] != before + 1)
        fail("next: the other thread's send must be delivered once");
#endif
    unreg(fd2, i0);
    unreg(fd3, i1);
    check_send("after unregistering both", 1, SIGILL, ILL_ILLOPN, -1);
}

/* Closing the last reference to a vector fd removes the senders connected through it: the
 * entry is cleared (#GP) and, when the table is then empty, TT is cleared too (#UD). */
static void mode_close(int fd2, int empty)
{
    int i0 = empty ? -1 : reg(fd2, 0);
    int fd4 = vec_fd(4);
    int i4 = reg(fd4, empty ? 0 : 1);
    check_send("sender through vector 4's fd", (unsigned long long)i4, 0, 0, 4);
    close(fd4);
    if (empty)
        check_send("after closing vector 4's fd (table empty)", (unsigned long long)i4, SIGILL,
                   ILL_ILLOPN, -1);
    else
        check_send("after closing vector 4's fd (entry cleared)", (unsigned long long)i4,
                   SIGSEGV, SI_KERNEL, -1);
    if (!empty) {
        check_send("entry 0 still works", 0, 0, 0, 2);
        unreg(fd2, i0);
    }
}

static void mode_gp(int fd2, int fd3)
{
    int i0 = reg(fd2, 0);
    check_send("index 256", 256, SIGSEGV, SI_KERNEL, -1);
    check_send("index 255 (empty entry)", 255, SIGSEGV, SI_KERNEL, -1);
    check_send("index 2^64-1", ~0ULL, SIGSEGV, SI_KERNEL, -1);
    check_send("index 0 still works", 0, 0, 0, 2);
    int i1 = reg(fd3, 1);
    unreg(fd2, i0);
    check_send("cleared entry 0, entry 1 in use", 0, SIGSEGV, SI_KERNEL, -1);
    check_send("entry 1", 1, 0, 0, 3);
    unreg(fd3, i1);
}

/* The kernel's UPIDs and UITTs live at KERNEL_AREA, never mapped for user mode. */
static void mode_kmem(int exact_addr)
{
    static const unsigned long long addrs[] = {KERNEL_AREA, KERNEL_AREA + 0x1000};
    for (int w = 0; w < 2; w++) {
        for (int i = 0; i < 2; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s of kernel area +0x%llx", w ? "write" : "read",
                     addrs[i] - KERNEL_AREA);
            got_sig = 0;
            got_addr = 0;
            if (sigsetjmp(env, 1) == 0) {
                if (w)
                    *(volatile unsigned long *)addrs[i] = 0;
                else
                    (void)*(volatile unsigned long *)addrs[i];
            }
            uintr_printf("%s: %s %s", name, sig_name(got_sig), code_name(got_sig, got_code));
            if (exact_addr)
                uintr_printf(" si_addr %s", got_addr == addrs[i] ? "exact" : "wrong");
            uintr_printf("\n");
            if (got_sig != SIGSEGV || got_code != SEGV_MAPERR ||
                (exact_addr && got_addr != addrs[i])) {
                if (exact_addr && got_addr != addrs[i])
                    uintr_printf("si_addr %#lx, expected %#llx\n", (unsigned long)got_addr,
                                 addrs[i]);
                fail(name);
            }
        }
    }
}

/* The default action: a child that faults dies of the signal (its wait status shows it). */
static void mode_child(int fd2, int gp)
{
    int i0 = gp ? reg(fd2, 0) : -1;
    pid_t pid = fork();
    if (pid < 0)
        uintr_fail_errno("fork");
    if (pid == 0) {
        signal(SIGILL, SIG_DFL);
        signal(SIGSEGV, SIG_DFL);
        if (gp && uintr_sender_register(fd2) < 0) /* a UITT of the child's own (RFC) */
            _exit(3);
        send(gp ? 256 : 0);
        _exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        uintr_fail_errno("waitpid");
    int want = gp ? SIGSEGV : SIGILL;
    if (WIFSIGNALED(status))
        uintr_printf("child: killed by %s\n", sig_name(WTERMSIG(status)));
    else
        uintr_printf("child: exit status %d\n", WEXITSTATUS(status));
    if (!WIFSIGNALED(status) || WTERMSIG(status) != want)
        fail("child's termination signal");
    if (gp)
        unreg(fd2, i0);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    int fd2, fd3;
    setup(&fd2, &fd3);
    if (!strcmp(mode, "ud"))
        mode_ud(fd2, fd3);
    else if (!strcmp(mode, "gp"))
        mode_gp(fd2, fd3);
    else if (!strcmp(mode, "kmem"))
        mode_kmem(0);
    else if (!strcmp(mode, "kmem-addr"))
        mode_kmem(1);
    else if (!strcmp(mode, "close-empty"))
        mode_close(fd2, 1);
    else if (!strcmp(mode, "close-entry"))
        mode_close(fd2, 0);
    else if (!strcmp(mode, "ud-child"))
        mode_child(fd2, 0);
    else if (!strcmp(mode, "gp-child"))
        mode_child(fd2, 1);
    else
        uintr_fail("usage: uintr_sigill_sigsegv ud|gp|close-empty|close-entry|kmem|kmem-addr|ud-child|gp-child");
    _clui();
    close(fd2);
    close(fd3);
    uintr_printf("deliveries: vector 2 %lu, vector 3 %lu, vector 4 %lu\n", handled[2], handled[3],
                 handled[4]);
    if (failures) {
        uintr_printf("FAILED: %d check(s)\n", failures);
        return 1;
    }
    uintr_printf("OK\n");
    return 0;
}
