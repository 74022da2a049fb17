/*
 * fault_signals.c -- one architectural fault per run, and the signal Linux turns it into.
 *
 *   fault_signals MODE handler   a SA_SIGINFO handler prints what it got, then siglongjmps
 *   fault_signals MODE default   no handler: the default action ends the program
 *
 * MODE (fault -> signal, si_code, si_addr on Linux x86-64):
 *   read-unmapped    load from 0x10                 SIGSEGV SEGV_MAPERR  0x10
 *   write-unmapped   store to 0x100                 SIGSEGV SEGV_MAPERR  0x100
 *   exec-unmapped    call 0x1000 (nothing mapped)   SIGSEGV SEGV_MAPERR  0x1000
 *   write-readonly   store to a PROT_READ page      SIGSEGV SEGV_ACCERR  the address
 *   exec-data        call a PROT_READ|WRITE page    SIGSEGV SEGV_ACCERR  the page
 *   noncanonical     load from 0x8000000000000000   SIGSEGV SI_KERNEL    0 (#GP)
 *   noncanonical-low load from 0x0000800000000010   SIGSEGV SI_KERNEL    0 (#GP)
 *   noncanonical-alias  load from 0x0010000000000000 + &a_global (its low 52 bits name a
 *                    mapped page)                   SIGSEGV SI_KERNEL    0 (#GP)
 *   noncanonical-stack  load from (%rsp + off), just below 2^63: a stack reference
 *                                                   SIGBUS  SI_KERNEL    0 (#SS)
 *   kernel-half      load from 0xffff888000000010   SIGSEGV SEGV_MAPERR  the address
 *   exec-noncanonical  jump to 0x8000000000000000  SIGSEGV SI_KERNEL    0 (#GP)
 *   exec-noncanonical-rip  the same; the RIP must be the jump's (SDM: #GP of the jump)
 *   exec-kernel-half jump to 0xffff888000000000     SIGSEGV SEGV_MAPERR  the address
 *   file-past-eof    load from the 2nd page of a 2-page MAP_SHARED mapping of a 1-page file
 *                                                   SIGBUS  BUS_ADRERR   the address
 *   fxsave-crossing  fxsave of 512 bytes whose last 256 fall on a PROT_NONE page
 *                                                   SIGSEGV SEGV_ACCERR  in that page (*)
 *   fnstenv-crossing fnstenv of 28 bytes, 16 of them on a PROT_NONE page (the same)
 * (*) which byte is the processor's choice (an AMD EPYC reports the last one, the emulator the
 *     first): si_addr is "ok" anywhere in the part on the PROT_NONE page.
 *   ud2              ud2                            SIGILL  ILL_ILLOPN   the ud2
 *   uintr-insn       STUI (F3 0F 01 EF) without CPUID.UINTR
 *                                                   SIGILL  ILL_ILLOPN   the STUI
 *   div-zero         idiv by 0                      SIGFPE  FPE_INTDIV   the idiv
 *   div-overflow     INT64_MIN / -1                 SIGFPE  FPE_INTDIV   the idiv
 *   int3             int3                           SIGTRAP SI_KERNEL    0
 *
 * Before the fault it prints "MODE: expect addr 0x..." (the si_addr Linux reports), so the
 * test can check the emulator's termination line against it.  The handler prints
 *   "caught SIGNAME si_code=CODE si_addr=ok|0x... rip=ok|elsewhere"
 * where rip is the ucontext RIP compared with the faulting instruction (after it, for int3).
 * No output is buffered across the fault: every line is flushed before it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

/* Labels at the faulting instructions (noinline + noclone: each asm body exists once). */
extern char ud2_here[], stui_here[], div_here[], int3_here[], int3_after[];
extern char fxsave_here[], fnstenv_here[];

__attribute__((noinline, noclone)) static void do_ud2(void)
{
    __asm__ volatile(".globl ud2_here\nud2_here: ud2" ::: "memory");
}

__attribute__((noinline, noclone)) static void do_stui(void)
{
    __asm__ volatile(".globl stui_here\nstui_here: .byte 0xf3, 0x0f, 0x01, 0xef" ::: "memory");
}

__attribute__((noinline, noclone)) static long do_div(long a, long b)
{
    long q;
    __asm__ volatile("mov %1, %%rax\n\tcqo\n\t.globl div_here\ndiv_here: idivq %2\n\tmov %%rax, %0"
                     : "=r"(q)
                     : "r"(a), "r"(b)
                     : "rax", "rdx", "cc");
    return q;
}

__attribute__((noinline, noclone)) static void do_int3(void)
{
    __asm__ volatile(".globl int3_here\nint3_here: int3\n.globl int3_after\nint3_after: nop" ::
                         : "memory");
}

/* Stores made by a helper of the engine's, not by its translated code (the engine used to run on
 * after their faulting store). */
__attribute__((noinline, noclone)) static void do_fxsave(void *p)
{
    __asm__ volatile(".globl fxsave_here\nfxsave_here: fxsave (%0)" ::"r"(p) : "memory");
}

__attribute__((noinline, noclone)) static void do_fnstenv(void *p)
{
    __asm__ volatile(".globl fnstenv_here\nfnstenv_here: fnstenv (%0)" ::"r"(p) : "memory");
}

__attribute__((noinline, noclone)) static long read_at(volatile long *p) { return *p; }
/* A load whose base register is RSP: a stack reference (#SS if not canonical). */
__attribute__((noinline, noclone)) static long read_stack_at(unsigned long off)
{
    long v;
    __asm__ volatile("mov (%%rsp,%1,1), %0" : "=r"(v) : "r"(off) : "memory");
    return v;
}
__attribute__((noinline, noclone)) static void write_at(volatile long *p) { *p = 1; }
__attribute__((noinline, noclone)) static void call_at(void (*fn)(void)) { fn(); }

static sigjmp_buf env;
static volatile int got_sig, got_code;
static volatile uintptr_t got_addr, got_rip;

static void handler(int sig, siginfo_t *si, void *uctx)
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
    switch (s) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGTRAP: return "SIGTRAP";
    default: return "other";
    }
}

static const char *code_name(int sig, int code)
{
    if (code == SI_KERNEL)
        return "SI_KERNEL";
    if (sig == SIGSEGV && code == SEGV_MAPERR)
        return "SEGV_MAPERR";
    if (sig == SIGSEGV && code == SEGV_ACCERR)
        return "SEGV_ACCERR";
    if (sig == SIGBUS && code == BUS_ADRERR)
        return "BUS_ADRERR";
    if (sig == SIGILL && code == ILL_ILLOPN)
        return "ILL_ILLOPN";
    if (sig == SIGILL && code == ILL_ILLOPC)
        return "ILL_ILLOPC";
    if (sig == SIGFPE && code == FPE_INTDIV)
        return "FPE_INTDIV";
    if (sig == SIGTRAP && code == TRAP_BRKPT)
        return "TRAP_BRKPT";
    return "other";
}

struct fault {
    uintptr_t addr;     /* the si_addr Linux reports (the first one it may report) */
    uintptr_t addr_hi;  /* if not 0: any si_addr in [addr, addr_hi) is right */
    uintptr_t rip_lo;   /* the ucontext RIP must lie in [rip_lo, rip_hi) */
    uintptr_t rip_hi;
};

static char *map_or_die(size_t len, int prot)
{
    char *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

static volatile long *target;
static void (*volatile jump_to)(void);
static volatile long dividend, divisor;

static volatile long a_global;
static void fault_read(void) { (void)read_at(target); }
/* RSP + off is just below 2^63: not canonical, and its low 52 bits name no mapped page (the
 * emulator's engine would otherwise read the alias, see noncanonical-alias). */
static void fault_read_stack(void)
{
    (void)read_stack_at(0x8000000000000000UL - (uintptr_t)__builtin_frame_address(0));
}
static void fault_write(void) { write_at(target); }
static void fault_call(void) { call_at(jump_to); }
static void fault_div(void) { (void)do_div(dividend, divisor); }
static char *volatile save_area;
static void fault_fxsave(void) { do_fxsave(save_area); }
static void fault_fnstenv(void) { do_fnstenv(save_area); }

typedef void (*fault_fn)(void);

/* Prepare MODE: fill in the expectation; returns the function that faults. */
static fault_fn prepare(const char *mode, struct fault *f)
{
    memset(f, 0, sizeof *f);
    f->rip_lo = 0;
    f->rip_hi = UINTPTR_MAX; /* default: any rip */
    if (!strcmp(mode, "read-unmapped") || !strcmp(mode, "write-unmapped")) {
        target = (volatile long *)(uintptr_t)(mode[0] == 'r' ? 0x10 : 0x100);
        f->addr = (uintptr_t)target;
        f->rip_lo = mode[0] == 'r' ? (uintptr_t)read_at : (uintptr_t)write_at;
        f->rip_hi = f->rip_lo + 32;
        return mode[0] == 'r' ? fault_read : fault_write;
    }
    if (!strcmp(mode, "exec-unmapped")) {
        jump_to = (void (*)(void))(uintptr_t)0x1000;
        f->addr = f->rip_lo = 0x1000;
        f->rip_hi = 0x1001;
        return fault_call;
    }
    if (!strcmp(mode, "write-readonly")) {
        char *p = map_or_die(4096, PROT_READ);
        target = (volatile long *)(p + 64);
        f->addr = (uintptr_t)target;
        f->rip_lo = (uintptr_t)write_at;
        f->rip_hi = f->rip_lo + 32;
        return fault_write;
    }
    if (!strcmp(mode, "exec-data")) {
        char *p = map_or_die(4096, PROT_READ | PROT_WRITE);
        p[0] = (char)0xc3; /* ret: harmless if it did execute */
        jump_to = (void (*)(void))p;
        f->addr = f->rip_lo = (uintptr_t)p;
        f->rip_hi = f->rip_lo + 1;
        return fault_call;
    }
    if (!strcmp(mode, "noncanonical") || !strcmp(mode, "noncanonical-low")) {
        target = (volatile long *)(uintptr_t)(strcmp(mode, "noncanonical") == 0
                                                  ? 0x8000000000000000ULL
                                                  : 0x0000800000000010ULL);
        f->addr = 0;
        f->rip_lo = (uintptr_t)read_at;
        f->rip_hi = f->rip_lo + 32;
        return fault_read;
    }
    if (!strcmp(mode, "noncanonical-alias")) {
        target = (volatile long *)((uintptr_t)&a_global | (1ULL << 52));
        f->addr = 0;
        f->rip_lo = (uintptr_t)read_at;
        f->rip_hi = f->rip_lo + 32;
        return fault_read;
    }
    if (!strcmp(mode, "noncanonical-stack")) {
        f->addr = 0;
        f->rip_lo = (uintptr_t)read_stack_at;
        f->rip_hi = f->rip_lo + 32;
        return fault_read_stack;
    }
    if (!strcmp(mode, "kernel-half")) {
        target = (volatile long *)(uintptr_t)0xffff888000000010ULL;
        f->addr = (uintptr_t)target;
        f->rip_lo = (uintptr_t)read_at;
        f->rip_hi = f->rip_lo + 32;
        return fault_read;
    }
    if (!strcmp(mode, "exec-noncanonical") || !strcmp(mode, "exec-noncanonical-rip")) {
        /* "exec-noncanonical" checks only the signal; "-rip" also checks that the RIP is the
         * jump in call_at (the #GP is the jump's: nothing has run at the target). */
        jump_to = (void (*)(void))(uintptr_t)0x8000000000000000ULL;
        f->addr = 0;
        if (!strcmp(mode, "exec-noncanonical-rip")) {
            f->rip_lo = (uintptr_t)call_at;
            f->rip_hi = f->rip_lo + 32;
        }
        return fault_call;
    }
    if (!strcmp(mode, "exec-kernel-half")) {
        /* Canonical: a page fault at the target (the jump has been made). */
        jump_to = (void (*)(void))(uintptr_t)0xffff888000000000ULL;
        f->addr = f->rip_lo = (uintptr_t)jump_to;
        f->rip_hi = f->rip_lo + 1;
        return fault_call;
    }
    if (!strcmp(mode, "file-past-eof")) {
        char path[] = "/tmp/fault_signals-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0 || ftruncate(fd, 4096) != 0) {
            perror("temporary file");
            exit(1);
        }
        char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        unlink(path);
        close(fd);
        if (p == MAP_FAILED) {
            perror("mmap");
            exit(1);
        }
        p[8] = 1; /* the first page is backed by the file */
        target = (volatile long *)(p + 4096 + 16);
        f->addr = (uintptr_t)target;
        f->rip_lo = (uintptr_t)read_at;
        f->rip_hi = f->rip_lo + 32;
        return fault_read;
    }
    if (!strcmp(mode, "fxsave-crossing") || !strcmp(mode, "fnstenv-crossing")) {
        int fx = mode[1] == 'x';
        char *p = map_or_die(8192, PROT_READ | PROT_WRITE);
        if (mprotect(p + 4096, 4096, PROT_NONE) != 0) {
            perror("mprotect");
            exit(1);
        }
        save_area = p + 4096 - (fx ? 256 : 12);
        f->addr = (uintptr_t)(p + 4096);
        f->addr_hi = f->addr + (fx ? 256 : 16);
        f->rip_lo = (uintptr_t)(fx ? fxsave_here : fnstenv_here);
        f->rip_hi = f->rip_lo + 1;
        return fx ? fault_fxsave : fault_fnstenv;
    }
    if (!strcmp(mode, "ud2")) {
        f->addr = f->rip_lo = (uintptr_t)ud2_here;
        f->rip_hi = f->rip_lo + 1;
        return do_ud2;
    }
    if (!strcmp(mode, "uintr-insn")) {
        f->addr = f->rip_lo = (uintptr_t)stui_here;
        f->rip_hi = f->rip_lo + 1;
        return do_stui;
    }
    if (!strcmp(mode, "div-zero") || !strcmp(mode, "div-overflow")) {
        int zero = !strcmp(mode, "div-zero");
        dividend = zero ? 42 : INT64_MIN;
        divisor = zero ? 0 : -1;
        f->addr = f->rip_lo = (uintptr_t)div_here;
        f->rip_hi = f->rip_lo + 1;
        return fault_div;
    }
    if (!strcmp(mode, "int3")) {
        f->addr = 0;
        f->rip_lo = (uintptr_t)int3_after; /* a trap: RIP is after the int3 */
        f->rip_hi = f->rip_lo + 1;
        return do_int3;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[2], "handler") && strcmp(argv[2], "default"))) {
        fprintf(stderr, "usage: fault_signals MODE handler|default\n");
        return 2;
    }
    const char *mode = argv[1];
    struct fault f;
    fault_fn fn = prepare(mode, &f);

    if (!strcmp(argv[2], "handler")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = handler;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP};
        for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            if (sigaction(sigs[i], &sa, NULL) != 0) {
                perror("sigaction");
                return 1;
            }
    }
    printf("%s: expect addr %#lx\n", mode, (unsigned long)f.addr);
    fflush(stdout);

    if (sigsetjmp(env, 1) == 0) {
        fn();
        printf("%s: no fault\n", mode);
        return 0;
    }
    printf("caught %s si_code=%s si_addr=", sig_name(got_sig), code_name(got_sig, got_code));
    if (got_addr == f.addr || (got_addr > f.addr && got_addr < f.addr_hi))
        printf("ok");
    else
        printf("%#lx", (unsigned long)got_addr);
    printf(" rip=%s\n", got_rip >= f.rip_lo && got_rip < f.rip_hi ? "ok" : "elsewhere");
    /* The program goes on normally after the fault. */
    printf("%s: recovered\n", mode);
    return 0;
}
