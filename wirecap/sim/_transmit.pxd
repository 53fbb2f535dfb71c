from libc.stdint cimport uint32_t, int64_t
from wirecap.sim._state cimport DeviceState

cdef void transmit(DeviceState s, uint32_t qi, int64_t now) noexcept nogil
cdef void enable_tx(DeviceState s, uint32_t q) noexcept nogil
