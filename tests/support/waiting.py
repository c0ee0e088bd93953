"""The one way the tests wait: on a fact, with a deadline, never for a fixed time.

`eventually(fact, timeout, what)` asks `fact()` again and again until it gives something truthy,
and returns that. Past the deadline it fails with an AssertionError naming what never happened
and the last value `fact` gave, so a red test says what it was waiting for and how far it got.
With `until=`, the value is returned once `until(value)` holds (and a failure shows the whole
value: an operation's body, not just "not finished").
`eventually_async` is its twin for the tests that run on an event loop: `fact` may be a plain
function or give an awaitable (`lambda: h.types(uuid)`), and the loop keeps running in between.

Where the code under test already offers an event (an operation's outcome, a store
subscription, `power.settled`), wait on that; these are for facts nothing announces.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Shown at most: the last value seen may be a whole log.
SHOWN = 3000


def eventually(
    fact: Callable[[], T],
    timeout: float = 60,
    what: str | Callable[[], str] = "the awaited fact",
    interval: float = 0.05,
    ignoring: tuple[type[BaseException], ...] = (),
    until: Callable[[T], object] = bool,
) -> T:
    """`fact()`'s first truthy value, asked every `interval` s for up to `timeout` s.

    `what` names the fact for the failure (a callable is asked only then: a log read at that
    moment). An exception of a type in `ignoring` counts as a "not yet" (a port that does not
    answer yet); any other goes to the caller at once. `until` decides when the value will do
    (truthy, unless told)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            last: object = fact()
        except ignoring as exc:
            last = exc
        else:
            if until(last):  # type: ignore[arg-type]
                return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(_never(what, timeout, last))
        time.sleep(interval)


async def eventually_async(
    fact: Callable[[], T | Awaitable[T]],
    timeout: float = 60,
    what: str | Callable[[], str] = "the awaited fact",
    interval: float = 0.05,
    ignoring: tuple[type[BaseException], ...] = (),
    until: Callable[[T], object] = bool,
) -> T:
    """`eventually` on an event loop: sleeps with asyncio between the asks, so the code under
    test (on the same loop) runs; `fact` may give an awaitable, which is awaited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            last: object = fact()
            if inspect.isawaitable(last):
                last = await last
        except ignoring as exc:
            last = exc
        else:
            if until(last):  # type: ignore[arg-type]
                return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(_never(what, timeout, last))
        await asyncio.sleep(interval)


def _never(what: str | Callable[[], str], timeout: float, last: object) -> str:
    name = what() if callable(what) else what
    seen = repr(last)
    if len(seen) > SHOWN:
        seen = "..." + seen[-SHOWN:]
    return f"never happened within {timeout} s: {name}; last value seen: {seen}"
