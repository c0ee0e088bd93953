"""The door check of a server's allocations: every IP it is to be reached at must be this host's.

A definition naming an address the host does not have could never be reached (and under Docker
its start would fail binding it), so it is refused where a definition comes in (the API, the
config file, a Panel's create, sync and inventory: `ServerRegistry.admit`), before anything is
recorded. It is not part of `parse_definition`: replaying the log, here or on another host, must
give the same servers whatever addresses the host replaying it has.

Allowed: the host's addresses (psutil.net_if_addrs), the whole loopback range, the wildcards
(0.0.0.0 and ::), and the addresses of the node's Docker network, whose bridge may not exist yet
(it is made at the first Docker start: engine.environments.docker.network).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable

import psutil

from wingman.engine.config_docker import DockerConfig
from wingman.engine.servers.definition import InvalidDefinition, ServerConfig

FRESH_SECONDS = 30.0  # an address removed from the host is still accepted for at most this long
MISS_RETRY_SECONDS = 1.0  # a refused address re-reads the host's at most this often (an inventory of many)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressNotOnHost(InvalidDefinition):
    """An allocation's IP is not one of this host's addresses (a 422, a Panel's refusal)."""


def node_addresses(docker: DockerConfig) -> list[str]:
    """The addresses the node's Docker network gives the host, made or not yet."""
    net = docker.network
    return [a for a in (net.interface, net.interfaces.v4.gateway, net.interfaces.v6.gateway) if a]


def _parse(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # fe80::1%eth0: the scope is no part of it
    except ValueError:
        return None


def _read_host() -> set[Address]:
    found = set()
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if (ip := _parse(a.address)) is not None:
                found.add(ip)
    return found


class HostAddresses:
    def __init__(self, also: Iterable[str] = (), read: Callable[[], set[Address]] = _read_host):
        self._also = {ip for ip in map(_parse, also) if ip is not None}
        self._read = read
        self._known: set[Address] = set()
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    @classmethod
    def for_node(cls, docker: DockerConfig) -> HostAddresses:
        return cls(node_addresses(docker))

    def admit(self, cfg: ServerConfig) -> ServerConfig:
        """`cfg` back when every IP of its allocations is this host's; AddressNotOnHost otherwise.
        The IPs of `mappings`, what is published: a Panel's `default` is always one of them (its
        `ip` is any text to the schema, which a door check must not narrow)."""
        for ip in cfg.allocations.mappings:
            if not self.is_local(ip):
                raise AddressNotOnHost(
                    f"settings.allocations: {ip} is not an address of this host, so no player could reach the "
                    f"server there (use one of the host's addresses, 0.0.0.0 or ::)"
                )
        return cfg

    def is_local(self, text: str) -> bool:
        ip = _parse(text)
        if ip is None:
            return False
        if ip.is_unspecified or ip.is_loopback or ip in self._also:
            return True
        if ip in self._current(FRESH_SECONDS):
            return True
        return ip in self._current(MISS_RETRY_SECONDS)  # added to the host a moment ago?

    def _current(self, max_age: float) -> set[Address]:
        with self._lock:
            if time.monotonic() - self._read_at > max_age:
                self._known = self._read()
                self._read_at = time.monotonic()
            return self._known
