"""`wingman console`, `wingman logs` and `wingman power ... --follow` against a real daemon, run in
a real pseudo-terminal (pexpect) where a terminal matters: what is typed reaches the game server
(the demo server echoes `say X` as `[Server] X`), its output arrives, state changes are shown, and
Ctrl-D / Ctrl-C leave cleanly. No sleeps: each `expect` has a timeout that is only a deadline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid as uuidlib

import pexpect  # the `test` extra: missing, the module fails to collect rather than skip
import pytest

from tests.support.daemon import REPO, TOKEN
from tests.support.http import WINGS_NOT_FOUND, add_server, logs, power
from tests.support.waiting import eventually

DEADLINE = 60  # seconds an expect may wait: a deadline, never a measure
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon()


def env() -> dict:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("WINGMAN_")},
        "COLUMNS": "120",
        "TERM": "xterm-256color",
    }


def spawn(daemon, *args: str):
    child = pexpect.spawn(
        sys.executable,
        ["-m", "wingman.api.cli", *args, "--url", daemon.url, "--token", TOKEN],
        cwd=str(REPO),
        env=env(),
        encoding="utf-8",
        codec_errors="replace",
        timeout=DEADLINE,
        dimensions=(40, 120),
    )
    return child


def wingman(daemon, *args: str) -> subprocess.CompletedProcess:
    """Piped: stdout and stderr are pipes, stdin is empty."""
    return subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", *args, "--url", daemon.url, "--token", TOKEN],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def finished(child) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def test_console_shows_the_tail_sends_typed_commands_shows_state_changes_and_leaves_on_ctrl_d(daemon):
    uuid = add_server(daemon)
    daemon.wait_operation(power(daemon, uuid, "start")["id"])
    child = spawn(daemon, "console", uuid)
    child.expect(f"console of {uuid}, running")
    child.expect("Server started")  # the tail: what it printed before the console opened
    child.send("say hello from the console\r")
    child.expect(r"\[Server\] hello from the console")  # typed, sent, run by the server, its echo back
    assert "say hello from the console" in [c.get("command") for c in commands(daemon, uuid)]
    power(daemon, uuid, "restart")  # from elsewhere: the console says so
    child.expect("server is now stopping")
    child.expect("server is now offline")
    child.expect("server is now starting")
    child.expect("server is now running")
    child.send("say again\r")
    child.expect(r"\[Server\] again")
    child.sendeof()  # Ctrl-D on an empty line
    assert finished(child) == 0
    power(daemon, uuid, "kill")


def commands(daemon, uuid: str) -> list[dict]:
    with daemon.client() as c:
        events = c.get("/api/events", params={"server": uuid, "limit": 1000}).json()["events"]
    return [e["data"] for e in events if e["type"] == "console.command"]


def test_console_of_a_stopped_server_shows_its_start_and_leaves_on_ctrl_c(daemon):
    uuid = add_server(daemon)
    child = spawn(daemon, "console", uuid)
    child.expect(f"console of {uuid}, offline")
    child.send("list\r")  # a stopped server takes no command: the daemon says so, and the console stays
    child.expect("stopped server")
    power(daemon, uuid, "start")
    child.expect("server is now starting")
    child.expect("Server started")
    child.expect("server is now running")
    child.send("list\r")
    child.expect("There are 0 of a max of 20 players online")
    child.sendintr()  # Ctrl-C
    assert finished(child) == 0
    power(daemon, uuid, "kill")


def test_console_no_input_only_follows(daemon):
    uuid = add_server(daemon)
    child = spawn(daemon, "console", uuid, "--no-input")
    child.expect(f"console of {uuid}, offline.*Ctrl-C leaves")
    child.send("say typed\r")  # read by no one: never a command
    power(daemon, uuid, "start")
    child.expect("server is now running")
    with daemon.client() as c:
        c.post(f"/api/servers/{uuid}/commands", json={"commands": ["say from elsewhere"]})
    child.expect(r"\[Server\] from elsewhere")
    child.sendintr()
    assert finished(child) == 0
    assert "say typed" not in [c.get("command") for c in commands(daemon, uuid)]
    power(daemon, uuid, "kill")


def test_console_of_an_unknown_server_is_one_line_and_exit_1(daemon):
    result = wingman(daemon, "console", str(uuidlib.uuid4()))
    assert result.returncode == 1, result
    assert WINGS_NOT_FOUND in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_logs_prints_the_last_n_lines(daemon):
    uuid = add_server(daemon)
    daemon.wait_operation(power(daemon, uuid, "start")["id"])
    with daemon.client() as c:
        c.post(f"/api/servers/{uuid}/commands", json={"commands": [f"say line {i}" for i in range(8)]})
    eventually(lambda: "[Server] line 7" in logs(daemon, uuid), what="the echo of the last command")
    child = spawn(daemon, "logs", uuid, "-n", "5")
    assert finished(child) == 0
    printed = [ANSI.sub("", ln) for ln in child.before.splitlines()]
    assert printed == [f"[Server] line {i}" for i in range(3, 8)], printed
    result = wingman(daemon, "logs", uuid, "-n", "5")  # piped: the same lines
    assert result.returncode == 0 and result.stdout.splitlines() == printed, result
    power(daemon, uuid, "kill")


def test_logs_of_an_unknown_server_is_one_line_and_exit_1(daemon):
    result = wingman(daemon, "logs", str(uuidlib.uuid4()), "-n", "5")
    assert result.returncode == 1, result
    assert WINGS_NOT_FOUND in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_power_follow_on_a_terminal_shows_the_state_changes_before_the_outcome(daemon):
    uuid = add_server(daemon, env={"BOOT_SECONDS": "1"})
    child = spawn(daemon, "power", uuid, "start", "--follow")
    child.expect("start queued")
    child.expect(r"state (\x1b\[[0-9;]*m)*starting")
    child.expect("Ensuring file permissions are set correctly")  # a pre-boot step, the daemon's note
    child.expect(r"start( \(queued: waiting for the power lock\))? · server starting · \d+s")  # the live status line
    child.expect("Loading world demo")  # the console's last line, in the status line, while it boots
    child.expect(r"state (\x1b\[[0-9;]*m)*running")
    child.expect("start succeeded")
    assert finished(child) == 0
    power(daemon, uuid, "kill")


def test_power_follow_piped_prints_plain_lines(daemon):
    uuid = add_server(daemon)
    daemon.wait_operation(power(daemon, uuid, "start")["id"])
    result = wingman(daemon, "power", uuid, "stop", "--follow")
    assert result.returncode == 0, result
    assert "\x1b" not in result.stdout, result.stdout
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"operation \S+: stop queued", lines[0]), lines
    states = [ln for ln in lines if re.fullmatch(r"\[ *\d+\.\ds\] state: \w+", ln)]
    assert [s.split("state: ")[1] for s in states] == ["stopping", "offline"], lines
    assert lines[-1].startswith("stop succeeded"), lines


def test_ctrl_c_while_following_leaves_the_operation_running_and_says_how_to_follow_it(daemon):
    uuid = add_server(daemon, env={"BOOT_SECONDS": "5"})
    child = spawn(daemon, "power", uuid, "start", "--follow")
    child.expect(r"operation (\S+): start queued")
    op_id = ANSI.sub("", child.match.group(1))
    child.expect(r"state (\x1b\[[0-9;]*m)*starting")
    child.sendintr()
    child.expect(r"start goes on \(operation " + re.escape(op_id) + r"\); follow it with:")
    child.expect(r"wingman operation " + re.escape(op_id) + " --follow")
    assert finished(child) == 130
    result = wingman(daemon, "operation", op_id, "--follow")
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[-1].startswith("start succeeded"), result.stdout
    power(daemon, uuid, "kill")


def test_a_game_servers_escape_sequences_do_not_reach_the_terminal_but_its_colours_do():
    from wingman.api.cli.feed import note_text, printable
    from wingman.api.websocket.frames import DAEMON_NOTE_PREFIX, DAEMON_NOTE_SUFFIX

    hostile = "\x1b]0;owned\x07\x1b[2J\x1b[Hred \x1b[31mtext\x1b[0m\rback\x08\x00\x9b end"
    assert printable(hostile, colour=True) == "red \x1b[31mtext\x1b[0mback end\x1b[0m"
    assert printable(hostile, colour=False) == "red textback end"
    assert printable("tab\there", colour=False) == "tab\there"
    assert note_text(f"{DAEMON_NOTE_PREFIX}Pulling image{DAEMON_NOTE_SUFFIX}") == "Pulling image"
    assert note_text("[Pterodactyl Daemon]: said by the server itself") is None


def test_the_line_editor_sends_whole_lines_and_leaves_on_ctrl_d_on_an_empty_line(monkeypatch, capfd):
    from wingman.api.cli.console import LineEditor, Screen

    screen = Screen(editing=True)
    editor = LineEditor(screen)
    assert editor.feed("say hx\x7fi\x1b[A\r") == ["say hi"]  # Backspace; the Up arrow ignored
    assert editor.feed("one two\x17three\r") == ["one three"]  # Ctrl-W: a word
    assert editor.feed("gone\x15\r") == []  # Ctrl-U clears; an empty line is not sent
    assert editor.feed("half\x04") == [] and screen.typed == "half"  # Ctrl-D leaves only on an empty line
    assert editor.feed("\x15\x04") == [None]
