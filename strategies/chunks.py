"""Row blocks: how every kernel bounds its memory, whatever the pool's size."""

from __future__ import annotations

from collections.abc import Iterator

DEFAULT_CHUNK_ROWS = 8192


def row_chunks(n_rows: int, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[slice]:
    """Consecutive slices covering ``range(n_rows)``, the last one possibly shorter."""
    for start in range(0, n_rows, chunk_rows):
        yield slice(start, min(start + chunk_rows, n_rows))
