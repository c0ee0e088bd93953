"""What the metrics cost: accepted `kill` requests per second on a daemon while Prometheus-like
scrapes of GET /metrics come every second, against the same daemon, the same wrk settings, with no
scrape (before and after, averaged), in the same run."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import httpx

from benchmarks.suite import wrk
from benchmarks.suite.figures import Figure
from tests.support.daemon import TOKEN, DaemonProcess, definition

SCRAPE_EVERY = 1.0  # seconds, a tight scrape interval (Prometheus' default is 60 s, often set to 15)


def _scraping(url: str, stop: threading.Event, took: list[float]) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        while not stop.wait(SCRAPE_EVERY):
            r = client.get(url + "/metrics")
            r.raise_for_status()
            took.append(r.elapsed.total_seconds())


def metrics_figures(smoke: bool) -> list[Figure]:
    seconds, connections, servers = (2, 16, 20) if smoke else (10, 32, 200)
    defs = [definition() for _ in range(servers)]
    paths = [f"/api/servers/{d['settings']['uuid']}/power" for d in defs]
    daemon = DaemonProcess(Path(tempfile.mkdtemp(prefix="wingman-bench-metrics-")), servers=defs).start(timeout=300)
    try:
        before = wrk.run(daemon.url, paths, 1, connections, seconds, token=TOKEN)
        stop, took = threading.Event(), []
        scraper = threading.Thread(target=_scraping, args=(daemon.url, stop, took), daemon=True)
        scraper.start()
        try:
            scraped = wrk.run(daemon.url, paths, 1, connections, seconds, token=TOKEN)
        finally:
            stop.set()
            scraper.join(60)
        after = wrk.run(daemon.url, paths, 1, connections, seconds, token=TOKEN)
    finally:
        daemon.stop()
    baseline = (before.rate + after.rate) / 2
    settings = f"wrk -t1 -c{connections} -d{seconds}s, {servers} servers"
    figures = [
        Figure(
            f"accepted kills/s with /metrics scraped every {SCRAPE_EVERY:g} s ({settings})",
            scraped.rate,
            baseline,
            "requests/s",
            baseline_label="the same daemon, not scraped",
            target_ratio=0.95,
            raw={"scraped": scraped.__dict__, "before": before.__dict__, "after": after.__dict__},
        ),
        Figure(
            "  one scrape of /metrics under that load (median)",
            sorted(took)[len(took) // 2] * 1000 if took else None,
            None,
            "ms",
        ),
    ]
    for r in (before, scraped, after):
        if r.http_errors or r.socket_errors or not r.requests:
            figures[0].error = f"{r.http_errors} HTTP errors, {r.socket_errors} socket errors in {r.requests} requests"
    if not took:
        figures[1].error = "no scrape finished"
    return figures
