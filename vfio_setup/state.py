"""The record of what `wirecap bind` did (/run/wirecap/bindings.json: each device's previous
driver and its IOMMU group) and the udev rule that follows it."""
import json
import re

from .errors import WirecapError

from .host import WIRECAP_GROUP
from .pci import PCI_ADDRESS

# Under /run: a reboot forgets every vfio binding, and with it this rule.
UDEV_RULE = "run/udev/rules.d/60-wirecap-vfio.rules"
# A kernel driver's name is one path component of /sys/bus/pci/drivers: nothing read from the
# state file may name another path, nor a command-line option of modprobe.
DRIVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
GROUP_NAME = re.compile(r"(noiommu-)?[0-9]{1,6}")


def state_path(host):
    # Under /run: a reboot forgets every vfio binding, and with it this record.
    return host.path("run/wirecap/bindings.json")


def load_state(host):
    """The record, each entry checked: it says which drivers restore loads and binds, so a
    file that was tampered with or damaged is refused before anything is written."""
    path = state_path(host)
    text = host.read(path)
    if not text:
        return {}
    fix = (f"Fix: remove {path} and give each device its driver by hand (`wirecap unbind DEV "
           f"--driver NAME`)")
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise WirecapError(f"{path} is not the JSON wirecap writes ({exc}). {fix}") from None
    if not isinstance(state, dict):
        raise WirecapError(f"{path} does not hold a record per device. {fix}")
    for address, record in state.items():
        problem = None
        if not PCI_ADDRESS.match(str(address)):
            problem = f"{address!r} is not a PCI address"
        elif not isinstance(record, dict):
            problem = f"the entry of {address} is not a record"
        else:
            for key in ("driver", "driver_override"):
                value = record.get(key)
                if value is not None and not (isinstance(value, str) and DRIVER_NAME.fullmatch(value)):
                    problem = f"the {key} of {address}, {value!r}, is not a driver name"
            group = record.get("iommu_group")
            if group is not None and not (isinstance(group, str) and GROUP_NAME.fullmatch(group)):
                problem = f"the IOMMU group of {address}, {group!r}, is not a group number"
        if problem:
            raise WirecapError(f"{path}: {problem}; nothing was changed. {fix}")
    return state


def save_state(host, state):
    if state:
        host.write_file(state_path(host), json.dumps(state, indent=2, sort_keys=True) + "\n")
    else:
        host.remove_file(state_path(host))
    _write_udev_rule(host, state)

def _write_udev_rule(host, state):
    """A runtime rule (under /run: gone at reboot, with the bindings) giving group wirecap the
    vfio nodes of exactly the groups wirecap bound, and no other /dev/vfio/* of the host."""
    groups = sorted({r["iommu_group"] for r in state.values() if r.get("iommu_group")})
    path = host.path(UDEV_RULE)
    if not groups:
        host.remove_file(path)
        return
    rules = [f'SUBSYSTEM=="vfio", KERNEL=="{g}", GROUP="{WIRECAP_GROUP}", MODE="0660"' for g in groups]
    host.write_file(path, "# Written by `wirecap bind`: the vfio groups of the NICs it bound, for "
                          f"group {WIRECAP_GROUP}.\n" + "\n".join(rules) + "\n")
