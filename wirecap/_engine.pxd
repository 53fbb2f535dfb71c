# The engine's typed core: work queues and the capture loop (DESIGN §5, the paper's §3.2).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from wirecap._ring cimport RxRing, Chunk, Delivery

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass


cdef struct Entry:              # a delivery travelling through a work queue
    Delivery d
    uint32_t owner              # engine index of the queue whose pool the chunk belongs to


cdef struct WQ:                 # bounded ring; many producers, one consumer
    Entry* ring
    uint32_t cap, head, count, peak
    pthread_mutex_t lock
    int fd                      # eventfd: readable while entries wait
    uint64_t offloaded_in       # entries a buddy placed here


cdef bint wq_push(WQ* q, Entry* e, bint offload) noexcept nogil
cdef bint wq_pop(WQ* q, Entry* e) noexcept nogil
cdef uint32_t wq_len(WQ* q) noexcept nogil


cdef class WorkQueue:
    cdef WQ* q


cdef class Worker:
    """One receive queue's capture thread: capture, place (basic or advanced), recycle."""
    cdef readonly uint32_t index
    cdef readonly RxRing rxq
    cdef readonly WorkQueue capture_q
    cdef readonly WorkQueue recycle_q
    cdef list _buddies              # keeps the buddies' queues alive
    cdef WQ** buddy_q
    cdef uint32_t* buddy_index
    cdef uint32_t nbuddies
    cdef public bint advanced
    cdef public double threshold
    cdef volatile bint stopping      # set by stop() from another thread
    cdef readonly uint32_t epoch        # bumped by stop(): chunks of an earlier epoch are void
    cdef readonly uint64_t captured, offloaded_out, refused, idle

    cdef int step(self) noexcept nogil
    cdef uint32_t drain_recycles(self) noexcept nogil
    cdef void place(self, Entry* e) noexcept nogil
    cdef give_back(self, Delivery d)
