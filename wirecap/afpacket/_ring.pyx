"""TPACKET_V3 receive rings as WireCAP ring buffer pools, and the transmit socket.

One ring per receive queue; one ring block is one chunk. The kernel fills a block, retires it
when it is full or after the retire timeout (the flush timeout) and hands it to user space by
setting TP_STATUS_USER in the block header: ``capture`` walks that block's packets into the
per-packet metadata and delivers the whole block by reference. The shared ring checks the
handle on recycle; ``retire`` gives the block back by writing TP_STATUS_KERNEL.

Blocks may come back in any order. The kernel fills blocks strictly in ring order and only
ever looks at the one block it wants next: if the application still holds it, the kernel
freezes the ring and drops (counted in tp_drops) until exactly that block comes back. So a
block released early simply waits, already free, for the kernel's turn; nothing has to be
deferred on our side.

Struct layouts and constants come from <linux/if_packet.h>, never written by hand.
"""
import mmap as _mmap
import os

import numpy as np
cimport numpy as cnp
from libc.errno cimport errno, ENOENT
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset
from posix.unistd cimport close

from wirecap._ring cimport (RxRing, Chunk, Delivery, CH_ARMED, CH_CAPTURED, WAIT_RECYCLE,
                            packet_bytes)
from wirecap.includes.atomics cimport ld32, st32
from wirecap.includes.clocks cimport mono_ns
from wirecap.includes.packet cimport packet_index
from wirecap.includes.poll cimport pollfd, poll, POLLERR

cdef extern from *:
    void prefetch "__builtin_prefetch"(const void* p) nogil
from wirecap.errors import WirecapError

cnp.import_array()

cdef extern from "<sys/socket.h>" nogil:
    int AF_PACKET, SOCK_RAW, SOCK_DGRAM, SOL_SOCKET, SO_ATTACH_FILTER, SO_DETACH_FILTER
    int SO_ERROR, SOL_PACKET
    int MSG_DONTWAIT
    ctypedef unsigned int socklen_t
    struct sockaddr:
        pass
    int socket(int domain, int type, int protocol)
    int bind(int fd, const sockaddr* addr, socklen_t len)
    int setsockopt(int fd, int level, int name, const void* val, socklen_t len)
    int getsockopt(int fd, int level, int name, void* val, socklen_t* len)
    ssize_t send(int fd, const void* buf, size_t n, int flags)

cdef extern from "<arpa/inet.h>" nogil:
    uint16_t htons(uint16_t)
    uint32_t htonl(uint32_t)

cdef extern from "<linux/if_ether.h>":
    int ETH_P_ALL

cdef extern from "<linux/filter.h>":
    struct sock_filter:
        uint16_t code
        uint8_t jt
        uint8_t jf
        uint32_t k
    struct sock_fprog:
        unsigned short len
        sock_filter* filter
    int BPF_RET, BPF_K, BPF_LD, BPF_W, BPF_ABS, BPF_JMP, BPF_JEQ
    int SKF_AD_OFF, SKF_AD_PKTTYPE, SKF_AD_IFINDEX

cdef extern from "<pcap/sll.h>":
    # the cooked headers libpcap defines for captures on "any" (link types LINUX_SLL, _SLL2)
    int SLL_HDR_LEN, SLL2_HDR_LEN, SLL_ADDRLEN
    struct sll_header:
        uint16_t sll_pkttype
        uint16_t sll_hatype
        uint16_t sll_halen
        uint8_t sll_addr[8]
        uint16_t sll_protocol
    struct sll2_header:
        uint16_t sll2_protocol
        uint16_t sll2_reserved_mbz
        uint32_t sll2_if_index
        uint16_t sll2_hatype
        uint8_t sll2_pkttype
        uint8_t sll2_halen
        uint8_t sll2_addr[8]

cdef extern from "<linux/if_packet.h>":
    struct sockaddr_ll:
        unsigned short sll_family
        uint16_t sll_protocol
        int sll_ifindex
        unsigned short sll_hatype
        unsigned char sll_pkttype
        unsigned char sll_halen
        unsigned char sll_addr[8]
    struct packet_mreq:
        int mr_ifindex
        unsigned short mr_type
        unsigned short mr_alen
    struct tpacket_req3:
        unsigned int tp_block_size
        unsigned int tp_block_nr
        unsigned int tp_frame_size
        unsigned int tp_frame_nr
        unsigned int tp_retire_blk_tov
        unsigned int tp_sizeof_priv
        unsigned int tp_feature_req_word
    struct tpacket_stats_v3:
        unsigned int tp_packets
        unsigned int tp_drops
        unsigned int tp_freeze_q_cnt
    struct tpacket_hdr_v1:
        uint32_t block_status
        uint32_t num_pkts
        uint32_t offset_to_first_pkt
        uint64_t seq_num
    union tpacket_bd_header_u:
        tpacket_hdr_v1 bh1
    struct tpacket_block_desc:
        tpacket_bd_header_u hdr
    struct tpacket_hdr_variant1:
        uint32_t tp_rxhash
    struct tpacket3_hdr:
        uint32_t tp_next_offset
        uint32_t tp_sec
        uint32_t tp_nsec
        uint32_t tp_snaplen
        uint32_t tp_len
        uint32_t tp_status
        uint16_t tp_mac
        tpacket_hdr_variant1 hv1
    int PACKET_VERSION, TPACKET_V3, PACKET_RX_RING, PACKET_STATISTICS, PACKET_FANOUT
    int PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC, PACKET_IGNORE_OUTGOING, PACKET_RESERVE
    int PACKET_OUTGOING
    int PACKET_FANOUT_HASH, PACKET_FANOUT_LB, PACKET_FANOUT_CPU, PACKET_FANOUT_ROLLOVER
    int PACKET_FANOUT_RND, PACKET_FANOUT_QM, PACKET_FANOUT_FLAG_DEFRAG
    int PACKET_FANOUT_FLAG_UNIQUEID
    int TP_STATUS_KERNEL, TP_STATUS_USER, TP_STATUS_BLK_TMO, TP_FT_REQ_FILL_RXHASH
    int TPACKET3_HDRLEN, TPACKET_ALIGNMENT
    size_t TPACKET_ALIGN(size_t)

FANOUT = {"hash": PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG, "lb": PACKET_FANOUT_LB,
          "cpu": PACKET_FANOUT_CPU, "rollover": PACKET_FANOUT_ROLLOVER,
          "rnd": PACKET_FANOUT_RND, "qm": PACKET_FANOUT_QM}
PAGE_SIZE = _mmap.PAGESIZE
# the smallest room a packet takes in a block: its header, the sockaddr_ll and the MAC header
# padding the kernel reserves (tpacket_rcv: netoff = TPACKET_ALIGN(hdrlen + max(maclen, 16)))
MIN_SLOT = TPACKET_ALIGN(TPACKET3_HDRLEN + 16)
# where the kernel puts a packet's sockaddr_ll: right after its aligned header (tpacket_rcv)
cdef size_t SLL_OFFSET = TPACKET_ALIGN(sizeof(tpacket3_hdr))
BLOCK_HEADER = TPACKET_ALIGN(sizeof(tpacket_block_desc))
# the largest block a signed int holds: the kernel refuses tp_block_size <= 0 as an int
MAX_BLOCK = (1 << 31) - PAGE_SIZE


def slot(uint32_t frame_len):
    """Bytes a frame of ``frame_len`` (MAC header included, Ethernet) takes in a block."""
    cdef size_t netoff = TPACKET_ALIGN(TPACKET3_HDRLEN + 16)
    return TPACKET_ALIGN(netoff - 14 + frame_len)


def _os_error(what, int err):
    return OSError(err, f"{what}: {os.strerror(err)}")


# link types of the frames a ring hands out (DLT_*): Ethernet as the interface gave them, or
# on a cooked socket (every interface, "any") libpcap's cooked headers in front of each packet
cdef enum:
    EN10MB = 1
    LINUX_SLL = 113
    LINUX_SLL2 = 276
DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2 = EN10MB, LINUX_SLL, LINUX_SLL2
COOKED_LEN = {DLT_LINUX_SLL: SLL_HDR_LEN, DLT_LINUX_SLL2: SLL2_HDR_LEN}


def open_socket(bint cooked=False):
    """An AF_PACKET socket that receives nothing yet (protocol 0 until bind); ``cooked``:
    packets start at their network header (SOCK_DGRAM), the link header is left out."""
    cdef int fd = socket(AF_PACKET, SOCK_DGRAM if cooked else SOCK_RAW, 0)
    if fd < 0:
        raise _os_error("socket(AF_PACKET)", errno)
    return fd


def bind_socket(int fd, int ifindex, bint receive):
    cdef sockaddr_ll sll
    memset(&sll, 0, sizeof(sll))
    sll.sll_family = AF_PACKET
    sll.sll_protocol = htons(ETH_P_ALL) if receive else 0
    sll.sll_ifindex = ifindex
    if bind(fd, <sockaddr*>&sll, sizeof(sll)) < 0:
        raise _os_error(f"bind to interface {ifindex}", errno)


def set_promiscuous(int fd, int ifindex):
    """Promiscuous while this socket lives (the kernel counts memberships per socket)."""
    cdef packet_mreq mr
    memset(&mr, 0, sizeof(mr))
    mr.mr_ifindex, mr.mr_type = ifindex, PACKET_MR_PROMISC
    if setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0:
        raise _os_error("PACKET_ADD_MEMBERSHIP promiscuous", errno)


def attach_filter(int fd, program):
    """SO_ATTACH_FILTER with ``struct sock_filter[]`` bytes; None detaches."""
    cdef sock_fprog prog
    cdef const uint8_t[::1] code
    cdef int unused = 0                 # the kernel wants an int-sized option even here
    if program is None:
        if setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof(unused)) < 0 and \
                errno != ENOENT:
            raise _os_error("SO_DETACH_FILTER", errno)   # ENOENT: none was attached
        return
    code = program
    prog.len = code.shape[0] // sizeof(sock_filter)
    prog.filter = <sock_filter*>&code[0]
    if setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0:
        raise _os_error("SO_ATTACH_FILTER", errno)


def _drop_all():
    # `ret #0`: the socket accepts nothing (used until every fanout member has joined)
    cdef sock_filter insn
    insn.code, insn.jt, insn.jf, insn.k = BPF_RET | BPF_K, 0, 0, 0
    return bytes((<uint8_t*>&insn)[:sizeof(insn)])


DROP_ALL = _drop_all()


def cooked_program(int loopback, uint32_t snaplen):
    """For a socket on every interface: keep ``snaplen`` bytes of each packet, but skip what
    interface ``loopback`` sends, which comes back as received (libpcap skips it too)."""
    cdef sock_filter insns[6]
    cdef int i
    code = ((BPF_LD | BPF_W | BPF_ABS, 0, 0, <uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE)),
            (BPF_JMP | BPF_JEQ | BPF_K, 0, 2, PACKET_OUTGOING),
            (BPF_LD | BPF_W | BPF_ABS, 0, 0, <uint32_t>(SKF_AD_OFF + SKF_AD_IFINDEX)),
            (BPF_JMP | BPF_JEQ | BPF_K, 1, 0, <uint32_t>loopback),
            (BPF_RET | BPF_K, 0, 0, snaplen),
            (BPF_RET | BPF_K, 0, 0, 0))
    for i in range(6):
        insns[i].code, insns[i].jt, insns[i].jf, insns[i].k = code[i]
    return bytes((<uint8_t*>insns)[:sizeof(insns)])


def read_stats(int fd):
    """(packets, drops, freezes) since the last call: PACKET_STATISTICS clears on read."""
    cdef tpacket_stats_v3 st
    cdef socklen_t n = sizeof(st)
    if getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &n) < 0:
        raise _os_error("PACKET_STATISTICS", errno)
    return st.tp_packets, st.tp_drops, st.tp_freeze_q_cnt


def socket_error(int fd):
    """The socket's pending error, or 0: ENETDOWN once its interface went down or was
    deleted (the kernel then unhooks the socket: nothing more arrives). Reading clears it."""
    cdef pollfd p
    cdef int err = 0
    cdef socklen_t n = sizeof(err)
    p.fd, p.events, p.revents = fd, 0, 0
    if poll(&p, 1, 0) <= 0 or not p.revents & POLLERR:
        return 0
    if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n) < 0:
        return errno
    return err


def join_fanout(int fd, int group, int mode):
    """Join fanout ``group`` (-1: a new group with an id the kernel picks); the group id."""
    cdef int arg, got
    cdef socklen_t n = sizeof(got)
    arg = (mode << 16) if group < 0 else (group | (mode << 16))
    if group < 0:
        arg |= PACKET_FANOUT_FLAG_UNIQUEID << 16
    if setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)) < 0:
        raise _os_error("PACKET_FANOUT", errno)
    if getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &got, &n) < 0:
        raise _os_error("PACKET_FANOUT (read back)", errno)
    return got & 0xFFFF


def ignore_outgoing(int fd):
    cdef int one = 1
    if setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0:
        raise _os_error("PACKET_IGNORE_OUTGOING", errno)


cdef class AfRxQueue(RxRing):
    """One TPACKET_V3 receive ring: R blocks (chunks) of ``block_size`` bytes.

    ``segment`` is the metadata capacity of a block: how many of the smallest packets fit.
    A new queue accepts nothing (a drop-all filter) until ``start()``. ``linktype``
    DLT_LINUX_SLL or _SLL2 (on a cooked socket): each packet is handed out behind that
    cooked header, built in the room the kernel leaves before it (PACKET_RESERVE), from
    the packet's sockaddr_ll, as libpcap builds it.
    """
    cdef readonly int fd, linktype
    cdef uint32_t cooked_len
    cdef readonly uint32_t block_size, tov_ms
    cdef uint8_t* ring
    cdef object _map
    cdef uint32_t cur
    cdef uint64_t* seen_seq             # per block: the kernel's seq_num when last captured
    cdef int64_t drain_deadline         # while capture_all waits out open blocks (stop)
    cdef readonly bint started
    cdef object _program

    def __init__(self, device, int index, int fd, uint32_t block_size, uint32_t chunks,
                 uint32_t tov_ms, int linktype=DLT_EN10MB):
        cdef tpacket_req3 req
        cdef int version = TPACKET_V3
        cdef unsigned int reserve = SLL2_HDR_LEN      # room for the longer cooked header
        self.fd = -1
        self.device, self.index, self.block_size, self.chunks = device, index, block_size, chunks
        self.tov_ms = tov_ms
        self.seen_seq = <uint64_t*>calloc(chunks, sizeof(uint64_t))
        if self.seen_seq == NULL:
            raise MemoryError("block table")
        if setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) < 0:
            raise _os_error("PACKET_VERSION TPACKET_V3", errno)
        self.set_linktype(linktype)
        if linktype != DLT_EN10MB and \
                setsockopt(fd, SOL_PACKET, PACKET_RESERVE, &reserve, sizeof(reserve)) < 0:
            raise _os_error("PACKET_RESERVE", errno)
        attach_filter(fd, DROP_ALL)
        memset(&req, 0, sizeof(req))
        # V3 ignores frames; the kernel still checks frames_per_block * block_nr == frame_nr
        req.tp_block_size, req.tp_block_nr = block_size, chunks
        req.tp_frame_size, req.tp_frame_nr = block_size, chunks
        req.tp_retire_blk_tov = tov_ms
        req.tp_feature_req_word = TP_FT_REQ_FILL_RXHASH
        if setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0:
            raise _os_error("PACKET_RX_RING", errno)
        self._map = _mmap.mmap(fd, <size_t>block_size * chunks, _mmap.MAP_SHARED,
                               _mmap.PROT_READ | _mmap.PROT_WRITE)
        self.fd = fd
        self.pool_array = np.frombuffer(self._map, dtype=np.uint8)
        self.pool = self.ring = <uint8_t*>cnp.PyArray_DATA(self.pool_array)
        self.max_deliveries = chunks            # a block is delivered whole, once
        self._columns(chunks, (block_size - BLOCK_HEADER) // MIN_SLOT, block_size, None)
        cdef uint32_t b
        for b in range(chunks):                 # every block starts with the kernel
            self.ch[b].state = CH_ARMED
        self.nfree, self.narmed = 0, chunks

    def __dealloc__(self):
        free(self.seen_seq)
        if self.fd >= 0:
            close(self.fd)

    # ------------------------------------------------------------------ the fast path
    cdef int capture(self, Delivery* out, int64_t now) noexcept nogil:
        """1 with ``out`` filled if the kernel has retired the next block, else 0."""
        cdef uint32_t b = self.cur, i, n, off
        cdef size_t base, k
        cdef tpacket_block_desc* bd
        cdef tpacket3_hdr* h
        cdef uint32_t st
        cdef uint64_t nbytes = 0
        cdef sockaddr_ll* sll
        if self.ring == NULL or self.ch[b].state == CH_CAPTURED:   # closed, or still held
            return 0
        base = <size_t>b * self.block_size
        bd = <tpacket_block_desc*>(self.ring + base)
        st = ld32(&bd.hdr.bh1.block_status)
        if not st & TP_STATUS_USER:
            return 0
        n = bd.hdr.bh1.num_pkts
        if n > self.segment:                # cannot happen: segment counts the smallest slots
            n = self.segment
        off = bd.hdr.bh1.offset_to_first_pkt
        for i in range(n):
            h = <tpacket3_hdr*>(self.ring + base + off)
            # each header's address comes from the one before: fetch lines ahead so that the
            # misses on memory the kernel wrote overlap instead of queueing one by one
            prefetch(<uint8_t*>h + 512)
            prefetch(<uint8_t*>h + 576)
            k = packet_index(b, self.segment, 0, i)
            self.offset[k] = off + h.tp_mac
            self.caplen[k] = h.tp_snaplen if h.tp_snaplen < 0xFFFF else 0xFFFF
            self.wire_len[k] = h.tp_len
            self.status[k] = h.tp_status
            # the sockaddr_ll follows the header: its packet type (PACKET_HOST, _OUTGOING...)
            sll = <sockaddr_ll*>(<uint8_t*>h + SLL_OFFSET)
            self.info[k] = sll.sll_pkttype
            if self.cooked_len:
                self.cook(<uint8_t*>h + h.tp_mac - self.cooked_len, sll)
                self.offset[k] -= self.cooked_len
                self.caplen[k] = min(h.tp_snaplen + self.cooked_len, 0xFFFF)
                self.wire_len[k] += self.cooked_len
            self.rss[k] = h.hv1.tp_rxhash
            self.ts[k] = <uint64_t>h.tp_sec * 1000000000 + h.tp_nsec
            nbytes += h.tp_snaplen
            off += h.tp_next_offset
        self.seen_seq[b] = bd.hdr.bh1.seq_num
        self.cur = b + 1 if b + 1 < self.chunks else 0
        self.ch[b].gen += 1
        self.ch[b].state = CH_CAPTURED
        self.narmed -= 1
        self.ncaptured += 1
        if self.ncaptured == self.chunks:   # the kernel has no block left: it drops
            self.pool_empty_events += 1
        if st & TP_STATUS_BLK_TMO:
            self.flushes += 1
        self.bytes += nbytes
        self.deliver(out, b, 0, n)
        return 1

    cdef void cook(self, uint8_t* at, const sockaddr_ll* sll) noexcept nogil:
        """The cooked header of the packet ``sll`` describes, at ``at`` (network order)."""
        cdef sll_header* v1
        cdef sll2_header* v2
        cdef uint8_t halen = sll.sll_halen if sll.sll_halen < SLL_ADDRLEN else SLL_ADDRLEN
        memset(at, 0, self.cooked_len)
        if self.linktype == LINUX_SLL:
            v1 = <sll_header*>at
            v1.sll_pkttype, v1.sll_hatype = htons(sll.sll_pkttype), htons(sll.sll_hatype)
            v1.sll_halen, v1.sll_protocol = htons(halen), sll.sll_protocol
            memcpy(v1.sll_addr, sll.sll_addr, halen)
        else:
            v2 = <sll2_header*>at
            v2.sll2_protocol, v2.sll2_if_index = sll.sll_protocol, htonl(sll.sll_ifindex)
            v2.sll2_hatype, v2.sll2_pkttype = htons(sll.sll_hatype), sll.sll_pkttype
            v2.sll2_halen = halen
            memcpy(v2.sll2_addr, sll.sll_addr, halen)

    cdef void retire(self, uint32_t b) noexcept nogil:
        self.ch[b].state = CH_ARMED
        self.ncaptured -= 1
        self.narmed += 1
        st32(&(<tpacket_block_desc*>(self.ring + <size_t>b * self.block_size)).hdr.bh1.block_status,
             TP_STATUS_KERNEL)

    cdef int wait_fd(self) noexcept nogil:
        # the socket wakes an edge-triggered epoll each time the kernel retires a block (its
        # level is no guide: it reads ready while the application holds the newest block).
        # If the block the kernel fills next is still the application's, the kernel waits
        # for it too (and its drops would wake us for nothing): wait for the recycle
        if self.ring == NULL or self.ch[self.cur].state == CH_CAPTURED:
            return WAIT_RECYCLE
        return self.fd

    cdef int capture_all(self, Delivery* out, int64_t now) noexcept nogil:
        """capture(); and when the block the kernel is filling holds frames but is not
        retired yet, wait for the kernel to retire it (its retire timer does so at most two
        timeouts after the block opened: user space cannot close a block). stop() drains
        the ring with this, so those frames are counted too. The waits of one drain share
        one deadline: traffic that goes on cannot hold stop() up."""
        cdef tpacket_block_desc* bd
        cdef uint32_t b
        cdef int64_t tov = self.tov_ms if self.tov_ms >= 8 else 8   # 0: the kernel's 8 ms
        if self.capture(out, now):
            return 1
        b = self.cur
        if self.ring == NULL or self.ch[b].state == CH_CAPTURED:
            self.drain_deadline = 0
            return 0
        bd = <tpacket_block_desc*>(self.ring + <size_t>b * self.block_size)
        # open, with frames: the kernel opened it again since we last took it (a new
        # seq_num), and has written into it
        if ld32(&bd.hdr.bh1.num_pkts) == 0 or bd.hdr.bh1.seq_num == self.seen_seq[b]:
            self.drain_deadline = 0
            return 0
        if self.drain_deadline == 0:
            self.drain_deadline = mono_ns() + min(2 * tov + 100, 5000) * 1000000
        while mono_ns() < self.drain_deadline:
            poll(NULL, 0, 1)
            if self.capture(out, mono_ns()):
                return 1
        self.drain_deadline = 0
        return 0

    # ------------------------------------------------------------------ Python API
    def start(self):
        """Accept packets: the kernel filter set by set_filter, or all of them."""
        self.started = True
        attach_filter(self.fd, self._program)

    def stop(self):
        """Accept nothing more; the ring keeps what it holds."""
        if self.fd >= 0:
            self.started = False
            attach_filter(self.fd, DROP_ALL)

    def set_linktype(self, int linktype):
        """DLT_LINUX_SLL or DLT_LINUX_SLL2 on a cooked ring (blocks taken from now on),
        DLT_EN10MB on the others: a ring's socket type is fixed when it is made."""
        cdef bint cooked = linktype in COOKED_LEN
        if self.fd >= 0 and cooked != (self.cooked_len != 0):
            raise ValueError(f"link type {linktype}: this ring hands out "
                             f"{'cooked packets' if self.cooked_len else 'Ethernet frames'}")
        if not cooked and linktype != DLT_EN10MB:
            raise ValueError(f"link type {linktype}: one of {DLT_EN10MB}, {DLT_LINUX_SLL}, "
                             f"{DLT_LINUX_SLL2}")
        self.linktype, self.cooked_len = linktype, COOKED_LEN.get(linktype, 0)

    def set_filter(self, program):
        """A classic BPF program (``struct sock_filter[]`` bytes, e.g. from
        wirecap._bpf.kernel_program) run by the kernel before a packet enters the ring;
        None: accept every packet."""
        self._program = program
        if self.started:
            attach_filter(self.fd, program)

    def capacity(self, uint32_t frame_len):
        """How many frames of ``frame_len`` bytes the ring holds: the longest burst it
        absorbs while the application does not read."""
        return self.chunks * ((self.block_size - BLOCK_HEADER) // slot(frame_len))

    @property
    def memory(self):
        meta, per_buffer = self.metadata_bytes
        return {"ring": 0, "pool": <size_t>self.block_size * self.chunks, "metadata": meta,
                "metadata_per_buffer": per_buffer, "pool_backing": "kernel"}

    def close(self):
        if self.ring == NULL:
            return
        self.ring = self.pool = NULL
        self.pool_array = None
        try:
            self._map.close()
        except BufferError:
            pass        # a chunk's view still uses the ring: it is unmapped when that goes
        self._map = None
        close(self.fd)
        self.fd = -1


cdef class AfTxQueue:
    """Transmit through the device's socket: one send() per frame, without the GIL."""
    cdef readonly object device
    cdef readonly int index, fd
    cdef readonly uint64_t sent, sent_bytes, failed

    def __init__(self, device, int index, int fd):
        self.device, self.index, self.fd = device, index, fd

    def close(self):
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1

    def _open(self):
        if self.fd < 0:
            raise WirecapError(f"{self.device.name} transmit queue {self.index} is closed")

    cdef int _send(self, const uint8_t* p, size_t n) noexcept nogil:
        if send(self.fd, p, n, 0) < 0:
            self.failed += 1
            return errno
        self.sent += 1
        self.sent_bytes += n
        return 0

    def send(self, frame):
        """Send a copy of ``frame`` (an Ethernet frame without FCS)."""
        cdef const uint8_t[::1] v = memoryview(frame).cast("B")
        cdef int err
        self._open()
        if v.shape[0] == 0:
            raise WirecapError("send: an empty frame")
        with nogil:
            err = self._send(&v[0], v.shape[0])
        if err:
            raise WirecapError(f"{self.device.name}: send failed: {os.strerror(err)} (a frame "
                               f"longer than the MTU plus its header is refused: EMSGSIZE)")

    def forward(self, Chunk chunk, uint32_t i, length=None):
        """Send packet i of a captured chunk (modified in place or not). The kernel copies it,
        so the chunk may be released as soon as this returns."""
        cdef RxRing q = chunk.queue
        cdef size_t k
        cdef int err
        cdef uint32_t n
        self._open()
        chunk._live()
        if i >= chunk.count:
            raise IndexError(f"packet {i} of a chunk with {chunk.count}")
        k = packet_index(chunk.index, q.segment, chunk.first, i)
        n = q.caplen[k] if length is None else length
        if not 0 < n <= q.caplen[k]:
            raise WirecapError(f"forward: length {n} must be 1..{q.caplen[k]}")
        with nogil:
            err = self._send(packet_bytes(q, chunk.index, k), n)
        if err:
            raise WirecapError(f"{self.device.name}: send failed: {os.strerror(err)}")

    def stats(self):
        return {"sent": self.sent, "bytes": self.sent_bytes, "completed": self.sent,
                "failed": self.failed, "zero_copy": 0, "in_flight": 0}
