"""The one exception type users catch: every message names the problem and the fix.

It is defined in vfio_setup.errors, which both packages import, so that vfio_setup (host
preparation, used by wirecap) needs nothing from wirecap: the imports go one way.
"""
from vfio_setup.errors import WirecapError

__all__ = ["WirecapError"]
