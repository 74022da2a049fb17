/*
 * readdir_order.c -- a directory lists in the file system's own order (readdir, as `ls -U` and
 * `find` show it), not sorted: creates 40 files with scattered names in a fresh directory,
 * prints the names in readdir order, checks "." and ".." are listed once each, removes all.
 *
 * argv[1] is an existing, writable directory.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "workdir.h"

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    snprintf(base, sizeof base, "%s/uemu_order", argv[1]);
    CHECK_ERRNO(mkdir(base, 0755) == 0);
    char name[32];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "f%02d_%u", (i * 17) % 40, (unsigned)(i * 2654435761u) % 997);
        int fd = open(at(name), O_CREAT | O_WRONLY, 0644);
        CHECK_ERRNO(fd >= 0);
        close(fd);
    }
    DIR *d = opendir(base);
    CHECK_ERRNO(d != NULL);
    struct dirent *e;
    int dots = 0, files = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            dots++;
            continue;
        }
        CHECK(e->d_type == DT_REG);
        printf("%s\n", e->d_name);
        files++;
        CHECK_ERRNO(unlink(at(e->d_name)) == 0);
    }
    closedir(d);
    CHECK(dots == 2 && files == 40);
    CHECK_ERRNO(rmdir(base) == 0);
    printf("OK\n");
    return 0;
}
