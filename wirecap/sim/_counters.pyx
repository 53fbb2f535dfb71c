"""The 82599's statistics as events (8.2.3.23): what each received or transmitted frame adds.

The counters live in DeviceState.stat, indexed by the ids in _counters.pxd; the register file
maps statistics registers onto them and gives them their clear-on-read behaviour.
"""
from libc.stdint cimport uint32_t, uint64_t

DIAGNOSTICS = ("wire_rx", "link_down", "rx_disabled", "filtered", "rx_ring_fault",
               "rx_buf_fault", "tx_fault", "tx_link_down", "queue_refused", "unknown_access")


cdef inline uint32_t size_bin(uint32_t wire_len) noexcept nogil:
    # PRC64..PRC1522 and PTC64..PTC1522 bin by the frame's length with FCS
    return 0 if wire_len <= 64 else 1 if wire_len <= 127 else 2 if wire_len <= 255 else \
        3 if wire_len <= 511 else 4 if wire_len <= 1023 else 5


cdef void count_rx_good(uint64_t* stat, uint32_t wire_len, const FrameInfo* fi) noexcept nogil:
    stat[C_GPRC] += 1
    stat[C_GORC] += wire_len
    if fi.dst_class == 2:
        stat[C_BPRC] += 1
    elif fi.dst_class == 1:
        stat[C_MPRC] += 1
    stat[C_PRC64 + size_bin(wire_len)] += 1


cdef void count_tx_good(uint64_t* stat, uint32_t wire_len, const FrameInfo* fi) noexcept nogil:
    stat[C_GPTC] += 1
    stat[C_TPT] += 1
    stat[C_TXDGPC] += 1
    stat[C_GOTC] += wire_len
    if fi.dst_class == 2:
        stat[C_BPTC] += 1
    elif fi.dst_class == 1:
        stat[C_MPTC] += 1
    stat[C_PTC64 + size_bin(wire_len)] += 1
