from libc.stdint cimport uint8_t, uint32_t, int64_t
from wirecap.sim._frame cimport FrameInfo, parse_frame
from wirecap.sim._state cimport DeviceState

cdef class Device(DeviceState):
    cdef public object wire

    cdef int reg_read(self, uint32_t off, uint32_t* out) noexcept nogil
    cdef int reg_write(self, uint32_t off, uint32_t val) noexcept nogil
    cdef void sync_at(self, int64_t now) noexcept nogil
