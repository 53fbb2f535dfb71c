"""A pcap file as the model's wire source: checked once, end to end, then streamed record by
record without the GIL (a 300 MB capture costs a stdio buffer, not 300 MB).

Format (libpcap's): a 24-byte global header (magic 0xa1b2c3d4 for µs, 0xa1b23c4d for ns,
either byte order), then records of a 16-byte header (ts_sec, ts_frac, caplen, len) and data.
Frames shorter than 60 bytes are padded as the transmitting NIC would.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.stdio cimport FILE, fopen, fclose, fread, fseek, SEEK_SET
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memset

from wirecap.dump import PcapError

cdef extern from "<stdio.h>" nogil:
    int setvbuf(FILE* f, char* buf, int mode, size_t size)
    int _IOFBF

cdef uint32_t MAGIC_US = 0xA1B2C3D4, MAGIC_NS = 0xA1B23C4D
cdef uint32_t MAX_SNAPLEN = 262144      # libpcap's largest accepted snapshot length
cdef uint32_t MIN_WIRE = 60             # the shortest frame a NIC puts on the wire (no FCS)


cdef inline uint32_t get32(const uint8_t* b, bint swap) noexcept nogil:
    if swap:
        return (<uint32_t>b[0] << 24) | (<uint32_t>b[1] << 16) | (<uint32_t>b[2] << 8) | b[3]
    return (<uint32_t>b[3] << 24) | (<uint32_t>b[2] << 16) | (<uint32_t>b[1] << 8) | b[0]


cdef int pcap_next(PcapStream* p) noexcept nogil:
    """Read the next record: 1 read, 0 end of file, -1 malformed (p.error says why)."""
    cdef uint8_t h[16]
    cdef size_t got = fread(h, 1, 16, p.f)
    cdef uint32_t sec, frac, need
    cdef void* grown
    if got == 0:
        return 0
    if got < 16:
        p.error = PCAP_E_HEADER
        return -1
    sec, frac = get32(h, p.swap), get32(h + 4, p.swap)
    p.caplen, p.orig = get32(h + 8, p.swap), get32(h + 12, p.swap)
    if p.caplen > (p.snaplen if p.snaplen > MAX_SNAPLEN else MAX_SNAPLEN) or p.caplen > p.orig:
        p.error = PCAP_E_CAPLEN
        return -1
    if frac >= 1000000000 // p.scale:
        p.error = PCAP_E_FRAC
        return -1
    need = p.caplen if p.caplen > MIN_WIRE else MIN_WIRE
    if need > p.cap:
        grown = realloc(p.data, need)
        if grown == NULL:
            p.error = PCAP_E_MEMORY
            return -1
        p.data, p.cap = <uint8_t*>grown, need
    if fread(p.data, 1, p.caplen, p.f) < p.caplen:
        p.error = PCAP_E_DATA
        return -1
    if p.caplen < MIN_WIRE:
        memset(p.data + p.caplen, 0, MIN_WIRE - p.caplen)
    p.len = need
    p.ts = <int64_t>sec * 1000000000 + <int64_t>frac * p.scale
    p.offset += 16 + p.caplen
    return 1


cdef void pcap_rewind(PcapStream* p) noexcept nogil:
    fseek(p.f, 24, SEEK_SET)
    p.offset = 24


cdef class PcapFile:
    """An open pcap file: ``check()`` reads it through once (count, first and last
    timestamps, or a PcapError naming the offset); then the wire streams ``stream``."""

    def __cinit__(self, path):
        self.path = str(path)
        memset(&self.stream, 0, sizeof(PcapStream))
        cdef bytes raw = self.path.encode()
        self.stream.f = fopen(raw, "rb")
        if self.stream.f == NULL:
            raise PcapError(f"{self.path}: cannot open it for reading (does it exist, and may "
                            f"you read it?)")
        setvbuf(self.stream.f, NULL, _IOFBF, 1 << 18)
        cdef uint8_t h[24]
        cdef size_t got = fread(h, 1, 24, self.stream.f)
        cdef uint32_t magic = get32(h, 0) if got >= 4 else 0
        if got < 24:
            raise PcapError(f"{self.path}: {got} bytes is too short for a pcap header "
                            f"(24 bytes) at offset 0")
        if magic == MAGIC_US or magic == MAGIC_NS:
            self.stream.swap = 0
        else:
            magic = get32(h, 1)
            if magic != MAGIC_US and magic != MAGIC_NS:
                hint = " (this is pcapng: convert it with `editcap -F pcap`)" \
                    if bytes(h[:4]) == b"\x0a\x0d\x0d\x0a" else ""
                raise PcapError(f"{self.path}: bad magic {bytes(h[:4]).hex()} at offset 0: "
                                f"not a pcap file{hint}")
            self.stream.swap = 1
        self.stream.scale = 1000 if magic == MAGIC_US else 1
        self.stream.snaplen = get32(h + 16, self.stream.swap)
        self.linktype = get32(h + 20, self.stream.swap)
        self.stream.offset = 24

    def __dealloc__(self):
        if self.stream.f != NULL:
            fclose(self.stream.f)
        free(self.stream.data)

    def check(self):
        """Read every record once; raises PcapError at the first malformed one."""
        cdef int rc = 1
        cdef uint64_t n = 0
        cdef int64_t first = 0, last = 0
        with nogil:
            pcap_rewind(&self.stream)
            while True:
                rc = pcap_next(&self.stream)
                if rc != 1:
                    break
                if n == 0:
                    first = self.stream.ts
                last = self.stream.ts
                n += 1
        if rc < 0:
            self._raise()
        pcap_rewind(&self.stream)
        self.records, self.first_ns, self.last_ns = n, first, last

    def _raise(self):
        cdef PcapStream* p = &self.stream
        off = p.offset
        raise PcapError(f"{self.path}: " + {
            PCAP_E_HEADER: f"truncated record header at offset {off}",
            PCAP_E_CAPLEN: f"record at offset {off} has caplen {p.caplen} (len {p.orig}, "
                           f"snaplen {p.snaplen}): the file is corrupt",
            PCAP_E_FRAC: f"record at offset {off} has a sub-second timestamp beyond one second",
            PCAP_E_DATA: f"record at offset {off} is truncated: {p.caplen} bytes announced",
            PCAP_E_MEMORY: f"no memory for the record at offset {off}"}[p.error])
