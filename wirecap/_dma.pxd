# DMA memory (DESIGN §2): page-backed regions, each mapped at its own IOVA in one DMA domain.
from libc.stdint cimport uint8_t, uint64_t

cdef class Domain


cdef class Region:
    cdef readonly uint64_t iova         # bus address of byte 0, as the device sees it
    cdef readonly size_t size           # whole pages
    cdef uint8_t* addr                  # host virtual address of byte 0; NULL once freed
    cdef readonly str backing           # "hugepages" or "4k pages"
    cdef readonly Domain domain
    cdef object _pages                  # the mapping: unmapped when the region and its views go


cdef class Domain:
    cdef readonly object mapper         # map(buffer, iova), unmap(iova): vfio or the model
    cdef list _regions                  # live regions, sorted by IOVA
    cpdef Region alloc(self, size_t size, bint hugepages=*)
    cpdef free(self, Region region)
