/*
 * unsupported.c -- system calls the emulator does not implement: kexec_load (a real x86-64
 * call the emulator will never run) and 400 (no call at all), each made twice.  Both fail
 * with ENOSYS; the emulator warns once per number, naming the call where Linux has one.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void call(const char *what, long nr)
{
    for (int i = 0; i < 2; i++) {
        errno = 0;
        long r = syscall(nr, 0, 0, 0, 0);
        printf("%s: %ld %s\n", what, r, r == -1 && errno == ENOSYS ? "ENOSYS" : strerror(errno));
    }
}

int main(void)
{
    call("kexec_load", SYS_kexec_load);
    call("syscall 400", 400);
    return 0;
}
