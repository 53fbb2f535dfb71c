from libc.stdint cimport uint8_t, uint32_t, int64_t
from wirecap.sim._frame cimport FrameInfo
from wirecap.sim._state cimport DeviceState

cdef int rx_frame(DeviceState s, const uint8_t* d, uint32_t n, FrameInfo* fi,
                  int64_t at) noexcept nogil
cdef void drain(DeviceState s) noexcept nogil
cdef void enable_rx(DeviceState s, uint32_t q) noexcept nogil
