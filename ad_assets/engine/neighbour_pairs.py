"""Pairs of vectors closer than a cosine threshold, found with FAISS without an n × n matrix.

Exact up to ``EXACT_MAX`` vectors: a flat inner-product index answers a range
search batch by batch (results of one batch in memory at a time; compute is
still n² · d, done by FAISS's blocked BLAS). Above, an HNSW graph gives each
vector its ``NEIGHBOURS`` nearest, and the pairs above the threshold are kept:
enough to link near-duplicate groups transitively (a group only needs a path),
at n · log n cost.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import faiss
import numpy as np

EXACT_MAX = 50_000
BATCH_PAIRS = 1 << 24  # results of one range-search batch: at most this many pairs (~20 bytes each)
NEIGHBOURS = 32
# A pair counts when its cosine is >= threshold; FAISS keeps scores strictly above the radius.
_EPS = 1e-6


def close_pairs(
    vectors: np.ndarray, threshold: float, *, exact_max: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches of pairs (i, j), two int64 arrays, with i < j and cosine(vectors[i], vectors[j]) >= ``threshold``.

    ``vectors``: unit-length rows, n × d (float32 or convertible).

    ``exact_max`` (default ``EXACT_MAX``): the largest n searched exactly.
    Each pair is yielded once per batch that finds it (callers link, so a
    repeat is harmless). Raises ``ValueError`` for a matrix that is not 2-d.
    """
    exact_max = EXACT_MAX if exact_max is None else exact_max
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"vectors must be an n x d matrix, got shape {matrix.shape}")
    n, d = matrix.shape
    if n < 2:
        return
    if n <= exact_max:
        index = faiss.IndexFlatIP(d)
        index.add(matrix)
        batch = max(64, min(1024, BATCH_PAIRS // n))  # worst case (every item alike): batch x n pairs
        for start in range(0, n, batch):
            lims, scores, ids = index.range_search(matrix[start : start + batch], float(threshold) - _EPS)
            owners = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64))
            keep = (ids > owners) & (scores >= threshold - _EPS)
            yield owners[keep], ids[keep]
        return
    index = faiss.IndexHNSWFlat(d, NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.hnsw.efSearch = 2 * NEIGHBOURS
    index.add(matrix)
    for start in range(0, n, 1024):
        scores, ids = index.search(matrix[start : start + 1024], NEIGHBOURS + 1)
        owners = np.broadcast_to(np.arange(start, start + len(ids))[:, None], ids.shape)
        keep = (ids >= 0) & (ids != owners) & (scores >= threshold - _EPS)
        yield np.minimum(owners[keep], ids[keep]), np.maximum(owners[keep], ids[keep])


def linked_components(n: int, pair_batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Component label of each of ``n`` items (the smallest member's index) once every pair is linked.

    Vectorised hook-and-compress over each batch (O(pairs · log n) in numpy),
    so a brand where every item matches every other costs arrays, not a
    Python loop over n² pairs.
    """
    labels = np.arange(n, dtype=np.int64)
    for a, b in pair_batches:
        if not len(a):
            continue
        while True:
            la, lb = labels[a], labels[b]
            low = np.minimum(la, lb)
            before = labels.copy()
            np.minimum.at(labels, la, low)
            np.minimum.at(labels, lb, low)
            while True:  # pointer jumping: every item straight to its root
                jumped = labels[labels]
                if np.array_equal(jumped, labels):
                    break
                labels = jumped
            if np.array_equal(labels, before):
                break
    return labels
