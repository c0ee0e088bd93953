"""A schedule's shape at the door (engine.schedules.model): what is refused, with the field named,
and when a cron expression comes due in its time zone (summer time included)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wingman.engine.schedules.model import InvalidSchedule, parse_schedule, parse_schedules
from wingman.engine.servers.definition import InvalidDefinition, parse_definition

UUID = "0e4d2c9a-6a0c-4b5e-9a55-3d0c1b2a4f11"
STATES = frozenset({"offline", "starting", "running", "stopping"})


def test_a_single_action_is_a_chain_of_one_step():
    s = parse_schedule({"cron": "0 4 * * *", "action": "restart"})
    assert [st.action for st in s.steps] == ["restart"] and s.stored()["steps"] == [{"action": "restart"}]
    assert "action" not in s.stored()


@pytest.mark.parametrize(
    "doc, field",
    [
        ({"cron": "0 4 * *", "action": "start"}, "cron"),  # four fields
        ({"cron": "0 4 * * * *", "action": "start"}, "cron"),  # six: seconds, which no Panel sends
        ({"cron": "0 25 * * *", "action": "start"}, "cron"),
        ({"cron": "0 4 * * *", "action": "reboot"}, "action"),
        ({"cron": "0 4 * * *", "action": "start", "timezone": "Europe/Atlantis"}, "timezone"),
        ({"cron": "0 4 * * *", "action": "start", "timezone": "../../etc/passwd"}, "timezone"),
        ({"cron": "0 4 * * *", "action": "start", "steps": [{"action": "stop"}]}, "schedule"),
        ({"cron": "0 4 * * *", "steps": [{"action": "command", "command": "a\nb"}]}, "steps.0"),
        ({"cron": "0 4 * * *", "steps": [{"action": "stop", "command": "x"}]}, "steps.0"),
        ({"cron": "0 4 * * *", "action": "start", "missed": "catch_up"}, "missed"),
        ({"cron": "0 4 * * *", "action": "start", "conditions": {"only_in": ["running"]}}, "conditions.only_in"),
        (
            {"cron": "0 4 * * *", "action": "start", "conditions": {"only_in_states": ["asleep"]}},
            "conditions.only_in_states.0",
        ),
        ({"cron": "0 4 * * *", "action": "start", "id": "no spaces"}, "id"),
        ({"cron": "0 4 * * *", "action": "start", "skip_next": "yes"}, "skip_next"),
        ({"cron": "0 4 * * *", "action": "start", "id": None}, "schedule"),  # left out, or given: never null
        ({"cron": "0 4 * * *", "steps": []}, "schedule"),
        ({"cron": "0 4 * * *", "steps": [{"action": "start"}], "command": "x"}, "schedule"),
        ({"cron": "0 4 * * mon", "action": "start"}, "cron"),  # names are not taken: numbers only
    ],
)
def test_a_bad_schedule_names_its_field(doc, field):
    with pytest.raises(InvalidSchedule) as caught:
        parse_schedule(doc, STATES)
    assert caught.value.field == field, caught.value


def test_the_next_due_time_is_in_the_schedules_zone_across_summer_time():
    s = parse_schedule({"cron": "30 4 * * *", "timezone": "Europe/Paris", "action": "restart"})
    winter = s.next_after(datetime(2026, 1, 10, 12, 0, tzinfo=UTC))
    summer = s.next_after(datetime(2026, 7, 10, 12, 0, tzinfo=UTC))
    assert winter.astimezone(UTC) == datetime(2026, 1, 11, 3, 30, tzinfo=UTC)
    assert summer.astimezone(UTC) == datetime(2026, 7, 11, 2, 30, tzinfo=UTC)
    # The night the clocks go forward (29 March 2026, 02:00 -> 03:00 in Paris), 02:30 does not exist.
    s = parse_schedule({"cron": "30 2 * * *", "timezone": "Europe/Paris", "action": "restart"})
    # It runs once that night, at the first moment after the gap, then at 02:30 again.
    after = s.next_after(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    assert after.astimezone(UTC) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 summer time
    assert s.next_after(after).astimezone(UTC) == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)


def test_a_day_that_never_comes_is_never_due():
    s = parse_schedule({"cron": "0 4 30 2 *", "action": "start"})
    assert s.next_after(datetime(2026, 1, 1, tzinfo=UTC)).year == 9999


def test_what_is_stored_reads_back_as_the_same_schedule():
    s = parse_schedule(
        {"id": "b", "cron": "0 4 * * 1-5", "steps": [{"action": "command", "command": "save"}, {"action": "stop"}]}
    )
    assert parse_schedule(s.stored()).stored() == s.stored()


def test_a_definitions_schedules_get_ids_and_two_with_one_id_are_refused():
    got = parse_schedules(
        [{"cron": "0 4 * * *", "action": "stop"}, {"id": "x", "cron": "0 5 * * *", "action": "start"}]
    )
    assert [s.id for s in got] == ["definition-0", "x"]
    with pytest.raises(InvalidSchedule, match=r"schedules.1.id"):
        parse_schedules(
            [{"id": "x", "cron": "0 4 * * *", "action": "stop"}, {"id": "x", "cron": "0 5 * * *", "action": "start"}]
        )


def test_a_definition_without_schedules_is_stored_as_before_and_a_bad_one_is_refused():
    plain = parse_definition({"settings": {"uuid": UUID}})
    assert "schedules" not in plain.definition  # a Panel's document: nothing new in what is recorded
    with pytest.raises(InvalidDefinition, match=r"schedules.0.timezone"):
        parse_definition(
            {"settings": {"uuid": UUID}, "schedules": [{"cron": "0 4 * * *", "action": "start", "timezone": "Mars/X"}]}
        )
    with pytest.raises(InvalidDefinition, match=r"schedules"):
        parse_definition({"settings": {"uuid": UUID}, "schedules": {"cron": "0 4 * * *"}})
