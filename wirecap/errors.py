"""The one exception type users catch: every message names the problem and the fix."""


class WirecapError(Exception):
    """A request wirecap refuses; nothing was changed by it."""
