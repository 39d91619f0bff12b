"""The one content hash of albench: sha256 hex over bytes, text or buffers.

Every address and fingerprint (store keys and checksums, dataset fingerprints, trial keys, model
identities and folder digests) is ``content_hash`` of a payload its caller builds; the callers
keep their own exact payload bytes (their JSON separators differ), this only hashes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

Chunk = bytes | bytearray | memoryview | str
"""A piece of hashed content: bytes or any C-contiguous buffer (``ndarray.data``), or text,
which is hashed as its UTF-8 encoding."""


def content_hash(*chunks: Chunk) -> str:
    """sha256 hex digest of the concatenated chunks (``str`` chunks as UTF-8)."""
    return content_hash_of(chunks)


def content_hash_of(chunks: Iterable[Chunk]) -> str:
    """``content_hash`` of chunks produced one at a time (e.g. a file read in blocks)."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
    return digest.hexdigest()
