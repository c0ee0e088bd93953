"""Signed checkpoints over each node's own events (the whole log, on a database of one node), made
and checked: the Merkle tree, the checkpoint format,
where checkpoints are kept, the daemon's signing side, and verification and proofs against them.

The tree and the format:
- `tree`: the RFC 9162 Merkle tree (compact ranges, inclusion and consistency proofs), pure
  computation over bytes.
- `format`: a signed checkpoint (its body, its canonical bytes, the Ed25519 signature) and how
  public keys are written.
- `storage`: where checkpoints are kept (the checkpoints table, the checkpoint file), read leniently.

Signing, in the running daemon:
- `checkpointer`: a store subscriber keeps the tree current from each commit; a timer signs a
  checkpoint every N events or T seconds (and at a clean shutdown) and writes its copies.
- `resume`: the tree brought up to the log's end at boot, from the latest checkpoint when it
  checks out against the log, else by folding every event.
- `keys`: the Ed25519 key file (created 0600 on first run), and the files of a rotation.
- `witness`: the best-effort push of each checkpoint to a URL.

Checking, for auditors (on the daemon's database or a copy of it):
- `chain`: which checkpoints to believe (signatures, the key chain, the copies, gaps).
- `verify`: the log against the believed checkpoints, in one pass, each node's log with its key
  (`node_log` checks one node's, `report` says what was found).
- `proofs`: inclusion and consistency proofs a third party can check.

May import: `engine.store` (the log's reader, its hash and its schema; the event store only to
subscribe to its commits and write beside it), `engine.events`. The store knows nothing of this
package: the checkpointer subscribes to it. `engine.audit` imports `verify` to check the whole log
in the pass of its per-stream checks; the daemon builds the checkpointer.
"""
