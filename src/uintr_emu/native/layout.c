/*
 * layout.c -- the layout of every structure in shared.h as this compiler lays it out, for
 * tests/test_native_layout.py to compare with the ctypes declarations: a field that one side
 * adds, moves or resizes would otherwise show up as wrong values far from the cause.
 *
 * Padding fields (`pad`) are left out: only the size of the whole structure covers them. The
 * constants that go with the structures (array lengths, flag values) are listed too.
 */
#include "shared.h"

struct uf_field {
    const char *type;  /* the structure's C tag */
    const char *field; /* the field's C name; NULL: the whole structure */
    u64 offset, size;
};

#define WHOLE(T) {#T, NULL, 0, sizeof(struct T)}
#define FIELD(T, F) {#T, #F, offsetof(struct T, F), sizeof(((struct T *)0)->F)}

static const struct uf_field fields[] = {
    WHOLE(uintr_state),
    FIELD(uintr_state, uirr),
    FIELD(uintr_state, handler),
    FIELD(uintr_state, stack_adjust),
    FIELD(uintr_state, uitt_addr),
    FIELD(uintr_state, upid_addr),
    FIELD(uintr_state, uitt_size),
    FIELD(uintr_state, uinv),
    FIELD(uintr_state, uif),
    FIELD(uintr_state, senduipi_enabled),

    WHOLE(unit),
    FIELD(unit, st),
    FIELD(unit, enabled),
    FIELD(unit, user_mode),
    FIELD(unit, flexible_uiret),
    FIELD(unit, traced),
    FIELD(unit, ipi_arrived),

    WHOLE(page),
    FIELD(page, vpage),
    FIELD(page, host),
    FIELD(page, perms),

    WHOLE(ctx),
    FIELD(ctx, unit),
    FIELD(ctx, kmem),
    FIELD(ctx, kmem_base),
    FIELD(ctx, kmem_size),
    FIELD(ctx, reg_read),
    FIELD(ctx, reg_write),
    FIELD(ctx, mem_read),
    FIELD(ctx, emu_start),
    FIELD(ctx, emu_stop),
    FIELD(ctx, context_save),
    FIELD(ctx, context_restore),
    FIELD(ctx, slow),
    FIELD(ctx, slow_data),
    FIELD(ctx, post),
    FIELD(ctx, deliver),
    FIELD(ctx, regs),
    FIELD(ctx, gprs),
    FIELD(ctx, pages),
    FIELD(ctx, next_page),
    FIELD(ctx, stats),

    WHOLE(block_entry),
    FIELD(block_entry, pc),
    FIELD(block_entry, size),
    FIELD(block_entry, n),

    WHOLE(counter),
    FIELD(counter, count),
    FIELD(counter, limit),
    FIELD(counter, stop),
    FIELD(counter, last_pc),
    FIELD(counter, last_size),
    FIELD(counter, last_n),
    FIELD(counter, stop_why),
    FIELD(counter, miss_size),
    FIELD(counter, miss_pc),
    FIELD(counter, mask),
    FIELD(counter, table),
    FIELD(counter, attention),
    FIELD(counter, start),
    FIELD(counter, ctl),
    FIELD(counter, mmu),
    FIELD(counter, learnt),
    FIELD(counter, halt),
    FIELD(counter, seen),

    WHOLE(tlb_entry),
    FIELD(tlb_entry, paddr),
    FIELD(tlb_entry, perms),

    WHOLE(region),
    FIELD(region, start),
    FIELD(region, end),
    FIELD(region, perms),

    WHOLE(mmu),
    FIELD(mmu, regions),
    FIELD(mmu, count),
    FIELD(mmu, capacity),
    FIELD(mmu, reg_read),
    FIELD(mmu, rip_id),
    FIELD(mmu, maintenance),
    FIELD(mmu, stale),
    FIELD(mmu, fault_kind),
    FIELD(mmu, fault_mapped),
    FIELD(mmu, fault_page),
    FIELD(mmu, fault_rip),
    FIELD(mmu, fills),
    FIELD(mmu, refusals),
};

/* The i-th entry of the table, NULL past the last. */
const struct uf_field *uf_layout(u32 i)
{
    return i < sizeof fields / sizeof fields[0] ? &fields[i] : NULL;
}

/* The constants of shared.h that Python uses too, by name. */
struct uf_constant {
    const char *name;
    long long value;
};

#define CONSTANT(C) {#C, C}

static const struct uf_constant constants[] = {
    CONSTANT(NPAGES),    CONSTANT(NSTATS),  CONSTANT(PERM_R),    CONSTANT(PERM_W),
    CONSTANT(STOP_MISS), CONSTANT(STOP_OVER), CONSTANT(POST_OK), CONSTANT(POST_STOP),
    CONSTANT(SLOW),      CONSTANT(ACCESS_READ), CONSTANT(ACCESS_WRITE), CONSTANT(ACCESS_FETCH),
    CONSTANT(PROT_READ), CONSTANT(PROT_WRITE),  CONSTANT(PROT_EXEC),
};

/* The i-th constant, NULL past the last. */
const struct uf_constant *uf_constant(u32 i)
{
    return i < sizeof constants / sizeof constants[0] ? &constants[i] : NULL;
}
