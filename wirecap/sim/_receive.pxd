from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
cimport wirecap.ixgbe as r
from libc.string cimport memcpy
from wirecap.includes.atomics cimport ld32, ld64, st32, st64
from wirecap.sim._iommu cimport cached
from wirecap.sim._frame cimport FrameInfo
from wirecap.sim._state cimport DeviceState, RxQ

cdef enum:                  # what the MAC and the L2 filter decide for a frame (FrameInfo.verdict)
    V_DELIVER = 0           # on to its RSS queue
    V_RX_DISABLED           # RXCTRL.RXEN clear or the security block holds RX
    V_RUNT                  # shorter than 64 bytes: RUC
    V_LONG                  # longer than the MAC's limit: ROC
    V_FILTERED              # no L2 filter accepts its destination

cdef enum:                  # what rx_fast did with a frame
    FAST_NONE = 0           # nothing: the frame needs rx_frame
    FAST_DMA                # written to its ring; count it with count_rx_fast
    FAST_FULL               # dropped for want of a descriptor (DROP_EN); count_ring_full

cdef enum:
    # how far ahead on the wire the packet buffers of coming frames are fetched for writing,
    # spread over the queues that receive (DeviceState.rx_prefetch descriptors each): nearer
    # is fetched too late, farther is fetched too early to still be there (measured)
    PREFETCH_FRAMES = 16

cdef extern from *:
    """
    #define wc_prefetch_w(p) __builtin_prefetch((p), 1, 3)
    """
    void prefetch_w "wc_prefetch_w"(const void* p) noexcept nogil

cdef int rx_frame(DeviceState s, const uint8_t* d, uint32_t n, FrameInfo* fi,
                  int64_t at) noexcept nogil
cdef void count_ring_full(DeviceState s, const FrameInfo* fi, uint32_t n,
                          uint64_t k) noexcept nogil
cdef void count_rx_fast(DeviceState s, const FrameInfo* fi, uint32_t n,
                        uint64_t k) noexcept nogil
cdef void drain(DeviceState s) noexcept nogil
cdef void enable_rx(DeviceState s, uint32_t q) noexcept nogil
cdef void disable_rx(DeviceState s, uint32_t q) noexcept nogil


cdef inline void write_back(RxQ* q, uint32_t i, uint32_t pkt_info, uint32_t hash,
                            uint32_t status, uint32_t length) noexcept nogil:
    # descriptor i done: the write-back format (7.1.6), DD last
    cdef uint8_t* desc = q.ring + i * r.DESC_SIZE
    if q.legacy:
        st64(desc + 8, <uint64_t>length |
             (<uint64_t>(r.RXD_STAT_DD | (r.RXD_STAT_EOP if status & r.RXDADV_STAT_EOP else 0))
              << 32))
    else:
        (<uint32_t*>desc)[0] = pkt_info
        (<uint32_t*>desc)[1] = hash
        st64(desc + 8, <uint64_t>status | (<uint64_t>length << 32))


cdef inline void prefetch_ahead(RxQ* q, uint32_t head, uint32_t ahead) noexcept nogil:
    # A pool of R chunks cycles R·M buffers through the ring, so the next buffers are cold:
    # fetch one ``ahead`` descriptors on, or every frame's copy waits for its cache line (a
    # DMA engine's writes cost the host nothing; the model's should cost it little). A stale
    # or not yet armed descriptor only wastes the prefetch.
    cdef uint32_t k
    cdef uint8_t* dst
    if ahead >= q.ndesc:
        return
    k = head + ahead if head + ahead < q.ndesc else head + ahead - q.ndesc
    dst = cached(&q.bufmap, ld64(q.ring + k * r.DESC_SIZE), 64)
    if dst != NULL:
        prefetch_w(dst)


cdef inline int rx_fast(DeviceState s, const uint8_t* d, uint32_t n, const FrameInfo* fi,
                        int patch_at, uint64_t patch) noexcept nogil:
    """rx_frame's common case, in a few instructions and without its counting, which the
    caller does later for many frames at once (count_rx_fast, count_ring_full) and before
    anything can read a counter: a frame whose admission is cached, the packet buffer empty,
    to a queue of one-buffer advanced descriptors with the CRC stripped. The 8 bytes at
    ``patch_at`` of the copy are ``patch`` (the wire's sequence number; none if negative), so
    the template is never written just before it is read. The caller holds the model lock."""
    cdef RxQ* q
    cdef uint32_t tail, head
    cdef uint8_t* dst
    if fi.cfg_gen != s.cfg_gen or fi.verdict != V_DELIVER or not s.link_is_up or s.pb_count:
        return FAST_NONE
    q = &s.rxq[fi.queue]
    tail = ld32(&q.tail)
    head = q.head
    if not q.enabled or tail >= q.ndesc or tail == head:    # no descriptor (dma_rx)
        return FAST_FULL if q.drop_en else FAST_NONE
    if q.legacy or n > q.bufsize or q.ring == NULL or q.ring_gen != s.iommu.generation or \
            not (s.regs[r.HLREG0 >> 2] & r.HLREG0_RXCRCSTRP):
        return FAST_NONE
    dst = cached(&q.bufmap, ld64(q.ring + head * r.DESC_SIZE), n)
    if dst == NULL:
        return FAST_NONE
    memcpy(dst, d, n)
    if patch_at >= 0:
        memcpy(dst + patch_at, &patch, 8)
    write_back(q, head, fi.pkt_info, fi.hash, fi.status, n)
    head = head + 1 if head + 1 < q.ndesc else 0
    st32(&q.head, head)
    prefetch_ahead(q, head, s.rx_prefetch)
    return FAST_DMA
