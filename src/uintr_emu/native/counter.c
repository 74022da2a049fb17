/*
 * counter.c -- the engine's two instruction counters, as Unicorn hook callbacks
 * (docs/architecture.md, "Counting instructions"; engine/counting.py installs them).
 *
 * Both run inside translated guest code, on every instruction or every block entered, so they do
 * as little as possible: no call but the stop, which is the last thing they do (a tail call).
 * They stop the engine from inside the hook, synchronously, before the instruction or block runs
 * (docs/engine-notes.md G14: an asynchronous stop can run a read-modify-write instruction twice).
 * engine/counting.py has the same two functions in Python, for an install without a compiler.
 * The third function, the tracker, only notes the block entered last, while nothing counts.
 * All three also stop the engine while the machine's attention word is set (a host signal to
 * forward): a lone thread runs with the tracker alone, and this is its only safe way out.
 */
#include "shared.h"

/*
 * UC_HOOK_CODE, called before every instruction: count it, or stop before it if `limit`
 * instructions have run. Exact at any instruction; used by the debugger and where a slice must
 * be able to end inside a block (seeded runs, the last stretch before --max-insns).
 */
void uf_count_insn(void *uc, u64 address, u32 size, void *data)
{
    struct counter *c = data;
    if (c->count >= c->limit || *c->attention) {
        c->stop(uc);
        return;
    }
    c->count++;
    c->last_pc = address; /* a one-instruction "block": the branch before a fetch fault */
    c->last_size = size;
}

/*
 * UC_HOOK_BLOCK, called before a translation block's first instruction with its address and size
 * in bytes: add its instruction count, looked up in the direct-mapped table. The engine is
 * stopped before the block runs when its count is not in the table (STOP_MISS: Engine.run learns
 * it and resumes) or when it would take the count past `limit` (STOP_OVER: the slice ends at this
 * block boundary). The size is compared too, so that a block retranslated shorter or longer at
 * the same address is not counted with a stale count. `last_*` let Engine.run count a block that
 * a fault or breakpoint cut short.
 */
void uf_count_block(void *uc, u64 pc, u32 size, void *data)
{
    struct counter *c = data;
    if (*c->attention) {
        c->stop_why = STOP_ATTENTION;
        c->stop(uc);
        return;
    }
    const struct block_entry *e = &c->table[(pc ^ pc >> 12) & c->mask];
    if (e->pc != pc || e->size != size) {
        c->stop_why = STOP_MISS;
        c->miss_size = size;
        c->miss_pc = pc;
        c->stop(uc);
        return;
    }
    u64 count = c->count + e->n;
    if (count > c->limit) {
        c->stop_why = STOP_OVER;
        c->stop(uc);
        return;
    }
    c->count = count;
    c->last_pc = pc;
    c->last_size = size;
    c->last_n = e->n;
}

/*
 * UC_HOOK_BLOCK while no counter is installed: note the block entered last (or stop before it
 * when the attention word is set: the block has not run). A branch to a
 * non-canonical address is reported at the branch, but Unicorn fails only the fetch at the
 * target, after the branch has retired; the branch is this block's last instruction
 * (engine/unicorn.py `Engine.branch_before`, docs/engine-notes.md §15).
 */
void uf_track_block(void *uc, u64 pc, u32 size, void *data)
{
    struct counter *c = data;
    if (*c->attention) {
        c->stop_why = STOP_ATTENTION;
        c->stop(uc);
        return;
    }
    c->last_pc = pc;
    c->last_size = size;
}
