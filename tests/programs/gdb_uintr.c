/*
 * gdb_uintr.c -- the guest of the gdb stub tests (tests/test_gdbstub.py).
 *
 * The main thread registers `handler`, connects to itself for vector 5 (uintr-next:
 * uintr_register_self), enables user interrupts and sends vector 5 to itself; the handler
 * records the vector.  Under gdb: `break handler`, `continue`, `print vector` shows 5.
 *
 * Build: gcc -O0 -g -static -muintr -mgeneral-regs-only -I examples (uintr-next ABI).
 * Prints "handler saw vector 5" and exits 0.
 */
#include "uintr.h"

#define VECTOR 5

static volatile unsigned long long seen = ~0ULL;
static volatile int done;

void __attribute__((interrupt)) handler(struct __uintr_frame *f, unsigned long long vector)
{
    (void)f;
    seen = vector;
    done = 1;
}

int main(void)
{
    uintr_require_handler(handler, 0);
    int index = uintr_register_self(VECTOR, 0);
    if (index < 0)
        uintr_fail_errno("uintr_register_self");
    _stui();
    _senduipi((unsigned long long)index);
    while (!done)
        uintr_cpu_relax();
    uintr_printf("handler saw vector %llu\n", seen);
    return seen == VECTOR ? 0 : 1;
}
