/*
 * args_env.c -- process start-up: argc/argv, the environment and the auxiliary vector.
 *
 * Prints argc and every argv[i] (argv[0] included: the tests pass the same absolute
 * path natively and under the emulator), the value of UEMU_TEST_VAR (or "(unset)"),
 * whether UEMU_UNSET_ME is present, and a few auxv facts, then writes one line to
 * stderr.  Exits with status 3 on purpose so the tests can check that the guest's
 * exit status passes through.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "check.h"

extern char **environ;

int main(int argc, char **argv, char **envp)
{
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=[%s]\n", i, argv[i]);
    CHECK(argv[argc] == NULL);

    /* envp (third argument of main) and environ are the same array, right after argv. */
    CHECK(envp == environ);
    CHECK(envp == argv + argc + 1);

    const char *v = getenv("UEMU_TEST_VAR");
    printf("UEMU_TEST_VAR=%s\n", v ? v : "(unset)");
    printf("UEMU_UNSET_ME is %s\n", getenv("UEMU_UNSET_ME") ? "set" : "unset");

    /* Every environment string has the NAME=VALUE form. */
    for (char **e = environ; *e; e++)
        CHECK(strchr(*e, '=') != NULL);

    /* The auxiliary vector: page size, a 16-byte AT_RANDOM block, and the ELF headers. */
    CHECK(getauxval(AT_PAGESZ) == 4096);
    CHECK(sysconf(_SC_PAGESIZE) == 4096);
    CHECK(getauxval(AT_RANDOM) != 0);
    CHECK(getauxval(AT_PHDR) != 0);
    CHECK(getauxval(AT_PHENT) == 56);
    CHECK(getauxval(AT_PHNUM) > 0);
    CHECK(getauxval(AT_ENTRY) != 0);
    printf("auxv ok\n");

    /* The initial stack pointer of main's frame is 16-byte aligned per the ABI. */
    CHECK(((unsigned long)__builtin_frame_address(0) & 15) == 0);

    /* One line on stderr: the tests check that the guest's stderr passes through. */
    fprintf(stderr, "args_env: a line on stderr\n");
    printf("OK\n");
    return 3;
}
