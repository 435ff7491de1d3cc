"""FAISS indexes of the catalog: build, serialise, store and load them.

Vectors are L2-normalised, so the inner product FAISS computes is the cosine
similarity. Ids are the Postgres ``vectors.id`` of each row (``IndexIDMap2``,
which can also give the vectors back, so a global index can be rebuilt from
the brands' files). Up to ``IndexConfig.exact_max_vectors`` vectors the index
is exact (``IndexFlatIP``); above, approximate (``IndexHNSWFlat`` with the
inner-product metric; ``hnsw_ef_search`` trades recall for speed at query
time).

Files are written with ``faiss.serialize_index`` through the ``MediaStore``
under versioned keys (``resources.index_keys``). A key is written once and
never changes, which is also why loaded indexes can be cached in the process.
No Dagster or Postgres import here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import faiss
import numpy as np

from resources.catalog_errors import IndexCorruptError, IndexNotFoundError, IndexWriteError
from resources.index_keys import version_of
from resources.media_store import MediaStore, StoreError, StoreNotFoundError

FLAT, HNSW = "flat", "hnsw"


@dataclass(frozen=True)
class IndexConfig:
    """How indexes are built and searched."""

    exact_max_vectors: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    # 256: recall@10 >= 0.95 at 100k x 1024-d with M=32 (bench/bench_catalog.py: 128 gave 0.93).
    hnsw_ef_search: int = 256

    def __post_init__(self) -> None:
        if self.exact_max_vectors < 0 or self.hnsw_m < 2 or self.hnsw_ef_construction < 1 or self.hnsw_ef_search < 1:
            raise ValueError(f"unusable index configuration {self}")


def normalized(vectors: np.ndarray) -> np.ndarray:
    """A float32, C-contiguous, row-wise L2-normalised copy (all-zero rows stay zero)."""
    matrix = np.array(vectors, dtype=np.float32, order="C", copy=True)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.size:
        faiss.normalize_L2(matrix)
    return matrix


def build_index(vectors: np.ndarray, ids: np.ndarray, config: IndexConfig = IndexConfig()) -> faiss.IndexIDMap2:
    """An index of ``vectors`` (n × d) under ``ids`` (n int64): exact up to the configured size, HNSW above."""
    matrix = normalized(vectors)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if matrix.shape[0] != ids.shape[0]:
        raise ValueError(f"{matrix.shape[0]} vectors but {ids.shape[0]} ids")
    dim = int(matrix.shape[1])
    if matrix.shape[0] > config.exact_max_vectors:
        inner = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = config.hnsw_ef_construction
        inner.hnsw.efSearch = config.hnsw_ef_search
    else:
        inner = faiss.IndexFlatIP(dim)
    index = faiss.IndexIDMap2(inner)  # faiss's wrapper keeps ``inner`` alive with it
    if len(ids):
        index.add_with_ids(matrix, ids)
    return index


def index_kind(index: faiss.Index) -> str:
    """``flat`` or ``hnsw``."""
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    return HNSW if isinstance(inner, faiss.IndexHNSW) else FLAT


def set_ef_search(index: faiss.Index, ef_search: int) -> None:
    """Set HNSW's search breadth (no effect on an exact index)."""
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = int(ef_search)


def index_ids(index: faiss.Index) -> np.ndarray:
    """Every id the index holds, in insertion order."""
    return faiss.vector_to_array(index.id_map).astype(np.int64)


def index_vectors(index: faiss.Index) -> np.ndarray:
    """Every stored vector, aligned with :func:`index_ids`."""
    if index.ntotal == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    return faiss.downcast_index(index.index).reconstruct_n(0, index.ntotal)


def search_index(index: faiss.Index, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores (cosine) and ids of the ``k`` nearest vectors to one query; ids are -1 past the end."""
    q = normalized(query)
    if q.shape[1] != index.d:
        raise IndexCorruptError(f"query has dimension {q.shape[1]} but the index holds {index.d}-d vectors")
    k = max(1, min(int(k), max(1, index.ntotal)))
    scores, ids = index.search(q, k)
    return scores[0], ids[0]


def serialize(index: faiss.Index) -> bytes:
    """The index as bytes (``faiss.serialize_index``)."""
    return faiss.serialize_index(index).tobytes()


def deserialize(data: bytes, *, ef_search: int | None = None, what: str = "index") -> faiss.Index:
    """An index back from :func:`serialize` bytes; ``ef_search`` applies to HNSW."""
    try:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError as exc:
        raise IndexCorruptError(f"{what} is not a readable FAISS index ({str(exc).splitlines()[0]})") from exc
    if not isinstance(index, faiss.IndexIDMap2):
        raise IndexCorruptError(f"{what} is a {type(index).__name__}, expected an IndexIDMap2 written by ad-assets")
    if ef_search is not None:
        set_ef_search(index, ef_search)
    return index


class IndexFiles:
    """Index files in a ``MediaStore``: write, load (cached, the keys are immutable), prune old versions."""

    def __init__(
        self,
        store: MediaStore,
        config: IndexConfig = IndexConfig(),
        *,
        ef_search: int | None = None,
        cache_entries: int = 4096,
    ) -> None:
        """Read and write through ``store``, building with ``config``.

        Loaded HNSW indexes search with the ``efSearch`` they were written
        with, unless ``ef_search`` overrides it. Up to ``cache_entries``
        loaded indexes stay in memory: cross-brand search reads one file per
        brand and space, so the bound counts files (the memory is the catalog's).
        """
        self.store, self.config, self.ef_search = store, config, ef_search
        self._cache: OrderedDict[str, faiss.Index] = OrderedDict()
        self._cache_entries = cache_entries
        self._lock = threading.Lock()

    def write(self, key: str, index: faiss.Index) -> int:
        """Store ``index`` under ``key`` (atomic for readers: a whole-object put); returns its size in bytes."""
        data = serialize(index)
        try:
            self.store.put_bytes_sync(key, data, content_type="application/octet-stream")
        except StoreError as exc:
            raise IndexWriteError(f"could not write the FAISS index {key!r}: {exc}") from exc
        with self._lock:
            self._cache.pop(key, None)
        return len(data)

    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""
        return self.store.exists_sync(key)

    def load(self, key: str) -> faiss.Index:
        """The index under ``key`` (raises :class:`IndexNotFoundError` when missing)."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            data = self.store.get_bytes_sync(key)
        except StoreNotFoundError as exc:
            raise IndexNotFoundError(
                f"the FAISS index {self.store.uri_for(key)} is missing: its commit is still being written or its "
                "write failed; re-materialise the brand's brand_catalog"
            ) from exc
        index = deserialize(data, ef_search=self.ef_search, what=self.store.uri_for(key))
        with self._lock:
            self._cache[key] = index
            while len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)
        return index

    def prune(self, prefix: str, stem: str, keep: set[int]) -> list[str]:
        """Delete ``<prefix>/<stem>.<version>.faiss`` files whose version is not in ``keep``; returns the keys."""
        removed = []
        for key in self.store.list_keys_sync(prefix):
            version = version_of(key, stem)
            if version is not None and key.rsplit("/", 1)[0] == prefix and version not in keep:
                self.store.delete_sync(key)
                removed.append(key)
        return removed
