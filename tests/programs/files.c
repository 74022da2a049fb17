/*
 * files.c -- file and pipe system calls through glibc.
 *
 * argv[1] is an existing, writable directory (the tests pass pytest's tmp_path).
 * Everything is created under argv[1]/uemu_files and removed again at the end.
 * Checks open/write/pwrite/lseek/pread/readv/writev/ftruncate/fstat/stat, holes,
 * rename, access, mkdir/rmdir, unlink, directory listing (getdents64 through
 * opendir/readdir, sorted), stdio on files, and a 1 MiB transfer through a pipe
 * between two threads whose write end was moved with dup2, plus stdout redirection
 * with dup/dup2.  No path is printed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "check.h"
#include "workdir.h"

#define NMANY 200

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---------------------------------------------------------------- regular file I/O */
static void file_io(void)
{
    unsigned char buf[8192], tmp[8192];
    for (int i = 0; i < (int)sizeof buf; i++)
        buf[i] = (unsigned char)(i * 7 + 3);

    const char *path = at("data.bin");
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
    CHECK_ERRNO(fd >= 0);
    CHECK_ERRNO(open(path, O_CREAT | O_EXCL | O_RDWR, 0644) == -1 && errno == EEXIST);
    CHECK_ERRNO((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    CHECK_ERRNO((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);

    CHECK_ERRNO(write(fd, buf, sizeof buf) == (ssize_t)sizeof buf);
    struct stat st;
    CHECK_ERRNO(fstat(fd, &st) == 0);
    CHECK_ERRNO(S_ISREG(st.st_mode));
    CHECK_ERRNO((st.st_mode & 0777) == 0644);
    CHECK_ERRNO(st.st_size == 8192);
    CHECK_ERRNO(lseek(fd, 0, SEEK_CUR) == 8192);

    /* pwrite past the end leaves a hole and does not move the offset */
    CHECK_ERRNO(pwrite(fd, "TAIL", 4, 20000) == 4);
    CHECK_ERRNO(lseek(fd, 0, SEEK_CUR) == 8192);
    CHECK_ERRNO(fstat(fd, &st) == 0 && st.st_size == 20004);
    CHECK_ERRNO(pread(fd, tmp, 100, 10000) == 100);
    for (int i = 0; i < 100; i++)
        CHECK_ERRNO(tmp[i] == 0);
    CHECK_ERRNO(pread(fd, tmp, 10, 19998) == 6); /* short read at end of file */
    CHECK_ERRNO(memcmp(tmp, "\0\0TAIL", 6) == 0);
    CHECK_ERRNO(pread(fd, tmp, 8192, 0) == 8192 && memcmp(tmp, buf, 8192) == 0);

    CHECK_ERRNO(lseek(fd, 0, SEEK_END) == 20004);
    CHECK_ERRNO(lseek(fd, -4, SEEK_END) == 20000);
    CHECK_ERRNO(read(fd, tmp, sizeof tmp) == 4 && memcmp(tmp, "TAIL", 4) == 0);
    CHECK_ERRNO(read(fd, tmp, sizeof tmp) == 0); /* EOF */
    CHECK_ERRNO(lseek(fd, -1, SEEK_SET) == -1 && errno == EINVAL);

    /* readv scatters into three buffers */
    CHECK_ERRNO(lseek(fd, 100, SEEK_SET) == 100);
    unsigned char a[10], b[20], c[30];
    struct iovec riov[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
    CHECK_ERRNO(readv(fd, riov, 3) == 60);
    CHECK_ERRNO(memcmp(a, buf + 100, 10) == 0 && memcmp(b, buf + 110, 20) == 0 &&
          memcmp(c, buf + 130, 30) == 0);
    CHECK_ERRNO(lseek(fd, 0, SEEK_CUR) == 160);

    /* writev gathers at the end */
    CHECK_ERRNO(lseek(fd, 0, SEEK_END) == 20004);
    struct iovec wiov[3] = {{"abc", 3}, {"defgh", 5}, {"ij", 2}};
    CHECK_ERRNO(writev(fd, wiov, 3) == 10);
    CHECK_ERRNO(fstat(fd, &st) == 0 && st.st_size == 20014);
    CHECK_ERRNO(pread(fd, tmp, 14, 20000) == 14 && memcmp(tmp, "TAILabcdefghij", 14) == 0);

    CHECK_ERRNO(ftruncate(fd, 5000) == 0);
    CHECK_ERRNO(fstat(fd, &st) == 0 && st.st_size == 5000);
    CHECK_ERRNO(fsync(fd) == 0);
    CHECK_ERRNO(close(fd) == 0);
    CHECK_ERRNO(close(fd) == -1 && errno == EBADF);

    CHECK_ERRNO(stat(path, &st) == 0 && st.st_size == 5000);
    CHECK_ERRNO(access(path, R_OK | W_OK) == 0);
    CHECK_ERRNO(access(at("missing"), F_OK) == -1 && errno == ENOENT);
    CHECK_ERRNO(open(at("missing"), O_RDONLY) == -1 && errno == ENOENT);
    CHECK_ERRNO(rename(path, at("renamed.bin")) == 0);
    CHECK_ERRNO(access(path, F_OK) == -1 && errno == ENOENT);

    /* O_APPEND always writes at the end */
    fd = open(at("renamed.bin"), O_WRONLY | O_APPEND);
    CHECK_ERRNO(fd >= 0);
    CHECK_ERRNO(lseek(fd, 0, SEEK_SET) == 0);
    CHECK_ERRNO(write(fd, "Z", 1) == 1);
    CHECK_ERRNO(fstat(fd, &st) == 0 && st.st_size == 5001);
    CHECK_ERRNO(close(fd) == 0);
    printf("file io: ok\n");
}

/* ---------------------------------------------------------------- stdio on files */
static void stdio_files(void)
{
    static const char *names[] = {"c.txt", "a.txt", "b.txt"};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(at(names[i]), "w");
        CHECK_ERRNO(f != NULL);
        for (int line = 0; line < 100; line++)
            fprintf(f, "%s line %d\n", names[i], line);
        CHECK_ERRNO(fclose(f) == 0);
    }
    FILE *f = fopen(at("b.txt"), "r");
    CHECK_ERRNO(f != NULL);
    char line[100];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char expect[100];
        snprintf(expect, sizeof expect, "b.txt line %d\n", n);
        CHECK_ERRNO(strcmp(line, expect) == 0);
        n++;
    }
    CHECK_ERRNO(feof(f) && !ferror(f));
    fclose(f);
    printf("stdio files: %d lines read back\n", n);
}

/* ---------------------------------------------------------------- directories */
static int list_dir(const char *path, char **names, int max)
{
    DIR *d = opendir(path);
    CHECK_ERRNO(d != NULL);
    int n = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        CHECK_ERRNO(n < max);
        if (strcmp(e->d_name, "zdir") == 0)
            CHECK_ERRNO(e->d_type == DT_DIR || e->d_type == DT_UNKNOWN);
        if (strcmp(e->d_name, "a.txt") == 0)
            CHECK_ERRNO(e->d_type == DT_REG || e->d_type == DT_UNKNOWN);
        names[n++] = strdup(e->d_name);
    }
    CHECK_ERRNO(errno == 0);
    CHECK_ERRNO(closedir(d) == 0);
    qsort(names, n, sizeof *names, cmp_str);
    return n;
}

static void directories(void)
{
    char *names[64];
    CHECK_ERRNO(mkdir(at("zdir"), 0755) == 0);
    CHECK_ERRNO(mkdir(at("zdir"), 0755) == -1 && errno == EEXIST);
    struct stat st;
    CHECK_ERRNO(stat(at("zdir"), &st) == 0 && S_ISDIR(st.st_mode));
    CHECK_ERRNO(rmdir(base) == -1 && errno == ENOTEMPTY);

    int n = list_dir(base, names, 64);
    printf("listing:");
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");

    /* Many entries with long names (about 264 bytes each in a getdents64 buffer):
     * glibc's 32 KiB readdir buffer needs several getdents64 calls to read them all. */
    CHECK_ERRNO(mkdir(at("zdir/many"), 0755) == 0);
    char long_name[240];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    char p[4400];
    for (int i = 0; i < NMANY; i++) {
        snprintf(p, sizeof p, "%s/zdir/many/%s-%04d", base, long_name, i);
        int fd = open(p, O_CREAT | O_WRONLY, 0600);
        CHECK_ERRNO(fd >= 0);
        close(fd);
    }
    DIR *d = opendir(at("zdir/many"));
    CHECK_ERRNO(d != NULL);
    long count = 0, sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        CHECK_ERRNO(strlen(e->d_name) == strlen(long_name) + 5);
        CHECK_ERRNO(strncmp(e->d_name, long_name, strlen(long_name)) == 0);
        int k = atoi(e->d_name + strlen(long_name) + 1);
        count++;
        sum += k;
    }
    closedir(d);
    printf("big directory: %ld entries, sum %ld\n", count, sum);
    CHECK_ERRNO(count == NMANY && sum == (NMANY - 1L) * NMANY / 2);
    for (int i = 0; i < NMANY; i++) {
        snprintf(p, sizeof p, "%s/zdir/many/%s-%04d", base, long_name, i);
        CHECK_ERRNO(unlink(p) == 0);
    }
    CHECK_ERRNO(rmdir(at("zdir/many")) == 0);

    /* remove everything again */
    CHECK_ERRNO(unlink(at("renamed.bin")) == 0);
    CHECK_ERRNO(unlink(at("renamed.bin")) == -1 && errno == ENOENT);
    CHECK_ERRNO(unlink(at("a.txt")) == 0 && unlink(at("b.txt")) == 0 && unlink(at("c.txt")) == 0);
    CHECK_ERRNO(rmdir(at("zdir")) == 0);
    n = list_dir(base, names, 64);
    printf("after cleanup:");
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

/* ---------------------------------------------------------------- pipe between threads */
#define PIPE_BYTES (1u << 20)
#define WRITE_FD 57
static unsigned char pipe_src[PIPE_BYTES];

static uint32_t fnv1a(uint32_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static void *pipe_writer(void *arg)
{
    (void)arg;
    size_t off = 0, chunk = 1000;
    while (off < PIPE_BYTES) {
        size_t n = PIPE_BYTES - off < chunk ? PIPE_BYTES - off : chunk;
        ssize_t w = write(WRITE_FD, pipe_src + off, n);
        CHECK_ERRNO(w > 0);
        off += (size_t)w;
        chunk = chunk * 3 % 9001 + 1; /* vary the write sizes */
    }
    CHECK_ERRNO(close(WRITE_FD) == 0); /* the last write end: the reader sees EOF */
    return NULL;
}

static void pipe_transfer(void)
{
    uint32_t s = 99;
    for (size_t i = 0; i < PIPE_BYTES; i += 4) {
        s = s * 1664525u + 1013904223u;
        memcpy(pipe_src + i, &s, 4);
    }
    uint32_t expect = fnv1a(2166136261u, pipe_src, PIPE_BYTES);

    int p[2];
    CHECK_ERRNO(pipe(p) == 0);
    CHECK_ERRNO(dup2(p[1], WRITE_FD) == WRITE_FD);
    CHECK_ERRNO(close(p[1]) == 0);
    pthread_t t;
    CHECK_ERRNO(pthread_create(&t, NULL, pipe_writer, NULL) == 0);

    static unsigned char rbuf[7000];
    uint32_t h = 2166136261u;
    size_t total = 0;
    for (;;) {
        ssize_t r = read(p[0], rbuf, sizeof rbuf);
        CHECK_ERRNO(r >= 0);
        if (r == 0)
            break;
        h = fnv1a(h, rbuf, (size_t)r);
        total += (size_t)r;
    }
    CHECK_ERRNO(pthread_join(t, NULL) == 0);
    CHECK_ERRNO(close(p[0]) == 0);
    printf("pipe: %zu bytes, fnv1a %08x, %s\n", total, h, h == expect ? "match" : "MISMATCH");
    CHECK_ERRNO(total == PIPE_BYTES && h == expect);
}

/* ---------------------------------------------------------------- stdout redirection */
static void redirect_stdout(void)
{
    fflush(stdout);
    int saved = dup(1);
    CHECK_ERRNO(saved >= 0);
    int q[2];
    CHECK_ERRNO(pipe2(q, O_CLOEXEC) == 0);
    CHECK_ERRNO(dup2(q[1], 1) == 1);
    CHECK_ERRNO((fcntl(1, F_GETFD) & FD_CLOEXEC) == 0); /* dup2 clears close-on-exec */
    CHECK_ERRNO(write(1, "through the pipe\n", 17) == 17);
    CHECK_ERRNO(dup2(saved, 1) == 1);
    CHECK_ERRNO(close(saved) == 0 && close(q[1]) == 0);
    char buf[64];
    ssize_t n = read(q[0], buf, sizeof buf);
    CHECK_ERRNO(n == 17 && memcmp(buf, "through the pipe\n", 17) == 0);
    CHECK_ERRNO(read(q[0], buf, sizeof buf) == 0);
    close(q[0]);
    int d = fcntl(1, F_DUPFD_CLOEXEC, 40);
    CHECK_ERRNO(d >= 40);
    CHECK_ERRNO(close(d) == 0);
    printf("dup2 redirect: ok\n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        printf("usage: files DIR\n");
        return 2;
    }
    umask(022);
    snprintf(base, sizeof base, "%s/uemu_files", argv[1]);
    CHECK_ERRNO(mkdir(base, 0755) == 0);
    CHECK_ERRNO(access(base, R_OK | W_OK | X_OK) == 0);

    file_io();
    stdio_files();
    directories();
    pipe_transfer();
    redirect_stdout();

    CHECK_ERRNO(rmdir(base) == 0);
    printf("OK\n");
    return 0;
}
