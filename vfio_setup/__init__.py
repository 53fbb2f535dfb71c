"""Prepare a host's NICs for wirecap: PCI scan, vfio-pci binding, IOMMU groups, hugepages.

Everything reads sysfs under a configurable root (`Host`), so that it runs against fake trees in
tests, and reads interface state through pyroute2. `cli.add_commands` adds the `wirecap`
subcommands.
"""
from .host import Host

__all__ = ["Host"]
