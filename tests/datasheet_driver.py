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
