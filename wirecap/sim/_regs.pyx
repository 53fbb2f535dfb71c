"""The model behind the register interface: what ``sim:N`` is to the driver.

``attach(index)`` is what wirecap.devices calls for ``sim:N``: the registers of model port N,
a DMA domain through the model's IOMMU, and the port itself (its wire, its diagnostics).
"""
from libc.stdint cimport uint32_t, int64_t

from wirecap._regs cimport Regs
from wirecap.sim._device cimport Device
from wirecap._dma import Domain
from wirecap.errors import WirecapError

_attached = {}                          # port index -> the ModelRegs a device drives


cdef class ModelRegs(Regs):
    """Register accesses as the model's handlers; a refused access is remembered."""

    def __cinit__(self, Device dev):
        self.dev = dev
        self.bad_offset = -1

    cdef uint32_t read32(self, uint32_t off) noexcept nogil:
        cdef uint32_t v = 0
        if self.dev.reg_read(off, &v) and self.bad_offset < 0:
            self.bad_offset = off
        return v

    cdef void write32(self, uint32_t off, uint32_t val) noexcept nogil:
        if self.dev.reg_write(off, val) and self.bad_offset < 0:
            self.bad_offset = off

    cdef void sync(self, int64_t now) noexcept nogil:
        self.dev.sync_at(now)           # the frames due by now meet the rings first

    def fault(self):
        if self.bad_offset < 0:
            return None
        return f"the device refused register {self.bad_offset:#x} (a driver bug)"

    def release(self):
        if _attached.get(self.dev.index) is self:
            del _attached[self.dev.index]


def attach(str where, domain=None):
    """(registers, DMA domain, model port) of ``sim:<where>``; ``domain`` to share DMA memory
    (and the model's IOMMU) with ports opened before."""
    from wirecap import sim
    if not where.isdigit() or len(where) > 6:
        raise WirecapError(f"sim:{where}: name a model port by its number, e.g. sim:0")
    index = int(where)
    if index in _attached:
        raise WirecapError(f"sim:{index} is in use by this process: close() the other handle "
                           f"first (or wirecap.sim.reset() for fresh ports)")
    port = sim.open(index, None if domain is None else domain.mapper)
    regs = ModelRegs(port)
    _attached[index] = regs
    return regs, (domain if domain is not None else Domain(port.iommu)), port


def reset():
    """Close every device driving a model port and forget the ports: the next attach gets a
    port fresh from power-on."""
    for regs in list(_attached.values()):
        if regs.device is not None:
            regs.device.close()
    _attached.clear()
