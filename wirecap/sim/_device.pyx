"""A software Intel 82599 port: the Python face of the model (DESIGN §3).

It follows the datasheet, not our driver. The parts, one file each: the register file and its
dispatch (_registers), the receive path (_receive), the transmit path (_transmit), the
statistics (_counters), frame parsing, FCS and Toeplitz (_frame), the driver's clock (_clock),
over the state they share (_state). Device adds register access for drivers (``reg_read``/
``reg_write``/``sync_at`` without the GIL, ``read32``/``write32``/``sync`` from Python),
cabling, synchronous delivery and inspection.

Deliberate simplifications, each documented in docs/model.md: one packet buffer (no DCB/VMDq),
no header split, no RSC, no VLAN stripping, no flow control; write-back happens per descriptor
(as with WTHRESH = 0); TX descriptors are processed synchronously on the TDT write.
"""
import os

from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, free

cimport wirecap.ixgbe as r
from wirecap.errors import WirecapError
from wirecap.sim._counters cimport D_UNKNOWN_ACCESS
from wirecap.sim._counters import DIAGNOSTICS
from wirecap.sim._frame cimport FrameInfo, parse_frame
from wirecap.sim._iommu cimport Iommu, model_lock, model_unlock
from wirecap.sim cimport _clock, _receive, _registers
from wirecap.sim._registers import define_registers
from wirecap.includes.clocks cimport mono_ns
from wirecap.sim._state cimport DeviceState, NVM_WORDS, UNKNOWN_LOG, now_ns
from wirecap.sim._transmit cimport transmit


class ModelError(WirecapError):
    """A register access the 82599 does not allow (unaligned, outside BAR0; in strict mode, an
    offset where no register is)."""


cdef class Device(DeviceState):
    """One 82599 port. Register access: ``read32``/``write32`` (or the nogil ``reg_*``)."""

    def __init__(self, int index=0, Iommu iommu=None, strict=None):
        # strict: an offset where no register is raises instead of reading 0 (our tests)
        self.strict = bool(strict) if strict is not None else \
            os.environ.get("WIRECAP_MODEL_STRICT", "") not in ("", "0")
        define_registers(self)
        _registers.reset(self, mono_ns())               # power-on behaves like a reset

    # -------------------------------------------------------------- register access
    cdef int reg_read(self, uint32_t off, uint32_t* out) noexcept nogil:
        """0 on success, -1: unaligned/outside BAR0, -2: no register at off."""
        return _registers.reg_read(self, off, out)

    cdef int reg_write(self, uint32_t off, uint32_t val) noexcept nogil:
        return _registers.reg_write(self, off, val)

    cdef void sync_at(self, int64_t now) noexcept nogil:
        """The driver's poll hook (Regs.sync): deliver the frames due by ``now`` (_clock)."""
        _clock.sync(self, now)

    # -------------------------------------------------------------- the driver's clock
    def sync(self, bint poll=False):
        """Deliver every frame due by now, as a register access would; returns when done.
        ``poll``: as the driver's poll hook instead (Regs.sync): frames due less than 2 us
        ago may wait, another thread's delivery is not waited for, and counters may be left
        to count until something reads them."""
        cdef int64_t now
        cdef bint locked
        with nogil:
            if poll:
                _clock.sync(self, mono_ns())
            else:
                locked = _clock.enter(self, &now)
                _clock.leave(self, locked)

    def clock_stats(self):
        """What catching up with the wire's schedule cost the threads that touched the port:
        wall-clock ns spent delivering (preemption included), frames delivered, rounds
        (docs/model.md, "Time")."""
        return {"catchup_ns": self.catchup_ns, "catchup_frames": self.catchup_frames,
                "catchups": self.catchups}

    # -------------------------------------------------------------- Python API
    def read32(self, uint32_t offset):
        """Read the 32-bit register at BAR0 ``offset``, with the register's side effects."""
        cdef uint32_t v
        cdef int rc
        with nogil:
            rc = self.reg_read(offset, &v)
        if rc:
            raise ModelError(_access_error(offset, rc))
        return v

    def write32(self, uint32_t offset, uint32_t value):
        """Write the 32-bit register at BAR0 ``offset``, with the register's side effects."""
        cdef int rc
        with nogil:
            rc = self.reg_write(offset, value)
        if rc:
            raise ModelError(_access_error(offset, rc))

    def cable(self, Device other):
        """Connect this port to ``other``: each one's transmitted frames reach the other."""
        if other is self:
            raise WirecapError("cable: a port cannot be cabled to itself (use HLREG0.LPBK)")
        self.peer = other
        other.peer = self

    def uncable(self):
        if self.peer is not None:
            self.peer.peer = None
            self.peer = None

    @property
    def cabled_to(self):
        return self.peer

    @property
    def mac(self):
        """The MAC address the NVM loads into RAL(0)/RAH(0)."""
        return "02:57:43:50:%02x:00" % (self.index & 0xFF)

    def deliver(self, frames):
        """Synchronously put frames (bytes without FCS) on this port's receive side.
        Returns how many were delivered or queued on chip."""
        cdef FrameInfo fi
        cdef const uint8_t[::1] view
        cdef int took = 0
        cdef int64_t now
        cdef bint locked
        for frame in frames:
            view = bytes(frame) if not isinstance(frame, bytes) else frame
            if view.shape[0] == 0:
                raise ValueError("deliver: an empty frame cannot be put on the wire")
            parse_frame(&view[0], view.shape[0], &fi)
            with nogil:
                locked = _clock.enter(self, &now)       # after the frames due before it
                model_lock()
                took += _receive.rx_frame(self, &view[0], view.shape[0], &fi, now) == 0
                model_unlock()
                _clock.leave(self, locked)
        return took

    def transmitted(self):
        """(count, frames kept) of what this port sent to its sink (not to a cable)."""
        cdef uint64_t i, off = 0
        frames = []
        if self.sink_kept:
            for i in range(self.sink_kept):
                frames.append(bytes(self.sink_buf[off:off + self.sink_lens[i]]))
                off += self.sink_lens[i]
        return self.sink_n, frames

    def process_tx(self):
        """With ``tx_deferred``: send what the TDT writes so far handed over, now."""
        cdef uint32_t q
        with nogil:
            model_lock()
            for q in range(128):
                if self.txq[q].enabled and self.txq[q].head != self.txq[q].tail:
                    transmit(self, q, mono_ns())
            model_unlock()

    def start_trace(self, int capacity=100000):
        """Record register writes (offset, value), as a bus analyzer would, up to capacity."""
        free(self.trace)
        self.trace = <uint32_t*>malloc(8 * capacity)
        if self.trace == NULL:
            raise MemoryError("register trace")
        self.trace_n, self.trace_cap = 0, capacity

    def stop_trace(self):
        """The writes recorded since start_trace(), oldest first; tracing stops."""
        writes = [(self.trace[2 * i], self.trace[2 * i + 1]) for i in range(self.trace_n)]
        self.trace_cap = self.trace_n = 0
        return writes

    def pending(self):
        """Frames waiting in the on-chip receive packet buffer."""
        return self.pb_count

    def diagnostics(self):
        """Model-only counters (not registers): what the datasheet's counters do not see."""
        with nogil:
            _clock.settle(self)
        return {name: self.diag[i] for i, name in enumerate(DIAGNOSTICS)}

    def unknown_accesses(self):
        """The first accesses to offsets where no register is: (offset, 'read'|'write', value)."""
        n = min(self.diag[D_UNKNOWN_ACCESS], UNKNOWN_LOG)
        return [(self.unknown_log[3 * i], "write" if self.unknown_log[3 * i + 1] else "read",
                 self.unknown_log[3 * i + 2]) for i in range(n)]

    def nvm_word(self, int word):
        """The NVM word EERD returns for ``word`` (0xFFFF beyond the image: erased)."""
        return self.nvm[word] if 0 <= word < NVM_WORDS else 0xFFFF



def _access_error(uint32_t offset, int rc):
    if rc == -1:
        return (f"register access at {offset:#x}: offsets must be 4-byte aligned and below "
                f"BAR0's size {r.BAR0_SIZE:#x}")
    return (f"register access at {offset:#x}: no 82599 register there (strict mode; the "
            f"register table is wirecap/registers/82599.txt)")
