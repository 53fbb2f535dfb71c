# Where packet i of a delivery sits in a receive queue's metadata columns: chunk c's buffers
# are rows c*M .. c*M + M-1, and a delivery starts at row ``first`` of its chunk.
from libc.stdint cimport uint32_t


cdef inline size_t packet_index(uint32_t chunk, uint32_t segment, uint32_t first,
                                uint32_t i) noexcept nogil:
    return <size_t>chunk * segment + first + i
