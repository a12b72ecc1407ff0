"""The embedding store: one Parquet dataset per encoder id, committed chunk by chunk.

Each chunk is its own file, written atomically, with the encoder id and vector dimension in its
metadata. Rows are keyed by (product_id, content_hash); only missing keys are ever encoded, so a
killed run resumes where its last committed chunk ended. Reads go through DuckDB and Arrow and
come back as one NumPy matrix, never as per-row Python objects.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from warehouse import schemas
from warehouse.schemas import HASH_COLUMN  # noqa: F401  (features import it from here)
from warehouse.atomic import read_metadata, visible_parquet_files, write_parquet_atomic
from warehouse.errors import VitrineError
from warehouse.layout import Warehouse
from warehouse.tables import now_utc

ID_KEY = "vitrine.encoder_id"
DIM_KEY = "vitrine.dim"


class EncoderMismatch(VitrineError):
    """Vectors on disk were made by another encoder or have another dimension."""


class EmbeddingStore:
    def __init__(self, wh: Warehouse, encoder_id: str, dim: int | None = None) -> None:
        self.wh = wh
        self.encoder_id = encoder_id
        self.dir = wh.embeddings_dir(encoder_id)
        self.dim = dim
        self._check_files()

    def files(self) -> list[Path]:
        return visible_parquet_files(self.dir)

    def _check_files(self) -> None:
        """Refuse a dataset whose files disagree with this encoder id or dimension."""
        for f in self.files():
            md = read_metadata(f)
            if md.get(ID_KEY) != self.encoder_id:
                raise EncoderMismatch(
                    f"{f} holds vectors of encoder {md.get(ID_KEY)!r}, not {self.encoder_id!r}; "
                    "vectors of different encoders are never mixed"
                )
            d = int(md.get(DIM_KEY, -1))
            if self.dim is None:
                self.dim = d
            elif d != self.dim:
                raise EncoderMismatch(
                    f"{f} holds {d}-d vectors but encoder {self.encoder_id!r} makes {self.dim}-d ones"
                )

    def _scan_sql(self, columns: str) -> str:
        files = ", ".join("'" + str(f).replace("'", "''") + "'" for f in self.files())
        return f"SELECT {columns} FROM read_parquet([{files}])"

    def count(self) -> int:
        if not self.files():
            return 0
        return duckdb.connect().execute(self._scan_sql("count(*)")).fetchone()[0]

    def missing(self, keys: pa.Table) -> pa.Table:
        """The rows of `keys` (product_id, content_hash, ...) that have no vector yet, order kept."""
        if not self.files() or keys.num_rows == 0:
            return keys
        con = duckdb.connect()
        con.register("wanted", keys.append_column("__i", pa.array(np.arange(keys.num_rows, dtype=np.int64))))
        out = con.sql(
            "SELECT w.* FROM wanted w ANTI JOIN ("
            + self._scan_sql("product_id, content_hash")
            + ") s USING (product_id, content_hash) ORDER BY w.__i"
        ).to_arrow_table()
        con.close()
        out = out.drop_columns(["__i"])
        return out

    def write_chunk(
        self, product_ids: Sequence[str], content_hashes: Sequence[str], vectors: np.ndarray, extra: dict[str, str] | None = None
    ) -> Path:
        """Commit one chunk of vectors atomically; returns the file it became."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(product_ids):
            raise ValueError(f"vectors of shape {vectors.shape} for {len(product_ids)} products")
        if self.dim is None:
            self.dim = vectors.shape[1]
        if vectors.shape[1] != self.dim:
            raise EncoderMismatch(f"encoder {self.encoder_id!r} stores {self.dim}-d vectors, got {vectors.shape[1]}-d")
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        table = pa.Table.from_arrays(
            [
                pa.array(product_ids, pa.string()),
                pa.array(content_hashes, pa.string()),
                pa.FixedSizeListArray.from_arrays(flat, self.dim),
                pa.array([now_utc()] * len(product_ids), schemas.TS),
            ],
            schema=schemas.embeddings_schema(self.dim),
        )
        md = {ID_KEY: self.encoder_id, DIM_KEY: str(self.dim), **(extra or {})}
        name = f"part-{now_utc().strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
        return write_parquet_atomic(table, self.dir / name, md)

    def read_matrix(
        self, product_ids: Sequence[str], content_hashes: Sequence[str | None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vectors aligned to `product_ids` and a mask of which were found.

        With `content_hashes`, a vector counts only if it encodes that exact content (fresh);
        without, the newest vector of each product is taken. Missing rows are zeros, mask False.
        """
        n = len(product_ids)
        dim = self.dim or 0
        matrix = np.zeros((n, dim), dtype=np.float32)
        mask = np.zeros(n, dtype=bool)
        if n == 0 or not self.files():
            return matrix, mask
        cols = {"idx": pa.array(np.arange(n, dtype=np.int64)), "product_id": pa.array(product_ids, pa.string())}
        if content_hashes is not None:
            cols["content_hash"] = pa.array(content_hashes, pa.string())
            on = "USING (product_id, content_hash)"
            src = self._scan_sql("product_id, content_hash, vector")
        else:
            on = "USING (product_id)"
            src = (
                self._scan_sql("product_id, vector, encoded_at")
                + " QUALIFY row_number() OVER (PARTITION BY product_id ORDER BY encoded_at DESC) = 1"
            )
        con = duckdb.connect()
        con.register("wanted", pa.table(cols))
        got = con.sql(f"SELECT w.idx, s.vector FROM wanted w JOIN ({src}) s {on}").to_arrow_table()
        con.close()
        if got.num_rows:
            idx = got["idx"].to_numpy()
            vec = got["vector"].combine_chunks()
            values = vec.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
            matrix[idx] = values
            mask[idx] = True
        return matrix, mask
