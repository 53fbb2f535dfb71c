"""The model's register file: which BAR0 words are registers (the table), what reading and
writing each one does (the dispatch), and the device-level effects registers trigger: reset
(4.6.3.2), link (auto-negotiation, LSC), receive addresses, the RSS key.

Register semantics are in ``read_word`` / ``write_word``, one case per handler; queue and
counter effects go to the receive and transmit paths.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy, memset

cimport wirecap.ixgbe as r
from wirecap import ixgbe
from wirecap.sim._clock cimport enter, leave
from wirecap.sim import regfile
from wirecap.sim._counters cimport *
from wirecap.sim._frame cimport toeplitz_table
from wirecap.sim._iommu cimport model_lock, model_unlock
from wirecap.sim._receive cimport drain, enable_rx, disable_rx
from wirecap.includes.atomics cimport ld32, st32, fence
from wirecap.sim._state cimport (DeviceState, RxQ, NWORDS, NVM_WORDS, UNKNOWN_LOG, link_up,
                                 load32, store32, now_ns)
from wirecap.sim._transmit cimport transmit, enable_tx

cdef uint32_t _generation = 0   # unique across devices: FrameInfo caches are keyed on it


cdef inline void configured(DeviceState s) noexcept nogil:
    # the configuration changed: every cached admission (FrameInfo) is stale
    global _generation
    _generation += 1
    s.cfg_gen = _generation


# ------------------------------------------------------------------ the table
cdef void _def(DeviceState s, int off, int h, int q=0, int canon=-1):
    s.handler[off >> 2] = h
    s.qidx[off >> 2] = q
    s.canon[off >> 2] = (off if canon < 0 else canon) >> 2


GENERIC_HANDLERS = {"RW": H_RW, "RO": H_RO, "WO": H_WO, "RC": H_RC, "RCW1C": H_RCW1C,
                    "W1C": H_W1C, "RWS": H_RWS, "RC64L": H_RC64L, "RC64H": H_RC64H}
# registers the model gives behaviour to, by name; the table gives their addresses and aliases
MODELLED = {"CTRL": H_CTRL, "STATUS": H_STATUS, "EEC": H_EEC, "EERD": H_EERD, "SWSM": H_SWSM,
            "EICR": H_EICR, "EICS": H_EICS, "EIMS": H_EIMS, "EIMC": H_EIMC, "EIMC_EX": H_EIMC_EX,
            "RDRXCTL": H_RDRXCTL, "AUTOC": H_AUTOC, "LINKS": H_LINKS, "ANLP1": H_ANLP1,
            "MRQC": H_MRQC, "RAL": H_RAR, "RAH": H_RAR, "RDH": H_RDH, "RDT": H_RDT,
            "RXDCTL": H_RXDCTL, "SRRCTL": H_SRRCTL, "TDH": H_TDH, "TDT": H_TDT,
            "TXDCTL": H_TXDCTL, "TDWBAL": H_TDWBAL, "RETA": H_RETA, "RSSRK": H_RSSRK,
            "RQSMR": H_RQSMR, "TQSM": H_TQSM}


def define_registers(DeviceState s):
    """Fill the handler table: generic storage for every register of the table (its access
    mode, reset value and writable bits), then the registers the model gives behaviour to."""
    lay = regfile.layout()
    cdef const uint8_t[::1] mode = lay.mode
    cdef const uint32_t[::1] canon = lay.canon, entry = lay.entry, reset = lay.reset
    cdef const uint32_t[::1] wmask = lay.wmask
    cdef uint8_t lut[16]
    cdef uint32_t w
    lut[0] = H_NONE
    for i, m in enumerate(regfile.MODES):
        lut[i + 1] = GENERIC_HANDLERS[m]
    for w in range(NWORDS):
        s.handler[w] = lut[mode[w]]
        s.canon[w] = canon[w]
        s.qidx[w] = entry[w] & 0xFF
        s.reset_val[w] = reset[w]
        s.wmask[w] = wmask[w]
    for w, h, n, c in regfile.modelled_words(MODELLED):
        _def(s, w << 2, h, n, c << 2)
    for i in range(2):                  # EIMC_EX(i) clears the bits of EIMS_EX(i)
        s.canon[ixgbe.EIMC_EX(i) >> 2] = ixgbe.EIMS_EX(i) >> 2
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
                  r.PTC511: C_PTC511, r.PTC1023: C_PTC1023, r.PTC1522: C_PTC1522}
    for off, c in counters32.items():
        _def(s, off, H_STAT32, c)
    per_index = {"MPC": C_MPC, "RNBC": C_RNBC, "QPRC": C_QPRC, "QPRDC": C_QPRDC,
                 "QPTC": C_QPTC, "QBRC_L": C_QBRC, "QBTC_L": C_QBTC}
    for name, c in per_index.items():
        for w, _, n, canon_w in regfile.modelled_words({name: 0}):
            _def(s, w << 2, H_STATLO if name.endswith("_L") else H_STAT32, c + n, canon_w << 2)
    for i in range(16):
        _def(s, ixgbe.QBRC_H(i), H_STATHI, C_QBRC + i, ixgbe.QBRC_L(i))
        _def(s, ixgbe.QBTC_H(i), H_STATHI, C_QBTC + i, ixgbe.QBTC_L(i))
    for lo, hi, c in ((r.GORCL, r.GORCH, C_GORC), (r.GOTCL, r.GOTCH, C_GOTC),
                      (r.TORL, r.TORH, C_TOR)):
        _def(s, lo, H_STATLO, c)
        _def(s, hi, H_STATHI, c, lo)
    s.nvm[NVM_WORDS - 1] = 0xBABA       # the checksum word: the image sums to 0xBABA


# ------------------------------------------------------------------ reset and link
cdef void reset(DeviceState s, int64_t now) noexcept nogil:
    cdef int i
    memcpy(s.regs, s.reset_val, NWORDS * 4)     # the table's reset values
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
    disable_rx(s, 0)                # all queues off: what depends on how many receive
    s.pb_head = s.pb_count = 0
    s.pb_tail = s.pb_bytes = 0
    # EEC.PRES/ARD are the device's (read_word); the NVM loads RAL(0)/RAH(0): 02:57:43:50:ii:00
    s.regs[r.EEC >> 2] &= ~<uint32_t>(r.EEC_PRES | r.EEC_ARD)
    s.regs[0x0A200 >> 2] = 0x50435702
    s.regs[0x0A204 >> 2] = r.RAH_AV | (<uint32_t>s.index & 0xFF)
    configured(s)
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
    """0 on success, -1: unaligned/outside BAR0, -2: no register at off (strict mode). A sync
    point: the frames due before the access are delivered first (_clock)."""
    if off & 3 or off >= r.BAR0_SIZE:
        return -1
    cdef uint32_t w = off >> 2
    cdef int64_t now
    cdef bint locked
    if s.handler[w] == H_NONE:
        out[0] = 0
        return unknown(s, off, 0, 0)
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
        return unknown(s, off, 1, val)
    # a tail doorbell reads no counter and changes nothing counting depends on: the frames
    # the wire counts in bulk may stay uncounted (the fast path writes RDT every segment)
    locked = enter(s, &now, s.handler[w] != H_RDT and s.handler[w] != H_TDT)
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


cdef int unknown(DeviceState s, uint32_t off, uint32_t is_write, uint32_t val) noexcept nogil:
    """An offset where no register is: silicon reads 0 and drops the write; the model also
    counts and logs it, and in strict mode refuses it (-2)."""
    cdef uint32_t n
    model_lock()
    n = <uint32_t>s.diag[D_UNKNOWN_ACCESS]
    s.diag[D_UNKNOWN_ACCESS] += 1
    if n < UNKNOWN_LOG:
        s.unknown_log[3 * n] = off
        s.unknown_log[3 * n + 1] = is_write
        s.unknown_log[3 * n + 2] = val
    model_unlock()
    return -2 if s.strict else 0


cdef uint32_t read_word(DeviceState s, uint32_t w, int64_t now) noexcept nogil:
    cdef uint8_t h = s.handler[w]
    cdef uint32_t q = s.qidx[w], c = s.canon[w], v
    cdef uint64_t full
    cdef bint done = now >= s.reset_done_ns
    link_event(s, now)
    if h == H_RW or h == H_RO or h == H_RAR or h == H_SRRCTL or h == H_RETA or h == H_RSSRK or \
            h == H_MRQC or h == H_RQSMR or h == H_TQSM or h == H_TDWBAL or h == H_W1C or \
            h == H_RWS or h == H_EERD:
        return s.regs[c]
    if h == H_WO or h == H_EIMC or h == H_EICS or h == H_EIMC_EX:
        return 0
    if h == H_RC or h == H_RCW1C:   # counters the model does not count, causes it never sets
        v = s.regs[c]
        s.regs[c] = 0
        return v
    if h == H_RC64L:
        s.latch[w] = s.regs[c + 1]
        v = s.regs[c]
        s.regs[c] = s.regs[c + 1] = 0
        return v
    if h == H_RC64H:
        return s.latch[w - 1]
    if h == H_SWSM:                 # SMBI: a read that finds it clear takes the semaphore
        v = s.regs[c]
        s.regs[c] = v | r.SWSM_SMBI
        return v
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
    if h == H_ANLP1:                # auto-negotiation has left state 0 once the reset is done
        return s.regs[c] | ((1 << 16) if done else 0)     # AN_STATE 1
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
    link_event(s, now)
    configured(s)
    if h == H_RO or h == H_STATUS or h == H_LINKS or h == H_ANLP1 or h == H_STAT32 or \
            h == H_STATLO or h == H_STATHI or h == H_WO or h == H_RC or h == H_RC64L or \
            h == H_RC64H:
        return                      # read-only: writes are ignored, as on silicon
    if h == H_RW or h == H_SWSM:
        s.regs[c] = (s.regs[c] & ~s.wmask[w]) | (val & s.wmask[w])
        return
    if h == H_W1C or h == H_RCW1C or h == H_EIMC_EX:
        s.regs[c] &= ~val
        return
    if h == H_RWS:
        s.regs[c] |= val & s.wmask[w]
        return
    if h == H_EERD:                 # the read completes at once: DONE with the word
        if val & r.EERD_START:
            k = (val & 0xFFFF) >> r.EERD_ADDR_SHIFT
            s.regs[c] = (k << r.EERD_ADDR_SHIFT) | r.EERD_DONE | \
                (<uint32_t>(s.nvm[k] if k < NVM_WORDS else 0xFFFF) << r.EERD_DATA_SHIFT)
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
        return
    if h == H_RETA:
        s.regs[c] = val
        for k in range(4):
            s.reta[4 * q + k] = (val >> (8 * k)) & 0xF
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
            disable_rx(s, q)
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

