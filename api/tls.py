"""HTTPS and WSS with Wings' `api.ssl` files, and a renewed certificate taken up without a restart.

A Panel served over HTTPS makes its users' browsers open `wss://` to the node, so the daemon
terminates TLS itself, as Wings does, usually with certbot's `fullchain.pem` and `privkey.pem`.

Renewal: certbot replaces those files every 60 days; `reload()` (on SIGHUP) reads them again.
The context given to the server is never changed after it serves: each handshake is switched (in
its SNI callback, which OpenSSL calls for every ClientHello, with or without a server name) to the
context of the newest pair that loaded whole. Loading a renewed pair into the serving context
itself would be unsafe: certbot swaps the two files one after the other, and OpenSSL, handed a
certificate that does not match the loaded key, drops the key, leaving a context that cannot
complete a handshake. Here a bad or half-renewed pair is refused and the old one served on.
Connections already open are untouched, so requests in flight carry on."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import ssl
from datetime import datetime
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization


class TLSError(Exception):
    """The certificate or key cannot be served; the message names the file and why."""


def read_pair(cert_path: Path, key_path: Path) -> x509.Certificate:
    """The served (first) certificate of the chain at `cert_path`, once it is known that the key
    at `key_path` is its private key."""
    cert_pem = _read(cert_path, "api.ssl.cert", "certificate")
    key_pem = _read(key_path, "api.ssl.key", "private key")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise TLSError(f"api.ssl.cert: {cert_path} holds no PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TLSError(
            f"api.ssl.key: {key_path} is encrypted with a password; give an unencrypted key (certbot's privkey.pem is)"
        ) from None
    except (ValueError, serialization.UnsupportedAlgorithm):
        raise TLSError(f"api.ssl.key: {key_path} holds no PEM private key") from None
    served = chain[0]
    if _public(served.public_key()) != _public(key.public_key()):
        raise TLSError(
            f"api.ssl.key: {key_path} does not match the certificate {cert_path} "
            f"({describe(served)}): they are not a pair (a renewal half done, or the wrong files?)"
        )
    return served


def _read(path: Path, setting: str, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TLSError(f"{setting}: the {what} file {path} does not exist") from None
    except IsADirectoryError:
        raise TLSError(f"{setting}: {path} is a folder, not the {what} file") from None
    except PermissionError:
        raise TLSError(f"{setting}: the {what} file {path} cannot be read by this user") from None
    except OSError as exc:
        raise TLSError(f"{setting}: the {what} file {path} cannot be read: {exc.strerror}") from None


def _public(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def describe(cert: x509.Certificate) -> str:
    """What an operator recognises a certificate by: its subject, expiry and SHA-256 fingerprint."""
    fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return (
        f"{cert.subject.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, "
        f"sha256 {fingerprint[:16]}"
    )


def _context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    # As Wings serves (TLS 1.2 and up) and as Sanic's own contexts do (HTTP/1.1 over ALPN).
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, OSError) as exc:  # the files changed since read_pair looked at them
        raise TLSError(f"api.ssl: {cert_path} and {key_path} could not be loaded: {exc}") from None
    return context


class ServedCertificate:
    """The TLS context to serve with (`context`), and the certificate pair behind it, which
    `reload()` replaces for the handshakes that follow."""

    def __init__(self, cert_path: Path, key_path: Path):
        self.cert_path, self.key_path = cert_path, key_path
        self.certificate = read_pair(cert_path, key_path)
        self._current = _context(cert_path, key_path)
        self.context = _context(cert_path, key_path)
        self.context.sni_callback = self._pick
        self.loaded_at = datetime.now()

    def _pick(self, connection: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        connection.context = self._current
        return None

    def reload(self) -> x509.Certificate:
        """Read the files again; new handshakes get the new pair. Raises TLSError (and keeps
        serving the old pair) when they are not a valid, matching pair."""
        certificate = read_pair(self.cert_path, self.key_path)
        self._current = _context(self.cert_path, self.key_path)
        self.certificate = certificate
        self.loaded_at = datetime.now()
        return certificate


def reload_on_hangup(served: ServedCertificate) -> None:
    """SIGHUP loads the certificate files again (certbot: `--deploy-hook "systemctl reload wingman"`,
    with `ExecReload=/bin/kill -HUP $MAINPID`). Call from within the running loop."""
    log = structlog.get_logger("wingman.tls")

    def reload() -> None:
        try:
            cert = served.reload()
        except TLSError as exc:
            log.error("TLS certificate not reloaded; the previous one is still served", reason=str(exc))
        else:
            log.info("TLS certificate reloaded; new connections get it", certificate=describe(cert))

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
