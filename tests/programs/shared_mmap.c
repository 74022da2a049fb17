/* MAP_SHARED: anonymous shared memory stays shared across fork; a shared file mapping's writes
 * reach the file; a MAP_PRIVATE file mapping's writes do not. Takes a scratch directory. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    volatile int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    volatile int *private = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(shared != MAP_FAILED && private != MAP_FAILED);
    shared[0] = 1;
    private[0] = 1;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        shared[0] = 42;
        private[0] = 42;
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    printf("after fork: shared=%d private=%d\n", shared[0], private[0]);
    CHECK(shared[0] == 42 && private[0] == 1);

    char path[512];
    snprintf(path, sizeof path, "%s/shared_mmap.dat", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, 8192) == 0);
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED);
    memcpy(m + 4096, "written through MAP_SHARED", 27);
    CHECK(munmap(m, 8192) == 0);
    char buf[32] = {0};
    CHECK(pread(fd, buf, 27, 4096) == 27);
    printf("file: %s\n", buf);
    char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 4096);
    CHECK(p != MAP_FAILED && memcmp(p, "written", 7) == 0);
    memcpy(p, "PRIVATE", 7);
    CHECK(pread(fd, buf, 7, 4096) == 7 && memcmp(buf, "written", 7) == 0);
    printf("private file mapping: writes stay private\n");
    int ro = open(path, O_RDONLY);
    CHECK(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED);
    char *r = mmap(NULL, 4096, PROT_READ, MAP_SHARED, ro, 4096);
    CHECK(r != MAP_FAILED && r[0] == 'w');
    CHECK(mprotect(r, 4096, PROT_READ | PROT_WRITE) != 0);
    printf("read-only file: no writable shared mapping\n");
    close(ro);
    close(fd);
    unlink(path);
    printf("OK\n");
    return 0;
}
