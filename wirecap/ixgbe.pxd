# The Intel 82599 register map: the one source of truth for offsets, bit fields and
# descriptor layouts, shared by the driver (cimport) and the model and tests (import).
#
# Names are the datasheet's mnemonics (Intel 82599 10 GbE Controller Datasheet, rev. 3.x);
# bits are <REG>_<FIELD>. Each enum is one datasheet group and cites its section. Named enums
# keep bit-31 masks unsigned on the Python side; ixgbe.pyx re-exports every member as a
# plain int at module level.

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

# ---------------------------------------------------------------- 8.2.3.1 General control
cpdef enum GeneralControl:
    CTRL = 0x00000
    STATUS = 0x00008
    CTRL_EXT = 0x00018
    ESDP = 0x00020

cpdef enum GeneralControlBits:
    CTRL_GIO_DIS = 1 << 2          # PCIe master disable
    CTRL_LNK_RST = 1 << 3          # link reset, self-clearing
    CTRL_RST = 1 << 26             # device reset, self-clearing
    CTRL_RST_MASK = (1 << 3) | (1 << 26)
    STATUS_LAN_ID_MASK = 0x3 << 2
    STATUS_LINKUP = 1 << 7
    STATUS_GIO_MASTER_EN = 1 << 19
    CTRL_EXT_PFRSTD = 1 << 14
    CTRL_EXT_NS_DIS = 1 << 16
    CTRL_EXT_RO_DIS = 1 << 17
    CTRL_EXT_DRV_LOAD = 1 << 28

# ---------------------------------------------------------------- 8.2.3.2 EEPROM/flash
cpdef enum Eeprom:
    EEC = 0x10010
    EERD = 0x10014

cpdef enum EepromBits:
    EEC_PRES = 1 << 8              # EEPROM present
    EEC_ARD = 1 << 9               # auto-read done: NVM loaded after reset

# ---------------------------------------------------------------- 8.2.3.5 Interrupts
cpdef enum Interrupt:
    EICR = 0x00800
    EICS = 0x00808
    EIAC = 0x00810
    EIMS = 0x00880
    EIMC = 0x00888
    EIAM = 0x00890
    GPIE = 0x00898

cpdef enum InterruptBits:
    EICR_RTX_QUEUE = 0xFFFF        # one bit per interrupt vector 0..15 (IVAR-mapped queues)
    EICR_FLOW_DIR = 1 << 16
    EICR_RX_MISS = 1 << 17
    EICR_PCI = 1 << 18
    EICR_MAILBOX = 1 << 19
    EICR_LSC = 1 << 20             # link status change
    EICR_ECC = 1 << 28
    EICR_TCP_TIMER = 1 << 30
    EICR_OTHER = 0x80000000
    EIMS_ALL = 0x7FFFFFFF          # the settable mask bits; bit 31 of EIMS is reserved
    GPIE_MSIX_MODE = 1 << 4
    GPIE_OCD = 1 << 5              # other clear disable
    GPIE_EIAME = 1 << 30
    GPIE_PBA_SUPPORT = 0x80000000
    IVAR_ALLOC_VAL = 1 << 7        # per 8-bit entry: the entry is valid

# ---------------------------------------------------------------- 8.2.3.7 Receive filtering
cpdef enum ReceiveFilter:
    RXCSUM = 0x05000
    RFCTL = 0x05008
    FCTRL = 0x05080
    VLNCTRL = 0x05088
    MCSTCTRL = 0x05090
    MRQC = 0x05818

cpdef enum ReceiveFilterBits:
    FCTRL_SBP = 1 << 1             # store bad packets
    FCTRL_MPE = 1 << 8             # multicast promiscuous
    FCTRL_UPE = 1 << 9             # unicast promiscuous
    FCTRL_BAM = 1 << 10            # accept broadcast
    RAH_AV = 0x80000000               # receive address valid
    RXCSUM_IPPCSE = 1 << 12
    MRQC_MRQE_MASK = 0xF
    MRQC_RSSEN = 0x1               # MRQE = RSS only
    MRQC_RSS_FIELD_IPV4_TCP = 1 << 16
    MRQC_RSS_FIELD_IPV4 = 1 << 17
    MRQC_RSS_FIELD_IPV6_EX_TCP = 1 << 18
    MRQC_RSS_FIELD_IPV6_EX = 1 << 19
    MRQC_RSS_FIELD_IPV6 = 1 << 20
    MRQC_RSS_FIELD_IPV6_TCP = 1 << 21
    MRQC_RSS_FIELD_IPV4_UDP = 1 << 22
    MRQC_RSS_FIELD_IPV6_UDP = 1 << 23
    MRQC_RSS_FIELD_IPV6_EX_UDP = 1 << 24

# ---------------------------------------------------------------- 8.2.3.8 Receive DMA
cpdef enum ReceiveDma:
    RDRXCTL = 0x02F00
    RXCTRL = 0x03000

cpdef enum ReceiveDmaBits:
    RDRXCTL_CRCSTRIP = 1 << 1
    RDRXCTL_DMAIDONE = 1 << 3      # DMA init done after reset
    RXCTRL_RXEN = 1 << 0
    RXDCTL_ENABLE = 1 << 25
    RXDCTL_VME = 1 << 30
    SRRCTL_BSIZEPKT_MASK = 0x1F    # packet buffer size in 1 KB units
    SRRCTL_BSIZEPKT_SHIFT = 10     # bytes = field << 10
    SRRCTL_BSIZEHDR_MASK = 0x3F00  # header buffer size in 64 B units
    SRRCTL_DESCTYPE_MASK = 0x7 << 25
    SRRCTL_DESCTYPE_LEGACY = 0 << 25
    SRRCTL_DESCTYPE_ADV_ONEBUF = 1 << 25
    SRRCTL_DROP_EN = 1 << 28
    RXPBSIZE_SHIFT = 10            # RXPBSIZE holds the size in KB at bits 19:10

# ---------------------------------------------------------------- 8.2.3.9 Transmit
cpdef enum Transmit:
    DMATXCTL = 0x04A80
    DTXMXSZRQ = 0x08100
    MTQC = 0x08120

cpdef enum TransmitBits:
    DMATXCTL_TE = 1 << 0           # transmit enable
    TXDCTL_ENABLE = 1 << 25
    TXDCTL_SWFLSH = 1 << 26
    TXDCTL_PTHRESH_SHIFT = 0
    TXDCTL_HTHRESH_SHIFT = 8
    TXDCTL_WTHRESH_SHIFT = 16
    TDWBAL_HEAD_WB_EN = 1 << 0

# ---------------------------------------------------------------- 8.2.3.10 DCB
cpdef enum Dcb:
    RTTDCS = 0x04900
    RTRPCS = 0x02430

cpdef enum DcbBits:
    RTTDCS_ARBDIS = 1 << 6         # disable the TX arbiter while configuring

# ---------------------------------------------------------------- 8.2.3.22 MAC
cpdef enum Mac:
    HLREG0 = 0x04240
    HLREG1 = 0x04244
    MFLCN = 0x04294
    MAXFRS = 0x04268
    AUTOC = 0x042A0
    LINKS = 0x042A4
    AUTOC2 = 0x042A8

cpdef enum MacBits:
    HLREG0_TXCRCEN = 1 << 0
    HLREG0_RXCRCSTRP = 1 << 1
    HLREG0_JUMBOEN = 1 << 2
    HLREG0_TXPADEN = 1 << 10
    HLREG0_LPBK = 1 << 15
    MAXFRS_MFS_SHIFT = 16
    AUTOC_FLU = 1 << 0             # force link up
    AUTOC_AN_RESTART = 1 << 12
    AUTOC_LMS_SHIFT = 13
    AUTOC_LMS_MASK = 0x7 << 13
    AUTOC_LMS_10G_SERIAL = 0x3 << 13
    AUTOC_LMS_KX4_KX_KR = 0x4 << 13
    LINKS_LINK_STATUS = 1 << 7
    LINKS_SPEED_MASK = 0x3 << 28
    LINKS_SPEED_100M = 0x1 << 28
    LINKS_SPEED_1G = 0x2 << 28
    LINKS_SPEED_10G = 0x3 << 28
    LINKS_UP = 1 << 30
    LINKS_KX_AN_COMP = 0x80000000

# ---------------------------------------------------------------- 8.2.3.23 Statistics
# All clear on read. 64-bit counters are a low/high pair; reading the low half latches the
# high half.
cpdef enum Statistics:
    CRCERRS = 0x04000
    ILLERRC = 0x04004
    ERRBC = 0x04008
    MLFC = 0x04034
    MRFC = 0x04038
    RLEC = 0x04040
    PRC64 = 0x0405C
    PRC127 = 0x04060
    PRC255 = 0x04064
    PRC511 = 0x04068
    PRC1023 = 0x0406C
    PRC1522 = 0x04070
    GPRC = 0x04074
    BPRC = 0x04078
    MPRC = 0x0407C
    GPTC = 0x04080
    GORCL = 0x04088
    GORCH = 0x0408C
    GOTCL = 0x04090
    GOTCH = 0x04094
    RUC = 0x040A4
    RFC = 0x040A8
    ROC = 0x040AC
    RJC = 0x040B0
    TORL = 0x040C0
    TORH = 0x040C4
    TPR = 0x040D0
    TPT = 0x040D4
    PTC64 = 0x040D8
    PTC127 = 0x040DC
    PTC255 = 0x040E0
    PTC511 = 0x040E4
    PTC1023 = 0x040E8
    PTC1522 = 0x040EC
    MPTC = 0x040F0
    BPTC = 0x040F4
    RXNFGPC = 0x041B0
    RXDGPC = 0x02F50
    TXDGPC = 0x087A0

# ---------------------------------------------------------------- 7.1.6 / 7.2.3 descriptors
cpdef enum DescriptorBits:
    RXDADV_STAT_DD = 1 << 0        # status_error word (write-back QW1 bits 31:0)
    RXDADV_STAT_EOP = 1 << 1
    RXDADV_STAT_VP = 1 << 3
    RXDADV_STAT_IPCS = 1 << 6      # IPv4 header checksum was checked
    RXDADV_ERR_IPE = 0x80000000       # ... and was wrong
    RXDADV_ERR_MASK = 0xFFF00000
    RXDADV_RSSTYPE_MASK = 0xF      # pkt_info word (write-back QW0 bits 31:0)
    RXDADV_RSSTYPE_NONE = 0
    RXDADV_RSSTYPE_IPV4_TCP = 1
    RXDADV_RSSTYPE_IPV4 = 2
    RXDADV_RSSTYPE_IPV6_TCP = 3
    RXDADV_RSSTYPE_IPV6 = 5
    RXDADV_RSSTYPE_IPV4_UDP = 7
    RXDADV_RSSTYPE_IPV6_UDP = 8
    RXDADV_PKTTYPE_IPV4 = 1 << 4
    RXDADV_PKTTYPE_IPV6 = 1 << 6
    RXDADV_PKTTYPE_TCP = 1 << 8
    RXDADV_PKTTYPE_UDP = 1 << 9
    RXD_STAT_DD = 1 << 0           # legacy write-back status byte (QW1 bits 39:32)
    RXD_STAT_EOP = 1 << 1
    TXD_DTALEN_MASK = 0xFFFF       # cmd_type_len word (QW1 bits 31:0)
    TXD_DTYP_MASK = 0xF << 20
    TXD_DTYP_CTXT = 0x2 << 20
    TXD_DTYP_DATA = 0x3 << 20
    TXD_CMD_EOP = 1 << 24
    TXD_CMD_IFCS = 1 << 25
    TXD_CMD_RS = 1 << 27
    TXD_CMD_DEXT = 1 << 29
    TXD_STAT_DD = 1 << 0           # olinfo_status word (QW1 bits 63:32)
    TXD_PAYLEN_SHIFT = 14

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

cpdef enum Limits:
    BAR0_SIZE = 0x20000                # 128 KB memory CSR space
    NUM_RX_QUEUES = 128
    NUM_TX_QUEUES = 128
    NUM_RSS_QUEUES = 16
    NUM_PACKET_BUFFERS = 8
    NUM_RAR = 128
    RETA_ENTRIES = 128
    RSS_KEY_BYTES = 40
    RING_ALIGN = 128                   # RDBAL/TDBAL and RDLEN/TDLEN granularity
    DESC_SIZE = 16
    MIN_FRAME = 64                     # with FCS
    MAX_FRAME = 1518                   # with FCS, MAXFRS reset value
    FCS_LEN = 4

# ---------------------------------------------------------------- per-index registers
# Queue registers live in two ranges: queues 0..63 at 0x01000 (RX) and 64..127 at 0x0D000.
# SRRCTL and DCA_RXCTRL of queues 0..15 also answer at their 82598-compatible aliases.

cdef int _index(int i, int n, str name) except -1

cpdef inline int _rxq(int i, int base_lo, int base_hi) except -1:
    return base_lo + 0x40 * i if i < 64 else base_hi + 0x40 * (i - 64)

cpdef inline int RDBAL(int i) except -1:
    return _rxq(_index(i, 128, "RDBAL"), 0x01000, 0x0D000)
cpdef inline int RDBAH(int i) except -1:
    return _rxq(_index(i, 128, "RDBAH"), 0x01004, 0x0D004)
cpdef inline int RDLEN(int i) except -1:
    return _rxq(_index(i, 128, "RDLEN"), 0x01008, 0x0D008)
cpdef inline int DCA_RXCTRL(int i) except -1:
    return _rxq(_index(i, 128, "DCA_RXCTRL"), 0x0100C, 0x0D00C)
cpdef inline int RDH(int i) except -1:
    return _rxq(_index(i, 128, "RDH"), 0x01010, 0x0D010)
cpdef inline int SRRCTL(int i) except -1:
    return _rxq(_index(i, 128, "SRRCTL"), 0x01014, 0x0D014)
cpdef inline int RDT(int i) except -1:
    return _rxq(_index(i, 128, "RDT"), 0x01018, 0x0D018)
cpdef inline int RXDCTL(int i) except -1:
    return _rxq(_index(i, 128, "RXDCTL"), 0x01028, 0x0D028)
cpdef inline int SRRCTL_ALIAS(int i) except -1:
    return 0x02100 + 4 * _index(i, 16, "SRRCTL_ALIAS")
cpdef inline int DCA_RXCTRL_ALIAS(int i) except -1:
    return 0x02200 + 4 * _index(i, 16, "DCA_RXCTRL_ALIAS")

cpdef inline int TDBAL(int i) except -1:
    return 0x06000 + 0x40 * _index(i, 128, "TDBAL")
cpdef inline int TDBAH(int i) except -1:
    return 0x06004 + 0x40 * _index(i, 128, "TDBAH")
cpdef inline int TDLEN(int i) except -1:
    return 0x06008 + 0x40 * _index(i, 128, "TDLEN")
cpdef inline int TDH(int i) except -1:
    return 0x06010 + 0x40 * _index(i, 128, "TDH")
cpdef inline int TDT(int i) except -1:
    return 0x06018 + 0x40 * _index(i, 128, "TDT")
cpdef inline int TXDCTL(int i) except -1:
    return 0x06028 + 0x40 * _index(i, 128, "TXDCTL")
cpdef inline int TDWBAL(int i) except -1:
    return 0x06038 + 0x40 * _index(i, 128, "TDWBAL")
cpdef inline int TDWBAH(int i) except -1:
    return 0x0603C + 0x40 * _index(i, 128, "TDWBAH")

cpdef inline int RXPBSIZE(int i) except -1:
    return 0x03C00 + 4 * _index(i, 8, "RXPBSIZE")
cpdef inline int TXPBSIZE(int i) except -1:
    return 0x0CC00 + 4 * _index(i, 8, "TXPBSIZE")
cpdef inline int RAL(int i) except -1:
    return 0x0A200 + 8 * _index(i, 128, "RAL")
cpdef inline int RAH(int i) except -1:
    return 0x0A204 + 8 * _index(i, 128, "RAH")
cpdef inline int MTA(int i) except -1:
    return 0x05200 + 4 * _index(i, 128, "MTA")
cpdef inline int RETA(int i) except -1:
    return 0x05C00 + 4 * _index(i, 32, "RETA")
cpdef inline int RSSRK(int i) except -1:
    return 0x05C80 + 4 * _index(i, 10, "RSSRK")
cpdef inline int IVAR(int i) except -1:
    return 0x00900 + 4 * _index(i, 64, "IVAR")
cpdef inline int EIMS_EX(int i) except -1:
    return 0x00AA0 + 4 * _index(i, 2, "EIMS_EX")
cpdef inline int EIMC_EX(int i) except -1:
    return 0x00AB0 + 4 * _index(i, 2, "EIMC_EX")
cpdef inline int PSRTYPE(int i) except -1:
    return 0x0EA00 + 4 * _index(i, 64, "PSRTYPE")

# 8.2.3.23 per-queue and per-packet-buffer statistics
cpdef inline int MPC(int i) except -1:
    return 0x03FA0 + 4 * _index(i, 8, "MPC")
cpdef inline int RNBC(int i) except -1:
    return 0x03FC0 + 4 * _index(i, 8, "RNBC")
cpdef inline int QPRC(int i) except -1:
    return 0x01030 + 0x40 * _index(i, 16, "QPRC")
cpdef inline int QBRC_L(int i) except -1:
    return 0x01034 + 0x40 * _index(i, 16, "QBRC_L")
cpdef inline int QBRC_H(int i) except -1:
    return 0x01038 + 0x40 * _index(i, 16, "QBRC_H")
cpdef inline int QPRDC(int i) except -1:
    return 0x01430 + 0x40 * _index(i, 16, "QPRDC")
cpdef inline int QPTC(int i) except -1:
    return 0x08680 + 4 * _index(i, 16, "QPTC")
cpdef inline int QBTC_L(int i) except -1:
    return 0x08700 + 8 * _index(i, 16, "QBTC_L")
cpdef inline int QBTC_H(int i) except -1:
    return 0x08704 + 8 * _index(i, 16, "QBTC_H")
cpdef inline int RQSMR(int i) except -1:    # queue -> statistics index, 4 RX queues per register
    return 0x02300 + 4 * _index(i, 32, "RQSMR")
cpdef inline int TQSM(int i) except -1:     # the same for TX queues
    return 0x08600 + 4 * _index(i, 32, "TQSM")
