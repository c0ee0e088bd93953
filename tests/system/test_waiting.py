"""The tests' one way to wait (tests/support/waiting.py): a fact's first good value, or a failure
that names what never happened and the last value seen."""

from __future__ import annotations

import itertools

import pytest

from tests.support.waiting import eventually, eventually_async


def test_the_first_truthy_value_is_returned():
    counter = itertools.count()
    assert eventually(lambda: next(counter) >= 3 and "third", 5, "a count of 3", interval=0) == "third"


def test_until_decides_and_the_value_itself_is_returned():
    counter = itertools.count()
    assert eventually(lambda: {"n": next(counter)}, 5, "n at 2", interval=0, until=lambda b: b["n"] == 2) == {"n": 2}


def test_past_the_deadline_the_failure_names_the_fact_and_the_last_value():
    with pytest.raises(AssertionError, match=r"never happened within 0.2 s: the door opened; last value seen: 'shut'"):
        eventually(lambda: "shut", 0.2, "the door opened", interval=0.01, until=lambda v: v == "open")


def test_an_ignored_exception_is_a_not_yet_and_any_other_goes_through():
    tries = itertools.count()

    def flaky() -> str:
        if next(tries) < 2:
            raise ConnectionError("not listening yet")
        return "up"

    assert eventually(flaky, 5, "the port to answer", interval=0, ignoring=(ConnectionError,)) == "up"
    with pytest.raises(KeyError):
        eventually(lambda: {}["missing"], 5, "a key", interval=0, ignoring=(ConnectionError,))


def test_a_long_last_value_is_cut_to_its_end():
    with pytest.raises(AssertionError) as failed:
        eventually(lambda: "x" * 10_000 + "END", 0.05, "a short log", interval=0.01, until=lambda v: False)
    assert len(str(failed.value)) < 3200 and str(failed.value).endswith("END'")


async def test_the_async_twin_awaits_what_the_fact_gives():
    counter = itertools.count()

    async def read() -> int:
        return next(counter)

    assert await eventually_async(read, 5, "a read of 3", interval=0, until=lambda n: n == 3) == 3
    with pytest.raises(AssertionError, match="never happened within 0.1 s: a read of -1; last value seen: "):
        await eventually_async(read, 0.1, "a read of -1", interval=0.01, until=lambda n: n == -1)
