"""Every DMA of the model goes through its IOMMU: unmapped IOVAs fault and touch nothing."""
import struct

import numpy as np
import pytest

from datasheet_driver import RDBAL, RDT
from wirecap.errors import WirecapError
from wirecap.sim import Iommu, TrafficProfile


def test_map_rejects_unaligned_and_overlapping_ranges():
    mmu = Iommu()
    with pytest.raises(WirecapError, match="multiples of 4096"):
        mmu.map(np.zeros(100, np.uint8), 0x10000)
    with pytest.raises(WirecapError, match="multiples of 4096"):
        mmu.map(np.zeros(4096, np.uint8), 0x10010)
    mmu.map(np.zeros(8192, np.uint8), 0x10000)
    with pytest.raises(WirecapError, match="overlaps"):
        mmu.map(np.zeros(4096, np.uint8), 0x11000)
    with pytest.raises(WirecapError, match="nothing is mapped at IOVA 0x20000"):
        mmu.unmap(0x20000)
    with pytest.raises(BufferError):
        mmu.map(b"\0" * 4096, 0x40000)          # read-only memory cannot be a DMA target
    assert mmu.mappings() == {0x10000: 8192}


def test_buffer_fault_is_counted_and_writes_nothing(dev, make_driver):
    drv = make_driver(ndesc=8)
    ring = drv.rx[0]
    guard_iova = ring.buf_iova + ring.bufs.size           # the unmapped guard page after bufs
    struct.pack_into("<QQ", ring.desc, 0, guard_iova, 0)  # descriptor 0 -> unmapped IOVA
    before = [m.copy() for m in (ring.bufs,)]
    faults = dev.iommu.faults
    dev.wire.send(TrafficProfile(count=1))
    assert dev.iommu.faults == faults + 1
    assert dev.iommu.fault_log()[-1] == (guard_iova, 60, "write")
    assert dev.diagnostics()["rx_buf_fault"] == 1
    assert np.array_equal(ring.bufs, before[0]), "no byte of host memory changed"
    # the device does not know its write failed: the descriptor is written back as done
    assert struct.unpack_from("<I", ring.desc, 8)[0] & 1


def test_unmapped_ring_faults_on_descriptor_fetch(dev, make_driver):
    drv = make_driver(ndesc=8)
    ring = drv.rx[0]
    dev.iommu.unmap(ring.desc_iova)
    snapshot = ring.desc.copy()
    dev.wire.send(TrafficProfile(count=3))
    assert dev.diagnostics()["rx_ring_fault"] == 3
    assert np.array_equal(ring.desc, snapshot)
    assert dev.iommu.fault_log()[-1][2] == "read"


def test_transmit_from_unmapped_buffer_sends_nothing(dev, make_driver):
    drv = make_driver()
    dev.keep_tx = True
    ring = drv.tx[0]
    cmd = 60 | (0x3 << 20) | (1 << 24) | (1 << 25) | (1 << 27) | (1 << 29)
    struct.pack_into("<QII", ring.desc, 0, 0xDEAD0000, cmd, 60 << 14)
    dev.write32(0x06018, 1)                               # TDT(0)
    assert dev.transmitted() == (0, [])
    assert dev.diagnostics()["tx_fault"] == 1
