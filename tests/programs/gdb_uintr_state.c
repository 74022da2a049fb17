/*
 * gdb_uintr_state.c -- the guest of the gdb test that reads UINTR state (tests/test_gdbstub.py).
 *
 * The main thread registers `handler` and connects to itself for vectors 5 and 9 (two UITT
 * entries, one UPID). With user interrupts blocked (CLUI, UIF = 0) it sends vector 9: the
 * notification moves it to UIRR, where it waits (docs/uintr.md §8). At `pending_here` gdb sees
 * UIRR = 1 << 9 and UIF = 0. STUI then delivers it: in `handler` UIF is 0 and UIRR is 0 again;
 * the handler's UIRET returns to main with UIF = 1.
 *
 * Build: gcc -O0 -g -static -muintr -mgeneral-regs-only -I examples (uintr-next ABI).
 * Prints "handler saw vector 9" and exits 0.
 */
#include "uintr.h"

static volatile unsigned long long seen = ~0ULL;
static volatile int done;

void __attribute__((interrupt)) handler(struct __uintr_frame *f, unsigned long long vector)
{
    (void)f;
    seen = vector;
    done = 1;
}

/* gdb breaks here while vector 9 is pending and UIF is 0. */
void __attribute__((noinline)) pending_here(void) { __asm__ volatile("" ::: "memory"); }

int main(void)
{
    uintr_require_handler(handler, 0);
    int index5 = uintr_register_self(5, 0);
    int index9 = uintr_register_self(9, 0);
    if (index5 < 0 || index9 < 0)
        uintr_fail_errno("uintr_register_self");
    _clui();
    _senduipi((unsigned long long)index9);
    pending_here();
    if (done)
        uintr_fail("delivered while UIF = 0");
    _stui();
    while (!done)
        uintr_cpu_relax();
    uintr_printf("handler saw vector %llu\n", seen);
    return seen == 9 ? 0 : 1;
}
