/* Edge cases of mmap, mremap and brk: errors in the order Linux checks them, what a move or a
 * growth keeps, and SIGBUS for file pages wholly beyond the end of the file.  tests/test_mm.py
 * runs it natively and emulated and compares the output.  Every line is independent of
 * addresses: "WHAT: ok", "WHAT: -1 ERRNO", "WHAT: caught SIGNAME CODE addr=ok|0x...", or a
 * value.  Raw syscalls throughout, so that no libc wrapper checks anything first. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096UL
#define TASK_SIZE 0x7ffffffff000UL
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static const char *err_name(int e)
{
    static char other[32];
    switch (e) {
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EOVERFLOW: return "EOVERFLOW";
    case EFAULT: return "EFAULT";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    case EBADF: return "EBADF";
    case EEXIST: return "EEXIST";
    case EPERM: return "EPERM";
    }
    snprintf(other, sizeof other, "errno %d", e);
    return other;
}

static long sys_mmap(unsigned long addr, unsigned long len, long prot, long flags, long fd,
                     unsigned long off)
{
    return syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static long sys_mremap(unsigned long old, unsigned long old_len, unsigned long new_len,
                       long flags, unsigned long new_addr)
{
    return syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
}

static long report(const char *what, long r)
{
    if (r == -1)
        printf("%s: -1 %s\n", what, err_name(errno));
    else
        printf("%s: ok\n", what);
    fflush(stdout);
    return r;
}

static int is_mapped(void *p)
{
    /* mprotect(2): ENOMEM for an unmapped page */
    return syscall(SYS_mprotect, p, PAGE, PROT_READ) == 0;
}

/* --- faults ------------------------------------------------------------------------------ */

static sigjmp_buf jump;
static volatile int got_sig, got_code;
static volatile uintptr_t got_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    got_sig = sig;
    got_code = si->si_code;
    got_addr = (uintptr_t)si->si_addr;
    siglongjmp(jump, 1);
}

static void touch(const char *what, volatile char *p, int write)
{
    got_sig = 0;
    if (sigsetjmp(jump, 1) == 0) {
        if (write)
            *p = 1;
        else
            (void)*p;
        printf("%s: no fault\n", what);
    } else {
        const char *code = got_sig == SIGBUS && got_code == BUS_ADRERR ? "BUS_ADRERR"
                         : got_sig == SIGSEGV && got_code == SEGV_ACCERR ? "SEGV_ACCERR"
                         : got_sig == SIGSEGV && got_code == SEGV_MAPERR ? "SEGV_MAPERR"
                                                                         : "other";
        printf("%s: caught %s %s addr=%s\n", what, got_sig == SIGBUS ? "SIGBUS" : "SIGSEGV",
               code, got_addr == (uintptr_t)p ? "ok" : "wrong");
    }
    fflush(stdout);
}

/* --- helpers ----------------------------------------------------------------------------- */

static int temp_file(size_t size)
{
    char path[] = "/tmp/mm_edges-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
        perror("temporary file");
        exit(1);
    }
    unlink(path);
    return fd;
}

/* A free range of n pages (reserved, then released). */
static char *free_range(size_t n)
{
    char *p = (char *)sys_mmap(0, n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p, n * PAGE);
    return p;
}

static void mmap_errors(void)
{
    int fd = temp_file(PAGE);
    int pipefd[2];
    if (pipe(pipefd) != 0)
        exit(1);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int ro = open(path, O_RDONLY), wo = open(path, O_WRONLY);
    report("mmap offset 1", sys_mmap(0, PAGE, PROT_READ, MAP_PRIVATE, fd, 1));
    report("mmap file offset 2^63", sys_mmap(0, PAGE, PROT_READ, MAP_PRIVATE, fd, 1UL << 63));
    report("mmap file offset 2^63-4096", sys_mmap(0, PAGE, PROT_READ, MAP_PRIVATE, fd,
                                                  (1UL << 63) - PAGE));
    report("mmap file offset 2^64-4096", sys_mmap(0, PAGE, PROT_READ, MAP_SHARED, fd, -PAGE));
    report("mmap anonymous offset 2^63",
           sys_mmap(0, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 1UL << 63));
    report("mmap bad fd offset 1", sys_mmap(0, PAGE, PROT_READ, MAP_PRIVATE, 999, 1));
    report("mmap bad fd length 0", sys_mmap(0, 0, PROT_READ, MAP_PRIVATE, 999, 0));
    report("mmap length 0", sys_mmap(0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    report("mmap length 2^64-1", sys_mmap(0, -1UL, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    report("mmap length 2^47", sys_mmap(0, 1UL << 47, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    report("mmap fixed past TASK_SIZE", sys_mmap(TASK_SIZE - PAGE, 2 * PAGE, PROT_READ,
                                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    report("mmap fixed non-canonical", sys_mmap(1UL << 63, PAGE, PROT_READ,
                                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    report("mmap fixed unaligned", sys_mmap(0x10000001, PAGE, PROT_READ,
                                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    report("mmap type 0", sys_mmap(0, PAGE, PROT_READ, MAP_ANONYMOUS, -1, 0));
    report("mmap anonymous MAP_SHARED_VALIDATE",
           sys_mmap(0, PAGE, PROT_READ, MAP_SHARED_VALIDATE | MAP_ANONYMOUS, -1, 0));
    report("mmap type 0 file", sys_mmap(0, PAGE, PROT_READ, 0, fd, 0));
    report("mmap pipe", sys_mmap(0, PAGE, PROT_READ, MAP_PRIVATE, pipefd[0], 0));
    report("mmap pipe write end", sys_mmap(0, PAGE, PROT_READ, MAP_PRIVATE, pipefd[1], 0));
    report("mmap O_WRONLY file", sys_mmap(0, PAGE, PROT_READ, MAP_SHARED, wo, 0));
    report("mmap O_RDONLY shared writable", sys_mmap(0, PAGE, PROT_WRITE, MAP_SHARED, ro, 0));
    report("mmap O_RDONLY private writable", sys_mmap(0, PAGE, PROT_WRITE, MAP_PRIVATE, ro, 0));
    close(ro);
    close(wo);
    close(pipefd[0]);
    close(pipefd[1]);
    close(fd);
}

static void mremap_errors(void)
{
    char *p = (char *)sys_mmap(0, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                               -1, 0);
    char *dest = free_range(4);
    report("mremap bad flags", sys_mremap((unsigned long)p, PAGE, PAGE, 8, 0));
    report("mremap old unaligned", sys_mremap((unsigned long)p + 1, PAGE, PAGE, 0, 0));
    report("mremap new_len 0", sys_mremap((unsigned long)p, PAGE, 0, MREMAP_MAYMOVE, 0));
    report("mremap new_len 2^64-1", sys_mremap((unsigned long)p, PAGE, -1UL, MREMAP_MAYMOVE, 0));
    report("mremap fixed without maymove",
           sys_mremap((unsigned long)p, PAGE, PAGE, MREMAP_FIXED, (unsigned long)dest));
    report("mremap fixed unaligned", sys_mremap((unsigned long)p, PAGE, 2 * PAGE,
                                                MREMAP_MAYMOVE | MREMAP_FIXED, 0x10000001));
    report("mremap fixed non-canonical", sys_mremap((unsigned long)p, PAGE, 2 * PAGE,
                                                    MREMAP_MAYMOVE | MREMAP_FIXED, 1UL << 63));
    report("mremap fixed 0x0000800000000000", sys_mremap((unsigned long)p, PAGE, 2 * PAGE,
                                                          MREMAP_MAYMOVE | MREMAP_FIXED, 1UL << 47));
    report("mremap fixed past TASK_SIZE", sys_mremap((unsigned long)p, PAGE, 2 * PAGE,
                                                     MREMAP_MAYMOVE | MREMAP_FIXED, TASK_SIZE - PAGE));
    report("mremap fixed overlapping", sys_mremap((unsigned long)p, 2 * PAGE, 2 * PAGE,
                                                  MREMAP_MAYMOVE | MREMAP_FIXED,
                                                  (unsigned long)p + PAGE));
    report("mremap unmapped old", sys_mremap((unsigned long)dest, PAGE, 2 * PAGE, MREMAP_MAYMOVE, 0));
    report("mremap old_len past the mapping", sys_mremap((unsigned long)p, 3 * PAGE, 4 * PAGE,
                                                         MREMAP_MAYMOVE, 0));
    report("mremap old_len 0 private", sys_mremap((unsigned long)p, 0, PAGE, MREMAP_MAYMOVE, 0));
    /* a guard page right after p: growing in place is impossible */
    sys_mmap((unsigned long)p + 2 * PAGE, PAGE, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    report("mremap grow without maymove", sys_mremap((unsigned long)p, 2 * PAGE, 3 * PAGE, 0, 0));
    report("mremap same size", sys_mremap((unsigned long)p, 2 * PAGE, 2 * PAGE, 0, 0));
    munmap(p, 3 * PAGE);
}

static void mremap_moves(void)
{
    /* a private anonymous mapping moved and grown: same bytes, zero tail, old range gone */
    char *p = (char *)sys_mmap(0, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                               -1, 0);
    memcpy(p, "first page", 11);
    memcpy(p + PAGE, "second page", 12);
    char *dest = free_range(4);
    char *q = (char *)sys_mremap((unsigned long)p, 2 * PAGE, 3 * PAGE,
                                 MREMAP_MAYMOVE | MREMAP_FIXED, (unsigned long)dest);
    printf("mremap fixed move: %s, \"%s\", \"%s\", tail %d, old range %s\n",
           q == dest ? "at dest" : "elsewhere", q, q + PAGE, q[2 * PAGE] | q[3 * PAGE - 1],
           is_mapped(p) ? "mapped" : "unmapped");
    /* shrinking while moving keeps the head */
    char *r = (char *)sys_mremap((unsigned long)q, 3 * PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
                                 (unsigned long)p);
    printf("mremap fixed shrink: %s, \"%s\", rest of old %s\n", r == p ? "at dest" : "elsewhere",
           r, is_mapped(q + PAGE) ? "mapped" : "unmapped");
    /* in place */
    char *s = (char *)sys_mremap((unsigned long)r, PAGE, 2 * PAGE, 0, 0);
    printf("mremap grow in place: %s, tail %d\n", s == r ? "same address" : "moved", s[PAGE]);
    munmap(s, 2 * PAGE);

    /* a shared file mapping keeps sharing the file where it moves */
    int fd = temp_file(2 * PAGE);
    char *m = (char *)sys_mmap(0, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *n = (char *)sys_mremap((unsigned long)m, 2 * PAGE, 2 * PAGE,
                                 MREMAP_MAYMOVE | MREMAP_FIXED, (unsigned long)free_range(2));
    memcpy(n + PAGE, "via the moved mapping", 22);
    char buf[32] = {0};
    pread(fd, buf, 22, PAGE);
    printf("mremap shared file: the file reads \"%s\"\n", buf);
    /* grown past the end of the file: the new page is beyond EOF */
    char *g = (char *)sys_mremap((unsigned long)n, 2 * PAGE, 3 * PAGE, MREMAP_MAYMOVE, 0);
    report("mremap grow shared file", (long)g);
    touch("grown file mapping, page past EOF", g + 2 * PAGE + 8, 0);
    munmap(g, 3 * PAGE);
    close(fd);

    /* shared anonymous memory grows past its object: SIGBUS too */
    char *a = (char *)sys_mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *b = (char *)sys_mremap((unsigned long)a, PAGE, 2 * PAGE, MREMAP_MAYMOVE, 0);
    report("mremap grow shared anonymous", (long)b);
    touch("grown shared anonymous, new page", b + PAGE, 1);
    munmap(b, 2 * PAGE);

    /* old_len 0 duplicates a shared mapping */
    char *c = (char *)sys_mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *d = (char *)sys_mremap((unsigned long)c, 0, PAGE, MREMAP_MAYMOVE, 0);
    c[5] = 42;
    printf("mremap old_len 0 shared: %s, sees %d\n", d != c ? "a second mapping" : "same", d[5]);
    munmap(c, PAGE);
    munmap(d, PAGE);
}

static void beyond_eof(void)
{
    /* 100-byte file: page 0 holds it (zeros after byte 100), page 1 is beyond EOF */
    int fd = temp_file(100);
    pwrite(fd, "file data", 9, 0);
    char *p = (char *)sys_mmap(0, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("private: \"%s\", byte 100 %d, byte 4095 %d\n", p, p[100], p[PAGE - 1]);
    touch("private, page past EOF, read", p + PAGE + 24, 0);
    touch("private, page past EOF, write", p + PAGE, 1);
    munmap(p, 2 * PAGE);

    char *s = (char *)sys_mmap(0, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    memcpy(s + 50, "shared", 6);
    s[200] = 'x'; /* past EOF in the last page: not in the file */
    char buf[16] = {0};
    pread(fd, buf, 6, 50);
    printf("shared: file reads \"%s\" at 50, size %ld\n", buf, (long)lseek(fd, 0, SEEK_END));
    touch("shared, page past EOF, write", s + 2 * PAGE + 100, 1);
    sys_mmap((unsigned long)s + PAGE, PAGE, PROT_NONE, MAP_SHARED | MAP_FIXED, fd, PAGE);
    touch("shared, PROT_NONE page past EOF", s + PAGE + 8, 0);
    /* the kernel's own access to such a page is EFAULT */
    errno = 0;
    long w = write(fd, s + 2 * PAGE, 8);
    printf("write from a page past EOF: %ld %s\n", w, w < 0 ? err_name(errno) : "");
    munmap(s, 3 * PAGE);

    /* a mapping wholly beyond EOF, far out in the file */
    char *far = (char *)sys_mmap(0, PAGE, PROT_READ, MAP_SHARED, fd, (1UL << 63) - 2 * PAGE);
    report("mmap file offset 2^63-8192", (long)far);
    touch("mapping at offset 2^63-8192", far, 0);
    munmap(far, PAGE);
    close(fd);
}

static void brk_edges(void)
{
    unsigned long cur = syscall(SYS_brk, 0);
    printf("brk(2^64-1) keeps the break: %s\n", syscall(SYS_brk, -1UL) == cur ? "yes" : "no");
    printf("brk(2^47) keeps the break: %s\n", syscall(SYS_brk, 1UL << 47) == cur ? "yes" : "no");
    printf("brk(TASK_SIZE) keeps the break: %s\n",
           syscall(SYS_brk, TASK_SIZE) == cur ? "yes" : "no");
    unsigned long up = syscall(SYS_brk, cur + 3 * PAGE);
    printf("brk +3 pages: %s\n", up == cur + 3 * PAGE ? "ok" : "refused");
    printf("brk back: %s\n", syscall(SYS_brk, cur) == cur ? "ok" : "refused");
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    mmap_errors();
    mremap_errors();
    mremap_moves();
    beyond_eof();
    brk_edges();
    return 0;
}
