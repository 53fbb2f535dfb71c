# The device-neutral receive side (DESIGN §2): pool, chunks, free list, per-packet metadata,
# deliveries and their handles. The 82599 queue (_pmd.RxQueue) and the AF_PACKET queue
# (afpacket._ring.AfRxQueue) derive from RxRing; the engine, the pcap path and the handler
# bench see only what is declared here.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t

cdef enum:
    CH_FREE = 0                 # on the free list
    CH_ARMED = 1                # with the device (attached to a segment, or a kernel block)
    CH_CAPTURED = 2             # detached: its packets are the application's

# A delivery's token: pool id (16 bits) | the chunk's generation (48 bits). The generation
# moves each time the chunk goes back to the device, so a handle from an earlier use is
# stale; 2^48 uses of one chunk take decades at 10 GbE line rate in the smallest geometry.
cdef enum:
    TOKEN_GEN_BITS = 48

cdef struct Delivery:           # a run of captured packets in one chunk
    uint64_t token
    uint32_t chunk
    uint32_t first              # the run's first buffer in its chunk
    uint32_t count


cdef struct ChunkState:
    uint64_t gen                # the chunk's current use (see the token)
    uint32_t deliveries         # deliveries handed out and not yet recycled
    uint32_t seg                # segment it is attached to, while armed (82599)
    uint32_t next_free
    uint8_t state               # CH_FREE, CH_ARMED or CH_CAPTURED


# What a queue's capture thread may sleep on when it finds no work (RxRing.wait_fd)
cdef enum:
    WAIT_POLL = -1              # nothing: the device tells no one, it must be polled (napping)
    WAIT_RECYCLE = -2           # only a chunk coming back can bring work (the device waits too)


cdef inline uint64_t gen_bits(uint64_t gen) noexcept nogil:
    return gen & ((<uint64_t>1 << TOKEN_GEN_BITS) - 1)


cdef inline uint64_t make_token(uint16_t pool, uint64_t gen) noexcept nogil:
    return (<uint64_t>pool << TOKEN_GEN_BITS) | gen_bits(gen)


cdef uint16_t new_pool_id() noexcept


cdef class RxRing:
    """A receive queue whatever the device: R chunks of M packet buffers in one pool, and
    per-packet metadata in columns indexed by k = chunk * M + i (includes/packet.pxd).
    Packet k of chunk c starts offset[k] bytes into the chunk (chunk c is pool[c * chunk_bytes:
    (c + 1) * chunk_bytes]) and holds caplen[k] bytes; it was wire_len[k] bytes on the wire
    (more than caplen when the device cut it short, or beyond 65535)."""
    cdef readonly object device         # the device the queue belongs to
    cdef readonly int index
    cdef readonly uint32_t segment, chunks
    cdef readonly uint64_t chunk_bytes      # bytes of pool per chunk
    cdef readonly uint64_t max_deliveries   # deliveries that can be outstanding at once
    cdef uint16_t pool_id
    cdef readonly object pool_array     # the pool as one numpy uint8 array (zero-copy)
    cdef object _arrays                 # numpy arrays that own the columns below
    cdef uint8_t* pool                  # NULL once the queue is closed
    cdef uint32_t* offset               # from the start of the packet's chunk
    cdef uint16_t* caplen
    cdef uint32_t* wire_len
    cdef uint32_t* status               # device status/error bits
    cdef uint32_t* info                 # device packet info (packet type), 0 where none
    cdef uint32_t* rss
    cdef uint64_t* ts                   # ns since the epoch
    cdef uint8_t* open_bits             # per buffer: a delivery starting here is out
    cdef ChunkState* ch
    cdef uint32_t free_head, free_tail, nfree, narmed, ncaptured, nwaiting
    cdef readonly uint64_t packets, bytes, deliveries, flushes, recycled, refused
    cdef readonly uint64_t pool_empty_events

    cdef int capture(self, Delivery* out, int64_t now) noexcept nogil
    cdef int capture_all(self, Delivery* out, int64_t now) noexcept nogil
    cdef int recycle_delivery(self, const Delivery* d) noexcept nogil
    cdef void retire(self, uint32_t c) noexcept nogil
    cdef int wait_fd(self) noexcept nogil
    cdef void idle(self) noexcept nogil
    cdef bint receiving(self) noexcept nogil
    cdef void deliver(self, Delivery* out, uint32_t c, uint32_t first,
                      uint32_t count) noexcept nogil
    cdef void push_free(self, uint32_t c) noexcept nogil
    cdef uint32_t pop_free(self) noexcept nogil
    cdef _columns(self, uint32_t chunks, uint32_t segment, uint64_t chunk_bytes, offsets)


cdef inline uint8_t* packet_bytes(RxRing q, uint32_t chunk, size_t k) noexcept nogil:
    """Where packet k (a row of chunk ``chunk``) lies in the pool."""
    return q.pool + chunk * q.chunk_bytes + q.offset[k]


cdef class Chunk:
    cdef readonly RxRing queue
    cdef uint64_t _token
    cdef readonly uint32_t index, first, count
    cdef readonly bint released

    @staticmethod
    cdef Chunk _make(RxRing q, Delivery d)
    cdef void _fill(self, RxRing q, Delivery d)
    cdef Delivery delivery(self)
    cpdef _live(self)
