"""Dagster IO manager that keeps asset outputs (pandas DataFrames) as Parquet in the media store."""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from resources.dagster_resources import MediaStoreLocation
from resources.media_store import StoreNotFoundError

UNPARTITIONED = "__all__"
# Parquet schema metadata key listing the columns stored as JSON text.
JSON_COLUMNS_KEY = b"ad_assets.json_columns"


@dataclass(frozen=True)
class StagedParquet:
    """A Parquet file already written on local disk (``resources.parquet_stream``), to store as an asset's output.

    ``rows`` is its row count (the materialisation's ``row_count``). The
    IO manager streams the file to the store; it loads back as a DataFrame.
    """

    path: Path
    rows: int


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_columns(df: pd.DataFrame) -> list[Any]:
    """Object columns that hold dicts or lists (ndarray-only columns stay native)."""
    found = []
    for name in df.columns:
        column = df[name]
        if column.dtype != object:
            continue
        # Missing values (None, NA, NaN) are never containers: no need to filter them out first.
        if any(isinstance(v, (dict, list, tuple)) for v in column):
            found.append(name)
    return found


def dataframe_to_parquet(df: pd.DataFrame) -> bytes:
    """Serialise ``df`` to Parquet bytes (snappy), JSON-encoding dict/list columns.

    See :class:`ParquetIOManager` for which columns are JSON-encoded and why.
    """
    json_columns = _json_columns(df)
    encoded = df
    if json_columns:
        encoded = df.copy()
        for name in json_columns:
            try:
                encoded[name] = pd.Series(
                    [
                        None if _is_missing(v) else json.dumps(v, default=_json_default, ensure_ascii=False)
                        for v in df[name]
                    ],
                    index=df.index,
                    dtype=object,
                )
            except (TypeError, ValueError) as exc:
                raise TypeError(f"column {name!r} holds a value that cannot be stored as JSON: {exc}") from exc
    table = pa.Table.from_pandas(encoded)
    if json_columns:
        metadata = dict(table.schema.metadata or {})
        metadata[JSON_COLUMNS_KEY] = json.dumps([str(name) for name in json_columns]).encode()
        table = table.replace_schema_metadata(metadata)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def dataframe_from_parquet(data: bytes) -> pd.DataFrame:
    """Inverse of :func:`dataframe_to_parquet`."""
    table = pq.read_table(pa.BufferReader(data))
    raw = (table.schema.metadata or {}).get(JSON_COLUMNS_KEY)
    df = table.to_pandas()
    if raw:
        json_names = set(json.loads(raw))
        for name in df.columns:
            if str(name) in json_names:
                df[name] = pd.Series(
                    [json.loads(v) if isinstance(v, str) else None for v in df[name]],
                    index=df.index,
                    dtype=object,
                )
    return df


def _segment(partition_key: str) -> str:
    # Partition keys come from people (brand names); percent-encode anything
    # that is not plainly safe in a path segment, so "a/b" or ".." cannot
    # escape the asset's folder.
    if partition_key in (".", ".."):
        return partition_key.replace(".", "%2E")
    return quote(partition_key, safe="-_.~@+=")


class ParquetIOManager(dg.ConfigurableIOManager, MediaStoreLocation):
    """Stores each asset partition's DataFrame as one Parquet file in the media store.

    Path: ``<prefix>/<asset key path>/<partition key>.parquet`` (unpartitioned
    assets: ``.../__all__.parquet``), under ``storage_url`` (a local directory
    or ``s3://bucket/prefix``). Partition keys are percent-encoded where they
    hold characters unsafe in a path. Written with pyarrow (snappy) through
    ``MediaStore.put_bytes_sync``, so a reader never sees a half-written file.
    An asset that returns ``None`` writes nothing.

    Column types: plain columns use their Arrow types. Columns holding Python
    ``dict``/``list``/``tuple`` values (AI results, labels, word timings) are
    stored as JSON text and decoded on load, so they come back exactly as
    Python lists and dicts (tuples come back as lists, numpy scalars as Python
    numbers). JSON rather than Arrow nested types because Arrow needs one
    schema for all rows: dicts with differing keys would come back with
    null-filled extra keys, and mixed-type lists would not store at all.
    Columns whose every value is a numpy array (embedding vectors) stay native
    Arrow lists, compact and fast, and come back as numpy arrays. The JSON
    columns are listed in the file's schema metadata (``ad_assets.json_columns``).

    Loading an input that spans several upstream partitions returns a
    ``dict`` of partition key to DataFrame, as Dagster's own path IO managers do.
    """

    prefix: str = "intermediates"

    def read_partition(self, asset_path: list[str], partition_key: str | None) -> pd.DataFrame:
        """The stored output of one asset partition, outside a run (e.g. ``ad-assets urls``).

        Raises ``StoreNotFoundError`` naming the asset and partition when nothing is stored yet.
        """
        return self._read("/".join(asset_path), list(asset_path), partition_key)

    def _key(self, path: list[str], partition_key: str | None) -> str:
        name = UNPARTITIONED if partition_key is None else _segment(partition_key)
        parts = [p for p in self.prefix.strip("/").split("/") if p] + list(path)
        return "/".join([*parts, f"{name}.parquet"])

    @staticmethod
    def _output_path(context: dg.OutputContext) -> list[str]:
        if context.has_asset_key:
            return list(context.asset_key.path)
        return ["runs", *context.get_identifier()]

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | StagedParquet | None) -> None:
        """Write ``obj`` as Parquet (a ``StagedParquet`` file is streamed as it is); record ``row_count`` and ``path``."""
        if obj is None:
            return
        what = context.asset_key.to_user_string() if context.has_asset_key else context.name
        if not isinstance(obj, (pd.DataFrame, StagedParquet)):
            raise TypeError(
                f"ParquetIOManager stores pandas DataFrames or StagedParquet files; {what} returned {type(obj).__name__}"
            )
        partition_key = None
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            if len(keys) != 1:
                raise ValueError(
                    f"ParquetIOManager writes one partition per run; {what} got {len(keys)} "
                    "partitions (launch the backfill as one run per partition)"
                )
            partition_key = keys[0]
        key = self._key(self._output_path(context), partition_key)
        store = self.store()
        if isinstance(obj, StagedParquet):
            asyncio.run(store.put_file(key, obj.path, content_type="application/vnd.apache.parquet"))
            rows, size = obj.rows, obj.path.stat().st_size
        else:
            data = dataframe_to_parquet(obj)
            store.put_bytes_sync(key, data)
            rows, size = len(obj), len(data)
        context.add_output_metadata(
            {
                "row_count": dg.MetadataValue.int(rows),
                "path": dg.MetadataValue.path(store.uri_for(key)),
                "size_bytes": dg.MetadataValue.int(size),
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Read the upstream output back; a missing file names asset, partition and path."""
        if context.has_asset_key:
            path = list(context.asset_key.path)
            what = context.asset_key.to_user_string()
        else:
            upstream = context.upstream_output
            assert upstream is not None, "an input without an asset key has an upstream output"
            path = self._output_path(upstream)
            what = upstream.name
        if not context.has_asset_partitions:
            return self._read(what, path, None)
        keys = context.asset_partition_keys
        if len(keys) == 1:
            return self._read(what, path, keys[0])
        return {partition_key: self._read(what, path, partition_key) for partition_key in keys}

    def _read(self, what: str, path: list[str], partition_key: str | None) -> pd.DataFrame:
        store = self.store()
        key = self._key(path, partition_key)
        try:
            data = store.get_bytes_sync(key)
        except StoreNotFoundError as exc:
            where = "" if partition_key is None else f" partition {partition_key!r}"
            raise StoreNotFoundError(
                f"asset {what}{where} has no stored output at {store.uri_for(key)}: materialize {what}{where} first"
            ) from exc
        return dataframe_from_parquet(data)
