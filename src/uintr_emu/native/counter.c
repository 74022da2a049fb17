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

/* Unicorn's uc_tb and the two uc_ctl requests used here (unicorn.h, 2.1.4): UC_CTL(type, nargs,
 * rw) = type | nargs << 26 | rw << 30. */
struct uc_tb {
    u64 pc;
    uint16_t icount, size;
};
#define CTL_TB_REQUEST_CACHE (8u | 2u << 26 | 3u << 30) /* read-write, 2 arguments */
#define CTL_TLB_FLUSH (11u | 0u << 26 | 1u << 30)       /* write, no argument */

/*
 * Engine.run's loop while the block counter is installed, for its most frequent stop: a block
 * not in the table (STOP_MISS). Asks Unicorn for the block's instruction count (the block is
 * translated already: it was about to run), fills its entry and resumes at it, as
 * Counters.learn does, without returning to Python (~8 us a block there; a process's first
 * 20 M counted instructions miss tens of thousands of times). Every other stop returns the
 * engine's status, and so does a miss that Python must see: a stop or error recorded by Python
 * (`halt`), the block learnt last missing again, a failed lookup. The lookup is the engine's
 * own code lookup, so the fill grants everything meanwhile, and what it granted beyond a page's
 * permissions is flushed before guest code runs again (engine/mmu.py `Mmu.maintenance`).
 */
int uf_run_blocks(struct counter *c, void *uc, u64 rip)
{
    for (;;) {
        c->stop_why = 0;
        c->last_size = 0;
        if (c->halt)
            return 0;
        int status = c->start(uc, rip, ~0ull, 0, 0);
        u64 pc = c->miss_pc;
        if (status != 0 || c->stop_why != STOP_MISS || c->halt || pc == c->learnt)
            return status;
        struct mmu *m = c->mmu;
        u32 outer = m->maintenance;
        struct uc_tb tb;
        m->maintenance = 1;
        int err = c->ctl(uc, CTL_TB_REQUEST_CACHE, pc, &tb);
        m->maintenance = outer;
        if (!outer && m->stale) {
            c->ctl(uc, CTL_TLB_FLUSH);
            m->stale = 0;
        }
        if (err != 0)
            return status; /* Python asks again, and reports the error */
        struct block_entry *e = &c->table[(pc ^ pc >> 12) & c->mask];
        e->pc = pc;
        e->size = c->miss_size;
        e->n = tb.icount;
        c->learnt = pc;
        c->seen[(pc >> 18) % SEEN_WORDS] |= 1ull << (pc >> 12 & 63);
        rip = pc;
    }
}

/* Counters.forget: the code in pages [first, last] changed; drop every block learnt there. Called
 * at every munmap and for every page that loses execute permission, so it looks where it can:
 * not at all when no page of the range was ever learnt (`seen`), at the slots a block of the page
 * can occupy for a few pages (one per byte of the page), else over the whole table. */
void uf_forget_blocks(struct counter *c, u64 first, u64 last)
{
    if (last - first < SEEN_WORDS * 64) {
        bool any = false;
        for (u64 p = first; p <= last && !any; p++)
            any = c->seen[(p >> 6) % SEEN_WORDS] >> (p & 63) & 1;
        if (!any)
            return;
    }
    if (last - first < (c->mask + 1) >> 12) {
        for (u64 p = first; p <= last; p++) {
            for (u64 pc = p << 12; pc < (p + 1) << 12; pc++) {
                struct block_entry *e = &c->table[(pc ^ pc >> 12) & c->mask];
                if (e->size && e->pc == pc) {
                    e->pc = ~0ull;
                    e->size = 0;
                }
            }
        }
        return;
    }
    for (u64 i = 0; i <= c->mask; i++) {
        struct block_entry *e = &c->table[i];
        if (e->size && first <= e->pc >> 12 && e->pc >> 12 <= last) {
            e->pc = ~0ull;
            e->size = 0;
        }
    }
}
