"""Helpers shared by the tests/audit/test_diagram_*.py modules (no tests here): reading each
diagram format back with a real parser, the transitions a server's stored events hold, and when
and to whom the timeline credits a change."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from tests.conftest import TEST_META, EngineHarness
from tests.support.daemon import REPO, definition, kill_leftovers
from tests.support.waiting import eventually_async
from wingman.engine.diagrams.render import SVG_NS, parse_dot

SCXML = "{http://www.w3.org/2005/07/scxml}"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def wingman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in a subprocess; stdout as bytes (a PNG is binary)."""
    return subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", *args],
        cwd=REPO,
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def scxml_transitions(text: bytes | str) -> tuple[str, list[str], set[tuple[str, str, str]]]:
    """(initial, states, {(source, event, target)}) of an SCXML document, read by an XML parser."""
    root = ET.fromstring(text)
    assert root.tag == f"{SCXML}scxml", root.tag
    states = [s.get("id") for s in root.findall(f"{SCXML}state")]
    arrows = {
        (s.get("id"), t.get("event"), t.get("target"))
        for s in root.findall(f"{SCXML}state")
        for t in s.findall(f"{SCXML}transition")
    }
    return root.get("initial"), states, arrows


def dot_edges(text: str) -> dict[tuple[str, str, str], dict]:
    """{(source, label, dest): attributes} of DOT text read back by Graphviz (labels stripped)."""
    g = parse_dot(text)
    return {(e[0], e.attr["label"].strip(), e[1]): dict(e.attr) for e in g.edges() if e.attr.get("label")}


def svg_groups(svg: bytes) -> dict[str, dict]:
    """{id: {"class", "title", "texts"}} of every node and edge of a Graphviz SVG (XML parser)."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    out = {}
    for g in root.iter(f"{SVG_NS}g"):
        if g.get("class") in ("node", "edge"):
            out[g.get("id")] = {
                "class": g.get("class"),
                "title": g.findtext(f"{SVG_NS}title"),
                "texts": [" ".join("".join(t.itertext()).split()) for t in g.iter(f"{SVG_NS}text")],
            }
    return out


def decoded_png(data: bytes) -> Image.Image:
    """A PNG decoded for real (every pixel), so a truncated or empty image fails here."""
    assert data[:8] == PNG_MAGIC
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    assert image.width > 100 and image.height > 100, image.size
    shades = image.convert("L").getcolors(256)
    assert len(shades) > 2, "a blank image"  # lines and text, not one colour
    return image


MERMAID_COUNTED = re.compile(r'^\s*(\S+) ==>\|"(\S+) ×(\d+)"\| (\S+)$', re.M)
MERMAID_UNTAKEN = re.compile(r'^\s*(\S+) -\.->\|"(\S+)"\| (\S+)$', re.M)


def mermaid_counts(text: str) -> Counter:
    """{(source, trigger, dest): n} of the thick arrows of a history flowchart."""
    return Counter({(s, t, d): int(n) for s, t, n, d in MERMAID_COUNTED.findall(text)})


def counts_of(events: list[dict]) -> Counter:
    """How many times each (from, trigger, to) transition is in these stored events."""
    return Counter(
        (e["data"]["from_state"], e["data"]["trigger"], e["data"]["to_state"])
        for e in events
        if e["type"] == "state.changed"
    )


# -- a server driven through the real engine -------------------------------------------------------

ACTIONS = ("start", "stop", "start", "restart", "kill")  # then a start that fails its pre-boot


def stored_events(db: Path, uuid: str) -> list[dict]:
    """The server's stream straight from the SQLite file, times as aware UTC datetimes."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute(
            "SELECT version, type, data, metadata, recorded_at FROM events WHERE stream_id = ? ORDER BY version",
            (uuid,),
        ).fetchall()
    finally:
        conn.close()
    out = []
    for version, type_, data, meta, at in rows:
        ts = datetime.fromisoformat(at)
        out.append(
            {
                "version": version,
                "type": type_,
                "data": json.loads(data),
                "metadata": json.loads(meta),
                "at": ts if ts.tzinfo else ts.replace(tzinfo=UTC),
            }
        )
    return out


def drive_server(folder: Path) -> tuple[Path, str]:
    """Run one server as a real local process through the power engine (start, stop, start,
    restart, kill, a reinstall (a local process runs no script: it installs and is offline
    again), and a start whose disk check fails), then stop the daemon. Returns the database file
    and the server's uuid."""
    d = definition(build={"disk_space": 1})
    uuid = d["settings"]["uuid"]

    async def go():
        async with EngineHarness(folder, [d]) as h:
            for action in ACTIONS:
                op = await h.outcome(await h.act(uuid, action))
                assert op.status == "succeeded", (action, op.reason)
            await h.daemon.installs.reinstall(uuid, TEST_META)
            await h.until_event(uuid, lambda e: e.type == "install.succeeded")

            # The install's lock is let go just after its outcome's commit.
            await eventually_async(
                lambda: not h.daemon.power.installs.installing(uuid), 60, "the install's lock let go", interval=0.01
            )
            ballast = h.daemon.starter.folder(uuid) / "ballast.bin"
            ballast.write_bytes(b"\0" * (3 * 1024 * 1024))  # over the 1 MiB limit: pre-boot fails
            op = await h.outcome(await h.act(uuid, "start"))
            assert op.status == "failed" and "disk" in op.reason
            ballast.unlink()

    try:
        asyncio.run(go())
    finally:
        kill_leftovers(folder)
    return folder / "var" / "wingman.db", uuid


ARROW_ID = re.compile(r"t_([^_]+)_([^_]+)_([^_]+)$")  # an SVG arrow's id: t_<source>_<trigger>_<dest>


# -- what the timeline shows of a change ----------------------------------------------------------


def happened(events, change: dict) -> datetime:
    """When a change happened, as the timeline shows it: a change by the process's exit happened
    when the daemon saw the exit (the `observed_at` of the `process.exited` just before it), else
    at its commit."""
    before = next((e for e in events if e["version"] == change["version"] - 1), None)
    if (
        change["data"]["trigger"] == "exited"
        and before
        and before["type"] == "process.exited"
        and before["data"].get("observed_at")
    ):
        return min(datetime.fromisoformat(before["data"]["observed_at"]), change["at"])
    return change["at"]


def credit(events, change: dict) -> tuple[str, str, str]:
    """(action, actor, channel) the timeline credits a change to: whoever asked for its operation
    (its power.requested), else what recorded the change (no action)."""
    op = change["data"].get("operation_id")
    asked = next((e for e in events if e["type"] == "power.requested" and op and e["data"]["operation_id"] == op), None)
    if asked:
        return asked["data"]["action"], asked["metadata"]["actor"], asked["metadata"]["channel"]
    return "", change["metadata"]["actor"], change["metadata"]["channel"]
