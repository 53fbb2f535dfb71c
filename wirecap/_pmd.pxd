# The poll-mode driver's typed core (DESIGN §4). Python sees the def methods of these classes;
# the engine's nogil loops call the cdef methods.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from wirecap._dma cimport Domain, Region
from wirecap.sim._device cimport Device as SimDevice




cdef class Regs:
    """Register access: the one small interface between the driver and a device."""
    cdef uint32_t read(self, uint32_t off) noexcept nogil
    cdef void write(self, uint32_t off, uint32_t val) noexcept nogil


cdef class MmioRegs(Regs):              # BAR0 of an 82599 bound to vfio-pci
    cdef volatile uint32_t* bar
    cdef object _owner


cdef class ModelRegs(Regs):             # the model's register handlers
    cdef SimDevice dev
    cdef public int64_t bad_offset      # first offset the model refused (-1: none)


cdef struct ChunkState:
    uint32_t gen                # bumped each time the chunk leaves the free list
    uint8_t state               # CH_FREE, CH_ARMED or CH_CAPTURED
    uint32_t seg                # segment it is attached to, while armed
    uint32_t deliveries         # deliveries handed out and not yet recycled
    uint32_t next_free




cdef struct Delivery:           # a run of captured packets in one chunk
    uint64_t token
    uint32_t chunk
    uint32_t first
    uint32_t count


cdef class Nic:
    cdef readonly str name
    cdef readonly Domain domain
    cdef Regs regs
    cdef readonly object model          # the sim Device behind sim:N, else None
    cdef readonly object vfio           # the vfio device behind pci:..., else None
    cdef dict _totals
    cdef list _queues
    cdef uint32_t r32(self, uint32_t off)
    cdef void w32(self, uint32_t off, uint32_t val)


cdef class RxRing:
    """What the engine and Chunk need from a receive queue, whatever the device: the pool,
    per-packet metadata indexed by k = chunk * segment + i, and capture/recycle. Packet k's
    bytes are pool[offset[k]:offset[k] + length[k]]."""
    cdef readonly object device         # the Nic or AF_PACKET device the queue belongs to
    cdef readonly int index
    cdef readonly uint32_t segment, chunks
    cdef readonly uint64_t max_deliveries   # deliveries that can be outstanding at once
    cdef uint16_t pool_id
    cdef readonly object pool_array     # the pool as one numpy uint8 array (zero-copy)
    cdef object _arrays                 # numpy arrays that own the metadata below
    cdef uint8_t* pool
    cdef uint64_t* offset
    cdef uint64_t* ts
    cdef uint32_t* rss
    cdef uint32_t* status
    cdef uint32_t* info
    cdef uint16_t* length

    cdef int capture(self, Delivery* out, int64_t now) noexcept nogil
    cdef int capture_all(self, Delivery* out, int64_t now) noexcept nogil
    cdef int recycle_token(self, uint64_t token) noexcept nogil
    cdef void idle(self, int wake_fd) noexcept nogil


cdef uint16_t new_pool_id() noexcept


cdef class RxQueue(RxRing):
    cdef readonly Nic nic
    cdef readonly uint32_t ndesc, bufsize, nseg
    cdef readonly int64_t flush_ns
    cdef Regs regs
    cdef uint32_t rdt_off
    cdef Region ring_mem, pool_mem
    cdef uint8_t* ring
    cdef uint64_t pool_iova
    cdef uint8_t* open_bits             # per packet buffer: a delivery starting here is out
    cdef ChunkState* ch
    cdef uint32_t* tx_refs              # per chunk: zero-copy sends not yet completed (atomic)
    cdef uint32_t* waiting              # captured chunks whose last sends are in flight
    cdef uint32_t nwaiting
    cdef int32_t* seg_chunk             # per segment: attached chunk, -1 if unarmed
    cdef uint32_t cur_seg, seg_done, arm_seg, unarmed
    cdef uint32_t free_head, nfree, narmed, ncaptured
    cdef int64_t pending_since
    cdef readonly uint64_t packets, bytes, deliveries, flushes, recycled, refused, tx_completed
    cdef readonly uint64_t pool_empty_events

    cdef int capture(self, Delivery* out, int64_t now) noexcept nogil
    cdef int capture_all(self, Delivery* out, int64_t now) noexcept nogil
    cdef int recycle_token(self, uint64_t token) noexcept nogil
    cdef void _attach(self, uint32_t seg, uint32_t c) noexcept nogil
    cdef void _arm_pending(self) noexcept nogil
    cdef void _free_chunk(self, uint32_t c) noexcept nogil
    cdef void _check_waiting(self) noexcept nogil
    cdef void _retire(self, uint32_t c) noexcept nogil
    cdef uint32_t _harvest(self, uint32_t c, uint32_t first, uint32_t upto,
                           int64_t now) noexcept nogil


cdef class Chunk:
    cdef readonly RxRing queue
    cdef readonly uint64_t token
    cdef readonly uint32_t index, first, count
    cdef public bint released

    @staticmethod
    cdef Chunk _make(RxRing q, Delivery d)


cdef class TxQueue:
    cdef readonly Nic nic
    cdef readonly int index
    cdef readonly uint32_t ndesc, bufsize
    cdef Regs regs
    cdef uint32_t tdt_off
    cdef Region ring_mem, copy_mem
    cdef uint8_t* ring
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
