"""The model's register file: which BAR0 words are registers (the table), what reading and
writing each one does (the dispatch), and the device-level effects registers trigger: reset
(4.6.3.2), link (auto-negotiation, LSC), receive addresses, the RSS key.

Register semantics are in ``read_word`` / ``write_word``, one case per handler; queue and
counter effects go to the receive and transmit paths.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memset

cimport wirecap.ixgbe as r
from wirecap import ixgbe
from wirecap.sim._clock cimport enter, leave
from wirecap.sim._counters cimport *
from wirecap.sim._frame cimport toeplitz_table
from wirecap.sim._iommu cimport model_lock, model_unlock
from wirecap.sim._receive cimport drain, enable_rx
from wirecap.includes.atomics cimport ld32, st32, fence
from wirecap.sim._state cimport DeviceState, RxQ, NWORDS, PB_MAX, link_up
from wirecap.sim._transmit cimport transmit, enable_tx

cdef uint32_t _rss_generation = 0       # unique across devices: FrameInfo caches are keyed on it


# ------------------------------------------------------------------ the table
cdef void _def(DeviceState s, int off, int h, int q=0, int canon=-1):
    s.handler[off >> 2] = h
    s.qidx[off >> 2] = q
    s.canon[off >> 2] = (off if canon < 0 else canon) >> 2


def define_registers(DeviceState s):
    """Fill the handler table: which BAR0 words are registers and what each one does."""
    for w in range(NWORDS):
        s.canon[w] = w
    plain = [r.CTRL_EXT, r.ESDP, r.EERD, r.EIAC, r.EIAM, r.GPIE, r.RXCSUM, r.RFCTL,
             r.VLNCTRL, r.MCSTCTRL, r.RXCTRL, r.HLREG0, r.MFLCN, r.MAXFRS, r.AUTOC2,
             r.DMATXCTL, r.DTXMXSZRQ, r.MTQC, r.RTTDCS, r.RTRPCS, r.FCTRL]
    for off in plain:
        _def(s, off, H_RW)
    for fn in (ixgbe.RAL, ixgbe.RAH):
        for i in ixgbe.indices(fn):
            _def(s, fn(i), H_RAR, i)
    for fn in (ixgbe.MTA, ixgbe.IVAR, ixgbe.EIMS_EX, ixgbe.EIMC_EX,
               ixgbe.PSRTYPE, ixgbe.RXPBSIZE, ixgbe.TXPBSIZE, ixgbe.RDBAL, ixgbe.RDBAH,
               ixgbe.RDLEN, ixgbe.DCA_RXCTRL, ixgbe.TDBAL, ixgbe.TDBAH, ixgbe.TDLEN,
               ixgbe.TDWBAH):
        for i in ixgbe.indices(fn):
            _def(s, fn(i), H_RW, i)
    for i in range(16):
        _def(s, ixgbe.DCA_RXCTRL_ALIAS(i), H_RW, i, ixgbe.DCA_RXCTRL(i))
        _def(s, ixgbe.SRRCTL_ALIAS(i), H_SRRCTL, i, ixgbe.SRRCTL(i))
    special = {r.CTRL: H_CTRL, r.STATUS: H_STATUS, r.EEC: H_EEC, r.EICR: H_EICR,
               r.EICS: H_EICS, r.EIMS: H_EIMS, r.EIMC: H_EIMC, r.RDRXCTL: H_RDRXCTL,
               r.AUTOC: H_AUTOC, r.LINKS: H_LINKS, r.MRQC: H_MRQC, r.HLREG1: H_RO}
    for off, h in special.items():
        _def(s, off, h)
    per_index = {ixgbe.RDH: H_RDH, ixgbe.RDT: H_RDT, ixgbe.RXDCTL: H_RXDCTL,
                 ixgbe.SRRCTL: H_SRRCTL, ixgbe.TDH: H_TDH, ixgbe.TDT: H_TDT,
                 ixgbe.TXDCTL: H_TXDCTL, ixgbe.TDWBAL: H_TDWBAL, ixgbe.RETA: H_RETA,
                 ixgbe.RSSRK: H_RSSRK, ixgbe.RQSMR: H_RQSMR, ixgbe.TQSM: H_TQSM}
    for fn, h in per_index.items():
        for i in ixgbe.indices(fn):
            _def(s, fn(i), h, i)
    for i in range(128):
        s.rxq[i].rdh_w = ixgbe.RDH(i) >> 2
        s.rxq[i].rdt_w = ixgbe.RDT(i) >> 2
        s.txq[i].tdh_w = ixgbe.TDH(i) >> 2
    counters32 = {r.GPRC: C_GPRC, r.BPRC: C_BPRC, r.MPRC: C_MPRC, r.TPR: C_TPR,
                  r.RUC: C_RUC, r.ROC: C_ROC, r.RXDGPC: C_RXDGPC, r.PRC64: C_PRC64,
                  r.PRC127: C_PRC127, r.PRC255: C_PRC255, r.PRC511: C_PRC511,
                  r.PRC1023: C_PRC1023, r.PRC1522: C_PRC1522, r.GPTC: C_GPTC,
                  r.TPT: C_TPT, r.MPTC: C_MPTC, r.BPTC: C_BPTC, r.TXDGPC: C_TXDGPC,
                  r.PTC64: C_PTC64, r.PTC127: C_PTC127, r.PTC255: C_PTC255,
                  r.PTC511: C_PTC511, r.PTC1023: C_PTC1023, r.PTC1522: C_PTC1522,
                  r.CRCERRS: C_ZERO, r.ILLERRC: C_ZERO, r.ERRBC: C_ZERO, r.MLFC: C_ZERO,
                  r.MRFC: C_ZERO, r.RLEC: C_ZERO, r.RFC: C_ZERO, r.RJC: C_ZERO,
                  r.RXNFGPC: C_ZERO}
    for off, c in counters32.items():
        _def(s, off, H_STAT32, c)
    for i in range(8):
        _def(s, ixgbe.MPC(i), H_STAT32, C_MPC + i)
        _def(s, ixgbe.RNBC(i), H_STAT32, C_RNBC + i)
    for i in range(16):
        _def(s, ixgbe.QPRC(i), H_STAT32, C_QPRC + i)
        _def(s, ixgbe.QPRDC(i), H_STAT32, C_QPRDC + i)
        _def(s, ixgbe.QPTC(i), H_STAT32, C_QPTC + i)
        _def(s, ixgbe.QBRC_L(i), H_STATLO, C_QBRC + i)
        _def(s, ixgbe.QBRC_H(i), H_STATHI, C_QBRC + i, ixgbe.QBRC_L(i))
        _def(s, ixgbe.QBTC_L(i), H_STATLO, C_QBTC + i)
        _def(s, ixgbe.QBTC_H(i), H_STATHI, C_QBTC + i, ixgbe.QBTC_L(i))
    for lo, hi, c in ((r.GORCL, r.GORCH, C_GORC), (r.GOTCL, r.GOTCH, C_GOTC),
                      (r.TORL, r.TORH, C_TOR)):
        _def(s, lo, H_STATLO, c)
        _def(s, hi, H_STATHI, c, lo)


# ------------------------------------------------------------------ reset and link
cdef void reset(DeviceState s, int64_t now) noexcept nogil:
    cdef int i
    memset(s.regs, 0, NWORDS * 4)
    memset(s.latch, 0, NWORDS * 4)
    memset(s.stat, 0, C_COUNT * 8)
    memset(s.reta, 0, 128)
    for i in range(128):
        s.rxq[i].enabled = 0
        s.rxq[i].head = s.rxq[i].tail = 0
        s.rxq[i].ring = NULL
        s.rxq[i].stat = 0
        s.rxq[i].blocked = 0
        s.txq[i].enabled = 0
        s.txq[i].head = s.txq[i].tail = 0
        s.txq[i].stat = 0
        s.txq[i].wb_iova = 0
        s.regs[(0x01014 + 0x40 * i if i < 64 else 0x0D014 + 0x40 * (i - 64)) >> 2] = 0x402
    s.pb_head = s.pb_count = 0
    s.pb_tail = s.pb_bytes = 0
    # values the datasheet gives after reset, or the NVM loads
    s.regs[r.HLREG0 >> 2] = r.HLREG0_TXCRCEN | r.HLREG0_RXCRCSTRP | r.HLREG0_TXPADEN
    s.regs[r.MAXFRS >> 2] = r.MAX_FRAME << r.MAXFRS_MFS_SHIFT
    s.regs[r.AUTOC >> 2] = r.AUTOC_LMS_KX4_KX_KR
    s.regs[(0x03C00) >> 2] = PB_MAX           # RXPBSIZE(0): all 512 KB in one buffer
    s.regs[(0x0CC00) >> 2] = 160 << 10        # TXPBSIZE(0): 160 KB
    s.regs[0x0A200 >> 2] = 0x50435702             # RAL(0)/RAH(0): 02:57:43:50:ii:00
    s.regs[0x0A204 >> 2] = r.RAH_AV | (<uint32_t>s.index & 0xFF)
    global _rss_generation
    _rss_generation += 1
    s.rss_gen = _rss_generation
    rebuild_toeplitz(s)
    s.reset_done_ns = now + s.reset_delay_ns
    link_down(s, now + s.reset_delay_ns + s.link_delay_ns)
    update_rar(s)


cdef void link_down(DeviceState s, int64_t up_at) noexcept nogil:
    s.link_up_ns = up_at
    s.link_is_up = 0
    s.regs[r.STATUS >> 2] &= ~1


cdef void update_rar(DeviceState s) noexcept nogil:
    cdef int i
    cdef uint32_t w
    s.nrar = 0
    for i in range(128):
        w = (0x0A200 >> 2) + 2 * i
        if s.regs[w + 1] & r.RAH_AV:
            s.rar[s.nrar] = s.regs[w] | (<uint64_t>(s.regs[w + 1] & 0xFFFF) << 32)
            s.nrar += 1


cdef void rebuild_toeplitz(DeviceState s) noexcept nogil:
    # RSSRK(0..9) hold the 40-byte key, first byte in the low byte of RSSRK(0)
    cdef uint8_t key[40]
    cdef int i
    cdef uint32_t w
    for i in range(10):
        w = s.regs[(0x05C80 >> 2) + i]
        key[4 * i] = w & 0xFF
        key[4 * i + 1] = (w >> 8) & 0xFF
        key[4 * i + 2] = (w >> 16) & 0xFF
        key[4 * i + 3] = w >> 24
    toeplitz_table(key, s.toeplitz)


cdef void link_event(DeviceState s, int64_t now) noexcept nogil:
    # LSC is raised once, when the link actually comes up
    if s.link_up_ns and now >= s.link_up_ns and not (s.regs[r.STATUS >> 2] & 1):
        s.regs[r.STATUS >> 2] |= 1       # internal: link-up already reported
        s.regs[r.EICR >> 2] |= r.EICR_LSC


# ------------------------------------------------------------------ access and dispatch
cdef int reg_read(DeviceState s, uint32_t off, uint32_t* out) noexcept nogil:
    """0 on success, -1: unaligned/outside BAR0, -2: no register at off. A sync point: the
    frames due before the access are delivered first (_clock)."""
    if off & 3 or off >= r.BAR0_SIZE:
        return -1
    cdef uint32_t w = off >> 2
    cdef int64_t now
    cdef bint locked
    if s.handler[w] == H_NONE:
        return -2
    locked = enter(s, &now)
    if s.handler[w] == H_RDH:        # the head is published atomically: no model lock
        out[0] = ld32(&s.rxq[s.qidx[w]].head)
    else:
        model_lock()
        out[0] = read_word(s, w, now)
        model_unlock()
    leave(s, locked)
    return 0


cdef int reg_write(DeviceState s, uint32_t off, uint32_t val) noexcept nogil:
    """As reg_read; the write takes effect after the frames due before it."""
    if off & 3 or off >= r.BAR0_SIZE:
        return -1
    cdef uint32_t w = off >> 2
    cdef RxQ* q
    cdef int64_t now
    cdef bint locked
    if s.handler[w] == H_NONE:
        return -2
    locked = enter(s, &now)
    if s.trace_n < s.trace_cap:
        s.trace[2 * s.trace_n] = off
        s.trace[2 * s.trace_n + 1] = val
        s.trace_n += 1
    if s.handler[w] == H_RDT:
        # The doorbell of the fast path takes no model lock (a hardware tail register does
        # not wait either). The fence pairs with the one in rx_frame: either the DMA engine
        # sees this tail, or this thread sees the frame waiting on chip and drains it.
        q = &s.rxq[s.qidx[w]]
        st32(&q.tail, val)
        fence()
        if ld32(&s.pb_count):
            model_lock()
            drain(s)
            model_unlock()
    else:
        model_lock()
        write_word(s, w, val, now)
        model_unlock()
    leave(s, locked)
    return 0


cdef uint32_t read_word(DeviceState s, uint32_t w, int64_t now) noexcept nogil:
    cdef uint8_t h = s.handler[w]
    cdef uint32_t q = s.qidx[w], c = s.canon[w], v
    cdef uint64_t full
    cdef bint done = now >= s.reset_done_ns
    link_event(s, now)
    if h == H_RW or h == H_RO or h == H_RAR or h == H_SRRCTL or h == H_RETA or h == H_RSSRK or \
            h == H_MRQC or h == H_RQSMR or h == H_TQSM or h == H_TDWBAL:
        return s.regs[c]
    if h == H_WO or h == H_EIMC or h == H_EICS:
        return 0
    if h == H_CTRL:
        return s.regs[c] | (0 if done else r.CTRL_RST)
    if h == H_STATUS:
        return ((<uint32_t>s.index & 1) << 2) | \
            (r.STATUS_LINKUP if link_up(s, now) else 0) | \
            (0 if s.regs[r.CTRL >> 2] & r.CTRL_GIO_DIS else r.STATUS_GIO_MASTER_EN)
    if h == H_EEC:
        return s.regs[c] | r.EEC_PRES | (r.EEC_ARD if done else 0)
    if h == H_RDRXCTL:
        return s.regs[c] | (r.RDRXCTL_DMAIDONE if done else 0)
    if h == H_LINKS:
        if link_up(s, now):
            return r.LINKS_UP | r.LINKS_LINK_STATUS | r.LINKS_SPEED_10G | r.LINKS_KX_AN_COMP
        return 0
    if h == H_AUTOC:
        return s.regs[c]
    if h == H_EICR:                 # clear on read
        v = s.regs[c]
        s.regs[c] = 0
        return v
    if h == H_EIMS:
        return s.regs[c]
    if h == H_STAT32:
        v = <uint32_t>s.stat[q]
        s.stat[q] = 0
        return v
    if h == H_STATLO:               # read low: counter cleared, high half latched
        full = s.stat[q]
        s.stat[q] = 0
        s.latch[w] = <uint32_t>(full >> 32) & 0xF   # 36-bit counters
        return <uint32_t>full
    if h == H_STATHI:
        return s.latch[c]
    if h == H_RDH:
        return s.rxq[q].head
    if h == H_RDT:
        return s.rxq[q].tail
    if h == H_RXDCTL:
        return (s.regs[c] & ~<uint32_t>r.RXDCTL_ENABLE) | \
            (r.RXDCTL_ENABLE if s.rxq[q].enabled else 0)
    if h == H_TDH:
        return s.txq[q].head
    if h == H_TDT:
        return s.txq[q].tail
    if h == H_TXDCTL:
        return (s.regs[c] & ~<uint32_t>r.TXDCTL_ENABLE) | \
            (r.TXDCTL_ENABLE if s.txq[q].enabled else 0)
    return 0


cdef void write_word(DeviceState s, uint32_t w, uint32_t val, int64_t now) noexcept nogil:
    cdef uint8_t h = s.handler[w]
    cdef uint32_t q = s.qidx[w], c = s.canon[w], k
    global _rss_generation
    link_event(s, now)
    if h == H_RO or h == H_STATUS or h == H_LINKS or h == H_STAT32 or h == H_STATLO or \
            h == H_STATHI:
        return                      # read-only: writes are ignored, as on silicon
    if h == H_RW:
        s.regs[c] = val
        return
    if h == H_RAR:
        s.regs[c] = val
        update_rar(s)
        return
    if h == H_CTRL:
        if val & r.CTRL_RST:
            reset(s, now)
        elif val & r.CTRL_LNK_RST:
            link_down(s, now + s.link_delay_ns)
        s.regs[c] = val & ~<uint32_t>r.CTRL_RST_MASK
        return
    if h == H_EEC:
        s.regs[c] = val & ~<uint32_t>(r.EEC_PRES | r.EEC_ARD)
        return
    if h == H_RDRXCTL:
        s.regs[c] = val & ~<uint32_t>r.RDRXCTL_DMAIDONE
        return
    if h == H_AUTOC:
        s.regs[c] = val & ~<uint32_t>r.AUTOC_AN_RESTART
        if val & r.AUTOC_AN_RESTART:
            link_down(s, now + s.link_delay_ns)
        return
    if h == H_EICR:                 # write 1 to clear
        s.regs[c] &= ~val
        return
    if h == H_EICS:
        s.regs[r.EICR >> 2] |= val
        return
    if h == H_EIMS:
        s.regs[c] |= val & r.EIMS_ALL
        return
    if h == H_EIMC:
        s.regs[r.EIMS >> 2] &= ~val
        return
    if h == H_MRQC or h == H_RSSRK:
        s.regs[c] = val
        if h == H_RSSRK:
            rebuild_toeplitz(s)
        _rss_generation += 1
        s.rss_gen = _rss_generation
        return
    if h == H_RETA:
        s.regs[c] = val
        for k in range(4):
            s.reta[4 * q + k] = (val >> (8 * k)) & 0xF
        _rss_generation += 1
        s.rss_gen = _rss_generation
        return
    if h == H_RQSMR or h == H_TQSM:
        s.regs[c] = val
        for k in range(4):
            if h == H_RQSMR:
                s.rxq[4 * q + k].stat = (val >> (8 * k)) & 0xF
            else:
                s.txq[4 * q + k].stat = (val >> (8 * k)) & 0xF
        return
    if h == H_SRRCTL:
        s.regs[c] = val
        if s.rxq[q].enabled:     # DROP_EN and buffer size may change on a live queue
            s.rxq[q].drop_en = (val & r.SRRCTL_DROP_EN) != 0
            if val & r.SRRCTL_BSIZEPKT_MASK:
                s.rxq[q].bufsize = (val & r.SRRCTL_BSIZEPKT_MASK) << r.SRRCTL_BSIZEPKT_SHIFT
        return
    if h == H_RXDCTL:
        s.regs[c] = val
        if val & r.RXDCTL_ENABLE:
            if not s.rxq[q].enabled:
                enable_rx(s, q)
        else:
            s.rxq[q].enabled = 0
        return
    if h == H_RDH:
        s.rxq[q].head = val
        return
    if h == H_TXDCTL:
        s.regs[c] = val
        if val & r.TXDCTL_ENABLE:
            if not s.txq[q].enabled:
                enable_tx(s, q)
        else:
            s.txq[q].enabled = 0
        return
    if h == H_TDWBAL:
        s.regs[c] = val
        s.txq[q].wb_iova = ((<uint64_t>s.regs[c + 1] << 32) | (val & ~<uint32_t>3)) \
            if val & r.TDWBAL_HEAD_WB_EN else 0
        return
    if h == H_TDH:
        s.txq[q].head = val
        return
    if h == H_TDT:
        s.txq[q].tail = val
        if not s.tx_deferred:
            transmit(s, q, now)
        return

