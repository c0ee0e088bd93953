"""Signal names as server definitions spell them (Wings' stop signals)."""

from __future__ import annotations

import signal as signals


def parse_signal(name: str) -> signals.Signals:
    """Wings' stop signal names: `C`, `^C` and `SIGINT` mean SIGINT; otherwise any signal name,
    with or without the SIG prefix. Raises ValueError on an unknown name."""
    raw = name.strip().upper()
    if raw in {"C", "^C", "SIGINT", "INT"}:
        return signals.SIGINT
    if not raw.startswith("SIG"):
        raw = "SIG" + raw
    try:
        return signals.Signals[raw]
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None
