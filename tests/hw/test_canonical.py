"""hw/canonical.py: which accesses to a non-canonical address are stack references (#SS) and
which are not (#GP). Encodings from GNU as 2.40; the #SS/#GP outcome of each memory-operand
form was measured natively on x86-64 Linux (SIGBUS vs SIGSEGV, trapno 12 vs 13)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uintr_emu.hw.canonical import noncanonical_fault, stack_reference
from uintr_emu.hw.faults import GeneralProtection, StackFault

R, W = False, True

CASES = [
    # (asm, bytes, access, stack reference?)
    ("mov rax, [rbx]", "488b03", R, False),
    ("mov [rbx], rax", "488903", W, False),
    ("mov rax, [rbp+0]", "488b4500", R, True),
    ("mov rax, [rbp+8]", "488b4508", R, True),
    ("mov rax, [rsp+rbx]", "488b041c", R, True),
    ("mov rax, [rbx+rbp]", "488b042b", R, False),  # rbp is the index
    ("mov rax, [rbp*1+0]", "488b042d00000000", R, False),  # no base register
    ("mov rax, [r13+0]", "498b4500", R, False),
    ("mov rax, [r12]", "498b0424", R, False),
    ("mov rax, fs:[rbp+0]", "64488b4500", R, False),
    ("ds mov rax, [rbp+0]", "3e488b4500", R, True),  # DS override ignored in 64-bit mode
    ("ss mov rax, [rbx]", "36488b03", R, False),  # SS override ignored too
    ("mov rax, [rip+0x100]", "488b0500010000", R, False),
    ("push rax", "50", W, True),
    ("pop rax", "58", R, True),
    ("push r15", "4157", W, True),
    ("push qword [rbx]: the read", "ff33", R, False),
    ("push qword [rbx]: the push", "ff33", W, True),
    ("push qword [rbp+0]: the read", "ff7500", R, True),
    ("pop qword [rbx]: the pop", "8f03", R, True),
    ("pop qword [rbx]: the store", "8f03", W, False),
    ("call qword [rbx]: the read", "ff13", R, False),
    ("call qword [rbx]: the push", "ff13", W, True),
    ("call rax", "ffd0", W, True),
    ("jmp qword [rbx]", "ff23", R, False),
    ("jmp qword [rbp+0]", "ff6500", R, True),
    ("ret", "c3", R, True),
    ("ret 8", "c20800", R, True),
    ("leave", "c9", R, True),
    ("enter 16, 0", "c8100000", W, True),
    ("pushfq", "9c", W, True),
    ("push fs", "0fa0", W, True),
    ("call rel32", "e800000000", W, True),
    ("movsq", "48a5", R, False),
    ("rep stosq", "f348ab", W, False),
    ("xlatb", "d7", R, False),
    ("mov rax, moffs", "48a10000000000000080", R, False),
    ("add qword [rbp-8], 1", "488345f801", R, True),
    ("lock xadd [rbx], rax", "f0480fc103", W, False),
    ("fxsave [rbx]", "0fae03", W, False),
    ("movdqu xmm0, [rbp+0]", "f30f6f4500", R, True),
    ("movdqu [rbx], xmm0", "f30f7f03", W, False),
    ("vmovdqu xmm0, [rbp+0] (VEX2)", "c5fa6f4500", R, True),
    ("vmovdqu xmm0, [r13+0] (VEX3, B)", "c4c17a6f4500", R, False),
    ("vmovdqu xmm0, [rbp+0] (VEX3)", "c4e17a6f4500", R, True),
    ("mov eax, [ebp+0] (addr32)", "678b4500", R, True),
    ("cmpxchg16b [rbp+0]", "480fc74d00", R, True),
    ("pshufb xmm0, [rsp] (0F 38)", "660f380004 24".replace(" ", ""), R, True),
    ("REX then legacy prefix: REX ignored", "4966488b4500", R, True),
    ("truncated", "488b", R, False),
    ("empty", "", R, False),
    ("prefixes only", "66" * 15, R, False),
]


@pytest.mark.parametrize(
    ("code", "write", "expected"), [pytest.param(c[1], c[2], c[3], id=c[0]) for c in CASES]
)
def test_stack_reference(code: str, write: bool, expected: bool) -> None:
    assert stack_reference(bytes.fromhex(code), write=write) is expected


def test_noncanonical_fault_kinds() -> None:
    ss = noncanonical_fault(bytes.fromhex("488b4500"), write=False)
    assert isinstance(ss, StackFault) and ss.vector == 12 and ss.error_code == 0
    gp = noncanonical_fault(bytes.fromhex("488b03"), write=False)
    assert isinstance(gp, GeneralProtection) and gp.vector == 13 and gp.error_code == 0
    # An instruction fetch is a #GP of the branch, whatever the bytes.
    assert isinstance(noncanonical_fault(b"\x50", write=False, fetch=True), GeneralProtection)


@settings(max_examples=500)
@given(code=st.binary(max_size=20), write=st.booleans(), fetch=st.booleans())
def test_any_bytes_give_gp_or_ss(code: bytes, write: bool, fetch: bool) -> None:
    f = noncanonical_fault(code, write=write, fetch=fetch)
    assert isinstance(f, StackFault | GeneralProtection) and f.error_code == 0
    assert isinstance(f, StackFault) == (not fetch and stack_reference(code, write=write))
