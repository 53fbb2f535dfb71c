"""The pcap-style per-packet path: headers, zero-copy packet views and the callback loop.

pcapy hands a callback ``(header, bytes)``; we hand ``(Header, Packet)`` where the Packet is
a view into the pool, valid during the call only (it reads like bytes: len, indexing,
slicing to bytes, the buffer protocol). Both objects come from free lists, so a packet costs
two small allocations and one Python call.
"""
cimport cython
from cpython.buffer cimport PyBuffer_FillInfo
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from wirecap._ring cimport Chunk, RxRing, packet_bytes
from wirecap.includes.packet cimport packet_index

_EXPIRED = ("this packet view was valid during the callback only: its buffer may already "
            "hold another packet (copy what you keep, e.g. bytes(data))")


@cython.freelist(64)
cdef class Header:
    """A packet header as pcapy hands it out: getts(), getcaplen(), getlen(); also .ts (float
    seconds), .ts_ns, .caplen, .len."""
    cdef readonly uint64_t ts_ns
    cdef readonly uint32_t caplen, len

    def getts(self):
        return self.ts_ns // 1000000000, (self.ts_ns % 1000000000) // 1000

    def getcaplen(self):
        return self.caplen

    def getlen(self):
        return self.len

    @property
    def ts(self):
        return self.ts_ns / 1e9

    def __repr__(self):
        return f"<Header ts={self.ts:.9f} caplen={self.caplen} len={self.len}>"


def make_header(uint64_t ts_ns, uint32_t caplen, uint32_t length):
    """A Header for a packet that does not come from a ring (a record of a pcap file)."""
    cdef Header h = Header.__new__(Header)
    h.ts_ns, h.caplen, h.len = ts_ns, caplen, length
    return h


@cython.freelist(64)
cdef class Packet:
    """The bytes of one captured packet, in place. Reads like ``bytes``; writable through the
    buffer protocol (to modify before forwarding). Refuses every use once its callback ended."""
    cdef uint8_t* data
    cdef Py_ssize_t size
    cdef object owner           # keeps the pool mapped while a view is out
    cdef bint valid

    cdef inline void _check(self) except *:
        if not self.valid:
            raise ValueError(_EXPIRED)

    def __len__(self):
        return self.size

    def __getitem__(self, key):
        self._check()
        cdef Py_ssize_t i, start, stop, step
        if isinstance(key, slice):
            start, stop, step = key.indices(self.size)
            if step == 1:
                return PyBytes_FromStringAndSize(<char*>self.data + start,
                                                 max(stop - start, 0))
            return self.tobytes()[key]
        i = key
        if i < 0:
            i += self.size
        if not 0 <= i < self.size:
            raise IndexError(f"byte {key} of a {self.size}-byte packet")
        return self.data[i]

    def __getbuffer__(self, Py_buffer* buf, int flags):
        self._check()
        PyBuffer_FillInfo(buf, self, self.data, self.size, 0, flags)

    def tobytes(self):
        self._check()
        return PyBytes_FromStringAndSize(<char*>self.data, self.size)

    def __bytes__(self):
        return self.tobytes()

    def hex(self, *args):
        return self.tobytes().hex(*args)

    def __eq__(self, other):
        if isinstance(other, (bytes, bytearray, memoryview, Packet)):
            return self.tobytes() == bytes(other)
        return NotImplemented

    def __repr__(self):
        state = "" if self.valid else " (expired)"
        return f"<Packet {self.size} bytes{state}>"


cdef class Break:
    """breakloop()'s flag, read by the callback loop without a Python attribute lookup."""
    cdef public bint requested


def run_callbacks(Chunk c, uint32_t start, uint32_t stop, callback, uint32_t snaplen,
                  const uint8_t[::1] mask=None, Break brk=None):
    """Call ``callback(header, packet)`` for packets [start, stop) of ``c`` that pass ``mask``;
    the packet view expires when the call returns. Stops early once ``brk.requested``.
    The header's len is the wire length, its caplen what was captured, cut to ``snaplen``.
    Returns (next index, packets called back)."""
    c._live()
    cdef RxRing q = c.queue
    cdef uint32_t i, n = 0, caplen
    cdef size_t k
    cdef Header h
    cdef Packet p
    owner = q.pool_array
    if brk is None:
        brk = Break()
    for i in range(start, stop):
        if brk.requested:
            return i, n
        if mask is not None and not mask[i]:
            continue
        k = packet_index(c.index, q.segment, c.first, i)
        caplen = q.caplen[k]
        h = Header.__new__(Header)
        h.ts_ns, h.len = q.ts[k], q.wire_len[k]
        h.caplen = caplen if caplen < snaplen else snaplen
        p = Packet.__new__(Packet)
        p.data, p.size, p.owner, p.valid = packet_bytes(q, c.index, k), h.caplen, owner, True
        try:
            callback(h, p)
        finally:
            p.valid = False     # an exported buffer (memoryview(p)) is the caller's lookout
        n += 1
    return stop, n


cdef inline void put_le32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0], p[1], p[2], p[3] = v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24


def pcap_records(Chunk c, uint32_t snaplen, bint nanosecond, const uint8_t[::1] mask=None,
                 uint32_t limit=0xFFFFFFFF):
    """The packets of ``c`` that pass ``mask`` (at most ``limit``) as pcap records (16-byte
    little-endian header, then the bytes), ready to append to a file dump.PcapWriter began:
    len is the wire length, caplen what was captured, cut to ``snaplen``. Returns (records,
    count). One allocation per chunk instead of two writes per packet."""
    c._live()
    cdef RxRing q = c.queue
    cdef uint32_t i, n = 0, caplen
    cdef size_t k, size = 0
    cdef uint64_t ts
    for i in range(c.count):
        if n == limit:
            break
        if mask is None or mask[i]:
            k = packet_index(c.index, q.segment, c.first, i)
            size += 16 + min(q.caplen[k], snaplen)
            n += 1
    out = PyBytes_FromStringAndSize(NULL, size)
    cdef uint8_t* w = <uint8_t*><char*>out
    n = 0
    with nogil:
        for i in range(c.count):
            if n == limit:
                break
            if mask is not None and not mask[i]:
                continue
            k = packet_index(c.index, q.segment, c.first, i)
            caplen = min(q.caplen[k], snaplen)
            ts = q.ts[k]
            put_le32(w, <uint32_t>(ts // 1000000000))
            put_le32(w + 4, <uint32_t>(ts % 1000000000 if nanosecond else
                                       ts % 1000000000 // 1000))
            put_le32(w + 8, caplen)
            put_le32(w + 12, q.wire_len[k])
            memcpy(w + 16, packet_bytes(q, c.index, k), caplen)
            w += 16 + caplen
            n += 1
    return out, n
