"""Publishing a brand: the Postgres commit, then its FAISS indexes, then the global ones.

The order is what keeps readers safe:

1. ``commit_brand`` commits the rows and the new ``index_version`` (or finds
   the same content already committed and changes nothing);
2. only then is each space's index built with the committed row ids and
   written under a key carrying that version, and ``vector_indexes.written_at``
   set;
3. index files older than the previous *committed* version (read at that
   moment, so a late prune of an older publisher never deletes a newer file)
   are deleted; a reader that read the previous version a moment ago can
   still load it.

There is no global file to rebuild: cross-brand search reads every brand's own
index of the version committed in its snapshot and merges the results
(``resources.index_shards``), so a commit costs the same with 1 or 1,000 brands
committed before it.

A failure after step 1 leaves Postgres committed and the new version's file
missing: readers get a clear "not written" error for that brand, never a file
paired with other rows, and re-running ``publish_brand`` with the same catalog
writes the missing files without committing again.

No Dagster import.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from resources.brand_catalog import BrandCatalog
from resources.catalog_db import (
    CommitResult,
    CommittedSpace,
    commit_brand,
    committed_brand,
    committed_spaces,
    mark_index_written,
)
from resources.catalog_errors import CatalogError, IndexWriteError
from resources.catalog_schema import ensure_schema
from resources.index_keys import brand_index_prefix
from resources.index_shards import prune_brand_files
from resources.vector_index import IndexFiles, build_index, index_ids, index_kind


@dataclass(frozen=True)
class PublishResult:
    """What ``publish_brand`` did: the commit, the index files written, the global versions."""

    commit: CommitResult
    indexes_written: dict[str, dict[str, Any]]
    global_versions: dict[str, int | None]
    pruned: list[str]
    commit_s: float
    index_s: float

    @property
    def elapsed_s(self) -> float:
        """Commit plus index time."""
        return self.commit_s + self.index_s


def publish_brand(
    conn: psycopg.Connection,
    files: IndexFiles,
    catalog: BrandCatalog,
    *,
    build_global: bool = True,
    force: bool = False,
) -> PublishResult:
    """Commit ``catalog`` to Postgres, then write its FAISS indexes (see the module docstring).

    ``global_versions`` of the result: per space whose cross-brand search set
    changed, the brand version it now holds there (None: the brand left the
    space). ``build_global`` is kept for callers of the former global build and
    changes nothing: the brands' own files are the cross-brand index.

    ``conn`` must be idle (no open transaction). Raises ``CommitError`` when
    the commit rolled back, ``IndexWriteError`` when it committed but an index
    could not be written (re-run to finish).
    """
    started = time.perf_counter()
    ensure_schema(conn)
    result = commit_brand(conn, catalog, force=force)
    committed_at = time.perf_counter()
    try:
        registered = {s.space: s for s in committed_spaces(conn, catalog.brand)}
        conn.rollback()  # end the read's implicit transaction
        written: dict[str, dict[str, Any]] = {}
        for space, key in result.index_keys.items():
            entry = registered.get(space)
            if entry is None or entry.version != result.version:
                continue  # a newer commit of the brand replaced this one meanwhile; its publisher writes its files
            if not result.changed and entry.written and files.exists(key):
                continue
            positions, matrix = catalog.space_vectors(space)
            index = build_index(matrix, result.vector_ids[positions], files.config)
            size = files.write(key, index)
            try:
                mark_index_written(conn, catalog.brand, space, result.version, index_kind(index))
            except psycopg.Error as exc:
                raise IndexWriteError(f"the index {key!r} was written but could not be registered: {exc}") from exc
            written[space] = {"key": key, "kind": index_kind(index), "vectors": int(index.ntotal), "bytes": size}
        previous = result.previous
        left = {s.space for s in (previous.spaces if previous else ())} - set(result.index_keys)
        # The cross-brand search set of a space is its brands' own files (resources.index_shards):
        # what changed in it is this brand's file, written above, or this brand leaving the space.
        global_versions: dict[str, int | None] = {space: result.version for space in written}
        global_versions |= {space: None for space in left if result.changed}
        pruned = []
        if result.changed:
            for space in sorted(set(result.index_keys) | left):
                pruned += prune_brand_files(conn, files, brand_index_prefix(space), catalog.brand)
    except psycopg.Error as exc:
        # The commit stands; only the indexes are behind. Say so in the promised error type.
        raise IndexWriteError(
            f"brand {catalog.brand!r} was committed (version {result.version}) but its indexes could not be "
            f"written: {exc}; re-run the brand to write them"
        ) from exc
    return PublishResult(
        commit=result,
        indexes_written=written,
        global_versions=global_versions,
        pruned=pruned,
        commit_s=committed_at - started,
        index_s=time.perf_counter() - committed_at,
    )


@dataclass
class ConsistencyReport:
    """Whether a brand's committed FAISS indexes and vector rows agree, space by space."""

    brand: str
    version: int | None
    spaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every index id has its row and every count matches."""
        return self.version is not None and not self.problems


def verify_brand(conn: psycopg.Connection, files: IndexFiles, brand: str) -> ConsistencyReport:
    """Check that every id in the brand's committed indexes has its ``vectors`` row, and the counts match."""
    conn.rollback()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot for the version and the rows
    try:
        state = committed_brand(conn, brand)
        if state is None:
            return ConsistencyReport(brand, None, problems=[f"brand {brand!r} has never been committed"])
        report = ConsistencyReport(brand, state.index_version)
        rows: dict[str, list[int]] = {}
        for space, vid in conn.execute("SELECT space, id FROM vectors WHERE brand = %s", (brand,)).fetchall():
            rows.setdefault(space, []).append(vid)
        registered = {s.space: s for s in state.spaces}
        for space in sorted(set(rows) - set(registered)):
            report.problems.append(f"{len(rows[space])} vector rows of space {space!r} have no registered index")
        for space, entry in registered.items():
            report.spaces[space] = _verify_space(files, entry, np.asarray(rows.get(space, []), dtype=np.int64),
                                                 state.index_version, report.problems)  # fmt: skip
        return report
    finally:
        conn.rollback()
        conn.isolation_level = None


def _verify_space(
    files: IndexFiles, entry: CommittedSpace, row_ids: np.ndarray, version: int, problems: list[str]
) -> dict[str, Any]:
    facts: dict[str, Any] = {"rows": int(len(row_ids)), "registered": entry.vectors, "version": entry.version}
    if entry.version != version:
        problems.append(f"{entry.space}: index registered for version {entry.version}, brand is at {version}")
    try:
        index = files.load(entry.storage_key)
    except CatalogError as exc:
        problems.append(f"{entry.space}: {exc}")
        return facts
    ids = index_ids(index)
    missing = np.setdiff1d(ids, row_ids)
    unindexed = np.setdiff1d(row_ids, ids)
    facts |= {"index_vectors": int(index.ntotal), "ids_without_row": int(len(missing)),
              "rows_without_vector": int(len(unindexed)), "kind": index_kind(index)}  # fmt: skip
    if len(missing):
        problems.append(f"{entry.space}: {len(missing)} index ids have no row (e.g. {missing[:3].tolist()})")
    if len(unindexed):
        problems.append(f"{entry.space}: {len(unindexed)} vector rows are not in the index")
    if not (index.ntotal == len(row_ids) == entry.vectors):
        problems.append(
            f"{entry.space}: counts differ (index {index.ntotal}, rows {len(row_ids)}, registered {entry.vectors})"
        )
    return facts
