# The engine's typed core: work queues and the capture loop (DESIGN §5, the paper's §3.2).
from cpython.ref cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from wirecap._ring cimport RxRing, Chunk, Delivery

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass


cdef struct Entry:              # a delivery travelling through a work queue
    Delivery d
    uint32_t owner              # engine index of the queue whose pool the chunk belongs to
    uint32_t epoch              # the owner's run it was captured (or released) in


cdef struct Cell:               # one slot of a work queue
    uint64_t seq                # which turn of the ring the slot is ready for (Vyukov)
    Entry e


cdef struct WQ:                 # bounded ring; many producers, many consumers, no lock
    Cell* cells
    uint64_t mask               # slots - 1 (a power of two)
    uint8_t _pad0[48]           # producers and consumers write different cache lines
    uint64_t enq                # next position a producer claims
    uint8_t _pad1[56]
    uint64_t deq                # next position a consumer claims
    uint8_t _pad2[56]
    uint64_t peak
    uint64_t offloaded_in       # entries a buddy placed here
    int fd                      # eventfd: written when a sleeper may wait (see wq_sleep)
    uint32_t sleepers           # threads between wq_sleep and wq_wake_up
    uint32_t level              # fileno() was handed out: readable exactly while entries wait


cdef bint wq_push(WQ* q, Entry* e, bint offload) noexcept nogil
cdef bint wq_pop(WQ* q, Entry* e) noexcept nogil
cdef uint32_t wq_len(WQ* q) noexcept nogil
cdef bint wq_sleep(WQ* q) noexcept nogil
cdef void wq_wake_up(WQ* q) noexcept nogil
cdef void wq_reset(WQ* q) noexcept nogil


cdef class WorkQueue:
    cdef WQ* q


cdef class Worker:
    """One receive queue: its work-queue pair and its pool's single owner. Capture and recycle
    run only under ``own``: in a capture thread, in an inline reader, or in stop()."""
    cdef readonly uint32_t index
    cdef readonly RxRing rxq
    cdef readonly WorkQueue capture_q
    cdef readonly WorkQueue recycle_q
    cdef list _peers                # every worker of the engine, by index (keeps them alive)
    cdef WQ** buddy_q
    cdef uint32_t nbuddies
    cdef public bint advanced
    cdef public double threshold
    cdef pthread_mutex_t own        # the right to run capture and recycle on rxq's pool
    cdef volatile bint stopping     # set by stop(): no capture, no delivery, no release
    cdef readonly uint32_t epoch    # the engine's run, bumped by resume(): older chunks are void
    cdef readonly uint64_t captured, offloaded_out, refused, discarded

    cdef int step(self) noexcept nogil
    cdef int step_owned(self, bint wait) noexcept nogil
    cdef uint32_t drain_recycles(self) noexcept nogil
    cdef void place(self, Entry* e) noexcept nogil
    cdef give_back(self, Delivery d, uint32_t epoch)


cdef class CaptureThread:
    """The loop of one capture thread: polls each of its queues in turn, without the GIL."""
    cdef readonly list workers
    cdef PyObject** ws              # borrowed from workers
    cdef uint32_t n
    cdef volatile bint stopping
    cdef readonly uint64_t rounds, idle, sleeps
    cdef readonly int64_t max_round_ns  # its longest round (asleep by choice not counted)
    cdef public bint poll_only      # never nap on a device that must be polled (DPDK's way)
    cdef int epfd                   # while run() runs: where it sleeps (-1: it naps)
    cdef int* watched               # per queue: the device fd in epfd's set, or -1

    cdef void open_waits(self) noexcept nogil
    cdef void sleep(self) noexcept nogil


cdef class QueuedChunk(Chunk):
    cdef readonly Worker owner
    cdef uint32_t epoch

    @staticmethod
    cdef QueuedChunk _queued(Worker owner, Entry* e)
