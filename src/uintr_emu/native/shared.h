/*
 * shared.h -- the structures the native library shares with Python.
 *
 * Python declares each of them again as a ctypes Structure (named next to each one below) and
 * reads and writes the same bytes, so the two declarations must agree byte for byte. layout.c
 * reports the size of each structure and the offset and size of each field
 * (`uf_layout`); tests/test_native_layout.py compares them with the ctypes declarations.
 *
 * No libunicorn symbol is linked into the library: the engine's functions arrive as pointers
 * in these structures, filled in by engine/native.py and engine/counting.py.
 */
#ifndef UINTR_EMU_SHARED_H
#define UINTR_EMU_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t u64;
typedef uint32_t u32;
typedef uint8_t u8;

/* -- the UINTR fast path (fastpath.c) ---------------------------------------------------- */

/* hw/uintr.py UintrState: the architectural UINTR state of a processor. */
struct uintr_state {
    u64 uirr, handler, stack_adjust, uitt_addr, upid_addr;
    u32 uitt_size;
    u8 uinv, uif, senduipi_enabled, pad;
};

/* hw/uintr.py NativeUnit: the state plus what the fast path must know of the processor. */
struct unit {
    struct uintr_state st;
    u8 enabled;        /* CPUID.UINTR = 1 and CR4.UINTR = 1 */
    u8 user_mode;      /* CPL = 3 */
    u8 flexible_uiret; /* CPUID.(7,1):EDX[17] */
    u8 traced;         /* the model reports events: every instruction goes to Python */
    u8 ipi_arrived;    /* an interrupt waits in the local APIC: Python services it */
    u8 pad[3];
};

enum { PERM_R = 1, PERM_W = 2 };
#define NPAGES 16

/* engine/native.py Page: a user page the Linux layer has vouched for. */
struct page {
    u64 vpage; /* guest page number; ~0 = empty */
    u64 host;  /* host address of the page */
    u32 perms; /* PERM_R | PERM_W as the page's VMA allows */
    u32 pad;
};

enum { SLOW = -1 };                  /* a function left the work to the Python model */
enum { POST_OK = 1, POST_STOP = 2 }; /* the post callback's result bits */
enum { REG_RIP, REG_RSP, REG_RFLAGS, NREGS };
enum { S_CLUI, S_STUI, S_TESTUI, S_UIRET, S_SENDUIPI, S_DELIVER, S_SLOW, NSTATS };

typedef int (*reg_fn)(void *uc, int regid, void *value);
typedef int (*mem_read_fn)(void *uc, u64 address, void *bytes, u64 size);
typedef bool (*slow_fn)(void *uc, void *user_data);
typedef int (*post_fn)(u64 upid, u32 notify, u32 nv, u64 ndst);
typedef bool (*deliver_fn)(void);
typedef int (*emu_start_fn)(void *uc, u64 begin, u64 until, u64 timeout, size_t count);
typedef int (*emu_stop_fn)(void *uc);
typedef int (*context_fn)(void *uc, void *context);
typedef int (*ctl_fn)(void *uc, u32 control, ...);

/* engine/native.py Ctx: one per address space (engine). */
struct ctx {
    struct unit *unit; /* the CPU running this address space's thread; NULL: all to Python */
    u8 *kmem;          /* kernel memory (UPIDs, UITTs): host buffer and guest address */
    u64 kmem_base, kmem_size;
    reg_fn reg_read, reg_write;
    mem_read_fn mem_read;
    emu_start_fn emu_start;
    emu_stop_fn emu_stop;
    context_fn context_save, context_restore;
    slow_fn slow;         /* the Python #UD handler: executes the instruction with the model */
    void *slow_data;
    post_fn post;         /* after a native SENDUIPI: the IPI and the OS's part; POST_* bits */
    deliver_fn deliver;   /* delivery the fast path cannot make (a fault, an unknown page) */
    int regs[NREGS];      /* engine ids of RIP, RSP, RFLAGS */
    int gprs[16];         /* engine ids of the GPRs in x86 encoding order */
    struct page pages[NPAGES];
    u32 next_page;
    u32 pad;
    u64 stats[NSTATS];
};

/* -- the instruction counters (counter.c) ------------------------------------------------ */

/* engine/counting.py BlockEntry: one slot of the direct-mapped block table. */
struct block_entry {
    u64 pc;   /* the block's first instruction; ~0 = no block */
    u32 size; /* its size in bytes, as Unicorn reports it to the block hook */
    u32 n;    /* its instruction count */
};

/* Why the block counter stopped the engine (counter.stop_why; 0: it did not). */
enum { STOP_MISS = 1, STOP_OVER = 2, STOP_ATTENTION = 3 };

struct mmu;

#define SEEN_WORDS 1024 /* struct counter's page filter: 2^16 bits */

/* engine/counting.py Counter: one per engine, shared by both counters and the tracker. */
struct counter {
    u64 count, limit;   /* instructions counted; the engine stops before passing `limit` */
    emu_stop_fn stop;   /* uc_emu_stop */
    /* The block entered last (block counter, tracker; counted whole on entry by the block
     * counter), or the instruction begun last (per-instruction counter): where a branch to a
     * non-canonical address is found (traps.py). last_size 0: none in this run. */
    u64 last_pc;
    u32 last_size, last_n;
    u32 stop_why;       /* STOP_* */
    u32 miss_size;      /* STOP_MISS: the block not in the table */
    u64 miss_pc;
    u64 mask;           /* table entries - 1 (a power of two) */
    struct block_entry *table;
    /* The machine's attention word (machine.py Machine.call_attention), set from any host
     * thread: while it is not 0 every callback stops the engine before the next block or
     * instruction, a synchronous stop at a boundary. */
    const volatile u32 *attention;
    /* uf_run_blocks (learning a missed block without a trip through Python): */
    emu_start_fn start; /* uc_emu_start */
    ctl_fn ctl;         /* uc_ctl */
    struct mmu *mmu;    /* the engine's fill state (maintenance around the lookup) */
    u64 learnt;         /* the block learnt last in this run (~0: none) */
    u32 halt;           /* Engine.run must see the next stop itself (an error, a stop) */
    u32 pad;
    /* Pages that may hold a learnt block: bit (page mod 2^16), set when a block is learnt,
     * never cleared; uf_forget_blocks skips a range none of whose bits is set. */
    u64 seen[SEEN_WORDS];
};

/* -- the MMU path: the TLB-fill hook (mmu.c) ------------------------------------------- */

/* Unicorn's uc_mem_type for a TLB fill, and its uc_prot bits (unicorn.h, 2.1.4). */
enum { ACCESS_READ = 16, ACCESS_WRITE = 17, ACCESS_FETCH = 18 };
enum { PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4 };

/* Unicorn's uc_tlb_entry: what a UC_HOOK_TLB_FILL callback returns for a linear page. */
struct tlb_entry {
    u64 paddr;
    u32 perms; /* PROT_* */
};

/* engine/mmu.py Region: linear pages [start, end) with the same permissions. */
struct region {
    u64 start, end; /* page aligned, start < end */
    u32 perms;      /* PROT_* as the engine sees them (x86: write or exec implies read) */
    u32 pad;
};

/* engine/mmu.py MmuState: one per engine (address space). */
struct mmu {
    struct region *regions; /* sorted by start, disjoint, adjacent equals merged */
    u32 count, capacity;
    reg_fn reg_read;        /* uc_reg_read, for RIP */
    int rip_id;
    /* Set by the engine around its own calls that make Unicorn probe code pages (removing
     * translations): no guest instruction is running, nothing may be refused. */
    u32 maintenance;
    /* A fill granted an access the page's permissions forbid (a probe of Unicorn's own, not
     * the guest's): the engine flushes the TLB before guest code runs again. */
    u32 stale;
    u32 pad;
    /* The first refused access since the engine last took it (fault_kind 0: none). */
    u32 fault_kind;    /* ACCESS_* */
    u32 fault_mapped;  /* the page is mapped: its permissions forbid the access */
    u64 fault_page;    /* the linear page, all 64 bits */
    u64 fault_rip;     /* RIP at the refusal: the instruction, or a fetch's target */
    u64 fills, refusals;
};

#endif
