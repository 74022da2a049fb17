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
enum { STOP_MISS = 1, STOP_OVER = 2 };

/* engine/counting.py Counter: one per engine, shared by both counters. */
struct counter {
    u64 count, limit;   /* instructions counted; the engine stops before passing `limit` */
    emu_stop_fn stop;   /* uc_emu_stop */
    u64 last_pc;        /* the block entered last, counted whole on entry (block counter) */
    u32 last_size, last_n;
    u32 stop_why;       /* STOP_* */
    u32 miss_size;      /* STOP_MISS: the block not in the table */
    u64 miss_pc;
    u64 mask;           /* table entries - 1 (a power of two) */
    struct block_entry *table;
};

#endif
