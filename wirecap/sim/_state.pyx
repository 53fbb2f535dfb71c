"""The state of one model 82599 port, shared by its register file, receive path and transmit
path (each a module of functions over it); allocation and release only. Also the base of
what a port's clock delivers (Arrivals: the wire implements it)."""
from libc.stdlib cimport calloc, malloc, free

cdef extern from "<pthread.h>" nogil:
    int pthread_mutex_init(pthread_mutex_t*, void*)
    int pthread_mutex_destroy(pthread_mutex_t*)

from wirecap.sim._counters cimport C_COUNT, D_COUNT
from wirecap.sim._iommu cimport Iommu


cdef class Arrivals:
    cdef uint64_t deliver(self, DeviceState s, int64_t upto) noexcept nogil:
        s.next_due = NOTHING_DUE
        return 0

    cdef void settle(self, DeviceState s) noexcept nogil:
        pass


cdef class DeviceState:

    def __cinit__(self, int index=0, Iommu iommu=None, *args, **kw):
        self.index = index
        self.iommu = iommu if iommu is not None else Iommu()
        self.regs = <uint32_t*>calloc(NWORDS, 4)
        self.handler = <uint8_t*>calloc(NWORDS, 1)
        self.qidx = <uint8_t*>calloc(NWORDS, 1)
        self.canon = <uint32_t*>calloc(NWORDS, 4)
        self.reset_val = <uint32_t*>calloc(NWORDS, 4)
        self.wmask = <uint32_t*>calloc(NWORDS, 4)
        self.unknown_log = <uint32_t*>calloc(3 * UNKNOWN_LOG, 4)
        self.stat = <uint64_t*>calloc(C_COUNT, 8)
        self.latch = <uint32_t*>calloc(NWORDS, 4)
        self.diag = <uint64_t*>calloc(D_COUNT, 8)
        self.pb = <uint8_t*>malloc(PB_MAX)
        self.pb_cap_entries = PB_MAX // 60 + 1
        self.pbq = <PbEntry*>calloc(self.pb_cap_entries, sizeof(PbEntry))
        self.txbuf = <uint8_t*>malloc(TXBUF_MAX)
        if not (self.regs and self.handler and self.qidx and self.canon and self.stat and
                self.latch and self.diag and self.pb and self.pbq and self.txbuf and
                self.reset_val and self.wmask and self.unknown_log):
            raise MemoryError("82599 model state")
        self.reset_delay_ns = 1000000       # EEC.ARD / RDRXCTL.DMAIDONE 1 ms after a reset
        self.link_delay_ns = 2000000        # auto-negotiation takes 2 ms
        self.peer = None
        self.arrivals = None
        self.next_due = NOTHING_DUE
        pthread_mutex_init(&self.clock_lock, NULL)

    def __dealloc__(self):
        free(self.regs); free(self.handler); free(self.qidx); free(self.canon)
        free(self.reset_val); free(self.wmask); free(self.unknown_log)
        free(self.stat); free(self.latch); free(self.diag); free(self.pb); free(self.pbq)
        free(self.txbuf); free(self.sink_buf); free(self.sink_lens); free(self.trace)
        pthread_mutex_destroy(&self.clock_lock)
