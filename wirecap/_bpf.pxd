# Packet filters: compiled by libpcap, run by libpcap's bpf_filter without the GIL.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "<pcap/pcap.h>" nogil:
    ctypedef struct pcap_t:
        pass

    struct bpf_insn:
        unsigned short code
        unsigned char jt
        unsigned char jf
        unsigned int k

    struct bpf_program:
        unsigned int bf_len
        bpf_insn* bf_insns

    pcap_t* pcap_open_dead(int linktype, int snaplen)
    void pcap_close(pcap_t* p)
    char* pcap_geterr(pcap_t* p)
    int pcap_compile(pcap_t* p, bpf_program* fp, const char* expr, int optimize,
                     unsigned int netmask)
    void pcap_freecode(bpf_program* fp)
    unsigned int bpf_filter(const bpf_insn* pc, const unsigned char* pkt, unsigned int wirelen,
                            unsigned int buflen)
    char* bpf_image(const bpf_insn* insn, int n)


cdef class Filter:
    cdef readonly str expression
    cdef readonly int linktype, snaplen
    cdef bpf_program _prog          # owned: freed with pcap_freecode in __dealloc__

    cdef bint match(self, const uint8_t* pkt, uint32_t wirelen, uint32_t caplen) noexcept nogil
    cdef uint32_t match_many(self, const uint8_t* base, const uint32_t* offsets,
                             const uint16_t* caplens, const uint32_t* wire_lens, uint32_t n,
                             uint8_t* out) noexcept nogil
