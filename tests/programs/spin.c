/*
 * spin.c -- a runaway program for the --max-insns, --timeout and stopping tests: prints one
 * line, then loops forever without any system call.
 *
 *   spin          one thread spins (the scheduler runs it unsliced)
 *   spin N        N threads spin (two or more: sliced)
 *   spin read     the main thread blocks in read(0) instead (a host read, for the emulator)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *spin(void *arg)
{
    volatile unsigned long n = 0;
    (void)arg;
    for (;;)
        n++;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "read") == 0) {
        char c;
        printf("reading\n");
        fflush(stdout);
        return (int)read(0, &c, 1);
    }
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    for (int i = 1; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, spin, NULL) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    printf("spinning\n"); /* every thread is there */
    fflush(stdout);
    spin(NULL);
}
