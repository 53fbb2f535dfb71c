"""What the 82599's MAC and parser compute from a frame's bytes: the packet type and offsets
(parse_frame), the Ethernet FCS, and the Toeplitz hash that RSS uses (7.1.2.8).

Nothing here depends on a device's configuration except through its arguments.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy, memset

cimport wirecap.ixgbe as r

cdef uint32_t crc_table[256]


cdef void _crc_init():
    cdef uint32_t c, n, k
    for n in range(256):
        c = n
        for k in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if (c & 1) else (c >> 1)
        crc_table[n] = c
_crc_init()


cdef uint32_t ethernet_fcs(const uint8_t* d, uint32_t n) noexcept nogil:
    cdef uint32_t c = ~(<uint32_t>0), i
    for i in range(n):
        c = crc_table[(c ^ d[i]) & 0xFF] ^ (c >> 8)
    return ~c


cdef void parse_frame(const uint8_t* d, uint32_t n, FrameInfo* fi) noexcept nogil:
    """Classify a frame (no FCS) the way the 82599's parser does for RSS and descriptors."""
    cdef uint32_t off = 14, ihl, s, i
    cdef uint16_t et
    memset(fi, 0, sizeof(FrameInfo))
    if n < 14:
        return
    if d[0] == 0xFF and d[1] == 0xFF and d[2] == 0xFF and d[3] == 0xFF and d[4] == 0xFF \
            and d[5] == 0xFF:
        fi.dst_class = 2
    elif d[0] & 1:
        fi.dst_class = 1
    et = be16(d + 12)
    if et == 0x8100 and n >= 18:        # one VLAN tag
        et = be16(d + 16)
        off = 18
    if et == 0x0800 and n >= off + 20 and (d[off] >> 4) == 4:
        ihl = (d[off] & 0xF) * 4
        if ihl < 20 or n < off + ihl:
            return
        fi.ptype = r.RXDADV_PKTTYPE_IPV4
        fi.l3_off = off
        s = 0
        for i in range(0, ihl, 2):
            s += be16(d + off + i)
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        fi.ip_csum_bad = s != 0xFFFF
        if (be16(d + off + 6) & 0x3FFF) == 0 and n >= off + ihl + 4:  # not a fragment
            if d[off + 9] == 6:
                fi.l4 = 6
                fi.ptype |= r.RXDADV_PKTTYPE_TCP
            elif d[off + 9] == 17:
                fi.l4 = 17
                fi.ptype |= r.RXDADV_PKTTYPE_UDP
    elif et == 0x86DD and n >= off + 40 and (d[off] >> 4) == 6:
        fi.ptype = r.RXDADV_PKTTYPE_IPV6
        fi.l3_off = off
        fi.is_v6 = 1
        if n >= off + 44:
            if d[off + 6] == 6:
                fi.l4 = 6
                fi.ptype |= r.RXDADV_PKTTYPE_TCP
            elif d[off + 6] == 17:
                fi.l4 = 17
                fi.ptype |= r.RXDADV_PKTTYPE_UDP


cdef uint8_t rss_input(const uint8_t* d, const FrameInfo* fi, uint32_t mrqc,
                       uint8_t* buf, uint32_t* ln) noexcept nogil:
    """The RSS type MRQC selects for this frame, with the hash input (addresses, then ports
    if the type includes them) in buf[0:ln]."""
    cdef const uint8_t* src = d + fi.l3_off
    cdef uint8_t t = r.RXDADV_RSSTYPE_NONE
    ln[0] = 0
    if fi.ptype & r.RXDADV_PKTTYPE_IPV4:
        memcpy(buf, src + 12, 8)
        ln[0] = 8
        if fi.l4 == 6 and mrqc & r.MRQC_RSS_FIELD_IPV4_TCP:
            t = r.RXDADV_RSSTYPE_IPV4_TCP
        elif fi.l4 == 17 and mrqc & r.MRQC_RSS_FIELD_IPV4_UDP:
            t = r.RXDADV_RSSTYPE_IPV4_UDP
        elif mrqc & r.MRQC_RSS_FIELD_IPV4:
            t = r.RXDADV_RSSTYPE_IPV4
        if t != r.RXDADV_RSSTYPE_IPV4 and t != 0:
            memcpy(buf + 8, src + (src[0] & 0xF) * 4, 4)
            ln[0] = 12
    elif fi.ptype & r.RXDADV_PKTTYPE_IPV6:
        memcpy(buf, src + 8, 32)
        ln[0] = 32
        if fi.l4 == 6 and mrqc & r.MRQC_RSS_FIELD_IPV6_TCP:
            t = r.RXDADV_RSSTYPE_IPV6_TCP
        elif fi.l4 == 17 and mrqc & r.MRQC_RSS_FIELD_IPV6_UDP:
            t = r.RXDADV_RSSTYPE_IPV6_UDP
        elif mrqc & r.MRQC_RSS_FIELD_IPV6:
            t = r.RXDADV_RSSTYPE_IPV6
        if t != r.RXDADV_RSSTYPE_IPV6 and t != 0:
            memcpy(buf + 32, src + 40, 4)
            ln[0] = 36
    return t


cdef void toeplitz_table(const uint8_t* key, uint32_t table[36][256]) noexcept nogil:
    """table[p][v]: the hash contribution of byte value v at input position p under the
    40-byte key, so that hashing n input bytes costs n lookups."""
    cdef int p, v, b, s
    cdef uint32_t w
    for p in range(36):
        for v in range(256):
            w = 0
            for b in range(8):
                if v & (0x80 >> b):
                    s = p * 8 + b       # the 32 key bits starting at bit s
                    w ^= ((<uint32_t>key[s >> 3] << 24 | <uint32_t>key[(s >> 3) + 1] << 16 |
                           <uint32_t>key[(s >> 3) + 2] << 8 | key[(s >> 3) + 3]) << (s & 7)) | \
                         ((key[(s >> 3) + 4] >> (8 - (s & 7))) if (s & 7) else 0)
            table[p][v] = w


def toeplitz(key: bytes, data: bytes) -> int:
    """The Toeplitz hash of ``data`` under ``key`` (reference implementation for checks)."""
    if len(key) < len(data) + 4:
        raise ValueError(f"a {len(data)}-byte input needs a key of at least {len(data) + 4} bytes")
    k = int.from_bytes(key, "big")
    kbits = len(key) * 8
    h = 0
    for i, byte in enumerate(data):
        for b in range(8):
            if byte & (0x80 >> b):
                s = i * 8 + b
                h ^= (k >> (kbits - 32 - s)) & 0xFFFFFFFF
    return h
