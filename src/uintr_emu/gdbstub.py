"""A GDB remote-serial-protocol stub: debug the guest program with gdb (docs/gdb.md).

    stub = GdbStub(machine.kernel, 1234)   # listens on 127.0.0.1:1234 (never elsewhere)
    stub.attach()                          # waits for gdb; serves it until it resumes
    status = machine.run().status          # the kernel calls the stub (Kernel.debugger)
    stub.close(status)                     # W<status> if the run ended otherwise (limits)

All-stop mode: the emulator runs one guest instruction stream at a time on one host thread,
so while the stub talks to gdb every guest thread is stopped. Guest threads are gdb threads
(thread ids are guest tids); registers and memory are read from the selected thread's saved
context and its process's address space.

How the kernel calls in (Kernel.debugger is the stub while gdb is attached):
  run(t, limit, start)  instead of Engine.run in a turn: runs the thread with breakpoints (one
                        UC_HOOK_CODE hook per address, Engine.add_breakpoint) and single steps
                        (Unicorn's instruction count of 1). After a breakpoint or a step it serves
                        gdb, then resumes the same slice in place, with the same limit and
                        instruction count, so stopping in the debugger changes neither the
                        schedule nor the virtual clock: a run under gdb that is continued stops
                        at the same points every time.
  signal(t, info)       before a signal is delivered or ends the program: a T<sig> stop; the
                        signal is delivered if gdb continues with it (C/vCont;C), else discarded.
  exited(p)             the initial process ended: W<code> or X<sig>.

The protocol follows the "Remote Protocol" appendix of the GDB manual.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

from .engine import unicorn as eng
from .linux import signals as S
from .linux.control import GuestExit
from .linux.mm import GuestFault
from .linux.process import ThreadState
from .machine import KERNEL_BASE

if TYPE_CHECKING:
    from .engine.unicorn import Engine
    from .linux.kernel import Kernel
    from .linux.process import Process, Thread

HOST = "127.0.0.1"  # the stub never listens on another interface: gdb can write guest memory
PACKET_SIZE = 0x4000
INTERRUPT_POLL_S = 0.05  # how often a running guest looks for gdb's ^C (at scheduling turns)
HANGUP_WAIT_S = 2.0  # after W/X or a detach, how long gdb may take to close the connection
KILL_STATUS = 128 + S.SIGKILL

# Linux signal number -> GDB's signal number (gdb/signals.def, the remote protocol's numbering).
_LINUX_TO_GDB = {
    1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 10, 8: 8, 9: 9, 10: 30, 11: 11, 12: 31, 13: 13,
    14: 14, 15: 15, 17: 20, 18: 19, 19: 17, 20: 18, 21: 21, 22: 22, 23: 16, 24: 24, 25: 25,
    26: 26, 27: 27, 28: 28, 29: 23, 30: 32, 31: 12, 32: 77, 64: 78,
}  # fmt: skip
_LINUX_TO_GDB.update({n: n + 12 for n in range(33, 64)})  # SIG33..SIG63 are 45..75
_GDB_TO_LINUX = {g: n for n, g in _LINUX_TO_GDB.items()}
GDB_SIGNAL_UNKNOWN = 143


def gdb_signal(signo: int) -> int:
    return _LINUX_TO_GDB.get(signo, GDB_SIGNAL_UNKNOWN)


def linux_signal(gdbsig: int) -> int:
    return _GDB_TO_LINUX.get(gdbsig, 0)


# --- registers ------------------------------------------------------------------------------
# (name, bits, Unicorn id or None, gdb type, group). The order is the 'g' packet's and the
# register numbers of p/P; target.xml below describes exactly this list.
_GPR_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp") + tuple(
    f"r{i}" for i in range(8, 16)
)
_CORE: list[tuple[str, int, int | None, str, str]] = [
    (n, 64, eng.register_id(n),
     "data_ptr" if n in ("rbp", "rsp") else "int64", "general")
    for n in _GPR_NAMES
]  # fmt: skip
_CORE += [
    ("rip", 64, eng.register_id("rip"), "code_ptr", "general"),
    ("eflags", 32, eng.register_id("rflags"), "i386_eflags", "general"),
]
_CORE += [(s, 32, None, "int32", "general") for s in ("cs", "ss", "ds", "es", "fs", "gs")]
_CORE += [(f"st{i}", 80, eng.register_id(f"st{i}"), "i387_ext", "float") for i in range(8)]
_CORE += [
    (name, 32, reg, "int", "float")
    for name, reg in (
        ("fctrl", eng.register_id("fpcw")), ("fstat", eng.register_id("fpsw")),
        ("ftag", eng.register_id("fptag")), ("fiseg", eng.register_id("fcs")),
        ("fioff", eng.register_id("fip")), ("foseg", eng.register_id("fds")),
        ("fooff", eng.register_id("fdp")), ("fop", eng.register_id("fop")),
    )
]  # fmt: skip
_SSE = [(f"xmm{i}", 128, eng.register_id(f"xmm{i}"), "vec128", "vector") for i in range(16)]
_SSE.append(("mxcsr", 32, eng.register_id("mxcsr"), "i386_mxcsr", "vector"))
_LINUX = [("orig_rax", 64, None, "int", "system")]
_SEGMENTS = [
    ("fs_base", 64, eng.register_id("fs_base"), "int", "general"),
    ("gs_base", 64, eng.register_id("gs_base"), "int", "general"),
]
# The thread's UINTR state (docs/uintr.md §2), named as the SDM names its elements. Read from the
# CPU the thread is loaded on or from its saved XSAVE image (UintrKernel.state_of). Read-only:
# the processor recognizes a pending user interrupt only at the boundaries the run loop
# handles, so a value gdb wrote between two instructions would not act as the architecture
# says; Linux's ptrace does not expose this supervisor state at all. No register group: gdb's
# x86 code decides groups itself, and shows these in `info registers` (general).
_UINTR = [
    ("uirr", 64, None, "uint64", ""),
    ("uif", 8, None, "uint8", ""),
    ("uihandler", 64, None, "code_ptr", ""),
    ("uistackadjust", 64, None, "uint64", ""),
    ("uinv", 8, None, "uint8", ""),
    ("upidaddr", 64, None, "data_ptr", ""),
    ("uittaddr", 64, None, "data_ptr", ""),
    ("uittsz", 32, None, "uint32", ""),
]
UINTR_FEATURE = "org.uintr-emu.uintr"  # gdb shows a feature it does not know as it is
REGISTERS = _CORE + _SSE + _LINUX + _SEGMENTS + _UINTR
_READ_ONLY = {REGISTERS.index(r) for r in _UINTR}
REG_INDEX = {r[0]: i for i, r in enumerate(REGISTERS)}
# What a Linux x86-64 user thread has in its selector registers (the signal frame's values too).
_SELECTORS = {"cs": 0x33, "ss": 0x2B, "ds": 0, "es": 0, "fs": 0, "gs": 0}

_EFLAGS_BITS = (
    ("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9),
    ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17), ("AC", 18), ("VIF", 19),
    ("VIP", 20), ("ID", 21),
)  # fmt: skip
_MXCSR_BITS = (
    ("IE", 0), ("DE", 1), ("ZE", 2), ("OE", 3), ("UE", 4), ("PE", 5), ("DAZ", 6), ("IM", 7),
    ("DM", 8), ("ZM", 9), ("OM", 10), ("UM", 11), ("PM", 12), ("FZ", 15),
)  # fmt: skip
_VEC128_FIELDS = (
    ("v4_float", "ieee_single", 4), ("v2_double", "ieee_double", 2), ("v16_int8", "int8", 16),
    ("v8_int16", "int16", 8), ("v4_int32", "int32", 4), ("v2_int64", "int64", 2),
)  # fmt: skip


def _target_xml(uintr: bool) -> str:
    """The target description: GDB's i386 core, SSE, Linux and segment features, and with
    `uintr` (the CPU has the feature) the UINTR state, written out for the REGISTERS list
    (register numbers follow the list order)."""

    def flags(ident: str, bits: tuple[tuple[str, int], ...]) -> str:
        fields = "".join(f'<field name="{n}" start="{b}" end="{b}"/>' for n, b in bits)
        return f'<flags id="{ident}" size="4">{fields}</flags>'

    def regs(lst: list[tuple[str, int, int | None, str, str]]) -> str:
        out = []
        for name, bits, _reg, typ, group in lst:
            grp = f' group="{group}"' if group else ""
            out.append(
                f'<reg name="{name}" bitsize="{bits}" type="{typ}"{grp} '
                f'regnum="{REG_INDEX[name]}"/>'
            )
        return "".join(out)

    vectors = "".join(
        f'<vector id="v{count}_{typ}" type="{typ}" count="{count}"/>'
        for _n, typ, count in _VEC128_FIELDS
    )
    union = "".join(f'<field name="{n}" type="v{c}_{t}"/>' for n, t, c in _VEC128_FIELDS)
    union = f'<union id="vec128">{union}<field name="uint128" type="uint128"/></union>'
    return (
        '<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">'
        '<target version="1.0"><architecture>i386:x86-64</architecture>'
        "<osabi>GNU/Linux</osabi>"
        f'<feature name="org.gnu.gdb.i386.core">{flags("i386_eflags", _EFLAGS_BITS)}'
        f"{regs(_CORE)}</feature>"
        f'<feature name="org.gnu.gdb.i386.sse">{vectors}{union}'
        f'{flags("i386_mxcsr", _MXCSR_BITS)}{regs(_SSE)}</feature>'
        f'<feature name="org.gnu.gdb.i386.linux">{regs(_LINUX)}</feature>'
        f'<feature name="org.gnu.gdb.i386.segments">{regs(_SEGMENTS)}</feature>'
        + (f'<feature name="{UINTR_FEATURE}">{regs(_UINTR)}</feature>' if uintr else "")
        + "</target>"
    )


TARGET_XML = _target_xml(uintr=True).encode()
TARGET_XML_NO_UINTR = _target_xml(uintr=False).encode()


# --- packets ---------------------------------------------------------------------------------


def checksum(body: bytes) -> int:
    return sum(body) & 0xFF


def frame(body: bytes) -> bytes:
    """`$body#cs` with '#', '$', '}' and '*' escaped ('}' then the byte XOR 0x20)."""
    esc = bytearray()
    for b in body:
        if b in b"#$}*":
            esc += bytes((0x7D, b ^ 0x20))
        else:
            esc.append(b)
    return b"$" + bytes(esc) + b"#" + b"%02x" % checksum(bytes(esc))


def _unescape(data: bytes) -> bytes:
    if b"}" not in data:
        return data
    out = bytearray()
    it = iter(data)
    for b in it:
        out.append(next(it, 0) ^ 0x20 if b == 0x7D else b)
    return bytes(out)


class _Disconnected(Exception):
    pass


class GdbStub:
    """Serves one gdb connection on 127.0.0.1:`port` (0: any free port; see `.port`)."""

    def __init__(self, kernel: Kernel, port: int):
        self.k = kernel
        self.listener: socket.socket | None = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind((HOST, port))
            self.listener.listen(1)
        except OverflowError:  # a port beyond 65535
            self.listener.close()
            raise ValueError(f"cannot listen for gdb on {HOST}:{port}: not a port") from None
        except OSError as e:
            self.listener.close()
            raise ValueError(f"cannot listen for gdb on {HOST}:{port}: {e.strerror}") from None
        self.port: int = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None
        self.closed = False  # detached, exited, or the connection is gone
        self._buf = bytearray()
        self._ack = True
        self._swbreak = False  # gdb understands the swbreak stop reason
        self.breakpoints: set[int] = set()
        self._pass: set[int] = set()  # gdb signals to deliver without stopping (QPassSignals)
        # Resume state: per-thread actions ('c' or 's', gdb signal), the rest's default.
        self._actions: dict[int, tuple[str, int]] = {}
        self._default: tuple[str, int] = ("c", 0)
        self._skip: dict[int, int] = {}  # tid -> the breakpoint address it resumes from
        self._deferred: set[int] = set()  # a step ended off the CPU: report it when it runs
        self._event = 0  # the thread of the last stop
        self._gthread = 0  # Hg: the thread of g/G/p/P/m/M (0: the event thread)
        self._cthread = 0  # Hc: the thread of a legacy s/S
        self._last = ""  # the last stop reply (for '?')
        self._gen = 0  # counts stops, to notice one served while the engine ran
        self._running: Engine | None = None  # inside Engine.run (a stop comes from a hook)
        self._reported: Any = None  # the SigInfo of the last signal stop
        self._end_turn = False  # a signal was injected: let the kernel deliver it now
        self._kill = False  # gdb killed the program before it started
        self._next_poll = 0.0
        # Registers as the target description lists them: the UINTR state only if the CPU
        # has the feature (CPUID.(7,0):EDX[5]; docs/uintr.md §1).
        self._uintr = kernel.opt.features.uintr
        self._nregs = len(REGISTERS) - (0 if self._uintr else len(_UINTR))

    # --- connection ---------------------------------------------------------------------

    def attach(self, timeout: float | None = None) -> None:
        """Wait for gdb (the guest has not run an instruction yet) and serve it until it
        resumes the program. Call after Machine.load and before Machine.run."""
        assert self.listener is not None, "attach() is called once"
        init = self.k.init_process
        if init is None or not init.threads:
            raise RuntimeError("load a program before attaching gdb")
        os.write(2, f"uintr-emu: waiting for gdb on {HOST}:{self.port}\n".encode())
        self.listener.settimeout(timeout)
        try:
            self.conn, _addr = self.listener.accept()
        finally:
            self.listener.close()
            self.listener = None
        self.conn.settimeout(None)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.k.debugger = self
        t = init.threads[0]
        self._event = t.tid
        self._last = self._stop_reply(t, 5)
        try:
            self._serve()
        except _Disconnected:
            self._disconnect()
        except GuestExit:
            pass  # 'k' before the first instruction: the first turn ends the run

    def close(self, status: int | None = None) -> None:
        """The run is over: report the exit status if gdb has not seen the end (a limit or a
        deadlock stopped the run), then close the connection."""
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if not self.closed and self.conn is not None and status is not None:
            try:
                self._send(f"W{status & 0xFF:02x}")
            except _Disconnected:
                pass
        self._hang_up()

    def _hang_up(self) -> None:
        """Let gdb close first (it does after W/X or D), so no reply is lost to a reset."""
        self.closed = True
        if self.k.debugger is self and not self._kill:
            self.k.debugger = None
        self.breakpoints.clear()
        if self._running is None:
            self._sync_all()
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + HANGUP_WAIT_S
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([conn], [], [], left)
                if not ready or not conn.recv(4096):
                    break
        except OSError:
            pass
        conn.close()

    def _disconnect(self) -> None:
        if not self.closed:
            os.write(2, b"uintr-emu: gdb closed the connection; the program continues\n")
        self._hang_up()

    def _recv_more(self) -> None:
        assert self.conn is not None
        try:
            data = self.conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            raise _Disconnected
        self._buf += data

    def _send(self, body: str | bytes) -> None:
        if self.conn is None:
            raise _Disconnected
        raw = frame(body.encode("latin-1") if isinstance(body, str) else body)
        for _attempt in range(10):
            try:
                self.conn.sendall(raw)
            except OSError:
                raise _Disconnected from None
            if not self._ack:
                return
            while True:  # wait for the acknowledgment
                while not self._buf:
                    self._recv_more()
                c = self._buf[:1]
                if c not in (b"+", b"-"):
                    return  # not an ack (gdb never omits one; be lenient)
                del self._buf[:1]
                if c == b"+":
                    return
                break  # '-': send again
        raise _Disconnected

    def _recv_packet(self) -> bytes:
        while True:
            start = self._buf.find(b"$")
            if start < 0:
                self._buf.clear()  # stray acks or ^C while stopped
                self._recv_more()
                continue
            end = self._buf.find(b"#", start)
            if end < 0 or len(self._buf) < end + 3:
                self._recv_more()
                continue
            body = bytes(self._buf[start + 1 : end])
            sent = bytes(self._buf[end + 1 : end + 3])
            del self._buf[: end + 3]
            ok = sent.lower() == b"%02x" % checksum(body)
            if self._ack:
                assert self.conn is not None
                try:
                    self.conn.sendall(b"+" if ok else b"-")
                except OSError:
                    raise _Disconnected from None
            if ok:
                return _unescape(body)

    # --- the kernel's calls ---------------------------------------------------------------

    def run(self, t: Thread, limit: int | None, start: int) -> int:
        """Run `t`'s turn (Engine.run's contract), stopping for breakpoints and steps."""
        e = t.process.engine
        if self._kill:
            raise GuestExit(KILL_STATUS, "killed by gdb")
        self._end_turn = False
        n = start
        if not self.closed:
            now = time.monotonic()
            if now >= self._next_poll:
                self._next_poll = now + INTERRUPT_POLL_S
                if self._interrupted():
                    self._stop(t, 2)
            if t.tid in self._deferred:  # its step ended while it was off the CPU
                self._deferred.discard(t.tid)
                self._stop(t, 5)
            if self._end_turn:
                return n  # gdb injected a signal: the kernel delivers it first
        while True:
            self._sync(e)
            if self.closed:  # detached: the rest of the turn runs without the debugger
                return e.run(e.reg_read(eng.RIP), limit, n)
            if limit is not None and n >= limit:
                return n  # the slice is over before its first instruction (a step waits)
            rip = e.reg_read(eng.RIP)
            stepping = self._action(t)[0] == "s"
            skip = self._skip.pop(t.tid, None)
            e.breakpoint_skip = rip if stepping or skip == rip else None
            e.breakpoint_hit = None
            gen = self._gen
            self._running = e
            try:
                n = e.run(rip, limit, n, steps=1 if stepping else 0)
            finally:
                self._running = None
                e.breakpoint_skip = None
            if self.closed:  # detached from a hook
                self._sync_all()
            elif self._gen != gen:
                pass  # gdb was served from a hook (a signal stop) and chose how to go on
            elif e.breakpoint_hit is not None:
                self._stop(t, 5, swbreak=True)
            elif stepping:
                if not self._resumable(t, e):
                    self._deferred.add(t.tid)  # blocked, exec'd...: report when it runs next
                    return n
                self._stop(t, 5)
            else:
                return n  # the slice ended for the kernel's reasons
            if not self._resumable(t, e):
                return n

    def signal(self, t: Thread, info: S.SigInfo) -> bool:
        """A signal is about to be delivered to `t` (or to end the program). Stop for gdb
        unless nothing would happen; True if it is still delivered."""
        if self.closed or info is self._reported or info.signo == S.SIGKILL:
            return True
        act = t.process.sigactions.get(info.signo, S.SigAction())
        if act.handler == S.SIG_DFL and not S.default_is_fatal(info.signo):
            return True
        gsig = gdb_signal(info.signo)
        self._deferred.discard(t.tid)
        if gsig in self._pass:
            return True
        self._reported = info
        self._stop(t, gsig, signal_stop=True)
        if self.closed:
            return True
        sig = self._action(t)[1]
        if sig == gsig:
            return True
        if sig:  # gdb continues with another signal
            self._inject(t, sig)
        return False

    def exited(self, p: Process) -> None:
        """The initial process ended (its threads are gone): W<code> or X<signal>."""
        if self.closed:
            return
        ws = p.wait_status
        self._last = f"X{gdb_signal(ws & 0x7F):02x}" if ws & 0x7F else f"W{ws >> 8 & 0xFF:02x}"
        try:
            self._send(self._last)
        except _Disconnected:
            pass
        self._hang_up()

    # --- stopping and resuming ----------------------------------------------------------

    def _stop_reply(self, t: Thread, gsig: int, swbreak: bool = False) -> str:
        reason = "swbreak:;" if swbreak and self._swbreak else ""
        return f"T{gsig:02x}thread:{t.tid:x};core:{t.cpu:x};{reason}"

    def _stop(self, t: Thread, gsig: int, *, swbreak: bool = False,
              signal_stop: bool = False) -> None:  # fmt: skip
        """Report a stop of `t` and serve gdb until it resumes (or detaches)."""
        self._gen += 1
        self._event = t.tid
        self._gthread = 0
        self._last = self._stop_reply(t, gsig, swbreak)
        try:
            self._send(self._last)
            self._serve()
        except _Disconnected:
            self._disconnect()
            return
        if self.closed:
            return
        if not signal_stop and self._action(t)[1]:
            self._inject(t, self._action(t)[1])  # e.g. `signal SIGUSR1` at a breakpoint
        if self._running is not None:
            # Served from inside a hook: end this engine run right after the hook, so the
            # new actions and breakpoints apply before the next instruction.
            self._running.pause()

    def _inject(self, t: Thread, gsig: int) -> None:
        signo = linux_signal(gsig)
        if signo and t.state is not ThreadState.DEAD:
            self.k.send_signal(t, S.SigInfo(signo, S.SI_USER))
            self._end_turn = True

    def _action(self, t: Thread) -> tuple[str, int]:
        return self._actions.get(t.tid, self._default)

    def _resumable(self, t: Thread, e: Engine) -> bool:
        """May the turn go on in place (nothing but the debugger stopped the engine)?"""
        return (
            not e.stop_requested
            and not self._end_turn
            and t.runnable
            and t.fault is None
            and t.process.engine is e
            and self.k.sched.loaded_on(t) is not None
            and self.k.ending is None
        )

    def _interrupted(self) -> bool:
        """gdb sent ^C (checked at scheduling turns, at most every INTERRUPT_POLL_S)."""
        if self.conn is None:
            return False
        try:
            ready, _, _ = select.select([self.conn], [], [], 0)
            if not ready:
                return False
            self._recv_more()
        except (_Disconnected, OSError):
            self._disconnect()
            return False
        if b"\x03" in self._buf:
            del self._buf[: self._buf.index(b"\x03") + 1]
            return True
        return False

    def _sync(self, e: Engine) -> None:
        """Give the engine about to run the current breakpoint set (outside Engine.run)."""
        have = e.breakpoints
        if have != self.breakpoints:
            for a in have - self.breakpoints:
                e.remove_breakpoint(a)
            for a in self.breakpoints - have:
                e.add_breakpoint(a)

    def _sync_all(self) -> None:
        for p in list(self.k.processes.values()):
            self._sync(p.engine)

    def _resume(self, actions: list[tuple[str, int, int | None]]) -> None:
        """New actions (kind, gdb signal, tid or None for every other thread)."""
        self._actions = {}
        self._default = ("c", 0)
        self._deferred.clear()  # a step gdb saw no end of is stepped again if it asks
        default_set = False
        for kind, sig, tid in actions:
            if tid is None:
                if not default_set:
                    self._default, default_set = (kind, sig), True
            elif tid not in self._actions:
                self._actions[tid] = (kind, sig)
        t = self.k.threads.get(self._event)
        if t is not None:  # it resumes from where it stopped: a breakpoint there is passed
            self._skip = {t.tid: self._reg(t, REG_INDEX["rip"])}

    # --- serving gdb ------------------------------------------------------------------

    def _serve(self) -> None:
        while not self.closed:
            pkt = self._recv_packet().decode("latin-1")
            reply = self._handle(pkt)
            if reply is _RESUME:
                return
            self._send(reply)
            if reply == "OK" and pkt == "QStartNoAckMode":
                self._ack = False
            if self.closed:
                return

    def _handle(self, pkt: str) -> Any:  # noqa: C901 - one branch per packet
        cmd = pkt[:1]
        try:
            if cmd == "?":
                return self._last
            if cmd == "g":
                t = self._thread()
                return "".join(self._reg_hex(t, i) for i in range(self._nregs))
            if cmd == "G":
                return self._write_all(self._thread(), bytes.fromhex(pkt[1:]))
            if cmd == "p":
                i = int(pkt[1:], 16)
                return self._reg_hex(self._thread(), i) if i < self._nregs else "E00"
            if cmd == "P":
                num, val = pkt[1:].split("=")
                i = int(num, 16)
                if i >= self._nregs or i in _READ_ONLY:
                    return "E00"  # the UINTR state is read-only (_UINTR)
                self._write_reg(self._thread(), i, bytes.fromhex(val))
                return "OK"
            if cmd == "m":
                addr, length = (int(x, 16) for x in pkt[1:].split(","))
                data = self._read_mem(addr, min(length, (PACKET_SIZE - 16) // 2))
                return data.hex() if data or not length else "E14"
            if cmd == "M":
                where, data = pkt[1:].split(":")
                addr, _length = (int(x, 16) for x in where.split(","))
                return self._write_mem(addr, bytes.fromhex(data))
            if cmd in "Zz" and pkt[1:3] == "0,":
                addr = int(pkt[3:].split(",")[0], 16)
                if cmd == "Z":
                    self.breakpoints.add(addr)
                else:
                    self.breakpoints.discard(addr)
                return "OK"
            if cmd == "H":
                tid = int(pkt[2:], 16) if pkt[2:] not in ("-1", "") else 0
                if tid and tid not in self.k.threads:
                    return "E22"
                if pkt[1] == "g":
                    self._gthread = tid
                elif pkt[1] == "c":
                    self._cthread = tid
                return "OK"
            if cmd == "T":
                return "OK" if int(pkt[1:], 16) in self.k.threads else "E01"
            if cmd in "cCsS":
                return self._legacy_resume(pkt)
            if cmd == "D":
                self._send("OK")
                self._hang_up()
                return _RESUME
            if cmd == "k":
                return self._kill_run()
            if pkt.startswith("v"):
                return self._handle_v(pkt)
            if cmd in "qQ":
                return self._handle_query(pkt)
        except (ValueError, IndexError):
            return "E01"
        return ""

    def _kill_run(self) -> Any:
        """End the run (status 137, as if by SIGKILL); before the first instruction the
        kernel's first turn raises it (Kernel.debugger stays set for that)."""
        self._kill = True
        self._hang_up()
        raise GuestExit(KILL_STATUS, "killed by gdb")

    def _legacy_resume(self, pkt: str) -> Any:
        kind = pkt[0].lower()
        arg = pkt[1:].split(";")
        sig = int(arg[0], 16) if pkt[0] in "CS" else 0
        addr = arg[-1] if pkt[0] in "cs" else (arg[1] if len(arg) > 1 else "")
        t = self.k.threads.get(self._event)
        if addr and t is not None:
            self._write_reg(t, REG_INDEX["rip"], int(addr, 16).to_bytes(8, "little"))
        target = self._cthread or self._event
        if kind == "s":
            self._resume([("s", sig, target), ("c", 0, None)])
        else:
            self._resume([("c", sig, target), ("c", 0, None)])
        return _RESUME

    def _handle_v(self, pkt: str) -> Any:
        if pkt == "vCont?":
            return "vCont;c;C;s;S"
        if pkt.startswith("vCont;"):
            actions: list[tuple[str, int, int | None]] = []
            for item in pkt[6:].split(";"):
                what, _, tid_s = item.partition(":")
                kind = what[0]
                if kind not in "cCsS":
                    return "E01"
                sig = int(what[1:3], 16) if kind in "CS" else 0
                tid_s = tid_s.split(".")[-1]  # p<pid>.<tid> (multiprocess syntax)
                tid = None if tid_s in ("", "-1", "0") else int(tid_s, 16)
                actions.append((kind.lower(), sig, tid))
            self._resume(actions)
            return _RESUME
        if pkt.startswith("vKill"):
            self._send("OK")
            return self._kill_run()
        return ""  # vMustReplyEmpty, vFile, vAttach, vRun...: not supported

    def _handle_query(self, pkt: str) -> str:
        if pkt.startswith("qSupported"):
            features = pkt.partition(":")[2].split(";")
            self._swbreak = "swbreak+" in features
            reply = (
                f"PacketSize={PACKET_SIZE:x};qXfer:features:read+;qXfer:auxv:read+;"
                "QStartNoAckMode+;"
                "QPassSignals+;vContSupported+"
            )
            return reply + (";swbreak+" if self._swbreak else "")
        if pkt == "QStartNoAckMode":
            return "OK"
        if pkt.startswith("QPassSignals:"):
            sigs = pkt.partition(":")[2]
            self._pass = {int(s, 16) for s in sigs.split(";") if s}
            return "OK"
        if pkt.startswith("qXfer:"):
            return self._xfer(pkt)
        if pkt == "qC":
            return f"QC{self._event:x}"
        if pkt.startswith("qAttached"):
            return "0"  # the emulator created the process: quitting gdb kills it
        if pkt == "qfThreadInfo":
            return "m" + ",".join(f"{tid:x}" for tid in sorted(self.k.threads))
        if pkt == "qsThreadInfo":
            return "l"
        if pkt.startswith("qThreadExtraInfo,"):
            t = self.k.threads.get(int(pkt.split(",")[1], 16))
            if t is None:
                return "E01"
            info = f"pid {t.process.pid}, cpu {t.cpu}, {t.state.value}"
            return info.encode().hex()
        if pkt.startswith("qSymbol"):
            return "OK"
        if pkt.startswith("qRcmd,"):
            return self._monitor(bytes.fromhex(pkt[6:]).decode("utf-8", "replace"))
        return ""

    def _xfer(self, pkt: str) -> str:
        """qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH: the target description, or the auxiliary
        vector of the selected thread's process. gdb relocates a PIE program (and finds a
        dynamic one's libraries) by its AT_ENTRY and AT_PHDR, as it does with /proc/PID/auxv
        natively; without it, breakpoints stay at the file's unrelocated addresses."""
        _q, obj, op, annex, span = pkt.split(":", 4)
        if op != "read":
            return ""
        if obj == "features" and annex == "target.xml":
            data = TARGET_XML if self._uintr else TARGET_XML_NO_UINTR
        elif obj == "auxv" and annex == "":
            data = self._thread().process.mem.auxv
        else:
            return "E00"
        off, length = (int(x, 16) for x in span.split(","))
        chunk = data[off : off + length]
        return ("m" if off + length < len(data) else "l") + chunk.decode("latin-1")

    def _monitor(self, line: str) -> str:
        """`monitor ...`: the output goes to gdb's console in O packets, then OK."""
        words = line.split()
        if not words or words[0] == "help":
            text = MONITOR_HELP
        elif words[0] == "uintr" and len(words) <= 2:
            threads = sorted(self.k.threads.values(), key=lambda t: t.tid)
            if len(words) == 2:
                try:
                    tid = int(words[1], 0)
                except ValueError:
                    tid = -1
                threads = [t for t in threads if t.tid == tid]
                if not threads:
                    return self._console(f"no thread {words[1]}\n")
            text = "".join(self._uintr_report(t) for t in threads)
        else:
            text = f"unknown monitor command: {line.strip()} (monitor help)\n"
        return self._console(text)

    def _console(self, text: str) -> str:
        for i in range(0, len(text), PACKET_SIZE // 4):
            self._send("O" + text[i : i + PACKET_SIZE // 4].encode().hex())
        return "OK"

    def _uintr_report(self, t: Thread) -> str:
        """`monitor uintr`: a thread's UINTR state, its UPID and its UITT's valid entries."""
        where = self.k.sched.loaded_on(t)
        place = f"loaded on cpu{where.index}" if where is not None else "saved"
        out = [f"thread {t.tid} (pid {t.process.pid}, {place})\n"]
        if not self._uintr:
            return out[0] + "  the CPU has no UINTR (--cpu-features -uintr)\n"
        st = self.k.uintr.state_of(t)
        out.append(f"  UIF {int(st.uif)}  UIRR {st.uirr:#x} (pending: {_vectors(st.uirr)})  "
                   f"UINV {st.uinv:#x}\n")  # fmt: skip
        out.append(f"  UIHANDLER {st.handler:#x}  UISTACKADJUST {st.stack_adjust:#x}\n")
        kmem = self.k.machine.kmem
        if not st.upid_addr:
            out.append("  UPID none\n")
        elif not kmem.contains(st.upid_addr, UPID_BYTES):
            out.append(f"  UPID {st.upid_addr:#x} (not in kernel memory)\n")
        else:
            # The bytes as they are, without the clock sync of a kernel read (upid_read):
            # looking must not change the run.
            low, pir = _QQ.unpack_from(kmem.data, st.upid_addr - KERNEL_BASE)
            out.append(
                f"  UPID {st.upid_addr:#x}: ON {low & 1} SN {low >> 1 & 1} "
                f"NV {low >> 16 & 0xFF:#x} NDST {low >> 32:#x} PIR {pir:#x} "
                f"(posted: {_vectors(pir)})\n"
            )
        if not st.uitt_addr and not st.senduipi_enabled:
            out.append("  UITT none\n")
            return "".join(out)
        size = st.uitt_size + 1  # UITTSZ is the largest valid index (docs/uintr.md §2)
        enabled = "enabled" if st.senduipi_enabled else "disabled"
        out.append(f"  UITT {st.uitt_addr:#x}, UITTSZ {st.uitt_size}, SENDUIPI {enabled}\n")
        if not kmem.contains(st.uitt_addr, 16 * size):
            out.append("    (not in kernel memory)\n")
            return "".join(out)
        for i in range(size):
            low, upid = _QQ.unpack_from(kmem.data, st.uitt_addr - KERNEL_BASE + 16 * i)
            if low & 1:  # V (docs/uintr.md §5.1)
                out.append(f"    [{i}] vector {low >> 8 & 0xFF}, UPID {upid:#x}\n")
        return "".join(out)

    # --- registers and memory -------------------------------------------------------------

    def _thread(self) -> Thread:
        t = self.k.threads.get(self._gthread or self._event)
        if t is None:  # the selected thread ended: any live one
            if not self.k.threads:
                raise ValueError("no thread")
            t = self.k.threads[min(self.k.threads)]
        return t

    def _raw_reg(self, t: Thread, reg: int) -> bytes:
        p = t.process
        return p.engine.read_register_bytes(reg, None if p.loaded is t else t.ctx)

    def _reg_bytes(self, t: Thread, i: int) -> bytes:
        name, bits, reg, _typ, _group = REGISTERS[i]
        size = bits // 8
        if i in _READ_ONLY:
            value = self._uintr_state(t)[name]
            return value.to_bytes(size, "little")
        if reg is None:  # selectors, orig_rax (never inside a syscall when stopped)
            value = _SELECTORS.get(name, -1)
            return (value & ((1 << bits) - 1)).to_bytes(size, "little")
        return self._raw_reg(t, reg)[:size]

    def _reg(self, t: Thread, i: int) -> int:
        return int.from_bytes(self._reg_bytes(t, i), "little")

    def _reg_hex(self, t: Thread, i: int) -> str:
        return self._reg_bytes(t, i).hex()

    def _write_reg(self, t: Thread, i: int, data: bytes) -> None:
        _name, bits, reg, _typ, _group = REGISTERS[i]
        if reg is None:
            return  # selectors and orig_rax: fixed
        size = bits // 8
        if reg == eng.register_id("rflags"):  # eflags is 32 bits wide for gdb; keep the rest
            data = data[:4] + self._raw_reg(t, reg)[4:8]
            size = 8
        p = t.process
        p.engine.write_register_bytes(reg, data[:size], None if p.loaded is t else t.ctx)

    def _write_all(self, t: Thread, data: bytes) -> str:
        pos = 0
        for i, (_name, bits, _reg, _typ, _group) in enumerate(REGISTERS[: self._nregs]):
            size = bits // 8
            if pos + size > len(data):
                break
            if i not in _READ_ONLY:  # the UINTR state (_UINTR): gdb sends back what it read
                self._write_reg(t, i, data[pos : pos + size])
            pos += size
        return "OK"

    def _uintr_state(self, t: Thread) -> dict[str, int]:
        """The UINTR registers of `t` by their names in _UINTR."""
        st = self.k.uintr.state_of(t)
        return {
            "uirr": st.uirr, "uif": int(st.uif), "uihandler": st.handler,
            "uistackadjust": st.stack_adjust, "uinv": st.uinv, "upidaddr": st.upid_addr,
            "uittaddr": st.uitt_addr, "uittsz": st.uitt_size,
        }  # fmt: skip

    def _read_mem(self, addr: int, length: int) -> bytes:
        """Up to `length` bytes: the readable prefix (ptrace reads PROT_NONE pages too)."""
        mem = self._thread().process.mem
        out = bytearray()
        while len(out) < length:
            v = mem.find(addr)
            if v is None:
                break
            n = min(length - len(out), v.end - addr)
            o = v.offset + addr - v.start
            out += v.buf[o : o + n]
            addr += n
        return bytes(out)

    def _write_mem(self, addr: int, data: bytes) -> str:
        p = self._thread().process
        try:
            p.mem.poke(addr, data)  # like ptrace: read-only text can be written
        except GuestFault:
            return "E14"
        if data:
            p.engine.invalidate_code(addr, len(data))
        return "OK"


def _vectors(bits: int) -> str:
    return ",".join(str(v) for v in range(64) if bits >> v & 1) or "none"


UPID_BYTES = 16  # ON, SN, NV, NDST and PIR (docs/uintr.md §5.2)
_QQ = struct.Struct("<QQ")  # a UPID's two qwords, a UITT entry's
MONITOR_HELP = """\
monitor uintr [TID]   UINTR state of every thread (or of thread TID): UIF, UIRR and its
                      pending vectors, UINV, UIHANDLER, UISTACKADJUST; the UPID (ON, SN, NV,
                      NDST, PIR) and the valid UITT entries (vector, target UPID)
monitor help          this text
The same state is in registers (read-only), shown by info registers: p $uif, p/x $uirr,
info registers uinv uihandler uistackadjust upidaddr uittaddr uittsz.
"""

_RESUME = object()  # a handler's result: gdb resumed the program (no reply now)

__all__ = ["GdbStub", "gdb_signal", "linux_signal", "TARGET_XML", "REGISTERS"]
