"""The model's IOMMU: every DMA of the model goes through ``translate``.

Like vfio's type-1 IOMMU, the host side maps page-aligned ranges of its own memory at chosen
I/O virtual addresses (IOVA). A device access to an IOVA outside every mapping is a fault:
counted, logged (the last 64), and the access is not performed.
"""
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE, PyBUF_SIMPLE
from libc.stdlib cimport realloc, free
from libc.string cimport memset
cimport cython

from wirecap.errors import WirecapError

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)
    int pthread_mutex_init(pthread_mutex_t*, void*)

cdef pthread_mutex_t _lock
pthread_mutex_init(&_lock, NULL)

cdef void model_lock() noexcept nogil:
    pthread_mutex_lock(&_lock)

cdef void model_unlock() noexcept nogil:
    pthread_mutex_unlock(&_lock)

PAGE_SIZE = 4096
cdef uint64_t _PAGE = 4096


cdef class Iommu:
    """An I/O address space shared by the model devices attached to it (one DMA domain)."""

    def __cinit__(self):
        self.maps = NULL
        self.n = self.cap = 0
        self._owners = {}
        memset(&self.last, 0, sizeof(Mapping))
        memset(self.log, 0, sizeof(self.log))

    def __dealloc__(self):
        free(self.maps)

    def map(self, buffer, uint64_t iova):
        """Map the writable buffer ``buffer`` (bytearray, numpy array, mmap...) at ``iova``."""
        cdef Py_buffer view
        PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE | PyBUF_SIMPLE)
        cdef uint64_t size = view.len
        cdef uint8_t* host = <uint8_t*>view.buf
        PyBuffer_Release(&view)     # the owner reference below keeps the memory alive
        if size == 0 or size % _PAGE or iova % _PAGE:
            raise WirecapError(
                f"IOMMU map of {size} bytes at IOVA {iova:#x}: IOVA and size must be multiples "
                f"of {PAGE_SIZE} bytes (allocate DMA memory in whole pages)")
        if iova + size < iova:
            raise WirecapError(f"IOMMU map at IOVA {iova:#x}: the range wraps around 2**64")
        cdef int i, pos = 0
        for i in range(self.n):
            if self.maps[i].iova < iova + size and iova < self.maps[i].iova + self.maps[i].size:
                raise WirecapError(
                    f"IOMMU map [{iova:#x}, {iova + size:#x}) overlaps the mapping at "
                    f"{self.maps[i].iova:#x} ({self.maps[i].size} bytes): unmap it first or "
                    f"choose another IOVA")
            if self.maps[i].iova < iova:
                pos = i + 1
        cdef Mapping* grown
        with nogil:
            model_lock()
            if self.n == self.cap:
                grown = <Mapping*>realloc(self.maps, (self.cap * 2 + 8) * sizeof(Mapping))
                if grown != NULL:
                    self.maps = grown
                    self.cap = self.cap * 2 + 8
            if self.n < self.cap:
                for i in range(self.n, pos, -1):
                    self.maps[i] = self.maps[i - 1]
                self.maps[pos].iova = iova
                self.maps[pos].size = size
                self.maps[pos].host = host
                self.n += 1
                self.generation += 1
            model_unlock()
        if self.maps[pos].iova != iova or self.maps[pos].host != host:
            raise MemoryError("IOMMU mapping table")
        self._owners[iova] = buffer

    def unmap(self, uint64_t iova):
        """Remove the mapping that starts at ``iova``; the device can no longer reach it."""
        cdef int i, found = -1
        for i in range(self.n):
            if self.maps[i].iova == iova:
                found = i
        if found < 0:
            raise WirecapError(f"IOMMU unmap: nothing is mapped at IOVA {iova:#x} "
                               f"(mapped: {', '.join(hex(m) for m in self.mappings()) or 'none'})")
        with nogil:
            model_lock()
            for i in range(found, self.n - 1):
                self.maps[i] = self.maps[i + 1]
            self.n -= 1
            memset(&self.last, 0, sizeof(Mapping))
            self.generation += 1
            model_unlock()
        del self._owners[iova]

    def mappings(self):
        """{iova: size} of the current mappings."""
        return {self.maps[i].iova: self.maps[i].size for i in range(self.n)}

    def fault_log(self):
        """The most recent faults (at most 64) as (iova, size, 'read'|'write'), oldest first."""
        cdef uint64_t k, first = self.faults - min(self.faults, 64)
        return [(self.log[k % 64].iova, self.log[k % 64].size,
                 "write" if self.log[k % 64].write else "read") for k in range(first, self.faults)]

    @cython.final
    cdef uint8_t* translate(self, uint64_t iova, uint64_t size, int write) noexcept nogil:
        """Host address of [iova, iova+size) if one mapping holds all of it, else fault: NULL."""
        return self.lookup(iova, size, write, &self.last)

    @cython.final
    cdef uint8_t* lookup(self, uint64_t iova, uint64_t size, int write,
                         Mapping* cache) noexcept nogil:
        """translate() with the caller's one-entry cache (a DMA engine keeps one per queue, so
        queues do not evict each other's mapping). Caches are dropped when the generation
        changes: the caller compares ``generation`` before trusting its cache."""
        cdef int lo = 0, hi = self.n - 1, mid
        cdef uint8_t* hit = cached(cache, iova, size)
        if hit != NULL:
            return hit
        while lo <= hi:
            mid = (lo + hi) >> 1
            if iova < self.maps[mid].iova:
                hi = mid - 1
            elif iova >= self.maps[mid].iova + self.maps[mid].size:
                lo = mid + 1
            else:
                if iova + size <= self.maps[mid].iova + self.maps[mid].size and iova + size >= iova:
                    cache[0] = self.maps[mid]
                    return self.maps[mid].host + (iova - self.maps[mid].iova)
                break
        self.log[self.faults % 64].iova = iova
        self.log[self.faults % 64].size = <uint32_t>size
        self.log[self.faults % 64].write = write
        self.faults += 1
        return NULL
