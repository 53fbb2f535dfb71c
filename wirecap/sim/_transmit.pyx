"""The 82599's transmit path (7.2): descriptors [TDH, TDT) are gathered into frames, counted,
and put on the wire: the cable's other port, or the sink (which keeps them when asked).

Runs on the TDT write (or process_tx with tx_deferred); the caller holds the model lock.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport realloc
from libc.string cimport memcpy, memset

cimport wirecap.ixgbe as r
from wirecap.sim._counters cimport (C_QPTC, C_QBTC, D_TX_FAULT, D_TX_LINK_DOWN,
                                    D_QUEUE_REFUSED, count_tx_good)
from wirecap.sim._frame cimport FrameInfo, parse_frame
from wirecap.sim._receive cimport rx_frame
from wirecap.includes.atomics cimport ld64
from wirecap.sim._state cimport DeviceState, TxQ, TXBUF_MAX, link_up


cdef void transmit(DeviceState s, uint32_t qi, int64_t now) noexcept nogil:
    """Process descriptors [TDH, TDT) of queue qi (7.2): gather, send, write back DD."""
    cdef TxQ* q = &s.txq[qi]
    cdef uint8_t* ring
    cdef uint8_t* desc
    cdef const uint8_t* src
    cdef uint32_t cmd, ln, flen = 0
    cdef bint bad = 0
    cdef uint32_t* wb
    if not q.enabled or not (s.regs[r.DMATXCTL >> 2] & r.DMATXCTL_TE) or q.tail >= q.ndesc:
        return
    ring = s.iommu.translate(q.ring_iova, q.ndesc * r.DESC_SIZE, 0)
    if ring == NULL:
        s.diag[D_TX_FAULT] += 1
        return
    while q.head != q.tail:
        desc = ring + q.head * r.DESC_SIZE
        cmd = (<uint32_t*>desc)[2]
        if (cmd & r.TXD_CMD_DEXT) and (cmd & r.TXD_DTYP_MASK) == r.TXD_DTYP_CTXT:
            pass                                # context descriptor: offload setup only
        else:
            ln = cmd & r.TXD_DTALEN_MASK
            src = s.iommu.translate(ld64(desc), ln, 0)
            if src == NULL or flen + ln > TXBUF_MAX:
                bad = 1
            else:
                memcpy(s.txbuf + flen, src, ln)
                flen += ln
            if cmd & r.TXD_CMD_EOP:
                if bad:
                    s.diag[D_TX_FAULT] += 1
                else:
                    emit(s, qi, flen, (cmd & r.TXD_CMD_IFCS) != 0, now)
                flen = 0
                bad = 0
        if cmd & r.TXD_CMD_RS:
            (<uint32_t*>desc)[3] |= r.TXD_STAT_DD
        q.head = q.head + 1 if q.head + 1 < q.ndesc else 0
    if q.wb_iova:
        wb = <uint32_t*>s.iommu.translate(q.wb_iova, 4, 1)
        if wb != NULL:
            wb[0] = q.head


cdef void emit(DeviceState s, uint32_t qi, uint32_t flen, bint ifcs, int64_t now) noexcept nogil:
    cdef uint32_t n = flen if ifcs else (flen - 4 if flen >= 4 else 0), wire_len
    cdef FrameInfo fi
    if ifcs and n < 60 and s.regs[r.HLREG0 >> 2] & r.HLREG0_TXPADEN:
        memset(s.txbuf + n, 0, 60 - n)
        n = 60
    wire_len = n + r.FCS_LEN
    if not link_up(s, now):
        s.diag[D_TX_LINK_DOWN] += 1
        return
    parse_frame(s.txbuf, n, &fi)
    count_tx_good(s.stat, wire_len, &fi)
    s.stat[C_QPTC + s.txq[qi].stat] += 1
    s.stat[C_QBTC + s.txq[qi].stat] += n
    if s.peer is not None:
        rx_frame(s.peer, s.txbuf, n, &fi, now)
    else:
        sink(s, n)


cdef void sink(DeviceState s, uint32_t n) noexcept nogil:
    cdef void* p
    s.sink_n += 1
    if not s.keep_tx:
        return
    s.sink_kept += 1
    if s.sink_len + n > s.sink_cap:
        p = realloc(s.sink_buf, (s.sink_len + n) * 2 + 65536)
        if p == NULL:
            return
        s.sink_buf = <uint8_t*>p
        s.sink_cap = (s.sink_len + n) * 2 + 65536
    if s.sink_kept > s.sink_ncap:
        p = realloc(s.sink_lens, (s.sink_kept * 2 + 1024) * 4)
        if p == NULL:
            return
        s.sink_lens = <uint32_t*>p
        s.sink_ncap = s.sink_kept * 2 + 1024
    memcpy(s.sink_buf + s.sink_len, s.txbuf, n)
    s.sink_lens[s.sink_kept - 1] = n
    s.sink_len += n


cdef void enable_tx(DeviceState s, uint32_t q) noexcept nogil:
    # 4.6.8: a TX queue enables only after DMATXCTL.TE is set
    cdef uint32_t base = (0x06000 + 0x40 * q) >> 2
    cdef uint32_t tdlen = s.regs[base + 2]
    if not (s.regs[r.DMATXCTL >> 2] & r.DMATXCTL_TE) or tdlen == 0 or \
            tdlen % r.RING_ALIGN or s.regs[base] % r.RING_ALIGN:
        s.diag[D_QUEUE_REFUSED] += 1
        return
    s.txq[q].ring_iova = (<uint64_t>s.regs[base + 1] << 32) | s.regs[base]
    s.txq[q].ndesc = tdlen // r.DESC_SIZE
    s.txq[q].head %= s.txq[q].ndesc
    s.txq[q].tail %= s.txq[q].ndesc
    s.txq[q].enabled = 1
