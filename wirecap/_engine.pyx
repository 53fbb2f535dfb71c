"""The engine's fast path: work-queue pairs and the capture thread's loop, without the GIL.

Per receive queue a ``Worker`` owns the pool: only it calls capture and recycle. Captured
chunks go to a capture queue (its own, or in advanced mode the least-loaded buddy's when its
own is longer than threshold T x R); the application gives chunks back through the owner's
recycle queue. A chunk offloaded to a buddy is still recycled into its owner's pool.
"""
import os

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport calloc, free
from posix.unistd cimport read, write, close

import numpy as np

from wirecap._bpf cimport Filter
from wirecap._ring cimport RxRing, Chunk, Delivery
from wirecap.includes.clocks cimport mono_ns
from wirecap.includes.packet cimport packet_index
from wirecap.errors import WirecapError

cdef extern from "<pthread.h>" nogil:
    int pthread_mutex_init(pthread_mutex_t*, void*)
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)
    int pthread_mutex_destroy(pthread_mutex_t*)

cdef extern from "<sys/prctl.h>" nogil:
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
              unsigned long arg5)
    int PR_SET_TIMERSLACK

cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    int EFD_NONBLOCK
    int EFD_CLOEXEC


# ----------------------------------------------------------------------------- work queues
cdef bint wq_push(WQ* q, Entry* e, bint offload) noexcept nogil:
    cdef uint64_t one = 1
    pthread_mutex_lock(&q.lock)
    if q.count == q.cap:
        pthread_mutex_unlock(&q.lock)
        return False
    q.ring[(q.head + q.count) % q.cap] = e[0]
    q.count += 1
    if q.count > q.peak:
        q.peak = q.count
    if offload:
        q.offloaded_in += 1
    if q.count == 1:                    # empty -> not empty: wake a blocked reader
        write(q.fd, &one, 8)
    pthread_mutex_unlock(&q.lock)
    return True


cdef bint wq_pop(WQ* q, Entry* e) noexcept nogil:
    cdef uint64_t v
    pthread_mutex_lock(&q.lock)
    if q.count == 0:
        pthread_mutex_unlock(&q.lock)
        return False
    e[0] = q.ring[q.head]
    q.head = (q.head + 1) % q.cap
    q.count -= 1
    if q.count == 0:                    # drained: the descriptor stops polling readable
        read(q.fd, &v, 8)
    pthread_mutex_unlock(&q.lock)
    return True


cdef uint32_t wq_len(WQ* q) noexcept nogil:
    return q.count                      # a racy read is fine for load balancing


cdef class WorkQueue:
    def __cinit__(self, uint32_t capacity):
        self.q = <WQ*>calloc(1, sizeof(WQ))
        if self.q == NULL:
            raise MemoryError("work queue")
        self.q.ring = <Entry*>calloc(capacity, sizeof(Entry))
        self.q.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self.q.ring == NULL or self.q.fd < 0:
            raise MemoryError("work queue ring or eventfd")
        self.q.cap = capacity
        pthread_mutex_init(&self.q.lock, NULL)

    def __dealloc__(self):
        if self.q != NULL:
            if self.q.fd >= 0:
                close(self.q.fd)
            pthread_mutex_destroy(&self.q.lock)
            free(self.q.ring)
            free(self.q)

    def fileno(self):
        return self.q.fd

    def __len__(self):
        return self.q.count

    @property
    def capacity(self):
        return self.q.cap

    @property
    def peak(self):
        return self.q.peak

    @property
    def offloaded_in(self):
        return self.q.offloaded_in


# ----------------------------------------------------------------------------- workers
cdef class Worker:
    def __cinit__(self, uint32_t index, RxRing rxq):
        self.index, self.rxq = index, rxq
        cap = rxq.max_deliveries + 16
        self.capture_q = WorkQueue(cap)
        self.recycle_q = WorkQueue(cap)
        self._buddies = []
        self.threshold = 1.0

    def __dealloc__(self):
        free(self.buddy_q)
        free(self.buddy_index)

    def set_buddies(self, buddies):
        """The other workers whose capture queues may take this one's chunks."""
        cdef Worker b
        cdef uint32_t i
        buddies = [b for b in buddies if b is not self]
        free(self.buddy_q)
        free(self.buddy_index)
        self.buddy_q = <WQ**>calloc(len(buddies) + 1, sizeof(WQ*))
        self.buddy_index = <uint32_t*>calloc(len(buddies) + 1, sizeof(uint32_t))
        for i, b in enumerate(buddies):
            self.buddy_q[i] = b.capture_q.q
            self.buddy_index[i] = b.index
        self.nbuddies = len(buddies)
        self._buddies = buddies

    cdef void place(self, Entry* e) noexcept nogil:
        cdef WQ* own = self.capture_q.q
        cdef WQ* best = NULL
        cdef uint32_t i, n = wq_len(own)
        if self.advanced and self.nbuddies and n > self.threshold * self.rxq.chunks:
            for i in range(self.nbuddies):      # the least loaded buddy, if less than us
                if wq_len(self.buddy_q[i]) < n and (best == NULL or
                                                    wq_len(self.buddy_q[i]) < wq_len(best)):
                    best = self.buddy_q[i]
            if best != NULL and wq_push(best, e, True):
                self.offloaded_out += 1
                return
        while not wq_push(own, e, False):       # sized for every buffer: only races fill it
            self.drain_recycles()

    cdef uint32_t drain_recycles(self) noexcept nogil:
        cdef Entry e
        cdef uint32_t n = 0
        while wq_pop(self.recycle_q.q, &e):
            if self.rxq.recycle_delivery(&e.d):
                self.refused += 1
            n += 1
        return n

    cdef int step(self) noexcept nogil:
        """Recycle what came back, then capture once: 1 if anything was done."""
        cdef Entry e
        cdef int did = self.drain_recycles() > 0
        if self.rxq.capture(&e.d, mono_ns()):
            e.owner = self.index
            self.captured += 1
            self.place(&e)
            return 1
        return did

    def run(self, cpus=None):
        """The capture thread's body: loop without the GIL until stop()."""
        cdef int idle = 0
        if cpus:
            os.sched_setaffinity(0, cpus)           # this thread only
        # naps must end on time: the default 50 us timer slack turns a 20 us nap into 70 us,
        # longer than a 1,024-descriptor ring lasts at line rate (69 us)
        prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0)
        with nogil:
            while not self.stopping:
                if self.step():
                    idle = 0
                else:
                    idle += 1
                    self.idle += 1
                    if idle > 64:                   # back off: cores are shared here
                        self.rxq.idle(self.recycle_q.q.fd)
            self.drain_recycles()

    def resume(self):
        """Allow run() again after stop(); called before the thread starts, so that a stop()
        that comes before the thread's first step is never undone."""
        self.stopping = False

    def stop(self):
        self.stopping = True
        self.epoch += 1

    def poll_inline(self, uint32_t max_steps=64):
        """Run capture steps in the calling thread (inline mode); how many did work."""
        cdef uint32_t k, n = 0
        with nogil:
            for k in range(max_steps):
                if not self.step():
                    break
                n += 1
        return n

    def drain(self):
        """Recycle what waits in the recycle queue, in the calling thread (threads stopped)."""
        cdef uint32_t n
        with nogil:
            n = self.drain_recycles()
        return n

    def take(self):
        """Pop one delivery from this worker's capture queue, as a QueuedChunk, or None."""
        cdef Entry e
        cdef Worker owner = self
        if not wq_pop(self.capture_q.q, &e):
            return None
        if e.owner != self.index:           # offloaded by a buddy: its pool, its recycler
            owner = next(b for b in self._buddies if (<Worker>b).index == e.owner)
        return QueuedChunk._queued(owner, e.d)

    cdef give_back(self, Delivery d):
        """Queue a delivery for recycling by this (its owner's) capture thread."""
        cdef Entry e
        e.d = d
        e.owner = self.index
        if not wq_push(self.recycle_q.q, &e, False):
            raise WirecapError("recycle queue full: the owner's capture thread is not running")

    def stats(self):
        return {"captured_chunks": self.captured, "offloaded_out": self.offloaded_out,
                "offloaded_in": self.capture_q.q.offloaded_in, "refused": self.refused,
                "capture_queue": self.capture_q.q.count, "capture_queue_peak":
                self.capture_q.q.peak, "recycle_queue": self.recycle_q.q.count}


cdef class QueuedChunk(Chunk):
    """A chunk delivered through the engine: release() queues it to its owner's recycler."""
    cdef readonly Worker owner
    cdef uint32_t epoch

    @staticmethod
    cdef QueuedChunk _queued(Worker owner, Delivery d):
        # only from a capture queue: Python cannot make a handle for an arbitrary chunk
        cdef QueuedChunk c = QueuedChunk.__new__(QueuedChunk)
        c._fill(owner.rxq, d)
        c.owner, c.epoch = owner, owner.epoch
        return c

    cpdef _live(self):
        if self.owner is None:
            raise WirecapError("this chunk was not captured: it names no buffers")
        if self.epoch != self.owner.epoch:
            raise WirecapError("the engine was stopped since this chunk was captured: stop() "
                               "took every chunk back, so its buffers may hold other packets")
        Chunk._live(self)

    def release(self):
        if self.released:
            raise WirecapError("this chunk was already released")
        self._live()
        self.owner.give_back(self.delivery())
        self.released = True


def filter_chunk(Filter f, Chunk c):
    """libpcap's verdict on every packet of ``c``, as a uint8 mask, computed without the GIL."""
    c._live()
    cdef RxRing q = c.queue
    cdef size_t k0 = packet_index(c.index, q.segment, c.first, 0)
    cdef uint8_t[::1] out = np.zeros(c.count, dtype=np.uint8)
    if c.count:
        with nogil:
            f.match_many(q.pool + c.index * q.chunk_bytes, &q.offset[k0], &q.caplen[k0],
                         &q.wire_len[k0], c.count, &out[0])
    return np.asarray(out)
