"""A transparency-log witness written here from the specs alone (c2sp.org/tlog-witness,
tlog-cosignature, signed-note, tlog-checkpoint, and RFC 9162 section 2.1.4 for consistency), with
hashlib and cryptography and none of wingman's code: the cosigning tests submit a real daemon's
checkpoints to it over HTTP and check what it cosigned or refused.

It serves `POST <prefix>/add-checkpoint` on a loopback socket (a ThreadingHTTPServer in a thread,
HTTP/1.1 keep-alive), trusts per origin a set of Ed25519 signed-note verifier keys, and keeps per
origin the latest cosigned (size, root), checked and updated under one lock as the spec requires.
Every request's outcome is recorded (`answers`) for the tests to read. Its signed-note keys and its
RFC 9162 consistency check are those of the spec client (tests/support/tlog_client.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tests.support.synthetic_log import server_ids, server_steps
from tests.support.tlog_client import EM_DASH, consistent, key_id, log_vkey, vkey
from wingman.engine.events import NewEvent

EMPTY = hashlib.sha256(b"").digest()
MAX_BODY = 1 << 20


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign_log_note(text: str, name: str, private: Ed25519PrivateKey) -> str:
    """`text` as a signed note with one Ed25519 (type 0x01) signature of key `name` (signed-note)."""
    kid = key_id(name, b"\x01" + _raw(private.public_key()))
    return f"{text}\n{EM_DASH} {name} {base64.b64encode(kid + private.sign(text.encode())).decode()}\n"


def write_log_key(folder: Path, node: str) -> str:
    """A node's checkpoint key written at <folder>/var/checkpoint-key.pem before its first start (so
    a witness can be told the log's verifier key first); that verifier key."""
    key = Ed25519PrivateKey.generate()
    (folder / "var").mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(folder / "var" / "checkpoint-key.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    return log_vkey(node, base64.b64encode(_raw(key.public_key())).decode())


def cosigned_lines(note: str, witness_vkey: str) -> list[int]:
    """The timestamps of the note's cosignature/v1 lines that verify against `witness_vkey`
    (tlog-cosignature: over `cosignature/v1`, the time line, then the note text)."""
    name, hex_id, b64 = witness_vkey.split("+", 2)
    typed = base64.b64decode(b64)
    assert typed[0] == 4 and len(typed) == 33 and key_id(name, typed).hex() == hex_id
    public = Ed25519PublicKey.from_public_bytes(typed[1:])
    cut = note.rfind("\n\n")
    text, found = note[: cut + 1], []
    for line in note[cut + 2 :].splitlines():
        dash, who, sig_b64 = line.split(" ")
        sig = base64.b64decode(sig_b64)
        if dash != EM_DASH or who != name or sig[:4] != key_id(name, typed):
            continue
        stamp = int.from_bytes(sig[4:12], "big")
        try:
            public.verify(sig[12:], f"cosignature/v1\ntime {stamp}\n{text}".encode())
        except InvalidSignature:
            continue
        found.append(stamp)
    return found


class Refused(Exception):
    def __init__(self, status: int, why: str, body: str = "", content_type: str = "text/plain"):
        super().__init__(why)
        self.status, self.body, self.content_type = status, body or why + "\n", content_type


@dataclass
class Answer:
    origin: str
    old: int | None
    size: int | None
    status: int
    why: str = ""


class SpecWitness:
    """A witness named `name` with a fresh Ed25519 key, trusting `logs` (origin -> log vkeys)."""

    def __init__(self, name: str, logs: dict[str, list[str]] | None = None):
        self.name = name
        self.private = Ed25519PrivateKey.generate()
        self.typed_key = b"\x04" + _raw(self.private.public_key())
        self.logs: dict[str, list[str]] = dict(logs or {})
        self.latest: dict[str, tuple[int, bytes]] = {}
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def vkey(self) -> str:
        return vkey(self.name, self.typed_key)

    # -- the protocol ----------------------------------------------------------------------------

    def _verify_note(self, note: str) -> tuple[str, int, bytes, str]:
        """(origin, size, root, text) of a checkpoint a trusted key of its origin signed."""
        if any(c < " " and c != "\n" for c in note) or not note.endswith("\n") or "\n\n" not in note:
            raise Refused(400, "not a signed note")
        cut = note.rfind("\n\n")
        text, sigs = note[: cut + 1], note[cut + 2 :].splitlines()
        lines = text.split("\n")[:-1]
        if len(lines) < 3:
            raise Refused(400, "a checkpoint has three lines at least")
        origin = lines[0]
        if origin not in self.logs:
            raise Refused(404, f"unknown origin {origin}")
        trusted = []
        for k in self.logs[origin]:
            name, hex_id, b64 = k.split("+", 2)
            typed = base64.b64decode(b64)
            trusted.append((name, bytes.fromhex(hex_id), Ed25519PublicKey.from_public_bytes(typed[1:])))
        verified = 0
        for line in sigs:
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != EM_DASH:
                raise Refused(400, "not a signature line")
            try:
                sig = base64.b64decode(parts[2], validate=True)
            except binascii.Error:
                raise Refused(400, "a signature is not base64") from None
            for name, kid, public in trusted:
                if name == parts[1] and kid == sig[:4]:
                    try:
                        public.verify(sig[4:], text.encode())
                    except InvalidSignature:
                        raise Refused(403, "a trusted key's signature does not verify") from None
                    verified += 1
        if not verified:
            raise Refused(403, "no signature from a trusted key")
        size_text = lines[1]
        if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
            raise Refused(400, "bad tree size")
        root = base64.b64decode(lines[2], validate=True)
        if len(root) != 32:
            raise Refused(400, "bad root")
        return origin, int(size_text), root, text

    def add_checkpoint(self, body: str) -> str:
        """The cosignature line for the body, or Refused with the status the spec says (recorded)."""
        seen = Answer("?", None, None, 200)
        try:
            text = self._check_and_update(body, seen)
        except Refused as r:
            seen.status, seen.why = r.status, str(r)
            raise
        finally:
            self.answers.append(seen)
        stamp = int(time.time())
        sig = self.private.sign(f"cosignature/v1\ntime {stamp}\n{text}".encode())
        blob = key_id(self.name, self.typed_key) + stamp.to_bytes(8, "big") + sig
        return f"{EM_DASH} {self.name} {base64.b64encode(blob).decode()}\n"

    def _check_and_update(self, body: str, seen: Answer) -> str:
        head, sep, note = body.partition("\n\n")
        if not sep:
            raise Refused(400, "no empty line before the checkpoint")
        lines = head.split("\n")
        if not lines[0].startswith("old ") or not lines[0][4:].isdigit() or len(lines) - 1 > 63:
            raise Refused(400, "bad old size line, or too many proof lines")
        seen.old = old = int(lines[0][4:])
        try:
            proof = [base64.b64decode(p, validate=True) for p in lines[1:]]
        except binascii.Error:
            raise Refused(400, "a proof line is not base64") from None
        seen.origin = note.split("\n", 1)[0]
        origin, size, root, text = self._verify_note(note)
        seen.size = size
        if old > size:
            raise Refused(400, "old size past the checkpoint")
        with self._lock:  # check and update as one step (the spec's rollback race)
            have_size, have_root = self.latest.get(origin, (0, EMPTY))
            if old != have_size:
                raise Refused(409, "old size is not the latest cosigned", f"{have_size}\n", "text/x.tlog.size")
            if size == 0 and root != EMPTY:
                raise Refused(422, "a tree of size 0 has the empty root")
            if old == 0 and proof:
                raise Refused(422, "a proof from the empty tree")
            if old == size and root != have_root:
                raise Refused(422, "same size, another root")
            if 0 < old < size and not consistent(old, size, have_root, root, proof):
                raise Refused(422, "the consistency proof does not verify")
            self.latest[origin] = (size, root)
        return text

    def statuses(self, origin: str) -> list[int]:
        return [a.status for a in self.answers if a.origin == origin]

    # -- HTTP ---------------------------------------------------------------------------------------

    def serve(self, prefix: str = "/witness", port: int = 0) -> str:
        """Start listening on 127.0.0.1 (`port`, or any free one); returns the submission prefix URL."""
        witness = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the spec recommends

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: str, content_type: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path != f"{prefix}/add-checkpoint" or length > MAX_BODY:
                    self.rfile.read(min(length, MAX_BODY))
                    self._send(404, "not here\n", "text/plain")
                    return
                body = self.rfile.read(length).decode("utf-8", errors="replace")
                try:
                    self._send(200, witness.add_checkpoint(body), "text/plain; charset=utf-8")
                except Refused as r:
                    self._send(r.status, r.body, r.content_type)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hangs up mid-answer (one reading a bounded answer) is not news

        self._server = Server(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name=f"witness {self.name}", daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}{prefix}"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


async def cosignatures_migration_round_trip(url: str) -> list[bool]:
    """Whether the cosignatures table is there: at the head, after alembic's downgrade of 0009, and
    after upgrading again (migration 0009 both ways on the database at `url`)."""
    from alembic import command
    from sqlalchemy import inspect

    from wingman.engine.store.database import _alembic_config, create_engine, upgrade

    engine = create_engine(url)
    seen: list[bool] = []

    async def look() -> None:
        async with engine.connect() as conn:
            seen.append(await conn.run_sync(lambda c: inspect(c).has_table("cosignatures")))

    try:
        await upgrade(engine)
        await look()
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), "0008_checkpoints_per_node"))
        await look()
        await upgrade(engine)
        await look()
    finally:
        await engine.dispose()
    return seen


class Histories:
    """Two servers' synthetic histories appended through an in-process daemon's store, continued
    from one call to the next (a fresh history on a stream already written is not one)."""

    def __init__(self) -> None:
        self.ids = server_ids(2, 9)
        self.steps = {s: server_steps(s, random.Random(s)) for s in self.ids}
        self.n = 0

    async def append(self, daemon: Any, count: int) -> None:
        for _ in range(count):
            sid = self.ids[self.n % 2]
            self.n += 1
            typ, data, meta = next(self.steps[sid])
            await daemon.store.append(sid, [NewEvent(type=typ, data=data, metadata=meta)])


def cli_verify(database: Path | str, *args: str) -> tuple[int, dict, str]:
    """`wingman audit verify --database DATABASE ARGS`: (exit code, JSON report, text report)."""
    from typer.testing import CliRunner

    from wingman.api.cli.main import app

    runner = CliRunner()
    base = ["audit", "verify", "--database", str(database), *args]
    js = runner.invoke(app, [*base, "--format", "json"], env={"COLUMNS": "200"})
    text = runner.invoke(app, base, env={"COLUMNS": "200"})
    assert js.exit_code == text.exit_code, (js.output, text.output)
    return js.exit_code, json.loads(js.stdout), text.stdout
