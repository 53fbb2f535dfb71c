"""The engine's fast path: work-queue pairs and the capture thread's loop, without the GIL.

Per receive queue a ``Worker`` owns the pool: capture and recycle run only under its lock,
taken by the capture thread that serves the queue (one thread may serve several queues), by
an inline reader, or by stop(); so there is one owner per pool at any time. Captured
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
from wirecap._dumpfile cimport Dumpfile, Run
from wirecap._ring cimport RxRing, Chunk, Delivery, WAIT_POLL
from wirecap.includes.atomics cimport ld32, ld64, st32, st64, add32, add64, cas64, max64, fence
from wirecap.includes.clocks cimport mono_ns
from wirecap.includes.packet cimport packet_index
from wirecap.includes.poll cimport pollfd, poll, POLLIN
from cpython.ref cimport PyObject
from wirecap.errors import WirecapError

cdef extern from "<pthread.h>" nogil:
    int pthread_mutex_init(pthread_mutex_t*, void*)
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_trylock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)
    int pthread_mutex_destroy(pthread_mutex_t*)

cdef extern from "<sys/prctl.h>" nogil:
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
              unsigned long arg5)
    int PR_SET_TIMERSLACK

cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        uint32_t u32
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event* event)
    int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout)
    int EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CLOEXEC
    uint32_t EPOLLIN, EPOLLET

cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    int EFD_NONBLOCK
    int EFD_CLOEXEC


cdef enum:
    IDLE_NAP_NS = 200000    # a capture thread idle this long starts to nap (200 us)
    # A reader asleep wakes at least this often to look (two readers of one queue may take
    # each other's wake-up): never later than this, never a hang
    SLEEP_SLICE_MS = 100


# ----------------------------------------------------------------------------- work queues
# Dmitry Vyukov's bounded MPMC queue: a producer claims a position by compare-and-swap and
# publishes the slot with its sequence number, a consumer likewise; nobody waits for a lock
# another thread holds (a capture thread that slept on a mutex the reader held lost the CPU
# to the hypervisor and came back too late for the ring). The eventfd is written only when
# someone may be asleep on it, so a reader that keeps up costs the capture core no system
# call; fileno() turns on level semantics for select() users.

cdef bint wq_push(WQ* q, Entry* e, bint offload) noexcept nogil:
    cdef uint64_t pos = ld64(&q.enq), n
    cdef Cell* c
    cdef int64_t dif
    while True:
        c = &q.cells[pos & q.mask]
        dif = <int64_t>(ld64(&c.seq) - pos)
        if dif == 0:
            if cas64(&q.enq, &pos, pos + 1):
                break
        elif dif < 0:
            return False                # full
        else:
            pos = ld64(&q.enq)
    c.e = e[0]
    st64(&c.seq, pos + 1)
    if offload:
        add64(&q.offloaded_in, 1)
    fence()                             # publish, then look for sleepers (pairs with wq_sleep)
    n = pos + 1 - ld64(&q.deq)
    max64(&q.peak, n)
    if ld32(&q.sleepers) or (ld32(&q.level) and n == 1):
        _signal(q)
    return True


cdef bint wq_pop(WQ* q, Entry* e) noexcept nogil:
    cdef uint64_t pos = ld64(&q.deq)
    cdef Cell* c
    cdef int64_t dif
    while True:
        c = &q.cells[pos & q.mask]
        dif = <int64_t>(ld64(&c.seq) - (pos + 1))
        if dif == 0:
            if cas64(&q.deq, &pos, pos + 1):
                break
        elif dif < 0:
            return False                # empty (or its producer has not published yet)
        else:
            pos = ld64(&q.deq)
    e[0] = c.e
    st64(&c.seq, pos + q.mask + 1)      # the slot is free for the next turn
    if ld32(&q.level):
        fence()
        if ld64(&q.enq) == pos + 1:     # drained: the descriptor stops polling readable,
            _drain_fd(q)                # unless a push came in meanwhile
            fence()
            if wq_len(q):
                _signal(q)
    return True


cdef uint32_t wq_len(WQ* q) noexcept nogil:
    cdef uint64_t deq = ld64(&q.deq)    # first: enq only grows, so this is never negative
    return <uint32_t>(ld64(&q.enq) - deq)


cdef bint wq_sleep(WQ* q) noexcept nogil:
    """Before sleeping on q's fd: announce it, then look again. True: sleep (every later push
    writes the fd); False: entries wait. Either way call wq_wake_up afterwards."""
    add32(&q.sleepers, 1)
    if not ld32(&q.level):
        _drain_fd(q)                    # writes for earlier sleepers
    fence()                             # pairs with wq_push's
    return wq_len(q) == 0


cdef void wq_wake_up(WQ* q) noexcept nogil:
    add32(&q.sleepers, -1)


cdef void wq_reset(WQ* q) noexcept nogil:
    """Forget past writes of the fd (one that stop() wrote to wake a sleeper)."""
    if not ld32(&q.level):
        _drain_fd(q)


cdef inline void _signal(WQ* q) noexcept nogil:
    cdef uint64_t one = 1
    write(q.fd, &one, 8)


cdef inline void _drain_fd(WQ* q) noexcept nogil:
    cdef uint64_t v
    read(q.fd, &v, 8)                   # nonblocking: 0 or more writes since the last one


cdef extern from *:
    """
    #define wc_cpu_relax() __builtin_ia32_pause()
    """
    void cpu_relax "wc_cpu_relax"() noexcept nogil

cdef extern from "<sched.h>" nogil:
    int sched_yield()


def spin_ready(workers, int64_t spin_ns):
    """Poll the capture queues of ``workers`` for up to ``spin_ns``, without the GIL: True as
    soon as one holds a chunk. At line rate a queue's chunk comes every 17 us; a reader that
    slept on the eventfd for each would pay a wake-up on both cores every time (the capture
    thread's write, the scheduler, the reader's read). Between looks it yields the core to
    any other runnable thread (readers of other queues share the application's cores: one
    that spun its time slice away ran their pools dry)."""
    cdef WQ* qs[64]
    cdef uint32_t i, n = 0
    cdef int64_t end
    cdef bint ready = False
    for w in workers:
        if n == 64:
            break
        qs[n] = (<Worker>w).capture_q.q
        n += 1
    with nogil:
        end = mono_ns() + spin_ns
        while not ready:
            for i in range(n):
                ready |= wq_len(qs[i]) != 0
            if mono_ns() >= end:
                break
            for i in range(32):
                cpu_relax()
            sched_yield()
    return ready


def sleep_ready(workers, timeout):
    """Sleep on the capture queues of ``workers`` until one holds a chunk, at most
    ``timeout`` seconds (None: no limit): True if one does. Their eventfds are written only
    while someone sleeps like this (or has their fileno()), never for a reader that polls."""
    cdef WQ* qs[64]
    cdef pollfd fds[64]
    cdef uint32_t i, n = 0
    cdef bint ready = False, forever = timeout is None
    cdef int64_t end = 0, left
    cdef int ms
    for w in workers:
        if n == 64:
            break
        qs[n] = (<Worker>w).capture_q.q
        fds[n].fd, fds[n].events = qs[n].fd, POLLIN
        n += 1
    if not forever:
        end = mono_ns() + <int64_t>(max(timeout, 0) * 1e9)
    with nogil:
        for i in range(n):
            ready |= not wq_sleep(qs[i])
        while not ready:
            ms = SLEEP_SLICE_MS
            if not forever:
                left = end - mono_ns()
                if left <= 0:
                    break
                ms = <int>min(<int64_t>SLEEP_SLICE_MS, (left + 999999) // 1000000)
            poll(fds, n, ms)
            for i in range(n):          # woken, or a slice ended: forget the writes, look
                wq_reset(qs[i])
            fence()
            for i in range(n):
                ready |= wq_len(qs[i]) != 0
        for i in range(n):
            wq_wake_up(qs[i])
    return ready


cdef class WorkQueue:
    def __cinit__(self, uint32_t capacity):
        cdef uint64_t slots = 1, i
        while slots < capacity:
            slots <<= 1
        self.q = <WQ*>calloc(1, sizeof(WQ))
        if self.q == NULL:
            raise MemoryError("work queue")
        self.q.fd = -1
        self.q.cells = <Cell*>calloc(slots, sizeof(Cell))
        self.q.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self.q.cells == NULL or self.q.fd < 0:
            raise MemoryError("work queue ring or eventfd")
        self.q.mask = slots - 1
        for i in range(slots):
            self.q.cells[i].seq = i

    def __dealloc__(self):
        if self.q != NULL:
            if self.q.fd >= 0:
                close(self.q.fd)
            free(self.q.cells)
            free(self.q)

    def fileno(self):
        """A descriptor readable while entries wait (from now on: the queue keeps it so)."""
        st32(&self.q.level, 1)
        _drain_fd(self.q)
        fence()
        if wq_len(self.q):
            _signal(self.q)
        return self.q.fd

    def __len__(self):
        return wq_len(self.q)

    @property
    def capacity(self):
        return self.q.mask + 1

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
        self.recycle_q = WorkQueue(cap)     # its one consumer sleeps on it in CaptureThread.sleep
        self._peers = [self]
        self.threshold = 1.0
        self.stopping = True            # until the engine's start() resumes it
        pthread_mutex_init(&self.own, NULL)

    def __dealloc__(self):
        free(self.buddy_q)
        pthread_mutex_destroy(&self.own)

    def set_buddies(self, workers):
        """Every worker of the engine, indexed by Worker.index: the others' capture queues
        may take this one's chunks, and any of them may hand this reader a chunk."""
        cdef Worker b
        cdef uint32_t i = 0
        self._peers = list(workers)
        free(self.buddy_q)
        self.buddy_q = <WQ**>calloc(len(workers) + 1, sizeof(WQ*))
        if self.buddy_q == NULL:
            raise MemoryError("buddy list")
        for b in workers:
            if b is not self:
                self.buddy_q[i] = b.capture_q.q
                i += 1
        self.nbuddies = i

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
            # a release from an earlier run: stop() already took that chunk back
            if e.epoch == self.epoch and self.rxq.recycle_delivery(&e.d):
                self.refused += 1
            n += 1
        return n

    cdef int step(self) noexcept nogil:
        """Recycle what came back, then capture once: 1 if anything was done. Call it only
        while holding ``own``."""
        cdef Entry e
        cdef int did = 0
        if wq_len(self.recycle_q.q):        # no lock per poll: a push now is seen next step
            did = self.drain_recycles() > 0
        if self.rxq.capture(&e.d, mono_ns()):
            e.owner, e.epoch = self.index, self.epoch
            self.captured += 1
            self.place(&e)
            return 1
        return did

    cdef int step_owned(self, bint wait) noexcept nogil:
        """step() as the pool's owner; without ``wait``, 0 at once if another thread owns it."""
        cdef int did = 0
        if wait:
            pthread_mutex_lock(&self.own)
        elif pthread_mutex_trylock(&self.own):
            return 0
        if not self.stopping:
            did = self.step()
        pthread_mutex_unlock(&self.own)
        return did

    def resume(self):
        """A new run: chunks of the previous one stay void. Called before the capture threads
        start, so that a stop() that comes before a thread's first step is never undone."""
        self.epoch += 1
        self.stopping = False
        wq_reset(self.recycle_q.q)          # undo stop()'s wake-up

    def stop(self):
        """No capture, delivery or release from now on (the engine's stop() then empties the
        queues and takes every chunk back). Wakes a capture thread sleeping on this queue."""
        cdef uint64_t one = 1
        self.stopping = True
        write(self.recycle_q.q.fd, &one, 8)

    @property
    def running(self):
        return not self.stopping

    def poll_inline(self, uint32_t max_steps=64):
        """Run capture steps in the calling thread (inline mode); how many did work. Returns 0
        at once while another thread runs this queue: one owner per pool at any time."""
        cdef uint32_t k, n = 0
        with nogil:
            for k in range(max_steps):
                if not self.step_owned(False):
                    break
                n += 1
        return n

    def shutdown(self, uint64_t max_packets):
        """stop()'s work on this pool, as its owner (capture threads joined): recycle what came
        back, then deliver what the NIC already wrote into the ring, partly filled segments
        too, and recycle it at once (at most ``max_packets``: the NIC may still be receiving).
        Returns the packets taken from the ring; they count as discarded."""
        cdef Delivery d
        cdef uint64_t n = 0
        with nogil:
            pthread_mutex_lock(&self.own)
            self.drain_recycles()
            while n < max_packets and self.rxq.capture_all(&d, mono_ns()):
                n += d.count
                self.rxq.recycle_delivery(&d)
            pthread_mutex_unlock(&self.own)
        self.discarded += n
        return n

    def quiesce(self):
        """Wait until no thread is inside a capture step of this queue; after stop() none
        starts again, so nothing is placed in any capture queue from then on."""
        with nogil:
            pthread_mutex_lock(&self.own)
            pthread_mutex_unlock(&self.own)

    def discard_queued(self):
        """Empty the capture queue (the engine is stopping): packets nobody read, discarded
        by the pool each came from (a buddy's, maybe another device's)."""
        cdef Entry e
        cdef uint64_t n = 0
        while wq_pop(self.capture_q.q, &e):
            (<Worker>self._peers[e.owner]).discarded += e.d.count
            n += e.d.count
        return n

    def reclaim(self):
        """Take back every chunk still out (the application's included), as the owner."""
        with nogil:
            pthread_mutex_lock(&self.own)
        try:
            self.drain_recycles()
            return self.rxq.reclaim()
        finally:
            pthread_mutex_unlock(&self.own)

    def accounting(self):
        """The pool's (free, armed, captured) chunks, read as its owner."""
        with nogil:
            pthread_mutex_lock(&self.own)
        try:
            return self.rxq.accounting()
        finally:
            pthread_mutex_unlock(&self.own)

    def take(self):
        """The next chunk in this queue's capture queue (maybe a buddy's), or None. None too
        while the engine is stopped: stop() took every chunk back."""
        cdef Entry e
        cdef Worker owner
        if self.stopping or not wq_pop(self.capture_q.q, &e):
            return None
        owner = self._peers[e.owner]
        if owner.stopping or e.epoch != owner.epoch:    # cannot happen: stop() empties queues
            owner.discarded += e.d.count
            return None
        return QueuedChunk._queued(owner, &e)

    def write_chunks(self, Dumpfile f, uint32_t snaplen):
        """Put every chunk waiting in this queue's capture queue (maybe a buddy's) into
        ``f``, whole, each cut to ``snaplen``, and give each back: take(), put_chunk() and
        release() without a Python object per chunk, which at line rate cost an eighth of
        the time a chunk takes to arrive. Returns the packets written."""
        cdef Entry e
        cdef Worker owner
        cdef Run r
        cdef uint32_t next
        cdef uint64_t n, total = 0
        cdef int err = 0
        f._usable()
        r.start, r.mask, r.snaplen, r.interface = 0, NULL, snaplen, 0
        r.limit = r.max_bytes = 0xFFFFFFFFFFFFFFFF
        while not err and not self.stopping and wq_pop(self.capture_q.q, &e):
            owner = self._peers[e.owner]
            if owner.stopping or e.epoch != owner.epoch:    # as in take()
                owner.discarded += e.d.count
                continue
            r.chunk, r.first, r.count = e.d.chunk, e.d.first, e.d.count
            with nogil:
                err = f.put_run(owner.rxq, &r, &next, &n)
            total += n
            owner.give_back(e.d, e.epoch)
        f._check(err)
        return total

    cdef give_back(self, Delivery d, uint32_t epoch):
        """Queue a delivery of run ``epoch`` for recycling by its owner (this worker)."""
        cdef Entry e
        e.d, e.owner, e.epoch = d, self.index, epoch
        if not wq_push(self.recycle_q.q, &e, False):
            raise WirecapError("recycle queue full: the owner's capture thread is not running")

    def stats(self):
        return {"captured_chunks": self.captured, "offloaded_out": self.offloaded_out,
                "offloaded_in": self.capture_q.q.offloaded_in, "refused": self.refused,
                "capture_queue": wq_len(self.capture_q.q), "capture_queue_peak":
                self.capture_q.q.peak, "recycle_queue": wq_len(self.recycle_q.q),
                "discarded": self.discarded}


cdef class CaptureThread:
    def __cinit__(self, workers):
        self.workers = list(workers)
        self.n = len(self.workers)
        self.epfd = -1
        self.ws = <PyObject**>calloc(self.n + 1, sizeof(PyObject*))
        self.watched = <int*>calloc(self.n + 1, sizeof(int))
        if self.ws == NULL or self.watched == NULL:
            raise MemoryError("capture thread")
        for i, w in enumerate(self.workers):
            if not isinstance(w, Worker):
                raise TypeError("CaptureThread serves Workers")
            self.ws[i] = <PyObject*>w

    def __dealloc__(self):
        free(self.ws)
        free(self.watched)

    def pin(self, cpus):
        """Run the calling thread (this capture thread) on ``cpus`` only; OSError if refused."""
        if cpus:
            os.sched_setaffinity(0, cpus)           # this thread only
        # naps must end on time: the default 50 us timer slack turns a 20 us nap into 70 us,
        # longer than a 1,024-descriptor ring lasts at line rate (69 us)
        prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0)

    cdef void open_waits(self) noexcept nogil:
        # where run() sleeps, if every queue's device can say when it has work: one epoll
        # set per run, with every queue's recycle eventfd (level: readable while chunks come
        # back, and written by Worker.stop() to wake the thread); device fds join it in
        # sleep(), as the devices offer them
        cdef epoll_event ev
        cdef uint32_t i
        for i in range(self.n):
            if (<Worker>self.ws[i]).rxq.wait_fd() == WAIT_POLL:
                return                          # a device that must be polled: nap
        self.epfd = epoll_create1(EPOLL_CLOEXEC)
        for i in range(self.n):
            self.watched[i] = -1
            ev.events, ev.data.u32 = EPOLLIN, i
            if self.epfd >= 0 and epoll_ctl(self.epfd, EPOLL_CTL_ADD,
                                            (<Worker>self.ws[i]).recycle_q.q.fd, &ev) < 0:
                close(self.epfd)
                self.epfd = -1

    cdef void sleep(self) noexcept nogil:
        """Nothing to do on any queue: sleep until one of them may have work, in epoll on the
        devices' fds (edge-triggered: each completion wakes once, whatever the descriptor
        says between) and the recycle queues. Only this thread changes its pools while it
        runs, so what wait_fd() says holds until it acts."""
        cdef epoll_event ev[16]
        cdef uint32_t i
        cdef int fd
        cdef bint work = False
        for i in range(self.n):                 # announce it first: a release from now on
            work |= not wq_sleep((<Worker>self.ws[i]).recycle_q.q)  # writes the fd
        for i in range(self.n):                 # stop() sets this, then writes the fd
            work |= (<Worker>self.ws[i]).stopping
        for i in range(self.n):
            if work:
                break
            fd = (<Worker>self.ws[i]).rxq.wait_fd()
            fd = fd if fd >= 0 else -1          # WAIT_RECYCLE: the eventfd is enough
            if fd == self.watched[i]:
                continue
            if self.watched[i] >= 0:
                epoll_ctl(self.epfd, EPOLL_CTL_DEL, self.watched[i], &ev[0])
            self.watched[i] = -1
            ev[0].events, ev[0].data.u32 = EPOLLIN | EPOLLET, i
            if fd >= 0:
                if epoll_ctl(self.epfd, EPOLL_CTL_ADD, fd, &ev[0]) < 0:
                    (<Worker>self.ws[i]).rxq.idle()     # cannot watch it: nap this once
                    work = True
                    break
                self.watched[i] = fd
        if not work:
            self.sleeps += 1
            epoll_wait(self.epfd, ev, 16, -1)
        for i in range(self.n):
            wq_wake_up((<Worker>self.ws[i]).recycle_q.q)

    def run(self):
        """The capture thread's body: poll every queue in turn, without the GIL, until stop()."""
        cdef uint32_t i
        cdef int did
        cdef int64_t now, idle_since = 0, last = 0
        with nogil:
            self.open_waits()
            while not self.stopping:
                # its longest round: its CPU taken, or a step that long. Other threads' register
                # accesses keep the model's deliveries on time meanwhile (the wire's max lag
                # stays small), but only this thread re-arms the rings
                now = mono_ns()
                if last and now - last > self.max_round_ns:
                    self.max_round_ns = now - last
                last = now
                did = 0
                for i in range(self.n):
                    did |= (<Worker>self.ws[i]).step_owned(True)
                self.rounds += 1
                if not did:                     # a segment filling up is work coming
                    for i in range(self.n):
                        did |= (<Worker>self.ws[i]).rxq.receiving()
                if did:
                    idle_since = 0
                    continue
                self.idle += 1
                if self.epfd >= 0:              # the devices say when work comes
                    self.sleep()
                    last = 0                    # asleep by choice is not away
                    continue
                # back off once idle for a while, not after a number of rounds: empty rounds
                # take nanoseconds, and a ring lasts 69 us at line rate (now: this round's start)
                if idle_since == 0:
                    idle_since = now
                elif now - idle_since > IDLE_NAP_NS and not self.poll_only:     # shared cores
                    (<Worker>self.ws[0]).rxq.idle()
                    last = 0
            for i in range(self.n):
                (<Worker>self.ws[i]).step_owned(True)   # no-op once stopping: the owner is free
            if self.epfd >= 0:
                close(self.epfd)
                self.epfd = -1

    def resume(self):
        """Allow run() again (before the thread starts, as Worker.resume)."""
        self.stopping = False
        self.max_round_ns = 0

    def stop(self):
        self.stopping = True


cdef class QueuedChunk(Chunk):
    """A chunk delivered through the engine: release() queues it to its owner's recycler."""

    @staticmethod
    cdef QueuedChunk _queued(Worker owner, Entry* e):
        # only from a capture queue: Python cannot make a handle for an arbitrary chunk
        cdef QueuedChunk c = QueuedChunk.__new__(QueuedChunk)
        c._fill(owner.rxq, e.d)
        c.owner, c.epoch = owner, e.epoch
        return c

    cpdef _live(self):
        if self.owner is None:
            raise WirecapError("this chunk was not captured: it names no buffers")
        if self.epoch != self.owner.epoch or self.owner.stopping:
            raise WirecapError("the engine was stopped since this chunk was captured: stop() "
                               "took every chunk back, so its buffers may hold other packets")
        Chunk._live(self)

    def release(self):
        if self.released:
            raise WirecapError("this chunk was already released")
        self._live()
        self.owner.give_back(self.delivery(), self.epoch)
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
