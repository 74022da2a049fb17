/*
 * uintr.h -- a small wrapper around the Linux user-interrupt (UINTR) system calls, for the
 * uintr-emu example programs.  Header-only; build with
 *
 *     gcc -O2 -static -muintr -mgeneral-regs-only -pthread prog.c            (uintr-next ABI)
 *     gcc -O2 -static -muintr -mgeneral-regs-only -pthread -DUINTR_ABI_RFC prog.c  (RFC v1 ABI)
 *
 * Two generations of the kernel interface exist (docs/uintr.md §10):
 *
 *   RFC v1 (-DUINTR_ABI_RFC), syscalls 449-454:
 *     449 uintr_register_handler(handler, flags)   450 uintr_unregister_handler(flags)
 *     451 uintr_create_fd(vector, flags)            452 uintr_register_sender(fd, flags)
 *     453 uintr_unregister_sender(fd, flags)        454 uintr_wait(flags)
 *
 *   uintr-next (the default), syscalls 471-479:
 *     471 uintr_register_handler(handler, flags)   472 uintr_unregister_handler(flags)
 *     473 uintr_vector_fd(vector, flags)            474 uintr_register_sender(fd, flags)
 *     475 uintr_unregister_sender(index, flags)     476 uintr_wait(usec, flags)
 *     477 uintr_register_self(vector, flags)        478 uintr_alt_stack(sp, size, flags)
 *     479 uintr_ipi_fd(flags)
 *
 * All wrappers follow the libc convention: -1 with errno set on failure.  The programs use the
 * ABI-neutral helpers (uintr_handler_register, uintr_vec_fd, uintr_sender_register,
 * uintr_sender_unregister, uintr_block), so the same source builds for both generations.
 *
 * A user-interrupt handler always has the two-argument form (GCC pops the vector itself and
 * returns with UIRET; the one-argument form would return to the vector as an address):
 *
 *     static void __attribute__((interrupt))
 *     handler(struct __uintr_frame *frame, unsigned long long vector);
 *
 * It runs with UIF = 0 on the interrupted thread's stack (below the 128-byte red zone), saves
 * only the general registers it uses, and must not touch SSE/AVX state: the whole program is
 * compiled with -mgeneral-regs-only.  Keep handlers tiny: update a volatile variable and, at
 * most, write(2) through uintr_raw_write().
 */
#ifndef UINTR_EXAMPLES_H
#define UINTR_EXAMPLES_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "user interrupts exist only in 64-bit mode"
#endif
#if !defined(__UINTR__)
#error "compile with -muintr: interrupt handlers must end in UIRET, not IRETQ"
#endif

/* --- the instructions ------------------------------------------------------------------ */

#if defined(__has_include)
#if __has_include(<x86gprintrin.h>)
#define UINTR_HAVE_X86GPRINTRIN 1
#endif
#endif

#ifdef UINTR_HAVE_X86GPRINTRIN
#include <x86gprintrin.h> /* _clui, _stui, _testui, _senduipi, struct __uintr_frame */
#else
/* A compiler with -muintr but without the intrinsics header: the same names, by hand. */
struct __uintr_frame {
    unsigned long long rip;    /* RIP of the interrupted code */
    unsigned long long rflags; /* its RFLAGS */
    unsigned long long rsp;    /* its RSP */
};
static inline void _clui(void) { __asm__ volatile(".byte 0xf3, 0x0f, 0x01, 0xee" ::: "memory"); }
static inline void _stui(void) { __asm__ volatile(".byte 0xf3, 0x0f, 0x01, 0xef" ::: "memory"); }
static inline unsigned char _testui(void)
{
    unsigned char cf;
    __asm__ volatile(".byte 0xf3, 0x0f, 0x01, 0xed\n\tsetc %0" : "=r"(cf) : : "cc");
    return cf;
}
static inline void _senduipi(unsigned long long index)
{
    /* SENDUIPI %rax: F3 0F C7 /6 with ModRM = 11 110 000 */
    __asm__ volatile(".byte 0xf3, 0x0f, 0xc7, 0xf0" : : "a"(index) : "memory");
}
#endif

typedef void (*uintr_handler_t)(struct __uintr_frame *frame, unsigned long long vector);

/* --- constants ----------------------------------------------------------------------------- */

#define UINTR_MAX_VECTORS 64 /* vectors 0..63 per receiver thread */

/* uintr-next register_handler flags: user interrupts also end other blocking syscalls. */
#define UINTR_HANDLER_FLAG_WAITING_RECEIVER 0x1000
#define UINTR_HANDLER_FLAG_WAITING_SENDER 0x2000
#define UINTR_HANDLER_FLAG_WAITING_ANY 0x3000

/* uintr-next ioctls: _IO('U', n) on a uvec_fd, _IO('u', n) on a uipi_fd. */
#define UINTR_IS_ACTIVE 0x5500
#define UINTR_DISABLE 0x5501
#define UINTR_NOTIFY 0x5502
#define UIPI_SET_TARGET_TABLE 0x7500
#define UIPI_CLEAR_TARGET_TABLE 0x7501

/* --- system calls -------------------------------------------------------------------------- */

#ifdef UINTR_ABI_RFC
#define UINTR_ABI_NAME "rfc"
/* RFC v1 semantics at 449-454; -DUINTR_RFC_BASE=471 (Intel's intermediate series) or 450 (the
 * man-page draft) moves them, for --uintr-abi rfc:471 or rfc:450. */
#ifndef UINTR_RFC_BASE
#define UINTR_RFC_BASE 449
#endif
#define UINTR_NR_REGISTER_HANDLER (UINTR_RFC_BASE + 0)
#define UINTR_NR_UNREGISTER_HANDLER (UINTR_RFC_BASE + 1)
#define UINTR_NR_CREATE_FD (UINTR_RFC_BASE + 2)
#define UINTR_NR_REGISTER_SENDER (UINTR_RFC_BASE + 3)
#define UINTR_NR_UNREGISTER_SENDER (UINTR_RFC_BASE + 4)
#define UINTR_NR_WAIT (UINTR_RFC_BASE + 5)

static inline int uintr_register_handler(uintr_handler_t handler, unsigned int flags)
{
    return (int)syscall(UINTR_NR_REGISTER_HANDLER, handler, flags);
}
static inline int uintr_unregister_handler(unsigned int flags)
{
    return (int)syscall(UINTR_NR_UNREGISTER_HANDLER, flags);
}
static inline int uintr_create_fd(unsigned long long vector, unsigned int flags)
{
    return (int)syscall(UINTR_NR_CREATE_FD, vector, flags);
}
static inline int uintr_register_sender(int uintr_fd, unsigned int flags)
{
    return (int)syscall(UINTR_NR_REGISTER_SENDER, uintr_fd, flags);
}
static inline int uintr_unregister_sender(int uintr_fd, unsigned int flags)
{
    return (int)syscall(UINTR_NR_UNREGISTER_SENDER, uintr_fd, flags);
}
static inline int uintr_wait(unsigned int flags)
{
    return (int)syscall(UINTR_NR_WAIT, flags);
}

#else /* uintr-next */
#define UINTR_ABI_NAME "next"
#define UINTR_NR_REGISTER_HANDLER 471
#define UINTR_NR_UNREGISTER_HANDLER 472
#define UINTR_NR_VECTOR_FD 473
#define UINTR_NR_REGISTER_SENDER 474
#define UINTR_NR_UNREGISTER_SENDER 475
#define UINTR_NR_WAIT 476
#define UINTR_NR_REGISTER_SELF 477
#define UINTR_NR_ALT_STACK 478
#define UINTR_NR_IPI_FD 479

static inline int uintr_register_handler(uintr_handler_t handler, unsigned int flags)
{
    return (int)syscall(UINTR_NR_REGISTER_HANDLER, handler, flags);
}
static inline int uintr_unregister_handler(unsigned int flags)
{
    return (int)syscall(UINTR_NR_UNREGISTER_HANDLER, flags);
}
static inline int uintr_vector_fd(unsigned long long vector, unsigned int flags)
{
    return (int)syscall(UINTR_NR_VECTOR_FD, vector, flags);
}
static inline int uintr_register_sender(int uvec_fd, unsigned int flags)
{
    return (int)syscall(UINTR_NR_REGISTER_SENDER, uvec_fd, flags);
}
static inline int uintr_unregister_sender(int uipi_index, unsigned int flags)
{
    return (int)syscall(UINTR_NR_UNREGISTER_SENDER, uipi_index, flags);
}
static inline int uintr_wait(unsigned long long usec, unsigned int flags)
{
    return (int)syscall(UINTR_NR_WAIT, usec, flags);
}
static inline int uintr_register_self(unsigned long long vector, unsigned int flags)
{
    return (int)syscall(UINTR_NR_REGISTER_SELF, vector, flags);
}
static inline int uintr_alt_stack(void *sp, unsigned long size, unsigned int flags)
{
    return (int)syscall(UINTR_NR_ALT_STACK, sp, size, flags);
}
static inline int uintr_ipi_fd(unsigned int flags)
{
    return (int)syscall(UINTR_NR_IPI_FD, flags);
}
#endif

/* --- ABI-neutral helpers ------------------------------------------------------------------- */

/* Make the calling thread a receiver with this handler.  RFC v1 accepts only flags == 0. */
static inline int uintr_handler_register(uintr_handler_t handler, unsigned int flags)
{
    return uintr_register_handler(handler, flags);
}

static inline int uintr_handler_unregister(void)
{
    return uintr_unregister_handler(0);
}

/* An fd that lets its holder send `vector` (0..63) to the calling receiver thread. */
static inline int uintr_vec_fd(unsigned long long vector)
{
#ifdef UINTR_ABI_RFC
    return uintr_create_fd(vector, 0);
#else
    return uintr_vector_fd(vector, 0);
#endif
}

/* Connect the calling thread (RFC) or process (next) to the receiver behind fd: returns the
 * index for _senduipi(), or -1. */
static inline int uintr_sender_register(int fd)
{
    return uintr_register_sender(fd, 0);
}

/* Undo uintr_sender_register.  RFC identifies the connection by fd, uintr-next by index. */
static inline int uintr_sender_unregister(int fd, int index)
{
#ifdef UINTR_ABI_RFC
    (void)index;
    return uintr_unregister_sender(fd, 0);
#else
    (void)fd;
    return uintr_unregister_sender(index, 0);
#endif
}

/* Sleep until a user interrupt arrives (-1/EINTR, the handler has run) or, uintr-next only,
 * until usec microseconds have passed (0).  RFC v1 has no timeout and ignores usec. */
static inline int uintr_block(unsigned long long usec)
{
#ifdef UINTR_ABI_RFC
    (void)usec;
    return uintr_wait(0);
#else
    return uintr_wait(usec, 0);
#endif
}

/* --- small utilities shared by the examples ------------------------------------------------ */

static inline const char *uintr_errno_name(int e)
{
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EBADF: return "EBADF";
    case ECHILD: return "ECHILD";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOTTY: return "ENOTTY";
    case ENOSPC: return "ENOSPC";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ECONNRESET: return "ECONNRESET";
    case EISCONN: return "EISCONN";
    case ESHUTDOWN: return "ESHUTDOWN";
    default: return "unknown errno";
    }
}

/* write(2) the whole buffer; for use outside handlers. */
static inline void uintr_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* printf to stdout with one write(2) per call and no stdio buffer: lines come out in the order
 * the program executes them, whatever stdout is (tty, pipe, file), and survive fork(). */
__attribute__((format(printf, 1, 2))) static inline void uintr_printf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    uintr_write_all(1, buf, (size_t)n);
}

/* A failure: one line on stderr, exit status 1. */
__attribute__((noreturn, format(printf, 1, 2))) static inline void uintr_fail(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    uintr_write_all(2, "FAIL: ", 6);
    uintr_write_all(2, buf, (size_t)n);
    uintr_write_all(2, "\n", 1);
    exit(1);
}

/* A failed system call: "FAIL: <what>: <errno name>" on stderr, exit status 1. */
#define uintr_fail_errno(what) uintr_fail("%s: %s", (what), uintr_errno_name(errno))

/*
 * The first UINTR call of every example registers the main thread's handler.  With a valid
 * handler and flags == 0 it can only fail when user interrupts are unusable: ENOSYS (uintr-next
 * kernel without hardware support, or a kernel without UINTR), EOPNOTSUPP (RFC v1 kernel
 * without hardware support), or -- for the RFC numbers on a kernel >= 5.16, where 449 is
 * futex_waitv -- EINVAL.  EBUSY means a handler is already registered, which is fine.
 * Otherwise print "UINTR not supported: <errno name>" and exit with status 1.
 */
static inline void uintr_require_handler(uintr_handler_t handler, unsigned int flags)
{
    if (uintr_handler_register(handler, flags) == 0 || errno == EBUSY)
        return;
    uintr_printf("UINTR not supported: %s\n", uintr_errno_name(errno));
    exit(1);
}

/* Async-signal-safe write(2) for handlers: a raw syscall that leaves errno alone. */
static inline __attribute__((always_inline)) long uintr_raw_write(int fd, const void *buf,
                                                                  unsigned long len)
{
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "0"((long)SYS_write), "D"((long)fd), "S"(buf), "d"(len)
                     : "rcx", "r11", "memory");
    return ret;
}

static inline void uintr_cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

/* Busy-wait, with no system call, until *counter >= target.  0 on success, -1 after 2^28 polls
 * (seconds on hardware; the emulator's own limits stop a hung run long before). */
static inline int uintr_spin_until(const volatile unsigned long *counter, unsigned long target)
{
    for (unsigned long polls = 0; *counter < target; polls++) {
        if (polls >= (1UL << 28))
            return -1;
        uintr_cpu_relax();
    }
    return 0;
}

static inline long long uintr_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wait as Intel's sample does, usleep(1) per poll, until *counter >= target.  0 on success,
 * -1 after about `seconds` seconds (the clock is read every 256 polls). */
static inline int uintr_sleep_until(const volatile unsigned long *counter, unsigned long target,
                                    int seconds)
{
    long long deadline = uintr_now_ns() + seconds * 1000000000LL;
    for (unsigned long polls = 1; *counter < target; polls++) {
        usleep(1);
        if (polls % 256 == 0 && *counter < target && uintr_now_ns() > deadline)
            return -1;
    }
    return 0;
}

#endif /* UINTR_EXAMPLES_H */
