"""The `wingman` command (typer): `main` runs the daemon and talks to it, `events` prints the
daemon's log (live with --follow), `audit` reads the database directly, `output` holds the
formats and exit codes they share, `defaults` the config written on first run."""
