# Atomic loads and stores on memory another agent writes: the NIC (descriptor write-back), the
# kernel (TPACKET block status), another thread (transmit references, the model's heads).
# Acquire on loads, release on stores: what a descriptor protocol needs, no full fences;
# compare-and-swap for the work queues' positions.
from libc.stdint cimport uint32_t, uint64_t, int64_t

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
    static inline unsigned long long wc_add64(volatile void* p, long long v) {
        return __atomic_add_fetch((volatile unsigned long long*)p, v, __ATOMIC_ACQ_REL);
    }
    /* on failure *expected becomes what p holds */
    static inline int wc_cas64(volatile void* p, unsigned long long* expected,
                               unsigned long long desired) {
        return __atomic_compare_exchange_n((volatile unsigned long long*)p, expected, desired, 1,
                                           __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
    static inline void wc_max64(volatile void* p, unsigned long long v) {
        unsigned long long cur = wc_ld64(p);
        while (v > cur && !wc_cas64(p, &cur, v)) {}
    }
    static inline void wc_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
    """
    uint32_t ld32 "wc_ld32"(const void* p) noexcept nogil
    void st32 "wc_st32"(void* p, uint32_t v) noexcept nogil
    uint32_t add32 "wc_add32"(void* p, int v) noexcept nogil
    uint64_t ld64 "wc_ld64"(const void* p) noexcept nogil
    void st64 "wc_st64"(void* p, uint64_t v) noexcept nogil
    uint64_t add64 "wc_add64"(void* p, int64_t v) noexcept nogil
    bint cas64 "wc_cas64"(void* p, uint64_t* expected, uint64_t desired) noexcept nogil
    void max64 "wc_max64"(void* p, uint64_t v) noexcept nogil
    void fence "wc_fence"() noexcept nogil
