"""Writer: buffers vectors and commits them to the embedding store `chunk_rows` rows at a time.

Each chunk is one atomic Parquet file (EmbeddingStore.write_chunk), so a killed run loses at most
the rows buffered since the last commit, and memory never holds more than about one chunk.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from features.store import EmbeddingStore


class ChunkWriter:
    def __init__(self, store: EmbeddingStore, chunk_rows: int) -> None:
        self.store = store
        self.chunk_rows = chunk_rows
        self._ids: list[str] = []
        self._hashes: list[str] = []
        self._vectors: list[np.ndarray] = []
        self._n = 0
        self.rows_written = 0
        self.files: list[Path] = []
        self.metadata: dict[str, str] = {}  # extra Parquet metadata of every chunk (e.g. the precision)

    def add(self, product_ids: list[str], content_hashes: list[str], vectors: np.ndarray) -> None:
        """Buffer a batch; commit every full chunk that is now available."""
        self._ids.extend(product_ids)
        self._hashes.extend(content_hashes)
        self._vectors.append(vectors)
        self._n += len(product_ids)
        while self._n >= self.chunk_rows:
            self._commit(self.chunk_rows)

    def flush(self) -> None:
        """Commit what is left (the last, partial chunk)."""
        if self._n:
            self._commit(self._n)

    def _commit(self, n: int) -> None:
        matrix = np.concatenate(self._vectors) if len(self._vectors) > 1 else self._vectors[0]
        self.files.append(self.store.write_chunk(self._ids[:n], self._hashes[:n], matrix[:n], self.metadata))
        self.rows_written += n
        self._ids, self._hashes = self._ids[n:], self._hashes[n:]
        rest = matrix[n:]
        self._vectors = [rest] if len(rest) else []
        self._n -= n
