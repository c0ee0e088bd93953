"""The local process runtime (the default): each server a process on this machine that outlives
the daemon and is adopted at its next boot. `runtime` launches, adopts and reaps them; `handle`
is one running process (its exit through a pidfd, its stop signals to its process group);
`identity` tells a process from another that reused its pid; `console_files` follows each
server's output file and `console_input` writes to its stdin FIFO (the local runtime's console
transport: the lines themselves are cut by `engine.console.lines`).

May import: `engine.environments.base`, `engine.environments.server_users`, `engine.console.lines`,
`engine.servers.definition`, `engine.signals`.
"""
