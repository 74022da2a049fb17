"""Engine-independent hardware model: CPU features and CPUID, local APICs and the IPI bus,
linear memory with user/supervisor rights, and Intel User Interrupts (UINTR).

Pure Python; knows nothing about Unicorn or Linux. See docs/hardware.md.
"""

from uintr_emu.hw.apic import ApicBus, LocalApic
from uintr_emu.hw.cpu import CR4_PKE, CR4_UINTR, XSS_UINTR, CpuFeatures, cpuid_adjust, is_canonical
from uintr_emu.hw.decode import Decoded, decode
from uintr_emu.hw.faults import (
    ArchFault,
    GeneralProtection,
    InvalidOpcode,
    PageFault,
    StackFault,
)
from uintr_emu.hw.memory import Memory, PagedMemory, read_u64, write_u64
from uintr_emu.hw.uintr import (
    IA32_UINTR_HANDLER,
    IA32_UINTR_MISC,
    IA32_UINTR_PD,
    IA32_UINTR_RR,
    IA32_UINTR_STACKADJUST,
    IA32_UINTR_TT,
    UintrState,
    UintrUnit,
)

__all__ = [
    "ApicBus",
    "ArchFault",
    "CR4_PKE",
    "CR4_UINTR",
    "CpuFeatures",
    "Decoded",
    "GeneralProtection",
    "IA32_UINTR_HANDLER",
    "IA32_UINTR_MISC",
    "IA32_UINTR_PD",
    "IA32_UINTR_RR",
    "IA32_UINTR_STACKADJUST",
    "IA32_UINTR_TT",
    "InvalidOpcode",
    "LocalApic",
    "Memory",
    "PageFault",
    "PagedMemory",
    "StackFault",
    "UintrState",
    "UintrUnit",
    "XSS_UINTR",
    "cpuid_adjust",
    "decode",
    "is_canonical",
    "read_u64",
    "write_u64",
]
