from libc.stdint cimport int64_t
from wirecap._regs cimport Regs
from wirecap.sim._device cimport Device


cdef class ModelRegs(Regs):             # the model's register handlers behind Regs
    cdef readonly Device dev
    cdef public int64_t bad_offset      # first offset the model refused (-1: none)
