"""Architectural faults raised by the hardware model.

A fault is a value that leaves the hardware layer: the engine hook (or the Linux layer) catches it
and turns it into what the processor would do next, e.g. a signal (docs/uintr.md §12). Every
fault carries the vector, its mnemonic, the error code pushed by the processor (0 where the
exception has none) and ``rule``: a one-line message naming the architectural rule that failed.
"""

from __future__ import annotations

# Exception vectors, SDM Vol.3 §6.3.1 "Exceptions and Interrupts" (Table 6-1).
VECTOR_DE = 0  # divide error
VECTOR_DB = 1  # debug
VECTOR_BP = 3  # breakpoint (INT3)
VECTOR_UD = 6  # invalid opcode
VECTOR_SS = 12  # stack-segment fault
VECTOR_GP = 13  # general protection
VECTOR_PF = 14  # page fault

# Page-fault error-code bits, SDM Vol.3 §4.7 "Page-Fault Exceptions".
PF_ERR_PRESENT = 1 << 0  # 0: not-present page; 1: protection violation
PF_ERR_WRITE = 1 << 1  # the access was a write
PF_ERR_USER = 1 << 2  # the access was a user-mode access
PF_ERR_FETCH = 1 << 4  # the access was an instruction fetch


class ArchFault(Exception):
    """An architectural exception raised by an instruction or an event.

    ``str(fault)`` is e.g. ``"#GP(0): SENDUIPI: UITT index 256 > UITTSZ 255"``.
    """

    vector: int = -1
    mnemonic: str = "#??"
    # Whether the processor pushes an error code for this vector (only affects str()).
    has_error_code: bool = True

    def __init__(self, rule: str, error_code: int = 0) -> None:
        super().__init__(rule, error_code)
        self.rule = rule
        self.error_code = error_code

    def __str__(self) -> str:
        if self.has_error_code:
            return f"{self.mnemonic}({self.error_code}): {self.rule}"
        return f"{self.mnemonic}: {self.rule}"


class DivideError(ArchFault):
    """#DE (vector 0), a fault: RIP is the dividing instruction. No error code."""

    vector = VECTOR_DE
    mnemonic = "#DE"
    has_error_code = False


class DebugException(ArchFault):
    """#DB (vector 1): single step, INT1. No error code."""

    vector = VECTOR_DB
    mnemonic = "#DB"
    has_error_code = False


class Breakpoint(ArchFault):
    """#BP (vector 3), a trap: RIP is after the INT3. No error code."""

    vector = VECTOR_BP
    mnemonic = "#BP"
    has_error_code = False


class CpuException(ArchFault):
    """Any other exception or software interrupt, by vector (e.g. INTO's #OF, or INT n)."""

    has_error_code = False

    def __init__(self, vector: int, rule: str) -> None:
        super().__init__(rule)
        self.vector = vector
        self.mnemonic = f"vector {vector}"


class InvalidOpcode(ArchFault):
    """#UD (vector 6). No error code."""

    vector = VECTOR_UD
    mnemonic = "#UD"
    has_error_code = False


class GeneralProtection(ArchFault):
    """#GP (vector 13); the UINTR rules only ever raise #GP(0)."""

    vector = VECTOR_GP
    mnemonic = "#GP"


class StackFault(ArchFault):
    """#SS (vector 12); in 64-bit mode raised for non-canonical stack addresses, #SS(0)."""

    vector = VECTOR_SS
    mnemonic = "#SS"


class PageFault(ArchFault):
    """#PF (vector 14) at linear address ``address`` (what CR2 would hold).

    ``protection`` is True when the page was present but the access was not allowed (error-code
    bit P = 1), False when the page was not mapped. ``write`` and ``user`` describe the access.
    """

    vector = VECTOR_PF
    mnemonic = "#PF"

    def __init__(
        self,
        address: int,
        *,
        write: bool,
        protection: bool,
        user: bool,
        fetch: bool = False,
        rule: str | None = None,
    ) -> None:
        error_code = (
            (PF_ERR_PRESENT if protection else 0)
            | (PF_ERR_WRITE if write else 0)
            | (PF_ERR_USER if user else 0)
            | (PF_ERR_FETCH if fetch else 0)
        )
        if rule is None:
            access = "fetch" if fetch else ("write" if write else "read")
            rule = (
                f"{'user' if user else 'supervisor'} {access} "
                f"{'not allowed on' if protection else 'of not-present'} page "
                f"at {address:#x}"
            )
        super().__init__(rule, error_code)
        self.address = address
        self.write = write
        self.protection = protection
        self.user = user
        self.fetch = fetch

    def __str__(self) -> str:
        return f"#PF({self.error_code:#x}): {self.rule}"
