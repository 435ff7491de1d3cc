"""The IO manager that commits ``brand_catalog``: one Postgres transaction per brand, then FAISS.

``handle_output`` receives the asset's ``BrandCatalog`` and calls
``resources.catalog_publish.publish_brand``: the brand's rows are replaced in
one transaction (delete + COPY), and only after that commit succeeded are the
brand's FAISS indexes written under the committed version, then the global
ones rebuilt. Re-materialising unchanged data commits nothing and writes only
index files that are missing. ``load_input`` returns the brand's committed
state (version, row counts, indexes), not the rows themselves: read those
with SQL or ``ad_assets.search``.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg
from pydantic import Field

from resources.brand_catalog import BrandCatalog
from resources.catalog_db import CommittedBrand, committed_brand
from resources.catalog_errors import NothingCommittedError
from resources.catalog_publish import publish_brand
from resources.catalog_schema import ensure_schema
from resources.dagster_resources import MediaStoreLocation
from resources.postgres import connect, resolve_database_url
from resources.vector_index import IndexConfig, IndexFiles


class CatalogIOManager(dg.ConfigurableIOManager, MediaStoreLocation):
    """Commits each brand's ``BrandCatalog`` to Postgres, then writes its FAISS indexes to the media store.

    The database is ``database_url``, else the embedded PostgreSQL under
    ``data_dir`` (as ``PostgresResource``); index files go to ``storage_url``
    (as ``MediaStoreResource``). Plain fields rather than nested resources,
    like ``ParquetIOManager``: build it from the same ``Settings``.
    """

    data_dir: str
    database_url: str | None = None
    exact_max_vectors: int = Field(
        50_000, ge=0, description="Indexes with at most this many vectors are exact (IndexFlatIP); larger ones HNSW."
    )
    hnsw_m: int = Field(32, ge=2, description="HNSW links per vector (memory vs recall).")
    hnsw_ef_construction: int = Field(200, ge=1, description="HNSW build breadth (build time vs recall).")
    hnsw_ef_search: int = Field(
        256, ge=1, description="HNSW search breadth, stored in each index and used by searches (latency vs recall)."
    )
    build_global_index: bool = Field(
        True,
        description="Kept for older run configs; changes nothing: cross-brand search reads the brands' own indexes.",
    )

    def index_config(self) -> IndexConfig:
        """The FAISS settings as the pure code takes them."""
        return IndexConfig(self.exact_max_vectors, self.hnsw_m, self.hnsw_ef_construction, self.hnsw_ef_search)

    def index_files(self) -> IndexFiles:
        """The index files in the media store."""
        return IndexFiles(self.store(), self.index_config())

    def connect(self) -> psycopg.Connection:
        """A connection to the catalog database (starts the embedded server when no URL is set)."""
        return connect(resolve_database_url(self.database_url, Path(self.data_dir)))

    @staticmethod
    def _brand(context: dg.OutputContext | dg.InputContext) -> str:
        if not context.has_asset_partitions or len(context.asset_partition_keys) != 1:
            raise dg.Failure(
                "the catalog is committed one brand partition per run (launch backfills one run per brand)"
            )
        return context.asset_partition_keys[0]

    def handle_output(self, context: dg.OutputContext, obj: BrandCatalog) -> None:
        """Commit ``obj`` (Postgres, then FAISS) and record what was written."""
        if not isinstance(obj, BrandCatalog):
            raise TypeError(f"CatalogIOManager commits BrandCatalog objects, got {type(obj).__name__}")
        brand = self._brand(context)
        if obj.brand != brand:
            raise dg.Failure(f"the catalog of brand {obj.brand!r} was produced for partition {brand!r}")
        with self.connect() as conn:
            result = publish_brand(conn, self.index_files(), obj, build_global=self.build_global_index)
        commit = result.commit
        rows = sum(commit.row_counts.values())
        context.log.info(
            f"brand {brand!r}: {'committed' if commit.changed else 'unchanged at'} version {commit.version}, "
            f"{rows} rows, {len(result.indexes_written)} index files written"
        )
        context.add_output_metadata(
            {
                "index_version": dg.MetadataValue.int(commit.version),
                "changed": dg.MetadataValue.bool(commit.changed),
                **{f"rows_{table}": dg.MetadataValue.int(n) for table, n in commit.row_counts.items()},
                "rows_by_table": dg.MetadataValue.json(commit.row_counts),
                "vectors_by_space": dg.MetadataValue.json(commit.vectors_by_space),
                "indexes_written": dg.MetadataValue.json(result.indexes_written),
                "global_index_versions": dg.MetadataValue.json(result.global_versions),
                "index_files_pruned": dg.MetadataValue.int(len(result.pruned)),
                "commit_s": dg.MetadataValue.float(round(result.commit_s, 3)),
                "index_s": dg.MetadataValue.float(round(result.index_s, 3)),
                "elapsed_s": dg.MetadataValue.float(round(result.elapsed_s, 3)),
                "rows_per_s": dg.MetadataValue.float(round(rows / result.commit_s, 1) if result.commit_s > 0 else 0.0),
            }
        )

    def load_input(self, context: dg.InputContext) -> CommittedBrand:
        """The brand's committed state (version, row counts, registered indexes)."""
        brand = self._brand(context)
        with self.connect() as conn:
            ensure_schema(conn)
            state = committed_brand(conn, brand)
        if state is None:
            raise NothingCommittedError(
                f"brand {brand!r} has no committed catalog: materialise its brand_catalog first"
            )
        return state
