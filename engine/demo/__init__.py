"""A stand-in game server for the demo config and the tests. Imports nothing of the engine."""
