# vfio (DESIGN §2): a PCI function bound to vfio-pci, driven from this process.
from libc.stdint cimport uint8_t, uint64_t


cdef class Container:                   # /dev/vfio/vfio: one IOMMU address space
    cdef readonly int fd
    cdef readonly str path
    cdef bint iommu_set                 # the IOMMU type is set once, after the first group joins
    cdef bint auto_close                # open_pci made it: it closes when its last group leaves
    cdef dict _groups                   # IOMMU group name -> Group attached here
    cdef dict _mapped                   # iova -> _Pinned: the buffer held while mapped


cdef class Group:                       # /dev/vfio/N: IOMMU group N, attached to a container
    cdef readonly int fd
    cdef readonly str name
    cdef readonly Container container
    cdef dict _devices                  # PCI address -> PciDevice open from this group


cdef class PciDevice:
    cdef readonly str address
    cdef readonly Group group
    cdef readonly Container container
    cdef readonly int fd
    cdef uint8_t* bar0                  # the registers, mmap'ed; NULL once closed
    cdef readonly size_t bar0_size
    cdef uint64_t config_offset         # where PCI config space lies in the device fd
