"""The ways in: the Sanic app and its routes, authentication, error rendering, and the CLI.
Calls `engine/`; the engine never imports anything from here."""
