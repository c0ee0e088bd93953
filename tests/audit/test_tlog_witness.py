"""A real `wingman serve` with cosigning witnesses (c2sp.org/tlog-witness) written in
tests/support/tlog_witness.py from the spec alone: it submits each checkpoint with a consistency
proof, keeps the cosignatures, serves them on its note, and `audit verify --cosignatures N` counts
them; a restarted daemon sends the right old size; a forked log (an older database put back, then
other events) is refused, and the daemon says so and goes on serving power requests."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from tests.support.daemon import AUDIT_TOKEN, DaemonProcess, definition
from tests.support.tlog_client import open_checkpoint, parse_verifier_key
from tests.support.tlog_witness import SpecWitness, cli_verify, cosigned_lines, write_log_key
from tests.support.waiting import eventually

NODE = "witnessed-node"
ORIGIN = f"wingman/{NODE}"


def with_log_key(folder: Path) -> str:
    return write_log_key(folder, NODE)


def audit_config(*witnesses: tuple[SpecWitness, str]) -> dict:
    return {
        "node_id": NODE,
        "checkpoint_every_events": 1000,
        "checkpoint_every_seconds": 0.2,
        "witnesses": [{"url": url, "key": w.vkey, "timeout": 5} for w, url in witnesses],
    }


def power(d: DaemonProcess, action: str) -> None:
    with d.client() as c:
        op = c.post(f"/api/servers/{d.servers[0]['settings']['uuid']}/power", json={"action": action}).json()
    assert d.wait_operation(op["id"])["status"] == "succeeded", op


def served(d: DaemonProcess, log_key: str) -> tuple[int, bytes, str]:
    """(size, root, note) of the daemon's note, its log signature checked by the spec client."""
    with d.client(AUDIT_TOKEN) as c:
        note = c.get("/api/audit/checkpoint").text
    origin, size, root = open_checkpoint(note, [parse_verifier_key(log_key)])
    assert origin == ORIGIN
    return size, root, note


def cosigned_by_all(d: DaemonProcess, log_key: str, witnesses: list[SpecWitness], above: int = 0) -> tuple[int, str]:
    """Wait until every witness cosigned the daemon's latest checkpoint (past `above`) and the note
    carries their lines; (size, note)."""

    def fact() -> tuple[int, str] | None:
        size, root, note = served(d, log_key)
        if size <= above or any(w.latest.get(ORIGIN) != (size, root) for w in witnesses):
            return None
        return (size, note) if all(cosigned_lines(note, w.vkey) for w in witnesses) else None

    return eventually(fact, 60, lambda: f"every witness to cosign: {[w.latest for w in witnesses]}", interval=0.1)


def metric(d: DaemonProcess, name: str, **labels: str) -> float:
    """A sample of GET /metrics (0 when the series is not there)."""
    with d.client(AUDIT_TOKEN) as c:
        exposition = c.get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # exposition sorts them
    for line in exposition.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def rows(db: Path) -> list[tuple[str, str, int]]:
    con = sqlite3.connect(db)
    try:
        return [tuple(r) for r in con.execute("SELECT node_id, witness, size FROM cosignatures ORDER BY size")]
    finally:
        con.close()


def witness_serving(name: str, log_key: str) -> tuple[SpecWitness, str]:
    w = SpecWitness(name, {ORIGIN: [log_key]})
    return w, w.serve()


def test_two_witnesses_cosign_each_checkpoint_and_a_restart_sends_the_right_old_size(daemon_process, tmp_path):
    folder = tmp_path / "node"
    log_key = with_log_key(folder)
    (w1, url1), (w2, url2) = witness_serving("witness.test/one", log_key), witness_serving("witness.test/two", log_key)
    try:
        d = daemon_process(servers=[definition()], folder=folder, audit=audit_config((w1, url1), (w2, url2)))
        power(d, "start")
        size, note = cosigned_by_all(d, log_key, [w1, w2])
        db = folder / "var" / "wingman.db"
        assert {(n, w) for n, w, s in rows(db) if s == size} == {(NODE, w1.name), (NODE, w2.name)}
        assert metric(d, "wingman_checkpoint_cosignatures_total", witness=w2.name) >= 1

        code, doc, said = cli_verify(db, "--witness", w1.vkey, "--witness", w2.vkey, "--cosignatures", "2")
        assert code == 0, said
        [node] = doc["cosignatures"]["nodes"]
        assert node["vouched_up_to_size"] >= size and node["vouched_by"].keys() == {w1.name, w2.name}
        assert "2 witness(es) vouch up to size" in said
        nobody = SpecWitness("witness.test/three").vkey  # a key no witness here holds
        code, doc, said = cli_verify(
            db, *("--witness", w1.vkey, "--witness", w2.vkey, "--witness", nobody), "--cosignatures", "3"
        )
        assert code == 1 and "only 2 of the 3 required witnesses" in said and "witness.test/three" in said, said
        assert cli_verify(db)[0] == 0  # without the options: as before

        # (c) a restart: the daemon reads from its table what each witness cosigned last
        d.stop()  # its last checkpoint is submitted on the way out, and the cosignatures kept
        stopped_at = w1.latest[ORIGIN][0]
        assert w2.latest[ORIGIN][0] == stopped_at == max(s for _, _, s in rows(db)) >= size
        asked = {w.name: len(w.answers) for w in (w1, w2)}
        d.start()
        power(d, "stop")
        cosigned_by_all(d, log_key, [w1, w2], above=stopped_at)
        for w in (w1, w2):
            after = w.answers[asked[w.name] :]
            assert after and {a.status for a in after} == {200}, after  # no 409: the right old size
            assert after[0].old == stopped_at, after
    finally:
        w1.close()
        w2.close()


def test_a_forked_log_is_refused_and_the_daemon_goes_on(daemon_process, tmp_path):
    folder = tmp_path / "node"
    log_key = with_log_key(folder)
    w, url = witness_serving("witness.test/one", log_key)
    try:
        d = daemon_process(servers=[definition()], folder=folder, audit=audit_config((w, url)))
        power(d, "start")
        power(d, "stop")
        cosigned_by_all(d, log_key, [w])
        d.stop()
        early = w.latest[ORIGIN][0]
        shutil.copytree(folder / "var", tmp_path / "older")  # the database (and its files) as they were

        d.start()
        power(d, "start")
        cosigned_by_all(d, log_key, [w], above=early)
        d.stop()  # the shutdown checkpoint is cosigned too: the witness's latest honest tree
        honest_state = w.latest[ORIGIN]
        honest = honest_state[0]

        # The log forks: the older copy put back, then other events past what the witness cosigned.
        shutil.rmtree(folder / "var")
        shutil.copytree(tmp_path / "older", folder / "var")
        d.start()
        actions = iter(["start", "kill"] * 10)
        while served(d, log_key)[0] <= honest:
            power(d, next(actions))
        eventually(
            lambda: [a for a in w.answers if a.status == 422 and (a.size or 0) >= honest],
            60,
            lambda: f"the witness to refuse the forked checkpoint: {w.answers[-5:]}",
            interval=0.1,
        )
        assert w.latest[ORIGIN] == honest_state  # it still holds the honest tree
        assert [s for _, _, s in rows(folder / "var" / "wingman.db") if s > early] == []  # nothing kept for the fork
        said = eventually(lambda: d.read_log(), 30, "the refusal in the daemon's log", until=lambda t: "422" in t)
        refusal = [line for line in said.splitlines() if "a cosigning witness refused the checkpoint" in line]
        assert refusal and any("forked" in line and "witness.test/one" in line for line in refusal), refusal[-3:]
        assert metric(d, "wingman_checkpoint_witness_refusals_total", witness=w.name, status="422") >= 1
        power(d, next(actions))  # power requests are served as before
    finally:
        w.close()
