"""A server definition's `process_configuration` (Wings' names): the done-lines that say a
starting server is ready, how it is stopped, and the configuration files rewritten before it boots."""

from __future__ import annotations

import re
import signal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic.config import JsonDict

from wingman.engine.servers.definition_base import OpenModel
from wingman.engine.servers.patterns import check_done_pattern, console_line_problem
from wingman.engine.signals import parse_signal


class Startup(OpenModel):
    # One done-line or several (Wings takes both); `regex:` lines must compile in RE2, which no schema says.
    done: Annotated[
        list[str], WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
    ] = Field(default_factory=list)
    strip_ansi: bool = False

    @field_validator("done", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @field_validator("done")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for pattern in v:
            check_done_pattern(pattern)
        return v


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


# The names parse_signal takes (`SIGTERM`, `term`, `C`, `^C`), in any ASCII case, as a pattern: JSON
# Schema has no case-insensitive flag.
SIGNAL_NAME = "^(?:{sig})?(?:{names})$|^\\^?[Cc]$".format(
    sig=_any_case("SIG"), names="|".join(_any_case(n[3:]) for n in sorted(signal.Signals.__members__))
)
# What console_line_problem refuses, as JSON Schema can say it: line breaks, NUL and the other C0
# controls but tab, and DEL. (A lone surrogate, which it refuses too, cannot be said portably.)
CONSOLE_LINE = r"^[^\x00-\x08\x0a-\x1f\x7f]*$"
_STOP_VALUE_BY_TYPE: JsonDict = {
    "allOf": [
        {
            "if": {"properties": {"type": {"const": "command"}}, "required": ["type"]},
            "then": {
                "properties": {"value": {"type": "string", "minLength": 1, "pattern": CONSOLE_LINE}},
                "required": ["value"],
            },
        },
        {
            "if": {"anyOf": [{"not": {"required": ["type"]}}, {"properties": {"type": {"const": "signal"}}}]},
            "then": {
                "properties": {"value": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": SIGNAL_NAME}]}}
            },
        },
    ]
}


class Stop(OpenModel):
    model_config = ConfigDict(json_schema_extra=_STOP_VALUE_BY_TYPE)

    type: Literal["signal", "command", "native", "stop"] = "signal"
    value: str | None = "SIGTERM"

    @model_validator(mode="after")
    def _check(self) -> Stop:
        if self.type == "stop":  # Wings spells Docker's own stop "stop"
            self.type = "native"
        if self.type == "signal" and self.value is not None and not re.fullmatch(SIGNAL_NAME, self.value):
            raise ValueError(f"unknown signal {self.value!r}")
        if self.type == "signal":
            parse_signal(self.value or "SIGTERM")
        # The default value is a signal's: a command stop must name its own.
        if self.type == "command":
            if "value" not in self.model_fields_set or not self.value:
                raise ValueError("a command stop needs a value (the text written to stdin)")
            if problem := console_line_problem(self.value):
                raise ValueError(f"the stop command cannot be written to the console: {problem}")
        return self


class Replacement(OpenModel):
    match: str
    replace_with: Any = ""
    if_value: str | None = None


class ConfigFile(OpenModel):
    file: str
    parser: Literal["properties", "yaml", "yml", "json", "ini", "file", "xml"] = "file"
    replace: list[Replacement] = Field(default_factory=list)


class ProcessConfiguration(OpenModel):
    startup: Startup = Field(default_factory=Startup)
    stop: Stop = Field(default_factory=Stop)
    configs: list[ConfigFile] = Field(default_factory=list)
