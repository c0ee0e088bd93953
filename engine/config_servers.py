"""The config file's server definitions, held packed from the moment the file is read until the
daemon records them.

A node's config can list 10,000 servers. As parsed Python objects they are some 20 MiB of small
dicts and strings, and they would stay alive through the whole boot (the database, the registry
and the API are built before the servers are recorded). Everything long-lived that boot allocates
meanwhile lands in the same allocator pools, so when the documents are finally dropped most of
those pools stay pinned by a few survivors: measured, about 20 MiB of the daemon's memory at rest
was this. Packed, the documents are one buffer (one allocation, handed back whole when dropped)
and the parsed tree they came from is freed at once, before boot allocates anything else.

Each document is pickled on its own, so one can be read back without reading them all. The
buffer never leaves the process and is only ever read by this module: pickle here is a private,
exact copy (YAML's dates, bytes and big integers come back as they went in), not a file format.
"""

from __future__ import annotations

import pickle
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema


class ServerDocs(Sequence[dict[str, Any]]):
    """A read-only sequence of server definition documents (dicts), unpacked one at a time."""

    __slots__ = ("_blob", "_ends")

    def __init__(self, docs: Iterable[dict[str, Any]] = ()):
        parts = [pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL) for doc in docs]
        ends = array("Q")
        end = 0
        for part in parts:
            end += len(part)
            ends.append(end)
        self._blob = b"".join(parts)
        self._ends = ends

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self._ends)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("server document index out of range")
        start = self._ends[index - 1] if index else 0
        doc: dict[str, Any] = pickle.loads(memoryview(self._blob)[start : self._ends[index]])
        return doc

    def __iter__(self) -> Iterator[dict[str, Any]]:
        start = 0
        view = memoryview(self._blob)
        for end in self._ends:
            yield pickle.loads(view[start:end])
            start = end

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ServerDocs):
            return self._blob == other._blob and self._ends == other._ends
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"ServerDocs({len(self)} documents, {len(self._blob)} bytes)"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # Validated exactly as `list[dict[str, Any]]` (same checks, same error locations such as
        # `servers.3`), then packed; written out as that list again.
        return core_schema.no_info_after_validator_function(
            lambda docs: docs if isinstance(docs, ServerDocs) else cls(docs),
            handler.generate_schema(list[dict[str, Any]]),
            serialization=core_schema.plain_serializer_function_ser_schema(list),
        )
