"""The witness side of `wingman audit verify`: `--witness KEY` (repeatable) and `--cosignatures N`,
and the text of what the cosignatures kept beside the log show (engine.checkpoints.cosigned_verify)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.api.cli.output import Stop
from wingman.engine.checkpoints.cosignature import BadVerifierKey, WitnessKey
from wingman.engine.checkpoints.cosigned_verify import CosignatureReport, verify_cosignatures

WitnessOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--witness",
        help="A cosigning witness's verifier key, <name>+<hex key id>+<base64 key> (Ed25519 cosignature/v1), "
        "as in audit.witnesses; repeat for each witness. Its kept cosignatures are checked against the log.",
    ),
]
CosignaturesOpt = Annotated[
    int | None,
    typer.Option(
        "--cosignatures",
        min=1,
        help="Require this many of the --witness witnesses to vouch for each node's log (exit 1 otherwise).",
    ),
]


def witness_keys(given: list[str] | None, required: int | None) -> list[WitnessKey] | None:
    """The witnesses' keys, or None when neither option was given (verify as before)."""
    if not given and required is None:
        return None
    keys: list[WitnessKey] = []
    for text in given or []:
        try:
            keys.append(WitnessKey.parse(text))
        except BadVerifierKey as exc:
            raise Stop(f"--witness {text}: {exc}") from None
    if len({k.name for k in keys}) != len(keys):
        raise Stop("--witness: two keys have the same name; give each witness once")
    if required is not None and required > len(keys):
        raise Stop(f"--cosignatures {required}: give at least {required} witness keys with --witness")
    return keys


async def check_cosignatures(
    engine: AsyncEngine, keys: list[WitnessKey] | None, required: int | None
) -> CosignatureReport | None:
    if keys is None:
        return None
    return await verify_cosignatures(engine, keys, required or 0)


def print_cosignatures(cs: CosignatureReport) -> None:
    need = f", {cs.required} required" if cs.required else ""
    print(f"Cosignatures: {cs.checked} kept from {len(cs.witnesses)} witness key(s){need}:")
    for n in cs.nodes:
        by = ", ".join(f"{w} up to size {s}" for w, s in sorted(n.vouched.items())) or "no witness"
        print(f"  node {n.node}: {n.log_size} events; vouched for by {by}.")
        if cs.required and n.quorum_size:
            past = n.log_size - n.quorum_size
            print(
                f"  {cs.required} witness(es) vouch up to size {n.quorum_size} (position {n.quorum_position}); "
                + (f"{past} event(s) past it are vouched for by fewer." if past else "nothing lies past it.")
            )
        for p in n.problems:
            print(f"  PROBLEM: {p}")
    for p in cs.unplaced:
        print(f"  PROBLEM: {p}")
    if cs.ok:
        print("OK: every kept cosignature of the given witnesses checks out against the log.")
