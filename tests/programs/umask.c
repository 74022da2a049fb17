/*
 * umask.c -- the file mode creation mask (umask(2)) and the modes of created files.
 *
 * argv[1] is an existing, writable directory (the tests pass pytest's tmp_path); everything
 * is created under it and removed again.  Prints the inherited umask first (the same
 * natively and emulated when both inherit the test's), then the previous values umask
 * returns and the modes open(O_CREAT) and mkdir give under several masks: mode & ~umask,
 * even where the mask grants more than a umask of 022 would (umask 0: 0666 and 0777).
 * An existing file keeps its mode; a forked child's umask is its own; threads share one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "workdir.h"

static unsigned mode_of(const char *path)
{
    struct stat st;
    CHECK_ERRNO(stat(path, &st) == 0);
    return st.st_mode & 07777;
}

/* Creates file and directory NAME under the current umask; prints their modes. */
static void create(const char *name, unsigned fmode, unsigned dmode)
{
    char dir[64];
    int fd = open(at(name), O_CREAT | O_EXCL | O_WRONLY, fmode);
    CHECK_ERRNO(fd >= 0);
    close(fd);
    snprintf(dir, sizeof dir, "%s.d", name);
    CHECK_ERRNO(mkdir(at(dir), dmode) == 0);
    printf("%s: open(0%o) -> 0%o, mkdir(0%o) -> 0%o\n", name, fmode, mode_of(at(name)), dmode,
           mode_of(at(dir)));
    CHECK_ERRNO(unlink(at(name)) == 0 && rmdir(at(dir)) == 0);
}

static void *set_in_thread(void *arg)
{
    (void)arg;
    umask(0011);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: umask DIR\n");
        return 2;
    }
    snprintf(base, sizeof base, "%s/uemu_umask", argv[1]);
    CHECK_ERRNO(mkdir(base, 0755) == 0 || errno == EEXIST);

    mode_t inherited = umask(027);
    printf("inherited umask 0%o\n", (unsigned)inherited);
    printf("umask(022) returns 0%o\n", (unsigned)umask(022));
    create("u022", 0666, 0777);
    umask(027);
    create("u027", 0666, 0777);
    umask(0);
    create("u000", 0666, 0777);
    create("u000-special", 07777, 07777);
    umask(0777);
    create("u777", 0666, 0777);

    /* O_CREAT of an existing file leaves its mode alone */
    umask(0);
    int fd = open(at("kept"), O_CREAT | O_WRONLY, 0640);
    CHECK_ERRNO(fd >= 0);
    close(fd);
    umask(077);
    fd = open(at("kept"), O_CREAT | O_WRONLY, 0666);
    CHECK_ERRNO(fd >= 0);
    close(fd);
    printf("existing file keeps 0%o\n", mode_of(at("kept")));
    CHECK_ERRNO(unlink(at("kept")) == 0);

    /* only the low 9 bits of the (int) mask count */
    umask(07777 | 0x10000);
    printf("umask(07777 | 0x10000) then umask returns 0%o\n", (unsigned)umask(077));
    syscall(SYS_umask, (1L << 32) | 022);
    printf("raw umask(1 << 32 | 022) then umask returns 0%lo\n", syscall(SYS_umask, 077L));

    /* a child's umask is its own */
    fflush(stdout);
    pid_t pid = fork();
    CHECK_ERRNO(pid >= 0);
    if (pid == 0) {
        printf("child inherits 0%o\n", (unsigned)umask(0));
        create("child", 0666, 0777);
        fflush(stdout);
        _exit(0);
    }
    int status;
    CHECK_ERRNO(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("parent still 0%o\n", (unsigned)umask(077));

    /* threads share it (CLONE_FS) */
    pthread_t th;
    CHECK_ERRNO(pthread_create(&th, NULL, set_in_thread, NULL) == 0);
    CHECK_ERRNO(pthread_join(th, NULL) == 0);
    printf("after a thread's umask(011): 0%o\n", (unsigned)umask(0)); /* left at 0 */

    CHECK_ERRNO(rmdir(base) == 0);
    printf("OK\n");
    return 0;
}
