from libc.stdint cimport int64_t
from wirecap.sim._state cimport DeviceState, Arrivals

cdef void sync(DeviceState s, int64_t now) noexcept nogil
cdef bint enter(DeviceState s, int64_t* now, bint settle=*) noexcept nogil
cdef void leave(DeviceState s, bint locked) noexcept nogil
cdef void attach(DeviceState s, Arrivals a, int64_t first_due)
cdef void detach(DeviceState s, Arrivals a)
cdef void settle(DeviceState s) noexcept nogil
