"""The engine's own declarations of libunicorn (engine/binding.py) still match the pinned engine
(docs/engine-notes.md §0, §5.3): the library, every constant, every function signature. The
engine does not import Unicorn's Python binding (its import costs ~15 ms of every start); this
compares with it, so that a new Unicorn build that changes one fails here, naming it, instead of
somewhere in a run."""

from __future__ import annotations

import ctypes
import os
from importlib.metadata import version

import unicorn
from unicorn import unicorn_const, x86_const
from unicorn.unicorn_py3 import unicorn as theirs

from uintr_emu.engine import binding


def test_the_engine_is_the_pinned_version() -> None:
    assert version("unicorn") == "2.1.4"
    assert unicorn.__version__.startswith("2.1.4")


def test_the_library_is_the_one_the_binding_loads() -> None:
    assert os.path.realpath(binding.uclib._name) == os.path.realpath(theirs.uclib._name)


def _constants(space: type) -> dict[str, int]:
    return {k: v for k, v in vars(space).items() if k.startswith("UC_")}


def test_every_constant_has_the_pinned_value() -> None:
    ours = {**_constants(binding.ucc), **_constants(binding.x86)}
    assert len(ours) > 60
    for name, value in ours.items():
        expected = getattr(unicorn_const, name, None)
        if expected is None:
            expected = getattr(x86_const, name)
        assert value == expected, name


def _shape(t: object) -> int:
    """What the C calling convention sees of a ctypes type: its size (pointers all alike)."""
    return 0 if t is None else ctypes.sizeof(t)  # type: ignore[arg-type]


def test_every_prototype_agrees_with_the_binding() -> None:
    declared = [name for name in dir(binding.uclib) if name.startswith("uc_")]
    assert len(declared) >= 20
    for name in declared:
        mine, their = getattr(binding.uclib, name), getattr(theirs.uclib, name)
        assert _shape(mine.restype) == _shape(their.restype), name
        assert [_shape(a) for a in mine.argtypes] == [_shape(a) for a in their.argtypes], name


def test_a_uc_and_a_context_work_through_the_declarations() -> None:
    uc = binding.Uc()
    uc.mem_map(0x1000, 0x1000)
    uc.mem_write(0x1000, b"\x48\xff\xc0\xcc")  # inc rax; int3 (ends the block)
    uc.reg_write(binding.x86.UC_X86_REG_RAX, 41)
    ctx = uc.context_save()
    uc.emu_start(0x1000, 0x1003)
    assert uc.reg_read(binding.x86.UC_X86_REG_RAX) == 42
    assert binding.uclib.uc_context_restore(uc._uch, ctx._context) == 0
    assert uc.reg_read(binding.x86.UC_X86_REG_RAX) == 41
    assert list(uc.mem_regions()) == [(0x1000, 0x1FFF, binding.ucc.UC_PROT_ALL)]
    assert uc.ctl_request_cache(0x1000) == (0x1000, 2, 4)


def test_registers_beyond_the_table_come_from_the_binding() -> None:
    assert binding.register_id("rip") == x86_const.UC_X86_REG_RIP
    assert binding.register_id("xmm7") == x86_const.UC_X86_REG_XMM7
