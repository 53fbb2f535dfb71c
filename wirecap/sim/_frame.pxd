from libc.stdint cimport uint8_t, uint16_t, uint32_t

# What the receive path needs to know about a frame: what parse_frame finds in its bytes, and
# (the fields after cfg_gen) what one device configuration decides for it, cached by
# _receive.admit so that a template played a million times is judged once per configuration.
cdef struct FrameInfo:
    uint32_t ptype          # RXDADV_PKTTYPE_* bits
    uint16_t l3_off         # offset of the IP header (0 if not IP)
    uint8_t l4              # 6 TCP, 17 UDP, 0 other or fragment
    uint8_t is_v6
    uint8_t ip_csum_bad
    uint8_t dst_class       # 0 unicast, 1 multicast, 2 broadcast
    uint32_t cfg_gen        # the device configuration the fields below belong to (0: none)
    uint8_t verdict         # _receive's V_*: delivered, or why the MAC or a filter drops it
    uint8_t rss_type
    uint16_t queue          # receive queue RSS picks
    uint32_t hash
    uint32_t pkt_info       # descriptor write-back words
    uint32_t status
    uint32_t eicr           # EICR cause bit its write-back sets (IVAR), or 0

cdef void parse_frame(const uint8_t* d, uint32_t n, FrameInfo* fi) noexcept nogil
cdef uint32_t ethernet_fcs(const uint8_t* d, uint32_t n) noexcept nogil
cdef void toeplitz_table(const uint8_t* key, uint32_t table[36][256]) noexcept nogil
cdef uint8_t rss_input(const uint8_t* d, const FrameInfo* fi, uint32_t mrqc,
                       uint8_t* buf, uint32_t* ln) noexcept nogil

cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return (p[0] << 8) | p[1]
