"""The one exception a probe kind raises: the server did not answer as it should. A probed
server is hostile: whatever it sends, a parser raises this, never anything else."""

from __future__ import annotations


class ProbeFailure(Exception):
    """The probe failed; the message says how, in words for the log ("the reply is not A2S")."""
