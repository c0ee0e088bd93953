"""`wingman console UUID` and `wingman logs UUID`: a server's console from a shell.

`console` reads the same feed as the Panel's console, the server's Wings websocket (api.cli.feed):
the last lines (`send logs`, `websocket.log_lines` of them), then every line live, the daemon's
notes among them and a line `-- server is now <state> --` at each state change. What the operator
types is sent as a console command (`send command`, recorded like the Panel's); Ctrl-D on an empty
line or Ctrl-C leaves (exit 0). On a terminal the line being typed stays at the bottom, under the
output (`> ...`); with stdin piped, each line read is a command and the end of the input leaves.
`--no-input` only follows. Exit 1 when the daemon refuses (unknown server) or closes the socket,
2 when it cannot be reached.

`logs` prints the last lines (`GET /api/servers/{uuid}/logs`) and exits.

A game server's lines are written to the terminal with their colours and nothing else: every other
escape sequence or control character is dropped (api.cli.feed.printable); piped, colours go too.
"""

from __future__ import annotations

import codecs
import os
import select
import shutil
import sys
import termios
import threading
import tty
from pathlib import Path

import typer
from websockets.exceptions import ConnectionClosed

from wingman.api.cli.client import ConfigOption, TokenOption, UrlOption, call, daemon_client, err
from wingman.api.cli.feed import FeedError, ServerFeed, address, printable

PROMPT = "> "


def _colour(fd: int) -> bool:
    return os.isatty(fd) and not os.environ.get("NO_COLOR")


class Screen:
    """Writes whole lines to stdout; on an interactive terminal it keeps the line being typed at
    the bottom, redrawn under each line written."""

    def __init__(self, editing: bool):
        self.fd = sys.stdout.fileno()
        self.colour = _colour(self.fd)
        self.editing = editing
        self.typed = ""
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self.fd, data) :]

    def _prompt(self) -> str:
        room = max(8, shutil.get_terminal_size().columns - len(PROMPT) - 1)
        return "\r\x1b[K" + PROMPT + self.typed[-room:]

    def line(self, text: str) -> None:
        with self._lock:
            self._write(("\r\x1b[K" if self.editing else "") + text + "\n" + (self._prompt() if self.editing else ""))

    def said(self, text: str, style: str = "1;36") -> None:
        """A line of the CLI's own (`-- ... --`), in colour on a terminal."""
        self.line(f"\x1b[{style}m-- {text} --\x1b[0m" if self.colour else f"-- {text} --")

    def redraw(self) -> None:
        if self.editing:
            with self._lock:
                self._write(self._prompt())

    def leave(self) -> None:
        with self._lock:
            if self.editing:
                self._write("\r\x1b[K")  # the prompt line cleared: the shell's prompt starts there
            elif os.isatty(self.fd):
                self._write("\n")  # after the ^C the terminal echoed


def _show(feed: ServerFeed, screen: Screen, ended: threading.Event, why: list[str]) -> None:
    """The feed's frames, as lines, until the socket closes."""
    try:
        for event, args in feed.frames():
            text = args[0] if args else ""
            if event in ("console output", "install output"):
                screen.line(printable(text, screen.colour))
            elif event == "status":
                screen.said(f"server is now {printable(text, False)}")
            elif event == "daemon error":
                screen.said(printable(text, False), style="1;31")
            elif event == "throttled":
                screen.said(f"throttled by the daemon: {printable(text, False)}", style="33")
            elif event in ("install started", "install completed"):
                screen.said(event)
            elif event == "jwt error":
                why.append(f"the daemon refused the console token: {printable(text, False)}")
                return
    except ConnectionClosed as exc:
        if not ended.is_set():
            reason = f": {exc.rcvd.reason}" if exc.rcvd and exc.rcvd.reason else ""
            why.append(f"the daemon closed the console ({exc.rcvd.code if exc.rcvd else 'no close frame'}{reason})")
    except (OSError, ValueError) as exc:
        if not ended.is_set():
            why.append(f"the console socket broke: {exc}")
    finally:
        ended.set()


class LineEditor:
    """Keys typed on a terminal in cbreak mode, turned into command lines: printable characters,
    Backspace, Ctrl-U (clear), Ctrl-W (a word), Enter (send), Ctrl-D on an empty line (leave);
    other control keys and escape sequences (arrows) are ignored."""

    def __init__(self, screen: Screen):
        self.screen = screen
        self._escape = 0

    def feed(self, chars: str) -> list[str | None]:
        """Lines entered (None: leave)."""
        done: list[str | None] = []
        s = self.screen
        for ch in chars:
            if self._escape == 1:
                self._escape = 2 if ch in "[O" else 0
                continue
            if self._escape == 2:
                if "@" <= ch <= "~":
                    self._escape = 0
                continue
            if ch == "\x1b":
                self._escape = 1
            elif ch in "\r\n":
                line, s.typed = s.typed, ""
                if line.strip():
                    s.line(PROMPT + line)
                    done.append(line)
            elif ch == "\x04":
                if not s.typed:
                    done.append(None)
                    return done
            elif ch in "\x7f\x08":
                s.typed = s.typed[:-1]
            elif ch == "\x15":
                s.typed = ""
            elif ch == "\x17":
                s.typed = s.typed.rstrip()
                s.typed = s.typed[: s.typed.rfind(" ") + 1] if " " in s.typed else ""
            elif ch == "\t" or ch >= " ":
                s.typed += ch
        s.redraw()
        return done


def _typed(feed: ServerFeed, screen: Screen, ended: threading.Event) -> None:
    """Read stdin until Ctrl-D / its end, or until the feed ends; send each line as a command."""
    fd = sys.stdin.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    editor = LineEditor(screen) if screen.editing else None
    pending = ""
    while not ended.is_set():
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        data = os.read(fd, 4096)
        if not data:
            if pending.strip():
                feed.send_command(pending.rstrip("\r"))
            return
        chars = decoder.decode(data)
        if editor is not None:
            lines = editor.feed(chars)
        else:
            pending += chars
            *lines, pending = pending.split("\n")
            lines = [ln.rstrip("\r") for ln in lines if ln.strip()]
        for line in lines:
            if line is None:
                return
            feed.send_command(line)


def console(
    server: str = typer.Argument(..., help="Server uuid."),
    no_input: bool = typer.Option(False, "--no-input", help="Only follow: read nothing from stdin."),
    config: Path | None = ConfigOption,
    url: str | None = UrlOption,
    token: str | None = TokenOption,
):
    """A server's console: its last lines, then live with its state changes; type commands (Ctrl-D or Ctrl-C leaves)."""
    with daemon_client(config, url, token) as client:
        call(client, "GET", f"/api/servers/{server}")  # an unknown server: the daemon's words, exit 1
        base, secret = address(client)
    try:
        feed = ServerFeed(base, secret, server)
    except FeedError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    editing = not no_input and os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())
    screen = Screen(editing)
    ended = threading.Event()
    why: list[str] = []
    saved = None
    try:
        if editing:
            saved = termios.tcgetattr(sys.stdin.fileno())
            tty.setcbreak(sys.stdin.fileno())
        leave = "Ctrl-C leaves" if no_input else "type a command; Ctrl-D or Ctrl-C leaves"
        screen.said(f"console of {server}, {feed.state}: the last lines, then live; {leave}")
        feed.send("send logs")
        reader = threading.Thread(target=_show, args=(feed, screen, ended, why), daemon=True, name="console")
        reader.start()
        if no_input:
            while not ended.wait(0.5):
                pass
        else:
            _typed(feed, screen, ended)
    except KeyboardInterrupt:
        pass
    finally:
        quitting = not ended.is_set()
        ended.set()
        if saved is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        feed.close()
    if why and not quitting:
        screen.leave()
        err.print(f"[red]error:[/red] {why[0]}")
        raise typer.Exit(1)
    screen.leave()


def logs(
    server: str = typer.Argument(..., help="Server uuid."),
    lines: int = typer.Option(100, "--lines", "-n", min=1, max=1000, help="How many lines (1..1000)."),
    config: Path | None = ConfigOption,
    url: str | None = UrlOption,
    token: str | None = TokenOption,
):
    """Print a server's last console lines and exit."""
    with daemon_client(config, url, token) as client:
        data = call(client, "GET", f"/api/servers/{server}/logs", params={"size": lines}).json()["data"]
    colour = _colour(sys.stdout.fileno())
    sys.stdout.write("".join(printable(line, colour) + "\n" for line in data))
    sys.stdout.flush()
