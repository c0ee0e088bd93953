"""The `wingman` command (typer): `main` runs the daemon and talks to it, `audit` reads the
database directly, `output` holds the formats and exit codes they share, `defaults` the config
written on first run."""
