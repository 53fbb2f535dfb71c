# The records a capture file holds, formatted in C: pcap's 16-byte header then the bytes (µs
# or ns stamps), or pcapng's Enhanced Packet Block (ns, if_tsresol 9). _pcap builds them into
# memory, _dumpfile into its file's buffer: one copy of the layout for both.
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

cdef enum:
    PCAP_US, PCAP_NS, PCAPNG
    EPB_HEAD = 28       # an Enhanced Packet Block before its data: type, length, interface,
                        # ts high, ts low, caplen, len; then data, padding, length again


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* one 32-bit store: byte by byte, each store could alias anything and the compiler
       reloads every pointer after it */
    static inline void wirecap_put_le32(uint8_t *p, uint32_t v) {
    #if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap32(v);
    #endif
        memcpy(p, &v, 4);
    }
    """
    void put_le32 "wirecap_put_le32"(uint8_t* p, uint32_t v) noexcept nogil


cdef inline uint32_t get_le32(const uint8_t* p) noexcept nogil:
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline size_t record_size(int fmt, uint32_t caplen) noexcept nogil:
    if fmt == PCAPNG:
        return EPB_HEAD + ((caplen + 3) & ~<uint32_t>3) + 4
    return 16 + caplen


cdef inline size_t put_record(uint8_t* w, int fmt, uint64_t ts, uint32_t caplen,
                              uint32_t wirelen, const uint8_t* data, uint32_t iface) noexcept nogil:
    """One record of ``fmt`` at ``w`` (ts in ns; pcapng at if_tsresol 9); its size."""
    cdef size_t size = record_size(fmt, caplen), pad
    if fmt == PCAPNG:
        put_le32(w, 6)
        put_le32(w + 4, <uint32_t>size)
        put_le32(w + 8, iface)
        put_le32(w + 12, <uint32_t>(ts >> 32))
        put_le32(w + 16, <uint32_t>ts)
        put_le32(w + 20, caplen)
        put_le32(w + 24, wirelen)
        memcpy(w + EPB_HEAD, data, caplen)
        pad = size - 4 - EPB_HEAD - caplen
        memset(w + EPB_HEAD + caplen, 0, pad)
        put_le32(w + size - 4, <uint32_t>size)
    else:
        put_le32(w, <uint32_t>(ts // 1000000000))
        put_le32(w + 4, <uint32_t>(ts % 1000000000 if fmt == PCAP_NS else
                                   ts % 1000000000 // 1000))
        put_le32(w + 8, caplen)
        put_le32(w + 12, wirelen)
        memcpy(w + 16, data, caplen)
    return size
