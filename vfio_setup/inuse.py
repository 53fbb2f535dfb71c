"""Is a network interface in use? Read from the kernel through netlink (pyroute2)."""
import ipaddress
import socket
from dataclasses import dataclass, field

IFF_UP = 0x1
RT_TABLE_LOCAL = 255      # the kernel's own routes for local and broadcast addresses


@dataclass
class Usage:
    """What the kernel's network stack does with one interface."""
    found: bool = True                              # False: not in this network namespace
    up: bool = False
    addresses: list = field(default_factory=list)   # "192.0.2.2/24", link-local IPv6 left out
    routes: list = field(default_factory=list)      # "default via 192.0.2.1", "10.0.0.0/8"
    master: str | None = None                       # bridge or bond it is enslaved to
    master_kind: str | None = None

    @property
    def in_use(self):
        # An interface that is up but has no address and no route carries no traffic of ours;
        # one that is a bridge/bond port does, whatever its own state.
        return self.master is not None or (self.up and bool(self.addresses or self.routes))

    @property
    def reasons(self):
        out = []
        if self.master is not None:
            out.append(f"enslaved to {self.master_kind or 'master'} {self.master}")
        if self.up and self.addresses:
            out.append("up with addresses " + ", ".join(self.addresses))
        if self.up and self.routes:
            out.append("routes " + ", ".join(self.routes))
        return out

    def to_json(self):
        return {"found": self.found, "in_use": self.in_use, "reasons": self.reasons,
                "up": self.up, "addresses": self.addresses, "routes": self.routes,
                "master": self.master, "master_kind": self.master_kind}


def _kind(link):
    info = link.get("IFLA_LINKINFO")
    return info.get("IFLA_INFO_KIND") if info else None


def _is_automatic(family, prefix):
    # IPv6 gives every interface that comes up an fe80:: address and route by itself;
    # they say nothing about the interface being configured.
    return family == socket.AF_INET6 and ipaddress.ip_network(prefix, strict=False).is_link_local


def _route_text(route):
    dst = route.get("RTA_DST")
    text = f"{dst}/{route['dst_len']}" if dst else "default"
    gateway = route.get("RTA_GATEWAY")
    return f"{text} via {gateway}" if gateway else text


def _route_uses(route, index):
    if route.get("RTA_OIF") == index:
        return True
    return any(hop.get("oif") == index for hop in route.get("RTA_MULTIPATH") or ())


def all_routes(ipr):
    return list(ipr.route("dump", family=socket.AF_UNSPEC))


def interface_usage(ipr, ifname, routes=None):
    """The `Usage` of `ifname`, read through an open pyroute2 IPRoute (of any namespace).

    `routes` is a dump from `all_routes`, so that a scan of many interfaces reads the routing
    table once; without it, the table is read here.
    """
    indexes = ipr.link_lookup(ifname=ifname)
    if not indexes:
        return Usage(found=False)
    index = indexes[0]
    link = ipr.get_links(index)[0]
    usage = Usage(up=bool(link["flags"] & IFF_UP))
    master = link.get("IFLA_MASTER")
    if master:
        master_link = ipr.get_links(master)[0]
        usage.master = master_link.get("IFLA_IFNAME")
        usage.master_kind = _kind(master_link)
    for addr in ipr.get_addr(index=index):
        prefix = f"{addr.get('IFA_ADDRESS')}/{addr['prefixlen']}"
        if not _is_automatic(addr["family"], prefix):
            usage.addresses.append(prefix)
    for route in all_routes(ipr) if routes is None else routes:
        if route.get("RTA_TABLE") == RT_TABLE_LOCAL or not _route_uses(route, index):
            continue
        dst = route.get("RTA_DST")
        if dst and _is_automatic(route["family"], f"{dst}/{route['dst_len']}"):
            continue
        usage.routes.append(_route_text(route))
    return usage
