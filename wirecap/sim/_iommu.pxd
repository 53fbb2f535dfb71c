from libc.stdint cimport uint8_t, uint32_t, uint64_t

# The lock every model DMA engine, register side effect and mapping change takes. Rule that
# keeps it deadlock-free with the GIL: acquire it only with the GIL released (model_lock()).
cdef void model_lock() noexcept nogil
cdef void model_unlock() noexcept nogil

cdef struct Mapping:
    uint64_t iova
    uint64_t size
    uint8_t* host

cdef struct Fault:
    uint64_t iova
    uint32_t size
    uint32_t write

cdef inline uint8_t* cached(const Mapping* cache, uint64_t iova, uint64_t size) noexcept nogil:
    # a one-entry translation cache's hit, or NULL (then Iommu.lookup)
    if cache.host != NULL and iova >= cache.iova and iova + size <= cache.iova + cache.size \
            and iova + size >= iova:
        return cache.host + (iova - cache.iova)
    return NULL


cdef class Iommu:
    cdef Mapping* maps              # sorted by iova, non-overlapping
    cdef int n, cap
    cdef dict _owners               # iova -> buffer object kept alive while mapped
    cdef Mapping last               # one-entry translation cache
    cdef readonly uint64_t generation   # bumped on every change: cached ring pointers expire
    cdef readonly uint64_t faults
    cdef Fault log[64]
    cdef uint8_t* translate(self, uint64_t iova, uint64_t size, int write) noexcept nogil
    cdef uint8_t* lookup(self, uint64_t iova, uint64_t size, int write,
                         Mapping* cache) noexcept nogil
