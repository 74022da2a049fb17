/*
 * machine_info.c -- how a program learns the machine it runs on: glibc's get_nprocs
 * (sched_getaffinity), get_nprocs_conf (/sys/devices/system/cpu/possible), sysconf, the
 * processor blocks of /proc/cpuinfo and the cpuN lines of /proc/stat must all agree.  Prints
 * the processor count and whether /proc/cpuinfo lists the "uintr" flag, then "OK".
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "check.h"

static char buf[1 << 20];

static size_t slurp(const char *path)
{
    int fd = open(path, O_RDONLY);
    CHECK_ERRNO(fd >= 0);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    CHECK_ERRNO(r == 0);
    buf[n] = 0;
    /* /proc files report size 0; reading again from the start gives the same bytes */
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    char first[16];
    CHECK(read(fd, first, sizeof first) == (ssize_t)(n < sizeof first ? n : sizeof first));
    CHECK(memcmp(first, buf, n < sizeof first ? n : sizeof first) == 0);
    CHECK(close(fd) == 0);
    return n;
}

static int count_lines(const char *prefix)
{
    int count = 0;
    size_t len = strlen(prefix);
    for (char *line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : 0)
        if (strncmp(line, prefix, len) == 0)
            count++;
    return count;
}

int main(void)
{
    int n = get_nprocs();
    CHECK(n >= 1);
    CHECK(get_nprocs_conf() == n);
    CHECK(sysconf(_SC_NPROCESSORS_ONLN) == n);
    CHECK(sysconf(_SC_NPROCESSORS_CONF) == n);

    slurp("/sys/devices/system/cpu/online");
    char want[32];
    snprintf(want, sizeof want, n == 1 ? "0\n" : "0-%d\n", n - 1);
    CHECK(strcmp(buf, want) == 0);

    slurp("/proc/cpuinfo");
    CHECK(count_lines("processor\t: ") == n);
    int uintr = 0;
    for (char *f = strstr(buf, "flags\t\t: "); f; f = strstr(f + 1, "flags\t\t: ")) {
        char *end = strchr(f, '\n');
        CHECK(end != NULL);
        *end = 0;
        uintr = strstr(f, " uintr ") != NULL || (strlen(f) > 6 && !strcmp(end - 6, " uintr"));
        *end = '\n';
    }

    slurp("/proc/stat");
    CHECK(count_lines("cpu ") == 1);
    CHECK(count_lines("cpu") == n + 1);

    printf("cpus %d\nuintr %s\nOK\n", n, uintr ? "yes" : "no");
    return 0;
}
