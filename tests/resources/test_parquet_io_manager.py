"""Every intermediate between the brand assets passes through this IO manager.
What matters: the path layout others find files by, the metadata shown in the
UI, AI results (nested dicts/lists) and vectors coming back exactly as the asset
returned them, and a clear error when an upstream partition was never built.
Assets are throwaway ones defined inline, materialized for real (local disk and
moto's S3 on loopback)."""

import io
import json
from pathlib import Path

import boto3
import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.media_store import StoreNotFoundError
from resources.parquet_io_manager import (
    JSON_COLUMNS_KEY,
    ParquetIOManager,
    StagedParquet,
    _segment,
    dataframe_from_parquet,
    dataframe_to_parquet,
)
from resources.parquet_stream import FLOAT32_LIST, JSON, ParquetTableWriter
from tests.support.moto_server import REGION

brands = dg.DynamicPartitionsDefinition(name="brands")


@dg.asset(partitions_def=brands)
def analysed_media(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Two items of one brand with nested AI results and a vector."""
    return pd.DataFrame(
        {
            "brand": [context.partition_key] * 2,
            "sha256": ["aa" * 32, "bb" * 32],
            "labels": [["shoe", "red"], []],
            "caption": [{"text": "a red shoe", "score": 0.9}, None],
            "vector": [np.array([0.1, 0.2], dtype=np.float32), np.array([0.3, 0.4], dtype=np.float32)],
        }
    )


@dg.asset(partitions_def=brands)
def brand_rollup(analysed_media: pd.DataFrame) -> pd.DataFrame:
    """Reads the upstream partition back; proves the round trip inside a run."""
    return pd.DataFrame(
        {
            "items": [len(analysed_media)],
            "labels": [sorted({label for labels in analysed_media["labels"] for label in labels})],
            "first_caption": [analysed_media["caption"].iloc[0]["text"]],
            "vector_sum": [float(np.sum(np.stack(analysed_media["vector"].to_list())))],
        }
    )


@dg.asset(partitions_def=brands)
def side_effect_only() -> None:
    """Returns nothing: the IO manager must not write a file."""


@dg.asset
def global_table() -> pd.DataFrame:
    """Unpartitioned."""
    return pd.DataFrame({"x": [1, 2, 3]})


def _instance_with_brand(brand: str = "acme") -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("brands", [brand])
    return instance


def _metadata(result: dg.ExecuteInProcessResult, node: str) -> dict:
    (materialization,) = result.asset_materializations_for_node(node)
    return materialization.metadata


def test_partitioned_assets_round_trip_on_local_disk(tmp_path):
    io_manager = ParquetIOManager(storage_url=str(tmp_path / "store"))
    result = dg.materialize(
        [analysed_media, brand_rollup, side_effect_only],
        partition_key="acme",
        instance=_instance_with_brand(),
        resources={"io_manager": io_manager},
    )

    assert result.success
    upstream_file = tmp_path / "store" / "intermediates" / "analysed_media" / "acme.parquet"
    assert upstream_file.is_file()
    metadata = _metadata(result, "analysed_media")
    assert metadata["row_count"] == dg.MetadataValue.int(2)
    assert metadata["path"] == dg.MetadataValue.path(str(upstream_file))

    rollup = io_manager.store().get_bytes_sync("intermediates/brand_rollup/acme.parquet")
    back = dataframe_from_parquet(rollup)
    assert back.to_dict("records") == [
        {"items": 2, "labels": ["red", "shoe"], "first_caption": "a red shoe", "vector_sum": pytest.approx(1.0)}
    ]
    assert not (tmp_path / "store" / "intermediates" / "side_effect_only").exists()


def test_unpartitioned_asset_uses_all_and_custom_prefix(tmp_path):
    result = dg.materialize(
        [global_table],
        resources={"io_manager": ParquetIOManager(storage_url=str(tmp_path), prefix="stage/v2")},
    )
    assert result.success
    assert pd.read_parquet(tmp_path / "stage" / "v2" / "global_table" / "__all__.parquet")["x"].tolist() == [1, 2, 3]


def test_missing_upstream_partition_names_asset_partition_and_path(tmp_path):
    io_manager = ParquetIOManager(storage_url=str(tmp_path))
    instance = _instance_with_brand("globex")
    context = dg.build_input_context(
        asset_key=dg.AssetKey("analysed_media"),
        partition_key="globex",
        asset_partitions_def=brands,
        instance=instance,
    )

    with pytest.raises(StoreNotFoundError) as excinfo:
        io_manager.load_input(context)
    message = str(excinfo.value)
    assert "analysed_media" in message and "'globex'" in message
    assert str(tmp_path / "intermediates" / "analysed_media" / "globex.parquet") in message


def test_non_dataframe_output_is_refused(tmp_path):
    @dg.asset
    def not_a_frame() -> list:
        return [1, 2]

    with pytest.raises(TypeError, match="not_a_frame returned list"):
        dg.materialize([not_a_frame], resources={"io_manager": ParquetIOManager(storage_url=str(tmp_path))})


def test_partitioned_assets_round_trip_on_s3(aws_env, make_bucket):
    bucket = make_bucket()
    io_manager = ParquetIOManager(storage_url=f"s3://{bucket}/runs", aws_endpoint_url=aws_env)
    result = dg.materialize(
        [analysed_media, brand_rollup],
        partition_key="acme",
        instance=_instance_with_brand(),
        resources={"io_manager": io_manager},
    )

    assert result.success
    key = "runs/intermediates/analysed_media/acme.parquet"
    assert _metadata(result, "analysed_media")["path"] == dg.MetadataValue.path(f"s3://{bucket}/{key}")
    body = boto3.client("s3", endpoint_url=aws_env, region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"]
    assert len(pq.read_table(io.BytesIO(body.read()))) == 2
    assert _metadata(result, "brand_rollup")["row_count"] == dg.MetadataValue.int(1)


# -- the serialisation itself ----------------------------------------------


def test_json_ish_columns_come_back_as_python_values():
    df = pd.DataFrame(
        {
            "n": [1, 2, 3],
            "name": ["a", "b", None],
            # dicts with different keys and nesting: what Arrow structs would mangle
            "result": [{"labels": ["x"], "score": 1.5}, {"words": [{"w": "hi", "t": [0.1, 0.4]}]}, None],
            "mixed": ["plain text", {"k": np.int64(3)}, [1, "two", None]],
            "vector": [np.arange(3, dtype=np.float32)] * 3,
        },
        index=pd.Index([10, 20, 30], name="row"),
    )

    data = dataframe_to_parquet(df)
    back = dataframe_from_parquet(data)

    schema = pq.read_schema(io.BytesIO(data))
    assert set(json.loads(schema.metadata[JSON_COLUMNS_KEY])) == {"result", "mixed"}
    vector_type = schema.field("vector").type
    assert pa.types.is_list(vector_type) and vector_type.value_type == pa.float32()
    assert back.index.tolist() == [10, 20, 30] and back.index.name == "row"
    assert back["n"].tolist() == [1, 2, 3]
    assert back["result"].tolist() == df["result"].tolist()
    assert back["mixed"].tolist() == ["plain text", {"k": 3}, [1, "two", None]]
    assert all(v.dtype == np.float32 and v.tolist() == [0.0, 1.0, 2.0] for v in back["vector"])
    assert back["name"].isna().tolist() == [False, False, True]


def test_value_that_is_not_json_names_its_column():
    df = pd.DataFrame({"bad": [[object()]]})
    with pytest.raises(TypeError, match="'bad'"):
        dataframe_to_parquet(df)


@pytest.mark.parametrize(
    ("partition_key", "segment"),
    [("acme", "acme"), ("acme-coffee_2", "acme-coffee_2"), ("a/b", "a%2Fb"), ("..", "%2E%2E"), ("x|y", "x%7Cy")],
)
def test_partition_keys_cannot_escape_their_folder(partition_key, segment):
    assert _segment(partition_key) == segment


@dg.asset(partitions_def=brands, name="analysed_media")
def streamed_media(context: dg.AssetExecutionContext) -> StagedParquet:
    """The same two items as ``analysed_media``, written batch by batch to a local file first."""
    path = Path(context.instance.root_directory or ".") / "staged" / "analysed_media.parquet"
    columns = {"brand": pa.string(), "sha256": pa.string(), "labels": JSON, "caption": JSON, "vector": FLOAT32_LIST}
    with ParquetTableWriter(path, columns, batch_rows=1) as writer:
        writer.write([{"brand": context.partition_key, "sha256": "aa" * 32, "labels": ["shoe", "red"],
                       "caption": {"text": "a red shoe", "score": 0.9}, "vector": np.array([0.1, 0.2], np.float32)}])
        writer.write([{"brand": context.partition_key, "sha256": "bb" * 32, "labels": [], "caption": None,
                       "vector": np.array([0.3, 0.4], np.float32)}])  # fmt: skip
    return writer.close()


def test_a_staged_parquet_file_is_stored_as_is_and_loads_as_the_dataframe(tmp_path):
    io_manager = ParquetIOManager(storage_url=str(tmp_path / "store"))
    instance = dg.DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    instance.add_dynamic_partitions("brands", ["acme"])

    result = dg.materialize([streamed_media, brand_rollup], partition_key="acme", instance=instance,
                            resources={"io_manager": io_manager})  # fmt: skip

    assert result.success
    stored = tmp_path / "store" / "intermediates" / "analysed_media" / "acme.parquet"
    metadata = _metadata(result, "analysed_media")
    assert metadata["row_count"] == dg.MetadataValue.int(2)
    assert metadata["size_bytes"] == dg.MetadataValue.int(stored.stat().st_size)
    back = dataframe_from_parquet(io_manager.store().get_bytes_sync("intermediates/brand_rollup/acme.parquet"))
    assert back.to_dict("records") == [
        {"items": 2, "labels": ["red", "shoe"], "first_caption": "a red shoe", "vector_sum": pytest.approx(1.0)}
    ]
