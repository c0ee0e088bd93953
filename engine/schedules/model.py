"""What a schedule is: its cron expression and time zone, its steps, its conditions, its missed-run
policy. Validated at the door (the API, a definition): a cron expression that does not parse, an
unknown action or time zone is refused with the field it is in."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wingman.engine.servers.patterns import console_line_problem

StepAction = Literal["start", "stop", "restart", "kill", "command"]
POWER_STEPS = ("start", "stop", "restart", "kill")
SCHEDULE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_STEPS = 20


class _Closed(BaseModel):
    # A typo in a schedule is a condition that never applies: refused, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


class Step(_Closed):
    """One power action, or one line written to the server's console (`command`)."""

    action: StepAction
    command: str | None = None

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

    only_in_states: list[str] = Field(default_factory=list, description="fire only in one of these states")
    not_within_minutes_of_operator: float = Field(
        default=0, ge=0, le=7 * 24 * 60, description="skip when an operator acted on the server this recently"
    )


class Schedule(_Closed):
    """A schedule as given. `action` (one step) or `steps` (a chain: each step waits for the
    previous one's outcome and runs only when it succeeded)."""

    id: str | None = Field(default=None, json_schema_extra={"pattern": SCHEDULE_ID})
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
        if len(v.split()) != 5 or not croniter.is_valid(v):
            raise ValueError(f"{v[:80]!r} is not a cron expression of five fields")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v[:80]!r} is not a known time zone") from None
        return v

    @model_validator(mode="after")
    def _one_way(self) -> Schedule:
        if (self.action is None) == (not self.steps):
            raise ValueError("give `action` (one step) or `steps` (a chain), not both and not neither")
        if self.action is not None:
            self.steps = [Step(action=self.action, command=self.command)]
            self.action = self.command = None
        return self

    def next_after(self, moment: datetime) -> datetime:
        """The first time after `moment` (aware) the expression names, in the schedule's zone."""
        zone = ZoneInfo(self.timezone)
        nxt = croniter(self.cron, moment.astimezone(zone)).get_next(datetime)
        assert isinstance(nxt, datetime)
        return nxt

    def stored(self) -> dict[str, object]:
        """The schedule as recorded (its steps spelled out)."""
        return self.model_dump(mode="json", exclude={"action", "command"})


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
