# vfio (DESIGN §2): a PCI function bound to vfio-pci, driven from this process.
from libc.stdint cimport uint8_t, uint64_t


cdef class Container:                   # /dev/vfio/vfio: one IOMMU address space
    cdef readonly int fd
    cdef readonly str path
    cdef bint iommu_set                 # the IOMMU type is set once, after the first group joins
    cdef dict _groups                   # IOMMU group name -> Group attached here
    cdef dict _mapped                   # iova -> (buffer kept alive while mapped, size)


cdef class Group:                       # /dev/vfio/N: IOMMU group N, attached to a container
    cdef readonly int fd
    cdef readonly str name
    cdef readonly Container container


cdef class PciDevice:
    cdef readonly str address
    cdef readonly Group group
    cdef readonly Container container
    cdef readonly int fd
    cdef uint8_t* bar0                  # the registers, mmap'ed; NULL once closed
    cdef readonly size_t bar0_size
    cdef uint64_t config_offset         # where PCI config space lies in the device fd
    cdef bint own_container             # open_pci made the container: close() closes it
