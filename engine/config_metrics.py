"""The node's `metrics:` section: what GET /metrics exposes, and where (docs/metrics.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class MetricsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The families labelled with a server's uuid (its memory, CPU, disk, uptime). A node of
    # thousands of servers may turn them off: every other family has a fixed, small set of labels.
    per_server: bool = True
    # Also serve the metrics on this address ("host:port"), without a token, for scrapers that
    # cannot send one. Off by default: the API's /metrics needs the node or an audit token.
    listen: str | None = None
    # How often the separate listener's figures are brought up to date from the log (the API's
    # /metrics reads the log at each scrape).
    refresh_seconds: float = Field(default=5.0, ge=0.5, le=300)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        if v is None:
            return v
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"must be host:port, like 127.0.0.1:9101 (got {v!r})")
        return v

    @property
    def listen_address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)
