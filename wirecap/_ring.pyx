"""The shared receive ring: what every receive queue is, whatever fills it.

A queue owns a pool of R chunks of M packet buffers. The device fills chunks (descriptor
segments on the 82599, ring blocks on AF_PACKET) and ``capture`` hands a run of packets of one
chunk to the application by reference: a ``Delivery`` with a token. ``recycle_delivery``
takes it back after checking the handle: right pool, a chunk of this pool, the chunk's current
use (not a stale handle), an outstanding delivery (not a double release). When a captured
chunk has no delivery left the device gets it back (``retire``).

Per-packet metadata lives in columns indexed by k = chunk * M + i and means the same on every
device: offset in the chunk, captured length, wire length, status, packet info, RSS hash,
timestamp (ns since the epoch). A captured length stops at 65535 (the wire length does not):
no device here captures more of one frame. Accounting always balances: free + armed + captured = R,
counting chunks waiting for transmit completions as captured.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport calloc, free
from posix.time cimport nanosleep, timespec

from wirecap.includes.clocks cimport mono_ns
from wirecap.includes.packet cimport packet_index
from wirecap.errors import WirecapError

cnp.import_array()

cdef uint16_t _next_pool_id = 1
# the metadata columns: name -> dtype (rows: one per packet buffer)
COLUMNS = {"offset": np.uint32, "caplen": np.uint16, "wire_len": np.uint32,
           "status": np.uint32, "info": np.uint32, "rss": np.uint32, "ts": np.uint64,
           "open": np.uint8}
_REFUSED = {
    -1: "the chunk belongs to another queue's pool",
    -2: "the handle names no chunk of this pool (forged?)",
    -3: "the handle is stale: that chunk was recycled and reused since",
    -4: "that delivery is not outstanding (recycled twice?)",
    -5: "the queue is closed: its pool is gone"}


cdef uint16_t new_pool_id() noexcept:
    """A pool id for tokens (16 bits, 0 never used), shared by every kind of receive queue so
    that one queue refuses another's chunk by its id."""
    global _next_pool_id
    cdef uint16_t p = _next_pool_id
    _next_pool_id = _next_pool_id + 1 if _next_pool_id < 0xFFFF else 1
    return p


cdef class RxRing:
    """A receive queue: subclasses fill the pool and the metadata and implement capture and
    retire; recycling, accounting and the Python API are here."""

    def __dealloc__(self):
        free(self.ch)

    cdef _columns(self, uint32_t chunks, uint32_t segment, uint64_t chunk_bytes, offsets):
        """Allocate the metadata columns and the chunk table for R chunks of M buffers of
        ``chunk_bytes`` each, every chunk free; ``offsets``: where each buffer starts in its
        chunk (None: filled at capture)."""
        cdef size_t n = <size_t>chunks * segment
        self.chunks, self.segment, self.chunk_bytes = chunks, segment, chunk_bytes
        self.pool_id = new_pool_id()
        # written here, not only allocated: the pages are faulted in now, not by the capture
        # path the first time it reaches each of them
        arrays = {name: np.full(n, 0, dtype) for name, dtype in COLUMNS.items()}
        if offsets is not None:
            arrays["offset"][:] = offsets
        self._arrays = arrays
        self.offset = <uint32_t*>cnp.PyArray_DATA(arrays["offset"])
        self.caplen = <uint16_t*>cnp.PyArray_DATA(arrays["caplen"])
        self.wire_len = <uint32_t*>cnp.PyArray_DATA(arrays["wire_len"])
        self.status = <uint32_t*>cnp.PyArray_DATA(arrays["status"])
        self.info = <uint32_t*>cnp.PyArray_DATA(arrays["info"])
        self.rss = <uint32_t*>cnp.PyArray_DATA(arrays["rss"])
        self.ts = <uint64_t*>cnp.PyArray_DATA(arrays["ts"])
        self.open_bits = <uint8_t*>cnp.PyArray_DATA(arrays["open"])
        self.ch = <ChunkState*>calloc(chunks, sizeof(ChunkState))
        if self.ch == NULL:
            raise MemoryError("chunk table")
        cdef uint32_t c
        for c in range(chunks):
            self.ch[c].next_free = c + 1
        self.free_head, self.free_tail, self.nfree = 0, chunks - 1, chunks

    # ------------------------------------------------------------------ the fast path
    cdef int capture(self, Delivery* out, int64_t now) noexcept nogil:
        """One capture step at ``now`` (CLOCK_MONOTONIC ns): 1 with ``out`` filled, else 0."""
        return 0

    cdef int capture_all(self, Delivery* out, int64_t now) noexcept nogil:
        """capture(), but what the device has completed is delivered now, whatever the flush
        timeout (the engine's stop drains the ring with it)."""
        return self.capture(out, now)

    cdef void retire(self, uint32_t c) noexcept nogil:
        """The application is done with captured chunk ``c``: the device takes it back."""
        pass

    cdef int wait_fd(self) noexcept nogil:
        """Where a capture thread with nothing to do may sleep: a descriptor that wakes an
        edge-triggered epoll each time the device may have completed something, WAIT_RECYCLE
        when only a chunk coming back can bring work, or WAIT_POLL (the device must be
        polled: the 82599 here runs without interrupts)."""
        return WAIT_POLL

    @property
    def polled(self):
        """True if the device must be polled (wait_fd() is WAIT_POLL): it tells no one when
        frames come, so its capture threads poll it without pause while they have work."""
        return self.wait_fd() == WAIT_POLL

    cdef void idle(self) noexcept nogil:
        # a capture thread found nothing to do many times over, on a device it must poll:
        # yield the core briefly
        cdef timespec nap
        nap.tv_sec, nap.tv_nsec = 0, 20000
        nanosleep(&nap, NULL)

    cdef bint receiving(self) noexcept nogil:
        # packets are arriving but no delivery is ready yet (a part-filled segment): a
        # capture thread that naps now overflows the ring at line rate. Devices that know
        # say so; the owner of the pool calls it.
        return 0

    cdef void deliver(self, Delivery* out, uint32_t c, uint32_t first,
                      uint32_t count) noexcept nogil:
        """Open a delivery of ``count`` packets of chunk ``c`` from buffer ``first``."""
        self.open_bits[packet_index(c, self.segment, first, 0)] = 1
        self.ch[c].deliveries += 1
        self.deliveries += 1
        self.packets += count
        out.token = make_token(self.pool_id, self.ch[c].gen)
        out.chunk, out.first, out.count = c, first, count

    cdef int recycle_delivery(self, const Delivery* d) noexcept nogil:
        """0, or why the handle is refused: -1 another pool's, -2 not a chunk of this pool,
        -3 stale (the chunk was recycled and reused since), -4 not an outstanding delivery,
        -5 the queue is closed."""
        cdef uint32_t c = d.chunk
        cdef size_t k
        if (d.token >> TOKEN_GEN_BITS) != self.pool_id:
            self.refused += 1
            return -1
        if c >= self.chunks or d.first >= self.segment:
            self.refused += 1
            return -2
        if self.pool == NULL:
            self.refused += 1
            return -5
        if self.ch[c].state == CH_FREE or gen_bits(self.ch[c].gen) != gen_bits(d.token):
            self.refused += 1
            return -3
        k = packet_index(c, self.segment, d.first, 0)
        if not self.open_bits[k]:
            self.refused += 1
            return -4
        self.open_bits[k] = 0
        self.ch[c].deliveries -= 1
        self.recycled += 1
        if self.ch[c].state == CH_CAPTURED and self.ch[c].deliveries == 0:
            self.retire(c)
        return 0

    cdef void push_free(self, uint32_t c) noexcept nogil:
        # first in, first out: the chunk a reader just gave back is still in its core's
        # caches, and the device (the model, on the capture core) writing into it next paid
        # a cross-core transfer per line: 49 ns a frame instead of 27 with the pcap writer.
        # A reader that never touches a packet pays for it instead (4 queues: 45 ns, not 35,
        # as R chunks' lines outgrow the caches); waiting behind 32 freed chunks was not enough
        self.ch[c].state = CH_FREE
        if self.nfree:
            self.ch[self.free_tail].next_free = c
        else:
            self.free_head = c
        self.free_tail = c
        self.nfree += 1

    cdef uint32_t pop_free(self) noexcept nogil:
        cdef uint32_t c = self.free_head
        self.free_head = self.ch[c].next_free
        self.nfree -= 1
        return c

    # ------------------------------------------------------------------ Python API
    def poll(self):
        """One capture step: a Chunk, or None if nothing is ready."""
        cdef Delivery d
        cdef int got
        with nogil:
            got = self.capture(&d, mono_ns())
        return Chunk._make(self, d) if got else None

    def recycle(self, handle):
        """Give a captured chunk back (a Chunk, or its integer ``token``). A handle that is not
        an outstanding delivery of this pool raises and changes nothing."""
        cdef Delivery d
        cdef int rc
        if isinstance(handle, Chunk):
            d = (<Chunk>handle).delivery()
        elif isinstance(handle, int) and 0 <= handle < 1 << 128:
            d.token, d.chunk, d.first = handle >> 64, (handle >> 32) & 0xFFFFFFFF, \
                handle & 0xFFFFFFFF
        else:
            raise WirecapError(f"recycle({handle!r}): give a Chunk from this queue or its token")
        with nogil:
            rc = self.recycle_delivery(&d)
        if rc:
            raise WirecapError(f"recycle refused on {self.device.name} queue {self.index}: "
                               f"{_REFUSED[rc]}; nothing was changed")
        if isinstance(handle, Chunk):
            (<Chunk>handle).released = True

    def discard(self, uint64_t max_deliveries=1 << 62):
        """Capture and recycle at once, without the GIL, until nothing is ready: the capture
        path with a consumer that costs nothing. Returns the packets captured."""
        cdef Delivery d
        cdef uint64_t n = 0, k = 0
        with nogil:
            while k < max_deliveries and self.capture(&d, mono_ns()):
                n += d.count
                k += 1
                self.recycle_delivery(&d)
        return n

    def reclaim(self):
        """Recycle every outstanding delivery, whoever holds it (the engine's stop): their
        handles become invalid. Returns how many were reclaimed."""
        cdef uint32_t c, i, n = 0
        cdef Delivery d
        with nogil:
            for c in range(self.chunks if self.pool != NULL else 0):
                if self.ch[c].deliveries == 0:
                    continue
                for i in range(self.segment):
                    if self.open_bits[packet_index(c, self.segment, i, 0)]:
                        d.token = make_token(self.pool_id, self.ch[c].gen)
                        d.chunk, d.first = c, i
                        self.recycle_delivery(&d)
                        n += 1
        return n

    def accounting(self):
        """(free, armed, captured) chunks; they always add up to R."""
        return self.nfree, self.narmed, self.ncaptured

    def stats(self):
        # read-only: other threads (the engine's stats, a sampler) call this while the
        # capture thread owns the pool; counts may lag by a poll
        return {"packets": self.packets, "bytes": self.bytes, "deliveries": self.deliveries,
                "flushes": self.flushes, "recycled": self.recycled, "refused": self.refused,
                "pool_empty": self.pool_empty_events, "free": self.nfree,
                "armed": self.narmed, "captured": self.ncaptured,
                "waiting_tx": self.nwaiting}

    @property
    def metadata_bytes(self):
        """Bytes of per-buffer metadata (the columns), and per buffer."""
        meta = sum(a.nbytes for a in self._arrays.values())
        return meta, meta / (<size_t>self.chunks * self.segment)

    @property
    def closed(self):
        return self.pool == NULL


cdef class Chunk:
    """Packets captured into one chunk, handed over by reference (zero copy). Metadata are
    numpy views; packet bytes are memoryviews into the chunk's buffers. Valid until release()
    (or until its queue closes)."""

    def __init__(self, *args, **kwargs):
        raise TypeError("chunks come from capture (a queue's poll(), an engine's "
                        "next_chunk()): they cannot be made from Python")

    @staticmethod
    cdef Chunk _make(RxRing q, Delivery d):
        cdef Chunk c = Chunk.__new__(Chunk)
        c._fill(q, d)
        return c

    cdef void _fill(self, RxRing q, Delivery d):
        self.queue, self._token, self.index, self.first, self.count = \
            q, d.token, d.chunk, d.first, d.count

    cdef Delivery delivery(self):
        cdef Delivery d
        d.token, d.chunk, d.first, d.count = self._token, self.index, self.first, self.count
        return d

    @property
    def token(self):
        """The handle as one integer: token << 64 | chunk << 32 | first buffer."""
        return (<object>self._token << 64) | (<object>self.index << 32) | self.first

    cpdef _live(self):
        if self.queue is None:              # made by Chunk.__new__ from Python
            raise WirecapError("this chunk was not captured: it names no buffers")
        if self.released:
            raise WirecapError("this chunk was released: its buffers may already hold other "
                               "packets (copy what you keep before release())")
        if self.queue.pool == NULL:
            raise WirecapError("this chunk's queue was closed: its buffers are gone")

    def _view(self, key):
        self._live()
        k = packet_index(self.index, self.queue.segment, self.first, 0)
        return self.queue._arrays[key][k:k + self.count]

    @property
    def lengths(self):
        """Bytes captured per packet: what packet(i) holds."""
        return self._view("caplen")

    @property
    def wire_lengths(self):
        """Bytes per packet on the wire (more than lengths where the device cut it short)."""
        return self._view("wire_len")

    @property
    def timestamps(self):
        """Capture time in ns since the epoch (on the 82599, when the driver took the segment:
        it has no per-packet clock; on AF_PACKET, the kernel's receive time)."""
        return self._view("ts")

    @property
    def rss_hashes(self):
        return self._view("rss")

    @property
    def status(self):
        """The device's status and error bits (82599: ixgbe.RXDADV_STAT_*, RXDADV_ERR_*;
        AF_PACKET: TP_STATUS_*)."""
        return self._view("status")

    @property
    def packet_info(self):
        """The device's packet info (82599: RSS type in bits 3:0 and RXDADV_PKTTYPE_*;
        AF_PACKET: the packet type, PACKET_HOST 0 ... PACKET_OUTGOING 4 of <linux/if_packet.h>)."""
        return self._view("info")

    def packet(self, uint32_t i):
        """Packet i's bytes, a writable memoryview into its buffer (zero copy)."""
        self._live()
        if i >= self.count:
            raise IndexError(f"packet {i} of a chunk with {self.count}")
        cdef size_t k = packet_index(self.index, self.queue.segment, self.first, i)
        cdef size_t off = self.index * self.queue.chunk_bytes + self.queue.offset[k]
        return memoryview(self.queue.pool_array[off:off + self.queue.caplen[k]])

    def __len__(self):
        return self.count

    def __iter__(self):
        for i in range(self.count):
            yield self.packet(i)

    def release(self):
        """Give the chunk back to its queue's pool."""
        self.queue.recycle(self)

    def __repr__(self):
        return (f"<Chunk {self.queue.device.name}/{self.queue.index} #{self.index} "
                f"[{self.first}:{self.first + self.count}]{' released' if self.released else ''}>")
