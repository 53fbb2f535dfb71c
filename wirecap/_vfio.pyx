"""vfio (DESIGN §2): a PCI function bound to vfio-pci, driven from this process.

/dev/vfio/vfio is a container: one IOMMU address space, where DMA memory is mapped (a
``Container`` is the ``mapper`` of a ``wirecap._dma.Domain``). /dev/vfio/N is IOMMU group N:
the devices the IOMMU cannot tell apart, which vfio hands out only together, and only when none
of them is left to a kernel driver (a "viable" group). Groups join a container; the device fd,
asked from its group, gives the device's regions: BAR0 (the registers, mmap'ed) and PCI config
space. Structs and ioctl numbers come from <linux/vfio.h>. This has run against Linux's
vfio-pci with QEMU's VT-d and e1000e (tests/vm), never on an 82599 (docs/vfio.md).

A process opens a device once, and a group joins one container: the registries below say which
handle already has it, so that a second open is refused instead of sharing a device behind its
owner's back. A device keeps its group, and a group its container, open: closing one device
never ends another's DMA mappings.
"""
import os

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE, PyBUF_SIMPLE
from libc.errno cimport errno, EACCES, EBUSY, EEXIST, ENOENT, ENOMEM, ENOSPC
from libc.stdint cimport uint16_t, uint32_t, uintptr_t
from libc.stdlib cimport free, malloc
from posix.mman cimport mmap, munmap, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE
from posix.unistd cimport close, pread, pwrite

from vfio_setup import doctor, pci
from vfio_setup.host import Host
from wirecap.errors import WirecapError

cdef extern from "<sys/ioctl.h>" nogil:
    int ioctl(int fd, unsigned long request, ...)

cdef extern from "<endian.h>" nogil:
    uint16_t le16toh(uint16_t)          # PCI config space is little-endian
    uint16_t htole16(uint16_t)

cdef extern from "<linux/pci_regs.h>":
    enum:
        PCI_COMMAND
        PCI_COMMAND_MASTER

cdef extern from "<linux/vfio.h>" nogil:
    enum:
        VFIO_API_VERSION
        VFIO_TYPE1_IOMMU
        VFIO_GROUP_FLAGS_VIABLE
        VFIO_REGION_INFO_FLAG_MMAP
        VFIO_PCI_BAR0_REGION_INDEX
        VFIO_PCI_CONFIG_REGION_INDEX
        VFIO_DMA_MAP_FLAG_READ
        VFIO_DMA_MAP_FLAG_WRITE
        VFIO_IOMMU_INFO_CAPS
        VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE
    unsigned long VFIO_GET_API_VERSION
    unsigned long VFIO_CHECK_EXTENSION
    unsigned long VFIO_SET_IOMMU
    unsigned long VFIO_GROUP_GET_STATUS
    unsigned long VFIO_GROUP_SET_CONTAINER
    unsigned long VFIO_GROUP_GET_DEVICE_FD
    unsigned long VFIO_DEVICE_GET_REGION_INFO
    unsigned long VFIO_IOMMU_MAP_DMA
    unsigned long VFIO_IOMMU_UNMAP_DMA
    unsigned long VFIO_IOMMU_GET_INFO
    struct vfio_group_status:
        uint32_t argsz
        uint32_t flags
    struct vfio_region_info:
        uint32_t argsz
        uint32_t flags
        uint32_t index
        uint64_t size
        uint64_t offset
    struct vfio_iommu_type1_dma_map:
        uint32_t argsz
        uint32_t flags
        uint64_t vaddr
        uint64_t iova
        uint64_t size
    struct vfio_iommu_type1_dma_unmap:
        uint32_t argsz
        uint32_t flags
        uint64_t iova
        uint64_t size
    struct vfio_iommu_type1_info:
        uint32_t argsz
        uint32_t flags
        uint64_t iova_pgsizes
        uint32_t cap_offset
    struct vfio_info_cap_header:
        uint16_t id
        uint16_t version
        uint32_t next
    struct vfio_iova_range:
        uint64_t start
        uint64_t end
    struct vfio_iommu_type1_info_cap_iova_range:
        vfio_info_cap_header header
        uint32_t nr_iovas
        vfio_iova_range* iova_ranges    # a flexible array member: indexed in place

# What this module took from the headers, so that tests can hold it against them.
HEADER_VALUES = {
    "VFIO_API_VERSION": VFIO_API_VERSION, "VFIO_TYPE1_IOMMU": VFIO_TYPE1_IOMMU,
    "VFIO_GROUP_FLAGS_VIABLE": VFIO_GROUP_FLAGS_VIABLE,
    "VFIO_REGION_INFO_FLAG_MMAP": VFIO_REGION_INFO_FLAG_MMAP,
    "VFIO_PCI_BAR0_REGION_INDEX": VFIO_PCI_BAR0_REGION_INDEX,
    "VFIO_PCI_CONFIG_REGION_INDEX": VFIO_PCI_CONFIG_REGION_INDEX,
    "VFIO_DMA_MAP_FLAG_READ": VFIO_DMA_MAP_FLAG_READ,
    "VFIO_DMA_MAP_FLAG_WRITE": VFIO_DMA_MAP_FLAG_WRITE,
    "VFIO_IOMMU_INFO_CAPS": VFIO_IOMMU_INFO_CAPS,
    "VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE": VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
    "VFIO_GET_API_VERSION": VFIO_GET_API_VERSION, "VFIO_CHECK_EXTENSION": VFIO_CHECK_EXTENSION,
    "VFIO_SET_IOMMU": VFIO_SET_IOMMU, "VFIO_GROUP_GET_STATUS": VFIO_GROUP_GET_STATUS,
    "VFIO_GROUP_SET_CONTAINER": VFIO_GROUP_SET_CONTAINER,
    "VFIO_GROUP_GET_DEVICE_FD": VFIO_GROUP_GET_DEVICE_FD,
    "VFIO_DEVICE_GET_REGION_INFO": VFIO_DEVICE_GET_REGION_INFO,
    "VFIO_IOMMU_MAP_DMA": VFIO_IOMMU_MAP_DMA, "VFIO_IOMMU_UNMAP_DMA": VFIO_IOMMU_UNMAP_DMA,
    "VFIO_IOMMU_GET_INFO": VFIO_IOMMU_GET_INFO,
    "sizeof(struct vfio_group_status)": sizeof(vfio_group_status),
    "sizeof(struct vfio_region_info)": sizeof(vfio_region_info),
    "sizeof(struct vfio_iommu_type1_dma_map)": sizeof(vfio_iommu_type1_dma_map),
    "sizeof(struct vfio_iommu_type1_dma_unmap)": sizeof(vfio_iommu_type1_dma_unmap),
    "sizeof(struct vfio_iommu_type1_info)": sizeof(vfio_iommu_type1_info),
    "sizeof(struct vfio_info_cap_header)": sizeof(vfio_info_cap_header),
    "sizeof(struct vfio_iova_range)": sizeof(vfio_iova_range),
    "PCI_COMMAND": PCI_COMMAND, "PCI_COMMAND_MASTER": PCI_COMMAND_MASTER,
}

DOCTOR = "`wirecap doctor` checks the host"

# What this process has open: IOMMU group name -> Group, PCI address -> PciDevice.
_open_groups = {}
_open_devices = {}


cdef int _ioctl(int fd, unsigned long request, unsigned long arg, str name) except -1:
    """ioctl(2) without the GIL; a failure raises OSError naming the request."""
    cdef int rc, err = 0
    with nogil:
        rc = ioctl(fd, request, arg)
        if rc < 0:
            err = errno
    if rc < 0:
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return rc


def _open(path, problems):
    """A read-write fd on ``path``; ``problems`` maps an errno to the (cause, fix) it means."""
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        cause, fix = problems.get(exc.errno, (exc.strerror, DOCTOR))
        raise WirecapError(f"cannot open {path}: {cause}. Fix: {fix}") from None


cdef class Container:
    """The vfio container: one IOMMU address space, shared by the groups attached to it."""

    def __cinit__(self):
        self.fd = -1
        self._groups = {}
        self._mapped = {}

    def __init__(self, path="/dev/vfio/vfio"):
        self.path = str(path)
        self.fd = _open(self.path, {
            ENOENT: ("vfio is not loaded",
                     f"`modprobe vfio-pci` (at every boot: `wirecap setup --persist`); {DOCTOR}"),
            EACCES: ("permission denied",
                     f"`chmod 0666 {self.path}` (the kernel's default), or run as root")})
        try:
            version = _ioctl(self.fd, VFIO_GET_API_VERSION, 0, "VFIO_GET_API_VERSION")
            if version != VFIO_API_VERSION:
                raise WirecapError(
                    f"{self.path} speaks vfio API version {version}; wirecap was built for version "
                    f"{VFIO_API_VERSION}. Fix: rebuild wirecap against this kernel's headers "
                    f"(linux-libc-dev)")
            if _ioctl(self.fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU, "VFIO_CHECK_EXTENSION") != 1:
                raise WirecapError(
                    f"{self.path} offers no type-1 IOMMU, the one wirecap maps DMA memory through. "
                    f"Fix: `modprobe vfio_iommu_type1`; {DOCTOR}")
        except OSError as exc:
            self.close()
            raise WirecapError(f"{self.path} is not a vfio container ({exc.strerror}). Fix: it "
                               f"must be the character device vfio makes; {DOCTOR}") from None
        except BaseException:
            self.close()
            raise

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)

    @property
    def devices(self):
        """The devices open through this container's groups."""
        return [d for g in self._groups.values() for d in g.devices]

    def close(self):
        """Detach every group (the last one out ends every DMA mapping), then close. Refused
        while a device is open here: its DMA would lose its memory under it."""
        if self.devices:
            raise WirecapError(
                f"vfio container {self.path} still serves {', '.join(d.address for d in self.devices)}"
                f": closing it would end their DMA mappings. Fix: close those devices first")
        for group in list(self._groups.values()):
            group.close()
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1
        # The kernel dropped every mapping with the container; the records stay until each
        # region's unmap, so that a Domain can still free what it had mapped.

    def iova_ranges(self):
        """[(first, last)] IOVAs the IOMMU translates (VFIO_IOMMU_GET_INFO's IOVA-range
        capability: the address width less reserved windows such as the MSI range), or None
        when the kernel does not say. Only meaningful once a group has joined."""
        cdef uint32_t size = sizeof(vfio_iommu_type1_info)
        cdef vfio_iommu_type1_info* info = NULL
        cdef vfio_info_cap_header* cap
        cdef vfio_iommu_type1_info_cap_iova_range* cap_range
        cdef uint32_t offset
        if self.fd < 0 or not self.iommu_set:
            return None
        try:
            for _ in range(2):          # the first call says how much room the capabilities need
                free(info)
                info = <vfio_iommu_type1_info*>malloc(size)
                if info == NULL:
                    raise MemoryError()
                info.argsz, info.flags, info.cap_offset = size, 0, 0
                _ioctl(self.fd, VFIO_IOMMU_GET_INFO, <uintptr_t>info, "VFIO_IOMMU_GET_INFO")
                if info.argsz <= size:
                    break
                size = info.argsz
            if not info.flags & VFIO_IOMMU_INFO_CAPS or info.argsz > size:
                return None
            offset = info.cap_offset
            while offset and offset + sizeof(vfio_info_cap_header) <= size:
                cap = <vfio_info_cap_header*>(<char*>info + offset)
                if cap.id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
                    cap_range = <vfio_iommu_type1_info_cap_iova_range*>cap
                    return [(cap_range.iova_ranges[i].start, cap_range.iova_ranges[i].end)
                            for i in range(cap_range.nr_iovas)]
                offset = cap.next
            return None
        finally:
            free(info)

    def map(self, buffer, uint64_t iova):
        """Let the devices read and write ``buffer`` (page-aligned, whole pages) at ``iova``.
        vfio pins the pages (counted once against RLIMIT_MEMLOCK); the buffer is held until
        ``unmap``: exported, so that it can be neither resized nor moved while mapped."""
        cdef _Pinned pin = _Pinned.__new__(_Pinned)
        cdef vfio_iommu_type1_dma_map m
        if self.fd < 0:
            raise WirecapError(f"vfio container {self.path} is closed. Fix: open the device again")
        PyObject_GetBuffer(buffer, &pin.view, PyBUF_WRITABLE | PyBUF_SIMPLE)
        pin.held = True
        m.argsz = sizeof(m)
        m.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE
        m.vaddr = <uintptr_t>pin.view.buf
        m.iova = iova
        m.size = pin.view.len
        if m.size == 0 or (m.vaddr | m.iova | m.size) % 4096:
            raise WirecapError(
                f"vfio map of {m.size} bytes at IOVA {iova:#x}: address, IOVA and size must be "
                f"multiples of 4096. Fix: allocate DMA memory with wirecap._dma.Domain.alloc")
        try:
            _ioctl(self.fd, VFIO_IOMMU_MAP_DMA, <uintptr_t>&m, "VFIO_IOMMU_MAP_DMA")
        except OSError as exc:
            fix = {ENOMEM: "vfio pins mapped memory, and the locked-memory limit (`ulimit -l`) "
                           "is too low: `wirecap setup --persist` (a limit for group wirecap "
                           "sized to its hugepages; log in again), or run as root",
                   EEXIST: "that IOVA range is already mapped: unmap it first",
                   ENOSPC: "too many mappings (vfio_iommu_type1's dma_entry_limit): map fewer, "
                           "larger regions"}.get(exc.errno, "`dmesg | tail` says why")
            raise WirecapError(f"vfio map of {m.size} bytes at IOVA {iova:#x} failed "
                               f"({exc.strerror}). Fix: {fix}") from None
        self._mapped[iova] = pin

    def unmap(self, uint64_t iova):
        """End the mapping that starts at ``iova``: the devices can no longer reach it."""
        cdef vfio_iommu_type1_dma_unmap u
        cdef _Pinned pin = self._mapped.get(iova)
        if pin is None:
            raise WirecapError(f"vfio unmap: nothing is mapped at IOVA {iova:#x}")
        if self.fd < 0:                 # closed: the kernel ended the mapping then
            del self._mapped[iova]
            return
        u.argsz = sizeof(u)
        u.flags = 0
        u.iova = iova
        u.size = pin.view.len
        try:
            _ioctl(self.fd, VFIO_IOMMU_UNMAP_DMA, <uintptr_t>&u, "VFIO_IOMMU_UNMAP_DMA")
        except OSError as exc:
            raise WirecapError(f"vfio unmap at IOVA {iova:#x} failed ({exc.strerror}); the memory "
                               f"stays mapped and pinned. Fix: `dmesg | tail` says why") from None
        del self._mapped[iova]


cdef class _Pinned:
    """A buffer exported to vfio while mapped: released (and resizable again) at unmap."""
    cdef Py_buffer view
    cdef bint held

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)


cdef class Group:
    """An open IOMMU group (``fd``, taken over), attached to ``container``."""

    def __cinit__(self):
        self.fd = -1
        self._devices = {}

    def __init__(self, Container container, str name, int fd):
        cdef vfio_group_status status
        cdef int cfd = container.fd
        self.fd, self.name, self.container = fd, name, container
        status.argsz = sizeof(status)
        status.flags = 0
        try:
            _ioctl(fd, VFIO_GROUP_GET_STATUS, <uintptr_t>&status, "VFIO_GROUP_GET_STATUS")
            if not status.flags & VFIO_GROUP_FLAGS_VIABLE:
                raise WirecapError(
                    f"IOMMU group {name} is not viable: a device of the group is still driven by "
                    f"a kernel driver, and vfio hands out whole groups only. Fix: `wirecap "
                    f"devices` shows the group's members; `wirecap bind` them with the NIC")
            _ioctl(fd, VFIO_GROUP_SET_CONTAINER, <uintptr_t>&cfd, "VFIO_GROUP_SET_CONTAINER")
            if not container.iommu_set:     # the kernel takes the type once a group is in
                _ioctl(cfd, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU, "VFIO_SET_IOMMU")
                container.iommu_set = True
        except OSError as exc:
            self.close()
            raise WirecapError(f"IOMMU group {name}: {exc.strerror}. Fix: `dmesg | tail` says "
                               f"why the kernel refused; {DOCTOR}") from None
        except BaseException:
            self.close()
            raise
        container._groups[name] = self
        _open_groups[name] = self

    @property
    def devices(self):
        return list(self._devices.values())

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)

    def close(self):
        """Leave the container (refused while a device of the group is open)."""
        if self._devices:
            raise WirecapError(
                f"IOMMU group {self.name} still has {', '.join(self._devices)} open. Fix: close "
                f"those devices first")
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1
        if _open_groups.get(self.name) is self:
            del _open_groups[self.name]
        cdef Container container = self.container
        if container._groups.get(self.name) is self:
            del container._groups[self.name]
            if not container._groups:
                container.iommu_set = False     # the kernel unsets it with the last group
                if container.auto_close:
                    container.close()


cdef int _region_info(int fd, uint32_t index, vfio_region_info* info) except -1:
    info.argsz = sizeof(vfio_region_info)
    info.index = index
    return _ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, <uintptr_t>info, "VFIO_DEVICE_GET_REGION_INFO")


cdef int _command(int fd, uint64_t config, int master) noexcept nogil:
    """The PCI command register, with bus mastering set (1), cleared (0) or as is (-1); -1 and
    errno on failure."""
    cdef uint16_t cmd
    if pread(fd, &cmd, 2, config + PCI_COMMAND) != 2:
        return -1
    cmd = le16toh(cmd)
    if master >= 0:
        cmd = (cmd | PCI_COMMAND_MASTER) if master else (cmd & ~PCI_COMMAND_MASTER)
        cmd = htole16(cmd)
        if pwrite(fd, &cmd, 2, config + PCI_COMMAND) != 2:
            return -1
        cmd = le16toh(cmd)
    return cmd


cdef class PciDevice:
    """A PCI function from its vfio group: BAR0 mapped at ``bar0_addr``, bus mastering on."""

    def __cinit__(self):
        self.fd = -1

    def __init__(self, Group group, str address):
        cdef vfio_region_info bar, config
        cdef void* p
        cdef int err
        cdef bytes name = address.encode()
        self.address, self.group, self.container = address, group, group.container
        try:
            self.fd = _ioctl(group.fd, VFIO_GROUP_GET_DEVICE_FD, <uintptr_t><char*>name,
                             "VFIO_GROUP_GET_DEVICE_FD")
        except OSError as exc:
            fix = (f"another process has it open (`fuser -v /dev/vfio/{group.name}`): stop it"
                   if exc.errno == EBUSY else f"`wirecap bind {address}`; {DOCTOR}")
            raise WirecapError(f"vfio will not give {address} ({exc.strerror}). "
                               f"Fix: {fix}") from None
        group._devices[address] = self
        _open_devices[address] = self
        try:
            _region_info(self.fd, VFIO_PCI_BAR0_REGION_INDEX, &bar)
            _region_info(self.fd, VFIO_PCI_CONFIG_REGION_INDEX, &config)
            if bar.size == 0 or not bar.flags & VFIO_REGION_INFO_FLAG_MMAP:
                raise WirecapError(
                    f"{address}: vfio offers BAR0 ({bar.size} bytes) without mmap, so its "
                    f"registers cannot be mapped. Fix: check that it is an 82599 "
                    f"(`wirecap devices`)")
            with nogil:
                p = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, self.fd, bar.offset)
                err = errno
            if p == MAP_FAILED:
                raise OSError(err, f"mmap of BAR0: {os.strerror(err)}")
            self.bar0, self.bar0_size, self.config_offset = <uint8_t*>p, bar.size, config.offset
            self.bus_master = True      # the NIC may DMA, into mapped memory only
        except OSError as exc:
            self.close()
            raise WirecapError(f"{address}: {exc.strerror}. Fix: {DOCTOR}; `dmesg | tail` says "
                               f"why the kernel refused") from None
        except BaseException:
            self.close()
            raise

    @property
    def bar0_addr(self):
        """Host address of BAR0 (0 once closed): 32-bit registers, accessed as volatile."""
        return <uintptr_t>self.bar0

    @property
    def bus_master(self):
        """Whether the device may start DMA (PCI command register, bit 2)."""
        cdef int cmd = _command(self.fd, self.config_offset, -1)
        if cmd < 0:
            raise OSError(errno, f"{self.address}: reading the PCI command register")
        return bool(cmd & PCI_COMMAND_MASTER)

    @bus_master.setter
    def bus_master(self, bint on):
        if _command(self.fd, self.config_offset, on) < 0:
            raise OSError(errno, f"{self.address}: writing the PCI command register")

    def __dealloc__(self):
        if self.bar0 != NULL:
            munmap(self.bar0, self.bar0_size)
        if self.fd >= 0:
            close(self.fd)

    def close(self):
        """Stop the device's DMA, unmap BAR0, close the device; its group closes with its last
        device, and a container open_pci made with its last group."""
        if self.bar0 != NULL:
            # Stop DMA before the memory it targets can go (best effort: vfio-pci also resets
            # the device when its fd closes, where the device supports a reset).
            _command(self.fd, self.config_offset, 0)
            munmap(self.bar0, self.bar0_size)
            self.bar0 = NULL
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1
        if _open_devices.get(self.address) is self:
            del _open_devices[self.address]
        if self.group._devices.get(self.address) is self:
            del self.group._devices[self.address]
            if not self.group._devices:
                self.group.close()


def _pci_address(name):
    address = str(name).removeprefix("pci:").lower()
    if len(address) == 7:                       # bus:slot.function, in domain 0000
        address = "0000:" + address
    if not pci.PCI_ADDRESS.match(address):
        raise WirecapError(f"{name!r} is not a PCI address. Fix: write it like pci:0000:03:00.0 "
                           f"(`wirecap devices` lists them)")
    return address


def _usable_group(host, address):
    """The IOMMU group of ``address``, once sysfs shows vfio can hand the device out."""
    base = host.sys("bus/pci/devices", address)
    if not base.exists():
        raise WirecapError(f"no PCI device {address} on this host. Fix: `wirecap devices` lists "
                           f"the network functions and their addresses")
    group = pci.link_name(base / "iommu_group")
    if group is None:
        raise WirecapError(f"{address} has no IOMMU group: the IOMMU is off, so vfio cannot give "
                           f"the device to a process. Fix: {doctor.iommu_fix(host)}; {DOCTOR}")
    driver = pci.current_driver(host, address)
    if driver != pci.VFIO_PCI:
        raise WirecapError(f"{address} is bound to {driver or 'no driver'}, not vfio-pci. Fix: "
                           f"`wirecap bind {address}` (as root; `wirecap unbind` gives it back)")
    blockers = [m for m in pci.group_members(host, address, group, pci.PciIds(host))
                if not pci.dma_safe(m.driver)]
    if blockers:
        raise WirecapError(
            f"IOMMU group {group} is not viable: vfio hands out whole groups only, and it also "
            f"holds {', '.join(map(str, blockers))}, still driven by the kernel. Fix: `wirecap "
            f"bind {address} {' '.join(m.address for m in blockers)}` (it says what stops it), "
            f"or move the NIC to a slot with an IOMMU group of its own (`wirecap devices` shows "
            f"the groups)")
    if host.path("dev/vfio", f"noiommu-{group}").exists():
        raise WirecapError(f"{address} is bound in vfio's unsafe no-IOMMU mode, where wirecap "
                           f"cannot map its DMA memory. Fix: {doctor.iommu_fix(host)}; then "
                           f"`wirecap bind {address}` again")
    return group


def open_pci(address, sysfs_root="/sys", Container container=None):
    """Open ``address`` (pci:0000:03:00.0, 0000:03:00.0 or 03:00.0), bound to vfio-pci.

    Its group joins ``container`` (a new one if None, closed with its last group): give several
    devices one container and they share one DMA domain. A device is opened once per process.
    Every failure names its cause and the command that fixes it.
    """
    cdef Group group
    host = Host.from_sysfs_root(sysfs_root)
    address = _pci_address(address)
    if address in _open_devices:
        raise WirecapError(
            f"{address} is already open in this process; a second handle would share its "
            f"registers and DMA behind the first one's back. Fix: use the open handle, or close "
            f"it first")
    name = _usable_group(host, address)
    held = _open_groups.get(name)
    if held is not None and held.container is not container:
        raise WirecapError(
            f"this process already has IOMMU group {name} open (for "
            f"{', '.join(d.address for d in held.devices) or 'no device'}) in another vfio "
            f"container, and a group "
            f"joins one container only. Fix: pass container= that device's .container")
    dev_vfio = host.path("dev/vfio")
    own = container is None
    if own:
        container = Container(dev_vfio / "vfio")
        container.auto_close = True
    try:
        group = container._groups.get(name)
        if group is None:
            denied = doctor.check_dev_vfio(host).fix or "run as root"
            group = Group(container, name, _open(dev_vfio / name, {
                ENOENT: (f"vfio made no node for IOMMU group {name}", f"`wirecap bind {address}`; "
                                                                 f"{DOCTOR}"),
                EACCES: ("permission denied", denied),
                EBUSY: ("another process has the group open (a capture, a VM)",
                     f"stop it (`fuser -v {dev_vfio / name}` names it)")}))
        try:
            device = PciDevice(group, address)
        except BaseException:
            if not group._devices:
                group.close()
            raise
    except BaseException:
        if own and container.fd >= 0:
            container.close()
        raise
    return device
