"""The one exception type wirecap's users catch, at the bottom of the dependency graph:
vfio_setup raises it, and wirecap (which uses vfio_setup) re-exports it as wirecap.errors."""


class WirecapError(Exception):
    """A request wirecap refuses; nothing was changed by it. The message names the problem
    and the fix."""
