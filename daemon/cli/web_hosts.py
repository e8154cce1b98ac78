"""Which Host a request to the web page may name: against DNS rebinding.

A site whose name an attacker points at 127.0.0.1 could otherwise have a visitor's browser read the
page (the browser thinks it is talking to the attacker's own site, so the same-origin rule does
not stop it). Such a request carries the attacker's name in its Host header, so the page answers
only requests naming:

- an IP address it listens on (``web_address``; with 0.0.0.0 or ::, any address), or a loopback
  one (127.0.0.1, [::1]), or ``localhost``, with the page's port when a port is given;
- ``web_host_name``, the one name the page is reached by besides (a reverse proxy's or the
  machine's DNS name), with any port: the proxy in front may listen on its own.

An IP address cannot be rebound, so accepting any on an unspecified address adds no risk. A request
without a Host header (no browser sends one) is answered.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

LOCAL_NAMES = frozenset({"localhost"})


@dataclass
class AllowedHosts:
    address: str  # web_address
    name: str | None = None  # web_host_name
    port: int | None = None  # the listening port, once bound (None: not checked yet)

    def allows(self, host: str | None) -> bool:
        if host is None:
            return True
        name, port = split_host(host.strip().lower())
        if self.name is not None and name == self.name.lower().rstrip("."):
            return True
        if port is not None and self.port is not None and port != self.port:
            return False
        return name in LOCAL_NAMES or self._is_our_address(name)

    def _is_our_address(self, name: str) -> bool:
        try:
            given = ipaddress.ip_address(name)
        except ValueError:
            return False  # a name other than ours: perhaps rebound to this machine
        listening = ipaddress.ip_address(self.address)
        return given.is_loopback or listening.is_unspecified or given == listening


def split_host(host: str) -> tuple[str, int | None]:
    """("name", port) from a Host header: ``name:8080``, ``[::1]:8080``, ``name``; the port is
    None when absent, -1 when it is not a number (so it matches no port)."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else None
    elif host.count(":") == 1:
        name, port = host.split(":")
    else:
        name, port = host, None  # a bare IPv6 address is not a valid Host; it matches as a name or not at all
    if port is None:
        return name.rstrip("."), None
    return name.rstrip("."), int(port) if port.isdigit() else -1
