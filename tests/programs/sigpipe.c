/*
 * sigpipe.c -- writes lines to stdout until the write fails. With stdout a pipe whose reader
 * is gone, the first write raises SIGPIPE, whose default action ends the program (pipe(7)):
 * the exit status is 141 and nothing after the loop runs.
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    for (int i = 0; i < 1000000; i++)
        if (write(1, "line\n", 5) < 0)
            return 1; /* SIGPIPE ignored or blocked: not expected here */
    return 0;
}
