"""Host cost of the trapped UINTR instructions through the real engine path.

Every figure goes through what a guest instruction goes through in uintr-emu: Unicorn raises #UD,
the machine's hook executes the instruction -- on the native fast path, or with ``--model`` on
the Python model alone (``machine.Cpu.execute_trapped``) -- and the engine resumes. The bare
machine of ``tests/engine_harness.py`` provides the CPUs (no Linux layer).

Each measurement runs a counted guest loop ``L: <insn>; dec rcx; jnz L`` of N iterations in one
``engine.run`` and subtracts the same loop with a 4-byte NOP (``0F 1F 40 00``) in place of the
instruction; the result is host µs per instruction. Rows:

- clui / stui / testui: nothing pending (stui still checks for delivery).
- uiret: a frame built by the loop itself (mov rax, rsp; push rax; pushfq; push rbx; uiret);
  baseline replaces uiret with ``add rsp, 24`` (same length).
- senduipi, post only: the UPID has SN = 1, so only PIR is written (no IPI).
- senduipi self round: UIF = 1, UITT entry 0 -> the CPU's own UPID: SENDUIPI + self-IPI +
  notification processing + delivery + handler (``add rsp, 8; uiret``) + UIRET.
  "minus uiret" subtracts the uiret row: SENDUIPI + notification + delivery (+ 1 TCG add).
- senduipi to cpu1 + accept: per iteration CPU 0 runs ``senduipi rax; int3`` to CPU 1's UPID,
  then CPU 1 accepts the interrupt (``cpu1.accept_interrupts()``, what its next boundary does):
  SENDUIPI + IPI + notification processing on CPU 1 (no delivery). The baseline runs a NOP.
- cross-cpu round: per iteration the engine runs CPU 0's ``senduipi rax; int3``, switches to
  CPU 1's context, ``cpu1.deliver_pending`` (service + delivery), runs CPU 1's handler and UIRET
  back to ``int3``, and switches back. The baseline does the same two engine runs and context
  switches with a NOP instead of SENDUIPI and no delivery, so the row is the UINTR part only.

Targets (the issue): <= 5 µs per CLUI/STUI/TESTUI, <= 15 µs for SENDUIPI + notification +
delivery. Each figure is the best of ``--repeat`` runs.

    python benchmarks/uintr_trap.py [--iterations N] [--repeat N] [--model] [--check]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from engine_harness import (  # noqa: E402 - after the sys.path insert
    CODE,
    HANDLER,
    NOP4,
    RAX,
    RBX,
    RCX,
    RSP0,
    USER_RFLAGS,
    Asm,
    Bare,
    setup_uintr,
    uitte,
)

TARGET_SIMPLE = 5.0
TARGET_SEND = 15.0


def fast_bare(ncpus: int = 1) -> Bare:
    """A bare machine (`Bare.default_fast_path` says which path executes UINTR) with a minimal
    handler: drop the vector, return."""
    bare = Bare(ncpus=ncpus)
    bare.poke(HANDLER, Asm(HANDLER).add_rsp_8().uiret().bytes())
    return bare


def loop(body: bytes, n: int, setup: Callable[[Asm], None] | None = None) -> Asm:
    """[setup]; mov rcx, n; L: body; dec rcx; jnz L; int3."""
    a = Asm()
    if setup is not None:
        setup(a)
    a.mov_imm(RCX, n)
    a.label("L")
    a.emit(body).dec(RCX).jcc("jnz", "L").int3()
    return a


def time_loop(bare: Bare, code: Asm, repeat: int) -> float:
    """Best wall time of running ``code`` from CODE (state reset by the caller's prepare)."""
    bare.load(code)
    best = float("inf")
    for _ in range(repeat + 1):  # the first run translates the code
        bare.set_rsp(RSP0)
        bare.set_rflags(USER_RFLAGS)
        t = time.perf_counter()
        bare.run(CODE)
        dt = time.perf_counter() - t
        best = min(best, dt)
    return best


def net(bare: Bare, body: bytes, base: bytes, n: int, repeat: int, setup=None) -> tuple[float, ...]:
    t_op = time_loop(bare, loop(body, n, setup), repeat)
    t_base = time_loop(bare, loop(base, n, setup), repeat)
    return (t_op - t_base) / n * 1e6, t_op / n * 1e6, t_base / n * 1e6


def bench_simple(name: str, n: int, repeat: int) -> tuple[float, ...]:
    bare = fast_bare()
    setup_uintr(bare)
    body = {"clui": Asm().clui(), "stui": Asm().stui(), "testui": Asm().testui()}[name].bytes()
    return net(bare, body, NOP4, n, repeat)


def bench_uiret(n: int, repeat: int) -> tuple[float, ...]:
    bare = fast_bare()
    setup_uintr(bare)
    # Loop body: build a UIRET frame returning to the next instruction, then UIRET.
    frame = bytes([0x48, 0x89, 0xE0, 0x50, 0x9C, 0x53])  # mov rax, rsp; push rax; pushfq; push rbx
    start = CODE + 20  # L: after "mov rbx, after" and "mov rcx, n" (10 bytes each)
    after = start + len(frame) + 4

    def setup(a: Asm) -> None:
        a.mov_imm(RBX, after)

    uiret = Asm().uiret().bytes()
    add_rsp_24 = bytes([0x48, 0x83, 0xC4, 0x18])
    return net(bare, frame + uiret, frame + add_rsp_24, n, repeat, setup)


def bench_send_post_only(n: int, repeat: int) -> tuple[float, ...]:
    bare = fast_bare()
    setup_uintr(bare, sn=True)
    bare.cpu.uintr.state.uif = True
    return net(bare, Asm().senduipi(RAX).bytes(), NOP4, n, repeat, lambda a: a.mov_imm(RAX, 0))


def bench_self_round(n: int, repeat: int) -> tuple[float, ...]:
    bare = fast_bare()
    setup_uintr(bare)
    bare.cpu.uintr.state.uif = True
    result = net(bare, Asm().senduipi(RAX).bytes(), NOP4, n, repeat, lambda a: a.mov_imm(RAX, 0))
    assert bare.cpu.uintr.state.uirr == 0 and bare.cpu.uintr.state.uif
    return result


def bench_cross_service(n: int, repeat: int) -> tuple[float, ...]:
    bare = fast_bare(2)
    cpu0, cpu1 = bare.machine.cpus
    rx = setup_uintr(bare, cpu1, vectors={})
    setup_uintr(bare, cpu0, entries={0: uitte(7, rx.upid)})
    send_at, nop_at = CODE, CODE + 0x40
    bare.poke(send_at, Asm(send_at).senduipi(RAX).int3().bytes())
    bare.poke(nop_at, Asm(nop_at).nop4().int3().bytes())
    bare.set_reg(RAX, 0)

    def one_run(start: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            bare.run(start)
            cpu1.accept_interrupts()
            cpu1.uintr.state.uirr = 0  # (so that the next notification finds work again)
        return time.perf_counter() - t

    one_run(send_at)  # translate
    t_op = min(one_run(send_at) for _ in range(repeat))
    one_run(nop_at)
    t_base = min(one_run(nop_at) for _ in range(repeat))
    return (t_op - t_base) / n * 1e6, t_op / n * 1e6, t_base / n * 1e6


def bench_cross_round(n: int, repeat: int) -> tuple[float, ...]:
    bare = fast_bare(2)
    cpu0, cpu1 = bare.machine.cpus
    rx = setup_uintr(bare, cpu1, vectors={})
    setup_uintr(bare, cpu0, entries={0: uitte(7, rx.upid)})
    cpu1.uintr.state.uif = True
    e = bare.engine
    send_at, nop_at, rx_at = CODE, CODE + 0x40, CODE + 0x80
    bare.poke(send_at, Asm(send_at).senduipi(RAX).int3().bytes())
    bare.poke(nop_at, Asm(nop_at).nop4().int3().bytes())
    bare.poke(rx_at, b"\xcc")
    ctx0, ctx1 = e.new_context(), e.new_context()
    bare.set_reg(RAX, 0)
    bare.set_rsp(RSP0)
    bare.set_rflags(USER_RFLAGS)
    e.save(ctx0)
    bare.set_rsp(RSP0 - 0x4000)
    e.save(ctx1)

    def one_run(start: int) -> float:
        # Same shape with and without UINTR work: with the NOP nothing is pending on CPU 1 and
        # deliver_pending returns at once.
        t = time.perf_counter()
        for _ in range(n):
            e.restore(ctx0)
            bare.cpu = cpu0
            bare.run(start)
            e.save(ctx0)
            e.restore(ctx1)
            bare.cpu = cpu1
            bare.set_rip(rx_at)
            cpu1.deliver_pending(e)
            bare.run()
        return time.perf_counter() - t

    one_run(send_at)  # translate
    t_op = min(one_run(send_at) for _ in range(repeat))
    assert cpu1.uintr.state.uirr == 0 and cpu1.uintr.state.uif  # every send was delivered
    one_run(nop_at)
    t_base = min(one_run(nop_at) for _ in range(repeat))
    return (t_op - t_base) / n * 1e6, t_op / n * 1e6, t_base / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=20000, help="loop iterations (N)")
    ap.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    ap.add_argument("--model", action="store_true", help="the Python model executes every one")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args()
    Bare.default_fast_path = not args.model
    n, r = args.iterations, args.repeat
    rows: list[tuple[str, tuple[float, ...], float | None]] = []
    for name in ("clui", "stui", "testui"):
        rows.append((name, bench_simple(name, n, r), TARGET_SIMPLE))
    uiret = bench_uiret(n, r)
    rows.append(("uiret", uiret, None))
    rows.append(("senduipi, post only (SN = 1)", bench_send_post_only(n, r), None))
    self_round = bench_self_round(n, r)
    rows.append(("senduipi self round (incl. uiret)", self_round, None))
    derived = (self_round[0] - uiret[0], float("nan"), float("nan"))
    rows.append(("  minus uiret: send+notify+deliver", derived, TARGET_SEND))
    n_cross = max(n // 4, 1)
    rows.append(("senduipi to cpu1 + cpu1 accepts", bench_cross_service(n_cross, r), TARGET_SEND))
    rows.append(("cross-cpu round (incl. uiret)", bench_cross_round(n_cross, r), None))

    path = "the Python model" if args.model else "the native fast path"
    print(f"UINTR trap costs on {path}, {n} iterations (cross-cpu: {n_cross}), best of {r}")
    print(f"{'operation':<38}{'µs/op':>8}{'raw µs/it':>11}{'base µs/it':>12}{'target':>8}  ok")
    missed = False
    for name, (op, raw, base), target in rows:
        ok = "" if target is None else ("yes" if op <= target else "NO")
        missed |= ok == "NO"
        tgt = "" if target is None else f"<= {target:g}"
        raw_s = "" if raw != raw else f"{raw:.2f}"
        base_s = "" if base != base else f"{base:.2f}"
        print(f"{name:<38}{op:>8.2f}{raw_s:>11}{base_s:>12}{tgt:>8}  {ok}")
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
