"""The seam between the native library and Python: the structures of native/shared.h are laid
out alike by the C compiler and by ctypes, and the constants that go with them agree.

The library reports its side (`uf_layout`: each structure's size, each field's offset and size;
`uf_constant`: named constants); the ctypes declarations are the other side. A field added,
moved, resized or renamed on one side only fails here, naming the structure and the field,
instead of as wrong values somewhere in a run.
"""

from __future__ import annotations

import ctypes

import pytest

from uintr_emu.engine import counting, mmu, native
from uintr_emu.hw.uintr import NativeUnit, UintrState

pytestmark = pytest.mark.skipif(native.LIB is None, reason="native library not built")

#: C structure tag -> its ctypes declaration.
STRUCTS: dict[str, type[ctypes.Structure]] = {
    "uintr_state": UintrState,
    "unit": NativeUnit,
    "page": native.Page,
    "ctx": native.Ctx,
    "block_entry": counting.BlockEntry,
    "counter": counting.Counter,
    "tlb_entry": mmu.TlbEntry,
    "region": mmu.Region,
    "mmu": mmu.MmuState,
}
#: C field names Python spells differently.
RENAMED = {("unit", "st"): "state"}
#: C constant -> the Python value that must equal it.
CONSTANTS = {
    "NPAGES": native.NPAGES,
    "NSTATS": len(native.STATS),
    "PERM_R": native.PERM_R,
    "PERM_W": native.PERM_W,
    "STOP_MISS": counting.MISS,
    "STOP_OVER": counting.OVER,
    "POST_OK": native.POST_OK,
    "POST_STOP": native.POST_STOP,
    "SLOW": native.SLOW,
    "ACCESS_READ": mmu.MEM_READ,
    "ACCESS_WRITE": mmu.MEM_WRITE,
    "ACCESS_FETCH": mmu.MEM_FETCH,
    "PROT_READ": mmu.PROT_R,
    "PROT_WRITE": mmu.PROT_W,
    "PROT_EXEC": mmu.PROT_X,
}


class _Field(ctypes.Structure):  # struct uf_field of layout.c
    _fields_ = [
        ("type", ctypes.c_char_p),
        ("field", ctypes.c_char_p),
        ("offset", ctypes.c_uint64),
        ("size", ctypes.c_uint64),
    ]


class _Constant(ctypes.Structure):  # struct uf_constant of layout.c
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_longlong)]


def _table(function: str, row: type[ctypes.Structure]) -> list[ctypes.Structure]:
    f = getattr(native.LIB, function)
    f.argtypes = [ctypes.c_uint32]
    f.restype = ctypes.POINTER(row)
    rows = []
    while p := f(len(rows)):
        rows.append(p.contents)
    return rows


Layout = dict[str | None, tuple[int, int]]  # field (None: the whole struct) -> (offset, size)


def c_layouts() -> dict[str, Layout]:
    layouts: dict[str, Layout] = {}
    for r in _table("uf_layout", _Field):
        field = r.field.decode() if r.field is not None else None
        layouts.setdefault(r.type.decode(), {})[field] = (r.offset, r.size)
    return layouts


def mismatches(tag: str, c: Layout, py: type[ctypes.Structure]) -> list[str]:
    """How the ctypes declaration `py` differs from C's `struct tag` (padding fields, named
    `_...` in Python and left out by C, only count in the size)."""
    out = []
    name = f"struct {tag} / {py.__name__}"
    if c[None][1] != ctypes.sizeof(py):
        out.append(f"{name}: size {c[None][1]} in C, {ctypes.sizeof(py)} in ctypes")
    py_fields = {f[0] for f in py._fields_ if not f[0].startswith("_")}
    for field, (offset, size) in c.items():
        if field is None:
            continue
        pyname = RENAMED.get((tag, field), field)
        where = f"{name} field {field}" + (f" ({pyname})" if pyname != field else "")
        if pyname not in py_fields:
            out.append(f"{where}: in C, not in ctypes")
            continue
        py_fields.discard(pyname)
        descr = getattr(py, pyname)
        if (descr.offset, descr.size) != (offset, size):
            out.append(f"{where}: offset {offset} size {size} in C, "
                       f"offset {descr.offset} size {descr.size} in ctypes")  # fmt: skip
    out += [f"{name} field {f}: in ctypes, not in C" for f in sorted(py_fields)]
    return out


def test_c_reports_every_shared_structure() -> None:
    assert set(c_layouts()) == set(STRUCTS)


@pytest.mark.parametrize("tag", sorted(STRUCTS))
def test_structure_layout_matches_c(tag: str) -> None:
    problems = mismatches(tag, c_layouts()[tag], STRUCTS[tag])
    assert not problems, "\n".join(problems)


def test_constants_match_c() -> None:
    c = {r.name.decode(): r.value for r in _table("uf_constant", _Constant)}
    assert set(c) == set(CONSTANTS)
    wrong = [f"{k}: {c[k]} in C, {v} in Python" for k, v in CONSTANTS.items() if c[k] != v]
    assert not wrong, "\n".join(wrong)


def test_a_mismatch_names_structure_and_field() -> None:
    """The comparison itself: a counter whose `last_size` grew to 64 bits, and one field too
    many and one too few."""

    class Wrong(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_uint64 if n == "last_size" else t)
            for n, t in counting.Counter._fields_
            if n != "mask"
        ] + [("extra", ctypes.c_uint8)]

    problems = mismatches("counter", c_layouts()["counter"], Wrong)
    text = "\n".join(problems)
    assert "struct counter / Wrong: size" in text
    assert "struct counter / Wrong field last_size: offset 32 size 4 in C, offset 32 size 8" in text
    assert "struct counter / Wrong field last_n: offset 36" in text
    assert "struct counter / Wrong field mask: in C, not in ctypes" in text
    assert "struct counter / Wrong field extra: in ctypes, not in C" in text
