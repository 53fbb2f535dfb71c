"""DMA memory (DESIGN §2): descriptor rings and packet pools, mapped through an IOMMU.

A ``Domain`` is one I/O address space: vfio's type-1 container (``wirecap._vfio.Container``)
or the model's ``wirecap.sim.Iommu``. Every device attached to it sees every region at the same
IOVA, so a buffer received on one port can be sent from another. ``alloc`` takes whole pages
from the kernel (2 MiB hugepages when reserved, else 4 KiB pages), gives them an IOVA inside
the ranges the IOMMU says it translates, and maps them; ``free`` unmaps first, so the device
loses access before anything else can happen to the memory.

The pages are not mlock'ed here: vfio pins what it maps (and counts it once against
RLIMIT_MEMLOCK; an mlock would count it a second time), and the model's DMA is ordinary memory
access, which needs no locked memory at all.
"""
import bisect
import os
import warnings
from operator import attrgetter

import numpy as np

from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES
from libc.errno cimport errno
from posix.mman cimport (mmap, munmap, MAP_FAILED, MAP_SHARED, MAP_ANONYMOUS,
                         MAP_HUGETLB, MAP_POPULATE, PROT_READ, PROT_WRITE)

from wirecap.errors import WirecapError

cdef extern from "<sys/mman.h>":
    enum: MAP_HUGE_SHIFT

PAGE_SIZE = 4096
HUGE_PAGE_SIZE = 2 << 20
IOVA_BASE = 1 << 32         # low IOVAs stay unmapped: a zeroed descriptor address faults
# For a mapper that does not say which IOVAs it translates (the model): a 4-level page table.
IOVA_LIMIT = 1 << 48
# mmap(2): with MAP_HUGETLB, the bits from MAP_HUGE_SHIFT up hold log2 of the page size. Naming
# 2 MiB keeps working on hosts whose default hugepage size is 1 GiB.
cdef int MAP_HUGE_2MB = 21 << MAP_HUGE_SHIFT
cdef char* BYTE_FORMAT = "B"


class DmaWarning(UserWarning):
    """DMA memory works, but slower than it should (4 KiB pages instead of hugepages)."""


cdef class _Pages:
    """An anonymous shared mapping, unmapped when its last holder goes: its
    region, or a view of it. A view that outlives ``free`` stays valid memory that no device
    can reach any more, never a dangling pointer."""
    cdef uint8_t* addr
    cdef size_t size

    def __dealloc__(self):
        if self.addr != NULL:
            munmap(self.addr, self.size)


cdef _Pages _map_pages(size_t size, bint huge):
    """Pages for ``size`` bytes; with ``huge``, None (and a warning) if no hugepage is free."""
    # MAP_SHARED: a fork() must not turn these pages copy-on-write, or the process would write
    # to copies while the IOMMU still points at the originals.
    cdef int flags = MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE
    cdef void* p
    cdef int err = 0
    if huge:
        flags |= MAP_HUGETLB | MAP_HUGE_2MB
    with nogil:
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0)
        if p == MAP_FAILED:
            err = errno
    if p == MAP_FAILED and huge:
        warnings.warn(f"DMA memory: no free 2 MiB hugepage ({os.strerror(err)}), using 4 KiB "
                      f"pages, which cost IOMMU and TLB misses. "
                      f"Fix: `wirecap hugepages --reserve N`", DmaWarning)
        return None
    if p == MAP_FAILED:
        raise MemoryError(f"DMA memory: mmap of {size} bytes failed: {os.strerror(err)}")
    cdef _Pages pages = _Pages.__new__(_Pages)
    pages.addr = <uint8_t*>p
    pages.size = size
    return pages


cdef size_t _round_up(size_t n, size_t align):
    return (n + align - 1) & ~(align - 1)


cdef int _alive(Region r) except -1:
    if r.addr == NULL:
        raise WirecapError(
            f"DMA region at IOVA {r.iova:#x} ({r.size} bytes) was freed: it is no longer mapped "
            f"and may not be used. Fix: allocate a new region with Domain.alloc")
    return 0


cdef class Region:
    """Page-aligned DMA memory at ``iova``, zero-filled; ``.array`` is a numpy view of it."""

    def __init__(self):
        raise TypeError("a Region comes from Domain.alloc")

    @property
    def array(self):
        """The whole region as a writable numpy uint8 array (zero-copy)."""
        return np.frombuffer(self, np.uint8)

    def __getbuffer__(self, Py_buffer* view, int flags):
        _alive(self)
        view.obj = self._pages          # the view keeps the pages mapped in this process
        view.buf = self.addr
        view.len = self.size
        view.readonly = 0
        view.itemsize = 1
        view.ndim = 1
        # as PyBuffer_FillInfo fills a 1-D byte buffer: each field only when it was asked for
        view.format = BYTE_FORMAT if flags & PyBUF_FORMAT else NULL
        view.shape = &view.len if flags & PyBUF_ND == PyBUF_ND else NULL
        view.strides = &view.itemsize if flags & PyBUF_STRIDES == PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __repr__(self):
        state = self.backing if self.addr != NULL else "freed"
        return f"<Region {self.size} bytes at IOVA {self.iova:#x}, {state}>"


cdef class Domain:
    """One DMA address space shared by the devices attached to ``mapper``."""

    def __init__(self, mapper):
        if not all(callable(getattr(mapper, name, None)) for name in ("map", "unmap")):
            raise TypeError(f"Domain({mapper!r}): the mapper must have map(buffer, iova) and "
                            f"unmap(iova), as wirecap.sim.Iommu and wirecap._vfio.Container do")
        self.mapper = mapper
        self._regions = []

    @property
    def regions(self):
        """The live regions, by IOVA."""
        return list(self._regions)

    @property
    def bytes_mapped(self):
        return sum(r.size for r in self._regions)

    cpdef Region alloc(self, size_t size, bint hugepages=True):
        """A new region of at least ``size`` bytes (whole pages), mapped for the devices."""
        if size == 0:
            raise WirecapError("DMA alloc of 0 bytes: ask for at least one byte")
        cdef size_t page = HUGE_PAGE_SIZE
        cdef _Pages pages = None
        if hugepages:
            pages = _map_pages(_round_up(size, page), True)
        if pages is None:
            page = PAGE_SIZE
            pages = _map_pages(_round_up(size, page), False)
        cdef Region region = Region.__new__(Region)
        region.addr = pages.addr
        region.size = pages.size
        region._pages = pages
        region.backing = "hugepages" if page == HUGE_PAGE_SIZE else "4k pages"
        region.domain = self
        # The IOVA is aligned like the host pages, so that the IOMMU can use large pages too.
        region.iova = self._place(region.size, page)
        self.mapper.map(region, region.iova)     # if it raises, the pages go with the region
        bisect.insort(self._regions, region, key=attrgetter("iova"))
        return region

    def iova_ranges(self):
        """[(first, last)] IOVAs this domain may use: what the mapper says it translates
        (vfio asks the IOMMU), from IOVA_BASE up."""
        asked = getattr(self.mapper, "iova_ranges", None)
        ranges = (asked() if callable(asked) else None) or [(0, IOVA_LIMIT - 1)]
        return [(max(first, IOVA_BASE), last) for first, last in sorted(ranges) if last >= IOVA_BASE]

    def _place(self, uint64_t size, uint64_t align):
        """First fit: the lowest aligned IOVA inside the usable ranges that no live region
        overlaps."""
        ranges = self.iova_ranges()
        for first, last in ranges:
            iova = _round_up(first, align)
            for r in self._regions:
                if r.iova + r.size <= iova:
                    continue
                if iova + size <= r.iova:
                    break
                iova = _round_up(r.iova + r.size, align)
            if iova + size - 1 <= last:
                return iova
        spans = ", ".join(f"{first:#x}-{last:#x}" for first, last in ranges) or "none"
        raise WirecapError(
            f"DMA alloc of {size} bytes: no room in the IOVA ranges the IOMMU translates ({spans}; "
            f"{self.bytes_mapped} bytes mapped). Fix: free regions no longer in use, or "
            f"allocate fewer, smaller pools")

    cpdef free(self, Region region):
        """Unmap ``region``: the devices lose access, and the region may not be used any more.
        Its pages go back to the kernel once nothing refers to the region or a view of it."""
        if region.domain is not self:
            raise WirecapError(f"{region!r} belongs to another DMA domain: free it there")
        _alive(region)
        self.mapper.unmap(region.iova)
        self._regions.remove(region)
        region.addr = NULL
