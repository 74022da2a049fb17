/* A tiny kernel for tests/test_system_cpu.py: loaded at 0x200000 and entered in 64-bit mode
   at CPL 0 as the loader leaves it (system/boot.py). It builds its own GDT, TSS, IDT and page
   tables, drops to CPL 3 with IRETQ and makes the user code there trigger each kind of entry
   into the kernel; each handler prints what the processor gave it on the UART (port 0x3F8).
   The expected console output is in the test. */
        .intel_syntax noprefix
        .code64
        .globl _start
        .set BASE, 0x200000
        .set KCODE, 0x08
        .set KDATA, 0x10
        .set UDATA, 0x1b
        .set UCODE, 0x23
        .set TSSSEL, 0x28
        .text
_start:
        lea rsp, [rip + kstack_top]
        lea rsi, [rip + s_boot]
        call puts
        lgdt [rip + gdtr]
        /* TSS descriptor base */
        lea rax, [rip + tss]
        mov word ptr [rip + gdt_tss + 2], ax
        shr rax, 16
        mov byte ptr [rip + gdt_tss + 4], al
        mov byte ptr [rip + gdt_tss + 7], ah
        shr rax, 16
        mov dword ptr [rip + gdt_tss + 8], eax
        mov ax, TSSSEL
        ltr ax
        /* TSS.RSP0 and IST1 */
        lea rax, [rip + rsp0_top]
        mov qword ptr [rip + tss + 4], rax
        lea rax, [rip + ist1_top]
        mov qword ptr [rip + tss + 0x24], rax
        /* page tables: 0-2M supervisor, 2M-4M user, nothing above */
        lea rax, [rip + pdpt]
        or rax, 7
        mov qword ptr [rip + pml4], rax
        lea rax, [rip + pd]
        or rax, 7
        mov qword ptr [rip + pdpt], rax
        mov qword ptr [rip + pd], 0x83
        mov qword ptr [rip + pd + 8], BASE | 0x87
        lea rax, [rip + pml4]
        mov cr3, rax
        /* IDT: vector (rdi), handler (rsi), type/DPL byte (dl), IST (cl) */
        mov edi, 14
        lea rsi, [rip + pf_handler]
        mov dl, 0x8e
        mov cl, 1
        call set_gate
        mov edi, 13
        lea rsi, [rip + gp_handler]
        mov dl, 0x8e
        xor ecx, ecx
        call set_gate
        mov edi, 0x80
        lea rsi, [rip + int80_handler]
        mov dl, 0xef                    /* a trap gate user code may reach (DPL 3) */
        xor ecx, ecx
        call set_gate
        mov edi, 0x81
        lea rsi, [rip + int80_handler]
        mov dl, 0x8f                    /* DPL 0: INT 0x81 from CPL 3 is a #GP */
        xor ecx, ecx
        call set_gate
        lidt [rip + idtr]
        /* SYSCALL: EFER.SCE, STAR, LSTAR, FMASK */
        mov ecx, 0xc0000080
        rdmsr
        or eax, 1
        wrmsr
        mov ecx, 0xc0000081
        xor eax, eax
        mov edx, (0x10 << 16) | KCODE
        wrmsr
        mov ecx, 0xc0000082
        lea rax, [rip + syscall_entry]
        mov rdx, rax
        shr rdx, 32
        wrmsr
        mov ecx, 0xc0000084
        mov eax, 0x200
        xor edx, edx
        wrmsr
        /* to CPL 3 */
        push UDATA
        lea rax, [rip + ustack_top]
        push rax
        push 0x202
        push UCODE
        lea rax, [rip + user]
        push rax
        iretq

set_gate:
        lea r8, [rip + idt]
        shl rdi, 4
        add r8, rdi
        mov rax, rsi
        mov word ptr [r8], ax
        mov word ptr [r8 + 2], KCODE
        mov byte ptr [r8 + 4], cl
        mov byte ptr [r8 + 5], dl
        shr rax, 16
        mov word ptr [r8 + 6], ax
        shr rax, 16
        mov dword ptr [r8 + 8], eax
        mov dword ptr [r8 + 12], 0
        ret

/* ---- the user program (CPL 3) */
user:
        mov eax, 1
        syscall
after_sys1:
        int 0x80
        mov rax, qword ptr [0x400000]   /* not present: #PF, error 4 (user read) */
after_pf:
        mov qword ptr [0x1000], rax     /* a supervisor page: #PF, error 7 (user write, present) */
after_pf2:
        cli                             /* IOPL 0: #GP(0) */
after_gp:
        int 0x81                        /* gate DPL 0 < CPL 3: #GP(0x81 * 8 + 2) */
after_gp2:
        mov eax, 60
        syscall
1:      jmp 1b

/* ---- the kernel's entries */
syscall_entry:                          /* RCX = the user RIP, R11 = RFLAGS, still the user RSP */
        push rcx
        push r11
        push rax
        lea rsi, [rip + s_sys]
        call puts
        pop rax
        push rax
        call puthex
        lea rsi, [rip + s_cs]
        call puts
        mov ax, cs
        movzx eax, ax
        call puthex
        lea rsi, [rip + s_ss]
        call puts
        mov ax, ss
        movzx eax, ax
        call puthex
        lea rsi, [rip + s_if]
        call puts
        pushfq
        pop rax
        shr eax, 9
        and eax, 1
        call puthex
        pop rax
        pop r11
        pop rcx
        cmp eax, 60
        je the_end
        lea rdx, [rip + after_sys1]
        cmp rcx, rdx
        jne bad
        lea rsi, [rip + s_nl]
        call puts
        sysretq

int80_handler:                          /* frame: RIP, CS, RFLAGS, RSP, SS */
        lea rsi, [rip + s_int80]
        call puts
        mov rax, qword ptr [rsp + 8]
        call puthex
        lea rsi, [rip + s_rsp0]
        call puts
        lea rax, [rip + rsp0_top]
        sub rax, rsp
        call puthex
        lea rsi, [rip + s_nl]
        call puts
        iretq

pf_handler:                             /* frame: error, RIP, CS, RFLAGS, RSP, SS */
        lea rsi, [rip + s_pf]
        call puts
        mov rax, qword ptr [rsp]
        call puthex
        lea rsi, [rip + s_cr2]
        call puts
        mov rax, cr2
        call puthex
        lea rsi, [rip + s_ist]
        call puts
        lea rax, [rip + ist1_top]
        sub rax, rsp
        call puthex
        lea rsi, [rip + s_nl]
        call puts
        lea rax, [rip + after_pf]       /* resume after the faulting instruction */
        lea rdx, [rip + after_pf2]
        cmp qword ptr [rsp + 8], rax
        cmovae rax, rdx
        mov qword ptr [rsp + 8], rax
        add rsp, 8                      /* the error code */
        iretq

gp_handler:
        lea rsi, [rip + s_gp]
        call puts
        mov rax, qword ptr [rsp]
        call puthex
        lea rsi, [rip + s_fcs]
        call puts
        mov rax, qword ptr [rsp + 16]
        call puthex
        lea rsi, [rip + s_nl]
        call puts
        lea rax, [rip + after_gp]
        lea rdx, [rip + after_gp2]
        cmp qword ptr [rsp + 8], rax
        cmovae rax, rdx
        mov qword ptr [rsp + 8], rax
        add rsp, 8
        iretq

bad:
        lea rsi, [rip + s_bad]
        call puts
the_end:
        lea rsi, [rip + s_halt]
        call puts
        cli
        hlt
        jmp the_end

/* ---- the console */
puts:                                   /* the NUL-terminated string at RSI */
        mov dx, 0x3f8
4:      lodsb
        test al, al
        jz 5f
        out dx, al
        jmp 4b
5:      ret

puthex:                                 /* RAX in hex, no leading zeros */
        mov rdi, rax
        mov ecx, 60
        xor r9d, r9d
        mov dx, 0x3f8
6:      mov rax, rdi
        shr rax, cl
        and eax, 15
        or r9d, eax
        jnz 7f
        test ecx, ecx
        jnz 8f
7:      add al, '0'
        cmp al, '9'
        jbe 9f
        add al, 'a' - '9' - 1
9:      out dx, al
8:      sub ecx, 4
        jns 6b
        ret

        .data
s_boot: .asciz "boot\n"
s_sys:  .asciz "syscall rax="
s_cs:   .asciz " cs="
s_ss:   .asciz " ss="
s_if:   .asciz " if="
s_nl:   .asciz "\n"
s_int80: .asciz "int80 frame-cs="
s_rsp0: .asciz " below-rsp0="
s_pf:   .asciz "pf error="
s_cr2:  .asciz " cr2="
s_ist:  .asciz " below-ist1="
s_gp:   .asciz "gp error="
s_fcs:  .asciz " frame-cs="
s_bad:  .asciz "BAD\n"
s_halt: .asciz "halt\n"
        .balign 16
gdt:    .quad 0
        .quad 0x00af9b000000ffff        /* 0x08 kernel code */
        .quad 0x00cf93000000ffff        /* 0x10 kernel data */
        .quad 0x00cff3000000ffff        /* 0x18 user data */
        .quad 0x00affb000000ffff        /* 0x20 user code */
gdt_tss: .quad 0x0000890000000067       /* 0x28 the TSS (base filled in) */
        .quad 0
gdt_end:
gdtr:   .word gdt_end - gdt - 1
        .quad gdt
idtr:   .word 256 * 16 - 1
        .quad idt
        .balign 16
tss:    .fill 0x68, 1, 0
        .bss
        .balign 4096
pml4:   .fill 4096, 1, 0
pdpt:   .fill 4096, 1, 0
pd:     .fill 4096, 1, 0
idt:    .fill 4096, 1, 0
        .fill 4096, 1, 0
kstack_top:
        .fill 4096, 1, 0
rsp0_top:
        .fill 4096, 1, 0
ist1_top:
        .fill 4096, 1, 0
ustack_top:
