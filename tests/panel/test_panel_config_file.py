"""The config.yml a Panel writes for a node: fetched by `wingman configure` from a Panel (a small
real HTTP server here) as `wings configure` does, and taken as it is by `wingman serve`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.daemon import REPO, free_port, kill_leftovers
from tests.support.waiting import eventually
from wingman.engine.config import parse_config

WINGMAN = [sys.executable, "-m", "wingman.api.cli"]
API_KEY = "ptla_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
NODE_UUID = "5f1c9a4e-2b7d-4c3e-9f80-6a1b2c3d4e5f"
NODE_TOKEN = "Xq3v9Lk2Pw8Zr5Tn7Bm4Hc6Jd1Fg0Sa2Qe5Wr8Ty3Ui7Op9As4Df6Gh1Jk3Lz5Xc"


class Panel:
    """The Panel's application API for one node (id 7), and its remote API answering with no servers."""

    def __init__(self, folder: Path):
        self.daemon_port = free_port()
        self.requests: list[dict] = []
        panel = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # http.server's name
                panel.requests.append({"path": self.path, "headers": dict(self.headers)})
                if self.path.startswith("/api/remote/servers"):
                    return self.answer(200, {"data": [], "meta": {"current_page": 1, "last_page": 1, "total": 0}})
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    return self.answer(
                        403,
                        {
                            "errors": [
                                {
                                    "code": "AccessDeniedHttpException",
                                    "status": "403",
                                    "detail": "This action is unauthorized.",
                                }
                            ]
                        },
                    )
                if self.path != "/api/application/nodes/7/configuration":
                    return self.answer(
                        404,
                        {
                            "errors": [
                                {
                                    "code": "NotFoundHttpException",
                                    "status": "404",
                                    "detail": "The requested resource could not be found on the server.",
                                }
                            ]
                        },
                    )
                return self.answer(200, panel.configuration)

            def do_POST(self):
                panel.requests.append({"path": self.path, "headers": dict(self.headers)})
                self.answer(204, None)

            def answer(self, status: int, body) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # As app/Models/Node.php getConfiguration makes it, key for key.
        self.configuration = {
            "debug": False,
            "uuid": NODE_UUID,
            "token_id": "q8XkZ2vN4mB7cL1p",
            "token": NODE_TOKEN,
            "api": {
                "host": "0.0.0.0",
                "port": self.daemon_port,
                "ssl": {
                    "enabled": False,
                    "cert": "/etc/letsencrypt/live/node.example.com/fullchain.pem",
                    "key": "/etc/letsencrypt/live/node.example.com/privkey.pem",
                },
                "upload_limit": 100,
            },
            "system": {"data": str(folder / "volumes"), "sftp": {"bind_port": 2022}},
            "allowed_mounts": [],
            "remote": self.url,
        }
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def panel(tmp_path):
    p = Panel(tmp_path)
    yield p
    p.close()


def wingman(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINGMAN_")}
    return subprocess.run([*WINGMAN, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env)


def configure(
    panel: Panel, config: Path, *extra: str, token: str = API_KEY, node: str = "7", url: str | None = None
) -> subprocess.CompletedProcess:
    return wingman(
        "configure",
        "--panel-url",
        url or panel.url,
        "--token",
        token,
        "--node",
        node,
        "--config",
        str(config),
        *extra,
        cwd=config.parent,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())


def test_configure_writes_the_panels_file_0600_and_serve_takes_it_as_it_is(tmp_path, panel):
    config = tmp_path / "config.yml"
    result = configure(panel, config)
    assert result.returncode == 0, one_line(result)
    assert (config.stat().st_mode & 0o777) == 0o600  # it holds the node token
    assert yaml.safe_load(config.read_text()) == panel.configuration
    asked = [r for r in panel.requests if "/application/" in r["path"]]
    assert [r["path"] for r in asked] == ["/api/application/nodes/7/configuration"]
    assert asked[0]["headers"]["Accept"] == "application/vnd.pterodactyl.v1+json"

    log = open(tmp_path / "daemon.log", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINGMAN_")}
    proc = subprocess.Popen(
        [*WINGMAN, "serve", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{panel.daemon_port}"  # api.host 0.0.0.0: every address, loopback too
    headers = {"Authorization": f"Bearer {NODE_TOKEN}"}  # the token the Panel gave
    try:

        def settled() -> bool:
            assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
            return httpx.get(f"{url}/api/system", headers=headers, timeout=2).json()["wingman"]["settled"]

        eventually(
            settled,
            60,
            lambda: f"the daemon to answer, settled: {(tmp_path / 'daemon.log').read_text()}",
            interval=0.1,
            ignoring=(httpx.HTTPError, KeyError, ValueError),
        )
        assert httpx.get(f"{url}/api/servers", headers=headers).json() == []
        assert httpx.get(f"{url}/api/audit/key", headers=headers).json()["node"] == NODE_UUID  # uuid: the node id
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
        kill_leftovers(tmp_path)
    output = (tmp_path / "daemon.log").read_text()
    ignored = [line for line in output.splitlines() if "config keys ignored" in line]
    assert len(ignored) == 1, output  # named once
    for key in ("debug", "api.upload_limit", "system.sftp", "allowed_mounts"):
        assert f'"{key}"' in ignored[0]
    assert (tmp_path / "var" / "wingman.db").exists()  # root_directory: ./var beside the file


@pytest.mark.parametrize(
    "case, code, message",
    [
        (
            "a key the Panel refuses",
            1,
            r"error \(403\): the Panel refused the API key .*: This action is unauthorized\.",
        ),
        ("a node the Panel does not have", 1, r"error \(404\): the Panel has no such node: The requested resource"),
        ("a node id that is not a number", 2, r"--node must be the node's numeric id in the Panel, not 'node-7'"),
        (
            "a Panel URL without a scheme",
            2,
            r"--panel-url must be the Panel's http:// or https:// URL, not 'panel.example.com'",
        ),
        (
            "a Panel that does not answer",
            2,
            r"cannot reach the Panel at http://127.0.0.1:\d+/api/application/nodes/7/configuration",
        ),
        ("a file there already", 2, r"config.yml already exists; pass --override to replace it"),
    ],
)
def test_configure_refuses_bad_input_clearly_and_writes_nothing(tmp_path, panel, case, code, message):
    config = tmp_path / "config.yml"
    kwargs = {
        "a key the Panel refuses": {"token": "ptla_wrong"},
        "a node the Panel does not have": {"node": "8"},
        "a node id that is not a number": {"node": "node-7"},
        "a Panel URL without a scheme": {"url": "panel.example.com"},
        "a Panel that does not answer": {"url": f"http://127.0.0.1:{free_port()}"},
        "a file there already": {},
    }[case]
    if case == "a file there already":
        config.write_text("token: the-operators-own-token\n")
    before = sorted(p.name for p in tmp_path.iterdir()), config.read_bytes() if config.exists() else None
    result = configure(panel, config, **kwargs)
    assert result.returncode == code, one_line(result)
    assert re.search(message, one_line(result)), one_line(result)
    assert (sorted(p.name for p in tmp_path.iterdir()), config.read_bytes() if config.exists() else None) == before


def test_configure_override_replaces_the_file_and_keeps_it_0600(tmp_path, panel):
    config = tmp_path / "config.yml"
    config.write_text("token: the-operators-own-token\n")
    config.chmod(0o644)
    result = configure(panel, config, "--override")
    assert result.returncode == 0, one_line(result)
    assert yaml.safe_load(config.read_text())["token"] == NODE_TOKEN
    assert (config.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yml"]  # no temporary left


def test_serve_refuses_a_misspelled_key_with_the_closest_known_one_and_creates_nothing(tmp_path, panel):
    node = tmp_path / "node"
    node.mkdir()
    document = json.loads(json.dumps(panel.configuration))
    document["api"]["prot"] = document["api"].pop("port")  # neither Wings' nor wingman's
    document["system"]["sfpt"] = document["system"].pop("sftp")
    document["allowed_mount"] = document.pop("allowed_mounts")
    config = node / "config.yml"
    config.write_text(yaml.safe_dump(document))
    result = wingman("serve", "--config", str(config), cwd=node)
    assert result.returncode == 2, one_line(result)
    said = one_line(result)
    assert "api.prot: unknown key; did you mean `port`?" in said
    assert "system.sfpt: unknown key; did you mean `sftp`?" in said
    assert "allowed_mount: unknown key; did you mean `allowed_mounts`?" in said
    assert sorted(p.name for p in node.iterdir()) == ["config.yml"]


def test_the_node_id_is_the_panels_uuid_unless_one_is_set():
    base = {"token": NODE_TOKEN, "uuid": NODE_UUID}
    assert parse_config(base).node_id == NODE_UUID
    assert parse_config({**base, "audit": {"node_id": "eu-1"}}).node_id == "eu-1"
    assert parse_config({**base, "node_id": "eu-2", "audit": {"node_id": "eu-1"}}).node_id == "eu-2"
