"""The node's checkpoints and tree in the C2SP formats: `GET /api/audit/checkpoint` (the latest
checkpoint as a signed note, c2sp.org/tlog-checkpoint) and `GET /api/audit/tile/...` (the tree as
c2sp.org/tlog-tiles), with `/api/audit` as the log's URL prefix, so a stock tlog client can fetch
proofs without wingman's code (engine.checkpoints.note and .tiles).

The note carries the cosignatures the node's cosigning witnesses returned for its size
(engine.checkpoints.cosigning), as extra signature lines a client that does not know the witnesses
ignores, so a client can check a witness quorum from the note alone.

Read-only (`ctx_read_only=True`): audit tokens may fetch them.
"""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw, text

from wingman.api.context import node
from wingman.api.errors import ApiError
from wingman.api.openapi.describe import Answer, doc
from wingman.engine.checkpoints.cosigned import lines_at
from wingman.engine.checkpoints.note import checkpoint_note, checkpoint_text, origin, sign_note, verifier_key
from wingman.engine.checkpoints.tiles import NoTile, parse_tile_path
from wingman.engine.checkpoints.tree import EMPTY_ROOT

bp = Blueprint("tlog")


def _signed_size(request: Request) -> int:
    last = node(request).checkpointer.last
    return 0 if last is None else last.size


@bp.get("/api/audit/checkpoint", ctx_read_only=True)
@doc(
    "The latest checkpoint as a C2SP signed note",
    "The tlog-checkpoint note (origin `wingman/<node id>`, tree size, base64 RFC 6962 root) signed as a "
    "signed-note with the node's Ed25519 key; the `Wingman-Verifier-Key` header gives the verifier key "
    "`<name>+<hex key id>+<base64(0x01 || key)>`. Same size and root as the latest JSON checkpoint; before the "
    "first one, the empty tree (size 0), which every later tree extends. The cosignatures kept from the node's "
    "cosigning witnesses for that size follow the node's own signature line (c2sp.org/tlog-cosignature).",
    answers={
        200: Answer(
            "The signed note",
            content={"text/plain": {"type": "string"}},
            headers={"Wingman-Verifier-Key": "The signed-note verifier key of the key that signed the note"},
        )
    },
)
async def checkpoint(request: Request) -> HTTPResponse:
    cp = node(request).checkpointer
    name, key = origin(cp.settings.node_id), cp.key
    # Before the first checkpoint, the empty tree: it claims nothing, and every later tree extends it.
    note = (
        sign_note(checkpoint_text(name, 0, EMPTY_ROOT), name, key) if cp.last is None else checkpoint_note(cp.last, key)
    )
    if cp.last is not None and cp.settings.witnesses:
        note += "".join(f"{line}\n" for line in await lines_at(node(request).db, cp.settings.node_id, cp.last.size))
    return text(
        note,
        content_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-cache", "Wingman-Verifier-Key": verifier_key(name, key.public_key())},
    )


@bp.get("/api/audit/tile/<path:path>", ctx_read_only=True)
@doc(
    "A tile of the tree, C2SP tlog-tiles",
    "`<L>/<N>[.p/<W>]`: hashes of level L (0: leaf hashes), index N as 3-digit path elements, all but the "
    "last led by `x`; `.p/<W>` a partial tile of W hashes. `entries/<N>[.p/<W>]`: the entry bundle, whose "
    "entries are the leaves' 32-byte event hashes (a leaf hash is SHA-256(0x00 || event hash)). Only what the "
    "latest signed checkpoint covers is served.",
    errors=(404,),
    answers={
        200: Answer("The tile", content={"application/octet-stream": {"type": "string", "contentEncoding": "binary"}})
    },
)
async def tile(request: Request, path: str) -> HTTPResponse:
    n = node(request)
    try:
        wanted = parse_tile_path(path)
        body = await n.checkpointer.tiles.tile(wanted, _signed_size(request))
    except NoTile as exc:
        raise ApiError(404, str(exc)) from None
    return raw(
        body, content_type="application/octet-stream", headers={"Cache-Control": "public, max-age=31536000, immutable"}
    )
