"""Pre-boot steps with real folders and a real (small) Panel over HTTP."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.daemon import TOKEN, definition
from wingman.engine.environments import server_users


class FakePanel:
    """A real HTTP server answering Wings' `GET /api/remote/servers/{uuid}` like a Panel does."""

    def __init__(self):
        self.documents: dict[str, dict] = {}
        self.status = 200
        self.seen_auth: list[str] = []
        panel = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                panel.seen_auth.append(self.headers.get("Authorization", ""))
                uuid = self.path.rsplit("/", 1)[-1]
                if panel.status != 200 or uuid not in panel.documents:
                    status = panel.status if panel.status != 200 else 404
                    body = {"errors": [{"code": "HttpException", "status": str(status), "detail": "server not found"}]}
                else:
                    status, body = 200, panel.documents[uuid]
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def panel():
    p = FakePanel()
    yield p
    p.close()


def with_panel(harness, panel):
    harness.daemon.starter.source.remote = panel.url
    harness.daemon.starter.source.token_id = "tid"
    harness.daemon.starter.source.remote_runtime = "process"  # the tests' servers are local processes
    return harness


async def test_sync_fetches_the_panel_definition_with_wings_auth(engine_harness, panel):
    d = definition(env={"MOTD": "old"})
    uuid = d["settings"]["uuid"]
    newer = definition(uuid, env={"MOTD": "from the panel"})
    panel.documents[uuid] = {**newer, "settings": {**newer["settings"]}}
    async with with_panel(engine_harness([d]), panel) as h:
        op = await h.outcome(await h.act(uuid, "start"))
        assert op.status == "succeeded"
        assert panel.seen_auth == [f"Bearer tid.{TOKEN}"]
        assert "MOTD: from the panel" in h.processes.console(uuid).lines
        changed = [e for e in await h.events(uuid) if e.type == "server.configuration_changed"]
        assert changed and "settings.environment.MOTD" in changed[-1].data["changed_keys"]


async def test_panel_suspension_refuses_the_boot(engine_harness, panel):
    d = definition()
    uuid = d["settings"]["uuid"]
    panel.documents[uuid] = definition(uuid, suspended=True)
    async with with_panel(engine_harness([d]), panel) as h:
        op = await h.outcome(await h.act(uuid, "start"))
        assert op.status == "failed" and "suspended" in op.reason
        failed = [e for e in await h.events(uuid) if e.type == "preboot.check_failed"]
        assert failed[-1].data["check"] == "suspension"
        assert h.state(uuid) == "offline"
        assert h.daemon.registry.get(uuid).suspended
        types = await h.types(uuid)
        assert types.index("server.configuration_changed") + 1 == types.index("server.suspended")


async def test_panel_error_fails_sync_and_returns_offline(engine_harness, panel):
    d = definition()
    uuid = d["settings"]["uuid"]
    panel.status = 500
    async with with_panel(engine_harness([d]), panel) as h:
        op = await h.outcome(await h.act(uuid, "start"))
        assert op.status == "failed" and "500" in op.reason
        failed = [e for e in await h.events(uuid) if e.type == "preboot.check_failed"][-1]
        assert failed.data["check"] == "sync"
        changes = [(e.data["trigger"], e.data["cause"]) for e in await h.events(uuid) if e.type == "state.changed"]
        assert changes == [("start", "operator"), ("abort", "preboot_failed")]


async def test_local_config_file_is_reread_at_start(engine_harness, tmp_path):
    import yaml

    d = definition(env={"MOTD": "first"})
    uuid = d["settings"]["uuid"]
    harness = engine_harness([d])
    config_file = tmp_path / "wingman.yml"
    harness.daemon.starter.source.config_file = config_file
    config_file.write_text(yaml.safe_dump({"token": TOKEN, "servers": [definition(uuid, env={"MOTD": "edited"})]}))
    async with harness as h:
        await h.outcome(await h.act(uuid, "start"))
        assert "MOTD: edited" in h.processes.console(uuid).lines
        await h.outcome(await h.act(uuid, "stop"))
        # Edited again: the next start reads the new file (the daemon keeps the file as last read
        # only while it is unchanged).
        config_file.write_text(yaml.safe_dump({"token": TOKEN, "servers": [definition(uuid, env={"MOTD": "again"})]}))
        await h.outcome(await h.act(uuid, "start"))
        assert "MOTD: again" in h.processes.console(uuid).lines


async def test_disk_over_its_limit_refuses_the_boot(engine_harness, tmp_path):
    d = definition(build={"disk_space": 1})
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        folder = h.daemon.starter.folder(uuid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "world.dat").write_bytes(b"\1" * (2 * 1024 * 1024))
        op = await h.outcome(await h.act(uuid, "start"))
        assert op.status == "failed" and "over its 1 MiB limit" in op.reason
        assert [e for e in await h.events(uuid) if e.type == "preboot.check_failed"][-1].data["check"] == "disk"
        (folder / "world.dat").unlink()
        assert (await h.outcome(await h.act(uuid, "start"))).status == "succeeded"


async def test_empty_invocation_fails_the_environment_check(engine_harness):
    d = definition(invocation=" ")
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        op = await h.outcome(await h.act(uuid, "start"))
        assert op.status == "failed"
        assert [e for e in await h.events(uuid) if e.type == "preboot.check_failed"][-1].data["check"] == "environment"


async def test_a_daemon_that_is_not_root_refuses_to_start_a_server(engine_harness, monkeypatch):
    # The tests run as root; a daemon run by an ordinary user is made here by telling the engine
    # that its effective uid is 1000 (it asks os.geteuid, nothing else).
    monkeypatch.setattr(server_users.os, "geteuid", lambda: 1000)
    d = definition()
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        op = await h.outcome(await h.act(uuid, "start"))
        assert op.status == "failed" and "not root" in op.reason
        assert "system.insecure_run_servers_as_daemon_user" in op.reason
        assert [e for e in await h.events(uuid) if e.type == "preboot.check_failed"][-1].data["check"] == "permissions"
        assert h.state(uuid) == "offline" and not [e for e in await h.events(uuid) if e.type == "process.started"]


async def test_environment_variables_reach_the_process(engine_harness):
    d = definition(
        invocation="echo motd=$MOTD uuid=$P_SERVER_UUID; echo Server started; sleep 30", env={"MOTD": "hi there"}
    )
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        await h.outcome(await h.act(uuid, "start"))
        assert f"motd=hi there uuid={uuid}" in h.processes.console(uuid).lines
        await h.outcome(await h.act(uuid, "kill"))


async def test_config_files_are_rewritten_and_a_broken_one_does_not_stop_the_boot(engine_harness):
    d = definition(env={"SERVER_PORT": "27015"})
    d["process_configuration"]["configs"] = [
        {
            "file": "server.properties",
            "parser": "properties",
            "replace": [{"match": "server-port", "replace_with": "{{env.SERVER_PORT}}"}],
        },
        {"file": "broken.json", "parser": "json", "replace": [{"match": "a.b", "replace_with": 1}]},
    ]
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        folder = h.daemon.starter.folder(uuid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "server.properties").write_text("# game settings\nserver-port=25565\nmotd=hi\n")
        (folder / "broken.json").write_text("{not json")
        op = await h.outcome(await h.act(uuid, "start"))
        assert op.status == "succeeded" and h.state(uuid) == "running"
        assert (folder / "server.properties").read_text() == "# game settings\nserver-port=27015\nmotd=hi\n"
        soft = [e for e in await h.events(uuid) if e.type == "preboot.check_failed"]
        assert len(soft) == 1 and soft[0].data["check"] == "config_files" and soft[0].data["fatal"] is False
        assert "broken.json" in soft[0].data["reason"]
