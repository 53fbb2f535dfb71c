# The register interface (DESIGN §2): the one thing a driver needs of the device behind it.
# Implemented by volatile MMIO on a vfio BAR (wirecap._mmio.BarRegs) and by the model's
# register handlers (wirecap.sim._regs.ModelRegs); the driver holds a Regs and names neither.
from libc.stdint cimport uint32_t, int64_t


cdef class Regs:
    cdef public object device           # the device driving these registers (reset closes it)
    cdef uint32_t read32(self, uint32_t off) noexcept nogil
    cdef void write32(self, uint32_t off, uint32_t val) noexcept nogil
    cdef void sync(self, int64_t now) noexcept nogil   # now = CLOCK_MONOTONIC ns; no-op on silicon
