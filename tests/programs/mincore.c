/* mincore(2): one byte per page, bit 0 = resident (mm/mincore.c), and its errors in the
 * kernel's order: EINVAL for an unaligned start, ENOMEM for a range with a hole or past the
 * user half, EFAULT for a bad vector.  GNU tools (grep, base64, sort) call it at start-up. */
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"

int main(void) {
    long page = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_ERRNO(p != MAP_FAILED);
    for (int i = 0; i < 4; i++) p[i * page] = 1; /* touched: resident natively too */
    unsigned char vec[4] = {0xff, 0xff, 0xff, 0xff};
    CHECK_ERRNO(mincore(p, 4 * page, vec) == 0);
    printf("touched pages: %d %d %d %d\n", vec[0] & 1, vec[1] & 1, vec[2] & 1, vec[3] & 1);
    CHECK_ERRNO(mincore(p, page + 1, vec) == 0); /* a partial last page counts */
    CHECK_ERRNO(mincore(p, 0, vec) == 0);
    printf("unaligned: %d\n", mincore(p + 1, page, vec) == -1 ? errno : 0);
    CHECK_ERRNO(munmap(p + 2 * page, page) == 0);
    printf("hole: %d\n", mincore(p, 4 * page, vec) == -1 ? errno : 0);
    printf("past the user half: %d\n",
           mincore((void *)0x7ffffffff000UL, 2 * page, vec) == -1 ? errno : 0);
    printf("bad vector: %d\n", mincore(p, page, (unsigned char *)16) == -1 ? errno : 0);
    printf("OK\n");
    return 0;
}
