"""The append-only event store: the database and its schema, the writer that commits appends in
groups, the per-stream hash chain, and the lenient reader that auditors use. Also what the signer
(engine.checkpoints) and the verifier (engine.audit) of checkpoints share: the RFC 9162 tree
(`merkle`), the signed checkpoint format (`checkpoint_format`) and where checkpoints are kept
(`checkpoint_storage`).

May import: `engine.events`. Nothing above it (servers, power, audit) is known here.
"""
