"""A software Intel 82599: register file, receive and transmit DMA engines, RSS, counters.

It follows the datasheet, not our driver (DESIGN §3). Register semantics are in ``_write`` /
``_read`` below, one case per register; the receive path is ``rx_frame`` → packet buffer →
``_dma_rx``; the transmit path runs when a TDT write hands descriptors to the device.

Deliberate simplifications, each documented in docs/model.md: one packet buffer (no DCB/VMDq),
no header split, no RSC, no VLAN stripping, no flow control; write-back happens per descriptor
(as with WTHRESH = 0); TX descriptors are processed synchronously on the TDT write.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport calloc, malloc, realloc, free
from libc.string cimport memcpy, memset
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

import os

from wirecap.sim._iommu cimport Iommu, model_lock, model_unlock
cimport wirecap.ixgbe as r
from wirecap import ixgbe
from wirecap.errors import WirecapError
from wirecap.sim import regfile


class ModelError(WirecapError):
    """A register access the 82599 does not allow (unaligned, outside BAR0; in strict mode, an
    offset where no register is)."""


cdef extern from *:
    """
    static inline void wc_store64_release(void* p, unsigned long long v) {
        __atomic_store_n((unsigned long long*)p, v, __ATOMIC_RELEASE);
    }
    static inline unsigned long long wc_load64(const void* p) {
        return __atomic_load_n((const unsigned long long*)p, __ATOMIC_ACQUIRE);
    }
    static inline unsigned int wc_load32(const unsigned int* p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static inline void wc_store32(unsigned int* p, unsigned int v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static inline void wc_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
    """
    void store64_release "wc_store64_release"(void* p, uint64_t v) nogil
    uint64_t load64 "wc_load64"(const void* p) nogil
    uint32_t load32 "wc_load32"(const uint32_t* p) nogil
    void store32 "wc_store32"(uint32_t* p, uint32_t v) nogil
    void fence "wc_fence"() nogil


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000000000 + ts.tv_nsec

# ------------------------------------------------------------------ register handlers
cdef enum:
    H_NONE = 0          # not a register: reads 0, writes ignored (an error when strict)
    # storage with the access mode the register table declares (regfile.MODES)
    H_RW, H_RO, H_WO, H_RC, H_RCW1C, H_W1C, H_RWS, H_RC64L, H_RC64H
    # registers whose behaviour the model gives
    H_CTRL, H_STATUS, H_EEC, H_EERD, H_SWSM, H_EICR, H_EICS, H_EIMS, H_EIMC, H_EIMC_EX
    H_RDRXCTL, H_AUTOC, H_LINKS, H_ANLP1
    H_STAT32, H_STATLO, H_STATHI
    H_RDH, H_RDT, H_RXDCTL, H_SRRCTL
    H_TDH, H_TDT, H_TXDCTL, H_TDWBAL
    H_RETA, H_RSSRK, H_MRQC, H_RQSMR, H_TQSM, H_RAR

# counter ids (index into Device.stat); per-index counters take consecutive ids
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

# model-only diagnostics: what the datasheet's counters do not see
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

DIAGNOSTICS = ("wire_rx", "link_down", "rx_disabled", "filtered", "rx_ring_fault",
               "rx_buf_fault", "tx_fault", "tx_link_down", "queue_refused", "unknown_access")

GENERIC_HANDLERS = {"RW": H_RW, "RO": H_RO, "WO": H_WO, "RC": H_RC, "RCW1C": H_RCW1C,
                    "W1C": H_W1C, "RWS": H_RWS, "RC64L": H_RC64L, "RC64H": H_RC64H}
# registers the model gives behaviour to, by name; the table gives their addresses and aliases
MODELLED = {"CTRL": H_CTRL, "STATUS": H_STATUS, "EEC": H_EEC, "EERD": H_EERD, "SWSM": H_SWSM,
            "EICR": H_EICR, "EICS": H_EICS, "EIMS": H_EIMS, "EIMC": H_EIMC, "EIMC_EX": H_EIMC_EX,
            "RDRXCTL": H_RDRXCTL, "AUTOC": H_AUTOC, "LINKS": H_LINKS, "ANLP1": H_ANLP1,
            "MRQC": H_MRQC,
            "RAL": H_RAR, "RAH": H_RAR, "RDH": H_RDH, "RDT": H_RDT, "RXDCTL": H_RXDCTL,
            "SRRCTL": H_SRRCTL, "TDH": H_TDH, "TDT": H_TDT, "TXDCTL": H_TXDCTL,
            "TDWBAL": H_TDWBAL, "RETA": H_RETA, "RSSRK": H_RSSRK, "RQSMR": H_RQSMR,
            "TQSM": H_TQSM}
cdef enum:
    UNKNOWN_LOG = 256           # unknown accesses remembered (offset, read/write, value)
    NVM_WORDS = 64              # the NVM image EERD reads: zeros and the checksum word

cdef uint32_t NWORDS = r.BAR0_SIZE // 4
cdef uint32_t PB_MAX = 512 * 1024
cdef uint32_t _rss_generation = 0       # unique across devices: FrameInfo caches are keyed on it
cdef uint32_t crc_table[256]


cdef void _crc_init():
    cdef uint32_t c, n, k
    for n in range(256):
        c = n
        for k in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if (c & 1) else (c >> 1)
        crc_table[n] = c
_crc_init()


cdef inline uint32_t ethernet_fcs(const uint8_t* d, uint32_t n) noexcept nogil:
    cdef uint32_t c = ~(<uint32_t>0), i
    for i in range(n):
        c = crc_table[(c ^ d[i]) & 0xFF] ^ (c >> 8)
    return ~c


cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return (p[0] << 8) | p[1]


cdef void parse_frame(const uint8_t* d, uint32_t n, FrameInfo* fi) noexcept nogil:
    """Classify a frame (no FCS) the way the 82599's parser does for RSS and descriptors."""
    cdef uint32_t off = 14, ihl, s, i
    cdef uint16_t et
    memset(fi, 0, sizeof(FrameInfo))
    if n < 14:
        return
    if d[0] == 0xFF and d[1] == 0xFF and d[2] == 0xFF and d[3] == 0xFF and d[4] == 0xFF \
            and d[5] == 0xFF:
        fi.dst_class = 2
    elif d[0] & 1:
        fi.dst_class = 1
    et = be16(d + 12)
    if et == 0x8100 and n >= 18:        # one VLAN tag
        et = be16(d + 16)
        off = 18
    if et == 0x0800 and n >= off + 20 and (d[off] >> 4) == 4:
        ihl = (d[off] & 0xF) * 4
        if ihl < 20 or n < off + ihl:
            return
        fi.ptype = r.RXDADV_PKTTYPE_IPV4
        fi.l3_off = off
        s = 0
        for i in range(0, ihl, 2):
            s += be16(d + off + i)
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        fi.ip_csum_bad = s != 0xFFFF
        if (be16(d + off + 6) & 0x3FFF) == 0 and n >= off + ihl + 4:  # not a fragment
            if d[off + 9] == 6:
                fi.l4 = 6
                fi.ptype |= r.RXDADV_PKTTYPE_TCP
            elif d[off + 9] == 17:
                fi.l4 = 17
                fi.ptype |= r.RXDADV_PKTTYPE_UDP
    elif et == 0x86DD and n >= off + 40 and (d[off] >> 4) == 6:
        fi.ptype = r.RXDADV_PKTTYPE_IPV6
        fi.l3_off = off
        fi.is_v6 = 1
        if n >= off + 44:
            if d[off + 6] == 6:
                fi.l4 = 6
                fi.ptype |= r.RXDADV_PKTTYPE_TCP
            elif d[off + 6] == 17:
                fi.l4 = 17
                fi.ptype |= r.RXDADV_PKTTYPE_UDP


cdef class Device:
    """One 82599 port. Register access: ``read32``/``write32`` (or the nogil ``reg_*``)."""

    def __cinit__(self, int index=0, Iommu iommu=None, strict=None):
        self.index = index
        # strict: an offset where no register is raises instead of reading 0 (our tests)
        self.strict = bool(strict) if strict is not None else \
            os.environ.get("WIRECAP_MODEL_STRICT", "") not in ("", "0")
        self.iommu = iommu if iommu is not None else Iommu()
        self.regs = <uint32_t*>calloc(NWORDS, 4)
        self.handler = <uint8_t*>calloc(NWORDS, 1)
        self.qidx = <uint8_t*>calloc(NWORDS, 1)
        self.canon = <uint32_t*>calloc(NWORDS, 4)
        self.reset_val = <uint32_t*>calloc(NWORDS, 4)
        self.wmask = <uint32_t*>calloc(NWORDS, 4)
        self.unknown_log = <uint32_t*>calloc(3 * UNKNOWN_LOG, 4)
        self.stat = <uint64_t*>calloc(C_COUNT, 8)
        self.latch = <uint32_t*>calloc(NWORDS, 4)
        self.diag = <uint64_t*>calloc(D_COUNT, 8)
        self.pb = <uint8_t*>malloc(PB_MAX)
        self.pb_cap_entries = PB_MAX // 60 + 1
        self.pbq = <PbEntry*>calloc(self.pb_cap_entries, sizeof(PbEntry))
        self.txbuf = <uint8_t*>malloc(16384)
        if not (self.regs and self.handler and self.qidx and self.canon and self.stat and
                self.latch and self.diag and self.pb and self.pbq and self.txbuf and
                self.reset_val and self.wmask and self.unknown_log):
            raise MemoryError("82599 model state")
        self.reset_delay_ns = 1000000       # EEC.ARD / RDRXCTL.DMAIDONE 1 ms after a reset
        self.link_delay_ns = 2000000        # auto-negotiation takes 2 ms
        self.peer = None
        self._define_registers()
        self._reset(now_ns())               # power-on behaves like a reset

    def __dealloc__(self):
        free(self.regs); free(self.handler); free(self.qidx); free(self.canon)
        free(self.reset_val); free(self.wmask); free(self.unknown_log)
        free(self.stat); free(self.latch); free(self.diag); free(self.pb); free(self.pbq)
        free(self.txbuf); free(self.sink_buf); free(self.sink_lens); free(self.trace)

    # -------------------------------------------------------------- register table
    cdef void _def(self, int off, int h, int q=0, int canon=-1):
        self.handler[off >> 2] = h
        self.qidx[off >> 2] = q
        self.canon[off >> 2] = (off if canon < 0 else canon) >> 2

    def _define_registers(self):
        """Generic storage for every register of the table, then the modelled ones."""
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
            self.handler[w] = lut[mode[w]]
            self.canon[w] = canon[w]
            self.qidx[w] = entry[w] & 0xFF
            self.reset_val[w] = reset[w]
            self.wmask[w] = wmask[w]
        for w, h, n, c in regfile.modelled_words(MODELLED):
            self._def(w << 2, h, n, c << 2)
        for i in range(2):              # EIMC_EX(i) clears the bits of EIMS_EX(i)
            self.canon[ixgbe.EIMC_EX(i) >> 2] = ixgbe.EIMS_EX(i) >> 2
        for i in range(128):
            self.rxq[i].rdh_w = ixgbe.RDH(i) >> 2
            self.rxq[i].rdt_w = ixgbe.RDT(i) >> 2
            self.txq[i].tdh_w = ixgbe.TDH(i) >> 2
        counters32 = {r.GPRC: C_GPRC, r.BPRC: C_BPRC, r.MPRC: C_MPRC, r.TPR: C_TPR,
                      r.RUC: C_RUC, r.ROC: C_ROC, r.RXDGPC: C_RXDGPC, r.PRC64: C_PRC64,
                      r.PRC127: C_PRC127, r.PRC255: C_PRC255, r.PRC511: C_PRC511,
                      r.PRC1023: C_PRC1023, r.PRC1522: C_PRC1522, r.GPTC: C_GPTC,
                      r.TPT: C_TPT, r.MPTC: C_MPTC, r.BPTC: C_BPTC, r.TXDGPC: C_TXDGPC,
                      r.PTC64: C_PTC64, r.PTC127: C_PTC127, r.PTC255: C_PTC255,
                      r.PTC511: C_PTC511, r.PTC1023: C_PTC1023, r.PTC1522: C_PTC1522}
        for off, c in counters32.items():
            self._def(off, H_STAT32, c)
        per_index = {"MPC": C_MPC, "RNBC": C_RNBC, "QPRC": C_QPRC, "QPRDC": C_QPRDC,
                     "QPTC": C_QPTC, "QBRC_L": C_QBRC, "QBTC_L": C_QBTC}
        for name, c in per_index.items():
            for w, _, n, canon_w in regfile.modelled_words({name: 0}):
                self._def(w << 2, H_STATLO if name.endswith("_L") else H_STAT32, c + n,
                          canon_w << 2)
        for i in range(16):
            self._def(ixgbe.QBRC_H(i), H_STATHI, C_QBRC + i, ixgbe.QBRC_L(i))
            self._def(ixgbe.QBTC_H(i), H_STATHI, C_QBTC + i, ixgbe.QBTC_L(i))
        for lo, hi, c in ((r.GORCL, r.GORCH, C_GORC), (r.GOTCL, r.GOTCH, C_GOTC),
                          (r.TORL, r.TORH, C_TOR)):
            self._def(lo, H_STATLO, c)
            self._def(hi, H_STATHI, c, lo)
        self.nvm[NVM_WORDS - 1] = 0xBABA    # the checksum word: the image sums to 0xBABA

    # -------------------------------------------------------------- reset (4.6.3.2)
    cdef void _reset(self, int64_t now) noexcept nogil:
        cdef int i
        memcpy(self.regs, self.reset_val, NWORDS * 4)     # the table's reset values
        memset(self.latch, 0, NWORDS * 4)
        memset(self.stat, 0, C_COUNT * 8)
        memset(self.reta, 0, 128)
        for i in range(128):
            self.rxq[i].enabled = 0
            self.rxq[i].head = self.rxq[i].tail = 0
            self.rxq[i].ring = NULL
            self.rxq[i].stat = 0
            self.rxq[i].blocked = 0
            self.txq[i].enabled = 0
            self.txq[i].head = self.txq[i].tail = 0
            self.txq[i].stat = 0
            self.txq[i].wb_iova = 0
        self.pb_head = self.pb_count = 0
        self.pb_tail = self.pb_bytes = 0
        # EEC.PRES/ARD are the device's (_read); the NVM loads RAL(0)/RAH(0): 02:57:43:50:ii:00
        self.regs[r.EEC >> 2] &= ~<uint32_t>(r.EEC_PRES | r.EEC_ARD)
        self.regs[0x0A200 >> 2] = 0x50435702                           # RAL(0)
        self.regs[0x0A204 >> 2] = r.RAH_AV | (<uint32_t>self.index & 0xFF)  # RAH(0)
        global _rss_generation
        _rss_generation += 1
        self.rss_gen = _rss_generation
        self._rebuild_toeplitz()
        self.reset_done_ns = now + self.reset_delay_ns
        self._link_down(now + self.reset_delay_ns + self.link_delay_ns)
        self._update_rar()

    cdef void _link_down(self, int64_t up_at) noexcept nogil:
        self.link_up_ns = up_at
        self.link_is_up = 0
        self.regs[r.STATUS >> 2] &= ~1

    cdef void _update_rar(self) noexcept nogil:
        cdef int i
        cdef uint32_t w
        self.nrar = 0
        for i in range(128):
            w = (0x0A200 >> 2) + 2 * i
            if self.regs[w + 1] & r.RAH_AV:
                self.rar[self.nrar] = self.regs[w] | (<uint64_t>(self.regs[w + 1] & 0xFFFF) << 32)
                self.nrar += 1

    cdef void _rebuild_toeplitz(self) noexcept nogil:
        cdef uint8_t key[40]
        cdef int p, v, b, s, i
        cdef uint32_t w
        for i in range(10):
            w = self.regs[(0x05C80 >> 2) + i]
            key[4 * i] = w & 0xFF
            key[4 * i + 1] = (w >> 8) & 0xFF
            key[4 * i + 2] = (w >> 16) & 0xFF
            key[4 * i + 3] = w >> 24
        for p in range(36):
            for v in range(256):
                w = 0
                for b in range(8):
                    if v & (0x80 >> b):
                        s = p * 8 + b       # the 32 key bits starting at bit s
                        w ^= ((<uint32_t>key[s >> 3] << 24 | <uint32_t>key[(s >> 3) + 1] << 16 |
                               <uint32_t>key[(s >> 3) + 2] << 8 | key[(s >> 3) + 3]) << (s & 7)) | \
                             ((key[(s >> 3) + 4] >> (8 - (s & 7))) if (s & 7) else 0)
                self.toeplitz[p][v] = w

    cdef bint _link_up(self, int64_t now) noexcept nogil:
        return now >= self.link_up_ns

    cdef void _link_event(self, int64_t now) noexcept nogil:
        # LSC is raised once, when the link actually comes up
        if self.link_up_ns and now >= self.link_up_ns and not (self.regs[r.STATUS >> 2] & 1):
            self.regs[r.STATUS >> 2] |= 1       # internal: link-up already reported
            self.regs[r.EICR >> 2] |= r.EICR_LSC

    # -------------------------------------------------------------- register access
    cdef int reg_read(self, uint32_t off, uint32_t* out) noexcept nogil:
        """0 on success, -1: unaligned/outside BAR0, -2: no register at off."""
        if off & 3 or off >= r.BAR0_SIZE:
            return -1
        cdef uint32_t w = off >> 2
        if self.handler[w] == H_NONE:
            out[0] = 0
            return self._unknown(off, 0, 0)
        if self.handler[w] == H_RDH:        # the head is published atomically: no lock
            out[0] = load32(&self.rxq[self.qidx[w]].head)
            return 0
        model_lock()
        out[0] = self._read(w, now_ns())
        model_unlock()
        return 0

    cdef int reg_write(self, uint32_t off, uint32_t val) noexcept nogil:
        if off & 3 or off >= r.BAR0_SIZE:
            return -1
        cdef uint32_t w = off >> 2
        cdef RxQ* q
        if self.handler[w] == H_NONE:
            return self._unknown(off, 1, val)
        if self.trace_n < self.trace_cap:
            self.trace[2 * self.trace_n] = off
            self.trace[2 * self.trace_n + 1] = val
            self.trace_n += 1
        if self.handler[w] == H_RDT:
            # The doorbell of the fast path takes no lock (a hardware tail register does not
            # wait either). The fence pairs with the one in rx_frame: either the DMA engine
            # sees this tail, or this thread sees the frame waiting on chip and drains it.
            q = &self.rxq[self.qidx[w]]
            store32(&q.tail, val)
            fence()
            if load32(&self.pb_count):
                model_lock()
                self._drain()
                model_unlock()
            return 0
        model_lock()
        self._write(w, val, now_ns())
        model_unlock()
        return 0

    cdef int _unknown(self, uint32_t off, uint32_t is_write, uint32_t val) noexcept nogil:
        """An offset where no register is: silicon reads 0 and drops the write; the model also
        counts and logs it, and in strict mode refuses it (-2)."""
        cdef uint32_t n
        model_lock()
        n = <uint32_t>self.diag[D_UNKNOWN_ACCESS]
        self.diag[D_UNKNOWN_ACCESS] += 1
        if n < UNKNOWN_LOG:
            self.unknown_log[3 * n] = off
            self.unknown_log[3 * n + 1] = is_write
            self.unknown_log[3 * n + 2] = val
        model_unlock()
        return -2 if self.strict else 0

    cdef uint32_t _read(self, uint32_t w, int64_t now) noexcept nogil:
        cdef uint8_t h = self.handler[w]
        cdef uint32_t q = self.qidx[w], c = self.canon[w], v
        cdef uint64_t full
        cdef bint done = now >= self.reset_done_ns
        self._link_event(now)
        if h == H_RW or h == H_RO or h == H_RAR or h == H_SRRCTL or h == H_RETA or h == H_RSSRK or \
                h == H_MRQC or h == H_RQSMR or h == H_TQSM or h == H_TDWBAL or h == H_W1C or \
                h == H_RWS or h == H_EERD:
            return self.regs[c]
        if h == H_WO or h == H_EIMC or h == H_EICS or h == H_EIMC_EX:
            return 0
        if h == H_RC or h == H_RCW1C:   # counters the model does not count, causes it never sets
            v = self.regs[c]
            self.regs[c] = 0
            return v
        if h == H_RC64L:
            self.latch[w] = self.regs[c + 1]
            v = self.regs[c]
            self.regs[c] = self.regs[c + 1] = 0
            return v
        if h == H_RC64H:
            return self.latch[w - 1]
        if h == H_SWSM:                 # SMBI: a read that finds it clear takes the semaphore
            v = self.regs[c]
            self.regs[c] = v | r.SWSM_SMBI
            return v
        if h == H_CTRL:
            return self.regs[c] | (0 if done else r.CTRL_RST)
        if h == H_STATUS:
            return ((<uint32_t>self.index & 1) << 2) | \
                (r.STATUS_LINKUP if self._link_up(now) else 0) | \
                (0 if self.regs[r.CTRL >> 2] & r.CTRL_GIO_DIS else r.STATUS_GIO_MASTER_EN)
        if h == H_EEC:
            return self.regs[c] | r.EEC_PRES | (r.EEC_ARD if done else 0)
        if h == H_RDRXCTL:
            return self.regs[c] | (r.RDRXCTL_DMAIDONE if done else 0)
        if h == H_LINKS:
            if self._link_up(now):
                return r.LINKS_UP | r.LINKS_LINK_STATUS | r.LINKS_SPEED_10G | r.LINKS_KX_AN_COMP
            return 0
        if h == H_AUTOC:
            return self.regs[c]
        if h == H_ANLP1:                # auto-negotiation has left state 0 once the reset is done
            return self.regs[c] | ((1 << 16) if done else 0)     # AN_STATE 1
        if h == H_EICR:                 # clear on read
            v = self.regs[c]
            self.regs[c] = 0
            return v
        if h == H_EIMS:
            return self.regs[c]
        if h == H_STAT32:
            v = <uint32_t>self.stat[q]
            self.stat[q] = 0
            return v
        if h == H_STATLO:               # read low: counter cleared, high half latched
            full = self.stat[q]
            self.stat[q] = 0
            self.latch[w] = <uint32_t>(full >> 32) & 0xF   # 36-bit counters
            return <uint32_t>full
        if h == H_STATHI:
            return self.latch[c]
        if h == H_RDH:
            return self.rxq[q].head
        if h == H_RDT:
            return self.rxq[q].tail
        if h == H_RXDCTL:
            return (self.regs[c] & ~<uint32_t>r.RXDCTL_ENABLE) | \
                (r.RXDCTL_ENABLE if self.rxq[q].enabled else 0)
        if h == H_TDH:
            return self.txq[q].head
        if h == H_TDT:
            return self.txq[q].tail
        if h == H_TXDCTL:
            return (self.regs[c] & ~<uint32_t>r.TXDCTL_ENABLE) | \
                (r.TXDCTL_ENABLE if self.txq[q].enabled else 0)
        return 0

    cdef void _write(self, uint32_t w, uint32_t val, int64_t now) noexcept nogil:
        cdef uint8_t h = self.handler[w]
        cdef uint32_t q = self.qidx[w], c = self.canon[w], k
        global _rss_generation
        self._link_event(now)
        if h == H_RO or h == H_STATUS or h == H_LINKS or h == H_ANLP1 or h == H_STAT32 or \
                h == H_STATLO or h == H_STATHI or h == H_WO or h == H_RC or h == H_RC64L or h == H_RC64H:
            return                      # read-only: writes are ignored, as on silicon
        if h == H_RW or h == H_SWSM:
            self.regs[c] = (self.regs[c] & ~self.wmask[w]) | (val & self.wmask[w])
            return
        if h == H_W1C or h == H_RCW1C or h == H_EIMC_EX:
            self.regs[c] &= ~val
            return
        if h == H_RWS:
            self.regs[c] |= val & self.wmask[w]
            return
        if h == H_EERD:                 # the read completes at once: DONE with the word
            if val & r.EERD_START:
                k = (val & 0xFFFF) >> r.EERD_ADDR_SHIFT
                self.regs[c] = (k << r.EERD_ADDR_SHIFT) | r.EERD_DONE | \
                    (<uint32_t>(self.nvm[k] if k < NVM_WORDS else 0xFFFF) << r.EERD_DATA_SHIFT)
            return
        if h == H_RAR:
            self.regs[c] = val
            self._update_rar()
            return
        if h == H_CTRL:
            if val & r.CTRL_RST:
                self._reset(now)
            elif val & r.CTRL_LNK_RST:
                self._link_down(now + self.link_delay_ns)
            self.regs[c] = val & ~<uint32_t>r.CTRL_RST_MASK
            return
        if h == H_EEC:
            self.regs[c] = val & ~<uint32_t>(r.EEC_PRES | r.EEC_ARD)
            return
        if h == H_RDRXCTL:
            self.regs[c] = val & ~<uint32_t>r.RDRXCTL_DMAIDONE
            return
        if h == H_AUTOC:
            self.regs[c] = val & ~<uint32_t>r.AUTOC_AN_RESTART
            if val & r.AUTOC_AN_RESTART:
                self._link_down(now + self.link_delay_ns)
            return
        if h == H_EICR:                 # write 1 to clear
            self.regs[c] &= ~val
            return
        if h == H_EICS:
            self.regs[r.EICR >> 2] |= val
            return
        if h == H_EIMS:
            self.regs[c] |= val & r.EIMS_ALL
            return
        if h == H_EIMC:
            self.regs[r.EIMS >> 2] &= ~val
            return
        if h == H_MRQC or h == H_RSSRK:
            self.regs[c] = val
            if h == H_RSSRK:
                self._rebuild_toeplitz()
            _rss_generation += 1
            self.rss_gen = _rss_generation
            return
        if h == H_RETA:
            self.regs[c] = val
            for k in range(4):
                self.reta[4 * q + k] = (val >> (8 * k)) & 0xF
            _rss_generation += 1
            self.rss_gen = _rss_generation
            return
        if h == H_RQSMR or h == H_TQSM:
            self.regs[c] = val
            for k in range(4):
                if h == H_RQSMR:
                    self.rxq[4 * q + k].stat = (val >> (8 * k)) & 0xF
                else:
                    self.txq[4 * q + k].stat = (val >> (8 * k)) & 0xF
            return
        if h == H_SRRCTL:
            self.regs[c] = val
            if self.rxq[q].enabled:     # DROP_EN and buffer size may change on a live queue
                self.rxq[q].drop_en = (val & r.SRRCTL_DROP_EN) != 0
                if val & r.SRRCTL_BSIZEPKT_MASK:
                    self.rxq[q].bufsize = (val & r.SRRCTL_BSIZEPKT_MASK) << r.SRRCTL_BSIZEPKT_SHIFT
            return
        if h == H_RXDCTL:
            self.regs[c] = val
            if val & r.RXDCTL_ENABLE:
                if not self.rxq[q].enabled:
                    self._enable_rx(q)
            else:
                self.rxq[q].enabled = 0
            return
        if h == H_RDH:
            self.rxq[q].head = val
            return
        if h == H_TXDCTL:
            self.regs[c] = val
            if val & r.TXDCTL_ENABLE:
                if not self.txq[q].enabled:
                    self._enable_tx(q)
            else:
                self.txq[q].enabled = 0
            return
        if h == H_TDWBAL:
            self.regs[c] = val
            self.txq[q].wb_iova = ((<uint64_t>self.regs[c + 1] << 32) | (val & ~<uint32_t>3)) \
                if val & r.TDWBAL_HEAD_WB_EN else 0
            return
        if h == H_TDH:
            self.txq[q].head = val
            return
        if h == H_TDT:
            self.txq[q].tail = val
            if not self.tx_deferred:
                self._transmit(q, now)
            return

    cdef void _enable_rx(self, uint32_t q) noexcept nogil:
        # 4.6.7.1: the queue starts with the ring programmed in RDBA/RDLEN/SRRCTL
        cdef uint32_t base = (0x01000 + 0x40 * q if q < 64 else 0x0D000 + 0x40 * (q - 64)) >> 2
        cdef uint32_t rdlen = self.regs[base + 2], srr = self.regs[base + 5]
        cdef uint32_t dtype = srr & r.SRRCTL_DESCTYPE_MASK
        if rdlen == 0 or rdlen % r.RING_ALIGN or (srr & r.SRRCTL_BSIZEPKT_MASK) == 0 or \
                (dtype != r.SRRCTL_DESCTYPE_LEGACY and dtype != r.SRRCTL_DESCTYPE_ADV_ONEBUF) or \
                self.regs[base] % r.RING_ALIGN:
            self.diag[D_QUEUE_REFUSED] += 1
            return
        self.rxq[q].ring_iova = (<uint64_t>self.regs[base + 1] << 32) | self.regs[base]
        self.rxq[q].ndesc = rdlen // r.DESC_SIZE
        self.rxq[q].head %= self.rxq[q].ndesc
        self.rxq[q].tail %= self.rxq[q].ndesc
        self.rxq[q].bufsize = (srr & r.SRRCTL_BSIZEPKT_MASK) << r.SRRCTL_BSIZEPKT_SHIFT
        self.rxq[q].drop_en = (srr & r.SRRCTL_DROP_EN) != 0
        self.rxq[q].legacy = dtype == r.SRRCTL_DESCTYPE_LEGACY
        self.rxq[q].ring = NULL
        self.rxq[q].enabled = 1

    cdef void _enable_tx(self, uint32_t q) noexcept nogil:
        # 4.6.8: a TX queue enables only after DMATXCTL.TE is set
        cdef uint32_t base = (0x06000 + 0x40 * q) >> 2
        cdef uint32_t tdlen = self.regs[base + 2]
        if not (self.regs[r.DMATXCTL >> 2] & r.DMATXCTL_TE) or tdlen == 0 or \
                tdlen % r.RING_ALIGN or self.regs[base] % r.RING_ALIGN:
            self.diag[D_QUEUE_REFUSED] += 1
            return
        self.txq[q].ring_iova = (<uint64_t>self.regs[base + 1] << 32) | self.regs[base]
        self.txq[q].ndesc = tdlen // r.DESC_SIZE
        self.txq[q].head %= self.txq[q].ndesc
        self.txq[q].tail %= self.txq[q].ndesc
        self.txq[q].enabled = 1

    # -------------------------------------------------------------- receive path
    cdef int rx_frame(self, const uint8_t* d, uint32_t n, FrameInfo* fi) noexcept nogil:
        """A frame (without FCS) arrives from the wire. The caller holds the model lock.

        Returns 0 if delivered or queued in the packet buffer, 1 if dropped (and counted)."""
        cdef uint32_t wire_len = n + r.FCS_LEN, maxlen, i, q, pkt_info, status
        cdef uint64_t dst
        cdef uint32_t hlreg0 = self.regs[r.HLREG0 >> 2], fctrl = self.regs[r.FCTRL >> 2]
        cdef uint64_t pb_cap
        cdef int res
        self.diag[D_WIRE_RX] += 1
        if not self.link_is_up:
            if now_ns() < self.link_up_ns:
                self.diag[D_LINK_DOWN] += 1
                return 1
            self.link_is_up = 1
        if not (self.regs[r.RXCTRL >> 2] & r.RXCTRL_RXEN) or \
                self.regs[r.SECRXCTRL >> 2] & r.SECRXCTRL_RX_DIS:
            self.diag[D_RX_DISABLED] += 1
            return 1
        self.stat[C_TPR] += 1
        self.stat[C_TOR] += wire_len
        if wire_len < r.MIN_FRAME:
            self.stat[C_RUC] += 1
            return 1
        maxlen = (self.regs[r.MAXFRS >> 2] >> r.MAXFRS_MFS_SHIFT) if hlreg0 & r.HLREG0_JUMBOEN \
            else r.MAX_FRAME
        if n >= 14 and be16(d + 12) == 0x8100:
            maxlen += 4                     # room for one VLAN tag
        if wire_len > maxlen:
            self.stat[C_ROC] += 1
            return 1
        # L2 filter (7.1.1): broadcast, multicast, exact unicast addresses or promiscuous
        if fi.dst_class == 2:
            if not (fctrl & r.FCTRL_BAM):
                self.diag[D_FILTERED] += 1
                return 1
        elif fi.dst_class == 1:
            if not (fctrl & r.FCTRL_MPE):
                self.diag[D_FILTERED] += 1
                return 1
        elif not (fctrl & r.FCTRL_UPE):
            res = 0
            dst = <uint64_t>d[0] | <uint64_t>d[1] << 8 | <uint64_t>d[2] << 16 | \
                <uint64_t>d[3] << 24 | <uint64_t>d[4] << 32 | <uint64_t>d[5] << 40
            for i in range(self.nrar):
                if self.rar[i] == dst:
                    res = 1
                    break
            if not res:
                self.diag[D_FILTERED] += 1
                return 1
        # RSS (7.1.2.8) picks the queue and the hash written back in the descriptor
        q = self._classify(d, n, fi)
        pkt_info = fi.rss_type | fi.ptype
        status = r.RXDADV_STAT_DD | r.RXDADV_STAT_EOP
        if fi.ptype & r.RXDADV_PKTTYPE_IPV4:
            status |= r.RXDADV_STAT_IPCS
            if fi.ip_csum_bad:
                status |= r.RXDADV_ERR_IPE
        pb_cap = (self.regs[0x03C00 >> 2] >> r.RXPBSIZE_SHIFT) << 10
        if pb_cap > PB_MAX:
            pb_cap = PB_MAX
        if self.pb_count == 0:
            res = self._dma_rx(q, d, n, pkt_info, fi.hash, status)
            if res != 1:
                self._count_good(d, wire_len, fi)
                return 0 if res == 0 else 1
            self.stat[C_RNBC] += 1          # no descriptor: the frame waits on chip
        if self.pb_bytes + wire_len > pb_cap or self.pb_count == self.pb_cap_entries:
            self.stat[C_MPC] += 1           # packet buffer full: missed
            self.regs[r.EICR >> 2] |= r.EICR_RX_MISS
            return 1
        self._count_good(d, wire_len, fi)
        self._pb_push(d, n, q, pkt_info, fi.hash, status)
        fence()                             # pairs with the lock-free RDT write
        self._drain()
        return 0

    cdef void _count_good(self, const uint8_t* d, uint32_t wire_len,
                                 FrameInfo* fi) noexcept nogil:
        self.stat[C_GPRC] += 1
        self.stat[C_GORC] += wire_len
        if fi.dst_class == 2:
            self.stat[C_BPRC] += 1
        elif fi.dst_class == 1:
            self.stat[C_MPRC] += 1
        self.stat[C_PRC64 if wire_len <= 64 else C_PRC127 if wire_len <= 127 else
                  C_PRC255 if wire_len <= 255 else C_PRC511 if wire_len <= 511 else
                  C_PRC1023 if wire_len <= 1023 else C_PRC1522] += 1

    cdef uint32_t _classify(self, const uint8_t* d, uint32_t n, FrameInfo* fi) noexcept nogil:
        cdef uint32_t mrqc = self.regs[r.MRQC >> 2], h = 0, i, ln = 0
        cdef const uint8_t* src = d + fi.l3_off
        cdef uint8_t buf[36]
        cdef uint8_t t = r.RXDADV_RSSTYPE_NONE
        if (mrqc & r.MRQC_MRQE_MASK) != r.MRQC_RSSEN:
            fi.hash = 0
            fi.rss_type = 0
            fi.hash_gen = 0
            return 0
        if fi.hash_gen != self.rss_gen:
            if fi.ptype & r.RXDADV_PKTTYPE_IPV4:
                memcpy(buf, src + 12, 8)
                ln = 8
                if fi.l4 == 6 and mrqc & r.MRQC_RSS_FIELD_IPV4_TCP:
                    t = r.RXDADV_RSSTYPE_IPV4_TCP
                elif fi.l4 == 17 and mrqc & r.MRQC_RSS_FIELD_IPV4_UDP:
                    t = r.RXDADV_RSSTYPE_IPV4_UDP
                elif mrqc & r.MRQC_RSS_FIELD_IPV4:
                    t = r.RXDADV_RSSTYPE_IPV4
                if t != r.RXDADV_RSSTYPE_IPV4 and t != 0:
                    memcpy(buf + 8, src + (src[0] & 0xF) * 4, 4)
                    ln = 12
            elif fi.ptype & r.RXDADV_PKTTYPE_IPV6:
                memcpy(buf, src + 8, 32)
                ln = 32
                if fi.l4 == 6 and mrqc & r.MRQC_RSS_FIELD_IPV6_TCP:
                    t = r.RXDADV_RSSTYPE_IPV6_TCP
                elif fi.l4 == 17 and mrqc & r.MRQC_RSS_FIELD_IPV6_UDP:
                    t = r.RXDADV_RSSTYPE_IPV6_UDP
                elif mrqc & r.MRQC_RSS_FIELD_IPV6:
                    t = r.RXDADV_RSSTYPE_IPV6
                if t != r.RXDADV_RSSTYPE_IPV6 and t != 0:
                    memcpy(buf + 32, src + 40, 4)
                    ln = 36
            if t != 0:
                for i in range(ln):
                    h ^= self.toeplitz[i][buf[i]]
            fi.hash = h
            fi.rss_type = t
            fi.hash_gen = self.rss_gen
        return self.reta[fi.hash & 0x7F]

    cdef int _dma_rx(self, uint32_t qi, const uint8_t* d, uint32_t n, uint32_t pkt_info,
                     uint32_t hash, uint32_t status) noexcept nogil:
        """Write one frame into queue qi's ring: 0 done, 1 no descriptors (frame kept by
        the caller or dropped under DROP_EN, then 2), 2 dropped."""
        cdef RxQ* q = &self.rxq[qi]
        cdef uint32_t avail = 0, need = 1, host_len, pos = 0, chunk, k, head, fcs = 0, ivar
        cdef uint8_t* ring
        cdef uint8_t* desc
        cdef uint8_t* dst
        cdef uint8_t fcsb[4]
        cdef bint strip = (self.regs[r.HLREG0 >> 2] & r.HLREG0_RXCRCSTRP) != 0
        host_len = n if strip else n + 4
        cdef uint32_t tail = load32(&q.tail)
        if q.enabled and tail < q.ndesc:    # a tail beyond the ring stalls the queue
            avail = tail - q.head if tail >= q.head else tail + q.ndesc - q.head
            need = (host_len + q.bufsize - 1) // q.bufsize
        if avail < need:
            if q.drop_en:
                self.stat[C_QPRDC + q.stat] += 1
                return 2
            return 1
        if q.ring == NULL or q.ring_gen != self.iommu.generation:
            q.ring = self.iommu.translate(q.ring_iova, q.ndesc * r.DESC_SIZE, 0)
            q.ring_gen = self.iommu.generation
            q.bufmap.host = NULL
            if q.ring == NULL:
                self.diag[D_RX_RING_FAULT] += 1
                return 2
        ring = q.ring
        if not strip:
            fcs = ethernet_fcs(d, n)
            fcsb[0] = fcs & 0xFF
            fcsb[1] = (fcs >> 8) & 0xFF
            fcsb[2] = (fcs >> 16) & 0xFF
            fcsb[3] = fcs >> 24
        head = q.head
        for k in range(need):
            desc = ring + head * r.DESC_SIZE
            chunk = host_len - pos if host_len - pos < q.bufsize else q.bufsize
            dst = self.iommu.lookup(load64(desc), chunk, 1, &q.bufmap)
            if dst == NULL:
                self.diag[D_RX_BUF_FAULT] += 1
            elif pos + chunk <= n:
                memcpy(dst, d + pos, chunk)
            else:
                if pos < n:
                    memcpy(dst, d + pos, n - pos)
                memcpy(dst + (n - pos if pos < n else 0),
                       fcsb + (pos - n if pos > n else 0), chunk - (n - pos if pos < n else 0))
            if q.legacy:
                store64_release(desc + 8, <uint64_t>chunk |
                                (<uint64_t>(r.RXD_STAT_DD |
                                            (r.RXD_STAT_EOP if k == need - 1 else 0)) << 32))
            else:
                (<uint32_t*>desc)[0] = pkt_info
                (<uint32_t*>desc)[1] = hash
                store64_release(desc + 8, <uint64_t>(
                    status if k == need - 1 else status & ~<uint32_t>r.RXDADV_STAT_EOP) |
                    (<uint64_t>chunk << 32))
            head = head + 1 if head + 1 < q.ndesc else 0
            pos += chunk
        store32(&q.head, head)
        self.stat[C_QPRC + q.stat] += 1
        self.stat[C_QBRC + q.stat] += host_len
        self.stat[C_RXDGPC] += 1
        ivar = (self.regs[(0x00900 >> 2) + qi // 2] >> (16 * (qi & 1))) & 0xFF
        if ivar & r.IVAR_ALLOC_VAL:
            self.regs[r.EICR >> 2] |= 1 << (ivar & 0xF)
        return 0

    cdef void _pb_push(self, const uint8_t* d, uint32_t n, uint32_t q, uint32_t pkt_info,
                       uint32_t hash, uint32_t status) noexcept nogil:
        cdef uint32_t slot = (self.pb_head + self.pb_count) % self.pb_cap_entries
        cdef uint64_t end = self.pb_tail
        cdef uint32_t first = n if end + n <= PB_MAX else PB_MAX - end
        memcpy(self.pb + end, d, first)
        if first < n:
            memcpy(self.pb, d + first, n - first)
        self.pbq[slot].off = end
        self.pbq[slot].len = n
        self.pbq[slot].queue = q
        self.pbq[slot].hash = hash
        self.pbq[slot].pkt_info = pkt_info
        self.pbq[slot].status = status
        store32(&self.pb_count, self.pb_count + 1)
        self.pb_tail = (end + n) % PB_MAX
        self.pb_bytes += n + r.FCS_LEN

    cdef void _drain(self) noexcept nogil:
        """Move waiting frames from the packet buffer to their queues, in arrival order; the
        head frame blocks the rest while its queue has no descriptor (no DROP_EN)."""
        cdef PbEntry* e
        cdef const uint8_t* src
        cdef int res
        while self.pb_count:
            e = &self.pbq[self.pb_head]
            if e.off + e.len <= PB_MAX:
                src = self.pb + e.off
            else:
                memcpy(self.txbuf, self.pb + e.off, PB_MAX - e.off)
                memcpy(self.txbuf + (PB_MAX - e.off), self.pb, e.len - (PB_MAX - e.off))
                src = self.txbuf
            res = self._dma_rx(e.queue, src, e.len, e.pkt_info, e.hash, e.status)
            if res == 1:
                return
            self.pb_head = (self.pb_head + 1) % self.pb_cap_entries
            self.pb_count -= 1
            self.pb_bytes -= e.len + r.FCS_LEN

    # -------------------------------------------------------------- transmit path
    cdef void _transmit(self, uint32_t qi, int64_t now) noexcept nogil:
        """Process descriptors [TDH, TDT) of queue qi (7.2): gather, send, write back DD."""
        cdef TxQ* q = &self.txq[qi]
        cdef uint8_t* ring
        cdef uint8_t* desc
        cdef const uint8_t* src
        cdef uint32_t cmd, ln, flen = 0, wire_len
        cdef bint bad = 0
        cdef FrameInfo fi
        cdef uint32_t* wb
        if not q.enabled or not (self.regs[r.DMATXCTL >> 2] & r.DMATXCTL_TE) or q.tail >= q.ndesc:
            return
        ring = self.iommu.translate(q.ring_iova, q.ndesc * r.DESC_SIZE, 0)
        if ring == NULL:
            self.diag[D_TX_FAULT] += 1
            return
        while q.head != q.tail:
            desc = ring + q.head * r.DESC_SIZE
            cmd = (<uint32_t*>desc)[2]
            if (cmd & r.TXD_CMD_DEXT) and (cmd & r.TXD_DTYP_MASK) == r.TXD_DTYP_CTXT:
                pass                                # context descriptor: offload setup only
            else:
                ln = cmd & r.TXD_DTALEN_MASK
                src = self.iommu.translate(load64(desc), ln, 0)
                if src == NULL or flen + ln > 16384:
                    bad = 1
                else:
                    memcpy(self.txbuf + flen, src, ln)
                    flen += ln
                if cmd & r.TXD_CMD_EOP:
                    if bad:
                        self.diag[D_TX_FAULT] += 1
                    else:
                        self._emit(qi, flen, (cmd & r.TXD_CMD_IFCS) != 0, now)
                    flen = 0
                    bad = 0
            if cmd & r.TXD_CMD_RS:
                (<uint32_t*>desc)[3] |= r.TXD_STAT_DD
            q.head = q.head + 1 if q.head + 1 < q.ndesc else 0
        if q.wb_iova:
            wb = <uint32_t*>self.iommu.translate(q.wb_iova, 4, 1)
            if wb != NULL:
                wb[0] = q.head

    cdef void _emit(self, uint32_t qi, uint32_t flen, bint ifcs, int64_t now) noexcept nogil:
        cdef uint32_t n = flen if ifcs else (flen - 4 if flen >= 4 else 0), wire_len
        cdef FrameInfo fi
        if ifcs and n < 60 and self.regs[r.HLREG0 >> 2] & r.HLREG0_TXPADEN:
            memset(self.txbuf + n, 0, 60 - n)
            n = 60
        wire_len = n + r.FCS_LEN
        if not self._link_up(now):
            self.diag[D_TX_LINK_DOWN] += 1
            return
        parse_frame(self.txbuf, n, &fi)
        self.stat[C_GPTC] += 1
        self.stat[C_TPT] += 1
        self.stat[C_TXDGPC] += 1
        self.stat[C_GOTC] += wire_len
        self.stat[C_QPTC + self.txq[qi].stat] += 1
        self.stat[C_QBTC + self.txq[qi].stat] += n
        if fi.dst_class == 2:
            self.stat[C_BPTC] += 1
        elif fi.dst_class == 1:
            self.stat[C_MPTC] += 1
        self.stat[C_PTC64 if wire_len <= 64 else C_PTC127 if wire_len <= 127 else
                  C_PTC255 if wire_len <= 255 else C_PTC511 if wire_len <= 511 else
                  C_PTC1023 if wire_len <= 1023 else C_PTC1522] += 1
        if self.peer is not None:
            self.peer.rx_frame(self.txbuf, n, &fi)
        else:
            self._sink(n)

    cdef void _sink(self, uint32_t n) noexcept nogil:
        cdef void* p
        self.sink_n += 1
        if not self.keep_tx:
            return
        self.sink_kept += 1
        if self.sink_len + n > self.sink_cap:
            p = realloc(self.sink_buf, (self.sink_len + n) * 2 + 65536)
            if p == NULL:
                return
            self.sink_buf = <uint8_t*>p
            self.sink_cap = (self.sink_len + n) * 2 + 65536
        if self.sink_kept > self.sink_ncap:
            p = realloc(self.sink_lens, (self.sink_kept * 2 + 1024) * 4)
            if p == NULL:
                return
            self.sink_lens = <uint32_t*>p
            self.sink_ncap = self.sink_kept * 2 + 1024
        memcpy(self.sink_buf + self.sink_len, self.txbuf, n)
        self.sink_lens[self.sink_kept - 1] = n
        self.sink_len += n

    # -------------------------------------------------------------- Python API
    def read32(self, uint32_t offset):
        """Read the 32-bit register at BAR0 ``offset``, with the register's side effects."""
        cdef uint32_t v
        cdef int rc
        with nogil:
            rc = self.reg_read(offset, &v)
        if rc:
            raise ModelError(_access_error(offset, rc))
        return v

    def write32(self, uint32_t offset, uint32_t value):
        """Write the 32-bit register at BAR0 ``offset``, with the register's side effects."""
        cdef int rc
        with nogil:
            rc = self.reg_write(offset, value)
        if rc:
            raise ModelError(_access_error(offset, rc))

    def cable(self, Device other):
        """Connect this port to ``other``: each one's transmitted frames reach the other."""
        if other is self:
            raise WirecapError("cable: a port cannot be cabled to itself (use HLREG0.LPBK)")
        self.peer = other
        other.peer = self

    def uncable(self):
        if self.peer is not None:
            self.peer.peer = None
            self.peer = None

    @property
    def cabled_to(self):
        return self.peer

    @property
    def mac(self):
        """The MAC address the NVM loads into RAL(0)/RAH(0)."""
        return "02:57:43:50:%02x:00" % (self.index & 0xFF)

    def deliver(self, frames):
        """Synchronously put frames (bytes without FCS) on this port's receive side.
        Returns how many were delivered or queued on chip."""
        cdef FrameInfo fi
        cdef const uint8_t[::1] view
        cdef int took = 0
        for frame in frames:
            view = bytes(frame) if not isinstance(frame, bytes) else frame
            if view.shape[0] == 0:
                raise ValueError("deliver: an empty frame cannot be put on the wire")
            parse_frame(&view[0], view.shape[0], &fi)
            with nogil:
                model_lock()
                took += self.rx_frame(&view[0], view.shape[0], &fi) == 0
                model_unlock()
        return took

    def transmitted(self):
        """(count, frames kept) of what this port sent to its sink (not to a cable)."""
        cdef uint64_t i, off = 0
        frames = []
        if self.sink_kept:
            for i in range(self.sink_kept):
                frames.append(bytes(self.sink_buf[off:off + self.sink_lens[i]]))
                off += self.sink_lens[i]
        return self.sink_n, frames

    def process_tx(self):
        """With ``tx_deferred``: send what the TDT writes so far handed over, now."""
        cdef uint32_t q
        with nogil:
            model_lock()
            for q in range(128):
                if self.txq[q].enabled and self.txq[q].head != self.txq[q].tail:
                    self._transmit(q, now_ns())
            model_unlock()

    def start_trace(self, int capacity=100000):
        """Record register writes (offset, value), as a bus analyzer would, up to capacity."""
        free(self.trace)
        self.trace = <uint32_t*>malloc(8 * capacity)
        if self.trace == NULL:
            raise MemoryError("register trace")
        self.trace_n, self.trace_cap = 0, capacity

    def stop_trace(self):
        """The writes recorded since start_trace(), oldest first; tracing stops."""
        writes = [(self.trace[2 * i], self.trace[2 * i + 1]) for i in range(self.trace_n)]
        self.trace_cap = self.trace_n = 0
        return writes

    def pending(self):
        """Frames waiting in the on-chip receive packet buffer."""
        return self.pb_count

    def diagnostics(self):
        """Model-only counters (not registers): what the datasheet's counters do not see."""
        return {name: self.diag[i] for i, name in enumerate(DIAGNOSTICS)}

    def unknown_accesses(self):
        """The first accesses to offsets where no register is: (offset, 'read'|'write', value)."""
        n = min(self.diag[D_UNKNOWN_ACCESS], UNKNOWN_LOG)
        return [(self.unknown_log[3 * i], "write" if self.unknown_log[3 * i + 1] else "read",
                 self.unknown_log[3 * i + 2]) for i in range(n)]

    def nvm_word(self, int word):
        """The NVM word EERD returns for ``word`` (0xFFFF beyond the image: erased)."""
        return self.nvm[word] if 0 <= word < NVM_WORDS else 0xFFFF


def _access_error(uint32_t offset, int rc):
    if rc == -1:
        return (f"register access at {offset:#x}: offsets must be 4-byte aligned and below "
                f"BAR0's size {r.BAR0_SIZE:#x}")
    return (f"register access at {offset:#x}: no 82599 register there (strict mode; the "
            f"register table is wirecap/registers/82599.txt)")


def toeplitz(key: bytes, data: bytes) -> int:
    """The Toeplitz hash of ``data`` under ``key`` (reference implementation for checks)."""
    if len(key) < len(data) + 4:
        raise ValueError(f"a {len(data)}-byte input needs a key of at least {len(data) + 4} bytes")
    k = int.from_bytes(key, "big")
    kbits = len(key) * 8
    h = 0
    for i, byte in enumerate(data):
        for b in range(8):
            if byte & (0x80 >> b):
                s = i * 8 + b
                h ^= (k >> (kbits - 32 - s)) & 0xFFFFFFFF
    return h
