"""The pinned engine still has the private details engine/ relies on (docs/engine-notes.md §0,
§5.3): the binding's loaded library and the handles behind a `Uc` and a saved context. If a
new Unicorn build changes one, this fails here, naming it, instead of somewhere in a run."""

from __future__ import annotations

import ctypes
from importlib.metadata import version

import unicorn
from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
from unicorn.unicorn_py3 import unicorn as binding

# The libunicorn functions engine/ calls directly (ctypes, past the binding's wrappers).
RAW_FUNCTIONS = (
    "uc_emu_start", "uc_emu_stop", "uc_hook_add", "uc_hook_del", "uc_reg_read", "uc_reg_write",
    "uc_reg_read_batch", "uc_mem_read", "uc_mem_map_ptr", "uc_mem_unmap", "uc_context_save",
    "uc_context_restore", "uc_context_reg_read", "uc_context_reg_write",
)  # fmt: skip


def test_the_engine_is_the_pinned_version() -> None:
    assert version("unicorn") == "2.1.4"
    assert unicorn.__version__.startswith("2.1.4")


def test_the_binding_exports_its_library_and_hook_handle_type() -> None:
    for name in RAW_FUNCTIONS:
        assert hasattr(binding.uclib, name), f"unicorn.unicorn_py3.unicorn.uclib.{name}"
    assert issubclass(binding.uc_hook_h, ctypes._SimpleCData), "uc_hook_h"


def test_a_uc_and_a_context_expose_their_native_handles() -> None:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    assert isinstance(uc._uch, ctypes.c_void_p) and uc._uch.value, "Uc._uch"
    ctx = uc.context_save()
    assert ctx._context is not None and ctx.context is not None, "UcContext._context / .context"
    # The raw call works on them as engine/unicorn.py makes it.
    assert binding.uclib.uc_context_save(uc._uch, ctx._context) == 0
