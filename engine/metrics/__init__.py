"""The node's metrics for Prometheus (GET /metrics; docs/metrics.md).

- `log_counts`: the counters read from the log (so a restart keeps them) and the operation
  histograms, brought up to date at each scrape;
- `store_watch`: the store's commits (group sizes, commit latency), one cheap subscriber;
- `node_metrics`: the families, from those and from what is true now (servers by state, each
  server's utilization, checkpoints, Panel outboxes, the log's size, the build).

May import: `engine.store`, `engine.events`, `engine.event_types` (checked: pyproject's
[tool.importlinter]). What else it reads (the registry, utilization, the checkpointer) is handed
to it by the daemon's façade, `engine.node`.
"""
