"""`wingman events` against `wingman serve`: the log as NDJSON when piped and as a table when asked;
`--follow` prints live events as they commit, filtered, and goes on after the daemon restarts
with no gap and no duplicate."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading

import pytest

from tests.support.daemon import AUDIT_TOKEN, REPO, TOKEN, definition

SERVER = definition()
UUID = SERVER["settings"]["uuid"]
WAIT = 60


def wingman(d, *args: str, token: str = TOKEN) -> list[str]:
    return [sys.executable, "-m", "wingman.api.cli", "events", "--url", d.url, "--token", token, *args]


def deny(d, *jtis: str) -> None:
    with d.client() as c:
        for jti in jtis:
            assert c.post(f"/api/servers/{UUID}/ws/deny", json={"jtis": [jti]}).status_code == 204


class Lines:
    """The stdout lines of a running command, read by a thread, waited on one by one."""

    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))

    def next(self) -> str:
        try:
            return self._lines.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(
                f"no line after {WAIT} s; stderr: {self.proc.stderr.read() if self.proc.poll() is not None else ''}"
            ) from None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def test_events_without_follow_print_ndjson_when_piped_and_exit(daemon_process):
    d = daemon_process(servers=[SERVER])
    deny(d, "a", "b")
    done = subprocess.run(
        wingman(d, "--server", UUID, token=AUDIT_TOKEN), cwd=REPO, capture_output=True, text=True, timeout=WAIT
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["type"] for r in rows] == [
        "server.registered",
        "server.websocket_tokens_denied",
        "server.websocket_tokens_denied",
    ]
    assert rows == sorted(rows, key=lambda r: r["position"])

    table = subprocess.run(
        wingman(d, "--format", "table", "--type", "server.websocket_tokens_denied"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
    )
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["position", "time", "server"]
    assert len(lines) == 3 and all("websocket tokens refused" in line for line in lines[1:])

    bad = subprocess.run(
        wingman(d, "--server", "0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert bad.returncode == 1 and "404" in bad.stderr


def test_follow_prints_live_events_and_resumes_after_a_daemon_restart(daemon_process):
    d = daemon_process(servers=[SERVER])
    follower = Lines(wingman(d, "--follow", "--server", UUID, "--type", "server.websocket_tokens_denied"))
    try:
        deny(d, "one", "two")
        got = [json.loads(follower.next()) for _ in range(2)]
        assert [g["data"]["jtis"] for g in got] == [["one"], ["two"]]
        d.stop()
        d.start()  # the same port and database: the follower reconnects by itself
        deny(d, "three", "four")
        got += [json.loads(follower.next()) for _ in range(2)]
        assert [g["data"]["jtis"][0] for g in got] == ["one", "two", "three", "four"]
        positions = [g["position"] for g in got]
        assert positions == sorted(set(positions)), "no duplicate, in order"
    finally:
        follower.stop()


@pytest.mark.parametrize("args", [["--after", "-1"], ["--format", "xml"]])
def test_bad_usage_exits_2(daemon_process, args):
    d = daemon_process()
    done = subprocess.run(wingman(d, *args), cwd=REPO, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 2, (done.stdout, done.stderr)


@pytest.mark.parametrize("columns", [80, 120])
def test_a_state_change_reads_from_to_at_any_width(columns):
    """A terminal's row of a state change says `offline → starting`, whole, at 80 columns too."""
    import io

    from rich.console import Console

    from wingman.api.cli.events import EventsFormat, Printer

    buf = io.StringIO()
    printer = Printer(EventsFormat.table, Console(file=buf, width=columns, force_terminal=False))
    ev = {
        "position": 7,
        "recorded_at": "2026-01-01T00:00:10.250000Z",
        "server": UUID,
        "type": "state.changed",
        "metadata": {"actor": "node-token"},
        "data": {"from_state": "offline", "to_state": "starting"},
    }
    printer.show(ev)  # as an older daemon sends it: no `what`
    printer.show(ev | {"what": "state offline → starting (start)", "why": "an operator asked for it"})
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= columns
    text = " ".join(" ".join(lines).split())
    assert text.count("offline → starting") == 2 and "an operator asked for it" in text
    assert ("state.changed" in text) == (columns >= 120)  # the type column only where there is room
