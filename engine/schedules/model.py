"""What a schedule is: its cron expression and time zone, its steps, its conditions, its missed-run
policy. Validated at the door (the API, a definition): a cron expression that does not parse, an
unknown action or time zone is refused with the field it is in."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterError, croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wingman.engine.servers.patterns import console_line_problem
from wingman.engine.statechart import load_statechart

StepAction = Literal["start", "stop", "restart", "kill", "command"]
STEP_ACTIONS = ("start", "stop", "restart", "kill", "command")
POWER_STEPS = ("start", "stop", "restart", "kill")
SCHEDULE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_STEPS = 20
MAX_QUIET_MINUTES = 7 * 24 * 60
NEVER = datetime(9999, 12, 31, tzinfo=UTC)  # the next time of an expression that names none (30 February)
# The lines console_line_problem lets through, as JSON Schema can say it (as engine.servers.definition's).
CONSOLE_LINE = r"^[^\x00-\x08\x0a-\x1f\x7f]*$"
ZONES = frozenset(available_timezones())


def _cron_pattern() -> str:
    """Five fields of numbers, ranges, lists and steps, each number in its field's range: what the
    door takes, said as a pattern (names of months and days, `L`, `#` and `?` are not taken)."""
    numbers = {
        "minute": (r"[0-5]?[0-9]", r"(?:[1-9]|[1-5][0-9])"),
        "hour": (r"(?:1?[0-9]|2[0-3])", r"(?:[1-9]|1[0-9]|2[0-3])"),
        "day": (r"(?:[1-9]|[12][0-9]|3[01])", r"(?:[1-9]|[12][0-9]|30)"),
        "month": (r"(?:[1-9]|1[0-2])", r"(?:[1-9]|1[01])"),
        "weekday": (r"[0-6]", r"[1-6]"),
    }
    fields = []
    for n, step in numbers.values():
        item = rf"(?:\*|{n}(?:-{n})?)(?:/{step})?"
        fields.append(rf"{item}(?:,{item})*")
    return "^" + " ".join(fields) + "$"


CRON = _cron_pattern()


@cache
def default_states() -> tuple[str, ...]:
    """The default statechart's states: what the document says `only_in_states` takes (a node
    running another chart takes that chart's, and says so with a 422)."""
    return load_statechart().states


def _no_nulls(data: Any, keys: tuple[str, ...]) -> Any:
    # Absent and null are not the same at the door: the document has no null for these.
    if isinstance(data, dict):
        for key in keys:
            if key in data and data[key] is None:
                raise ValueError(f"`{key}` may be left out, not null")
    return data


def _step_schema(schema: dict[str, Any]) -> None:
    props = schema["properties"]
    props["command"] = {"type": "string", "minLength": 1, "pattern": CONSOLE_LINE}
    schema["allOf"] = [
        {
            "if": {"properties": {"action": {"const": "command"}}, "required": ["action"]},
            "then": {"required": ["command"]},
            "else": {"not": {"required": ["command"]}},
        }
    ]


def _schedule_schema(schema: dict[str, Any]) -> None:
    props = schema["properties"]
    props["id"] = {"type": "string", "pattern": SCHEDULE_ID}
    props["cron"] = {"type": "string", "pattern": CRON}
    props["timezone"] = {"type": "string", "enum": sorted(ZONES), "default": "UTC"}
    props["action"] = {"type": "string", "enum": list(STEP_ACTIONS)}
    props["command"] = {"type": "string", "minLength": 1, "pattern": CONSOLE_LINE}
    props["steps"] = {**props["steps"], "minItems": 1}
    schema["oneOf"] = [
        {
            "required": ["action"],
            "not": {"required": ["steps"]},
            "if": {"properties": {"action": {"const": "command"}}},
            "then": {"required": ["command"]},
            "else": {"not": {"required": ["command"]}},
        },
        {"required": ["steps"], "not": {"anyOf": [{"required": ["action"]}, {"required": ["command"]}]}},
    ]


def _conditions_schema(schema: dict[str, Any]) -> None:
    schema["properties"]["only_in_states"] = {
        "type": "array",
        "items": {"type": "string", "enum": list(default_states())},
    }


class _Closed(BaseModel):
    # A typo in a schedule is a condition that never applies: refused, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


class Step(_Closed):
    """One power action, or one line written to the server's console (`command`)."""

    model_config = ConfigDict(json_schema_extra=_step_schema)

    action: StepAction
    command: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _given(cls, data: Any) -> Any:
        return _no_nulls(data, ("command",))

    @model_validator(mode="after")
    def _command(self) -> Step:
        if self.action == "command":
            if not self.command:
                raise ValueError("a command step needs `command` (the line written to the console)")
            if problem := console_line_problem(self.command):
                raise ValueError(f"the command cannot be written to the console: {problem}")
        elif self.command is not None:
            raise ValueError(f"`command` belongs to a command step, not to {self.action}")
        return self


class Conditions(_Closed):
    """What must hold when the schedule fires, or the firing is skipped (and the reason recorded)."""

    model_config = ConfigDict(json_schema_extra=_conditions_schema)

    only_in_states: list[str] = Field(default_factory=list, description="fire only in one of these states")
    not_within_minutes_of_operator: float = Field(
        default=0, ge=0, le=MAX_QUIET_MINUTES, description="skip when an operator acted on the server this recently"
    )


class Schedule(_Closed):
    """A schedule as given. `action` (one step) or `steps` (a chain: each step waits for the
    previous one's outcome and runs only when it succeeded)."""

    model_config = ConfigDict(json_schema_extra=_schedule_schema)

    id: str | None = None
    cron: str
    timezone: str = "UTC"
    action: StepAction | None = None
    command: str | None = None
    steps: list[Step] = Field(default_factory=list, max_length=MAX_STEPS)
    conditions: Conditions = Field(default_factory=Conditions)
    missed: Literal["skip", "run_once"] = "skip"
    skip_next: bool = False

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(SCHEDULE_ID, v):
            raise ValueError("an id is 1 to 64 letters, digits, `_`, `.` or `-`, starting with a letter or digit")
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        # Five fields (minute to weekday): croniter also takes a sixth (seconds), which no Panel sends.
        if not re.fullmatch(CRON, v) or not croniter.is_valid(v):
            raise ValueError(
                f"{v[:80]!r} is not a cron expression of five fields (minute hour day month weekday: numbers, "
                "`*`, ranges, lists and steps)"
            )
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        if v not in ZONES:
            raise ValueError(f"{v[:80]!r} is not a known time zone (an IANA name, such as Europe/Paris)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _given(cls, data: Any) -> Any:
        return _no_nulls(data, ("id", "action", "command", "steps", "conditions"))

    @model_validator(mode="after")
    def _one_way(self) -> Schedule:
        given = self.model_fields_set
        if ("action" in given) == ("steps" in given) or ("steps" in given and not self.steps):
            raise ValueError("give `action` (one step) or `steps` (a chain of at least one), not both and not neither")
        if "steps" in given and "command" in given:
            raise ValueError("`command` belongs to `action: command`; a chain's command steps carry their own")
        if self.action is not None:
            self.steps = [
                Step(action=self.action) if self.command is None else Step(action=self.action, command=self.command)
            ]
            self.action = self.command = None
        return self

    def next_after(self, moment: datetime) -> datetime:
        """The first time after `moment` (aware) the expression names, in the schedule's zone."""
        zone = ZoneInfo(self.timezone)
        try:
            nxt = croniter(self.cron, moment.astimezone(zone)).get_next(datetime)
        except CroniterError:  # a day that never comes (30 February): never due
            return NEVER
        assert isinstance(nxt, datetime)
        return nxt

    def stored(self) -> dict[str, object]:
        """The schedule as recorded (its steps spelled out)."""
        return self.model_dump(mode="json", exclude={"action", "command"}, exclude_none=True)


class InvalidSchedule(ValueError):
    """A schedule refused at the door; `field` names where (`cron`, `steps.1.action`...)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_schedule(doc: object, states: frozenset[str] | None = None) -> Schedule:
    """A schedule from its JSON form; InvalidSchedule (naming the first bad field) otherwise.
    `states`: the statechart's states, which `only_in_states` must name."""
    if not isinstance(doc, dict):
        raise InvalidSchedule("schedule", "a schedule is a JSON object")
    try:
        schedule = Schedule.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "schedule"
        raise InvalidSchedule(field, err["msg"].removeprefix("Value error, ")) from None
    if states is not None:
        for i, state in enumerate(schedule.conditions.only_in_states):
            if state not in states:
                raise InvalidSchedule(
                    f"conditions.only_in_states.{i}",
                    f"{state[:60]!r} is not a state (known: {', '.join(sorted(states))})",
                )
    return schedule


def parse_schedules(docs: object) -> list[Schedule]:
    """A definition's `schedules:` (a list), each given an id (`definition-N` when it has none);
    two with one id are refused."""
    if not isinstance(docs, list):
        raise InvalidSchedule("schedules", "`schedules` is a list")
    out: list[Schedule] = []
    for i, doc in enumerate(docs):
        try:
            schedule = parse_schedule(doc)
        except InvalidSchedule as exc:
            raise InvalidSchedule(f"schedules.{i}.{exc.field}", exc.message) from None
        if schedule.id is None:
            schedule.id = f"definition-{i}"
        if any(s.id == schedule.id for s in out):
            raise InvalidSchedule(f"schedules.{i}.id", f"two schedules have the id {schedule.id!r}")
        out.append(schedule)
    return out
