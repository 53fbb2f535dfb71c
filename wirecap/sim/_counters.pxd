from libc.stdint cimport uint32_t, uint64_t
from wirecap.sim._frame cimport FrameInfo

# Statistics counter ids: indices into DeviceState.stat. Per-index counters (MPC(i), QPRC(i),
# ...) take consecutive ids from their base. Which register reads which id is the register
# file's business (_registers.pyx); these are the events the datasheet counts.
cdef enum:
    C_ZERO = 0          # counters of events the model never produces (CRC errors, ...)
    C_GPRC, C_GORC, C_BPRC, C_MPRC, C_TPR, C_TOR, C_RUC, C_ROC, C_RXDGPC
    C_PRC64, C_PRC127, C_PRC255, C_PRC511, C_PRC1023, C_PRC1522
    C_GPTC, C_GOTC, C_TPT, C_MPTC, C_BPTC, C_TXDGPC
    C_PTC64, C_PTC127, C_PTC255, C_PTC511, C_PTC1023, C_PTC1522
    C_MPC = 32
    C_RNBC = 40
    C_QPRC = 48
    C_QBRC = 64
    C_QPRDC = 80
    C_QPTC = 96
    C_QBTC = 112
    C_COUNT = 128

# Model-only diagnostics (DeviceState.diag): what the datasheet's counters do not see.
cdef enum:
    D_WIRE_RX = 0       # frames that reached the MAC from the wire or a cable
    D_LINK_DOWN         # ... while the link was down: lost on the wire
    D_RX_DISABLED       # ... while RXCTRL.RXEN was clear
    D_FILTERED          # ... rejected by the L2 filter (FCTRL, RAL/RAH)
    D_RX_RING_FAULT     # descriptor fetch faulted in the IOMMU: frame lost
    D_RX_BUF_FAULT      # buffer write faulted: descriptor written back, data not
    D_TX_FAULT          # transmit descriptor or buffer read faulted: frame not sent
    D_TX_LINK_DOWN      # frames completed while the link was down: not on the wire
    D_QUEUE_REFUSED     # RXDCTL/TXDCTL.ENABLE writes refused (bad ring geometry, TE off)
    D_UNKNOWN_ACCESS    # reads and writes of BAR0 offsets where no register is
    D_COUNT


# What a good frame adds (inline: once per frame on the fast path)
cdef inline uint32_t size_bin(uint32_t wire_len) noexcept nogil:
    # PRC64..PRC1522 and PTC64..PTC1522 bin by the frame's length with FCS
    return 0 if wire_len <= 64 else 1 if wire_len <= 127 else 2 if wire_len <= 255 else \
        3 if wire_len <= 511 else 4 if wire_len <= 1023 else 5


cdef inline void count_rx_good(uint64_t* stat, uint32_t wire_len, const FrameInfo* fi,
                               uint64_t k=1) noexcept nogil:
    # k frames alike (the same template under the same configuration)
    stat[C_GPRC] += k
    stat[C_GORC] += k * wire_len
    if fi.dst_class == 2:
        stat[C_BPRC] += k
    elif fi.dst_class == 1:
        stat[C_MPRC] += k
    stat[C_PRC64 + size_bin(wire_len)] += k


cdef inline void count_tx_good(uint64_t* stat, uint32_t wire_len,
                               const FrameInfo* fi) noexcept nogil:
    stat[C_GPTC] += 1
    stat[C_TPT] += 1
    stat[C_TXDGPC] += 1
    stat[C_GOTC] += wire_len
    if fi.dst_class == 2:
        stat[C_BPTC] += 1
    elif fi.dst_class == 1:
        stat[C_MPTC] += 1
    stat[C_PTC64 + size_bin(wire_len)] += 1
