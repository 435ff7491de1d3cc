"""Cross-brand search as shards: each brand's own index, searched together, results merged.

A brand commit writes only that brand's index files (work proportional to the
brand), and the cross-brand "global index" of a space is the set of every
committed brand's index of that space *at its committed version*, read in the
same database snapshot as the rows the hits are joined to. So an index is never
paired with rows of another version, there is no global file to rebuild, lose
or race over, and a brand whose file is missing is exactly the brand whose own
check (``verify_brand``) is red and whose next run rewrites it.

The shards' top-k lists are merged with FAISS's own ``ResultHeap`` (max-heap on
the inner product), which is what ``IndexShards`` does internally; exact shards
(``IndexFlatIP``) make the merged result exact, HNSW shards approximate.

No Dagster import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faiss
import numpy as np
import psycopg

from resources.catalog_db import CommittedSpace, committed_brand
from resources.catalog_errors import IndexCorruptError
from resources.index_keys import version_of
from resources.vector_index import IndexFiles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    """One brand's index of a space, at the version committed in the reader's snapshot."""

    brand: str
    version: int
    index: faiss.Index


class ShardSet:
    """Several indexes of one space searched as one (``d``, ``ntotal``, ``search`` like a FAISS index).

    Raises :class:`IndexCorruptError` when the shards disagree on the dimension.
    """

    def __init__(self, shards: list[Shard], d: int) -> None:
        for shard in shards:
            if shard.index.d != d:
                raise IndexCorruptError(
                    f"brand {shard.brand!r} version {shard.version}: its index holds {shard.index.d}-d vectors but "
                    f"the space's other indexes hold {d}-d; re-run that brand"
                )
        self.shards, self.d = shards, int(d)
        self.ntotal = sum(int(s.index.ntotal) for s in shards)

    @property
    def brands(self) -> set[str]:
        """The brands whose vectors the shards hold."""
        return {s.brand for s in self.shards}

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(nq × k scores, nq × k ids), best first; -1 ids past the end. ``queries`` normalised float32.

        The shards are searched with one OpenMP thread: a query is a few
        vectors against many small indexes, where FAISS's thread team gains
        nothing and, on shared cores, waits at every one of its barriers
        (bench/bench_scale.py: p99 over 100 shards 551 ms with 2 threads, 74 ms
        with 1, load 3.4). The setting is process-wide and restored after.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        heap = faiss.ResultHeap(queries.shape[0], int(k), keep_max=True)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            for shard in self.shards:
                if shard.index.ntotal:
                    scores, ids = shard.index.search(queries, min(int(k), int(shard.index.ntotal)))
                    heap.add_result(scores, ids)
        finally:
            faiss.omp_set_num_threads(threads)
        heap.finalize()
        # Unfilled heap slots carry -inf scores with id -1, as a FAISS index answers past its end.
        return heap.D, heap.I


def cross_brand_shards(files: IndexFiles, spaces: list[CommittedSpace], space: str) -> ShardSet | None:
    """The written indexes of ``space`` of every brand in ``spaces`` (rows of ``committed_spaces``, one snapshot).

    A brand whose index of the committed version is not written yet is left
    out with a warning (its check is red until its next run writes it). None
    when no brand has vectors in ``space``. Raises ``IndexNotFoundError`` when
    a registered-as-written file is gone from the store.
    """
    entries = [s for s in spaces if s.space == space]
    if not entries:
        return None
    shards = []
    for entry in entries:
        if not entry.written:
            log.warning(
                "brand %r: its %r index of version %d is not written yet; skipped", entry.brand, space, entry.version
            )
            continue
        shards.append(Shard(entry.brand, entry.version, files.load(entry.storage_key)))
    return ShardSet(shards, entries[0].dim)


def prune_brand_files(conn: psycopg.Connection, files: IndexFiles, prefix: str, brand: str) -> list[str]:
    """Delete the brand's index files under ``prefix`` older than the previous committed version.

    Reads the version committed *now*, not the one this publisher committed:
    versions only grow, so a late prune by an older publisher (A committed v3,
    B then v4) deletes nothing B or its readers need — v4 and v3 stay. Files of
    a version above the one read (a commit landing meanwhile) are never deleted.
    """
    state = committed_brand(conn, brand)
    conn.rollback()  # end the read's implicit transaction
    if state is None:
        return []
    floor = state.index_version - 1  # the committed version and the one a reader may have just read
    removed = []
    for key in files.store.list_keys_sync(prefix):
        version = version_of(key, brand)
        if version is not None and key.rsplit("/", 1)[0] == prefix and version < floor:
            files.store.delete_sync(key)
            removed.append(key)
    return removed
