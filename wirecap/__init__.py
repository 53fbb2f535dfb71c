"""wirecap: lossless packet capture for 10 GbE NICs (WireCAP, IMC 2014) in Python and Cython."""
__version__ = "0.1.0"
