"""The daemon's engine side, assembled from the config: database, store, registry, runtimes,
power service. The API holds one of these; the CLI's offline commands use the store alone."""

from __future__ import annotations

import asyncio
import os
import time

import structlog

from wingman.engine import heap, private_files
from wingman.engine.charts.adoption import adopt as adopt_chart
from wingman.engine.checkpoints.checkpointer import Checkpointer, CheckpointSettings
from wingman.engine.config import DaemonConfig
from wingman.engine.config_servers import ServerDocs
from wingman.engine.environments.base import Runtime
from wingman.engine.environments.docker.on_demand import OnDemandDockerRuntime
from wingman.engine.environments.install_runner import InstallRunner, OnDemandRunner
from wingman.engine.environments.local.runtime import ProcessRuntime
from wingman.engine.environments.server_users import ServerUsers
from wingman.engine.event_types import Cause
from wingman.engine.events import Event, Metadata
from wingman.engine.fleet.node_lock import NodeLock, hold_node_lock
from wingman.engine.install.feed import InstallFeed
from wingman.engine.install.recovery import InstallRecovery
from wingman.engine.install.service import InstallService
from wingman.engine.install.work import Surroundings
from wingman.engine.live.denylist import TokenDenylist
from wingman.engine.live.feed import EventFeed
from wingman.engine.live.operation_log import OperationLog
from wingman.engine.live.utilization import UtilizationMonitor
from wingman.engine.power.actions import PowerActions
from wingman.engine.power.crashes import CrashHandler
from wingman.engine.power.journal import Journal
from wingman.engine.power.processes import ProcessTracker
from wingman.engine.power.recovery import BOOT, BootRecovery
from wingman.engine.power.service import PowerService
from wingman.engine.preboot.sources import DefinitionSource
from wingman.engine.preboot.starter import Starter
from wingman.engine.remote.activity_outboxes import panel_outboxes
from wingman.engine.remote.panel import panel_side
from wingman.engine.schedules.scheduler import Scheduler
from wingman.engine.servers.definition import ServerConfig
from wingman.engine.servers.from_config import latest_definitions
from wingman.engine.servers.host_addresses import HostAddresses
from wingman.engine.servers.operations import Operation
from wingman.engine.servers.registry import ServerRegistry
from wingman.engine.servers.snapshot_cache import SnapshotCache
from wingman.engine.servers.snapshot_writer import SnapshotWriter
from wingman.engine.statechart import PowerMachine, Statechart, read_statechart
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.event_store import EventStore

log = structlog.get_logger("wingman.daemon")
FROM_CONFIG = Metadata(actor="daemon", channel="config", cause=Cause.CONFIG_FILE)
CONFIG_BATCH = 500  # servers from the config file recorded at once (the store's largest group)


def build_runtimes(config: DaemonConfig) -> dict[str, Runtime]:
    """Both runtimes, always: a node without a Docker engine still runs local processes, and its
    docker servers fail to start with a clear reason until the engine answers. The Docker one
    loads the SDK and connects when a server first needs it (engine.environments.docker.on_demand)."""
    return {
        "process": ProcessRuntime(config.run_directory),
        "docker": OnDemandDockerRuntime(base_url=config.docker.host, docker_config=config.docker),
    }


def checkpoint_settings(config: DaemonConfig) -> CheckpointSettings:
    a = config.audit
    # A witness gets the same credentials the daemon shows a Panel.
    auth = {"Authorization": f"Bearer {config.token_id}.{config.token}"} if a.witness_url and config.token_id else {}
    return CheckpointSettings(
        key_file=config.checkpoint_key_path,
        checkpoint_file=config.checkpoint_file_path,
        node_id=config.node_id,
        every_events=a.checkpoint_every_events,
        every_seconds=a.checkpoint_every_seconds,
        witness_url=a.witness_url,
        witness_headers=auth,
        witnesses=a.witnesses,
    )


class Daemon:
    def __init__(
        self, config: DaemonConfig, runtimes: dict[str, Runtime] | None = None, chart: Statechart | None = None
    ):
        self.config = config
        self.started_at = time.time()
        self.settled = asyncio.Event()  # boot is over: recovery done and the heap settled
        self.db = create_engine(config.database_url)
        self.store = EventStore(self.db, node_id=config.node_id)
        self.node_lock: NodeLock | None = None
        # Building the machine checks the statechart against the engine's triggers: a chart the
        # engine cannot run on (or the configured file, system.statechart, not loading) stops the
        # daemon here, before anything is written.
        self.registry = ServerRegistry(
            self.store,
            PowerMachine(chart or read_statechart(config.statechart_path)),
            admit=HostAddresses.for_node(config.docker).admit,
        )
        self.accept_chart_change = False  # `wingman serve --accept-chart-change` (engine.charts.adoption)
        self.runtimes = runtimes if runtimes is not None else build_runtimes(config)
        self.journal = Journal(self.store, self.registry)
        self.processes = ProcessTracker(self.journal)
        source = DefinitionSource(
            config.remote, config.token_id, config.token, config.source, remote_runtime=config.remote_runtime
        )
        self.server_users = ServerUsers(
            config.data_directory,
            config.system.server_users.first_uid,
            config.system.server_users.count,
            insecure_as_daemon_user=config.system.insecure_run_servers_as_daemon_user,
        )
        self.starter = Starter(
            self.registry,
            self.runtimes,
            source,
            config.data_directory,
            self.server_users,
            # What {{config.*}} placeholders may show server owners ({{config.docker.network.interface}},
            # as with Wings): nothing secret, so never the registries' credentials.
            daemon_config={
                "docker": config.docker.model_dump(mode="json", exclude={"host", "registries"}),
                "system": {"timezone": config.system.timezone},
            },
            record=self._record,
            note=self.processes.note,
        )
        actions = PowerActions(self.journal, self.registry, self.processes, self.starter)
        self.power = PowerService(self.journal, self.registry, actions, self.processes, self.runtimes)
        self.crashes = CrashHandler(
            self.journal,
            self.registry,
            self.processes,
            config.system.crash_detection,
            request_restart=self._restart_after_crash,
            settled=self.power.settled,
        )
        self.power.watch_requests(self.crashes)
        self.recovery = BootRecovery(
            self.journal,
            self.registry,
            self.processes,
            self.runtimes,
            self.starter.folder,
            self.crashes,
            concurrency=config.system.boot_concurrency,
        )
        self.power.wait_for_restore(self.recovery)
        self.recovery.liveness = actions.liveness  # adopted running servers are liveness-probed again (engine.probes)
        self.snapshot_cache = SnapshotCache(self.db, write_beside=self.store.write_beside)
        self.snapshots = SnapshotWriter(self.store, self.registry, self.snapshot_cache)
        # The key is read (or created, 0600) here, so `wingman serve` can print it before it runs.
        self.checkpointer = Checkpointer(self.store, checkpoint_settings(config))
        # Live state for watchers (websockets, the event stream), derived from commits.
        self.feed = EventFeed(self.store)
        self.denylist = TokenDenylist(self.store, self.feed)
        self.utilization = UtilizationMonitor(
            self.registry, self.processes, self.starter.folder, config.utilization, self.feed
        )
        # Eggs' install scripts (engine.install): an install holds its server's power lock, a delete
        # ends it, boot recovery adopts one left running; the Panel gives them their scripts.
        runners: dict[str, InstallRunner] = (
            {"docker": OnDemandRunner(self._docker_installer)} if "docker" in self.runtimes else {}
        )
        self.installs = InstallService(
            self.journal,
            self.registry,
            self.power,
            self.starter.folder,
            Surroundings(InstallFeed(), self.server_users, config.system.tmp_directory, config.system.timezone),
            runners,
        )
        self.power.install_control = self.installs
        self.recovery.installs = InstallRecovery(self.installs, BOOT)
        # With a Panel, its list of servers is the truth once it answers: taken after boot
        # recovery, in the background, so a Panel that is down never keeps the API from serving.
        self.panel = panel_side(config, self.registry, self.journal, self.processes, self.installs, self.recovery.done)
        self.activity = panel_outboxes(config, self.store, lambda: self.registry.chart)  # None for a standalone node
        # Scheduled power actions (engine.schedules): started once the servers are loaded.
        self.schedules = Scheduler(self.store, self.registry, self.power, self.journal, self.processes)

    async def _record(self, uuid: str, record: Event, meta: Metadata) -> None:
        await self.journal.record(uuid, record, meta=meta)

    async def _docker_installer(self) -> InstallRunner:
        from wingman.engine.environments.docker.installer import DockerInstaller  # the SDK, loaded on first need

        docker = self.runtimes["docker"]
        return DockerInstaller(await docker.connected() if isinstance(docker, OnDemandDockerRuntime) else docker)

    async def _restart_after_crash(self, uuid: str, meta: Metadata) -> Operation:
        return await self.power.request(uuid, "restart", None, meta)

    @property
    def recovered(self) -> dict[str, int]:
        """What boot recovery has done so far (it runs in the background: see `recovery.done`)."""
        return self.recovery.counts

    async def start(self) -> None:
        """Boot. The store's subscribers hear each commit in the order they subscribe here, all
        before any append: the checkpointer (the tree follows every commit), the registry (the
        views fold it), the power service (its lock holders' work ends with it; it reads only the
        events), the feed (its watchers read views that already hold the commit: the websocket,
        the event stream, the Panel's outboxes), then the snapshot writer."""
        phases: dict[str, float] = {}  # seconds each step of the boot took, logged when ready
        mark = time.perf_counter()

        def done(phase: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            phases[phase] = round(now - mark, 3)
            mark = now

        self.config.root_directory.mkdir(parents=True, exist_ok=True)
        # Before anything else: a second daemon with this node id stops here (NodeTaken names the first).
        self.node_lock = await hold_node_lock(self.config.database_url, self.config.node_id)
        self.config.data_directory.mkdir(parents=True, exist_ok=True)
        await upgrade(self.db)
        done("migrations")
        await self.store.open()
        done("store")
        self._keep_files_private()
        await self.checkpointer.start()  # before anything appends: the tree follows every commit
        done("checkpoint_tree")
        # The chart in force (engine.charts): a change is replayed against this node's history and
        # recorded before the registry folds it; ChartRefused stops the start, nothing written.
        adopted = await adopt_chart(self.store, self.registry.chart, self.accept_chart_change)
        self.registry.machine, self.registry.chart = PowerMachine(adopted), adopted
        self.snapshot_cache.chart = adopted
        done("statechart")
        await self.registry.load(self.snapshot_cache)
        done("registry")
        self.store.subscribe(self.power.on_commit)
        self.store.subscribe(OperationLog())  # a log line per operation accepted and settled
        self.feed.start()  # after the registry: a watcher handed an event reads views that hold it
        self.denylist.start()
        for runtime in self.runtimes.values():
            await runtime.open()
        done("runtimes")
        await self.load_configured_servers()
        done("config_servers")
        self.recovery.start(self.power.background)
        if self.panel:
            self.panel.start(self.power.background)
        self.power.background(self._release_boot_memory(), name="release-boot-memory")
        self.snapshots.start()
        self.utilization.start()
        if self.activity:
            await self.activity.start()
        await self.schedules.start()  # engine.schedules: after the servers are loaded
        log.info(
            "daemon ready; restoring servers in the background",
            servers=len(self.registry.views),
            boot_seconds=phases,
            from_snapshots=len(self.registry.snapshot_versions),
        )

    def _keep_files_private(self) -> None:
        """The modes that keep the daemon's files from its servers (engine.private_files), set at
        every start, and a word on what only the operator can fix."""
        c = self.config
        private_files.secure(
            c.root_directory, c.data_directory, c.run_directory, [c.checkpoint_key_path, c.checkpoint_file_path]
        )
        for warning in (private_files.readable_by_others(c.source), private_files.closed_above(c.data_directory)):
            if warning:
                log.warning(warning)
        if c.system.user:
            log.warning(
                "system.user is not used: every server runs as an unprivileged user of its own (system.server_users)",
                user=c.system.user,
            )
        if os.geteuid() == 0 and c.system.insecure_run_servers_as_daemon_user:
            log.warning(
                "system.insecure_run_servers_as_daemon_user is ignored: the daemon runs as root, and "
                "a server never does"
            )
        elif os.geteuid() != 0 and not c.system.insecure_run_servers_as_daemon_user:
            log.warning(
                "the daemon is not root, so it cannot run servers as users of their own: starts will be "
                "refused (see system.insecure_run_servers_as_daemon_user)"
            )

    async def _release_boot_memory(self) -> None:
        """Once boot recovery is done, settle the heap (engine.heap): the memory boot freed goes
        back to the system and what remains leaves the garbage collector's walks. That last full
        collection stops the loop for up to 100 ms on a large node; `settled` says it is behind
        (`GET /api/system`), for whoever wants the daemon at its steady pace (a load test)."""
        await self.recovery.done.wait()
        heap.settle()
        self.settled.set()

    async def load_configured_servers(self) -> None:
        """Servers in the config file are registered, or updated when their definition changed.

        Many at once: each server is its own append, so the store's writer commits them in groups
        (a node of 10,000 servers registers in a few dozen transactions, not 10,000); a batch at a
        time, so boot never holds 10,000 appends in flight, nor 10,000 parsed definitions (they
        are parsed as their batch comes up: engine.servers.from_config)."""
        batch: dict[str, ServerConfig] = {}
        for cfg in latest_definitions(self.config.servers):
            # A server met again (see latest_definitions) is recorded after its batch: as an update.
            if len(batch) == CONFIG_BATCH or cfg.uuid in batch:
                await self._record_configs(list(batch.values()))
                batch = {}
            batch[cfg.uuid] = cfg
        await self._record_configs(list(batch.values()))
        # The definitions now live in the log (and a start reads the file again): the packed copy
        # would only hold memory.
        self.config.servers = ServerDocs()

    async def _record_configs(self, batch: list[ServerConfig]) -> None:
        results = await asyncio.gather(
            *(
                self.registry.update_to(cfg, FROM_CONFIG)
                if cfg.uuid in self.registry.views
                else self.registry.register_config(cfg, FROM_CONFIG)
                for cfg in batch
            ),
            return_exceptions=True,
        )
        for cfg, result in zip(batch, results, strict=False):
            if isinstance(result, Exception):
                log.error(
                    "a server in the config file could not be recorded; skipped", server=cfg.uuid, problem=str(result)
                )

    async def stop(self) -> None:
        await self.schedules.stop()  # engine.schedules: no new run begins while the rest stops
        if self.activity:
            await self.activity.stop()
        await self.crashes.close()
        await self.utilization.stop()
        await self.power.shutdown({kind for kind, r in self.runtimes.items() if r.detachable})
        if self.panel:
            await self.panel.aclose()  # after shutdown cancelled the inventory
        for runtime in self.runtimes.values():
            await runtime.close()
        await self.snapshots.stop()  # after the last events of the servers' own stops
        self.registry.close()
        self.denylist.stop()
        self.feed.stop()
        await self.store.close()
        await self.checkpointer.stop()  # the writer has drained: this one covers every event
        await self.db.dispose()
        if self.node_lock is not None:
            await self.node_lock.release()
