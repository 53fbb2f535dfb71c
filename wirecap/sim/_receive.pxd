from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
cimport wirecap.ixgbe as r
from wirecap.includes.atomics cimport ld32
from wirecap.sim._frame cimport FrameInfo
from wirecap.sim._state cimport DeviceState, RxQ

cdef enum:                  # what the MAC and the L2 filter decide for a frame (FrameInfo.verdict)
    V_DELIVER = 0           # on to its RSS queue
    V_RX_DISABLED           # RXCTRL.RXEN clear or the security block holds RX
    V_RUNT                  # shorter than 64 bytes: RUC
    V_LONG                  # longer than the MAC's limit: ROC
    V_FILTERED              # no L2 filter accepts its destination

cdef int rx_frame(DeviceState s, const uint8_t* d, uint32_t n, FrameInfo* fi,
                  int64_t at) noexcept nogil
cdef void count_ring_full(DeviceState s, const FrameInfo* fi, uint32_t n,
                          uint64_t k) noexcept nogil
cdef void drain(DeviceState s) noexcept nogil
cdef void enable_rx(DeviceState s, uint32_t q) noexcept nogil


cdef inline bint ring_full(DeviceState s, const FrameInfo* fi, uint32_t n) noexcept nogil:
    """Whether rx_frame would drop this frame (n bytes, no FCS) at once for want of a
    descriptor under DROP_EN, doing nothing but count: then count_ring_full() may count a run
    of such frames at once. A frame that meets a full ring costs a few loads this way, which
    is what a capture thread that fell behind needs to catch up with line rate."""
    cdef RxQ* q
    cdef uint32_t tail
    if fi.cfg_gen != s.cfg_gen or fi.verdict != V_DELIVER or not s.link_is_up or s.pb_count:
        return 0
    q = &s.rxq[fi.queue]
    if not q.drop_en or n + r.FCS_LEN > q.bufsize:
        return 0
    tail = ld32(&q.tail)
    return not q.enabled or tail >= q.ndesc or tail == q.head
