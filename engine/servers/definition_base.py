"""What every part of a server definition is built on (engine.servers.definition)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class OpenModel(BaseModel):
    # Strict, as Wings' Go decoder is: `0` is not a boolean, `"5"`, `true` and `5.0` are not integers. A
    # Panel sends real JSON types, and "strip_ansi: 0" read as false would hide a mistake.
    model_config = ConfigDict(extra="allow", populate_by_name=True, strict=True)
