"""wirecap: lossless packet capture for 10 GbE NICs (WireCAP, IMC 2014) in Python and Cython."""
import os

# wirecap does no linear algebra, but numpy's bundled OpenBLAS starts a thread per core at
# import that spins for a while: on a small machine it takes a capture thread's core. An
# application that wants BLAS threads sets the variable itself (or imports numpy first).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
