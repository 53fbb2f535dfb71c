"""A capture file written from C: one file descriptor and one buffer reused for the whole file.

Records are formatted straight into the buffer without the GIL (a chunk's packets from the
pool: put_chunk, or put_run for the engine's put-every-waiting-chunk loop; one packet given
from Python: put) and go out with write() when the buffer is full, at flush() and at close():
no Python object per packet, one system call per buffer. Bytes built elsewhere (file
headers, the CLI's merge of several queues) are copied in with write().

A write that fails (a full disk, an I/O error) ends the file: it is cut back to the last
buffer that went out whole, so the records it holds are exactly the ``records`` counted, and
WriteError says so in one line.
"""
import os

from libc.errno cimport EINTR, errno
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from posix.types cimport off_t
from posix.unistd cimport close, ftruncate, lseek, write, SEEK_SET

cdef extern from "<fcntl.h>" nogil:
    int fallocate(int fd, int mode, off_t offset, off_t len)
    enum: FALLOC_FL_KEEP_SIZE

from wirecap.errors import WirecapError

from wirecap._ring cimport Chunk, RxRing, packet_bytes
from wirecap.includes.packet cimport packet_index
from wirecap.includes.records cimport PCAP_NS, PCAP_US, PCAPNG, put_record, record_size

cdef extern from *:
    void prefetch "__builtin_prefetch"(const void* p) noexcept nogil

cdef enum:
    PREFETCH = 8                # packets ahead whose bytes are asked for early
    MAX_CAPLEN = 262144         # the longest record a file holds (libpcap's limit)
# 128 KiB: a write() per 1,700 64-byte frames, and a buffer that stays in the writer core's L2
# (512 KiB here). With 1 MiB the buffer and the copy out of it swept the shared L3, and the
# capture thread's catch-up on the other core slowed from ~28 to ~45 ns per frame in most runs
# (bench linerate, pcap, 10 runs each: median loss 0.5 % against 12-32 %).
DEFAULT_CAPACITY = 1 << 17


class WriteError(WirecapError, OSError):
    """A capture file the system refused to write (ENOSPC, EIO...): the file keeps the
    records counted, each whole. An OSError too, with errno and filename."""

    def __init__(self, err, path, records):
        OSError.__init__(self, err, os.strerror(err), os.fsdecode(path))
        self.records = records

    def __str__(self):
        return (f"{self.filename}: {self.strerror}: the file ends after its last whole "
                f"record ({self.records:,} packets); free space or write elsewhere")


cdef class Dumpfile:
    """``path`` created (or truncated) for records of ``fmt`` (PCAP_US, PCAP_NS, PCAPNG: see
    _pcap.FORMATS), written through a buffer of ``capacity`` bytes. Opening raises OSError
    as open() does."""

    def __cinit__(self, path, int fmt, size_t capacity=DEFAULT_CAPACITY):
        self.fd = -1
        if fmt not in (PCAP_US, PCAP_NS, PCAPNG):
            raise ValueError(f"record format {fmt}: PCAP_US, PCAP_NS or PCAPNG")
        self.fmt, self.path = fmt, path
        self.cap = max(capacity, record_size(PCAPNG, MAX_CAPLEN))     # a record fits whole
        self.buf = <uint8_t*>malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError(f"a {self.cap}-byte buffer for {os.fsdecode(path)}")
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)              # unflushed records are lost: close() writes them
        free(self.buf)

    # -------------------------------------------------------------- C level
    cdef int _write_all(self, const uint8_t* p, size_t size) noexcept nogil:
        """Write ``size`` bytes at the end of the file; 0, or the errno of the write that
        failed, after the file was cut back to where they began (a record boundary)."""
        cdef size_t done = 0
        cdef ssize_t n
        cdef int err
        while done < size:
            n = write(self.fd, p + done, size - done)
            if n >= 0:
                done += n           # a short write (a pipe, a signal): write the rest
            elif errno != EINTR:
                err = errno
                if done:            # on a pipe this fails: the reader has what went out
                    ftruncate(self.fd, <off_t>self.offset)
                return err
        self.offset += size
        return 0

    cdef int _drain(self) noexcept nogil:
        """Write the buffer out; 0 or an errno."""
        cdef int err = self._write_all(self.buf, self.used)
        if not err:
            self.used = self.buffered = 0
        return err

    cdef void _appended(self, uint8_t* w, uint64_t records) noexcept nogil:
        """The buffer now ends at ``w`` with ``records`` more records."""
        self.used = w - self.buf
        self.buffered += records
        self.records += records

    cdef int _room(self, size_t size) noexcept nogil:
        """Make room for ``size`` bytes (at most the capacity); 0 or an errno."""
        if self.cap - self.used >= size:
            return 0
        return self._drain()

    cdef _check(self, int err):
        """Raise what a failed write left, once; the file takes no more records after it."""
        if err:
            self.records -= self.buffered       # what is on disk, and no more
            self.used = self.buffered = 0
            self.failed = WriteError(err, self.path, self.records)
            raise self.failed

    cdef _usable(self):
        if self.failed is not None:
            raise self.failed
        if self.fd < 0:
            raise WirecapError(f"{os.fsdecode(self.path)}: the file is closed")

    cdef int put_run(self, RxRing q, Run* r, uint32_t* next, uint64_t* n) noexcept nogil:
        """Append the records of run ``r`` of ``q``'s pool; ``next`` the index after the last
        packet looked at, ``n`` the records appended. 0, or the errno of a failed write."""
        cdef uint32_t i = r.start, caplen, snap = min(r.snaplen, <uint32_t>MAX_CAPLEN)
        cdef uint64_t size = 0, pending = 0     # pending: appended, not yet counted
        cdef size_t rec
        cdef int err = 0, fmt = self.fmt
        # the loop keeps the queue's columns and the write position in locals: every byte
        # it stores could alias a field, which the compiler would then load again
        cdef size_t row = packet_index(r.chunk, q.segment, r.first, 0)
        cdef const uint16_t* caplens = q.caplen + row
        cdef const uint32_t* wire_len = q.wire_len + row
        cdef const uint64_t* ts = q.ts + row
        cdef uint8_t* w = self.buf + self.used
        cdef uint8_t* end = self.buf + self.cap
        n[0] = 0
        while i < r.count and n[0] < r.limit and size < r.max_bytes:
            if r.mask != NULL and not r.mask[i]:
                i += 1
                continue
            if i + PREFETCH < r.count:
                prefetch(packet_bytes(q, r.chunk, row + i + PREFETCH))
            caplen = min(<uint32_t>caplens[i], snap)
            rec = record_size(fmt, caplen)
            if <size_t>(end - w) < rec:
                self._appended(w, pending)
                pending = 0
                err = self._drain()
                if err:
                    break
                w = self.buf
            w += put_record(w, fmt, ts[i], caplen, wire_len[i],
                            packet_bytes(q, r.chunk, row + i), r.interface)
            size += rec
            pending += 1
            n[0] += 1
            i += 1
        self._appended(w, pending)
        next[0] = i
        return err

    # -------------------------------------------------------------- Python API
    def put_chunk(self, Chunk c, uint32_t snaplen, const uint8_t[::1] mask=None,
                  uint32_t start=0, uint64_t limit=0xFFFFFFFFFFFFFFFF,
                  uint64_t max_bytes=0xFFFFFFFFFFFFFFFF, uint32_t interface=0):
        """Append packets [start, ...) of ``c`` that pass ``mask``, each cut to ``snaplen``
        (len is the wire length): at most ``limit`` records, ending with the first that
        brings what this call appended to ``max_bytes`` or more (tcpdump's -C cuts a file
        after the packet that crossed the size). Returns (the next index, records); the
        chunk is not released."""
        self._usable()
        c._live()
        if mask is not None and <size_t>mask.shape[0] < c.count:
            raise ValueError(f"a mask of {mask.shape[0]} for a chunk of {c.count} packets")
        cdef Run r
        r.chunk, r.first, r.start, r.count = c.index, c.first, start, c.count
        r.mask = &mask[0] if mask is not None and c.count else NULL
        r.snaplen, r.interface, r.limit, r.max_bytes = snaplen, interface, limit, max_bytes
        cdef uint32_t i
        cdef uint64_t n
        cdef int err
        with nogil:
            err = self.put_run(c.queue, &r, &i, &n)
        self._check(err)
        return i, n

    def put(self, uint64_t ts, const uint8_t[::1] data, uint32_t wire_len, uint32_t interface=0):
        """Append one record of ``data`` (whole: the caller cuts it to its snaplen), stamped
        ``ts``: ns (pcapng: in the interface's if_tsresol units)."""
        self._usable()
        cdef uint32_t caplen = data.shape[0]
        if caplen > MAX_CAPLEN:
            raise ValueError(f"a {caplen}-byte record: a file holds at most {MAX_CAPLEN}")
        cdef const uint8_t* p = &data[0] if caplen else NULL
        cdef int err
        with nogil:
            err = self._room(record_size(self.fmt, caplen))
            if not err:
                self.used += put_record(self.buf + self.used, self.fmt, ts, caplen, wire_len,
                                        p, interface)
                self.buffered += 1
                self.records += 1
        self._check(err)

    def write(self, const uint8_t[::1] data, uint64_t records=0):
        """Append bytes already in the file's layout (a header, a block, or ``records``
        records of its format)."""
        self._usable()
        cdef size_t size = data.shape[0]
        cdef int err = 0
        if not size:
            return
        with nogil:
            if size <= self.cap:
                err = self._room(size)
                if not err:
                    memcpy(self.buf + self.used, &data[0], size)
                    self.used += size
                    self.buffered += records
                    self.records += records
            else:                               # larger than the buffer: straight out
                err = self._drain()
                if not err:
                    err = self._write_all(&data[0], size)
                if not err:
                    self.records += records
        self._check(err)

    def tell(self):
        """The file's size once everything appended is out."""
        return self.offset + self.used

    def reserve(self, uint64_t nbytes):
        """Have the filesystem set aside the next ``nbytes`` of the file now, without growing
        it (fallocate, FALLOC_FL_KEEP_SIZE): a tmpfs then allocates those pages here rather
        than while packets are written (about 45 ns per 76-byte record on our VM). It still
        zeroes a page when first written, and a VM's host may back a page only then: write
        the space through once to have both done before capture. True if the filesystem
        could; a refusal changes nothing."""
        self._usable()
        cdef int rc
        cdef off_t at = <off_t>(self.offset + self.used)
        with nogil:
            rc = fallocate(self.fd, FALLOC_FL_KEEP_SIZE, at, <off_t>nbytes)
        return rc == 0

    def rewind(self):
        """Write the file again from its first byte, over what it holds (its pages stay
        allocated); close() cuts what is left of the old contents. ``records`` starts over."""
        self._usable()
        cdef int err
        with nogil:
            err = self._drain()
        self._check(err)
        if lseek(self.fd, 0, SEEK_SET) < 0:
            raise OSError(errno, os.strerror(errno), os.fsdecode(self.path))
        self.offset, self.records, self.rewound = 0, 0, True

    def flush(self):
        """Write out what the buffer holds."""
        self._usable()
        cdef int err
        with nogil:
            err = self._drain()
        self._check(err)

    @property
    def closed(self):
        return self.fd < 0

    def close(self):
        """Flush and close; raises WriteError if that last write fails (not again for a
        failure already raised). Closing twice is harmless."""
        cdef int err = 0
        if self.fd < 0:
            return
        if self.failed is None:
            with nogil:
                err = self._drain()
                if not err and self.rewound:
                    ftruncate(self.fd, <off_t>self.offset)
        close(self.fd)
        self.fd = -1
        self._check(err)
