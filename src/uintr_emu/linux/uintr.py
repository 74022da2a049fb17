"""Intel's Linux UINTR support: both syscall generations and the kernel's behaviour.

The kernel programs the hardware only as Intel's kernel does (arch doc §11): MSR writes, the
XSAVES/XRSTORS image of state component 14 on context switches, UPIDs and UITTs in kernel memory,
and IPIs on the APIC bus. Section numbers (§) refer to ../shared/docs/uintr-architecture.md.
"""

from __future__ import annotations

import inspect
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..engine import unicorn as eng
from ..hw import uintr as U
from ..hw.cpu import is_canonical
from ..hw.faults import ArchFault, InvalidOpcode, PageFault
from ..machine import KERNEL_BASE
from . import errno as E
from . import signals as S
from .control import BLOCK
from .process import File, ThreadState, Wait
from .syscalls import Syscall

if TYPE_CHECKING:
    from ..machine import Cpu
    from .kernel import Kernel
    from .process import Process, Thread

NOTIFICATION_VECTOR = 0xEC  # UINTR_NOTIFICATION_VECTOR (§10.1)
KERNEL_VECTOR = 0xEB  # UINTR_KERNEL_VECTOR: blocked receivers (§11.6)
STACK_ADJUST = 128  # the x86-64 red zone (§10.1)
UITT_ENTRIES = 256
UITT_SIZE = UITT_ENTRIES * 16
UPID_SIZE = 64
WAITING_RECEIVER, WAITING_SENDER = 0x1000, 0x2000  # uintr-next handler flags (§10.3)
MAX_WAIT_USEC = 1_000_000_000
U_MAX = 2**64 - 1
# uvec_fd and uipi_fd ioctls (§10.3); the results of the uvec ones are provisional (§17 #10).
UINTR_IS_ACTIVE, UINTR_DISABLE, UINTR_NOTIFY = 0x5500, 0x5501, 0x5502
UIPI_SET_TARGET_TABLE, UIPI_CLEAR_TARGET_TABLE = 0x7500, 0x7501

# Syscall numbers: RFC v1 (449-454) and uintr-next (471-479).
RFC = {449: "register_handler", 450: "unregister_handler", 451: "create_fd",
       452: "register_sender", 453: "unregister_sender", 454: "wait"}  # fmt: skip
NEXT = {471: "register_handler", 472: "unregister_handler", 473: "vector_fd",
        474: "register_sender", 475: "unregister_sender", 476: "wait", 477: "register_self",
        478: "alt_stack", 479: "ipi_fd"}  # fmt: skip
_QQ = struct.Struct("<QQ")  # a UPID's status word and PIR
INTERRUPTIBLE_WAITS = ("futex", "sleep", "pipe-read", "pipe-write", "poll", "sigsuspend", "wait4",
                       "eventfd-read", "eventfd-write", "socket-read", "socket-write")  # fmt: skip


@dataclass(eq=False)
class Receiver:
    thread: Thread
    upid: int  # kernel address
    flags: int = 0
    vectors: int = 0  # vectors with a uvec fd
    active: bool = True
    waiting: bool = False  # blocked with NV = KERNEL_VECTOR
    posted_at: int = 0  # virtual time of the latest SENDUIPI to this UPID


@dataclass(eq=False)
class Uitt:
    addr: int  # kernel address, 4 KiB
    entries: list[Any] = field(default_factory=lambda: [None] * UITT_ENTRIES)
    refs: int = 0
    used: int = 0  # entries that are not None (checked at every return to user)

    def free_index(self) -> int | None:
        return next((i for i, e in enumerate(self.entries) if e is None), None)

    def set(self, index: int, entry: Any) -> None:
        self.used += (entry is not None) - (self.entries[index] is not None)
        self.entries[index] = entry


@dataclass(eq=False)
class ThreadUintr:
    image: bytes | None = None  # the saved state component while off-CPU (None = init)
    restore: bool = True  # switched in since its last return to user (the kernel's restore)
    receiver: Receiver | None = None
    uitt: Uitt | None = None  # RFC: the thread's own UITT


class UvecFile(File):
    """`uintr_create_fd` / `uintr_vector_fd`: anon inode [uintrfd] for (receiver, vector)."""

    kind = "uvec"

    def __init__(self, layer: UintrKernel, receiver: Receiver, vector: int):
        self.layer = layer
        self.receiver = receiver
        self.vector = vector
        self.disabled = False
        self.senders: list[tuple[Uitt, int, Thread | None]] = []

    def close(self) -> None:
        self.layer.close_uvec(self)


class UipiFile(File):
    """`uintr_ipi_fd`: carries a process's UITT to another process."""

    kind = "uipi"

    def __init__(self, uitt: Uitt):
        self.uitt = uitt


def _state_is_init(st: U.UintrState) -> bool:
    return not (st.uirr or st.uif or st.handler or st.stack_adjust or st.uinv or st.uitt_size
                or st.uitt_addr or st.senduipi_enabled or st.upid_addr)  # fmt: skip


class UintrKernel:
    def __init__(self, kernel: Kernel):
        self.k = kernel
        self.kmem = kernel.machine.kmem
        self.abi = kernel.opt.uintr_abi
        self.supported = kernel.opt.features.uintr
        self.receivers: list[Receiver] = []
        self.by_upid: dict[int, Receiver] = {}
        kernel.machine.on_ipi = self._on_ipi
        table = RFC if self.abi == "rfc" else NEXT
        for nr, name in table.items():
            fn = getattr(self, f"sys_{self.abi}_{name}", None) or getattr(self, f"sys_{name}")
            params = tuple(list(inspect.signature(fn).parameters)[1:])
            kernel.syscalls[nr] = Syscall(nr, f"uintr_{name}", _bind(fn), params, {})

    # --- helpers ------------------------------------------------------------------------

    def cpu_of(self, t: Thread) -> Cpu:
        return self.k.machine.cpus[t.cpu]

    def upid_read(self, upid: int) -> tuple[int, int]:
        return _QQ.unpack_from(self.kmem.data, upid - KERNEL_BASE)

    def upid_write(self, upid: int, low: int, pir: int) -> None:
        _QQ.pack_into(self.kmem.data, upid - KERNEL_BASE, low, pir)

    def _set_upid_bits(self, upid: int, *, set_: int = 0, clear: int = 0) -> None:
        low, pir = self.upid_read(upid)
        self.upid_write(upid, (low | set_) & ~clear, pir)

    def _set_nv(self, upid: int, nv: int) -> None:
        low, pir = self.upid_read(upid)
        self.upid_write(upid, (low & ~0xFF_0000) | nv << 16, pir)

    def _unsupported(self) -> int:
        # uintr-next returns ENOSYS without hardware support, RFC v1 EOPNOTSUPP (§10.3, §10.2).
        return -E.ENOSYS if self.abi == "next" else -E.EOPNOTSUPP

    def _thread_state(self, t: Thread) -> ThreadUintr:
        if t.uintr is None:
            t.uintr = ThreadUintr()
        return t.uintr

    def _wrmsr(self, t: Thread, msr: int, value: int) -> None:
        """Program a MSR of `t`: on its CPU when loaded there, else in its saved image."""
        cpu = self.cpu_of(t)
        if cpu.current is t:
            cpu.uintr.wrmsr(msr, value)
            return
        tu = self._thread_state(t)
        st = U.UintrState.from_xsave(tu.image) if tu.image else U.UintrState()
        names = {U.IA32_UINTR_RR: "uirr", U.IA32_UINTR_HANDLER: "handler",
                 U.IA32_UINTR_STACKADJUST: "stack_adjust"}  # fmt: skip
        if msr in names:
            setattr(st, names[msr], value)
        elif msr == U.IA32_UINTR_MISC:
            st.uitt_size, st.uinv = value & 0xFFFF_FFFF, (value >> 32) & 0xFF
        elif msr == U.IA32_UINTR_PD:
            st.upid_addr = value
        elif msr == U.IA32_UINTR_TT:
            st.uitt_addr, st.senduipi_enabled = value & ~0xF, bool(value & 1)
        tu.image = st.to_xsave()

    def _rdstate(self, t: Thread) -> U.UintrState:
        cpu = self.cpu_of(t)
        if cpu.current is t:
            return cpu.uintr.state
        tu = self._thread_state(t)
        return U.UintrState.from_xsave(tu.image) if tu.image else U.UintrState()

    # --- scheduler hooks ----------------------------------------------------------------

    def thread_created(self, t: Thread) -> None:
        t.uintr = ThreadUintr()

    def thread_cloned(self, parent: Thread, child: Thread) -> None:
        """New threads start with no receiver and UIF = 0; under uintr-next they share the
        process's UITT (§11.7, emulator choice)."""

    def switch_out(self, cpu: Cpu, t: Thread) -> None:
        """Context switch away from `t` (§11.5): SN := 1 for a receiver that is not waiting, then
        XSAVES of its state (which clears UINV on the CPU)."""
        tu = self._thread_state(t)
        unit = cpu.uintr
        if tu.receiver is not None and tu.receiver.active and not tu.receiver.waiting:
            self._set_upid_bits(tu.receiver.upid, set_=U.UPID_SN)
        if _state_is_init(unit.state):
            tu.image = None
            return
        tu.image = unit.xsaves() if self.supported else None

    def switch_in(self, cpu: Cpu, t: Thread) -> None:
        """XRSTORS of the incoming thread's state (§4 rules: UINV was cleared by XSAVES)."""
        tu = self._thread_state(t)
        tu.restore = True
        unit = cpu.uintr
        cpu.mem.user = t.process.mem
        if tu.image is None:
            if not _state_is_init(unit.state):
                unit.reset_state()
            return
        if unit.state.uinv:
            unit.xsaves()  # the previous owner's image was already taken: only clear UINV
        unit.xrstors(tu.image)
        tu.image = None

    def return_to_user(self, t: Thread) -> None:
        """The kernel's exit-to-user work for UINTR (§11.5), then notification processing and
        delivery at the first user instruction boundary (§7, §8)."""
        cpu = self.k.machine.cpus[t.cpu]
        cpu.mem.user = t.process.mem
        tu = t.uintr
        unit = cpu.uintr
        uses_uintr = tu is not None and (
            tu.receiver is not None
            or tu.uitt is not None
            or t.process.uitt is not None
            or unit.state.senduipi_enabled
        )
        if uses_uintr:
            self._sync_uitt(t, unit)
            r = tu.receiver
            if r is not None and r.active and (tu.restore or r.waiting):
                tu.restore = False
                if r.waiting:  # woken from a blocking wait: back to ordinary notifications
                    r.waiting = False
                    self._set_nv(r.upid, NOTIFICATION_VECTOR)
                st = unit.state
                if st.uinv == 0:
                    misc = st.uitt_size | NOTIFICATION_VECTOR << 32
                    unit.wrmsr(U.IA32_UINTR_MISC, misc)
                low, pir = self.upid_read(r.upid)
                low = (low & 0xFFFF_FFFF & ~U.UPID_SN) | cpu.apic.apic_id << 32
                self.upid_write(r.upid, low, pir)
                if pir:  # re-notify: a self-IPI with the notification vector
                    # The posts it finds were made at posted_at: this CPU cannot be earlier.
                    cpu.base = max(cpu.base, r.posted_at)
                    self.k.machine.bus.send_ipi(NOTIFICATION_VECTOR, cpu.apic.apic_id,
                                                source=cpu.apic)  # fmt: skip
        if cpu.ipi_arrived:
            cpu.service()
            if cpu.other_vectors:
                self._os_vectors(cpu)
        if unit.state.uirr:
            e = t.process.engine
            try:
                cpu.deliver_pending(e)
            except ArchFault as f:
                t.fault = fault_signal(f, e.reg_read(eng.RIP))
                self.k.force_signal(t, t.fault)
                t.fault = None

    def _sync_uitt(self, t: Thread, unit: U.UintrUnit) -> None:
        """Make TT/UITTSZ follow the UITT the thread may use (per process under uintr-next)."""
        uitt = t.process.uitt if self.abi == "next" else t.uintr.uitt
        st = unit.state
        want = uitt is not None and uitt.used > 0
        if want:
            if st.uitt_addr != uitt.addr or not st.senduipi_enabled:
                unit.wrmsr(U.IA32_UINTR_TT, uitt.addr | 1)
                unit.wrmsr(U.IA32_UINTR_MISC, (st.uinv << 32) | (UITT_ENTRIES - 1))
        elif st.senduipi_enabled:
            # The table emptied: clear TT and UITTSZ, so SENDUIPI raises #UD (§11.4).
            unit.wrmsr(U.IA32_UINTR_TT, 0)
            unit.wrmsr(U.IA32_UINTR_MISC, st.uinv << 32)

    def wants_stop(self, t: Thread) -> bool:
        """After a syscall: stop the engine if a user interrupt may now be delivered."""
        cpu = self.cpu_of(t)
        return cpu.ipi_arrived or bool(cpu.uintr.state.uirr and cpu.uintr.state.uif)

    def on_block(self, t: Thread, wait: Wait) -> None:
        """A receiver with a WAITING flag that sleeps interruptibly is woken by user interrupts
        like one in uintr_wait: NV := KERNEL_VECTOR while it sleeps (§11.6, emulator choice)."""
        tu = t.uintr
        r = tu.receiver if tu is not None else None
        if r is None or not r.active:
            return
        if wait.kind == "uintr" or (r.flags & (WAITING_RECEIVER | WAITING_SENDER)
                                    and wait.kind in INTERRUPTIBLE_WAITS):  # fmt: skip
            r.waiting = True
            self._set_nv(r.upid, KERNEL_VECTOR)

    def _on_ipi(self, source: Cpu, target: Cpu, vector: int) -> None:
        self.k.kick(target)
        tr = self.k.tracer
        if tr.sinks:
            tid = source.current.tid if source.current is not None else 0
            tr.emit("ipi", source.index, tid, target=target.index, vector=vector)
        # An idle CPU takes interrupts at once (the idle loop runs with IF = 1).
        if target.current is None:
            target.service()
            self._os_vectors(target)
        elif target is not source:
            st = target.uintr.state
            if vector == st.uinv and vector and not st.uif:
                # A notification to a thread with UIF = 0: notification processing only moves
                # PIR to UIRR, which user code cannot see (§7), and nothing is delivered before
                # its STUI; it takes place at the target's next turn. Stopping the sender would
                # cost a turn per SENDUIPI (a storm to a receiver in a CLUI section).
                return
            cur = self.k.current
            if cur is not None and self.k.current_cpu == source.index:
                cur.process.engine.stop()  # let the target CPU take its turn sooner

    def _os_vectors(self, cpu: Cpu) -> None:
        """Interrupt handlers of the kernel for vectors that were not a notification (§7)."""
        while cpu.other_vectors:
            v = cpu.other_vectors.pop(0)
            cpu.apic.eoi()
            if cpu.ipi_arrived:  # a vector held back behind `v` can be accepted now
                cpu.service()
            tr = self.k.tracer
            if tr.sinks:
                tid = cpu.current.tid if cpu.current is not None else 0
                tr.emit("interrupt", cpu.index, tid, vector=v,
                        handler="wake waiters" if v == KERNEL_VECTOR else "spurious")  # fmt: skip
            if v == KERNEL_VECTOR:
                self._wake_waiters()
            # NOTIFICATION_VECTOR here is a spurious user interrupt ("UIS"): EOI only.

    def _wake_waiters(self) -> None:
        """The 0xEB handler: every waiting receiver with ON = 1 is woken (§11.6)."""
        for r in self.receivers:
            if not r.waiting:
                continue
            low, _ = self.upid_read(r.upid)
            if low & U.UPID_ON:
                self._set_upid_bits(r.upid, set_=U.UPID_SN)
                self._set_nv(r.upid, NOTIFICATION_VECTOR)
                t = r.thread
                if t.state is ThreadState.BLOCKED:
                    self.k.wake(t, -E.EINTR)

    def trap(self, t: Thread) -> bool:
        """The engine's #UD: execute a UINTR instruction, or report a genuine #UD."""

        def execute(cpu: Cpu, e: Any) -> bool:
            cpu.last_post = 0
            done = cpu.execute_trapped(e)
            if cpu.last_post:
                self._posted(cpu.last_post)
            return done

        return self._in_hook(t, execute)

    def native_post(self, upid: int, notify: int, nv: int, ndst: int) -> bool:
        """The native fast path executed a SENDUIPI up to its UPID update: the rest, as
        `trap` does it after the model's SENDUIPI (engine/native.py)."""
        t = self.k.current
        assert t is not None
        cpu = self.cpu_of(t)
        try:
            cpu.senduipi_posted(t.process.engine, upid, notify, nv, ndst)
            self._posted(upid)
            return True
        except ArchFault as f:
            return self._fault(t, f)
        finally:
            if cpu.other_vectors:
                self._os_vectors(cpu)

    def native_deliver(self) -> bool:
        """After a native STUI or UIRET: the delivery the fast path left to the model."""
        return self._in_hook(self.k.current, lambda cpu, e: cpu.deliver_model(e) or True)

    def _in_hook(self, t: Thread | None, work: Any) -> bool:
        """`work(cpu, engine)` for `t` inside the #UD hook; its result is the hook's. The
        instruction's own fault (ArchFault) becomes `t.fault` and the hook returns False; then
        the kernel's handlers run for interrupts that were not notifications (e.g. a SENDUIPI's
        0xEB to this very CPU, §11.6). (`native_post`, the hot one, is this written out.)"""
        assert t is not None
        cpu = self.cpu_of(t)
        try:
            return bool(work(cpu, t.process.engine))
        except ArchFault as f:
            return self._fault(t, f)
        finally:
            if cpu.other_vectors:
                self._os_vectors(cpu)

    @staticmethod
    def _fault(t: Thread, f: ArchFault) -> bool:
        t.fault = fault_signal(f, t.process.engine.reg_read(eng.RIP))
        return False

    def _posted(self, upid: int) -> None:
        r = self.by_upid.get(upid)
        if r is not None:
            r.posted_at = now = self.k.clock_ns()
            # Also when no IPI went out (SN or ON set): whatever CPU next picks the post up
            # must not be earlier than the post.
            self.k.kick(self.k.machine.cpus[r.thread.cpu], now)

    def thread_exit(self, t: Thread) -> None:
        """Exit (§11.7): receiver torn down (SN := 1, inactive; later posts stay in PIR)."""
        tu = t.uintr
        if tu is None:
            return
        if tu.receiver is not None:
            self._deactivate(tu.receiver)
        cpu = self.cpu_of(t)
        if cpu.current is t:
            cpu.uintr.reset_state()
        tu.image = None
        tu.uitt = None

    def _deactivate(self, r: Receiver) -> None:
        self._set_upid_bits(r.upid, set_=U.UPID_SN)
        r.active = False
        r.waiting = False
        if r in self.receivers:
            self.receivers.remove(r)

    # --- fds ----------------------------------------------------------------------------

    def close_uvec(self, f: UvecFile) -> None:
        """Last close of a uvec fd (§11.4): its senders are unregistered, the vector's PIR bit
        and mask bit cleared; bits already in UIRR stay."""
        senders = {id(s): s for _u, _i, s in f.senders if s is not None}
        for uitt, index, _sender in f.senders:
            uitt.set(index, None)
            self._write_uitt_entry(uitt, index, 0, 0)
        f.senders.clear()
        for sender in senders.values():  # an emptied table disables SENDUIPI at once (#UD)
            self._sync_loaded(sender)
        r = f.receiver
        r.vectors &= ~(1 << f.vector)
        low, pir = self.upid_read(r.upid)
        self.upid_write(r.upid, low, pir & ~(1 << f.vector))

    def ioctl(self, t: Thread, f: File, req: int, arg: int) -> int | None:
        if isinstance(f, UvecFile):
            if req == UINTR_IS_ACTIVE:
                return 1 if f.receiver.active and not f.disabled else 0
            if req == UINTR_DISABLE:
                f.disabled = True
                return 0
            if req == UINTR_NOTIFY:
                if not f.receiver.active or f.disabled:
                    return -E.ESHUTDOWN
                self.post(self.cpu_of(t), f.receiver.upid, f.vector)
                return 0
            return -E.ENOTTY
        if isinstance(f, UipiFile):
            if req == UIPI_SET_TARGET_TABLE:
                t.process.uitt = f.uitt
                return 0
            return -E.EOPNOTSUPP if req == UIPI_CLEAR_TARGET_TABLE else -E.ENOTTY
        return None

    def post(self, cpu: Cpu, upid: int, vector: int) -> None:
        """The kernel's own post (uvec UINTR_NOTIFY): what SENDUIPI's UPID update does."""
        low, pir = self.upid_read(upid)
        pir |= 1 << vector
        send = not low & (U.UPID_SN | U.UPID_ON)
        if send:
            low |= U.UPID_ON
        self.upid_write(upid, low, pir)
        if send:
            nv, ndst = (low >> 16) & 0xFF, low >> 32
            self.k.machine.bus.send_ipi(nv, ndst, source=cpu.apic)

    # --- syscalls -----------------------------------------------------------------------

    def _flags_ok(self, flags: int, allowed: int = 0) -> bool:
        return not flags & 0xFFFF_FFFF & ~allowed

    def sys_register_handler(self, t: Thread, handler: int, flags: int) -> int:
        if not self.supported:
            return self._unsupported()
        allowed = WAITING_RECEIVER | WAITING_SENDER if self.abi == "next" else 0
        if not self._flags_ok(flags, allowed):
            return -E.EINVAL
        # uintr_register_handler(2), both generations: "EFAULT handler address is not valid".
        # The kernel itself only rejects 0 (its "TODO: Validate the handler address"); a
        # non-canonical one would reach its WRMSR of UIHANDLER, which faults (#GP, §3) and is
        # skipped (wrmsrl_safe), leaving a receiver whose delivery jumps to the old handler.
        # Nothing is allocated before this check.
        if handler == 0 or not is_canonical(handler):
            return -E.EFAULT
        tu = self._thread_state(t)
        if tu.receiver is not None and tu.receiver.active:
            return -E.EBUSY
        cpu = self.cpu_of(t)
        upid = self.kmem.alloc(UPID_SIZE, UPID_SIZE)
        self.upid_write(upid, NOTIFICATION_VECTOR << 16 | cpu.apic.apic_id << 32, 0)
        r = Receiver(t, upid, flags & allowed)
        tu.receiver = r
        self.receivers.append(r)
        self.by_upid[upid] = r
        # §11.1: HANDLER, PD, STACKADJUST, MISC.UINV; UIF and UIRR unchanged.
        st = self._rdstate(t)
        self._wrmsr(t, U.IA32_UINTR_HANDLER, handler)
        self._wrmsr(t, U.IA32_UINTR_PD, upid)
        self._wrmsr(t, U.IA32_UINTR_STACKADJUST, STACK_ADJUST)
        self._wrmsr(t, U.IA32_UINTR_MISC, st.uitt_size | NOTIFICATION_VECTOR << 32)
        return 0

    def sys_unregister_handler(self, t: Thread, flags: int) -> int:
        if not self.supported:
            return self._unsupported()
        if not self._flags_ok(flags):
            return -E.EINVAL
        tu = self._thread_state(t)
        r = tu.receiver
        if r is None or not r.active:
            return -E.EINVAL
        self._deactivate(r)
        tu.receiver = None
        # §17 #7: clear HANDLER, STACKADJUST, PD, UINV and UIRR; UIF unchanged.
        st = self._rdstate(t)
        for msr in (U.IA32_UINTR_HANDLER, U.IA32_UINTR_STACKADJUST, U.IA32_UINTR_PD,
                    U.IA32_UINTR_RR):  # fmt: skip
            self._wrmsr(t, msr, 0)
        self._wrmsr(t, U.IA32_UINTR_MISC, st.uitt_size)
        return 0

    def sys_vector_fd(self, t: Thread, vector: int, flags: int) -> int:
        if not self.supported:
            return self._unsupported()
        if not self._flags_ok(flags):
            return -E.EINVAL
        tu = self._thread_state(t)
        r = tu.receiver
        if r is None or not r.active:
            return -E.EINVAL
        if vector >= U.NUM_USER_VECTORS:  # unsigned: -1 is huge (§10.2)
            return -E.ENOSPC
        if r.vectors >> vector & 1:
            return -E.EBUSY
        r.vectors |= 1 << vector
        f = UvecFile(self, r, vector)
        return t.process.fds.install(f, cloexec=True)

    sys_create_fd = sys_vector_fd

    def _uitt_for(self, t: Thread, create: bool) -> Uitt | None:
        if self.abi == "next":
            if t.process.uitt is None and create:
                t.process.uitt = Uitt(self.kmem.alloc(UITT_SIZE, 4096))
            return t.process.uitt
        tu = self._thread_state(t)
        if tu.uitt is None and create:
            tu.uitt = Uitt(self.kmem.alloc(UITT_SIZE, 4096))
        return tu.uitt

    def _write_uitt_entry(self, uitt: Uitt, index: int, vector: int, upid: int) -> None:
        valid = 1 if upid else 0
        struct.pack_into("<BB6xQ", self.kmem.data, uitt.addr - KERNEL_BASE + 16 * index,
                         valid, vector, upid)  # fmt: skip

    def _add_sender(self, t: Thread, r: Receiver, vector: int, f: UvecFile | None) -> int:
        uitt = self._uitt_for(t, create=True)
        assert uitt is not None
        index = uitt.free_index()
        if index is None:
            return -E.ENOSPC
        uitt.set(index, (r, vector, f, t))
        self._write_uitt_entry(uitt, index, vector, r.upid)
        if f is not None:
            f.senders.append((uitt, index, t))
        self._sync_loaded(t)
        return index

    def _sync_loaded(self, t: Thread) -> None:
        """Threads running right now see the UITT change at once (the kernel's IPI/task work)."""
        for cpu in self.k.machine.cpus:
            cur = cpu.current
            if cur is not None and cur.process is t.process and cur.uintr is not None:
                self._sync_uitt(cur, cpu.uintr)

    @staticmethod
    def _uvec_file(t: Thread, fd: int) -> UvecFile | int:
        """The vector fd behind `fd`: EBADF if none, EOPNOTSUPP if it is another kind (§10.2)."""
        f = t.process.fds.get(fd - (1 << 64) if fd >> 63 else fd)
        if f is None:
            return -E.EBADF
        return f if isinstance(f, UvecFile) else -E.EOPNOTSUPP

    def sys_register_sender(self, t: Thread, fd: int, flags: int) -> int:
        if not self.supported:
            return self._unsupported()
        if not self._flags_ok(flags):
            return -E.EINVAL
        f = self._uvec_file(t, fd)
        if isinstance(f, int):
            return f
        r = f.receiver
        if not r.active or f.disabled:
            return -E.ESHUTDOWN
        if self.abi == "rfc" and any(s is t for _u, _i, s in f.senders):
            return -E.EISCONN
        return self._add_sender(t, r, f.vector, f)

    def _remove_entry(self, t: Thread, uitt: Uitt, index: int) -> None:
        entry = uitt.entries[index]
        uitt.set(index, None)
        self._write_uitt_entry(uitt, index, 0, 0)
        f = entry[2]
        if f is not None:
            f.senders = [s for s in f.senders if not (s[0] is uitt and s[1] == index)]
        self._sync_loaded(t)

    def sys_rfc_unregister_sender(self, t: Thread, fd: int, flags: int) -> int:
        if not self.supported:
            return self._unsupported()
        if not self._flags_ok(flags):
            return -E.EINVAL
        f = self._uvec_file(t, fd)
        if isinstance(f, int):
            return f
        mine = [(u, i) for u, i, s in f.senders if s is t]
        if not mine:
            return -E.EINVAL
        self._remove_entry(t, *mine[0])
        return 0

    def sys_unregister_sender(self, t: Thread, index: int, flags: int) -> int:
        if not self.supported:
            return self._unsupported()
        if not self._flags_ok(flags):
            return -E.EINVAL
        uitt = self._uitt_for(t, create=False)
        if uitt is None or index >= UITT_ENTRIES or uitt.entries[index] is None:
            return -E.EINVAL
        self._remove_entry(t, uitt, index)
        return 0

    def _wait(self, t: Thread, deadline: int | None) -> Any:
        tu = self._thread_state(t)
        r = tu.receiver
        if r is None or not r.active:
            return -E.EOPNOTSUPP
        low, pir = self.upid_read(r.upid)
        if pir or self.cpu_of(t).uintr.state.uirr:
            return -E.EINTR  # something is pending already: deliver it on the way out
        self.k.block(t, Wait("uintr", deadline, on_timeout=0))
        return BLOCK

    def sys_rfc_wait(self, t: Thread, flags: int) -> Any:
        if not self.supported:
            return self._unsupported()
        if not self._flags_ok(flags):
            return -E.EINVAL
        return self._wait(t, None)

    def sys_wait(self, t: Thread, usec: int, flags: int) -> Any:
        if not self.supported:
            return self._unsupported()
        if not self._flags_ok(flags) or usec > MAX_WAIT_USEC:
            return -E.EINVAL
        return self._wait(t, self.k.clock_ns() + usec * 1000)

    def sys_register_self(self, t: Thread, vector: int, flags: int) -> int:
        if not self.supported:
            return self._unsupported()
        if not self._flags_ok(flags):
            return -E.EINVAL
        tu = self._thread_state(t)
        r = tu.receiver
        if r is None or not r.active:
            return -E.EINVAL
        if vector >= U.NUM_USER_VECTORS:
            return -E.ENOSPC
        return self._add_sender(t, r, vector, None)

    def sys_alt_stack(self, t: Thread, sp: int, size: int, flags: int) -> int:
        if not self.supported:
            return self._unsupported()
        if not self._flags_ok(flags):
            return -E.EINVAL
        tu = self._thread_state(t)
        if tu.receiver is None or not tu.receiver.active:
            return -E.EOPNOTSUPP
        # §17 #8: load mode (bit 0) with the top of the alternate stack; NULL restores 128.
        # sp + size is u64 arithmetic, as in the kernel, which validates neither ("TODO:
        # Validate address and size") and writes the MSR with xsave_wrmsrl (wrmsrl_safe): a
        # non-canonical value faults (#GP, §3), the write is skipped and do_uintr_alt_stack
        # still returns 0. So the MSR keeps its value and the call succeeds.
        value = STACK_ADJUST if sp == 0 else ((sp + size) & U_MAX) | 1
        if is_canonical(value):
            self._wrmsr(t, U.IA32_UINTR_STACKADJUST, value)
        return 0

    def sys_ipi_fd(self, t: Thread, flags: int) -> int:
        if not self.supported:
            return self._unsupported()
        if not self._flags_ok(flags):
            return -E.EINVAL
        uitt = self._uitt_for(t, create=True)
        assert uitt is not None
        return t.process.fds.install(UipiFile(uitt), cloexec=True)

    # --- processes ----------------------------------------------------------------------

    def fork(self, parent: Process, child: Process) -> None:
        """fork (§11.7): nothing UINTR is inherited but the fds (UIF = 0, no receiver); under
        uintr-next the child gets a copy of the process's UITT (§17 #12)."""
        if self.abi == "next" and parent.uitt is not None:
            copy = Uitt(self.kmem.alloc(UITT_SIZE, 4096))
            copy.entries = list(parent.uitt.entries)
            copy.used = parent.uitt.used
            off_src = parent.uitt.addr - KERNEL_BASE
            off_dst = copy.addr - KERNEL_BASE
            self.kmem.data[off_dst : off_dst + UITT_SIZE] = self.kmem.data[
                off_src : off_src + UITT_SIZE
            ]
            child.uitt = copy


def fault_signal(f: ArchFault, rip: int) -> S.SigInfo:
    """The signal Linux sends for an architectural fault (arch doc §12)."""
    if isinstance(f, InvalidOpcode):
        return S.SigInfo(S.SIGILL, S.ILL_ILLOPN, addr=rip, rip=rip, trapno=6)
    if isinstance(f, PageFault):
        code = S.SEGV_ACCERR if f.protection else S.SEGV_MAPERR
        return S.SigInfo(S.SIGSEGV, code, addr=f.address, rip=rip, trapno=14)
    return S.SigInfo(S.SIGSEGV, S.SI_KERNEL, addr=0, rip=rip, trapno=f.vector)


def _bind(method: Any) -> Any:
    """Adapt a UintrKernel method to the dispatcher's `fn(kernel, thread, *args)`."""

    def call(_k: Kernel, t: Thread, *args: int) -> Any:
        return method(t, *args)

    call.__name__ = method.__name__
    return call
