"""Readiness and liveness probes (issue 31): asking a game server, over the network, whether it
answers, instead of trusting only its console's done line.

- `spec`       the `probes:` key of a server definition, checked at the door
- `failure`    the one exception every probe kind raises: ProbeFailure
- `tcp`, `http`, `a2s`, `minecraft`: one probe kind each (bounded replies, defensive parsers)
- `attempt`    one probe attempt of any kind, under its timeout: an Outcome, never an exception
- `runner`     readiness (until the first success or the deadline) and liveness (until hung)
- `events`     what the log records of probes: the first success, each change, the decision

Nothing here imports the power engine: it calls in (engine.power), passing callbacks.
"""
