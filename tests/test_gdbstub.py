"""The GDB remote stub (src/uintr_emu/gdbstub.py).

Part 1 speaks the remote protocol over a socket to a stub serving an in-process Machine (the
emulator runs on a background thread): framing, checksums and acks, registers, memory,
breakpoints, continue and step, threads, signals, exit, kill, detach, ^C.
Part 2 runs the real gdb (skipped without it) in batch mode against a UINTR program: a
breakpoint in the user-interrupt handler shows the vector the handler received.

Every socket read and every subprocess has a timeout, so a hang fails the test.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from uintr_emu import Machine, Options
from uintr_emu.gdbstub import REGISTERS, GdbStub, checksum, frame, gdb_signal

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SELF_IPI = EXAMPLES / "bin" / "self_ipi"  # one thread, UINTR, exits 0
UIPI_DEMO = EXAMPLES / "bin" / "uipi_demo"  # two threads
PINGPONG = EXAMPLES / "bin" / "pingpong"  # two threads, runs as long as asked
TIMEOUT = 60.0
RIP, RSP, EFLAGS = (next(i for i, r in enumerate(REGISTERS) if r[0] == n) for n in
                    ("rip", "rsp", "eflags"))  # fmt: skip
GDB_UINTR_CFLAGS = ("-O0", "-g", "-muintr", "-mgeneral-regs-only", "-I", str(EXAMPLES))


def elf_symbols(path: Path) -> tuple[int, dict[str, int]]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        syms = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
        return elf.header["e_entry"], syms


def elf_bytes(path: Path, addr: int, n: int) -> bytes:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= addr < seg["p_vaddr"] + seg[
                    "p_filesz"]:  # fmt: skip
                off = addr - seg["p_vaddr"]
                return seg.data()[off : off + n]
    raise AssertionError(f"{addr:#x} is not in a loaded segment")


def reg(hexregs: str, index: int) -> int:
    """Register `index` from a 'g' reply (little-endian hex, widths from REGISTERS)."""
    pos = sum(r[1] // 8 for r in REGISTERS[:index]) * 2
    return int.from_bytes(bytes.fromhex(hexregs[pos : pos + REGISTERS[index][1] // 4]), "little")


def stop_tid(reply: str) -> int:
    m = re.search(r"thread:([0-9a-f]+);", reply)
    assert m, reply
    return int(m.group(1), 16)


# --------------------------------------------------------------------------- a raw client


class Client:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""
        self.ack = True

    def _read(self, n: int = 1) -> bytes:
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the stub closed the connection")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_ack(self) -> bytes:
        return self._read(1)

    def read_packet(self) -> str:
        while self._read(1) != b"$":
            pass
        body = b""
        while (c := self._read(1)) != b"#":
            body += c
        cs = self._read(2)
        assert int(cs, 16) == checksum(body), f"bad checksum from the stub: {body!r} {cs!r}"
        if self.ack:
            self.sock.sendall(b"+")
        return body.decode("latin-1")

    def packet(self, body: str) -> str:
        """Send a packet (acknowledged), return the stub's reply."""
        self.sock.sendall(frame(body.encode()))
        if self.ack:
            assert self.read_ack() == b"+"
        return self.read_packet()

    def close(self) -> None:
        self.sock.close()


class Session:
    """A Machine and its GdbStub on a background thread; `client` talks to the stub."""

    def __init__(self, prog: Path, args: tuple[str, ...] = (), cpus: int = 2, **opts):
        self.m = Machine(Options(cpus=cpus, **opts))
        self.m.load(str(prog), [str(prog), *args], capture_output=True)
        self.stub = GdbStub(self.m.kernel, 0)
        self.result = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.client = Client(self.stub.port)

    def _run(self) -> None:
        status = None
        try:
            self.stub.attach(timeout=TIMEOUT)
            self.result = self.m.run()
            status = self.result.status
        except BaseException as e:  # noqa: BLE001 - reported by finish()
            self.error = e
        finally:
            self.stub.close(status)

    def finish(self):
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the emulator did not finish"
        if self.error is not None:
            raise self.error
        return self.result

    def registers(self) -> str:
        return self.client.packet("g")


@pytest.fixture
def session():
    made: list[Session] = []

    def make(*args, **kwargs) -> Session:
        s = Session(*args, **kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.client.close()  # the stub then lets the program run to its end
        s.thread.join(TIMEOUT)


# --------------------------------------------------------------------------- part 1: protocol


def test_framing_and_checksums() -> None:
    assert frame(b"OK") == b"$OK#9a"
    assert frame(b"") == b"$#00"
    # '#', '$', '}' and '*' are escaped as '}' + (byte ^ 0x20), the checksum covers the escapes
    assert frame(b"a*b") == b"$a}\x0ab#" + b"%02x" % checksum(b"a}\x0ab")


def test_initial_stop_registers_and_acks(session) -> None:
    entry, _syms = elf_symbols(SELF_IPI)
    s = session(SELF_IPI)
    k = s.m.kernel
    t = k.init_process.threads[0]
    c = s.client
    # A corrupted packet is refused with '-', then the retransmission is accepted.
    c.send_raw(b"$?#00")
    assert c.read_ack() == b"-"
    reply = c.packet("?")
    assert reply.startswith("T05") and stop_tid(reply) == t.tid
    regs = s.registers()
    assert len(regs) == 2 * sum(r[1] // 8 for r in REGISTERS)
    assert reg(regs, RIP) == entry
    assert reg(regs, RSP) == t.process.engine.reg_read(REGISTERS[RSP][2])
    assert reg(regs, RSP) % 16 == 0
    assert reg(regs, EFLAGS) == 0x202
    assert int.from_bytes(bytes.fromhex(c.packet(f"p{RIP:x}")), "little") == entry
    # P writes a register; p and g read it back.
    assert c.packet("P0=efbeadde00000000") == "OK"
    assert c.packet("p0") == "efbeadde00000000"
    assert reg(s.registers(), 0) == 0xDEADBEEF
    assert c.packet("P0=0000000000000000") == "OK"
    assert c.packet(f"p{len(REGISTERS):x}").startswith("E")


def _xfer(c: Client, what: str) -> bytes:
    data, off = b"", 0
    while True:  # in small chunks, as gdb may ask
        part = c.packet(f"qXfer:{what}:{off:x},40")
        assert part[:1] in ("m", "l"), part
        data += part[1:].encode("latin-1")
        off += len(part) - 1
        if part[0] == "l":
            return data


def test_auxv_is_the_initial_stacks(session) -> None:
    """qXfer:auxv:read gives the auxiliary vector the loader wrote on the stack (what
    /proc/PID/auxv gives natively): gdb relocates a PIE program by its AT_ENTRY."""
    entry, _syms = elf_symbols(SELF_IPI)
    s = session(SELF_IPI)
    c = s.client
    assert "qXfer:auxv:read+" in c.packet("qSupported:swbreak+").split(";")
    auxv = _xfer(c, "auxv:read:")
    pairs = [int.from_bytes(auxv[i : i + 8], "little") for i in range(0, len(auxv), 8)]
    aux = dict(zip(pairs[::2], pairs[1::2], strict=True))
    assert pairs[-2:] == [0, 0] and aux[9] == entry and aux[6] == 4096  # AT_ENTRY, AT_PAGESZ
    rsp = reg(s.registers(), RSP)
    argc = int(c.packet(f"m{rsp:x},8")[:2], 16)
    at = rsp + 8 * (argc + 2)  # past argc, argv[] and its NULL: envp[], NULL, then the auxv
    while c.packet(f"m{at:x},8") != "00" * 8:
        at += 8
    assert bytes.fromhex(c.packet(f"m{at + 8:x},{len(auxv):x}")) == auxv


def test_monitor_uintr_and_help(session) -> None:
    s = session(SELF_IPI)
    c = s.client
    t = s.m.kernel.init_process.threads[0]

    def monitor(cmd: str) -> str:
        c.sock.sendall(frame(b"qRcmd," + cmd.encode().hex().encode()))
        assert c.read_ack() == b"+"
        text = ""
        while (reply := c.read_packet()) != "OK":  # O<hex> console output, then OK
            assert reply.startswith("O"), reply
            text += bytes.fromhex(reply[1:]).decode()
        return text

    assert "monitor uintr [TID]" in monitor("help")
    before = monitor("uintr")  # before the first instruction: the reset state (§2)
    assert before.startswith(f"thread {t.tid} (pid {t.process.pid}, ")
    assert "UIF 0  UIRR 0x0 (pending: none)  UINV 0x0" in before
    assert "UPID none" in before and "UITT none" in before
    assert monitor(f"uintr {t.tid}") == before
    assert monitor("uintr 99999") == "no thread 99999\n"
    assert "unknown monitor command" in monitor("bogus")
    uirr = REGISTERS.index(next(r for r in REGISTERS if r[0] == "uirr"))
    assert c.packet(f"p{uirr:x}") == "00" * 8
    assert c.packet(f"P{uirr:x}=0100000000000000") == "E00"  # read-only


def test_no_uintr_registers_without_the_feature(session) -> None:
    from uintr_emu.hw.cpu import CpuFeatures

    s = session(PINGPONG, features=CpuFeatures(uintr=False))
    c = s.client
    xml = _xfer(c, "features:read:target.xml").decode()
    assert "uirr" not in xml and "rip" in xml
    uintr = {"uirr", "uif", "uihandler", "uistackadjust", "uinv", "upidaddr", "uittaddr", "uittsz"}
    assert (
        uintr <= {r[0] for r in REGISTERS}
        and uintr & set(re.findall(r'name="(\w+)"', xml)) == set()
    )
    assert len(s.registers()) == 2 * sum(r[1] // 8 for r in REGISTERS if r[0] not in uintr)


def test_a_port_beyond_65535_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a port"):
        GdbStub(Machine(Options(cpus=1)).kernel, 99999)


def test_memory_read_write(session) -> None:
    entry, _syms = elf_symbols(SELF_IPI)
    s = session(SELF_IPI)
    c = s.client
    assert bytes.fromhex(c.packet(f"m{entry:x},10")) == elf_bytes(SELF_IPI, entry, 16)
    assert c.packet("m0,4") == "E14"  # page 0 is not mapped
    assert c.packet("M8,2:9090") == "E14"
    rsp = reg(s.registers(), RSP)
    below = rsp - 64
    assert c.packet(f"M{below:x},4:01020304") == "OK"
    assert c.packet(f"m{below:x},4") == "01020304"
    # A read that runs off the end of a mapping returns the readable part.
    top = s.m.kernel.init_process.mem.find(rsp).end
    assert len(bytes.fromhex(c.packet(f"m{top - 8:x},20"))) == 8


def test_qsupported_target_xml_and_noack(session) -> None:
    s = session(SELF_IPI)
    c = s.client
    features = c.packet("qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386").split(";")
    assert "PacketSize=4000" in features and "qXfer:features:read+" in features
    assert "QStartNoAckMode+" in features and "swbreak+" in features
    xml, off = "", 0
    while True:  # read target.xml in small chunks
        part = c.packet(f"qXfer:features:read:target.xml:{off:x},100")
        assert part[0] in "ml"
        xml += part[1:]
        off += len(part) - 1
        if part[0] == "l":
            break
    root = ET.fromstring(xml.split("?>", 1)[1].split(">", 1)[1])  # skip <?xml ?> and DOCTYPE
    assert root.findtext("architecture") == "i386:x86-64"
    names = [r.get("name") for r in root.iter("reg")]
    assert names == [r[0] for r in REGISTERS]
    assert names[:18] == ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] + [
        f"r{i}" for i in range(8, 16)] + ["rip", "eflags"]  # fmt: skip
    assert c.packet("vCont?") == "vCont;c;C;s;S"
    assert c.packet("QStartNoAckMode") == "OK"
    c.ack = False
    c.sock.sendall(frame(b"qC"))
    assert c.read_packet() == f"QC{s.m.kernel.init_process.pid:x}"
    assert c.packet("qAttached") == "0"
    assert c.packet("qUnknownThing") == ""


def test_breakpoint_continue_step_and_exit(session) -> None:
    _entry, syms = elf_symbols(SELF_IPI)
    s = session(SELF_IPI)
    c = s.client
    tid = s.m.kernel.init_process.threads[0].tid
    assert c.packet(f"Z0,{syms['main']:x},1") == "OK"
    assert c.packet(f"Z0,{syms['ui_handler']:x},1") == "OK"
    reply = c.packet("c")
    assert reply.startswith("T05") and stop_tid(reply) == tid
    assert reg(s.registers(), RIP) == syms["main"]
    # Single steps: each executes one instruction of main's straight-line prologue.
    rips = [syms["main"]]
    for _ in range(3):
        reply = c.packet(f"vCont;s:{tid:x};c")
        assert reply.startswith("T05") and stop_tid(reply) == tid
        rips.append(reg(s.registers(), RIP))
    steps = [b - a for a, b in zip(rips, rips[1:], strict=False)]
    assert all(0 < d <= 15 for d in steps), [hex(r) for r in rips]
    assert c.packet("s").startswith("T05")  # the legacy step packet
    assert 0 < reg(s.registers(), RIP) - rips[-1] <= 15
    # The handler breakpoint: the self-IPIs of vectors 0, 5 and 63 in turn.
    assert c.packet(f"z0,{syms['main']:x},1") == "OK"
    vectors = []
    for _ in range(3):
        reply = c.packet("c")
        assert reply.startswith("T05") and stop_tid(reply) == tid
        regs = s.registers()
        assert reg(regs, RIP) == syms["ui_handler"]
        # The hardware pushed the vector last: it is at the handler's RSP.
        vectors.append(int.from_bytes(bytes.fromhex(c.packet(f"m{reg(regs, RSP):x},8")), "little"))
    assert vectors == [0, 5, 63]
    assert c.packet(f"z0,{syms['ui_handler']:x},1") == "OK"
    assert c.packet("c") == "W00"
    result = s.finish()
    assert result.status == 0 and result.stdout.endswith(b"Success\n")


def test_threads(session) -> None:
    _entry, syms = elf_symbols(UIPI_DEMO)
    s = session(UIPI_DEMO)
    c = s.client
    main_tid = s.m.kernel.init_process.threads[0].tid
    assert c.packet("qfThreadInfo") == f"m{main_tid:x}"
    assert c.packet("qsThreadInfo") == "l"
    assert c.packet(f"Z0,{syms['sender']:x},1") == "OK"
    reply = c.packet("vCont;c")
    sender = stop_tid(reply)
    assert sender != main_tid
    tids = c.packet("qfThreadInfo")[1:].split(",")
    assert sorted(int(x, 16) for x in tids) == sorted([main_tid, sender])
    assert c.packet(f"T{sender:x}") == "OK" and c.packet("T1") == "E01"
    assert reg(s.registers(), RIP) == syms["sender"]
    assert c.packet(f"Hg{main_tid:x}") == "OK"  # the main thread's registers
    assert reg(s.registers(), RIP) != syms["sender"]
    assert bytes.fromhex(c.packet(f"qThreadExtraInfo,{sender:x}")).startswith(b"pid ")
    assert c.packet(f"z0,{syms['sender']:x},1") == "OK"
    assert c.packet("c") == "W00"
    assert s.finish().stdout.endswith(b"Success\n")


def test_detach_lets_the_program_finish(session) -> None:
    _entry, syms = elf_symbols(SELF_IPI)
    s = session(SELF_IPI)
    c = s.client
    assert c.packet(f"Z0,{syms['main']:x},1") == "OK"
    assert c.packet("c").startswith("T05")
    assert c.packet("D") == "OK"
    result = s.finish()
    assert result.status == 0 and result.stdout.endswith(b"Success\n")
    assert s.m.kernel.debugger is None


def test_kill_ends_the_run(session) -> None:
    s = session(SELF_IPI)
    s.client.send_raw(frame(b"k"))
    assert s.client.read_ack() == b"+"
    result = s.finish()
    assert result.status == 137


def test_interrupt_with_ctrl_c(session) -> None:
    s = session(PINGPONG, ("1000000",), max_insns=200_000_000)
    c = s.client
    c.send_raw(frame(b"c"))
    assert c.read_ack() == b"+"
    time.sleep(0.3)
    c.send_raw(b"\x03")
    reply = c.read_packet()
    assert reply.startswith("T02"), reply
    tid = stop_tid(reply)
    assert tid in s.m.kernel.threads
    c.send_raw(frame(b"k"))
    assert s.finish().status == 137


def test_signal_stops(session, build_program) -> None:
    prog = build_program("segfault", ("-O0", "-g"))
    _entry, syms = elf_symbols(prog)
    s = session(prog)
    c = s.client
    reply = c.packet("c")
    assert reply.startswith(f"T{gdb_signal(11):02x}"), reply  # before the fatal SIGSEGV
    rip = reg(s.registers(), RIP)
    assert syms["do_fault"] <= rip < syms["main"]
    assert c.packet("c") == reply  # continued without the signal: the store faults again
    assert c.packet(f"C{gdb_signal(11):02x}") == "X0b"  # with it: the program dies
    result = s.finish()
    assert result.status == 139


def test_signal_handler_under_the_debugger(session, build_program) -> None:
    """raise(SIGUSR1): the stop comes from inside the syscall (the signal is delivered on its
    way back to user mode); continuing with the signal runs the handler, where a breakpoint
    set during that stop is hit; a step there; QPassSignals lets signals through silently."""
    prog = build_program("signals", ("-O0", "-g"))
    _entry, syms = elf_symbols(prog)
    s = session(prog)
    c = s.client
    tid = s.m.kernel.init_process.threads[0].tid
    usr1 = gdb_signal(10)
    reply = c.packet("c")
    assert reply.startswith(f"T{usr1:02x}") and stop_tid(reply) == tid, reply
    assert c.packet(f"Z0,{syms['on_usr1']:x},1") == "OK"
    assert c.packet(f"vCont;C{usr1:02x}:{tid:x}").startswith("T05")
    assert reg(s.registers(), RIP) == syms["on_usr1"]
    assert c.packet(f"z0,{syms['on_usr1']:x},1") == "OK"
    assert c.packet(f"vCont;s:{tid:x}").startswith("T05")
    assert 0 < reg(s.registers(), RIP) - syms["on_usr1"] <= 15
    # From now on SIGUSR1 and SIGUSR2 pass without a stop; the SIGSEGV of part 7 stops.
    assert c.packet(f"QPassSignals:{usr1:x};{gdb_signal(12):x}") == "OK"
    reply = c.packet("c")
    assert reply.startswith(f"T{gdb_signal(11):02x}"), reply
    assert c.packet(f"C{gdb_signal(11):02x}") == "W00"
    result = s.finish()
    assert result.status == 0 and result.stdout.endswith(b"OK\n"), result


def test_listens_on_loopback_only() -> None:
    m = Machine(Options(cpus=1))
    m.load(str(SELF_IPI), [str(SELF_IPI)], capture_output=True)
    stub = GdbStub(m.kernel, 0)
    try:
        assert stub.listener is not None
        assert stub.listener.getsockname()[0] == "127.0.0.1"
        for addr in _host_addresses():
            with pytest.raises(OSError):
                socket.create_connection((addr, stub.port), timeout=2).close()
        with pytest.raises(ValueError, match="cannot listen for gdb on 127.0.0.1"):
            GdbStub(m.kernel, stub.port)  # the port is taken
    finally:
        stub.close()


def _host_addresses() -> list[str]:
    """This host's non-loopback IPv4 addresses (none on a machine without a network)."""
    found = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.add(info[4][0])
    except OSError:
        pass
    try:  # the address of the default route (a UDP connect sends nothing)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.connect(("192.0.2.1", 9))
            found.add(u.getsockname()[0])
    except OSError:
        pass
    return sorted(a for a in found if not a.startswith("127."))


# --------------------------------------------------------------------------- part 2: real gdb

LAUNCHER = """\
import sys
from uintr_emu import Machine, Options
from uintr_emu.gdbstub import GdbStub

port, prog, *args = sys.argv[1:]  # port "none": run without gdb
m = Machine(Options(cpus=2))
m.load(prog, [prog, *args])
stub = GdbStub(m.kernel, int(port)) if port != "none" else None
if stub is not None:
    stub.attach(timeout=60)
status = None
try:
    status = m.run().status
finally:
    if stub is not None:
        stub.close(status)
k = m.kernel
end = k.clock.round_start
print(f"STATS {k.total_insns} {end} {sorted(k.thread_insns.items())}", file=sys.stderr)
sys.exit(status)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_has_gdb_option(guest_env) -> bool:
    out = subprocess.run([sys.executable, "-m", "uintr_emu", "run", "--help"], env=guest_env(),
                         capture_output=True, text=True, timeout=TIMEOUT, check=False)  # fmt: skip
    return "--gdb" in out.stdout


def wait_for_line(proc: subprocess.Popen, pattern: str, timeout: float) -> str:
    """Read proc's stderr until a line contains `pattern`; return all that was read."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + timeout
    while pattern.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            pytest.fail(f"no {pattern!r} from the emulator within {timeout:.0f} s: {seen!r}")
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            pytest.fail(f"the emulator ended before {pattern!r}: {seen!r}")
        seen += chunk
    return seen.decode(errors="replace")


def run_under_gdb(prog: Path, gdb_args: list[str], guest_env, tmp_path: Path, *,
                  launcher: bool = False, args: tuple[str, ...] = ()):  # fmt: skip
    """Start the emulator waiting for gdb on a free port, run gdb -batch against it; returns
    (gdb's output, the emulator's exit status, its stdout, its stderr)."""
    port = free_port()
    if launcher or not cli_has_gdb_option(guest_env):
        script = tmp_path / "launch_gdb.py"
        script.write_text(LAUNCHER)
        cmd = [sys.executable, str(script), str(port), str(prog), *args]
    else:
        cmd = [sys.executable, "-m", "uintr_emu", "run", "--cpus", "2", "--gdb", str(port),
               str(prog), *args]  # fmt: skip
    emu = subprocess.Popen(cmd, env=guest_env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        err = wait_for_line(emu, f"uintr-emu: waiting for gdb on 127.0.0.1:{port}", TIMEOUT)
        gdb = subprocess.run(
            [GDB or "gdb", "-batch", "-nx", "-ex", f"target remote 127.0.0.1:{port}", *gdb_args,
             str(prog)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        out, err_rest = emu.communicate(timeout=TIMEOUT)
    finally:
        if emu.poll() is None:
            emu.kill()
            emu.communicate()
    return gdb.stdout + gdb.stderr, emu.returncode, out, err + err_rest.decode(errors="replace")


def _find_or_install_gdb() -> str | None:
    """gdb on PATH; where it is missing and this is root with apt-get, installed once."""
    if shutil.which("gdb") is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "gdb"], capture_output=True,
                       timeout=600, check=False, env={**os.environ, "DEBIAN_FRONTEND":
                                                      "noninteractive"})  # fmt: skip
    return shutil.which("gdb")


GDB = _find_or_install_gdb()
needs_gdb = pytest.mark.skipif(
    GDB is None, reason="gdb is not installed and could not be (apt-get install gdb as root)"
)


@needs_gdb
def test_gdb_breaks_in_the_uintr_handler(build_program, guest_env, tmp_path) -> None:
    prog = build_program("gdb_uintr", GDB_UINTR_CFLAGS)
    gdb_out, status, out, err = run_under_gdb(
        prog,
        ["-ex", "break handler", "-ex", "continue", "-ex", "print vector",
         "-ex", "info registers rip", "-ex", "continue"],
        guest_env, tmp_path,
    )  # fmt: skip
    detail = f"--- gdb ---\n{gdb_out}\n--- emulator stderr ---\n{err}"
    assert "Breakpoint 1, handler (" in gdb_out, detail
    assert "$1 = 5" in gdb_out, detail
    assert re.search(r"rip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <handler\+\d+>", gdb_out), detail
    # gdb names the inferior "process N" with multiprocess extensions, else "Remote target".
    assert re.search(r"\[Inferior 1 \((process \d+|Remote target)\) exited normally\]",
                     gdb_out), detail  # fmt: skip
    assert status == 0, detail
    assert out == b"handler saw vector 5\n"


PINGPONG_GDB_SCRIPT = """\
break ui_handler
commands 1
silent
continue
end
continue
"""


def pingpong_under_gdb(guest_env, tmp_path: Path):
    """pingpong 200 with a breakpoint in its user-interrupt handler (400 hits, each
    continued: gdb steps over the breakpoint every time)."""
    script = tmp_path / "pingpong.gdb"
    script.write_text(PINGPONG_GDB_SCRIPT)
    return run_under_gdb(PINGPONG, ["-x", str(script)], guest_env, tmp_path, launcher=True,
                         args=("200",))  # fmt: skip


@needs_gdb
def test_gdb_runs_are_deterministic(guest_env, tmp_path) -> None:
    """400 breakpoint stops and gdb's step over each: two sessions take the same path."""
    runs = []
    for _ in range(2):
        gdb_out, status, out, err = pingpong_under_gdb(guest_env, tmp_path)
        assert status == 0 and "exited normally" in gdb_out, gdb_out + err
        assert gdb_out.count("[Switching to Thread") >= 100, gdb_out
        runs.append((out, re.search(r"STATS .*", err).group(0)))
    assert runs[0] == runs[1]


@needs_gdb
def test_gdb_run_matches_the_run_without_gdb(guest_env, tmp_path) -> None:
    gdb_out, status, out, err = pingpong_under_gdb(guest_env, tmp_path)
    assert status == 0, gdb_out + err
    script = tmp_path / "launch_gdb.py"
    plain = subprocess.run(
        [sys.executable, str(script), "none", str(PINGPONG), "200"],
        env=guest_env(),
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert plain.returncode == 0 and plain.stdout == out
    assert re.search(r"STATS .*", err).group(0) == re.search(
        r"STATS .*", plain.stderr.decode()).group(0)  # fmt: skip


def _uiret_in(prog: Path, function: str) -> int:
    """The address of the UIRET (F3 0F 01 EC) that ends `function`."""
    with open(prog, "rb") as f:
        sym = next(s for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()
                   if s.name == function)  # fmt: skip
    start, size = sym["st_value"], sym["st_size"]
    code = elf_bytes(prog, start, size)
    at = code.rfind(b"\xf3\x0f\x01\xec")
    assert at >= 0, f"no UIRET in {function}"
    return start + at


@needs_gdb
def test_gdb_reads_the_uintr_state_and_steps_over_uiret(build_program, guest_env, tmp_path):
    """The UINTR feature of the target description and `monitor uintr` (docs/gdb.md): a vector
    posted while UIF = 0 waits in UIRR (docs/uintr.md §8); in the handler UIF = 0 and UIRR = 0
    (delivery, §9); UIRET sets UIF = 1 and returns to the interrupted code (§6)."""
    prog = build_program("gdb_uintr_state", GDB_UINTR_CFLAGS)
    _entry, syms = elf_symbols(prog)
    uiret = _uiret_in(prog, "handler")
    gdb_out, status, out, err = run_under_gdb(
        prog,
        ["-ex", "break pending_here", "-ex", "continue",
         "-ex", "info registers uirr", "-ex", "p $uif", "-ex", "p/x $uinv",
         "-ex", "p $uihandler", "-ex", "p/x $uistackadjust", "-ex", "monitor uintr",
         "-ex", "break handler", "-ex", "continue", "-ex", "p/x $uirr", "-ex", "p $uif",
         "-ex", f"break *{uiret:#x}", "-ex", "continue", "-ex", "x/i $pc",
         "-ex", "stepi", "-ex", "p $uif", "-ex", "p/x $pc", "-ex", "p $uirr = 1",
         "-ex", "monitor help", "-ex", "continue"],
        guest_env, tmp_path,
    )  # fmt: skip
    detail = f"--- gdb ---\n{gdb_out}\n--- emulator stderr ---\n{err}"
    assert re.search(r"uirr\s+0x200\s+512", gdb_out), detail  # vector 9 pending
    assert "$1 = 0\n" in gdb_out and "$2 = 0xec\n" in gdb_out, detail  # UIF, UINV
    assert f"$3 = (void (*)()) {syms['handler']:#x} <handler>" in gdb_out, detail
    assert "$4 = 0x80\n" in gdb_out, detail  # STACK_ADJUST: the red zone (docs/uintr.md §10.1)
    assert "UIF 0  UIRR 0x200 (pending: 9)  UINV 0xec" in gdb_out, detail
    assert re.search(r"UPID 0x[0-9a-f]+: ON 0 SN 0 NV 0xec NDST 0x0 PIR 0x0", gdb_out), detail
    assert re.search(r"\[0\] vector 5, UPID 0x[0-9a-f]+\n +\[1\] vector 9, UPID", gdb_out), detail
    assert "Breakpoint 2, handler (f=" in gdb_out and "vector=9" in gdb_out, detail
    assert "$5 = 0x0\n" in gdb_out and "$6 = 0\n" in gdb_out, detail  # in the handler
    assert re.search(rf"=> {uiret:#x} <handler\+\d+>:\s+uiret", gdb_out), detail
    assert "$7 = 1\n" in gdb_out, detail  # UIRET set UIF
    pc = int(re.search(r"\$8 = (0x[0-9a-f]+)", gdb_out).group(1), 16)
    assert syms["main"] < pc < syms["main"] + 0x400, detail  # back in main
    assert 'Could not write register "uirr"' in gdb_out, detail
    assert "monitor uintr [TID]" in gdb_out, detail
    assert status == 0 and out == b"handler saw vector 9\n", detail


def _pie_session(prog: Path, guest_env, tmp_path: Path) -> str:
    gdb_out, status, out, err = run_under_gdb(
        prog,
        ["-ex", "break main", "-ex", "break twice", "-ex", "continue", "-ex", "continue",
         "-ex", "bt", "-ex", "info sharedlibrary", "-ex", "delete", "-ex", "continue"],
        guest_env, tmp_path, args=("a", "b"),
    )  # fmt: skip
    detail = f"--- gdb ---\n{gdb_out}\n--- emulator stderr ---\n{err}"
    assert re.search(r"Breakpoint 1, main \(argc=3", gdb_out), detail
    assert "Breakpoint 2, twice (x=3)" in gdb_out, detail
    assert re.search(r"#1 +0x0*5555[0-9a-f]+ in main", gdb_out), detail  # relocated
    assert status == 0 and out == b"twice 6\n", detail
    return gdb_out


@needs_gdb
def test_gdb_breaks_at_main_of_a_dynamic_pie(build_program, guest_env, tmp_path):
    """gcc's default on Debian: gdb relocates the program by the auxv's AT_ENTRY and AT_PHDR
    (qXfer:auxv:read) and finds the libraries through the dynamic linker's r_debug."""
    gdb_out = _pie_session(build_program("gdb_pie", ("-O0", "-g", "-pie", "-fPIE"),
                                         static=False), guest_env, tmp_path)  # fmt: skip
    assert re.search(r"0x0*7f[0-9a-f]+ +0x0*7f[0-9a-f]+ +Yes .*/libc\.so", gdb_out), gdb_out


@needs_gdb
def test_gdb_breaks_at_main_of_a_static_pie(build_program, guest_env, tmp_path):
    gdb_out = _pie_session(build_program("gdb_pie", ("-O0", "-g", "-static-pie"), static=False),
                           guest_env, tmp_path)  # fmt: skip
    assert "No shared libraries loaded" in gdb_out, gdb_out


@needs_gdb
def test_gdb_uintr_state_is_per_thread(guest_env, tmp_path):
    """pingpong on one CPU, stopped in a handler: the running thread's state comes from its CPU
    (UIF 0 in the handler), the other's from its saved XSAVE image (UIF 1) with its UPID
    suppressed while it is switched out (SN 1: switch_uintr_prepare, docs/uintr.md §11.5)."""
    port = free_port()
    emu = subprocess.Popen(
        [sys.executable, "-m", "uintr_emu", "run", "--cpus", "1", "--gdb", str(port),
         str(PINGPONG), "3"],
        env=guest_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for_line(emu, f"waiting for gdb on 127.0.0.1:{port}", TIMEOUT)
        gdb = subprocess.run(
            [GDB or "gdb", "-batch", "-nx", "-ex", f"target remote 127.0.0.1:{port}",
             "-ex", "break ui_handler", "-ex", "continue", "-ex", "monitor uintr",
             "-ex", "thread 1", "-ex", "p $uif", "-ex", "thread 2", "-ex", "p $uif",
             "-ex", "kill", str(PINGPONG)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        emu.communicate(timeout=TIMEOUT)
    finally:
        if emu.poll() is None:
            emu.kill()
            emu.communicate()
    out = gdb.stdout + gdb.stderr
    m = re.search(r"thread (\d+) \(pid \d+, loaded on cpu0\)\n  UIF 0 .*\n.*\n  UPID [^\n]* SN 0 ",
                  out)  # fmt: skip
    assert m, out
    other = re.search(r"thread (\d+) \(pid \d+, saved\)\n  UIF 1 .*\n.*\n  UPID [^\n]* SN 1 ", out)
    assert other and other.group(1) != m.group(1), out
    uifs = re.findall(r"\$\d+ = ([01])\n", out)
    assert sorted(uifs) == ["0", "1"], out
