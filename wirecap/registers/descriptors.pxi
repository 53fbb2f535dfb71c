# Descriptor layouts (datasheet 7.1.5, 7.1.6, 7.2.3): copied into the generated ixgbe.pxd after
# the register map; their bit fields are the DescriptorBits constants in 82599.txt.

cdef packed struct rx_desc_read:       # 7.1.6.1 advanced receive descriptor, read format
    uint64_t pkt_addr
    uint64_t hdr_addr

cdef packed struct rx_desc_wb:         # 7.1.6.2 advanced receive descriptor, write-back
    uint32_t pkt_info                  # RSS type 3:0, packet type 16:4
    uint32_t rss_hash
    uint32_t status_error              # extended status 19:0, extended errors 31:20
    uint16_t length
    uint16_t vlan

cdef packed struct rx_desc_legacy:     # 7.1.5 legacy receive descriptor
    uint64_t addr
    uint16_t length
    uint16_t csum
    uint8_t status
    uint8_t errors
    uint16_t vlan

cdef packed struct tx_desc:            # 7.2.3.2.4 advanced transmit data descriptor (and legacy)
    uint64_t addr
    uint32_t cmd_type_len
    uint32_t olinfo_status
