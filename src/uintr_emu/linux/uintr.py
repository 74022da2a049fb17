"""Intel's Linux UINTR support: the kernel side behind both syscall generations (the syscalls
themselves are in syscalls/uintr.py).

The kernel programs the hardware only as Intel's kernel does (docs/uintr.md §11): WRMSR/RDMSR of
the six MSRs of the CPU a thread is loaded on, or edits of the thread's saved XSAVE image when
it is not (as Intel's code edits the xsave buffer of a task whose FPU state is not live);
XSAVES/XRSTORS of state component 14 on context switches (`switch_out`/`switch_in`, what
`switch_fpu_prepare`/`switch_fpu_return` do with it); `switch_uintr_prepare` (SN := 1) and
`switch_uintr_return` (UINV, NDST, SN, the self-IPI) on the way out and back to user mode; UPIDs
and UITTs in kernel memory; IPIs through the local APIC; and its interrupt handlers for the two
UINTR vectors, which the CPU delivers through the IDT (`interrupt`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..hw import uintr as U
from ..machine import KERNEL_BASE
from ..options import uintr_abi_parts
from . import errno as E
from .process import File, ThreadState, Wait

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
# uvec_fd and uipi_fd ioctls (§10.3); the results of the uvec ones are provisional (§17 #10).
UINTR_IS_ACTIVE, UINTR_DISABLE, UINTR_NOTIFY = 0x5500, 0x5501, 0x5502
UIPI_SET_TARGET_TABLE, UIPI_CLEAR_TARGET_TABLE = 0x7500, 0x7501
INTERRUPTIBLE_WAITS = ("futex", "sleep", "pipe-read", "pipe-write", "poll", "sigsuspend", "wait4",
                       "eventfd-read", "eventfd-write", "socket-read", "socket-write")  # fmt: skip

# ABI layouts (§5): struct uintr_upid (status byte, reserved, nv, reserved, ndst; puir) and
# struct uintr_uitt_entry (valid, user_vec, reserved[6], target_upid_addr).
UPID = struct.Struct("<QQ")
UITT_ENTRY = struct.Struct("<BB6xQ")
_MISC_UINV = 0xFF << 32
_MISC_UITTSZ = 0xFFFF_FFFF
# Where each MSR's value lies in the 48-byte XSAVE image of component 14 (§4), for editing the
# image of a thread that is not loaded.
_IMAGE_OFFSET = {U.IA32_UINTR_HANDLER: 0, U.IA32_UINTR_STACKADJUST: 8, U.IA32_UINTR_MISC: 16,
                 U.IA32_UINTR_PD: 24, U.IA32_UINTR_RR: 32, U.IA32_UINTR_TT: 40}  # fmt: skip
_Q = struct.Struct("<Q")


@dataclass(eq=False)
class Receiver:
    thread: Thread
    upid: int  # kernel address
    flags: int = 0
    vectors: int = 0  # vectors with a uvec fd
    active: bool = True
    waiting: bool = False  # blocked with NV = KERNEL_VECTOR


@dataclass(eq=False)
class Uitt:
    addr: int  # kernel address, 4 KiB
    entries: list[Any] = field(default_factory=lambda: [None] * UITT_ENTRIES)
    used: int = 0  # entries that are not None

    def free_index(self) -> int | None:
        return next((i for i, e in enumerate(self.entries) if e is None), None)

    def set(self, index: int, entry: Any) -> None:
        self.used += (entry is not None) - (self.entries[index] is not None)
        self.entries[index] = entry


@dataclass(eq=False)
class ThreadUintr:
    image: bytes | None = None  # the XSAVE image of component 14 while off-CPU (None: init)
    # switch_uintr_return (and the UITT's TT/UITTSZ) must run before the thread next returns to
    # user mode: it was switched in, or its process's UITT changed.
    restore: bool = True
    receiver: Receiver | None = None
    uitt: Uitt | None = None  # RFC: the thread's own UITT
    tt: int = 0  # what the kernel last programmed into IA32_UINTR_TT for this thread


class UvecFile(File):
    """`uintr_create_fd` / `uintr_vector_fd`: anon inode [uintrfd] for (receiver, vector)."""

    kind = "uvec"

    def __init__(self, layer: UintrKernel, receiver: Receiver, vector: int):
        self.layer = layer
        self.receiver = receiver
        self.vector = vector
        self.disabled = False
        self.senders: list[tuple[Uitt, int, Thread]] = []

    def close(self) -> None:
        self.layer.close_uvec(self)


class UipiFile(File):
    """`uintr_ipi_fd`: carries a process's UITT to another process."""

    kind = "uipi"

    def __init__(self, uitt: Uitt):
        self.uitt = uitt


class UintrKernel:
    def __init__(self, kernel: Kernel):
        self.k = kernel
        self.kmem = kernel.machine.kmem
        self.abi, _ = uintr_abi_parts(kernel.opt.uintr_abi)  # the semantics: next or rfc
        self.supported = kernel.opt.features.uintr
        self.receivers: list[Receiver] = []

    def unsupported(self) -> int:
        # uintr-next returns ENOSYS without hardware support, RFC v1 EOPNOTSUPP (§10.3, §10.2).
        return -E.ENOSYS if self.abi == "next" else -E.EOPNOTSUPP

    def thread(self, t: Thread) -> ThreadUintr:
        if t.uintr is None:
            t.uintr = ThreadUintr()
        return t.uintr  # type: ignore[no-any-return]

    # --- UPIDs and UITTs in kernel memory -------------------------------------------------

    def upid_read(self, upid: int) -> tuple[int, int]:
        """(status word, PIR) of a UPID, read by the kernel on the CPU it runs on: a read of a
        line a SENDUIPI stored to is not earlier than that store (machine.py, "Time")."""
        seen = self.kmem.stamps.get(upid)
        if seen is not None:
            self.k.cpu.sync(seen)
        return UPID.unpack_from(self.kmem.data, upid - KERNEL_BASE)  # type: ignore[return-value]

    def upid_write(self, upid: int, low: int, pir: int) -> None:
        UPID.pack_into(self.kmem.data, upid - KERNEL_BASE, low, pir)

    def _set_upid_bits(self, upid: int, *, set_: int = 0, clear: int = 0) -> None:
        low, pir = self.upid_read(upid)
        self.upid_write(upid, (low | set_) & ~clear, pir)

    def _set_nv(self, upid: int, nv: int) -> None:
        low, pir = self.upid_read(upid)
        self.upid_write(upid, (low & ~0xFF_0000) | nv << 16, pir)

    def new_upid(self, cpu: Cpu) -> int:
        """A zeroed UPID with NV = the notification vector and NDST = `cpu` (§11.1 step 1)."""
        upid = self.kmem.alloc(UPID_SIZE, UPID_SIZE)
        self.upid_write(upid, NOTIFICATION_VECTOR << 16 | cpu.apic.apic_id << 32, 0)
        return upid

    def write_uitt_entry(self, uitt: Uitt, index: int, vector: int, upid: int) -> None:
        UITT_ENTRY.pack_into(self.kmem.data, uitt.addr - KERNEL_BASE + 16 * index,
                             1 if upid else 0, vector, upid)  # fmt: skip

    def post(self, cpu: Cpu, upid: int, vector: int) -> None:
        """The kernel's own post (uvec UINTR_NOTIFY): what SENDUIPI's UPID update does."""
        low, pir = self.upid_read(upid)
        pir |= 1 << vector
        send = not low & (U.UPID_SN | U.UPID_ON)
        if send:
            low |= U.UPID_ON
        self.upid_write(upid, low, pir)
        self.kmem.stamp(upid, cpu.now())
        if send:
            nv, ndst = (low >> 16) & 0xFF, low >> 32
            self.k.machine.bus.send_ipi(nv, ndst, source=cpu.apic)

    # --- a thread's MSRs ------------------------------------------------------------------

    def wrmsr(self, t: Thread, msr: int, value: int) -> None:
        """Program an MSR of `t`: WRMSR on its CPU when its state is loaded there, else an edit
        of its saved XSAVE image (§4 layout)."""
        cpu = self.k.sched.loaded_on(t)
        if cpu is not None:
            cpu.uintr.wrmsr(msr, value)
            return
        tu = self.thread(t)
        image = bytearray(tu.image or bytes(U.XSAVE_IMAGE_SIZE))
        off = _IMAGE_OFFSET[msr]
        if msr == U.IA32_UINTR_MISC:  # keep the image's UIF (bit 63): WRMSR cannot change it
            value |= _Q.unpack_from(image, off)[0] & U.XSAVE_MISC_UIF
        _Q.pack_into(image, off, value)
        tu.image = bytes(image)

    def rdmsr(self, t: Thread, msr: int) -> int:
        cpu = self.k.sched.loaded_on(t)
        if cpu is not None:
            return cpu.uintr.rdmsr(msr)
        image = self.thread(t).image
        if image is None:
            return 0
        value = _Q.unpack_from(image, _IMAGE_OFFSET[msr])[0]
        return value & ~U.XSAVE_MISC_UIF if msr == U.IA32_UINTR_MISC else value  # type: ignore[no-any-return]

    def state_of(self, t: Thread) -> U.UintrState:
        """A copy of `t`'s whole UINTR state, UIF included (for tools: the API and gdb)."""
        cpu = self.k.sched.loaded_on(t)
        if cpu is not None:
            return cpu.uintr.state.copy()
        image = self.thread(t).image
        return U.UintrState.from_xsave(image) if image else U.UintrState()

    # --- context switches and the return to user mode -------------------------------------

    def switch_out(self, cpu: Cpu, t: Thread) -> None:
        """Context switch away from `t` (§11.5): SN := 1 for a receiver that is not waiting
        (switch_uintr_prepare), then XSAVES of its state, which clears UINV on the CPU."""
        tu = self.thread(t)
        r = tu.receiver
        if r is not None and r.active and not r.waiting:
            self._set_upid_bits(r.upid, set_=U.UPID_SN)
        if self.supported:
            tu.image = cpu.uintr.xsaves()
        if t.state is ThreadState.DEAD:
            tu.image = None

    def switch_in(self, cpu: Cpu, t: Thread) -> None:
        """XRSTORS of the incoming thread's state (UINV is 0: the last switch out saved)."""
        tu = self.thread(t)
        tu.restore = True
        if self.supported:
            cpu.uintr.xrstors(tu.image)
        tu.image = None

    def exit_to_user(self, cpu: Cpu, t: Thread) -> None:
        """The kernel's last UINTR work before returning to user mode, if any is due
        (`ThreadUintr.restore`, or a receiver back from a blocking wait): the UITT's TT and
        UITTSZ, then `switch_uintr_return` (§11.5). The self-IPI it may send is accepted at the
        first user instruction boundary (the kernel's exit path, `Kernel.exit_to_user`)."""
        tu = t.uintr
        if tu is None:
            return
        r = tu.receiver
        if not tu.restore and (r is None or not r.waiting):
            return
        tu.restore = False
        self._sync_uitt(cpu, t, tu)
        if r is None or not r.active:
            return
        if r.waiting:  # woken from a blocking wait: back to ordinary notifications
            r.waiting = False
            self._set_nv(r.upid, NOTIFICATION_VECTOR)
        unit = cpu.uintr
        misc = unit.rdmsr(U.IA32_UINTR_MISC)
        if not misc & _MISC_UINV:  # XSAVES cleared it and no XRSTORS restored it
            unit.wrmsr(U.IA32_UINTR_MISC, misc | NOTIFICATION_VECTOR << 32)
        low, pir = self.upid_read(r.upid)
        low = (low & 0xFFFF_FFFF & ~U.UPID_SN) | cpu.apic.apic_id << 32
        self.upid_write(r.upid, low, pir)
        if pir:  # posts came while it was away: re-notify with a self-IPI
            self.k.machine.bus.send_ipi(NOTIFICATION_VECTOR, cpu.apic.apic_id, source=cpu.apic)

    def _sync_uitt(self, cpu: Cpu, t: Thread, tu: ThreadUintr) -> None:
        """TT and UITTSZ follow the UITT the thread may use (per process under uintr-next);
        an emptied table clears them, so that SENDUIPI raises #UD (§11.3, §11.4)."""
        uitt = t.process.uitt if self.abi == "next" else tu.uitt
        tt = uitt.addr | U.TT_SENDUIPI_ENABLE if uitt is not None and uitt.used else 0
        if tt == tu.tt:
            return
        tu.tt = tt
        unit = cpu.uintr
        misc = unit.rdmsr(U.IA32_UINTR_MISC) & ~_MISC_UITTSZ
        unit.wrmsr(U.IA32_UINTR_TT, tt)
        unit.wrmsr(U.IA32_UINTR_MISC, misc | (UITT_ENTRIES - 1 if tt else 0))

    def uitt_changed(self, p: Process) -> None:
        """A UITT of `p` gained its first entry or lost its last: every thread of the process
        reprograms TT before it next returns to user mode (Intel's kernel uses task work; no
        thread of `p` but the caller can execute an instruction before that)."""
        for t in p.threads:
            if t.uintr is not None:
                t.uintr.restore = True

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

    # --- the interrupt handler (the CPU delivers the kernel vector through the IDT) -------

    def wake_waiters(self) -> None:
        """The UINTR_KERNEL_VECTOR handler: every waiting receiver with ON = 1 is woken
        (§11.6)."""
        for r in self.receivers:
            if not r.waiting:
                continue
            low, _ = self.upid_read(r.upid)
            if low & U.UPID_ON:
                self._set_upid_bits(r.upid, set_=U.UPID_SN)
                self._set_nv(r.upid, NOTIFICATION_VECTOR)
                t = r.thread
                if t.state is ThreadState.BLOCKED:
                    self.k.sched.wake(t, -E.EINTR)

    # --- receivers and senders (the syscalls' mechanism) ----------------------------------

    def add_receiver(self, t: Thread, handler: int, flags: int) -> None:
        """§11.1: a UPID for `t`, then HANDLER, PD, STACKADJUST, MISC.UINV; UIF and UIRR
        unchanged."""
        upid = self.new_upid(self.k.machine.cpus[t.cpu])
        r = Receiver(t, upid, flags)
        self.thread(t).receiver = r
        self.receivers.append(r)
        misc = self.rdmsr(t, U.IA32_UINTR_MISC)
        self.wrmsr(t, U.IA32_UINTR_HANDLER, handler)
        self.wrmsr(t, U.IA32_UINTR_PD, upid)
        self.wrmsr(t, U.IA32_UINTR_STACKADJUST, STACK_ADJUST)
        self.wrmsr(t, U.IA32_UINTR_MISC, (misc & _MISC_UITTSZ) | NOTIFICATION_VECTOR << 32)

    def remove_receiver(self, t: Thread) -> None:
        """unregister_handler (§17 #7): the receiver is torn down; HANDLER, STACKADJUST, PD,
        UINV and UIRR are cleared; UIF is unchanged."""
        tu = self.thread(t)
        assert tu.receiver is not None
        self._deactivate(tu.receiver)
        tu.receiver = None
        misc = self.rdmsr(t, U.IA32_UINTR_MISC)
        for msr in (U.IA32_UINTR_HANDLER, U.IA32_UINTR_STACKADJUST, U.IA32_UINTR_PD,
                    U.IA32_UINTR_RR):  # fmt: skip
            self.wrmsr(t, msr, 0)
        self.wrmsr(t, U.IA32_UINTR_MISC, misc & _MISC_UITTSZ)

    def _deactivate(self, r: Receiver) -> None:
        self._set_upid_bits(r.upid, set_=U.UPID_SN)
        r.active = False
        r.waiting = False
        if r in self.receivers:
            self.receivers.remove(r)

    def uitt_for(self, t: Thread, create: bool) -> Uitt | None:
        """The UITT `t` sends through: its process's (uintr-next) or its own (RFC v1)."""
        if self.abi == "next":
            if t.process.uitt is None and create:
                t.process.uitt = Uitt(self.kmem.alloc(UITT_SIZE, 4096))
            return t.process.uitt  # type: ignore[no-any-return]
        tu = self.thread(t)
        if tu.uitt is None and create:
            tu.uitt = Uitt(self.kmem.alloc(UITT_SIZE, 4096))
        return tu.uitt

    def add_sender(self, t: Thread, r: Receiver, vector: int, f: UvecFile | None) -> int:
        """§11.3: the lowest free UITT entry of `t` now targets (r, vector); returns its index,
        or -ENOSPC."""
        uitt = self.uitt_for(t, create=True)
        assert uitt is not None
        index = uitt.free_index()
        if index is None:
            return -E.ENOSPC
        uitt.set(index, (r, vector, f, t))
        self.write_uitt_entry(uitt, index, vector, r.upid)
        if f is not None:
            f.senders.append((uitt, index, t))
        if uitt.used == 1:
            self.uitt_changed(t.process)
        return index

    def remove_sender(self, t: Thread, uitt: Uitt, index: int) -> None:
        """§11.4: the entry is invalid at once (a SENDUIPI through it raises #GP)."""
        entry = uitt.entries[index]
        uitt.set(index, None)
        self.write_uitt_entry(uitt, index, 0, 0)
        f = entry[2]
        if f is not None:
            f.senders = [s for s in f.senders if not (s[0] is uitt and s[1] == index)]
        if not uitt.used:
            self.uitt_changed(t.process)

    # --- fds ------------------------------------------------------------------------------

    def close_uvec(self, f: UvecFile) -> None:
        """Last close of a uvec fd (§11.4): its senders are unregistered, the vector's PIR bit
        and mask bit cleared; bits already in UIRR stay."""
        for uitt, index, sender in f.senders:
            uitt.set(index, None)
            self.write_uitt_entry(uitt, index, 0, 0)
            if not uitt.used:
                self.uitt_changed(sender.process)
        f.senders.clear()
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
                self.post(self.k.cpu, f.receiver.upid, f.vector)
                return 0
            return -E.ENOTTY
        if isinstance(f, UipiFile):
            if req == UIPI_SET_TARGET_TABLE:
                t.process.uitt = f.uitt
                self.uitt_changed(t.process)
                return 0
            return -E.EOPNOTSUPP if req == UIPI_CLEAR_TARGET_TABLE else -E.ENOTTY
        return None

    # --- task lifecycle -------------------------------------------------------------------

    def thread_created(self, t: Thread) -> None:
        """New threads start with no receiver and the init state (UIF = 0); under uintr-next
        they use the process's UITT (§11.7, emulator choice) from their first return to user."""
        t.uintr = ThreadUintr()

    def thread_exit(self, t: Thread) -> None:
        """Exit (§11.7): receiver torn down (SN := 1, inactive; later posts stay in PIR). The
        state on the CPU is dropped when the thread is switched out."""
        tu = t.uintr
        if tu is None:
            return
        if tu.receiver is not None:
            self._deactivate(tu.receiver)
            tu.receiver = None
        tu.image = None
        tu.uitt = None

    def exec(self, t: Thread) -> None:
        """execve (§11.7, §17 #6): nothing is inherited; the thread's UINTR state goes back to
        its initial configuration (XRSTORS of an init image, as the kernel resets FPU state)."""
        self.thread_exit(t)
        t.process.uitt = None
        t.uintr = ThreadUintr()
        cpu = self.k.sched.loaded_on(t)
        if cpu is not None and self.supported:
            cpu.uintr.xsaves()
            cpu.uintr.xrstors(None)

    def fork(self, parent: Process, child: Process) -> None:
        """fork (§11.7): nothing UINTR is inherited but the fds (UIF = 0, no receiver); under
        uintr-next the child gets a copy of the process's UITT (§17 #12)."""
        if self.abi == "next" and parent.uitt is not None:
            copy = Uitt(self.kmem.alloc(UITT_SIZE, 4096))
            copy.entries = list(parent.uitt.entries)
            copy.used = parent.uitt.used
            src = parent.uitt.addr - KERNEL_BASE
            dst = copy.addr - KERNEL_BASE
            self.kmem.data[dst : dst + UITT_SIZE] = self.kmem.data[src : src + UITT_SIZE]
            child.uitt = copy
