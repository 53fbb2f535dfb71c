# Atomic loads and stores on memory another agent writes: the NIC (descriptor write-back), the
# kernel (TPACKET block status), another thread (transmit references, the model's heads).
# Acquire on loads, release on stores: what a descriptor protocol needs, no full fences.
from libc.stdint cimport uint32_t, uint64_t

cdef extern from *:
    """
    static inline unsigned int wc_ld32(const volatile void* p) {
        return __atomic_load_n((const volatile unsigned int*)p, __ATOMIC_ACQUIRE);
    }
    static inline void wc_st32(volatile void* p, unsigned int v) {
        __atomic_store_n((volatile unsigned int*)p, v, __ATOMIC_RELEASE);
    }
    static inline unsigned int wc_add32(volatile void* p, int v) {
        return __atomic_add_fetch((volatile unsigned int*)p, v, __ATOMIC_ACQ_REL);
    }
    static inline unsigned long long wc_ld64(const volatile void* p) {
        return __atomic_load_n((const volatile unsigned long long*)p, __ATOMIC_ACQUIRE);
    }
    static inline void wc_st64(volatile void* p, unsigned long long v) {
        __atomic_store_n((volatile unsigned long long*)p, v, __ATOMIC_RELEASE);
    }
    static inline void wc_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
    """
    uint32_t ld32 "wc_ld32"(const void* p) noexcept nogil
    void st32 "wc_st32"(void* p, uint32_t v) noexcept nogil
    uint32_t add32 "wc_add32"(void* p, int v) noexcept nogil
    uint64_t ld64 "wc_ld64"(const void* p) noexcept nogil
    void st64 "wc_st64"(void* p, uint64_t v) noexcept nogil
    void fence "wc_fence"() noexcept nogil
