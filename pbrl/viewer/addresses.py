"""The addresses this machine can be reached at, for the URL printed by ``pbrl label --host 0.0.0.0``.

``http://0.0.0.0:8765`` is where the server listens, not an address a person can open from another
machine; the printed URLs name the machine's own addresses instead.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket


def _usable(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    return not (addr.is_loopback or addr.is_link_local or addr.is_unspecified or addr.is_multicast)


def _interface_addresses() -> list[str]:
    """IPv4 address of each network interface (Linux ``SIOCGIFADDR``; empty elsewhere)."""
    found: list[str] = []
    with contextlib.suppress(ImportError, OSError):
        import fcntl
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _, name in socket.if_nameindex():
                with contextlib.suppress(OSError):
                    packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
                    found.append(socket.inet_ntoa(packed[20:24]))
    return found


def _route_address(family: int, probe: str) -> list[str]:
    """The local address the default route would use (a UDP ``connect`` sends nothing)."""
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((probe, 9))
        return [s.getsockname()[0]]
    return []


def reachable_addresses(*, ipv6: bool = False) -> list[str]:
    """Non-loopback addresses of this machine (IPv4, plus IPv6 with ``ipv6``), then the loopback one."""
    candidates = _interface_addresses() + _route_address(socket.AF_INET, "192.0.2.1")
    with contextlib.suppress(OSError):
        for family, *_, sockaddr in socket.getaddrinfo(socket.gethostname(), None):
            if family == socket.AF_INET or (ipv6 and family == socket.AF_INET6):
                candidates.append(str(sockaddr[0]))
    if ipv6:
        candidates += _route_address(socket.AF_INET6, "2001:db8::1")
    out = list(dict.fromkeys(ip for ip in candidates if _usable(ip)))
    return out + ["127.0.0.1"]
