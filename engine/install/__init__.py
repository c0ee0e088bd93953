"""An egg's install script, run for a server as Wings runs it (`server/install.go`): the install
operation, which holds the server's power lock while the server is `installing`.

- `service`: begins installs (a Panel's create, a reinstall), ends them (a delete), and records
  each one's start and exactly one outcome with its state changes; reports to the Panel.
- `work`: what one install does, from the Panel's script to the server's folder given back to
  its user, whatever the runtime; the outcome it reached.
- what an install needs from a runtime is engine.environments.install_runner (`InstallRunner`,
  beside the runtime protocol; Docker's is engine.environments.docker.installer).
- `script`: the Panel's install document, and the script's folder on the host.
- `log_file`: the install log in the server's folder, written without following links.
- `feed`: the install as a server's websocket hears it (`install started`, `install output`...).
- `recovery`: at boot, an install the daemon was running when it stopped: adopted or interrupted.

May import: `engine.store`, `engine.servers`, `engine.environments` (the protocols and the server
users), `engine.preboot.checks`, `engine.power` (the journal, the power service's install door),
`engine.events`, `engine.install_events`, `engine.statechart`, `engine.config`. Never
`engine.remote`: the Panel is behind `InstallSource`, which engine.remote.installs implements.
"""
