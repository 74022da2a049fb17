"""Local APICs and the interrupt bus between them (only what UINTR notifications need).

Modelled (SDM Vol.3 ch.11/12 "Advanced Programmable Interrupt Controller", by edition):

- fixed-mode, physically addressed IPIs; x2APIC (32-bit destination) and xAPIC (8-bit) formats;
- IRR and ISR as 256-bit integers, with acceptance by priority class: the highest IRR vector is
  accepted only if its class (vector >> 4) is above the processor-priority class, which is the
  higher of the TPR class and the class of the highest in-service vector ("Interrupt, Task, and
  Processor Priority");
- EOI clears the highest ISR bit;
- illegal vectors 0-15: the sender's APIC records "send illegal vector" in its ESR and the IPI
  is not sent; an APIC posted an illegal vector records "receive illegal vector" ("Error
  Handling").

Not modelled: logical destinations, shorthands and broadcast (destination 0xFF / 0xFFFFFFFF is
just an ID no APIC has), delivery modes other than fixed, LVT, timer, level-triggered interrupts.
"""

from __future__ import annotations

from collections.abc import Callable

# Error Status Register bits (SDM "Error Handling").
ESR_SEND_ILLEGAL_VECTOR = 1 << 5
ESR_RECEIVE_ILLEGAL_VECTOR = 1 << 6
FIRST_LEGAL_VECTOR = 16


class LocalApic:
    """The local APIC of one logical processor."""

    __slots__ = ("apic_id", "x2apic", "irr", "isr", "tpr", "esr")

    def __init__(self, apic_id: int, x2apic: bool = True) -> None:
        self.apic_id = apic_id
        # The machine's APICs run in x2APIC mode (docs/uintr.md §5.2, emulator choice).
        self.x2apic = x2apic
        self.irr = 0  # bit v: vector v requested
        self.isr = 0  # bit v: vector v in service
        self.tpr = 0  # task priority; Linux keeps it 0
        self.esr = 0

    def post(self, vector: int) -> None:
        """A fixed-mode interrupt with ``vector`` arrives: set its IRR bit (repeats coalesce)."""
        if vector < FIRST_LEGAL_VECTOR or vector > 255:
            self.esr |= ESR_RECEIVE_ILLEGAL_VECTOR
            return
        self.irr |= 1 << vector

    def _processor_priority_class(self) -> int:
        # PPR[7:4] = max(TPR[7:4], ISRV[7:4]).
        isr = self.isr
        isr_class = (isr.bit_length() - 1) >> 4 if isr else 0
        tpr_class = self.tpr >> 4
        return isr_class if isr_class > tpr_class else tpr_class

    def has_pending(self) -> bool:
        """True if an interrupt in IRR would be accepted now (its class is above PPR's class)."""
        irr = self.irr
        if not irr:
            return False
        return ((irr.bit_length() - 1) >> 4) > self._processor_priority_class()

    def acknowledge(self) -> int | None:
        """Interrupt acknowledge: move the highest acceptable IRR vector to ISR and return it."""
        irr = self.irr
        if not irr:
            return None
        vector = irr.bit_length() - 1
        if (vector >> 4) <= self._processor_priority_class():
            return None
        bit = 1 << vector
        self.irr = irr & ~bit
        self.isr |= bit
        return vector

    def eoi(self) -> None:
        """Write to the EOI register: clear the highest in-service bit (no-op if none)."""
        isr = self.isr
        if isr:
            self.isr = isr & ~(1 << (isr.bit_length() - 1))

    def __repr__(self) -> str:
        mode = "x2APIC" if self.x2apic else "xAPIC"
        return f"LocalApic(id={self.apic_id}, {mode}, irr={self.irr:#x}, isr={self.isr:#x})"


IpiListener = Callable[[LocalApic, LocalApic, int], None]


class ApicBus:
    """Carries IPIs between the local APICs of the machine."""

    __slots__ = ("_apics", "on_ipi")

    def __init__(self) -> None:
        self._apics: dict[int, LocalApic] = {}
        # Called as on_ipi(source, target, vector) after an IPI was posted into target's IRR,
        # so the machine learns which CPU to wake. Not called for lost IPIs.
        self.on_ipi: IpiListener | None = None

    def attach(self, apic: LocalApic) -> None:
        if apic.apic_id in self._apics:
            raise ValueError(f"APIC ID {apic.apic_id} is already attached to the bus")
        self._apics[apic.apic_id] = apic

    def apic(self, apic_id: int) -> LocalApic | None:
        return self._apics.get(apic_id)

    def send_ipi(self, vector: int, destination: int, *, source: LocalApic) -> LocalApic | None:
        """Send a fixed-mode, physical-destination IPI as ``source`` writing its ICR would.

        The destination is the full 32-bit APIC ID when ``source`` is in x2APIC mode, the 8-bit ID
        otherwise. Returns the target APIC, or None if the IPI went nowhere (illegal vector, or no
        APIC with that ID: the IPI is lost, as on hardware).
        """
        if vector < FIRST_LEGAL_VECTOR or vector > 255:
            source.esr |= ESR_SEND_ILLEGAL_VECTOR
            return None
        destination &= 0xFFFF_FFFF if source.x2apic else 0xFF
        target = self._apics.get(destination)
        if target is None:
            return None
        target.irr |= 1 << vector
        listener = self.on_ipi
        if listener is not None:
            listener(source, target, vector)
        return target
