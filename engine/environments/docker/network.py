"""The network a server's container joins, and the allocations it publishes on the host.

The network (Wings' `docker.network`, environment/docker.go in pterodactyl/wings): containers
join `network.name`, a bridge created when missing with Wings' settings (its gateway is
`network.interface`; the host's side of the bridge is `pterodactyl0`). Docker's own `none` and
`host`, and `container:<id>`, are explicit choices: nothing is created, nothing published. Any
other name is a network the operator made: it must exist, and the start says so when it does not.

Each runtime makes sure of a network once (`Networks`); a network deleted behind its back is seen
when Docker answers "network ... not found" to a create or a start (Docker 20.10 only checks at
start), and is made again, once, before that call is repeated. Two daemons creating it at the same
moment is no failure: when a create fails and the network exists afterwards, the other one won.

Allocations (Wings' environment/allocations.go): every port of `allocations.mappings` is published
on its IP, TCP and UDP. Wings moves 127.0.0.1 to the bridge's address (or drops it under `ispn`),
so its servers on 127.0.0.1 are reached at 172.18.0.1 by the host and by other containers. Checked
here: Docker's userland proxy then listens on 172.18.0.1 only, and a player on the host dialing
127.0.0.1, where the Panel says the server is, is refused. So wingman publishes a 127.0.0.1 port on
127.0.0.1 *and* on the bridge's address (Wings' reachability kept); under `ispn`, or on a network
that is not the node's bridge, on 127.0.0.1 only.

`force_outgoing_ip` (Wings: the container joins a bridge of its own per IP, `ip-<ip>`, whose
`com.docker.network.host_ipv4` option makes Docker SNAT the server's outgoing traffic to that IP)
is done as Wings does it. The SNAT is an iptables rule Docker writes only when it manages iptables:
under `dockerd --iptables=false` (the CI here) the network is made and the server reached through
it, but its outgoing traffic leaves with whatever address the host's own rules give it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from docker.errors import APIError, NotFound
from docker.types import IPAMConfig, IPAMPool

from wingman.engine.config_docker import DockerConfig
from wingman.engine.environments.base import RuntimeFailure
from wingman.engine.environments.docker.sdk import CreatedContainer, DockerAPI
from wingman.engine.servers.definition import ServerConfig

log = structlog.get_logger("wingman.docker")

T = TypeVar("T")
WINGS_NETWORK = "pterodactyl_nw"
WINGS_BRIDGE = "pterodactyl0"  # the bridge's name on the host, as Wings names it
PROTOCOLS = ("tcp", "udp")
LOOPBACK = "127.0.0.1"
TWIN_SECONDS = 5.0  # how long a network another daemon is creating may take to show


def joins_no_network(mode: str) -> bool:
    """Docker's own modes: nothing to create, and no port can be published (`host`: the server
    binds the host's ports itself; `none`: there is no way in)."""
    return mode in ("none", "host") or mode.startswith("container:")


def outgoing_network(ip: str) -> str:
    """Wings' name for the bridge of a server that forces its outgoing IP."""
    return "ip-" + ip.replace(".", "-").replace(":", "-")


def container_network(cfg: ServerConfig, docker_config: DockerConfig) -> str:
    """The network the server's container joins. `force_outgoing_ip` gives it Wings' bridge of its
    own, except when the node keeps containers off the network (`none`, `host`): an explicit choice."""
    mode = docker_config.mode
    if cfg.allocations.force_outgoing_ip and not joins_no_network(mode):
        return outgoing_network(cfg.allocations.default.ip)
    return mode


def published(
    cfg: ServerConfig, docker_config: DockerConfig, network: str
) -> tuple[list[tuple[int, str]], dict[str, list[tuple[str, int]]]]:
    """`ports` (exposed) for `create_container` and `port_bindings` for `create_host_config`."""
    if joins_no_network(network):
        return [], {}
    bindings: dict[str, list[tuple[str, int]]] = {}
    for ip, ports in sorted(cfg.allocations.mappings.items()):
        for host_ip in _host_ips(ip, docker_config, network):
            for port in sorted(set(ports)):
                for proto in PROTOCOLS:
                    bound = bindings.setdefault(f"{port}/{proto}", [])
                    if (host_ip, port) not in bound:
                        bound.append((host_ip, port))
    exposed = [(int(key.split("/")[0]), key.split("/")[1]) for key in bindings]
    return exposed, bindings


def _host_ips(ip: str, docker_config: DockerConfig, network: str) -> list[str]:
    """Where an allocation's IP is published (the module's docstring says why 127.0.0.1 is kept)."""
    net = docker_config.network
    if ip != LOOPBACK or net.ispn or network != net.name or net.driver != "bridge" or not net.interface:
        return [ip]
    return [LOOPBACK] if net.interface == LOOPBACK else [LOOPBACK, net.interface]


_TAKEN = re.compile(r"listen (tcp|udp)[46]? \[?([0-9a-fA-F.:]+?)\]?:(\d+): bind: address already in use")
_ALLOCATED = re.compile(r"Bind for \[?([0-9a-fA-F.:]+?)\]?:(\d+) failed: port is already allocated")


def port_taken(explanation: str) -> str | None:
    """Docker's refusal to start because an allocation's port is held on the host, in the words an
    operator reads in the start's outcome; None when the refusal is about something else."""
    if found := _TAKEN.search(explanation):
        proto, ip, port = found.groups()
        return f"allocation {_address(ip, port)}/{proto} is already in use on this host"
    if found := _ALLOCATED.search(explanation):  # Docker's own port allocator: another container has it
        ip, port = found.groups()
        return f"allocation {_address(ip, port)} is already in use on this host (by another container)"
    return None


def _address(ip: str, port: str) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _network_gone(exc: APIError, name: str) -> bool:
    words = (exc.explanation or str(exc)).lower()
    return f"network {name.lower()} not found" in words or f"no such network: {name.lower()}" in words


class Networks:
    """Makes sure, once per runtime, that the networks containers join exist. Blocking: called
    from the runtime's worker threads (and from the installer's)."""

    def __init__(self, docker_config: DockerConfig):
        self.config = docker_config
        self._ready: set[str] = set()
        self._lock = threading.Lock()  # one create at a time; the others then find it made

    def ensure(self, api: DockerAPI, name: str | None = None, outgoing_ip: str | None = None) -> str:
        """The network `name` (default: the node's `docker.network` mode) exists; its name back.
        `outgoing_ip`: the IP whose `ip-...` bridge `name` is, when it may be created."""
        name = name or self.config.mode
        if joins_no_network(name) or name in self._ready:
            return name
        with self._lock:
            if name not in self._ready:
                self._make_sure(api, name, outgoing_ip)
                self._ready.add(name)
        return name

    def ensure_for(self, api: DockerAPI, cfg: ServerConfig) -> str:
        """The network of the server's container exists; its name back."""
        name = container_network(cfg, self.config)
        a = cfg.allocations
        return self.ensure(api, name, a.default.ip if a.force_outgoing_ip else None)

    def create_container(self, api: DockerAPI, kwargs: dict[str, object], cfg: ServerConfig) -> CreatedContainer:
        return self._joining(api, cfg, lambda: api.create_container(**kwargs))

    def start_container(self, api: DockerAPI, container_id: str, cfg: ServerConfig) -> None:
        """Start it; an allocation held on the host is refused with its address, not Docker's words."""
        try:
            self._joining(api, cfg, lambda: api.start(container_id))
        except APIError as exc:
            taken = port_taken(exc.explanation or str(exc))
            if taken is None:
                raise
            raise RuntimeFailure(taken) from None

    def _joining(self, api: DockerAPI, cfg: ServerConfig, call: Callable[[], T]) -> T:
        """`call` once the server's network exists; again, once, if the network was deleted meanwhile."""
        name = self.ensure_for(api, cfg)
        try:
            return call()
        except APIError as exc:
            if joins_no_network(name) or not _network_gone(exc, name):
                raise
        log.warning("the Docker network was deleted; creating it again", network=name)
        self._ready.discard(name)
        self.ensure_for(api, cfg)
        return call()

    def _make_sure(self, api: DockerAPI, name: str, outgoing_ip: str | None) -> None:
        if _exists(api, name):
            return
        create: Callable[[DockerAPI, str], None]
        if name == self.config.network.name:
            create = self._create_node_network
        elif outgoing_ip is not None and name == outgoing_network(outgoing_ip):
            create = _outgoing_network_creator(outgoing_ip)
        else:
            raise RuntimeFailure(
                f"the Docker network {name!r} (docker.network.network_mode) does not exist: create it, or "
                f"use {self.config.network.name!r} (docker.network.name), which wingman creates"
            )
        try:
            create(api, name)
        except APIError as exc:
            if _made_by_a_twin(api, name, exc):
                return
            raise RuntimeFailure(f"Docker could not create the network {name}: {exc.explanation or exc}") from None
        log.info("created the Docker network", network=name)

    def _create_node_network(self, api: DockerAPI, name: str) -> None:
        net = self.config.network
        options = {
            "encryption": "false",
            "com.docker.network.bridge.default_bridge": "false",
            "com.docker.network.bridge.enable_icc": str(net.enable_icc).lower(),
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.driver.mtu": str(net.network_mtu),
        }
        # Wings names the bridge pterodactyl0 whatever the network's name; one bridge name cannot
        # serve two networks, so a network of another name gets Docker's own (br-<id>).
        if name == WINGS_NETWORK:
            options["com.docker.network.bridge.name"] = WINGS_BRIDGE
        v4, v6 = net.interfaces.v4, net.interfaces.v6
        pools = [IPAMPool(subnet=v4.subnet, gateway=v4.gateway), IPAMPool(subnet=v6.subnet, gateway=v6.gateway)]

        def create(with_v6: bool) -> None:
            api.create_network(
                name,
                driver=net.driver,
                options=options,
                internal=net.is_internal,
                ipam=IPAMConfig(pool_configs=pools if with_v6 else pools[:1]),
                enable_ipv6=with_v6,
                check_duplicate=True,
            )

        try:
            create(True)  # IPv6 as Wings: checked to work under this CI's dockerd
        except APIError as exc:
            if "ipv6" not in (exc.explanation or str(exc)).lower() or _exists(api, name):
                raise
            # A host whose kernel has IPv6 off: servers are still reachable over IPv4.
            log.warning(
                "the Docker network is created without IPv6, which the engine refused",
                network=name,
                reason=exc.explanation,
            )
            create(False)


def _outgoing_network_creator(ip: str) -> Callable[[DockerAPI, str], None]:
    """Wings' bridge for a server forcing its outgoing IP: Docker SNATs what leaves it to `ip`."""

    def create(api: DockerAPI, name: str) -> None:
        api.create_network(
            name,
            driver="bridge",
            check_duplicate=True,
            options={
                "encryption": "false",
                "com.docker.network.bridge.default_bridge": "false",
                "com.docker.network.host_ipv4": ip,
            },
        )

    return create


def _made_by_a_twin(api: DockerAPI, name: str, exc: APIError) -> bool:
    """Whether the create failed because another daemon made the network at the same moment: its
    name taken (409), or its subnet or bridge name. Seen here: the loser is told "Pool overlaps"
    before the winner's network can be inspected, so it is looked for a little while."""
    words = (exc.explanation or str(exc)).lower()
    if exc.status_code != 409 and not any(w in words for w in ("already exists", "overlaps", "conflicts")):
        return False
    deadline = time.monotonic() + TWIN_SECONDS
    while not _exists(api, name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _exists(api: DockerAPI, name: str) -> bool:
    try:
        api.inspect_network(name)
    except NotFound:
        return False
    return True
