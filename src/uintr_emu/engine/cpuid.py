"""The engine's own CPUID answers for the CPU model every Engine uses (Haswell, unicorn 2.1.4),
as a table, so that a run does not start a second Unicorn instance only to ask them (about
1 ms and 3 MiB at every start; `model_cpuid` in engine/unicorn.py asks one for anything not
here). tests/test_engine_cpuid.py checks every entry against the engine, that the leaves in
BY_LEAF ignore ECX, and that the subleaves below SUBLEAVES missing from BY_SUBLEAF are zero;
when the pinned engine changes, its failure prints the new table.
"""

from __future__ import annotations

Answer = tuple[int, int, int, int]  # EAX, EBX, ECX, EDX

#: leaf -> its answer, whatever ECX holds.
BY_LEAF: dict[int, Answer] = {
    0x0: (0x0000000D, 0x756E6547, 0x6C65746E, 0x49656E69),
    0x1: (0x000306C4, 0x00000800, 0xCED82203, 0x078BFBFD),
    0x2: (0x00000001, 0, 0, 0x002C307D),
    0x3: (0, 0, 0, 0),
    0x5: (0, 0, 0x00000003, 0),
    0x6: (0x00000004, 0, 0, 0),
    0x8: (0, 0, 0, 0),
    0x9: (0, 0, 0, 0),
    0xA: (0, 0, 0, 0),
    0xB: (0, 0, 0, 0),
    0xC: (0, 0, 0, 0),
    0x80000000: (0x80000008, 0x756E6547, 0x6C65746E, 0x49656E69),
    0x80000001: (0x000306C4, 0, 0x00000021, 0x28100800),
    0x80000002: (0x65746E49, 0x6F43206C, 0x50206572, 0x65636F72),
    0x80000003: (0x726F7373, 0x61482820, 0x6C657773, 0x0000296C),
    0x80000004: (0, 0, 0, 0),
    0x80000005: (0x01FF01FF, 0x01FF01FF, 0x40020140, 0x40020140),
    0x80000006: (0, 0x42004200, 0x02008140, 0),
    0x80000007: (0, 0, 0, 0),
    0x80000008: (0x00003028, 0, 0, 0),
}

#: The leaves whose answer depends on ECX (the subleaf).
SUBLEAF_LEAVES = (0x4, 0x7, 0xD)
#: Their subleaves below this are all known: those not in BY_SUBLEAF answer zeros.
SUBLEAVES = 64
#: (leaf, subleaf) -> the answer, the non-zero ones below SUBLEAVES.
BY_SUBLEAF: dict[tuple[int, int], Answer] = {
    (0x4, 0): (0x00000121, 0x01C0003F, 0x0000003F, 0x00000001),
    (0x4, 1): (0x00000122, 0x01C0003F, 0x0000003F, 0x00000001),
    (0x4, 2): (0x00000143, 0x03C0003F, 0x00000FFF, 0x00000001),
    (0x7, 0): (0, 0x00000389, 0, 0),
    (0xD, 0): (0x00000007, 0x00000240, 0x00000340, 0),
    (0xD, 1): (0x00000001, 0, 0, 0),
    (0xD, 2): (0x00000100, 0x00000240, 0, 0),
}

_ZERO: Answer = (0, 0, 0, 0)


def lookup(leaf: int, subleaf: int) -> Answer | None:
    """The engine's answer for (leaf, subleaf) if the table knows it, else None."""
    answer = BY_LEAF.get(leaf)
    if answer is not None:
        return answer
    if leaf in SUBLEAF_LEAVES and subleaf < SUBLEAVES:
        return BY_SUBLEAF.get((leaf, subleaf), _ZERO)
    return None
