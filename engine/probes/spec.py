"""The `probes:` key of a server definition, beside `settings` and `process_configuration`:

    probes:
      readiness: {type: tcp, port: 25565, interval: 1, timeout: 1, deadline: 120}
      liveness:  {type: tcp, port: 25565, interval: 5, timeout: 2, failure_threshold: 3}

`http` adds `path` and `status`. `port` defaults to the server's default allocation
(`settings.allocations.default.port`, what the Panel serves). Unknown keys inside a probe are
refused: a misspelt `failure_treshold` would otherwise leave a probe that never decides.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Kind = Literal["tcp", "http", "a2s", "minecraft", "done_line"]
NETWORK_KINDS = ("tcp", "http", "a2s", "minecraft")
MAX_SECONDS = 86400.0


class InvalidProbe(ValueError):
    """A `probes:` key that does not validate; the message names each field (`probes.liveness.port: ...`)."""


class ProbeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: Kind
    port: int | None = Field(default=None, ge=1, le=65535)
    initial_delay: float = Field(default=0.0, ge=0, le=MAX_SECONDS)
    interval: float = Field(default=1.0, gt=0, le=MAX_SECONDS)
    timeout: float = Field(default=1.0, gt=0, le=MAX_SECONDS)
    path: str = Field(default="/", min_length=1, max_length=2048, pattern=r"^/[!-~]*$")  # http only
    status: int = Field(default=200, ge=100, le=599)  # http only

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_floats(cls, data: Any) -> Any:
        # Strict mode refuses an int for a float field; `interval: 5` is what everyone writes.
        if isinstance(data, dict):
            return {
                k: float(v) if k in ("initial_delay", "interval", "timeout", "deadline") and type(v) is int else v
                for k, v in data.items()
            }
        return data

    @property
    def transport(self) -> str:
        return "udp" if self.type == "a2s" else "tcp"


class Readiness(ProbeSpec):
    interval: float = Field(default=1.0, gt=0, le=MAX_SECONDS)
    deadline: float = Field(default=120.0, gt=0, le=MAX_SECONDS)


class Liveness(ProbeSpec):
    interval: float = Field(default=5.0, gt=0, le=MAX_SECONDS)
    timeout: float = Field(default=2.0, gt=0, le=MAX_SECONDS)
    failure_threshold: int = Field(ge=1, le=1000)  # no default: how many failures mean hung is the owner's call

    @model_validator(mode="after")
    def _network_only(self) -> Liveness:
        if self.type == "done_line":
            raise ValueError("a liveness probe asks the server over the network: done_line is for readiness only")
        return self


class Probes(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    readiness: Readiness | None = None
    liveness: Liveness | None = None


def parse_probes(doc: object, default_port: int = 0) -> Probes:
    """The checked `probes:` key; InvalidProbe naming every bad field. A network probe with no
    port takes `default_port` (the default allocation's), and is refused when that is 0 too."""
    if not isinstance(doc, dict):
        raise InvalidProbe("probes: must be an object with `readiness` and/or `liveness`")
    try:
        probes = Probes.model_validate(doc)
    except ValidationError as exc:
        raise InvalidProbe(_explain(exc)) from None
    filled: dict[str, ProbeSpec] = {}
    for name in ("readiness", "liveness"):
        probe: ProbeSpec | None = getattr(probes, name)
        if probe is None or probe.type == "done_line" or probe.port is not None:
            continue
        if not 1 <= default_port <= 65535:
            raise InvalidProbe(
                f"probes.{name}.port: no port given and the server has no default allocation "
                "(settings.allocations.default.port) to take it from"
            )
        filled[name] = probe.model_copy(update={"port": default_port})
    return probes.model_copy(update=filled) if filled else probes


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        # A union member's name (`Readiness`) or a validator's tag is not a field: leave it out.
        loc = ".".join(str(x) for x in err["loc"] if not str(x)[:1].isupper() and "[" not in str(x))
        parts.append(f"probes.{loc}: {err['msg']}" if loc else f"probes: {err['msg']}")
    return "; ".join(parts)


def probes_of(definition: dict[str, Any], default_port: int) -> Probes | None:
    """The probes of a recorded definition (checked when it was taken), or None when it has none."""
    doc = definition.get("probes")
    return None if doc is None else parse_probes(doc, default_port)
