"""The process's heap once a long-lived process has finished booting (the daemon; the replay
benchmark, which measures a replay as the daemon runs one).

- Memory boot used and freed (thousands of definitions parsed, snapshots read, recovery tasks)
  goes back to the system: glibc keeps freed heap memory for the process otherwise, and a node's
  RSS at rest would carry its boot for good.
- What is alive then lives as long as the process (modules, servers' views) and is taken out of
  the garbage collector's walks: a full collection otherwise walks all of it, some 150,000
  objects, about 80 ms with the loop stopped, every second or so under load (the p99 of a 202).
  Frozen objects are still freed by reference counting; only cycles among them stay.
- Young collections run every 10,000 allocations instead of 700: under load a young collection
  promotes whatever requests are in flight (each waits a commit), and those promotions set off a
  full collection every second or two, 10-40 ms each. Rarer young collections let those objects
  die young instead.
"""

from __future__ import annotations

import ctypes
import gc

YOUNG_COLLECTION_EVERY = 10_000  # allocations between young collections once settled (Python: 700)


def settle() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
