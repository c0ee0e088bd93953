"""Checkpoints made by a real `wingman serve` over a real socket: the key printed and served, a
checkpoint at a clean shutdown and every T seconds, a daemon killed between two checkpoints leaving
a log that verifies with its uncovered events counted, the tree resumed at the next boot, key
rotation from the CLI, and a witness that receives every checkpoint."""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.support.daemon import AUDIT_TOKEN, REPO, TOKEN, definition, free_port
from tests.support.waiting import eventually

QUIET = {"checkpoint_every_events": 100000, "checkpoint_every_seconds": 3600}  # only the shutdown one


def run_cycle(d, uuid: str) -> None:
    with d.client() as c:
        for action in ("start", "stop"):
            op = c.post(f"/api/servers/{uuid}/power", json={"action": action}).json()
            assert d.wait_operation(op["id"])["status"] == "succeeded"


def db_size(d) -> tuple[int, int]:
    """(events, size of the last checkpoint) read from the daemon's files."""
    con = sqlite3.connect(f"file:{d.folder / 'var' / 'wingman.db'}?mode=ro", uri=True)
    try:
        events = con.execute("SELECT count(*) FROM events").fetchone()[0]
        last = con.execute("SELECT coalesce(max(size), 0) FROM checkpoints").fetchone()[0]
    finally:
        con.close()
    return events, last


def cli_verify(d, key: str) -> tuple[int, str, dict]:
    base = [
        sys.executable,
        "-m",
        "wingman.api.cli",
        "audit",
        "verify",
        "--database",
        str(d.folder / "var" / "wingman.db"),
        "--key",
        key,
        "--checkpoints",
        str(d.folder / "var" / "checkpoints.jsonl"),
    ]
    text = subprocess.run(base, cwd=REPO, capture_output=True, text=True, timeout=120)
    js = subprocess.run([*base, "--format", "json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert text.returncode == js.returncode, (text.stderr, js.stderr)
    return text.returncode, text.stdout, json.loads(js.stdout)


def test_key_printed_served_and_kept_private(daemon_process):
    d = daemon_process(servers=[definition()], audit=QUIET)
    with d.client(AUDIT_TOKEN) as c:
        body = c.get("/api/audit/key").json()
        assert c.post("/api/audit/key/rotate").status_code == 403  # an auditor may not rotate
        bad = c.get("/api/audit/verify", params={"key": "not-a-key"})
        assert bad.status_code == 400 and "`key`" in bad.json()["error"]
    assert body["algorithm"] == "Ed25519" and len(base64.b64decode(body["public_key"])) == 32
    assert body["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert body["public_key"] in d.read_log()  # printed at start
    key_file = d.folder / "var" / "checkpoint-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert body["tree_size"] >= 1 and body["not_yet_covered"] == body["tree_size"] and body["latest_checkpoint"] is None


def test_killed_between_two_checkpoints(daemon_process, tmp_path):
    servers = [definition(), definition()]
    folder = tmp_path / "node"
    first = daemon_process(servers=servers, folder=folder, audit=QUIET)
    with first.client(AUDIT_TOKEN) as c:
        key = c.get("/api/audit/key").json()["public_key"]
    run_cycle(first, servers[0]["settings"]["uuid"])
    first.stop()  # SIGTERM: a clean shutdown signs a last checkpoint over everything
    events, covered = db_size(first)
    assert covered == events

    second = daemon_process(servers=servers, folder=folder, audit=QUIET)
    run_cycle(second, servers[1]["settings"]["uuid"])
    second.stop(signal.SIGKILL)
    events, last = db_size(second)
    assert last == covered < events
    code, text, doc = cli_verify(second, key)
    assert code == 0, text
    assert f"{events - covered} events not yet covered" in text
    assert doc["checkpoints"]["not_yet_covered"] == events - covered and doc["checkpoints"]["ok"]

    third = daemon_process(servers=servers, folder=folder, audit=QUIET)
    ready = [json.loads(line) for line in third.read_log().splitlines() if "checkpoints: tree ready" in line][-1]
    assert (ready["how"], ready["not_yet_covered"], ready["events_read"]) == (
        "resumed",
        events - covered,
        events - covered,
    )
    with third.client() as c:
        doc = c.get("/api/audit/verify").json()
    assert doc["ok"] and doc["checkpoints"]["not_yet_covered"] >= events - covered
    third.stop()
    code, text, doc = cli_verify(third, key)
    assert code == 0 and doc["checkpoints"]["not_yet_covered"] == 0, text


class _Witness(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # the name http.server calls
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.headers.get("Authorization"), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_timer_checkpoints_rotation_and_witness(daemon_process):
    witness = ThreadingHTTPServer(("127.0.0.1", free_port()), _Witness)
    _Witness.received = []
    threading.Thread(target=witness.serve_forever, daemon=True).start()
    try:
        server = definition()
        d = daemon_process(
            servers=[server],
            audit={
                "checkpoint_every_events": 100000,
                "checkpoint_every_seconds": 0.2,
                "witness_url": f"http://127.0.0.1:{witness.server_port}/checkpoints",
            },
        )
        with d.client(AUDIT_TOKEN) as auditor:
            first_key = auditor.get("/api/audit/key").json()["public_key"]

            def covered() -> dict:
                return eventually(
                    lambda: auditor.get("/api/audit/key").json(),
                    what="every event covered by a checkpoint",
                    until=lambda b: b["latest_checkpoint"] and b["not_yet_covered"] == 0,
                )

            covered()  # by one signed on the timer
            run_cycle(d, server["settings"]["uuid"])
            rotated = subprocess.run(
                [sys.executable, "-m", "wingman.api.cli", "rotate-key", "--config", str(d.config_path)],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert rotated.returncode == 0, rotated.stderr
            new_key = auditor.get("/api/audit/key").json()["public_key"]
            assert new_key != first_key and new_key in rotated.stdout
            run_cycle(d, server["settings"]["uuid"])
            covered()  # by one signed with the new key
            verified = auditor.get("/api/audit/verify").json()
            assert verified["ok"] and [k["key"] for k in verified["checkpoints"]["keys"]] == [first_key, new_key]
        d.stop()
        events, last = db_size(d)
        assert events == last
        code, text, doc = cli_verify(d, first_key)
        assert code == 0 and "1 key rotation(s) followed" in text, text
        # The witness got every checkpoint, with the node's credentials, each signed.
        got = eventually(
            lambda: [b for _, b in _Witness.received if b["checkpoint"]["size"] == events],
            what="the shutdown checkpoint at the witness",
        )
        assert got
        assert {auth for auth, _ in _Witness.received} == {f"Bearer test.{TOKEN}"}
        seqs = [b["checkpoint"]["seq"] for _, b in _Witness.received]
        assert seqs == list(range(1, len(seqs) + 1))
        for _, b in _Witness.received:
            body = b["checkpoint"]
            message = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            Ed25519PublicKey.from_public_bytes(base64.b64decode(body["key"])).verify(
                base64.b64decode(b["signature"]), message
            )
    finally:
        witness.shutdown()
