# The 82599 poll-mode driver's typed core (DESIGN §4). Python sees the def methods of these
# classes; the engine's nogil loops call the cdef methods of the shared ring (_ring.pxd).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from wirecap._dma cimport Domain, Region
from wirecap._regs cimport Regs
from wirecap._ring cimport RxRing, Chunk, Delivery


cdef class Nic:
    cdef readonly str name
    cdef readonly Domain domain
    cdef readonly Regs regs
    cdef readonly object port           # what the registers belong to (wirecap.devices)
    cdef dict _totals
    cdef list _queues
    cdef bint _closed
    cdef uint32_t r32(self, uint32_t off)
    cdef void w32(self, uint32_t off, uint32_t val)


cdef class RxQueue(RxRing):
    cdef readonly Nic nic
    cdef readonly uint32_t ndesc, bufsize, nseg
    cdef readonly uint32_t stride       # bytes from one packet buffer to the next
    cdef readonly int64_t flush_ns
    cdef Regs regs
    cdef uint32_t rdt_off
    cdef Region ring_mem, pool_mem
    cdef uint8_t* ring
    cdef uint64_t pool_iova
    cdef object _own                    # numpy arrays behind tx_refs, waiting, seg_chunk
    cdef uint32_t* tx_refs              # per chunk: zero-copy sends not yet completed (atomic)
    cdef uint32_t* waiting              # captured chunks whose last sends are in flight
    cdef int32_t* seg_chunk             # per segment: attached chunk, -1 if unarmed
    cdef uint32_t cur_seg, seg_done, arm_seg, unarmed
    cdef int64_t pending_since

    cdef void _attach(self, uint32_t seg, uint32_t c) noexcept nogil
    cdef void _arm_pending(self) noexcept nogil
    cdef void _free_chunk(self, uint32_t c) noexcept nogil
    cdef void _check_waiting(self) noexcept nogil
    cdef uint32_t _harvest(self, uint32_t c, uint32_t first, uint32_t upto) noexcept nogil


cdef class TxQueue:
    cdef readonly Nic nic
    cdef readonly int index
    cdef readonly uint32_t ndesc, bufsize
    cdef Regs regs
    cdef uint32_t tdt_off
    cdef Region ring_mem, copy_mem
    cdef uint8_t* ring                  # NULL once closed
    cdef uint8_t* copy
    cdef uint64_t copy_iova
    cdef uint32_t** src_refs            # per descriptor: tx_refs array of the sending pool
    cdef uint32_t* src_chunk            # ... and the chunk (src_refs NULL: a copy buffer)
    cdef list _sources                  # keeps the receive queues behind src_refs alive
    cdef uint32_t tail, clean, pushed
    cdef readonly uint64_t sent, sent_bytes, completed, zero_copy

    cdef int send_zero_copy(self, RxQueue src, uint32_t chunk, uint32_t pkt,
                            uint32_t length) noexcept nogil
    cdef uint32_t reap(self) noexcept nogil
    cdef void push(self) noexcept nogil
    cdef void _put(self, uint64_t addr, uint32_t length) noexcept nogil
    cdef bint _full(self) noexcept nogil
