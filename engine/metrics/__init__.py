"""The node's metrics for Prometheus (GET /metrics; docs/metrics.md).

- `log_counts`: the counters summed from the log at start (so a restart keeps them), then
  counted as the store commits, and the operation histograms;
- `store_watch`: the store's commits (group sizes, commit latency), one cheap subscriber;
- `node_metrics`: the families, from those and from what is true now (servers by state, each
  server's utilization, checkpoints, Panel outboxes, the log's size, the build).

May import: `engine.store`, `engine.events`, `engine.event_types` (checked: pyproject's
[tool.importlinter]). What else it reads (the registry, utilization, the checkpointer) is handed
to it by the daemon's façade, `engine.node`.
"""
