from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.stdio cimport FILE

# A pcap file read one record at a time, without the GIL: the wire streams a capture instead
# of holding it in memory.
cdef struct PcapStream:
    FILE* f
    bint swap               # the file's byte order is not ours
    int64_t scale           # ns per timestamp fraction unit: 1000 (µs files) or 1
    uint32_t snaplen
    uint64_t offset         # file offset of the next record
    uint8_t* data           # the current record's bytes, padded to 60
    uint32_t cap            # size of data
    uint32_t len            # bytes of the current frame (after padding)
    uint32_t caplen, orig   # as recorded
    int64_t ts              # the current record's timestamp, ns
    int error               # why the last pcap_next failed (PCAP_E_*)

cdef enum:
    PCAP_E_NONE = 0
    PCAP_E_HEADER           # truncated record header
    PCAP_E_CAPLEN           # caplen beyond snaplen / 262144, or beyond len
    PCAP_E_FRAC             # sub-second part of a second or more
    PCAP_E_DATA             # truncated record data
    PCAP_E_MEMORY

cdef int pcap_next(PcapStream* p) noexcept nogil
cdef void pcap_rewind(PcapStream* p) noexcept nogil

cdef class PcapFile:
    cdef PcapStream stream
    cdef readonly str path
    cdef readonly uint32_t linktype
    cdef readonly uint64_t records
    cdef readonly int64_t first_ns, last_ns
