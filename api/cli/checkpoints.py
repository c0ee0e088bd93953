"""The checkpoint side of `wingman audit`: the trusted key and checkpoint file options, the text of
a verification's checkpoint results, and `wingman audit prove`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.api.cli.output import EXIT_FINDINGS, Stop, run
from wingman.engine.checkpoints.format import BadKey, decode_key, encode_key
from wingman.engine.checkpoints.proofs import LogDisagrees, NoProof, prove_consistency, prove_inclusion
from wingman.engine.checkpoints.verify import CheckpointReport, verify_checkpoints
from wingman.engine.config import ConfigError, load_config

KeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--key",
        "-k",
        help="The daemon's Ed25519 public key (base64, hex, PEM, or a file holding one), from its "
        "start-up output or GET /api/audit/key. Without it nothing shows the log was not rewritten. "
        "In a fleet, each node's as NODE=KEY (repeat --key); a node given none is checked against "
        "the keys its checkpoints announce.",
    ),
]
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
CheckpointsOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoints",
        help="The checkpoint file (JSON lines) kept out of the database's reach "
        "(default: audit.checkpoint_file of --config, when the database comes from it).",
    ),
]


def trusted_key(given: str | list[str] | None) -> str | None:
    """The trusted key's text for engine.checkpoints.verify: `KEY`, or `NODE=KEY ...` in a fleet."""
    texts = [given] if isinstance(given, str) else list(given or [])
    parts: list[str] = []
    for text in texts:
        node, eq, key = text.partition("=")
        per_node = bool(eq and key and _NODE_ID.match(node))
        try:
            encoded = encode_key(decode_key(key if per_node else text))
        except BadKey as exc:
            raise Stop(f"--key {text}: {exc}") from None
        parts.append(f"{node}={encoded}" if per_node else encoded)
    if len([p for p in parts if "=" not in p.rstrip("=")]) > 1:
        raise Stop("--key: give one key, or one NODE=KEY per node")
    return " ".join(parts) or None


def checkpoint_file(given: Path | None, database: str | None, config: Path | None) -> Path | None:
    if given is not None:
        if not given.is_file():
            raise Stop(f"checkpoint file {given} does not exist")
        return given
    if database is not None:
        return None  # a database named on its own: the config's file may belong to another one
    try:
        path = load_config(config).checkpoint_file_path
    except ConfigError:
        return None
    return path if path.is_file() else None


def print_checkpoints(cp: CheckpointReport) -> None:
    """A node's results as before; a fleet's, node by node, then the first problem with its node."""
    if not cp.nodes:
        _print_log(cp)
        return
    print(f"Checkpoints: {len(cp.nodes)} nodes, each signing a log of its own events:")
    for r in cp.nodes:
        if r.ok:
            key = r.keys[-1]["key"] if r.keys else "-"
            print(
                f"  node {r.node}: OK, {r.believed} signed checkpoint(s) (key {key}), {r.covered} of its "
                f"{r.log_size} events covered (up to position {r.covered_position})"
            )
        else:
            print(f"  node {r.node}: PROBLEM, {r.findings_total} problem(s); the first: {r.first}")
    if not cp.ok:
        _print_log(cp)
    else:
        for w in cp.warnings:
            print(f"warning: {w}")


def _print_log(cp: CheckpointReport) -> None:
    if cp.ok:
        if cp.believed:
            key = cp.trusted_key or (cp.keys[-1]["key"] if cp.keys else "?")
            rotations = f", {len(cp.keys) - 1} key rotation(s) followed" if len(cp.keys) > 1 else ""
            whose = f" of node {cp.node}" if cp.node and cp.covered != cp.covered_position else ""
            covered = (
                f"positions 1 to {cp.covered}" if not whose else f"its events up to position {cp.covered_position}"
            )
            print(
                f"OK: checkpoints{whose}: {cp.believed} signed checkpoint(s) (key {key}{rotations}); the log "
                f"reproduces every one; {covered} are covered."
            )
        if cp.not_yet_covered:
            after = cp.covered_position
            print(f"{cp.not_yet_covered} events not yet covered (after position {after}, the last checkpoint).")
    else:
        first = cp.first
        where = f"; the first bad position is {first.position}" if first and first.position is not None else ""
        print(f"PROBLEM: {cp.findings_total} problem(s) with the signed checkpoints{where}:")
        print(f"  {first}")
        for f in [f for f in cp.findings if f is not first][:9]:
            print(f"  then: {f}")
        if cp.findings_total > 10:
            print(f"  ... and {cp.findings_total - 10} more (use --format json)")
        if cp.not_yet_covered:
            print(f"{cp.not_yet_covered} events not yet covered (after position {cp.covered_position}).")
    for w in cp.warnings:
        print(f"warning: {w}")


def prove(
    position: Annotated[int | None, typer.Argument(help="The log position of the event to prove.", min=1)] = None,
    consistency: Annotated[
        tuple[int, int] | None,
        typer.Option(
            "--consistency", help="OLD NEW: prove that the checkpoint of NEW events extends the one of OLD events."
        ),
    ] = None,
    checkpoint: Annotated[
        int | None,
        typer.Option(
            "--checkpoint",
            help="Prove against the checkpoint with this seq (default: the latest that covers the event).",
        ),
    ] = None,
    key: KeyOpt = None,
    checkpoints: CheckpointsOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Daemon config file.")] = None,
    database: Annotated[str | None, typer.Option("--database", "-d", help="Database URL or .db file.")] = None,
) -> None:
    """Print, as JSON, an inclusion proof of the event at POSITION against a signed checkpoint, or
    with --consistency OLD NEW a consistency proof between two checkpoints (tree sizes). A third
    party checks either with the public key alone (the format is in the README)."""

    async def job(engine: AsyncEngine) -> int:
        if (position is None) == (consistency is None):
            raise Stop("give either a POSITION or --consistency OLD NEW")
        trusted, file = trusted_key(key), checkpoint_file(checkpoints, database, config)
        if trusted is not None and " " in trusted:
            raise Stop("a proof is against one node's checkpoints: give its key alone")
        try:
            if consistency is not None:
                doc = await prove_consistency(engine, consistency[0], consistency[1], trusted, file)
            else:
                doc = await prove_inclusion(engine, position, trusted, file, checkpoint)
        except NoProof as exc:
            raise Stop(str(exc), EXIT_FINDINGS if isinstance(exc, LogDisagrees) else 2) from None
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return 0

    run(database, config, job)


async def node_checkpoints(
    engine: AsyncEngine, server: str | None, node: str | None, trusted: str | None, file: Path | None
) -> CheckpointReport | None:
    """`wingman audit verify --node ID`: that node's own log of checkpoints (a node signs its own
    events), in a pass of its own; None for one server's stream, which no checkpoint signs alone."""
    if server is not None or node is None:
        return None
    return await verify_checkpoints(engine, trusted, file, node=node)
