"""User interrupts (UINTR) of one logical processor: state, MSRs, XSAVE image, the five
instructions, notification processing, recognition and delivery.

Rules are those of the SDM ("User Interrupts" chapter and the CLUI/STUI/TESTUI/UIRET/SENDUIPI
instruction pages) as restated in docs/uintr.md (cited as §n). Where the SDM is
silent the code follows Bochs ``cpu/uintr.cc`` and says so.

The engine calls these functions from its hooks, so the hot paths (instructions, notification,
delivery) use plain int arithmetic, slots and one ``struct`` call per memory access.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable

from uintr_emu.hw.apic import ApicBus, LocalApic
from uintr_emu.hw.cpu import (
    CR4_UINTR,
    RFLAGS_AF,
    RFLAGS_CF,
    RFLAGS_FIXED1,
    RFLAGS_IF,
    RFLAGS_OF,
    RFLAGS_PF,
    RFLAGS_RF,
    RFLAGS_SF,
    RFLAGS_TF,
    RFLAGS_ZF,
    CpuFeatures,
    is_canonical,
)
from uintr_emu.hw.faults import GeneralProtection, InvalidOpcode, PageFault, StackFault
from uintr_emu.hw.memory import Memory

# -- MSRs (§3) -----------------------------------------------------------------------------------

IA32_UINTR_RR = 0x985
IA32_UINTR_HANDLER = 0x986
IA32_UINTR_STACKADJUST = 0x987
IA32_UINTR_MISC = 0x988
IA32_UINTR_PD = 0x989
IA32_UINTR_TT = 0x98A
UINTR_MSRS = (
    IA32_UINTR_RR,
    IA32_UINTR_HANDLER,
    IA32_UINTR_STACKADJUST,
    IA32_UINTR_MISC,
    IA32_UINTR_PD,
    IA32_UINTR_TT,
)
_MSR_NAMES = (
    "IA32_UINTR_RR",
    "IA32_UINTR_HANDLER",
    "IA32_UINTR_STACKADJUST",
    "IA32_UINTR_MISC",
    "IA32_UINTR_PD",
    "IA32_UINTR_TT",
)

MISC_RESERVED = 0xFFFF_FF00_0000_0000  # bits 63:40
PD_RESERVED = 0x3F  # bits 5:0 (UPIDADDR is 64-byte aligned)
TT_RESERVED = 0xE  # bits 3:1
TT_SENDUIPI_ENABLE = 0x1  # bit 0
XSAVE_MISC_UIF = 1 << 63  # UIF lives in bit 63 of the MISC qword of the XSAVE image (§4)

# -- memory structures (§5) ----------------------------------------------------------------------

UITTE_VALID = 0x1
UITTE_RESERVED = 0xFFFF_FFFF_FFFF_00FE  # low qword: bits 7:1 and 63:16
UITTE_SIZE = 16
UPID_ON = 0x1
UPID_SN = 0x2
UPID_RESERVED = 0xFF00_FFFC  # low dword: bits 15:2 and 31:24
NUM_USER_VECTORS = 64

# -- instruction constants (§6) ------------------------------------------------------------------

# UIRET restores only CF, PF, AF, ZF, SF, TF, DF, OF, NT, RF, AC and ID from the popped image.
UIRET_RFLAGS_MASK = 0x254DD5
# TESTUI: CF := UIF; OF, SF, ZF, AF, PF := 0.
_TESTUI_FLAGS = RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF
_DELIVERY_CLEARS = RFLAGS_TF | RFLAGS_RF

_M64 = (1 << 64) - 1
_ALIGN16 = _M64 & ~0xF
_CANON_HIGH = 0x1FFFF  # bits 63:47 of a canonical upper-half address (48-bit, §2)

_QQ = struct.Struct("<QQ")  # UITT entry, UPID
_QQQ = struct.Struct("<QQQ")  # UIRET frame: RIP, RFLAGS, RSP
_QQQQ = struct.Struct("<QQQQ")  # delivery frame: vector, RIP, RFLAGS, old RSP
_XSAVE = struct.Struct("<6Q")  # XSAVE component 14
XSAVE_IMAGE_SIZE = _XSAVE.size  # 48

EventSink = Callable[..., None]


class UintrState(ctypes.Structure):
    """The architectural UINTR state of a logical processor (§2; SDM "User-Interrupt State").

    ``uitt_addr`` holds bits 63:4 of IA32_UINTR_TT and ``senduipi_enabled`` its bit 0.
    Reset and INIT state: everything 0, UIF = 0. A C structure, because the native fast path
    (native/fastpath.c, ``struct uintr_state``) works on the very same bytes: there is one copy
    of the state. Construct with keywords; ``==`` compares the fields.
    """

    # What ctypes gives for each field (for the type checker; `_fields_` makes them).
    uirr: int
    handler: int
    stack_adjust: int
    uitt_addr: int
    upid_addr: int
    uitt_size: int
    uinv: int
    uif: bool
    senduipi_enabled: bool

    _fields_ = [
        ("uirr", ctypes.c_uint64),
        ("handler", ctypes.c_uint64),
        ("stack_adjust", ctypes.c_uint64),
        ("uitt_addr", ctypes.c_uint64),
        ("upid_addr", ctypes.c_uint64),
        ("uitt_size", ctypes.c_uint32),
        ("uinv", ctypes.c_uint8),
        ("uif", ctypes.c_bool),
        ("senduipi_enabled", ctypes.c_bool),
    ]
    _names = tuple(f[0] for f in _fields_)

    def __init__(self, **fields: int | bool) -> None:
        unknown = set(fields) - set(self._names)
        if unknown:
            raise TypeError(f"UintrState has no field {sorted(unknown)[0]!r}")
        super().__init__(**fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UintrState):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._names)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        return "UintrState(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self._names) + ")"

    def copy(self) -> UintrState:
        """A detached copy (the state of a running CPU keeps changing)."""
        return UintrState.from_buffer_copy(self)

    @property
    def misc(self) -> int:
        """IA32_UINTR_MISC: UITTSZ in bits 31:0, UINV in bits 39:32."""
        return self.uitt_size | (self.uinv << 32)

    @property
    def tt(self) -> int:
        """IA32_UINTR_TT: UITTADDR | SENDUIPI enable."""
        return self.uitt_addr | (TT_SENDUIPI_ENABLE if self.senduipi_enabled else 0)

    @property
    def uirrv(self) -> int:
        """Index of the highest set bit of UIRR; 0 when UIRR = 0 (§2)."""
        return self.uirr.bit_length() - 1 if self.uirr else 0

    def to_xsave(self) -> bytes:
        """The 48-byte image of XSAVE state component 14 (§4): HANDLER, STACKADJUST,
        MISC with UIF in bit 63, PD, RR, TT."""
        return _XSAVE.pack(
            self.handler,
            self.stack_adjust,
            self.misc | (XSAVE_MISC_UIF if self.uif else 0),
            self.upid_addr,
            self.uirr,
            self.tt,
        )

    @classmethod
    def from_xsave(cls, image: bytes) -> UintrState:
        """Decode a 48-byte component-14 image. No architectural validation (XRSTORS does it)."""
        _check_image_size(image)
        handler, stack_adjust, misc, pd, rr, tt = _XSAVE.unpack(image)
        return cls(
            uirr=rr,
            uif=bool(misc & XSAVE_MISC_UIF),
            handler=handler,
            stack_adjust=stack_adjust,
            uinv=(misc >> 32) & 0xFF,
            uitt_size=misc & 0xFFFF_FFFF,
            uitt_addr=tt & ~0xF,
            senduipi_enabled=bool(tt & TT_SENDUIPI_ENABLE),
            upid_addr=pd,
        )


def _check_image_size(image: bytes) -> None:
    if len(image) != XSAVE_IMAGE_SIZE:
        raise ValueError(f"UINTR XSAVE image must be {XSAVE_IMAGE_SIZE} bytes, not {len(image)}")


class NativeUnit(ctypes.Structure):
    """A processor's UINTR state plus what the native fast path must know of the rest of the
    processor (``struct unit`` in native/fastpath.c). Python code uses `UintrUnit`."""

    _fields_ = [
        ("state", UintrState),
        ("enabled", ctypes.c_bool),  # CPUID.UINTR = 1 and CR4.UINTR = 1
        ("user_mode", ctypes.c_bool),  # CPL = 3
        ("flexible_uiret", ctypes.c_bool),  # CPUID.(7,1):EDX[17]
        ("traced", ctypes.c_bool),  # `events` is set: the fast path leaves everything to us
        ("ipi_arrived", ctypes.c_bool),  # an interrupt waits in the local APIC (machine.Cpu)
        ("_pad", ctypes.c_uint8 * 3),
    ]


def _msr_value_violation(msr: int, value: int) -> str | None:
    """The WRMSR rule of §3 that ``value`` breaks for ``msr``, or None if it is acceptable."""
    if msr == IA32_UINTR_HANDLER or msr == IA32_UINTR_STACKADJUST:
        if not is_canonical(value):
            return f"value {value:#x} is not canonical"
    elif msr == IA32_UINTR_MISC:
        if value & MISC_RESERVED:
            return f"reserved bits 63:40 set in {value:#x}"
    elif msr == IA32_UINTR_PD:
        if value & PD_RESERVED:
            return f"reserved bits 5:0 set in {value:#x} (UPIDADDR must be 64-byte aligned)"
        if not is_canonical(value):
            return f"UPIDADDR {value:#x} is not canonical"
    elif msr == IA32_UINTR_TT:
        if value & TT_RESERVED:
            return f"reserved bits 3:1 set in {value:#x}"
        if not is_canonical(value):
            return f"UITTADDR {value:#x} is not canonical"
    return None  # IA32_UINTR_RR has no reserved bits


class UintrUnit:
    """The UINTR part of one logical processor.

    ``cr4`` starts at 0; the OS sets :data:`~uintr_emu.hw.cpu.CR4_UINTR`. ``user_mode`` is True
    while the processor runs at CPL3 (the Linux layer clears it while "in the kernel"). RFLAGS is
    never stored here: the caller passes the current value and gets the new one back.

    ``events``, if not None, is called as ``events(kind, **fields)`` for tracing, with kinds
    ``wrmsr`` (msr, value), ``xsaves``, ``xrstors`` (uirr, uif), ``clui``, ``stui``,
    ``uiret`` (rip, rsp, uif), ``senduipi`` (index, vector, upid, sn, on, notify, nv, ndst,
    target: APIC ID or None), ``notification`` (upid, pir, uirr) and ``deliver`` (vector, rip,
    handler, rsp).
    """

    __slots__ = (
        "features",
        "apic",
        "bus",
        "mem",
        "native",
        "pointer",
        "fast_notification",
        "state",
        "_user_mode",
        "_events",
        "_cr4",
        "_enabled",
        "_flexible_uiret",
    )

    def __init__(self, features: CpuFeatures, apic: LocalApic, bus: ApicBus, mem: Memory) -> None:
        self.features = features
        self.apic = apic
        self.bus = bus
        self.mem = mem
        # The state and the flags the native fast path reads live in one C structure; the
        # Python attributes below mirror the flags (setters keep both in step).
        self.native = NativeUnit()
        self.pointer = ctypes.c_void_p(ctypes.addressof(self.native))
        # Set by the machine when the native fast path is there: notification processing on a
        # UPID in kernel memory, in C; returns 0 if done, else the model does it.
        self.fast_notification: Callable[[], int] | None = None
        self.state: UintrState = self.native.state
        self._user_mode = True
        self._events: EventSink | None = None
        self._cr4 = 0
        self._enabled = False  # CPUID.UINTR = 1 and CR4.UINTR = 1
        # CPUID.(7,1):EDX[17]; only meaningful with UINTR (see cpu.cpuid_adjust).
        self._flexible_uiret = features.uintr and features.flexible_uiret
        self.native.user_mode = 1
        self.native.flexible_uiret = self._flexible_uiret

    @property
    def user_mode(self) -> bool:
        """True while the processor runs at CPL3 (the OS clears it while "in the kernel")."""
        return self._user_mode

    @user_mode.setter
    def user_mode(self, value: bool) -> None:
        self._user_mode = value
        self.native.user_mode = bool(value)

    @property
    def events(self) -> EventSink | None:
        """The trace sink, or None. While set, the native fast path hands every instruction and
        delivery to this model, so that each reports its event."""
        return self._events

    @events.setter
    def events(self, sink: EventSink | None) -> None:
        self._events = sink
        self.native.traced = sink is not None

    # -- CR4 ---------------------------------------------------------------------------------

    @property
    def cr4(self) -> int:
        return self._cr4

    @cr4.setter
    def cr4(self, value: int) -> None:
        # SDM Vol.2 "MOV to/from Control Registers": #GP(0) when writing 1 to a reserved CR4 bit;
        # CR4.UINTR is reserved unless CPUID.(7,0):EDX.UINTR[5] = 1 (SDM Vol.3 §2.5).
        if value & CR4_UINTR and not self.features.uintr:
            raise GeneralProtection("MOV to CR4: CR4.UINTR set while CPUID.(7,0):EDX.UINTR[5] = 0")
        self._cr4 = value
        self._enabled = bool(value & CR4_UINTR)
        self.native.enabled = self._enabled

    @property
    def enabled(self) -> bool:
        """CR4.UINTR = 1 (possible only with CPUID.UINTR = 1)."""
        return self._enabled

    # -- MSRs (§3) ---------------------------------------------------------------------------

    def _check_msr_access(self, op: str, msr: int) -> str:
        if not IA32_UINTR_RR <= msr <= IA32_UINTR_TT:
            # Unimplemented MSR: #GP(0), as RDMSR/WRMSR of any MSR the processor lacks.
            raise GeneralProtection(f"{op}: MSR {msr:#x} is not a UINTR MSR")
        name = _MSR_NAMES[msr - IA32_UINTR_RR]
        # §3: #GP(0) if CPUID.UINTR = 0; CR4.UINTR does not matter.
        if not self.features.uintr:
            raise GeneralProtection(f"{op} {name}: CPUID.(7,0):EDX.UINTR[5] = 0")
        return name

    def rdmsr(self, msr: int) -> int:
        """RDMSR of a UINTR MSR. #GP(0) without CPUID.UINTR or for a non-UINTR MSR number."""
        self._check_msr_access("RDMSR", msr)
        st = self.state
        if msr == IA32_UINTR_RR:
            return st.uirr
        if msr == IA32_UINTR_HANDLER:
            return st.handler
        if msr == IA32_UINTR_STACKADJUST:
            return st.stack_adjust
        if msr == IA32_UINTR_MISC:
            return st.misc  # UIF is not visible through RDMSR (only in the XSAVE image)
        if msr == IA32_UINTR_PD:
            return st.upid_addr
        return st.tt

    def wrmsr(self, msr: int, value: int) -> None:
        """WRMSR of a UINTR MSR with the checks of §3 (all violations are #GP(0))."""
        name = self._check_msr_access("WRMSR", msr)
        if not 0 <= value <= _M64:
            raise ValueError(f"WRMSR {name}: value {value} does not fit in 64 bits")
        violation = _msr_value_violation(msr, value)
        if violation is not None:
            raise GeneralProtection(f"WRMSR {name}: {violation}")
        st = self.state
        if msr == IA32_UINTR_RR:
            # UIRR := value; a user interrupt is recognized iff UIRR != 0 (pending() reads it).
            st.uirr = value
        elif msr == IA32_UINTR_HANDLER:
            st.handler = value
        elif msr == IA32_UINTR_STACKADJUST:
            st.stack_adjust = value
        elif msr == IA32_UINTR_MISC:
            st.uitt_size = value & 0xFFFF_FFFF
            st.uinv = (value >> 32) & 0xFF
        elif msr == IA32_UINTR_PD:
            st.upid_addr = value
        else:
            st.uitt_addr = value & ~0xF
            st.senduipi_enabled = bool(value & TT_SENDUIPI_ENABLE)
        ev = self._events
        if ev is not None:
            ev("wrmsr", msr=msr, value=value)

    # -- XSAVE state component 14 (§4) -------------------------------------------------------

    def _check_xss(self, op: str) -> None:
        # IA32_XSS[14] can only be set when CPUID.(0xD,1):ECX[14] = 1, i.e. with UINTR.
        if not self.features.uintr:
            raise GeneralProtection(
                f"{op}: UINTR state component 14 not supported (CPUID.UINTR = 0, IA32_XSS[14] = 0)"
            )

    def xsaves(self) -> bytes | None:
        """XSAVES of component 14: the 48-byte image, then UINV := 0 (§4) so that a later
        notification no longer touches the saved UIRR. Not gated by CR4.UINTR.

        None when the component is in its initial configuration (every field 0, UIF too):
        XSAVES then writes XSTATE_BV[14] = 0 and no image (the init optimization: SDM Vol.1
        §13.6 "Processor Tracking of XSAVE-Managed State", SDM Vol.1 §13.11 "Operation of
        XSAVES")."""
        self._check_xss("XSAVES")
        st = self.state
        ev = self._events
        if not (st.uirr or st.uif or st.handler or st.stack_adjust or st.uinv or st.uitt_size
                or st.uitt_addr or st.senduipi_enabled or st.upid_addr):  # fmt: skip
            if ev is not None:
                ev("xsaves")
            return None
        image = st.to_xsave()
        st.uinv = 0
        if ev is not None:
            ev("xsaves")
        return image

    def xrstors(self, image: bytes | None) -> None:
        """XRSTORS of component 14 from a 48-byte image, with the rules of §4; None is an
        XSAVE area with XSTATE_BV[14] = 0: the component is put in its initial configuration
        (SDM Vol.1 §13.12 "Operation of XRSTORS")."""
        self._check_xss("XRSTORS")
        st = self.state
        # §4 rule 1: #GP(0) if UINV != 0, before loading anything (two XRSTORS in a row fault).
        if st.uinv != 0:
            raise GeneralProtection(
                f"XRSTORS: UINTR state: current UINV {st.uinv:#x} != 0 (no XSAVES since the "
                "last XRSTORS)"
            )
        if image is None:
            self.reset_state()
            ev = self._events
            if ev is not None:
                ev("xrstors", uirr=0, uif=False)
            return
        _check_image_size(image)
        handler, stack_adjust, misc, pd, rr, tt = _XSAVE.unpack(image)
        # §4 rule 2: WRMSR-style checks of the image; the UIF bit 63 of MISC is not reserved.
        # We check everything before loading anything, so rule 4 (a fault after a partial load
        # clears UINV) holds trivially: UINV is already 0 here and nothing was loaded.
        for msr, value in (
            (IA32_UINTR_HANDLER, handler),
            (IA32_UINTR_STACKADJUST, stack_adjust),
            (IA32_UINTR_MISC, misc & ~XSAVE_MISC_UIF),
            (IA32_UINTR_PD, pd),
            (IA32_UINTR_TT, tt),
        ):
            violation = _msr_value_violation(msr, value)
            if violation is not None:
                name = _MSR_NAMES[msr - IA32_UINTR_RR]
                raise GeneralProtection(f"XRSTORS: UINTR image field {name}: {violation}")
        # §4 rule 3: load the six values; UIF := bit 63 of the MISC image.
        st.handler = handler
        st.stack_adjust = stack_adjust
        st.uitt_size = misc & 0xFFFF_FFFF
        st.uinv = (misc >> 32) & 0xFF
        st.uif = bool(misc & XSAVE_MISC_UIF)
        st.upid_addr = pd
        st.uirr = rr  # rule 5: recognized iff UIRR != 0
        st.uitt_addr = tt & ~0xF
        st.senduipi_enabled = bool(tt & TT_SENDUIPI_ENABLE)
        ev = self._events
        if ev is not None:
            ev("xrstors", uirr=rr, uif=st.uif)

    def reset_state(self) -> None:
        """RESET/INIT of the UINTR state: everything 0, UIF = 0 (§2). CR4 is not touched."""
        st = self.state
        st.uirr = st.handler = st.stack_adjust = st.uinv = 0
        st.uitt_size = st.uitt_addr = st.upid_addr = 0
        st.uif = st.senduipi_enabled = False

    # -- instructions (§6) -------------------------------------------------------------------

    def _disabled(self, mnemonic: str) -> InvalidOpcode:
        # §6.1: #UD if CPUID.UINTR = 0 or CR4.UINTR = 0 (UIRET included: Bochs checks CR4 for
        # all five, §17 #4). The LOCK prefix #UD is raised by decode.decode().
        if not self.features.uintr:
            return InvalidOpcode(f"{mnemonic}: CPUID.(7,0):EDX.UINTR[5] = 0")
        return InvalidOpcode(f"{mnemonic}: CR4.UINTR = 0")

    def clui(self) -> None:
        """CLUI: UIF := 0, effective at the next boundary (§6.3)."""
        if not self._enabled:
            raise self._disabled("CLUI")
        self.state.uif = False
        ev = self._events
        if ev is not None:
            ev("clui")

    def stui(self) -> None:
        """STUI: UIF := 1, effective immediately, unlike STI (§6.3): the caller should check
        delivery before the next instruction."""
        if not self._enabled:
            raise self._disabled("STUI")
        self.state.uif = True
        ev = self._events
        if ev is not None:
            ev("stui")

    def testui(self, rflags: int) -> int:
        """TESTUI: return RFLAGS with CF := UIF and OF, SF, ZF, AF, PF := 0 (§6.3)."""
        if not self._enabled:
            raise self._disabled("TESTUI")
        return (rflags & ~_TESTUI_FLAGS) | (RFLAGS_CF if self.state.uif else 0)

    def uiret(self, rsp: int, rflags: int) -> tuple[int, int, int]:
        """UIRET (§6.4, SDM UIRET Operation). Returns the new ``(rip, rflags, rsp)``.

        A fault leaves all state unchanged (nothing is written before the last check).
        """
        if not self._enabled:
            raise self._disabled("UIRET")
        # Pop tempRIP, tempRFLAGS, tempRSP from [RSP], [RSP+8], [RSP+16].
        # #SS(0) if a pop references a non-canonical address.
        last = (rsp + 23) & _M64
        high = rsp >> 47
        high_last = last >> 47
        if (high != 0 and high != _CANON_HIGH) or (high_last != 0 and high_last != _CANON_HIGH):
            raise StackFault(f"UIRET: pop from non-canonical stack address (RSP = {rsp:#x})")
        mem = self.mem
        supervisor = not self._user_mode
        try:
            frame = mem.read(rsp, 24, supervisor=supervisor)
        except PageFault:
            self._replay_pops(rsp, supervisor)
            raise
        temp_rip, temp_rflags, temp_rsp = _QQQ.unpack(frame)
        # IF tempRIP is not canonical THEN #GP(0).
        high = temp_rip >> 47
        if high != 0 and high != _CANON_HIGH:
            raise GeneralProtection(f"UIRET: return RIP {temp_rip:#x} is not canonical")
        # (Shadow-stack check: not modelled.)
        # RFLAGS := RFLAGS & ~254DD5H | tempRFLAGS & 254DD5H; reserved bit 1 stays 1.
        new_rflags = (rflags & ~UIRET_RFLAGS_MASK) | (temp_rflags & UIRET_RFLAGS_MASK) | 2
        # UIF := 1, or with flexible UIRET (CPUID.(7,1):EDX[17]) UIF := tempRFLAGS[1].
        uif = bool(temp_rflags & RFLAGS_FIXED1) if self._flexible_uiret else True
        self.state.uif = uif
        ev = self._events
        if ev is not None:
            ev("uiret", rip=temp_rip, rsp=temp_rsp, uif=uif)
        # RSP := tempRSP (a direct load, not RSP + 24).
        return temp_rip, new_rflags, temp_rsp

    def _replay_pops(self, rsp: int, supervisor: bool) -> None:
        # Slow path after a #PF on the 24-byte read: repeat the three pops one by one so the
        # fault reports the address of the first pop that faults (what CR2 would hold).
        for off in (0, 8, 16):
            self.mem.read((rsp + off) & _M64, 8, supervisor=supervisor)

    def senduipi(self, index: int) -> int:
        """SENDUIPI reg (§6.5, SDM SENDUIPI Operation); ``index`` is the register value.
        Returns the address of the UPID it posted to (the machine stamps that store's time).

        All UITT and UPID accesses are supervisor accesses whatever the CPL.
        """
        if not self._enabled:
            raise self._disabled("SENDUIPI")
        st = self.state
        # 64-bit mode exceptions: #UD if IA32_UINTR_TT[0] = 0.
        if not st.senduipi_enabled:
            raise InvalidOpcode("SENDUIPI: IA32_UINTR_TT[0] (SENDUIPI enable) = 0")
        index &= _M64  # the register operand is unsigned 64-bit
        # IF reg > UITTSZ THEN #GP(0). UITTSZ is the highest valid index (§2, §17 #5).
        if index > st.uitt_size:
            raise GeneralProtection(f"SENDUIPI: UITT index {index} > UITTSZ {st.uitt_size}")
        # Read the 16-byte UITT entry at (UITTADDR & ~0xF) + 16 * reg.
        entry_addr = (st.uitt_addr + (index << 4)) & _M64
        high = entry_addr >> 47
        if high != 0 and high != _CANON_HIGH:
            raise GeneralProtection(f"SENDUIPI: UITT entry address {entry_addr:#x} not canonical")
        mem = self.mem
        entry: int
        upid_addr: int
        entry, upid_addr = _QQ.unpack(mem.read(entry_addr, 16, supervisor=True))
        # IF UITTE.V = 0 or UITTE sets a reserved bit THEN #GP(0). All are #GP(0); the order of
        # the checks (V, reserved, UV, alignment) follows Bochs SENDUIPI_Eq.
        if not entry & UITTE_VALID:
            raise GeneralProtection(f"SENDUIPI: UITT entry {index} not valid (V = 0)")
        if entry & UITTE_RESERVED:
            group = "7:1" if entry & 0xFE else "63:16"
            raise GeneralProtection(f"SENDUIPI: UITT entry {index} reserved bits {group} set")
        vector = (entry >> 8) & 0xFF
        if vector >= NUM_USER_VECTORS:
            raise GeneralProtection(f"SENDUIPI: UITT entry {index} user vector {vector} >= 64")
        if upid_addr & 0x3F:
            raise GeneralProtection(
                f"SENDUIPI: UITT entry {index} UPIDADDR {upid_addr:#x} not 64-byte aligned "
                "(reserved bits 69:64 set)"
            )
        high = upid_addr >> 47
        if high != 0 and high != _CANON_HIGH:
            raise GeneralProtection(f"SENDUIPI: UPID address {upid_addr:#x} not canonical")
        # Atomic 16-byte read-modify-write of the UPID: one step here, the run loop is a single
        # host thread (§16). A fault before the write leaves memory unchanged.
        upid, pir = _QQ.unpack(mem.read(upid_addr, 16, supervisor=True))
        if upid & UPID_RESERVED:
            raise GeneralProtection(
                f"SENDUIPI: UPID at {upid_addr:#x} reserved bits set ({upid & UPID_RESERVED:#x})"
            )
        pir |= 1 << vector  # PIR[UV] := 1 (repeated posts coalesce)
        status = upid & (UPID_ON | UPID_SN)
        notify = status == 0  # SN = 0 and ON = 0: ON := 1 and send a notification
        if notify:
            upid |= UPID_ON
        mem.write(upid_addr, _QQ.pack(upid, pir), supervisor=True)
        target = None
        nv = (upid >> 16) & 0xFF
        ndst = upid >> 32
        if notify:
            target = self.send_notification(nv, ndst)
        ev = self._events
        if ev is not None:
            ev(
                "senduipi",
                index=index,
                vector=vector,
                upid=upid_addr,
                sn=bool(status & UPID_SN),
                on=bool(status & UPID_ON),
                notify=notify,
                nv=nv,
                ndst=ndst,
                target=None if target is None else target.apic_id,
            )
        return upid_addr

    def send_notification(self, nv: int, ndst: int) -> LocalApic | None:
        """SENDUIPI's notification: an ordinary fixed-mode, physical-destination IPI with vector
        NV to NDST (x2APIC: NDST[31:0]; xAPIC: NDST[15:8]). Returns the target APIC."""
        apic = self.apic
        return self.bus.send_ipi(nv, ndst if apic.x2apic else (ndst >> 8) & 0xFF, source=apic)

    # -- notification identification and processing (§7) -----------------------------------

    def service_interrupts(self, interrupts_enabled: bool = True) -> list[int]:
        """Accept the interrupts the local APIC has for this processor (§7 identification).

        Runs only while RFLAGS.IF = 1 (``interrupts_enabled``); with IF = 0 nothing is accepted
        and notifications stay pending in the APIC. For each accepted vector V: if CR4.UINTR = 1
        and V = UINV (UINV != 0), EOI and notification processing, no IDT delivery. Any other V
        is an ordinary interrupt for the OS: it is returned (in acceptance order), stays in the
        APIC's ISR, and the OS layer must call ``apic.eoi()`` for it. Lower-or-equal-priority
        interrupts stay pending until that EOI (the APIC's priority rules).
        """
        ordinary: list[int] = []
        if not interrupts_enabled:
            return ordinary
        apic = self.apic
        while True:
            vector = apic.acknowledge()
            if vector is None:
                return ordinary
            if self._enabled and vector == self.state.uinv and vector != 0:
                apic.eoi()  # write 0 to EOI: dismiss the notification vector
                self.process_notification()
            else:
                ordinary.append(vector)

    def process_notification(self) -> None:
        """User-interrupt notification processing (§7) on the UPID at the *current* UPIDADDR,
        with supervisor accesses: clear ON, read and zero PIR, UIRR |= PIR.

        Steps 1 (locked AND) and 2 (locked XCHG) are one step here (single host thread, §16).
        A #PF on the UPID (the OS left UPIDADDR unmapped) propagates to the caller; the
        notification vector has already been EOI'd by then.
        """
        fast = self.fast_notification
        if fast is not None and fast() == 0:  # (never while tracing: the native code defers)
            return
        st = self.state
        addr = st.upid_addr
        mem = self.mem
        upid, pir = _QQ.unpack(mem.read(addr, 16, supervisor=True))
        mem.write(addr, _QQ.pack(upid & ~UPID_ON, 0), supervisor=True)
        if pir:
            st.uirr |= pir  # a user interrupt is now recognized
        ev = self._events
        if ev is not None:
            ev("notification", upid=addr, pir=pir, uirr=st.uirr)

    # -- recognition and delivery (§8) -------------------------------------------------------

    def pending(self) -> bool:
        """A user interrupt is recognized: UIRR != 0."""
        return self.state.uirr != 0

    def deliverable(self, rflags: int) -> bool:
        """Delivery conditions at an instruction boundary (§8): CR4.UINTR = 1, UIRR != 0,
        UIF = 1, CPL = 3 and RFLAGS.IF = 1. The IF condition follows Bochs (its interrupt-mask
        handling masks user interrupts with IF = 0; the SDM list does not name it, §17 #2).
        MOV SS blocking is not modelled."""
        st = self.state
        return bool(self._enabled and st.uirr and st.uif and self._user_mode and rflags & RFLAGS_IF)

    def deliver(self, rip: int, rsp: int, rflags: int) -> tuple[int, int, int] | None:
        """Deliver the highest pending user interrupt if :meth:`deliverable`; else return None.

        ``rip`` is the next instruction to execute. Returns the new ``(rip, rsp, rflags)``:
        RIP = UIHANDLER, RSP -> the frame [vector, RIP, RFLAGS, old RSP]. Operation as in Bochs
        ``deliver_UINTR`` (§8, §17 #1). A fault (#GP, #SS, #PF) leaves RSP, UIRR and UIF unchanged.
        """
        st = self.state
        uirr = st.uirr
        if not (uirr and st.uif and self._enabled and self._user_mode and rflags & RFLAGS_IF):
            return None
        # IF UIHANDLER is not canonical THEN #GP(0) -- checked first, as in Bochs.
        handler = st.handler
        high = handler >> 47
        if high != 0 and high != _CANON_HIGH:
            raise GeneralProtection(
                f"user-interrupt delivery: UIHANDLER {handler:#x} is not canonical"
            )
        # UISTACKADJUST[0] = 1: RSP := UISTACKADJUST; else RSP := RSP - UISTACKADJUST.
        adjust = st.stack_adjust
        new_rsp = adjust if adjust & 1 else rsp - adjust
        new_rsp &= _ALIGN16  # then align down to 16 bytes
        frame_addr = (new_rsp - 32) & _M64
        # Pushes to non-canonical addresses: #SS(0).
        high = frame_addr >> 47
        high_last = ((new_rsp - 1) & _M64) >> 47
        if (high != 0 and high != _CANON_HIGH) or (high_last != 0 and high_last != _CANON_HIGH):
            raise StackFault(
                f"user-interrupt delivery: push to non-canonical stack address "
                f"(RSP {new_rsp:#x} after UISTACKADJUST {adjust:#x})"
            )
        # push oldRSP; push RFLAGS; push RIP; push UIRRV (the highest vector, zero-extended).
        vector = uirr.bit_length() - 1
        rflags |= RFLAGS_FIXED1
        frame = _QQQQ.pack(vector, rip, rflags, rsp)
        try:
            self.mem.write(frame_addr, frame, supervisor=False)
        except PageFault:
            self._replay_pushes(frame_addr, frame)
            raise
        # UIRR[vector] := 0; UIF := 0; RFLAGS.TF := 0; RFLAGS.RF := 0; RIP := UIHANDLER.
        st.uirr = uirr & ~(1 << vector)
        st.uif = False
        ev = self._events
        if ev is not None:
            ev("deliver", vector=vector, rip=rip, handler=handler, rsp=frame_addr,
               upid=st.upid_addr)  # fmt: skip
        return handler, frame_addr, rflags & ~_DELIVERY_CLEARS

    def _replay_pushes(self, frame_addr: int, frame: bytes) -> None:
        # Slow path after a #PF on the 32-byte write: repeat the four pushes in order (old RSP
        # first, at the highest address) so the fault reports the first push that faults. The
        # pushes before it are stored, as on hardware; RSP, UIRR and UIF are still unchanged.
        for off in (24, 16, 8, 0):
            self.mem.write((frame_addr + off) & _M64, frame[off : off + 8], supervisor=False)

    def __repr__(self) -> str:
        st = self.state
        return (
            f"UintrUnit(apic={self.apic.apic_id}, cr4.uintr={int(self._enabled)}, "
            f"uif={int(st.uif)}, uirr={st.uirr:#x}, uinv={st.uinv:#x})"
        )
