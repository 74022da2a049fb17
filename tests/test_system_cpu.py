"""Full-system mode's processor (system/cpu.py on engine/system.py): a tiny kernel of our own
(tests/system/tiny_kernel.S, assembled here) sets up its GDT, TSS, IDT, page tables and
SYSCALL MSRs, drops to CPL 3 and provokes each way into the kernel; its handlers print what
the processor handed them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from uintr_emu.system.machine import SystemMachine

SOURCE = Path(__file__).parent / "system" / "tiny_kernel.S"
LOAD = 0x200000

EXPECTED = """\
boot
syscall rax=1 cs=8 ss=10 if=0
int80 frame-cs=23 below-rsp0=28
pf error=4 cr2=400000 below-ist1=30
pf error=7 cr2=1000 below-ist1=30
gp error=0 frame-cs=23
gp error=40a frame-cs=23
syscall rax=3c cs=8 ss=10 if=0halt
"""


@pytest.fixture(scope="module")
def tiny_kernel(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if shutil.which("gcc") is None or shutil.which("objcopy") is None:
        pytest.skip("needs gcc and objcopy to assemble the tiny kernel")
    d = tmp_path_factory.mktemp("tiny")
    elf, flat = d / "tiny", d / "tiny.bin"
    subprocess.run(["gcc", "-nostdlib", "-static", f"-Wl,-Ttext={LOAD:#x}", "-Wl,--build-id=none",
                    "-o", str(elf), str(SOURCE)], check=True)  # fmt: skip
    subprocess.run(["objcopy", "-O", "binary", str(elf), str(flat)], check=True)
    return flat.read_bytes()


def boot(image: bytes) -> tuple[str, SystemMachine, str, int]:
    out: list[bytes] = []
    m = SystemMachine(16 << 20, out.append)
    m.engine.write(LOAD, image)
    m.enter_long_mode(LOAD)
    r = m.run(timeout=60)
    return b"".join(out).decode(), m, r.reason, r.status


def test_each_entry_gets_the_frame_stack_and_error_code_the_sdm_gives(tiny_kernel: bytes) -> None:
    """SYSCALL: CS/SS from STAR, IF masked by FMASK, RCX = the next RIP (SDM Vol. 2B SYSCALL).
    INT 0x80 through a DPL-3 gate: the stack switches to TSS.RSP0, 5 quadwords pushed
    (SDM Vol. 3 §6.14.2). #PF: error codes 4 (user read, not present) and 7 (user write,
    protection), CR2, the IST1 stack, 6 quadwords with the error code (SDM Vol. 3 §6.14.5,
    SDM Vol. 3 §4.7). CLI at CPL 3: #GP(0); INT 0x81 through a DPL-0 gate: #GP(0x81 * 8 + 2)
    (SDM Vol. 3 §6.12.1.1).
    CLI; HLT ends the run as a halted machine, status 0."""
    out, m, reason, status = boot(tiny_kernel)
    assert out == EXPECTED
    assert (reason, status) == ("halted", 0)
    assert (m.cpu.syscalls, m.cpu.exceptions) == (2, 5)


def test_an_unusable_double_fault_gate_shuts_the_processor_down(tiny_kernel: bytes) -> None:
    """A #PF whose gate is absent becomes #NP -> #DF (Table 6-5: a contributory fault while
    delivering #PF); with no #DF gate either, the processor shuts down (triple fault)."""
    out: list[bytes] = []
    m = SystemMachine(16 << 20, out.append)
    # Paging on the loader's identity map and an empty IDT: the first fault cannot be delivered.
    m.engine.write(LOAD, b"\x48\x8b\x04\x25\x00\x00\x00\xc0")  # mov rax, [0xc0000000]
    m.enter_long_mode(LOAD)
    m.engine.set_table("idtr", 0x50000, 256 * 16 - 1)
    m.engine.write(boot_pd := 0x9000 + 0x2000 + 3 * 0x1000, bytes(4096))  # unmap 3-4 GiB
    assert boot_pd
    r = m.run(timeout=10)
    assert (r.reason, r.status) == ("triple fault", 1)


@pytest.mark.parametrize(
    ("leaf", "check"),
    [
        (0x0, lambda a, b, c, d: a >= 0x16),  # the TSC leaves are within the maximum leaf
        (0x1, lambda a, b, c, d: not c & (1 << 30)),  # no RDRAND: runs must not see host entropy
        (0x15, lambda a, b, c, d: c * b // a == 1_000_000_000),  # crystal x ratio = 1 GHz TSC
        (0x16, lambda a, b, c, d: a == 1000),  # base MHz
    ],
)
def test_cpuid_gives_the_tsc_frequency_and_no_rdrand(leaf, check) -> None:  # type: ignore[no-untyped-def]
    """SDM Vol. 2A, CPUID leaves 0x15/0x16: Linux takes the TSC frequency from them."""
    m = SystemMachine(16 << 20, lambda b: None)
    m.engine.write(LOAD, b"\x0f\xa2\xfa\xf4")  # cpuid; cli; hlt
    m.enter_long_mode(LOAD)
    m.engine.set_reg("rax", leaf)
    m.engine.set_reg("rcx", 0)
    assert m.run(timeout=10).reason == "halted"
    regs = [m.engine.reg(r) for r in ("rax", "rbx", "rcx", "rdx")]
    assert check(*regs), [hex(r) for r in regs]
