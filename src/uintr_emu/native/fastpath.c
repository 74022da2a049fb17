/*
 * fastpath.c -- the common cases of the five UINTR instructions and of user-interrupt delivery,
 * in native code, for the engine's #UD hook (docs/performance.md, "The native fast path").
 *
 * The Python model (hw/uintr.py, hw/decode.py, machine.py) is the specification. This file
 * implements the same rules for the cases that need no Python: state in the shared `struct unit`
 * (the ctypes `NativeUnit` of hw/uintr.py, the one copy of the UINTR state), UITT and UPID in
 * kernel memory, user stacks in pages the Linux layer has vouched for (`struct page`). Anything
 * else -- a fault, memory it cannot reach, tracing, an IPI waiting in the APIC -- is handed back
 * *before any state changes*, and the Python model executes the instruction from the start; so a
 * fault is always raised, and reported, by the model. Section numbers (§) refer to
 * docs/uintr.md, as in the model.
 *
 * The structures shared with Python are in shared.h. No libunicorn symbol is linked: the engine's
 * functions and register ids arrive as pointers and numbers in `struct ctx`, filled by
 * engine/native.py.
 */
#include <string.h>

#include "shared.h"

/* -- constants of the model (hw/uintr.py, hw/cpu.py) ------------------------------------- */

#define RFLAGS_CF (1ull << 0)
#define RFLAGS_FIXED1 (1ull << 1)
#define RFLAGS_PF (1ull << 2)
#define RFLAGS_AF (1ull << 4)
#define RFLAGS_ZF (1ull << 6)
#define RFLAGS_SF (1ull << 7)
#define RFLAGS_TF (1ull << 8)
#define RFLAGS_IF (1ull << 9)
#define RFLAGS_OF (1ull << 11)
#define RFLAGS_RF (1ull << 16)
#define TESTUI_FLAGS (RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF)
#define UIRET_RFLAGS_MASK 0x254DD5ull /* §6.4: the flags UIRET restores */
#define UITTE_VALID 1ull
#define UITTE_RESERVED 0xFFFFFFFFFFFF00FEull /* bits 7:1 and 63:16 */
#define UPID_ON 1ull
#define UPID_SN 2ull
#define UPID_RESERVED 0xFF00FFFCull /* bits 15:2 and 31:24 */
#define NUM_USER_VECTORS 64

/* Canonical for 48-bit linear addresses: bits 63:47 all equal (§2). */
static inline bool canonical(u64 a)
{
    u64 high = a >> 47;
    return high == 0 || high == 0x1FFFF;
}

static inline u64 rd64(const u8 *p)
{
    u64 v;
    memcpy(&v, p, 8);
    return v;
}

static inline void wr64(u8 *p, u64 v) { memcpy(p, &v, 8); }

/* -- memory ---------------------------------------------------------------------------- */

/* Kernel memory holds [addr, addr+n) wholly: the model's KernelMemory.contains. */
static u8 *kernel_bytes(const struct ctx *c, u64 addr, u64 n)
{
    if (addr < c->kmem_base || addr - c->kmem_base > c->kmem_size || c->kmem_size - (addr - c->kmem_base) < n)
        return NULL;
    return c->kmem + (addr - c->kmem_base);
}

static const struct page *find_page(const struct ctx *c, u64 vpage, u32 need)
{
    for (int i = 0; i < NPAGES; i++)
        if (c->pages[i].vpage == vpage)
            return (c->pages[i].perms & need) == need ? &c->pages[i] : NULL;
    return NULL;
}

/*
 * A user access of n <= 32 bytes at addr, only through vouched-for pages. Returns false, with
 * nothing read or written, if any byte is on a page the fast path does not know (the model then
 * finds the page or raises the fault). Kernel memory is never in `pages`: a user access to it
 * is the model's #PF.
 */
static bool user_access(const struct ctx *c, u64 addr, u8 *buf, u64 n, bool write)
{
    u64 last = addr + n - 1;
    if (last < addr)
        return false; /* wraps around: the model decides */
    u32 need = write ? PERM_W : PERM_R;
    const struct page *p0 = find_page(c, addr >> 12, need);
    if (p0 == NULL)
        return false;
    const struct page *p1 = p0;
    if ((last >> 12) != (addr >> 12)) {
        p1 = find_page(c, last >> 12, need);
        if (p1 == NULL)
            return false;
    }
    u64 first = 0x1000 - (addr & 0xFFF);
    if (first > n)
        first = n;
    u8 *h0 = (u8 *)(uintptr_t)(p0->host + (addr & 0xFFF));
    u8 *h1 = (u8 *)(uintptr_t)p1->host;
    if (write) {
        memcpy(h0, buf, first);
        memcpy(h1, buf + first, n - first);
    } else {
        memcpy(buf, h0, first);
        memcpy(buf + first, h1, n - first);
    }
    return true;
}

/* -- decoding (hw/decode.py: the same prefix rules) ------------------------------------ */

enum { M_UIRET = 0, M_TESTUI, M_CLUI, M_STUI, M_SENDUIPI };

/*
 * Decode the instruction at the start of code[0..n). Returns its length and sets *mnemonic (and
 * *reg for SENDUIPI), 0 if it is not a UINTR instruction, -1 for a UINTR encoding with a LOCK
 * prefix (#UD: the model raises it).
 */
int uf_decode(const u8 *code, int n, int *mnemonic, int *reg)
{
    int limit = n < 15 ? n : 15;
    int i = 0, lock = 0, mandatory = 0, rex = 0;
    for (; i < limit; i++) {
        u8 b = code[i];
        if (b == 0xF3 || b == 0xF2) {
            mandatory = b;
            rex = 0;
        } else if (b >= 0x40 && b <= 0x4F) {
            rex = b;
        } else if (b == 0xF0) {
            lock = 1;
            rex = 0;
        } else if (b == 0x66 || b == 0x67 || b == 0x26 || b == 0x2E || b == 0x36 || b == 0x3E ||
                   b == 0x64 || b == 0x65) {
            rex = 0;
        } else {
            break;
        }
    }
    int length = i + 3;
    if (mandatory != 0xF3 || length > limit || code[i] != 0x0F)
        return 0;
    u8 opcode = code[i + 1], modrm = code[i + 2];
    if (opcode == 0x01) {
        if (modrm < 0xEC || modrm > 0xEF)
            return 0;
        *mnemonic = M_UIRET + (modrm - 0xEC);
        *reg = -1;
    } else if (opcode == 0xC7) {
        if ((modrm & 0xF8) != 0xF0)
            return 0;
        *mnemonic = M_SENDUIPI;
        *reg = (modrm & 7) | ((rex & 1) << 3);
    } else {
        return 0;
    }
    return lock ? -1 : length;
}

/* -- instructions and delivery (UintrUnit.uiret, .senduipi, .deliver) ------------------- */

/*
 * UIRET (§6.4) with RSP and RFLAGS given: out = new RIP, RFLAGS, RSP; UIF updated. SLOW when the
 * model must run it (a fault, or a stack page the fast path does not know).
 */
int uf_uiret(struct ctx *c, u64 rsp, u64 rflags, u64 *out)
{
    struct unit *u = c->unit;
    if (!u->enabled || !u->user_mode)
        return SLOW; /* #UD, or supervisor pops */
    if (!canonical(rsp) || !canonical(rsp + 23))
        return SLOW; /* #SS(0) */
    u8 frame[24];
    if (!user_access(c, rsp, frame, 24, false))
        return SLOW;
    u64 temp_rip = rd64(frame), temp_rflags = rd64(frame + 8), temp_rsp = rd64(frame + 16);
    if (!canonical(temp_rip))
        return SLOW; /* #GP(0) */
    out[0] = temp_rip;
    out[1] = (rflags & ~UIRET_RFLAGS_MASK) | (temp_rflags & UIRET_RFLAGS_MASK) | RFLAGS_FIXED1;
    out[2] = temp_rsp; /* a direct load, not RSP + 24 */
    u->st.uif = u->flexible_uiret ? (temp_rflags & RFLAGS_FIXED1) != 0 : 1;
    return 0;
}

/*
 * SENDUIPI (§6.5) of UITT entry `index`: the UPID post. out = UPID address, notify (SN = ON = 0
 * before), NV, NDST. The IPI itself is sent by the caller's `post` callback (the APIC bus is the
 * model's). SLOW for every fault and for a UITT or UPID outside kernel memory.
 */
int uf_senduipi(struct ctx *c, u64 index, u64 *out)
{
    struct unit *u = c->unit;
    struct uintr_state *st = &u->st;
    if (!u->enabled || !st->senduipi_enabled)
        return SLOW; /* #UD */
    if (index > st->uitt_size)
        return SLOW; /* #GP(0): UITTSZ is the highest valid index */
    u64 entry_addr = st->uitt_addr + (index << 4);
    if (!canonical(entry_addr))
        return SLOW;
    const u8 *e = kernel_bytes(c, entry_addr, 16);
    if (e == NULL)
        return SLOW;
    u64 entry = rd64(e), upid_addr = rd64(e + 8);
    if (!(entry & UITTE_VALID) || (entry & UITTE_RESERVED))
        return SLOW;
    u64 vector = (entry >> 8) & 0xFF;
    if (vector >= NUM_USER_VECTORS || (upid_addr & 0x3F) || !canonical(upid_addr))
        return SLOW;
    u8 *p = kernel_bytes(c, upid_addr, 16);
    if (p == NULL)
        return SLOW;
    u64 upid = rd64(p), pir = rd64(p + 8);
    if (upid & UPID_RESERVED)
        return SLOW;
    /* One 16-byte read-modify-write (one host thread runs every CPU, §16). */
    pir |= 1ull << vector;
    bool notify = (upid & (UPID_ON | UPID_SN)) == 0;
    if (notify)
        upid |= UPID_ON;
    wr64(p, upid);
    wr64(p + 8, pir);
    out[0] = upid_addr;
    out[1] = notify;
    out[2] = (upid >> 16) & 0xFF;
    out[3] = upid >> 32;
    return 0;
}

/*
 * User-interrupt delivery (§8) at RIP with RSP and RFLAGS given: 1 and out = new RIP, RSP, RFLAGS
 * when delivered; 0 when the conditions do not hold (UIRR = 0, UIF = 0, IF = 0, CPL != 3, or
 * CR4.UINTR = 0); SLOW when the model must do it (a fault, an unknown stack page).
 */
int uf_deliver(struct ctx *c, u64 rip, u64 rsp, u64 rflags, u64 *out)
{
    struct unit *u = c->unit;
    struct uintr_state *st = &u->st;
    u64 uirr = st->uirr;
    if (!(uirr && st->uif && u->enabled && u->user_mode && (rflags & RFLAGS_IF)))
        return 0;
    if (!canonical(st->handler))
        return SLOW; /* #GP(0) */
    u64 adjust = st->stack_adjust;
    u64 new_rsp = (adjust & 1) ? adjust : rsp - adjust;
    new_rsp &= ~0xFull;
    u64 frame_addr = new_rsp - 32;
    if (!canonical(frame_addr) || !canonical(new_rsp - 1))
        return SLOW; /* #SS(0) */
    u64 vector = 63 - (u64)__builtin_clzll(uirr);
    rflags |= RFLAGS_FIXED1;
    u8 frame[32];
    wr64(frame, vector);
    wr64(frame + 8, rip);
    wr64(frame + 16, rflags);
    wr64(frame + 24, rsp);
    if (!user_access(c, frame_addr, frame, 32, true))
        return SLOW;
    st->uirr = uirr & ~(1ull << vector);
    st->uif = 0;
    out[0] = st->handler;
    out[1] = frame_addr;
    out[2] = rflags & ~(RFLAGS_TF | RFLAGS_RF);
    return 1;
}

/*
 * User-interrupt notification processing (§7, UintrUnit.process_notification) on the UPID at
 * UPIDADDR in kernel memory [kmem, kmem + size) at guest address `base`: ON := 0, UIRR |= PIR,
 * PIR := 0. SLOW for a UPID elsewhere or while the model reports events.
 */
int uf_notify(struct unit *u, u8 *kmem, u64 base, u64 size)
{
    struct ctx c = {.kmem = kmem, .kmem_base = base, .kmem_size = size};
    u8 *p = kernel_bytes(&c, u->st.upid_addr, 16);
    if (p == NULL || u->traced)
        return SLOW;
    u64 upid = rd64(p), pir = rd64(p + 8);
    wr64(p, upid & ~UPID_ON);
    wr64(p + 8, 0);
    u->st.uirr |= pir;
    return 0;
}

/* -- engine glue ------------------------------------------------------------------------ */

static inline u64 reg(struct ctx *c, void *uc, int id)
{
    u64 v = 0;
    c->reg_read(uc, id, &v);
    return v;
}

static inline void set_reg(struct ctx *c, void *uc, int id, u64 v) { c->reg_write(uc, id, &v); }

/* Delivery at the engine's current instruction boundary for c->unit. */
static int deliver_now(struct ctx *c, void *uc)
{
    struct unit *u = c->unit;
    if (u->ipi_arrived || u->traced)
        return SLOW;
    if (!u->st.uirr)
        return 0;
    u64 rflags = reg(c, uc, c->regs[REG_RFLAGS]);
    u64 out[3];
    int r = uf_deliver(c, reg(c, uc, c->regs[REG_RIP]), reg(c, uc, c->regs[REG_RSP]), rflags, out);
    if (r == 1) {
        set_reg(c, uc, c->regs[REG_RSP], out[1]);
        set_reg(c, uc, c->regs[REG_RFLAGS], out[2]);
        set_reg(c, uc, c->regs[REG_RIP], out[0]);
        c->stats[S_DELIVER]++;
    }
    return r;
}

/*
 * Delivery at the current instruction boundary of the engine for `unit` (Cpu.deliver_pending):
 * 1 delivered, 0 nothing to deliver, SLOW when the model must look (an IPI to service, a fault,
 * an unknown page). The #UD hook's unit is left as it was.
 */
int uf_deliver_now(struct ctx *c, void *uc, struct unit *unit)
{
    struct unit *hook_unit = c->unit;
    c->unit = unit;
    int r = deliver_now(c, uc);
    c->unit = hook_unit;
    return r;
}

/* After STUI and UIRET a user interrupt may be delivered at once (§8). */
static bool deliver_after(struct ctx *c, void *uc)
{
    if (deliver_now(c, uc) == SLOW)
        return c->deliver();
    return true;
}

/* The engine's UC_HOOK_INSN_INVALID callback; `data` is this address space's ctx. */
bool uf_ud_hook(void *uc, void *data)
{
    struct ctx *c = data;
    struct unit *u = c->unit;
    if (u == NULL || u->traced || u->ipi_arrived || !u->enabled || !u->user_mode)
        goto slow;
    u64 rip = reg(c, uc, c->regs[REG_RIP]);
    u8 code[16];
    if (c->mem_read(uc, rip, code, sizeof code) != 0)
        goto slow; /* e.g. the instruction ends a mapping: the model fetches what there is */
    int mnemonic, r;
    int length = uf_decode(code, sizeof code, &mnemonic, &r);
    if (length <= 0)
        goto slow;
    u64 next = rip + (u64)length;
    u64 out[4];
    switch (mnemonic) {
    case M_CLUI:
        u->st.uif = 0;
        set_reg(c, uc, c->regs[REG_RIP], next);
        c->stats[S_CLUI]++;
        return true;
    case M_TESTUI: {
        u64 rflags = reg(c, uc, c->regs[REG_RFLAGS]);
        rflags = (rflags & ~TESTUI_FLAGS) | (u->st.uif ? RFLAGS_CF : 0);
        set_reg(c, uc, c->regs[REG_RFLAGS], rflags);
        set_reg(c, uc, c->regs[REG_RIP], next);
        c->stats[S_TESTUI]++;
        return true;
    }
    case M_STUI:
        u->st.uif = 1;
        set_reg(c, uc, c->regs[REG_RIP], next);
        c->stats[S_STUI]++;
        return deliver_after(c, uc);
    case M_UIRET:
        if (uf_uiret(c, reg(c, uc, c->regs[REG_RSP]), reg(c, uc, c->regs[REG_RFLAGS]), out) != 0)
            goto slow;
        set_reg(c, uc, c->regs[REG_RSP], out[2]);
        set_reg(c, uc, c->regs[REG_RFLAGS], out[1]);
        set_reg(c, uc, c->regs[REG_RIP], out[0]);
        c->stats[S_UIRET]++;
        return deliver_after(c, uc);
    default: /* M_SENDUIPI */
        if (uf_senduipi(c, reg(c, uc, c->gprs[r]), out) != 0)
            goto slow;
        set_reg(c, uc, c->regs[REG_RIP], next);
        c->stats[S_SENDUIPI]++;
        r = c->post(out[0], (u32)out[1], (u32)out[2], out[3]);
        if (r & POST_STOP) /* the OS wants the sender off the CPU (from here: cheaper) */
            c->emu_stop(uc);
        return (r & POST_OK) != 0;
    }
slow:
    c->stats[S_SLOW]++;
    return c->slow(uc, c->slow_data);
}

/* uc_emu_start from the current RIP without a limit (Engine.run): one call instead of two. */
int uf_run(struct ctx *c, void *uc)
{
    return c->emu_start(uc, reg(c, uc, c->regs[REG_RIP]), ~0ull, 0, 0);
}

/* A thread switch on the engine (Kernel.load_thread): save the outgoing registers (if `save`),
 * load the incoming ones. One call instead of two. */
int uf_switch(struct ctx *c, void *uc, void *save, void *restore)
{
    if (save != NULL)
        c->context_save(uc, save);
    return c->context_restore(uc, restore);
}
