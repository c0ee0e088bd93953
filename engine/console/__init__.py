"""A server's console, whatever runs it: `lines` cuts a runtime's output into bounded lines and
throttles a flood (both runtimes feed it: the local runtime from its console files, Docker from
its attach stream); `buffer` keeps the recent lines and tells live listeners (the websocket), the
server's output and the daemon's notes apart; `readiness` matches the egg's done-lines that say a
starting server is up. How bytes reach the daemon and commands reach the server is each runtime's
own (`engine.environments.local.console_files` and `console_input`, `engine.environments.docker.attach`);
which buffer belongs to which running process is the power engine's (`engine.power.processes`).

May import: `engine.servers.patterns` (done-line patterns). Nothing else of the engine: runtimes
and the power engine import this package, never the other way round.
"""
