"""DMA memory: regions in hugepages or 4 KiB pages, IOVAs, and mapping through the model's IOMMU."""
import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from datasheet_driver import DatasheetDriver, TDT
from wirecap._dma import DmaWarning, Domain
from wirecap.errors import WirecapError
from wirecap.sim import Device, Iommu, TrafficProfile

POOL = Path("/sys/kernel/mm/hugepages/hugepages-2048kB")
HUGE = 2 << 20


class DomainDriver(DatasheetDriver):
    """The independent datasheet driver, with its rings and buffers taken from a Domain."""

    def __init__(self, dev, domain, **kw):
        super().__init__(dev, **kw)
        self.domain = domain

    def alloc(self, size):
        region = self.domain.alloc(size, hugepages=False)
        mem = region.array
        self._iovas[mem.ctypes.data] = region.iova
        return mem


@pytest.fixture
def hugepage_pool():
    """Sizes the machine's 2 MiB hugepage pool (root only); the old size comes back after. It
    counts free pages, so pages another test of this process still maps change nothing."""
    nr = POOL / "nr_hugepages"
    if os.geteuid() != 0 or not nr.exists():
        pytest.skip("resizing the hugepage pool needs root and a kernel with hugetlbfs")
    before = nr.read_text()

    def resize(count):
        """``count`` free pages for this test, beside any other holder's; returns the free count."""
        in_use = int(nr.read_text()) - free_hugepages()
        nr.write_text(f"{in_use + count}\n")
        return free_hugepages()
    yield resize
    nr.write_text(before)


def free_hugepages():
    return int((POOL / "free_hugepages").read_text())


def locked_kib():
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmLck:")))


def mac_of(dev):
    return bytes.fromhex(dev.mac.replace(":", ""))


def test_regions_get_distinct_aligned_iovas_and_are_mapped():
    mmu = Iommu()
    dom = Domain(mmu)
    regions = [dom.alloc(n, hugepages=False) for n in (1, 4096, 4097, 70000)]
    assert [r.size for r in regions] == [4096, 4096, 8192, 73728]
    spans = sorted((r.iova, r.iova + r.size) for r in regions)
    assert spans[0][0] >= 1 << 32
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))
    assert all(r.iova % 4096 == 0 and r.backing == "4k pages" and r.domain is dom for r in regions)
    assert mmu.mappings() == {r.iova: r.size for r in regions}
    assert dom.regions == sorted(regions, key=lambda r: r.iova)
    assert dom.bytes_mapped == 4096 + 4096 + 8192 + 73728
    assert not any(r.array.any() for r in regions), "fresh DMA memory is zero-filled"


def test_free_unmaps_and_the_range_is_reused():
    mmu = Iommu()
    dom = Domain(mmu)
    a, b, c = (dom.alloc(8192, hugepages=False) for _ in range(3))
    dom.free(b)
    assert b.iova not in mmu.mappings() and dom.regions == [a, c]
    d = dom.alloc(4096, hugepages=False)
    assert d.iova == b.iova                             # first fit: the freed hole
    e = dom.alloc(8192, hugepages=False)
    assert e.iova >= c.iova + c.size                    # too big for what is left of it
    assert mmu.mappings() == {r.iova: r.size for r in (a, c, d, e)}


def test_double_free_and_use_after_free_raise():
    mmu = Iommu()
    dom = Domain(mmu)
    region = dom.alloc(4096, hugepages=False)
    early = region.array
    early[:4] = 1
    dom.free(region)
    for use in (lambda: dom.free(region), lambda: region.array, lambda: memoryview(region),
                lambda: mmu.map(region, 1 << 40)):
        with pytest.raises(WirecapError, match="was freed"):
            use()
    assert mmu.mappings() == {}
    # a view taken before free is still this process's memory, never a dangling pointer
    assert early[:5].tolist() == [1, 1, 1, 1, 0]
    other = Domain(Iommu()).alloc(4096, hugepages=False)
    with pytest.raises(WirecapError, match="another DMA domain"):
        dom.free(other)


def test_bad_requests_leave_nothing_behind():
    class Refusing:
        def map(self, buffer, iova):
            raise WirecapError("refused")

        def unmap(self, iova):
            raise AssertionError("nothing was mapped")

    dom = Domain(Refusing())
    with pytest.raises(WirecapError, match="refused"):
        dom.alloc(4096, hugepages=False)
    assert dom.regions == [] and dom.bytes_mapped == 0
    with pytest.raises(WirecapError, match="0 bytes"):
        Domain(Iommu()).alloc(0)
    with pytest.raises(TypeError, match="map"):
        Domain(object())


def test_the_device_dma_sees_region_memory(dev):
    dom = Domain(dev.iommu)
    drv = DomainDriver(dev, dom, ndesc=64)
    drv.init()
    assert dev.iommu.mappings() == {r.iova: r.size for r in dom.regions}
    dev.keep_tx = True
    p = TrafficProfile(count=4)
    out = [p.frame(i, b"\xff" * 6) for i in range(4)]
    assert drv.transmit(0, out)             # descriptors and frames written through .array
    assert dev.transmitted() == (4, out)
    dev.wire.send(p)                        # frames the NIC writes into the regions
    assert [f for f, *_ in drv.receive(0)] == [p.frame(i, mac_of(dev)) for i in range(4)]
    ring = next(r for r in dom.regions if r.iova == drv.rx[0].desc_iova)
    dom.free(ring)
    dev.wire.send(p)
    assert dev.diagnostics()["rx_ring_fault"] == 4, "a freed ring is out of the device's reach"


def test_two_devices_share_one_domain():
    mmu = Iommu()
    a, b = Device(0, mmu), Device(1, mmu)
    dom = Domain(mmu)
    da, db = DomainDriver(a, dom, ndesc=64), DomainDriver(b, dom, ndesc=64)
    da.init()
    db.init()
    frame = TrafficProfile(count=1).frame(0, mac_of(a))
    assert a.deliver([frame]) == 1
    assert [f for f, *_ in da.receive(0)] == [frame]
    # zero-copy forwarding: b transmits straight from the buffer a received into
    b.keep_tx = True
    cmd = len(frame) | (0x3 << 20) | (1 << 24) | (1 << 25) | (1 << 27) | (1 << 29)
    struct.pack_into("<QII", db.tx[0].desc, 0, da.rx[0].buf_iova, cmd, len(frame) << 14)
    db.w(TDT(0), 1)
    assert b.transmitted() == (1, [frame])
    assert mmu.faults == 0


def test_hugepages_back_regions_when_reserved(hugepage_pool):
    if hugepage_pool(4) < 4:
        pytest.skip("the kernel found no 4 free 2 MiB pages")
    free = free_hugepages()
    dom = Domain(Iommu())
    small = dom.alloc(100, hugepages=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DmaWarning)
        big = dom.alloc(3 << 20)
    assert big.backing == "hugepages" and big.size == 2 * HUGE
    assert big.iova % HUGE == 0 and big.array.ctypes.data % HUGE == 0
    assert big.iova >= small.iova + small.size
    assert free_hugepages() == free - 2
    dom.free(big)
    del big
    assert free_hugepages() == free, "the pages went back to the pool"


def test_4k_pages_with_a_warning_when_no_hugepage_is_reserved(hugepage_pool):
    hugepage_pool(0)
    locked = locked_kib()
    dom = Domain(Iommu())
    with pytest.warns(DmaWarning, match=r"`wirecap hugepages --reserve N`") as caught:
        region = dom.alloc(1 << 20)
    assert "\n" not in str(caught[0].message)
    assert region.backing == "4k pages" and region.size == 1 << 20 and region.iova % 4096 == 0
    assert locked_kib() == locked, "the model's DMA memory is ordinary memory: nothing is locked"


class Ranged:
    """A mapper that says which IOVAs it translates, as vfio's container does."""

    def __init__(self, ranges):
        self.ranges, self.mapped = ranges, {}

    def iova_ranges(self):
        return self.ranges

    def map(self, buffer, iova):
        self.mapped[iova] = len(memoryview(buffer))

    def unmap(self, iova):
        del self.mapped[iova]


def test_iovas_stay_inside_the_ranges_the_mapper_reports():
    # VT-d at 39 bits, a hole below 4 GiB that IOVA_BASE skips, and a reserved window above it
    mapper = Ranged([(0, 0xFEDFFFFF), (0x100000000, 0x100005FFF), (0x100010000, 0x7FFFFFFFFF)])
    dom = Domain(mapper)
    assert dom.iova_ranges() == [(0x100000000, 0x100005FFF), (0x100010000, 0x7FFFFFFFFF)]
    a = dom.alloc(0x4000, hugepages=False)
    b = dom.alloc(0x4000, hugepages=False)          # does not fit in what is left of the first
    c = dom.alloc(0x2000, hugepages=False)          # but this does
    assert (a.iova, b.iova, c.iova) == (0x100000000, 0x100010000, 0x100004000)
    assert sorted(mapper.mapped) == [a.iova, c.iova, b.iova]


def test_a_full_iova_space_says_which_ranges_it_had():
    dom = Domain(Ranged([(0x100000000, 0x100001FFF)]))
    dom.alloc(8192, hugepages=False)
    with pytest.raises(WirecapError, match=r"no room in the IOVA ranges the IOMMU translates "
                                           r"\(0x100000000-0x100001fff; 8192 bytes mapped\)"):
        dom.alloc(4096, hugepages=False)


def test_a_mapper_that_does_not_say_gets_the_4_level_page_table():
    dom = Domain(Iommu())
    assert dom.iova_ranges() == [(1 << 32, (1 << 48) - 1)]


def test_the_models_dma_memory_needs_no_locked_memory():
    script = ("import resource; resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0)); "
              "from wirecap._dma import Domain; from wirecap.sim import Iommu; "
              "r = Domain(Iommu()).alloc(64 << 20, hugepages=False); print(r.size)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == str(64 << 20), done.stderr
