"""engine/cpuid.py's table is the pinned engine's own CPUID answers: what `model_cpuid` would
otherwise ask of a scratch engine at every start. If the engine changes, the first test fails
with the table engine/cpuid.py should hold."""

from __future__ import annotations

import random

from uintr_emu.engine import cpuid
from uintr_emu.engine.unicorn import _cpuid_engine, ask_cpuid, model_cpuid

ZERO = (0, 0, 0, 0)


def _live_table() -> tuple[dict[int, cpuid.Answer], dict[tuple[int, int], cpuid.Answer]]:
    """The table as the engine answers it: every leaf up to the highest basic and extended
    leaf it reports, by subleaf for SUBLEAF_LEAVES."""
    top = ask_cpuid(0, 0)[0]
    top_ext = ask_cpuid(0x8000_0000, 0)[0]
    by_leaf = {}
    by_subleaf = {}
    for leaf in [*range(top + 1), *range(0x8000_0000, top_ext + 1)]:
        if leaf not in cpuid.SUBLEAF_LEAVES:
            by_leaf[leaf] = ask_cpuid(leaf, 0)
            continue
        for sub in range(cpuid.SUBLEAVES):
            answer = ask_cpuid(leaf, sub)
            if answer != ZERO:
                by_subleaf[leaf, sub] = answer
    return by_leaf, by_subleaf


def _source(by_leaf: dict, by_subleaf: dict) -> str:
    def regs(answer: cpuid.Answer) -> str:
        return "(" + ", ".join(f"0x{r:08X}" if r else "0" for r in answer) + ")"

    lines = [
        "BY_LEAF: dict[int, Answer] = {",
        *(f"    0x{k:X}: {regs(v)}," for k, v in by_leaf.items()),
        "}",
    ]
    lines += ["BY_SUBLEAF: dict[tuple[int, int], Answer] = {"]
    lines += [f"    (0x{leaf:X}, {sub}): {regs(v)}," for (leaf, sub), v in by_subleaf.items()]
    return "\n".join([*lines, "}"])


def test_the_table_is_the_engines_answers() -> None:
    live = _live_table()
    assert (cpuid.BY_LEAF, cpuid.BY_SUBLEAF) == live, "engine/cpuid.py should hold:\n" + _source(
        *live
    )


def test_the_leaves_answered_whatever_ecx_holds_ignore_ecx() -> None:
    rng = random.Random(14)
    subleaves = [1, 2, 63, 64, 0x8000_0000, 0xFFFF_FFFF, *(rng.getrandbits(32) for _ in range(8))]
    for leaf, answer in cpuid.BY_LEAF.items():
        for sub in subleaves:
            assert ask_cpuid(leaf, sub) == answer, (hex(leaf), hex(sub))


def test_model_cpuid_takes_the_table_and_asks_the_engine_the_rest() -> None:
    assert model_cpuid(1, 0xFFFF_E7C0) == cpuid.BY_LEAF[1]
    assert model_cpuid(7, 1) == ZERO
    # Above the highest leaf, or a subleaf beyond the table: the engine answers.
    for leaf, sub in ((0x14, 0), (0x8000_001D, 3), (0xD, cpuid.SUBLEAVES)):
        assert cpuid.lookup(leaf, sub) is None
        assert model_cpuid(leaf, sub) == ask_cpuid(leaf, sub)
    assert _cpuid_engine.cache_info().currsize == 1
