/*
 * fault_uintr.c -- faults around user-interrupt delivery (build with -muintr
 * -mgeneral-regs-only -I examples; -DUINTR_ABI_RFC for the RFC v1 syscalls).
 *
 *   fault_uintr handler-null handler|default
 *       The UINTR handler stores through a NULL pointer: SIGSEGV SEGV_MAPERR, si_addr 0,
 *       raised inside the handler.  "handler": a SA_SIGINFO handler reports it and
 *       siglongjmps out of the UINTR handler; "default": the program dies (status 139).
 *   fault_uintr uiret-corrupt handler|default
 *       The UINTR handler overwrites its saved RIP with the non-canonical 0x8000000000000000
 *       before UIRET: UIRET raises #GP(0), i.e. SIGSEGV SI_KERNEL, si_addr 0, at the UIRET.
 *   fault_uintr spin
 *       The UINTR handler never returns (the test runs it under --max-insns).
 *   fault_uintr storm [N]
 *       A second thread executes SENDUIPI N times (default 100000, one vector) while the receiver runs
 *       with UIF = 0: the posts coalesce in PIR/UIRR, and the receiver's STUI then delivers
 *       exactly one user interrupt.
 *
 * Every user interrupt here is sent by the program to itself, so the output is deterministic.
 */
#include "uintr.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>

#define VECTOR 5
#define STORM_SENDS 100000 /* default; "storm N" sends N times */

static int *volatile null_ptr;
static volatile unsigned long handled;
static volatile int mode_id;
enum { HANDLER_NULL = 1, UIRET_CORRUPT, SPIN, STORM };

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    handled++;
    if (mode_id == HANDLER_NULL) {
        *null_ptr = 1; /* faults inside the handler */
    } else if (mode_id == UIRET_CORRUPT) {
        frame->rip = 0x8000000000000000ULL; /* UIRET must #GP on it */
    } else if (mode_id == SPIN) {
        static const char msg[] = "in the handler, spinning\n";
        uintr_raw_write(1, msg, sizeof msg - 1);
        for (volatile unsigned long n = 0;; n++)
            uintr_cpu_relax();
    }
    (void)vector;
}

static sigjmp_buf env;
static volatile int got_sig, got_code;
static volatile uintptr_t got_addr, got_rip;

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
    return s == SIGSEGV ? "SIGSEGV" : s == SIGILL ? "SIGILL" : s == SIGBUS ? "SIGBUS" : "other";
}

static const char *code_name(int sig, int code)
{
    if (code == SI_KERNEL)
        return "SI_KERNEL";
    if (sig == SIGSEGV)
        return code == SEGV_MAPERR ? "SEGV_MAPERR" : code == SEGV_ACCERR ? "SEGV_ACCERR" : "other";
    if (sig == SIGILL)
        return code == ILL_ILLOPN ? "ILL_ILLOPN" : "other";
    return "other";
}

/* Is `rip` a UIRET (F3 0F 01 EC)? */
static int at_uiret(uintptr_t rip)
{
    const unsigned char *p = (const unsigned char *)rip;
    return p[0] == 0xf3 && p[1] == 0x0f && p[2] == 0x01 && p[3] == 0xec;
}

/* A sender connection from the calling thread to the receiver behind fd: the UITT index. */
static int connect_sender(int fd)
{
    int idx = uintr_sender_register(fd);
    if (idx < 0)
        uintr_fail_errno("register_sender");
    return idx;
}

static int make_receiver(void)
{
    uintr_require_handler(ui_handler, 0);
    int fd = uintr_vec_fd(VECTOR);
    if (fd < 0)
        uintr_fail_errno("vector fd");
    return fd;
}

static void install_fault_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) || sigaction(SIGILL, &sa, NULL) ||
        sigaction(SIGBUS, &sa, NULL))
        uintr_fail_errno("sigaction");
}

/* handler-null and uiret-corrupt: one self-interrupt, a fault in or after its handler. */
static int fault_in_delivery(const char *mode, int with_handler)
{
    int fd = make_receiver();
    int idx = connect_sender(fd);
    if (with_handler)
        install_fault_handler();
    uintr_printf("%s: sending\n", mode);
    if (sigsetjmp(env, 1) == 0) {
        _stui();
        _senduipi((unsigned long long)idx); /* delivered before the next instruction */
        for (int i = 0; i < 1000 && handled == 0; i++)
            uintr_cpu_relax();
        uintr_printf("%s: no fault (handler ran %lu time(s))\n", mode, handled);
        return 1;
    }
    uintr_printf("caught %s si_code=%s si_addr=%s", sig_name(got_sig),
                 code_name(got_sig, got_code),
                 got_addr == 0 ? "0" : "nonzero");
    if (mode_id == UIRET_CORRUPT)
        uintr_printf(" rip=%s", at_uiret(got_rip) ? "at UIRET" : "elsewhere");
    uintr_printf(" handler ran %lu time(s)\n", handled);
    /* siglongjmp left the UINTR handler without UIRET: UIF is still 0. */
    uintr_printf("UIF after the fault: %d\n", (int)_testui());
    close(fd);
    uintr_printf("%s: recovered\n", mode);
    return 0;
}

__attribute__((noreturn)) static void spin(void)
{
    int fd = make_receiver();
    int idx = connect_sender(fd);
    uintr_printf("spin: sending\n");
    _stui();
    _senduipi((unsigned long long)idx);
    for (;;)
        uintr_cpu_relax(); /* not reached: the handler never returns */
}

static volatile int storm_fd = -1;
static volatile int storm_ready, storm_done;
static volatile unsigned long storm_sent, storm_sends = STORM_SENDS;

static void *storm_sender(void *arg)
{
    (void)arg;
    while (!storm_ready)
        uintr_cpu_relax();
    int idx = connect_sender(storm_fd);
    for (unsigned long i = 0; i < storm_sends; i++) {
        _senduipi((unsigned long long)idx);
        storm_sent = i + 1;
    }
    storm_done = 1;
    return NULL;
}

static int storm(void)
{
    pthread_t th;
    if (pthread_create(&th, NULL, storm_sender, NULL) != 0)
        uintr_fail("pthread_create");
    storm_fd = make_receiver();
    _clui(); /* UIF = 0: nothing can be delivered while the sender runs */
    storm_ready = 1;
    while (!storm_done)
        uintr_cpu_relax();
    pthread_join(th, NULL);
    uintr_printf("storm: %lu sends done, handler ran %lu time(s) with UIF = 0\n", storm_sent,
                 handled);
    _stui();
    for (int i = 0; i < 1000 && handled == 0; i++)
        uintr_cpu_relax();
    uintr_printf("storm: after STUI the handler ran %lu time(s)\n", handled);
    close(storm_fd);
    return handled == 1 && storm_sent == storm_sends ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    int with_handler = argc > 2 && !strcmp(argv[2], "handler");
    if (!strcmp(mode, "handler-null")) {
        mode_id = HANDLER_NULL;
        return fault_in_delivery(mode, with_handler);
    }
    if (!strcmp(mode, "uiret-corrupt")) {
        mode_id = UIRET_CORRUPT;
        return fault_in_delivery(mode, with_handler);
    }
    if (!strcmp(mode, "spin")) {
        mode_id = SPIN;
        spin();
    }
    if (!strcmp(mode, "storm")) {
        mode_id = STORM;
        if (argc > 2)
            storm_sends = strtoul(argv[2], NULL, 10);
        return storm();
    }
    uintr_fail("usage: fault_uintr handler-null|uiret-corrupt [handler|default] | spin | storm [N]");
}
