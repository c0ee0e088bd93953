"""The daemon's signing side of the audit: the Merkle tree over the whole log kept current from
the store's commits, signed checkpoints every N events or T seconds (and at a clean shutdown),
their copies (the checkpoints table, the checkpoint file, a witness), the signing key and its
rotation.

- `keys`: the Ed25519 key file (created 0600 on first run), and the files of a rotation.
- `resume`: the tree brought up to the log's end at boot, from the latest checkpoint when it
  checks out against the log, else by folding every event.
- `checkpointer`: the store subscriber, the timer, signing, and writing the copies.
- `witness`: the best-effort push of each checkpoint to a URL.

May import: `engine.store`, `engine.events`. Verification lives in `engine.audit.checkpoints`
and shares only the tree and the checkpoint format with this package (both in `engine.store`).
"""
