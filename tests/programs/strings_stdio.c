/*
 * strings_stdio.c -- the string and stdio parts of glibc, many of which are
 * CPU-dispatched (ifunc) SSE2/AVX2/EVEX variants chosen from CPUID at start-up:
 * strlen/memchr/strchr/strrchr/memcmp/strcmp/strncmp/strstr/memcpy/memmove/memset
 * at every alignment and length near the vector widths, snprintf/sscanf/strtod/
 * strtol corner cases, strtok_r, fmemopen and open_memstream.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static char buf[512], buf2[512];

/* Slow but obviously correct references. */
static size_t ref_strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
static int sign(int x) { return (x > 0) - (x < 0); }

static void string_functions(void)
{
    long checks = 0;
    /* lengths 0..130 at alignments 0..63 */
    for (int align = 0; align < 64; align++) {
        for (int len = 0; len <= 130; len++) {
            char *s = buf + align;
            memset(buf, 'x', sizeof buf);
            for (int i = 0; i < len; i++)
                s[i] = (char)('a' + (i * 7 + align) % 26);
            s[len] = 0;
            CHECK(strlen(s) == (size_t)len && ref_strlen(s) == (size_t)len);
            CHECK(strnlen(s, 50) == (size_t)(len < 50 ? len : 50));
            CHECK(memchr(s, 0, len + 1) == s + len);
            CHECK(strchr(s, 0) == s + len);
            CHECK(rawmemchr(s, 0) == s + len);
            if (len > 0) {
                char last = s[len - 1];
                CHECK(strrchr(s, last) == s + len - 1);
                CHECK(memrchr(s, last, len) == s + len - 1);
                char *first = strchr(s, last);
                CHECK(first && *first == last && first <= s + len - 1);
            }
            CHECK(strchr(s, 'Z') == NULL);
            /* copy and compare at a different alignment */
            char *d = buf2 + (align * 5) % 64;
            memcpy(d, s, len + 1);
            CHECK(strcmp(d, s) == 0 && memcmp(d, s, len + 1) == 0);
            if (len > 0) {
                d[len - 1]++;
                CHECK(strcmp(d, s) > 0 && strcmp(s, d) < 0);
                CHECK(sign(memcmp(d, s, len)) == 1);
                CHECK(strncmp(d, s, len - 1) == 0);
                d[len - 1]--;
            }
            checks++;
        }
    }
    printf("string functions: %ld length/alignment cases\n", checks);

    /* overlapping moves in both directions */
    for (int n = 0; n < 200; n += 7) {
        for (int shift = 1; shift < 40; shift += 3) {
            char ref[512];
            for (int i = 0; i < 300; i++)
                buf[i] = ref[i] = (char)i;
            memmove(buf + shift, buf, n);
            for (int i = n - 1; i >= 0; i--)
                ref[i + shift] = ref[i];
            CHECK(memcmp(buf, ref, 300) == 0);
            for (int i = 0; i < 300; i++)
                buf[i] = ref[i] = (char)(i * 3);
            memmove(buf, buf + shift, n);
            for (int i = 0; i < n; i++)
                ref[i] = ref[i + shift];
            CHECK(memcmp(buf, ref, 300) == 0);
        }
    }
    memset(buf, 0x5c, 300);
    for (int i = 0; i < 300; i++)
        CHECK(buf[i] == 0x5c);
    printf("memmove/memset: ok\n");

    const char *hay = "the quick brown fox jumps over the lazy dog";
    CHECK(strstr(hay, "lazy") == hay + 35);
    CHECK(strstr(hay, "cat") == NULL);
    CHECK(strstr(hay, "") == hay);
    CHECK(strcasecmp("HeLLo", "hello") == 0);
    CHECK(strspn("aaabc", "a") == 3 && strcspn("abc:def", ":") == 3);
    char words[] = "alpha, beta,,gamma ,delta";
    char *save = NULL;
    printf("strtok_r:");
    for (char *w = strtok_r(words, ", ", &save); w; w = strtok_r(NULL, ", ", &save))
        printf(" [%s]", w);
    printf("\n");
    char *dup = strdup(hay);
    CHECK(dup && strcmp(dup, hay) == 0);
    free(dup);
}

static void formatting(void)
{
    char out[256];
    int n = snprintf(out, sizeof out, "%d|%5d|%-5d|%05d|%+d|%ld|%lld|%u|%x|%X|%#o|%c|%s|%.3s|%%",
                     -42, 42, 42, 42, 42, LONG_MIN, LLONG_MAX, UINT_MAX, 0xbeefu, 0xbeefu, 8,
                     'Q', "str", "truncate");
    printf("snprintf ints: %s (%d)\n", out, n);
    n = snprintf(out, sizeof out, "%f|%.2f|%e|%.3e|%g|%g|%g|%a|%10.4f|%-10.1f|", 3.14159265,
                 2.675, 12345.678, 0.000123456, 100000.0, 1000000.0, 1e-5, 1.0, -3.5, 2.25);
    printf("snprintf doubles: %s (%d)\n", out, n);
    n = snprintf(out, sizeof out, "%f %f %f %e", 1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0 * 0, -0.0);
    printf("snprintf special: %s\n", out);
    n = snprintf(out, sizeof out, "%p %s", (void *)0, "end");
    printf("snprintf nil: %s\n", out);
    volatile size_t small = 8; /* volatile: no build-time truncation warning */
    n = snprintf(out, small, "%s", "0123456789");
    CHECK(n == 10 && strcmp(out, "0123456") == 0);
    printf("snprintf truncation: [%s] wanted %d\n", out, n);
    printf("%'d %lu %hhd %hd %zu %jd\n", 1234567, ULONG_MAX, (signed char)200, (short)70000,
           sizeof(long double), (intmax_t)-1);

    int a, b;
    char word[32];
    double d;
    unsigned x;
    int got = sscanf("  17, -4 hello 2.5e3 ff", "%d, %d %31s %lf %x", &a, &b, word, &d, &x);
    printf("sscanf: %d fields: %d %d %s %.1f %u\n", got, a, b, word, d, x);
    CHECK(got == 5 && a == 17 && b == -4 && strcmp(word, "hello") == 0 && d == 2500.0 &&
          x == 255);

    char *end;
    d = strtod("3.14159e2xyz", &end);
    printf("strtod: %.5f rest=%s\n", d, end);
    CHECK(strcmp(end, "xyz") == 0);
    printf("strtod: %.17g %.17g %g %g\n", strtod("0.1", NULL), strtod("1e-320", NULL),
           strtod("inf", NULL), strtod("-0x1.8p1", NULL));
    errno = 0;
    double big = strtod("1e400", NULL);
    printf("strtod overflow: %g erange=%s\n", big, errno == ERANGE ? "yes" : "no");
    errno = 0;
    long l = strtol("-0x7fffFFFFffffFFFF", &end, 16);
    printf("strtol: %ld\n", l);
    l = strtol("0777", NULL, 0);
    CHECK(l == 511);
    errno = 0;
    l = strtol("99999999999999999999", NULL, 10);
    printf("strtol overflow: %ld erange=%s\n", l, errno == ERANGE ? "yes" : "no");
    unsigned long long ull = strtoull("18446744073709551615", NULL, 10);
    CHECK(ull == ULLONG_MAX);
    printf("atoi/atol: %d %ld\n", atoi("  -123abc"), atol("9876543210"));
}

static void memory_streams(void)
{
    char text[] = "line one\nline two\nlast line without newline";
    FILE *f = fmemopen(text, strlen(text), "r");
    CHECK(f != NULL);
    char line[64];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        printf("fmemopen line %d: %s\n", ++n, line);
    }
    fclose(f);

    char *mem = NULL;
    size_t size = 0;
    f = open_memstream(&mem, &size);
    CHECK(f != NULL);
    for (int i = 0; i < 1000; i++)
        fprintf(f, "%d,", i);
    fclose(f);
    CHECK(mem != NULL && size == strlen(mem));
    printf("open_memstream: %zu bytes, ends with %s\n", size, mem + size - 8);
    free(mem);
}

int main(void)
{
    string_functions();
    formatting();
    memory_streams();
    /* the other stdio output paths */
    fputs("puts/fputs/putchar:", stdout);
    putchar(' ');
    puts("done");
    printf("OK\n");
    return 0;
}
