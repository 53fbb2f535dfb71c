"""Bind network functions to vfio-pci, and give them back to the driver they had."""
import json
from dataclasses import dataclass

from .errors import WirecapError

from .doctor import iommu_fix
from .pci import (VFIO_PCI, current_driver, dma_safe, iommu_groups,
                  noiommu_enabled, scan, vfio_pci_state)

NOIOMMU_PARAM = "module/vfio/parameters/enable_unsafe_noiommu_mode"


@dataclass
class Problem:
    """Why a device may not be taken, and what to do about it."""
    reason: str
    fix: str

    def __str__(self):
        return f"{self.reason}\n    fix: {self.fix}"

    def to_json(self):
        return {"reason": self.reason, "fix": self.fix}


class StepFailed(Exception):
    """A bind or restore step that the kernel did not carry out."""


# --- state: the driver each device had before we bound it ----------------------------------

def state_path(host):
    # Under /run: a reboot forgets every vfio binding, and with it this record.
    return host.path("run/wirecap/bindings.json")


def load_state(host):
    text = host.read(state_path(host))
    return json.loads(text) if text else {}


def save_state(host, state):
    if state:
        host.write_file(state_path(host), json.dumps(state, indent=2, sort_keys=True) + "\n")
    else:
        host.remove_file(state_path(host))


# --- which devices, and may we take them ---------------------------------------------------

def resolve(devices, names):
    """Devices named as 0000:03:00.0, 03:00.0, pci:0000:03:00.0 or by interface name."""
    by_address = {d.address: d for d in devices}
    by_interface = {i.name: d for d in devices for i in d.interfaces}
    chosen = []
    for name in names:
        key = name.removeprefix("pci:").lower()
        if len(key) == 7:                       # bus:slot.function, in domain 0000
            key = "0000:" + key
        device = by_address.get(key) or by_interface.get(name)
        if device is None:
            raise WirecapError(
                f"{name!r} is not a network PCI function of this host. "
                f"Fix: pick one listed by `wirecap devices` (an address like 0000:03:00.0, or its interface name).")
        if device not in chosen:
            chosen.append(device)
    return chosen


def _in_use_fix(device):
    steps = []
    for iface in device.interfaces:
        if iface.usage.master:
            steps.append(f"ip link set {iface.name} nomaster")
        if iface.usage.in_use and iface.usage.up:
            steps.append(f"ip link set {iface.name} down")
    free = " && ".join(steps) if steps else "stop whatever uses it"
    return (f"if nothing on this host needs it: `{free}` (and tell NetworkManager/systemd-networkd "
            f"to leave it alone), then bind again; or pass --force to take it anyway")


def _group_fix(device, blockers, devices):
    network = {d.address for d in devices}
    together = [m.address for m in blockers if m.address in network]
    others = [m for m in blockers if m.address not in network]
    fixes = []
    if together:
        fixes.append(f"bind them together: `wirecap bind {' '.join([device.address] + together)}`")
    for member in others:
        fixes.append(f"release {member.address} from its driver: "
                     f"`echo {member.address} > /sys/bus/pci/drivers/{member.driver}/unbind`")
    fixes.append("if the host needs those devices, put the NIC in a slot with an IOMMU group of its own "
                 "(a slot behind a PCIe port with ACS; `wirecap devices` shows the groups)")
    return "; or ".join(fixes)


def problems(host, device, devices, *, force=False, noiommu=False, any_device=False, together=()):
    """Every reason not to bind `device` to vfio-pci now (empty: it may be taken).

    `together` holds the addresses bound in the same command: they count as vfio-owned when
    judging whether the IOMMU group is viable.
    """
    found = []
    if not (device.supported or any_device):
        found.append(Problem(
            f"{device.address} ({device.name}) is not an Intel 82599, the only NIC wirecap's driver knows",
            "pick an 82599 port (82599=yes in `wirecap devices`), or pass --any to bind it "
            "anyway for another vfio program"))
    if device.in_use and not force:
        found.append(Problem(
            f"{device.address} is in use: {'; '.join(device.usage_reasons)}; taking it cuts that traffic off",
            _in_use_fix(device)))
    if not iommu_groups(host):
        if not noiommu:
            found.append(Problem(
                "the IOMMU is off (the kernel made no IOMMU groups), so vfio cannot confine the NIC's DMA",
                f"{iommu_fix(host)}; or pass --noiommu for vfio's no-IOMMU mode, which is unsafe "
                "(the NIC can then write anywhere in memory)"))
    elif device.iommu_group is not None:
        blockers = [m for m in device.group if not dma_safe(m.driver) and m.address not in together]
        if blockers:
            found.append(Problem(
                f"IOMMU group {device.iommu_group} is not viable: vfio gives a whole group to one owner, "
                f"and it also holds {', '.join(str(m) for m in blockers)}, still driven by the kernel",
                _group_fix(device, blockers, devices)))
    return found


def _refuse(action, found):
    lines = [f"refusing to {action}; nothing was changed:"] + [f"  - {p}" for p in found]
    raise WirecapError("\n".join(lines))


# --- kernel steps --------------------------------------------------------------------------

def ensure_vfio_pci(host):
    if vfio_pci_state(host) == "loaded":
        return
    result = host.run(["modprobe", VFIO_PCI])
    if host.dry_run:
        return
    if vfio_pci_state(host) == "loaded":
        host.out("loaded the vfio-pci module")
        return
    detail = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
    raise WirecapError(
        f"the vfio-pci module is not loaded and `modprobe vfio-pci` failed ({detail}); nothing was changed. "
        f"Fix: install the kernel's extra modules (Debian/Ubuntu: linux-modules-extra-$(uname -r); "
        f"Fedora/RHEL ship it in kernel-core) or build the kernel with CONFIG_VFIO_PCI=m, then try again.")


def enable_noiommu(host):
    if noiommu_enabled(host):
        return
    param = host.sys(NOIOMMU_PARAM)
    if not host.dry_run and not param.exists():
        raise WirecapError(
            "--noiommu asked for vfio's no-IOMMU mode, but this kernel was built without it "
            "(CONFIG_VFIO_NOIOMMU); nothing was changed. Fix: turn the IOMMU on instead: " + iommu_fix(host))
    host.out("WARNING: enabling vfio's unsafe no-IOMMU mode: the NIC's DMA is not confined, so a "
             "driver bug can overwrite any memory of this host. Use it only on a test machine.")
    host.write(param, "Y")


def _expect_driver(host, address, expected, after):
    if host.dry_run:
        return
    actual = current_driver(host, address)
    if actual != expected:
        raise StepFailed(f"after {after}, {address} is bound to {actual or 'no driver'}, not {expected}")


def _bind_one(host, device):
    base = host.sys("bus/pci/devices", device.address)
    # driver_override makes vfio-pci the only driver the next probe may pick, and keeps it so
    # if the device is probed again (driver reload, rescan) while we own it.
    host.write(base / "driver_override", VFIO_PCI)
    if device.driver:
        host.write(host.sys("bus/pci/drivers", device.driver, "unbind"), device.address)
    host.write(host.sys("bus/pci/drivers_probe"), device.address)
    _expect_driver(host, device.address, VFIO_PCI, "drivers_probe")


def _return(host, address, driver, override):
    """Give `address` back to `driver` (None: leave it without one), with its old override."""
    current = current_driver(host, address)
    host.write(host.sys("bus/pci/devices", address, "driver_override"), override or "\n")
    if current and current != driver:
        host.write(host.sys("bus/pci/drivers", current, "unbind"), address)
        current = None
    if driver and current != driver:
        if not host.sys("bus/pci/drivers", driver).is_dir():
            host.run(["modprobe", driver])      # loading it probes the device by itself
        if host.dry_run or current_driver(host, address) != driver:
            host.write(host.sys("bus/pci/drivers", driver, "bind"), address)
    _expect_driver(host, address, driver, f"binding it to {driver or 'no driver'}")


# --- commands ------------------------------------------------------------------------------

def bind(host, names, *, force=False, noiommu=False, any_device=False):
    """Bind the named devices to vfio-pci, all or none. Returns the devices bound."""
    host.require_root("wirecap bind")
    devices = scan(host)
    chosen = resolve(devices, names)
    todo = []
    for device in chosen:
        if device.driver == VFIO_PCI:
            host.out(f"{device.address} is already bound to vfio-pci")
        else:
            todo.append(device)
    together = {d.address for d in chosen}
    found = [p for d in todo for p in problems(host, d, devices, force=force, noiommu=noiommu,
                                               any_device=any_device, together=together)]
    if found:
        _refuse(f"bind {', '.join(d.address for d in todo)}", found)
    if not todo:
        return []
    ensure_vfio_pci(host)
    if not iommu_groups(host):
        enable_noiommu(host)
    state = load_state(host)
    done = []
    for device in todo:
        # Recorded before the first write, so that a crash halfway still knows the old driver.
        state[device.address] = {"driver": device.driver, "driver_override": device.driver_override,
                                 "interfaces": [i.name for i in device.interfaces], "name": device.name}
        save_state(host, state)
        try:
            _bind_one(host, device)
        except (OSError, StepFailed) as exc:
            raise _roll_back(host, state, done + [device], device, exc) from exc
        done.append(device)
        was = ", ".join([device.driver or "no driver"] + [i.name for i in device.interfaces])
        host.out(f"{'would bind' if host.dry_run else 'bound'} {device.address} to vfio-pci (was {was})")
    return done


def _roll_back(host, state, devices, failed, exc):
    """Return `devices` to their drivers after `failed` could not be bound; the error to raise."""
    errors = []
    for device in reversed(devices):
        try:
            _return(host, device.address, device.driver, device.driver_override)
            del state[device.address]
        except (OSError, StepFailed) as again:
            errors.append(f"{device.address}: {again}")
    save_state(host, state)
    message = f"binding {failed.address} to vfio-pci failed: {exc}. "
    if errors:
        return WirecapError(
            message + "Rolling back failed too (" + "; ".join(errors) + "). Fix: `wirecap restore` "
            f"retries from the record in {state_path(host)}, or `wirecap unbind DEV --driver NAME`.")
    return WirecapError(
        message + f"Rolled back: {', '.join(d.address for d in devices)} returned to their drivers. "
        "Fix: see `dmesg | tail` for why the kernel refused.")


def unbind(host, names, *, driver=None):
    """Return the named devices from vfio-pci to their previous (or the given) driver."""
    host.require_root("wirecap unbind")
    devices = scan(host)
    state = load_state(host)
    plan = []
    for device in resolve(devices, names):
        record = state.get(device.address)
        if record is None and device.driver != VFIO_PCI:
            host.out(f"{device.address} is not bound to vfio-pci (driver: {device.driver or 'none'}); nothing to do")
        elif driver is not None:
            plan.append((device.address, driver, None))
        elif record is not None:
            plan.append((device.address, record["driver"], record["driver_override"]))
        else:
            candidates = ", ".join(d for d in device.drivers if d != VFIO_PCI) or "its vendor's driver"
            raise WirecapError(
                f"no record of the driver {device.address} had before vfio-pci (wirecap did not bind it, "
                f"or a reboot cleared {state_path(host)}); nothing was changed. "
                f"Fix: name it: `wirecap unbind {device.address} --driver DRIVER` (drivers that match it: {candidates}).")
    return _give_back(host, state, plan)


def restore(host):
    """Return every device wirecap bound to its previous driver."""
    host.require_root("wirecap restore")
    state = load_state(host)
    if not state:
        host.out("nothing to restore: wirecap has no device bound to vfio-pci")
        return []
    plan = [(address, r["driver"], r["driver_override"]) for address, r in sorted(state.items())]
    return _give_back(host, state, plan)


def _give_back(host, state, plan):
    if not plan:
        return []
    done = []
    for address, driver, override in plan:
        try:
            _return(host, address, driver, override)
        except (OSError, StepFailed) as exc:
            save_state(host, state)
            raise WirecapError(
                f"returning {address} to {driver or 'no driver'} failed: {exc}. "
                f"{'Returned: ' + ', '.join(done) + '. ' if done else ''}"
                f"Fix: load the driver (`modprobe {driver}`) and run `wirecap restore` again; "
                f"`dmesg | tail` says why the kernel refused.") from exc
        state.pop(address, None)
        done.append(address)
        host.out(f"{'would return' if host.dry_run else 'returned'} {address} to {driver or 'no driver'}")
    save_state(host, state)
    return done
