"""The per-packet work of ``pkt_handler``, without the GIL.

One unit of work is a 64-bit FNV-1a pass over the packet's bytes, seeded with the previous
unit's result: x units are x dependent passes, which a compiler cannot merge or skip. Over a
60-byte frame one unit costs about as much as the paper's unit (38,844 packets/s at x = 300 on
2.4 GHz is 86 ns per unit).
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from posix.time cimport nanosleep, timespec

from wirecap._ring cimport Chunk, RxRing, packet_bytes
from wirecap.includes.clocks cimport mono_ns as now_ns
from wirecap.includes.packet cimport packet_index

cdef uint64_t FNV_OFFSET = 0xcbf29ce484222325ULL
cdef uint64_t FNV_PRIME = 0x100000001b3ULL


cdef inline uint64_t unit(const uint8_t* p, uint32_t n, uint64_t h) noexcept nogil:
    cdef uint32_t i
    for i in range(n):
        h = (h ^ p[i]) * FNV_PRIME
    return h


cdef inline uint64_t work(const uint8_t* p, uint32_t n, uint32_t x, uint64_t h) noexcept nogil:
    cdef uint32_t k
    for k in range(x):
        h = unit(p, n, h)
    return h


def unit_cost_ns(uint32_t length=60, uint64_t units=200000):
    """Wall ns per unit of work over a ``length``-byte packet (one sample)."""
    cdef uint8_t buf[16384]
    cdef uint32_t i
    cdef int64_t t0, t1
    cdef uint64_t h
    if not 1 <= length <= 16384:
        raise ValueError(f"length={length}: 1..16384 bytes")
    for i in range(length):
        buf[i] = <uint8_t>(i * 7)
    with nogil:
        t0 = now_ns()
        h = work(buf, length, <uint32_t>units, FNV_OFFSET)
        t1 = now_ns()
    buf[0] = <uint8_t>h                 # keeps the result live
    return (t1 - t0) / <double>units


cdef class Worker:
    """x units of work per packet over chunks, stoppable between packets from another thread.

    max_pps    if > 0, never more than this many packets/s: after its work a packet waits
               out the rest of 1/max_pps (a handler that stands for a core of its own, when
               more handlers than cores share the machine)
    processed  packets whose work is done
    busy_ns    wall time spent working (from a chunk's first packet to its last, or for a
               capped handler to when its next packet is due)
    digest     the running hash (proof that the work was done)
    """
    cdef readonly uint32_t x
    cdef readonly double max_pps
    cdef readonly uint64_t processed, chunks, digest
    cdef readonly int64_t busy_ns
    cdef int64_t period_ns, due_ns
    cdef volatile bint stopping

    def __cinit__(self, uint32_t x, double max_pps=0):
        if max_pps < 0:
            raise ValueError(f"max_pps={max_pps}: 0 (no cap) or a positive rate")
        self.x, self.max_pps = x, max_pps
        self.period_ns = <int64_t>(1e9 / max_pps) if max_pps > 0 else 0
        self.digest = FNV_OFFSET

    def stop(self):
        self.stopping = True

    @property
    def stopped(self):
        return self.stopping

    def process(self, Chunk c):
        """Work on every packet of ``c`` (a live chunk), or until stop(); returns how many
        packets were done. The caller releases the chunk."""
        c._live()
        cdef RxRing q = c.queue
        cdef size_t k0 = packet_index(c.index, q.segment, c.first, 0)
        cdef uint32_t done = 0, count = c.count, x = self.x
        cdef uint64_t h = self.digest
        cdef int64_t t0, ahead
        cdef timespec nap
        with nogil:
            t0 = now_ns()
            if self.due_ns < t0:            # idle time earns no credit
                self.due_ns = t0
            while done < count and not self.stopping:
                h = work(packet_bytes(q, c.index, k0 + done), q.caplen[k0 + done], x, h)
                done += 1
                if self.period_ns:
                    self.due_ns += self.period_ns
                    ahead = self.due_ns - now_ns()
                    if ahead > 200000:      # sleep only when well ahead: short naps overshoot
                        nap.tv_sec, nap.tv_nsec = ahead // 1000000000, ahead % 1000000000
                        nanosleep(&nap, NULL)
            # a capped handler owes the time up to its next due packet: count it as busy, so
            # that a short chunk done at once does not show a rate above the cap
            self.busy_ns += max(now_ns(), self.due_ns if self.period_ns else 0) - t0
        self.digest = h
        self.processed += done
        self.chunks += 1
        return done
