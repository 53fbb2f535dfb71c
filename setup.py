"""Build the Cython extensions (metadata lives in setup.cfg)."""
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# wirecap/ixgbe.pxd is generated from the register table before Cython reads it
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wirecap.registers import pxd  # noqa: E402

pxd.write()

EXTENSIONS = [
    Extension("wirecap.ixgbe", ["wirecap/ixgbe.pyx"]),
    Extension("wirecap._regs", ["wirecap/_regs.pyx"]),
    Extension("wirecap._ring", ["wirecap/_ring.pyx"]),
    Extension("wirecap.sim._iommu", ["wirecap/sim/_iommu.pyx"]),
    Extension("wirecap.sim._frame", ["wirecap/sim/_frame.pyx"]),
    Extension("wirecap.sim._counters", ["wirecap/sim/_counters.pyx"]),
    Extension("wirecap.sim._state", ["wirecap/sim/_state.pyx"]),
    Extension("wirecap.sim._clock", ["wirecap/sim/_clock.pyx"]),
    Extension("wirecap.sim._receive", ["wirecap/sim/_receive.pyx"]),
    Extension("wirecap.sim._transmit", ["wirecap/sim/_transmit.pyx"]),
    Extension("wirecap.sim._registers", ["wirecap/sim/_registers.pyx"]),
    Extension("wirecap.sim._device", ["wirecap/sim/_device.pyx"]),
    Extension("wirecap.sim._pcapfile", ["wirecap/sim/_pcapfile.pyx"]),
    Extension("wirecap.sim._wire", ["wirecap/sim/_wire.pyx"]),
    Extension("wirecap._dma", ["wirecap/_dma.pyx"]),
    Extension("wirecap.sim._regs", ["wirecap/sim/_regs.pyx"]),
    Extension("wirecap._vfio", ["wirecap/_vfio.pyx"]),
    Extension("wirecap._mmio", ["wirecap/_mmio.pyx"]),
    Extension("wirecap._pmd", ["wirecap/_pmd.pyx"]),
    Extension("wirecap._bpf", ["wirecap/_bpf.pyx"], libraries=["pcap"]),
    Extension("wirecap._engine", ["wirecap/_engine.pyx"]),
    Extension("wirecap._pcap", ["wirecap/_pcap.pyx"], libraries=["pcap"]),
    Extension("wirecap._dumpfile", ["wirecap/_dumpfile.pyx"]),
    Extension("wirecap.afpacket._ring", ["wirecap/afpacket/_ring.pyx"]),
    Extension("wirecap.bench._handler", ["wirecap/bench/_handler.pyx"]),
    Extension("wirecap.bench._gaps", ["wirecap/bench/_gaps.pyx"]),
]
for ext in EXTENSIONS:
    ext.include_dirs.append(numpy.get_include())
    ext.extra_compile_args += ["-O3", "-Wno-unused-function"]
    ext.define_macros.append(("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"))

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
