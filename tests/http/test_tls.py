"""HTTPS and WSS with Wings' `api.ssl` files: a real daemon serving a certificate made here, clients
that trust it and one that does not, refusals of bad files, and a renewal taken up on SIGHUP."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect

from tests.support.daemon import (
    REPO,
    SHARED,
    TERMINAL,
    TOKEN,
    DaemonProcess,
    definition,
    kill_leftovers,
    unavailable,
)
from tests.support.waiting import eventually
from tests.support.websocket import FRAME_TIMEOUT, Socket, token

WINGMAN = [sys.executable, "-m", "wingman.api.cli"]


# --- certificates made here: a CA the clients trust, and leaf certificates it signs ---------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey = field(default_factory=_key)

    def __post_init__(self):
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("wingman test CA"))
            .issuer_name(_name("wingman test CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, folder: Path, name: str) -> Leaf:
        """A certificate for 127.0.0.1 and localhost, written as certbot writes them (fullchain, privkey)."""
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return Leaf(cert, key)

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.cert.public_bytes(serialization.Encoding.PEM).decode())
        return ctx


@dataclass
class Leaf:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def write_cert(self, path: Path, authority: Authority) -> None:
        _replace(
            path,
            self.cert.public_bytes(serialization.Encoding.PEM)
            + authority.cert.public_bytes(serialization.Encoding.PEM),
        )

    def write_key(self, path: Path) -> None:
        _replace(
            path,
            self.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )

    def write(self, folder: Path, authority: Authority) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        self.write_cert(folder / "fullchain.pem", authority)
        self.write_key(folder / "privkey.pem")
        return folder / "fullchain.pem", folder / "privkey.pem"


def _replace(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)  # as certbot swaps its links: a reader sees the old file or the new one


def served_certificate(port: int) -> bytes:
    """The DER certificate the daemon presents to a new connection (not verified: just looked at)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True)


class TLSDaemon(DaemonProcess):
    """`wingman serve` with api.ssl, waited on over HTTPS that verifies the test's CA."""

    verify: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client(self, token: str = TOKEN) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30, verify=self.verify
        )

    def start(self, timeout: float = 30) -> TLSDaemon:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WINGMAN_")}
        self.log = open(self.folder / "daemon.log", "ab")
        self.proc = subprocess.Popen(
            [*WINGMAN, "serve", "--config", str(self.config_path)],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

        def settled() -> bool:
            assert self.proc.poll() is None, f"daemon exited with {self.proc.returncode}:\n{self.read_log()[-4000:]}"
            with self.client() as c:
                return c.get("/api/system", timeout=2).json()["wingman"]["settled"]

        eventually(
            settled,
            timeout,
            lambda: f"the daemon to answer over HTTPS, settled:\n{self.read_log()[-4000:]}",
            interval=0.1,
            ignoring=(httpx.HTTPError,),
        )
        return self


@pytest.fixture
def pki(tmp_path):
    authority = Authority()
    leaf = authority.issue(tmp_path, "node.example.com")
    cert, key = leaf.write(tmp_path / "live", authority)
    return authority, leaf, cert, key


@pytest.fixture
def tls_daemon(tmp_path, pki):
    started: list[TLSDaemon] = []

    def start(servers: list[dict] | None = None) -> TLSDaemon:
        authority, _leaf, cert, key = pki
        d = TLSDaemon(tmp_path / "daemon", servers=servers or [])
        d.verify = authority.client_context()
        d.extra_config = {
            "api": {"host": "127.0.0.1", "port": d.port, "ssl": {"enabled": True, "cert": str(cert), "key": str(key)}}
        }
        started.append(d)
        return d.start()

    yield start
    for d in started:
        d.stop()
        kill_leftovers(d.folder)


def test_https_and_wss_are_served_with_the_certificate_and_a_client_that_does_not_trust_it_is_refused(tls_daemon, pki):
    authority, leaf, _, _ = pki
    server = definition()
    d = tls_daemon([server])
    uuid = server["settings"]["uuid"]
    assert served_certificate(d.port) == leaf.der

    with d.client() as c:  # verifies the chain and the name (127.0.0.1) against the test's CA
        accepted = c.post(f"/api/servers/{uuid}/power", json={"action": "start"})
        assert accepted.status_code == 202, accepted.text
    assert d.wait_operation(accepted.json()["id"])["status"] == "succeeded"

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{d.url}/api/system", headers=d.headers)  # the system's CAs do not know this one
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{d.port}/api/system", headers=d.headers)  # no plain HTTP beside TLS

    async def websockets() -> list[dict]:
        url = f"wss://127.0.0.1:{d.port}/api/servers/{uuid}/ws"
        with pytest.raises(ssl.SSLCertVerificationError):
            async with connect(url, ssl=ssl.create_default_context(), open_timeout=FRAME_TIMEOUT):
                pass
        async with connect(url, ssl=authority.client_context(), open_timeout=FRAME_TIMEOUT) as ws:
            s = Socket(ws, uuid)
            return await s.auth(token(uuid))

    frames = asyncio.run(websockets())
    assert frames[1] == {"event": "status", "args": ["running"]}


def refused_serve(tmp_path: Path, ssl_settings: dict) -> subprocess.CompletedProcess:
    config = tmp_path / "node" / "config.yml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(
        yaml.safe_dump(
            {
                "token": TOKEN,
                "api": {"host": "127.0.0.1", "port": 1, "ssl": ssl_settings},
                "system": {"root_directory": "./var"},
            }
        )
    )
    result = subprocess.run(
        [*WINGMAN, "serve", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("WINGMAN_")},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.yml"]  # no database, no key: nothing made
    return result


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing certificate", r"api.ssl.cert: the certificate file \S+/live/gone.pem does not exist"),
        ("missing key", r"api.ssl.key: the private key file \S+/live/gone.pem does not exist"),
        (
            "key of another certificate",
            r"api.ssl.key: \S+/other/privkey.pem does not match the certificate \S+/live/fullchain.pem",
        ),
        ("a folder for a key", r"api.ssl.key: \S+/live is a folder, not the private key file"),
        ("no certificate in the file", r"api.ssl.cert: \S+/live/privkey.pem holds no PEM certificate"),
        ("not enabled fully", r"api.ssl.enabled is true: api.ssl.cert and api.ssl.key must both be set"),
    ],
)
def test_serve_refuses_a_missing_unreadable_or_mismatched_certificate_or_key(tmp_path, pki, case, expected):
    authority, _leaf, cert, key = pki
    other_cert, other_key = authority.issue(tmp_path, "other").write(tmp_path / "other", authority)
    settings = {
        "missing certificate": {"cert": str(cert.parent / "gone.pem"), "key": str(key)},
        "missing key": {"cert": str(cert), "key": str(key.parent / "gone.pem")},
        "key of another certificate": {"cert": str(cert), "key": str(other_key)},
        "a folder for a key": {"cert": str(cert), "key": str(key.parent)},
        "no certificate in the file": {"cert": str(key), "key": str(key)},
        "not enabled fully": {"cert": str(cert)},
    }[case]
    result = refused_serve(tmp_path, {"enabled": True, **settings})
    message = " ".join(result.stderr.split())
    assert re.search(expected, message), message


def test_a_key_this_user_cannot_read_is_refused_by_name(tmp_path, pki):
    """As root every file is readable: the check runs as another user (nobody), in a forked child."""
    from wingman.api.tls import TLSError, read_pair

    if os.geteuid() != 0:
        unavailable("needs root to become another user")
    authority, leaf, _, _ = pki
    # Under a folder every user can traverse (tmp_path's parents are 0700): the certificate is
    # readable by all, as certbot's are; the key by its owner only, as certbot's is.
    cert, key = leaf.write(Path(tempfile.mkdtemp(dir=SHARED)), authority)
    cert.parent.chmod(0o755)
    cert.chmod(0o644)
    key.chmod(0o600)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        message = b"read"
        try:
            os.setgid(65534)
            os.setuid(65534)
            read_pair(cert, key)
        except TLSError as exc:
            message = str(exc).encode()
        except BaseException as exc:  # noqa: BLE001 - the child must report whatever happened, then _exit
            message = repr(exc).encode()
        os.write(write, message)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        said = f.read().decode()
    os.waitpid(child, 0)
    assert said == f"api.ssl.key: the private key file {key} cannot be read by this user"


def test_sighup_serves_a_renewed_certificate_without_dropping_power_requests(tls_daemon, pki, tmp_path):
    authority, first, cert, key = pki
    server = definition(env={"BOOT_SECONDS": "3"})  # its start is still running across the reload
    uuid = server["settings"]["uuid"]
    d = tls_daemon([server])
    assert served_certificate(d.port) == first.der

    # A client hammering the daemon on new connections (a new handshake each time) throughout.
    failures: list[str] = []
    answered = 0
    stop = threading.Event()

    def hammer() -> None:
        nonlocal answered
        while not stop.is_set():
            try:
                with d.client() as c:
                    r = c.get(f"/api/servers/{uuid}")
                    assert r.status_code == 200, r.text
                answered += 1
            except Exception as exc:  # noqa: BLE001 - every failure is reported
                failures.append(repr(exc))

    hammering = threading.Thread(target=hammer)
    hammering.start()
    try:
        with d.client() as kept:  # one keep-alive connection, opened before the renewal
            op = kept.post(f"/api/servers/{uuid}/power", json={"action": "start"})
            assert op.status_code == 202, op.text

            renewed = authority.issue(tmp_path, "node.example.com")
            renewed.write_cert(cert, authority)  # certbot's order: the certificate, then the key
            renewed.write_key(key)
            d.proc.send_signal(signal.SIGHUP)
            eventually(
                lambda: served_certificate(d.port) == renewed.der,
                30,
                lambda: f"the renewed certificate served:\n{d.read_log()[-3000:]}",
            )
            assert "TLS certificate reloaded" in d.read_log()

            # The start asked for before the reload finishes, seen over the connection opened before it.
            body = eventually(
                lambda: kept.get(f"/api/operations/{op.json()['id']}").json(),
                60,
                "the start's outcome",
                until=lambda body: body["status"] in TERMINAL,
            )
            assert body["status"] == "succeeded", body

        # A half-done renewal (a new certificate, the old key) is refused; the last good pair stays.
        half = authority.issue(tmp_path, "node.example.com")
        half.write_cert(cert, authority)
        d.proc.send_signal(signal.SIGHUP)
        eventually(
            lambda: "TLS certificate not reloaded" in d.read_log(),
            30,
            lambda: f"the half-done renewal refused:\n{d.read_log()[-3000:]}",
        )
        assert served_certificate(d.port) == renewed.der
        with d.client() as c:
            assert c.post(f"/api/servers/{uuid}/power", json={"action": "stop"}).status_code == 202
    finally:
        stop.set()
        hammering.join(60)
    assert failures == []
    assert answered > 0
    assert d.proc.poll() is None  # SIGHUP did not end the daemon
