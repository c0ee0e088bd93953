"""Witnesses that are slow or away cost the daemon nothing: a witness stuck on a submission holds up
neither the log nor the checkpoints, and is then sent only the newest checkpoint (no queue); a
witness that is not listening yet is tried again, and cosigns the last checkpoint of a log that has
gone quiet meanwhile. In-process daemons on SQLite, with the witness written from the spec."""

from __future__ import annotations

import socket
import threading
import time

from tests.support.checkpoints import daemon_config
from tests.support.daemon import free_port
from tests.support.tlog_witness import Histories, SpecWitness, write_log_key
from tests.support.waiting import eventually_async
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon

NODE = "test-node"  # tests.support.checkpoints signs as this node
ORIGIN = f"wingman/{NODE}"


class GatedWitness(SpecWitness):
    """Holds every submission until the gate opens (counting them as they arrive)."""

    def __init__(self, *args: object, **kw: object):
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.gate, self.arrived = threading.Event(), 0

    def add_checkpoint(self, body: str) -> str:
        self.arrived += 1
        assert self.gate.wait(60), "the test never opened the gate"
        return super().add_checkpoint(body)


async def test_a_stuck_witness_holds_nothing_up_and_is_then_sent_only_the_newest(tmp_path):
    w = GatedWitness("witness.test/slow", {ORIGIN: [write_log_key(tmp_path, NODE)]})
    witnesses = [{"url": w.serve(), "key": w.vkey, "timeout": 60}]
    daemon = Daemon(parse_config(daemon_config(tmp_path, every_events=10, witnesses=witnesses)), runtimes={})
    await daemon.start()
    try:
        cp, log = daemon.checkpointer, Histories()
        await log.append(daemon, 10)
        await eventually_async(lambda: w.arrived == 1, 30, "the first checkpoint to reach the witness")
        await log.append(daemon, 290)  # while the witness sits on the first submission
        await eventually_async(lambda: cp.last is not None and cp.last.size == 300, 30, "every checkpoint cut")
        assert w.arrived == 1 and not w.latest  # still stuck: the log and its checkpoints went on without it
        w.gate.set()
        await eventually_async(
            lambda: w.latest.get(ORIGIN, (0,))[0] == 300, 30, lambda: f"the newest cosigned: {w.answers}"
        )
        assert w.arrived == 2, w.answers  # the stuck one, then the newest: 28 checkpoints between were never queued
        assert [(a.old, a.size, a.status) for a in w.answers] == [(0, 10, 200), (10, 300, 200)]
    finally:
        w.gate.set()
        await daemon.stop()
        w.close()


async def test_a_witness_not_listening_yet_is_tried_again_on_a_quiet_log(tmp_path):
    port = free_port()
    w = SpecWitness("witness.test/late", {ORIGIN: [write_log_key(tmp_path, NODE)]})
    witnesses = [{"url": f"http://127.0.0.1:{port}/witness", "key": w.vkey, "timeout": 5}]
    daemon = Daemon(parse_config(daemon_config(tmp_path, every_events=25, witnesses=witnesses)), runtimes={})
    await daemon.start()
    try:
        [submitter] = daemon.checkpointer.cosigners.witnesses
        await Histories().append(daemon, 50)
        await eventually_async(lambda: submitter.failures >= 1, 30, "a submission that found nobody listening")
        w.serve(port=port)  # the witness comes up; the log has gone quiet
        await eventually_async(lambda: w.latest.get(ORIGIN, (0,))[0] == 50, 30, lambda: f"cosigned: {w.answers}")
        assert submitter.failures == 0
    finally:
        await daemon.stop()
        w.close()


class DrippingWitness:
    """Answers 200 and then one byte every 0.2 s, forever (each read is quick; the answer never ends)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/witness"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n")
                while not self.stop.wait(0.2):
                    conn.sendall(b"x")
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


async def test_a_witness_dripping_its_answer_is_given_up_on_at_its_timeout(tmp_path):
    drip, w = DrippingWitness(), SpecWitness("witness.test/drip")
    witnesses = [{"url": drip.url, "key": w.vkey, "timeout": 1}]
    daemon = Daemon(parse_config(daemon_config(tmp_path, every_events=10, witnesses=witnesses)), runtimes={})
    await daemon.start()
    try:
        [submitter] = daemon.checkpointer.cosigners.witnesses
        started = time.monotonic()
        await Histories().append(daemon, 10)
        await eventually_async(lambda: submitter.failures >= 1, 20, "the dripping call given up")
        assert time.monotonic() - started < 10  # the call's timeout, not the drip's end (never)
        refusals = daemon.checkpointer.witness_counts()[0][2]
        assert refusals.keys() == {"unreachable"} and refusals["unreachable"] >= 1
    finally:
        await daemon.stop()
        drip.close()
