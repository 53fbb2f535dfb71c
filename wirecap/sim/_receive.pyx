"""The 82599's receive path (7.1): MAC checks, the L2 filter, RSS, the on-chip packet buffer
and the receive DMA engine writing frames into descriptor rings.

A frame from the wire goes rx_frame → (packet buffer) → dma_rx; drain moves waiting frames on
when the driver hands out descriptors. The caller holds the model lock.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy

cimport wirecap.ixgbe as r
from wirecap.sim._counters cimport (C_TPR, C_TOR, C_RUC, C_ROC, C_RNBC, C_MPC, C_QPRC, C_QBRC,
                                    C_QPRDC, C_RXDGPC, D_WIRE_RX, D_LINK_DOWN, D_RX_DISABLED,
                                    D_FILTERED, D_RX_RING_FAULT, D_RX_BUF_FAULT,
                                    D_QUEUE_REFUSED, count_rx_good)
from wirecap.sim._frame cimport FrameInfo, be16, ethernet_fcs, rss_input
from wirecap.includes.atomics cimport ld32, ld64, st32, st64, fence
from wirecap.sim._state cimport DeviceState, RxQ, PbEntry, PB_MAX

cdef int rx_frame(DeviceState s, const uint8_t* d, uint32_t n, FrameInfo* fi,
                  int64_t at) noexcept nogil:
    """A frame (without FCS) arrives from the wire at time ``at``. The caller holds the model
    lock.

    Returns 0 if delivered or queued in the packet buffer, 1 if dropped (and counted)."""
    cdef uint32_t wire_len = n + r.FCS_LEN
    cdef uint64_t pb_cap
    cdef int res
    s.diag[D_WIRE_RX] += 1
    if not s.link_is_up:
        if at < s.link_up_ns:
            s.diag[D_LINK_DOWN] += 1
            return 1
        s.link_is_up = 1
    if fi.cfg_gen != s.cfg_gen:
        admit(s, d, n, fi)
    if fi.verdict == V_RX_DISABLED:
        s.diag[D_RX_DISABLED] += 1
        return 1
    s.stat[C_TPR] += 1
    s.stat[C_TOR] += wire_len
    if fi.verdict != V_DELIVER:
        if fi.verdict == V_RUNT:
            s.stat[C_RUC] += 1
        elif fi.verdict == V_LONG:
            s.stat[C_ROC] += 1
        else:
            s.diag[D_FILTERED] += 1
        return 1
    if s.pb_count == 0:
        res = dma_rx(s, fi.queue, d, n, fi.pkt_info, fi.hash, fi.status, fi.eicr)
        if res != 1:
            count_rx_good(s.stat, wire_len, fi)
            return 0 if res == 0 else 1
        s.stat[C_RNBC] += 1             # no descriptor: the frame waits on chip
    pb_cap = (s.regs[0x03C00 >> 2] >> r.RXPBSIZE_SHIFT) << 10
    if pb_cap > PB_MAX:
        pb_cap = PB_MAX
    if s.pb_bytes + wire_len > pb_cap or s.pb_count == s.pb_cap_entries:
        s.stat[C_MPC] += 1              # packet buffer full: missed
        s.regs[r.EICR >> 2] |= r.EICR_RX_MISS
        return 1
    count_rx_good(s.stat, wire_len, fi)
    pb_push(s, d, n, fi.queue, fi.pkt_info, fi.hash, fi.status)
    fence()                             # pairs with the lock-free RDT write
    drain(s)
    return 0


cdef void count_ring_full(DeviceState s, const FrameInfo* fi, uint32_t n,
                          uint64_t k) noexcept nogil:
    """What k frames alike that rx_fast() found no descriptor for add to the counters:
    rx_frame's count for each, in one go. The caller holds the model lock."""
    cdef uint32_t wire_len = n + r.FCS_LEN
    s.diag[D_WIRE_RX] += k
    s.stat[C_TPR] += k
    s.stat[C_TOR] += k * wire_len
    s.stat[C_QPRDC + s.rxq[fi.queue].stat] += k
    count_rx_good(s.stat, wire_len, fi, k)


cdef void count_rx_fast(DeviceState s, const FrameInfo* fi, uint32_t n,
                        uint64_t k) noexcept nogil:
    """What k frames alike that rx_fast() wrote to their ring add to the counters and to EICR:
    rx_frame's and dma_rx's count for each, in one go. The caller holds the model lock."""
    cdef uint32_t wire_len = n + r.FCS_LEN
    cdef RxQ* q = &s.rxq[fi.queue]
    s.diag[D_WIRE_RX] += k
    s.stat[C_TPR] += k
    s.stat[C_TOR] += k * wire_len
    count_rx_good(s.stat, wire_len, fi, k)
    s.stat[C_QPRC + q.stat] += k
    s.stat[C_QBRC + q.stat] += k * n
    s.stat[C_RXDGPC] += k
    s.regs[r.EICR >> 2] |= fi.eicr


cdef void admit(DeviceState s, const uint8_t* d, uint32_t n, FrameInfo* fi) noexcept nogil:
    """What this configuration does with the frame: the MAC's length checks, the L2 filter
    (7.1.1), RSS (7.1.2.8) and the descriptor fields; cached in fi until a register write
    changes the configuration (s.cfg_gen)."""
    cdef uint32_t wire_len = n + r.FCS_LEN, maxlen, i
    cdef uint32_t hlreg0 = s.regs[r.HLREG0 >> 2], fctrl = s.regs[r.FCTRL >> 2]
    cdef uint64_t dst
    fi.cfg_gen = s.cfg_gen
    fi.verdict = V_DELIVER
    if not (s.regs[r.RXCTRL >> 2] & r.RXCTRL_RXEN) or \
            s.regs[r.SECRXCTRL >> 2] & r.SECRXCTRL_RX_DIS:     # the security block holds RX
        fi.verdict = V_RX_DISABLED
        return
    if wire_len < r.MIN_FRAME:
        fi.verdict = V_RUNT
        return
    maxlen = (s.regs[r.MAXFRS >> 2] >> r.MAXFRS_MFS_SHIFT) if hlreg0 & r.HLREG0_JUMBOEN \
        else r.MAX_FRAME
    if n >= 14 and be16(d + 12) == 0x8100:
        maxlen += 4                     # room for one VLAN tag
    if wire_len > maxlen:
        fi.verdict = V_LONG
        return
    # broadcast, multicast, exact unicast addresses or promiscuous
    if fi.dst_class == 2:
        if not (fctrl & r.FCTRL_BAM):
            fi.verdict = V_FILTERED
    elif fi.dst_class == 1:
        if not (fctrl & r.FCTRL_MPE):
            fi.verdict = V_FILTERED
    elif not (fctrl & r.FCTRL_UPE):
        fi.verdict = V_FILTERED
        dst = <uint64_t>d[0] | <uint64_t>d[1] << 8 | <uint64_t>d[2] << 16 | \
            <uint64_t>d[3] << 24 | <uint64_t>d[4] << 32 | <uint64_t>d[5] << 40
        for i in range(s.nrar):
            if s.rar[i] == dst:
                fi.verdict = V_DELIVER
                break
    if fi.verdict != V_DELIVER:
        return
    fi.queue = classify(s, d, fi)
    fi.pkt_info = fi.rss_type | fi.ptype
    fi.status = r.RXDADV_STAT_DD | r.RXDADV_STAT_EOP
    if fi.ptype & r.RXDADV_PKTTYPE_IPV4:
        fi.status |= r.RXDADV_STAT_IPCS
        if fi.ip_csum_bad:
            fi.status |= r.RXDADV_ERR_IPE
    fi.eicr = queue_eicr(s, fi.queue)


cdef inline uint32_t classify(DeviceState s, const uint8_t* d, FrameInfo* fi) noexcept nogil:
    """The receive queue RSS picks (RETA[hash & 0x7F]); fills the frame's hash and type."""
    cdef uint32_t mrqc = s.regs[r.MRQC >> 2], h = 0, i, ln
    cdef uint8_t buf[36]
    cdef uint8_t t
    fi.hash = 0
    fi.rss_type = 0
    if (mrqc & r.MRQC_MRQE_MASK) != r.MRQC_RSSEN:
        return 0
    t = rss_input(d, fi, mrqc, buf, &ln)
    if t != 0:
        for i in range(ln):
            h ^= s.toeplitz[i][buf[i]]
    fi.hash = h
    fi.rss_type = t
    return s.reta[h & 0x7F]


cdef inline uint32_t queue_eicr(DeviceState s, uint32_t qi) noexcept nogil:
    # the EICR cause bit IVAR maps queue qi's receive interrupt to, or 0
    cdef uint32_t ivar = (s.regs[(0x00900 >> 2) + qi // 2] >> (16 * (qi & 1))) & 0xFF
    return (<uint32_t>1 << (ivar & 0xF)) if ivar & r.IVAR_ALLOC_VAL else 0


cdef int dma_rx(DeviceState s, uint32_t qi, const uint8_t* d, uint32_t n, uint32_t pkt_info,
                uint32_t hash, uint32_t status, uint32_t eicr) noexcept nogil:
    """Write one frame into queue qi's ring: 0 done, 1 no descriptors (frame kept by
    the caller or dropped under DROP_EN, then 2), 2 dropped."""
    cdef RxQ* q = &s.rxq[qi]
    cdef uint32_t avail = 0, need = 1, host_len, head, k
    cdef uint8_t* dst
    cdef bint strip = (s.regs[r.HLREG0 >> 2] & r.HLREG0_RXCRCSTRP) != 0
    host_len = n if strip else n + 4
    cdef uint32_t tail = ld32(&q.tail)
    if q.enabled and tail < q.ndesc:    # a tail beyond the ring stalls the queue
        avail = tail - q.head if tail >= q.head else tail + q.ndesc - q.head
        if host_len > q.bufsize:
            need = (host_len + q.bufsize - 1) // q.bufsize
    if avail < need:
        if q.drop_en:
            s.stat[C_QPRDC + q.stat] += 1
            return 2
        return 1
    if q.ring == NULL or q.ring_gen != s.iommu.generation:
        q.ring = s.iommu.translate(q.ring_iova, q.ndesc * r.DESC_SIZE, 0)
        q.ring_gen = s.iommu.generation
        q.bufmap.host = NULL
        if q.ring == NULL:
            s.diag[D_RX_RING_FAULT] += 1
            return 2
    if need == 1 and strip and not q.legacy:    # the common case, in a few instructions
        head = q.head
        dst = buffer(s, q, head, n)
        if dst != NULL:
            memcpy(dst, d, n)
        write_back(q, head, pkt_info, hash, status, n)
        head = head + 1 if head + 1 < q.ndesc else 0
    else:
        head = dma_chain(s, q, d, n, host_len, need, pkt_info, hash, status)
    st32(&q.head, head)
    prefetch_ahead(q, head, s.rx_prefetch)
    s.stat[C_QPRC + q.stat] += 1
    s.stat[C_QBRC + q.stat] += host_len
    s.stat[C_RXDGPC] += 1
    s.regs[r.EICR >> 2] |= eicr
    return 0


cdef inline uint8_t* buffer(DeviceState s, RxQ* q, uint32_t i, uint32_t size) noexcept nogil:
    # the host memory of descriptor i's packet buffer, or NULL (a fault, counted)
    cdef uint64_t iova = ld64(q.ring + i * r.DESC_SIZE)
    cdef uint8_t* dst = cached(&q.bufmap, iova, size)
    if dst == NULL:
        dst = s.iommu.lookup(iova, size, 1, &q.bufmap)
        if dst == NULL:
            s.diag[D_RX_BUF_FAULT] += 1
    return dst


cdef uint32_t dma_chain(DeviceState s, RxQ* q, const uint8_t* d, uint32_t n, uint32_t host_len,
                        uint32_t need, uint32_t pkt_info, uint32_t hash,
                        uint32_t status) noexcept nogil:
    """A frame over ``need`` descriptors, or with its FCS kept, or legacy descriptors;
    returns the new head."""
    cdef uint32_t pos = 0, chunk, k, head = q.head, fcs
    cdef uint8_t* dst
    cdef uint8_t fcsb[4]
    if host_len > n:
        fcs = ethernet_fcs(d, n)
        fcsb[0] = fcs & 0xFF
        fcsb[1] = (fcs >> 8) & 0xFF
        fcsb[2] = (fcs >> 16) & 0xFF
        fcsb[3] = fcs >> 24
    for k in range(need):
        chunk = host_len - pos if host_len - pos < q.bufsize else q.bufsize
        dst = buffer(s, q, head, chunk)
        if dst != NULL and pos + chunk <= n:
            memcpy(dst, d + pos, chunk)
        elif dst != NULL:               # this buffer holds (part of) the FCS
            if pos < n:
                memcpy(dst, d + pos, n - pos)
            memcpy(dst + (n - pos if pos < n else 0),
                   fcsb + (pos - n if pos > n else 0), chunk - (n - pos if pos < n else 0))
        write_back(q, head, pkt_info, hash,
                   status if k == need - 1 else status & ~<uint32_t>r.RXDADV_STAT_EOP, chunk)
        head = head + 1 if head + 1 < q.ndesc else 0
        pos += chunk
    return head


cdef void pb_push(DeviceState s, const uint8_t* d, uint32_t n, uint32_t q, uint32_t pkt_info,
                  uint32_t hash, uint32_t status) noexcept nogil:
    cdef uint32_t slot = (s.pb_head + s.pb_count) % s.pb_cap_entries
    cdef uint64_t end = s.pb_tail
    cdef uint32_t first = n if end + n <= PB_MAX else PB_MAX - end
    memcpy(s.pb + end, d, first)
    if first < n:
        memcpy(s.pb, d + first, n - first)
    s.pbq[slot].off = end
    s.pbq[slot].len = n
    s.pbq[slot].queue = q
    s.pbq[slot].hash = hash
    s.pbq[slot].pkt_info = pkt_info
    s.pbq[slot].status = status
    st32(&s.pb_count, s.pb_count + 1)
    s.pb_tail = (end + n) % PB_MAX
    s.pb_bytes += n + r.FCS_LEN


cdef void drain(DeviceState s) noexcept nogil:
    """Move waiting frames from the packet buffer to their queues, in arrival order; the
    head frame blocks the rest while its queue has no descriptor (no DROP_EN)."""
    cdef PbEntry* e
    cdef const uint8_t* src
    cdef int res
    while s.pb_count:
        e = &s.pbq[s.pb_head]
        if e.off + e.len <= PB_MAX:
            src = s.pb + e.off
        else:                           # the frame wraps around the buffer's end
            memcpy(s.txbuf, s.pb + e.off, PB_MAX - e.off)
            memcpy(s.txbuf + (PB_MAX - e.off), s.pb, e.len - (PB_MAX - e.off))
            src = s.txbuf
        res = dma_rx(s, e.queue, src, e.len, e.pkt_info, e.hash, e.status,
                     queue_eicr(s, e.queue))
        if res == 1:
            return
        s.pb_head = (s.pb_head + 1) % s.pb_cap_entries
        s.pb_count -= 1
        s.pb_bytes -= e.len + r.FCS_LEN


cdef void enable_rx(DeviceState s, uint32_t q) noexcept nogil:
    # 4.6.7.1: the queue starts with the ring programmed in RDBA/RDLEN/SRRCTL
    cdef uint32_t base = (0x01000 + 0x40 * q if q < 64 else 0x0D000 + 0x40 * (q - 64)) >> 2
    cdef uint32_t rdlen = s.regs[base + 2], srr = s.regs[base + 5]
    cdef uint32_t dtype = srr & r.SRRCTL_DESCTYPE_MASK
    if rdlen == 0 or rdlen % r.RING_ALIGN or (srr & r.SRRCTL_BSIZEPKT_MASK) == 0 or \
            (dtype != r.SRRCTL_DESCTYPE_LEGACY and dtype != r.SRRCTL_DESCTYPE_ADV_ONEBUF) or \
            s.regs[base] % r.RING_ALIGN:
        s.diag[D_QUEUE_REFUSED] += 1
        return
    s.rxq[q].ring_iova = (<uint64_t>s.regs[base + 1] << 32) | s.regs[base]
    s.rxq[q].ndesc = rdlen // r.DESC_SIZE
    s.rxq[q].head %= s.rxq[q].ndesc
    s.rxq[q].tail %= s.rxq[q].ndesc
    s.rxq[q].bufsize = (srr & r.SRRCTL_BSIZEPKT_MASK) << r.SRRCTL_BSIZEPKT_SHIFT
    s.rxq[q].drop_en = (srr & r.SRRCTL_DROP_EN) != 0
    s.rxq[q].legacy = dtype == r.SRRCTL_DESCTYPE_LEGACY
    s.rxq[q].ring = NULL
    s.rxq[q].enabled = 1
    spread_prefetch(s)


cdef void disable_rx(DeviceState s, uint32_t q) noexcept nogil:
    s.rxq[q].enabled = 0
    spread_prefetch(s)


cdef void spread_prefetch(DeviceState s) noexcept nogil:
    # PREFETCH_FRAMES of the wire, shared by the queues that receive
    cdef uint32_t i, n = 0
    for i in range(128):
        n += s.rxq[i].enabled
    s.rx_prefetch = PREFETCH_FRAMES // n if n and PREFETCH_FRAMES // n > 2 else \
        (2 if n else PREFETCH_FRAMES)
