from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from wirecap.sim._iommu cimport Iommu, Mapping

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass

# The state one 82599 port keeps: registers, queues, counters, the packet buffer. Each role
# (_registers, _receive, _transmit) is a set of functions over it; Device adds the Python API.

cdef enum:
    NWORDS = 0x20000 // 4       # 32-bit words in BAR0 (ixgbe.BAR0_SIZE)
    NQUEUES = 128               # receive and transmit queues
    PB_MAX = 512 * 1024         # on-chip receive packet buffer, bytes (RXPBSIZE(0) at reset)
    TXBUF_MAX = 16384           # largest frame the transmit path gathers
    UNKNOWN_LOG = 256           # unknown accesses remembered (offset, read/write, value)
    NVM_WORDS = 64              # words of the NVM image: zeros and the checksum word

cdef extern from *:
    """
    #define WC_SIM_NOTHING_DUE INT64_MAX
    """
    const int64_t NOTHING_DUE "WC_SIM_NOTHING_DUE"   # Arrivals: no frame is due

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

cdef class DeviceState


cdef class Arrivals:
    """Frames due at the port's receive side on the driver's clock (the wire's schedule)."""
    # deliver, in arrival order, every frame due by ``upto`` (CLOCK_MONOTONIC ns); set
    # s.next_due; return how many. Called with the port's clock lock held (_clock).
    cdef uint64_t deliver(self, DeviceState s, int64_t upto) noexcept nogil
    # add to the counters what deliver() left to count in bulk: before anything reads a
    # counter (every register access, diagnostics), with the clock lock held
    cdef void settle(self, DeviceState s) noexcept nogil


cdef class DeviceState:
    cdef readonly int index
    cdef readonly Iommu iommu
    # register file: values, and per word its handler, queue index and canonical word
    cdef uint32_t* regs
    cdef uint8_t* handler
    cdef uint8_t* qidx
    cdef uint32_t* canon
    cdef uint32_t* reset_val        # per word: the register table's reset value
    cdef uint32_t* wmask            # per word: the bits software writes (self-clearing excluded)
    cdef uint32_t* unknown_log      # (offset, is_write, value) of the first unknown accesses
    cdef readonly bint strict       # an access where no register is raises (our tests)
    cdef uint16_t nvm[64]           # the NVM image EERD reads
    cdef uint32_t* latch            # high halves of 64-bit counters, latched by the low read
    cdef uint32_t* trace            # (offset, value) of register writes while tracing
    cdef uint32_t trace_n, trace_cap
    # queues
    cdef RxQ rxq[128]
    cdef TxQ txq[128]
    # counters (ids in _counters.pxd)
    cdef uint64_t* stat
    cdef uint64_t* diag
    # receive packet buffer: frames waiting for descriptors, in arrival order
    cdef uint8_t* pb
    cdef PbEntry* pbq
    cdef uint32_t pb_head, pb_count, pb_cap_entries
    cdef uint64_t pb_tail           # storage: where the next frame's bytes go
    cdef uint64_t pb_bytes          # accounting against RXPBSIZE: frames with FCS
    # RSS
    cdef uint32_t cfg_gen           # changes with every configuration write (FrameInfo caches)
    cdef uint32_t rx_prefetch       # descriptors ahead each queue's buffers are fetched
    cdef uint32_t toeplitz[36][256]
    cdef uint8_t reta[128]
    # reset and link timing
    cdef int64_t reset_done_ns
    cdef int64_t link_up_ns
    cdef bint link_is_up            # link_up_ns has passed (saves a clock read per frame)
    cdef public int64_t reset_delay_ns
    cdef public int64_t link_delay_ns
    # L2 filter: valid receive addresses (RAL/RAH with AV), as integers
    cdef uint64_t rar[128]
    cdef int nrar
    # transmit side: gather buffer, the cable's other end, or the sink
    cdef DeviceState peer
    cdef uint8_t* txbuf
    cdef public bint keep_tx
    cdef public bint tx_deferred    # TDT writes only move the tail; process_tx() sends
    cdef uint8_t* sink_buf
    cdef uint64_t sink_len, sink_cap
    cdef uint32_t* sink_lens
    cdef uint64_t sink_n, sink_kept, sink_ncap
    # the driver's clock (_clock): what is due next, who delivers it, what that costs
    cdef Arrivals arrivals          # None: no schedule (a wire thread, or nothing playing)
    cdef int64_t next_due           # when the next frame is due; NOTHING_DUE if none
    cdef pthread_mutex_t clock_lock
    cdef uint32_t sync_pending      # a sync found the lock taken: the holder delivers for it
    cdef uint64_t catchup_ns, catchup_frames, catchups

# Atomic accesses for what the driver's threads read or write without the model lock.
from wirecap.includes.atomics cimport (st64 as store64_release, ld64 as load64, ld32 as load32,
                                       st32 as store32, fence)
from wirecap.includes.clocks cimport mono_ns as now_ns

cdef inline bint link_up(DeviceState s, int64_t now) noexcept nogil:
    return now >= s.link_up_ns
