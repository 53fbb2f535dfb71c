"""The pcap-style per-packet path: headers, zero-copy packet views and the callback loop.

pcapy hands a callback ``(header, bytes)``; we hand ``(Header, Packet)`` where the Packet is
a view into the pool, valid during the call only (it reads like bytes: len, indexing,
slicing to bytes, the buffer protocol). The loop fills the same two objects again for the next
packet unless the callback kept one (then it takes a new one from a free list), so a packet
costs one Python call.
"""
import os

cimport cython
from cpython.buffer cimport PyBuffer_FillInfo
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.ref cimport Py_REFCNT
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from posix.time cimport timeval

from wirecap._bpf cimport Filter
from wirecap.errors import WirecapError

from wirecap._ring cimport Chunk, RxRing, packet_bytes
from wirecap.includes.packet cimport packet_index
from wirecap.includes.records cimport (EPB_HEAD, PCAP_NS, PCAP_US, PCAPNG, get_le32,
                                       put_record, record_size)

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
    cdef Header h = None
    cdef Packet p = None
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
        # a header or view that the callback did not keep (we hold the only reference) is
        # filled again for the next packet: nobody can tell, and it saves two allocations
        if h is None or Py_REFCNT(h) > 1:
            h = Header.__new__(Header)
        h.ts_ns, h.len = q.ts[k], q.wire_len[k]
        h.caplen = caplen if caplen < snaplen else snaplen
        if p is None or Py_REFCNT(p) > 1:
            p = Packet.__new__(Packet)
            p.owner = owner
        p.data, p.size, p.valid = packet_bytes(q, c.index, k), h.caplen, True
        try:
            callback(h, p)
        finally:
            p.valid = False     # an exported buffer (memoryview(p)) is the caller's lookout
        n += 1
    return stop, n


# ----------------------------------------------------------------------------- file records
# Record formats (includes/records.pxd) by file format name; dump.py writes the file headers.
FORMATS = {"pcap": PCAP_US, "pcap-ns": PCAP_NS, "pcapng": PCAPNG}


def pcap_records(Chunk c, uint32_t snaplen, int fmt, const uint8_t[::1] mask=None,
                 uint32_t limit=0xFFFFFFFF, uint32_t interface=0):
    """The packets of ``c`` that pass ``mask`` (at most ``limit``) as records of ``fmt``
    (PCAP_US, PCAP_NS: 16-byte little-endian header then the bytes; PCAPNG: Enhanced Packet
    Blocks on ``interface``, ns stamps; FORMATS maps file format names to them), ready to
    append to a file dump.py began: len is the wire length, caplen what was captured, cut to
    ``snaplen``. Returns (records, count, last timestamp). One allocation per chunk, built
    without the GIL."""
    c._live()
    _check_format(fmt)
    cdef RxRing q = c.queue
    cdef uint32_t i, n = 0, caplen
    cdef size_t k, size = 0
    cdef uint64_t last = 0
    for i in range(c.count):
        if n == limit:
            break
        if mask is None or mask[i]:
            k = packet_index(c.index, q.segment, c.first, i)
            size += record_size(fmt, min(q.caplen[k], snaplen))
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
            last = q.ts[k]
            w += put_record(w, fmt, last, caplen, q.wire_len[k], packet_bytes(q, c.index, k),
                            interface)
            n += 1
    return out, n, last


def _check_format(int fmt):
    if fmt not in (PCAP_US, PCAP_NS, PCAPNG):
        raise ValueError(f"record format {fmt}: one of {FORMATS}")


cdef struct Source:             # one blob of Enhanced Packet Blocks being merged
    const uint8_t* data
    size_t size, pos
    uint64_t ts                 # the next block's timestamp


cdef inline bint head(Source* s) noexcept nogil:
    """Load the timestamp of the block at s.pos: False once the blob is used up (or what is
    left cannot be a whole block: then it counts as used up, never read past its end)."""
    cdef const uint8_t* b = s.data + s.pos
    cdef uint32_t size
    if s.pos + EPB_HEAD + 4 > s.size:
        s.pos = s.size
        return False
    size = get_le32(b + 4)
    if size < EPB_HEAD + 4 or size > s.size - s.pos or get_le32(b + 20) > size - EPB_HEAD - 4:
        s.pos = s.size
        return False
    s.ts = (<uint64_t>get_le32(b + 12) << 32) | get_le32(b + 16)
    return True


cdef inline bint before(Source* a, Source* b) noexcept nogil:
    # equal stamps keep the order of the blobs (the order the chunks were read in)
    return a.ts < b.ts or (a.ts == b.ts and a < b)


cdef void sift_down(Source** heap, size_t n, size_t i) noexcept nogil:
    cdef size_t c
    cdef Source* t
    while True:
        c = 2 * i + 1
        if c >= n:
            return
        if c + 1 < n and before(heap[c + 1], heap[c]):
            c += 1
        if not before(heap[c], heap[i]):
            return
        t = heap[i]
        heap[i] = heap[c]
        heap[c] = t
        i = c


def merge_records(list blobs, list positions, uint64_t cutoff, int fmt,
                  uint64_t max_records=0xFFFFFFFFFFFFFFFF, uint64_t max_bytes=0xFFFFFFFFFFFFFFFF):
    """Merge blobs of pcapng Enhanced Packet Blocks (pcap_records(fmt=PCAPNG) output, each in
    time order, starting at ``positions``) into one run of ``fmt`` records in time order: every
    record stamped at or before ``cutoff``, at most ``max_records`` of them, ending with the
    first record that brings the run to ``max_bytes`` or more (tcpdump's -C: a file is cut
    after the packet that crossed the size). Returns (records, new positions, count)."""
    _check_format(fmt)
    cdef size_t n = len(blobs), i, m = 0, total = 0, used = 0
    cdef uint64_t count = 0
    cdef const uint8_t[::1] view
    cdef const uint8_t* b
    cdef uint8_t* w
    cdef Source* s
    cdef Source* src = <Source*>calloc(n + 1, sizeof(Source))
    cdef Source** heap = <Source**>calloc(n + 1, sizeof(Source*))
    if src == NULL or heap == NULL:
        free(src)
        free(heap)
        raise MemoryError("merge_records")
    views = []
    try:
        for i in range(n):
            view = blobs[i]
            views.append(view)          # keeps every buffer alive (and unmoved) while merged
            src[i].size, src[i].pos = view.shape[0], positions[i]
            if src[i].pos > src[i].size:
                raise ValueError(f"position {src[i].pos} beyond blob {i} of {src[i].size} bytes")
            if src[i].size:
                src[i].data = &view[0]
            total += src[i].size - src[i].pos
            if head(&src[i]):
                heap[m] = &src[i]
                m += 1
        i = m // 2 + 1
        while i > 0:
            i -= 1
            sift_down(heap, m, i)
        out = bytearray(total)          # a pcap or pcapng record is never longer than its EPB
        w = <uint8_t*><char*>out
        with nogil:
            while m and heap[0].ts <= cutoff and count < max_records and used < max_bytes:
                s = heap[0]
                b = s.data + s.pos
                used += put_record(w + used, fmt, s.ts, get_le32(b + 20), get_le32(b + 24),
                                   b + EPB_HEAD, get_le32(b + 8))
                count += 1
                s.pos += get_le32(b + 4)
                if not head(s):
                    m -= 1
                    heap[0] = heap[m]
                sift_down(heap, m, 0)
        del out[used:]
        return out, [src[i].pos for i in range(n)], count
    finally:
        free(src)
        free(heap)


# ----------------------------------------------------------------------------- savefiles
cdef extern from "<pcap/pcap.h>" nogil:
    ctypedef struct pcap_t:
        pass
    struct pcap_pkthdr:
        timeval ts                  # tv_usec holds ns: the file is opened at ns precision
        uint32_t caplen
        uint32_t len
    int PCAP_ERRBUF_SIZE, PCAP_TSTAMP_PRECISION_NANO, PCAP_ERROR, PCAP_ERROR_BREAK
    pcap_t* pcap_open_offline_with_tstamp_precision(const char* path, unsigned int precision,
                                                   char* errbuf)
    int pcap_next_ex(pcap_t* p, pcap_pkthdr** header, const uint8_t** data)
    int pcap_datalink(pcap_t* p)
    int pcap_snapshot(pcap_t* p)
    char* pcap_geterr(pcap_t* p)
    void pcap_close(pcap_t* p)
    int pcap_datalink_name_to_val(const char* name)
    const char* pcap_datalink_val_to_name(int linktype)
    const char* pcap_datalink_val_to_description(int linktype)


cdef enum:
    MAX_CAPLEN = 262144     # libpcap refuses longer records in a file


def datalink_name(int linktype):
    """libpcap's name of a link type (DLT_*): "EN10MB", "LINUX_SLL2"...; its number if
    libpcap has no name for it."""
    cdef const char* s = pcap_datalink_val_to_name(linktype)
    return str(linktype) if s == NULL else s.decode()


def datalink_description(int linktype):
    """libpcap's description of a link type: "Ethernet", "Linux cooked v2"...; None."""
    cdef const char* s = pcap_datalink_val_to_description(linktype)
    return None if s == NULL else s.decode()


def datalink_value(name):
    """The link type libpcap knows by ``name`` (any case, as tcpdump's -y takes it), or -1."""
    return pcap_datalink_name_to_val(str(name).encode())


cdef class Savefile:
    """A capture file read by libpcap, pcap or pcapng (pcap_open_offline): records are read
    as they are asked for, never the whole file at once, with ns time stamps."""
    cdef pcap_t* p
    cdef readonly object path
    cdef readonly int linktype, snaplen
    cdef readonly uint64_t seen         # records read, before the filter
    cdef object _error                  # a read error met after records already handed out

    def __cinit__(self, path):
        cdef char errbuf[512]           # PCAP_ERRBUF_SIZE is 256
        with open(path, "rb"):          # the OS's reasons first (no such file, a directory...)
            pass
        encoded = os.fsencode(path)
        self.p = pcap_open_offline_with_tstamp_precision(encoded, PCAP_TSTAMP_PRECISION_NANO,
                                                         errbuf)
        if self.p == NULL:
            raise WirecapError(f"{os.fsdecode(path)}: {errbuf.decode(errors='replace')} "
                               f"(not a pcap or pcapng file libpcap reads)")
        self.path = path
        self.linktype, self.snaplen = pcap_datalink(self.p), pcap_snapshot(self.p)

    def __dealloc__(self):
        if self.p != NULL:
            pcap_close(self.p)

    cdef int _next(self, Filter f, pcap_pkthdr** h, const uint8_t** data) noexcept nogil:
        """1 with the next record that passes ``f`` (None: every one), 0 at the end, -1 on
        a read error (pcap_geterr says which)."""
        cdef int rc
        while True:
            rc = pcap_next_ex(self.p, h, data)
            if rc != 1:
                return 0 if rc == -2 else -1
            self.seen += 1
            if f is None or f.match(data[0], h[0].len, h[0].caplen):
                return 1

    cdef _check(self, int rc, uint64_t got):
        if rc == -1:
            err = WirecapError(f"{os.fsdecode(self.path)}: "
                               f"{pcap_geterr(self.p).decode(errors='replace')}")
            if not got:
                raise err
            self._error = err           # raised at the next read: these records first

    def _open(self):
        if self.p == NULL:
            raise WirecapError(f"{os.fsdecode(self.path)}: the file is closed")
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def next(self, Filter f=None):
        """(timestamp_ns, bytes, wire length) of the next record that passes ``f``; None at
        the end of the file."""
        cdef pcap_pkthdr* h
        cdef const uint8_t* data
        cdef int rc
        self._open()
        with nogil:
            rc = self._next(f, &h, &data)
        self._check(rc, 0)
        if rc != 1:
            return None
        return (<uint64_t>h.ts.tv_sec * 1000000000 + h.ts.tv_usec,
                PyBytes_FromStringAndSize(<char*>data, h.caplen), h.len)

    def records(self, Filter f=None, uint32_t snaplen=0xFFFFFFFF,
                uint64_t max_records=0xFFFFFFFFFFFFFFFF, size_t max_bytes=1 << 20,
                uint32_t interface=0):
        """The next records that pass ``f`` as Enhanced Packet Blocks (ns), the input of
        merge_records: at most ``max_records``, stopping once ``max_bytes`` are reached,
        each cut to ``snaplen``. Returns (blocks, count, last timestamp); count 0 at the end."""
        cdef pcap_pkthdr* h
        cdef const uint8_t* data
        cdef int rc = 0
        cdef uint64_t n = 0, ts = 0
        cdef size_t used = 0
        cdef uint32_t caplen
        self._open()
        out = bytearray(max_bytes + record_size(PCAPNG, MAX_CAPLEN))
        cdef uint8_t* w = <uint8_t*><char*>out
        with nogil:
            while n < max_records and used < max_bytes:
                rc = self._next(f, &h, &data)
                if rc != 1:
                    break
                caplen = min(min(h.caplen, snaplen), MAX_CAPLEN)
                ts = <uint64_t>h.ts.tv_sec * 1000000000 + h.ts.tv_usec
                used += put_record(w + used, PCAPNG, ts, caplen, h.len, data, interface)
                n += 1
        self._check(rc, n)
        del out[used:]
        return out, n, ts

    def close(self):
        if self.p != NULL:
            pcap_close(self.p)
            self.p = NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
