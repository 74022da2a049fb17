/*
 * mmu.c -- guest memory permissions for Unicorn's virtual TLB (docs/architecture.md, "Guest
 * memory"; the engine facts: docs/engine-notes.md §15).
 *
 * The engine runs in UC_TLB_VIRTUAL mode: on a TLB miss Unicorn calls `uf_tlb_fill` with the
 * linear page (all 64 bits) and the kind of access, and the fill answers with the physical page
 * and the permissions the TLB entry gets. Every guest mapping is a Unicorn region at its own
 * linear address, so physical == linear; the permissions are the mapping's, from the region
 * table the engine keeps (`uf_mmu_assign`). A data page's entry is then not executable and
 * stores to it take Unicorn's fast path, and an access the mapping does not allow -- or to a
 * page with no mapping, a kernel-half or a non-canonical page -- is refused: the fill records it
 * in `struct mmu` and returns false, and Unicorn ends the run with UC_ERR_EXCEPTION and RIP at
 * the instruction (engine/unicorn.py turns that into the fault).
 *
 * engine/mmu.py has the same two functions in Python, for an install without a compiler.
 */
#include <string.h>

#include "shared.h"

#define PAGE_SIZE 0x1000ull

/* The region holding `page`, NULL if none (binary search: regions are sorted and disjoint). */
static const struct region *find(const struct mmu *m, u64 page)
{
    u32 lo = 0, hi = m->count;
    while (lo < hi) {
        u32 mid = lo + (hi - lo) / 2;
        if (m->regions[mid].end <= page)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->count && m->regions[lo].start <= page ? &m->regions[lo] : NULL;
}

/*
 * Whether a refused fetch of `page` is the guest's own. Unicorn also probes code pages when it
 * removes translations: after every run for the address the run was to stop at, and at the end
 * of the first run after a code or block hook was deleted, for every block that hook saw
 * (docs/engine-notes.md §15). A refusal there would fail a run that did nothing wrong. The
 * guest fetches only the page of RIP -- the start of the block being translated, or a branch's
 * target -- and the page after it (a block or an instruction running into the next page).
 */
static bool guest_fetch(const struct mmu *m, void *uc, u64 page)
{
    u64 rip = 0;
    m->reg_read(uc, m->rip_id, &rip);
    u64 here = rip & ~(PAGE_SIZE - 1);
    return page == here || page == here + PAGE_SIZE;
}

/*
 * UC_HOOK_TLB_FILL. `page` is the linear page of the access (Unicorn masks the offset away),
 * `kind` ACCESS_READ, ACCESS_WRITE or ACCESS_FETCH. Granting all of the region's permissions at
 * once makes one entry serve loads, stores and fetches (a read-modify-write would otherwise
 * refill on every access, docs/performance.md).
 */
bool uf_tlb_fill(void *uc, u64 page, int kind, struct tlb_entry *e, void *data)
{
    struct mmu *m = data;
    u32 need = kind == ACCESS_WRITE ? PROT_WRITE : kind == ACCESS_FETCH ? PROT_EXEC : PROT_READ;
    const struct region *r = find(m, page);
    m->fills++;
    if (r && (r->perms & need)) {
        e->paddr = page;
        e->perms = r->perms;
        return true;
    }
    if (m->maintenance || (kind == ACCESS_FETCH && !guest_fetch(m, uc, page))) {
        /* Not a guest access: grant just this one (a page with no region maps to no memory,
         * so the entry is harmless; one of a region is flushed before the guest runs). */
        e->paddr = page;
        e->perms = need;
        if (r)
            m->stale = 1;
        return true;
    }
    m->refusals++;
    if (!m->fault_kind) {
        u64 rip = 0;
        m->reg_read(uc, m->rip_id, &rip);
        m->fault_kind = (u32)kind;
        m->fault_mapped = r != NULL;
        m->fault_page = page;
        m->fault_rip = rip;
    }
    return false;
}

/*
 * Give the pages [start, end) the permissions `perms` (mapped: `mapped` true), or no mapping
 * (`mapped` false), whatever they had. Returns the OR of the permissions the range had before,
 * or -1, with nothing changed, when the table has too few free entries (the caller grows it and
 * calls again: the result never has more than count + 2 entries).
 */
int uf_mmu_assign(struct mmu *m, u64 start, u64 end, u32 perms, bool mapped)
{
    struct region *t = m->regions;
    u32 n = m->count;
    /* [i, j): the regions overlapping [start, end). */
    u32 i = 0, hi = n;
    while (i < hi) {
        u32 mid = i + (hi - i) / 2;
        if (t[mid].end <= start)
            i = mid + 1;
        else
            hi = mid;
    }
    u32 j = i;
    u32 before = 0;
    while (j < n && t[j].start < end)
        before |= t[j++].perms;
    /* What replaces them: the part of t[i] left of start, the new range, the part of t[j-1]
     * right of end. */
    struct region repl[3];
    u32 k = 0;
    if (i < j && t[i].start < start)
        repl[k++] = (struct region){t[i].start, start, t[i].perms, 0};
    if (mapped)
        repl[k++] = (struct region){start, end, perms, 0};
    if (i < j && t[j - 1].end > end)
        repl[k++] = (struct region){end, t[j - 1].end, t[j - 1].perms, 0};
    /* Merge with equal neighbours that touch: the table stays as short as the mappings. */
    u32 first = 0;
    if (k && i > 0 && t[i - 1].end == repl[0].start && t[i - 1].perms == repl[0].perms) {
        repl[0].start = t[--i].start;
    }
    if (k && j < n && t[j].start == repl[k - 1].end && t[j].perms == repl[k - 1].perms) {
        repl[k - 1].end = t[j++].end;
    }
    for (u32 a = 1; a < k; a++) { /* inside repl: the new range may equal a remainder */
        if (repl[first].end == repl[a].start && repl[first].perms == repl[a].perms)
            repl[first].end = repl[a].end;
        else
            repl[++first] = repl[a];
    }
    k = k ? first + 1 : 0;
    u32 count = n - (j - i) + k;
    if (count > m->capacity)
        return -1;
    memmove(&t[i + k], &t[j], (n - j) * sizeof *t);
    memcpy(&t[i], repl, k * sizeof *t);
    m->count = count;
    return (int)before;
}

/*
 * UC_HOOK_MEM_FETCH_UNMAPPED, installed bounded to each executable range of the table
 * (engine/mmu.py `Mmu._mark_code`) for what its presence does, not to be called: Unicorn 2.1.4
 * walks its whole TLB after translating each block (`tlb_reset_dirty_by_vaddr`, to send later
 * stores to that page through the invalidating slow path) unless a memory hook covers the block
 * -- 15% of gcc's CPU time. The walk changes nothing here: every TLB entry of an executable
 * page is executable (the fill grants a region's permissions whole; permission changes flush),
 * and Unicorn never lets stores through an executable entry skip the slow path. It is never
 * called, since every page of an executable range has a Unicorn region; if it were, declining
 * leaves the fault to the engine as without the hook.
 */
bool uf_code_mark(void *uc, int type, u64 address, int size, int64_t value, void *data)
{
    (void)uc, (void)type, (void)address, (void)size, (void)value, (void)data;
    return false;
}
