"""The register interface: 32-bit reads and writes at BAR0 offsets, and a sync point.

``sync(now)`` is called by the driver wherever it looks for completed descriptors (receive
capture, transmit reap). Silicon needs nothing there; a device model uses it to bring itself
up to ``now`` (CLOCK_MONOTONIC ns) before the driver reads what it wrote to memory.
"""
from libc.stdint cimport uint32_t, int64_t


cdef class Regs:
    cdef uint32_t read32(self, uint32_t off) noexcept nogil:
        return 0

    cdef void write32(self, uint32_t off, uint32_t val) noexcept nogil:
        pass

    cdef void sync(self, int64_t now) noexcept nogil:
        pass

    def fault(self):
        """None, or what the device refused since it was attached (a driver bug): silicon
        refuses nothing it can report, a model names the register."""
        return None

    def release(self):
        """Give the port back when its device closes (a model port may then be opened again)."""
