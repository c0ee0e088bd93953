"""wrk as the HTTP load generator, in its own process (a Python client tops out near 1,100
requests/s here and would hide the server's own speed). Installed by .ci/system.sh."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Requests go round the given paths in turn; `done` prints the figures as one JSON line.
_SCRIPT = """
local paths = {%(paths)s}
local n = 0
wrk.method = "POST"
wrk.body = '{"action": "kill"}'
wrk.headers["Content-Type"] = "application/json"
%(auth)s
request = function()
  n = n + 1
  return wrk.format(nil, paths[(n %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %%d, "duration_us": %%d, "socket_errors": %%d, ' ..
    '"http_errors": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass
class WrkResult:
    requests: int
    duration_us: int
    socket_errors: int
    http_errors: int  # responses with a status over 399
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int

    @property
    def rate(self) -> float:
        return self.requests / (self.duration_us / 1e6)


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    url: str, paths: list[str], threads: int, connections: int, seconds: float, token: str | None = None
) -> WrkResult:
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    script = _SCRIPT % {"paths": ", ".join(f'"{p}"' for p in paths), "auth": auth}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", f.name, url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        Path(f.name).unlink(missing_ok=True)
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    return WrkResult(**json.loads(line[len("WRK_JSON ") :]))
