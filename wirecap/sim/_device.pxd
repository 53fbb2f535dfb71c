from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from wirecap.sim._iommu cimport Iommu, Mapping

# What the receive path needs to know about a frame, independent of device configuration.
# The wire parses each template once; the hash fields cache the RSS hash for one key.
cdef struct FrameInfo:
    uint32_t ptype          # RXDADV_PKTTYPE_* bits
    uint16_t l3_off         # offset of the IP header (0 if not IP)
    uint8_t l4              # 6 TCP, 17 UDP, 0 other or fragment
    uint8_t is_v6
    uint8_t ip_csum_bad
    uint8_t dst_class       # 0 unicast, 1 multicast, 2 broadcast
    uint8_t rss_type        # cached with hash
    uint32_t hash_gen       # device RSS configuration the cached hash belongs to (0: none)
    uint32_t hash

cdef void parse_frame(const uint8_t* d, uint32_t n, FrameInfo* fi) noexcept nogil

cdef struct RxQ:
    uint64_t ring_iova
    uint8_t* ring           # cached translation of the ring, valid for ring_gen
    uint64_t ring_gen
    uint32_t ndesc
    uint32_t head
    uint32_t tail
    uint32_t bufsize
    uint8_t enabled
    uint8_t drop_en
    uint8_t legacy
    uint8_t stat            # RQSMR statistics index
    uint8_t blocked         # head of the packet buffer waits for this queue (RNBC counted)
    Mapping bufmap          # this queue's IOMMU cache for packet buffers, valid for ring_gen
    uint32_t rdh_w          # register word indices of RDH/RDT
    uint32_t rdt_w

cdef struct TxQ:
    uint64_t ring_iova
    uint32_t ndesc
    uint32_t head
    uint32_t tail
    uint8_t enabled
    uint8_t stat            # TQSM statistics index
    uint64_t wb_iova        # TDWBAL/H head write-back address (0: off)
    uint32_t tdh_w

cdef struct PbEntry:        # a frame waiting in the on-chip receive packet buffer
    uint32_t off
    uint32_t len
    uint32_t queue
    uint32_t hash
    uint32_t pkt_info
    uint32_t status

cdef class Device:
    cdef readonly int index
    cdef readonly Iommu iommu
    cdef uint32_t* regs
    cdef uint8_t* handler
    cdef uint8_t* qidx
    cdef uint32_t* canon
    cdef uint32_t* reset_val        # per word: the register table's reset value
    cdef uint32_t* wmask            # per word: the bits software writes (self-clearing excluded)
    cdef uint32_t* unknown_log      # (offset, is_write, value) of the first unknown accesses
    cdef readonly bint strict
    cdef uint16_t nvm[64]
    cdef RxQ rxq[128]
    cdef TxQ txq[128]
    cdef uint64_t* stat
    cdef uint32_t* latch
    cdef uint64_t* diag
    cdef uint8_t* pb
    cdef PbEntry* pbq
    cdef uint32_t pb_head, pb_count, pb_cap_entries
    cdef uint64_t pb_tail           # storage: where the next frame's bytes go
    cdef uint64_t pb_bytes          # accounting against RXPBSIZE: frames with FCS
    cdef uint32_t rss_gen
    cdef uint32_t toeplitz[36][256]
    cdef uint8_t reta[128]
    cdef int64_t reset_done_ns
    cdef int64_t link_up_ns
    cdef bint link_is_up            # link_up_ns has passed (saves a clock read per frame)
    cdef uint64_t rar[128]          # valid receive addresses (RAL/RAH with AV), as integers
    cdef int nrar
    cdef public int64_t reset_delay_ns
    cdef public int64_t link_delay_ns
    cdef Device peer
    cdef uint8_t* txbuf
    cdef public object wire
    cdef public bint keep_tx
    cdef public bint tx_deferred    # TDT writes only move the tail; process_tx() sends
    cdef uint8_t* sink_buf
    cdef uint64_t sink_len, sink_cap
    cdef uint32_t* sink_lens
    cdef uint64_t sink_n, sink_kept, sink_ncap
    cdef uint32_t* trace            # (offset, value) of register writes while tracing
    cdef uint32_t trace_n, trace_cap

    cdef int reg_read(self, uint32_t off, uint32_t* out) noexcept nogil
    cdef int reg_write(self, uint32_t off, uint32_t val) noexcept nogil
    cdef int rx_frame(self, const uint8_t* d, uint32_t n, FrameInfo* fi) noexcept nogil

    cdef void _def(self, int off, int h, int q=*, int canon=*)
    cdef int _unknown(self, uint32_t off, uint32_t is_write, uint32_t val) noexcept nogil
    cdef void _reset(self, int64_t now) noexcept nogil
    cdef void _rebuild_toeplitz(self) noexcept nogil
    cdef bint _link_up(self, int64_t now) noexcept nogil
    cdef void _link_event(self, int64_t now) noexcept nogil
    cdef void _link_down(self, int64_t up_at) noexcept nogil
    cdef void _update_rar(self) noexcept nogil
    cdef uint32_t _read(self, uint32_t w, int64_t now) noexcept nogil
    cdef void _write(self, uint32_t w, uint32_t val, int64_t now) noexcept nogil
    cdef void _enable_rx(self, uint32_t q) noexcept nogil
    cdef void _enable_tx(self, uint32_t q) noexcept nogil
    cdef void _count_good(self, const uint8_t* d, uint32_t wire_len, FrameInfo* fi) noexcept nogil
    cdef uint32_t _classify(self, const uint8_t* d, uint32_t n, FrameInfo* fi) noexcept nogil
    cdef int _dma_rx(self, uint32_t qi, const uint8_t* d, uint32_t n, uint32_t pkt_info,
                     uint32_t hash, uint32_t status) noexcept nogil
    cdef void _pb_push(self, const uint8_t* d, uint32_t n, uint32_t q, uint32_t pkt_info,
                       uint32_t hash, uint32_t status) noexcept nogil
    cdef void _drain(self) noexcept nogil
    cdef void _transmit(self, uint32_t qi, int64_t now) noexcept nogil
    cdef void _emit(self, uint32_t qi, uint32_t flen, bint ifcs, int64_t now) noexcept nogil
    cdef void _sink(self, uint32_t n) noexcept nogil
