# The two clocks wirecap reads: CLOCK_MONOTONIC for intervals and the model's schedule (what
# Regs.sync(now) takes), CLOCK_REALTIME for packet timestamps (ns since the epoch, as pcap).
from libc.stdint cimport int64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC, CLOCK_REALTIME


cdef inline int64_t mono_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline int64_t wall_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return ts.tv_sec * 1000000000 + ts.tv_nsec
