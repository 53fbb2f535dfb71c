"""A minimal 82599 driver written from the datasheet, independent of wirecap's driver.

It deliberately does not import wirecap.ixgbe: offsets and bits below are typed in from the
datasheet, so the model is checked against the datasheet and not against our own register
map. Memory is numpy arrays mapped through the model's IOMMU, as vfio would map them.
"""
import struct
import time

import numpy as np

# datasheet offsets (section 8.2.3)
CTRL, EEC, EICR, EIMS, EIMC, EICS = 0x00000, 0x10010, 0x00800, 0x00880, 0x00888, 0x00808
RDRXCTL, RXCTRL, FCTRL, HLREG0, AUTOC, LINKS = 0x02F00, 0x03000, 0x05080, 0x04240, 0x042A0, 0x042A4
MRQC, DMATXCTL, RTTDCS, DTXMXSZRQ, MAXFRS = 0x05818, 0x04A80, 0x04900, 0x08100, 0x04268
GPRC, GPTC, GORCL, GORCH, MPRC, BPRC = 0x04074, 0x04080, 0x04088, 0x0408C, 0x0407C, 0x04078
RUC, ROC, TPR = 0x040A4, 0x040AC, 0x040D0


def RDBAL(i): return 0x01000 + 0x40 * i if i < 64 else 0x0D000 + 0x40 * (i - 64)
def RDBAH(i): return RDBAL(i) + 0x04
def RDLEN(i): return RDBAL(i) + 0x08
def RDH(i): return RDBAL(i) + 0x10
def SRRCTL(i): return RDBAL(i) + 0x14
def RDT(i): return RDBAL(i) + 0x18
def RXDCTL(i): return RDBAL(i) + 0x28
def TDBAL(i): return 0x06000 + 0x40 * i
def TDLEN(i): return TDBAL(i) + 0x08
def TDH(i): return TDBAL(i) + 0x10
def TDT(i): return TDBAL(i) + 0x18
def TXDCTL(i): return TDBAL(i) + 0x28
def RETA(i): return 0x05C00 + 4 * i
def RSSRK(i): return 0x05C80 + 4 * i
def RQSMR(i): return 0x02300 + 4 * i
def TQSM(i): return 0x08600 + 4 * i
def QPRC(i): return 0x01030 + 0x40 * i
def QPRDC(i): return 0x01430 + 0x40 * i
def QPTC(i): return 0x08680 + 4 * i
def MPC(i): return 0x03FA0 + 4 * i
def RNBC(i): return 0x03FC0 + 4 * i
def RXPBSIZE(i): return 0x03C00 + 4 * i


STATS = {"GPRC": GPRC, "GPTC": GPTC, "GORCL": GORCL, "MPRC": MPRC, "BPRC": BPRC, "RUC": RUC,
         "ROC": ROC, "TPR": TPR, **{f"MPC{i}": MPC(i) for i in range(8)},
         **{f"RNBC{i}": RNBC(i) for i in range(8)},
         **{f"QPRC{i}": QPRC(i) for i in range(16)},
         **{f"QPRDC{i}": QPRDC(i) for i in range(16)},
         **{f"QPTC{i}": QPTC(i) for i in range(16)}}

MS_RSS_KEY = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c"
                           "6a42b73bbeac01fa")


def wait_for(cond, what, timeout=2.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(what)
        time.sleep(0.0005)


class Ring:
    def __init__(self, drv, ndesc, bufsize):
        self.ndesc, self.bufsize = ndesc, bufsize
        self.desc = drv.alloc(ndesc * 16)
        self.bufs = drv.alloc(ndesc * bufsize)
        self.desc_iova = drv.iova_of(self.desc)
        self.buf_iova = drv.iova_of(self.bufs)
        self.next = 0


class DatasheetDriver:
    def __init__(self, dev, nrx=1, ntx=1, ndesc=256, bufsize=2048, drop_en=False,
                 rss_queues=0, promisc=False):
        self.dev, self.iommu = dev, dev.iommu
        self.nrx, self.ntx, self.ndesc, self.bufsize = nrx, ntx, ndesc, bufsize
        self.drop_en, self.rss_queues, self.promisc = drop_en, rss_queues, promisc
        self._next_iova, self._iovas = 0x100000 * (dev.index + 1) << 8, {}
        self.rx, self.tx = [], []

    # memory -----------------------------------------------------------------------------
    def alloc(self, size):
        size = (size + 4095) & ~4095
        mem = np.zeros(size, dtype=np.uint8)
        self.iommu.map(mem, self._next_iova)
        self._iovas[mem.ctypes.data] = self._next_iova
        self._next_iova += size + 4096       # a guard page between mappings
        return mem

    def iova_of(self, mem):
        return self._iovas[mem.ctypes.data]

    # registers --------------------------------------------------------------------------
    def r(self, off):
        return self.dev.read32(off)

    def w(self, off, val):
        self.dev.write32(off, val & 0xFFFFFFFF)

    def set_bits(self, off, bits):
        self.w(off, self.r(off) | bits)

    def clear_bits(self, off, bits):
        self.w(off, self.r(off) & ~bits)

    # 4.6.3 initialization sequence ------------------------------------------------------
    def init(self):
        self.w(EIMC, 0x7FFFFFFF)                        # 4.6.3.1 mask all interrupts
        self.w(CTRL, self.r(CTRL) | (1 << 26) | (1 << 3))  # 4.6.3.2 global reset (RST|LNK_RST)
        wait_for(lambda: self.r(CTRL) & ((1 << 26) | (1 << 3)) == 0, "CTRL.RST self-clear")
        time.sleep(0.01)
        self.w(EIMC, 0x7FFFFFFF)                        # interrupts again, after reset
        wait_for(lambda: self.r(EEC) & (1 << 9), "EEC.ARD")           # NVM auto-read done
        wait_for(lambda: self.r(RDRXCTL) & (1 << 3), "RDRXCTL.DMAIDONE")
        # 4.6.4 link: 10G serial, restart auto-negotiation
        self.w(AUTOC, (self.r(AUTOC) & ~(0x7 << 13)) | (0x3 << 13))
        self.w(AUTOC, self.r(AUTOC) | (1 << 12))
        for off in STATS.values():                       # 4.6.5 statistics: clear on read
            self.r(off)
        self.r(GORCH)
        self.init_rx()
        self.init_tx()
        wait_for(lambda: self.r(LINKS) & (1 << 30), "LINKS.UP")

    def init_rx(self):                                   # 4.6.7
        self.clear_bits(RXCTRL, 1)                       # RXEN off while configuring
        self.w(RXPBSIZE(0), 512 << 10)
        self.set_bits(HLREG0, 1 << 1)                    # strip CRC
        self.set_bits(RDRXCTL, 1 << 1)
        self.w(FCTRL, (1 << 10) | ((1 << 9) | (1 << 8) if self.promisc else 0))
        self.rss_and_stat_mapping()
        for q in range(self.nrx):
            ring = Ring(self, self.ndesc, self.bufsize)
            self.w(RDBAL(q), ring.desc_iova & 0xFFFFFFFF)
            self.w(RDBAH(q), ring.desc_iova >> 32)
            self.w(RDLEN(q), self.ndesc * 16)
            self.w(SRRCTL(q), (self.bufsize >> 10) | (1 << 25) | ((1 << 28) if self.drop_en else 0))
            self.w(RDH(q), 0)
            self.w(RDT(q), 0)
            self.rx.append(ring)
        self.set_bits(RXCTRL, 1)
        for q, ring in enumerate(self.rx):               # 4.6.7.1 enable each queue
            self.set_bits(RXDCTL(q), 1 << 25)
            wait_for(lambda: self.r(RXDCTL(q)) & (1 << 25), f"RXDCTL({q}).ENABLE")
            for i in range(self.ndesc):
                self._arm(ring, i)
            self.w(RDT(q), self.ndesc - 1)

    def rss_and_stat_mapping(self):
        if self.rss_queues:
            for i in range(10):
                self.w(RSSRK(i), int.from_bytes(MS_RSS_KEY[4 * i:4 * i + 4], "little"))
            for i in range(32):
                entries = [(4 * i + k) % self.rss_queues for k in range(4)]
                self.w(RETA(i), sum(e << (8 * k) for k, e in enumerate(entries)))
            self.w(MRQC, 0x1 | (1 << 16) | (1 << 17) | (1 << 22))   # RSS: IPv4, TCP, UDP
        for i in range(4):                               # queue i counts in QPRC(i)
            self.w(RQSMR(i), sum((4 * i + k) << (8 * k) for k in range(4)))
            self.w(TQSM(i), sum((4 * i + k) << (8 * k) for k in range(4)))

    def init_tx(self):                                   # 4.6.8
        self.set_bits(HLREG0, (1 << 0) | (1 << 10))      # append CRC, pad short frames
        self.set_bits(RTTDCS, 1 << 6)                    # arbiter off while configuring
        self.w(DTXMXSZRQ, 0xFFFF)
        self.clear_bits(RTTDCS, 1 << 6)
        self.w(DMATXCTL, 1)                              # DMATXCTL.TE before enabling queues
        for q in range(self.ntx):
            ring = Ring(self, self.ndesc, self.bufsize)
            self.w(TDBAL(q), ring.desc_iova & 0xFFFFFFFF)
            self.w(TDBAL(q) + 4, ring.desc_iova >> 32)
            self.w(TDLEN(q), self.ndesc * 16)
            self.w(TDH(q), 0)
            self.w(TDT(q), 0)
            self.w(TXDCTL(q), (36 << 0) | (8 << 8) | (4 << 16) | (1 << 25))
            wait_for(lambda: self.r(TXDCTL(q)) & (1 << 25), f"TXDCTL({q}).ENABLE")
            self.tx.append(ring)

    # receive ----------------------------------------------------------------------------
    def _arm(self, ring, i):
        struct.pack_into("<QQ", ring.desc, i * 16, ring.buf_iova + i * ring.bufsize, 0)

    def receive(self, q):
        """Every complete frame waiting on queue q: (bytes, rss_hash, pkt_info, status)."""
        ring, frames, parts = self.rx[q], [], []
        while True:
            i = ring.next
            info, rss, status, length, _ = struct.unpack_from("<IIIHH", ring.desc, i * 16)
            if not status & 1:                           # DD
                break
            parts.append(bytes(ring.bufs[i * ring.bufsize:i * ring.bufsize + length]))
            if status & 2:                               # EOP
                frames.append((b"".join(parts), rss, info, status))
                parts = []
            self._arm(ring, i)
            ring.next = (i + 1) % ring.ndesc
            if not parts:
                self.w(RDT(q), i)                        # give back up to this descriptor
        assert not parts, "a frame was left half-received"
        return frames

    # transmit ---------------------------------------------------------------------------
    def transmit(self, q, frames):
        ring = self.tx[q]
        first = ring.next
        for frame in frames:
            i = ring.next
            ring.bufs[i * ring.bufsize:i * ring.bufsize + len(frame)] = np.frombuffer(frame, np.uint8)
            cmd = len(frame) | (0x3 << 20) | (1 << 24) | (1 << 25) | (1 << 27) | (1 << 29)
            struct.pack_into("<QII", ring.desc, i * 16, ring.buf_iova + i * ring.bufsize, cmd,
                             len(frame) << 14)
            ring.next = (i + 1) % ring.ndesc
        self.w(TDT(q), ring.next)
        done = [struct.unpack_from("<I", ring.desc, ((first + k) % ring.ndesc) * 16 + 12)[0] & 1
                for k in range(len(frames))]
        return all(done)

    def stats(self):
        return {name: self.r(off) for name, off in STATS.items()}


# ---------------------------------------------------------------------------------------------
# A second bring-up, in the order the Intel shared code (the base of Linux's and DPDK's 82599
# drivers) follows: reset_hw, init_hw/start_hw, setup_link, fc_enable, then the OS driver's RX/TX
# configuration, MSI-X vectors, queue enables and RX enable through the security block. Offsets
# and bits are the datasheet's, typed in here; where the shared code uses the 82598-compatible
# address of a register (RAL/RAH, PSRTYPE, SRRCTL, DCA_RXCTRL for entries 0-15, QPTC), so does
# this driver.

STATUS, CTRL_EXT, EERD, SWSM, GSSR = 0x00008, 0x00018, 0x10014, 0x10140, 0x10160
MCSTCTRL, MFLCN, FCCFG, FCRTV, RDRXCTL_ = 0x05090, 0x04294, 0x03D00, 0x032A0, 0x02F00
SECRXCTRL, SECRXSTAT, RTTDQSEL, RTTBCNRC, MTQC = 0x08D00, 0x08D04, 0x04904, 0x04984, 0x08120
GPIE, EIAC, IVAR_MISC, AUTOC2, ANLP1 = 0x00898, 0x00810, 0x00A00, 0x042A8, 0x042B0


def RAL_82598(i): return 0x05400 + 8 * i            # entries 0-15 (82598-compatible address)
def RAH_82598(i): return 0x05404 + 8 * i
def RAL(i): return 0x0A200 + 8 * i
def RAH(i): return 0x0A204 + 8 * i
def MTA(i): return 0x05200 + 4 * i
def UTA(i): return 0x0F400 + 4 * i
def VFTA(i): return 0x0A000 + 4 * i
def VLVF(i): return 0x0F100 + 4 * i
def VLVFB(i): return 0x0F200 + 4 * i
def MPSAR_LO(i): return 0x0A600 + 8 * i
def MPSAR_HI(i): return 0x0A604 + 8 * i
def PSRTYPE_82598(i): return 0x05480 + 4 * i
def SRRCTL_82598(i): return 0x02100 + 4 * i
def DCA_RXCTRL_82598(i): return 0x02200 + 4 * i
def DCA_TXCTRL(i): return 0x0600C + 0x40 * i
def RSCCTL(i): return RDBAL(i) + 0x2C
def QPTC_82598(i): return 0x06030 + 0x40 * i
def QBRC_L(i): return 0x01034 + 0x40 * i
def QBTC_L(i): return 0x08700 + 8 * i
def FCTTV(i): return 0x03200 + 4 * i
def FCRTL(i): return 0x03220 + 4 * i
def FCRTH(i): return 0x03260 + 4 * i
def TXPBSIZE(i): return 0x0CC00 + 4 * i
def TXPBTHRESH(i): return 0x04950 + 4 * i
def IVAR(i): return 0x00900 + 4 * i
def EITR(i): return 0x00820 + 4 * i if i < 24 else 0x12300 + 4 * (i - 24)
def EIMS_EX(i): return 0x00AA0 + 4 * i
def EIMC_EX(i): return 0x00AB0 + 4 * i
def EIAM_EX(i): return 0x00AD0 + 4 * i
def PXONTXC(i): return 0x03F00 + 4 * i
def PXOFFTXC(i): return 0x03F20 + 4 * i
def PXON2OFFCNT(i): return 0x03240 + 4 * i
def PXONRXCNT(i): return 0x04140 + 4 * i
def PXOFFRXCNT(i): return 0x04160 + 4 * i


# the statistics the shared code's clear_hw_cntrs reads on an 82599 (64-bit pairs: low, then high)
CLEAR_ON_READ = ([0x04000, 0x04004, 0x04008, 0x04010, 0x04034, 0x04038, 0x04040,   # CRCERRS..RLEC
                  0x03F60, 0x03F68, 0x041A4, 0x041A8,                              # link XON/XOFF
                  0x0405C, 0x04060, 0x04064, 0x04068, 0x0406C, 0x04070,            # PRC64..1522
                  GPRC, BPRC, MPRC, GPTC, GORCL, GORCH, 0x04090, 0x04094,          # ..GOTCL/H
                  RUC, 0x040A8, ROC, 0x040B0, 0x040B4, 0x040B8, 0x0CF90,           # ..MNGPTC
                  0x040C0, 0x040C4, TPR, 0x040D4,                                  # TORL/H, TPR, TPT
                  0x040D8, 0x040DC, 0x040E0, 0x040E4, 0x040E8, 0x040EC, 0x040F0, 0x040F4,
                  0x04120, 0x08780,                                                # XEC, SSVPC
                  0x05118, 0x0241C, 0x02428, 0x08784, 0x0242C, 0x08788]            # FCoE
                 + [f(i) for f in (MPC, RNBC, PXONTXC, PXOFFTXC, PXONRXCNT, PXOFFRXCNT,
                                   PXON2OFFCNT) for i in range(8)]
                 + [f(i) for i in range(16)
                    for f in (QPRC, QPTC_82598, QPRDC, QBRC_L, lambda i: QBRC_L(i) + 4,
                              QBTC_L, lambda i: QBTC_L(i) + 4)])

NVM_CHECKSUM_WORD, NVM_SUM = 0x3F, 0xBABA


class SharedCodeOrderDriver(DatasheetDriver):
    """DatasheetDriver brought up in the Intel shared code's order on an 82599."""

    mac = None

    def init(self):
        self.reset_hw()
        self.init_hw()
        self.setup_link()
        self.fc_enable()
        self.init_tx()
        self.configure_rx()
        self.configure_msix()
        self.enable_rx_through_security_block()
        wait_for(lambda: self.r(LINKS) & (1 << 30), "LINKS.UP")

    # semaphores ---------------------------------------------------------------------------
    def get_nvm_semaphore(self):
        # SWSM.SMBI reads 0 exactly once (the read sets it), then software owns SWESMBI
        wait_for(lambda: not self.r(SWSM) & 1, "SWSM.SMBI free")
        self.set_bits(SWSM, 1 << 1)
        assert self.r(SWSM) & (1 << 1), "SWSM.SWESMBI did not stick"

    def put_nvm_semaphore(self):
        self.clear_bits(SWSM, (1 << 1) | 1)

    def acquire_swfw(self, mask):
        self.get_nvm_semaphore()
        gssr = self.r(GSSR)
        assert not gssr & ((mask << 5) | mask), f"GSSR {gssr:#x}: resource {mask:#x} is taken"
        self.w(GSSR, gssr | mask)
        self.put_nvm_semaphore()

    def release_swfw(self, mask):
        self.get_nvm_semaphore()
        self.clear_bits(GSSR, mask)
        self.put_nvm_semaphore()

    def read_nvm(self, word):
        self.acquire_swfw(1)                             # GSSR.SW_EEP_SM
        self.w(EERD, (word << 2) | 1)                    # address 15:2, START
        wait_for(lambda: self.r(EERD) & (1 << 1), f"EERD.DONE for word {word:#x}")
        value = self.r(EERD) >> 16
        self.release_swfw(1)
        return value

    # reset_hw -----------------------------------------------------------------------------
    def stop_adapter(self):
        self.clear_bits(RXCTRL, 1)
        self.w(EIMC, 0xFFFFFFFF)
        self.r(EICR)
        for q in range(128):
            self.w(TXDCTL(q), 1 << 26)                   # SWFLSH
            self.w(RXDCTL(q), (self.r(RXDCTL(q)) & ~(1 << 25)) | (1 << 26))
        self.r(STATUS)
        time.sleep(0.002)
        self.set_bits(CTRL, 1 << 2)                      # GIO master disable
        wait_for(lambda: not self.r(STATUS) & (1 << 19), "STATUS.GIO_MASTER_EN clear")

    def reset_hw(self):
        self.stop_adapter()
        for _ in range(2):                               # the first reset after power-up is doubled
            self.set_bits(CTRL, 1 << 26)
            wait_for(lambda: not self.r(CTRL) & ((1 << 26) | (1 << 3)), "CTRL.RST self-clear")
            time.sleep(0.005)
        wait_for(lambda: self.r(EEC) & (1 << 9), "EEC.ARD")
        self.orig_autoc, self.orig_autoc2 = self.r(AUTOC), self.r(AUTOC2)
        low, high = self.r(RAL_82598(0)), self.r(RAH_82598(0))
        assert high & 0x80000000, "RAH(0).AV: the NVM loaded no MAC address"
        self.mac = (low | (high & 0xFFFF) << 32).to_bytes(6, "little")
        self.san_mac_ptr = self.read_nvm(0x28)
        self.validate_nvm_checksum()

    def validate_nvm_checksum(self):
        words = [self.read_nvm(w) for w in range(NVM_CHECKSUM_WORD + 1)]
        total = sum(words[:NVM_CHECKSUM_WORD])
        for ptr in words[0x03:0x0F]:                     # sections the checksum also covers
            if ptr in (0, 0xFFFF):
                continue
            length = self.read_nvm(ptr)
            if length not in (0, 0xFFFF):
                total += sum(self.read_nvm(ptr + 1 + k) for k in range(length))
        assert (NVM_SUM - total) & 0xFFFF == words[NVM_CHECKSUM_WORD], "NVM checksum"

    # init_hw / start_hw -------------------------------------------------------------------
    def init_hw(self):
        for i in range(128):                             # clear_vfta
            self.w(VFTA(i), 0)
            self.w(VLVFB(i), 0)
        for i in range(64):
            self.w(VLVF(i), 0)
        for off in CLEAR_ON_READ:                        # clear_hw_cntrs
            self.r(off)
        for q in range(128):                             # start_hw_gen2: no relaxed-order writes
            self.clear_bits(DCA_TXCTRL(q), 1 << 11)
            self.w(RTTDQSEL, q)                          # ... and no rate limiters
            self.w(RTTBCNRC, 0)
        for q in range(16):
            self.clear_bits(DCA_RXCTRL_82598(q), (1 << 13) | (1 << 15))
        self.init_rx_addrs()
        self.set_bits(CTRL_EXT, 1 << 28)                 # DRV_LOAD

    def init_rx_addrs(self):
        low, high = int.from_bytes(self.mac[:4], "little"), int.from_bytes(self.mac[4:], "little")
        self.w(RAL_82598(0), low)
        self.w(RAH_82598(0), high | 0x80000000)
        self.w(MPSAR_LO(0), 1)                           # pool 0
        for i in range(1, 128):
            self.w(RAL_82598(i) if i < 16 else RAL(i), 0)
            self.w(RAH_82598(i) if i < 16 else RAH(i), 0)
            self.w(MPSAR_LO(i), 0)
            self.w(MPSAR_HI(i), 0)
        self.w(MCSTCTRL, 1 << 2)                         # MFE, filter type 0
        for i in range(128):
            self.w(MTA(i), 0)
            self.w(UTA(i), 0)

    # setup_link / fc_enable ---------------------------------------------------------------
    def setup_link(self):
        self.acquire_swfw(1 << 3)                        # GSSR.SW_MAC_CSR_SM around AUTOC
        autoc = (self.orig_autoc & ~(0x7 << 13)) | (0x4 << 13) | (0x3 << 30)  # KX4/KX/KR, KX4+KX
        self.w(AUTOC, autoc | (1 << 12))                 # restart auto-negotiation
        # pipeline reset: restart with LMS[2] toggled, wait for AN to leave state 0, restore
        self.w(AUTOC, (autoc | (1 << 12)) ^ (0x4 << 13))
        wait_for(lambda: self.r(ANLP1) & (0xF << 16), "ANLP1.AN_STATE left state 0", 0.04)
        self.w(AUTOC, autoc | (1 << 12))
        self.release_swfw(1 << 3)
        wait_for(lambda: self.r(LINKS) & 0x80000000, "LINKS.KX_AN_COMP")

    def fc_enable(self, pause_time=0x680):
        self.w(MFLCN, (self.r(MFLCN) & ~((1 << 2) | (1 << 3))) | (1 << 3))  # RFCE
        self.w(FCCFG, (self.r(FCCFG) & ~(0x3 << 3)) | (1 << 3))             # TFCE 802.3x
        for i in range(8):
            if i == 0:
                self.w(FCRTL(i), (0x1000 << 0) | 0x80000000)                # XON enable
                self.w(FCRTH(i), (self.r(RXPBSIZE(0)) - 0x6000) | 0x80000000)
            else:
                self.w(FCRTL(i), 0)
                self.w(FCRTH(i), self.r(RXPBSIZE(i)))
        for i in range(4):
            self.w(FCTTV(i), pause_time * 0x00010001)
        self.w(FCRTV, pause_time // 2)

    # RX configuration, MSI-X, RX enable ---------------------------------------------------
    def configure_rx(self):
        self.clear_bits(RXCTRL, 1)
        self.w(RXPBSIZE(0), 512 << 10)
        self.w(TXPBSIZE(0), 160 << 10)
        self.w(TXPBTHRESH(0), 160 - 2)
        self.w(RDRXCTL_, self.r(RDRXCTL_) | (1 << 1) | (1 << 25) | (1 << 26))  # CRCSTRIP..
        self.w(PSRTYPE_82598(0), (1 << 4) | (1 << 5) | (1 << 8) | (1 << 9) | (1 << 12))
        self.set_bits(HLREG0, 1 << 1)
        self.w(FCTRL, (1 << 10) | ((1 << 9) | (1 << 8) if self.promisc else 0))
        self.rss_and_stat_mapping()
        for q in range(self.nrx):
            ring = Ring(self, self.ndesc, self.bufsize)
            self.clear_bits(RXDCTL(q), 1 << 25)
            wait_for(lambda: not self.r(RXDCTL(q)) & (1 << 25), f"RXDCTL({q}) disabled")
            self.w(RDBAL(q), ring.desc_iova & 0xFFFFFFFF)
            self.w(RDBAH(q), ring.desc_iova >> 32)
            self.w(RDLEN(q), self.ndesc * 16)
            self.w(RDH(q), 0)
            self.w(RDT(q), 0)
            srrctl = (self.bufsize >> 10) | (1 << 25) | ((1 << 28) if self.drop_en else 0)
            self.w(SRRCTL_82598(q) if q < 16 else SRRCTL(q), srrctl)
            self.w(RSCCTL(q), 0)
            self.set_bits(RXDCTL(q), 1 << 25)
            wait_for(lambda: self.r(RXDCTL(q)) & (1 << 25), f"RXDCTL({q}).ENABLE")
            for i in range(self.ndesc):
                self._arm(ring, i)
            self.w(RDT(q), self.ndesc - 1)
            self.rx.append(ring)

    def configure_msix(self):
        self.w(GPIE, (1 << 4) | (1 << 5) | (1 << 30) | 0x80000000)  # MSI-X, OCD, EIAME, PBA
        for q in range(self.nrx):                        # RX queue q -> vector q
            v = self.r(IVAR(q >> 1)) & ~(0xFF << (16 * (q & 1)))
            self.w(IVAR(q >> 1), v | ((q | 0x80) << (16 * (q & 1))))
            self.w(EITR(q), 0x1F8)                       # about 20 k interrupts/s
        self.w(IVAR_MISC, (self.nrx | 0x80) << 8)        # "other" causes -> the next vector
        self.w(EITR(self.nrx), 0x1F8)
        self.w(EITR(64), 0)                              # a vector in the second EITR range
        mask = (1 << (self.nrx + 1)) - 1
        self.w(EIAC, mask)
        self.w(EIAM_EX(0), 0xFFFFFFFF)
        self.w(EIAM_EX(1), 0xFFFFFFFF)
        self.w(EIMS_EX(0), mask)
        self.w(EIMS, (1 << 20) | mask)                   # LSC and the queue vectors

    def enable_rx_through_security_block(self):
        self.set_bits(SECRXCTRL, 1 << 1)                 # RX_DIS
        wait_for(lambda: self.r(SECRXSTAT) & 1, "SECRXSTAT.SECRX_RDY")
        self.set_bits(RXCTRL, 1)
        self.clear_bits(SECRXCTRL, 1 << 1)
