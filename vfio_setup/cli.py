"""The host subcommands of `wirecap`: devices, bind, unbind, restore, hugepages, doctor, setup."""
import argparse
import json
import os

from . import bind as binding
from . import hugepages, persist
from .doctor import checks, iommu_fix
from .host import Host
from .pci import VFIO_PCI, iommu_groups, noiommu_enabled, scan, vfio_pci_state


def _host(args):
    return Host.from_sysfs_root(args.sysfs_root, dry_run=getattr(args, "dry_run", False))


# --- devices -------------------------------------------------------------------------------

def _iommu_state(host):
    groups = iommu_groups(host)
    state = {"enabled": bool(groups), "groups": len(groups), "noiommu": noiommu_enabled(host)}
    if not groups:
        state["fix"] = iommu_fix(host)
    return state


def _report(host):
    devices = scan(host)
    previous = binding.load_state(host)
    iommu = _iommu_state(host)
    rows = []
    for device in devices:
        # The IOMMU is a property of the host, reported once; per device, only its own problems.
        found = [] if device.driver == VFIO_PCI else binding.problems(
            host, device, devices, noiommu=True, together={device.address})
        row = device.to_json()
        row["previous_driver"] = previous.get(device.address, {}).get("driver")
        row["bind_problems"] = [p.to_json() for p in found]
        row["bindable"] = device.driver != VFIO_PCI and not found and (iommu["enabled"] or iommu["noiommu"])
        rows.append(row)
    return {"iommu": iommu, "vfio_pci": vfio_pci_state(host), "devices": rows}


def _device_line(row):
    parts = [row["address"], f"'{row['name']}'", f"{row['vendor']}:{row['device']}"]
    for iface in row["interfaces"]:
        parts.append(f"if={iface['name']} mac={iface['mac'] or '-'} link={iface['link'] or '-'}")
    if row["driver"]:
        parts.append(f"drv={row['driver']}")
    if row["previous_driver"]:
        parts.append(f"was={row['previous_driver']}")
    others = [d for d in row["drivers"] if d != row["driver"]]
    if others:
        parts.append(f"unused={','.join(others)}")
    parts.append(f"numa={'-' if row['numa_node'] is None else row['numa_node']}")
    group = row["iommu_group"]
    if group is None:
        parts.append("iommu_group=-")
    else:
        members = ",".join(m["address"] for m in row["group"])
        parts.append(f"iommu_group={group}" + (f" (with {members})" if members else " (alone)"))
    parts.append("82599=yes" if row["supported"] else "82599=no")
    return " ".join(parts)


def _print_devices(report):
    sections = [
        ("Network devices bound to vfio-pci", lambda r: r["driver"] == VFIO_PCI),
        ("Network devices using a kernel driver", lambda r: r["driver"] not in (None, VFIO_PCI)),
        ("Network devices without a driver", lambda r: r["driver"] is None),
    ]
    for title, belongs in sections:
        rows = [r for r in report["devices"] if belongs(r)]
        print(f"\n{title}\n{'=' * len(title)}")
        if not rows:
            print("<none>")
        for row in rows:
            print(_device_line(row))
            if row["driver"] == VFIO_PCI:
                continue
            if row["bind_problems"]:
                for problem in row["bind_problems"]:
                    print(f"    cannot bind: {problem['reason']}\n        fix: {problem['fix']}")
            elif row["bindable"]:
                print(f"    can bind: `wirecap bind {row['address']}`")
    iommu = report["iommu"]
    if not iommu["enabled"]:
        mode = " vfio's unsafe no-IOMMU mode is on." if iommu["noiommu"] else \
            " No device can be bound without --noiommu (unsafe)."
        print(f"\nThe IOMMU is off.{mode}\n    fix: {iommu['fix']}")
    if report["vfio_pci"] != "loaded":
        print(f"\nvfio-pci is not loaded ({report['vfio_pci']}): `wirecap bind` loads it, "
              "`wirecap doctor` says more.")


def cmd_devices(args):
    report = _report(_host(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_devices(report)


# --- commands that change the host ---------------------------------------------------------

def cmd_bind(args):
    binding.bind(_host(args), args.devices, force=args.force, noiommu=args.noiommu, any_device=args.any)


def cmd_unbind(args):
    binding.unbind(_host(args), args.devices, driver=args.driver)


def cmd_restore(args):
    binding.restore(_host(args))


def cmd_hugepages(args):
    host = _host(args)
    if args.reserve is None:
        for line in hugepages.describe(host):
            print(line)
        return 0
    shortfalls = hugepages.reserve(host, args.reserve, args.size, args.node, do_mount=not args.no_mount)
    return 1 if shortfalls else 0


def cmd_doctor(args):
    found = checks(_host(args))
    if args.json:
        print(json.dumps([c.to_json() for c in found], indent=2))
    else:
        for check in found:
            print(f"[{check.status.upper() if check.status != 'ok' else 'ok':4}] {check.name}: {check.detail}")
            if check.fix:
                print(f"       fix: {check.fix}")
    return 1 if any(c.status == "fail" for c in found) else 0


def cmd_setup(args):
    return 1 if persist.setup(_host(args), persist=args.persist, pages=args.hugepages) else 0


# --- parser --------------------------------------------------------------------------------

def add_commands(subparsers):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--sysfs-root", metavar="DIR", default=os.environ.get("WIRECAP_SYSFS_ROOT", "/sys"),
        help="read and write sysfs under DIR instead of /sys (env WIRECAP_SYSFS_ROOT); with a "
             "fake tree, its proc/, dev/, etc/ and run/ are taken from DIR/.. and no command is run")
    changes = argparse.ArgumentParser(add_help=False, parents=[common])
    changes.add_argument("--dry-run", action="store_true",
                         help="print the exact writes and commands, and change nothing")

    p = subparsers.add_parser(
        "devices", parents=[common], help="list network PCI functions and whether each can be bound",
        description="Every network PCI function: driver, interface, IOMMU group, NUMA node, whether "
                    "it is in use, and why it may not be bound to vfio-pci.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_devices)

    p = subparsers.add_parser(
        "bind", parents=[changes], help="bind NICs to vfio-pci (82599 only, unless --any)",
        description="Bind network PCI functions to vfio-pci, all or none; the previous driver is "
                    "remembered for `wirecap unbind`/`restore`.")
    p.add_argument("devices", nargs="+", metavar="DEV",
                   help="PCI address (0000:03:00.0, 03:00.0, pci:0000:03:00.0) or interface name")
    p.add_argument("--force", action="store_true", help="take an interface that is in use")
    p.add_argument("--noiommu", action="store_true",
                   help="with the IOMMU off, use vfio's no-IOMMU mode (unsafe: DMA is not confined)")
    p.add_argument("--any", action="store_true", help="bind a NIC that is not an 82599")
    p.set_defaults(func=cmd_bind)

    p = subparsers.add_parser(
        "unbind", parents=[changes], help="return NICs from vfio-pci to their previous driver")
    p.add_argument("devices", nargs="+", metavar="DEV", help="PCI address or interface name")
    p.add_argument("--driver", metavar="NAME",
                   help="driver to return them to when wirecap has no record of it")
    p.set_defaults(func=cmd_unbind)

    p = subparsers.add_parser(
        "restore", parents=[changes], help="return every NIC wirecap bound to its previous driver")
    p.set_defaults(func=cmd_restore)

    p = subparsers.add_parser(
        "hugepages", parents=[changes], help="show or reserve hugepages, mount hugetlbfs",
        description="Without --reserve, show the hugepage pools and mounts. With --reserve N, set "
                    "the pool to N pages (machine-wide, or on each --node) and mount hugetlbfs.")
    p.add_argument("--reserve", type=int, metavar="N", help="pages to reserve (0 frees them)")
    p.add_argument("--size", choices=sorted(hugepages.SIZES), default="2M", help="page size (default 2M)")
    p.add_argument("--node", type=int, action="append", metavar="N",
                   help="NUMA node to reserve N pages on (repeatable; default: machine-wide)")
    p.add_argument("--no-mount", action="store_true", help="do not mount hugetlbfs")
    p.set_defaults(func=cmd_hugepages)

    p = subparsers.add_parser(
        "doctor", parents=[common], help="check IOMMU, vfio-pci, hugepages, /dev/vfio; say the fix",
        description="Check what vfio capture needs from this host; exit status 1 if something fails.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_doctor)

    p = subparsers.add_parser(
        "setup", parents=[changes], help="load vfio-pci, reserve hugepages; --persist: install kernel/",
        description="Prepare this host now: load vfio-pci, reserve hugepages (sized from "
                    "memory, or --hugepages) and mount hugetlbfs. With --persist, also create the "
                    "wirecap group and install kernel/etc/* into /etc, so that it lasts across reboots.")
    p.add_argument("--persist", action="store_true", help="install the kernel/ files into /etc")
    p.add_argument("--hugepages", type=int, metavar="N",
                   help="2 MiB pages to reserve (default: a quarter of the memory, at most 1024)")
    p.set_defaults(func=cmd_setup)
