"""The CPU model: feature switches, CPUID answers derived from them, CR4 and canonical addresses.

Features are data (as QEMU's ``target/i386`` feature words): every guest-visible CPUID bit that
depends on a switch is computed by :func:`cpuid_adjust` from a :class:`CpuFeatures` value.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

# CR4 bits (SDM Vol.3 §2.5 "Control Registers").
CR4_PKE = 1 << 22  # must stay 0 under Unicorn: with PKE=1 CLUI/STUI run as RDPKRU/WRPKRU
CR4_UINTR = 1 << 25  # docs/uintr.md §1: enables delivery, identification and the 5 instructions

# IA32_XSS bit of the UINTR supervisor state component (docs/uintr.md §4).
XSS_UINTR = 1 << 14
XSTATE_UINTR_COMPONENT = 14
XSTATE_UINTR_SIZE = 48

# RFLAGS bits used by the UINTR rules (SDM Vol.1 §3.4.3).
RFLAGS_CF = 1 << 0
RFLAGS_FIXED1 = 1 << 1  # reserved, always 1
RFLAGS_PF = 1 << 2
RFLAGS_AF = 1 << 4
RFLAGS_ZF = 1 << 6
RFLAGS_SF = 1 << 7
RFLAGS_TF = 1 << 8
RFLAGS_IF = 1 << 9
RFLAGS_OF = 1 << 11
RFLAGS_RF = 1 << 16

# Canonical for the maximum linear-address width, 48 bits (docs/uintr.md §2, emulator choice):
# bits 63:47 all equal.
LINEAR_ADDRESS_BITS = 48
_CANON_SHIFT = LINEAR_ADDRESS_BITS - 1
_CANON_HIGH = (1 << (64 - _CANON_SHIFT)) - 1  # 0x1FFFF


def is_canonical(addr: int) -> bool:
    """True if the 64-bit ``addr`` is canonical for 48-bit linear addresses."""
    high = addr >> _CANON_SHIFT
    return high == 0 or high == _CANON_HIGH


# -- feature switches ----------------------------------------------------------------------------

_FEATURE_NAME = re.compile(r"[a-z0-9][a-z0-9-]*\Z")


@dataclass(frozen=True, slots=True)
class CpuFeatures:
    """Feature switches of the CPU model (docs/uintr.md §1, emulator choice).

    ``uintr``: CPUID.(7,0):EDX[5]; without it CR4.UINTR cannot be set, the five instructions #UD and
    the UINTR MSRs #GP. ``flexible_uiret``: CPUID.(7,1):EDX[17], UIRET loads UIF from bit 1 of the
    popped RFLAGS image; it only has an effect (and is only advertised) together with ``uintr``.
    """

    uintr: bool = True
    flexible_uiret: bool = False

    @classmethod
    def known(cls) -> tuple[str, ...]:
        """The feature names accepted by :meth:`parse`, in spelling with '-'."""
        return tuple(f.name.replace("_", "-") for f in dataclasses.fields(cls))

    @classmethod
    def parse(cls, spec: str, base: CpuFeatures | None = None) -> CpuFeatures:
        """Apply a spec such as ``"+uintr,-flexible-uiret"`` to ``base`` (default: the defaults).

        Items are separated by ',', each an optional sign ('+' sets, '-' clears; no sign means
        '+') and a feature name written with '-' or '_'. An empty spec changes nothing. Raises
        ``ValueError`` with a one-line message on bad syntax or an unknown name.
        """
        known = cls.known()
        result = base if base is not None else cls()
        if not spec.strip():
            return result
        changes: dict[str, bool] = {}
        for raw in spec.split(","):
            item = raw.strip()
            value = True
            if item[:1] in ("+", "-"):
                value = item[0] == "+"
                item = item[1:].strip()
            name = item.lower().replace("_", "-")
            if not name:
                raise ValueError(
                    f"bad CPU feature spec {spec!r}: empty item (known: {', '.join(known)})"
                )
            if not _FEATURE_NAME.match(name):
                raise ValueError(
                    f"bad CPU feature spec {spec!r}: {raw.strip()!r} is not '[+|-]name' "
                    f"(known: {', '.join(known)})"
                )
            if name not in known:
                raise ValueError(
                    f"unknown CPU feature {item!r} in {spec!r} (known: {', '.join(known)})"
                )
            changes[name.replace("-", "_")] = value
        return dataclasses.replace(result, **changes)

    def __str__(self) -> str:
        return ",".join(
            ("+" if getattr(self, f.name) else "-") + f.name.replace("_", "-")
            for f in dataclasses.fields(self)
        )


# -- CPUID ---------------------------------------------------------------------------------------


def _bits(*positions: int) -> int:
    mask = 0
    for p in positions:
        mask |= 1 << p
    return mask


# CPUID.1:ECX: FMA(12), AVX(28), F16C(29).
_LEAF1_ECX_AVX = _bits(12, 28, 29)
# CPUID.(7,0):EBX: AVX2(5), AVX512F(16), AVX512DQ(17), AVX512_IFMA(21), AVX512PF(26),
# AVX512ER(27), AVX512CD(28), AVX512BW(30), AVX512VL(31).
_LEAF7_EBX_AVX = _bits(5, 16, 17, 21, 26, 27, 28, 30, 31)
# CPUID.(7,0):ECX: AVX512_VBMI(1), AVX512_VBMI2(6), AVX512_VNNI(11), AVX512_BITALG(12),
# AVX512_VPOPCNTDQ(14).
_LEAF7_ECX_AVX = _bits(1, 6, 11, 12, 14)
# CPUID.(7,0):EDX: AVX512_4VNNIW(2), AVX512_4FMAPS(3), AVX512_VP2INTERSECT(8), AVX512_FP16(23).
# Not in the brief's list; cleared as well because they are AVX-512 members (Unicorn #UDs EVEX).
_LEAF7_EDX_AVX = _bits(2, 3, 8, 23)
# CPUID.(7,1):EAX: AVX_VNNI(4), AVX512_BF16(5) -- same reason.
_LEAF7_1_EAX_AVX = _bits(4, 5)
_LEAF7_EDX_UINTR = 1 << 5  # CPUID.(7,0):EDX[5] UINTR
_LEAF7_1_EDX_UIRET_UIF = 1 << 17  # CPUID.(7,1):EDX[17] flexible UIRET
# CPUID.(0xD,0):EAX, XCR0 components AVX(2), opmask(5), ZMM_Hi256(6), Hi16_ZMM(7).
_XCR0_AVX_COMPONENTS = (2, 5, 6, 7)
_LEAF_D0_EAX_AVX = _bits(*_XCR0_AVX_COMPONENTS)
_U32 = 0xFFFF_FFFF


def cpuid_adjust(
    features: CpuFeatures, leaf: int, subleaf: int, eax: int, ebx: int, ecx: int, edx: int
) -> tuple[int, int, int, int]:
    """Turn the engine's own CPUID answer for (leaf, subleaf) into the guest-visible one.

    UINTR bits follow ``features``; AVX, FMA, F16C, AVX2 and the AVX-512 family are never
    advertised (Unicorn cannot run VEX-256/EVEX code and mis-emulates VEX-128; see
    docs/engine-notes.md §10), nor are their XSAVE components.
    """
    uintr = features.uintr
    if leaf == 1:
        ecx &= ~_LEAF1_ECX_AVX
    elif leaf == 7 and subleaf == 0:
        ebx &= ~_LEAF7_EBX_AVX
        ecx &= ~_LEAF7_ECX_AVX
        edx &= ~(_LEAF7_EDX_AVX | _LEAF7_EDX_UINTR)
        if uintr:
            edx |= _LEAF7_EDX_UINTR
            if features.flexible_uiret:
                eax = max(eax, 1)  # EAX = highest subleaf of leaf 7: make (7,1) visible
    elif leaf == 7 and subleaf == 1:
        eax &= ~_LEAF7_1_EAX_AVX
        edx &= ~_LEAF7_1_EDX_UIRET_UIF
        if uintr and features.flexible_uiret:
            edx |= _LEAF7_1_EDX_UIRET_UIF
    elif leaf == 0xD:
        if subleaf == 0:
            eax &= ~_LEAF_D0_EAX_AVX
        elif subleaf == 1:
            # ECX: IA32_XSS bits 31:0 supported by XSAVES.
            ecx &= ~XSS_UINTR
            if uintr:
                ecx |= XSS_UINTR
        elif subleaf == XSTATE_UINTR_COMPONENT:
            # Size 48, offset 0 (supervisor components have none), ECX[0] = 1: IA32_XSS component.
            if uintr:
                return XSTATE_UINTR_SIZE, 0, 1, 0
            return 0, 0, 0, 0
        elif subleaf in _XCR0_AVX_COMPONENTS:
            return 0, 0, 0, 0  # an unsupported component enumerates as all zero
    return eax & _U32, ebx & _U32, ecx & _U32, edx & _U32
