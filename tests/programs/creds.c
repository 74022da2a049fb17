/* The set*id family on the emulator's own credentials: setting an id to its current value
 * succeeds (kernel/sys.c: any process may), -1 leaves an id as it is, setuid(-1) is EINVAL,
 * getresuid/getresgid report the ids and EFAULT for a bad pointer.  glibc's posix_spawn with
 * POSIX_SPAWN_RESETIDS (GNU make) calls seteuid(getuid()). */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

extern char **environ;

int main(void) {
    uid_t r, e, s;
    gid_t rg, eg, sg;
    CHECK_ERRNO(getresuid(&r, &e, &s) == 0);
    CHECK_ERRNO(getresgid(&rg, &eg, &sg) == 0);
    CHECK(r == getuid() && e == geteuid() && rg == getgid() && eg == getegid());
    CHECK_ERRNO(setresuid(-1, -1, -1) == 0);
    CHECK_ERRNO(setresuid(r, e, s) == 0);
    CHECK_ERRNO(setresgid(rg, -1, sg) == 0);
    CHECK_ERRNO(setreuid(-1, e) == 0);
    CHECK_ERRNO(setregid(rg, eg) == 0);
    CHECK_ERRNO(seteuid(r) == 0);
    CHECK_ERRNO(setegid(rg) == 0);
    CHECK_ERRNO(setuid(r) == 0);
    CHECK_ERRNO(setgid(rg) == 0);
    /* glibc rejects setuid(-1) itself; the raw call reaches the kernel's uid_valid check. */
    long rc = syscall(SYS_setuid, -1);
    printf("setuid(-1): %ld %d\n", rc, errno);
    printf("setfsuid returns the euid: %d\n", setfsuid(-1) == (int)e);
    printf("setfsgid returns the egid: %d\n", setfsgid(-1) == (int)eg);
    rc = syscall(SYS_getresuid, &r, (uid_t *)8, &s);
    printf("bad pointer: %ld %d\n", rc, errno);

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_RESETIDS);
    pid_t pid;
    char *argv[] = {"/bin/true", NULL};
    int err = posix_spawn(&pid, "/bin/true", NULL, &attr, argv, environ);
    printf("posix_spawn with RESETIDS: %d\n", err);
    if (err == 0) {
        int status;
        CHECK_ERRNO(waitpid(pid, &status, 0) == pid);
        printf("child status %d\n", WEXITSTATUS(status));
    }
    printf("OK\n");
    return 0;
}
