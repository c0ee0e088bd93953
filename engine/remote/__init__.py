"""Everything that speaks to the Panel, as Wings has `remote/`.

- `client`: the Panel's remote API (Wings' auth and Accept type; `PanelError` names the URL, the
  status and the Panel's `errors[].detail`).
- `listing`, `documents`, `inventory`: the boot inventory (the Panel's servers, paged and checked
  whole before anything changes, then reconciled with the registry).
- `installs`: Wings' create and sync, and the install reports.
- `outbox`, `activity*`: activity and Pelican's container status, projections of the log sent
  behind a durable cursor.
- `panel`: builds the Panel side from the config (none for a standalone node).

May import: `engine.store`, `engine.servers`, `engine.events`, `engine.config`,
`engine.environments` (the server users and the protocol), `engine.preboot.checks`,
`engine.power.journal` and `engine.power.processes`. In the engine, only `engine.daemon` imports
this package (and `engine.preboot.sources`, for the client); the API, its errors.
"""
