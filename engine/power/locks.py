"""A server's power lock: held by one operation at a time, waited for in order.

Unlike `asyncio.Lock`, it knows who holds it and who waits, it hands itself straight to the next
waiter on release (there is no moment when it looks free while a waiter is about to take it), and
`try_acquire` never waits: it fails while the lock is held or promised. A kill, which must not
wait behind the operations it preempts, relies on that.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict


class PowerLock:
    def __init__(self) -> None:
        self.holder: str | None = None  # the operation holding the lock
        self._waiters: OrderedDict[str, asyncio.Future[bool]] = OrderedDict()

    def waiting(self) -> list[str]:
        """The operations waiting, in the order they will get the lock."""
        return list(self._waiters)

    def try_acquire(self, operation_id: str) -> bool:
        if self.holder is None and not self._waiters:
            self.holder = operation_id
            return True
        return False

    async def acquire(self, operation_id: str, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the lock; True when this operation holds it."""
        if self.try_acquire(operation_id):
            return True
        if timeout <= 0:
            return False
        granted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters[operation_id] = granted
        try:
            await asyncio.wait_for(asyncio.shield(granted), timeout)
            return True
        except TimeoutError:
            return granted.done() and not granted.cancelled()  # handed over as the time ran out
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # handed over, but nobody will use it
                self.release(operation_id)
            raise
        finally:
            if self._waiters.get(operation_id) is granted:
                del self._waiters[operation_id]
            if not granted.done():
                granted.cancel()

    def release(self, operation_id: str) -> None:
        if self.holder != operation_id:
            raise RuntimeError(f"operation {operation_id} releases a lock held by {self.holder}")
        self.holder = None
        while self._waiters:
            nxt, granted = self._waiters.popitem(last=False)
            if not granted.done():
                self.holder = nxt
                granted.set_result(True)
                return

    @property
    def idle(self) -> bool:
        return self.holder is None and not self._waiters
