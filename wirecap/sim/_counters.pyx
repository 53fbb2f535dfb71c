"""The 82599's statistics as events (8.2.3.23): the counter ids and what each received or
transmitted frame adds are in _counters.pxd (inline, for the fast path); the counters live in
DeviceState.stat, and the register file maps statistics registers onto them with their
clear-on-read behaviour. Here: the names of the model-only diagnostics.
"""

DIAGNOSTICS = ("wire_rx", "link_down", "rx_disabled", "filtered", "rx_ring_fault",
               "rx_buf_fault", "tx_fault", "tx_link_down", "queue_refused", "unknown_access")
