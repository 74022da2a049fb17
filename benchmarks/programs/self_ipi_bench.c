/* Self-IPI rate for benchmarks/run.py: one thread sends N user interrupts to itself.
 *
 *     self_ipi_bench N
 *
 * uintr_register_self(vector) gives a UITT index that targets the thread's own receiver; the
 * loop executes SENDUIPI N times and, after each, spins until the handler has counted it (in
 * uintr-emu a self-IPI is taken at the next instruction boundary, so the spin ends at once).
 * Build with -muintr -mgeneral-regs-only -I examples (uintr-next ABI only). Prints
 * "self_ipi: N sent, N received" and exits 0 when every interrupt arrived exactly once. */
#include "uintr.h"

#define VECTOR 3

static volatile unsigned long received, strays;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    if (vector == VECTOR)
        received++;
    else
        strays++;
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    uintr_require_handler(ui_handler, 0);
    int index = uintr_register_self(VECTOR, 0);
    if (index < 0)
        uintr_fail_errno("uintr_register_self");
    _stui();
    for (unsigned long i = 1; i <= n; i++) {
        _senduipi((unsigned long long)index);
        if (uintr_spin_until(&received, i) < 0)
            uintr_fail("self IPI %lu was not delivered", i);
    }
    _clui();
    uintr_printf("self_ipi: %lu sent, %lu received\n", n, received);
    if (received != n || strays != 0)
        uintr_fail("expected %lu interrupts on vector %d, got %lu (+%lu others)", n, VECTOR,
                   received, strays);
    if (uintr_sender_unregister(-1, index) < 0)
        uintr_fail_errno("uintr_unregister_sender");
    if (uintr_handler_unregister() < 0)
        uintr_fail_errno("uintr_unregister_handler");
    return 0;
}
