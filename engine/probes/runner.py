"""Probes over time. Readiness: attempts every `interval` after `initial_delay` until the first
success, or NeverReady once `deadline` seconds have passed since the launch. Liveness: attempts
every `interval` while the server runs; each change between passing and failing is told, and
`failure_threshold` failures in a row are told once as hung, which ends the watch.

Both only sleep between attempts on the event loop: a thousand watches cost a thousand timers
and, every interval, one short connection each."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from wingman.engine.probes.attempt import Outcome, attempt, where
from wingman.engine.probes.spec import Liveness, Readiness


class NeverReady(Exception):
    """The readiness probe did not succeed before its deadline; the message is the start's reason."""


async def wait_ready(
    spec: Readiness, host: str, launched_at: float | None = None, clock: Callable[[], float] = time.monotonic
) -> Outcome:
    """The first successful attempt, or NeverReady ("no answer on udp/27015 after 120 s")."""
    start = clock() if launched_at is None else launched_at
    await asyncio.sleep(max(0.0, min(spec.initial_delay, spec.deadline - (clock() - start))))
    while True:
        outcome = await attempt(spec, host)
        if outcome.ok:
            return outcome
        left = spec.deadline - (clock() - start)
        if left <= 0:
            raise NeverReady(f"no answer on {where(spec)} after {spec.deadline:g} s (last: {outcome.detail})")
        await asyncio.sleep(min(spec.interval, left))


Changed = Callable[[bool, str, int], Awaitable[None]]  # (passing, detail, failures in a row)
Hung = Callable[[str, int], Awaitable[None]]  # (last failure's detail, failures in a row)


async def watch_liveness(spec: Liveness, host: str, changed: Changed, hung: Hung, spread: bool = True) -> None:
    """Probe until hung (then return, after `hung` was awaited) or until cancelled. The server
    was ready, so it starts as passing; the first attempt comes after `initial_delay` plus, when
    `spread`, a random part of one interval, so servers started together are not probed together."""
    await asyncio.sleep(spec.initial_delay + (random.uniform(0, spec.interval) if spread else 0.0))
    passing, failures = True, 0
    while True:
        outcome = await attempt(spec, host)
        if outcome.ok:
            failures = 0
            if not passing:
                passing = True
                await changed(True, outcome.detail, 0)
        else:
            failures += 1
            if passing:
                passing = False
                await changed(False, outcome.detail, failures)
            if failures >= spec.failure_threshold:
                await hung(outcome.detail, failures)
                return
        await asyncio.sleep(spec.interval)
