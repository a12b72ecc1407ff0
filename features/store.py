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


def _matrix(vectors: pa.FixedSizeListArray, dim: int) -> np.ndarray:
    """A slice of FLOAT[dim] vectors as an (n, dim) array, without per-row Python objects."""
    values = vectors.values.to_numpy(zero_copy_only=False)
    return values[vectors.offset * dim : (vectors.offset + len(vectors)) * dim].reshape(-1, dim)


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
        self,
        product_ids: Sequence[str],
        content_hashes: Sequence[str | None] | None = None,
        sparse: bool = False,
        chunk_rows: int = 65_536,
    ):
        """Vectors aligned to `product_ids` and a mask of which were found.

        With `content_hashes`, a vector counts only if it encodes that exact content (fresh);
        without, the newest vector of each product is taken. Missing rows are zeros, mask False.
        The join streams `chunk_rows` at a time into the result, so a million 4096-d vectors never
        sit in memory twice (as an Arrow table and as the matrix). `sparse`: the result is a
        scipy CSR matrix holding only the non-zeros: hashed n-grams of a title are a few dozen of
        4096, so a million of them take megabytes, not 16 GB.
        """
        n = len(product_ids)
        dim = self.dim or 0
        mask = np.zeros(n, dtype=bool)
        matrix = None if sparse else np.zeros((n, dim), dtype=np.float32)
        rows, cols, vals = [], [], []
        if n and self.files():
            for idx, values in self._matched(product_ids, content_hashes, chunk_rows):
                mask[idx] = True
                if sparse:
                    r, c = np.nonzero(values)
                    rows.append(idx[r])
                    cols.append(c.astype(np.int32))
                    vals.append(values[r, c])
                else:
                    matrix[idx] = values
        if not sparse:
            return matrix, mask
        from scipy import sparse as sp

        cat = (lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt))
        coo = sp.coo_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int32))), shape=(n, dim))
        return coo.tocsr(), mask

    def vectors_for_hashes(self, content_hashes: Sequence[str], chunk_rows: int = 65_536):
        """(content hashes, vectors) of the wanted contents the store already holds under any
        product, one vector per content, chunk by chunk: identical photo bytes or title text
        under a new product id need no second forward pass."""
        if not self.files() or not len(content_hashes):
            return
        dim = self.dim or 0
        con = duckdb.connect()
        try:
            con.register("wanted", pa.table({"content_hash": pa.array(list(dict.fromkeys(content_hashes)), pa.string())}))
            sql = ("SELECT s.content_hash, any_value(s.vector) AS vector FROM wanted w JOIN ("
                   + self._scan_sql("content_hash, vector") + ") s USING (content_hash) GROUP BY s.content_hash")
            for batch in con.execute(sql).to_arrow_reader(chunk_rows):
                if batch.num_rows:
                    yield batch.column(0).to_pylist(), _matrix(batch.column(1), dim)
        finally:
            con.close()

    def _matched(self, product_ids: Sequence[str], content_hashes: Sequence[str | None] | None, chunk_rows: int):
        """(row positions, vectors) of the stored vectors the wanted products have, chunk by chunk."""
        dim = self.dim or 0
        cols = {"idx": pa.array(np.arange(len(product_ids), dtype=np.int64)), "product_id": pa.array(product_ids, pa.string())}
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
        try:
            con.register("wanted", pa.table(cols))
            reader = con.execute(f"SELECT w.idx, s.vector FROM wanted w JOIN ({src}) s {on}").to_arrow_reader(chunk_rows)
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                yield batch.column(0).to_numpy(), _matrix(batch.column(1), dim)
        finally:
            con.close()
