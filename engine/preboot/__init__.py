"""What a start does before any process runs: fetch the definition (from the Panel or the
config file), run Wings' checks in Wings' order, rewrite configuration files inside the server's
folder, and hand the launch to the server's runtime.

May import: `engine.store`, `engine.servers`, `engine.environments.base` and `.server_users`,
`engine.events`, `engine.event_types`, `engine.config`, and `engine.remote.client`/`.documents` (a
server's definition fetched from the Panel) (checked: pyproject's [tool.importlinter]).
"""
