# A capture file written from C (see _dumpfile.pyx); cimported by the engine, whose capture
# queues it drains without a Python object per chunk.
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from wirecap._ring cimport RxRing


cdef struct Run:                # packets [start, count) of a chunk, to put into a file
    uint32_t chunk, first, start, count
    const uint8_t* mask         # per packet: 0 leaves it out; NULL: none left out
    uint32_t snaplen, interface
    uint64_t limit, max_bytes   # at most so many records; stop once so many bytes appended


cdef class Dumpfile:
    cdef int fd
    cdef uint8_t* buf
    cdef size_t cap, used
    cdef uint64_t offset                # file offset of buf[0]: what went out before it
    cdef uint64_t buffered              # records in the buffer
    cdef readonly int fmt
    cdef readonly object path
    cdef readonly uint64_t records      # records appended (on disk once flushed)
    cdef object failed                  # the WriteError that ended the file
    cdef bint rewound                   # written over from its start: cut at close()

    cdef int _write_all(self, const uint8_t* p, size_t size) noexcept nogil
    cdef int _drain(self) noexcept nogil
    cdef void _appended(self, uint8_t* w, uint64_t records) noexcept nogil
    cdef int _room(self, size_t size) noexcept nogil
    cdef int put_run(self, RxRing q, Run* r, uint32_t* next, uint64_t* n) noexcept nogil
    cdef _check(self, int err)
    cdef _usable(self)
