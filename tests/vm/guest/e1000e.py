"""A minimal e1000e (Intel 82574) driver for the guest: one receive and one transmit ring of
legacy descriptors, polled, with its rings and buffers in ``wirecap._dma`` regions mapped by
``wirecap._vfio``. Just enough to move frames through a real IOMMU and check them byte for byte.

Registers, bits and descriptor layouts from Intel's public 82574 GbE Controller datasheet
(the 8257x family): section 10 (registers), 7.1.4 (legacy receive descriptor), 7.2.10 (legacy
transmit descriptor).
"""
import ctypes
import struct
import time

CTRL, STATUS, IMC = 0x0000, 0x0008, 0x00D8
CTRL_SLU, CTRL_RST = 1 << 6, 1 << 26
STATUS_LU = 1 << 1
RCTL, TCTL, TIPG = 0x0100, 0x0400, 0x0410
RCTL_EN, RCTL_BAM, RCTL_SECRC = 1 << 1, 1 << 15, 1 << 26      # BSIZE 00: 2048-byte buffers
TCTL_EN, TCTL_PSP = 1 << 1, 1 << 3
TCTL_CT, TCTL_COLD = 0x0F << 4, 0x3F << 12                    # full duplex values
RDBAL, RDBAH, RDLEN, RDH, RDT = 0x2800, 0x2804, 0x2808, 0x2810, 0x2818
TDBAL, TDBAH, TDLEN, TDH, TDT = 0x3800, 0x3804, 0x3808, 0x3810, 0x3818
RAL0, RAH0 = 0x5400, 0x5404
GPRC, GPTC = 0x4074, 0x4080                                   # good packets, clear on read
TX_EOP, TX_IFCS, TX_RS = 0x01, 0x02, 0x08                     # transmit descriptor CMD
DD, EOP = 0x01, 0x02                                          # descriptor STATUS
BUF = 2048
DESC = 16


def wait_for(condition, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"e1000e: {what} within {timeout} s")
        time.sleep(0.001)


class E1000e:
    """``dev`` an open ``wirecap._vfio.PciDevice``, ``domain`` a ``wirecap._dma.Domain`` on
    its container."""

    def __init__(self, dev, domain, ndesc=16):
        self.dev, self.domain, self.ndesc = dev, domain, ndesc
        # Each element access is one 32-bit load or store on BAR0: a real MMIO access.
        self.bar = (ctypes.c_uint32 * (dev.bar0_size // 4)).from_address(dev.bar0_addr)

    def r(self, off):
        return self.bar[off >> 2]

    def w(self, off, value):
        self.bar[off >> 2] = value

    @property
    def mac(self):
        return struct.pack("<IH", self.r(RAL0), self.r(RAH0) & 0xFFFF)

    def reset(self):
        self.w(IMC, 0xFFFFFFFF)                 # polled: no interrupts
        self.w(CTRL, self.r(CTRL) | CTRL_RST)
        time.sleep(0.01)                        # the datasheet: wait before touching it again
        wait_for(lambda: not self.r(CTRL) & CTRL_RST, "reset did not complete")
        self.w(IMC, 0xFFFFFFFF)
        self.w(CTRL, self.r(CTRL) | CTRL_SLU)
        wait_for(lambda: self.r(STATUS) & STATUS_LU, "no link")

    def start(self, rx=True, tx=True):
        self.reset()
        if rx:
            self.rx_ring = self.domain.alloc(self.ndesc * DESC, hugepages=False)
            self.rx_bufs = self.domain.alloc(self.ndesc * BUF, hugepages=False)
            for i in range(self.ndesc):
                struct.pack_into("<QQ", self.rx_ring, i * DESC, self.rx_bufs.iova + i * BUF, 0)
            self._ring(RDBAL, RDBAH, RDLEN, RDH, self.rx_ring)
            self.rx_next = 0
            self.w(RDT, self.ndesc - 1)         # all but one descriptor to the NIC
            self.w(RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC)
        if tx:
            self.tx_ring = self.domain.alloc(self.ndesc * DESC, hugepages=False)
            self.tx_bufs = self.domain.alloc(self.ndesc * BUF, hugepages=False)
            self._ring(TDBAL, TDBAH, TDLEN, TDH, self.tx_ring)
            self.w(TDT, 0)
            self.tx_next = 0
            self.w(TIPG, 0x0060200A)            # IPGT 10, IPGR1 8, IPGR2 6 (datasheet defaults)
            self.w(TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD)

    def _ring(self, bal, bah, dlen, head, region):
        self.w(bal, region.iova & 0xFFFFFFFF)
        self.w(bah, region.iova >> 32)
        self.w(dlen, self.ndesc * DESC)
        self.w(head, 0)

    def send(self, frame, iova=None, wait=True):
        """Transmit ``frame`` from this slot's buffer (or from ``iova`` as given, mapped or
        not); returns the descriptor's index. With ``wait``, until the NIC wrote DD back."""
        i = self.tx_next
        addr = self.tx_bufs.iova + i * BUF if iova is None else iova
        if iova is None:
            self.tx_bufs.array[i * BUF:i * BUF + len(frame)] = memoryview(frame)
        struct.pack_into("<QHBBBBH", self.tx_ring, i * DESC, addr, len(frame), 0,
                         TX_EOP | TX_IFCS | TX_RS, 0, 0, 0)
        self.tx_next = (i + 1) % self.ndesc
        self.w(TDT, self.tx_next)
        if wait:
            wait_for(lambda: self.tx_ring.array[i * DESC + 12] & DD, f"transmit {i} not done")
        return i

    def receive(self, timeout=10.0):
        """The next received frame (bytes, as the NIC wrote it into its buffer)."""
        i = self.rx_next
        wait_for(lambda: self.rx_ring.array[i * DESC + 12] & DD, f"nothing received in {i}", timeout)
        _, length, _, status, errors, _ = struct.unpack_from("<QHHBBH", self.rx_ring, i * DESC)
        assert status & EOP and not errors, (status, errors)
        frame = bytes(self.rx_bufs.array[i * BUF:i * BUF + length])
        struct.pack_into("<QQ", self.rx_ring, i * DESC, self.rx_bufs.iova + i * BUF, 0)
        self.w(RDT, i)                          # the slot goes back to the NIC
        self.rx_next = (i + 1) % self.ndesc
        return frame
