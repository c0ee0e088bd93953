"""The documented default config written on first run, with a demo server."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid as uuidlib
from pathlib import Path

import wingman.engine.demo.gameserver as demo
from wingman.engine.config import new_token

TEMPLATE = """\
# wingman daemon configuration (Wings-like names; every key optional except `token`).
# Written by `wingman serve` on first run. Environment variables override: WINGMAN_TOKEN,
# WINGMAN_DATABASE_URL, WINGMAN_API_HOST, WINGMAN_API_PORT.

# Bearer token the Panel (or `wingman power`) sends. Keep it secret.
token: "{token}"
# Used with `token` when calling a Panel (Authorization: Bearer <token_id>.<token>).
token_id: "{token_id}"
# Read-only tokens for auditors (may call only the read endpoints).
audit_tokens: []
# Panel URL; null = standalone (servers are defined below or through POST /api/servers).
remote: null
# This node in a fleet (named in every checkpoint); null = audit.node_id, else the Panel's `uuid`
# of the node (a Panel's config.yml has it), else this machine's host name.
node_id: null
api:
  host: 127.0.0.1
  port: {port}
  # HTTPS and WSS (a Panel served over HTTPS needs them), as Wings: usually certbot's files. The
  # daemon refuses to start on a missing, unreadable or mismatched pair; SIGHUP loads renewed files.
  ssl:
    enabled: false
    cert: null                    # e.g. /etc/letsencrypt/live/node.example.com/fullchain.pem
    key: null                     # e.g. /etc/letsencrypt/live/node.example.com/privkey.pem
# Wings' keys that wingman does not use (system.sftp, api.upload_limit, allowed_mounts, ...) may
# stay in this file, as a Panel writes it: they are named once in the log and ignored.
# Browser Origins allowed on websockets besides `remote`.
allowed_origins: []
system:
  # The event store (wingman.db) and daemon state live here; relative to this file.
  root_directory: ./var
  # One folder per server.
  data: ./var/volumes
  # Local servers' console files and stdin FIFOs; null = /run/wingman if usable, else <root>/run.
  run_directory: null
  # Wings' crash detection: a process that exits with nobody asking is a crash; no automatic
  # restart when the last crash is more recent than `timeout` seconds (0: no such guard).
  crash_detection: {{enabled: true, detect_clean_exit_as_crash: true, timeout: 60}}
  # Servers restored at once at boot (the API answers throughout).
  boot_concurrency: 16
  # The power statechart the daemon runs; null = the packaged one. A changed chart is replayed
  # against this node's history at start, and refused if it strands a live server (docs/statechart.md).
  statechart: null
  # Each server runs as an unprivileged user of its own, taken from this range (the daemon must
  # run as root to switch users; it keeps nothing of root for the server: see docs/security.md).
  server_users: {{first_uid: 200000, count: 100000}}
  # Only for a demo on your own machine, with a daemon that is not root: run servers as the
  # daemon's own user, where they can read its token, database and keys. Never on a node.
  insecure_run_servers_as_daemon_user: {insecure}
database:
  # null = SQLite in root_directory; or postgresql+asyncpg://user:pass@host/db
  url: null
# Signed checkpoints over the whole event log (wingman audit verify --key, wingman audit prove).
audit:
  # Ed25519 private key that signs them; null = <root_directory>/checkpoint-key.pem, created on
  # first run with mode 0600. Its public key is printed at start and served at GET /api/audit/key.
  key_file: null
  # Every checkpoint is also appended here as a signed JSON line: put it where the database's
  # users cannot rewrite it (another disk, an append-only mount). null = <root_directory>/checkpoints.jsonl
  checkpoint_file: null
  # A checkpoint every N events or T seconds after the first uncovered one, whichever comes
  # first, and one at every clean shutdown.
  checkpoint_every_events: 1000
  checkpoint_every_seconds: 1.0
  # Optional: POST each checkpoint (JSON) to this URL, with Bearer <token_id>.<token>.
  witness_url: null
  # Optional: cosigning witnesses (c2sp.org/tlog-witness). Each checkpoint is submitted to each
  # with a consistency proof; the cosignatures they return are kept and served on the note
  # (wingman audit verify --witness KEY --cosignatures N). For example:
  # - url: https://witness.example/submission-prefix
  #   key: witness.example/w1+<hex key id>+<base64(0x04 || Ed25519 public key)>
  #   timeout: 10
  witnesses: []
  # Named in every checkpoint; the same as the top-level node_id (which wins when both are set).
  node_id: null
# Servers whose runtime is `docker`: Wings' `docker:` keys, with Wings' defaults.
docker:
  host: null                      # wingman: null = DOCKER_HOST or /var/run/docker.sock
  # The bridge every server's container joins, created when missing. network_mode: this network,
  # or Docker's `none` (no network, no allocation published) or `host`, or a network you made.
  network:
    name: pterodactyl_nw
    network_mode: pterodactyl_nw
    interface: 172.18.0.1         # the host on the bridge; a server's SERVER_IP 127.0.0.1 becomes it
    dns: [1.1.1.1, 1.0.0.1]       # the containers' DNS servers (not under `none` or `host`)
    ispn: false                   # true: a 127.0.0.1 allocation is not published on `interface` too
    driver: bridge
    is_internal: false
    enable_icc: true
    network_mtu: 1500
    interfaces:
      v4: {{subnet: 172.18.0.0/16, gateway: 172.18.0.1}}
      v6: {{subnet: "fdba:17c8:6c94::/64", gateway: "fdba:17c8:6c94::1011"}}
  domainname: ""                  # the containers' domain (their host name is the server's uuid)
  registries: {{}}                  # image name prefix -> {{username: ..., password: ...}}
  image_pull_timeout: 900         # wingman: seconds an image pull may take before the start fails
  tmpfs_size: 100                 # MiB of /tmp in a container (its root filesystem is read-only)
  container_pid_limit: 512        # processes in a container, when the server's build sets none
  installer_limits: {{memory: 1024, cpu: 100}}  # the least an install container gets (MB, % of a core)
  # Memory given above a server's memory_limit (MB of 10^6 bytes), so a JVM that overshoots its
  # -Xmx a little is not OOM-killed. override false: 15 % up to 2048 MB, 10 % up to 4096, else 5 %;
  # true: `multipliers` ({{MB: multiplier}}, the smallest MB at or above the limit), else the default.
  overhead:
    override: false
    default_multiplier: 1.05
    multipliers: {{}}
  use_performant_inspect: true
  userns_mode: ""                 # "host": no user-namespace remapping for servers
  log_config:                     # the containers' log driver; type "" keeps the engine's default
    type: local
    config: {{max-size: 5m, max-file: "1", compress: "false", mode: non-blocking}}
# The Wings websocket (GET /api/servers/{{uuid}}/ws), authenticated by JWTs signed with `token`.
websocket:
  max_frame_bytes: 16384          # a larger inbound frame closes the socket (1009)
  max_sockets_per_server: 50      # more are refused with 429 before the upgrade
  queue_frames: 2048              # outbound frames a socket may fall behind before it is closed (1013)
  log_lines: 150                  # console lines `send logs` answers with
  console_lines_per_second: 2000  # beyond, console lines are skipped on that socket (and it is told)
  rate_limits:                    # token buckets: `burst` messages, then one every `every` seconds
    global: {{burst: 20, every: 0.05}}
    auth: {{burst: 5, every: 5}}
    "set state": {{burst: 4, every: 1}}
    "send command": {{burst: 10, every: 0.1}}
    "send logs": {{burst: 2, every: 5}}
    "send stats": {{burst: 4, every: 1}}
# Resource sampling of running servers (`utilization`, websocket `stats`).
utilization:
  interval_seconds: 2             # how often running servers are sampled (and stats go out)
  disk_interval_seconds: 60       # how often server folders are measured
# GET /api/events/stream (Server-Sent Events).
event_stream:
  heartbeat_seconds: 15           # a comment when idle this long, so proxies keep the stream
  queue_events: 10000             # live events held per stream before it re-reads the log
servers:
  # A demo game server run as a local process: start it with
  #   wingman power {uuid} start --follow
  - settings:
      uuid: {uuid}
      meta: {{name: demo}}
      # The script is read by the shell, from the server's own folder: Python would open it by its
      # absolute path, and the folders above this one may be closed to the server's user.
      invocation: '{python} -u -c "$(cat gameserver.py)"'
      environment: {{MOTD: "hello from wingman", BOOT_SECONDS: "1"}}
      build: {{memory_limit: 0, disk_space: 0}}
      runtime: process
      stop_timeout: 30
      # After a crash: no | on-failure | always | unless-stopped, at most max_restarts in window s.
      restart_policy: {{policy: on-failure, max_restarts: 5, window: 600,
                       backoff_initial: 2, backoff_max: 300, reset_after: 600}}
    process_configuration:
      startup: {{done: ["Server started"], strip_ansi: false}}
      stop: {{type: command, value: stop}}
"""


def write_default_config(path: Path, port: int = 8080) -> tuple[str, str]:
    """Write the default config; returns (token, demo server uuid)."""
    token = new_token()
    server = str(uuidlib.uuid4())
    text = TEMPLATE.format(
        token=token,
        token_id=uuidlib.uuid4().hex[:16],
        port=port,
        uuid=server,
        python=server_python(),
        insecure="false" if os.geteuid() == 0 else "true",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(path, text)
    return token, server


def write_private_file(path: Path, text: str, replace: bool = False) -> None:
    """Write a config file, which holds the node token: it is created 0600 (never readable by
    others, not even for the moment before a chmod), and written whole under a temporary name
    first, so a crash leaves no half-written config behind. Unless `replace`, linking it into
    place never overwrites a config that appeared meanwhile (FileExistsError)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def server_python() -> str:
    """A Python the demo server's own user can run: the system's, since a virtual environment
    under a private home (/root is 0700) is out of its reach."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


def place_demo_script(folder: Path) -> None:
    """The demo game server goes into its own folder: it runs from there as its own user, to whom
    the daemon's install may be out of reach. Pre-boot then gives the folder to that user."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(demo.__file__, folder / "gameserver.py")
