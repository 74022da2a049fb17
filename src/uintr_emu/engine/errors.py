"""The engine layer's own exception (a leaf module: every engine module raises it)."""

from __future__ import annotations

from .binding import ucc


class EngineError(Exception):
    """Unicorn refused an operation (bad mapping, corrupt state); a bug or bad guest input."""

    def __init__(self, message: str, status: int = ucc.UC_ERR_OK) -> None:
        super().__init__(message)
        self.status = status  # Unicorn's uc_err

    @property
    def out_of_memory(self) -> bool:
        return self.status == ucc.UC_ERR_NOMEM


class RunFault(EngineError):
    """A run ended on an exception no hook consumed (`uc_emu_start` failed): the machine turns
    it into the architecture's exception (traps.py)."""

    @property
    def invalid_instruction(self) -> bool:
        """The engine could not execute an instruction (UC_ERR_INSN_INVALID)."""
        return self.status == ucc.UC_ERR_INSN_INVALID
