from libc.stdint cimport uint32_t, int64_t
from wirecap.sim._state cimport DeviceState

# What a register does when read or written: one handler per BAR0 word (DeviceState.handler).
cdef enum:
    H_NONE = 0          # not a register: reads 0, writes ignored (an error when strict)
    # storage with the access mode the register table declares (regfile.MODES)
    H_RW, H_RO, H_WO, H_RC, H_RCW1C, H_W1C, H_RWS, H_RC64L, H_RC64H
    # registers whose behaviour the model gives
    H_CTRL, H_STATUS, H_EEC, H_EERD, H_SWSM, H_EICR, H_EICS, H_EIMS, H_EIMC, H_EIMC_EX
    H_RDRXCTL, H_AUTOC, H_LINKS, H_ANLP1
    H_STAT32, H_STATLO, H_STATHI
    H_RDH, H_RDT, H_RXDCTL, H_SRRCTL
    H_TDH, H_TDT, H_TXDCTL, H_TDWBAL
    H_RETA, H_RSSRK, H_MRQC, H_RQSMR, H_TQSM, H_RAR

cdef int reg_read(DeviceState s, uint32_t off, uint32_t* out) noexcept nogil
cdef int reg_write(DeviceState s, uint32_t off, uint32_t val) noexcept nogil
cdef void reset(DeviceState s, int64_t now) noexcept nogil
