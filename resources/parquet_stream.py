"""Parquet written batch by batch to a local file, readable by ``dataframe_from_parquet``.

A table too large to hold in memory (the item results of a brand of 10,000
items) is appended to a ``ParquetTableWriter`` a few rows at a time: each batch
becomes one row group, and only the current batch is in memory. The columns
are declared up front (one Arrow schema for every batch, unlike a DataFrame
whose types come from its values): JSON columns are stored as JSON text and
listed in the schema metadata, exactly as ``ParquetIOManager`` stores a
DataFrame's dict/list columns, and vector columns are Arrow lists of float32.

The finished file is handed to Dagster as a :class:`StagedParquet`; the
``ParquetIOManager`` stores it by streaming the file (``put_file``), and
loads it back as the DataFrame downstream assets expect.
No Dagster import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from resources.parquet_io_manager import JSON_COLUMNS_KEY, StagedParquet, _is_missing, _json_default

JSON = "json"
FLOAT32_LIST = pa.list_(pa.float32())


class ParquetTableWriter:
    """Append rows (dicts) in batches of ``batch_rows`` to a Parquet file with declared ``columns``.

    ``columns`` maps each name to an Arrow type, or to ``"json"`` for a column
    of dicts/lists/None. Rows missing a column store null. Use as a context
    manager, or call :meth:`close`; raises ``TypeError`` naming the column when
    a value cannot be stored.
    """

    def __init__(self, path: Path, columns: Mapping[str, pa.DataType | str], *, batch_rows: int = 256) -> None:
        self.path, self.batch_rows = Path(path), max(1, int(batch_rows))
        self.columns = dict(columns)
        self.json_columns = [name for name, kind in self.columns.items() if kind == JSON]
        fields = [pa.field(name, pa.string() if kind == JSON else kind) for name, kind in self.columns.items()]
        metadata = {JSON_COLUMNS_KEY: json.dumps(self.json_columns).encode()} if self.json_columns else None
        self.schema = pa.schema(fields, metadata=metadata)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(str(self.path), self.schema, compression="snappy")
        self._pending: list[dict[str, Any]] = []
        self.rows = 0

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        """Queue ``rows``; a full batch is written at once."""
        self._pending.extend(rows)
        if len(self._pending) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Write the queued rows as one row group."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        arrays = {}
        for name, kind in self.columns.items():
            values = [row.get(name) for row in batch]
            if kind == JSON:
                try:
                    values = [
                        None if _is_missing(v) else json.dumps(v, default=_json_default, ensure_ascii=False)
                        for v in values
                    ]
                except (TypeError, ValueError) as exc:
                    raise TypeError(f"column {name!r} holds a value that cannot be stored as JSON: {exc}") from exc
            try:
                arrays[name] = pa.array(values, type=self.schema.field(name).type)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise TypeError(f"column {name!r} cannot hold a value of this batch: {exc}") from exc
        self._writer.write_table(pa.table(arrays, schema=self.schema))
        self.rows += len(batch)

    def close(self) -> StagedParquet:
        """Write what is queued and finish the file."""
        self.flush()
        self._writer.close()
        return StagedParquet(self.path, self.rows)

    def __enter__(self) -> "ParquetTableWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer.is_open:
            self.close()
