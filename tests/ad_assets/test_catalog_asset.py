"""``brand_catalog`` as a user runs it: the asset assembles the catalog from the
stored intermediates, its IO manager commits it to a real PostgreSQL and
writes the FAISS indexes, and the ``vectors_have_rows`` check reads it all
back. Re-running it must change nothing, a downstream asset must get the
committed state, and an index that drifted from its rows must turn the check
red."""

from __future__ import annotations

import dagster as dg
import pytest

from ad_assets.assets.analysis import analysis_assets
from ad_assets.assets.brand_summary import brand_summary_asset
from ad_assets.assets.catalog import CATALOG_IO_MANAGER, brand_catalog, vectors_have_rows
from ad_assets.assets.raw_media import raw_media
from ad_assets.jobs import INGEST_JOB, ingest_brand_job
from ad_assets.partitions import brands_partitions
from ad_assets.resource_defs import resources_for
from ad_assets.settings import Settings
from resources.catalog_db import CommittedBrand
from resources.catalog_io_manager import CatalogIOManager
from resources.dagster_resources import MediaStoreResource, PostgresResource
from resources.media_store import MediaStore
from resources.parquet_io_manager import ParquetIOManager, dataframe_to_parquet
from resources.vector_index import IndexFiles, build_index, index_ids, index_vectors
from tests.support.catalog_samples import SAMPLE_BRAND, TABLES

UPSTREAM = [dg.AssetSpec(name, partitions_def=brands_partitions) for name in TABLES]


@pytest.fixture
def setup(database_url, analysed_sample_brand, tmp_path):
    """An instance with the brand's partition, its intermediates stored as Parquet, and the resources."""
    store_url = str(tmp_path / "store")
    store = MediaStore.from_url(store_url)
    for name in TABLES:
        store.put_bytes_sync(f"intermediates/{name}/{SAMPLE_BRAND}.parquet",
                             dataframe_to_parquet(analysed_sample_brand.tables[name]))  # fmt: skip
    unused_dir = str(tmp_path / "unused-pg")  # database_url is set: no embedded server is started
    resources = {
        "io_manager": ParquetIOManager(storage_url=store_url),
        CATALOG_IO_MANAGER: CatalogIOManager(storage_url=store_url, database_url=database_url, data_dir=unused_dir),
        "postgres": PostgresResource(database_url=database_url, data_dir=unused_dir),
        "media_store": MediaStoreResource(storage_url=store_url),
    }
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("brands", [SAMPLE_BRAND])
    return instance, resources, store


def materialise(setup, *extra):
    instance, resources, _ = setup
    return dg.materialize([*UPSTREAM, brand_catalog, vectors_have_rows, *extra], partition_key=SAMPLE_BRAND,
                          instance=instance, resources=resources)  # fmt: skip


def test_the_io_manager_commits_the_catalog_and_reports_it(setup, database_url):
    result = materialise(setup)

    assert result.success
    meta = {k: getattr(v, "value", v) for k, v in result.asset_materializations_for_node("brand_catalog")[0].metadata.items()}
    assert meta["index_version"] == 1 and meta["changed"] is True
    assert meta["rows_by_table"] == {"media_items": 4, "frames": 3, "transcript_segments": 1, "analyses": 43,
                                     "brand_summaries": 1, "brand_analyses": 0, "vectors": 13}  # fmt: skip
    assert meta["vectors_by_space"] == {"local-lexical-v1": 7, "local-visual-v1": 6}
    assert set(meta["indexes_written"]) == {"local-lexical-v1", "local-visual-v1"}
    assert meta["elapsed_s"] >= meta["commit_s"] > 0
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == "vectors_have_rows" and check.passed and check.partition == SAMPLE_BRAND
    with PostgresResource(database_url=database_url, data_dir="x").connect() as conn:
        urls = conn.execute("SELECT urls FROM media_items WHERE source_url LIKE %s", ("%beans.png",)).fetchone()[0]
    assert urls == [f"http://cdn.test/{SAMPLE_BRAND}/beans.png", f"http://cdn.test/{SAMPLE_BRAND}/copy.png"]


def test_rematerialising_unchanged_inputs_commits_nothing(setup):
    first = materialise(setup)
    _, _, store = setup
    keys = store.list_keys_sync("indexes")

    second = materialise(setup)

    meta = second.asset_materializations_for_node("brand_catalog")[0].metadata
    assert first.success and second.success
    assert meta["index_version"].value == 1 and meta["changed"].value is False
    assert meta["indexes_written"].value == {}
    assert store.list_keys_sync("indexes") == keys
    assert second.get_asset_check_evaluations()[0].passed


def test_a_downstream_asset_receives_the_committed_state(setup):
    seen = []

    @dg.asset(partitions_def=brands_partitions, ins={"brand_catalog": dg.AssetIn(input_manager_key=CATALOG_IO_MANAGER)})
    def catalog_report(brand_catalog: CommittedBrand) -> None:
        seen.append(brand_catalog)

    result = materialise(setup, catalog_report)

    assert result.success
    assert seen[0].brand == SAMPLE_BRAND and seen[0].index_version == 1
    assert {s.space for s in seen[0].spaces} == {"local-lexical-v1", "local-visual-v1"}


def test_the_check_fails_when_an_index_lost_a_vector(setup):
    materialise(setup)
    _, _, store = setup
    files = IndexFiles(store)
    key = "indexes/local-visual-v1/brands/sample-coffee.1.faiss"
    index = files.load(key)
    files.write(key, build_index(index_vectors(index)[1:], index_ids(index)[1:]))

    result = materialise(setup)  # unchanged: the drifted file is not rewritten, the check reads it

    check = result.get_asset_check_evaluations()[0]
    assert not check.passed
    assert "1 vector rows are not in the index" in " ".join(check.metadata["problems"].value)


def test_the_proposed_wiring_puts_the_catalog_and_its_check_in_the_ingest_job(tmp_path):
    settings = Settings.from_env({"AD_ASSETS_HOME": str(tmp_path)})
    resources = resources_for(settings)
    resources.setdefault(  # the entry proposed for resource_defs.resources_for
        CATALOG_IO_MANAGER,
        CatalogIOManager(
            storage_url=settings.storage_url,
            data_dir=str(settings.postgres_dir),
            database_url=settings.database_url,
            aws_endpoint_url=settings.aws_endpoint_url,
            aws_region=settings.aws_region,
        ),
    )
    defs = dg.Definitions(
        assets=[raw_media, analysis_assets(settings), brand_summary_asset(settings), brand_catalog],
        asset_checks=[vectors_have_rows],
        jobs=[ingest_brand_job],
        resources=resources,
    )

    job = defs.resolve_job_def(INGEST_JOB)

    assert dg.AssetKey("brand_catalog") in job.asset_layer.executable_asset_keys
    assert dg.AssetCheckKey(dg.AssetKey("brand_catalog"), "vectors_have_rows") in job.asset_layer.asset_graph.asset_check_keys
