"""Silicon: an 82599 bound to vfio-pci, its registers as volatile MMIO on BAR0.

``attach(bdf)`` is what wirecap.devices calls for ``pci:BDF``: the registers, the DMA domain
of the device's vfio container, and the vfio device itself.
"""
from libc.stdint cimport uint8_t, uint32_t, int64_t

from wirecap.includes.atomics cimport ld32, st32
from wirecap._regs cimport Regs
from wirecap._dma import Domain


cdef class BarRegs(Regs):
    """Volatile 32-bit accesses to BAR0 as vfio mapped it."""
    cdef volatile uint32_t* bar
    cdef object _owner

    def __cinit__(self, size_t address, object owner):
        self.bar = <volatile uint32_t*>address
        self._owner = owner             # keeps the mapping alive

    cdef uint32_t read32(self, uint32_t off) noexcept nogil:
        return ld32(<const void*>(<uint8_t*>self.bar + off))

    cdef void write32(self, uint32_t off, uint32_t val) noexcept nogil:
        st32(<void*>(<uint8_t*>self.bar + off), val)


def attach(str bdf, domain=None):
    """(registers, DMA domain, vfio device) of the 82599 at ``bdf`` (bound to vfio-pci);
    ``domain`` to share DMA memory with ports opened before."""
    from wirecap import _vfio
    dev = _vfio.open_pci(bdf, container=None if domain is None else domain.mapper)
    return BarRegs(dev.bar0_addr, dev), (domain if domain is not None else
                                         Domain(dev.container)), dev
